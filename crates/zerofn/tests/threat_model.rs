//! `zerofn threat-model` end to end: the real binary on the shop example, with a data
//! directory as `zerofn up` leaves it. The shop's model checked into `docs/threat-models/` is
//! regenerated here and compared (`ZEROFN_BLESS=1` rewrites it).

// Test helpers outside `#[test]` functions report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ZEROFN: &str = env!("CARGO_BIN_EXE_zerofn");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn zerofn(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(ZEROFN)
        .args(args)
        .env("ZEROFN_DATA_DIR", data_dir)
        .output()
        .unwrap()
}

/// A data directory holding a development key pair, as `zerofn up` creates it.
fn data_dir_with_dev_key() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("dev-signing");
    let out = zerofn(
        dir.path(),
        &[
            "keygen",
            "--no-passphrase",
            "--output",
            prefix.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("dev-signing.pub").exists());
    dir
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn the_shops_model_in_docs_is_current() {
    let data = data_dir_with_dev_key();
    let shop = root().join("examples/shop");
    let bless = std::env::var_os("ZEROFN_BLESS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (format, file) in [
        ("markdown", "shop.md"),
        ("json", "shop.json"),
        ("dot", "shop.dot"),
    ] {
        let out = zerofn(
            data.path(),
            &["threat-model", shop.to_str().unwrap(), "--format", format],
        );
        assert!(
            out.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = root().join("docs/threat-models").join(file);
        let actual = stdout(&out);
        if bless {
            std::fs::write(&path, &actual).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(actual.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "out of date (run `ZEROFN_BLESS=1 cargo test -p zerofn --test threat_model` and review the diff): {stale:?}"
    );
    // The checked-in report says what the shop's reviewers must know.
    let report = std::fs::read_to_string(root().join("docs/threat-models/shop.md")).unwrap();
    for expected in [
        "| `checkout` | `POST /checkout` | public | `schemas/order.json` | `request.checkout` |",
        "`caller-spoofing@request.checkout`",
        "`egress-in-clear@egress.checkout.0`",
        "`stored-data-disclosure@kv.orders`",
        "`signer-spoofing@deploy`",
        "- Keys that may sign the app: `development (this data directory only)`",
        "```mermaid",
    ] {
        assert!(report.contains(expected), "shop.md lacks {expected}");
    }
}

#[test]
fn the_config_brings_tls_and_guardrails() {
    let data = tempfile::tempdir().unwrap();
    let config_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(config_dir.path().join("guardrails")).unwrap();
    std::fs::write(
        config_dir.path().join("guardrails/no-plain-http.cedar"),
        "@id(\"no-plain-http\")\nforbid(principal, action == Action::\"egress\", resource)\nwhen { context.destination.scheme == \"http\" };\n",
    )
    .unwrap();
    let config = config_dir.path().join("zerofn.config.toml");
    std::fs::write(
        &config,
        "[server]\ntls = \"builtin\"\n\n[policy]\nguardrails = [\"guardrails\"]\n",
    )
    .unwrap();
    let shop = root().join("examples/shop");
    let out = zerofn(
        data.path(),
        &[
            "threat-model",
            shop.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let model: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(model["listener_tls"], true);
    assert_eq!(model["guardrails"], serde_json::json!(["no-plain-http"]));
    // No development key in this data directory and no trust policy: nothing may sign it.
    assert_eq!(model["signers"], serde_json::json!([]));
    let flow = model["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "egress.checkout.0")
        .unwrap();
    assert_eq!(flow["forbidden_by"], serde_json::json!(["no-plain-http"]));
    let threat = |id: &str| {
        model["threats"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no threat {id}"))
    };
    assert_eq!(
        threat("listener-eavesdropping@request.checkout")["status"],
        "control"
    );
    assert_eq!(threat("signer-spoofing@deploy")["status"], "control");
}

#[test]
fn fail_on_exits_3_at_or_above_the_severity() {
    let data = data_dir_with_dev_key();
    let shop = root().join("examples/shop");
    let shop = shop.to_str().unwrap();
    let high = zerofn(
        data.path(),
        &[
            "threat-model",
            shop,
            "--format",
            "json",
            "--fail-on",
            "high",
        ],
    );
    assert_eq!(high.status.code(), Some(3));
    // The model is still written, in the format asked for.
    let model: serde_json::Value = serde_json::from_str(&stdout(&high)).unwrap();
    assert_eq!(model["app"], "shop");
    assert!(String::from_utf8_lossy(&high.stderr).contains("gap(s) of severity high or more"));

    // The global `--json` picks the JSON format.
    let critical = zerofn(
        data.path(),
        &["--json", "threat-model", shop, "--fail-on", "critical"],
    );
    assert_eq!(critical.status.code(), Some(0));
    let model: serde_json::Value = serde_json::from_str(&stdout(&critical)).unwrap();
    assert_eq!(model["schema"], "zerofn.threat-model/v1");

    let unknown = zerofn(data.path(), &["threat-model", shop, "--fail-on", "severe"]);
    // A usage error, as for `zerofn lint`: clap names the flag and the accepted values.
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown severity `severe`"));
}

#[test]
fn a_malformed_or_missing_manifest_is_a_clear_error() {
    let data = tempfile::tempdir().unwrap();
    let app = tempfile::tempdir().unwrap();
    std::fs::write(
        app.path().join("zerofn.toml"),
        "[app]\nname = \"broken\"\nversion = \"0.1.0\"\n\n[functions.f\ncomponent = \"f.wasm\"\n",
    )
    .unwrap();
    let out = zerofn(data.path(), &["threat-model", app.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("toml-syntax"), "{stderr}");
    assert!(stderr.contains("zerofn.toml:5"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.stdout.is_empty());

    let empty = tempfile::tempdir().unwrap();
    let out = zerofn(
        data.path(),
        &["threat-model", empty.path().to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("manifest-not-found"), "{stderr}");
}

#[test]
fn svg_without_graphviz_names_graphviz() {
    let data = tempfile::tempdir().unwrap();
    let empty_path = tempfile::tempdir().unwrap();
    let shop = root().join("examples/shop");
    let out = Command::new(ZEROFN)
        .args(["threat-model", shop.to_str().unwrap(), "--format", "svg"])
        .env("ZEROFN_DATA_DIR", data.path())
        .env("PATH", empty_path.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SVG needs Graphviz"), "{stderr}");
    assert!(stderr.contains("--format dot"), "{stderr}");
    assert!(out.stdout.is_empty());
}

/// Where Graphviz is installed (not on CI machines), the SVG is rendered from the DOT; this
/// also checks that the DOT is valid Graphviz input.
#[test]
fn svg_with_graphviz_is_rendered() {
    let has_dot = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("dot").is_file()));
    if !has_dot {
        eprintln!("Graphviz is not installed: svg_with_graphviz_is_rendered checks nothing here");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let file = out_dir.path().join("shop.svg");
    let shop = root().join("examples/shop");
    let out = zerofn(
        data.path(),
        &[
            "threat-model",
            shop.to_str().unwrap(),
            "--format",
            "svg",
            "--output",
            file.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = std::fs::read_to_string(&file).unwrap();
    assert!(svg.contains("<svg"), "{svg}");
    assert!(svg.contains("checkout"), "{svg}");
}
