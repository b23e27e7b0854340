//! The control plane: deploy, list, roll back, read logs and audit events, and invoke, as a
//! small JSON API over HTTP/1.1 on a Unix socket (mode 0600) in the data directory. Only the
//! operator who owns the data directory can reach it. Optionally the same API is also served
//! over TLS 1.3 on TCP for remote operators (`remote`), behind two-factor login and a Cedar
//! decision per request.

mod api;
pub mod audit_stream;
mod body;
mod client;
mod handler;
mod incidents;
mod remote;
pub mod sse;
mod tls;
mod usage;

pub use api::{
    ApiKeyQuery, AppListing, AuditKey, AuditVerifyQuery, CaBundle, CreateApiKeyRequest,
    CreatedApiKey, DeployRequest, EnrollOperatorRequest, IncidentDetail, IncidentsQuery,
    InvokeRequest, InvokeResponse, IssueCertificateRequest, IssuedClientCertificate,
    LoginChallenge, LoginChallengeRequest, LoginRequest, QueueListing, ReleaseRequest,
    ResolveIncidentRequest, RollbackRequest, SecretNameRequest, SecretValueRequest, SecretsQuery,
    SendEventRequest,
};
pub use audit_stream::{AuditStreams, StreamFilter};
pub use body::ControlBody;
pub use client::{ControlClient, ControlError};
pub use remote::control_action;
pub(crate) use remote::serve as serve_remote;
pub use tls::{CertificateSource, TlsError, client_config};
pub(crate) use tls::{load_certificate, server_config};
pub use usage::{
    AppUsage, MAX_USAGE_READS, USAGE_PAGE, USAGE_SLICE_ROWS, UsageReads, app_usage, each_usage_row,
};

/// The remote operator a control request comes from (set by the remote listener once the
/// session and the Cedar decision passed); absent on the local socket.
#[derive(Debug, Clone)]
pub(crate) struct RemoteOperator(pub(crate) String);

use crate::platform::Platform;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::UnixListener;
use tokio::sync::watch;

/// The file name of the control socket inside the data directory.
pub const SOCKET_FILE: &str = "control.sock";

/// Where the control socket of a data directory is.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_FILE)
}

pub(crate) async fn serve(
    listener: UnixListener,
    platform: Arc<Platform>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let platform = platform.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let platform = platform.clone();
                        async move { handler::handle(&platform, request).await }
                    });
                    if let Err(error) = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                    {
                        tracing::debug!(%error, "control connection ended with an error");
                    }
                });
            }
            _ = stop.changed() => break,
        }
    }
}
