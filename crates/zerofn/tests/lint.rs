//! `zerofn lint` as CI runs it: the binary on an app directory, its outputs and exit codes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

const ZEROFN: &str = env!("CARGO_BIN_EXE_zerofn");

fn lint(app: &Path, args: &[&str]) -> Output {
    Command::new(ZEROFN)
        .arg("lint")
        .arg(app)
        .args(args)
        .env_remove("ZEROFN_LOG")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// An app with one function running the hostile guest, granted `grants`.
fn app(grants: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(zerofn_test_artifacts::HOSTILE, dir.path().join("f.wasm")).unwrap();
    std::fs::write(
        dir.path().join("zerofn.toml"),
        format!(
            "[app]\nname = \"t\"\nversion = \"0.1.0\"\n\n[functions.f]\ncomponent = \"f.wasm\"\ntrigger = {{ http = {{ route = \"/f\" }} }}\n{grants}"
        ),
    )
    .unwrap();
    dir
}

#[test]
fn exits_3_at_or_above_the_chosen_severity_and_0_below() {
    // No grants: the hostile guest's imports without grants are `high`.
    let dir = app("");
    let default = lint(dir.path(), &[]);
    assert_eq!(default.status.code(), Some(3), "{}", stdout(&default));
    assert!(stdout(&default).contains("warning[import-without-grant] (high)"));
    assert!(stdout(&default).contains("failed: 4 at or above `high`"));
    let critical = lint(dir.path(), &["--fail-on", "critical"]);
    assert_eq!(critical.status.code(), Some(0), "{}", stdout(&critical));
    assert!(stdout(&critical).contains("passed: none at or above `critical`"));
    let low = lint(dir.path(), &["--fail-on", "LOW"]);
    assert_eq!(low.status.code(), Some(3));
}

#[test]
fn granted_what_it_imports_it_passes_the_default() {
    let dir = app(
        "config = { a = \"b\" }\n[functions.f.grants]\nkv = { cache = \"read-write\" }\negress = [{ url = \"https://api.example.com/v1\", methods = [\"GET\"] }]\n",
    );
    let output = lint(dir.path(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    // What remains are the imports the platform refuses, at `low`.
    assert!(
        stdout(&output).contains("3 finding(s): 3 low"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn json_and_sarif_are_documents_on_stdout() {
    let dir = app("");
    let json = lint(dir.path(), &["--format", "json"]);
    assert_eq!(json.status.code(), Some(3));
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["fail_on"], "high");
    assert_eq!(value["failing"], 4);
    assert_eq!(value["findings"][0]["rule"], "import-refused");
    let sarif = lint(dir.path(), &["--format", "sarif", "--fail-on", "critical"]);
    assert_eq!(sarif.status.code(), Some(0));
    let value: serde_json::Value = serde_json::from_slice(&sarif.stdout).unwrap();
    assert_eq!(value["version"], "2.1.0");
    let rules = value["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap();
    assert!(rules.iter().any(
        |r| r["id"] == "import-without-grant" && r["properties"]["security-severity"] == "7.5"
    ));
}

#[test]
fn bad_input_is_a_clear_error_never_a_panic() {
    // No manifest.
    let empty = tempfile::tempdir().unwrap();
    let output = lint(empty.path(), &[]);
    assert_eq!(output.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&output.stderr).contains("manifest not found"));
    // A manifest that does not parse.
    std::fs::write(empty.path().join("zerofn.toml"), "[app\nname = ").unwrap();
    let output = lint(empty.path(), &[]);
    assert_eq!(output.status.code(), Some(3));
    assert!(!String::from_utf8_lossy(&output.stderr).contains("panicked"));
    // A component that is not one.
    let dir = app("");
    std::fs::write(dir.path().join("f.wasm"), b"\0asm\x0d\0\x01\0\xff\xff").unwrap();
    let output = lint(dir.path(), &["--fail-on", "critical"]);
    assert_eq!(output.status.code(), Some(3));
    assert!(stdout(&output).contains("error[component-unreadable] (critical)"));
    // An unknown severity is a usage error.
    let output = lint(dir.path(), &["--fail-on", "severe"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown severity `severe`"));
}
