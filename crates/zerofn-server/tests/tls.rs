//! The function listener over TLS with the built-in CA, through a real server: the bundle from
//! the control plane verifies the node's SVID, functions answer over HTTPS with and without a
//! client certificate, and client SVIDs are issued (and refused) through the control plane,
//! audited, by a CA that survives a restart.

// Test helpers outside `#[test]` functions report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::TestServer;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::time::SystemTime;
use zerofn_server::FunctionTls;
use zerofn_server::control::{
    CaBundle, ControlClient, ControlError, IssueCertificateRequest, IssuedClientCertificate,
};
use zerofn_test_artifacts::HOSTILE;

fn client(server: &TestServer) -> ControlClient {
    ControlClient::new(server.server().control_socket())
}

async fn issue(
    server: &TestServer,
    spiffe_id: &str,
    public_key_pem: &str,
    ttl_secs: Option<u64>,
) -> Result<IssuedClientCertificate, ControlError> {
    client(server)
        .post(
            "/v1/ca/issue",
            &IssueCertificateRequest {
                spiffe_id: spiffe_id.to_string(),
                public_key_pem: public_key_pem.to_string(),
                ttl_secs,
            },
        )
        .await
}

fn refusal_code(error: ControlError) -> String {
    match error {
        ControlError::Refused { problem, .. } => problem["type"]
            .as_str()
            .unwrap()
            .trim_start_matches("urn:zerofn:problem:")
            .to_string(),
        other => panic!("not a refusal: {other}"),
    }
}

#[tokio::test]
async fn functions_are_served_over_tls_and_client_svids_are_issued_through_the_control_plane() {
    let server = TestServer::start_with(|c| c.function_tls = FunctionTls::Builtin).await;
    server
        .deploy(
            &common::hostile_manifest("tls", ""),
            &[("hostile", HOSTILE)],
        )
        .await;
    let bundle: CaBundle = client(&server).get("/v1/ca/bundle").await.unwrap();
    assert_eq!(bundle.trust_domain, "zerofn.local");

    // The node's SVID verifies against the exported bundle, by name and by address.
    for name in ["localhost", "127.0.0.1"] {
        let (status, body) = common::https_get(server.addr, name, &bundle.bundle_pem, None)
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
    }
    // Plain HTTP gets nothing from a TLS listener.
    let plain = common::request(server.addr, "GET", "/headers", &[], Bytes::new()).await;
    assert_eq!(plain.status, 0);

    // A client SVID for a key generated here: the key never goes to the server.
    let key = zerofn_identity::SvidKey::generate().unwrap();
    let issued = issue(
        &server,
        "spiffe://zerofn.local/callers/ci",
        key.public_key_pem(),
        Some(600),
    )
    .await
    .unwrap();
    assert_eq!(issued.bundle_pem, bundle.bundle_pem);
    assert_eq!(
        issued.not_after_ms - issued.not_before_ms,
        (600 + 60) * 1000
    );
    let certificate = CertificateDer::from_pem_slice(issued.certificate_pem.as_bytes()).unwrap();
    let policy = zerofn_identity::ClientCertPolicy::from_pem(
        bundle.bundle_pem.as_bytes(),
        Some("spiffe://zerofn.local/callers/*"),
    )
    .unwrap();
    let identity = policy
        .verify(Some(std::slice::from_ref(&certificate)), SystemTime::now())
        .unwrap();
    assert_eq!(
        identity.spiffe_id.to_string(),
        "spiffe://zerofn.local/callers/ci"
    );
    // It works as a client certificate on the function listener (a public function ignores it).
    let (status, _) = common::https_get(
        server.addr,
        "localhost",
        &bundle.bundle_pem,
        Some((&issued.certificate_pem, key.private_key_pem())),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);

    // Refused: reserved paths, other trust domains, non-SPIFFE IDs, lifetimes out of bounds,
    // keys that are not P-256 public keys.
    let refusals = [
        (
            "spiffe://zerofn.local/app/tls/fn/hostile",
            None,
            "spiffe-id-reserved",
        ),
        (
            "spiffe://zerofn.local/node/local",
            None,
            "spiffe-id-reserved",
        ),
        ("spiffe://zerofn.local/control", None, "spiffe-id-reserved"),
        (
            "spiffe://other.local/callers/ci",
            None,
            "spiffe-id-foreign-trust-domain",
        ),
        ("https://zerofn.local/callers/ci", None, "spiffe-id-invalid"),
        (
            "spiffe://zerofn.local/callers/ci",
            Some(25 * 3600),
            "svid-ttl-invalid",
        ),
        (
            "spiffe://zerofn.local/callers/ci",
            Some(0),
            "svid-ttl-invalid",
        ),
    ];
    for (id, ttl, code) in refusals {
        let error = issue(&server, id, key.public_key_pem(), ttl)
            .await
            .unwrap_err();
        assert_eq!(refusal_code(error), code, "{id} {ttl:?}");
    }
    let error = issue(
        &server,
        "spiffe://zerofn.local/callers/ci",
        key.private_key_pem(),
        None,
    )
    .await
    .unwrap_err();
    let code = refusal_code(error);
    assert_eq!(code, "public-key-invalid");

    // Each issue and refusal is a credential.change event; none carries a key.
    let events = server.events("credential.change").await;
    let issued_events: Vec<_> = events
        .iter()
        .filter(|e| e.event["reason"] == "client-svid-issued")
        .collect();
    assert_eq!(issued_events.len(), 1, "{events:?}");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event["reason"] == "spiffe-id-reserved")
            .count(),
        3
    );
    let all = format!("{events:?}");
    assert!(!all.contains("PRIVATE KEY"));
    assert!(!all.contains(&issued.certificate_pem));
    assert_eq!(server.events("control.refused").await.len(), 0);

    // The CA survives a restart: same bundle, and the certificate still verifies.
    let dir = server.stop().await;
    let server = TestServer::start_in(dir, |c| c.function_tls = FunctionTls::Builtin).await;
    let again: CaBundle = client(&server).get("/v1/ca/bundle").await.unwrap();
    assert_eq!(again.bundle_pem, bundle.bundle_pem);
    server.stop().await;
}

#[tokio::test]
async fn the_default_listener_stays_plain_http() {
    let server = TestServer::start().await;
    server
        .deploy(
            &common::hostile_manifest("plain", ""),
            &[("hostile", HOSTILE)],
        )
        .await;
    let reply = common::request(server.addr, "GET", "/headers", &[], Bytes::new()).await;
    assert_eq!(reply.status, 200);
    // The CA exists anyway, so callers' certificates can be issued before TLS is switched on.
    let bundle: CaBundle = client(&server).get("/v1/ca/bundle").await.unwrap();
    assert!(bundle.bundle_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    server.stop().await;
}
