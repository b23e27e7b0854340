//! The per-request half of `mtls` caller authentication: does the certificate chain a client
//! presented chain to the function's CA bundle, for client authentication, valid now, and name
//! exactly one SPIFFE ID that the function's pattern allows?

use crate::spiffe::{SpiffeId, SpiffeIdError, SpiffeIdPattern};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, TrustAnchor, UnixTime};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The trust anchors and SPIFFE ID pattern of one `mtls` function.
#[derive(Debug, Clone)]
pub struct ClientCertPolicy {
    roots: Vec<TrustAnchor<'static>>,
    pattern: Option<SpiffeIdPattern>,
}

/// Why a [`ClientCertPolicy`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientPolicyError {
    #[error("the CA bundle is not PEM certificates: {0}")]
    Pem(String),
    #[error("the CA bundle holds no certificate")]
    EmptyBundle,
    #[error("certificate {index} of the CA bundle is not usable as a trust anchor: {reason}")]
    Anchor { index: usize, reason: String },
    #[error("the SPIFFE ID pattern is invalid: {0}")]
    Pattern(#[from] SpiffeIdError),
}

/// Who a verified client certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub spiffe_id: SpiffeId,
    pub not_after: SystemTime,
}

/// Why a client certificate was refused. The messages name what was wrong; they never repeat
/// the certificate or anything secret. [`CertRefusal::code`] is stable, for problem types and
/// audit reasons.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertRefusal {
    #[error("no client certificate was presented")]
    Missing,
    #[error("the client certificate expired at {}", show_time(*.not_after))]
    Expired { not_after: SystemTime },
    #[error("the client certificate is not valid before {}", show_time(*.not_before))]
    NotYetValid { not_before: SystemTime },
    #[error("the client certificate was not issued by a trusted CA")]
    UnknownIssuer,
    #[error("the client certificate is not for client authentication (extended key usage)")]
    WrongUsage,
    #[error("the client certificate names no SPIFFE ID (no URI SAN)")]
    NoSpiffeId,
    #[error("the client certificate has {count} URI SANs; an X.509-SVID has exactly one")]
    MultipleUriSans { count: usize },
    #[error("the client certificate's URI SAN is not a valid SPIFFE ID")]
    InvalidSpiffeId,
    #[error("the SPIFFE ID {spiffe_id} is not allowed to call this function")]
    NotAllowed { spiffe_id: String },
    #[error("the client certificate is invalid: {reason}")]
    Invalid { reason: String },
}

impl CertRefusal {
    /// A stable code, e.g. `client-certificate-expired`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "client-certificate-missing",
            Self::Expired { .. } => "client-certificate-expired",
            Self::NotYetValid { .. } => "client-certificate-not-yet-valid",
            Self::UnknownIssuer => "client-certificate-unknown-issuer",
            Self::WrongUsage => "client-certificate-wrong-usage",
            Self::NoSpiffeId => "client-certificate-no-spiffe-id",
            Self::MultipleUriSans { .. } => "client-certificate-multiple-uri-sans",
            Self::InvalidSpiffeId => "client-certificate-invalid-spiffe-id",
            Self::NotAllowed { .. } => "client-certificate-not-allowed",
            Self::Invalid { .. } => "client-certificate-invalid",
        }
    }

    /// Whether the caller proved an identity that is simply not allowed (403), rather than
    /// failing to prove one (401).
    pub fn is_forbidden(&self) -> bool {
        matches!(self, Self::NotAllowed { .. })
    }
}

fn show_time(at: SystemTime) -> String {
    let seconds = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    i64::try_from(seconds)
        .ok()
        .and_then(|s| x509_parser::time::ASN1Time::from_timestamp(s).ok())
        .map_or_else(|| format!("{seconds} (Unix time)"), |t| t.to_string())
}

impl ClientCertPolicy {
    /// Trust the CA certificates of `ca_bundle_pem` (one or more PEM `CERTIFICATE` blocks);
    /// with a pattern (see [`SpiffeIdPattern`]), accept only SPIFFE IDs it matches.
    pub fn from_pem(
        ca_bundle_pem: &[u8],
        spiffe_id_pattern: Option<&str>,
    ) -> Result<Self, ClientPolicyError> {
        let pattern = spiffe_id_pattern.map(SpiffeIdPattern::parse).transpose()?;
        let mut roots = Vec::new();
        for (index, certificate) in CertificateDer::pem_slice_iter(ca_bundle_pem).enumerate() {
            let certificate = certificate.map_err(|e| ClientPolicyError::Pem(e.to_string()))?;
            let anchor = webpki::anchor_from_trusted_cert(&certificate).map_err(|e| {
                ClientPolicyError::Anchor {
                    index,
                    reason: e.to_string(),
                }
            })?;
            roots.push(anchor.to_owned());
        }
        if roots.is_empty() {
            return Err(ClientPolicyError::EmptyBundle);
        }
        Ok(Self { roots, pattern })
    }

    /// Checks the chain a client presented (end-entity first; `None` or empty when it presented
    /// none) at `now`.
    pub fn verify(
        &self,
        peer_chain: Option<&[CertificateDer<'_>]>,
        now: SystemTime,
    ) -> Result<ClientIdentity, CertRefusal> {
        let Some((end_entity, intermediates)) = peer_chain.and_then(|c| c.split_first()) else {
            return Err(CertRefusal::Missing);
        };
        let invalid = |reason: String| CertRefusal::Invalid { reason };
        let certificate = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|e| invalid(format!("unreadable: {e}")))?;
        let seconds = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| invalid("the clock is before 1970".into()))?;
        certificate
            .verify_for_usage(
                // ring's algorithms, without building a provider per request.
                webpki::ALL_VERIFICATION_ALGS,
                &self.roots,
                intermediates,
                UnixTime::since_unix_epoch(seconds),
                webpki::KeyUsage::client_auth(),
                None,
                None,
            )
            .map_err(refusal)?;
        let (_, parsed) = x509_parser::parse_x509_certificate(end_entity)
            .map_err(|e| invalid(format!("unreadable: {e}")))?;
        let uris = crate::tls::uri_sans(&parsed).map_err(invalid)?;
        let uri = match uris.as_slice() {
            [] => return Err(CertRefusal::NoSpiffeId),
            [uri] => uri,
            more => return Err(CertRefusal::MultipleUriSans { count: more.len() }),
        };
        let spiffe_id = SpiffeId::parse(uri).map_err(|_| CertRefusal::InvalidSpiffeId)?;
        if let Some(pattern) = &self.pattern
            && !pattern.matches(&spiffe_id)
        {
            return Err(CertRefusal::NotAllowed {
                spiffe_id: spiffe_id.to_string(),
            });
        }
        let not_after = u64::try_from(parsed.validity().not_after.timestamp()).unwrap_or_default();
        Ok(ClientIdentity {
            spiffe_id,
            not_after: UNIX_EPOCH + Duration::from_secs(not_after),
        })
    }
}

fn refusal(error: webpki::Error) -> CertRefusal {
    let at = |time: UnixTime| UNIX_EPOCH + Duration::from_secs(time.as_secs());
    match error {
        webpki::Error::CertExpired { not_after, .. } => CertRefusal::Expired {
            not_after: at(not_after),
        },
        webpki::Error::CertNotValidYet { not_before, .. } => CertRefusal::NotYetValid {
            not_before: at(not_before),
        },
        // A CA of the same name that did not make the signature (a look-alike CA) is as unknown
        // as one of another name.
        webpki::Error::UnknownIssuer | webpki::Error::InvalidSignatureForPublicKey => {
            CertRefusal::UnknownIssuer
        }
        webpki::Error::RequiredEkuNotFoundContext(_) => CertRefusal::WrongUsage,
        other => CertRefusal::Invalid {
            reason: other.to_string(),
        },
    }
}
