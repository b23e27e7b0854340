//! Schedule and queue triggers through the real path: the hostile guest's `/` route, which
//! prints every `ce-*` header it receives to its log (and fails when the data says `"fail"`),
//! behind a real server with a real store. Events enter queues through the real control socket.
//! Hostile events are refused before they are stored; failing deliveries are retried, then
//! dead-lettered and kept. Waits are bounded ("within N seconds"), never timed.

// Test helpers outside `#[test]` functions report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestServer;
use std::collections::BTreeMap;
use std::time::Duration;
use zerofn_manifest::AttachedFiles;
use zerofn_server::control::{ControlClient, ControlError, QueueListing, SendEventRequest};
use zerofn_server::triggers::queue::Enqueued;
use zerofn_test_artifacts::HOSTILE;

const APP: &str = r#"[app]
name = "events"
version = "1.0.0"

[functions.ticker]
component = "hostile.wasm"
trigger = { schedule = { cron = "* * * * * *" } }

[functions.orders]
component = "hostile.wasm"
trigger = { queue = { name = "orders" } }

[functions.orders.input]
schema = "schemas/order.json"
max_json_depth = 8
"#;

const ORDER_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "item": {"type": "string", "maxLength": 64},
    "qty": {"type": "integer", "minimum": 1},
    "fail": {"type": "boolean"}
  },
  "required": ["item", "qty"],
  "additionalProperties": false
}"#;

/// How long anything asynchronous may take before the test fails.
const WITHIN: Duration = Duration::from_secs(30);

async fn start() -> TestServer {
    TestServer::start_with(|config| {
        config.queues.max_attempts = 3;
        config.queues.retry_base = Duration::from_millis(20);
        config.queues.retry_max = Duration::from_millis(100);
        config.queues.poll = Duration::from_millis(50);
    })
    .await
}

async fn deploy(server: &TestServer, manifest: &str) -> zerofn_server::DeployReport {
    let components: BTreeMap<String, Vec<u8>> =
        zerofn_manifest::parse(std::path::Path::new(common::MANIFEST_PATH), manifest)
            .unwrap()
            .functions()
            .map(|f| (f.name.clone(), std::fs::read(HOSTILE).unwrap()))
            .collect();
    let mut files = AttachedFiles::new();
    files.insert("schemas/order.json", ORDER_SCHEMA.as_bytes().to_vec());
    let attestations = common::sign_with_files(manifest, &components, &server.key, &files);
    server
        .deploy_with_files(manifest, components, attestations, files)
        .await
        .unwrap()
}

fn control(server: &TestServer) -> ControlClient {
    ControlClient::new(server.server().control_socket())
}

async fn send(
    server: &TestServer,
    app: &str,
    queue: &str,
    event: &str,
) -> Result<Enqueued, ControlError> {
    control(server)
        .post(
            &format!("/v1/apps/{app}/queues/{queue}"),
            &SendEventRequest {
                event: event.to_string(),
            },
        )
        .await
}

async fn listing(server: &TestServer, queue: &str) -> QueueListing {
    control(server)
        .get(&format!("/v1/apps/events/queues/{queue}"))
        .await
        .unwrap()
}

/// The event lines `function` printed, parsed.
async fn seen(server: &TestServer, function: &str) -> Vec<serde_json::Value> {
    let platform = server.server().platform();
    platform.audit().flush().await;
    platform
        .store()
        .logs(&zerofn_store::LogQuery {
            app: Some("events".into()),
            function: Some(function.into()),
            limit: Some(10_000),
            ..Default::default()
        })
        .unwrap()
        .iter()
        .filter_map(|row| row.line.strip_prefix("event "))
        .map(|json| serde_json::from_str(json).unwrap())
        .collect()
}

/// Waits until `done` holds, for at most [`WITHIN`].
async fn eventually<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WITHIN;
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn order_event(id: &str, data: &str) -> String {
    format!(
        r#"{{"specversion":"1.0","id":"{id}","source":"/tests","type":"shop.order.created","datacontenttype":"application/json","data":{data}}}"#
    )
}

fn refusal(result: Result<Enqueued, ControlError>) -> (u16, String) {
    match result {
        Err(ControlError::Refused { status, problem }) => (
            status,
            problem["type"]
                .as_str()
                .unwrap()
                .trim_start_matches("urn:zerofn:problem:")
                .to_string(),
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schedule_delivers_cloudevents_and_is_not_reachable_over_http() {
    let server = start().await;
    let report = deploy(&server, APP).await;
    let ticker = report
        .functions
        .iter()
        .find(|f| f.name == "ticker")
        .unwrap();
    assert_eq!(ticker.trigger, "schedule * * * * * *");
    assert_eq!(ticker.route, "");

    eventually("a tick delivered", || async {
        !seen(&server, "ticker").await.is_empty()
    })
    .await;
    let tick = &seen(&server, "ticker").await[0];
    assert_eq!(tick["ce-specversion"], "1.0");
    assert_eq!(tick["ce-type"], "dev.zerofn.schedule.tick");
    assert_eq!(tick["ce-source"], "/zerofn/apps/events/functions/ticker");
    assert!(uuid::Uuid::parse_str(tick["ce-id"].as_str().unwrap()).is_ok());
    assert!(tick["ce-time"].as_str().unwrap().ends_with('Z'), "{tick}");
    assert_eq!(tick["content-type"], "application/json");
    let data: serde_json::Value = serde_json::from_str(tick["body"].as_str().unwrap()).unwrap();
    assert_eq!(data["cron"], "* * * * * *");

    // Neither function has a route: nothing from outside reaches them.
    for path in ["/", "/ticker", "/orders"] {
        let reply = common::request(
            server.addr,
            "POST",
            path,
            &[("ce-specversion", "1.0")],
            bytes::Bytes::new(),
        )
        .await;
        assert_eq!(reply.status, 404, "{path}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_valid_queue_event_is_delivered_once() {
    let server = start().await;
    deploy(&server, APP).await;
    let event = order_event("order-1", r#"{"item":"book","qty":2}"#);
    let enqueued = send(&server, "events", "orders", &event).await.unwrap();
    assert_eq!(
        (enqueued.function.as_str(), enqueued.event_id.as_str()),
        ("orders", "order-1")
    );

    eventually("the message delivered and deleted", || async {
        listing(&server, "orders").await.pending.is_empty()
    })
    .await;
    let delivered: Vec<_> = seen(&server, "orders")
        .await
        .into_iter()
        .filter(|e| e["ce-id"] == "order-1")
        .collect();
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert_eq!(delivered[0]["ce-type"], "shop.order.created");
    assert_eq!(delivered[0]["ce-source"], "/tests");
    let body: serde_json::Value =
        serde_json::from_str(delivered[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body, serde_json::json!({"item": "book", "qty": 2}));
    let deliveries = server.events("queue.delivery").await;
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    assert_eq!(deliveries[0].event["outcome"], "success");
    assert!(listing(&server, "orders").await.dead.is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_events_are_refused_before_they_are_stored() {
    let server = start().await;
    deploy(&server, APP).await;
    let deep = format!("{}1{}", "[".repeat(50), "]".repeat(50));
    let cases = [
        (
            "schema violation",
            order_event("e1", r#"{"item":"book","qty":0}"#),
            400,
            "input-schema-violation",
        ),
        (
            "extra field",
            order_event("e2", r#"{"item":"book","qty":1,"admin":true}"#),
            400,
            "input-schema-violation",
        ),
        (
            "wrong type",
            order_event("e3", r#"{"item":"book","qty":"1"}"#),
            400,
            "input-schema-violation",
        ),
        (
            "too deep",
            order_event("e4", &deep),
            400,
            "event-malformed",
        ),
        (
            "missing id",
            r#"{"specversion":"1.0","source":"/tests","type":"t","data":{"item":"a","qty":1}}"#.to_string(),
            400,
            "event-attribute-missing",
        ),
        (
            "wrong specversion",
            r#"{"specversion":"0.3","id":"e5","source":"/tests","type":"t","data":{"item":"a","qty":1}}"#.to_string(),
            400,
            "event-specversion-unsupported",
        ),
        ("not JSON", "{\"specversion\":".to_string(), 400, "event-malformed"),
        (
            "wrong media type",
            r#"{"specversion":"1.0","id":"e6","source":"/tests","type":"t","datacontenttype":"text/plain","data":"hi"}"#.to_string(),
            415,
            "input-unsupported-media-type",
        ),
    ];
    for (what, event, status, rule) in &cases {
        let (got_status, got_rule) = refusal(send(&server, "events", "orders", event).await);
        assert_eq!((got_status, got_rule.as_str()), (*status, *rule), "{what}");
    }
    let listed = listing(&server, "orders").await;
    assert!(
        listed.pending.is_empty() && listed.dead.is_empty(),
        "{listed:?}"
    );
    assert_eq!(listed.consumer.as_deref(), Some("orders"));
    let refused = server.events("queue.enqueue").await;
    assert_eq!(refused.len(), cases.len());
    for (row, (what, _, _, rule)) in refused.iter().zip(&cases) {
        assert_eq!(row.event["outcome"], "denied", "{what}");
        assert_eq!(row.event["reason"], *rule, "{what}");
    }
    // Nothing reached the function, and the platform still takes valid events.
    assert!(seen(&server, "orders").await.is_empty());
    send(
        &server,
        "events",
        "orders",
        &order_event("ok", r#"{"item":"a","qty":1}"#),
    )
    .await
    .unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_function_is_retried_then_dead_lettered_and_kept() {
    let server = start().await;
    deploy(&server, APP).await;
    let event = order_event("doomed", r#"{"item":"book","qty":1,"fail":true}"#);
    send(&server, "events", "orders", &event).await.unwrap();

    eventually("the message dead-lettered", || async {
        !listing(&server, "orders").await.dead.is_empty()
    })
    .await;
    let listed = listing(&server, "orders").await;
    assert!(listed.pending.is_empty(), "{listed:?}");
    let dead = &listed.dead[0];
    assert_eq!((dead.event_id.as_str(), dead.attempts), ("doomed", 3));
    assert!(
        dead.last_error
            .as_deref()
            .unwrap()
            .starts_with("status 500"),
        "{dead:?}"
    );

    let attempts = seen(&server, "orders")
        .await
        .into_iter()
        .filter(|e| e["ce-id"] == "doomed")
        .count();
    assert_eq!(attempts, 3);
    let failures = server.events("queue.delivery").await;
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(failures.iter().all(|f| f.event["outcome"] == "failure"));
    let dead_letters = server.events("queue.dead_letter").await;
    assert_eq!(dead_letters.len(), 1);
    assert_eq!(dead_letters[0].event["reason"], "attempts-exhausted");

    // Kept across a restart, and not delivered again.
    let dir = server.stop().await;
    let server = TestServer::start_in(dir, |_| {}).await;
    let listed = listing(&server, "orders").await;
    assert_eq!(listed.dead.len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn events_for_a_queue_nobody_consumes_are_refused() {
    let server = start().await;
    deploy(&server, APP).await;
    let event = order_event("lost", r#"{"item":"a","qty":1}"#);
    for (app, queue) in [
        ("events", "returns"),
        ("other", "orders"),
        ("events", "ticker"),
    ] {
        let (status, rule) = refusal(send(&server, app, queue, &event).await);
        assert_eq!(
            (status, rule.as_str()),
            (404, "queue-unknown"),
            "{app}/{queue}"
        );
    }
    let listed = listing(&server, "returns").await;
    assert_eq!(listed.consumer, None);
    assert!(listed.pending.is_empty() && listed.dead.is_empty());
    server.stop().await;
}

#[test]
fn queue_routes_are_named_control_actions() {
    use http::Method;
    use zerofn_server::control::control_action;
    let path = "/v1/apps/events/queues/orders";
    assert_eq!(
        control_action(&Method::POST, path),
        Some("control.queue.send")
    );
    assert_eq!(control_action(&Method::GET, path), Some("control.read"));
    assert_eq!(control_action(&Method::DELETE, path), None);
    for role in zerofn_policy::Role::ALL {
        let may_send = role.actions().contains(&"control.queue.send");
        assert_eq!(
            may_send,
            role != zerofn_policy::Role::Viewer,
            "{}",
            role.as_str()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queue_event_continues_the_trace_its_traceparent_attribute_names() {
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    let server = start().await;
    deploy(&server, APP).await;
    let traced = format!(
        r#"{{"specversion":"1.0","id":"order-t","source":"/tests","type":"shop.order.created","traceparent":"00-{TRACE}-00f067aa0ba902b7-01","datacontenttype":"application/json","data":{{"item":"book","qty":1}}}}"#
    );
    send(&server, "events", "orders", &traced).await.unwrap();
    let untraced = order_event("order-u", r#"{"item":"pen","qty":1}"#);
    send(&server, "events", "orders", &untraced).await.unwrap();
    eventually("both messages delivered", || async {
        listing(&server, "orders").await.pending.is_empty()
    })
    .await;

    // The app's ticker runs every second too; its deliveries are the schedule's.
    let (starts, ticks): (Vec<_>, Vec<_>) = server
        .events("invocation.start")
        .await
        .into_iter()
        .partition(|s| s.event["function"] == "orders");
    assert!(ticks.iter().all(|s| s.event["caller"] == "schedule"));
    assert_eq!(starts.len(), 2, "{starts:?}");
    assert!(starts.iter().all(|s| s.event["caller"] == "queue:orders"));
    let continued: Vec<_> = starts
        .iter()
        .filter(|s| s.event["trace_id"] == TRACE)
        .collect();
    assert_eq!(continued.len(), 1, "{starts:?}");
    assert_eq!(continued[0].event["parent_span_id"], "00f067aa0ba902b7");
    let started = starts
        .iter()
        .find(|s| s.event["trace_id"] != TRACE)
        .unwrap();
    assert!(started.event.get("parent_span_id").is_none());
    assert!(zerofn_server::traces::is_trace_id(
        started.event["trace_id"].as_str().unwrap()
    ));
    server.stop().await;
}
