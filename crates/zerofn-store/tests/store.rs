//! The store through its public API, on a real SQLite file.

// Test helpers outside `#[test]` functions report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use zerofn_store::{
    AuditQuery, ChainedAuditRow, LogQuery, LogRow, NewAuditRow, NewVersion, Store, StoreError,
};

fn version(app: &str, manifest: &str, code: &[u8]) -> NewVersion {
    NewVersion {
        app: app.into(),
        app_version: "0.1.0".into(),
        manifest: manifest.into(),
        components: vec![("hello".into(), code.to_vec())],
        attestations: Vec::new(),
        files: Vec::new(),
    }
}

#[test]
fn referenced_files_are_kept_with_their_version_and_change_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut with_keys = version("shop", "a", b"one");
    with_keys.files = vec![("keys/jwks.json".into(), b"{\"keys\":[]}".to_vec())];
    let mut rotated = with_keys.clone();
    rotated.files = vec![("keys/jwks.json".into(), b"{\"keys\":[1]}".to_vec())];
    let first = store.deploy(&with_keys, "deploy").unwrap();
    let second = store.deploy(&rotated, "deploy").unwrap();
    assert_ne!(first.version_id, second.version_id);
    assert_eq!(
        store.version_files("shop", &first.version_id).unwrap(),
        with_keys.files
    );
    assert_eq!(
        store.version_files("shop", &second.version_id).unwrap(),
        rotated.files
    );
}

#[test]
fn an_altered_file_blob_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut with_keys = version("shop", "a", b"one");
    with_keys.files = vec![("ca.pem".into(), b"good".to_vec())];
    let record = store.deploy(&with_keys, "deploy").unwrap();
    drop(store);
    let connection =
        rusqlite::Connection::open(dir.path().join(zerofn_store::DATABASE_FILE)).unwrap();
    connection
        .execute(
            "UPDATE blobs SET bytes = X'00' WHERE bytes = CAST('good' AS BLOB)",
            [],
        )
        .unwrap();
    drop(connection);
    let store = Store::open(dir.path()).unwrap();
    assert!(matches!(
        store.version_files("shop", &record.version_id),
        Err(StoreError::Integrity { .. })
    ));
}

#[test]
fn deploy_activates_and_rollback_returns_to_the_previous_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let v1 = store
        .deploy(&version("shop", "a", b"one"), "deploy")
        .unwrap();
    let v2 = store
        .deploy(&version("shop", "a", b"two"), "deploy")
        .unwrap();
    assert_ne!(v1.version_id, v2.version_id);
    assert_eq!(
        store.active_version("shop").unwrap().unwrap().version_id,
        v2.version_id
    );
    store.activate("shop", &v1.version_id, "rollback").unwrap();
    assert_eq!(
        store.active_version("shop").unwrap().unwrap().version_id,
        v1.version_id
    );
    assert_eq!(store.versions("shop").unwrap().len(), 2);
    assert_eq!(store.apps().unwrap()[0].active_version_id, v1.version_id);
    let digest = &v1.components[0].digest;
    assert_eq!(store.component(digest).unwrap(), b"one");
}

#[test]
fn same_content_is_the_same_version_and_state_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let store = Store::open(dir.path()).unwrap();
        let a = store.deploy(&version("shop", "m", b"x"), "deploy").unwrap();
        let b = store.deploy(&version("shop", "m", b"x"), "deploy").unwrap();
        assert_eq!(a.version_id, b.version_id);
        a.version_id
    };
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.active_version("shop").unwrap().unwrap().version_id,
        id
    );
}

#[test]
fn unknown_apps_and_versions_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(store.active_version("nope").unwrap().is_none());
    assert!(matches!(
        store.versions("nope"),
        Err(StoreError::UnknownApp(_))
    ));
    assert!(matches!(
        store.activate("nope", "sha256:00", "rollback"),
        Err(StoreError::UnknownVersion { .. })
    ));
}

#[test]
fn a_tampered_blob_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let v = store
        .deploy(&version("shop", "m", b"good"), "deploy")
        .unwrap();
    let digest = v.components[0].digest.clone();
    drop(store);
    let raw = rusqlite::Connection::open(dir.path().join(zerofn_store::DATABASE_FILE)).unwrap();
    raw.execute("UPDATE blobs SET bytes = x'626164'", [])
        .unwrap();
    drop(raw);
    let store = Store::open(dir.path()).unwrap();
    assert!(matches!(
        store.component(&digest),
        Err(StoreError::Integrity { .. })
    ));
}

#[test]
fn audit_and_logs_are_appended_and_filtered() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let event = |id: i64, inv: &str| ChainedAuditRow {
        id,
        hash: [id as u8; 32],
        row: NewAuditRow {
            at_ms: 1,
            kind: "invocation.end",
            invocation_id: Some(inv.into()),
            app: Some("shop".into()),
            function: Some("checkout".into()),
            outcome: "success",
            trace_id: None,
            json: serde_json::json!({"invocation_id": inv}).to_string(),
        },
    };
    let log = LogRow {
        id: 0,
        at_ms: 1,
        app: "shop".into(),
        function: "checkout".into(),
        invocation_id: "b".into(),
        stream: "stdout".into(),
        line: "hello".into(),
    };
    store
        .append(&[event(1, "a"), event(2, "b")], None, &[log])
        .unwrap();
    let tail = store.audit_tail().unwrap();
    assert_eq!(tail.last_id, Some(2));
    assert_eq!(tail.last_hash, Some(vec![2; 32]));
    assert_eq!(tail.highest_id_given, Some(2));
    let only_b = store
        .audit_events(&AuditQuery {
            invocation_id: Some("b".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(only_b.len(), 1);
    assert_eq!(only_b[0].event["invocation_id"], "b");
    let after = store
        .audit_events(&AuditQuery {
            after_id: Some(only_b[0].id - 1),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(after.len(), 1);
    let logs = store
        .logs(&LogQuery {
            function: Some("checkout".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(logs[0].line, "hello");
}

#[cfg(unix)]
#[test]
fn the_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    Store::open(&data).unwrap();
    let mode = std::fs::metadata(&data).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn following_pages_through_every_row_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let log = |i: usize| LogRow {
        id: 0,
        at_ms: 1,
        app: "shop".into(),
        function: "checkout".into(),
        invocation_id: format!("inv-{i}"),
        stream: "stdout".into(),
        line: format!("line {i}"),
    };
    let rows: Vec<LogRow> = (0..25).map(log).collect();
    store.append(&[], None, &rows).unwrap();
    let mut seen = Vec::new();
    let mut after = Some(0);
    loop {
        let page = store
            .logs(&LogQuery {
                after_id: after,
                limit: Some(10),
                ..Default::default()
            })
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        seen.extend(page.into_iter().map(|r| r.line));
    }
    let expected: Vec<String> = (0..25).map(|i| format!("line {i}")).collect();
    assert_eq!(seen, expected);
}

#[test]
fn a_deploy_that_fails_midway_leaves_the_previous_version_active() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let v1 = store
        .deploy(&version("shop", "m", b"one"), "deploy")
        .unwrap();
    // Make the last statement of the deploy transaction fail, as a crash or a full disk would.
    let raw = rusqlite::Connection::open(dir.path().join(zerofn_store::DATABASE_FILE)).unwrap();
    raw.execute_batch(
        "CREATE TRIGGER fail_activation BEFORE INSERT ON activations
         BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
    )
    .unwrap();
    drop(raw);
    let v2 = version("shop", "m", b"two");
    assert!(store.deploy(&v2, "deploy").is_err());
    assert_eq!(
        store.active_version("shop").unwrap().unwrap().version_id,
        v1.version_id
    );
    assert!(
        matches!(
            store.version("shop", &v2.version_id()),
            Err(StoreError::UnknownVersion { .. })
        ),
        "nothing of the failed deploy was kept"
    );
}

#[test]
fn totp_steps_only_move_forward_and_removing_an_operator_ends_their_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let operator = zerofn_store::OperatorRecord {
        name: "vic".into(),
        role: "viewer".into(),
        public_key: "pem".into(),
        totp_sealed: vec![1, 2, 3],
        created_ms: 1,
        last_totp_step: None,
        failed_logins: 0,
        locked_until_ms: None,
    };
    assert!(store.create_operator(&operator).unwrap());
    assert!(
        !store.create_operator(&operator).unwrap(),
        "names are unique"
    );
    assert!(store.accept_totp_step("vic", 100).unwrap());
    assert!(
        !store.accept_totp_step("vic", 100).unwrap(),
        "the same step twice"
    );
    assert!(
        !store.accept_totp_step("vic", 99).unwrap(),
        "an earlier step"
    );
    assert!(store.accept_totp_step("vic", 101).unwrap());
    assert!(!store.accept_totp_step("nobody", 1).unwrap());

    // Two attempts allowed, the second locks until 500; none is taken while locked.
    assert!(store.reserve_login_attempt("vic", 0, 2, 500).unwrap());
    assert_eq!(
        store.operator("vic").unwrap().unwrap().locked_until_ms,
        None
    );
    assert!(store.reserve_login_attempt("vic", 0, 2, 500).unwrap());
    assert_eq!(
        store.operator("vic").unwrap().unwrap().locked_until_ms,
        Some(500)
    );
    assert!(!store.reserve_login_attempt("vic", 499, 2, 900).unwrap());
    assert_eq!(store.operator("vic").unwrap().unwrap().failed_logins, 2);
    assert!(!store.reserve_login_attempt("nobody", 0, 2, 500).unwrap());
    store.reset_login_failures("vic").unwrap();
    let reset = store.operator("vic").unwrap().unwrap();
    assert_eq!((reset.failed_logins, reset.locked_until_ms), (0, None));

    let session = zerofn_store::SessionRecord {
        token_hash: "ab".into(),
        operator: "vic".into(),
        created_ms: 1,
        expires_ms: 2,
        revoked_ms: None,
    };
    store.create_session(&session).unwrap();
    assert_eq!(store.session("ab").unwrap(), Some(session));
    assert!(store.revoke_session("ab", 3).unwrap());
    assert!(!store.revoke_session("ab", 4).unwrap(), "revoked once");
    assert!(store.remove_operator("vic").unwrap());
    assert_eq!(store.session("ab").unwrap(), None);
    assert!(store.operators().unwrap().is_empty());
    assert!(!store.remove_operator("vic").unwrap());
}

#[test]
fn a_version_3_store_gains_every_later_table_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .deploy(&version("shop", "a", b"one"), "deploy")
        .unwrap();
    drop(store);
    // Turn it back into what release 3 of the schema left.
    let connection =
        rusqlite::Connection::open(dir.path().join(zerofn_store::DATABASE_FILE)).unwrap();
    connection
        .execute_batch(
            "DROP TABLE quarantines; DROP TABLE incidents; DROP TABLE audit_checkpoints;
             DROP INDEX audit_by_trace; ALTER TABLE audit_events DROP COLUMN hash;
             ALTER TABLE audit_events DROP COLUMN trace_id;
             DROP TABLE kv_entries; DROP TABLE secrets; DROP TABLE queue_messages;
             DROP TABLE operator_sessions; DROP TABLE operators; DROP TABLE version_files;
             PRAGMA user_version = 3;",
        )
        .unwrap();
    drop(connection);
    let store = Store::open(dir.path()).unwrap();
    let active = store.active_version("shop").unwrap().unwrap();
    assert!(store.operators().unwrap().is_empty());
    assert!(store.secrets("shop").unwrap().is_empty());
    assert!(
        store
            .queue_messages("shop", "orders", false)
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .version_files("shop", &active.version_id)
            .unwrap()
            .is_empty()
    );
    assert!(!store.kv_exists("shop", "orders", "k").unwrap());
}

#[test]
fn an_apps_window_is_read_in_pages_in_stream_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Two apps interleaved, two functions of `shop` (the index on (app, function, id) would
    // give checkout's rows before catalog's), kinds that count and one that does not.
    let kinds = ["kv.read", "egress", "invocation.end"];
    let apps = ["shop", "blog"];
    let functions = ["checkout", "catalog"];
    let rows: Vec<ChainedAuditRow> = (1..=60i64)
        .map(|id| ChainedAuditRow {
            id,
            hash: [0; 32],
            row: NewAuditRow {
                at_ms: 1_000 + id,
                kind: kinds[id as usize % 3],
                invocation_id: None,
                app: Some(apps[id as usize % 2].into()),
                function: Some(functions[(id as usize / 2) % 2].into()),
                outcome: "success",
                trace_id: None,
                json: format!("{{\"n\":{id}}}"),
            },
        })
        .collect();
    store.append(&rows, None, &[]).unwrap();
    // Ids 51..=60 are past the slice read.
    let expected: Vec<i64> = (1..=50i64)
        .filter(|id| id % 2 == 0 && id % 3 != 2 && 1_000 + id >= 1_010)
        .collect();
    let mut read = Vec::new();
    let mut after = 0;
    loop {
        let page = store
            .audit_app_window("shop", &["kv.read", "egress"], 1_010, after, 50, 3)
            .unwrap();
        for (id, json) in &page {
            assert_eq!(json, &format!("{{\"n\":{id}}}"));
            read.push(*id);
            after = *id;
        }
        if page.len() < 3 {
            break;
        }
    }
    assert_eq!(read, expected);
    assert!(
        store
            .audit_app_window("shop", &[], 0, 0, 60, 3)
            .unwrap()
            .is_empty()
    );
}
