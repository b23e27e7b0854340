//! Append-only tables for audit events, their chain checkpoints and guest logs, written in
//! batches by the audit writer and read back by the control plane and the chain verifier.
//! Nothing here updates or deletes a row.

use crate::{Store, StoreError};
use rusqlite::{ToSql, params};

/// One stored audit event, as read back. `event` holds the whole event; the other columns are
/// copies of its fields that queries filter on.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AuditRow {
    /// Assigned by the store, increasing in the order events were appended.
    pub id: i64,
    pub at_ms: i64,
    pub kind: String,
    pub invocation_id: Option<String>,
    pub app: Option<String>,
    pub function: Option<String>,
    pub outcome: String,
    pub event: serde_json::Value,
}

/// An audit event on its way in: the indexed columns and the whole event, already serialised.
/// Borrowed and shared strings, so that the writer copies nothing it does not have to.
#[derive(Debug, Clone)]
pub struct NewAuditRow {
    pub at_ms: i64,
    pub kind: &'static str,
    pub invocation_id: Option<std::sync::Arc<str>>,
    pub app: Option<std::sync::Arc<str>>,
    pub function: Option<std::sync::Arc<str>>,
    pub outcome: &'static str,
    pub trace_id: Option<std::sync::Arc<str>>,
    /// The event as JSON.
    pub json: String,
}

/// One line a guest wrote to stdout or stderr.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LogRow {
    /// Assigned by the store; ignored on append.
    pub id: i64,
    pub at_ms: i64,
    pub app: String,
    pub function: String,
    pub invocation_id: String,
    pub stream: String,
    pub line: String,
}

fn checkpoint_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<CheckpointRow> {
    Ok(CheckpointRow {
        event_id: row.get(0)?,
        at_ms: row.get(1)?,
        hash: row.get(2)?,
        key_id: row.get(3)?,
        envelope: row.get(4)?,
    })
}

/// Hashes travel as lowercase hex in JSON.
mod hex_bytes {
    pub fn serialize<S: serde::Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text: String = serde::Deserialize::deserialize(deserializer)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}

/// Which audit events to read. Empty fields do not filter.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct AuditQuery {
    pub app: Option<String>,
    pub function: Option<String>,
    pub invocation_id: Option<String>,
    pub kind: Option<String>,
    pub trace_id: Option<String>,
    /// Only events with an id greater than this (for following the stream).
    pub after_id: Option<i64>,
    /// At most this many events (default 100, at most 10 000), the newest ones.
    pub limit: Option<u32>,
}

/// Which guest log lines to read. Empty fields do not filter.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct LogQuery {
    pub app: Option<String>,
    pub function: Option<String>,
    pub invocation_id: Option<String>,
    pub after_id: Option<i64>,
    pub limit: Option<u32>,
}

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 10_000;

/// An audit event placed in the hash chain by the writer: the id it will have and its link
/// hash (see `zerofn-audit`'s `chain`). Ids are given by the writer, not the store, because the
/// hash covers the id.
#[derive(Debug, Clone)]
pub struct ChainedAuditRow {
    pub id: i64,
    pub hash: [u8; 32],
    pub row: NewAuditRow,
}

/// A signed checkpoint of the chain: the head (`event_id`, `hash`) when it was taken, and the
/// DSSE envelope that signs it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckpointRow {
    pub event_id: i64,
    pub at_ms: i64,
    #[serde(with = "hex_bytes")]
    pub hash: Vec<u8>,
    pub key_id: String,
    /// The DSSE envelope (JSON) whose payload names `event_id` and `hash`.
    pub envelope: String,
}

/// One audit event exactly as stored, for verifying the chain: the indexed columns, the event
/// text byte for byte, and its link hash (`None` for rows written before the chain existed).
#[derive(Debug, Clone)]
pub struct StoredAuditRow {
    pub id: i64,
    pub at_ms: i64,
    pub kind: String,
    pub invocation_id: Option<String>,
    pub app: Option<String>,
    pub function: Option<String>,
    pub outcome: String,
    pub trace_id: Option<String>,
    pub event: String,
    pub hash: Option<Vec<u8>>,
}

/// The end of the audit table: the last row (its id and hash) and the highest id the table has
/// ever given (SQLite's `sqlite_sequence`, which deleting rows does not lower).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditTail {
    pub last_id: Option<i64>,
    pub last_hash: Option<Vec<u8>>,
    pub highest_id_given: Option<i64>,
}

impl Store {
    /// Appends a batch of chained audit events (with the checkpoint taken after them, if any)
    /// and guest log lines in one transaction: all of it is stored, or none.
    pub fn append(
        &self,
        events: &[ChainedAuditRow],
        checkpoint: Option<&CheckpointRow>,
        logs: &[LogRow],
    ) -> Result<(), StoreError> {
        let mut connection = self.connection();
        let tx = connection.transaction()?;
        {
            let mut insert_event = tx.prepare_cached(
                "INSERT INTO audit_events
                     (id, at_ms, kind, invocation_id, app, function, outcome, event, trace_id, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            for ChainedAuditRow { id, hash, row: e } in events {
                insert_event.execute(params![
                    id,
                    e.at_ms,
                    e.kind,
                    e.invocation_id.as_deref(),
                    e.app.as_deref(),
                    e.function.as_deref(),
                    e.outcome,
                    e.json,
                    e.trace_id.as_deref(),
                    &hash[..]
                ])?;
            }
            if let Some(c) = checkpoint {
                tx.prepare_cached(
                    "INSERT INTO audit_checkpoints (event_id, at_ms, hash, key_id, envelope)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![c.event_id, c.at_ms, c.hash, c.key_id, c.envelope])?;
            }
            let mut insert_log = tx.prepare_cached(
                "INSERT INTO guest_logs (at_ms, app, function, invocation_id, stream, line)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for l in logs {
                insert_log.execute(params![
                    l.at_ms,
                    l.app,
                    l.function,
                    l.invocation_id,
                    l.stream,
                    l.line
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The end of the audit table, read in one statement so that it is consistent.
    pub fn audit_tail(&self) -> Result<AuditTail, StoreError> {
        let connection = self.connection();
        let tail = connection.query_row(
            "SELECT (SELECT id FROM audit_events ORDER BY id DESC LIMIT 1),
                    (SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1),
                    (SELECT seq FROM sqlite_sequence WHERE name = 'audit_events')",
            [],
            |row| {
                Ok(AuditTail {
                    last_id: row.get(0)?,
                    last_hash: row.get(1)?,
                    highest_id_given: row.get(2)?,
                })
            },
        )?;
        Ok(tail)
    }

    /// Up to `limit` stored audit rows with an id above `after_id` and at most `up_to`, in id
    /// order: one page of a walk over the chain.
    pub fn audit_chain_page(
        &self,
        after_id: i64,
        up_to: i64,
        limit: u32,
    ) -> Result<Vec<StoredAuditRow>, StoreError> {
        let connection = self.connection();
        let mut statement = connection.prepare_cached(
            "SELECT id, at_ms, kind, invocation_id, app, function, outcome, trace_id, event, hash
             FROM audit_events WHERE id > ?1 AND id <= ?2 ORDER BY id LIMIT ?3",
        )?;
        let rows = statement.query_map(params![after_id, up_to, limit], |row| {
            Ok(StoredAuditRow {
                id: row.get(0)?,
                at_ms: row.get(1)?,
                kind: row.get(2)?,
                invocation_id: row.get(3)?,
                app: row.get(4)?,
                function: row.get(5)?,
                outcome: row.get(6)?,
                trace_id: row.get(7)?,
                event: row.get(8)?,
                hash: row.get(9)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Up to `limit` checkpoints with an event id above `after_event_id`, in order.
    pub fn audit_checkpoints(
        &self,
        after_event_id: i64,
        limit: u32,
    ) -> Result<Vec<CheckpointRow>, StoreError> {
        let connection = self.connection();
        let mut statement = connection.prepare_cached(
            "SELECT event_id, at_ms, hash, key_id, envelope FROM audit_checkpoints
             WHERE event_id > ?1 ORDER BY event_id LIMIT ?2",
        )?;
        let rows = statement.query_map(params![after_event_id, limit], checkpoint_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The most recent checkpoint, if any.
    pub fn last_audit_checkpoint(&self) -> Result<Option<CheckpointRow>, StoreError> {
        let connection = self.connection();
        let mut statement = connection.prepare_cached(
            "SELECT event_id, at_ms, hash, key_id, envelope FROM audit_checkpoints
             ORDER BY event_id DESC LIMIT 1",
        )?;
        let mut rows = statement.query_map([], checkpoint_row)?;
        Ok(rows.next().transpose()?)
    }

    /// Reads audit events matching `query`, oldest first.
    pub fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
        let mut filter = Filter::default();
        filter.eq("app", &query.app);
        filter.eq("function", &query.function);
        filter.eq("invocation_id", &query.invocation_id);
        filter.eq("kind", &query.kind);
        filter.eq("trace_id", &query.trace_id);
        filter.after(&query.after_id);
        let sql = window(
            "SELECT id, at_ms, kind, invocation_id, app, function, outcome, event FROM audit_events",
            &filter,
            query.after_id.is_some(),
            query.limit,
        );
        let connection = self.connection();
        let mut statement = connection.prepare(&sql)?;
        let rows = statement.query_map(filter.params().as_slice(), |row| {
            let event: String = row.get(7)?;
            Ok(AuditRow {
                id: row.get(0)?,
                at_ms: row.get(1)?,
                kind: row.get(2)?,
                invocation_id: row.get(3)?,
                app: row.get(4)?,
                function: row.get(5)?,
                outcome: row.get(6)?,
                event: serde_json::from_str(&event).unwrap_or(serde_json::Value::String(event)),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Up to `limit` events of `app` of the given `kinds`, created at or after `since_ms`, with
    /// an id after `after_id` and at most `through_id`, oldest first, as `(id, event JSON)`: a
    /// window of the stream read in slices and pages (`zerofn policy suggest`). The id range
    /// bounds how long one call holds the store's connection, however sparse the app's events.
    #[allow(clippy::too_many_arguments)]
    pub fn audit_app_window(
        &self,
        app: &str,
        kinds: &[&str],
        since_ms: i64,
        after_id: i64,
        through_id: i64,
        limit: u32,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders = vec!["?"; kinds.len()].join(", ");
        let sql = format!(
            // `+app` keeps SQLite off the (app, function, id) index, whose rows are not in id
            // order: every page would read and sort all of the app's events again (quadratic
            // in the window). Walking the primary key from `after_id` reads each row once.
            "SELECT id, event FROM audit_events WHERE id > ? AND id <= ? AND +app = ? AND at_ms >= ? AND kind IN ({placeholders}) ORDER BY id LIMIT {}",
            limit.clamp(1, MAX_LIMIT)
        );
        let mut values: Vec<&dyn ToSql> = vec![&after_id, &through_id, &app, &since_ms];
        for kind in kinds {
            values.push(kind);
        }
        let connection = self.connection();
        let mut statement = connection.prepare(&sql)?;
        let rows = statement.query_map(values.as_slice(), |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Reads guest log lines matching `query`, oldest first.
    pub fn logs(&self, query: &LogQuery) -> Result<Vec<LogRow>, StoreError> {
        let mut filter = Filter::default();
        filter.eq("app", &query.app);
        filter.eq("function", &query.function);
        filter.eq("invocation_id", &query.invocation_id);
        filter.after(&query.after_id);
        let sql = window(
            "SELECT id, at_ms, app, function, invocation_id, stream, line FROM guest_logs",
            &filter,
            query.after_id.is_some(),
            query.limit,
        );
        let connection = self.connection();
        let mut statement = connection.prepare(&sql)?;
        let rows = statement.query_map(filter.params().as_slice(), |row| {
            Ok(LogRow {
                id: row.get(0)?,
                at_ms: row.get(1)?,
                app: row.get(2)?,
                function: row.get(3)?,
                invocation_id: row.get(4)?,
                stream: row.get(5)?,
                line: row.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// The rows a query returns, oldest first: when following (`after_id` set), the oldest rows
/// after it, so that a reader polling in pages never skips any; otherwise the newest rows.
fn window(select: &str, filter: &Filter, following: bool, limit: Option<u32>) -> String {
    let limit = limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let clause = filter.clause();
    if following {
        format!("{select} {clause} ORDER BY id LIMIT {limit}")
    } else {
        format!("SELECT * FROM ({select} {clause} ORDER BY id DESC LIMIT {limit}) ORDER BY id")
    }
}

/// A WHERE clause built from optional equality filters; column names are constants of this
/// module and every value is a bound parameter.
#[derive(Default)]
struct Filter {
    conditions: Vec<&'static str>,
    values: Vec<Box<dyn ToSql>>,
}

impl Filter {
    fn eq(&mut self, column: &'static str, value: &Option<String>) {
        if let Some(value) = value {
            self.conditions.push(column);
            self.values.push(Box::new(value.clone()));
        }
    }

    fn after(&mut self, id: &Option<i64>) {
        if let Some(id) = id {
            self.conditions.push("id >");
            self.values.push(Box::new(*id));
        }
    }

    fn clause(&self) -> String {
        if self.conditions.is_empty() {
            return String::new();
        }
        let parts: Vec<String> = self
            .conditions
            .iter()
            .enumerate()
            .map(|(i, column)| {
                if column.ends_with('>') {
                    format!("{column} ?{}", i + 1)
                } else {
                    format!("{column} = ?{}", i + 1)
                }
            })
            .collect();
        format!("WHERE {}", parts.join(" AND "))
    }

    fn params(&self) -> Vec<&dyn ToSql> {
        self.values.iter().map(|v| v.as_ref()).collect()
    }
}
