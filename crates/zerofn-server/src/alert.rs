//! The response loop's `alert`: an incident posted to the operator's webhook as a CloudEvent
//! (structured mode, type `dev.zerofn.incident.opened`), with a timeout per attempt and a
//! bounded number of attempts. It runs in its own task: a slow or dead webhook never holds up
//! the loop.

use crate::cloudevents::{CloudEvent, Mode};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use zerofn_store::IncidentRecord;

/// The CloudEvents type of an incident alert.
pub const INCIDENT_OPENED_TYPE: &str = "dev.zerofn.incident.opened";
/// Default time one attempt may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default number of attempts.
pub const DEFAULT_ATTEMPTS: u32 = 3;
/// The most attempts the config accepts.
pub const MAX_ATTEMPTS: u32 = 10;
/// The longest timeout per attempt the config accepts.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// Where and how alerts are sent (`[response] webhook`).
#[derive(Debug, Clone)]
pub struct Webhook {
    pub url: http::Uri,
    pub timeout: Duration,
    pub attempts: u32,
}

impl Webhook {
    /// Checks a webhook URL: absolute `http` or `https`, with a host.
    pub fn parse_url(url: &str) -> Result<http::Uri, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("`response.webhook` `{url}` is not a URL: {e}"))?;
        match (uri.scheme_str(), uri.host()) {
            (Some("http" | "https"), Some(host)) if !host.is_empty() => Ok(uri),
            _ => Err(format!(
                "`response.webhook` `{url}` must be an absolute http:// or https:// URL"
            )),
        }
    }
}

/// The incident as the CloudEvent the webhook receives; `source` names the node's monitor.
pub fn incident_event(incident: &IncidentRecord, trust_domain: &str) -> CloudEvent {
    let mut event = CloudEvent::new(
        incident.id.clone(),
        format!("spiffe://{trust_domain}/monitor"),
        INCIDENT_OPENED_TYPE,
    );
    event.subject = Some(format!("{}/{}", incident.app, incident.function));
    event.time = chrono::DateTime::from_timestamp_millis(incident.opened_ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    event.datacontenttype = Some("application/json".into());
    event.data = serde_json::to_vec(incident).ok().map(Bytes::from);
    event
}

/// Posts `event` to `webhook` until a 2xx answer or the attempts run out (waiting a little
/// longer after each failure). Ok: the attempt that succeeded; Err: the last failure.
pub async fn send(webhook: &Webhook, event: &CloudEvent) -> Result<u32, String> {
    let mut last = String::new();
    for attempt in 1..=webhook.attempts.max(1) {
        match tokio::time::timeout(webhook.timeout, post(webhook, event)).await {
            Ok(Ok(status)) if status.is_success() => return Ok(attempt),
            Ok(Ok(status)) => last = format!("the webhook answered {status}"),
            Ok(Err(error)) => last = error,
            Err(_) => last = format!("no answer within {} ms", webhook.timeout.as_millis()),
        }
        if attempt < webhook.attempts {
            tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
        }
    }
    Err(last)
}

async fn post(webhook: &Webhook, event: &CloudEvent) -> Result<http::StatusCode, String> {
    let uri = &webhook.url;
    let host = uri.host().unwrap_or_default();
    let https = uri.scheme_str() == Some("https");
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let mut request = event
        .to_http(
            Mode::Structured,
            uri.path_and_query().map_or("/", |p| p.as_str()),
        )
        .map_err(|e| e.to_string())?
        .map(Full::new);
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_default();
    if let Ok(value) = http::HeaderValue::from_str(&authority) {
        request.headers_mut().insert(http::header::HOST, value);
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
    if https {
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| format!("`{host}` is not a TLS server name: {e}"))?;
        let stream = tls_connector()?
            .connect(name, stream)
            .await
            .map_err(|e| format!("TLS with {authority} failed: {e}"))?;
        exchange(TokioIo::new(stream), request).await
    } else {
        exchange(TokioIo::new(stream), request).await
    }
}

async fn exchange<I>(io: I, request: http::Request<Full<Bytes>>) -> Result<http::StatusCode, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    let connection = tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string());
    let status = match response {
        Ok(response) => {
            let status = response.status();
            // Drained so the exchange is over before the connection is dropped.
            let _ = response.into_body().collect().await;
            Ok(status)
        }
        Err(error) => Err(error),
    };
    connection.abort();
    status
}

/// TLS to an `https` webhook, checked against the system's roots.
fn tls_connector() -> Result<tokio_rustls::TlsConnector, String> {
    let roots = crate::tls_roots::system_roots_and(None, "webhook CA bundle")?;
    let config = rustls::ClientConfig::builder_with_provider(zerofn_identity::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
