//! Append-only tables for audit events and guest logs, written in batches by the audit writer
//! and read back by the control plane. Nothing here updates or deletes a row.

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

impl Store {
    /// Appends a batch of audit events and guest log lines in one transaction; returns the ids
    /// the events were given, in order.
    pub fn append(&self, events: &[NewAuditRow], logs: &[LogRow]) -> Result<Vec<i64>, StoreError> {
        let mut ids = Vec::with_capacity(events.len());
        let mut connection = self.connection();
        let tx = connection.transaction()?;
        {
            let mut insert_event = tx.prepare_cached(
                "INSERT INTO audit_events
                     (at_ms, kind, invocation_id, app, function, outcome, event, trace_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for e in events {
                insert_event.execute(params![
                    e.at_ms,
                    e.kind,
                    e.invocation_id.as_deref(),
                    e.app.as_deref(),
                    e.function.as_deref(),
                    e.outcome,
                    e.json,
                    e.trace_id.as_deref()
                ])?;
                ids.push(tx.last_insert_rowid());
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
        Ok(ids)
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
