//! Admission through the real deploy path: the operator's Rego rules refuse with their own
//! message at the manifest field they name, see the signed SBOM, provenance and signer, and
//! every refusal is counted by rule in the metrics the control plane serves.

// Test helpers outside `#[test]` functions report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{HELLO_MANIFEST, MANIFEST_PATH, TestServer, sign, sign_with};
use std::collections::BTreeMap;
use zerofn_server::DeployError;
use zerofn_test_artifacts::HELLO;

const POLICY: &str = r#"
package zerofn.guardrails

# Operators forbid clear-text egress, pointing at the offending grant. The rule reads the
# normalised grants, so `HTTP://` in capitals does not slip past it.
deny contains msg if {
    some name, function in input.functions
    some i, rule in function.grants.egress
    rule.scheme == "http"
    msg := {
        "id": "egress-plain-http",
        "msg": sprintf("function %s would send traffic in clear text to %s", [name, rule.as_written]),
        "field": sprintf("functions.%s.grants.egress[%d]", [name, i]),
        "help": "use an https:// destination",
    }
}

# Only what zerofn built, per the signed provenance.
deny contains "provenance: not built by zerofn" if {
    some function in input.functions
    function.provenance.buildDefinition.buildType != "https://zerofn.dev/buildtypes/function-command@v1"
}

# Echo what the document carries, so the test can see it.
warn contains sprintf("%s signed by %s, SBOM %s", [name, f.signer.key_id, f.sbom.specVersion]) if {
    some name, f in input.functions
}
"#;

fn components() -> BTreeMap<String, Vec<u8>> {
    [("hello".to_string(), std::fs::read(HELLO).unwrap())].into()
}

async fn server_with_policy() -> (TestServer, tempfile::TempDir) {
    let policies = tempfile::tempdir().unwrap();
    std::fs::write(policies.path().join("guardrails.rego"), POLICY).unwrap();
    let dir = policies.path().to_path_buf();
    let server = TestServer::start_with(|config| config.admission_policies = vec![dir]).await;
    (server, policies)
}

#[tokio::test]
async fn an_operator_rego_rule_refuses_with_its_message_at_the_field_it_names() {
    let (server, _policies) = server_with_policy().await;
    let manifest = format!(
        "{HELLO_MANIFEST}\n[functions.hello.grants]\negress = [\n  \"https://api.example.com\",\n  \"HTTP://Legacy.Example.com\",\n]\n"
    );
    let signed = sign(&manifest, &components(), &server.key);
    let error = server
        .deploy_bundle(&manifest, components(), signed)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "egress-plain-http");
    assert_eq!(error.status(), 403);
    let DeployError::Refused(findings) = &error else {
        panic!("expected findings, got {error:?}")
    };
    let finding = findings
        .iter()
        .find(|f| f.rule == "egress-plain-http")
        .unwrap();
    assert!(finding.is_error());
    assert_eq!(
        finding.message,
        "function hello would send traffic in clear text to HTTP://Legacy.Example.com"
    );
    assert_eq!(finding.file, MANIFEST_PATH);
    assert_eq!(
        finding.field.as_deref(),
        Some("functions.hello.grants.egress[1]")
    );
    let line = manifest
        .lines()
        .position(|l| l.contains("HTTP://Legacy"))
        .unwrap()
        + 1;
    assert_eq!((finding.line, finding.column), (Some(line), Some(3)));
    assert_eq!(
        finding.value.as_deref(),
        Some("\"HTTP://Legacy.Example.com\"")
    );
    assert_eq!(finding.help.as_deref(), Some("use an https:// destination"));
    // The other findings come along: no rule hides another. A public route is allowed, and
    // flagged for review.
    let public = findings.iter().find(|f| f.rule == "public-route").unwrap();
    assert_eq!(public.level, zerofn_admission::Level::Warning);
    assert_eq!(public.field.as_deref(), Some("functions.hello.auth"));

    let refused = server.events("deploy.refused").await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].event["reason"], "egress-plain-http");
    assert_eq!(
        refused[0].event["detail"]["refusal"]["findings"][0]["field"],
        "functions.hello.grants.egress[1]"
    );
    assert!(server.get("/hello").await.status == 404, "nothing deployed");
}

#[tokio::test]
async fn operator_policies_see_the_signed_sbom_provenance_and_signer() {
    let (server, _policies) = server_with_policy().await;
    // The test signer records a provenance whose build type is zerofn's.
    let report = server.deploy(HELLO_MANIFEST, &[("hello", HELLO)]).await;
    let key_id = server.key.public().key_id();
    assert!(
        report
            .warnings_text
            .contains(&format!("hello signed by {key_id}, SBOM 1.6")),
        "{}",
        report.warnings_text
    );
    assert_eq!(server.get("/hello").await.status, 200);
}

#[tokio::test]
async fn a_policy_on_the_signed_provenance_refuses_what_another_builder_made() {
    let (server, _policies) = server_with_policy().await;
    let signed = sign_with(
        HELLO_MANIFEST,
        &components(),
        &server.key,
        r#"{"bomFormat":"CycloneDX","specVersion":"1.6"}"#,
        serde_json::json!({"buildDefinition": {"buildType": "https://example.com/laptop"}}),
    );
    let error = server
        .deploy_bundle(HELLO_MANIFEST, components(), signed)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "zerofn.guardrails.deny");
    assert!(
        error
            .to_string()
            .contains("provenance: not built by zerofn"),
        "{error}"
    );
}

#[tokio::test]
async fn a_broken_policy_stops_the_server_from_starting() {
    let policies = tempfile::tempdir().unwrap();
    std::fs::write(
        policies.path().join("broken.rego"),
        "package p\ndeny contains if {",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    zerofn_server::trust::ensure_dev_key(dir.path()).unwrap();
    let mut config = common::config(dir.path());
    config.admission_policies = vec![policies.path().to_path_buf()];
    let error = zerofn_server::start(config).await.unwrap_err();
    assert!(error.to_string().contains("broken.rego"), "{error}");
}

#[tokio::test]
async fn an_sbom_swapped_after_signing_is_refused() {
    let server = TestServer::start().await;
    let mut signed = sign(HELLO_MANIFEST, &components(), &server.key);
    signed[0].sbom = r#"{"bomFormat":"CycloneDX","specVersion":"1.6","components":[]}"#.into();
    let error = server
        .deploy_bundle(HELLO_MANIFEST, components(), signed)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "sbom-not-signed");
}

#[tokio::test]
async fn a_grant_naming_an_undefined_secret_is_refused_at_the_grant() {
    let server = TestServer::start().await;
    let manifest =
        format!("{HELLO_MANIFEST}\n[functions.hello.grants]\nsecrets = [\"stripe_key\"]\n");
    let error = server
        .try_deploy(&manifest, &[("hello", HELLO)])
        .await
        .unwrap_err();
    assert_eq!(error.code(), "grant-undefined");
    let DeployError::Refused(findings) = &error else {
        panic!("expected findings, got {error:?}")
    };
    let finding = findings
        .iter()
        .find(|f| f.rule == "grant-undefined")
        .unwrap();
    assert!(finding.message.contains("`stripe_key`"), "{finding:?}");
    assert_eq!(
        finding.field.as_deref(),
        Some("functions.hello.grants.secrets[0]")
    );
    assert_eq!(finding.line, Some(manifest.lines().count()));
    assert_eq!(finding.value.as_deref(), Some("\"stripe_key\""));
}

#[tokio::test]
async fn refusals_are_counted_by_rule_in_the_control_plane_metrics() {
    let server = TestServer::start().await;
    server
        .deploy_bundle(HELLO_MANIFEST, components(), Vec::new())
        .await
        .unwrap_err();
    let too_slow = format!("{HELLO_MANIFEST}\n[functions.hello.limits]\ntimeout_ms = 600000\n");
    server
        .try_deploy(&too_slow, &[("hello", HELLO)])
        .await
        .unwrap_err();
    server.deploy(HELLO_MANIFEST, &[("hello", HELLO)]).await;

    let client = zerofn_server::control::ControlClient::new(server.server().control_socket());
    let metrics = client.get_text("/v1/metrics").await.unwrap();
    for line in [
        "zerofn_deploys_total{outcome=\"admitted\"} 1",
        "zerofn_deploys_total{outcome=\"refused\"} 2",
        "zerofn_deploy_refusals_total{rule=\"unsigned\"} 1",
        "zerofn_deploy_refusals_total{rule=\"limit-above-ceiling\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
}
