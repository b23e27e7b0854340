//! The HTTP trigger: accepts connections on the function listener (plain TCP, or TLS with the
//! node's SVID) and hands each request to the function its route names. Nothing but routing
//! and refusal happens here; a TLS client's certificate chain travels with each of its requests
//! as a [`PeerCertificates`] extension, for the function's `auth` to judge. Each request's
//! trace context is made here ([`Origin::from_headers`]: the caller's `traceparent`, or a new
//! trace).

use crate::correlation::{ANONYMOUS, Origin};
use crate::platform::Platform;
use crate::rate_limit::{Buckets, Caller};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use zerofn_identity::PeerCertificates;
use zerofn_runtime::ResponseBody;

/// A client that has not sent a request head by then is disconnected (slow-loris defence).
pub(crate) const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The same for a TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = HEADER_READ_TIMEOUT;

/// Serves until `stop` turns true, then stops accepting and waits for in-flight requests. With
/// `tls`, every connection is TLS 1.3; a failed handshake is logged and the connection dropped.
pub(crate) async fn serve(
    listener: TcpListener,
    platform: Arc<Platform>,
    stop: watch::Receiver<bool>,
    grace: std::time::Duration,
    tls: Option<TlsAcceptor>,
) {
    let handler = move |request| {
        let platform = platform.clone();
        async move { handle(&platform, request).await }
    };
    accept(listener, stop, grace, tls, handler).await;
}

/// The accept loop, apart from what is done with each request (so a test can look at what a
/// request carries).
async fn accept<H, F>(
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    grace: std::time::Duration,
    tls: Option<TlsAcceptor>,
    handler: H,
) where
    H: Fn(hyper::Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = hyper::Response<ResponseBody>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                // Taken now, so that shutdown also waits for connections still in their
                // handshake.
                let watcher = graceful.watcher();
                let handler = handler.clone();
                let Some(acceptor) = tls.clone() else {
                    tokio::spawn(serve_connection(stream, peer, None, handler, watcher));
                    continue;
                };
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(
                        HANDSHAKE_TIMEOUT,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(error)) => {
                            tracing::info!(%peer, %error, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::info!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let certificates = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .filter(|chain| !chain.is_empty())
                        .map(|chain| {
                            PeerCertificates(chain.iter().map(|c| c.clone().into_owned()).collect())
                        });
                    serve_connection(stream, peer, certificates, handler, watcher).await;
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

/// The address a request came from, put on each request of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub std::net::SocketAddr);

/// Serves HTTP/1.1 (keep-alive) on one connection; each request gets the connection's peer
/// address and client certificate chain, if it has one.
async fn serve_connection<S, H, F>(
    stream: S,
    peer: std::net::SocketAddr,
    certificates: Option<PeerCertificates>,
    handler: H,
    watcher: Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(hyper::Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = hyper::Response<ResponseBody>> + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ClientAddress(peer));
        if let Some(certificates) = &certificates {
            request.extensions_mut().insert(certificates.clone());
        }
        let response = handler(request);
        async move { Ok::<_, Infallible>(response.await) }
    });
    let connection = http1::Builder::new()
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(error) = watcher.watch(connection).await {
        tracing::debug!(%error, "connection ended with an error");
    }
}

async fn handle(
    platform: &Platform,
    request: hyper::Request<Incoming>,
) -> hyper::Response<ResponseBody> {
    // The trace is continued (or started) before anything else, so that every event of the
    // request, refusals included, is in it; the caller is anonymous until a credential says
    // otherwise.
    let origin = Origin::from_headers(
        uuid::Uuid::now_v7().to_string(),
        ANONYMOUS,
        request.headers(),
    );
    match platform.route(request.uri().path(), request.method().as_str()) {
        Ok(function) => {
            let mut request = request;
            let address = request
                .extensions()
                .get::<ClientAddress>()
                .map_or(Caller::Unknown, |a| Caller::Address(a.0.ip()));
            // The address's own bucket before any credential is checked, so that a flood from
            // one address spends its tokens rather than the platform's signature checks.
            if let Err(refused) = platform
                .check_rates(&function, &address, Buckets::Caller, &origin)
                .await
            {
                return refused;
            }
            match platform
                .authenticate(&function, &origin, &mut request)
                .await
            {
                Ok(identity) => {
                    let origin = origin.with_caller(crate::platform::caller_name(
                        identity.as_ref(),
                        &function.caller_auth,
                    ));
                    // An authenticated caller has its own bucket too; an anonymous one has
                    // spent its address's token already.
                    let (caller, buckets) = match identity {
                        Some(identity) => (identity, Buckets::Both),
                        None => (address, Buckets::Function),
                    };
                    if let Err(refused) = platform
                        .check_rates(&function, &caller, buckets, &origin)
                        .await
                    {
                        return refused;
                    }
                    platform.invoke(&function, origin, request).await
                }
                Err(problem) => platform.refuse(problem, &origin, Some(&function)).await,
            }
        }
        Err((problem, function)) => platform.refuse(problem, &origin, function.as_deref()).await,
    }
}

#[cfg(test)]
mod tests {
    //! The accept path over TLS with a probe instead of the platform: what each request carries.

    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use rustls::pki_types::ServerName;
    use std::time::{Duration, SystemTime};
    use zerofn_identity::tls::RotatingSvid;
    use zerofn_identity::{CertificateAuthority, SvidRequest, X509Svid};

    /// Answers with the SPIFFE-free summary of the request's `PeerCertificates`.
    async fn probe(request: hyper::Request<Incoming>) -> hyper::Response<ResponseBody> {
        let seen = match request.extensions().get::<PeerCertificates>() {
            Some(PeerCertificates(chain)) => format!("chain:{}", chain.len()),
            None => "none".to_string(),
        };
        hyper::Response::new(
            Full::new(Bytes::from(seen))
                .map_err(|never: Infallible| match never {})
                .boxed_unsync(),
        )
    }

    async fn start(ca: &Arc<CertificateAuthority>) -> (std::net::SocketAddr, watch::Sender<bool>) {
        let template = SvidRequest::new(
            "spiffe://zerofn.local/node/test",
            SystemTime::now(),
            Duration::from_secs(600),
        )
        .with_server_names(&["localhost"], &[]);
        let svid = RotatingSvid::new(
            ca.clone(),
            template,
            Duration::from_secs(600),
            SystemTime::now(),
        )
        .unwrap();
        let acceptor = crate::certificates::acceptor(&svid).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(accept(
            listener,
            stopped,
            Duration::from_secs(5),
            Some(acceptor),
            probe,
        ));
        (addr, stop)
    }

    /// Two requests on one TLS connection; the answers of both.
    async fn two_requests(
        addr: std::net::SocketAddr,
        ca: &CertificateAuthority,
        client: Option<&X509Svid>,
    ) -> Result<Vec<String>, String> {
        let identity = client.map(|svid| {
            zerofn_identity::tls::client_identity(
                vec![svid.certificate.der.clone()],
                svid.private_key(),
            )
            .unwrap()
        });
        let config =
            zerofn_identity::tls::client_config(ca.bundle_pem().as_bytes(), identity).unwrap();
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), stream)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let mut answers = Vec::new();
        for _ in 0..2 {
            let request = hyper::Request::builder()
                .uri("/")
                .header("host", "localhost")
                .body(Full::new(Bytes::new()))
                .unwrap();
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| e.to_string())?;
            let body = response.into_body().collect().await.unwrap().to_bytes();
            answers.push(String::from_utf8_lossy(&body).into_owned());
        }
        Ok(answers)
    }

    #[tokio::test]
    async fn each_request_carries_its_connections_client_certificate() {
        let ca = Arc::new(CertificateAuthority::create("zerofn.local", SystemTime::now()).unwrap());
        let (addr, stop) = start(&ca).await;

        // No certificate: the handshake succeeds (authentication is the function's business)
        // and no request carries a chain.
        assert_eq!(
            two_requests(addr, &ca, None).await.unwrap(),
            ["none", "none"]
        );

        let caller = ca
            .issue(&SvidRequest::new(
                "spiffe://zerofn.local/callers/ci",
                SystemTime::now(),
                Duration::from_secs(600),
            ))
            .unwrap();
        assert_eq!(
            two_requests(addr, &ca, Some(&caller)).await.unwrap(),
            ["chain:1", "chain:1"]
        );

        // A plain-HTTP client gets no answer from the TLS listener, and the listener survives.
        let reply = plain_get(addr).await;
        assert!(!reply.starts_with("HTTP/1.1"), "{reply}");
        assert_eq!(
            two_requests(addr, &ca, None).await.unwrap(),
            ["none", "none"]
        );
        let _ = stop.send(true);
    }

    async fn plain_get(addr: std::net::SocketAddr) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply).await;
        String::from_utf8_lossy(&reply).into_owned()
    }
}
