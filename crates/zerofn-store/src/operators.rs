//! Operators of the remote control plane: name, role, public key, sealed TOTP secret, the
//! last accepted TOTP time step (the replay guard), failed-login counts, and their sessions
//! (by SHA-256 of the token, never the token).

use crate::{Store, StoreError};
use rusqlite::{OptionalExtension, params};

/// An enrolled operator.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OperatorRecord {
    pub name: String,
    /// `viewer`, `deployer` or `security-admin`.
    pub role: String,
    /// SPKI PEM of the operator key.
    pub public_key: String,
    /// The TOTP secret, sealed by the server (nonce and ciphertext); never serialised.
    #[serde(skip, default)]
    pub totp_sealed: Vec<u8>,
    pub created_ms: i64,
    /// The last TOTP time step accepted for this operator.
    pub last_totp_step: Option<i64>,
    /// Failed logins since the last successful one.
    pub failed_logins: i64,
    pub locked_until_ms: Option<i64>,
}

/// A session issued at login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Lowercase hex SHA-256 of the token.
    pub token_hash: String,
    pub operator: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub revoked_ms: Option<i64>,
}

impl Store {
    /// Enrolls an operator; false if one of that name exists.
    pub fn create_operator(&self, operator: &OperatorRecord) -> Result<bool, StoreError> {
        let changed = self.connection().execute(
            "INSERT OR IGNORE INTO operators (name, role, public_key, totp_sealed, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                operator.name,
                operator.role,
                operator.public_key,
                operator.totp_sealed,
                operator.created_ms
            ],
        )?;
        Ok(changed == 1)
    }

    /// The operator `name`, if enrolled.
    pub fn operator(&self, name: &str) -> Result<Option<OperatorRecord>, StoreError> {
        Ok(self
            .connection()
            .query_row(
                &format!("{SELECT} WHERE name = ?1"),
                params![name],
                row_to_operator,
            )
            .optional()?)
    }

    /// Every operator, by name.
    pub fn operators(&self) -> Result<Vec<OperatorRecord>, StoreError> {
        let connection = self.connection();
        let mut statement = connection.prepare(&format!("{SELECT} ORDER BY name"))?;
        let rows = statement.query_map([], row_to_operator)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes an operator and every session of theirs; false if there was none.
    pub fn remove_operator(&self, name: &str) -> Result<bool, StoreError> {
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        transaction.execute(
            "DELETE FROM operator_sessions WHERE operator = ?1",
            params![name],
        )?;
        let changed =
            transaction.execute("DELETE FROM operators WHERE name = ?1", params![name])?;
        transaction.commit()?;
        Ok(changed == 1)
    }

    /// Accepts TOTP time step `step` for `name` only if it is later than the last accepted
    /// one, in one statement, so two logins racing with the same code cannot both pass.
    pub fn accept_totp_step(&self, name: &str, step: i64) -> Result<bool, StoreError> {
        let changed = self.connection().execute(
            "UPDATE operators SET last_totp_step = ?2
             WHERE name = ?1 AND (last_totp_step IS NULL OR last_totp_step < ?2)",
            params![name, step],
        )?;
        Ok(changed == 1)
    }

    /// Takes one login attempt for `name` unless it is locked out at `now_ms`, in one
    /// statement, so parallel attempts cannot all pass a lock check made before any failure is
    /// written. Every attempt counts until a success resets the count; the one that reaches
    /// `max_failures` locks the operator until `lock_until_ms`. False: locked out, or unknown.
    pub fn reserve_login_attempt(
        &self,
        name: &str,
        now_ms: i64,
        max_failures: i64,
        lock_until_ms: i64,
    ) -> Result<bool, StoreError> {
        let changed = self.connection().execute(
            "UPDATE operators SET failed_logins = failed_logins + 1,
                locked_until_ms = CASE WHEN failed_logins + 1 >= ?3 THEN ?4 ELSE locked_until_ms END
             WHERE name = ?1 AND (locked_until_ms IS NULL OR locked_until_ms <= ?2)",
            params![name, now_ms, max_failures, lock_until_ms],
        )?;
        Ok(changed == 1)
    }

    /// Clears the failure count after a successful login.
    pub fn reset_login_failures(&self, name: &str) -> Result<(), StoreError> {
        self.connection().execute(
            "UPDATE operators SET failed_logins = 0, locked_until_ms = NULL WHERE name = ?1",
            params![name],
        )?;
        Ok(())
    }

    /// Records a session.
    pub fn create_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        self.connection().execute(
            "INSERT INTO operator_sessions (token_hash, operator, created_ms, expires_ms, revoked_ms)
             VALUES (?1, ?2, ?3, ?4, NULL)",
            params![
                session.token_hash,
                session.operator,
                session.created_ms,
                session.expires_ms
            ],
        )?;
        Ok(())
    }

    /// The session whose token hashes to `token_hash`.
    pub fn session(&self, token_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self
            .connection()
            .query_row(
                "SELECT token_hash, operator, created_ms, expires_ms, revoked_ms
                 FROM operator_sessions WHERE token_hash = ?1",
                params![token_hash],
                |row| {
                    Ok(SessionRecord {
                        token_hash: row.get(0)?,
                        operator: row.get(1)?,
                        created_ms: row.get(2)?,
                        expires_ms: row.get(3)?,
                        revoked_ms: row.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    /// Revokes a session; false if there is none or it was revoked already.
    pub fn revoke_session(&self, token_hash: &str, at_ms: i64) -> Result<bool, StoreError> {
        let changed = self.connection().execute(
            "UPDATE operator_sessions SET revoked_ms = ?2 WHERE token_hash = ?1 AND revoked_ms IS NULL",
            params![token_hash, at_ms],
        )?;
        Ok(changed == 1)
    }
}

const SELECT: &str = "SELECT name, role, public_key, totp_sealed, created_ms, last_totp_step, failed_logins, locked_until_ms FROM operators";

fn row_to_operator(row: &rusqlite::Row<'_>) -> rusqlite::Result<OperatorRecord> {
    Ok(OperatorRecord {
        name: row.get(0)?,
        role: row.get(1)?,
        public_key: row.get(2)?,
        totp_sealed: row.get(3)?,
        created_ms: row.get(4)?,
        last_totp_step: row.get(5)?,
        failed_logins: row.get(6)?,
        locked_until_ms: row.get(7)?,
    })
}
