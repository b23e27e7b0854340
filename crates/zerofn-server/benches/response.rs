//! Offending event → quarantine in force, on a real platform: an offending `egress` event is
//! recorded through the audit log; when the writer has committed it and broadcast it, a
//! subscriber (standing in for the detector, which is measured apart in zerofn-detect) opens
//! the incident with `Platform::open_incident`, the monitor's own call; the clock stops when
//! the function's quarantine is in force (the set every invocation checks), and a request is
//! then checked to get 503. The function is released between runs.
//!
//! Run: `cargo bench -p zerofn-server --bench response`. Results go to BENCHMARKS.md.

// A benchmark reports failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// Only the percentiles are used here; the loop is this bench's own.
#[allow(dead_code)]
mod timing;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use zerofn_audit::{AuditEvent, EventKind, Outcome};
use zerofn_detect::{Detection, Severity};
use zerofn_server::response::{Action, ResponsePolicy};

const RUNS: usize = 300;

const MANIFEST: &str = r#"[app]
name = "bench"
version = "1.0.0"

[functions.victim]
component = "hostile.wasm"
trigger = { http = { route = "/count", methods = ["GET"] } }
auth = { public = true }
limits = { requests_per_second = 10000, burst = 20000, caller_requests_per_second = 10000, caller_burst = 20000 }

[functions.bystander]
component = "hostile.wasm"
trigger = { http = { route = "/echo", methods = ["GET"] } }
auth = { public = true }
limits = { requests_per_second = 10000, burst = 20000, caller_requests_per_second = 10000, caller_burst = 20000 }
"#;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let key = zerofn_server::trust::ensure_dev_key(dir.path()).unwrap();
    let mut config = zerofn_server::ServerConfig::new(dir.path().to_path_buf());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.response = ResponsePolicy {
        high: vec![Action::Quarantine, Action::RevokeLeases],
        ..ResponsePolicy::default()
    };
    let server = zerofn_server::start(config).await.unwrap();
    let platform = server.platform().clone();
    let hostile = std::fs::read(zerofn_test_artifacts::HOSTILE).unwrap();
    let components: BTreeMap<String, Vec<u8>> = [
        ("victim".to_string(), hostile.clone()),
        ("bystander".to_string(), hostile),
    ]
    .into_iter()
    .collect();
    platform
        .deploy(zerofn_server::DeployBundle {
            manifest_path: "bench/zerofn.toml".into(),
            manifest: MANIFEST.into(),
            attestations: sign(&components, &key),
            components,
            files: zerofn_manifest::AttachedFiles::new(),
        })
        .await
        .unwrap();
    let addr = server.http_addr();
    assert_eq!(get(addr, "/count").await, 200);

    // The detector's stand-in: every committed offending event opens an incident.
    let mut committed = platform.audit().subscribe();
    let responder = platform.clone();
    tokio::spawn(async move {
        while let Ok(event) = committed.recv().await {
            if event.event.kind != EventKind::Egress
                || event.event.reason.as_deref() != Some("bench-offending")
            {
                continue;
            }
            let detection = Detection {
                detector: "new-egress-destination",
                severity: Severity::High,
                app: "bench".into(),
                function: "victim".into(),
                version_id: event.event.version_id.as_deref().map(str::to_string),
                summary: "bench".into(),
                evidence: vec![event.id],
                offending_at_ms: event.event.at_ms,
            };
            let responder = responder.clone();
            tokio::spawn(async move { responder.open_incident(detection).await.unwrap() });
        }
    });

    let mut to_force = Vec::with_capacity(RUNS);
    for run in 0..RUNS + RUNS / 10 {
        let started = Instant::now();
        platform
            .audit()
            .record(
                AuditEvent::new(EventKind::Egress, Outcome::Success)
                    .reason("bench-offending")
                    .function("bench", "victim")
                    .detail("destination", format!("http://new-{run}.example")),
            )
            .await;
        while platform.quarantined().is_empty() {
            tokio::time::sleep(Duration::from_micros(50)).await;
        }
        let elapsed = started.elapsed();
        assert_eq!(get(addr, "/count").await, 503, "quarantine not in force");
        assert_eq!(
            get(addr, "/echo").await,
            200,
            "the bystander stopped serving"
        );
        platform.release("bench", "victim", "bench").await.unwrap();
        assert_eq!(get(addr, "/count").await, 200);
        if run >= RUNS / 10 {
            to_force.push(elapsed);
        }
    }
    let mean = to_force.iter().sum::<Duration>() / to_force.len() as u32;
    println!(
        "offending event recorded → quarantine in force         mean {:>8.2} ms",
        mean.as_secs_f64() * 1e3
    );
    timing::percentiles("offending event recorded → quarantine in force", to_force);
    let report = platform.loop_report().unwrap();
    println!(
        "from the store: time to detect mean {:.2} ms p99 {:?} ms; time to respond mean {:.2} ms p99 {:?} ms (n={})",
        report.time_to_detect.mean_ms.unwrap_or_default(),
        report.time_to_detect.p99_ms,
        report.time_to_respond.mean_ms.unwrap_or_default(),
        report.time_to_respond.p99_ms,
        report.time_to_respond.count
    );
    server.shutdown().await;
}

async fn get(addr: std::net::SocketAddr, path: &str) -> u16 {
    use http_body_util::BodyExt;
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header("host", addr.to_string())
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    status
}

/// Each function signed with the data directory's development key, as `zerofn sign` does.
fn sign(
    components: &BTreeMap<String, Vec<u8>>,
    key: &zerofn_signing::PrivateKey,
) -> Vec<zerofn_store::Attestation> {
    let sbom = r#"{"bomFormat":"CycloneDX","specVersion":"1.6"}"#;
    let parsed =
        zerofn_manifest::parse(std::path::Path::new("bench/zerofn.toml"), MANIFEST).unwrap();
    parsed
        .functions()
        .filter_map(|function| {
            let bytes = components.get(&function.name)?;
            let statement = zerofn_provenance::function_statement(
                &parsed,
                function,
                bytes,
                sbom.as_bytes(),
                &zerofn_manifest::AttachedFiles::new(),
                serde_json::json!({"buildDefinition": {"buildType": zerofn_provenance::BUILD_TYPE}}),
            );
            Some(zerofn_store::Attestation {
                function: function.name.clone(),
                bundle: zerofn_signing::Bundle::sign(&statement, key)
                    .unwrap()
                    .to_json(),
                sbom: sbom.to_string(),
            })
        })
        .collect()
}
