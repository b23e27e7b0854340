//! The remote control plane: the same control handler as the Unix socket, over TLS 1.3 on
//! TCP, behind operator authentication (login endpoints, then a bearer session) and a Cedar
//! decision per request. Only the login endpoints are reachable without a session; every other
//! route is a named control action or is denied.

use super::api::{LoginChallenge, LoginChallengeRequest, LoginRequest};
use super::handler::{self, Response};
use crate::operators::CHALLENGE_TTL;
use crate::platform::Platform;
use crate::problem::Problem;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use zerofn_audit::{AuditEvent, EventKind, Outcome};

/// The largest login request body.
const MAX_LOGIN_BODY: usize = 16 << 10;
/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The control action a request is, by method and path; `None` for every route that is not
/// one (denied). Operator enrollment has no action: it is local-socket only.
pub fn control_action(method: &Method, path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    Some(match (method, segments.as_slice()) {
        (&Method::GET, ["v1", "health"])
        | (&Method::GET, ["v1", "apps"])
        | (&Method::GET, ["v1", "apps", _, "versions"])
        | (&Method::GET, ["v1", "metrics"])
        | (&Method::GET, ["metrics"])
        | (&Method::GET, ["v1", "jwks"])
        | (&Method::GET, ["v1", "logs"])
        | (&Method::GET, ["v1", "api-keys"])
        | (&Method::GET, ["v1", "secrets"])
        | (&Method::GET, ["v1", "apps", _, "queues", _])
        | (&Method::GET, ["v1", "ca", "bundle"]) => "control.read",
        (&Method::GET, ["v1", "audit"])
        | (&Method::GET, ["v1", "apps", _, "usage"])
        | (&Method::GET, ["v1", "audit", "verify" | "key" | "stream"])
        | (&Method::GET, ["v1", "traces", _]) => "control.audit.read",
        (&Method::POST, ["v1", "ca", "issue"]) => "control.ca.issue",
        (&Method::POST, ["v1", "deploy"]) => "control.deploy",
        (&Method::POST, ["v1", "apps", _, "rollback"]) => "control.rollback",
        (&Method::POST, ["v1", "invoke"]) => "control.invoke",
        (&Method::POST, ["v1", "apps", _, "queues", _]) => "control.queue.send",
        (&Method::POST, ["v1", "trust", "reload"]) => "control.trust.reload",
        (&Method::POST, ["v1", "api-keys"]) | (&Method::POST, ["v1", "api-keys", _, "revoke"]) => {
            "control.api-key.manage"
        }
        (
            &Method::POST,
            [
                "v1",
                "secrets",
                "set" | "rotate" | "delete" | "rotate-master",
            ],
        ) => "control.secrets.manage",
        (&Method::GET, ["v1", "incidents"])
        | (&Method::GET, ["v1", "incidents", _])
        | (&Method::GET, ["v1", "quarantines"])
        | (&Method::GET, ["v1", "report"]) => "control.incidents.read",
        (&Method::POST, ["v1", "incidents", _, "resolve"]) => "control.incidents.manage",
        (&Method::POST, ["v1", "quarantines", "release"]) => "control.release",
        _ => return None,
    })
}

pub(crate) async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    platform: Arc<Platform>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let platform = platform.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that is not speaking TLS fails the handshake here and never
                    // reaches HTTP.
                    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(error)) => {
                            tracing::debug!(%error, %peer, "control TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let service = hyper::service::service_fn(move |request| {
                        let platform = platform.clone();
                        async move { handle(&platform, peer, request).await }
                    });
                    // The same slow-loris defence as the function listener.
                    if let Err(error) = http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(crate::trigger::HEADER_READ_TIMEOUT)
                        .serve_connection(TokioIo::new(tls), service)
                        .await
                    {
                        tracing::debug!(%error, "remote control connection ended with an error");
                    }
                });
            }
            _ = stop.changed() => break,
        }
    }
}

async fn handle(
    platform: &Arc<Platform>,
    peer: SocketAddr,
    request: hyper::Request<Incoming>,
) -> Result<Response, Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let result = match (&method, path.as_str()) {
        (&Method::POST, "/v1/login/challenge") => challenge(platform, request).await,
        (&Method::POST, "/v1/login") => login(platform, peer, request).await,
        _ => return authorized(platform, peer, request).await,
    };
    Ok(result.unwrap_or_else(handler::problem))
}

async fn read_body(request: hyper::Request<Incoming>) -> Result<bytes::Bytes, Problem> {
    Limited::new(request.into_body(), MAX_LOGIN_BODY)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "control-body-unreadable",
                "Request body unreadable",
                e.to_string(),
            )
        })
}

async fn challenge(
    platform: &Platform,
    request: hyper::Request<Incoming>,
) -> Result<Response, Problem> {
    let body = read_body(request).await?;
    let request: LoginChallengeRequest = handler::parse_body(&body)?;
    let nonce =
        platform
            .operators()
            .challenge(&request.operator)
            .map_err(|refusal| match refusal.reason {
                "operator-name-invalid" => Problem::new(
                    StatusCode::BAD_REQUEST,
                    "malformed-control-request",
                    "Malformed request",
                    "`operator` must be an operator name (lowercase letters, digits and `-`)."
                        .into(),
                ),
                reason => Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    reason,
                    "Try again later",
                    "Too many logins are in progress; try again shortly.".into(),
                )
                .retry_after(1),
            })?;
    handler::json(&LoginChallenge {
        nonce,
        audience: platform.operators().audience().to_string(),
        expires_in_secs: CHALLENGE_TTL.as_secs(),
    })
}

async fn login(
    platform: &Arc<Platform>,
    peer: SocketAddr,
    request: hyper::Request<Incoming>,
) -> Result<Response, Problem> {
    let body = read_body(request).await?;
    let parsed: Result<LoginRequest, _> = serde_json::from_slice(&body);
    let (operator, result) = match parsed {
        Err(_) => (None, Err("login-malformed")),
        Ok(login) => {
            let result = match BASE64.decode(login.signature.as_bytes()) {
                Err(_) => Err("signature-malformed"),
                Ok(signature) => {
                    // Signature checks and store writes run off the async workers, so a
                    // flood of logins cannot stall the control plane (as API keys do).
                    let platform = platform.clone();
                    let (name, nonce, code) = (
                        login.operator.clone(),
                        login.nonce.clone(),
                        login.totp.clone(),
                    );
                    tokio::task::spawn_blocking(move || {
                        platform
                            .operators()
                            .login(&name, &nonce, &signature, &code, unix_secs())
                            .map_err(|refusal| refusal.reason)
                    })
                    .await
                    .unwrap_or(Err("internal-error"))
                }
            };
            (Some(login.operator), result)
        }
    };
    let mut event = AuditEvent::new(
        EventKind::OperatorLogin,
        if result.is_ok() {
            Outcome::Success
        } else {
            Outcome::Denied
        },
    )
    .reason(match &result {
        Ok(_) => "authenticated",
        Err(reason) => *reason,
    })
    .detail("operator", operator.clone())
    .detail("peer", peer.to_string());
    // Only a well-formed operator name is the caller: the login request is the caller's own
    // words, and the field must not carry arbitrary text into the stream's indexes.
    if let Some(name) = operator.filter(|name| zerofn_manifest::is_dns_label(name)) {
        event = event.caller(format!("operator:{name}"));
    }
    if let Ok((session, _)) = &result {
        event = event
            .detail("role", session.role.clone())
            .detail("expires_ms", session.expires_ms);
    }
    platform.audit().record(event).await;
    match result {
        Ok((session, _)) => handler::json(&session),
        // Which factor failed is in the audit stream, not in the answer: a caller who does
        // not hold both factors learns nothing about either.
        Err(_) => Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "login-refused",
            "Login refused",
            "The operator, key signature, TOTP code or challenge was not accepted; ask for a new challenge and try again.".into(),
        )),
    }
}

async fn authorized(
    platform: &Arc<Platform>,
    peer: SocketAddr,
    request: hyper::Request<Incoming>,
) -> Result<Response, Infallible> {
    let method = request.method().clone();
    // The path as routing reads it (`//v1/apps/x/` routes like `/v1/apps/x`): a guardrail on
    // `context.path` must see what was routed, or an extra slash would step around it.
    let path = format!("/{}", request.uri().path().trim_matches('/'));
    let authorization = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    let session = {
        let platform = platform.clone();
        tokio::task::spawn_blocking(move || {
            platform.operators().authenticate(authorization.as_deref())
        })
        .await
        .unwrap_or(Err(crate::operators::SessionRefusal {
            code: "session-invalid",
            reason: "internal-error",
        }))
    };
    let (outcome, reason) = match &session {
        Ok(_) => (Outcome::Success, "authenticated"),
        Err(refusal) => (Outcome::Denied, refusal.reason),
    };
    platform
        .audit()
        .record(
            AuditEvent::new(EventKind::AuthnDecision, outcome)
                .reason(reason)
                .detail("method", "operator-session")
                .detail(
                    "operator",
                    session.as_ref().ok().map(|s| s.operator.clone()),
                )
                .detail("path", path.clone())
                .detail("peer", peer.to_string()),
        )
        .await;
    let session = match session {
        Ok(session) => session,
        Err(refusal) => {
            let detail = if refusal.code == "session-missing" {
                "This endpoint needs an operator session: log in with `zerofn login` and send `Authorization: Bearer <session>`."
            } else {
                "The session is unknown, expired or revoked; log in again with `zerofn login`."
            };
            let mut response = handler::problem(
                Problem::new(
                    StatusCode::UNAUTHORIZED,
                    refusal.code,
                    "Not authenticated",
                    detail.into(),
                )
                .with("www_authenticate", "Bearer"),
            );
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
            return Ok(response);
        }
    };
    if method == Method::POST && path == "/v1/logout" {
        let revoked = platform.operators().logout(&session.token_hash).is_ok();
        platform
            .audit()
            .record(
                AuditEvent::new(
                    EventKind::CredentialChange,
                    if revoked {
                        Outcome::Success
                    } else {
                        Outcome::Failure
                    },
                )
                .reason("session-revoked")
                .detail("operator", session.operator.clone()),
            )
            .await;
        return Ok(handler::json(&serde_json::json!({"logged_out": revoked}))
            .unwrap_or_else(handler::problem));
    }
    let action = control_action(&method, &path);
    let decision = match action {
        Some(action) => platform
            .control_pdp()
            .decide(&zerofn_policy::ControlRequest {
                operator: session.operator.clone(),
                role: session.role,
                action: action.to_string(),
                time: i64::try_from(unix_secs()).unwrap_or(i64::MAX),
                method: method.to_string(),
                path: path.clone(),
            }),
        None => zerofn_policy::Decision {
            allowed: false,
            policies: Vec::new(),
            errors: Vec::new(),
        },
    };
    let explanation = match action {
        Some(_) => decision.explanation().replace("no grant", "no role"),
        None => "denied: this route is not a control action (default deny)".to_string(),
    };
    platform
        .audit()
        .record(
            AuditEvent::new(
                EventKind::AuthzDecision,
                if decision.allowed {
                    Outcome::Success
                } else {
                    Outcome::Denied
                },
            )
            .reason(match (action, decision.allowed) {
                (_, true) => "allowed",
                (None, false) => "no-control-action",
                (Some(_), false) if decision.policies.is_empty() => "role-not-permitted",
                (Some(_), false) => "forbidden-by-guardrail",
            })
            .detail("operator", session.operator.clone())
            .detail("role", session.role.as_str())
            .detail("action", action)
            .detail("method", method.to_string())
            .detail("path", path.clone())
            .detail("policies", decision.policies.clone())
            .detail("explanation", explanation.clone()),
        )
        .await;
    if !decision.allowed {
        let action_name = action.unwrap_or("none");
        return Ok(handler::problem(
            Problem::new(
                StatusCode::FORBIDDEN,
                "control-action-denied",
                "Not authorized",
                format!(
                    "Operator `{}` (role `{}`) may not take control action `{action_name}` ({method} {path}): {explanation}.",
                    session.operator, session.role
                ),
            )
            .with("action", action_name)
            .with("role", session.role.as_str())
            .with("operator", session.operator.clone())
            .with("policies", decision.policies),
        ));
    }
    // A live stream outlives the request that opened it: it re-checks the session as it
    // goes, so it ends when the session does.
    let authorization = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    let mut request = request;
    let checker = platform.clone();
    request
        .extensions_mut()
        .insert(super::audit_stream::SessionCheck(Arc::new(move || {
            checker
                .operators()
                .authenticate(authorization.as_deref())
                .is_ok()
        })));
    request
        .extensions_mut()
        .insert(super::RemoteOperator(session.operator.clone()));
    handler::handle(platform, request).await
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
