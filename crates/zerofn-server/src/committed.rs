//! Following the committed audit stream from a position, without gaps or duplicates: what the
//! live audit stream (`control::audit_stream`), the OTLP exporter (`otlp`) and the
//! `audit_events_total` counter read.
//!
//! The store is the record and the broadcast of [`AuditLog::subscribe`] only a fast path: a
//! follower subscribes *before* it reads the store, reads what was committed after its
//! position, then takes live events, skipping any id it has already passed. When it falls
//! behind the broadcast (`Lagged`) it reads the gap from the store by id, so a slow reader
//! loses nothing and never slows the writer.

use serde_json::Value;
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::broadcast::{self, error::RecvError};
use zerofn_audit::{AuditEvent, AuditLog, CommittedEvent, Detail, EventKind, Outcome};
use zerofn_store::{AuditQuery, AuditRow, Store};

/// How many stored events are read at once while catching up.
const PAGE: u32 = 1_000;

/// The store could not be read while following.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the audit stream from the store: {0}")]
pub(crate) struct FollowError(String);

impl From<zerofn_store::StoreError> for FollowError {
    fn from(error: zerofn_store::StoreError) -> Self {
        Self(error.to_string())
    }
}

/// One committed event, from the broadcast or read back from the store.
#[derive(Debug, Clone)]
pub(crate) enum Followed {
    Live(Arc<CommittedEvent>),
    Stored(Box<AuditRow>),
}

impl Followed {
    /// The event's id in the stream.
    pub(crate) fn id(&self) -> i64 {
        match self {
            Self::Live(event) => event.id,
            Self::Stored(row) => row.id,
        }
    }

    /// The kind as written, e.g. `invocation.end`.
    pub(crate) fn kind(&self) -> &str {
        match self {
            Self::Live(event) => event.event.kind.as_str(),
            Self::Stored(row) => &row.kind,
        }
    }

    /// `success`, `failure` or `denied`.
    pub(crate) fn outcome(&self) -> &str {
        match self {
            Self::Live(event) => event.event.outcome.as_str(),
            Self::Stored(row) => &row.outcome,
        }
    }

    /// An envelope field that is a string (`app`, `trace_id`, ...), if set.
    pub(crate) fn field(&self, name: &str) -> Option<&str> {
        match self {
            Self::Live(event) => {
                let e = &event.event;
                match name {
                    "app" => e.app.as_deref(),
                    "function" => e.function.as_deref(),
                    "invocation_id" => e.invocation_id.as_deref(),
                    "version_id" => e.version_id.as_deref(),
                    "identity" => e.identity.as_deref(),
                    "caller" => e.caller.as_deref(),
                    "trace_id" => e.trace_id.as_deref(),
                    "span_id" => e.span_id.as_deref(),
                    "parent_span_id" => e.parent_span_id.as_deref(),
                    "reason" => e.reason.as_deref(),
                    _ => None,
                }
            }
            Self::Stored(row) => row.event.get(name).and_then(Value::as_str),
        }
    }

    /// The event as the detectors read it; `None` for a stored row this version cannot read.
    pub(crate) fn into_committed(self) -> Option<Arc<CommittedEvent>> {
        match self {
            Self::Live(event) => Some(event),
            Self::Stored(row) => stored_event(&row).map(Arc::new),
        }
    }

    /// The whole event as JSON (the stored form).
    pub(crate) fn to_json(&self) -> Value {
        match self {
            // Serialising a plain struct of strings and numbers cannot fail.
            Self::Live(event) => serde_json::to_value(&event.event).unwrap_or(Value::Null),
            Self::Stored(row) => row.event.clone(),
        }
    }
}

/// A reader of the committed stream after a position.
pub(crate) struct Follower {
    receiver: broadcast::Receiver<Arc<CommittedEvent>>,
    store: Store,
    /// Filters the store can apply while catching up (live events are not filtered here).
    query: AuditQuery,
    /// The last id read, from either source.
    cursor: i64,
    /// Whether the store may hold events after `cursor` that the broadcast will not deliver.
    catching_up: bool,
    pending: VecDeque<Followed>,
    /// Skip what the broadcast dropped instead of reading it from the store (see
    /// [`Follower::dropping_on_lag`]), counting it here.
    drop_on_lag: bool,
    dropped: u64,
}

impl Follower {
    /// Follows every event committed after `after` (`None`: after the newest one now).
    /// `query`'s filters (app, function, invocation, trace, kind) narrow what is read back
    /// from the store; its `after_id` and `limit` are ignored.
    pub(crate) async fn start(
        audit: &AuditLog,
        store: Store,
        after: Option<i64>,
        query: AuditQuery,
    ) -> Result<Self, FollowError> {
        // Subscribing first: anything committed from here on is either read below or
        // received, so nothing falls between the two.
        let receiver = audit.subscribe();
        let cursor = match after {
            Some(id) => id,
            None => {
                let store = store.clone();
                tokio::task::spawn_blocking(move || {
                    store.audit_events(&AuditQuery {
                        limit: Some(1),
                        ..AuditQuery::default()
                    })
                })
                .await
                .map_err(|e| FollowError(e.to_string()))??
                .last()
                .map_or(0, |row| row.id)
            }
        };
        Ok(Self {
            receiver,
            store,
            query,
            cursor,
            catching_up: after.is_some(),
            pending: VecDeque::new(),
            drop_on_lag: false,
            dropped: 0,
        })
    }

    /// A follower that skips what it missed when it falls behind, for a copy that must stay
    /// live rather than complete (the export); [`Follower::take_dropped`] says how many.
    pub(crate) fn dropping_on_lag(mut self) -> Self {
        self.drop_on_lag = true;
        self
    }

    /// How many events were skipped since the last call.
    pub(crate) fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    /// The next committed event, or `None` once the audit writer has stopped.
    pub(crate) async fn next(&mut self) -> Result<Option<Followed>, FollowError> {
        loop {
            if let Some(next) = self.pending.pop_front() {
                return Ok(Some(next));
            }
            if self.catching_up {
                self.read_page().await?;
                continue;
            }
            match self.receiver.recv().await {
                Ok(event) if event.id <= self.cursor => continue,
                Ok(event) => {
                    self.cursor = event.id;
                    return Ok(Some(Followed::Live(event)));
                }
                Err(RecvError::Lagged(missed)) if self.drop_on_lag => self.dropped += missed,
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(
                        missed,
                        "audit follower lagged; reading the gap from the store"
                    );
                    self.catching_up = true;
                }
                Err(RecvError::Closed) => return Ok(None),
            }
        }
    }

    /// Reads the next page after the cursor from the store; an incomplete page ends the
    /// catch-up (what comes after it arrives through the broadcast, deduplicated by id).
    async fn read_page(&mut self) -> Result<(), FollowError> {
        let query = AuditQuery {
            after_id: Some(self.cursor),
            limit: Some(PAGE),
            ..self.query.clone()
        };
        let store = self.store.clone();
        let rows = tokio::task::spawn_blocking(move || store.audit_events(&query))
            .await
            .map_err(|e| FollowError(e.to_string()))??;
        if rows.len() < PAGE as usize {
            self.catching_up = false;
        }
        if let Some(last) = rows.last() {
            self.cursor = last.id;
        }
        self.pending
            .extend(rows.into_iter().map(|row| Followed::Stored(Box::new(row))));
        Ok(())
    }
}

/// A stored row as the committed event it was; `None` for a row this version cannot read.
pub(crate) fn stored_event(row: &AuditRow) -> Option<CommittedEvent> {
    let kind = EventKind::parse(&row.kind)?;
    let outcome = match row.outcome.as_str() {
        "success" => Outcome::Success,
        "failure" => Outcome::Failure,
        "denied" => Outcome::Denied,
        _ => return None,
    };
    let json = &row.event;
    let text = |key: &str| -> Option<Arc<str>> { json.get(key)?.as_str().map(Arc::from) };
    let mut event = AuditEvent::new(kind, outcome);
    event.at_ms = row.at_ms;
    event.reason = json
        .get("reason")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    event.invocation_id = text("invocation_id");
    event.app = text("app");
    event.function = text("function");
    event.version_id = text("version_id");
    event.identity = text("identity");
    event.caller = text("caller");
    event.trace_id = text("trace_id");
    event.span_id = text("span_id");
    event.parent_span_id = text("parent_span_id");
    if let Some(detail) = json.get("detail").and_then(|d| d.as_object()) {
        event.detail = Detail(
            detail
                .iter()
                .filter_map(|(key, value)| Some((intern(key)?, value.clone())))
                .collect(),
        );
    }
    Some(CommittedEvent { id: row.id, event })
}

/// Detail keys as the `&'static str`s events carry. The platform writes a fixed vocabulary, so
/// the set stays small; a store edited to hold endless new keys is capped, not obeyed.
fn intern(key: &str) -> Option<&'static str> {
    const MAX_KEYS: usize = 4096;
    static KEYS: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut keys = KEYS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(known) = keys.get(key) {
        return Some(known);
    }
    if keys.len() >= MAX_KEYS {
        return None;
    }
    let leaked: &'static str = Box::leak(key.to_string().into_boxed_str());
    keys.insert(leaked);
    Some(leaked)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A follower that falls more than the broadcast's capacity behind reads the gap from the
    /// store: every event once, in order.
    #[tokio::test]
    async fn a_follower_that_lags_reads_the_gap_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let audit = AuditLog::start(store.clone()).unwrap();
        audit
            .record(AuditEvent::new(EventKind::ServerStart, Outcome::Success))
            .await;
        audit.flush().await;
        let mut follower = Follower::start(&audit, store.clone(), None, AuditQuery::default())
            .await
            .unwrap();
        let mut dropping = Follower::start(&audit, store.clone(), None, AuditQuery::default())
            .await
            .unwrap()
            .dropping_on_lag();
        // More than the broadcast holds, recorded before anyone reads.
        let total = 70_000;
        for i in 0..total {
            audit
                .record(AuditEvent::new(EventKind::Deploy, Outcome::Success).detail("n", i))
                .await;
        }
        audit.flush().await;
        let mut previous = None;
        for i in 0..total {
            let event = follower.next().await.unwrap().unwrap();
            assert_eq!(event.kind(), "deploy");
            assert_eq!(event.to_json()["detail"]["n"], i, "event {i} out of place");
            if let Some(previous) = previous {
                assert!(event.id() > previous);
            }
            previous = Some(event.id());
        }
        // The dropping follower skipped what it missed, and says how much.
        let first = dropping.next().await.unwrap().unwrap();
        let skipped = dropping.take_dropped();
        assert!(skipped > 0);
        assert_eq!(first.to_json()["detail"]["n"], skipped);
    }

    #[test]
    fn a_stored_row_reads_back_as_the_event_it_was() {
        let event = AuditEvent::new(EventKind::Egress, Outcome::Success)
            .reason("allowed")
            .invocation("i-1")
            .function("shop", "checkout")
            .version("v1")
            .caller("anonymous")
            .detail("destination", "https://api.example.com")
            .detail("status", 200);
        let row = AuditRow {
            id: 42,
            at_ms: event.at_ms,
            kind: "egress".into(),
            invocation_id: Some("i-1".into()),
            app: Some("shop".into()),
            function: Some("checkout".into()),
            outcome: "success".into(),
            event: serde_json::to_value(&event).unwrap(),
        };
        let read = stored_event(&row).unwrap();
        assert_eq!(read.id, 42);
        assert_eq!(
            serde_json::to_value(&read.event).unwrap(),
            serde_json::to_value(&event).unwrap()
        );
        let unknown = AuditRow {
            kind: "no.such.kind".into(),
            ..row
        };
        assert!(stored_event(&unknown).is_none());
    }
}
