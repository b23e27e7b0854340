//! Workload identity. Each function has a SPIFFE ID, `spiffe://<trust domain>/app/<app>/fn/<fn>`,
//! which the platform derives from the admitted artifact it routes to, never from the guest.
//! Each invocation gets a short-lived token in JWT-SVID form (JWS compact, ES256) naming that
//! ID, its audience, its deadline, the invocation id as `jti`, the capabilities the function was
//! granted and its caller chain. The host holds the token and uses it on the invocation's
//! behalf; it is revoked the moment the invocation ends ([`TokenLease`]), so a copy replayed
//! later, or presented for another function, is refused. Signing keys rotate; the verification
//! keys are published as a JWKS.
//!
//! The built-in CA ([`CertificateAuthority`]) issues X.509 SVIDs to the node, the control plane
//! and callers; [`tls`] serves them (TLS 1.3, rotated without restarting listeners) and
//! [`ClientCertPolicy`] decides, per request, whether a caller's certificate is accepted.

#![forbid(unsafe_code)]

pub mod ca;
mod client_auth;
mod issuer;
mod jws;
mod spiffe;
pub mod tls;

pub use ca::{CaError, CertificateAuthority, IssuedCertificate, SvidKey, SvidRequest, X509Svid};
pub use client_auth::{CertRefusal, ClientCertPolicy, ClientIdentity, ClientPolicyError};
pub use issuer::{Issuer, SvidClaims, TokenError, TokenLease};
pub use spiffe::{SpiffeId, SpiffeIdError, SpiffeIdPattern, control_spiffe_id, node_spiffe_id};
pub use tls::PeerCertificates;

/// `spiffe://<trust domain>/app/<app>/fn/<function>`.
pub fn spiffe_id(trust_domain: &str, app: &str, function: &str) -> String {
    format!("spiffe://{trust_domain}/app/{app}/fn/{function}")
}

/// Whether `name` is a valid SPIFFE trust domain name (lowercase letters, digits, `.`, `-`, `_`).
pub fn is_trust_domain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_domains_are_checked() {
        assert!(is_trust_domain("zerofn.local"));
        assert!(is_trust_domain("prod-1.example_org"));
        assert!(!is_trust_domain("Zerofn.local"));
        assert!(!is_trust_domain("a/b"));
        assert!(!is_trust_domain(""));
        assert_eq!(
            spiffe_id("zerofn.local", "shop", "checkout"),
            "spiffe://zerofn.local/app/shop/fn/checkout"
        );
    }
}
