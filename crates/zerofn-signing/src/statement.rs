//! in-toto Statement v1: what was signed (subjects, by digest) and the claim about it (the
//! predicate, here SLSA provenance).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `_type` of an in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The DSSE payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// An in-toto Statement v1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    #[serde(default)]
    pub predicate: serde_json::Value,
}

/// A subject: a name and its digests (`{"sha256": "<hex>"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    pub digest: BTreeMap<String, String>,
}

impl Subject {
    /// A subject identified by the SHA-256 of its bytes.
    pub fn sha256(name: impl Into<String>, bytes: &[u8]) -> Self {
        use sha2::{Digest, Sha256};
        Self {
            name: name.into(),
            digest: BTreeMap::from([("sha256".to_string(), hex::encode(Sha256::digest(bytes)))]),
        }
    }

    /// The subject's SHA-256, if it has one.
    pub fn sha256_hex(&self) -> Option<&str> {
        self.digest.get("sha256").map(String::as_str)
    }
}

impl Statement {
    /// A statement about `subject` with `predicate` of `predicate_type`.
    pub fn new(subject: Vec<Subject>, predicate_type: &str, predicate: serde_json::Value) -> Self {
        Self {
            statement_type: STATEMENT_TYPE.to_string(),
            subject,
            predicate_type: predicate_type.to_string(),
            predicate,
        }
    }
}
