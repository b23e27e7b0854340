//! `zerofn policy suggest` from a recorded stream (`--events`): the binary, its outputs and
//! its exit codes on bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

const ZEROFN: &str = env!("CARGO_BIN_EXE_zerofn");

const MANIFEST: &str = r#"[app]
name = "shop"
version = "1.0.0"

[functions.front]
component = "front.wasm"
trigger = { http = { route = "/", methods = ["GET"] } }
# What front may reach.
grants = { invoke = ["back"], secrets = ["api_key"] }

[functions.front.auth]
public = true

[functions.back]
component = "back.wasm"
trigger = { http = { route = "/back", methods = ["GET"] } }
"#;

/// Front ran twice and called back once; it never read its secret.
const EVENTS: &str = r#"{"schema":"zerofn.audit/v1","kind":"invocation.start","at_ms":1700000000000,"outcome":"success","app":"shop","function":"front","id":1}
{"schema":"zerofn.audit/v1","kind":"authz.decision","at_ms":1700000000100,"outcome":"success","reason":"allowed by grant/shop/front/invoke/back","app":"shop","function":"front","detail":{"action":"invoke","resource":"spiffe://zerofn.local/app/shop/fn/back","policies":["grant/shop/front/invoke/back"]},"id":2}
{"schema":"zerofn.audit/v1","kind":"invocation.start","at_ms":1700000000200,"outcome":"success","app":"shop","function":"back","id":3}
{"schema":"zerofn.audit/v1","kind":"invocation.start","at_ms":1700000001000,"outcome":"success","app":"shop","function":"front","id":4}
"#;

fn suggest(dir: &Path, events: &str, extra: &[&str]) -> Output {
    std::fs::write(dir.join("zerofn.toml"), MANIFEST).unwrap();
    std::fs::write(dir.join("events.jsonl"), events).unwrap();
    Command::new(ZEROFN)
        .current_dir(dir)
        .args(["policy", "suggest", "shop", "--events", "events.jsonl"])
        .args(extra)
        .env("ZEROFN_DATA_DIR", dir.join("data"))
        .output()
        .unwrap()
}

#[test]
fn a_recorded_stream_gives_the_diff_that_drops_what_was_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let out = suggest(
        dir.path(),
        EVENTS,
        &["--manifest", "zerofn.toml", "--format", "diff"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "--- a/zerofn.toml\n+++ b/zerofn.toml\n@@ -6,7 +6,7 @@\n component = \"front.wasm\"\n trigger = { http = { route = \"/\", methods = [\"GET\"] } }\n # What front may reach.\n-grants = { invoke = [\"back\"], secrets = [\"api_key\"] }\n+grants = { invoke = [\"back\"] }\n \n [functions.front.auth]\n public = true\n"
    );

    let out = suggest(dir.path(), EVENTS, &["--manifest", "zerofn.toml"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("front: 2 invocation(s)"), "{text}");
    assert!(
        text.contains("called 1 time(s), last 2023-11-14T22:13:20.100Z"),
        "{text}"
    );
    assert!(
        text.contains("warning[use-grant-unused] (medium)"),
        "{text}"
    );
    assert!(text.contains("--> zerofn.toml:9:"), "{text}");

    let out = suggest(
        dir.path(),
        EVENTS,
        &["--manifest", "zerofn.toml", "--format", "sarif"],
    );
    let sarif: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sarif["runs"][0]["results"][0]["ruleId"], "use-grant-unused");
}

#[test]
fn a_malformed_events_file_is_a_clear_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let broken = format!("{}{{\"kind\": \"egress\", \"at_ms\": \n", EVENTS);
    let out = suggest(dir.path(), &broken, &["--manifest", "zerofn.toml"]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("events.jsonl: line 5"), "{stderr}");

    let out = suggest(dir.path(), EVENTS, &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--events needs --manifest"));

    let out = suggest(
        dir.path(),
        EVENTS,
        &["--manifest", "zerofn.toml", "--since", "a week"],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since `a week` is not a duration"));
}
