//! `GET /v1/audit/stream`: the audit stream live, as server-sent events, with filters.
//!
//! A stream first replays the committed events after `after_id` (or `Last-Event-ID`) from the
//! store, then sends live ones as they commit, with no gap and no duplicate (see
//! [`crate::committed`]). Each message is `id: <event id>`, `event: <kind>`,
//! `data: <event JSON>`; a comment every [`KEEP_ALIVE`] keeps proxies from closing an idle
//! stream and tells the stream when its client has gone. At most [`MAX_STREAMS`] streams are
//! open at once; a stream ends when its client leaves, when the server stops, and (remotely)
//! when the operator's session ends.

use super::body::ControlBody;
use crate::committed::{Followed, Follower};
use crate::platform::Platform;
use crate::problem::Problem;
use bytes::Bytes;
use http::StatusCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, watch};
use zerofn_audit::EventKind;
use zerofn_store::AuditQuery;

/// The most audit streams open at once on one server; beyond it, 503.
pub const MAX_STREAMS: usize = 64;
/// How often an idle stream sends a comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Chunks written ahead of a slow client before the stream waits for it (it then reads what
/// it missed from the store, so waiting never drops events).
const CHUNKS_AHEAD: usize = 16;
/// The most kinds one filter names (there are fewer kinds than this).
const MAX_KINDS: usize = 64;
/// The longest invocation id accepted as a filter.
const MAX_ID_LEN: usize = 128;

/// The open streams of one server: the bound on their number and the signal that ends them
/// at shutdown.
#[derive(Debug)]
pub struct AuditStreams {
    permits: Arc<Semaphore>,
    closed: watch::Sender<bool>,
}

impl Default for AuditStreams {
    fn default() -> Self {
        Self {
            permits: Arc::new(Semaphore::new(MAX_STREAMS)),
            closed: watch::channel(false).0,
        }
    }
}

impl AuditStreams {
    /// Ends every open stream and refuses new ones (at shutdown).
    pub fn close(&self) {
        self.permits.close();
        self.closed.send_replace(true);
    }

    /// How many streams are open now.
    pub fn open(&self) -> usize {
        MAX_STREAMS - self.permits.available_permits()
    }
}

/// Put in a request's extensions by the remote listener: the session's `Authorization`
/// header, checked again on every keep-alive so a stream ends with its session (expiry,
/// logout, operator removal).
#[derive(Clone)]
pub(crate) struct SessionCheck(pub Arc<dyn Fn() -> bool + Send + Sync>);

/// Which events a stream carries; every field given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamFilter {
    pub app: Option<String>,
    pub function: Option<String>,
    /// Any of these kinds (empty: every kind).
    pub kinds: Vec<EventKind>,
    pub outcome: Option<String>,
    pub trace_id: Option<String>,
    pub invocation_id: Option<String>,
    /// Replay committed events after this id first.
    pub after_id: Option<i64>,
}

impl StreamFilter {
    /// Reads the query string and the `Last-Event-ID` header. Every value is checked; a
    /// parameter that is unknown, repeated (but `kind`) or malformed is refused, naming it.
    pub fn parse(query: &str, last_event_id: Option<&[u8]>) -> Result<Self, Problem> {
        let mut filter = Self::default();
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let value = value.into_owned();
            match &*name {
                "app" => set_once(&mut filter.app, "app", label("app", value)?)?,
                "function" => {
                    set_once(&mut filter.function, "function", label("function", value)?)?
                }
                "kind" => {
                    for kind in value.split(',').map(str::trim) {
                        let kind = EventKind::parse(kind).ok_or_else(|| {
                            invalid(
                                "kind",
                                format!(
                                    "`{}` is not an event kind; the kinds are listed in docs/audit-events.md (e.g. `invocation.end`, `authz.decision`)",
                                    printable(kind)
                                ),
                            )
                        })?;
                        if !filter.kinds.contains(&kind) {
                            filter.kinds.push(kind);
                        }
                    }
                    if filter.kinds.len() > MAX_KINDS {
                        return Err(invalid("kind", "too many kinds".into()));
                    }
                }
                "outcome" => {
                    if !matches!(value.as_str(), "success" | "failure" | "denied") {
                        return Err(invalid(
                            "outcome",
                            format!(
                                "`{}` is not an outcome; use success, failure or denied",
                                printable(&value)
                            ),
                        ));
                    }
                    set_once(&mut filter.outcome, "outcome", value)?;
                }
                "trace_id" => {
                    let is_trace = value.len() == 32
                        && value
                            .bytes()
                            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
                    if !is_trace {
                        return Err(invalid(
                            "trace_id",
                            "a trace id is 32 lowercase hexadecimal digits (W3C Trace Context)"
                                .into(),
                        ));
                    }
                    set_once(&mut filter.trace_id, "trace_id", value)?;
                }
                "invocation_id" => {
                    let is_id = !value.is_empty()
                        && value.len() <= MAX_ID_LEN
                        && value.bytes().all(|b| {
                            b.is_ascii_alphanumeric() || matches!(b, b'-' | b':' | b'_' | b'.')
                        });
                    if !is_id {
                        return Err(invalid(
                            "invocation_id",
                            "an invocation id is a UUID as `x-zerofn-invocation-id` carries it"
                                .into(),
                        ));
                    }
                    set_once(&mut filter.invocation_id, "invocation_id", value)?;
                }
                "after_id" => {
                    let id = event_id("after_id", &value)?;
                    set_once(&mut filter.after_id, "after_id", id)?;
                }
                other => {
                    return Err(invalid(
                        "query",
                        format!(
                            "unknown parameter `{}`; use app, function, kind, outcome, trace_id, invocation_id or after_id",
                            printable(other)
                        ),
                    ));
                }
            }
        }
        if let Some(header) = last_event_id {
            let value = std::str::from_utf8(header)
                .map_err(|_| invalid("Last-Event-ID", "not an event id".into()))?;
            let id = event_id("Last-Event-ID", value.trim())?;
            // A reconnecting client's position wins over the query it first connected with:
            // it has seen everything up to it.
            filter.after_id = Some(filter.after_id.map_or(id, |after| after.max(id)));
        }
        if filter.function.is_some() && filter.app.is_none() {
            return Err(invalid(
                "function",
                "a function is named within its app: give `app` too".into(),
            ));
        }
        Ok(filter)
    }

    /// The filter as a query string for `/v1/audit/stream` (values percent-encoded).
    pub fn to_query(&self) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("app", &self.app),
            ("function", &self.function),
            ("outcome", &self.outcome),
            ("trace_id", &self.trace_id),
            ("invocation_id", &self.invocation_id),
        ] {
            if let Some(value) = value {
                query.append_pair(name, value);
            }
        }
        if !self.kinds.is_empty() {
            let kinds: Vec<&str> = self.kinds.iter().map(|k| k.as_str()).collect();
            query.append_pair("kind", &kinds.join(","));
        }
        if let Some(after) = self.after_id {
            query.append_pair("after_id", &after.to_string());
        }
        query.finish()
    }

    /// The part of the filter the store applies (`GET /v1/audit` takes it as it is); the
    /// rest (several kinds, the outcome) is [`StreamFilter::matches_row`]'s.
    pub fn store_query(&self) -> AuditQuery {
        AuditQuery {
            app: self.app.clone(),
            function: self.function.clone(),
            invocation_id: self.invocation_id.clone(),
            kind: match self.kinds.as_slice() {
                [one] => Some(one.as_str().to_string()),
                _ => None,
            },
            trace_id: self.trace_id.clone(),
            after_id: None,
            limit: None,
        }
    }

    /// Whether a stored event passes every filter.
    pub fn matches_row(&self, row: &zerofn_store::AuditRow) -> bool {
        self.matches(&Followed::Stored(Box::new(row.clone())))
    }

    /// Whether `event` passes every filter.
    pub(crate) fn matches(&self, event: &Followed) -> bool {
        let field = |name: &str, wanted: &Option<String>| {
            wanted
                .as_deref()
                .is_none_or(|wanted| event.field(name) == Some(wanted))
        };
        (self.kinds.is_empty() || self.kinds.iter().any(|k| k.as_str() == event.kind()))
            && self
                .outcome
                .as_deref()
                .is_none_or(|outcome| outcome == event.outcome())
            && field("app", &self.app)
            && field("function", &self.function)
            && field("trace_id", &self.trace_id)
            && field("invocation_id", &self.invocation_id)
    }
}

fn set_once<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), Problem> {
    if slot.is_some() {
        return Err(invalid(name, "given more than once".into()));
    }
    *slot = Some(value);
    Ok(())
}

fn label(name: &str, value: String) -> Result<String, Problem> {
    if zerofn_manifest::is_dns_label(&value) {
        Ok(value)
    } else {
        Err(invalid(
            name,
            format!(
                "`{}` is not an {name} name (lowercase letters, digits and `-`)",
                printable(&value)
            ),
        ))
    }
}

fn event_id(name: &str, value: &str) -> Result<i64, Problem> {
    value
        .parse::<i64>()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or_else(|| {
            invalid(
                name,
                format!(
                    "`{}` is not an event id (a non-negative integer, the `id:` of a message)",
                    printable(value)
                ),
            )
        })
}

/// A caller's text quoted back: at most 64 characters, control characters escaped.
fn printable(text: &str) -> String {
    text.chars().take(64).flat_map(char::escape_debug).collect()
}

fn invalid(parameter: &str, detail: String) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "audit-stream-filter-invalid",
        "Invalid audit stream filter",
        format!("`{parameter}`: {detail}"),
    )
    .with("parameter", parameter)
}

/// Opens a stream for `filter`: the response head now, the events from a task.
pub(crate) async fn open(
    platform: &Platform,
    filter: StreamFilter,
    session: Option<SessionCheck>,
) -> Result<hyper::Response<ControlBody>, Problem> {
    let streams = platform.audit_streams();
    let permit = streams.permits.clone().try_acquire_owned().map_err(|_| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit-streams-exhausted",
            "Too many audit streams",
            format!(
                "{MAX_STREAMS} audit streams are open on this server; close one, or read `GET /v1/audit?after_id=N` instead."
            ),
        )
        .retry_after(5)
    })?;
    let mut closed = streams.closed.subscribe();
    let follower = Follower::start(
        platform.audit(),
        platform.store().clone(),
        filter.after_id,
        filter.store_query(),
    )
    .await
    .map_err(|error| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal-error",
            "Internal error",
            error.to_string(),
        )
    })?;
    let (chunks, body) = mpsc::channel(CHUNKS_AHEAD);
    tokio::spawn(async move {
        let _permit = permit;
        let mut follower = follower;
        let mut ticks = tokio::time::interval(KEEP_ALIVE);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        if chunks
            .send(Bytes::from_static(b": open\n\n"))
            .await
            .is_err()
        {
            return;
        }
        loop {
            let chunk = tokio::select! {
                next = follower.next() => match next {
                    Ok(Some(event)) if filter.matches(&event) => message(&event),
                    Ok(Some(_)) => continue,
                    Ok(None) => return,
                    Err(error) => {
                        tracing::error!(%error, "audit stream ended");
                        return;
                    }
                },
                _ = ticks.tick() => {
                    if let Some(check) = &session {
                        let check = check.0.clone();
                        let valid = tokio::task::spawn_blocking(move || check())
                            .await
                            .unwrap_or(false);
                        if !valid {
                            let _ = chunks.send(Bytes::from_static(b": session ended\n\n")).await;
                            return;
                        }
                    }
                    Bytes::from_static(b": keep-alive\n\n")
                }
                _ = chunks.closed() => return,
                _ = closed.changed() => return,
            };
            if chunks.send(chunk).await.is_err() {
                return;
            }
        }
    });
    let mut response = hyper::Response::new(ControlBody::Stream(body));
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

/// One server-sent event. The data is one line: JSON escapes every newline in a string.
fn message(event: &Followed) -> Bytes {
    Bytes::from(format!(
        "id: {}\nevent: {}\ndata: {}\n\n",
        event.id(),
        event.kind(),
        event.to_json()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_read_and_checked() {
        let filter = StreamFilter::parse(
            "app=shop&function=orders&kind=invocation.end,egress&kind=egress&outcome=denied&after_id=7",
            None,
        )
        .unwrap();
        assert_eq!(filter.app.as_deref(), Some("shop"));
        assert_eq!(filter.kinds, [EventKind::InvocationEnd, EventKind::Egress]);
        assert_eq!(filter.after_id, Some(7));
        let resumed = StreamFilter::parse("after_id=7", Some(b"12")).unwrap();
        assert_eq!(resumed.after_id, Some(12));
        for (query, header, parameter) in [
            ("kind=invocation.ending", None, "kind"),
            ("outcome=maybe", None, "outcome"),
            ("app=Shop", None, "app"),
            ("app=a&app=b", None, "app"),
            ("function=f", None, "function"),
            ("trace_id=XYZ", None, "trace_id"),
            ("after_id=-1", None, "after_id"),
            ("invocation_id=a%20b", None, "invocation_id"),
            ("since=1", None, "query"),
            ("", Some(&b"abc"[..]), "Last-Event-ID"),
        ] {
            let problem = StreamFilter::parse(query, header).unwrap_err();
            assert_eq!(problem.status, StatusCode::BAD_REQUEST, "{query}");
            assert!(
                problem
                    .extra
                    .iter()
                    .any(|(k, v)| k == "parameter" && v == parameter),
                "{query}: {:?}",
                problem.extra
            );
        }
    }
}
