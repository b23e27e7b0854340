//! The control plane client the CLI uses: one HTTP/1.1 request per connection, over the Unix
//! socket or, for a remote operator, over TLS 1.3 with a session token.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// Why a control-plane call did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Nothing listens on the socket.
    #[error(
        "no zerofn server is running for this data directory ({socket}): start one with `zerofn serve` or `zerofn up`"
    )]
    NotRunning { socket: PathBuf },
    /// Nothing answers at the remote control plane's address.
    #[error("cannot reach the remote control plane {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The remote control plane's URL or TLS setup is unusable.
    #[error("remote control plane: {0}")]
    Remote(String),
    /// The server refused; `problem` is its RFC 9457 body.
    #[error("{}", problem_text(.problem))]
    Refused {
        status: u16,
        problem: serde_json::Value,
    },
    /// The exchange itself failed.
    #[error("control plane: {0}")]
    Transport(String),
}

fn problem_text(problem: &serde_json::Value) -> String {
    let detail = problem["detail"].as_str().unwrap_or("refused");
    match problem["title"].as_str() {
        Some(title) => format!("{title}: {detail}"),
        None => detail.to_string(),
    }
}

/// A client for one data directory's control socket, or for a remote control plane.
#[derive(Clone)]
pub struct ControlClient {
    transport: Transport,
    /// The operator session sent as `Authorization: Bearer` (remote only).
    session: Option<String>,
}

#[derive(Clone)]
enum Transport {
    Unix(PathBuf),
    Tls {
        url: String,
        address: String,
        server_name: rustls::pki_types::ServerName<'static>,
        connector: tokio_rustls::TlsConnector,
    },
}

impl std::fmt::Debug for ControlClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the session.
        match &self.transport {
            Transport::Unix(socket) => f
                .debug_struct("ControlClient")
                .field("socket", socket)
                .finish(),
            Transport::Tls { url, .. } => {
                f.debug_struct("ControlClient").field("url", url).finish()
            }
        }
    }
}

impl ControlClient {
    pub fn new(socket: &Path) -> Self {
        Self {
            transport: Transport::Unix(socket.to_path_buf()),
            session: None,
        }
    }

    /// A client for the remote control plane at `url` (`https://HOST:PORT`), trusting only the
    /// CA certificates in `ca_bundle`.
    pub fn remote(url: &str, ca_bundle: &Path) -> Result<Self, ControlError> {
        let parsed = url::Url::parse(url)
            .map_err(|e| ControlError::Remote(format!("`{url}` is not a URL: {e}")))?;
        if parsed.scheme() != "https" {
            return Err(ControlError::Remote(format!(
                "`{url}`: the remote control plane is reached over https only"
            )));
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| ControlError::Remote(format!("`{url}` has no host")))?;
        let port = parsed.port_or_known_default().unwrap_or(443);
        let bare = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let server_name = rustls::pki_types::ServerName::try_from(bare.clone())
            .map_err(|e| ControlError::Remote(format!("`{host}`: {e}")))?;
        let config = super::tls::client_config(ca_bundle)
            .map_err(|e| ControlError::Remote(e.to_string()))?;
        Ok(Self {
            transport: Transport::Tls {
                url: url.to_string(),
                address: if bare.contains(':') {
                    format!("[{bare}]:{port}")
                } else {
                    format!("{bare}:{port}")
                },
                server_name,
                connector: tokio_rustls::TlsConnector::from(config),
            },
            session: None,
        })
    }

    /// Sends `token` as the operator session with every request.
    pub fn with_session(mut self, token: String) -> Self {
        self.session = Some(token);
        self
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ControlError> {
        self.call(http::Method::GET, path, Bytes::new()).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ControlError> {
        let body = serde_json::to_vec(body).map_err(|e| ControlError::Transport(e.to_string()))?;
        self.call(http::Method::POST, path, Bytes::from(body)).await
    }

    /// A `GET` whose answer is text (the metrics exposition).
    pub async fn get_text(&self, path: &str) -> Result<String, ControlError> {
        let bytes = self.call_raw(http::Method::GET, path, Bytes::new()).await?;
        String::from_utf8(bytes.to_vec())
            .map_err(|e| ControlError::Transport(format!("unreadable answer: {e}")))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: http::Method,
        path: &str,
        body: Bytes,
    ) -> Result<T, ControlError> {
        let bytes = self.call_raw(method, path, body).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ControlError::Transport(format!("unreadable answer: {e}")))
    }

    async fn call_raw(
        &self,
        method: http::Method,
        path: &str,
        body: Bytes,
    ) -> Result<Bytes, ControlError> {
        let response = self.send(method, path, body, &[]).await?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| ControlError::Transport(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            return Err(refused(status, &bytes));
        }
        Ok(bytes)
    }

    /// Opens a server-sent event stream (`GET /v1/audit/stream?...`); `last_event_id` resumes
    /// after the last event a previous stream delivered.
    pub async fn stream(
        &self,
        path: &str,
        last_event_id: Option<&str>,
    ) -> Result<super::sse::EventStream, ControlError> {
        let mut headers = vec![("accept", "text/event-stream")];
        if let Some(id) = last_event_id {
            headers.push(("last-event-id", id));
        }
        let response = self
            .send(http::Method::GET, path, Bytes::new(), &headers)
            .await?;
        let status = response.status();
        if !status.is_success() {
            let bytes = http_body_util::Limited::new(response.into_body(), 1 << 20)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err(refused(status, &bytes));
        }
        Ok(super::sse::EventStream::new(response.into_body()))
    }

    async fn send(
        &self,
        method: http::Method,
        path: &str,
        body: Bytes,
        headers: &[(&str, &str)],
    ) -> Result<hyper::Response<hyper::body::Incoming>, ControlError> {
        let transport = |e: hyper::Error| ControlError::Transport(e.to_string());
        let mut sender = match &self.transport {
            Transport::Unix(socket) => {
                let stream = tokio::net::UnixStream::connect(socket).await.map_err(|_| {
                    ControlError::NotRunning {
                        socket: socket.clone(),
                    }
                })?;
                let (sender, connection) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .map_err(transport)?;
                tokio::spawn(connection);
                sender
            }
            Transport::Tls {
                url,
                address,
                server_name,
                connector,
            } => {
                let unreachable = |reason: String| ControlError::Unreachable {
                    url: url.clone(),
                    reason,
                };
                let stream = tokio::net::TcpStream::connect(address.as_str())
                    .await
                    .map_err(|e| unreachable(e.to_string()))?;
                let tls = connector
                    .connect(server_name.clone(), stream)
                    .await
                    .map_err(|e| unreachable(format!("TLS: {e}")))?;
                let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                    .await
                    .map_err(transport)?;
                tokio::spawn(connection);
                sender
            }
        };
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, "zerofn")
            .header(http::header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(session) = &self.session {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {session}"));
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| ControlError::Transport(e.to_string()))?;
        sender.send_request(request).await.map_err(transport)
    }
}

/// The server's refusal, from its problem-details body.
fn refused(status: http::StatusCode, bytes: &[u8]) -> ControlError {
    let problem = serde_json::from_slice(bytes)
        .unwrap_or_else(|_| serde_json::json!({"detail": String::from_utf8_lossy(bytes)}));
    ControlError::Refused {
        status: status.as_u16(),
        problem,
    }
}
