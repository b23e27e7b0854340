//! The sandbox guarantees, through the real path: a hostile component deployed on a real server,
//! called over HTTP on loopback.

// Test helpers outside `#[test]` functions report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestServer, hostile_manifest, invocation_id, request};
use std::time::{Duration, Instant};
use zerofn_store::AuditQuery;
use zerofn_test_artifacts::HOSTILE;

const LIMITS: &str = "timeout_ms = 500, memory_mb = 32, max_concurrency = 8";

async fn hostile_server() -> TestServer {
    let server = TestServer::start().await;
    server
        .deploy(&hostile_manifest("evil", LIMITS), &[("hostile", HOSTILE)])
        .await;
    server
}

/// The end event of `invocation`, waiting for it: it is recorded when the sandbox is gone,
/// which can be just after the response was sent.
async fn end_event(server: &TestServer, invocation: &str) -> serde_json::Value {
    for _ in 0..100 {
        let events = server
            .audit(AuditQuery {
                invocation_id: Some(invocation.into()),
                kind: Some("invocation.end".into()),
                ..Default::default()
            })
            .await;
        if let Some(event) = events.first() {
            assert_eq!(events.len(), 1, "one end event for {invocation}");
            return event.event.clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no end event for {invocation}");
}

#[tokio::test]
async fn statics_do_not_survive_an_invocation() {
    let server = hostile_server().await;
    for _ in 0..5 {
        let reply = server.get("/count").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.text(), "1");
    }
}

#[tokio::test]
async fn fresh_heap_pages_never_hold_an_earlier_invocations_marker() {
    let server = hostile_server().await;
    for _ in 0..5 {
        let reply = server.get("/marker").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let report = reply.json();
        assert_eq!(report["seen_marker"], false, "{report}");
        assert_eq!(report["nonzero_bytes"], 0, "{report}");
    }
}

#[tokio::test]
async fn a_guest_sees_no_environment_arguments_files_or_sockets() {
    let server = hostile_server().await;
    let reply = server.get("/ambient").await;
    assert_eq!(reply.status, 200);
    let report = reply.json();
    assert_eq!(report["env"], serde_json::json!([]), "{report}");
    assert!(
        report["args"].as_array().unwrap().is_empty(),
        "arguments leaked: {report}"
    );
    for probe in ["preopens_or_root", "file_read", "tcp_connect", "dns"] {
        let outcome = report[probe].as_str().unwrap();
        assert!(outcome.starts_with("err"), "{probe} succeeded: {outcome}");
    }
}

#[tokio::test]
async fn an_infinite_loop_times_out_and_the_server_keeps_serving() {
    let server = hostile_server().await;
    let started = Instant::now();
    let reply = server.get("/loop").await;
    let elapsed = started.elapsed();
    assert_eq!(reply.status, 504);
    assert!(
        elapsed < Duration::from_millis(500 + 1000),
        "took {elapsed:?} for a 500 ms deadline"
    );
    let event = end_event(&server, &invocation_id(&reply)).await;
    assert_eq!(event["reason"], "timeout");
    assert_eq!(server.get("/count").await.status, 200);
}

#[tokio::test]
async fn a_guest_blocked_in_the_host_also_times_out() {
    let server = hostile_server().await;
    let reply = server.get("/sleep?ms=10000").await;
    assert_eq!(reply.status, 504);
    assert_eq!(reply.json()["type"], "urn:zerofn:problem:function-timeout");
}

#[tokio::test]
async fn a_memory_bomb_fails_alone() {
    let server = hostile_server().await;
    let (bomb, ok) = tokio::join!(server.get("/membomb"), server.get("/count"));
    assert_eq!(bomb.status, 500);
    assert_eq!(ok.status, 200);
    let event = end_event(&server, &invocation_id(&bomb)).await;
    assert_eq!(event["reason"], "memory-limit");
    assert_eq!(server.get("/count").await.text(), "1");
}

#[tokio::test]
async fn unbounded_recursion_fails_alone() {
    let server = hostile_server().await;
    // Rust keeps large frames on a shadow stack in linear memory; overflowing it is a trap.
    let reply = server.get("/recurse").await;
    assert_eq!(reply.status, 500);
    let event = end_event(&server, &invocation_id(&reply)).await;
    assert_eq!(event["reason"], "trap");
    // Small frames live on the engine's own stack, whose limit is a stack-overflow trap.
    let reply = server.get("/recurse-native").await;
    assert_eq!(reply.status, 500);
    let event = end_event(&server, &invocation_id(&reply)).await;
    assert_eq!(event["reason"], "stack-overflow");
    assert_eq!(server.get("/count").await.status, 200);
}

#[tokio::test]
async fn panics_and_traps_answer_500_without_guest_details() {
    let server = hostile_server().await;
    for path in ["/panic", "/trap"] {
        let reply = server.get(path).await;
        assert_eq!(reply.status, 500, "{path}");
        let text = reply.text();
        assert!(
            !text.contains("secret-detail-xyz"),
            "guest detail leaked: {text}"
        );
        let problem = reply.json();
        assert_eq!(problem["type"], "urn:zerofn:problem:function-failed");
        assert_eq!(problem["invocation_id"], invocation_id(&reply));
        let event = end_event(&server, &invocation_id(&reply)).await;
        assert_eq!(event["outcome"], "failure");
        assert_eq!(event["reason"], "trap");
    }
}

#[tokio::test]
async fn a_guest_that_never_answers_gets_a_500_recorded_as_no_response() {
    let server = hostile_server().await;
    let reply = server.get("/no-response").await;
    assert_eq!(reply.status, 500);
    let event = end_event(&server, &invocation_id(&reply)).await;
    assert_eq!(event["outcome"], "failure");
    assert_eq!(event["reason"], "no-response");
}

#[tokio::test]
async fn two_hundred_concurrent_requests_against_a_cap_of_eight() {
    let server = hostile_server().await;
    let addr = server.addr;
    let requests = (0..200).map(|_| {
        tokio::spawn(async move {
            request(addr, "GET", "/sleep?ms=100", &[], bytes::Bytes::new()).await
        })
    });
    let replies = futures_join_all(requests).await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let limited: Vec<_> = replies.iter().filter(|r| r.status == 429).collect();
    assert_eq!(ok + limited.len(), 200, "only 200 and 429 expected");
    assert!(ok >= 8, "at least one full wave succeeds: {ok}");
    assert!(!limited.is_empty(), "the cap refused nothing");
    assert_eq!(limited[0].headers["retry-after"], "1");
    assert_eq!(
        limited[0].json()["type"],
        "urn:zerofn:problem:function-at-capacity"
    );
    assert_eq!(server.get("/count").await.status, 200);
}

async fn futures_join_all(
    handles: impl Iterator<Item = tokio::task::JoinHandle<common::Reply>>,
) -> Vec<common::Reply> {
    let mut replies = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        replies.push(handle.await.unwrap());
    }
    replies
}

#[tokio::test]
async fn the_global_cap_answers_503() {
    let server = TestServer::start_with(|c| c.max_concurrency = 2).await;
    server
        .deploy(&hostile_manifest("evil", LIMITS), &[("hostile", HOSTILE)])
        .await;
    let addr = server.addr;
    let slow: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(async move {
                request(addr, "GET", "/sleep?ms=400", &[], bytes::Bytes::new()).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let refused = server.get("/count").await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.headers["retry-after"], "1");
    for handle in slow {
        assert_eq!(handle.await.unwrap().status, 200);
    }
}

#[tokio::test]
async fn outbound_http_is_refused_before_any_connection_and_audited() {
    let server = hostile_server().await;
    let reply = server.get("/outbound").await;
    assert_eq!(reply.status, 200);
    let result = reply.json()["result"].as_str().unwrap().to_string();
    assert!(result.contains("HttpRequestDenied"), "{result}");
    let denied = server.events("egress.denied").await;
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0].event["reason"], "egress-not-granted");
    assert_eq!(
        denied[0].event["detail"]["destination"],
        "http://example.com:80"
    );
    assert_eq!(
        denied[0].invocation_id.as_deref(),
        Some(invocation_id(&reply).as_str())
    );
}

#[tokio::test]
async fn guest_output_is_captured_tagged_and_capped() {
    let server = hostile_server().await;
    let reply = server.get("/print?bytes=300000").await;
    assert_eq!(reply.status, 200);
    let id = invocation_id(&reply);
    // The sandbox's output is recorded when it is gone, which can be just after the response.
    end_event(&server, &id).await;
    let platform = server.server().platform();
    let lines = platform
        .store()
        .logs(&zerofn_store::LogQuery {
            invocation_id: Some(id.clone()),
            limit: Some(10_000),
            ..Default::default()
        })
        .unwrap();
    let stdout: Vec<_> = lines.iter().filter(|l| l.stream == "stdout").collect();
    let kept: usize = stdout.iter().map(|l| l.line.len()).sum();
    assert!(kept <= 64 << 10, "kept {kept} bytes");
    assert!(kept > 0);
    let notices: Vec<_> = lines
        .iter()
        .filter(|l| l.stream == zerofn_runtime::PLATFORM_STREAM)
        .collect();
    assert!(
        notices
            .iter()
            .any(|l| l.line.contains("dropped: over the per-invocation cap")),
        "{notices:?}"
    );
    assert!(lines.iter().any(|l| l.stream == "stderr"));
    assert!(
        lines
            .iter()
            .all(|l| l.invocation_id == id && l.function == "hostile")
    );
}

#[tokio::test]
async fn body_caps_refuse_large_requests_and_cut_large_responses() {
    let server = TestServer::start().await;
    let limits =
        "timeout_ms = 2000, max_request_body_bytes = 1024, max_response_body_bytes = 100000";
    server
        .deploy(&hostile_manifest("evil", limits), &[("hostile", HOSTILE)])
        .await;
    // Only the head is sent: the refusal must come before any of the body is read.
    let (status, body) = raw_head_only(
        server.addr,
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4096\r\n\r\n",
    )
    .await;
    assert_eq!(status, 413);
    assert!(body.contains("\"limit\":1024"), "{body}");
    let refused = server.events("request.refused").await;
    assert_eq!(refused[0].event["reason"], "request-body-too-large");
    assert!(
        server.events("invocation.start").await.is_empty(),
        "a sandbox was created for a refused request"
    );

    let small = request(
        server.addr,
        "POST",
        "/echo",
        &[],
        bytes::Bytes::from_static(b"hi"),
    )
    .await;
    assert_eq!(small.text(), "hi");

    let within = server.get("/big?bytes=50000").await;
    assert_eq!(within.body.unwrap().len(), 50000);
    // Cut off mid-stream: the head may or may not have gone out first, but the body never
    // completes.
    let beyond = server.get("/big?bytes=500000").await;
    let hits = server.events("limit.hit").await;
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].event["reason"], "response-body-too-large");
    assert_eq!(hits[0].event["detail"]["limit"], 100000);
    assert!(
        beyond.body.is_err(),
        "a response over the cap must be cut off"
    );
}

/// Sends `head` and reads the response status and whatever body arrives before the server
/// closes or a second passes.
async fn raw_head_only(addr: std::net::SocketAddr, head: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(Ok(n)) =
        tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buffer)).await
    {
        if n == 0 {
            break;
        }
        received.extend_from_slice(&buffer[..n]);
        if String::from_utf8_lossy(&received).contains("\"invocation_id\"") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&received).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test]
async fn a_chunked_request_body_over_the_cap_fails_in_the_guest_and_is_recorded() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start().await;
    let limits = "timeout_ms = 2000, max_request_body_bytes = 1024";
    server
        .deploy(&hostile_manifest("evil", limits), &[("hostile", HOSTILE)])
        .await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut request =
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            .to_vec();
    for _ in 0..4 {
        request.extend_from_slice(b"400\r\n");
        request.extend_from_slice(&[b'x'; 1024]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    stream.write_all(&request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        !answer.contains(&"x".repeat(1025)),
        "the guest saw more than the cap"
    );
    let hits = server.events("limit.hit").await;
    assert_eq!(hits.len(), 1, "{answer}");
    assert_eq!(hits[0].event["reason"], "request-body-too-large");
}

#[tokio::test]
async fn the_control_planes_invoke_reports_a_cut_off_body_instead_of_returning_it() {
    let server = TestServer::start().await;
    let limits = "timeout_ms = 2000, max_response_body_bytes = 100000";
    server
        .deploy(&hostile_manifest("evil", limits), &[("hostile", HOSTILE)])
        .await;
    let client = zerofn_server::control::ControlClient::new(server.server().control_socket());
    let result = client
        .post::<_, serde_json::Value>(
            "/v1/invoke",
            &serde_json::json!({"app": "evil", "function": "hostile", "method": "GET",
                "path": "/big?bytes=500000"}),
        )
        .await;
    match result {
        Err(zerofn_server::control::ControlError::Refused { status, problem }) => {
            assert_eq!(status, 502);
            assert_eq!(problem["type"], "urn:zerofn:problem:response-incomplete");
        }
        other => panic!("{other:?}"),
    }
}
