//! The monitor: the task that closes the loop. It follows the committed audit stream (reading
//! what it missed from the store when it falls behind), feeds every event to the detectors and
//! opens an incident, with its automatic response, for each detection.
//!
//! **Invariant:** what the response loop itself causes (incidents, quarantines, releases,
//! revocations, alerts, its rollbacks, the refusals and stops a quarantine produces) is never
//! fed back to the detectors, so a response cannot trigger further responses.

use crate::platform::Platform;
use crate::response::MONITOR_CALLER;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::{broadcast, watch};
use zerofn_audit::{AuditEvent, CommittedEvent, Detail, EventKind, Outcome};
use zerofn_detect::{Detection, Detectors};
use zerofn_store::{AuditQuery, AuditRow};

/// How many recent events rebuild the detectors' baselines at start.
const HISTORY_EVENTS: u32 = 10_000;
/// Events read from the store per page when catching up after falling behind.
const CATCH_UP_PAGE: u32 = 10_000;

/// The monitor, subscribed to the stream; [`Monitor::run`] drives it.
pub(crate) struct Monitor {
    platform: Arc<Platform>,
    events: broadcast::Receiver<Arc<CommittedEvent>>,
    detectors: Detectors,
    /// The id of the last event fed to the detectors.
    last_id: i64,
}

impl Monitor {
    /// Remembers where the stored history ends, then subscribes to the committed stream; what
    /// is committed between the two is read from the store when [`Monitor::run`] starts.
    ///
    /// Fails only on thresholds `[detection]` should have refused already.
    pub(crate) fn start(
        platform: Arc<Platform>,
        detection: zerofn_detect::DetectorConfig,
    ) -> Result<Self, zerofn_detect::ConfigError> {
        let last_id = platform
            .store()
            .audit_events(&AuditQuery {
                limit: Some(1),
                ..Default::default()
            })
            .ok()
            .and_then(|rows| rows.last().map(|row| row.id))
            .unwrap_or(0);
        let events = platform.audit().subscribe();
        Ok(Self {
            platform,
            events,
            detectors: Detectors::with_config(detection)?,
            last_id,
        })
    }

    /// Runs until the server stops.
    pub(crate) async fn run(mut self, mut stopped: watch::Receiver<bool>) {
        self.learn_history();
        self.catch_up();
        loop {
            tokio::select! {
                received = self.events.recv() => match received {
                    Ok(event) => self.observe(&event),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "monitor fell behind the audit stream; reading the gap from the store");
                        self.catch_up();
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = stopped.changed() => {
                    if *stopped.borrow() {
                        return;
                    }
                }
            }
        }
    }

    /// Rebuilds the baselines from the stored history, without opening incidents for it.
    fn learn_history(&mut self) {
        let history = match self.platform.store().audit_events(&AuditQuery {
            limit: Some(HISTORY_EVENTS),
            ..Default::default()
        }) {
            Ok(rows) => rows,
            Err(error) => {
                tracing::error!(%error, "monitor: stored history not read; baselines start empty");
                return;
            }
        };
        for row in history.iter().filter(|row| row.id <= self.last_id) {
            if let Some(event) = committed(row)
                && !caused_by_response(&event.event)
            {
                self.detectors.learn(&event);
            }
        }
    }

    /// Reads every event after the last one seen from the store, in pages, and observes them.
    fn catch_up(&mut self) {
        loop {
            let page = match self.platform.store().audit_events(&AuditQuery {
                after_id: Some(self.last_id),
                limit: Some(CATCH_UP_PAGE),
                ..Default::default()
            }) {
                Ok(page) => page,
                Err(error) => {
                    tracing::error!(%error, "monitor: the gap could not be read from the store");
                    return;
                }
            };
            let Some(last) = page.last().map(|row| row.id) else {
                return;
            };
            for row in &page {
                match committed(row) {
                    Some(event) => self.observe(&Arc::new(event)),
                    None => self.last_id = self.last_id.max(row.id),
                }
            }
            self.last_id = self.last_id.max(last);
        }
    }

    /// Feeds one event to the detectors (once: events already read from the store are
    /// skipped) and responds to what they find.
    fn observe(&mut self, event: &Arc<CommittedEvent>) {
        if event.id <= self.last_id {
            return;
        }
        self.last_id = event.id;
        if caused_by_response(&event.event) {
            return;
        }
        for detection in self.detectors.observe(event) {
            self.respond(detection);
        }
    }

    /// Opens the incident in its own task: a rollback or a slow store never holds up detection.
    fn respond(&self, detection: Detection) {
        let platform = self.platform.clone();
        tokio::spawn(async move {
            let detector = detection.detector;
            if let Err(error) = platform.open_incident(detection).await {
                tracing::error!(%error, detector, "incident not opened");
            }
        });
    }
}

/// Whether the response loop caused `event` (directly, or as the immediate consequence of a
/// quarantine or revocation).
pub(crate) fn caused_by_response(event: &AuditEvent) -> bool {
    let reason = event.reason.as_deref();
    match event.kind {
        EventKind::IncidentOpened
        | EventKind::IncidentResolved
        | EventKind::Quarantine
        | EventKind::Release
        | EventKind::LeaseRevoked
        | EventKind::Alert => true,
        EventKind::RequestRefused => reason == Some("function-quarantined"),
        EventKind::InvocationEnd => reason == Some("stopped"),
        EventKind::SecretRead => reason == Some("lease-revoked"),
        _ => event.caller.as_deref() == Some(MONITOR_CALLER),
    }
}

/// A stored row as the committed event it was; `None` for a row this version cannot read.
fn committed(row: &AuditRow) -> Option<CommittedEvent> {
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
        let read = committed(&row).unwrap();
        assert_eq!(read.id, 42);
        assert_eq!(
            serde_json::to_value(&read.event).unwrap(),
            serde_json::to_value(&event).unwrap()
        );
        let unknown = AuditRow {
            kind: "no.such.kind".into(),
            ..row
        };
        assert!(committed(&unknown).is_none());
    }

    #[test]
    fn what_the_response_causes_is_not_observed() {
        let own = [
            AuditEvent::new(EventKind::Quarantine, Outcome::Success),
            AuditEvent::new(EventKind::Alert, Outcome::Failure),
            AuditEvent::new(EventKind::RequestRefused, Outcome::Denied)
                .reason("function-quarantined"),
            AuditEvent::new(EventKind::InvocationEnd, Outcome::Failure).reason("stopped"),
            AuditEvent::new(EventKind::SecretRead, Outcome::Denied).reason("lease-revoked"),
            AuditEvent::new(EventKind::Rollback, Outcome::Success).caller(MONITOR_CALLER),
        ];
        for event in own {
            assert!(caused_by_response(&event), "{event:?}");
        }
        let theirs = [
            AuditEvent::new(EventKind::Rollback, Outcome::Success).caller("operator:alice"),
            AuditEvent::new(EventKind::RequestRefused, Outcome::Denied).reason("no-route"),
            AuditEvent::new(EventKind::InvocationEnd, Outcome::Failure).reason("timeout"),
            AuditEvent::new(EventKind::EgressDenied, Outcome::Denied),
        ];
        for event in theirs {
            assert!(!caused_by_response(&event), "{event:?}");
        }
    }
}
