//! Request handling of the control plane: decode, call the platform, encode. Every refusal is a
//! problem-details body.

use super::api::{AppListing, DeployRequest, InvokeRequest, InvokeResponse, RollbackRequest};
use super::body::ControlBody;
use crate::platform::{DeployBundle, Platform};
use crate::problem::Problem;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use std::convert::Infallible;
use zerofn_audit::{AuditEvent, EventKind, Outcome};
use zerofn_store::{AuditQuery, LogQuery};

pub(super) type Response = hyper::Response<ControlBody>;

/// The largest control request (a deploy bundle with its components, base64-encoded).
const MAX_CONTROL_BODY: usize = 256 << 20;

pub(crate) async fn handle(
    platform: &Platform,
    request: hyper::Request<Incoming>,
) -> Result<Response, Infallible> {
    let method = request.method().clone();
    let method_changes_state = method != Method::GET && method != Method::HEAD;
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let last_event_id = request
        .headers()
        .get("last-event-id")
        .map(|v| v.as_bytes().to_vec());
    let session = request
        .extensions()
        .get::<super::audit_stream::SessionCheck>()
        .cloned();
    let by = request
        .extensions()
        .get::<super::RemoteOperator>()
        .map_or_else(|| "local".to_string(), |o| format!("operator:{}", o.0));
    let body = match Limited::new(request.into_body(), MAX_CONTROL_BODY)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(error) => {
            return Ok(problem(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "control-body-unreadable",
                "Request body unreadable",
                error.to_string(),
            )));
        }
    };
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let result = match (method, segments.as_slice()) {
        (Method::GET, ["v1", "health"]) => json(&serde_json::json!({"status": "ok"})),
        (Method::GET, ["v1", "apps"]) => apps(platform),
        (Method::GET, ["v1", "apps", app, "versions"]) => platform
            .store()
            .versions(app)
            .map_err(|e| Problem::from(crate::DeployError::from(e)))
            .and_then(|v| json(&v)),
        (Method::POST, ["v1", "deploy"]) => deploy(platform, &body).await,
        (Method::POST, ["v1", "apps", app, "rollback"]) => rollback(platform, app, &body).await,
        (Method::POST, ["v1", "invoke"]) => invoke(platform, &body).await,
        (Method::POST, ["v1", "apps", app, "queues", queue]) => {
            match parse_body::<super::api::SendEventRequest>(&body) {
                Ok(request) => {
                    crate::triggers::queue::enqueue(platform, app, queue, request.event.as_bytes())
                        .await
                        .and_then(|enqueued| json(&enqueued))
                }
                Err(problem) => Err(problem),
            }
        }
        (Method::GET, ["v1", "apps", app, "queues", queue]) => queue_listing(platform, app, queue),
        (Method::POST, ["v1", "trust", "reload"]) => match platform.reload_trust().await {
            Ok(outcome) => json(&outcome),
            Err(error) => Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "trust-policy-invalid",
                "Trust policy invalid",
                format!("{error}; the previous policy stays in force"),
            )),
        },
        // `/metrics` is where Prometheus scrapers look by default.
        (Method::GET, ["v1", "metrics"] | ["metrics"]) => Ok(metrics(platform)),
        (Method::GET, ["v1", "jwks"]) => json(&platform.issuer().jwks()),
        (Method::GET, ["v1", "ca", "bundle"]) => json(&super::api::CaBundle {
            trust_domain: platform.ca().trust_domain().to_string(),
            bundle_pem: platform.ca().bundle_pem().to_string(),
        }),
        (Method::POST, ["v1", "ca", "issue"]) => match parse_body(&body) {
            Ok(request) => crate::certificates::issue_client_certificate(platform, request)
                .await
                .and_then(|issued| json(&issued)),
            Err(problem) => Err(problem),
        },
        (Method::POST, ["v1", "api-keys"]) => create_api_key(platform, &body).await,
        (Method::GET, ["v1", "api-keys"]) => parse_query::<super::api::ApiKeyQuery>(&query)
            .and_then(|query| {
                platform
                    .store()
                    .api_keys(&query.app)
                    .map_err(|e| Problem::from(crate::DeployError::from(e)))
            })
            .and_then(|keys| json(&keys)),
        (Method::POST, ["v1", "api-keys", id, "revoke"]) => {
            match platform.revoke_api_key(id).await {
                Ok(true) => json(&serde_json::json!({"revoked": id})),
                Ok(false) => Err(Problem::new(
                    StatusCode::NOT_FOUND,
                    "unknown-api-key",
                    "Unknown API key",
                    format!(
                        "There is no unrevoked API key `{id}` (see `zerofn api-key list APP`)."
                    ),
                )),
                Err(e) => Err(Problem::from(e)),
            }
        }
        // Enrollment is reachable on the local socket only: the remote listener maps no
        // action to these routes, so a stolen session cannot mint operators.
        (Method::GET, ["v1", "operators"]) => platform
            .store()
            .operators()
            .map_err(|e| Problem::from(crate::DeployError::from(e)))
            .and_then(|operators| json(&operators)),
        (Method::POST, ["v1", "operators"]) => enroll_operator(platform, &body).await,
        (Method::POST, ["v1", "operators", name, "remove"]) => {
            remove_operator(platform, name).await
        }
        (Method::GET, ["v1", "secrets"]) => match parse_query::<super::api::SecretsQuery>(&query) {
            Ok(query) => match platform.list_secrets(&query.app).await {
                Ok(records) => json(&records),
                Err(error) => Err(Problem::from(error)),
            },
            Err(problem) => Err(problem),
        },
        (Method::POST, ["v1", "secrets", action @ ("set" | "rotate")]) => {
            write_secret(platform, action, &body).await
        }
        (Method::POST, ["v1", "secrets", "delete"]) => {
            match parse_body::<super::api::SecretNameRequest>(&body) {
                Ok(request) => platform
                    .delete_secret(&request.app, &request.name)
                    .await
                    .map_err(|e| Problem::from(e).already_recorded())
                    .and_then(|deleted| json(&deleted)),
                Err(problem) => Err(problem),
            }
        }
        (Method::POST, ["v1", "secrets", "rotate-master"]) => platform
            .rotate_master_key()
            .await
            .map_err(|e| Problem::from(e).already_recorded())
            .and_then(|rotation| json(&rotation)),
        (Method::GET, ["v1", "logs"]) => logs(platform, &query).await,
        (Method::GET, ["v1", "audit"]) => audit(platform, &query).await,
        (Method::GET, ["v1", "apps", app, "usage"]) => {
            super::usage::usage(platform, app, &query).await
        }
        (Method::GET, ["v1", "traces", trace_id]) => trace(platform, trace_id).await,
        (Method::GET, ["v1", "audit", "verify"]) => audit_verify(platform, &query).await,
        (Method::GET, ["v1", "audit", "key"]) => audit_key(platform),
        (Method::GET, ["v1", "audit", "stream"]) => {
            match super::audit_stream::StreamFilter::parse(&query, last_event_id.as_deref()) {
                Ok(filter) => super::audit_stream::open(platform, filter, session).await,
                Err(problem) => Err(problem),
            }
        }
        (method, segments @ ["v1", "incidents" | "quarantines" | "report", ..]) => {
            match super::incidents::handle(platform, &method, segments, &query, &body, &by).await {
                Some(result) => result,
                None => Err(unknown_endpoint(&path)),
            }
        }
        _ => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "unknown-control-endpoint",
            "Unknown control endpoint",
            format!("{path} is not part of the control API (see docs/cli.md)."),
        )),
    };
    let response = match result {
        Ok(response) => response,
        Err(refusal) => {
            if !refusal.recorded {
                platform
                    .audit()
                    .record(
                        AuditEvent::new(EventKind::ControlRefused, Outcome::Denied)
                            .reason(refusal.code.clone())
                            .detail("path", path.clone())
                            .detail("status", refusal.status.as_u16()),
                    )
                    .await;
            }
            problem(refusal)
        }
    };
    // An operator's action is acknowledged only once its audit events are committed: a crash
    // after the answer cannot lose the record of what was done (or refused).
    if method_changes_state {
        platform.audit().flush().await;
    }
    Ok(response)
}

impl From<crate::DeployError> for Problem {
    fn from(error: crate::DeployError) -> Self {
        let json = error.to_json();
        let mut problem = Problem::new(
            error.status(),
            error.code().to_string(),
            "Refused",
            error.to_string(),
        );
        for member in ["diagnostics", "findings"] {
            if let Some(value) = json.get(member) {
                problem = problem.with(member, value.clone());
            }
        }
        problem
    }
}

fn queue_listing(platform: &Platform, app: &str, queue: &str) -> Result<Response, Problem> {
    let store = platform.store();
    let read = |dead| {
        store
            .queue_messages(app, queue, dead)
            .map_err(|e| Problem::from(crate::DeployError::from(e)))
    };
    json(&super::api::QueueListing {
        app: app.to_string(),
        queue: queue.to_string(),
        consumer: crate::triggers::queue::consumer(platform, app, queue)
            .map(|f| f.name.to_string()),
        pending: read(false)?,
        dead: read(true)?,
    })
}

fn apps(platform: &Platform) -> Result<Response, Problem> {
    let routes = platform.routes();
    let summaries = platform
        .store()
        .apps()
        .map_err(|e| Problem::from(crate::DeployError::from(e)))?;
    let listing: Vec<AppListing> = summaries
        .into_iter()
        .map(|summary| {
            let active = routes
                .app(&summary.app)
                .filter(|a| a.version_id == summary.active_version_id);
            AppListing {
                serving: active.is_some(),
                functions: active
                    .map(|a| a.functions.iter().map(|f| f.summary()).collect())
                    .unwrap_or_default(),
                app: summary.app,
                app_version: summary.app_version,
                active_version_id: summary.active_version_id,
                activated_ms: summary.activated_ms,
            }
        })
        .collect();
    json(&listing)
}

async fn deploy(platform: &Platform, body: &[u8]) -> Result<Response, Problem> {
    let request: DeployRequest = parse_body(body)?;
    let mut components = std::collections::BTreeMap::new();
    for (function, encoded) in request.components {
        let bytes = BASE64.decode(encoded.as_bytes()).map_err(|e| {
            bad_request(format!(
                "component of `{function}` is not valid base64: {e}"
            ))
        })?;
        components.insert(function, bytes);
    }
    let mut files = zerofn_manifest::AttachedFiles::new();
    for (path, encoded) in request.files {
        let bytes = BASE64
            .decode(encoded.as_bytes())
            .map_err(|e| bad_request(format!("file `{path}` is not valid base64: {e}")))?;
        files.insert(path, bytes);
    }
    let report = platform
        .deploy(DeployBundle {
            manifest_path: request.manifest_path,
            manifest: request.manifest,
            components,
            attestations: request.attestations,
            files,
        })
        .await
        .map_err(|e| Problem::from(e).already_recorded())?;
    json(&report)
}

async fn create_api_key(platform: &Platform, body: &[u8]) -> Result<Response, Problem> {
    let request: super::api::CreateApiKeyRequest = parse_body(body)?;
    if !zerofn_manifest::is_dns_label(&request.app) {
        return Err(bad_request(format!("`{}` is not an app name", request.app)));
    }
    if request.functions.is_empty()
        || request
            .functions
            .iter()
            .any(|f| f != "*" && !zerofn_manifest::is_dns_label(f))
    {
        return Err(bad_request(
            "`functions` must name functions of the app, or be [\"*\"] for all".into(),
        ));
    }
    let (record, key) = platform
        .create_api_key(
            &request.app,
            request.functions,
            &request.name,
            request.expires_in_secs.map(std::time::Duration::from_secs),
        )
        .await
        .map_err(Problem::from)?;
    json(&super::api::CreatedApiKey { key, record })
}

async fn write_secret(platform: &Platform, action: &str, body: &[u8]) -> Result<Response, Problem> {
    let request: super::api::SecretValueRequest = parse_body(body)?;
    let value = zeroize::Zeroizing::new(
        BASE64
            .decode(request.value_base64.as_bytes())
            .map_err(|_| bad_request("`value_base64` is not valid base64".into()))?,
    );
    let write = if action == "rotate" {
        zerofn_store::SecretWrite::Rotate
    } else {
        zerofn_store::SecretWrite::Create
    };
    let record = platform
        .write_secret(&request.app, &request.name, write, value)
        .await
        .map_err(|e| Problem::from(e).already_recorded())?;
    json(&record)
}

async fn enroll_operator(platform: &Platform, body: &[u8]) -> Result<Response, Problem> {
    let request: super::api::EnrollOperatorRequest = parse_body(body)?;
    let role: zerofn_policy::Role = request.role.parse().map_err(bad_request)?;
    let enrolled = platform
        .operators()
        .enroll(&request.name, role, &request.public_key)
        .map_err(|error| {
            let status = match error {
                crate::operators::OperatorError::Exists(_) => StatusCode::CONFLICT,
                crate::operators::OperatorError::Store(_)
                | crate::operators::OperatorError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            };
            Problem::new(
                status,
                "operator-not-enrolled",
                "Operator not enrolled",
                error.to_string(),
            )
        })?;
    platform
        .audit()
        .record(
            AuditEvent::new(EventKind::CredentialChange, Outcome::Success)
                .reason("operator-enrolled")
                .detail("operator", enrolled.operator.name.clone())
                .detail("role", enrolled.operator.role.clone()),
        )
        .await;
    json(&enrolled)
}

async fn remove_operator(platform: &Platform, name: &str) -> Result<Response, Problem> {
    let removed = platform
        .operators()
        .remove(name)
        .map_err(|e| internal(e.to_string()))?;
    if !removed {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "unknown-operator",
            "Unknown operator",
            format!("There is no operator `{name}` (see `zerofn operator list`)."),
        ));
    }
    platform
        .audit()
        .record(
            AuditEvent::new(EventKind::CredentialChange, Outcome::Success)
                .reason("operator-removed")
                .detail("operator", name.to_string()),
        )
        .await;
    json(&serde_json::json!({"removed": name}))
}

async fn rollback(platform: &Platform, app: &str, body: &[u8]) -> Result<Response, Problem> {
    let request: RollbackRequest = if body.is_empty() {
        RollbackRequest::default()
    } else {
        parse_body(body)?
    };
    let report = platform
        .rollback(app, request.to.as_deref())
        .await
        .map_err(|e| Problem::from(e).already_recorded())?;
    json(&report)
}

async fn invoke(platform: &Platform, body: &[u8]) -> Result<Response, Problem> {
    let request: InvokeRequest = parse_body(body)?;
    let routes = platform.routes();
    if routes
        .app(&request.app)
        .is_some_and(|app| app.suspended.is_some())
    {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "version-suspended",
            "Version suspended",
            format!(
                "App `{}` is suspended (see `zerofn apps` and the audit stream); redeploy or roll back.",
                request.app
            ),
        ));
    }
    let function = routes
        .app(&request.app)
        .and_then(|app| app.functions.iter().find(|f| *f.name == *request.function))
        .cloned()
        .ok_or_else(|| {
            Problem::new(
                StatusCode::NOT_FOUND,
                "unknown-function",
                "Unknown function",
                format!(
                    "App `{}` has no serving function `{}` (see `zerofn apps`).",
                    request.app, request.function
                ),
            )
        })?;
    let body = BASE64
        .decode(request.body_base64.as_bytes())
        .map_err(|e| bad_request(format!("body_base64 is not valid base64: {e}")))?;
    let mut builder = hyper::Request::builder()
        .method(request.method.as_str())
        .uri(request.path.as_str());
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    if !request
        .headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        builder = builder.header(http::header::HOST, "localhost");
    }
    let mut guest_request = builder
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| bad_request(format!("invalid request: {e}")))?;
    // The operator is trusted to call any function, but not to speak for the platform.
    crate::calls::remove_reserved_headers(guest_request.headers_mut());
    // The operator's request may continue a trace of theirs (`traceparent` among the headers).
    let origin = crate::correlation::Origin::from_headers(
        uuid::Uuid::now_v7().to_string(),
        crate::correlation::OPERATOR,
        guest_request.headers(),
    );
    let invocation_id = origin.invocation_id.to_string();
    let response = platform.invoke(&function, origin, guest_request).await;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|_| {
            // A body cut off (at its cap, or by the deadline) is not a response to hand back
            // as if it were whole.
            Problem::new(
                StatusCode::BAD_GATEWAY,
                "response-incomplete",
                "Response incomplete",
                format!(
                    "The function's response body did not complete (size cap or deadline); see invocation {invocation_id} in the audit stream."
                ),
            )
            .with("invocation_id", invocation_id.clone())
        })?;
    json(&InvokeResponse {
        invocation_id,
        status,
        headers,
        body_base64: BASE64.encode(&body),
    })
}

async fn logs(platform: &Platform, query: &str) -> Result<Response, Problem> {
    let query: LogQuery = parse_query(query)?;
    // Guest output is written by the audit writer; flushing first makes a just-finished
    // invocation's lines visible.
    platform.audit().flush().await;
    let rows = platform
        .store()
        .logs(&query)
        .map_err(crate::DeployError::from)?;
    json(&rows)
}

async fn audit(platform: &Platform, query: &str) -> Result<Response, Problem> {
    let query: AuditQuery = parse_query(query)?;
    platform.audit().flush().await;
    let rows = platform
        .store()
        .audit_events(&query)
        .map_err(crate::DeployError::from)?;
    json(&rows)
}

/// The causal tree of one trace (see [`crate::traces`]).
async fn trace(platform: &Platform, trace_id: &str) -> Result<Response, Problem> {
    if !crate::traces::is_trace_id(trace_id) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-trace-id",
            "Invalid trace id",
            format!(
                "`{}` is not a trace id: a W3C trace id is 32 lowercase hexadecimal digits, not all zero (the second field of a `traceparent` header)",
                trace_id.chars().take(64).collect::<String>()
            ),
        ));
    }
    platform.audit().flush().await;
    let rows = platform
        .store()
        .audit_events(&AuditQuery {
            trace_id: Some(trace_id.to_string()),
            limit: Some(crate::traces::MAX_EVENTS),
            ..Default::default()
        })
        .map_err(crate::DeployError::from)?;
    match crate::traces::build(trace_id, &rows) {
        Some(tree) => json(&tree),
        None => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "unknown-trace",
            "Unknown trace",
            format!(
                "No audit event belongs to trace {trace_id}: check the id (the `traceparent` response header carries it), or the events may not have been recorded on this node."
            ),
        )),
    }
}

/// `GET /v1/audit/verify`: walks the stored chain (off the async workers: it reads every
/// event) and reports every break. A broken chain is an answer, not a refusal; it is also
/// recorded, so that the finding itself is in the stream.
async fn audit_verify(platform: &Platform, query: &str) -> Result<Response, Problem> {
    let query: super::api::AuditVerifyQuery = parse_query(query)?;
    let keys = match query.key {
        Some(pem) => vec![
            zerofn_signing::PublicKey::from_pem(&pem)
                .map_err(|e| bad_request(format!("`key` is not a public key: {e}")))?,
        ],
        None => platform
            .audit()
            .checkpoint_key()
            .cloned()
            .into_iter()
            .collect(),
    };
    platform.audit().flush().await;
    let store = platform.store().clone();
    let report = tokio::task::spawn_blocking(move || zerofn_audit::verify(&store, &keys))
        .await
        .map_err(|e| internal(e.to_string()))?
        .map_err(crate::DeployError::from)?;
    if let Some(first) = report.findings.first() {
        platform
            .audit()
            .record(
                AuditEvent::new(EventKind::IntegrityFailure, Outcome::Failure)
                    .reason("audit-chain-broken")
                    .detail(
                        "findings",
                        report.findings.len() as u64 + report.findings_omitted,
                    )
                    .detail("first_id", first.id)
                    .detail("first_kind", first.kind.as_str()),
            )
            .await;
    }
    json(&report)
}

/// `GET /v1/audit/key`: the public key checkpoints are signed with, for verifiers to keep.
fn audit_key(platform: &Platform) -> Result<Response, Problem> {
    let key = platform.audit().checkpoint_key().ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "no-checkpoint-key",
            "No checkpoint key",
            "This server signs no audit checkpoints.".into(),
        )
    })?;
    json(&super::api::AuditKey {
        key_id: key.key_id(),
        algorithm: key.algorithm().as_str().to_string(),
        public_key_pem: key.to_pem(),
    })
}

pub(super) fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice(body).map_err(|e| bad_request(format!("malformed JSON body: {e}")))
}

pub(super) fn parse_query<T: serde::de::DeserializeOwned>(query: &str) -> Result<T, Problem> {
    let pairs: serde_json::Map<String, serde_json::Value> =
        url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| {
                let value = match v.parse::<i64>() {
                    Ok(n) if k == "after_id" || k == "limit" => serde_json::Value::from(n),
                    _ => serde_json::Value::from(v.into_owned()),
                };
                (k.into_owned(), value)
            })
            .collect();
    serde_json::from_value(serde_json::Value::Object(pairs))
        .map_err(|e| bad_request(format!("malformed query: {e}")))
}

fn unknown_endpoint(path: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "unknown-control-endpoint",
        "Unknown control endpoint",
        format!("{path} is not part of the control API (see docs/cli.md)."),
    )
}

fn bad_request(detail: String) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "malformed-control-request",
        "Malformed request",
        detail,
    )
}

/// `GET /v1/metrics` and `GET /metrics`: the OpenMetrics text exposition.
fn metrics(platform: &Platform) -> Response {
    let mut response =
        hyper::Response::new(ControlBody::from(Bytes::from(platform.metrics().encode())));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    response
}

pub(super) fn internal(detail: String) -> Problem {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal-error",
        "Internal error",
        detail,
    )
}

pub(super) fn json<T: Serialize>(value: &T) -> Result<Response, Problem> {
    let body = serde_json::to_vec(value).map_err(|e| internal(e.to_string()))?;
    let mut response = hyper::Response::new(ControlBody::from(Bytes::from(body)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

pub(super) fn problem(problem: Problem) -> Response {
    let status = problem.status;
    let retry_after = problem.retry_after_secs;
    let mut response = hyper::Response::new(ControlBody::from(Bytes::from(
        problem.to_json().to_string(),
    )));
    *response.status_mut() = status;
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
    }
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/problem+json"),
    );
    response
}
