//! OTLP export through the real path: a server configured with `[telemetry] otlp_endpoint`
//! pointing at a collector on loopback (a hyper server here, decoding the protobuf bodies with
//! `opentelemetry-proto`), events recorded through the platform's audit writer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestServer;
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use std::time::Duration;
use tokio::sync::mpsc;
use zerofn_audit::{AuditEvent, EventKind, Outcome, TraceContext};

/// What the collector received: the path and the body of each request.
async fn collector() -> (
    std::net::SocketAddr,
    mpsc::UnboundedReceiver<(String, bytes::Bytes)>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (sender, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let sender = sender.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
                    let sender = sender.clone();
                    async move {
                        let path = request.uri().path().to_string();
                        let body = BodyExt::collect(request.into_body())
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let _ = sender.send((path, body));
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(bytes::Bytes::new()),
                        ))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, received)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn audit_events_are_exported_as_log_records_and_spans_with_their_trace_ids() {
    let (addr, mut received) = collector().await;
    let server = TestServer::start_with(|config| {
        config.telemetry = Some(zerofn_server::otlp::TelemetryConfig {
            otlp_endpoint: zerofn_server::otlp::TelemetryConfig::endpoint(&format!(
                "http://{addr}"
            ))
            .unwrap(),
            service_name: "edge-1".into(),
        });
    })
    .await;
    // One request's events, as the platform records them: the invocation under the caller's
    // span, and an egress call under the invocation's.
    let invocation =
        TraceContext::continue_from("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .unwrap();
    let egress = invocation.child();
    let audit = server.server().platform().audit();
    let event = |kind, outcome| {
        AuditEvent::new(kind, outcome)
            .function("shop", "checkout")
            .invocation("0193f7d2-0000-7000-8000-000000000001")
            .identity("spiffe://zerofn.local/app/shop/fn/checkout")
            .caller("jwt:alice")
    };
    audit
        .record(event(EventKind::InvocationStart, Outcome::Success).trace(&invocation))
        .await;
    audit
        .record(
            event(EventKind::Egress, Outcome::Success)
                .reason("exchanged")
                .trace(&egress)
                .detail("duration_ms", 3),
        )
        .await;
    audit
        .record(
            event(EventKind::InvocationEnd, Outcome::Failure)
                .reason("timeout")
                .trace(&invocation)
                .detail("duration_us", 1500),
        )
        .await;
    audit.flush().await;

    let trace_id = invocation.trace_id().to_string();
    let mut records = Vec::new();
    let mut spans = Vec::new();
    let mut service_names = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        while records
            .iter()
            .filter(|r: &&opentelemetry_proto::tonic::logs::v1::LogRecord| {
                hex(&r.trace_id) == trace_id
            })
            .count()
            < 3
            || spans.len() < 2
        {
            let (path, body) = received.recv().await.unwrap();
            match path.as_str() {
                "/v1/logs" => {
                    let request = ExportLogsServiceRequest::decode(body).unwrap();
                    for resource in request.resource_logs {
                        service_names.extend(
                            resource
                                .resource
                                .into_iter()
                                .flat_map(|r| r.attributes.into_iter().map(|a| format!("{a:?}"))),
                        );
                        for scope in resource.scope_logs {
                            records.extend(scope.log_records);
                        }
                    }
                }
                "/v1/traces" => {
                    let request = ExportTraceServiceRequest::decode(body).unwrap();
                    for resource in request.resource_spans {
                        for scope in resource.scope_spans {
                            spans.extend(scope.spans);
                        }
                    }
                }
                other => panic!("unexpected OTLP path {other}"),
            }
        }
    })
    .await
    .expect("the collector did not receive the events");

    assert!(
        service_names
            .iter()
            .any(|a| a.contains("service.name") && a.contains("edge-1")),
        "{service_names:?}"
    );
    // Every event is a log record; those of the request carry its trace and span ids.
    let traced: Vec<_> = records
        .iter()
        .filter(|r| hex(&r.trace_id) == trace_id)
        .collect();
    let attribute = |record: &opentelemetry_proto::tonic::logs::v1::LogRecord, key: &str| {
        record
            .attributes
            .iter()
            .find(|a| a.key == key)
            .and_then(|a| a.value.clone())
            .map(|v| format!("{:?}", v.value))
            .unwrap_or_default()
    };
    let kinds: Vec<String> = traced.iter().map(|r| r.event_name.clone()).collect();
    assert_eq!(kinds, ["invocation.start", "egress", "invocation.end"]);
    let end = traced[2];
    assert_eq!(hex(&end.span_id), invocation.span_id().to_string());
    assert_eq!(hex(&traced[1].span_id), egress.span_id().to_string());
    assert_eq!(end.severity_text, "ERROR");
    for (key, value) in [
        ("zerofn.kind", "invocation.end"),
        ("zerofn.outcome", "failure"),
        ("zerofn.reason", "timeout"),
        ("zerofn.app", "shop"),
        ("zerofn.function", "checkout"),
        (
            "zerofn.identity",
            "spiffe://zerofn.local/app/shop/fn/checkout",
        ),
        ("zerofn.caller", "jwt:alice"),
        (
            "zerofn.invocation_id",
            "0193f7d2-0000-7000-8000-000000000001",
        ),
    ] {
        assert!(attribute(end, key).contains(value), "{key}: {end:?}");
    }
    assert!(
        records.iter().any(|r| r.event_name == "server.start"),
        "events without a trace are exported too"
    );

    // The invocation and the egress call are spans of the caller's trace, in their order.
    let span = |id: &str| {
        spans
            .iter()
            .find(|s| hex(&s.span_id) == id)
            .unwrap_or_else(|| panic!("no span {id} in {spans:?}"))
    };
    let invocation_span = span(invocation.span_id());
    assert_eq!(hex(&invocation_span.trace_id), trace_id);
    assert_eq!(hex(&invocation_span.parent_span_id), "00f067aa0ba902b7");
    assert_eq!(invocation_span.name, "invocation shop/checkout");
    assert_eq!(
        invocation_span.status.as_ref().map(|s| s.message.as_str()),
        Some("timeout")
    );
    assert!(invocation_span.start_time_unix_nano <= invocation_span.end_time_unix_nano);
    let egress_span = span(egress.span_id());
    assert_eq!(hex(&egress_span.trace_id), trace_id);
    assert_eq!(
        hex(&egress_span.parent_span_id),
        invocation.span_id().to_string()
    );
    let metrics = server.server().platform().metrics().encode();
    assert!(
        metrics.contains("zerofn_otlp_events_total{outcome=\"exported\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_collector_that_is_down_costs_events_in_the_export_only() {
    // A port nothing listens on (bound, then closed).
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let server = TestServer::start_with(|config| {
        config.telemetry = Some(zerofn_server::otlp::TelemetryConfig {
            otlp_endpoint: zerofn_server::otlp::TelemetryConfig::endpoint(&format!(
                "http://{addr}"
            ))
            .unwrap(),
            service_name: "zerofn".into(),
        });
    })
    .await;
    let platform = server.server().platform();
    for _ in 0..10 {
        platform
            .audit()
            .record(AuditEvent::new(EventKind::Deploy, Outcome::Success).app("shop"))
            .await;
    }
    platform.audit().flush().await;
    assert_eq!(
        server.events("deploy").await.len(),
        10,
        "the store keeps them"
    );
    tokio::time::timeout(Duration::from_secs(60), async {
        while !platform
            .metrics()
            .encode()
            .contains("zerofn_otlp_events_total{outcome=\"dropped\"}")
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("dropped events were not counted");
}
