//! The platform's use of the built-in CA: the server SVIDs of its listeners (the node's on the
//! function listener, the control plane's on the remote control listener) and their rotation,
//! and client SVIDs for callers of `mtls` functions, issued through the control plane and
//! audited.

use crate::control::{self, CertificateSource, IssueCertificateRequest, IssuedClientCertificate};
use crate::platform::Platform;
use crate::problem::Problem;
use crate::server::{RemoteControlConfig, ServerConfig, ServerError};
use http::StatusCode;
use rustls::server::ResolvesServerCert;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use zerofn_audit::{AuditEvent, EventKind, Outcome};
use zerofn_identity::tls::RotatingSvid;
use zerofn_identity::{SpiffeId, SvidRequest};

/// The shortest SVID lifetime accepted (rotation at half of it must stay practical).
pub const MIN_SVID_TTL: Duration = Duration::from_secs(60);
/// The longest: an SVID is a short-lived credential, and there is no revocation list.
pub const MAX_SVID_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long to wait before retrying a failed rotation.
const ROTATION_RETRY: Duration = Duration::from_secs(30);

/// The node's server SVID, `spiffe://<trust domain>/node/<name>`, for the function listener.
pub(crate) fn server_svid(
    ca: &Arc<zerofn_identity::CertificateAuthority>,
    config: &ServerConfig,
) -> Result<RotatingSvid, zerofn_identity::tls::TlsError> {
    listener_svid(
        ca,
        zerofn_identity::node_spiffe_id(&config.trust_domain, &config.node_name),
        config.listen.ip(),
        config.svid_ttl,
    )
}

/// The control plane's SVID, `spiffe://<trust domain>/control`, for the remote control
/// listener at `listen` (`[control]` without certificate files). Same lifetime and rotation as
/// the node's: both are listeners of this platform and nothing distinguishes their exposure.
pub(crate) fn control_svid(
    ca: &Arc<zerofn_identity::CertificateAuthority>,
    config: &ServerConfig,
    listen: SocketAddr,
) -> Result<RotatingSvid, zerofn_identity::tls::TlsError> {
    listener_svid(
        ca,
        zerofn_identity::control_spiffe_id(&config.trust_domain),
        listen.ip(),
        config.svid_ttl,
    )
}

/// A rotating server SVID for `spiffe_id` with `localhost` and the loopback addresses (and
/// `listen`, when it is a specific address) as SANs, so ordinary HTTPS clients can check the
/// host name they dialled.
fn listener_svid(
    ca: &Arc<zerofn_identity::CertificateAuthority>,
    spiffe_id: String,
    listen: IpAddr,
    ttl: Duration,
) -> Result<RotatingSvid, zerofn_identity::tls::TlsError> {
    let mut addresses = vec![
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    if !listen.is_unspecified() && !addresses.contains(&listen) {
        addresses.push(listen);
    }
    let now = SystemTime::now();
    let template =
        SvidRequest::new(spiffe_id, now, ttl).with_server_names(&["localhost"], &addresses);
    RotatingSvid::new(ca.clone(), template, ttl, now)
}

/// The function listener's TLS acceptor, serving `svid`.
pub(crate) fn acceptor(svid: &RotatingSvid) -> Result<tokio_rustls::TlsAcceptor, ServerError> {
    let config = zerofn_identity::tls::function_server_config(svid.resolver().clone())?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The remote control listener's TLS acceptor and, when its certificate comes from the
/// built-in CA, the SVID to keep rotating (with [`rotate_svid`]).
pub(crate) fn control_acceptor(
    ca: &Arc<zerofn_identity::CertificateAuthority>,
    config: &ServerConfig,
    remote: &RemoteControlConfig,
) -> Result<(tokio_rustls::TlsAcceptor, Option<Arc<RotatingSvid>>), ServerError> {
    let (certificate, svid): (Arc<dyn ResolvesServerCert>, _) = match &remote.certificate {
        CertificateSource::Files { cert, key } => (control::load_certificate(cert, key)?, None),
        CertificateSource::Builtin => {
            let svid =
                Arc::new(control_svid(ca, config, remote.listen).map_err(control::TlsError::Svid)?);
            (svid.resolver().clone(), Some(svid))
        }
    };
    let tls = control::server_config(certificate)?;
    Ok((tokio_rustls::TlsAcceptor::from(tls), svid))
}

/// Renews `svid` (a listener's server SVID) half-way through its life until `stopped`;
/// listeners keep running, new handshakes get the new certificate. A failed renewal is
/// retried; the current SVID keeps serving meanwhile.
pub(crate) async fn rotate_svid(svid: Arc<RotatingSvid>, mut stopped: watch::Receiver<bool>) {
    let mut wait = until(svid.renew_at());
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {
                wait = match svid.rotate(SystemTime::now()) {
                    Ok(issued) => {
                        tracing::info!(
                            spiffe_id = %issued.spiffe_id,
                            serial = %issued.serial,
                            "server SVID rotated"
                        );
                        until(svid.renew_at())
                    }
                    Err(error) => {
                        let spiffe_id = svid.resolver().certificate().spiffe_id;
                        tracing::error!(%error, %spiffe_id, "server SVID not rotated; retrying");
                        ROTATION_RETRY
                    }
                };
            }
            _ = stopped.changed() => return,
        }
    }
}

fn until(at: SystemTime) -> Duration {
    at.duration_since(SystemTime::now()).unwrap_or_default()
}

/// Issues a client SVID for `request.public_key_pem` (the private key stays with the caller)
/// and records a `credential.change` event, whether it was issued or refused. Refused: IDs
/// that are not SPIFFE IDs, outside the trust domain, or in the platform's reserved paths (a
/// caller must not be able to pass for a function, a node or the control plane), and lifetimes
/// outside [`MIN_SVID_TTL`]..=[`MAX_SVID_TTL`].
pub async fn issue_client_certificate(
    platform: &Platform,
    request: IssueCertificateRequest,
) -> Result<IssuedClientCertificate, Problem> {
    let ca = platform.ca();
    let result = check_and_issue(ca, &request);
    let event = match &result {
        Ok(issued) => AuditEvent::new(EventKind::CredentialChange, Outcome::Success)
            .reason("client-svid-issued")
            .detail("spiffe_id", issued.spiffe_id.clone())
            .detail("serial", issued.serial.clone())
            .detail("not_after_ms", issued.not_after_ms),
        Err(problem) => AuditEvent::new(EventKind::CredentialChange, Outcome::Denied)
            .reason(problem.code.clone())
            .detail("spiffe_id", request.spiffe_id.clone()),
    };
    platform.audit().record(event).await;
    result.map_err(Problem::already_recorded)
}

fn check_and_issue(
    ca: &zerofn_identity::CertificateAuthority,
    request: &IssueCertificateRequest,
) -> Result<IssuedClientCertificate, Problem> {
    let refuse = |code: &'static str, detail: String| {
        Problem::new(StatusCode::BAD_REQUEST, code, "Certificate refused", detail)
    };
    let id = SpiffeId::parse(&request.spiffe_id)
        .map_err(|e| refuse("spiffe-id-invalid", e.to_string()))?;
    if id.trust_domain() != ca.trust_domain() {
        return Err(refuse(
            "spiffe-id-foreign-trust-domain",
            format!(
                "`{id}` is outside this platform's trust domain `{}`",
                ca.trust_domain()
            ),
        ));
    }
    if id.is_reserved() {
        return Err(refuse(
            "spiffe-id-reserved",
            format!(
                "`{id}` is in a path the platform reserves for its functions, nodes and control plane (/app, /node, /control, /platform); choose another, e.g. spiffe://{}/callers/<name>",
                ca.trust_domain()
            ),
        ));
    }
    let ttl = Duration::from_secs(request.ttl_secs.unwrap_or(DEFAULT_CALLER_TTL_SECS));
    if !(MIN_SVID_TTL..=MAX_SVID_TTL).contains(&ttl) {
        return Err(refuse(
            "svid-ttl-invalid",
            format!(
                "the lifetime must be between {} and {} seconds",
                MIN_SVID_TTL.as_secs(),
                MAX_SVID_TTL.as_secs()
            ),
        ));
    }
    let issued = ca
        .issue_for_public_key(
            &SvidRequest::new(id.to_string(), SystemTime::now(), ttl),
            &request.public_key_pem,
        )
        .map_err(|e| match e {
            zerofn_identity::CaError::PublicKey(_) => refuse("public-key-invalid", e.to_string()),
            other => Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "certificate-issue-failed",
                "Certificate not issued",
                other.to_string(),
            ),
        })?;
    Ok(IssuedClientCertificate {
        spiffe_id: issued.spiffe_id,
        certificate_pem: issued.pem,
        serial: issued.serial,
        not_before_ms: unix_ms(issued.not_before),
        not_after_ms: unix_ms(issued.not_after),
        bundle_pem: ca.bundle_pem().to_string(),
    })
}

/// A caller SVID's lifetime when the request names none.
pub const DEFAULT_CALLER_TTL_SECS: u64 = 3600;

fn unix_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}
