//! The live audit stream through the real path: a server on a Unix socket, events recorded
//! through its audit writer, `GET /v1/audit/stream` read with the client the CLI uses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestServer;
use std::time::Duration;
use zerofn_audit::{AuditEvent, EventKind, Outcome};
use zerofn_server::control::sse::EventStream;
use zerofn_server::control::{ControlClient, ControlError};

/// The next event of `stream`; fails the test rather than waiting forever.
async fn next(stream: &mut EventStream) -> zerofn_server::control::sse::SseEvent {
    tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .expect("no event within 30 s")
        .unwrap()
        .expect("the stream ended")
}

async fn record(server: &TestServer, kind: EventKind, outcome: Outcome, app: &str) {
    let platform = server.server().platform();
    platform
        .audit()
        .record(AuditEvent::new(kind, outcome).function(app, "f"))
        .await;
    platform.audit().flush().await;
}

/// The ids the store holds for app `alpha`'s deploys and denied rollbacks, in order.
async fn expected_ids(server: &TestServer) -> Vec<i64> {
    server
        .audit(zerofn_store::AuditQuery {
            app: Some("alpha".into()),
            limit: Some(10_000),
            ..Default::default()
        })
        .await
        .into_iter()
        .filter(|row| {
            row.kind == "deploy" || (row.kind == "rollback.refused" && row.outcome == "denied")
        })
        .map(|row| row.id)
        .collect()
}

/// Records what the filter below matches (`alpha`'s deploys and denied rollbacks) and what it
/// must not (another app, another kind, another outcome).
async fn record_mixed(server: &TestServer) {
    record(server, EventKind::Deploy, Outcome::Success, "alpha").await;
    record(server, EventKind::Deploy, Outcome::Success, "beta").await;
    record(server, EventKind::RollbackRefused, Outcome::Denied, "alpha").await;
    record(server, EventKind::Rollback, Outcome::Success, "alpha").await;
}

#[tokio::test]
async fn the_stream_replays_filters_and_resumes_without_gap_or_duplicate() {
    let server = TestServer::start().await;
    let client = ControlClient::new(server.server().control_socket());
    record_mixed(&server).await;
    record_mixed(&server).await;
    let path = "/v1/audit/stream?app=alpha&kind=deploy&kind=rollback.refused&after_id=0";
    let mut seen = Vec::new();

    // Replay: what was committed before the stream opened.
    let mut stream = client.stream(path, None).await.unwrap();
    for _ in 0..4 {
        let event = next(&mut stream).await;
        let json: serde_json::Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(json["app"], "alpha", "{json}");
        assert_eq!(json["kind"], event.event);
        assert!(matches!(
            event.event.as_str(),
            "deploy" | "rollback.refused"
        ));
        seen.push(event.id.unwrap().parse::<i64>().unwrap());
    }
    // Live: what is committed while it is open.
    record_mixed(&server).await;
    for _ in 0..2 {
        seen.push(next(&mut stream).await.id.unwrap().parse().unwrap());
    }
    drop(stream);

    // While the client is away, more events; it comes back with the last id it saw.
    record_mixed(&server).await;
    let last = seen.last().unwrap().to_string();
    let mut stream = client.stream(path, Some(&last)).await.unwrap();
    for _ in 0..2 {
        seen.push(next(&mut stream).await.id.unwrap().parse().unwrap());
    }
    record_mixed(&server).await;
    for _ in 0..2 {
        seen.push(next(&mut stream).await.id.unwrap().parse().unwrap());
    }
    assert_eq!(seen, expected_ids(&server).await, "a gap or a duplicate");

    // Without `after_id` the stream starts with the next event.
    let mut live = client
        .stream("/v1/audit/stream?app=beta", None)
        .await
        .unwrap();
    record(&server, EventKind::Deploy, Outcome::Success, "beta").await;
    let event = next(&mut live).await;
    let newest = server
        .audit(zerofn_store::AuditQuery {
            app: Some("beta".into()),
            limit: Some(1),
            ..Default::default()
        })
        .await;
    assert_eq!(event.id.unwrap(), newest[0].id.to_string());
}

#[tokio::test]
async fn invalid_filters_are_refused_naming_the_parameter() {
    let server = TestServer::start().await;
    let client = ControlClient::new(server.server().control_socket());
    for (query, parameter) in [
        ("kind=invocation.ended", "kind"),
        ("kind=deploy,%3Cscript%3E", "kind"),
        ("outcome=allowed", "outcome"),
        ("app=..%2F..%2Fetc", "app"),
        ("trace_id=4BF92F3577B34DA6A3CE929D0E0E4736", "trace_id"),
        ("after_id=1e9", "after_id"),
        ("after_id=1&after_id=2", "after_id"),
        ("app=a&app=b", "app"),
        ("select=*", "query"),
    ] {
        let result = client
            .stream(&format!("/v1/audit/stream?{query}"), None)
            .await;
        let Err(ControlError::Refused { status, problem }) = result else {
            panic!("{query} was accepted");
        };
        assert_eq!(status, 400, "{query}");
        assert_eq!(
            problem["type"], "urn:zerofn:problem:audit-stream-filter-invalid",
            "{query}"
        );
        assert_eq!(problem["parameter"], parameter, "{query}: {problem}");
    }
    let result = client
        .stream("/v1/audit/stream", Some("-3; DROP TABLE audit_events"))
        .await;
    let Err(ControlError::Refused {
        status: 400,
        problem,
    }) = result
    else {
        panic!("a bad Last-Event-ID was accepted");
    };
    assert_eq!(problem["parameter"], "Last-Event-ID");
    let refused = server.events("control.refused").await;
    assert!(
        refused
            .iter()
            .filter(|row| row.event["reason"] == "audit-stream-filter-invalid")
            .count()
            >= 10,
        "{refused:?}"
    );
}

#[tokio::test]
async fn the_number_of_streams_is_bounded() {
    let server = TestServer::start().await;
    let client = ControlClient::new(server.server().control_socket());
    let streams = zerofn_server::control::audit_stream::MAX_STREAMS;
    let mut open = Vec::new();
    for _ in 0..streams {
        // The stream holds its place once its head came back.
        open.push(client.stream("/v1/audit/stream", None).await.unwrap());
    }
    let Err(ControlError::Refused { status, problem }) =
        client.stream("/v1/audit/stream", None).await
    else {
        panic!("stream {} was opened", streams + 1);
    };
    assert_eq!(status, 503);
    assert_eq!(
        problem["type"],
        "urn:zerofn:problem:audit-streams-exhausted"
    );
    // A stream that ends gives its place back.
    open.pop();
    let platform = server.server().platform();
    tokio::time::timeout(Duration::from_secs(60), async {
        while platform.audit_streams().open() >= streams {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a closed stream kept its place");
    client.stream("/v1/audit/stream", None).await.unwrap();
}

#[tokio::test]
async fn metrics_are_served_at_the_prometheus_path_with_audit_event_counts() {
    let server = TestServer::start().await;
    record(&server, EventKind::Deploy, Outcome::Success, "alpha").await;
    record(&server, EventKind::EgressDenied, Outcome::Denied, "alpha").await;
    let socket = server.server().control_socket().to_path_buf();
    let wanted = [
        "zerofn_audit_events_total{kind=\"deploy\",outcome=\"success\"} 1",
        "zerofn_audit_events_total{kind=\"egress.denied\",outcome=\"denied\"} 1",
        "zerofn_audit_events_total{kind=\"server.start\",outcome=\"success\"} 1",
    ];
    // The counter follows the committed stream, so it may trail the flush by a moment.
    let (content_type, text) = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let (content_type, text) = raw_get(&socket, "/metrics").await;
            if wanted.iter().all(|line| text.contains(line)) {
                return (content_type, text);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("audit events were not counted");
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(
        text.contains("# TYPE zerofn_audit_events counter"),
        "{text}"
    );
    let (_, same) = raw_get(&socket, "/v1/metrics").await;
    assert!(same.contains("zerofn_audit_events_total"), "{same}");
}

/// `GET path` on the control socket: the content type and the body.
async fn raw_get(socket: &std::path::Path, path: &str) -> (String, String) {
    use http_body_util::BodyExt;
    let stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let response = sender
        .send_request(
            hyper::Request::get(path)
                .header("host", "zerofn")
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (content_type, String::from_utf8(body.to_vec()).unwrap())
}
