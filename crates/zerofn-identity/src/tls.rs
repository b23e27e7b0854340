//! TLS for the platform's listeners: a TLS 1.3-only rustls server configuration (ring) whose
//! certificate is the current server SVID, swapped by rotation without touching the listener,
//! and a client-certificate verifier that checks only proof of possession during the handshake
//! and leaves the decision to the request (see [`crate::client_auth`]).

use crate::ca::{CaError, CertificateAuthority, IssuedCertificate, SvidRequest, X509Svid};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// The one crypto provider of the platform's TLS: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error("the CA bundle is unusable: {0}")]
    Bundle(String),
}

/// The peer certificate chain of the connection a request came in on (end-entity first), as
/// the client presented it: proof of possession of its key was checked in the handshake, the
/// chain itself was not. The trigger puts it in the request's `http::Extensions` when the
/// client sent one; a request without it came without a certificate.
#[derive(Debug, Clone)]
pub struct PeerCertificates(pub Arc<[CertificateDer<'static>]>);

/// Serves the current SVID to every handshake; [`SvidResolver::replace`] swaps it for the next
/// handshakes while connections already made keep theirs.
#[derive(Debug)]
pub struct SvidResolver {
    current: RwLock<(Arc<CertifiedKey>, IssuedCertificate)>,
}

impl SvidResolver {
    pub fn new(svid: &X509Svid) -> Result<Self, TlsError> {
        Ok(Self {
            current: RwLock::new((certified_key(svid)?, svid.certificate.clone())),
        })
    }

    pub fn replace(&self, svid: &X509Svid) -> Result<(), TlsError> {
        let key = certified_key(svid)?;
        // A poisoned lock only means a writer panicked between two whole assignments.
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = (key, svid.certificate.clone());
        Ok(())
    }

    /// The certificate being served.
    pub fn certificate(&self) -> IssuedCertificate {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }
}

impl ResolvesServerCert for SvidResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .0
                .clone(),
        )
    }
}

fn certified_key(svid: &X509Svid) -> Result<Arc<CertifiedKey>, TlsError> {
    let key = CertifiedKey::from_der(
        vec![svid.certificate.der.clone()],
        svid.private_key(),
        &provider(),
    )?;
    Ok(Arc::new(key))
}

/// A server SVID that the CA renews: what a listener serves, and what its rotation task calls.
#[derive(Debug)]
pub struct RotatingSvid {
    ca: Arc<CertificateAuthority>,
    template: SvidRequest,
    ttl: Duration,
    resolver: Arc<SvidResolver>,
}

impl RotatingSvid {
    /// Issues the first SVID from `template` (its validity is replaced at each issue: from `now`
    /// for `ttl`).
    pub fn new(
        ca: Arc<CertificateAuthority>,
        template: SvidRequest,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<Self, TlsError> {
        let svid = ca.issue(&Self::request(&template, ttl, now))?;
        Ok(Self {
            ca,
            template,
            ttl,
            resolver: Arc::new(SvidResolver::new(&svid)?),
        })
    }

    fn request(template: &SvidRequest, ttl: Duration, now: SystemTime) -> SvidRequest {
        SvidRequest {
            dns_names: template.dns_names.clone(),
            ip_addresses: template.ip_addresses.clone(),
            ..SvidRequest::new(template.spiffe_id.clone(), now, ttl)
        }
    }

    pub fn resolver(&self) -> &Arc<SvidResolver> {
        &self.resolver
    }

    /// When the current SVID should be replaced: half-way through the lifetime it was issued
    /// for, counted from its issue. Not from `not_before`: that is backdated by the clock skew,
    /// and with a lifetime near the skew the midpoint would be the moment of issue, so the
    /// rotation task would reissue without pause.
    pub fn renew_at(&self) -> SystemTime {
        let not_after = self.resolver.certificate().not_after;
        not_after.checked_sub(self.ttl / 2).unwrap_or(not_after)
    }

    /// Issues a new SVID and serves it from the next handshake on. On failure the current one
    /// keeps serving (and the caller retries before it expires).
    pub fn rotate(&self, now: SystemTime) -> Result<IssuedCertificate, TlsError> {
        let svid = self
            .ca
            .issue(&Self::request(&self.template, self.ttl, now))?;
        self.resolver.replace(&svid)?;
        Ok(svid.certificate)
    }
}

/// The function listener's server configuration: TLS 1.3 only, the rotating SVID, HTTP/1.1,
/// and client certificates offered but not required ([`DeferredClientAuth`]).
pub fn function_server_config(
    resolver: Arc<SvidResolver>,
) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(DeferredClientAuth::new()))
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Asks every client for a certificate but admits clients without one: on the function
/// listener, whether a certificate is needed, and which CA and SPIFFE IDs are accepted, depends
/// on the function the request is routed to, which the handshake cannot know. A client that
/// does present a certificate must prove it holds the key (the TLS 1.3 `CertificateVerify`
/// signature); the chain is validated per request by a
/// [`ClientCertPolicy`](crate::ClientCertPolicy).
#[derive(Debug)]
pub struct DeferredClientAuth {
    provider: Arc<CryptoProvider>,
}

impl DeferredClientAuth {
    pub fn new() -> Self {
        Self {
            provider: provider(),
        }
    }
}

impl Default for DeferredClientAuth {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientCertVerifier for DeferredClientAuth {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    /// No hints: functions trust different CAs, and an empty list tells clients to send any
    /// certificate they have.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Deferred: the request's function decides (ClientCertPolicy::verify).
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // The configuration allows TLS 1.3 only; this is never reached, and refuses if it is.
        Err(rustls::Error::General("TLS 1.2 is not offered".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS 1.3 client configuration (ring) that trusts the CA certificates of `bundle_pem` and
/// presents `identity` when the server asks for a certificate: how a node, a tool or a test
/// reaches a listener of this platform.
pub fn client_config(
    bundle_pem: &[u8],
    identity: Option<Arc<dyn rustls::client::ResolvesClientCert>>,
) -> Result<rustls::ClientConfig, TlsError> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(bundle_pem) {
        roots
            .add(certificate.map_err(|e| TlsError::Bundle(e.to_string()))?)
            .map_err(|e| TlsError::Bundle(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(TlsError::Bundle("no certificate".into()));
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots);
    Ok(match identity {
        Some(identity) => builder.with_client_cert_resolver(identity),
        None => builder.with_no_client_auth(),
    })
}

/// A client identity for [`client_config`]: a certificate chain and its key (which must match).
pub fn client_identity(
    chain: Vec<CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> Result<Arc<dyn rustls::client::ResolvesClientCert>, TlsError> {
    let key = CertifiedKey::from_der(chain, key, &provider())?;
    Ok(Arc::new(rustls::sign::SingleCertAndKey::from(key)))
}

/// The URI SANs of a certificate.
pub(crate) fn uri_sans(
    certificate: &x509_parser::certificate::X509Certificate<'_>,
) -> Result<Vec<String>, String> {
    let sans = certificate
        .subject_alternative_name()
        .map_err(|e| format!("unreadable subjectAltName: {e}"))?;
    Ok(sans
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    x509_parser::extensions::GeneralName::URI(uri) => Some(uri.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}
