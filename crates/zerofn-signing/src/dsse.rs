//! DSSE (Dead Simple Signing Envelope) v1: the signature covers the pre-authentication encoding
//! of the payload type and payload, so a payload can never be reinterpreted as another type.

use crate::{PrivateKey, PublicKey, SigningError};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

/// `PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths as ASCII
/// decimal: the bytes that are actually signed.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut encoded = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    encoded.extend_from_slice(payload);
    encoded
}

/// A DSSE envelope as JSON: base64 payload, its type, and the signatures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub payload: String,
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    #[serde(default)]
    pub keyid: String,
    pub sig: String,
}

impl Envelope {
    /// Signs `payload` of `payload_type` with `key`.
    pub fn sign(payload_type: &str, payload: &[u8], key: &PrivateKey) -> Self {
        let signature = key.sign(&pae(payload_type, payload));
        Self {
            payload: BASE64.encode(payload),
            payload_type: payload_type.to_string(),
            signatures: vec![EnvelopeSignature {
                keyid: key.public().key_id(),
                sig: BASE64.encode(signature),
            }],
        }
    }

    /// Checks that one of `trusted` signed the envelope and returns that key and the payload.
    ///
    /// A signature by a trusted key that does not verify is an error even if another trusted
    /// signature verifies: an altered envelope is never accepted on a technicality.
    pub fn verify<'k>(
        &self,
        trusted: &'k [PublicKey],
    ) -> Result<(&'k PublicKey, Vec<u8>), SigningError> {
        let malformed = |reason: String| SigningError::Malformed {
            what: "DSSE envelope",
            reason,
        };
        let payload = BASE64
            .decode(self.payload.as_bytes())
            .map_err(|e| malformed(format!("payload is not base64: {e}")))?;
        let signed = pae(&self.payload_type, &payload);
        let mut verified = None;
        for signature in &self.signatures {
            let sig = BASE64
                .decode(signature.sig.as_bytes())
                .map_err(|e| malformed(format!("signature is not base64: {e}")))?;
            let candidates = trusted
                .iter()
                .filter(|key| signature.keyid.is_empty() || key.key_id() == signature.keyid);
            for key in candidates {
                if key.verify(&signed, &sig) {
                    verified = verified.or(Some(key));
                } else if !signature.keyid.is_empty() {
                    return Err(SigningError::BadSignature {
                        key_id: key.key_id(),
                    });
                }
            }
        }
        match verified {
            Some(key) => Ok((key, payload)),
            None if self.signatures.is_empty() => Err(malformed("it has no signatures".into())),
            None => Err(SigningError::UntrustedSigner {
                key_ids: self
                    .signatures
                    .iter()
                    .map(|s| {
                        if s.keyid.is_empty() {
                            "(none)"
                        } else {
                            s.keyid.as_str()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}
