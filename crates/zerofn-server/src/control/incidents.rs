//! The control routes of the monitoring loop: incidents (list, show with evidence, resolve),
//! quarantines (list, release) and the loop's report.

use super::api::{IncidentDetail, IncidentsQuery, ReleaseRequest, ResolveIncidentRequest};
use super::handler::{Response, json, parse_body, parse_query};
use crate::platform::Platform;
use crate::problem::Problem;
use http::{Method, StatusCode};
use zerofn_store::{AuditQuery, IncidentQuery};

/// Handles `segments` if they are one of this module's routes.
pub(super) async fn handle(
    platform: &Platform,
    method: &Method,
    segments: &[&str],
    query: &str,
    body: &[u8],
    by: &str,
) -> Option<Result<Response, Problem>> {
    Some(match (method, segments) {
        (&Method::GET, ["v1", "incidents"]) => list(platform, query),
        (&Method::GET, ["v1", "incidents", id]) => show(platform, id).await,
        (&Method::POST, ["v1", "incidents", id, "resolve"]) => {
            resolve(platform, id, body, by).await
        }
        (&Method::GET, ["v1", "quarantines"]) => json(&platform.quarantined()),
        (&Method::POST, ["v1", "quarantines", "release"]) => release(platform, body, by).await,
        (&Method::GET, ["v1", "report"]) => {
            // Refusals recorded just before are counted.
            platform.audit().flush().await;
            platform
                .loop_report()
                .map_err(|e| Problem::from(crate::response::IncidentError::from(e)))
                .and_then(|report| json(&report))
        }
        _ => return None,
    })
}

fn list(platform: &Platform, query: &str) -> Result<Response, Problem> {
    let query: IncidentsQuery = parse_query(query)?;
    if let Some(status) = &query.status
        && status != "open"
        && status != "resolved"
    {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-control-request",
            "Malformed request",
            format!("`status` is `{status}`; use `open` or `resolved`"),
        ));
    }
    let incidents = platform
        .store()
        .incidents(&IncidentQuery {
            status: query.status,
            app: query.app,
            function: query.function,
            limit: None,
        })
        .map_err(|e| Problem::from(crate::response::IncidentError::from(e)))?;
    json(&incidents)
}

async fn show(platform: &Platform, id: &str) -> Result<Response, Problem> {
    let store = platform.store();
    let incident = store
        .incident(id)
        .map_err(crate::response::IncidentError::from)?
        .ok_or_else(|| {
            crate::response::IncidentError::from(zerofn_store::StoreError::UnknownIncident(
                id.to_string(),
            ))
        })?;
    platform.audit().flush().await;
    let mut evidence = Vec::new();
    for &event_id in &incident.evidence {
        let rows = store
            .audit_events(&AuditQuery {
                after_id: Some(event_id - 1),
                limit: Some(1),
                ..Default::default()
            })
            .map_err(crate::response::IncidentError::from)?;
        evidence.extend(rows.into_iter().filter(|row| row.id == event_id));
    }
    json(&IncidentDetail { incident, evidence })
}

async fn resolve(
    platform: &Platform,
    id: &str,
    body: &[u8],
    by: &str,
) -> Result<Response, Problem> {
    let request: ResolveIncidentRequest = parse_body(body)?;
    let incident = platform
        .resolve_incident(id, request.resolution, by, request.note.as_deref())
        .await?;
    json(&incident)
}

async fn release(platform: &Platform, body: &[u8], by: &str) -> Result<Response, Problem> {
    let request: ReleaseRequest = parse_body(body)?;
    let released = platform
        .release(&request.app, &request.function, by)
        .await?;
    json(&released)
}
