//! The embedded store: apps, their immutable versions, which version is active, and the
//! append-only audit events and guest logs, in one SQLite database inside the data directory.
//!
//! Functions' key-value data lives here too, each value sealed under its own data key
//! (`zerofn-vault`).
//!
//! Durability is the point of this crate: a deploy is one transaction (component blobs, the
//! version record and the new active pointer commit together or not at all), so a crash
//! mid-deploy leaves the previous version serving. Everything else in zerofn treats this crate as
//! the only place state lives.

#![forbid(unsafe_code)]

mod api_keys;
mod audit;
mod error;
mod incidents;
mod kv;
mod operators;
mod queue;
mod schema;
mod sealed;
mod secrets;
mod versions;

pub use api_keys::ApiKeyRecord;
pub use audit::{
    AuditQuery, AuditRow, AuditTail, ChainedAuditRow, CheckpointRow, LogQuery, LogRow, NewAuditRow,
    StoredAuditRow,
};
pub use error::StoreError;
pub use incidents::{IncidentAction, IncidentQuery, IncidentRecord, QuarantineRecord};
pub use kv::{KvQuota, KvStoreError, kv_context};
pub use operators::{OperatorRecord, SessionRecord};
pub use queue::QueueMessage;
pub use sealed::{Rewrap, Rewrapped, SEALED_TABLES, SealedTable, UnopenedRow};
pub use secrets::{SecretRecord, SecretWrite, secret_context};
pub use versions::{Activation, AppSummary, Attestation, ComponentRef, NewVersion, VersionRecord};

use rusqlite::Connection;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The name of the database file inside the data directory.
pub const DATABASE_FILE: &str = "zerofn.db";

/// A handle to the embedded store. Cheap to clone; all clones share one connection.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    connection: Mutex<Connection>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) the store in `data_dir`. The directory is created with mode
    /// 0700 because it also holds the control socket and, later, keys.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        create_private_dir(data_dir)?;
        let path = data_dir.join(DATABASE_FILE);
        let connection = Connection::open(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        schema::prepare(&connection)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                connection: Mutex::new(connection),
            }),
        })
    }

    /// The path of the database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn connection(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll
        // back on drop), so a poisoned lock is safe to keep using.
        self.inner
            .connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The content digest zerofn uses everywhere: `sha256:` followed by lowercase hex.
pub fn content_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Creates `dir` (and parents) with mode 0700, or tightens it to 0700 if it exists.
pub fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    let io_error = |source| StoreError::DataDir {
        path: dir.to_path_buf(),
        source,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_error)?;
        }
        let mode = std::fs::metadata(dir)
            .map_err(io_error)?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io_error)?;
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir).map_err(io_error)?;
    Ok(())
}

/// Milliseconds since the Unix epoch, the timestamp unit of every record.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
