//! Callers with client certificates (`auth.mtls`), through a real server whose function
//! listener serves TLS with the built-in CA: a caller holding an SVID from the function's CA
//! and matching its SPIFFE ID pattern reaches the function, which sees the verified SPIFFE ID;
//! a missing, expired, foreign or out-of-pattern certificate is refused before any sandbox
//! exists, with its own rule, and audited.

// Test helpers outside `#[test]` functions report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestServer, https_get};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};
use zerofn_identity::{CertificateAuthority, SvidRequest, X509Svid};
use zerofn_manifest::AttachedFiles;
use zerofn_server::FunctionTls;
use zerofn_test_artifacts::HOSTILE;

const APP: &str = r#"[app]
name = "ledger"
version = "1.0.0"

[functions.entries]
component = "hostile.wasm"
trigger = { http = { route = "/headers", methods = ["GET"] } }

[functions.entries.auth.mtls]
ca = "certs/ca.pem"
spiffe_id = "spiffe://zerofn.local/svc/*"
"#;

async fn start() -> TestServer {
    TestServer::start_with(|config| config.function_tls = FunctionTls::Builtin).await
}

async fn deploy(server: &TestServer, manifest: &str, ca_pem: &str) -> Result<(), String> {
    let components: BTreeMap<String, Vec<u8>> =
        [("entries".to_string(), std::fs::read(HOSTILE).unwrap())].into();
    let mut files = AttachedFiles::new();
    files.insert("certs/ca.pem", ca_pem.as_bytes().to_vec());
    let attestations = common::sign_with_files(manifest, &components, &server.key, &files);
    server
        .deploy_with_files(manifest, components, attestations, files)
        .await
        .map(|_| ())
        .map_err(|e| e.to_json().to_string())
}

fn svid(ca: &CertificateAuthority, id: &str, not_before: SystemTime, ttl: Duration) -> X509Svid {
    ca.issue(&SvidRequest::new(id, not_before, ttl)).unwrap()
}

async fn call(server: &TestServer, bundle: &str, client: Option<&X509Svid>) -> (u16, String) {
    let identity = client.map(|svid| (svid.certificate.pem.as_str(), svid.private_key_pem()));
    https_get(server.addr, "localhost", bundle, identity)
        .await
        .unwrap()
}

fn rule(body: &str) -> String {
    let problem: serde_json::Value = serde_json::from_str(body).unwrap();
    problem["type"]
        .as_str()
        .unwrap()
        .trim_start_matches("urn:zerofn:problem:")
        .to_string()
}

#[tokio::test]
async fn a_client_certificate_from_the_functions_ca_is_the_callers_identity() {
    let server = start().await;
    let ca = server.server().platform().ca().clone();
    let bundle = ca.bundle_pem().to_string();
    deploy(&server, APP, &bundle).await.unwrap();
    let now = SystemTime::now();

    let billing = svid(
        &ca,
        "spiffe://zerofn.local/svc/billing",
        now,
        Duration::from_secs(600),
    );
    let (status, body) = call(&server, &bundle, Some(&billing)).await;
    assert_eq!(status, 200, "{body}");
    let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        seen["x-zerofn-client-spiffe-id"],
        "spiffe://zerofn.local/svc/billing"
    );

    // No certificate, an expired one, one outside the pattern, one from another CA.
    let (status, body) = call(&server, &bundle, None).await;
    assert_eq!(
        (status, rule(&body)),
        (401, "client-certificate-missing".into())
    );

    let expired = svid(
        &ca,
        "spiffe://zerofn.local/svc/billing",
        now - Duration::from_secs(7200),
        Duration::from_secs(3600),
    );
    let (status, body) = call(&server, &bundle, Some(&expired)).await;
    assert_eq!(
        (status, rule(&body)),
        (401, "client-certificate-expired".into()),
        "{body}"
    );
    assert!(body.contains("expired at"), "{body}");

    let outsider = svid(
        &ca,
        "spiffe://zerofn.local/ops/deploy-bot",
        now,
        Duration::from_secs(600),
    );
    let (status, body) = call(&server, &bundle, Some(&outsider)).await;
    assert_eq!(
        (status, rule(&body)),
        (403, "client-certificate-not-allowed".into()),
        "{body}"
    );

    let foreign_ca = CertificateAuthority::create("zerofn.local", now).unwrap();
    let foreign = svid(
        &foreign_ca,
        "spiffe://zerofn.local/svc/billing",
        now,
        Duration::from_secs(600),
    );
    let (status, body) = call(&server, &bundle, Some(&foreign)).await;
    assert_eq!(
        (status, rule(&body)),
        (401, "client-certificate-unknown-issuer".into()),
        "{body}"
    );

    let decisions = server.events("authn.decision").await;
    let reasons: Vec<&str> = decisions
        .iter()
        .map(|d| d.event["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "authenticated",
            "client-certificate-missing",
            "client-certificate-expired",
            "client-certificate-not-allowed",
            "client-certificate-unknown-issuer",
        ]
    );
    assert_eq!(decisions[0].event["detail"]["method"], "mtls");
    assert_eq!(
        decisions[0].event["detail"]["subject"],
        "spiffe://zerofn.local/svc/billing"
    );
}

#[tokio::test]
async fn mtls_is_refused_on_a_listener_without_tls_and_with_an_unusable_bundle() {
    let plain = TestServer::start().await;
    let bundle = plain.server().platform().ca().bundle_pem().to_string();
    let refused = deploy(&plain, APP, &bundle).await.unwrap_err();
    assert!(refused.contains("auth-unusable"), "{refused}");
    assert!(refused.contains("tls = \\\"builtin\\\""), "{refused}");

    let server = start().await;
    let refused = deploy(&server, APP, "not a certificate").await.unwrap_err();
    assert!(refused.contains("auth-unusable"), "{refused}");
}
