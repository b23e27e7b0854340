//! The response loop through the real path: a detection opens an incident, and the configured
//! actions take effect on real invocations of the hostile guest: quarantine (503 naming the
//! incident, running invocations stopped, calls refused, kept across a restart, released by an
//! operator), rollback to the previous version, revoked tokens, a CloudEvent alert to a
//! loopback webhook; and the operator's side (resolve, report) with its refusals.
//!
//! Detections are injected through `Platform::open_incident`, the call the monitor makes for
//! each detection, except in the end-to-end test, where the real detectors find it.

// Test helpers outside `#[test]` functions report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::TestServer;
use std::time::Duration;
use zerofn_detect::{Detection, Severity};
use zerofn_server::control::{ControlClient, ControlError};
use zerofn_server::response::{Action, Resolution, ResponsePolicy};
use zerofn_test_artifacts::HOSTILE;

/// An app whose functions are all the hostile guest, each on the route of one of its attacks.
fn app(version: &str, release: &str) -> String {
    format!(
        r#"[app]
name = "shop"
version = "{version}"

[functions.victim]
component = "hostile.wasm"
trigger = {{ http = {{ route = "/sleep", methods = ["GET"] }} }}
auth = {{ public = true }}
limits = {{ timeout_ms = 20000 }}

[functions.spinner]
component = "hostile.wasm"
trigger = {{ http = {{ route = "/loop", methods = ["GET"] }} }}
auth = {{ public = true }}
limits = {{ timeout_ms = 20000 }}

[functions.bystander]
component = "hostile.wasm"
trigger = {{ http = {{ route = "/count", methods = ["GET"] }} }}
auth = {{ public = true }}

[functions.caller]
component = "hostile.wasm"
trigger = {{ http = {{ route = "/call", methods = ["GET"] }} }}
auth = {{ public = true }}
grants = {{ invoke = ["victim"] }}

[functions.versioned]
component = "hostile.wasm"
trigger = {{ http = {{ route = "/secret", methods = ["GET"] }} }}
auth = {{ public = true }}
config = {{ release = "{release}" }}
"#
    )
}

const FUNCTIONS: [&str; 5] = ["victim", "spinner", "bystander", "caller", "versioned"];

async fn deploy(server: &TestServer, version: &str, release: &str) -> zerofn_server::DeployReport {
    let components: Vec<(&str, &str)> = FUNCTIONS.iter().map(|f| (*f, HOSTILE)).collect();
    server.deploy(&app(version, release), &components).await
}

fn detection(function: &str, severity: Severity, version_id: Option<String>) -> Detection {
    Detection {
        detector: "test-injected",
        severity,
        app: "shop".into(),
        function: function.into(),
        version_id,
        summary: format!("{function} did something its baseline says it does not"),
        evidence: Vec::new(),
        offending_at_ms: zerofn_store::now_ms(),
    }
}

/// Quarantine alone for `high`, nothing else.
fn quarantine_only() -> ResponsePolicy {
    ResponsePolicy {
        high: vec![Action::Quarantine],
        ..ResponsePolicy::default()
    }
}

/// Waits (bounded) until `count` invocations hold a live token, i.e. are running.
async fn until_running(server: &TestServer, count: usize) {
    for _ in 0..500 {
        if server.server().platform().issuer().live() == count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "{count} running invocations expected, {} seen",
        server.server().platform().issuer().live()
    );
}

fn client(server: &TestServer) -> ControlClient {
    ControlClient::new(server.server().control_socket())
}

fn refusal_code(error: ControlError) -> String {
    match error {
        ControlError::Refused { problem, .. } => problem["type"]
            .as_str()
            .unwrap()
            .trim_start_matches("urn:zerofn:problem:")
            .to_string(),
        other => panic!("expected a refusal, got {other}"),
    }
}

#[tokio::test]
async fn quarantine_refuses_the_function_stops_what_runs_and_leaves_the_others_serving() {
    let server = TestServer::start_with(|c| c.response = quarantine_only()).await;
    deploy(&server, "1.0.0", "v1").await;
    assert_eq!(server.get("/count").await.status, 200);

    // One invocation blocked in a host call, one computing: both running when it starts.
    let addr = server.addr;
    let sleeping = tokio::spawn(async move {
        common::request(addr, "GET", "/sleep?ms=15000", &[], Bytes::new()).await
    });
    let spinning =
        tokio::spawn(async move { common::request(addr, "GET", "/loop", &[], Bytes::new()).await });
    until_running(&server, 2).await;

    let platform = server.server().platform();
    let victim = platform
        .open_incident(detection("victim", Severity::High, None))
        .await
        .unwrap();
    let spinner = platform
        .open_incident(detection("spinner", Severity::High, None))
        .await
        .unwrap();
    assert!(victim.id.starts_with("inc-"), "{}", victim.id);
    assert_eq!(victim.actions.len(), 1, "{:?}", victim.actions);
    assert_eq!(victim.actions[0].action, "quarantine");
    assert_eq!(victim.actions[0].outcome, "success");
    assert!(victim.responded_ms.is_some());

    // The running invocations were stopped, not left to their deadline (their answers would be
    // 200 "slept" and 504).
    for (running, incident) in [(sleeping, &victim.id), (spinning, &spinner.id)] {
        let reply = running.await.unwrap();
        assert_eq!(reply.status, 503, "{}", reply.text());
        assert_eq!(
            reply.json()["incident"],
            incident.as_str(),
            "{}",
            reply.text()
        );
    }
    let ends = server.events("invocation.end").await;
    assert_eq!(
        ends.iter()
            .filter(|e| e.event["reason"] == "stopped")
            .count(),
        2,
        "{ends:#?}"
    );
    assert!(
        server
            .events("lease.revoked")
            .await
            .iter()
            .any(|e| e.event["detail"]["incident"] == victim.id.as_str()),
        "the stopped invocation's token is recorded as revoked"
    );
    assert_eq!(platform.issuer().live(), 0, "their tokens are revoked");

    // New requests: 503 with the rule, the incident and how to release it.
    let refused = server.get("/sleep?ms=1").await;
    assert_eq!(refused.status, 503);
    let problem = refused.json();
    assert_eq!(problem["type"], "urn:zerofn:problem:function-quarantined");
    assert_eq!(problem["incident"], victim.id.as_str());
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("zerofn release shop/victim"),
        "{problem}"
    );
    // A call from another function is refused too; that function itself still serves.
    let call = server
        .get("/call?host=victim.shop.fn.internal&path=/sleep%3Fms%3D1")
        .await;
    assert_eq!(call.status, 200, "{}", call.text());
    assert_eq!(call.json()["status"], 503, "{}", call.text());
    assert!(
        call.text().contains("function-quarantined"),
        "{}",
        call.text()
    );
    assert_eq!(server.get("/count").await.status, 200);

    let quarantine = server.events("quarantine").await;
    assert_eq!(quarantine.len(), 2);
    assert_eq!(quarantine[0].event["caller"], "monitor");

    // Release restores service; a second release is refused with a clear error.
    let released = platform.release("shop", "victim", "local").await.unwrap();
    assert_eq!(released.incident_id, victim.id);
    let served = server.get("/sleep?ms=1").await;
    assert_eq!(served.status, 200, "{}", served.text());
    let again = platform
        .release("shop", "victim", "local")
        .await
        .unwrap_err();
    assert_eq!(again.code(), "not-quarantined", "{again}");
    assert_eq!(server.events("release").await.len(), 1);
}

#[tokio::test]
async fn a_quarantine_survives_a_restart_until_released_through_the_control_plane() {
    let server = TestServer::start_with(|c| c.response = quarantine_only()).await;
    deploy(&server, "1.0.0", "v1").await;
    let incident = server
        .server()
        .platform()
        .open_incident(detection("bystander", Severity::High, None))
        .await
        .unwrap();
    assert_eq!(server.get("/count").await.status, 503);

    let dir = server.stop().await;
    let server = TestServer::start_in(dir, |c| c.response = quarantine_only()).await;
    let refused = server.get("/count").await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.json()["incident"], incident.id.as_str());
    assert_eq!(server.get("/secret?name=release").await.status, 200);

    let control = client(&server);
    let listed: Vec<zerofn_store::QuarantineRecord> = control.get("/v1/quarantines").await.unwrap();
    assert_eq!(listed.len(), 1);
    let _: zerofn_store::QuarantineRecord = control
        .post(
            "/v1/quarantines/release",
            &serde_json::json!({"app": "shop", "function": "bystander"}),
        )
        .await
        .unwrap();
    assert_eq!(server.get("/count").await.status, 200);
    let not_quarantined = control
        .post::<_, serde_json::Value>(
            "/v1/quarantines/release",
            &serde_json::json!({"app": "shop", "function": "bystander"}),
        )
        .await
        .unwrap_err();
    assert_eq!(refusal_code(not_quarantined), "not-quarantined");
    let unknown_field = control
        .post::<_, serde_json::Value>(
            "/v1/quarantines/release",
            &serde_json::json!({"app": "shop", "fn": "bystander"}),
        )
        .await
        .unwrap_err();
    assert_eq!(refusal_code(unknown_field), "malformed-control-request");
}

#[tokio::test]
async fn an_incident_implicating_the_active_version_rolls_the_app_back() {
    let server = TestServer::start().await;
    let v1 = deploy(&server, "1.0.0", "v1").await;
    let v2 = deploy(&server, "2.0.0", "v2").await;
    assert_eq!(
        server.get("/secret?name=release").await.json()["value"],
        "v2"
    );

    let platform = server.server().platform();
    // Critical by default: rollback first; it applies, so quarantine is not needed.
    let incident = platform
        .open_incident(detection(
            "versioned",
            Severity::Critical,
            Some(v2.version_id.clone()),
        ))
        .await
        .unwrap();
    let rollback = incident
        .actions
        .iter()
        .find(|a| a.action == "rollback")
        .unwrap();
    assert_eq!(rollback.outcome, "success", "{rollback:?}");
    assert!(rollback.detail.contains(&v1.version_id), "{rollback:?}");
    let quarantine = incident
        .actions
        .iter()
        .find(|a| a.action == "quarantine")
        .unwrap();
    assert_eq!(quarantine.outcome, "skipped", "{quarantine:?}");
    assert_eq!(
        server.get("/secret?name=release").await.json()["value"],
        "v1"
    );
    let rollbacks = server.events("rollback").await;
    assert_eq!(rollbacks.len(), 1);
    assert_eq!(
        rollbacks[0].event["detail"]["incident"],
        incident.id.as_str()
    );

    // v2 no longer serves, so a second incident about it is not a rollback (v1 would not be
    // "previous"): it falls back to quarantine.
    let stale = platform
        .open_incident(detection(
            "versioned",
            Severity::Critical,
            Some(v2.version_id.clone()),
        ))
        .await
        .unwrap();
    let rollback = stale
        .actions
        .iter()
        .find(|a| a.action == "rollback")
        .unwrap();
    assert_eq!(rollback.outcome, "skipped");
    assert!(
        rollback.detail.contains("not the active version")
            && rollback.detail.contains("quarantine applies instead"),
        "{rollback:?}"
    );
    assert_eq!(server.get("/secret?name=release").await.status, 503);
    assert_eq!(server.events("rollback").await.len(), 1);
}

#[tokio::test]
async fn revoking_leases_revokes_the_tokens_of_running_invocations_without_stopping_them() {
    let server = TestServer::start_with(|c| {
        c.response = ResponsePolicy {
            high: vec![Action::RevokeLeases],
            ..ResponsePolicy::default()
        }
    })
    .await;
    deploy(&server, "1.0.0", "v1").await;
    let addr = server.addr;
    let sleeping = tokio::spawn(async move {
        common::request(addr, "GET", "/sleep?ms=500", &[], Bytes::new()).await
    });
    until_running(&server, 1).await;
    let incident = server
        .server()
        .platform()
        .open_incident(detection("victim", Severity::High, None))
        .await
        .unwrap();
    assert_eq!(incident.actions[0].action, "revoke-leases");
    assert_eq!(server.server().platform().issuer().live(), 0);
    let revoked = server.events("lease.revoked").await;
    assert_eq!(revoked.len(), 1);
    assert_eq!(
        revoked[0].event["detail"]["invocations"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Not quarantined: the invocation finishes, and the function keeps serving.
    assert_eq!(sleeping.await.unwrap().status, 200);
    assert_eq!(server.get("/sleep?ms=1").await.status, 200);
}

#[tokio::test]
async fn an_alert_posts_the_incident_as_a_cloudevent_to_the_webhook() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen, mut received) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
                    let seen = seen.clone();
                    async move {
                        let content_type = request.headers()["content-type"]
                            .to_str()
                            .unwrap()
                            .to_string();
                        let body = http_body_util::BodyExt::collect(request.into_body())
                            .await
                            .unwrap()
                            .to_bytes();
                        seen.send((content_type, body)).unwrap();
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(Bytes::new()),
                        ))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let server = TestServer::start_with(|c| {
        c.response = ResponsePolicy {
            medium: vec![Action::Alert],
            webhook: Some(zerofn_server::alert::Webhook {
                url: format!("http://127.0.0.1:{port}/hook").parse().unwrap(),
                timeout: Duration::from_secs(5),
                attempts: 2,
            }),
            ..ResponsePolicy::default()
        }
    })
    .await;
    deploy(&server, "1.0.0", "v1").await;
    let incident = server
        .server()
        .platform()
        .open_incident(detection("bystander", Severity::Medium, None))
        .await
        .unwrap();
    let (content_type, body) = tokio::time::timeout(Duration::from_secs(30), received.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(content_type, "application/cloudevents+json");
    let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["type"], "dev.zerofn.incident.opened");
    assert_eq!(event["id"], incident.id.as_str());
    assert_eq!(event["subject"], "shop/bystander");
    assert_eq!(event["data"]["detector"], "test-injected");
    // The alert is recorded on the incident and in the stream once it is over.
    let mut alerted = Vec::new();
    for _ in 0..500 {
        alerted = server.events("alert").await;
        if !alerted.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(alerted.len(), 1);
    assert_eq!(alerted[0].outcome, "success");
    let stored = server
        .server()
        .platform()
        .store()
        .incident(&incident.id)
        .unwrap()
        .unwrap();
    assert_eq!(stored.actions.len(), 1, "{:?}", stored.actions);
    assert_eq!(stored.actions[0].action, "alert");
    assert!(
        stored.responded_ms.is_some(),
        "a delivered alert is the response"
    );
    // Alerting is the only action: the function still serves.
    assert_eq!(server.get("/count").await.status, 200);
}

#[tokio::test]
async fn resolutions_set_the_false_positive_rate_and_refusals_are_clear() {
    let server = TestServer::start_with(|c| c.response = quarantine_only()).await;
    deploy(&server, "1.0.0", "v1").await;
    // A refused deploy, for the report's rejected deployments.
    let refused = server
        .try_deploy("[app]\nname = \"shop\"\n", &[])
        .await
        .unwrap_err();
    assert!(!refused.to_string().is_empty());
    let platform = server.server().platform();
    let mut ids = Vec::new();
    for function in ["bystander", "victim", "caller"] {
        ids.push(
            platform
                .open_incident(detection(function, Severity::Low, None))
                .await
                .unwrap()
                .id,
        );
    }
    let control = client(&server);
    let report: zerofn_server::report::LoopReport = control.get("/v1/report").await.unwrap();
    assert_eq!(report.incidents, 3);
    assert_eq!(report.false_positive_rate, None, "nothing resolved yet");
    assert_eq!(report.time_to_detect.count, 3);
    assert_eq!(report.time_to_respond.count, 0, "low: no action configured");
    assert_eq!(report.by_detector["test-injected"], 3);
    assert_eq!(report.rejected_deployments, 1);

    let resolve = |id: &str, resolution: &str| {
        let control = client(&server);
        let path = format!("/v1/incidents/{id}/resolve");
        let body = serde_json::json!({"resolution": resolution, "note": "checked"});
        async move {
            control
                .post::<_, zerofn_store::IncidentRecord>(&path, &body)
                .await
        }
    };
    let first = resolve(&ids[0], "false-positive").await.unwrap();
    assert_eq!(first.resolution.as_deref(), Some("false-positive"));
    assert_eq!(first.resolved_by.as_deref(), Some("local"));
    let report: zerofn_server::report::LoopReport = control.get("/v1/report").await.unwrap();
    assert_eq!(report.false_positive_rate, Some(1.0));
    resolve(&ids[1], "true-positive").await.unwrap();
    let report: zerofn_server::report::LoopReport = control.get("/v1/report").await.unwrap();
    assert_eq!(report.false_positive_rate, Some(0.5));
    assert_eq!(
        (report.true_positives, report.false_positives, report.open),
        (1, 1, 1)
    );
    let metrics = control.get_text("/v1/metrics").await.unwrap();
    assert!(
        metrics.contains("zerofn_incident_resolutions_total{resolution=\"false-positive\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("zerofn_incident_time_to_detect_seconds_count 3"),
        "{metrics}"
    );

    // A resolution is final; unknown ids and resolutions are refused with their rule.
    let twice = resolve(&ids[0], "true-positive").await.unwrap_err();
    assert_eq!(refusal_code(twice), "incident-already-resolved");
    let unknown = resolve("inc-00000000-0000-0000-0000-000000000000", "true-positive")
        .await
        .unwrap_err();
    assert_eq!(refusal_code(unknown), "unknown-incident");
    let bogus = resolve(&ids[2], "maybe").await.unwrap_err();
    assert_eq!(refusal_code(bogus), "malformed-control-request");
    let missing = control
        .get::<serde_json::Value>("/v1/incidents/inc-nope")
        .await
        .unwrap_err();
    assert_eq!(refusal_code(missing), "unknown-incident");
    let bad_status = control
        .get::<serde_json::Value>("/v1/incidents?status=closed")
        .await
        .unwrap_err();
    assert_eq!(refusal_code(bad_status), "malformed-control-request");
    let report: zerofn_server::report::LoopReport = control.get("/v1/report").await.unwrap();
    assert_eq!(
        report.false_positive_rate,
        Some(0.5),
        "refusals change nothing"
    );

    let open: Vec<zerofn_store::IncidentRecord> =
        control.get("/v1/incidents?status=open").await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].id, ids[2]);
    let resolved_events = server.events("incident.resolved").await;
    assert_eq!(resolved_events.len(), 2);
    let _ = Resolution::TruePositive;
}

/// Counts requests; answers 200.
async fn upstream() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_request: hyper::Request<_>| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(Bytes::from_static(b"ok")),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    port
}

/// How many calls to the usual destination make the function's baseline: more than the
/// warm-up the test configures (`WARMUP_EVENTS` events, each call producing several).
const BASELINE_CALLS: usize = 60;
const WARMUP_EVENTS: u64 = 50;

/// End to end, with the real detectors (needs `new-egress-destination` from zerofn-detect):
/// a function that starts calling a destination its baseline never saw is quarantined
/// automatically, and the other functions keep serving.
#[tokio::test]
async fn a_function_that_starts_calling_a_new_domain_is_quarantined_automatically() {
    let usual = upstream().await;
    let new = upstream().await;
    // The default warm-up is minutes of traffic; a short one keeps the test quick, and the
    // detector is the same.
    let server = TestServer::start_with(|config| {
        config.detection.warmup_events = WARMUP_EVENTS;
        config.detection.warmup_windows = 0;
    })
    .await;
    let manifest = format!(
        r#"[app]
name = "net"
version = "1.0.0"

[functions.fetcher]
component = "hostile.wasm"
trigger = {{ http = {{ route = "/outbound", methods = ["GET"] }} }}
auth = {{ public = true }}
grants = {{ egress = [
    {{ url = "http://127.0.0.1:{usual}/", allow_private = true }},
    {{ url = "http://localhost:{new}/", allow_private = true }},
] }}

[functions.bystander]
component = "hostile.wasm"
trigger = {{ http = {{ route = "/count", methods = ["GET"] }} }}
auth = {{ public = true }}
"#
    );
    server
        .deploy(&manifest, &[("fetcher", HOSTILE), ("bystander", HOSTILE)])
        .await;
    let fetch = |url: String| {
        let addr = server.addr;
        async move {
            let encoded: String = url
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        char::from(b).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            common::request(
                addr,
                "GET",
                &format!("/outbound?url={encoded}"),
                &[],
                Bytes::new(),
            )
            .await
        }
    };
    for _ in 0..BASELINE_CALLS {
        let reply = fetch(format!("http://127.0.0.1:{usual}/data")).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    assert!(
        server.server().platform().quarantined().is_empty(),
        "the usual destination opens no incident"
    );
    let offending = fetch(format!("http://localhost:{new}/exfiltrate")).await;
    // The response can be quick enough to stop the offending invocation itself.
    assert!(
        offending.status == 200
            || (offending.status == 503 && offending.json()["incident"].is_string()),
        "{}",
        offending.text()
    );

    let mut quarantined = Vec::new();
    for _ in 0..1000 {
        quarantined = server.server().platform().quarantined();
        if !quarantined.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        quarantined.len(),
        1,
        "no quarantine followed the new destination"
    );
    assert_eq!(quarantined[0].function, "fetcher");
    let refused = fetch(format!("http://127.0.0.1:{usual}/data")).await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(
        refused.json()["incident"],
        quarantined[0].incident_id.as_str()
    );
    assert_eq!(server.get("/count").await.status, 200);
    let incident = server
        .server()
        .platform()
        .store()
        .incident(&quarantined[0].incident_id)
        .unwrap()
        .unwrap();
    assert_eq!(incident.detector, "new-egress-destination");
    assert!(!incident.evidence.is_empty());
}
