//! The node's master keys, shared by everything the platform seals at rest (secrets today;
//! any table in `zerofn_store::SEALED_TABLES`), and master-key rotation without downtime.
//!
//! Consistency between keys and rows: code that reads or writes a sealed row does so inside
//! [`Vault::with_keyring`], which holds the keyring in force for the duration. A rotation
//! changes keys only between such sections, in three steps: (1) a new current key is written
//! to the key file with the old one kept as previous, and put in force (both open); (2) every
//! sealed row is re-wrapped under the new key in one store transaction; (3) the old key is
//! removed from the file and from memory. A reader therefore always holds a keyring that
//! opens the row it reads, and a writer's row is either re-wrapped in step 2 or already
//! under the new key. A crash between steps leaves the file with a previous key, and the
//! next start finishes the rotation ([`Vault::finish_rotation`]).

use std::sync::{Arc, Mutex, RwLock};
use zerofn_store::{Rewrapped, Store};
use zerofn_vault::{Keyring, MasterKeySource, VaultError};

/// The key file's name in the data directory when the config names none.
pub const MASTER_KEY_FILE: &str = "master.key";

/// The master keys in force and where they are kept.
pub struct Vault {
    source: MasterKeySource,
    keyring: RwLock<Arc<Keyring>>,
    /// One rotation at a time.
    rotation: Mutex<()>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("source", &self.source)
            .field("current_key_id", &self.current_key_id())
            .finish()
    }
}

/// What a rotation (or the finishing of one) did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Rotation {
    /// The keys retired (no row is sealed under them any more, except `unopened` ones).
    pub retired_key_ids: Vec<String>,
    /// The key every row is now wrapped by.
    pub current_key_id: String,
    #[serde(flatten)]
    pub rows: Rewrapped,
    /// Whether the retired keys are still in the environment (`ZEROFN_MASTER_KEY_PREVIOUS`),
    /// for the operator to remove.
    pub previous_still_configured: bool,
}

/// Why a rotation did not complete. The keys in force still open every row.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(
        "re-wrapping the sealed rows failed ({0}); the new key is current and the old one is kept, so everything still opens: run `zerofn secrets rotate-master` again, or restart, to finish"
    )]
    Store(zerofn_store::StoreError),
}

impl Vault {
    /// Loads the keys from `source` (creating a key file with a new key on first use).
    pub fn open(source: MasterKeySource) -> Result<Self, VaultError> {
        let keyring = source.load_or_create()?;
        Ok(Self {
            source,
            keyring: RwLock::new(Arc::new(keyring)),
            rotation: Mutex::new(()),
        })
    }

    /// Where the keys are kept.
    pub fn source(&self) -> &MasterKeySource {
        &self.source
    }

    /// The id of the key new items are sealed under.
    pub fn current_key_id(&self) -> String {
        self.snapshot().current().id().to_string()
    }

    fn snapshot(&self) -> Arc<Keyring> {
        self.keyring
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Runs `f` with the keyring in force, and keeps it in force until `f` returns: read or
    /// write sealed rows inside `f`, so that keys and rows agree. Blocking: call it off the
    /// async workers.
    pub fn with_keyring<T>(&self, f: impl FnOnce(&Keyring) -> T) -> T {
        let guard = self
            .keyring
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&guard)
    }

    fn put_in_force(&self, keyring: Keyring) -> Arc<Keyring> {
        let keyring = Arc::new(keyring);
        *self
            .keyring
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = keyring.clone();
        keyring
    }

    /// Rotates the master key: a new current key, every sealed row re-wrapped, the old key
    /// retired. Serving goes on throughout. Only a key file can be rotated this way; keys in
    /// the environment are changed by the operator (new key in `ZEROFN_MASTER_KEY`, old in
    /// `ZEROFN_MASTER_KEY_PREVIOUS`, restart). Blocking.
    pub fn rotate(&self, store: &Store) -> Result<Rotation, RotationError> {
        let _one = self
            .rotation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.source == MasterKeySource::Environment {
            // `store` explains what to do instead.
            self.source.store(&self.snapshot())?;
        }
        let rotated = self.snapshot().rotated()?;
        self.source.store(&rotated)?;
        let rotated = self.put_in_force(rotated);
        self.retire(store, &rotated)
    }

    /// Finishes a rotation that a crash (or the operator, through the environment) left
    /// half done: re-wraps rows still under a previous key and retires those keys. `None`
    /// when there was nothing to finish. Blocking.
    pub fn finish_rotation(&self, store: &Store) -> Result<Option<Rotation>, RotationError> {
        let _one = self
            .rotation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let keyring = self.snapshot();
        if keyring.previous().is_empty() {
            return Ok(None);
        }
        self.retire(store, &keyring).map(Some)
    }

    /// Steps 2 and 3: every row under `keyring`'s current key, then its previous keys gone.
    fn retire(&self, store: &Store, keyring: &Keyring) -> Result<Rotation, RotationError> {
        let rows = store
            .rewrap_sealed(&mut |context, sealed| keyring.rewrap(context, sealed))
            .map_err(RotationError::Store)?;
        let retired = keyring.retired();
        let previous_still_configured = match self.source {
            MasterKeySource::File(_) => {
                self.source.store(&retired)?;
                false
            }
            MasterKeySource::Environment => true,
        };
        let rotation = Rotation {
            retired_key_ids: keyring
                .previous()
                .iter()
                .map(|k| k.id().to_string())
                .collect(),
            current_key_id: keyring.current().id().to_string(),
            rows,
            previous_still_configured,
        };
        self.put_in_force(retired);
        Ok(rotation)
    }
}
