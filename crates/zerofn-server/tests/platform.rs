//! Deploys, routing, rollback, restarts and the control plane, on a real server and store.

// Test helpers outside `#[test]` functions report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{HELLO_MANIFEST, TestServer, hostile_manifest, request};
use std::time::Duration;
use zerofn_server::control::{ControlClient, InvokeRequest, InvokeResponse};
use zerofn_server::{DeployError, DeployReport};
use zerofn_test_artifacts::{HELLO, HOSTILE};

#[tokio::test]
async fn unknown_routes_and_methods_are_refused_with_problem_details() {
    let server = TestServer::start().await;
    server.deploy(HELLO_MANIFEST, &[("hello", HELLO)]).await;
    let ok = server.get("/hello").await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.text(), "Hello from zerofn!\n");

    let missing = server.get("/nope").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.headers["content-type"], "application/problem+json");
    assert_eq!(missing.json()["type"], "urn:zerofn:problem:no-route");

    let wrong = request(server.addr, "DELETE", "/hello", &[], bytes::Bytes::new()).await;
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.json()["allow"], serde_json::json!(["GET"]));
    let refusals = server.events("request.refused").await;
    let reasons: Vec<_> = refusals.iter().map(|r| r.event["reason"].clone()).collect();
    assert_eq!(reasons, ["no-route", "method-not-allowed"]);
}

#[tokio::test]
async fn a_refused_deploy_changes_nothing_and_says_why() {
    let server = TestServer::start().await;
    server.deploy(HELLO_MANIFEST, &[("hello", HELLO)]).await;

    let typo = HELLO_MANIFEST.replace("trigger =", "trigerr =");
    match server.try_deploy(&typo, &[("hello", HELLO)]).await {
        Err(DeployError::Manifest(diagnostics)) => {
            let json = diagnostics.to_json();
            assert_eq!(json[0]["file"], "test/zerofn.toml");
            assert_eq!(json[0]["line"], 7);
        }
        other => panic!("expected manifest diagnostics, got {other:?}"),
    }

    let garbage = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(garbage.path(), b"\0asm not really").unwrap();
    let garbage_path = garbage.path().to_str().unwrap();
    let error = server
        .try_deploy(HELLO_MANIFEST, &[("hello", garbage_path)])
        .await
        .unwrap_err();
    assert_eq!(error.code(), "component-invalid");

    let other_app = HELLO_MANIFEST.replace("\"greet\"", "\"rival\"");
    let error = server
        .try_deploy(&other_app, &[("hello", HELLO)])
        .await
        .unwrap_err();
    assert_eq!(error.code(), "route-conflict");
    assert!(error.to_string().contains("app `greet` already serves"));

    let error = server.try_deploy(HELLO_MANIFEST, &[]).await.unwrap_err();
    assert_eq!(error.code(), "missing-component");

    assert_eq!(server.get("/hello").await.status, 200);
    let refused = server.events("deploy.refused").await;
    assert_eq!(refused.len(), 4);
    assert_eq!(
        refused[0].event["detail"]["refusal"]["code"],
        "manifest-invalid"
    );
}

#[tokio::test]
async fn limits_above_the_operators_ceiling_are_refused() {
    let server = TestServer::start_with(|c| c.limits.ceilings.timeout_ms = 1000).await;
    let error = server
        .try_deploy(
            &hostile_manifest("evil", "timeout_ms = 5000"),
            &[("hostile", HOSTILE)],
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), "limit-above-ceiling");
    let DeployError::Refused(findings) = error else {
        panic!("expected admission findings")
    };
    let ceiling = findings
        .iter()
        .find(|f| f.rule == "limit-above-ceiling")
        .unwrap();
    assert!(ceiling.is_error());
    assert!(ceiling.message.contains("1000"));
    assert_eq!(
        ceiling.field.as_deref(),
        Some("functions.hostile.limits.timeout_ms")
    );
    assert!(ceiling.line.is_some());
}

#[tokio::test]
async fn rollback_returns_to_the_previous_version() {
    let server = TestServer::start().await;
    let v1 = server.deploy(HELLO_MANIFEST, &[("hello", HELLO)]).await;
    let v2_manifest = HELLO_MANIFEST
        .replace("1.0.0", "2.0.0")
        .replace("route = \"/hello\"", "route = \"/...\"");
    let v2 = server.deploy(&v2_manifest, &[("hello", HOSTILE)]).await;
    assert_ne!(v1.version_id, v2.version_id);
    assert_eq!(server.get("/count").await.text(), "1");

    let back = server
        .server()
        .platform()
        .rollback("greet", None)
        .await
        .unwrap();
    assert_eq!(back.version_id, v1.version_id);
    assert_eq!(server.get("/hello").await.text(), "Hello from zerofn!\n");
    assert_eq!(server.get("/count").await.status, 404);
}

#[tokio::test]
async fn a_restarted_server_serves_what_was_active() {
    let server = TestServer::start().await;
    server.deploy(HELLO_MANIFEST, &[("hello", HELLO)]).await;
    let dir = server.stop().await;
    let server = TestServer::start_in(dir, |_| {}).await;
    assert!(server.server().restore_failures.is_empty());
    assert_eq!(server.get("/hello").await.status, 200);
}

#[tokio::test]
async fn a_tampered_component_is_not_loaded_and_is_reported() {
    let server = TestServer::start().await;
    server.deploy(HELLO_MANIFEST, &[("hello", HELLO)]).await;
    let dir = server.stop().await;
    let raw = rusqlite::Connection::open(dir.path().join(zerofn_store::DATABASE_FILE)).unwrap();
    raw.execute("UPDATE blobs SET bytes = CAST('tampered' AS BLOB)", [])
        .unwrap();
    drop(raw);
    let server = TestServer::start_in(dir, |_| {}).await;
    assert_eq!(server.server().restore_failures.len(), 1);
    assert_eq!(
        server.server().restore_failures[0].1.code(),
        "integrity-failure"
    );
    assert_eq!(server.get("/hello").await.status, 404);
    let events = server.events("integrity.failure").await;
    assert_eq!(events.len(), 1);
}

#[tokio::test]
async fn an_edited_manifest_in_the_store_is_not_served() {
    let server = TestServer::start().await;
    server.deploy(HELLO_MANIFEST, &[("hello", HELLO)]).await;
    let dir = server.stop().await;
    let raw = rusqlite::Connection::open(dir.path().join(zerofn_store::DATABASE_FILE)).unwrap();
    raw.execute(
        "UPDATE versions SET manifest = replace(manifest, 'methods = [\"GET\"]', 'methods = [\"GET\", \"POST\"]')",
        [],
    )
    .unwrap();
    drop(raw);
    let server = TestServer::start_in(dir, |_| {}).await;
    assert_eq!(
        server.server().restore_failures[0].1.code(),
        "integrity-failure"
    );
    let events = server.events("integrity.failure").await;
    assert_eq!(events[0].event["reason"], "version-digest-mismatch");
    assert_eq!(server.get("/hello").await.status, 404);
}

#[tokio::test]
async fn rollback_refusals_are_explained_and_recorded() {
    let server = TestServer::start().await;
    server.deploy(HELLO_MANIFEST, &[("hello", HELLO)]).await;
    let platform = server.server().platform();
    let only_one = platform.rollback("greet", None).await.unwrap_err();
    assert_eq!(only_one.code(), "nothing-to-roll-back-to");
    let unknown = platform
        .rollback("greet", Some("sha256:00"))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), "unknown-version");
    let events = server.events("rollback.refused").await;
    let reasons: Vec<_> = events.iter().map(|e| e.event["reason"].clone()).collect();
    assert_eq!(reasons, ["nothing-to-roll-back-to", "unknown-version"]);
}

#[tokio::test]
async fn the_control_plane_is_private_and_serves_the_cli() {
    let server = TestServer::start().await;
    let socket = server.server().control_socket().to_path_buf();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let client = ControlClient::new(&socket);
    let hello = std::fs::read(HELLO).unwrap();
    let attestations = common::sign(
        HELLO_MANIFEST,
        &[("hello".to_string(), hello.clone())].into(),
        &server.key,
    );
    let request = zerofn_server::control::DeployRequest {
        manifest_path: "greet/zerofn.toml".into(),
        manifest: HELLO_MANIFEST.into(),
        components: [("hello".to_string(), {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(&hello)
        })]
        .into(),
        attestations,
        files: Default::default(),
    };
    let report: DeployReport = client.post("/v1/deploy", &request).await.unwrap();
    assert_eq!(report.functions[0].route, "/hello");

    let apps: Vec<zerofn_server::control::AppListing> = client.get("/v1/apps").await.unwrap();
    assert_eq!(apps[0].app, "greet");
    assert!(apps[0].serving);

    let invoked: InvokeResponse = client
        .post(
            "/v1/invoke",
            &InvokeRequest {
                app: "greet".into(),
                function: "hello".into(),
                method: "GET".into(),
                path: "/hello".into(),
                headers: vec![],
                body_base64: String::new(),
            },
        )
        .await
        .unwrap();
    assert_eq!(invoked.status, 200);

    let bad = zerofn_server::control::DeployRequest {
        manifest: "[app]\nname = 'Bad Name'\n".into(),
        ..request
    };
    let refused = client
        .post::<_, DeployReport>("/v1/deploy", &bad)
        .await
        .unwrap_err();
    match refused {
        zerofn_server::control::ControlError::Refused { status, problem } => {
            assert_eq!(status, 422);
            assert_eq!(problem["type"], "urn:zerofn:problem:manifest-invalid");
            assert!(
                problem["diagnostics"]
                    .as_array()
                    .is_some_and(|d| !d.is_empty())
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }

    let missing = client
        .get::<serde_json::Value>("/v1/apps/nope/versions")
        .await;
    assert!(matches!(
        missing,
        Err(zerofn_server::control::ControlError::Refused { status: 404, .. })
    ));
    let dir = server.stop().await;
    let gone = ControlClient::new(&zerofn_server::control::socket_path(dir.path()))
        .get::<serde_json::Value>("/v1/apps")
        .await;
    assert!(matches!(
        gone,
        Err(zerofn_server::control::ControlError::NotRunning { .. })
    ));
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_and_refuses_new_ones() {
    let server = TestServer::start().await;
    server
        .deploy(
            &hostile_manifest("evil", "timeout_ms = 3000"),
            &[("hostile", HOSTILE)],
        )
        .await;
    let addr = server.addr;
    let in_flight = tokio::spawn(async move {
        request(addr, "GET", "/sleep?ms=500", &[], bytes::Bytes::new()).await
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let stopping = tokio::spawn(server.stop());
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "slept");
    let _dir = stopping.await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn a_second_server_cannot_take_over_a_live_data_directory() {
    let server = TestServer::start().await;
    let config = common::config(server.dir.path());
    let error = zerofn_server::start(config).await.unwrap_err();
    assert!(
        error.to_string().contains("another zerofn server"),
        "{error}"
    );
}

#[tokio::test]
async fn malformed_requests_get_clear_errors_and_the_server_keeps_serving() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start().await;
    server.deploy(HELLO_MANIFEST, &[("hello", HELLO)]).await;

    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(b"\x00\x01GARBAGE\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );

    let missing_host = {
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"GET /hello HTTP/1.0\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut answer)).await;
        String::from_utf8_lossy(&answer).into_owned()
    };
    assert!(missing_host.contains(" 400 "), "{missing_host}");
    assert!(missing_host.contains("missing-host"), "{missing_host}");

    let client = ControlClient::new(server.server().control_socket());
    for (path, body) in [
        ("/v1/deploy", serde_json::json!({"manifest": 3})),
        (
            "/v1/deploy",
            serde_json::json!({"manifest_path": "x", "manifest": "", "components": {"a": "%%%"}}),
        ),
        ("/v1/invoke", serde_json::json!({"app": "greet"})),
    ] {
        let error = client
            .post::<_, serde_json::Value>(path, &body)
            .await
            .unwrap_err();
        match error {
            zerofn_server::control::ControlError::Refused { status, problem } => {
                assert_eq!(status, 400, "{problem}");
                assert_eq!(
                    problem["type"],
                    "urn:zerofn:problem:malformed-control-request"
                );
            }
            other => panic!("{other:?}"),
        }
    }
    let unknown = client.get::<serde_json::Value>("/v1/nothing").await;
    assert!(matches!(
        unknown,
        Err(zerofn_server::control::ControlError::Refused { status: 404, .. })
    ));
    let bad_query = client.get::<serde_json::Value>("/v1/logs?limit=many").await;
    assert!(matches!(
        bad_query,
        Err(zerofn_server::control::ControlError::Refused { status: 400, .. })
    ));
    let refused = server.events("control.refused").await;
    assert_eq!(refused.len(), 5, "every control refusal is recorded");
    assert_eq!(server.get("/hello").await.status, 200);
}

fn active_origin(server: &TestServer) -> zerofn_runtime::ComponentOrigin {
    let routes = server.server().platform().routes();
    let app = routes.app("greet").unwrap();
    app.functions[0].component.origin().clone()
}

#[tokio::test]
async fn compiled_code_is_cached_and_a_tampered_entry_is_recompiled_not_loaded() {
    let server = TestServer::start().await;
    server.deploy(HELLO_MANIFEST, &[("hello", HELLO)]).await;
    assert_eq!(
        active_origin(&server),
        zerofn_runtime::ComponentOrigin::Compiled
    );
    let dir = server.stop().await;

    let server = TestServer::start_in(dir, |_| {}).await;
    assert_eq!(
        active_origin(&server),
        zerofn_runtime::ComponentOrigin::Cache
    );
    let dir = server.stop().await;

    let compiled = dir.path().join(zerofn_server::COMPILED_DIR);
    let entry = std::fs::read_dir(&compiled)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .unwrap();
    let mut bytes = std::fs::read(&entry).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&entry, bytes).unwrap();

    let server = TestServer::start_in(dir, |_| {}).await;
    assert!(server.server().restore_failures.is_empty());
    assert!(matches!(
        active_origin(&server),
        zerofn_runtime::ComponentOrigin::Recompiled { .. }
    ));
    let events = server.events("integrity.failure").await;
    assert_eq!(events[0].event["reason"], "compiled-cache-mismatch");
    assert_eq!(server.get("/hello").await.text(), "Hello from zerofn!\n");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let secret = server.dir.path().join(zerofn_server::NODE_SECRET_FILE);
        let mode = std::fs::metadata(secret).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
