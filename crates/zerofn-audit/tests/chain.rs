//! The audit chain on a real store: events written by the real writer, then the SQLite file
//! edited directly (as someone with the database but not the node's key would), then
//! `verify`. Each kind of tampering must be found and located at the right event id.

// Test helpers outside `#[test]` functions report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;
use zerofn_audit::{
    AuditEvent, AuditLog, BreakKind, CheckpointKey, CheckpointPolicy, EventKind, Outcome,
    VerifyReport, link_hash,
};
use zerofn_signing::{Algorithm, PrivateKey};
use zerofn_store::Store;

struct Fixture {
    dir: tempfile::TempDir,
    store: Store,
    key: Arc<CheckpointKey>,
    audit: AuditLog,
}

fn policy(key: &Arc<CheckpointKey>) -> CheckpointPolicy {
    CheckpointPolicy {
        key: key.clone(),
        every_events: 1_000_000,
        // Only explicit checkpoints: the test decides where they fall.
        every: Duration::from_secs(3_600),
    }
}

fn event(n: i64) -> AuditEvent {
    AuditEvent::new(EventKind::InvocationEnd, Outcome::Success)
        .function("shop", "checkout")
        .invocation(format!("inv-{n}"))
        .detail("n", n)
}

/// 38 events: ids 1..=10, checkpoint of 10 (event 11); 12..=21, checkpoint of 21 (event 22);
/// 23..=32, checkpoint of 32 (event 33); then 34..=38 not yet checkpointed.
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let key = Arc::new(CheckpointKey::from_key(
        PrivateKey::generate(Algorithm::Ed25519).unwrap(),
    ));
    let audit = AuditLog::start_with(store.clone(), Some(policy(&key))).unwrap();
    let mut n = 0;
    for _ in 0..3 {
        for _ in 0..10 {
            n += 1;
            audit.record(event(n)).await;
        }
        audit.checkpoint().await;
    }
    for _ in 0..5 {
        n += 1;
        audit.record(event(n)).await;
    }
    audit.flush().await;
    let fixture = Fixture {
        dir,
        store,
        key,
        audit,
    };
    let report = fixture.verify();
    assert!(report.intact, "{}", report.render());
    assert_eq!(report.events, 38);
    assert_eq!(report.checkpoints, 3);
    assert_eq!(report.last_checkpoint, Some(32));
    assert_eq!(report.after_last_checkpoint, 6);
    fixture
}

impl Fixture {
    fn verify(&self) -> VerifyReport {
        zerofn_audit::verify(&self.store, std::slice::from_ref(self.key.public())).unwrap()
    }

    /// A second connection to the database file, as an attacker would open it.
    fn raw(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.dir.path().join(zerofn_store::DATABASE_FILE)).unwrap()
    }

    fn hash(&self, id: i64) -> [u8; 32] {
        let hash: Vec<u8> = self
            .raw()
            .query_row("SELECT hash FROM audit_events WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        hash.try_into().unwrap()
    }

    fn text(&self, id: i64) -> String {
        self.raw()
            .query_row("SELECT event FROM audit_events WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap()
    }
}

/// The findings as (kind, id), and the report's text for failure messages.
fn located(report: &VerifyReport) -> Vec<(BreakKind, i64)> {
    report.findings.iter().map(|f| (f.kind, f.id)).collect()
}

#[track_caller]
fn assert_found(report: &VerifyReport, kind: BreakKind, id: i64) {
    assert!(!report.intact, "{}", report.render());
    assert!(
        located(report).contains(&(kind, id)),
        "expected {kind:?} at {id}:\n{}",
        report.render()
    );
}

#[tokio::test]
async fn an_edited_event_text_is_found_at_its_id() {
    let f = fixture().await;
    f.raw()
        .execute(
            "UPDATE audit_events SET event = replace(event, '\"n\":5', '\"n\":500') WHERE id = 5",
            [],
        )
        .unwrap();
    let report = f.verify();
    assert_eq!(
        located(&report),
        [(BreakKind::Edited, 5)],
        "{}",
        report.render()
    );
    let finding = &report.findings[0];
    assert_eq!(
        finding.found.as_deref(),
        Some(&hex::encode(f.hash(5))[..16])
    );
    assert_ne!(finding.expected, finding.found);
    assert!(
        report.render().contains("id 5: edited"),
        "{}",
        report.render()
    );
}

#[tokio::test]
async fn an_edit_with_its_hash_recomputed_breaks_the_next_link() {
    let f = fixture().await;
    let text = f.text(5).replace("\"n\":5", "\"n\":500");
    let hash = link_hash(&f.hash(4), 5, text.as_bytes());
    f.raw()
        .execute(
            "UPDATE audit_events SET event = ?1, hash = ?2 WHERE id = 5",
            rusqlite::params![text, &hash[..]],
        )
        .unwrap();
    let report = f.verify();
    assert_eq!(
        located(&report),
        [(BreakKind::Edited, 6)],
        "{}",
        report.render()
    );
    assert!(
        report.findings[0].detail.contains("record 5"),
        "{}",
        report.render()
    );
}

#[tokio::test]
async fn an_edited_indexed_column_is_found() {
    let f = fixture().await;
    f.raw()
        .execute("UPDATE audit_events SET app = 'other' WHERE id = 7", [])
        .unwrap();
    let report = f.verify();
    assert_eq!(
        located(&report),
        [(BreakKind::ColumnMismatch, 7)],
        "{}",
        report.render()
    );
    assert!(
        report.findings[0].detail.contains("`app`"),
        "{}",
        report.render()
    );
}

#[tokio::test]
async fn a_deleted_event_is_found() {
    let f = fixture().await;
    f.raw()
        .execute("DELETE FROM audit_events WHERE id = 13", [])
        .unwrap();
    let report = f.verify();
    assert_eq!(
        located(&report),
        [(BreakKind::Deleted, 13)],
        "{}",
        report.render()
    );
    assert_eq!(report.findings[0].last_id, Some(13));
}

#[tokio::test]
async fn a_deleted_checkpointed_event_also_fails_its_checkpoint() {
    let f = fixture().await;
    f.raw()
        .execute("DELETE FROM audit_events WHERE id = 21", [])
        .unwrap();
    let report = f.verify();
    assert_found(&report, BreakKind::Deleted, 21);
    assert_found(&report, BreakKind::CheckpointMismatch, 21);
}

#[tokio::test]
async fn a_deletion_with_the_later_ids_renumbered_is_found() {
    let f = fixture().await;
    let raw = f.raw();
    raw.execute("DELETE FROM audit_events WHERE id = 14", [])
        .unwrap();
    raw.execute("UPDATE audit_events SET id = -id WHERE id > 14", [])
        .unwrap();
    raw.execute("UPDATE audit_events SET id = -id - 1 WHERE id < 0", [])
        .unwrap();
    let report = f.verify();
    assert_found(&report, BreakKind::Deleted, 14);
}

#[tokio::test]
async fn an_inserted_event_is_found_where_it_was_inserted() {
    let f = fixture().await;
    let raw = f.raw();
    // Make room at id 15 by renumbering everything after, as an insertion must.
    raw.execute("UPDATE audit_events SET id = -id WHERE id >= 15", [])
        .unwrap();
    raw.execute("UPDATE audit_events SET id = -id + 1 WHERE id < 0", [])
        .unwrap();
    let text = f.text(14).replace("inv-14", "inv-forged");
    let hash = link_hash(&f.hash(14), 15, text.as_bytes());
    raw.execute(
        "INSERT INTO audit_events (id, at_ms, kind, invocation_id, app, function, outcome, event, hash)
         SELECT 15, at_ms, kind, 'inv-forged', app, function, outcome, ?1, ?2
         FROM audit_events WHERE id = 14",
        rusqlite::params![text, &hash[..]],
    )
    .unwrap();
    let report = f.verify();
    // The forged row itself links (its hash was computed); the row after it no longer does,
    // and every later row carries its old id in its hash.
    assert_found(&report, BreakKind::Inserted, 15);
    // The checkpoints after it name hashes now found one id later.
    assert_found(&report, BreakKind::CheckpointMismatch, 21);

    // Without a computed hash, the inserted row itself does not link.
    raw.execute(
        "UPDATE audit_events SET hash = zeroblob(32) WHERE id = 15",
        [],
    )
    .unwrap();
    let report = f.verify();
    assert_found(&report, BreakKind::Inserted, 15);
}

#[tokio::test]
async fn an_event_appended_by_hand_is_found() {
    let f = fixture().await;
    f.raw()
        .execute(
            "INSERT INTO audit_events (at_ms, kind, outcome, event)
             VALUES (1, 'deploy', 'success', '{\"kind\":\"deploy\",\"at_ms\":1,\"outcome\":\"success\"}')",
            [],
        )
        .unwrap();
    let report = f.verify();
    assert_eq!(
        located(&report),
        [(BreakKind::MissingHash, 39)],
        "{}",
        report.render()
    );
}

#[tokio::test]
async fn swapped_events_are_found_as_reordered() {
    let f = fixture().await;
    let raw = f.raw();
    raw.execute("UPDATE audit_events SET id = -1 WHERE id = 25", [])
        .unwrap();
    raw.execute("UPDATE audit_events SET id = 25 WHERE id = 26", [])
        .unwrap();
    raw.execute("UPDATE audit_events SET id = 26 WHERE id = -1", [])
        .unwrap();
    let report = f.verify();
    assert_eq!(
        located(&report),
        [(BreakKind::Reordered, 25)],
        "{}",
        report.render()
    );
    assert_eq!(report.findings[0].last_id, Some(26));
    assert!(
        report.findings[0]
            .detail
            .contains("id 25 was written as id 26"),
        "{}",
        report.render()
    );
}

#[tokio::test]
async fn a_truncated_tail_is_found_from_the_checkpoint_and_the_id_sequence() {
    let f = fixture().await;
    f.raw()
        .execute("DELETE FROM audit_events WHERE id > 30", [])
        .unwrap();
    let report = f.verify();
    assert_found(&report, BreakKind::Truncated, 32);
    assert_found(&report, BreakKind::Truncated, 31);

    // Also with the id sequence reset, the checkpoint still names what is gone.
    f.raw()
        .execute(
            "UPDATE sqlite_sequence SET seq = 30 WHERE name = 'audit_events'",
            [],
        )
        .unwrap();
    let report = f.verify();
    assert_eq!(
        located(&report),
        [(BreakKind::Truncated, 32)],
        "{}",
        report.render()
    );
}

#[tokio::test]
async fn a_writer_restarted_after_truncation_leaves_the_gap_visible() {
    let f = fixture().await;
    f.audit.checkpoint().await;
    f.raw()
        .execute("DELETE FROM audit_events WHERE id > 36", [])
        .unwrap();
    let restarted = AuditLog::start_with(f.store.clone(), Some(policy(&f.key))).unwrap();
    restarted.record(event(100)).await;
    restarted.flush().await;
    let report = f.verify();
    // Ids 37..=39 (38, its checkpoint event 39) are gone; the new event continues after them.
    assert_found(&report, BreakKind::Deleted, 37);
    assert_found(&report, BreakKind::CheckpointMismatch, 38);
}

#[tokio::test]
async fn a_forged_checkpoint_is_found() {
    let f = fixture().await;
    // Columns that disagree with what was signed.
    f.raw()
        .execute(
            "UPDATE audit_checkpoints SET hash = zeroblob(32) WHERE event_id = 21",
            [],
        )
        .unwrap();
    let report = f.verify();
    assert_eq!(
        located(&report),
        [(BreakKind::CheckpointInvalid, 21)],
        "{}",
        report.render()
    );

    // A checkpoint signed by another key.
    let forger = CheckpointKey::from_key(PrivateKey::generate(Algorithm::Ed25519).unwrap());
    let envelope = zerofn_signing::Envelope::sign(
        zerofn_audit::CHECKPOINT_PAYLOAD_TYPE,
        format!(
            r#"{{"_type":"{}","event_id":10,"hash":"{}","at_ms":1}}"#,
            zerofn_audit::CHECKPOINT_STATEMENT_TYPE,
            hex::encode(f.hash(10))
        )
        .as_bytes(),
        &PrivateKey::generate(Algorithm::Ed25519).unwrap(),
    );
    f.raw()
        .execute(
            "UPDATE audit_checkpoints SET envelope = ?1, key_id = ?2 WHERE event_id = 10",
            rusqlite::params![
                serde_json::to_string(&envelope).unwrap(),
                forger.public().key_id()
            ],
        )
        .unwrap();
    let report = f.verify();
    assert_found(&report, BreakKind::CheckpointInvalid, 10);
    assert!(
        report.render().contains("does not verify"),
        "{}",
        report.render()
    );
}

#[tokio::test]
async fn a_chain_rewritten_with_every_hash_recomputed_fails_its_checkpoints() {
    let f = fixture().await;
    let raw = f.raw();
    let text = f.text(5).replace("\"n\":5", "\"n\":500");
    raw.execute(
        "UPDATE audit_events SET event = ?1 WHERE id = 5",
        rusqlite::params![text],
    )
    .unwrap();
    let mut previous = f.hash(4);
    for id in 5..=38 {
        let hash = link_hash(&previous, id, f.text(id).as_bytes());
        raw.execute(
            "UPDATE audit_events SET hash = ?1 WHERE id = ?2",
            rusqlite::params![&hash[..], id],
        )
        .unwrap();
        previous = hash;
    }
    let report = f.verify();
    assert_eq!(
        located(&report),
        [
            (BreakKind::CheckpointMismatch, 10),
            (BreakKind::CheckpointMismatch, 21),
            (BreakKind::CheckpointMismatch, 32)
        ],
        "{}",
        report.render()
    );
    assert_eq!(report.last_checkpoint, None);
}

#[tokio::test]
async fn a_restarted_writer_continues_the_chain_and_checkpoints_by_count() {
    let f = fixture().await;
    f.audit.checkpoint().await;
    let counted = CheckpointPolicy {
        every_events: 100,
        ..policy(&f.key)
    };
    let restarted = AuditLog::start_with(f.store.clone(), Some(counted)).unwrap();
    let mut committed = restarted.subscribe();
    for chunk in [100, 100, 50] {
        for n in 0..chunk {
            restarted.record(event(n)).await;
        }
        restarted.flush().await;
    }
    let first = committed.recv().await.unwrap();
    assert_eq!(first.id, 40, "continues after the head it read");
    let report = f.verify();
    assert!(report.intact, "{}", report.render());
    assert_eq!(report.events, 39 + 250 + report.checkpoints - 4);
    assert!(report.checkpoints >= 6, "{}", report.render());
}

#[tokio::test]
async fn verification_pages_through_many_events_and_locates_breaks_across_pages() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let audit = AuditLog::start(store.clone()).unwrap();
    for n in 0..10_000 {
        audit.record(event(n)).await;
    }
    audit.flush().await;
    let report = zerofn_audit::verify(&store, &[]).unwrap();
    assert!(report.intact, "{}", report.render());
    assert_eq!(report.events, 10_000);
    assert_eq!(report.after_last_checkpoint, 10_000);
    assert!(
        report.render().contains("not signed"),
        "{}",
        report.render()
    );
    let raw = rusqlite::Connection::open(dir.path().join(zerofn_store::DATABASE_FILE)).unwrap();
    // A swap straddling the first page boundary, and an edit far into the table.
    raw.execute("UPDATE audit_events SET id = -1 WHERE id = 4096", [])
        .unwrap();
    raw.execute("UPDATE audit_events SET id = 4096 WHERE id = 4097", [])
        .unwrap();
    raw.execute("UPDATE audit_events SET id = 4097 WHERE id = -1", [])
        .unwrap();
    raw.execute(
        "UPDATE audit_events SET event = replace(event, 'inv-', 'INV-') WHERE id = 9000",
        [],
    )
    .unwrap();
    let report = zerofn_audit::verify(&store, &[]).unwrap();
    let found: Vec<(BreakKind, i64)> = report.findings.iter().map(|f| (f.kind, f.id)).collect();
    assert!(
        found.contains(&(BreakKind::Reordered, 4096)),
        "{}",
        report.render()
    );
    assert!(
        found.contains(&(BreakKind::Edited, 9000)),
        "{}",
        report.render()
    );
}

#[tokio::test]
async fn deleting_the_first_events_is_found() {
    let f = fixture().await;
    f.raw()
        .execute("DELETE FROM audit_events WHERE id <= 2", [])
        .unwrap();
    let report = f.verify();
    assert_eq!(
        located(&report),
        [(BreakKind::Deleted, 1)],
        "{}",
        report.render()
    );
    assert_eq!(report.findings[0].last_id, Some(2));
}
