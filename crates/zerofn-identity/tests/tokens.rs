//! JWT-SVIDs with real ES256: what verifies, and every way a token is refused (forged, `none`,
//! HMAC keyed with the public key, expired, wrong audience, replayed after its invocation,
//! presented for another function, signed by a rotated-out key, malformed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::Mac;
use std::time::Duration;
use zerofn_identity::{Issuer, SvidClaims, TokenError};

const A: &str = "spiffe://zerofn.local/app/shop/fn/checkout";
const C: &str = "spiffe://zerofn.local/app/shop/fn/payments";
const AUDIENCE: &str = "spiffe://zerofn.local/platform";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(sub: &str, jti: &str) -> SvidClaims {
    SvidClaims {
        sub: sub.into(),
        aud: vec![AUDIENCE.into()],
        exp: now() + 30,
        iat: now(),
        jti: jti.into(),
        scopes: vec!["invoke:inventory".into()],
        chain: vec![],
    }
}

/// A token with `header` and `payload` as given and `signature` bytes appended.
fn craft(header: serde_json::Value, payload: &SvidClaims, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        B64.encode(header.to_string()),
        B64.encode(serde_json::to_vec(payload).unwrap()),
        B64.encode(signature)
    )
}

fn kid_of(token: &str) -> String {
    let header = B64.decode(token.split('.').next().unwrap()).unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "JWT");
    header["kid"].as_str().unwrap().to_string()
}

#[test]
fn a_live_token_verifies_for_its_function_and_audience() {
    let issuer = Issuer::new().unwrap();
    let (token, _lease) = issuer.mint(&claims(A, "inv-1")).unwrap();
    let verified = issuer.verify(&token, AUDIENCE, A).unwrap();
    assert_eq!(verified, claims(A, "inv-1").clone_with_times(&verified));
    assert_eq!(verified.scopes, ["invoke:inventory"]);
    assert_eq!(issuer.live(), 1);
}

trait SameTimes {
    fn clone_with_times(self, other: &SvidClaims) -> SvidClaims;
}

impl SameTimes for SvidClaims {
    fn clone_with_times(mut self, other: &SvidClaims) -> SvidClaims {
        self.exp = other.exp;
        self.iat = other.iat;
        self
    }
}

#[test]
fn a_token_replayed_after_its_invocation_ended_is_refused() {
    let issuer = Issuer::new().unwrap();
    let (token, lease) = issuer.mint(&claims(A, "inv-2")).unwrap();
    drop(lease);
    assert_eq!(issuer.live(), 0);
    assert_eq!(
        issuer.verify(&token, AUDIENCE, A),
        Err(TokenError::Revoked {
            jti: "inv-2".into()
        })
    );
}

#[test]
fn a_token_of_one_function_presented_for_another_is_refused() {
    let issuer = Issuer::new().unwrap();
    let (token, _lease) = issuer.mint(&claims(A, "inv-3")).unwrap();
    assert!(matches!(
        issuer.verify(&token, AUDIENCE, C),
        Err(TokenError::WrongPresenter { .. })
    ));
}

#[test]
fn expired_and_wrong_audience_tokens_are_refused() {
    let issuer = Issuer::new().unwrap();
    let mut old = claims(A, "inv-4");
    old.exp = now() - 1;
    let (token, _lease) = issuer.mint(&old).unwrap();
    assert!(matches!(
        issuer.verify(&token, AUDIENCE, A),
        Err(TokenError::Expired { .. })
    ));
    let (token, _lease) = issuer.mint(&claims(A, "inv-5")).unwrap();
    assert_eq!(
        issuer.verify(&token, "spiffe://zerofn.local/other", A),
        Err(TokenError::WrongAudience {
            expected: "spiffe://zerofn.local/other".into()
        })
    );
}

#[test]
fn forged_tokens_are_refused() {
    let issuer = Issuer::new().unwrap();
    let (real, _lease) = issuer.mint(&claims(A, "inv-6")).unwrap();
    let kid = kid_of(&real);

    // Signed by another key, claiming the real key's id.
    let attacker = Issuer::new().unwrap();
    let (forged, _l) = attacker.mint(&claims(A, "inv-6")).unwrap();
    let mut parts: Vec<&str> = forged.split('.').collect();
    let real_header = real.split('.').next().unwrap();
    parts[0] = real_header;
    let forged = parts.join(".");
    assert!(matches!(
        issuer.verify(&forged, AUDIENCE, A),
        Err(TokenError::Jws(_))
    ));
    // Signed by another issuer altogether.
    let (other, _l2) = attacker.mint(&claims(A, "inv-6")).unwrap();
    assert!(matches!(
        issuer.verify(&other, AUDIENCE, A),
        Err(TokenError::Jws(_))
    ));

    // `alg: none`, no signature.
    let none = craft(
        serde_json::json!({"alg": "none", "kid": kid}),
        &claims(A, "inv-6"),
        b"",
    );
    assert!(
        issuer
            .verify(&none, AUDIENCE, A)
            .unwrap_err()
            .to_string()
            .contains("`none` is not accepted")
    );

    // HS256 keyed with the public key (the classic algorithm confusion).
    let jwks = issuer.jwks();
    let public = format!("{}", jwks["keys"][0]);
    let header = serde_json::json!({"alg": "HS256", "kid": kid});
    let payload = claims(A, "inv-6");
    let signing_input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(serde_json::to_vec(&payload).unwrap())
    );
    let mut mac = hmac::Hmac::<sha2_like::Sha256>::new_from_slice(public.as_bytes()).unwrap();
    mac.update(signing_input.as_bytes());
    let hs256 = format!(
        "{signing_input}.{}",
        B64.encode(mac.finalize().into_bytes())
    );
    assert!(
        issuer
            .verify(&hs256, AUDIENCE, A)
            .unwrap_err()
            .to_string()
            .contains("`HS256` is not accepted")
    );

    // One changed claim.
    let mut parts: Vec<String> = real.split('.').map(str::to_string).collect();
    let mut tampered = claims(A, "inv-6");
    tampered.scopes.push("invoke:payments".into());
    parts[1] = B64.encode(serde_json::to_vec(&tampered).unwrap());
    assert!(matches!(
        issuer.verify(&parts.join("."), AUDIENCE, A),
        Err(TokenError::Jws(_))
    ));
}

mod sha2_like {
    pub use sha2::Sha256;
}

#[test]
fn malformed_tokens_are_refused_without_panicking() {
    let issuer = Issuer::new().unwrap();
    for token in [
        "",
        "a",
        "a.b",
        "a.b.c.d",
        "!!!.???.***",
        "e30.e30.",
        "eyJhbGciOiJFUzI1NiJ9.bm90IGpzb24.AAAA",
    ] {
        assert!(issuer.verify(token, AUDIENCE, A).is_err(), "{token}");
    }
}

#[test]
fn rotation_keeps_old_tokens_valid_for_the_overlap_and_publishes_both_keys() {
    let issuer = Issuer::new().unwrap();
    let (before, _l1) = issuer.mint(&claims(A, "inv-7")).unwrap();
    issuer.rotate(Duration::from_secs(60)).unwrap();
    let (after, _l2) = issuer.mint(&claims(A, "inv-8")).unwrap();
    assert_ne!(kid_of(&before), kid_of(&after));
    assert!(issuer.verify(&before, AUDIENCE, A).is_ok());
    assert!(issuer.verify(&after, AUDIENCE, A).is_ok());
    let jwks = issuer.jwks();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    for key in keys {
        assert_eq!(key["kty"], "EC");
        assert_eq!(key["crv"], "P-256");
        assert_eq!(key["use"], "jwt-svid");
        assert_eq!(B64.decode(key["x"].as_str().unwrap()).unwrap().len(), 32);
    }

    // With no overlap, the previous key is gone at once: its tokens no longer verify.
    issuer.rotate(Duration::ZERO).unwrap();
    issuer.rotate(Duration::ZERO).unwrap();
    assert!(matches!(
        issuer.verify(&after, AUDIENCE, A),
        Err(TokenError::Jws(_))
    ));
    let published: Vec<String> = issuer.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect();
    assert!(!published.contains(&kid_of(&after)), "{published:?}");
    // The first key is still inside its 60-second overlap.
    assert!(published.contains(&kid_of(&before)), "{published:?}");
    assert_eq!(published.len(), 2);
}

#[test]
fn the_jwks_verifies_tokens_for_third_parties() {
    use p256::ecdsa::signature::Verifier;
    let issuer = Issuer::new().unwrap();
    let (token, _lease) = issuer.mint(&claims(A, "inv-9")).unwrap();
    let jwks = issuer.jwks();
    let key = &jwks["keys"][0];
    let mut sec1 = vec![4u8];
    sec1.extend(B64.decode(key["x"].as_str().unwrap()).unwrap());
    sec1.extend(B64.decode(key["y"].as_str().unwrap()).unwrap());
    let verifying = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap();
    let (input, signature) = token.rsplit_once('.').unwrap();
    let signature = p256::ecdsa::Signature::from_slice(&B64.decode(signature).unwrap()).unwrap();
    verifying.verify(input.as_bytes(), &signature).unwrap();
}

#[test]
fn a_token_with_critical_extensions_is_refused() {
    let issuer = Issuer::new().unwrap();
    let (real, _lease) = issuer.mint(&claims(A, "inv-10")).unwrap();
    let kid = kid_of(&real);
    let crit = craft(
        serde_json::json!({"alg": "ES256", "kid": kid, "crit": ["exp"]}),
        &claims(A, "inv-10"),
        &[0u8; 64],
    );
    assert!(issuer.verify(&crit, AUDIENCE, A).is_err());
}
