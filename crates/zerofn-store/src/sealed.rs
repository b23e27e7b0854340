//! The tables whose rows hold values sealed by `zerofn-vault`, and the master-key re-wrap that
//! covers all of them in one transaction.
//!
//! A sealed row has three columns, `master_key_id TEXT`, `wrapped_key BLOB` and `ciphertext
//! BLOB`, plus the columns that name it, from which the context string it was sealed under is
//! rebuilt. A table joins master-key rotation by having an entry in [`SEALED_TABLES`]; nothing
//! else is needed.

use crate::{Store, StoreError};
use rusqlite::params;
use zerofn_vault::{Sealed, VaultError};

/// A table of sealed rows.
pub struct SealedTable {
    /// The table's name.
    pub table: &'static str,
    /// The columns that name a row. They are selected first, in this order, so `context` reads
    /// them at indices `0..key_columns.len()`.
    pub key_columns: &'static [&'static str],
    /// The context string the row was sealed under, from its key columns. It must be exactly
    /// what the code that sealed the row used, or the row does not open.
    pub context: fn(&rusqlite::Row<'_>) -> rusqlite::Result<String>,
}

impl std::fmt::Debug for SealedTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedTable")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

/// Re-wraps one sealed row, given the context it was sealed under: the row under the current
/// master key, or `None` when it already is (`zerofn_vault::Keyring::rewrap`).
pub type Rewrap<'a> = dyn FnMut(&str, &Sealed) -> Result<Option<Sealed>, VaultError> + 'a;

/// Every table holding sealed rows. A master-key rotation re-wraps each of them.
pub const SEALED_TABLES: &[SealedTable] = &[crate::secrets::SEALED, crate::kv::SEALED];

/// What a re-wrap did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rewrapped {
    /// Rows whose data key is now wrapped by the current master key.
    pub rewrapped: u64,
    /// Rows that already were.
    pub already_current: u64,
    /// Rows that did not open (altered, or sealed under a key this node does not hold). They
    /// are left as they are: they were unreadable before and stay so.
    pub unopened: Vec<UnopenedRow>,
}

/// A sealed row the re-wrap could not open.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UnopenedRow {
    pub table: String,
    /// The row's context string (names it, e.g. `secret:shop/stripe_key@3`).
    pub context: String,
    pub master_key_id: String,
    pub error: String,
}

impl Store {
    /// Re-wraps every sealed row of every table in [`SEALED_TABLES`] with `rewrap` (which
    /// returns `None` for a row already under the current key), in one transaction: either
    /// every row that opens is re-wrapped, or none is. Rows that do not open are reported,
    /// not fatal.
    pub fn rewrap_sealed(&self, rewrap: &mut Rewrap<'_>) -> Result<Rewrapped, StoreError> {
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        let mut outcome = Rewrapped::default();
        for table in SEALED_TABLES {
            let rows = {
                let mut statement = transaction.prepare(&format!(
                    "SELECT {}, rowid, master_key_id, wrapped_key, ciphertext FROM {}",
                    table.key_columns.join(", "),
                    table.table
                ))?;
                let first = table.key_columns.len();
                let rows = statement.query_map([], |row| {
                    Ok((
                        (table.context)(row)?,
                        row.get::<_, i64>(first)?,
                        Sealed {
                            master_key_id: row.get(first + 1)?,
                            wrapped_key: row.get(first + 2)?,
                            ciphertext: row.get(first + 3)?,
                        },
                    ))
                })?;
                rows.collect::<Result<Vec<_>, _>>()?
            };
            for (context, rowid, sealed) in rows {
                match rewrap(&context, &sealed) {
                    Ok(Some(new)) => {
                        transaction.execute(
                            &format!(
                                "UPDATE {} SET master_key_id = ?1, wrapped_key = ?2 WHERE rowid = ?3",
                                table.table
                            ),
                            params![new.master_key_id, new.wrapped_key, rowid],
                        )?;
                        outcome.rewrapped += 1;
                    }
                    Ok(None) => outcome.already_current += 1,
                    Err(error) => outcome.unopened.push(UnopenedRow {
                        table: table.table.to_string(),
                        context,
                        master_key_id: sealed.master_key_id,
                        error: error.to_string(),
                    }),
                }
            }
        }
        transaction.commit()?;
        Ok(outcome)
    }
}
