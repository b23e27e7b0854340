//! Local queues: events waiting for a `queue`-triggered function, delivered at least once.
//!
//! A message is leased to one delivery at a time (`lease_until_ms`); a delivery that ends in
//! success deletes it, a failure makes it available again after a backoff, and after the last
//! attempt it is dead-lettered: kept, with its last error, never silently dropped.

use crate::{Store, StoreError};
use rusqlite::{OptionalExtension, params};

/// A message as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueueMessage {
    pub id: i64,
    pub app: String,
    pub queue: String,
    /// The CloudEvent's `id`.
    pub event_id: String,
    /// The CloudEvent in the JSON event format.
    pub event: String,
    pub enqueued_ms: i64,
    /// Deliveries tried so far.
    pub attempts: u32,
    /// When it may be delivered (again).
    pub available_ms: i64,
    pub last_error: Option<String>,
    /// When it was dead-lettered; `None` while it is still being delivered.
    pub dead_ms: Option<i64>,
}

impl Store {
    /// Stores a message for `queue` of `app`; returns its id.
    pub fn enqueue(
        &self,
        app: &str,
        queue: &str,
        event_id: &str,
        event: &str,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let connection = self.connection();
        connection.execute(
            "INSERT INTO queue_messages (app, queue, event_id, event, enqueued_ms, attempts, available_ms, lease_until_ms, last_error, dead_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, 0, ?5, NULL, NULL, NULL)",
            params![app, queue, event_id, event, now_ms],
        )?;
        Ok(connection.last_insert_rowid())
    }

    /// Leases up to `limit` messages that are due at `now_ms` (not dead, not leased by a
    /// delivery still in its lease) until `now_ms + lease_ms`, counting the attempt. Oldest
    /// first.
    pub fn lease_messages(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<QueueMessage>, StoreError> {
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        let messages = {
            let mut statement = transaction.prepare(&format!(
                "{SELECT} WHERE dead_ms IS NULL AND available_ms <= ?1
                   AND (lease_until_ms IS NULL OR lease_until_ms <= ?1)
                 ORDER BY available_ms, id LIMIT ?2"
            ))?;
            let rows = statement.query_map(params![now_ms, limit], row_to_message)?;
            rows.collect::<Result<Vec<_>, _>>()?
        };
        let mut leased = Vec::with_capacity(messages.len());
        for mut message in messages {
            transaction.execute(
                "UPDATE queue_messages SET lease_until_ms = ?2, attempts = attempts + 1 WHERE id = ?1",
                params![message.id, now_ms.saturating_add(lease_ms)],
            )?;
            message.attempts += 1;
            leased.push(message);
        }
        transaction.commit()?;
        Ok(leased)
    }

    /// Removes a delivered message.
    pub fn delete_message(&self, id: i64) -> Result<bool, StoreError> {
        Ok(self
            .connection()
            .execute("DELETE FROM queue_messages WHERE id = ?1", params![id])?
            == 1)
    }

    /// Makes a message whose delivery failed available again at `available_ms`.
    pub fn retry_message(&self, id: i64, available_ms: i64, error: &str) -> Result<(), StoreError> {
        self.connection().execute(
            "UPDATE queue_messages SET available_ms = ?2, lease_until_ms = NULL, last_error = ?3 WHERE id = ?1",
            params![id, available_ms, error],
        )?;
        Ok(())
    }

    /// Dead-letters a message: it stays, with its last error, and is not delivered again.
    pub fn dead_letter_message(&self, id: i64, now_ms: i64, error: &str) -> Result<(), StoreError> {
        self.connection().execute(
            "UPDATE queue_messages SET dead_ms = ?2, lease_until_ms = NULL, last_error = ?3 WHERE id = ?1",
            params![id, now_ms, error],
        )?;
        Ok(())
    }

    /// The message with `id`, if it is still stored.
    pub fn queue_message(&self, id: i64) -> Result<Option<QueueMessage>, StoreError> {
        Ok(self
            .connection()
            .query_row(
                &format!("{SELECT} WHERE id = ?1"),
                params![id],
                row_to_message,
            )
            .optional()?)
    }

    /// How many messages of `queue` of `app` are not yet delivered (dead letters excluded).
    pub fn queue_depth(&self, app: &str, queue: &str) -> Result<u64, StoreError> {
        let count: i64 = self.connection().query_row(
            "SELECT COUNT(*) FROM queue_messages WHERE app = ?1 AND queue = ?2 AND dead_ms IS NULL",
            params![app, queue],
            |row| row.get(0),
        )?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Messages of `queue` of `app`, oldest first: pending ones, or the dead letters.
    pub fn queue_messages(
        &self,
        app: &str,
        queue: &str,
        dead: bool,
    ) -> Result<Vec<QueueMessage>, StoreError> {
        let connection = self.connection();
        let mut statement = connection.prepare(&format!(
            "{SELECT} WHERE app = ?1 AND queue = ?2 AND (dead_ms IS NOT NULL) = ?3 ORDER BY id"
        ))?;
        let rows = statement.query_map(params![app, queue, dead], row_to_message)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

const SELECT: &str = "SELECT id, app, queue, event_id, event, enqueued_ms, attempts, available_ms, last_error, dead_ms FROM queue_messages";

fn row_to_message(row: &rusqlite::Row<'_>) -> rusqlite::Result<QueueMessage> {
    Ok(QueueMessage {
        id: row.get(0)?,
        app: row.get(1)?,
        queue: row.get(2)?,
        event_id: row.get(3)?,
        event: row.get(4)?,
        enqueued_ms: row.get(5)?,
        attempts: row.get(6)?,
        available_ms: row.get(7)?,
        last_error: row.get(8)?,
        dead_ms: row.get(9)?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn a_message_is_leased_once_retried_then_dead_lettered() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::Store::open(dir.path()).unwrap();
        let id = store.enqueue("shop", "orders", "e1", "{}", 1_000).unwrap();
        assert!(store.lease_messages(999, 100, 10).unwrap().is_empty());
        let leased = store.lease_messages(1_000, 100, 10).unwrap();
        assert_eq!((leased.len(), leased[0].attempts), (1, 1));
        // Leased: not handed out again until the lease runs out.
        assert!(store.lease_messages(1_050, 100, 10).unwrap().is_empty());
        store.retry_message(id, 2_000, "status 500").unwrap();
        assert!(store.lease_messages(1_500, 100, 10).unwrap().is_empty());
        assert_eq!(store.lease_messages(2_000, 100, 10).unwrap()[0].attempts, 2);
        store.dead_letter_message(id, 2_050, "status 500").unwrap();
        assert!(store.lease_messages(10_000, 100, 10).unwrap().is_empty());
        let dead = store.queue_messages("shop", "orders", true).unwrap();
        assert_eq!(dead[0].last_error.as_deref(), Some("status 500"));
        assert!(
            store
                .queue_messages("shop", "orders", false)
                .unwrap()
                .is_empty()
        );

        assert_eq!(store.queue_depth("shop", "orders").unwrap(), 0);
        let id = store.enqueue("shop", "orders", "e2", "{}", 3_000).unwrap();
        assert_eq!(store.queue_depth("shop", "orders").unwrap(), 1);
        store.lease_messages(3_000, 100, 10).unwrap();
        assert!(store.delete_message(id).unwrap());
        assert_eq!(store.queue_message(id).unwrap(), None);
    }
}
