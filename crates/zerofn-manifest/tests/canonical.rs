//! The canonical configuration is what a signature covers: it must change with anything that
//! changes what a function may do, and not with formatting.

// Test helpers outside `#[test]` functions report failures by panicking.
#![allow(clippy::unwrap_used)]

use std::path::Path;

const BASE: &str = r#"[app]
name = "shop"
version = "0.1.0"

[functions.checkout]
component = "checkout.wasm"
trigger = { http = { route = "/checkout", methods = ["POST"] } }
limits = { timeout_ms = 2000 }
grants = { egress = ["https://payments.example.com"], kv = { orders = "read" } }
auth = { public = true }
"#;

fn digest(text: &str) -> String {
    let manifest = zerofn_manifest::parse(Path::new("zerofn.toml"), text).unwrap();
    let function = manifest.function("checkout").unwrap();
    manifest.config_digest(function)
}

#[test]
fn formatting_does_not_change_the_digest() {
    let reformatted = BASE
        .replace(
            "limits = { timeout_ms = 2000 }",
            "limits = {timeout_ms=2000}  # two seconds",
        )
        .replace("version = \"0.1.0\"", "version = \"0.2.0\"");
    assert_eq!(digest(BASE), digest(&reformatted));
}

#[test]
fn every_permission_change_changes_the_digest() {
    let base = digest(BASE);
    for (from, to) in [
        ("https://payments.example.com", "https://evil.example.com"),
        ("orders = \"read\"", "orders = \"read-write\""),
        ("methods = [\"POST\"]", "methods = [\"POST\", \"PUT\"]"),
        ("route = \"/checkout\"", "route = \"/checkout/...\""),
        ("timeout_ms = 2000", "timeout_ms = 3000"),
        ("timeout_ms = 2000", "timeout_ms = 2000, caller_burst = 5"),
        (
            "auth = { public = true }",
            "auth = { public = true }\nconfig = { payments_url = \"https://payments.example.com\" }",
        ),
        (
            "auth = { public = true }",
            "auth = { api-key = { header = \"x-key\" } }",
        ),
        (
            "\"https://payments.example.com\"",
            "{ url = \"https://payments.example.com\", allow_private = true }",
        ),
        (
            "\"https://payments.example.com\"",
            "{ url = \"https://payments.example.com\", methods = [\"GET\"] }",
        ),
    ] {
        let changed = BASE.replace(from, to);
        assert_ne!(changed, BASE, "{from}");
        assert_ne!(digest(&changed), base, "changing {from} to {to}");
    }
}

#[test]
fn an_egress_table_that_adds_nothing_is_the_url_alone() {
    let table = BASE.replace(
        "\"https://payments.example.com\"",
        "{ url = \"https://payments.example.com\", allow_private = false }",
    );
    assert_eq!(digest(&table), digest(BASE));
    let methods = |list: &str| {
        digest(&BASE.replace(
            "\"https://payments.example.com\"",
            &format!("{{ url = \"https://payments.example.com\", methods = [{list}] }}"),
        ))
    };
    assert_ne!(methods("\"GET\""), methods("\"GET\", \"POST\""));
}

#[test]
fn the_canonical_form_is_sorted_compact_json() {
    let manifest = zerofn_manifest::parse(Path::new("zerofn.toml"), BASE).unwrap();
    let function = manifest.function("checkout").unwrap();
    let bytes = manifest.canonical_config_bytes(function);
    let text = String::from_utf8(bytes).unwrap();
    assert!(
        text.starts_with(r#"{"app":"shop","auth":{"public":true},"function":"checkout","grants":"#),
        "{text}"
    );
    assert!(!text.contains(' '));
}

#[test]
fn keys_added_later_are_left_out_when_not_written() {
    // Functions signed before rate limits and `config` existed keep their digests.
    let manifest = zerofn_manifest::parse(Path::new("zerofn.toml"), BASE).unwrap();
    let function = manifest.function("checkout").unwrap();
    let text = String::from_utf8(manifest.canonical_config_bytes(function)).unwrap();
    assert!(!text.contains("config"), "{text}");
    assert!(
        !text.contains("burst") && !text.contains("per_second"),
        "{text}"
    );
}

#[test]
fn the_http_trigger_keeps_its_bytes_and_other_kinds_have_their_own() {
    // Signatures made before schedule and queue triggers existed must still verify, so the
    // `http` form is pinned byte for byte.
    let manifest = zerofn_manifest::parse(Path::new("zerofn.toml"), BASE).unwrap();
    let function = manifest.function("checkout").unwrap();
    let text = String::from_utf8(manifest.canonical_config_bytes(function)).unwrap();
    assert!(
        text.contains(r#","trigger":{"http":{"methods":["POST"],"route":"/checkout"}}}"#),
        "{text}"
    );

    let without_auth = BASE.replace("auth = { public = true }\n", "");
    let schedule = without_auth.replace(
        r#"http = { route = "/checkout", methods = ["POST"] }"#,
        r#"schedule = { cron = "0 * * * *" }"#,
    );
    let queue = without_auth.replace(
        r#"http = { route = "/checkout", methods = ["POST"] }"#,
        r#"queue = { name = "orders" }"#,
    );
    let other_queue = queue.replace("\"orders\" }", "\"returns\" }");
    for (text, expected) in [
        (&schedule, r#""trigger":{"schedule":{"cron":"0 * * * *"}}"#),
        (&queue, r#""trigger":{"queue":{"name":"orders"}}"#),
    ] {
        let manifest = zerofn_manifest::parse(Path::new("zerofn.toml"), text).unwrap();
        let function = manifest.function("checkout").unwrap();
        let bytes = String::from_utf8(manifest.canonical_config_bytes(function)).unwrap();
        assert!(bytes.contains(expected), "{bytes}");
    }
    assert_ne!(digest(&queue), digest(&other_queue));
    assert_ne!(digest(&queue), digest(&schedule));
}
