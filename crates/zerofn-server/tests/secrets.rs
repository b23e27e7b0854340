//! The secrets broker end to end: secrets set through the platform, sealed in the real store,
//! read by the hostile guest through `wasi:config/store` over real HTTP, with every read
//! decided by the PDP and audited, and every value kept out of logs, audit and the database
//! file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestServer, hostile_manifest, invocation_id};
use std::time::Duration;
use zerofn_store::{AuditQuery, SecretWrite};
use zerofn_test_artifacts::HOSTILE;
use zeroize::Zeroizing;

const APP: &str = "vaulted";
const VALUE: &str = "s3cr3t-VALUE-7f3a9c";

fn manifest(grants: &[&str]) -> String {
    let grants: Vec<String> = grants.iter().map(|g| format!("\"{g}\"")).collect();
    format!(
        "{}\n[functions.hostile.grants]\nsecrets = [{}]\n",
        hostile_manifest(APP, "timeout_ms = 5000"),
        grants.join(", ")
    )
}

async fn set(server: &TestServer, name: &str, value: &str, write: SecretWrite) -> i64 {
    server
        .server()
        .platform()
        .write_secret(APP, name, write, Zeroizing::new(value.as_bytes().to_vec()))
        .await
        .unwrap()
        .version
}

/// A server with `api_key` (= [`VALUE`]) and `other` stored, and the hostile guest granted
/// `api_key` only.
async fn server_with_secret() -> TestServer {
    let server = TestServer::start().await;
    set(&server, "api_key", VALUE, SecretWrite::Create).await;
    set(&server, "other", "other-value-91b2", SecretWrite::Create).await;
    server
        .deploy(&manifest(&["api_key"]), &[("hostile", HOSTILE)])
        .await;
    server
}

/// Waits for the invocation's end event: its output is in the log by then.
async fn ended(server: &TestServer, invocation: &str) {
    for _ in 0..200 {
        let events = server
            .audit(AuditQuery {
                invocation_id: Some(invocation.into()),
                kind: Some("invocation.end".into()),
                ..Default::default()
            })
            .await;
        if !events.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no end event for {invocation}");
}

async fn events_of(server: &TestServer, invocation: &str, kind: &str) -> Vec<serde_json::Value> {
    server
        .audit(AuditQuery {
            invocation_id: Some(invocation.into()),
            kind: Some(kind.into()),
            ..Default::default()
        })
        .await
        .into_iter()
        .map(|row| row.event)
        .collect()
}

/// Every audit event and log line, as text.
async fn everything_recorded(server: &TestServer) -> String {
    let platform = server.server().platform();
    let audit = server
        .audit(AuditQuery {
            limit: Some(10_000),
            ..Default::default()
        })
        .await;
    let logs = platform
        .store()
        .logs(&zerofn_store::LogQuery {
            limit: Some(10_000),
            ..Default::default()
        })
        .unwrap();
    format!(
        "{}\n{}",
        serde_json::to_string(&audit.iter().map(|r| &r.event).collect::<Vec<_>>()).unwrap(),
        logs.iter()
            .map(|l| l.line.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    )
}

#[tokio::test]
async fn a_granted_secret_is_read_and_the_read_is_audited_without_its_value() {
    let server = server_with_secret().await;
    let reply = server.get("/secret?name=api_key").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["value"], VALUE, "{}", reply.text());
    let invocation = invocation_id(&reply);
    ended(&server, &invocation).await;

    let reads = events_of(&server, &invocation, "secret.read").await;
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert_eq!(reads[0]["outcome"], "success");
    assert_eq!(reads[0]["function"], "hostile");
    assert_eq!(reads[0]["detail"]["name"], "api_key");
    assert_eq!(reads[0]["detail"]["secret_version"], 1);
    let decisions = events_of(&server, &invocation, "authz.decision").await;
    assert_eq!(decisions[0]["outcome"], "success");
    assert_eq!(decisions[0]["detail"]["action"], "secret.read");
    assert!(!everything_recorded(&server).await.contains(VALUE));
}

#[tokio::test]
async fn a_secret_not_granted_is_refused_and_audited() {
    let server = server_with_secret().await;
    for name in ["other", "missing", "../api_key", "API_KEY"] {
        let reply = server.get(&format!("/secret?name={name}")).await;
        assert_eq!(reply.status, 200);
        let body = reply.json();
        let error = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: {body}"));
        assert!(
            error.contains("is not granted to function `hostile`"),
            "{error}"
        );
        assert!(error.contains("[functions.hostile.grants]"), "{error}");
        let invocation = invocation_id(&reply);
        ended(&server, &invocation).await;
        let reads = events_of(&server, &invocation, "secret.read").await;
        assert_eq!(reads.len(), 1, "{reads:?}");
        assert_eq!(reads[0]["outcome"], "denied");
        assert_eq!(reads[0]["reason"], "secret-not-granted");
        assert_eq!(reads[0]["detail"]["name"], name);
    }
    // The platform keeps serving the granted read.
    assert_eq!(
        server.get("/secret?name=api_key").await.json()["value"],
        VALUE
    );
    assert!(
        !everything_recorded(&server)
            .await
            .contains("other-value-91b2")
    );
}

#[tokio::test]
async fn listing_all_config_keys_reveals_nothing() {
    let server = server_with_secret().await;
    let reply = server.get("/secret-all").await;
    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert!(body.get("names").is_none(), "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("read each granted secret by name"),
        "{body}"
    );
    let invocation = invocation_id(&reply);
    ended(&server, &invocation).await;
    let reads = events_of(&server, &invocation, "secret.read").await;
    assert_eq!(reads[0]["reason"], "secret-list-refused");
    assert_eq!(reads[0]["outcome"], "denied");
}

#[tokio::test]
async fn a_printed_value_is_redacted_from_the_stored_logs_and_errors() {
    let server = server_with_secret().await;
    let reply = server.get("/secret-print?name=api_key").await;
    assert_eq!(reply.text(), "printed");
    let invocation = invocation_id(&reply);
    ended(&server, &invocation).await;
    let lines = server
        .server()
        .platform()
        .store()
        .logs(&zerofn_store::LogQuery {
            invocation_id: Some(invocation.clone()),
            ..Default::default()
        })
        .unwrap();
    let text: Vec<&str> = lines.iter().map(|l| l.line.as_str()).collect();
    assert!(text.contains(&"the secret is [redacted]!"), "{text:?}");
    assert!(text.contains(&"secret=[redacted]"), "{text:?}");

    // A value put into the error the guest sets reaches neither the caller nor the records.
    let failed = server.get("/secret-error?name=api_key").await;
    assert_eq!(failed.status, 500);
    assert!(!failed.text().contains(VALUE));
    ended(&server, &invocation_id(&failed)).await;
    assert!(!everything_recorded(&server).await.contains(VALUE));
}

#[tokio::test]
async fn values_are_never_in_the_database_files_in_plaintext() {
    let server = server_with_secret().await;
    for path in ["/secret?name=api_key", "/secret-print?name=api_key"] {
        let reply = server.get(path).await;
        ended(&server, &invocation_id(&reply)).await;
    }
    let data = server.dir.path().to_path_buf();
    let platform = server.server().platform();
    platform.audit().flush().await;
    let mut scanned = 0;
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with(zerofn_store::DATABASE_FILE) {
            let bytes = std::fs::read(&path).unwrap();
            for needle in [VALUE, "other-value-91b2"] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "{needle} in {name}"
                );
            }
            scanned += 1;
        }
    }
    assert!(scanned >= 2, "the database and its WAL were scanned");
    // The rows are there, sealed.
    let (record, sealed) = platform.store().secret(APP, "api_key").unwrap().unwrap();
    assert_eq!(record.master_key_id, platform.vault().current_key_id());
    assert!(!sealed.ciphertext.is_empty());
}

#[tokio::test]
async fn a_rotated_secret_reaches_the_next_invocation() {
    let server = server_with_secret().await;
    assert_eq!(
        server.get("/secret?name=api_key").await.json()["value"],
        VALUE
    );
    let version = set(&server, "api_key", "rotated-value-2", SecretWrite::Rotate).await;
    assert_eq!(version, 2);
    let reply = server.get("/secret?name=api_key").await;
    assert_eq!(reply.json()["value"], "rotated-value-2");
    let invocation = invocation_id(&reply);
    ended(&server, &invocation).await;
    let reads = events_of(&server, &invocation, "secret.read").await;
    assert_eq!(reads[0]["detail"]["secret_version"], 2);
    let changes = server.events("secret.admin").await;
    assert!(
        changes
            .iter()
            .any(|c| c.event["reason"] == "secret-rotated" && c.event["detail"]["version"] == 2)
    );
    assert!(
        !everything_recorded(&server)
            .await
            .contains("rotated-value-2")
    );
}

#[tokio::test]
async fn rotating_the_master_key_rewraps_every_secret_while_serving() {
    let server = server_with_secret().await;
    let platform = server.server().platform().clone();
    let before = platform.vault().current_key_id();
    let addr = server.addr;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stream = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut served = 0u32;
            while !done.load(std::sync::atomic::Ordering::Relaxed) || served < 5 {
                let reply = common::request(
                    addr,
                    "GET",
                    "/secret?name=api_key",
                    &[],
                    bytes::Bytes::new(),
                )
                .await;
                assert_eq!(reply.status, 200);
                assert_eq!(reply.json()["value"], VALUE, "read number {served}");
                served += 1;
            }
            served
        })
    };
    for round in 0..3 {
        let rotation = platform.rotate_master_key().await.unwrap();
        assert_eq!(rotation.rows.rewrapped, 2, "round {round}");
        assert!(rotation.rows.unopened.is_empty());
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(stream.await.unwrap() >= 5);

    let after = platform.vault().current_key_id();
    assert_ne!(before, after);
    for name in ["api_key", "other"] {
        let (record, _) = platform.store().secret(APP, name).unwrap().unwrap();
        assert_eq!(record.master_key_id, after);
    }
    // The old keys are gone from the key file: one key remains.
    let file = std::fs::read_to_string(server.dir.path().join("master.key")).unwrap();
    let keys: Vec<&str> = file.lines().filter(|l| l.starts_with("zmk1.")).collect();
    assert_eq!(keys.len(), 1);
    let events = server.events("secret.admin").await;
    let rotated = events
        .iter()
        .filter(|e| e.event["reason"] == "master-key-rotated")
        .count();
    assert_eq!(rotated, 3);
    assert!(!everything_recorded(&server).await.contains(keys[0]));
}

#[tokio::test]
async fn a_tampered_row_is_refused_not_served() {
    let server = server_with_secret().await;
    let db = server.dir.path().join(zerofn_store::DATABASE_FILE);
    let connection = rusqlite::Connection::open(&db).unwrap();
    connection.busy_timeout(Duration::from_secs(5)).unwrap();
    let original: (String, Vec<u8>, Vec<u8>) = connection
        .query_row(
            "SELECT master_key_id, wrapped_key, ciphertext FROM secrets WHERE app = ?1 AND name = 'api_key'",
            [APP],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    // One bit of the ciphertext flipped.
    let mut altered = original.2.clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    connection
        .execute(
            "UPDATE secrets SET ciphertext = ?1 WHERE app = ?2 AND name = 'api_key'",
            rusqlite::params![altered, APP],
        )
        .unwrap();
    let refused = server.get("/secret?name=api_key").await;
    let error = refused.json()["error"].as_str().unwrap().to_string();
    assert!(error.contains("could not be read"), "{error}");
    let invocation = invocation_id(&refused);
    ended(&server, &invocation).await;
    let integrity = events_of(&server, &invocation, "integrity.failure").await;
    assert_eq!(integrity[0]["reason"], "secret-unreadable");
    let reads = events_of(&server, &invocation, "secret.read").await;
    assert_eq!(reads[0]["reason"], "secret-unreadable");

    // Another secret's sealed value copied into this row: it belongs to another name, and
    // does not open either.
    connection
        .execute(
            "UPDATE secrets SET (master_key_id, wrapped_key, ciphertext) =
               (SELECT master_key_id, wrapped_key, ciphertext FROM secrets WHERE app = ?1 AND name = 'other')
             WHERE app = ?1 AND name = 'api_key'",
            [APP],
        )
        .unwrap();
    let swapped = server.get("/secret?name=api_key").await;
    assert!(
        swapped.json()["error"]
            .as_str()
            .unwrap()
            .contains("could not be read")
    );
    assert!(!swapped.text().contains("other-value-91b2"));

    // The genuine row put back opens again: the refusals were the tampering's doing.
    connection
        .execute(
            "UPDATE secrets SET master_key_id = ?1, wrapped_key = ?2, ciphertext = ?3 WHERE app = ?4 AND name = 'api_key'",
            rusqlite::params![original.0, original.1, original.2, APP],
        )
        .unwrap();
    assert_eq!(
        server.get("/secret?name=api_key").await.json()["value"],
        VALUE
    );
}

#[tokio::test]
async fn a_grant_is_admitted_once_the_secret_is_stored_and_not_before() {
    let server = TestServer::start().await;
    let error = server
        .try_deploy(&manifest(&["api_key"]), &[("hostile", HOSTILE)])
        .await
        .unwrap_err();
    assert_eq!(error.code(), "grant-undefined");
    set(&server, "api_key", VALUE, SecretWrite::Create).await;
    let report = server
        .deploy(&manifest(&["api_key"]), &[("hostile", HOSTILE)])
        .await;
    assert!(
        !report.warnings.to_string().contains("grant-not-available"),
        "{}",
        report.warnings
    );
    // Deleting it: the function reads nothing, and the delete says who still holds the grant.
    let deleted = server
        .server()
        .platform()
        .delete_secret(APP, "api_key")
        .await
        .unwrap();
    assert_eq!(deleted.still_granted_to, ["hostile"]);
    assert!(server.get("/secret?name=api_key").await.json()["value"].is_null());
}

#[tokio::test]
async fn operator_input_is_checked_before_anything_is_stored() {
    use zerofn_server::secrets::{MAX_SECRET_BYTES, SecretError};
    let server = TestServer::start().await;
    let platform = server.server().platform();
    let write = |name: &'static str, value: Vec<u8>| {
        platform.write_secret(APP, name, SecretWrite::Create, Zeroizing::new(value))
    };
    assert!(matches!(
        write("k", Vec::new()).await,
        Err(SecretError::Empty)
    ));
    assert!(matches!(
        write("k", vec![b'a'; MAX_SECRET_BYTES + 1]).await,
        Err(SecretError::TooLarge { .. })
    ));
    assert!(matches!(
        write("k", vec![0xff, 0xfe]).await,
        Err(SecretError::NotText)
    ));
    assert!(matches!(
        write("Bad-Name", b"v".to_vec()).await,
        Err(SecretError::InvalidName(_))
    ));
    write("k", b"v".to_vec()).await.unwrap();
    let again = write("k", b"v".to_vec()).await.unwrap_err();
    assert_eq!(again.code(), "secret-exists");
    assert!(platform.store().secrets(APP).unwrap().len() == 1);
    let refusals = server.events("secret.admin").await;
    assert_eq!(
        refusals
            .iter()
            .filter(|e| e.event["outcome"] == "denied")
            .count(),
        5
    );
}

#[tokio::test]
async fn a_key_file_others_can_read_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("master.key");
    zerofn_vault::MasterKeySource::File(key_file.clone())
        .load_or_create()
        .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    zerofn_server::trust::ensure_dev_key(dir.path()).unwrap();
    let error = zerofn_server::start(common::config(dir.path()))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("cannot load the master key"), "{error}");
    assert!(error.contains("chmod 600"), "{error}");
    assert!(error.contains("master.key"), "{error}");
}

#[tokio::test]
async fn an_interrupted_rotation_is_finished_at_start() {
    let server = server_with_secret().await;
    let dir = server.stop().await;
    // A crash after the new key was written but before the rows were re-wrapped.
    let source = zerofn_vault::MasterKeySource::File(dir.path().join("master.key"));
    let old = source.load_or_create().unwrap();
    let rotated = old.rotated().unwrap();
    source.store(&rotated).unwrap();

    let server = TestServer::start_in(dir, |_| {}).await;
    let platform = server.server().platform();
    assert_eq!(platform.vault().current_key_id(), rotated.current().id());
    let (record, _) = platform.store().secret(APP, "api_key").unwrap().unwrap();
    assert_eq!(record.master_key_id, rotated.current().id());
    assert_eq!(source.load_or_create().unwrap().previous().len(), 0);
    assert_eq!(
        server.get("/secret?name=api_key").await.json()["value"],
        VALUE
    );
    let finished = server.events("secret.admin").await;
    assert!(
        finished
            .iter()
            .any(|e| e.event["reason"] == "master-key-rotation-finished"
                && e.event["detail"]["rewrapped"] == 2)
    );
}
