//! Supply-chain admission through the real deploy path: every way of getting an unsigned,
//! altered or wrongly signed function past it is refused with its rule, and revoking a key stops
//! what it signed.

// Test helpers outside `#[test]` functions report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{HELLO_MANIFEST as MANIFEST, TestServer, sign, sign_with_sbom};
use std::collections::BTreeMap;
use zerofn_signing::{Algorithm, PrivateKey};
use zerofn_test_artifacts::HELLO;

fn components() -> BTreeMap<String, Vec<u8>> {
    [("hello".to_string(), std::fs::read(HELLO).unwrap())].into()
}

async fn refusal(
    server: &TestServer,
    manifest: &str,
    components: BTreeMap<String, Vec<u8>>,
    attestations: Vec<zerofn_store::Attestation>,
) -> String {
    let error = server
        .deploy_bundle(manifest, components, attestations)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("function `hello`"), "{error}");
    error.code().to_string()
}

/// A server whose trust policy trusts `key` for the app globs `apps` (revoked or not).
async fn server_trusting(key: &PrivateKey, apps: &str, revoked: bool) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    write_policy(dir.path(), key, apps, revoked);
    TestServer::start_in(dir, |_| {}).await
}

fn write_policy(dir: &std::path::Path, key: &PrivateKey, apps: &str, revoked: bool) {
    std::fs::write(dir.join("release.pub"), key.public().to_pem()).unwrap();
    std::fs::write(
        dir.join("trust.toml"),
        format!(
            "[[keys]]\nname = \"release\"\npublic_key = \"release.pub\"\napps = [{apps}]\nrevoked = {revoked}\n"
        ),
    )
    .unwrap();
}

#[tokio::test]
async fn an_unsigned_component_is_refused() {
    let server = TestServer::start().await;
    assert_eq!(
        refusal(&server, MANIFEST, components(), vec![]).await,
        "unsigned"
    );
    assert_eq!(server.get("/hello").await.status, 404);
    let refused = server.events("deploy.refused").await;
    assert_eq!(refused[0].event["reason"], "unsigned");
}

#[tokio::test]
async fn one_flipped_byte_in_the_component_is_refused() {
    let server = TestServer::start().await;
    let signed = sign(MANIFEST, &components(), &server.key);
    let mut tampered = components();
    let bytes = tampered.get_mut("hello").unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    assert_eq!(
        refusal(&server, MANIFEST, tampered, signed).await,
        "component-not-signed"
    );
}

#[tokio::test]
async fn grants_edited_after_signing_are_refused() {
    let server = TestServer::start().await;
    let signed = sign(MANIFEST, &components(), &server.key);
    let widened = MANIFEST.replace(
        "[functions.hello.auth]",
        "[functions.hello.grants]\negress = [\"https://attacker.example.com\"]\n\n[functions.hello.auth]",
    );
    assert_eq!(
        refusal(&server, &widened, components(), signed).await,
        "config-not-signed"
    );
}

#[tokio::test]
async fn an_altered_bundle_is_refused() {
    let server = TestServer::start().await;
    let mut signed = sign(MANIFEST, &components(), &server.key);
    let mut bundle = zerofn_signing::Bundle::from_json(&signed[0].bundle).unwrap();
    bundle.dsse_envelope.payload_type = "application/vnd.in-toto+json ".into();
    signed[0].bundle = bundle.to_json();
    let code = refusal(&server, MANIFEST, components(), signed).await;
    assert!(
        ["bad-signature", "malformed-bundle"].contains(&code.as_str()),
        "{code}"
    );
}

#[tokio::test]
async fn a_key_the_policy_does_not_know_is_refused() {
    let server = TestServer::start().await;
    let stranger = PrivateKey::generate(Algorithm::Ed25519).unwrap();
    let signed = sign(MANIFEST, &components(), &stranger);
    assert_eq!(
        refusal(&server, MANIFEST, components(), signed).await,
        "signer-not-trusted"
    );
}

#[tokio::test]
async fn a_key_trusted_for_another_app_is_refused_and_one_trusted_for_this_app_is_not() {
    let release = PrivateKey::generate(Algorithm::EcdsaP256).unwrap();
    let server = server_trusting(&release, "\"billing-*\"", false).await;
    let signed = sign(MANIFEST, &components(), &release);
    let error = server
        .deploy_bundle(MANIFEST, components(), signed.clone())
        .await
        .unwrap_err();
    assert_eq!(error.code(), "signer-not-trusted");
    assert!(
        error.to_string().contains("not trusted for app `greet`"),
        "{error}"
    );

    let server = server_trusting(&release, "\"gr*t\"", false).await;
    let report = server
        .deploy_bundle(MANIFEST, components(), signed)
        .await
        .unwrap();
    assert_eq!(report.signers["hello"], release.public().key_id());
    assert_eq!(server.get("/hello").await.status, 200);
}

#[tokio::test]
async fn revoking_a_key_refuses_its_deploys_and_stops_what_it_signed() {
    let release = PrivateKey::generate(Algorithm::EcdsaP256).unwrap();
    let server = server_trusting(&release, "\"*\"", false).await;
    let signed = sign(MANIFEST, &components(), &release);
    server
        .deploy_bundle(MANIFEST, components(), signed.clone())
        .await
        .unwrap();
    assert_eq!(server.get("/hello").await.status, 200);

    write_policy(server.dir.path(), &release, "\"*\"", true);
    let outcome = server.server().platform().reload_trust().await.unwrap();
    assert_eq!(outcome.suspended.len(), 1, "{outcome:?}");
    assert!(
        outcome.suspended[0].1.contains("signer-revoked"),
        "{outcome:?}"
    );
    let stopped = server.get("/hello").await;
    assert_eq!(stopped.status, 503);
    assert_eq!(
        stopped.json()["type"],
        "urn:zerofn:problem:version-suspended"
    );
    assert!(
        !stopped.text().contains("trust policy"),
        "internal reasons stay private"
    );
    let suspended = server.events("version.suspended").await;
    assert_eq!(suspended.len(), 1);
    assert!(
        suspended[0].event["detail"]["detail"]
            .as_str()
            .unwrap()
            .contains("signer-revoked")
    );
    let refused = server.events("request.refused").await;
    assert_eq!(refused[0].event["reason"], "version-suspended");
    assert_eq!(refused[0].event["app"], "greet");

    // The control plane's invoke honours the suspension too.
    let client = zerofn_server::control::ControlClient::new(server.server().control_socket());
    let invoked = client
        .post::<_, serde_json::Value>(
            "/v1/invoke",
            &serde_json::json!({"app": "greet", "function": "hello", "method": "GET", "path": "/hello"}),
        )
        .await;
    assert!(matches!(
        invoked,
        Err(zerofn_server::control::ControlError::Refused { status: 503, .. })
    ));

    let error = server
        .deploy_bundle(MANIFEST, components(), signed)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "signer-revoked");

    // After a restart the revoked version is not served either.
    let dir = server.stop().await;
    let server = TestServer::start_in(dir, |_| {}).await;
    assert_eq!(
        server.server().restore_failures[0].1.code(),
        "signer-revoked"
    );
    assert_eq!(server.get("/hello").await.status, 404);

    // Trust restored: a reload resumes nothing that is not active, and a redeploy by the
    // development key serves again.
    server.deploy(MANIFEST, &[("hello", HELLO)]).await;
    assert_eq!(server.get("/hello").await.status, 200);
}

#[tokio::test]
async fn a_malformed_trust_policy_keeps_the_previous_one() {
    let release = PrivateKey::generate(Algorithm::EcdsaP256).unwrap();
    let server = server_trusting(&release, "\"*\"", false).await;
    std::fs::write(server.dir.path().join("trust.toml"), "[[keys]]\nname = 3\n").unwrap();
    assert!(server.server().platform().reload_trust().await.is_err());
    let signed = sign(MANIFEST, &components(), &release);
    server
        .deploy_bundle(MANIFEST, components(), signed)
        .await
        .unwrap();
}

#[tokio::test]
async fn revoking_the_development_key_in_the_policy_revokes_it() {
    let server = TestServer::start().await;
    server.deploy(MANIFEST, &[("hello", HELLO)]).await;
    std::fs::write(
        server.dir.path().join("trust.toml"),
        "[[keys]]\nname = \"dev\"\npublic_key = \"dev-signing.pub\"\napps = [\"*\"]\nrevoked = true\n",
    )
    .unwrap();
    let outcome = server.server().platform().reload_trust().await.unwrap();
    assert_eq!(outcome.suspended.len(), 1, "{outcome:?}");
    assert_eq!(server.get("/hello").await.status, 503);
}

#[tokio::test]
async fn a_redeploy_with_a_new_signature_replaces_the_stored_one() {
    let release = PrivateKey::generate(Algorithm::EcdsaP256).unwrap();
    let server = server_trusting(&release, "\"*\"", false).await;
    server.deploy(MANIFEST, &[("hello", HELLO)]).await;
    let resigned = sign(MANIFEST, &components(), &release);
    let report = server
        .deploy_bundle(MANIFEST, components(), resigned)
        .await
        .unwrap();
    let stored = server
        .server()
        .platform()
        .store()
        .attestations("greet", &report.version_id)
        .unwrap();
    let bundle = zerofn_signing::Bundle::from_json(&stored[0].bundle).unwrap();
    assert_eq!(
        bundle.verification_material.public_key.hint,
        release.public().key_id()
    );
}

#[tokio::test]
async fn a_dependency_with_a_blocking_advisory_is_refused_at_deploy() {
    let db = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/advisories");
    let server = TestServer::start_with(|config| {
        config.advisories = Some(zerofn_server::AdvisoryConfig {
            db,
            block_at: zerofn_provenance::Severity::High,
        });
    })
    .await;
    let with_packages = |packages: serde_json::Value| {
        let sbom = serde_json::json!({"bomFormat": "CycloneDX", "specVersion": "1.6",
            "components": packages});
        sign_with_sbom(MANIFEST, &components(), &server.key, &sbom.to_string())
    };
    let flagged = with_packages(serde_json::json!([{"name": "smallvec", "version": "1.6.0",
        "purl": "pkg:cargo/smallvec@1.6.0"}]));
    let error = server
        .deploy_bundle(MANIFEST, components(), flagged)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "blocking-advisory");
    assert!(error.to_string().contains("ZEROFN-TEST-0001"), "{error}");
    assert!(error.to_string().contains("fixed in 1.6.1"), "{error}");

    let below_threshold = with_packages(serde_json::json!([{"name": "wasip2", "version": "2.0.0",
        "purl": "pkg:cargo/wasip2@2.0.0"}]));
    server
        .deploy_bundle(MANIFEST, components(), below_threshold)
        .await
        .unwrap();
}
