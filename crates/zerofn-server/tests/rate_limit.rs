//! Abuse limits: per-caller and per-function token buckets answer 429 with `Retry-After`,
//! are audited (throttled, with counts) and counted, and leave other traffic served.

// Test helpers outside `#[test]` functions report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::{TestServer, hostile_manifest};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, SocketAddr};
use zerofn_test_artifacts::HOSTILE;

/// `GET path` from the loopback address `from` (each 127.0.0.0/8 address is a distinct caller).
async fn get_from(server: SocketAddr, from: &str, path: &str) -> (u16, http::HeaderMap, String) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    let stream = socket.connect(server).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header("host", server.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn refusals(events: &[zerofn_store::AuditRow], rule: &str) -> Vec<serde_json::Value> {
    events
        .iter()
        .filter(|e| e.event["reason"] == rule)
        .map(|e| e.event.clone())
        .collect()
}

#[tokio::test]
async fn a_caller_over_its_burst_gets_429_with_retry_after_and_others_are_served() {
    let server = TestServer::start().await;
    // One token a second: the burst is spent long before the next one arrives.
    server
        .deploy(
            &hostile_manifest(
                "limited",
                "caller_requests_per_second = 1, caller_burst = 3",
            ),
            &[("hostile", HOSTILE)],
        )
        .await;
    let addr = server.addr;
    for _ in 0..3 {
        assert_eq!(get_from(addr, "127.0.0.1", "/count").await.0, 200);
    }
    let (status, headers, body) = get_from(addr, "127.0.0.1", "/count").await;
    assert_eq!(status, 429, "{body}");
    let retry_after: u32 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["type"], "urn:zerofn:problem:caller-rate-limited");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("limits.caller_requests_per_second") && detail.contains("127.0.0.1"),
        "{detail}"
    );
    assert_eq!(problem["limit"], 1);
    assert_eq!(problem["burst"], 3);

    // Another caller has its own bucket, and the function still serves it.
    assert_eq!(get_from(addr, "127.0.0.2", "/count").await.0, 200);

    let events = server.events("request.refused").await;
    let refused = refusals(&events, "caller-rate-limited");
    assert_eq!(refused.len(), 1, "{events:?}");
    assert_eq!(refused[0]["detail"]["caller"], "address:127.0.0.1");
    assert_eq!(refused[0]["function"], "hostile");
    let metrics = server.server().platform().metrics().encode();
    assert!(
        metrics.contains(
            r#"zerofn_requests_rate_limited_total{app="limited",function="hostile",scope="caller"} 1"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_function_limit_holds_for_all_callers_together() {
    let server = TestServer::start().await;
    server
        .deploy(
            &hostile_manifest("shared", "requests_per_second = 1, burst = 2"),
            &[("hostile", HOSTILE)],
        )
        .await;
    let addr = server.addr;
    assert_eq!(get_from(addr, "127.0.0.2", "/count").await.0, 200);
    assert_eq!(get_from(addr, "127.0.0.3", "/count").await.0, 200);
    let (status, headers, body) = get_from(addr, "127.0.0.4", "/count").await;
    assert_eq!(status, 429, "{body}");
    assert!(headers.contains_key("retry-after"));
    assert!(body.contains("function-rate-limited"), "{body}");
    assert!(body.contains("limits.requests_per_second"), "{body}");
}

#[tokio::test]
async fn a_flood_is_refused_cheaply_audited_in_summary_and_other_apps_keep_serving() {
    let server = TestServer::start().await;
    let flooded = hostile_manifest(
        "flooded",
        "caller_requests_per_second = 1, caller_burst = 1",
    )
    .replace("route = \"/...\"", "route = \"/count\"");
    server.deploy(&flooded, &[("hostile", HOSTILE)]).await;
    let calm = hostile_manifest("calm", "").replace("route = \"/...\"", "route = \"/marker\"");
    server.deploy(&calm, &[("hostile", HOSTILE)]).await;
    let addr = server.addr;

    let started = std::time::Instant::now();
    let flood: Vec<_> = (0..60)
        .map(|_| tokio::spawn(get_from(addr, "127.0.0.5", "/count")))
        .collect();
    // Served while the flood is refused.
    assert_eq!(get_from(addr, "127.0.0.6", "/marker").await.0, 200);
    let mut statuses = Vec::new();
    for request in flood {
        statuses.push(request.await.unwrap().0);
    }
    let elapsed = started.elapsed();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(ok + limited, 60, "{statuses:?}");
    assert!(limited >= 50, "{statuses:?}");

    let events = server.events("request.refused").await;
    let refused = refusals(&events, "caller-rate-limited");
    // At most one event a second (and one to start), each counting those it stands for.
    assert!(!refused.is_empty());
    assert!(
        refused.len() as u64 <= elapsed.as_secs() + 2,
        "{} events in {elapsed:?}",
        refused.len()
    );
    let suppressed: u64 = refused
        .iter()
        .map(|e| e["detail"]["suppressed"].as_u64().unwrap())
        .sum();
    assert!(suppressed + refused.len() as u64 <= limited as u64);
    let metrics = server.server().platform().metrics().encode();
    assert!(
        metrics.contains(&format!(
            r#"zerofn_requests_rate_limited_total{{app="flooded",function="hostile",scope="caller"}} {limited}"#
        )),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_limit_above_the_ceiling_is_refused_at_deploy_naming_the_field() {
    let server = TestServer::start().await;
    let error = server
        .try_deploy(
            &hostile_manifest("greedy", "requests_per_second = 1000000"),
            &[("hostile", HOSTILE)],
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("limits.requests_per_second"), "{error}");
    assert!(error.contains("10000"), "{error}");
}
