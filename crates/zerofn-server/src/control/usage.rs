//! `GET /v1/apps/<app>/usage?since_ms=N`: what each function of an app did since a time, read
//! from the audit stream in the store (`zerofn_review::usage`), with the manifest of the version
//! that serves it, for `zerofn policy suggest`. Aggregated here so that a week of events never
//! crosses the socket, only what they add up to.

use super::handler::{Response, json};
use crate::platform::Platform;
use crate::problem::Problem;
use http::StatusCode;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use zerofn_review::usage::{KINDS, Usage};

/// Events read from the store per query while aggregating.
pub const USAGE_PAGE: u32 = 10_000;
/// Ids one query may walk: about 20 ms of the store's time (BENCHMARKS.md), so invocations
/// writing through the same connection wait at most that long for a usage read.
pub const USAGE_SLICE_ROWS: i64 = 50_000;
/// Usage reads running at once. Each is one pass over the app's window of the stream on a
/// thread of the blocking pool (about a second per 600 000 events, BENCHMARKS.md), started by
/// whoever may read the audit stream: more at once would only share the same disk and CPUs
/// with the functions being served.
pub const MAX_USAGE_READS: usize = 1;

/// The bound on usage reads running at once.
#[derive(Debug)]
pub struct UsageReads(Arc<Semaphore>);

impl Default for UsageReads {
    fn default() -> Self {
        Self(Arc::new(Semaphore::new(MAX_USAGE_READS)))
    }
}

impl UsageReads {
    /// A slot for one read, held until the read ends (even if its client has gone), or the
    /// refusal to send when every slot is taken.
    pub(crate) fn start(&self) -> Result<OwnedSemaphorePermit, Problem> {
        self.0.clone().try_acquire_owned().map_err(|_| {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "usage-read-in-progress",
                "Another usage read is running",
                format!(
                    "At most {MAX_USAGE_READS} usage read(s) run at once, each a pass over an app's window of the audit stream; retry when it ends, or narrow the window (`--since`)."
                ),
            )
            .retry_after(5)
        })
    }
}

/// The answer: the usage, and the active version's manifest to judge it against.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AppUsage {
    pub app: String,
    pub version_id: String,
    /// The active version's manifest, as deployed.
    pub manifest: String,
    pub usage: Usage,
}

pub(super) async fn usage(
    platform: &Platform,
    app: &str,
    query: &str,
) -> Result<Response, Problem> {
    let since_ms = since(query)?;
    let store = platform.store().clone();
    let version = store
        .active_version(app)
        .map_err(crate::DeployError::from)?
        .ok_or_else(|| {
            Problem::new(
                StatusCode::NOT_FOUND,
                "unknown-app",
                "Unknown app",
                format!(
                    "No version of app `{}` was ever deployed on this node: check the name with `zerofn apps`.",
                    app.chars().take(64).collect::<String>()
                ),
            )
        })?;
    platform.audit().flush().await;
    let name = app.to_string();
    let slot = platform.usage_reads().start()?;
    let usage = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        app_usage(&store, &name, since_ms)
    })
    .await
    .map_err(|e| super::handler::internal(e.to_string()))?
    .map_err(crate::DeployError::from)?;
    json(&AppUsage {
        app: app.to_string(),
        version_id: version.version_id,
        manifest: version.manifest,
        usage,
    })
}

/// Hands each stored event of `app` of the kinds usage counts ([`KINDS`]), created at or after
/// `since_ms`, to `each` as `(id, event JSON)` in stream order, up to the last event stored when
/// it starts. The stream is read in slices of [`USAGE_SLICE_ROWS`] ids, each in pages of
/// [`USAGE_PAGE`] events, so that no query holds the store's connection (which invocations
/// write through) for long, however sparse the app's events.
pub fn each_usage_row(
    store: &zerofn_store::Store,
    app: &str,
    since_ms: Option<i64>,
    mut each: impl FnMut(i64, &str),
) -> Result<(), zerofn_store::StoreError> {
    let Some(head) = store.audit_tail()?.last_id else {
        return Ok(());
    };
    let since = since_ms.unwrap_or(i64::MIN);
    let mut sliced = 0;
    while sliced < head {
        let through = sliced.saturating_add(USAGE_SLICE_ROWS).min(head);
        let mut after = sliced;
        loop {
            let page = store.audit_app_window(app, KINDS, since, after, through, USAGE_PAGE)?;
            let Some((last, _)) = page.last() else {
                break;
            };
            after = *last;
            for (id, text) in &page {
                each(*id, text);
            }
        }
        sliced = through;
    }
    Ok(())
}

/// What `app`'s functions did since `since_ms` (all of the stored stream when `None`), read by
/// [`each_usage_row`]. CPU and disk bound: call it off the async workers.
pub fn app_usage(
    store: &zerofn_store::Store,
    app: &str,
    since_ms: Option<i64>,
) -> Result<Usage, zerofn_store::StoreError> {
    let mut usage = Usage::new(app.to_string(), since_ms);
    each_usage_row(store, app, since_ms, |id, text| {
        // The writer wrote every row from an `AuditEvent`; a row that no longer parses is no
        // evidence of use, and `zerofn audit verify` reports the tampering.
        if let Ok(event) = serde_json::from_str::<serde_json::Value>(text) {
            usage.record(Some(id), &event);
        }
    })?;
    Ok(usage)
}

/// `since_ms`, the only parameter: milliseconds since the Unix epoch.
fn since(query: &str) -> Result<Option<i64>, Problem> {
    let mut since = None;
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let refuse = |detail: String| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "usage-query-invalid",
                "Invalid usage query",
                detail,
            )
        };
        match name.as_ref() {
            "since_ms" if since.is_none() => {
                since = Some(value.parse::<i64>().map_err(|_| {
                    refuse("`since_ms` is milliseconds since the Unix epoch, an integer".into())
                })?);
            }
            "since_ms" => return Err(refuse("`since_ms` is given twice".into())),
            other => {
                return Err(refuse(format!(
                    "unknown parameter `{}`: the only one is `since_ms`",
                    other.chars().take(64).collect::<String>()
                )));
            }
        }
    }
    Ok(since)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_read_is_refused_while_one_runs_and_admitted_after() {
        let reads = UsageReads::default();
        let running = reads.start().map_err(|p| p.code).unwrap_or_else(|code| {
            panic!("the first read was refused: {code}");
        });
        let refused = match reads.start() {
            Ok(_) => panic!("two reads ran at once"),
            Err(problem) => problem,
        };
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.code, "usage-read-in-progress");
        assert_eq!(refused.retry_after_secs, Some(5));
        assert!(refused.detail.contains("--since"), "{}", refused.detail);
        drop(running);
        assert!(reads.start().is_ok(), "the slot is free once the read ends");
    }

    #[test]
    fn the_window_is_one_integer_given_once() {
        assert_eq!(since("").map_err(|p| p.code).ok(), Some(None));
        assert_eq!(
            since("since_ms=1700000000000").map_err(|p| p.code).ok(),
            Some(Some(1_700_000_000_000))
        );
        for bad in ["since_ms=7d", "since_ms=1&since_ms=2", "app=shop"] {
            let code = since(bad).err().map(|p| p.code);
            assert_eq!(code.as_deref(), Some("usage-query-invalid"), "{bad}");
        }
    }
}
