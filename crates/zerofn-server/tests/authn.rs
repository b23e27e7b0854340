//! Callers authenticated before any sandbox exists, through the real trigger: API keys that
//! are missing, malformed, unknown, wrong, revoked, expired or for another function are each
//! refused with their own rule and without echoing the key; a good key reaches the function,
//! which sees the key's id and never the key. Every decision and key change is audited.

// Test helpers outside `#[test]` functions report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestServer, request};
use zerofn_test_artifacts::HOSTILE;

const APP: &str = r#"[app]
name = "orders"
version = "1.0.0"

[functions.list]
component = "hostile.wasm"
trigger = { http = { route = "/headers", methods = ["GET"] } }
auth = { api-key = { header = "x-api-key" } }

[functions.admin]
component = "hostile.wasm"
trigger = { http = { route = "/count", methods = ["GET"] } }
auth = { api-key = { header = "x-api-key" } }
"#;

async fn get(server: &TestServer, path: &str, key: Option<&str>) -> common::Reply {
    let headers: Vec<(&str, &str)> = key.map(|k| ("x-api-key", k)).into_iter().collect();
    request(server.addr, "GET", path, &headers, bytes::Bytes::new()).await
}

#[tokio::test]
async fn api_keys_are_checked_before_any_sandbox_exists() {
    let server = TestServer::start().await;
    server
        .deploy(APP, &[("list", HOSTILE), ("admin", HOSTILE)])
        .await;
    let platform = server.server().platform();
    let (record, key) = platform
        .create_api_key("orders", vec!["list".into()], "ci", None)
        .await
        .unwrap();
    assert!(key.starts_with("zfn_"));

    // A good key: the function runs, sees the key's id and not the key.
    let ok = get(&server, "/headers", Some(&key)).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let headers = ok.json();
    assert_eq!(headers["x-zerofn-api-key-id"], record.id.as_str());
    assert!(headers.get("x-api-key").is_none(), "{headers}");
    assert!(!ok.text().contains(&key));

    let refusals = [
        (None, "/headers", 401, "api-key-missing"),
        (Some("not-a-key"), "/headers", 401, "api-key-invalid"),
        (
            Some("zfn_0000000000000000_secret"),
            "/headers",
            401,
            "api-key-invalid",
        ),
        (
            Some(&*format!("zfn_{}_wrongsecret", record.id)),
            "/headers",
            401,
            "api-key-invalid",
        ),
        (Some(&*key), "/count", 403, "api-key-not-scoped"),
    ];
    for (presented, path, status, rule) in refusals {
        let reply = get(&server, path, presented).await;
        assert_eq!(reply.status, status, "{presented:?} {}", reply.text());
        assert_eq!(reply.json()["type"], format!("urn:zerofn:problem:{rule}"));
        if let Some(presented) = presented {
            assert!(!reply.text().contains(presented), "the key was echoed");
        }
    }

    // Revoked: refused from the next request on.
    assert!(platform.revoke_api_key(&record.id).await.unwrap());
    let revoked = get(&server, "/headers", Some(&key)).await;
    assert_eq!(revoked.status, 401);
    assert_eq!(revoked.json()["type"], "urn:zerofn:problem:api-key-revoked");

    // Expired.
    let (_, expired) = platform
        .create_api_key(
            "orders",
            vec!["*".into()],
            "old",
            Some(std::time::Duration::ZERO),
        )
        .await
        .unwrap();
    let reply = get(&server, "/count", Some(&expired)).await;
    assert_eq!(reply.json()["type"], "urn:zerofn:problem:api-key-expired");

    // No refused request ever created a sandbox: one invocation ran, the good one.
    let starts = server.events("invocation.start").await;
    assert_eq!(starts.len(), 1);
    let decisions = server.events("authn.decision").await;
    assert_eq!(decisions.len(), 8);
    assert_eq!(decisions[0].event["outcome"], "success");
    assert_eq!(
        decisions[0].event["detail"]["credential"],
        record.id.as_str()
    );
    for decision in &decisions {
        assert!(
            !decision.event.to_string().contains(&key),
            "a secret reached the audit log"
        );
    }
    let changes = server.events("credential.change").await;
    let reasons: Vec<&str> = changes
        .iter()
        .map(|c| c.event["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        ["api-key-created", "api-key-revoked", "api-key-created"]
    );
}

#[tokio::test]
async fn only_a_hash_of_the_key_is_stored() {
    let server = TestServer::start().await;
    let (record, key) = server
        .server()
        .platform()
        .create_api_key("orders", vec!["*".into()], "", None)
        .await
        .unwrap();
    // `zfn_<16 hex digits>_<secret>`; the secret itself may contain `_` (base64url).
    let secret = key.strip_prefix(&format!("zfn_{}_", record.id)).unwrap();
    assert_eq!(secret.len(), 43);
    let stored = server
        .server()
        .platform()
        .store()
        .api_key(&record.id)
        .unwrap()
        .unwrap();
    assert_ne!(stored.secret_hash, secret);
    assert_eq!(stored.secret_hash.len(), 64);
    let db = std::fs::read(server.dir.path().join("zerofn.db")).unwrap();
    let wal = std::fs::read(server.dir.path().join("zerofn.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the secret is in the store"
        );
    }
}
