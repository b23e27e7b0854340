//! Sigstore bundle v0.3 for key-pair signing: the DSSE envelope plus a hint naming the public
//! key, with no certificate and no transparency-log entry (verification is against keys the
//! operator trusts, offline).

use crate::statement::{IN_TOTO_PAYLOAD_TYPE, STATEMENT_TYPE, Statement};
use crate::{Envelope, PrivateKey, PublicKey, SigningError};
use serde::{Deserialize, Serialize};

/// The media type of a Sigstore bundle v0.3 in JSON.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// A Sigstore bundle v0.3 (JSON form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    pub media_type: String,
    pub verification_material: VerificationMaterial,
    pub dsse_envelope: Envelope,
}

/// What a verifier needs besides the envelope: here, which key to use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationMaterial {
    pub public_key: PublicKeyIdentifier,
    #[serde(default)]
    pub tlog_entries: Vec<serde_json::Value>,
}

/// `publicKey.hint`: the key id of the signer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyIdentifier {
    pub hint: String,
}

/// What a verified bundle proves: who signed (by key id) which statement.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedBundle {
    pub key_id: String,
    pub statement: Statement,
}

impl Bundle {
    /// Signs `statement` with `key` into a bundle.
    pub fn sign(statement: &Statement, key: &PrivateKey) -> Result<Self, SigningError> {
        let payload = serde_json::to_vec(statement).map_err(|e| SigningError::Malformed {
            what: "in-toto statement",
            reason: e.to_string(),
        })?;
        Ok(Self {
            media_type: BUNDLE_MEDIA_TYPE.to_string(),
            verification_material: VerificationMaterial {
                public_key: PublicKeyIdentifier {
                    hint: key.public().key_id(),
                },
                tlog_entries: Vec::new(),
            },
            dsse_envelope: Envelope::sign(IN_TOTO_PAYLOAD_TYPE, &payload, key),
        })
    }

    /// Reads a bundle from JSON, refusing other media types.
    pub fn from_json(text: &str) -> Result<Self, SigningError> {
        let bundle: Self = serde_json::from_str(text).map_err(|e| SigningError::Malformed {
            what: "Sigstore bundle",
            reason: e.to_string(),
        })?;
        if bundle.media_type != BUNDLE_MEDIA_TYPE {
            return Err(SigningError::Malformed {
                what: "Sigstore bundle",
                reason: format!(
                    "media type `{}` is not `{BUNDLE_MEDIA_TYPE}`",
                    bundle.media_type
                ),
            });
        }
        Ok(bundle)
    }

    /// The bundle as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Verifies the envelope against `trusted` keys and decodes the in-toto statement it
    /// carries.
    pub fn verify(&self, trusted: &[PublicKey]) -> Result<VerifiedBundle, SigningError> {
        let malformed = |reason: String| SigningError::Malformed {
            what: "in-toto statement",
            reason,
        };
        if self.dsse_envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
            return Err(malformed(format!(
                "payload type `{}` is not `{IN_TOTO_PAYLOAD_TYPE}`",
                self.dsse_envelope.payload_type
            )));
        }
        let (key, payload) = self.dsse_envelope.verify(trusted)?;
        let statement: Statement =
            serde_json::from_slice(&payload).map_err(|e| malformed(e.to_string()))?;
        if statement.statement_type != STATEMENT_TYPE {
            return Err(malformed(format!(
                "`_type` is `{}`, not `{STATEMENT_TYPE}`",
                statement.statement_type
            )));
        }
        Ok(VerifiedBundle {
            key_id: key.key_id(),
            statement,
        })
    }
}
