//! `policy suggest` never removes what the evidence shows was needed: uses a wildcard alone
//! allowed, private addresses among those a name resolved to, granted reads of unset secrets,
//! and functions whose uses passed the bound on what the usage keeps. And a hostile events file
//! does not panic it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use std::path::Path;
use zerofn_review::suggest::{Suggestion, Verdict, suggest};
use zerofn_review::usage::Usage;

fn manifest(grants: &str) -> zerofn_manifest::Manifest {
    let text = format!(
        r#"[app]
name = "shop"
version = "1.0.0"

[functions.api]
component = "api.wasm"
trigger = {{ http = {{ route = "/", methods = ["GET"] }} }}

[functions.api.grants]
{grants}

[functions.api.auth]
public = true
"#
    );
    zerofn_manifest::parse(Path::new("zerofn.toml"), &text).unwrap()
}

fn event(kind: &str, outcome: &str, detail: Value) -> Value {
    json!({
        "schema": "zerofn.audit/v1", "kind": kind, "at_ms": 1_700_000_000_000i64,
        "outcome": outcome, "app": "shop", "function": "api", "detail": detail,
    })
}

fn egress(destination: &str, extra: Value) -> Value {
    let mut detail = json!({"destination": destination, "method": "GET"});
    if let (Value::Object(detail), Value::Object(extra)) = (&mut detail, extra) {
        detail.extend(extra);
    }
    event("egress", "success", detail)
}

fn run(grants: &str, events: &[Value]) -> Suggestion {
    let mut usage = Usage::new("shop", None);
    usage.record(None, &event("invocation.start", "success", json!({})));
    for e in events {
        usage.record(None, e);
    }
    suggest(&manifest(grants), "zerofn.toml", &usage).unwrap()
}

fn verdicts(suggestion: &Suggestion) -> Vec<(String, Verdict)> {
    suggestion.functions[0]
        .grants
        .iter()
        .map(|g| (g.field.clone(), g.verdict))
        .collect()
}

fn verdict(suggestion: &Suggestion, field: &str) -> Verdict {
    verdicts(suggestion)
        .into_iter()
        .find(|(f, _)| f == field)
        .unwrap_or_else(|| panic!("no {field} in {:?}", verdicts(suggestion)))
        .1
}

#[test]
fn a_use_only_the_wildcard_allowed_keeps_the_wildcard() {
    // The exact grant covers /v1 only; the path is not recorded, so the wildcard may be what
    // allowed the request, and must stay.
    let grants = r#"egress = ["https://api.example.com/v1", "https://*.example.com"]"#;
    let used = [egress(
        "https://api.example.com:443",
        json!({"range": "public"}),
    )];
    let suggestion = run(grants, &used);
    assert_ne!(
        verdict(&suggestion, "functions.api.grants.egress[1]"),
        Verdict::Drop,
        "{}",
        suggestion.diff
    );
    assert_ne!(
        verdict(&suggestion, "functions.api.grants.egress[0]"),
        Verdict::Drop
    );

    // An exact grant for every path did allow it: the unused wildcard goes.
    let grants = r#"egress = ["https://api.example.com", "https://*.example.com"]"#;
    let suggestion = run(grants, &used);
    // Kept, narrowed to the method used.
    assert_eq!(
        verdict(&suggestion, "functions.api.grants.egress[0]"),
        Verdict::Narrow
    );
    assert_eq!(
        verdict(&suggestion, "functions.api.grants.egress[1]"),
        Verdict::Drop
    );
}

#[test]
fn a_private_address_among_those_resolved_keeps_allow_private() {
    let grants = r#"egress = [{ url = "https://internal.example.com", allow_private = true }]"#;
    // Connected to the public address, but the name also resolved to a private one, which the
    // platform decided too: without `allow_private` the request is refused.
    let mixed = egress(
        "https://internal.example.com:443",
        json!({"range": "public", "resolved_non_public": ["rfc1918"]}),
    );
    let suggestion = run(grants, &[mixed]);
    assert!(
        suggestion
            .suggested_manifest
            .contains("allow_private = true"),
        "allow_private was dropped: {}",
        suggestion.diff
    );

    // Every address public: it may go.
    let public = egress(
        "https://internal.example.com:443",
        json!({"range": "public", "resolved_non_public": []}),
    );
    let suggestion = run(grants, &[public]);
    assert!(
        suggestion.diff.contains("allow_private"),
        "{}",
        suggestion.diff
    );
    assert!(
        !suggestion.suggested_manifest.contains("allow_private"),
        "{}",
        suggestion.suggested_manifest
    );
}

#[test]
fn a_granted_read_of_an_unset_secret_is_a_use() {
    let read = event("secret.read", "failure", json!({"name": "optional_token"}));
    let mut read = read;
    read["reason"] = "secret-undefined".into();
    let suggestion = run(r#"secrets = ["optional_token"]"#, &[read]);
    assert_eq!(
        verdict(&suggestion, "functions.api.grants.secrets[0]"),
        Verdict::Keep
    );
    assert!(suggestion.diff.is_empty(), "{}", suggestion.diff);
}

#[test]
fn past_the_bound_on_distinct_uses_nothing_is_dropped_or_narrowed() {
    // 1 001 distinct hosts under the wildcard: the last one is only counted.
    let grants = r#"egress = ["https://*.tenants.example.com"]
secrets = ["unused"]"#;
    let used: Vec<Value> = (0..1_001)
        .map(|n| {
            egress(
                &format!("https://t{n}.tenants.example.com:443"),
                json!({"range": "public"}),
            )
        })
        .collect();
    let suggestion = run(grants, &used);
    assert!(suggestion.diff.is_empty(), "{}", suggestion.diff);
    assert_eq!(
        verdict(&suggestion, "functions.api.grants.secrets[0]"),
        Verdict::Unverified
    );
    assert_eq!(
        verdict(&suggestion, "functions.api.grants.egress[0]"),
        Verdict::Unverified
    );
    assert!(
        suggestion
            .findings
            .iter()
            .any(|f| f.rule == "use-evidence-incomplete"),
        "{:?}",
        suggestion.findings
    );
}

#[test]
fn a_time_past_year_9999_in_an_events_file_is_printed_not_a_panic() {
    let line = r#"{"kind":"secret.read","at_ms":253402300800000,"app":"shop","function":"api","outcome":"success","detail":{"name":"k"}}"#;
    let usage = Usage::from_json_lines("shop", None, line).unwrap();
    let suggestion = suggest(&manifest(r#"secrets = ["k"]"#), "zerofn.toml", &usage).unwrap();
    let text = suggestion.render_text();
    assert!(text.contains("253402300800000"), "{text}");
}
