//! The control plane client the CLI uses: one HTTP/1.1 request per connection over the Unix
//! socket.

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

/// A client for one data directory's control socket.
#[derive(Debug, Clone)]
pub struct ControlClient {
    socket: PathBuf,
}

impl ControlClient {
    pub fn new(socket: &Path) -> Self {
        Self {
            socket: socket.to_path_buf(),
        }
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
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|_| ControlError::NotRunning {
                socket: self.socket.clone(),
            })?;
        let transport = |e: hyper::Error| ControlError::Transport(e.to_string());
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(transport)?;
        tokio::spawn(connection);
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, "zerofn")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| ControlError::Transport(e.to_string()))?;
        let response = sender.send_request(request).await.map_err(transport)?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(transport)?
            .to_bytes();
        if !status.is_success() {
            let problem = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| serde_json::json!({"detail": String::from_utf8_lossy(&bytes)}));
            return Err(ControlError::Refused {
                status: status.as_u16(),
                problem,
            });
        }
        Ok(bytes)
    }
}
