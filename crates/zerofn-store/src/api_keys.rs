//! API keys: who may call `auth.api-key` functions. The store keeps a key's id, scope, expiry
//! and revocation, and a SHA-256 of its secret, never the secret.

use crate::{Store, StoreError};
use rusqlite::{OptionalExtension, params};

/// A stored API key (without its secret).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApiKeyRecord {
    pub id: String,
    pub app: String,
    /// The functions it may call; `["*"]` means every function of the app. Empty (also what
    /// an unreadable row gives) allows nothing.
    pub functions: Vec<String>,
    pub name: String,
    /// Lowercase hex SHA-256 of the secret.
    #[serde(skip_serializing, default)]
    pub secret_hash: String,
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
}

impl Store {
    /// Records a new key.
    pub fn create_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        let functions = serde_json::to_string(&key.functions).unwrap_or_else(|_| "[]".into());
        self.connection().execute(
            "INSERT INTO api_keys (id, app, functions, name, secret_hash, created_ms, expires_ms, revoked_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL)",
            params![
                key.id,
                key.app,
                functions,
                key.name,
                key.secret_hash,
                key.created_ms,
                key.expires_ms
            ],
        )?;
        Ok(())
    }

    /// The key with `id`, if there is one.
    pub fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        Ok(self
            .connection()
            .query_row(&format!("{SELECT} WHERE id = ?1"), params![id], row_to_key)
            .optional()?)
    }

    /// Every key of `app`, newest first.
    pub fn api_keys(&self, app: &str) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let connection = self.connection();
        let mut statement = connection.prepare(&format!(
            "{SELECT} WHERE app = ?1 ORDER BY created_ms DESC, id"
        ))?;
        let rows = statement.query_map(params![app], row_to_key)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revokes the key `id` at `at_ms`; false if there is no such key or it was revoked already.
    pub fn revoke_api_key(&self, id: &str, at_ms: i64) -> Result<bool, StoreError> {
        let changed = self.connection().execute(
            "UPDATE api_keys SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms IS NULL",
            params![id, at_ms],
        )?;
        Ok(changed == 1)
    }
}

const SELECT: &str = "SELECT id, app, functions, name, secret_hash, created_ms, expires_ms, revoked_ms FROM api_keys";

fn row_to_key(row: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    let functions: String = row.get(2)?;
    Ok(ApiKeyRecord {
        id: row.get(0)?,
        app: row.get(1)?,
        // An unreadable scope allows nothing rather than everything.
        functions: serde_json::from_str(&functions).unwrap_or_default(),
        name: row.get(3)?,
        secret_hash: row.get(4)?,
        created_ms: row.get(5)?,
        expires_ms: row.get(6)?,
        revoked_ms: row.get(7)?,
    })
}
