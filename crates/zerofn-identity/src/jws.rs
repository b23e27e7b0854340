//! JWS compact serialisation with ES256 only (RFC 7515, RFC 7518 §3.4): the header is fixed by
//! the signer, and a verifier accepts nothing but `"alg": "ES256"` with a known `kid`, so `none`,
//! HMAC-with-the-public-key and RSA confusions have nothing to stand on. The signature is the
//! raw 64-byte `r || s` JWS uses, not DER.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};

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
    let signature: Signature = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", B64.encode(signature.to_bytes()))
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
        .and_then(|bytes| Signature::from_slice(&bytes).ok())
        .ok_or(JwsError::BadSignature)?;
    let signing_input = &token[..header.len() + 1 + payload.len()];
    key.verify(signing_input.as_bytes(), &signature)
        .map_err(|_| JwsError::BadSignature)?;
    B64.decode(payload).map_err(|_| JwsError::Malformed)
}
