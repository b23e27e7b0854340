//! Key-value data of functions (`wasi:keyvalue`), namespaced by (app, bucket) and encrypted at
//! rest: each value is sealed with its own data key (`zerofn-vault`) bound to
//! `kv:<app>/<bucket>/<key>`, so a row copied or moved under another app, bucket or key does
//! not open.
//!
//! Key names are stored in plaintext (the bytes of the key, as a BLOB): `list-keys` returns
//! them and pages through them in insertion order. Whoever can read `zerofn.db` sees apps,
//! buckets, key names, value sizes and update times, never values (see `docs/security.md`).
//!
//! Every write checks its quota (keys per bucket, bytes per app) in the same `IMMEDIATE`
//! transaction as the write, and `increment` reads, adds and writes in one: the store's single
//! connection and SQLite's write lock make concurrent invocations see each other's commits,
//! never a lost update.

use crate::{Store, StoreError};
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use zerofn_vault::{Keyring, Sealed, VaultError};
use zeroize::Zeroizing;

/// The most a write may make a bucket or an app hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvQuota {
    /// Keys in one bucket of one app.
    pub max_keys_per_bucket: u64,
    /// Key and value bytes (plaintext) across all buckets of one app.
    pub max_bytes_per_app: u64,
}

/// Why a key-value operation failed in the store.
#[derive(Debug, thiserror::Error)]
pub enum KvStoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A value could not be sealed or opened: altered, moved under another name, or sealed
    /// under a master key this node does not hold.
    #[error("{0}")]
    Vault(#[from] VaultError),
    /// The write would put more keys in the bucket than the quota allows.
    #[error("the bucket holds at most {max} keys")]
    BucketFull { max: u64 },
    /// The write would make the app hold more bytes than the quota allows.
    #[error("an app holds at most {max} bytes of keys and values")]
    AppFull { max: u64 },
    /// `increment` found a value that is not a decimal `u64`.
    #[error("the value is not a decimal unsigned 64-bit number, so it cannot be incremented")]
    NotANumber,
    /// `increment` would pass `u64::MAX`.
    #[error("the increment would overflow an unsigned 64-bit number")]
    Overflow,
}

impl From<rusqlite::Error> for KvStoreError {
    fn from(error: rusqlite::Error) -> Self {
        Self::Store(StoreError::Sqlite(error))
    }
}

/// The context a value is sealed under. App and bucket names cannot contain `/`, so the key is
/// everything after the second one, and no two (app, bucket, key) share a context.
pub fn kv_context(app: &str, bucket: &str, key: &str) -> String {
    format!("kv:{app}/{bucket}/{key}")
}

/// Key-value values join master-key rotation (`Store::rewrap_sealed`) under the context they
/// were sealed with. Keys are stored as the bytes of a UTF-8 string.
pub(crate) const SEALED: crate::sealed::SealedTable = crate::sealed::SealedTable {
    table: "kv_entries",
    key_columns: &["app", "bucket", "key"],
    context: |row| {
        let key = String::from_utf8(row.get::<_, Vec<u8>>(2)?).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Blob, Box::new(e))
        })?;
        Ok(kv_context(
            &row.get::<_, String>(0)?,
            &row.get::<_, String>(1)?,
            &key,
        ))
    },
};

/// A value with its key and the bytes it counts against the app's quota.
struct SealedEntry<'a> {
    key: &'a str,
    size: i64,
    sealed: Sealed,
}

impl Store {
    /// The value of `key`, opened; `None` if there is none.
    pub fn kv_get(
        &self,
        keyring: &Keyring,
        app: &str,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, KvStoreError> {
        let sealed = sealed_value(&self.connection(), app, bucket, key)?;
        match sealed {
            None => Ok(None),
            Some(sealed) => Ok(Some(keyring.open(&kv_context(app, bucket, key), &sealed)?)),
        }
    }

    /// Whether `key` has a value (nothing is decrypted).
    pub fn kv_exists(&self, app: &str, bucket: &str, key: &str) -> Result<bool, StoreError> {
        Ok(self
            .connection()
            .query_row(
                "SELECT 1 FROM kv_entries WHERE app = ?1 AND bucket = ?2 AND key = ?3",
                params![app, bucket, key.as_bytes()],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Seals and stores each value under its key, replacing what was there, in one transaction
    /// that also checks `quota`: all are written or none.
    pub fn kv_set_many(
        &self,
        keyring: &Keyring,
        app: &str,
        bucket: &str,
        entries: &[(String, Vec<u8>)],
        quota: KvQuota,
    ) -> Result<(), KvStoreError> {
        // Sealing is done before the lock is taken: it needs no state.
        let sealed = entries
            .iter()
            .map(|(key, value)| {
                Ok(SealedEntry {
                    key,
                    size: entry_size(key, value.len()),
                    sealed: keyring.seal(&kv_context(app, bucket, key), value)?,
                })
            })
            .collect::<Result<Vec<_>, VaultError>>()?;
        let mut connection = self.connection();
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for entry in &sealed {
            write_entry(&tx, app, bucket, entry, quota)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Removes each key; absent keys are skipped.
    pub fn kv_delete_many(
        &self,
        app: &str,
        bucket: &str,
        keys: &[String],
    ) -> Result<(), StoreError> {
        let mut connection = self.connection();
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for key in keys {
            tx.execute(
                "DELETE FROM kv_entries WHERE app = ?1 AND bucket = ?2 AND key = ?3",
                params![app, bucket, key.as_bytes()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// At most `limit` keys of the bucket after position `after` (0 for the first page), in
    /// the order they were first written, and the position to continue from if there may be
    /// more.
    pub fn kv_list_keys(
        &self,
        app: &str,
        bucket: &str,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<String>, Option<u64>), StoreError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let connection = self.connection();
        let mut statement = connection.prepare(
            "SELECT id, key FROM kv_entries WHERE app = ?1 AND bucket = ?2 AND id > ?3
             ORDER BY id LIMIT ?4",
        )?;
        let rows = statement.query_map(
            params![app, bucket, after, i64::try_from(limit).unwrap_or(i64::MAX)],
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?)),
        )?;
        let mut keys = Vec::new();
        let mut last = None;
        for row in rows {
            let (id, key) = row?;
            keys.push(String::from_utf8(key).map_err(|_| {
                StoreError::Malformed("a key-value key is not UTF-8 (store altered)".into())
            })?);
            last = Some(id);
        }
        let cursor = match last {
            Some(id) if keys.len() == limit => u64::try_from(id).ok(),
            _ => None,
        };
        Ok((keys, cursor))
    }

    /// Adds `delta` to the decimal number stored at `key` (an absent key counts as 0) and
    /// returns the sum. Read, add and write are one transaction holding SQLite's write lock, so
    /// concurrent increments never lose one another.
    pub fn kv_increment(
        &self,
        keyring: &Keyring,
        app: &str,
        bucket: &str,
        key: &str,
        delta: u64,
        quota: KvQuota,
    ) -> Result<u64, KvStoreError> {
        let context = kv_context(app, bucket, key);
        let mut connection = self.connection();
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current = match sealed_value(&tx, app, bucket, key)? {
            None => 0,
            Some(sealed) => {
                let value = keyring.open(&context, &sealed)?;
                std::str::from_utf8(&value)
                    .ok()
                    .and_then(|text| text.parse::<u64>().ok())
                    .ok_or(KvStoreError::NotANumber)?
            }
        };
        let next = current.checked_add(delta).ok_or(KvStoreError::Overflow)?;
        let text = next.to_string();
        let entry = SealedEntry {
            key,
            size: entry_size(key, text.len()),
            sealed: keyring.seal(&context, text.as_bytes())?,
        };
        write_entry(&tx, app, bucket, &entry, quota)?;
        tx.commit()?;
        Ok(next)
    }

    /// Re-wraps every value's data key under `keyring`'s current master key (values are not
    /// re-encrypted), in one transaction; returns how many rows changed. A row that does not
    /// open stops the rotation with nothing changed: the old key must stay until it is solved.
    pub fn kv_rewrap(&self, keyring: &Keyring) -> Result<usize, KvStoreError> {
        let mut connection = self.connection();
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let rows = {
            let mut statement = tx.prepare(
                "SELECT id, app, bucket, key, master_key_id, wrapped_key, ciphertext
                 FROM kv_entries WHERE master_key_id != ?1",
            )?;
            let rows = statement.query_map(params![keyring.current().id()], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, Vec<u8>>(3)?,
                    Sealed {
                        master_key_id: row.get(4)?,
                        wrapped_key: row.get(5)?,
                        ciphertext: row.get(6)?,
                    },
                ))
            })?;
            rows.collect::<Result<Vec<_>, _>>()?
        };
        let mut changed = 0;
        for (id, app, bucket, key, sealed) in rows {
            let key = String::from_utf8(key).map_err(|_| {
                StoreError::Malformed("a key-value key is not UTF-8 (store altered)".into())
            })?;
            if let Some(rewrapped) = keyring.rewrap(&kv_context(&app, &bucket, &key), &sealed)? {
                tx.execute(
                    "UPDATE kv_entries SET master_key_id = ?2, wrapped_key = ?3 WHERE id = ?1",
                    params![id, rewrapped.master_key_id, rewrapped.wrapped_key],
                )?;
                changed += 1;
            }
        }
        tx.commit()?;
        Ok(changed)
    }
}

/// Bytes an entry counts against its app's quota.
fn entry_size(key: &str, value_len: usize) -> i64 {
    i64::try_from(key.len().saturating_add(value_len)).unwrap_or(i64::MAX)
}

/// Inserts or replaces one entry inside `tx`, refusing it if it breaks `quota`.
fn write_entry(
    tx: &rusqlite::Transaction<'_>,
    app: &str,
    bucket: &str,
    entry: &SealedEntry<'_>,
    quota: KvQuota,
) -> Result<(), KvStoreError> {
    let key = entry.key.as_bytes();
    let previous: Option<i64> = tx
        .query_row(
            "SELECT size FROM kv_entries WHERE app = ?1 AND bucket = ?2 AND key = ?3",
            params![app, bucket, key],
            |row| row.get(0),
        )
        .optional()?;
    if previous.is_none() {
        let keys: i64 = tx.query_row(
            "SELECT COUNT(*) FROM kv_entries WHERE app = ?1 AND bucket = ?2",
            params![app, bucket],
            |row| row.get(0),
        )?;
        if u64::try_from(keys).unwrap_or(u64::MAX) >= quota.max_keys_per_bucket {
            return Err(KvStoreError::BucketFull {
                max: quota.max_keys_per_bucket,
            });
        }
    }
    let used: i64 = tx.query_row(
        "SELECT COALESCE(SUM(size), 0) FROM kv_entries WHERE app = ?1",
        params![app],
        |row| row.get(0),
    )?;
    let after = used
        .saturating_sub(previous.unwrap_or(0))
        .saturating_add(entry.size);
    if u64::try_from(after).unwrap_or(u64::MAX) > quota.max_bytes_per_app {
        return Err(KvStoreError::AppFull {
            max: quota.max_bytes_per_app,
        });
    }
    tx.execute(
        "INSERT INTO kv_entries
             (app, bucket, key, size, master_key_id, wrapped_key, ciphertext, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (app, bucket, key) DO UPDATE SET
             size = excluded.size, master_key_id = excluded.master_key_id,
             wrapped_key = excluded.wrapped_key, ciphertext = excluded.ciphertext,
             updated_ms = excluded.updated_ms",
        params![
            app,
            bucket,
            key,
            entry.size,
            entry.sealed.master_key_id,
            entry.sealed.wrapped_key,
            entry.sealed.ciphertext,
            crate::now_ms()
        ],
    )?;
    Ok(())
}

/// The sealed value of `key`, if it has one.
fn sealed_value(
    connection: &rusqlite::Connection,
    app: &str,
    bucket: &str,
    key: &str,
) -> rusqlite::Result<Option<Sealed>> {
    connection
        .query_row(
            "SELECT master_key_id, wrapped_key, ciphertext FROM kv_entries
             WHERE app = ?1 AND bucket = ?2 AND key = ?3",
            params![app, bucket, key.as_bytes()],
            |row| {
                Ok(Sealed {
                    master_key_id: row.get(0)?,
                    wrapped_key: row.get(1)?,
                    ciphertext: row.get(2)?,
                })
            },
        )
        .optional()
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerofn_vault::MasterKey;

    const QUOTA: KvQuota = KvQuota {
        max_keys_per_bucket: 3,
        max_bytes_per_app: 64,
    };

    fn store() -> (tempfile::TempDir, Store, Keyring) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let keyring = Keyring::new(MasterKey::generate().unwrap(), Vec::new());
        (dir, store, keyring)
    }

    fn set(store: &Store, keyring: &Keyring, app: &str, bucket: &str, key: &str, value: &[u8]) {
        store
            .kv_set_many(
                keyring,
                app,
                bucket,
                &[(key.to_string(), value.to_vec())],
                QUOTA,
            )
            .unwrap();
    }

    #[test]
    fn values_are_namespaced_by_app_bucket_and_exact_key() {
        let (_dir, store, keyring) = store();
        set(&store, &keyring, "a", "orders", "k", b"one");
        set(&store, &keyring, "b", "orders", "k", b"two");
        let get = |app, bucket, key| {
            store
                .kv_get(&keyring, app, bucket, key)
                .unwrap()
                .map(|v| v.to_vec())
        };
        assert_eq!(get("a", "orders", "k"), Some(b"one".to_vec()));
        assert_eq!(get("b", "orders", "k"), Some(b"two".to_vec()));
        assert_eq!(get("a", "other", "k"), None);
        for key in ["K", "k\0", "k ", "./k", "%6b", ""] {
            assert_eq!(get("a", "orders", key), None, "{key:?}");
        }
    }

    #[test]
    fn a_value_moved_under_another_key_does_not_open() {
        let (_dir, store, keyring) = store();
        set(&store, &keyring, "a", "b", "mine", b"secret");
        set(&store, &keyring, "a", "b", "yours", b"other");
        store
            .connection()
            .execute(
                "UPDATE kv_entries SET wrapped_key = (SELECT wrapped_key FROM kv_entries WHERE key = X'6d696e65'),
                 ciphertext = (SELECT ciphertext FROM kv_entries WHERE key = X'6d696e65')
                 WHERE key = X'796f757273'",
                [],
            )
            .unwrap();
        assert!(matches!(
            store.kv_get(&keyring, "a", "b", "yours"),
            Err(KvStoreError::Vault(VaultError::Tampered))
        ));
    }

    #[test]
    fn quotas_refuse_the_write_and_keep_the_previous_state() {
        let (_dir, store, keyring) = store();
        set(&store, &keyring, "a", "b", "1", b"x");
        set(&store, &keyring, "a", "b", "2", b"x");
        set(&store, &keyring, "a", "b", "3", b"x");
        let fourth = store.kv_set_many(&keyring, "a", "b", &[("4".into(), b"x".to_vec())], QUOTA);
        assert!(matches!(fourth, Err(KvStoreError::BucketFull { max: 3 })));
        // Replacing an existing key is not a new key.
        set(&store, &keyring, "a", "b", "3", b"y");
        let big = store.kv_set_many(&keyring, "a", "c", &[("k".into(), vec![0; 60])], QUOTA);
        assert!(matches!(big, Err(KvStoreError::AppFull { max: 64 })));
        // A batch is all or nothing.
        let batch = store.kv_set_many(
            &keyring,
            "a",
            "c",
            &[("k1".into(), b"x".to_vec()), ("k2".into(), vec![0; 60])],
            QUOTA,
        );
        assert!(batch.is_err());
        assert!(!store.kv_exists("a", "c", "k1").unwrap());
    }

    #[test]
    fn list_keys_pages_in_write_order() {
        let (_dir, store, keyring) = store();
        let quota = KvQuota {
            max_keys_per_bucket: 100,
            max_bytes_per_app: 1 << 20,
        };
        for i in 0..5 {
            store
                .kv_set_many(&keyring, "a", "b", &[(format!("k{i}"), vec![1])], quota)
                .unwrap();
        }
        set(&store, &keyring, "a", "other", "k9", b"x");
        let (first, cursor) = store.kv_list_keys("a", "b", 0, 2).unwrap();
        assert_eq!(first, ["k0", "k1"]);
        let (second, cursor) = store.kv_list_keys("a", "b", cursor.unwrap(), 2).unwrap();
        assert_eq!(second, ["k2", "k3"]);
        let (last, cursor) = store.kv_list_keys("a", "b", cursor.unwrap(), 2).unwrap();
        assert_eq!((last, cursor), (vec!["k4".to_string()], None));
    }

    #[test]
    fn increment_counts_from_zero_and_refuses_what_is_not_a_number() {
        let (_dir, store, keyring) = store();
        assert_eq!(
            store
                .kv_increment(&keyring, "a", "b", "n", 5, QUOTA)
                .unwrap(),
            5
        );
        assert_eq!(
            store
                .kv_increment(&keyring, "a", "b", "n", 2, QUOTA)
                .unwrap(),
            7
        );
        set(&store, &keyring, "a", "b", "t", b"seven");
        assert!(matches!(
            store.kv_increment(&keyring, "a", "b", "t", 1, QUOTA),
            Err(KvStoreError::NotANumber)
        ));
        set(
            &store,
            &keyring,
            "a",
            "b",
            "max",
            u64::MAX.to_string().as_bytes(),
        );
        assert!(matches!(
            store.kv_increment(&keyring, "a", "b", "max", 1, QUOTA),
            Err(KvStoreError::Overflow)
        ));
    }

    #[test]
    fn rewrap_moves_every_value_to_the_current_master_key() {
        let (_dir, store, keyring) = store();
        set(&store, &keyring, "a", "b", "k", b"value");
        let rotated = keyring.rotated().unwrap();
        assert_eq!(store.kv_rewrap(&rotated).unwrap(), 1);
        assert_eq!(store.kv_rewrap(&rotated).unwrap(), 0, "already current");
        let retired = rotated.retired();
        assert_eq!(
            store
                .kv_get(&retired, "a", "b", "k")
                .unwrap()
                .map(|v| v.to_vec()),
            Some(b"value".to_vec())
        );
        assert!(
            store.kv_get(&keyring, "a", "b", "k").is_err(),
            "old key alone"
        );
    }
}
