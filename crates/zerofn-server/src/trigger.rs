//! The HTTP trigger: accepts connections on the function listener and hands each request to the
//! function its route names. Nothing but routing and refusal happens here.

use crate::platform::Platform;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use zerofn_runtime::ResponseBody;

/// A client that has not sent a request head by then is disconnected (slow-loris defence).
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves until `stop` turns true, then stops accepting and waits for in-flight requests.
pub(crate) async fn serve(
    listener: TcpListener,
    platform: Arc<Platform>,
    mut stop: watch::Receiver<bool>,
    grace: std::time::Duration,
) {
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let platform = platform.clone();
                let service = hyper::service::service_fn(move |request| {
                    let platform = platform.clone();
                    async move { Ok::<_, Infallible>(handle(&platform, request).await) }
                });
                let connection = http1::Builder::new()
                    .keep_alive(true)
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within the grace period");
    }
}

async fn handle(
    platform: &Platform,
    request: hyper::Request<Incoming>,
) -> hyper::Response<ResponseBody> {
    let invocation_id = uuid::Uuid::now_v7().to_string();
    match platform.route(request.uri().path(), request.method().as_str()) {
        Ok(function) => {
            let mut request = request;
            match platform
                .authenticate(&function, &invocation_id, &mut request)
                .await
            {
                Ok(()) => platform.invoke(&function, invocation_id, request).await,
                Err(problem) => {
                    platform
                        .refuse(problem, &invocation_id, Some(&function))
                        .await
                }
            }
        }
        Err((problem, function)) => {
            platform
                .refuse(problem, &invocation_id, function.as_deref())
                .await
        }
    }
}
