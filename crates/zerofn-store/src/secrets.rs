//! Secrets: one sealed value per (app, name), with a version that each rotation increments.
//! The store never sees plaintext: the caller seals (with `zerofn-vault`) under the context
//! [`secret_context`] names, and opens what it reads.

use crate::sealed::SealedTable;
use crate::{Store, StoreError};
use rusqlite::{OptionalExtension, params};
use zerofn_vault::Sealed;

/// A secret's public facts: never its value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SecretRecord {
    pub app: String,
    pub name: String,
    /// 1 when set, then one more at each rotation.
    pub version: i64,
    /// The master key that wraps its data key.
    pub master_key_id: String,
    pub created_ms: i64,
    /// When this version was written (equal to `created_ms` for version 1).
    pub rotated_ms: i64,
}

/// Whether a write creates a secret or replaces one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretWrite {
    /// A new secret: refused if the name exists.
    Create,
    /// A new version of an existing secret: refused if there is none.
    Rotate,
}

/// The context a secret's value is sealed under. It names the app, the secret and the
/// version, so a sealed value copied to another row (another app, another name, or an older
/// version written over a newer one) does not open.
pub fn secret_context(app: &str, name: &str, version: i64) -> String {
    format!("secret:{app}/{name}@{version}")
}

pub(crate) const SEALED: SealedTable = SealedTable {
    table: "secrets",
    key_columns: &["app", "name", "version"],
    context: |row| {
        Ok(secret_context(
            &row.get::<_, String>(0)?,
            &row.get::<_, String>(1)?,
            row.get(2)?,
        ))
    },
};

const COLUMNS: &str = "app, name, version, master_key_id, created_ms, rotated_ms";

fn row_to_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<SecretRecord> {
    Ok(SecretRecord {
        app: row.get(0)?,
        name: row.get(1)?,
        version: row.get(2)?,
        master_key_id: row.get(3)?,
        created_ms: row.get(4)?,
        rotated_ms: row.get(5)?,
    })
}

impl Store {
    /// Writes a secret of `app`: `seal` is given the context of the version being written and
    /// returns the sealed value. One transaction: the version read and the row written cannot
    /// interleave with another write.
    pub fn put_secret<E: From<StoreError>>(
        &self,
        app: &str,
        name: &str,
        write: SecretWrite,
        seal: impl FnOnce(&str) -> Result<Sealed, E>,
    ) -> Result<SecretRecord, E> {
        let mut connection = self.connection();
        let transaction = connection.transaction().map_err(StoreError::from)?;
        let existing: Option<(i64, i64)> = transaction
            .query_row(
                "SELECT version, created_ms FROM secrets WHERE app = ?1 AND name = ?2",
                params![app, name],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(StoreError::from)?;
        let now = crate::now_ms();
        let (version, created_ms) = match (write, existing) {
            (SecretWrite::Create, None) => (1, now),
            (SecretWrite::Rotate, Some((version, created))) => (version.saturating_add(1), created),
            (SecretWrite::Create, Some(_)) => {
                return Err(StoreError::SecretExists {
                    app: app.into(),
                    name: name.into(),
                }
                .into());
            }
            (SecretWrite::Rotate, None) => {
                return Err(StoreError::UnknownSecret {
                    app: app.into(),
                    name: name.into(),
                }
                .into());
            }
        };
        let sealed = seal(&secret_context(app, name, version))?;
        transaction
            .execute(
                "INSERT INTO secrets (app, name, version, master_key_id, wrapped_key, ciphertext, created_ms, rotated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (app, name) DO UPDATE SET version = excluded.version,
                   master_key_id = excluded.master_key_id, wrapped_key = excluded.wrapped_key,
                   ciphertext = excluded.ciphertext, rotated_ms = excluded.rotated_ms",
                params![
                    app,
                    name,
                    version,
                    sealed.master_key_id,
                    sealed.wrapped_key,
                    sealed.ciphertext,
                    created_ms,
                    now
                ],
            )
            .map_err(StoreError::from)?;
        transaction.commit().map_err(StoreError::from)?;
        Ok(SecretRecord {
            app: app.into(),
            name: name.into(),
            version,
            master_key_id: sealed.master_key_id,
            created_ms,
            rotated_ms: now,
        })
    }

    /// The secret `name` of `app` and its sealed value, if it exists.
    pub fn secret(
        &self,
        app: &str,
        name: &str,
    ) -> Result<Option<(SecretRecord, Sealed)>, StoreError> {
        Ok(self
            .connection()
            .query_row(
                &format!(
                    "SELECT {COLUMNS}, wrapped_key, ciphertext FROM secrets WHERE app = ?1 AND name = ?2"
                ),
                params![app, name],
                |row| {
                    let record = row_to_record(row)?;
                    let sealed = Sealed {
                        master_key_id: record.master_key_id.clone(),
                        wrapped_key: row.get(6)?,
                        ciphertext: row.get(7)?,
                    };
                    Ok((record, sealed))
                },
            )
            .optional()?)
    }

    /// Every secret of `app` (facts only), by name.
    pub fn secrets(&self, app: &str) -> Result<Vec<SecretRecord>, StoreError> {
        let connection = self.connection();
        let mut statement = connection.prepare(&format!(
            "SELECT {COLUMNS} FROM secrets WHERE app = ?1 ORDER BY name"
        ))?;
        let rows = statement.query_map(params![app], row_to_record)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Whether `app` has a secret `name`.
    pub fn has_secret(&self, app: &str, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .connection()
            .query_row(
                "SELECT 1 FROM secrets WHERE app = ?1 AND name = ?2",
                params![app, name],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Deletes the secret `name` of `app`; false if there was none.
    pub fn delete_secret(&self, app: &str, name: &str) -> Result<bool, StoreError> {
        let changed = self.connection().execute(
            "DELETE FROM secrets WHERE app = ?1 AND name = ?2",
            params![app, name],
        )?;
        Ok(changed == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerofn_vault::{Keyring, MasterKey};

    fn seal(ring: &Keyring, value: &[u8]) -> impl FnOnce(&str) -> Result<Sealed, StoreError> {
        move |context| {
            ring.seal(context, value)
                .map_err(|e| StoreError::Malformed(e.to_string()))
        }
    }

    #[test]
    fn secrets_are_versioned_sealed_and_rewrapped_in_one_pass() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ring = Keyring::new(MasterKey::generate().unwrap(), Vec::new());
        let first = store
            .put_secret("shop", "key", SecretWrite::Create, seal(&ring, b"v1"))
            .unwrap();
        assert_eq!(first.version, 1);
        assert!(matches!(
            store.put_secret("shop", "key", SecretWrite::Create, seal(&ring, b"x")),
            Err(StoreError::SecretExists { .. })
        ));
        assert!(matches!(
            store.put_secret("shop", "nope", SecretWrite::Rotate, seal(&ring, b"x")),
            Err(StoreError::UnknownSecret { .. })
        ));
        let second = store
            .put_secret("shop", "key", SecretWrite::Rotate, seal(&ring, b"v2"))
            .unwrap();
        assert_eq!(second.version, 2);
        assert_eq!(second.created_ms, first.created_ms);
        let (record, sealed) = store.secret("shop", "key").unwrap().unwrap();
        assert_eq!(record.version, 2);
        let context = secret_context("shop", "key", 2);
        assert_eq!(ring.open(&context, &sealed).unwrap().as_slice(), b"v2");
        assert!(
            ring.open(&secret_context("shop", "key", 1), &sealed)
                .is_err()
        );

        let rotated = ring.rotated().unwrap();
        let outcome = store
            .rewrap_sealed(&mut |context, sealed| rotated.rewrap(context, sealed))
            .unwrap();
        assert_eq!((outcome.rewrapped, outcome.already_current), (1, 0));
        assert!(outcome.unopened.is_empty());
        let (record, sealed) = store.secret("shop", "key").unwrap().unwrap();
        assert_eq!(record.master_key_id, rotated.current().id());
        let retired = rotated.retired();
        assert_eq!(retired.open(&context, &sealed).unwrap().as_slice(), b"v2");

        assert_eq!(store.secrets("shop").unwrap().len(), 1);
        assert!(store.has_secret("shop", "key").unwrap());
        assert!(store.delete_secret("shop", "key").unwrap());
        assert!(!store.delete_secret("shop", "key").unwrap());
        assert!(store.secret("shop", "key").unwrap().is_none());
    }
}
