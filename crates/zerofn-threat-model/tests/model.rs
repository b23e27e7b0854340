//! The threat model of the shop example and of a purpose-built app, through the crate's
//! public API on real manifests: entry points, boundaries, the expected STRIDE threats, the
//! guardrails, and snapshots of every rendering.

// Test helpers outside `#[test]` functions report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use zerofn_admission::Severity;
use zerofn_threat_model::{Deployment, RULES, Signer, Status, ThreatModel, build, render};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn cases() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases")
}

fn manifest(path: &Path) -> zerofn_manifest::Manifest {
    zerofn_manifest::load(&path.join("zerofn.toml")).unwrap()
}

/// What `zerofn up` gives the shop: the data directory's development key, plain HTTP, no
/// guardrails.
fn up_deployment() -> Deployment {
    Deployment {
        signers: vec![Signer {
            name: "development (this data directory only)".into(),
            development: true,
        }],
        listener_tls: false,
        guardrails: zerofn_policy::Guardrails::none(),
    }
}

fn shop(deployment: &Deployment) -> ThreatModel {
    build(&manifest(&root().join("examples/shop")), deployment).unwrap()
}

/// Checks that each `(id, status, severity)` is in the model, listing every mismatch.
fn expect_threats(model: &ThreatModel, expected: &[(&str, Status, Severity)]) {
    let mut problems = Vec::new();
    for (id, status, severity) in expected {
        match model.threat(id) {
            None => problems.push(format!("{id}: missing")),
            Some(t) if t.status != *status || t.severity != *severity => problems.push(format!(
                "{id}: expected {status:?} {severity}, got {:?} {} ({})",
                t.status, t.severity, t.control
            )),
            Some(_) => {}
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn shop_lists_its_entry_points_boundaries_and_flows() {
    let model = shop(&up_deployment());
    let entries: Vec<(String, String, &str, Option<String>)> = model
        .entry_points
        .iter()
        .map(|e| {
            (
                e.function.clone(),
                e.describe.clone(),
                e.auth,
                e.input_schema.clone(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("catalog", "GET /catalog/...", None),
            ("checkout", "POST /checkout", Some("schemas/order.json")),
            ("inventory", "GET /inventory", None),
            ("orders", "GET /orders/...", None),
            (
                "payments",
                "POST /payments/charge",
                Some("schemas/charge.json")
            ),
        ]
        .map(|(f, d, schema)| {
            (
                f.to_string(),
                d.to_string(),
                "public",
                schema.map(str::to_string),
            )
        })
    );

    let boundaries: Vec<(&str, Option<&str>)> = model
        .boundaries
        .iter()
        .map(|b| (b.id.as_str(), b.parent.as_deref()))
        .collect();
    assert_eq!(
        boundaries,
        [
            ("internet", None),
            ("operators", None),
            ("node", None),
            ("sandbox.catalog", Some("node")),
            ("sandbox.checkout", Some("node")),
            ("sandbox.inventory", Some("node")),
            ("sandbox.orders", Some("node")),
            ("sandbox.payments", Some("node")),
            ("private-network", None),
        ]
    );

    let crossing = |id: &str| {
        model
            .flow(id)
            .unwrap_or_else(|| panic!("no flow {id}"))
            .crosses
            .clone()
            .map(|(a, b)| format!("{a} -> {b}"))
    };
    assert_eq!(
        crossing("request.checkout").unwrap(),
        "internet -> sandbox.checkout"
    );
    assert_eq!(
        crossing("invoke.checkout.inventory").unwrap(),
        "sandbox.checkout -> sandbox.inventory"
    );
    assert_eq!(
        crossing("kv-write.checkout.orders").unwrap(),
        "sandbox.checkout -> node"
    );
    assert_eq!(
        crossing("kv-read.orders.orders").unwrap(),
        "node -> sandbox.orders"
    );
    assert_eq!(
        crossing("secret-read.payments.payments_key").unwrap(),
        "node -> sandbox.payments"
    );
    assert_eq!(
        crossing("egress.checkout.0").unwrap(),
        "sandbox.checkout -> private-network"
    );
    // What the shop does not declare is not in its model.
    assert!(model.flow("kv-read.checkout.orders").is_none());
    assert!(model.flow("kv-write.orders.orders").is_none());
    assert!(model.element("scheduler").is_none());
}

#[test]
fn shop_has_the_expected_stride_threats() {
    use Severity::*;
    use Status::*;
    let model = shop(&up_deployment());
    expect_threats(
        &model,
        &[
            // Public POST routes, each body checked against its schema before the code runs.
            ("input-tampering@request.checkout", Control, Info),
            ("input-tampering@request.payments", Control, Info),
            ("input-tampering@request.catalog", Control, Low),
            // Public routes: worse where the function holds grants.
            ("caller-spoofing@request.checkout", Gap, Medium),
            ("caller-spoofing@request.orders", Gap, Medium),
            ("caller-spoofing@request.catalog", Gap, Low),
            ("caller-repudiation@request.checkout", Gap, Low),
            ("listener-eavesdropping@request.orders", Gap, Medium),
            ("entry-flooding@request.checkout", Control, Low),
            // Checkout sends its payment key over plain http to loopback.
            ("destination-spoofing@egress.checkout.0", Gap, High),
            ("egress-in-clear@egress.checkout.0", Gap, High),
            ("private-network-reach@egress.checkout.0", Gap, Medium),
            ("broad-egress@egress.checkout.0", Control, Info),
            ("secret-exfiltration@fn.checkout", Control, Low),
            ("secret-exfiltration@fn.payments", Control, Low),
            ("capability-misuse@egress.checkout.0", Control, Info),
            // Orders are written from checked bodies, and read back by a public route.
            ("stored-data-tampering@kv.orders", Control, Info),
            ("stored-data-disclosure@kv.orders", Gap, Medium),
            ("store-exhaustion@kv.orders", Control, Info),
            ("secret-disclosure@secret.payments_key", Control, Info),
            // Inventory holds nothing checkout lacks.
            ("confused-deputy@invoke.checkout.inventory", Control, Low),
            ("call-spoofing@invoke.checkout.inventory", Control, Info),
            ("sandbox-escape@fn.orders", Control, Info),
            ("code-tampering@fn.orders", Control, Info),
            ("audit-tampering@audit-log", Control, Info),
            // Only the development key signs it.
            ("signer-spoofing@deploy", Gap, Medium),
        ],
    );
    // A GET-only function with no grants reads no secret: no exfiltration threat to list.
    assert!(model.threat("secret-exfiltration@fn.catalog").is_none());

    let mut ids: Vec<&str> = model.threats.iter().map(|t| t.id.as_str()).collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "threat ids are unique");
    for threat in &model.threats {
        assert!(RULES.iter().any(|r| r.id == threat.rule), "{}", threat.id);
        assert!(
            model.element(&threat.element).is_some() || model.flow(&threat.element).is_some(),
            "{} names no element or flow",
            threat.id
        );
        assert_eq!(
            threat.status == Status::Gap,
            threat.fix.is_some(),
            "{}",
            threat.id
        );
    }
    // Findings about manifest fields carry the line the field is written on.
    let spoofing = model.threat("caller-spoofing@request.checkout").unwrap();
    assert_eq!(spoofing.field.as_deref(), Some("functions.checkout.auth"));
    let text = std::fs::read_to_string(root().join("examples/shop/zerofn.toml")).unwrap();
    let line = text
        .lines()
        .position(|l| l.trim() == "[functions.checkout.auth]")
        .unwrap()
        + 1;
    assert_eq!(spoofing.line, Some(line));
}

#[test]
fn the_deployment_context_changes_the_answers() {
    let deployment = Deployment {
        signers: vec![Signer {
            name: "release".into(),
            development: false,
        }],
        listener_tls: true,
        guardrails: zerofn_policy::Guardrails::none(),
    };
    let model = shop(&deployment);
    expect_threats(
        &model,
        &[
            ("signer-spoofing@deploy", Status::Control, Severity::Info),
            (
                "listener-eavesdropping@request.orders",
                Status::Control,
                Severity::Info,
            ),
        ],
    );
    let both = Deployment {
        signers: vec![
            Signer {
                name: "release".into(),
                development: false,
            },
            up_deployment().signers[0].clone(),
        ],
        ..Deployment::default()
    };
    expect_threats(
        &shop(&both),
        &[("signer-spoofing@deploy", Status::Gap, Severity::Low)],
    );
    expect_threats(
        &shop(&Deployment::default()),
        &[("signer-spoofing@deploy", Status::Control, Severity::Info)],
    );
}

fn wide() -> ThreatModel {
    let dir = cases().join("wide");
    let guardrails = zerofn_policy::Guardrails::load(&[dir.join("guardrails")]).unwrap();
    let deployment = Deployment {
        guardrails,
        ..up_deployment()
    };
    build(&manifest(&dir), &deployment).unwrap()
}

#[test]
fn a_purpose_built_app_shows_each_control_and_gap() {
    use Severity::*;
    use Status::*;
    let model = wide();
    expect_threats(
        &model,
        &[
            // A secret next to a wildcard destination.
            ("secret-exfiltration@fn.mailer", Gap, High),
            ("broad-egress@egress.mailer.0", Gap, High),
            ("broad-egress@egress.mailer.1", Control, Info),
            ("destination-spoofing@egress.mailer.0", Control, Info),
            // Any method, any path, one host.
            ("broad-egress@egress.partner.0", Gap, Low),
            // Api calls mailer, which holds a secret and egress api lacks.
            ("confused-deputy@invoke.api.mailer", Gap, Medium),
            // Authenticated entries; credentials over a plain listener.
            ("caller-spoofing@request.api", Control, Info),
            ("caller-spoofing@request.mailer", Control, Info),
            ("caller-spoofing@request.partner", Control, Info),
            ("caller-repudiation@request.api", Control, Info),
            ("listener-eavesdropping@request.api", Gap, High),
            ("listener-eavesdropping@request.mailer", Gap, High),
            ("listener-eavesdropping@request.partner", Control, Info),
            // Schemas, and a POST route and a queue without one.
            ("input-tampering@request.api", Control, Info),
            ("input-tampering@request.partner", Control, Info),
            ("input-tampering@request.mailer", Gap, Medium),
            ("input-tampering@queue.fulfil", Gap, Medium),
            ("caller-spoofing@queue.fulfil", Control, Info),
            ("store-exhaustion@queue.orders", Control, Info),
            // The platform is a schedule's only caller.
            ("caller-spoofing@schedule.nightly", Control, Info),
            ("entry-flooding@schedule.nightly", Control, Info),
            // Plain http to a private address, from a function without secrets.
            ("egress-in-clear@egress.nightly.0", Gap, Medium),
            ("private-network-reach@egress.nightly.0", Gap, Medium),
            ("private-network-reach@egress.mailer.0", Control, Info),
            // The bucket's writers take checked or non-public input.
            ("stored-data-tampering@kv.accounts", Control, Info),
            ("stored-data-disclosure@kv.accounts", Control, Info),
        ],
    );
    let entries: Vec<(&str, &str, &str, bool)> = model
        .entry_points
        .iter()
        .map(|e| {
            (
                e.function.as_str(),
                e.trigger,
                e.auth,
                e.input_schema.is_some(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("api", "http", "jwt", true),
            ("fulfil", "queue", "platform", false),
            ("mailer", "http", "api-key", false),
            ("nightly", "schedule", "platform", false),
            ("partner", "http", "mtls", true),
        ]
    );
    assert!(model.element("scheduler").is_some());
    assert_eq!(
        model.flow("queue.fulfil").unwrap().from,
        "queue.orders",
        "a queue delivery comes from the queue"
    );
}

#[test]
fn a_guardrail_that_forbids_a_declared_flow_is_named() {
    let model = wide();
    assert_eq!(model.guardrails, ["no-partner-egress"]);
    assert_eq!(
        model.flow("egress.partner.0").unwrap().forbidden_by,
        ["no-partner-egress"]
    );
    // Only the flow it matches.
    assert!(
        model
            .flow("egress.mailer.1")
            .unwrap()
            .forbidden_by
            .is_empty()
    );
    let misuse = model.threat("capability-misuse@egress.partner.0").unwrap();
    assert!(
        misuse.control.contains("`no-partner-egress`"),
        "{}",
        misuse.control
    );
    let allowed = model.threat("capability-misuse@egress.mailer.1").unwrap();
    assert!(
        allowed.control.contains("guardrails (`no-partner-egress`)"),
        "{}",
        allowed.control
    );
}

#[test]
fn every_rendering_is_stable() {
    let model = wide();
    let snapshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let mut problems = Vec::new();
    for (file, text) in [
        ("wide.md", render::markdown(&model)),
        ("wide.json", render::json(&model)),
        ("wide.mmd", render::mermaid(&model)),
        ("wide.dot", render::dot(&model)),
    ] {
        if let Err(e) = common::snapshot(&snapshots.join(file), &text) {
            problems.push(e);
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    // The same inputs give the same bytes.
    assert_eq!(render::json(&wide()), render::json(&model));
}

#[test]
fn the_json_is_the_whole_model() {
    let model = wide();
    let json: serde_json::Value = serde_json::from_str(&render::json(&model)).unwrap();
    assert_eq!(json["schema"], "zerofn.threat-model/v1");
    assert_eq!(json["app"], "wide");
    assert_eq!(
        json["threats"].as_array().unwrap().len(),
        model.threats.len()
    );
    let threat = json["threats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "secret-exfiltration@fn.mailer")
        .unwrap();
    assert_eq!(threat["category"], "information-disclosure");
    assert_eq!(threat["severity"], "high");
    assert_eq!(threat["status"], "gap");
    assert_eq!(threat["field"], "functions.mailer.grants.egress");
}

#[test]
fn every_rule_is_documented() {
    let doc = std::fs::read_to_string(root().join("docs/threat-model.md")).unwrap();
    let missing: Vec<&str> = RULES
        .iter()
        .map(|r| r.id)
        .filter(|id| !doc.contains(&format!("| `{id}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "not in docs/threat-model.md: {missing:?}"
    );
}

#[test]
fn a_destination_shared_with_allow_private_is_on_the_private_network_for_every_function() {
    let text = r#"[app]
name = "pair"
version = "1.0.0"

[functions.a]
component = "a.wasm"
trigger = { http = { route = "/a" } }
grants = { egress = ["https://x.corp.example.com"] }
auth = { public = true }

[functions.b]
component = "b.wasm"
trigger = { http = { route = "/b" } }
grants = { egress = [{ url = "https://x.corp.example.com", allow_private = true }] }
auth = { public = true }
"#;
    let manifest = zerofn_manifest::parse(Path::new("zerofn.toml"), text).unwrap();
    let model = build(&manifest, &up_deployment()).unwrap();
    let destinations: Vec<&str> = model
        .elements
        .iter()
        .filter(|e| e.id.starts_with("dest."))
        .map(|e| e.boundary.as_str())
        .collect();
    // One element, whichever function's grant came first.
    assert_eq!(destinations, ["private-network"]);
}
