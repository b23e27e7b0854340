//! Key-value (`wasi:keyvalue`) through the real path: the hostile guest opens buckets and reads
//! and writes keys given in the query; the platform decides each `open` with the PDP, enforces
//! read/write access, key and value limits and quotas, and the store seals every value. Apps are
//! namespaced, keys cannot leave their bucket, tampered rows do not open, every refusal is an
//! error to the guest and a `kv.denied` event, and the platform keeps serving.

// Test helpers outside `#[test]` functions report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::TestServer;
use serde_json::{Value, json};
use zerofn_test_artifacts::HOSTILE;

/// App `kvapp`: one function per kind of grant on `orders`, and `archive` for the read-write
/// function.
const APP: &str = r#"[app]
name = "kvapp"
version = "1.0.0"

[functions.rw]
component = "hostile.wasm"
trigger = { http = { route = "/rw/...", methods = ["GET", "POST"] } }
auth = { public = true }
grants = { kv = { orders = "read-write", archive = "read-write" } }

[functions.ro]
component = "hostile.wasm"
trigger = { http = { route = "/ro/...", methods = ["GET", "POST"] } }
auth = { public = true }
grants = { kv = { orders = "read" } }

[functions.wo]
component = "hostile.wasm"
trigger = { http = { route = "/wo/...", methods = ["GET", "POST"] } }
auth = { public = true }
grants = { kv = { orders = "write" } }

[functions.none]
component = "hostile.wasm"
trigger = { http = { route = "/none/...", methods = ["GET", "POST"] } }
auth = { public = true }
"#;

/// App `other`: the same bucket name, granted read-write.
const OTHER: &str = r#"[app]
name = "other"
version = "1.0.0"

[functions.rw]
component = "hostile.wasm"
trigger = { http = { route = "/other/...", methods = ["GET", "POST"] } }
auth = { public = true }
grants = { kv = { orders = "read-write" } }
"#;

async fn deployed(server: &TestServer) {
    server
        .deploy(
            APP,
            &[
                ("rw", HOSTILE),
                ("ro", HOSTILE),
                ("wo", HOSTILE),
                ("none", HOSTILE),
            ],
        )
        .await;
    server.deploy(OTHER, &[("rw", HOSTILE)]).await;
}

/// The guest's JSON answer to `GET path`.
async fn kv(server: &TestServer, path: &str) -> Value {
    let reply = server.get(path).await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    reply.json()
}

/// The guest's answer to `POST path` with `body` (a value too big for a query).
async fn kv_post(server: &TestServer, path: &str, body: Vec<u8>) -> Value {
    let reply = common::request(server.addr, "POST", path, &[], Bytes::from(body)).await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    reply.json()
}

fn ok(answer: &Value) -> &Value {
    answer
        .get("ok")
        .unwrap_or_else(|| panic!("expected success, got {answer}"))
}

fn assert_refused(answer: &Value, error: &str, rule: Option<&str>) {
    assert_eq!(answer["error"], error, "{answer}");
    if let Some(rule) = rule {
        let message = answer["message"].as_str().unwrap();
        assert!(message.starts_with(&format!("{rule}: ")), "{answer}");
    }
}

/// `kv.denied` events by rule.
async fn denied(server: &TestServer, rule: &str) -> Vec<zerofn_store::AuditRow> {
    server
        .events("kv.denied")
        .await
        .into_iter()
        .filter(|e| e.event["reason"] == rule)
        .collect()
}

#[tokio::test]
async fn a_value_written_in_one_invocation_is_read_in_later_ones_and_after_a_restart() {
    let server = TestServer::start().await;
    deployed(&server).await;
    ok(&kv(&server, "/rw/kv/set?bucket=orders&key=o-1&value=paid").await);
    assert_eq!(
        ok(&kv(&server, "/rw/kv/get?bucket=orders&key=o-1").await),
        "paid"
    );
    assert_eq!(
        ok(&kv(&server, "/rw/kv/exists?bucket=orders&key=o-1").await),
        true
    );
    assert_eq!(
        ok(&kv(&server, "/ro/kv/get?bucket=orders&key=o-1").await),
        "paid",
        "another function of the app, granted read"
    );
    assert_eq!(
        ok(&kv(&server, "/rw/kv/get?bucket=orders&key=o-2").await),
        &Value::Null
    );
    ok(&kv(
        &server,
        "/rw/kv/set-many?bucket=orders&keys=o-2,o-3&value=new",
    )
    .await);
    assert_eq!(
        ok(&kv(&server, "/rw/kv/get-many?bucket=orders&keys=o-1,o-2,o-9").await),
        &json!(["o-1=paid", "o-2=new", ""])
    );
    assert_eq!(
        ok(&kv(&server, "/rw/kv/list?bucket=orders").await),
        &json!({"keys": ["o-1", "o-2", "o-3"], "cursor": null})
    );
    ok(&kv(&server, "/rw/kv/delete-many?bucket=orders&keys=o-2,o-3").await);
    ok(&kv(&server, "/rw/kv/delete?bucket=orders&key=nothing-here").await);

    // Each open was a PDP decision, recorded with the deciding grants.
    let decisions = server.events("authz.decision").await;
    let open = decisions
        .iter()
        .find(|e| e.function.as_deref() == Some("rw") && e.event["detail"]["action"] == "kv.open")
        .expect("an open decision");
    assert_eq!(open.outcome, "success");
    assert_eq!(open.event["detail"]["access"], "read-write");
    assert_eq!(open.event["detail"]["resource"], "kvapp/orders");
    let metrics = server.server().platform().metrics().encode();
    assert!(
        metrics.contains(
            r#"zerofn_kv_operations_total{app="kvapp",function="rw",operation="set",outcome="ok"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"zerofn_kv_bytes_written_total{app="kvapp",function="rw"} 10"#),
        "{metrics}"
    );

    let dir = server.stop().await;
    let server = TestServer::start_in(dir, |_| {}).await;
    assert_eq!(
        ok(&kv(&server, "/rw/kv/get?bucket=orders&key=o-1").await),
        "paid",
        "the master key file is read again at start"
    );
    assert_eq!(
        ok(&kv(&server, "/rw/kv/list?bucket=orders").await),
        &json!({"keys": ["o-1"], "cursor": null})
    );
}

#[tokio::test]
async fn a_read_only_grant_refuses_every_write_and_a_write_only_grant_every_read() {
    let server = TestServer::start().await;
    deployed(&server).await;
    ok(&kv(&server, "/rw/kv/set?bucket=orders&key=n&value=5").await);
    for write in [
        "set?bucket=orders&key=n&value=6",
        "delete?bucket=orders&key=n",
        "increment?bucket=orders&key=n&delta=1",
        "set-many?bucket=orders&keys=n,m&value=6",
        "delete-many?bucket=orders&keys=n",
    ] {
        let answer = kv(&server, &format!("/ro/kv/{write}")).await;
        assert_refused(&answer, "access-denied", None);
    }
    assert_eq!(
        ok(&kv(&server, "/ro/kv/get?bucket=orders&key=n").await),
        "5"
    );
    assert_eq!(denied(&server, "kv-read-only").await.len(), 5);

    for read in [
        "get?bucket=orders&key=n",
        "exists?bucket=orders&key=n",
        "list?bucket=orders",
        "get-many?bucket=orders&keys=n",
    ] {
        let answer = kv(&server, &format!("/wo/kv/{read}")).await;
        assert_refused(&answer, "access-denied", None);
    }
    ok(&kv(&server, "/wo/kv/set?bucket=orders&key=n&value=7").await);
    assert_eq!(denied(&server, "kv-write-only").await.len(), 4);
    assert_eq!(
        ok(&kv(&server, "/rw/kv/get?bucket=orders&key=n").await),
        "7"
    );

    let event = &denied(&server, "kv-read-only").await[0];
    assert_eq!(event.app.as_deref(), Some("kvapp"));
    assert_eq!(event.function.as_deref(), Some("ro"));
    assert_eq!(event.event["detail"]["bucket"], "orders");
    assert!(event.invocation_id.is_some());
}

#[tokio::test]
async fn an_ungranted_bucket_does_not_open_whatever_it_is_called() {
    let server = TestServer::start().await;
    deployed(&server).await;
    // `other` also has an `orders` bucket: no spelling reaches it.
    for bucket in [
        "secret",
        "other/orders",
        "other%2forders",
        "../orders",
        "..%2f..%2forders",
        "kvapp/orders",
        "orders/",
        "ORDERS",
        "orders%00",
        "orders%20",
        "*",
        "",
    ] {
        let answer = kv(&server, &format!("/rw/kv/open?bucket={bucket}")).await;
        assert_refused(&answer, "access-denied", None);
    }
    let answer = kv(&server, "/none/kv/open?bucket=orders").await;
    assert_refused(&answer, "access-denied", None);

    let refusals = denied(&server, "kv-not-granted").await;
    assert_eq!(refusals.len(), 13);
    assert!(
        refusals
            .iter()
            .any(|e| e.event["detail"]["bucket"] == "other/orders")
    );
    let decisions = server.events("authz.decision").await;
    let denied_opens = decisions
        .iter()
        .filter(|e| e.outcome == "denied" && e.event["detail"]["action"] == "kv.open")
        .count();
    assert_eq!(denied_opens, 13, "each open is a recorded decision");

    // The platform keeps serving, and the granted bucket still opens.
    ok(&kv(&server, "/rw/kv/open?bucket=orders").await);
    ok(&kv(&server, "/other/kv/set?bucket=orders&key=k&value=v").await);
}

#[tokio::test]
async fn two_apps_with_the_same_bucket_name_do_not_see_each_others_data() {
    let server = TestServer::start().await;
    deployed(&server).await;
    ok(&kv(
        &server,
        "/rw/kv/set?bucket=orders&key=shared&value=from-kvapp",
    )
    .await);
    assert_eq!(
        ok(&kv(&server, "/other/kv/get?bucket=orders&key=shared").await),
        &Value::Null
    );
    assert_eq!(
        ok(&kv(&server, "/other/kv/list?bucket=orders").await),
        &json!({"keys": [], "cursor": null})
    );
    ok(&kv(
        &server,
        "/other/kv/set?bucket=orders&key=shared&value=from-other",
    )
    .await);
    assert_eq!(
        ok(&kv(&server, "/other/kv/increment?bucket=orders&key=count").await),
        1
    );
    ok(&kv(&server, "/other/kv/delete?bucket=orders&key=count").await);
    assert_eq!(
        ok(&kv(&server, "/rw/kv/get?bucket=orders&key=shared").await),
        "from-kvapp"
    );
    assert_eq!(
        ok(&kv(&server, "/other/kv/get?bucket=orders&key=shared").await),
        "from-other"
    );
    assert_eq!(
        ok(&kv(&server, "/rw/kv/list?bucket=orders").await),
        &json!({"keys": ["shared"], "cursor": null})
    );
}

#[tokio::test]
async fn keys_cannot_escape_their_bucket() {
    let server = TestServer::start().await;
    deployed(&server).await;
    ok(&kv(&server, "/rw/kv/set?bucket=archive&key=k&value=archived").await);
    // Each is an opaque key of `orders`, never a path to `archive` or another app.
    let tricks = [
        "../archive/k",
        "..%2farchive%2fk",
        "%252e%252e%252farchive%252fk",
        "archive/k",
        "/archive/k",
        "orders/../archive/k",
        "k%00",
        "%00k",
        "k%00../archive",
        "../../other/orders/shared",
        "*",
        "k",
    ];
    for key in tricks {
        let answer = kv(&server, &format!("/rw/kv/get?bucket=orders&key={key}")).await;
        assert_eq!(ok(&answer), &Value::Null, "{key}");
    }
    for key in tricks {
        ok(&kv(
            &server,
            &format!("/rw/kv/set?bucket=orders&key={key}&value=mine"),
        )
        .await);
    }
    // `archive` still holds exactly what it held, and `orders` exactly the tricks, verbatim.
    assert_eq!(
        ok(&kv(&server, "/rw/kv/list?bucket=archive").await),
        &json!({"keys": ["k"], "cursor": null})
    );
    assert_eq!(
        ok(&kv(&server, "/rw/kv/get?bucket=archive&key=k").await),
        "archived"
    );
    let listed = ok(&kv(&server, "/rw/kv/list?bucket=orders").await).clone();
    let keys: Vec<&str> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    // In the order first written; `../archive/k` and `..%2farchive%2fk` decode to one key.
    assert_eq!(
        keys,
        [
            "../archive/k",
            "%2e%2e%2farchive%2fk",
            "archive/k",
            "/archive/k",
            "orders/../archive/k",
            "k\0",
            "\0k",
            "k\0../archive",
            "../../other/orders/shared",
            "*",
            "k",
        ]
    );
    // A cursor is a position inside this bucket only: any value, even one taken from another
    // bucket, lists nothing outside it.
    for cursor in ["0", "1", "18446744073709551615"] {
        let page = ok(&kv(
            &server,
            &format!("/rw/kv/list?bucket=archive&cursor={cursor}"),
        )
        .await)
        .clone();
        for key in page["keys"].as_array().unwrap() {
            assert_eq!(key, "k", "cursor {cursor}");
        }
    }
    // The other app's bucket of the same name is untouched.
    assert_eq!(
        ok(&kv(&server, "/other/kv/list?bucket=orders").await),
        &json!({"keys": [], "cursor": null})
    );
}

#[tokio::test]
async fn oversized_keys_values_batches_and_full_buckets_are_refused_and_recorded() {
    let server = TestServer::start_with(|config| {
        config.kv.max_key_bytes = 64;
        config.kv.max_value_bytes = 1024;
        config.kv.max_batch_keys = 3;
        config.kv.max_keys_per_bucket = 5;
    })
    .await;
    deployed(&server).await;
    ok(&kv(&server, "/rw/kv/set?bucket=orders&key_len=64&value=x").await);
    let answer = kv(&server, "/rw/kv/set?bucket=orders&key_len=65&value=x").await;
    assert_refused(&answer, "other", Some("kv-key-too-large"));
    let answer = kv(&server, "/rw/kv/get?bucket=orders&key_len=100000").await;
    assert_refused(&answer, "other", Some("kv-key-too-large"));
    let answer = kv(&server, "/rw/kv/set?bucket=orders&key=&value=x").await;
    assert_refused(&answer, "other", Some("kv-key-empty"));
    ok(&kv_post(
        &server,
        "/rw/kv/set?bucket=orders&key=fits",
        vec![b'v'; 1024],
    )
    .await);
    let answer = kv_post(
        &server,
        "/rw/kv/set?bucket=orders&key=big",
        vec![b'v'; 1025],
    )
    .await;
    assert_refused(&answer, "other", Some("kv-value-too-large"));
    let answer = kv(&server, "/rw/kv/get-many?bucket=orders&keys=a,b,c,d").await;
    assert_refused(&answer, "other", Some("kv-batch-too-large"));
    ok(&kv(&server, "/rw/kv/set-many?bucket=orders&keys=a,b,c&value=1").await);
    // Five keys now: a sixth is refused, replacing one is not.
    let answer = kv(&server, "/rw/kv/set?bucket=orders&key=sixth&value=1").await;
    assert_refused(&answer, "other", Some("kv-bucket-full"));
    ok(&kv(&server, "/rw/kv/set?bucket=orders&key=a&value=2").await);
    let answer = kv(&server, "/rw/kv/increment?bucket=orders&key=fits").await;
    assert_refused(&answer, "other", Some("kv-not-a-number"));

    for rule in [
        "kv-key-too-large",
        "kv-key-empty",
        "kv-value-too-large",
        "kv-batch-too-large",
        "kv-bucket-full",
        "kv-not-a-number",
    ] {
        assert!(!denied(&server, rule).await.is_empty(), "{rule} recorded");
    }
    let long = &denied(&server, "kv-key-too-large").await[1];
    let shown = long.event["detail"]["key"].as_str().unwrap();
    assert!(
        shown.chars().count() <= 129,
        "a key in an event is cut short"
    );
    assert_eq!(
        ok(&kv(&server, "/rw/kv/get?bucket=orders&key=big").await),
        &Value::Null
    );

    // An invocation holds a bounded number of buckets open.
    let answer = kv(&server, "/rw/kv/open-many?bucket=orders&n=100").await;
    assert_eq!(
        answer["opened"],
        zerofn_runtime::MAX_OPEN_BUCKETS,
        "{answer}"
    );
    assert_refused(
        &answer["refusal"],
        "other",
        Some("kv-too-many-open-buckets"),
    );
    assert_eq!(denied(&server, "kv-too-many-open-buckets").await.len(), 1);
    assert_eq!(
        ok(&kv(&server, "/rw/kv/get?bucket=orders&key=a").await),
        "2",
        "still serving"
    );
}

#[tokio::test]
async fn values_are_not_in_the_database_files_in_plaintext() {
    let server = TestServer::start().await;
    deployed(&server).await;
    let marker = "PLAINTEXT-VALUE-MARKER-7f3a";
    ok(&kv(
        &server,
        &format!("/rw/kv/set?bucket=orders&key=KEY-MARKER-9c1e&value={marker}"),
    )
    .await);
    ok(&kv(
        &server,
        &format!("/rw/kv/set?bucket=archive&key=again&value={marker}"),
    )
    .await);
    let dir = server.stop().await;
    let mut scanned = 0;
    let mut key_seen = false;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with(zerofn_store::DATABASE_FILE) {
            continue;
        }
        // The last connection to close checkpoints the WAL and removes `-wal` and `-shm`, which
        // can happen between the listing and the read; their content is in the main file then.
        let bytes = match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            read => read.unwrap(),
        };
        scanned += bytes.len();
        assert!(
            !contains(&bytes, marker.as_bytes()),
            "{name} holds the value in plaintext"
        );
        key_seen |= contains(&bytes, b"KEY-MARKER-9c1e");
    }
    assert!(scanned > 0);
    // Key names are kept in plaintext (documented): seeing one proves the scan reads the rows.
    assert!(key_seen, "the scan found the key name");
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn concurrent_increments_give_the_exact_total() {
    let server = std::sync::Arc::new(TestServer::start().await);
    deployed(&server).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let server = server.clone();
            tokio::spawn(async move {
                for _ in 0..25 {
                    let answer =
                        kv(&server, "/rw/kv/increment?bucket=orders&key=hits&delta=2").await;
                    ok(&answer);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        ok(&kv(&server, "/rw/kv/get?bucket=orders&key=hits").await),
        "400"
    );
}

#[tokio::test]
async fn a_tampered_or_moved_row_does_not_open_and_is_reported() {
    let server = TestServer::start().await;
    deployed(&server).await;
    ok(&kv(
        &server,
        "/rw/kv/set?bucket=orders&key=mine&value=kvapp-data",
    )
    .await);
    ok(&kv(
        &server,
        "/rw/kv/set?bucket=orders&key=flipped&value=kvapp-data",
    )
    .await);
    ok(&kv(&server, "/other/kv/set?bucket=orders&key=theirs&value=x").await);
    let db = rusqlite::Connection::open(server.server().platform().store().path()).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    // Another app's sealed row copied over `theirs`: right bytes, wrong name.
    db.execute(
        "UPDATE kv_entries SET
             wrapped_key = (SELECT wrapped_key FROM kv_entries WHERE app = 'kvapp' AND key = CAST('mine' AS BLOB)),
             ciphertext = (SELECT ciphertext FROM kv_entries WHERE app = 'kvapp' AND key = CAST('mine' AS BLOB))
         WHERE app = 'other' AND key = CAST('theirs' AS BLOB)",
        [],
    )
    .unwrap();
    // One bit of a ciphertext changed.
    let mut ciphertext: Vec<u8> = db
        .query_row(
            "SELECT ciphertext FROM kv_entries WHERE key = CAST('flipped' AS BLOB)",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let last = ciphertext.len() - 1;
    ciphertext[last] ^= 1;
    db.execute(
        "UPDATE kv_entries SET ciphertext = ?1 WHERE key = CAST('flipped' AS BLOB)",
        [&ciphertext],
    )
    .unwrap();
    // A row moved to another app under the same names.
    db.execute(
        "UPDATE kv_entries SET app = 'other' WHERE app = 'kvapp' AND key = CAST('mine' AS BLOB)",
        [],
    )
    .unwrap();
    drop(db);

    for path in [
        "/other/kv/get?bucket=orders&key=theirs",
        "/rw/kv/get?bucket=orders&key=flipped",
        "/other/kv/get?bucket=orders&key=mine",
        "/other/kv/increment?bucket=orders&key=mine",
    ] {
        let answer = kv(&server, path).await;
        assert_refused(&answer, "other", Some("kv-value-unreadable"));
        assert!(
            !answer.to_string().contains("kvapp-data"),
            "no plaintext in {answer}"
        );
    }
    let failures: Vec<_> = server
        .events("integrity.failure")
        .await
        .into_iter()
        .filter(|e| e.event["reason"] == "kv-value-unreadable")
        .collect();
    assert_eq!(failures.len(), 4);
    assert_eq!(denied(&server, "kv-value-unreadable").await.len(), 4);
    // The rest keeps working.
    ok(&kv(&server, "/rw/kv/set?bucket=orders&key=fresh&value=ok").await);
    assert_eq!(
        ok(&kv(&server, "/rw/kv/get?bucket=orders&key=fresh").await),
        "ok"
    );
}
