//! JWS compact serialisation with ES256 only (RFC 7515, RFC 7518 §3.4): the header is fixed by
//! the signer, and a verifier accepts nothing but `"alg": "ES256"` with a known `kid`, so `none`,
//! HMAC-with-the-public-key and RSA confusions have nothing to stand on. The signature is the
//! raw 64-byte `r || s` JWS uses, not DER.
//!
//! The ECDSA is ring's (the TLS stack's provider): one token is signed per invocation, and
//! ring signs P-256 several times faster than the pure-Rust p256 crate did (see
//! BENCHMARKS.md, "Caller authentication").

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    UnparsedPublicKey,
};

/// An ES256 signing key (its private half never leaves this process).
pub struct SigningKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl SigningKey {
    /// A fresh key from the system's randomness.
    pub fn generate() -> Result<Self, String> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| "cannot generate a P-256 key".to_string())?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| "cannot load the generated P-256 key".to_string())?;
        Ok(Self { pair, rng })
    }

    /// Its public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(self.pair.public_key().as_ref().to_vec())
    }
}

/// An ES256 public key: the uncompressed SEC1 point `04 || x || y`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKey(Vec<u8>);

impl VerifyingKey {
    /// The uncompressed SEC1 point.
    pub fn sec1(&self) -> &[u8] {
        &self.0
    }

    /// The affine `x` coordinate (32 bytes), as a JWK carries it.
    pub fn x(&self) -> &[u8] {
        self.0.get(1..33).unwrap_or_default()
    }

    /// The affine `y` coordinate (32 bytes).
    pub fn y(&self) -> &[u8] {
        self.0.get(33..65).unwrap_or_default()
    }
}

/// Why a compact JWS was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    #[error("not a compact JWS (three base64url parts)")]
    Malformed,
    #[error("algorithm `{0}` is not accepted (only ES256)")]
    Algorithm(String),
    #[error("unknown signing key `{0}`")]
    UnknownKey(String),
    #[error("the signature does not verify")]
    BadSignature,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    /// Extensions a verifier must understand (RFC 7515 §4.1.11); zerofn understands none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crit: Option<serde_json::Value>,
}

/// `payload` signed with `key` (identified as `kid`).
pub fn sign(key: &SigningKey, kid: &str, payload: &[u8]) -> String {
    let header = Header {
        alg: "ES256".into(),
        kid: kid.into(),
        typ: Some("JWT".into()),
        crit: None,
    };
    let header = serde_json::to_vec(&header).unwrap_or_default();
    let signing_input = format!("{}.{}", B64.encode(header), B64.encode(payload));
    // ring fails to sign only if its randomness fails; an empty signature then never verifies.
    let signature = key
        .pair
        .sign(&key.rng, signing_input.as_bytes())
        .map(|s| s.as_ref().to_vec())
        .unwrap_or_default();
    format!("{signing_input}.{}", B64.encode(signature))
}

/// The payload of `token`, if its header says ES256 with a `kid` that `key_for` knows and the
/// signature verifies with that key.
pub fn verify<'k>(
    token: &str,
    key_for: impl Fn(&str) -> Option<&'k VerifyingKey>,
) -> Result<Vec<u8>, JwsError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed);
    };
    let header_bytes = B64.decode(header).map_err(|_| JwsError::Malformed)?;
    let parsed: Header = serde_json::from_slice(&header_bytes).map_err(|_| JwsError::Malformed)?;
    if parsed.alg != "ES256" {
        return Err(JwsError::Algorithm(parsed.alg));
    }
    if parsed.crit.is_some() {
        return Err(JwsError::Malformed);
    }
    let key = key_for(&parsed.kid).ok_or_else(|| JwsError::UnknownKey(parsed.kid.clone()))?;
    let signature = B64
        .decode(signature)
        .ok()
        .filter(|bytes| bytes.len() == 64)
        .ok_or(JwsError::BadSignature)?;
    let signing_input = &token[..header.len() + 1 + payload.len()];
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.sec1())
        .verify(signing_input.as_bytes(), &signature)
        .map_err(|_| JwsError::BadSignature)?;
    B64.decode(payload).map_err(|_| JwsError::Malformed)
}
