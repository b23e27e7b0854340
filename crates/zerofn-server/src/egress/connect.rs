//! Reaching a destination the policy allowed: TCP to exactly the addresses that were checked
//! (there is no second name lookup, so DNS rebinding has nothing to rebind), TLS that always
//! verifies the certificate for the granted host name (SNI), HTTP/1.1 over hyper's client
//! connection, the guest's timeouts within the invocation's deadline, and the response body
//! streamed back to the guest, metered. Redirects are the guest's to see: nothing here follows
//! one.

use super::destination::Target;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use hyper_util::rt::TokioIo;
use std::future::{Future, poll_fn};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use zerofn_runtime::BodyError as Error;

/// Opens connections to destinations; holds the TLS trust roots.
pub struct Connector {
    tls: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector").finish_non_exhaustive()
    }
}

/// When each phase of one exchange must be over.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// TCP connect and TLS handshake.
    pub connect_by: Instant,
    /// The response head.
    pub first_byte_by: Instant,
    /// The longest wait for the next piece of the response body.
    pub between_bytes: Duration,
    /// The invocation's deadline: nothing of the exchange outlives it.
    pub deadline: Instant,
}

impl Timeouts {
    /// The guest's timeouts (each unset one is "until the deadline"), never past `deadline`.
    pub fn new(options: Option<zerofn_runtime::RequestOptions>, deadline: Instant) -> Self {
        let now = Instant::now();
        let by = |timeout: Option<Duration>| {
            timeout
                .and_then(|t| now.checked_add(t))
                .map_or(deadline, |at| at.min(deadline))
        };
        let options = options.unwrap_or_default();
        Timeouts {
            connect_by: by(options.connect_timeout),
            first_byte_by: by(options.first_byte_timeout),
            between_bytes: options
                .between_bytes_timeout
                .unwrap_or(Duration::MAX)
                .max(Duration::from_nanos(1)),
            deadline,
        }
    }
}

/// Why an allowed exchange did not produce a response.
#[derive(Debug)]
pub enum Failure {
    /// No checked address accepted a connection.
    Connect(std::io::Error),
    /// The connection (or its TLS handshake) did not complete in time.
    ConnectTimeout,
    /// The TLS handshake failed; `certificate` when the server's certificate was refused.
    Tls { certificate: bool, detail: String },
    /// No response head in time.
    ResponseTimeout,
    /// The server did not speak HTTP/1.1 as expected.
    Protocol(String),
}

impl Failure {
    /// The audit reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Failure::Connect(_) => "connect-failed",
            Failure::ConnectTimeout => "connect-timeout",
            Failure::Tls {
                certificate: true, ..
            } => "tls-certificate-refused",
            Failure::Tls { .. } => "tls-failed",
            Failure::ResponseTimeout => "response-timeout",
            Failure::Protocol(_) => "protocol-error",
        }
    }

    /// What the guest receives.
    pub fn error(&self) -> Error {
        match self {
            Failure::Connect(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                Error::ConnectionRefused
            }
            Failure::Connect(_) => Error::DestinationUnavailable,
            Failure::ConnectTimeout => Error::ConnectionTimeout,
            Failure::Tls {
                certificate: true, ..
            } => Error::TlsCertificateError,
            Failure::Tls { .. } => Error::TlsProtocolError,
            Failure::ResponseTimeout => Error::ConnectionReadTimeout,
            Failure::Protocol(_) => Error::HttpProtocolError,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connect(e) => write!(f, "cannot connect: {e}"),
            Failure::ConnectTimeout => f.write_str("no connection within the connect timeout"),
            Failure::Tls { detail, .. } => write!(f, "TLS handshake failed: {detail}"),
            Failure::ResponseTimeout => f.write_str("no response within the first-byte timeout"),
            Failure::Protocol(detail) => write!(f, "HTTP exchange failed: {detail}"),
        }
    }
}

/// How a response body ended, for the exchange's audit record.
#[derive(Debug)]
pub enum BodyEnd {
    /// Read to its end.
    Complete,
    /// Dropped before its end (the guest stopped reading, or the invocation ended).
    Dropped,
    /// Failed while streaming.
    Failed(String),
}

/// An exchange that is over.
#[derive(Debug)]
pub struct Ended {
    pub address: SocketAddr,
    pub status: u16,
    pub sent: u64,
    pub received: u64,
    pub body: BodyEnd,
}

/// Called once when an exchange that got a response is over.
pub type OnEnd = Box<dyn FnOnce(Ended) + Send>;

type Connection = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

impl Connector {
    /// A connector that trusts `roots`, with TLS 1.2 and 1.3 (ring) and HTTP/1.1 only.
    pub fn new(roots: rustls::RootCertStore) -> Result<Self, String> {
        let mut config =
            rustls::ClientConfig::builder_with_provider(zerofn_identity::tls::provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Connector {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    /// Sends `request` to `target` on the first of `addresses` that accepts a connection.
    /// `request` must already be in origin form with its `Host` header set. On failure, also
    /// returns the address that was reached, if one was.
    pub async fn send(
        &self,
        target: &Target,
        addresses: &[IpAddr],
        request: http::Request<MeteredBody>,
        timeouts: Timeouts,
        on_end: OnEnd,
    ) -> Result<http::Response<EgressBody>, (Failure, Option<SocketAddr>)> {
        let sent = request.body().sent.clone();
        let (tcp, address) = self.connect(target, addresses, timeouts).await?;
        let result = if target.scheme == "https" {
            let name = match target.literal {
                Some(ip) => rustls::pki_types::ServerName::IpAddress(ip.into()),
                None => rustls::pki_types::ServerName::try_from(target.bare_host().to_string())
                    .map_err(|e| {
                        (
                            Failure::Tls {
                                certificate: false,
                                detail: e.to_string(),
                            },
                            Some(address),
                        )
                    })?,
            };
            let tls =
                match tokio::time::timeout_at(timeouts.connect_by, self.tls.connect(name, tcp))
                    .await
                {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(error)) => {
                        return Err((
                            Failure::Tls {
                                certificate: is_certificate_error(&error),
                                detail: error.to_string(),
                            },
                            Some(address),
                        ));
                    }
                    Err(_) => return Err((Failure::ConnectTimeout, Some(address))),
                };
            exchange(tls, request, timeouts).await
        } else {
            exchange(tcp, request, timeouts).await
        };
        let (response, connection) = result.map_err(|failure| (failure, Some(address)))?;
        let mut between = Box::pin(tokio::time::sleep_until(timeouts.deadline));
        reset(&mut between, timeouts);
        let status = response.status().as_u16();
        Ok(response.map(|incoming| EgressBody {
            incoming,
            address,
            status,
            connection: Some(connection),
            between,
            timeouts,
            received: 0,
            sent,
            on_end: Some(on_end),
        }))
    }

    async fn connect(
        &self,
        target: &Target,
        addresses: &[IpAddr],
        timeouts: Timeouts,
    ) -> Result<(tokio::net::TcpStream, SocketAddr), (Failure, Option<SocketAddr>)> {
        let mut last = None;
        for ip in addresses {
            let address = SocketAddr::new(*ip, target.port);
            match tokio::time::timeout_at(
                timeouts.connect_by,
                tokio::net::TcpStream::connect(address),
            )
            .await
            {
                Ok(Ok(stream)) => return Ok((stream, address)),
                Ok(Err(error)) => last = Some((error, address)),
                Err(_) => return Err((Failure::ConnectTimeout, Some(address))),
            }
        }
        Err(match last {
            Some((error, address)) => (Failure::Connect(error), Some(address)),
            None => (
                Failure::Connect(std::io::Error::other("no address to connect to")),
                None,
            ),
        })
    }
}

fn is_certificate_error(error: &std::io::Error) -> bool {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|e| {
            matches!(
                e,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            )
        })
}

/// The HTTP/1.1 exchange on an open stream, up to the response head; the connection is
/// returned to be driven by the response body.
async fn exchange<S>(
    stream: S,
    request: http::Request<MeteredBody>,
    timeouts: Timeouts,
) -> Result<(http::Response<hyper::body::Incoming>, Connection), Failure>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let handshake = hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream));
    let (mut sender, connection) = tokio::time::timeout_at(timeouts.first_byte_by, handshake)
        .await
        .map_err(|_| Failure::ResponseTimeout)?
        .map_err(|e| Failure::Protocol(e.to_string()))?;
    let mut connection: Option<Connection> = Some(Box::pin(connection));
    let mut send = std::pin::pin!(sender.send_request(request));
    // The connection does the I/O; it is polled here until the head arrives, then by the body.
    let head = poll_fn(|cx| {
        if let Poll::Ready(result) = send.as_mut().poll(cx) {
            return Poll::Ready(result.map_err(|e| Failure::Protocol(e.to_string())));
        }
        let Some(driver) = connection.as_mut() else {
            return Poll::Pending;
        };
        let finished = ready!(driver.as_mut().poll(cx));
        connection = None;
        match finished {
            Ok(()) => send
                .as_mut()
                .poll(cx)
                .map(|r| r.map_err(|e| Failure::Protocol(e.to_string()))),
            Err(e) => Poll::Ready(Err(Failure::Protocol(e.to_string()))),
        }
    });
    let response = tokio::time::timeout_at(timeouts.first_byte_by, head)
        .await
        .map_err(|_| Failure::ResponseTimeout)??;
    let connection = connection.unwrap_or_else(|| Box::pin(std::future::ready(Ok(()))));
    Ok((response, connection))
}

fn reset(timer: &mut Pin<Box<tokio::time::Sleep>>, timeouts: Timeouts) {
    let next = Instant::now()
        .checked_add(timeouts.between_bytes)
        .map_or(timeouts.deadline, |at| at.min(timeouts.deadline));
    timer.as_mut().reset(next);
}

/// The guest's request body on its way out, counted.
pub struct MeteredBody {
    inner: zerofn_runtime::OutboundBody,
    sent: Arc<AtomicU64>,
}

impl MeteredBody {
    pub fn new(inner: zerofn_runtime::OutboundBody) -> Self {
        MeteredBody {
            inner,
            sent: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Body for MeteredBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.sent.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The response body on its way to the guest: it drives the connection, enforces the
/// between-bytes timeout and the deadline, counts what it passes, and reports once when it
/// ends (read to the end, failed, or dropped with the guest's resources).
pub struct EgressBody {
    incoming: hyper::body::Incoming,
    address: SocketAddr,
    status: u16,
    connection: Option<Connection>,
    between: Pin<Box<tokio::time::Sleep>>,
    timeouts: Timeouts,
    received: u64,
    sent: Arc<AtomicU64>,
    on_end: Option<OnEnd>,
}

impl EgressBody {
    fn end(&mut self, how: BodyEnd) {
        if let Some(on_end) = self.on_end.take() {
            on_end(Ended {
                address: self.address,
                status: self.status,
                sent: self.sent.load(Ordering::Relaxed),
                received: self.received,
                body: how,
            });
        }
        // Nothing more will be read: close the connection now rather than when dropped.
        self.connection = None;
    }
}

impl Body for EgressBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        if this.on_end.is_none() {
            return Poll::Ready(None);
        }
        if let Some(connection) = this.connection.as_mut()
            && let Poll::Ready(result) = connection.as_mut().poll(cx)
        {
            this.connection = None;
            if let Err(error) = result {
                let detail = error.to_string();
                this.end(BodyEnd::Failed(detail));
                return Poll::Ready(Some(Err(Error::HttpProtocolError)));
            }
        }
        match Pin::new(&mut this.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received = this.received.saturating_add(data.len() as u64);
                }
                reset(&mut this.between, this.timeouts);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                this.end(BodyEnd::Failed(error.to_string()));
                Poll::Ready(Some(Err(Error::HttpProtocolError)))
            }
            Poll::Ready(None) => {
                this.end(BodyEnd::Complete);
                Poll::Ready(None)
            }
            Poll::Pending => {
                ready!(this.between.as_mut().poll(cx));
                this.end(BodyEnd::Failed("no data within the timeout".into()));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.on_end.is_none() || self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

impl Drop for EgressBody {
    fn drop(&mut self) {
        // A body known to be empty is complete even if nobody read it.
        let how = if self.incoming.is_end_stream() {
            BodyEnd::Complete
        } else {
            BodyEnd::Dropped
        };
        self.end(how);
    }
}
