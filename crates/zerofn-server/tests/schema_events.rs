//! The events issue 6 asks of admission and signatures, through the real deploy, rollback,
//! restore and trust-reload paths: `admission.verdict` for every admission decision and
//! `signature.verification` for every function's check. (`operator.login` is in
//! `operators.rs`, with the remote control plane it needs.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{HELLO_MANIFEST as MANIFEST, TestServer};
use zerofn_test_artifacts::HELLO;

fn checks(rows: &[zerofn_store::AuditRow], check: &str) -> Vec<serde_json::Value> {
    rows.iter()
        .map(|row| row.event.clone())
        .filter(|event| event["detail"]["check"] == check)
        .collect()
}

#[tokio::test]
async fn every_admission_and_signature_check_is_an_event() {
    let server = TestServer::start().await;
    let key_id = server.key.public().key_id();

    // Refused: unsigned, and over a ceiling.
    let bytes = std::fs::read(HELLO).unwrap();
    let components = std::collections::BTreeMap::from([("hello".to_string(), bytes)]);
    let oversized = MANIFEST.replace(
        "[functions.hello.auth]",
        "[functions.hello.limits]\ntimeout_ms = 999999999\n\n[functions.hello.auth]",
    );
    server
        .deploy_bundle(&oversized, components, vec![])
        .await
        .unwrap_err();
    let verdicts = server.events("admission.verdict").await;
    let refused = &verdicts[0].event;
    assert_eq!(refused["outcome"], "denied", "{refused}");
    assert_eq!(refused["reason"], "refused");
    assert_eq!(refused["app"], "greet");
    assert_eq!(refused["detail"]["manifest"], common::MANIFEST_PATH);
    let refused_by: Vec<&str> = refused["detail"]["refused_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(refused_by.contains(&"unsigned"), "{refused}");
    assert!(
        refused_by.len() >= 2,
        "every refusing rule, once: {refused}"
    );
    assert!(refused["detail"]["findings"]["error"].as_u64().unwrap() >= 2);
    let signatures = server.events("signature.verification").await;
    let unsigned = &signatures[0].event;
    assert_eq!(
        (unsigned["outcome"].as_str(), unsigned["reason"].as_str()),
        (Some("denied"), Some("unsigned")),
        "{unsigned}"
    );
    assert_eq!(unsigned["function"], "hello");
    assert_eq!(unsigned["detail"]["check"], "deploy");
    assert!(
        unsigned["detail"]["message"]
            .as_str()
            .unwrap()
            .contains("zerofn sign")
    );

    // Admitted, twice (two versions).
    server.deploy(MANIFEST, &[("hello", HELLO)]).await;
    let second = MANIFEST.replace("version = \"1.0.0\"", "version = \"1.0.1\"");
    server.deploy(&second, &[("hello", HELLO)]).await;
    let verdicts = server.events("admission.verdict").await;
    assert_eq!(verdicts.len(), 3, "one verdict per deploy");
    let admitted = &verdicts[1].event;
    assert_eq!(admitted["outcome"], "success");
    assert_eq!(admitted["reason"], "admitted");
    assert_eq!(admitted["detail"]["refused_by"], serde_json::json!([]));
    let signatures = server.events("signature.verification").await;
    let deploys = checks(&signatures, "deploy");
    assert_eq!(deploys.len(), 3);
    assert_eq!(deploys[1]["outcome"], "success");
    assert_eq!(deploys[1]["reason"], "verified");
    assert_eq!(deploys[1]["detail"]["key_id"], key_id);
    // The verdict comes after the signature checks and before the deploy.
    let order: Vec<String> = server
        .audit(zerofn_store::AuditQuery {
            app: Some("greet".into()),
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .into_iter()
        .map(|row| row.kind)
        .filter(|kind| {
            ["signature.verification", "admission.verdict", "deploy"].contains(&kind.as_str())
        })
        .collect();
    assert_eq!(
        &order[2..5],
        ["signature.verification", "admission.verdict", "deploy"]
    );

    // Rollback, trust reload and restore check again, each named.
    server
        .server()
        .platform()
        .rollback("greet", None)
        .await
        .unwrap();
    server.server().platform().reload_trust().await.unwrap();
    let dir = server.stop().await;
    let server = TestServer::start_in(dir, |_| {}).await;
    let signatures = server.events("signature.verification").await;
    for check in ["rollback", "trust-reload", "restore"] {
        let found = checks(&signatures, check);
        assert_eq!(found.len(), 1, "{check}: {signatures:?}");
        assert_eq!(found[0]["outcome"], "success");
        assert_eq!(found[0]["detail"]["key_id"], key_id);
        assert!(
            found[0]["version_id"]
                .as_str()
                .unwrap()
                .starts_with("sha256:")
        );
    }

    // A revoked key: the reload's check is denied with the rule, and the version suspended.
    std::fs::write(
        server.dir.path().join("trust.toml"),
        "[[keys]]\nname = \"dev\"\npublic_key = \"dev-signing.pub\"\napps = [\"*\"]\nrevoked = true\n",
    )
    .unwrap();
    server.server().platform().reload_trust().await.unwrap();
    let signatures = server.events("signature.verification").await;
    let revoked = checks(&signatures, "trust-reload");
    let last = revoked.last().unwrap();
    assert_eq!(
        (last["outcome"].as_str(), last["reason"].as_str()),
        (Some("denied"), Some("signer-revoked")),
        "{last}"
    );
    assert_eq!(server.events("version.suspended").await.len(), 1);
}
