//! `GET /v1/apps/<app>/usage?since_ms=N`: what each function of an app did since a time, read
//! from the audit stream in the store (`zerofn_review::usage`), with the manifest of the version
//! that serves it, for `zerofn policy suggest`. Aggregated here so that a week of events never
//! crosses the socket, only what they add up to.

use super::handler::{Response, json};
use crate::platform::Platform;
use crate::problem::Problem;
use http::StatusCode;
use zerofn_review::usage::{KINDS, Usage};

/// Events read from the store per query while aggregating.
const PAGE: u32 = 10_000;

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
    let usage = tokio::task::spawn_blocking(move || app_usage(&store, &name, since_ms))
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

/// `since_ms`, the only parameter: milliseconds since the Unix epoch.
/// What `app`'s functions did since `since_ms` (all of the stored stream when `None`), read
/// from the store in pages of 10 000 events. CPU and disk bound: call it off the async workers.
pub fn app_usage(
    store: &zerofn_store::Store,
    app: &str,
    since_ms: Option<i64>,
) -> Result<Usage, zerofn_store::StoreError> {
    let mut usage = Usage::new(app.to_string(), since_ms);
    let mut after = 0;
    loop {
        let page = store.audit_app_window(app, KINDS, since_ms.unwrap_or(i64::MIN), after, PAGE)?;
        for (id, text) in &page {
            // The writer wrote every row from an `AuditEvent`; a row that no longer parses is
            // no evidence of use, and `zerofn audit verify` reports the tampering.
            if let Ok(event) = serde_json::from_str::<serde_json::Value>(text) {
                usage.record(Some(*id), &event);
            }
            after = *id;
        }
        if page.len() < PAGE as usize {
            return Ok(usage);
        }
    }
}

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
