//! Workload identity. Each function has a SPIFFE ID, `spiffe://<trust domain>/app/<app>/fn/<fn>`,
//! which the platform derives from the admitted artifact it routes to, never from the guest.
//! Each invocation gets a short-lived token in JWT-SVID form (JWS compact, ES256) naming that
//! ID, its audience, its deadline, the invocation id as `jti`, the capabilities the function was
//! granted and its caller chain. The host holds the token and uses it on the invocation's
//! behalf; it is revoked the moment the invocation ends ([`TokenLease`]), so a copy replayed
//! later, or presented for another function, is refused. Signing keys rotate; the verification
//! keys are published as a JWKS.

#![forbid(unsafe_code)]

mod issuer;
mod jws;

pub use issuer::{Issuer, SvidClaims, TokenError, TokenLease};

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
