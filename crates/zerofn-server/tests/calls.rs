//! Function-to-function calls through the real path: a hostile guest makes outbound HTTP to
//! `<function>.<app>.fn.internal`, the platform asks the Cedar PDP, and the callee runs in its
//! own sandbox. Granted calls carry the verified caller identity (forged copies stripped);
//! ungranted, guardrail-forbidden, cross-app and runaway recursive calls are refused with the
//! reason, and every decision is audited.

// Test helpers outside `#[test]` functions report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestServer;
use zerofn_test_artifacts::HOSTILE;

const APP: &str = r#"[app]
name = "chain"
version = "1.0.0"

[functions.front]
component = "hostile.wasm"
trigger = { http = { route = "/call", methods = ["GET"] } }
auth = { public = true }
grants = { invoke = ["back"] }

[functions.back]
component = "hostile.wasm"
trigger = { http = { route = "/headers", methods = ["GET"] } }
auth = { public = true }

[functions.other]
component = "hostile.wasm"
trigger = { http = { route = "/echo" } }
auth = { public = true }

[functions.sleeper]
component = "hostile.wasm"
trigger = { http = { route = "/sleep", methods = ["GET"] } }
auth = { public = true }
limits = { timeout_ms = 5000 }

[functions.ping]
component = "hostile.wasm"
trigger = { http = { route = "/pingpong", methods = ["GET"] } }
auth = { public = true }
grants = { invoke = ["pong"] }

[functions.pong]
component = "hostile.wasm"
trigger = { http = { route = "/pong", methods = ["GET"] } }
auth = { public = true }
grants = { invoke = ["ping"] }
"#;

async fn deployed(server: &TestServer) {
    let components: Vec<(&str, &str)> = ["front", "back", "other", "sleeper", "ping", "pong"]
        .into_iter()
        .map(|f| (f, HOSTILE))
        .collect();
    server.deploy(APP, &components).await;
}

/// What `/call` reported: the callee's status and body.
async fn call(server: &TestServer, host: &str, path: &str) -> (u16, String) {
    let reply = server.get(&format!("/call?host={host}&path={path}")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let json = reply.json();
    let status = json["status"]
        .as_u64()
        .unwrap_or_else(|| panic!("no status in {json}"));
    (status as u16, json["body"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn a_granted_call_carries_the_verified_identity_and_never_the_forged_one() {
    let server = TestServer::start().await;
    deployed(&server).await;
    let (status, body) = call(&server, "back.chain.fn.internal", "/headers").await;
    assert_eq!(status, 200, "{body}");
    let headers: serde_json::Value = serde_json::from_str(&body).unwrap();
    let front = "spiffe://zerofn.local/app/chain/fn/front";
    assert_eq!(headers["x-zerofn-caller"], front, "{headers}");
    assert_eq!(headers["x-zerofn-caller-chain"], front, "{headers}");
    assert!(
        !body.contains("evil.example"),
        "forged identity reached the callee: {body}"
    );
    assert!(!body.contains("forged"), "{body}");

    let decisions = server.events("authz.decision").await;
    assert_eq!(decisions.len(), 1);
    let decision = &decisions[0].event;
    assert_eq!(decision["outcome"], "success");
    assert_eq!(decision["function"], "front");
    assert_eq!(decision["detail"]["action"], "invoke");
    assert_eq!(
        decision["detail"]["resource"],
        "spiffe://zerofn.local/app/chain/fn/back"
    );
    assert_eq!(
        decision["detail"]["policies"],
        serde_json::json!(["grant/chain/front/invoke/back"])
    );
    // The callee ran in a sandbox of its own, under its own invocation id.
    let starts = server.events("invocation.start").await;
    let functions: Vec<&str> = starts
        .iter()
        .map(|s| s.event["function"].as_str().unwrap())
        .collect();
    assert_eq!(functions, ["front", "back"]);
    assert_ne!(
        starts[0].event["invocation_id"],
        starts[1].event["invocation_id"]
    );
}

#[tokio::test]
async fn a_call_without_a_grant_is_refused_with_the_reason_and_the_fix() {
    let server = TestServer::start().await;
    deployed(&server).await;
    let (status, body) = call(&server, "other.chain.fn.internal", "/echo").await;
    assert_eq!(status, 403, "{body}");
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["type"], "urn:zerofn:problem:invoke-denied");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("default deny"), "{detail}");
    assert!(detail.contains("invoke = [\"other\"]"), "{detail}");

    let decisions = server.events("authz.decision").await;
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0].event["outcome"], "denied");
    // The callee never ran.
    let starts = server.events("invocation.start").await;
    assert!(starts.iter().all(|s| s.event["function"] != "other"));
}

#[tokio::test]
async fn a_guardrail_forbid_beats_the_manifest_grant() {
    let guardrails = tempfile::tempdir().unwrap();
    std::fs::write(
        guardrails.path().join("org.cedar"),
        "@id(\"back-is-closed\")\nforbid(principal, action == Action::\"invoke\", resource == Function::\"chain/back\");\n",
    )
    .unwrap();
    let dir = guardrails.path().to_path_buf();
    let server = TestServer::start_with(|config| config.guardrails = vec![dir]).await;
    deployed(&server).await;
    let (status, body) = call(&server, "back.chain.fn.internal", "/headers").await;
    assert_eq!(status, 403, "{body}");
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["policies"], serde_json::json!(["back-is-closed"]));
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("denied by back-is-closed")
    );
}

#[tokio::test]
async fn recursive_calls_stop_at_the_depth_cap_and_the_platform_keeps_serving() {
    let server = TestServer::start().await;
    deployed(&server).await;
    let reply = server.get("/pingpong?me=ping&peer=pong&app=chain").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    // Each level reports what the next answered; the innermost got the cap.
    let mut level = reply.json();
    let mut depth = 1;
    loop {
        let status = level["status"].as_u64().unwrap();
        let body = level["body"].as_str().unwrap().to_string();
        if status != 200 {
            assert_eq!(status, 508, "{body}");
            assert!(body.contains("call-depth-exceeded"), "{body}");
            break;
        }
        level = serde_json::from_str(&body).unwrap();
        depth += 1;
    }
    // `depth` functions ran, the deepest of them refused its call.
    assert_eq!(depth, zerofn_server::calls::MAX_CALL_DEPTH);
    let starts = server.events("invocation.start").await;
    assert_eq!(starts.len(), zerofn_server::calls::MAX_CALL_DEPTH);
    let refused = server.events("request.refused").await;
    assert!(
        refused
            .iter()
            .any(|r| r.event["reason"] == "call-depth-exceeded")
    );
    assert_eq!(server.get("/headers").await.status, 200);
}

#[tokio::test]
async fn a_call_to_another_app_is_refused() {
    let server = TestServer::start().await;
    deployed(&server).await;
    let (status, body) = call(&server, "back.elsewhere.fn.internal", "/headers").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("cross-app-call"), "{body}");
}

#[tokio::test]
async fn other_outbound_requests_stay_refused() {
    let server = TestServer::start().await;
    deployed(&server).await;
    let reply = server.get("/call?host=example.com&path=/").await;
    let json = reply.json();
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("HttpRequestDenied"),
        "{json}"
    );
    let denied = server.events("egress.denied").await;
    assert_eq!(denied.len(), 1);
}

#[tokio::test]
async fn an_invocation_token_lives_exactly_as_long_as_its_invocation() {
    let server = TestServer::start().await;
    deployed(&server).await;
    let issuer = server.server().platform().issuer().clone();
    assert_eq!(issuer.live(), 0);
    let addr = server.addr;
    let sleeping = tokio::spawn(async move {
        common::request(addr, "GET", "/sleep?ms=800", &[], bytes::Bytes::new()).await
    });
    let mut seen_live = false;
    for _ in 0..100 {
        if issuer.live() == 1 {
            seen_live = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(seen_live, "the running invocation holds a live token");
    assert_eq!(sleeping.await.unwrap().status, 200);
    // Revoked when the sandbox went: a copy could not be replayed now.
    for _ in 0..100 {
        if issuer.live() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(issuer.live(), 0);

    // A call chain: both tokens end with their invocations.
    let (status, _) = call(&server, "back.chain.fn.internal", "/headers").await;
    assert_eq!(status, 200);
    for _ in 0..100 {
        if issuer.live() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(issuer.live(), 0);
}

#[tokio::test]
async fn the_token_verification_keys_are_published_as_a_jwks() {
    let server = TestServer::start().await;
    let client = zerofn_server::control::ControlClient::new(server.server().control_socket());
    let jwks: serde_json::Value = client.get("/v1/jwks").await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "EC");
    assert_eq!(keys[0]["alg"], "ES256");
    assert_eq!(keys[0]["use"], "jwt-svid");
}

#[tokio::test]
async fn an_outside_caller_cannot_pose_as_a_function() {
    let server = TestServer::start().await;
    deployed(&server).await;
    let reply = common::request(
        server.addr,
        "GET",
        "/headers",
        &[
            (
                "x-zerofn-caller",
                "spiffe://zerofn.local/app/chain/fn/front",
            ),
            (
                "x-zerofn-caller-chain",
                "spiffe://zerofn.local/app/chain/fn/front",
            ),
            ("x-zerofn-anything", "x"),
        ],
        bytes::Bytes::new(),
    )
    .await;
    assert_eq!(reply.status, 200);
    let headers = reply.json();
    let names: Vec<&String> = headers.as_object().unwrap().keys().collect();
    assert!(
        names.iter().all(|n| !n.starts_with("x-zerofn-")),
        "reserved headers reached the function: {names:?}"
    );
}

#[tokio::test]
async fn a_callee_never_outlives_its_caller() {
    let server = TestServer::start().await;
    let app = APP
        .replace(
            "trigger = { http = { route = \"/call\", methods = [\"GET\"] } }",
            "trigger = { http = { route = \"/call\", methods = [\"GET\"] } }\nlimits = { timeout_ms = 400 }",
        )
        .replace(
            "trigger = { http = { route = \"/headers\", methods = [\"GET\"] } }",
            "trigger = { http = { route = \"/headers\", methods = [\"GET\"] } }\nlimits = { timeout_ms = 5000 }",
        );
    let components: Vec<(&str, &str)> = ["front", "back", "other", "sleeper", "ping", "pong"]
        .into_iter()
        .map(|f| (f, HOSTILE))
        .collect();
    server.deploy(&app, &components).await;
    let reply = server
        .get("/call?host=back.chain.fn.internal&path=/sleep?ms=3000")
        .await;
    assert_eq!(reply.status, 504, "{}", reply.text());
    // The callee asked for 3 s and may run 5 s, but its caller had 0.4 s: it is stopped then.
    let mut back_end = None;
    for _ in 0..300 {
        back_end = server
            .events("invocation.end")
            .await
            .into_iter()
            .find(|e| e.event["function"] == "back");
        if back_end.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let back_end = back_end.expect("the callee's invocation ended");
    let duration_us = back_end.event["detail"]["duration_us"].as_u64().unwrap();
    assert!(duration_us < 1_500_000, "callee ran {duration_us} µs");
    assert_eq!(back_end.event["reason"], "timeout");
}

#[tokio::test]
async fn internal_calls_keep_to_the_callee_s_declared_methods() {
    let server = TestServer::start().await;
    deployed(&server).await;
    // `back` is declared GET only; the caller is granted `invoke` but tries POST.
    let reply = server
        .get("/call?host=back.chain.fn.internal&method=POST&path=/headers")
        .await;
    let json = reply.json();
    assert_eq!(json["status"], 405, "{json}");
    assert!(
        json["body"]
            .as_str()
            .unwrap()
            .contains("method-not-allowed")
    );
    let starts = server.events("invocation.start").await;
    assert!(starts.iter().all(|s| s.event["function"] != "back"));
}
