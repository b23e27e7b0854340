//! Signed checkpoints of the audit chain: now and then the writer signs the chain's head (an
//! event id and its hash) with the node's checkpoint key, as a DSSE envelope. Whoever holds the
//! public key can then tell that the chain up to that event is the one the node wrote, even if
//! someone with write access to the database recomputed every hash after it.
//!
//! The key is an Ed25519 key in a PKCS#8 PEM file (mode 0600) in the data directory, created on
//! first start. A file that others may read is refused: whoever reads it can forge checkpoints.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use zerofn_signing::{Algorithm, Envelope, PrivateKey, PublicKey};
use zerofn_store::CheckpointRow;

/// The name of the checkpoint key file inside the data directory.
pub const CHECKPOINT_KEY_FILE: &str = "audit-checkpoint.key";
/// The DSSE payload type of a checkpoint.
pub const CHECKPOINT_PAYLOAD_TYPE: &str = "application/vnd.zerofn.audit-checkpoint+json";
/// The `_type` inside the payload.
pub const CHECKPOINT_STATEMENT_TYPE: &str = "https://zerofn.dev/audit-checkpoint/v1";

/// What a checkpoint signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointStatement {
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// The id of the chain's head event.
    pub event_id: i64,
    /// Its link hash, lowercase hex.
    pub hash: String,
    /// When the checkpoint was taken (milliseconds since the Unix epoch).
    pub at_ms: i64,
}

/// Why the checkpoint key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointKeyError {
    #[error("audit checkpoint key {}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
    #[error(
        "audit checkpoint key {} may be read by others (mode {mode:o}): whoever reads it can forge checkpoints; run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    Permissions { path: PathBuf, mode: u32 },
}

/// The node's checkpoint signing key.
#[derive(Debug)]
pub struct CheckpointKey {
    key: PrivateKey,
    public: PublicKey,
}

impl CheckpointKey {
    /// Reads the key file at `path`, creating it (a new Ed25519 key, mode 0600) if it does not
    /// exist.
    pub fn load_or_create(path: &Path) -> Result<Self, CheckpointKeyError> {
        if !path.exists() {
            let error = |reason: String| CheckpointKeyError::File {
                path: path.to_path_buf(),
                reason,
            };
            let key = PrivateKey::generate(Algorithm::Ed25519).map_err(|e| error(e.to_string()))?;
            key.write_pem_file(path, None)
                .map_err(|e| error(format!("cannot create it: {e}")))?;
            tracing::info!(path = %path.display(), key_id = %key.public().key_id(), "created the audit checkpoint key");
        }
        Self::load(path)
    }

    /// Reads the key file at `path`, refusing one that others may read.
    pub fn load(path: &Path) -> Result<Self, CheckpointKeyError> {
        let error = |reason: String| CheckpointKeyError::File {
            path: path.to_path_buf(),
            reason,
        };
        let metadata = std::fs::metadata(path).map_err(|e| error(e.to_string()))?;
        if !metadata.is_file() {
            return Err(error("not a regular file".into()));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(CheckpointKeyError::Permissions {
                    path: path.to_path_buf(),
                    mode,
                });
            }
        }
        let pem = zeroize::Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?,
        );
        let key = PrivateKey::from_pem(&pem, None).map_err(|e| error(e.to_string()))?;
        Ok(Self::from_key(key))
    }

    /// A checkpoint key from a key already in memory (tests, benches).
    pub fn from_key(key: PrivateKey) -> Self {
        let public = key.public();
        Self { key, public }
    }

    /// The public half, for verifiers.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// Signs the chain's head.
    pub(crate) fn sign(&self, event_id: i64, hash: &[u8; 32], at_ms: i64) -> CheckpointRow {
        let statement = CheckpointStatement {
            statement_type: CHECKPOINT_STATEMENT_TYPE.into(),
            event_id,
            hash: hex::encode(hash),
            at_ms,
        };
        // Serialising a struct of strings and integers cannot fail.
        let payload = serde_json::to_vec(&statement).unwrap_or_default();
        let envelope = Envelope::sign(CHECKPOINT_PAYLOAD_TYPE, &payload, &self.key);
        CheckpointRow {
            event_id,
            at_ms,
            hash: hash.to_vec(),
            key_id: self.public.key_id(),
            envelope: serde_json::to_string(&envelope).unwrap_or_default(),
        }
    }
}

/// Checks a stored checkpoint's signature against `trusted` and returns what it signed.
pub(crate) fn open(
    row: &CheckpointRow,
    trusted: &[PublicKey],
) -> Result<CheckpointStatement, String> {
    let envelope: Envelope = serde_json::from_str(&row.envelope)
        .map_err(|e| format!("its envelope is not a DSSE envelope: {e}"))?;
    if envelope.payload_type != CHECKPOINT_PAYLOAD_TYPE {
        return Err(format!(
            "its envelope's payload type is `{}`, not `{CHECKPOINT_PAYLOAD_TYPE}`",
            envelope.payload_type
        ));
    }
    let (_, payload) = envelope.verify(trusted).map_err(|e| e.to_string())?;
    let statement: CheckpointStatement = serde_json::from_slice(&payload)
        .map_err(|e| format!("its signed payload is not a checkpoint: {e}"))?;
    if statement.statement_type != CHECKPOINT_STATEMENT_TYPE {
        return Err(format!(
            "its signed payload is a `{}`, not a checkpoint",
            statement.statement_type
        ));
    }
    Ok(statement)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_is_created_owner_only_and_others_may_not_read_it() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join(CHECKPOINT_KEY_FILE);
        let first = CheckpointKey::load_or_create(&path).unwrap_or_else(|e| panic!("{e}"));
        let again = CheckpointKey::load_or_create(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first.public(), again.public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or_default();
            assert_eq!(mode, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640))
                .unwrap_or_else(|e| panic!("{e}"));
            let error = CheckpointKey::load_or_create(&path)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(error.contains("chmod 600"), "{error}");
        }
    }

    #[test]
    fn a_checkpoint_opens_only_with_its_key_and_unaltered() {
        let key = CheckpointKey::from_key(
            PrivateKey::generate(Algorithm::Ed25519).unwrap_or_else(|e| panic!("{e}")),
        );
        let other = PrivateKey::generate(Algorithm::Ed25519).unwrap_or_else(|e| panic!("{e}"));
        let row = key.sign(7, &[9; 32], 1);
        let statement =
            open(&row, std::slice::from_ref(key.public())).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (statement.event_id, statement.hash),
            (7, hex::encode([9; 32]))
        );
        assert!(open(&row, &[other.public()]).is_err());
        let mut forged = row.clone();
        forged.envelope = forged
            .envelope
            .replacen("\"payload\":\"", "\"payload\":\"e", 1);
        assert!(open(&forged, std::slice::from_ref(key.public())).is_err());
    }
}
