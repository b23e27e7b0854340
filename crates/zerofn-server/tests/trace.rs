//! Correlation through the real path: a caller's `traceparent` is continued (a malformed one
//! starts a new trace and the refusal is recorded), every event of an invocation carries the
//! trace, its span, the function's identity and the caller, a call to another function is a
//! child of the caller's call span whatever `traceparent` the guest forged, and the control
//! plane serves the causal tree.

// Test helpers outside `#[test]` functions report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestServer, request};
use zerofn_server::control::{ControlClient, ControlError};
use zerofn_server::traces::TraceTree;
use zerofn_test_artifacts::HOSTILE;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// What the hostile guest's `/call` puts on its request.
const FORGED_TRACE: &str = "0badc0de0badc0de0badc0de0badc0de";

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
"#;

async fn deployed() -> TestServer {
    let server = TestServer::start().await;
    server
        .deploy(APP, &[("front", HOSTILE), ("back", HOSTILE)])
        .await;
    server
}

async fn get(server: &TestServer, path: &str, traceparent: Option<&str>) -> common::Reply {
    let headers: Vec<(&str, &str)> = traceparent
        .map(|t| ("traceparent", t))
        .into_iter()
        .collect();
    request(server.addr, "GET", path, &headers, bytes::Bytes::new()).await
}

/// `00-<trace>-<span>-<flags>` split in its fields.
fn fields(traceparent: &str) -> Vec<String> {
    traceparent.split('-').map(str::to_owned).collect()
}

/// The events of `trace_id`, once `ends` invocations of it have ended (an invocation's end is
/// recorded when its sandbox is gone, which can be after its response was sent).
async fn trace_events(
    server: &TestServer,
    trace_id: &str,
    ends: usize,
) -> Vec<zerofn_store::AuditRow> {
    for _ in 0..200 {
        let events = server
            .audit(zerofn_store::AuditQuery {
                trace_id: Some(trace_id.into()),
                limit: Some(10_000),
                ..Default::default()
            })
            .await;
        if events.iter().filter(|e| e.kind == "invocation.end").count() >= ends {
            return events;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the invocations of {trace_id} did not end");
}

#[tokio::test]
async fn a_callers_traceparent_is_continued_and_the_guest_sees_its_invocations_span() {
    let server = deployed().await;
    let reply = get(&server, "/headers", Some(PARENT)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let answered = reply.headers["traceparent"].to_str().unwrap().to_string();
    let answered_fields = fields(&answered);
    assert_eq!(answered_fields[1], TRACE);
    assert_ne!(answered_fields[2], CALLER_SPAN);
    assert_eq!(answered_fields[3], "01");
    assert!(reply.headers.contains_key("x-zerofn-invocation-id"));
    // The guest is handed its own invocation's span to continue, not the caller's.
    let seen = reply.json();
    assert_eq!(seen["traceparent"], answered.as_str(), "{seen}");

    let events = trace_events(&server, TRACE, 1).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["invocation.start", "invocation.end"]);
    for event in &events {
        let event = &event.event;
        assert_eq!(event["trace_id"], TRACE);
        assert_eq!(event["span_id"], answered_fields[2].as_str());
        assert_eq!(event["parent_span_id"], CALLER_SPAN);
        assert_eq!(event["identity"], "spiffe://zerofn.local/app/chain/fn/back");
        assert_eq!(event["caller"], "anonymous");
        assert!(event["version_id"].as_str().unwrap().starts_with("sha256:"));
    }
    assert_eq!(events[0].event["detail"]["method"], "GET");
    assert_eq!(events[0].event["detail"]["route"], "/headers");
    assert!(
        events[0].event["detail"]
            .get("refused_traceparent")
            .is_none()
    );
}

#[tokio::test]
async fn a_malformed_traceparent_starts_a_new_trace_and_the_refusal_is_recorded() {
    let server = deployed().await;
    for (sent, reason) in [
        (
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "traceparent is not",
        ),
        (
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "version ff",
        ),
        (
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "all zeros",
        ),
    ] {
        let reply = get(&server, "/headers", Some(sent)).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let answered = fields(reply.headers["traceparent"].to_str().unwrap());
        let new_trace = answered[1].clone();
        assert_ne!(new_trace, TRACE);
        assert!(zerofn_server::traces::is_trace_id(&new_trace));

        let events = trace_events(&server, &new_trace, 1).await;
        let start = &events
            .iter()
            .find(|e| e.kind == "invocation.start")
            .unwrap()
            .event;
        assert!(start.get("parent_span_id").is_none(), "{start}");
        let refused = &start["detail"]["refused_traceparent"];
        assert_eq!(refused["value"], sent);
        assert!(
            refused["reason"].as_str().unwrap().contains(reason),
            "{refused}"
        );
    }
    // Nothing was recorded under the ids the caller sent.
    assert!(trace_or_none(&server, TRACE).await.is_empty());
}

async fn trace_or_none(server: &TestServer, trace_id: &str) -> Vec<zerofn_store::AuditRow> {
    server
        .audit(zerofn_store::AuditQuery {
            trace_id: Some(trace_id.into()),
            ..Default::default()
        })
        .await
}

#[tokio::test]
async fn a_guest_cannot_forge_the_parentage_of_the_function_it_calls() {
    let server = deployed().await;
    let reply = get(
        &server,
        "/call?host=back.chain.fn.internal&path=/headers",
        Some(PARENT),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let answer = reply.json();
    assert_eq!(answer["status"], 200, "{answer}");
    let callee_saw: serde_json::Value =
        serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    let callee_traceparent = callee_saw["traceparent"].as_str().unwrap().to_string();
    assert_eq!(fields(&callee_traceparent)[1], TRACE, "{callee_saw}");
    assert!(!callee_traceparent.contains("0badc0de"), "{callee_saw}");

    let events = trace_events(&server, TRACE, 2).await;
    let front_start = events
        .iter()
        .find(|e| e.kind == "invocation.start" && e.event["function"] == "front")
        .unwrap();
    let decision = events.iter().find(|e| e.kind == "authz.decision").unwrap();
    let back_start = events
        .iter()
        .find(|e| e.kind == "invocation.start" && e.event["function"] == "back")
        .unwrap();
    // The call has its own span under the caller's invocation; the callee's invocation is
    // under the call, and is the span the callee was handed.
    assert_eq!(
        decision.event["parent_span_id"],
        front_start.event["span_id"]
    );
    assert_eq!(
        back_start.event["parent_span_id"],
        decision.event["span_id"]
    );
    assert_eq!(
        back_start.event["span_id"].as_str().unwrap(),
        fields(&callee_traceparent)[2]
    );
    assert_eq!(
        back_start.event["caller"],
        "spiffe://zerofn.local/app/chain/fn/front"
    );
    assert_eq!(front_start.event["caller"], "anonymous");
    // What the guest wrote is on record, and followed nowhere.
    assert_eq!(
        decision.event["detail"]["guest_traceparent"],
        format!("00-{FORGED_TRACE}-0badc0de0badc0de-01")
    );
    assert!(trace_or_none(&server, FORGED_TRACE).await.is_empty());

    let tree = zerofn_server::traces::build(TRACE, &events).unwrap();
    assert_eq!(tree.invocations, 2);
    assert_eq!(tree.roots.len(), 1);
    let root = &tree.roots[0];
    assert_eq!(root.span_id, front_start.event["span_id"].as_str().unwrap());
    assert_eq!(root.parent_span_id.as_deref(), Some(CALLER_SPAN));
    assert_eq!(root.children.len(), 1);
    let call = &root.children[0];
    assert_eq!(call.kind, "invoke");
    assert_eq!(call.children.len(), 1);
    assert_eq!(call.children[0].kind, "invocation");
    assert_eq!(
        call.children[0].span_id,
        back_start.event["span_id"].as_str().unwrap()
    );
}

#[tokio::test]
async fn the_control_plane_serves_the_tree_and_refuses_what_is_not_a_trace_id() {
    let server = deployed().await;
    let reply = get(
        &server,
        "/call?host=back.chain.fn.internal&path=/headers",
        Some(PARENT),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    trace_events(&server, TRACE, 2).await;

    let client = ControlClient::new(server.server().control_socket());
    let tree: TraceTree = client.get(&format!("/v1/traces/{TRACE}")).await.unwrap();
    assert_eq!(tree.trace_id, TRACE);
    assert_eq!(tree.invocations, 2);
    let text = zerofn_server::traces::render(&tree);
    assert!(text.contains("└─ GET /call  chain/front  200"), "{text}");
    assert!(text.contains("└─ invoke chain/back  allowed"), "{text}");
    assert!(text.contains("└─ GET /headers  chain/back  200"), "{text}");

    for bad in [
        "4BF92F3577B34DA6A3CE929D0E0E4736",
        "00000000000000000000000000000000",
        "xyz",
    ] {
        match client.get::<TraceTree>(&format!("/v1/traces/{bad}")).await {
            Err(ControlError::Refused { status, problem }) => {
                assert_eq!(status, 400, "{problem}");
                assert!(
                    problem["detail"].as_str().unwrap().contains("32 lowercase"),
                    "{problem}"
                );
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
    match client
        .get::<TraceTree>("/v1/traces/0123456789abcdef0123456789abcdef")
        .await
    {
        Err(ControlError::Refused { status, problem }) => {
            assert_eq!(status, 404, "{problem}");
            assert_eq!(
                problem["type"]
                    .as_str()
                    .map(|t| t.ends_with("unknown-trace")),
                Some(true),
                "{problem}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_refused_request_is_in_its_trace_with_the_reason() {
    let server = deployed().await;
    let reply = get(&server, "/nowhere", Some(PARENT)).await;
    assert_eq!(reply.status, 404);
    assert_eq!(
        fields(reply.headers["traceparent"].to_str().unwrap())[1],
        TRACE
    );
    let events = trace_or_none(&server, TRACE).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, "request.refused");
    assert_eq!(events[0].event["reason"], "no-route");
    assert_eq!(events[0].event["caller"], "anonymous");
    assert_eq!(events[0].event["parent_span_id"], CALLER_SPAN);
    let tree = zerofn_server::traces::build(TRACE, &events).unwrap();
    assert_eq!(tree.roots[0].kind, "refused");
}
