//! `zerofn lint` on real components (the shop's and the hostile guest, built by
//! zerofn-test-artifacts) and on purpose-built ones whose imports are exactly what a case needs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use wasm_encoder::{ComponentBuilder, ComponentTypeRef, ComponentValType, InstanceType};
use zerofn_admission::{Finding, Severity};
use zerofn_manifest::Manifest;
use zerofn_review::lint::{json, lint_function, render_text, sarif};

const HEAD: &str = r#"[app]
name = "t"
version = "0.1.0"
"#;

fn manifest(functions: &str) -> Manifest {
    let text = format!("{HEAD}{functions}");
    zerofn_manifest::parse(Path::new("app/zerofn.toml"), &text)
        .unwrap_or_else(|d| panic!("test manifest refused: {}", d.render(false)))
}

/// The findings for every function, each reviewed against `component(name)`.
fn review(functions: &str, component: impl Fn(&str) -> Vec<u8>) -> Vec<Finding> {
    let manifest = manifest(functions);
    manifest
        .functions()
        .flat_map(|f| lint_function(&manifest, f, Ok(&component(&f.name))))
        .collect()
}

/// `rule @ field` for each finding, in order.
fn summary(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .map(|f| format!("{} @ {}", f.rule, f.field.as_deref().unwrap_or("-")))
        .collect()
}

fn artifact(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// A component importing each named instance with exactly the named functions (`func()`:
/// the review reads names, not signatures).
fn component(imports: &[(&str, &[&str])]) -> Vec<u8> {
    let mut builder = ComponentBuilder::default();
    for (name, functions) in imports {
        let mut instance = InstanceType::new();
        for (index, function) in functions.iter().enumerate() {
            instance
                .ty()
                .function()
                .params([] as [(&str, ComponentValType); 0])
                .result(None);
            instance.export(*function, ComponentTypeRef::Func(index as u32));
        }
        let ty = builder.type_instance(None, &instance);
        builder.import(*name, ComponentTypeRef::Instance(ty));
    }
    builder.finish()
}

const HTTP_FUNCTION: &str = r#"component = "f.wasm"
trigger = { http = { route = "/f", methods = ["GET"] } }
"#;

#[test]
fn every_grant_of_a_component_that_imports_none_of_them_is_unused() {
    // The shop's catalog imports no outbound HTTP, key-value or configuration.
    let findings = review(
        &format!(
            r#"
[functions.f]
{HTTP_FUNCTION}
[functions.f.grants]
egress = [{{ url = "https://api.example.com/v1", methods = ["GET"] }}]
invoke = ["g"]
kv = {{ orders = "read" }}
secrets = ["token"]

[functions.g]
component = "g.wasm"
trigger = {{ http = {{ route = "/g", methods = ["GET"] }} }}
"#
        ),
        |_| artifact(zerofn_test_artifacts::SHOP_CATALOG),
    );
    assert_eq!(
        summary(&findings),
        [
            "unused-egress-grant @ functions.f.grants.egress[0]",
            "unused-invoke-grant @ functions.f.grants.invoke[0]",
            "unused-kv-grant @ functions.f.grants.kv.orders",
            "unused-secret-grant @ functions.f.grants.secrets[0]",
        ]
    );
    // Each points at the grant as written, with a fix.
    let egress = &findings[0];
    assert_eq!((egress.line, egress.column), (Some(10), Some(11)));
    assert_eq!(
        egress.value.as_deref(),
        Some(r#"{ url = "https://api.example.com/v1", methods = ["GET"] }"#)
    );
    assert_eq!(egress.severity, Some(Severity::Medium));
    assert_eq!(egress.file, "app/zerofn.toml");
    assert!(
        findings
            .iter()
            .all(|f| f.help.is_some() && f.line.is_some())
    );
}

#[test]
fn the_shop_needs_exactly_its_grants() {
    let manifest_path = Path::new(zerofn_test_artifacts::EXAMPLES_DIR).join("shop/zerofn.toml");
    let manifest = zerofn_manifest::load(&manifest_path).unwrap();
    let findings: Vec<Finding> = manifest
        .functions()
        .flat_map(|f| {
            let bytes = artifact(match f.name.as_str() {
                "catalog" => zerofn_test_artifacts::SHOP_CATALOG,
                "checkout" => zerofn_test_artifacts::SHOP_CHECKOUT,
                "inventory" => zerofn_test_artifacts::SHOP_INVENTORY,
                "orders" => zerofn_test_artifacts::SHOP_ORDERS,
                "payments" => zerofn_test_artifacts::SHOP_PAYMENTS,
                other => panic!("unknown shop function {other}"),
            });
            lint_function(&manifest, f, Ok(&bytes))
        })
        .collect();
    // No unused or missing grant: only the deliberate loopback provider is flagged.
    assert_eq!(
        summary(&findings),
        [
            "egress-plain-http @ functions.checkout.grants.egress[0]",
            "egress-allow-private @ functions.checkout.grants.egress[0]",
        ]
    );
}

#[test]
fn read_write_is_over_broad_where_the_imports_only_read_or_only_write() {
    let functions = r#"
[functions.orders]
component = "orders.wasm"
trigger = { http = { route = "/orders", methods = ["GET"] } }
grants = { kv = { orders = "read-write" } }

[functions.checkout]
component = "checkout.wasm"
trigger = { http = { route = "/checkout", methods = ["POST"] } }
config = { payments_url = "https://pay.example.com/charge" }
[functions.checkout.grants]
kv = { orders = "read-write" }
invoke = ["orders"]
secrets = ["payments_key"]
egress = [{ url = "https://pay.example.com/charge", methods = ["POST"] }]
"#;
    let findings = review(functions, |name| {
        artifact(match name {
            // `orders` imports only `[method]bucket.get`; `checkout` only `[method]bucket.set`.
            "orders" => zerofn_test_artifacts::SHOP_ORDERS,
            _ => zerofn_test_artifacts::SHOP_CHECKOUT,
        })
    });
    assert_eq!(
        summary(&findings),
        [
            "kv-access-broader-than-use @ functions.checkout.grants.kv.orders",
            "kv-access-broader-than-use @ functions.orders.grants.kv.orders",
        ]
    );
    assert_eq!(
        findings[0].help.as_deref(),
        Some(r#"grant `orders` = "write""#)
    );
    assert_eq!(
        findings[1].help.as_deref(),
        Some(r#"grant `orders` = "read""#)
    );
}

#[test]
fn an_access_the_imports_cannot_use_is_unused_and_the_one_they_need_is_missing() {
    // `orders` only reads, and is granted only `write`.
    let findings = review(
        r#"
[functions.orders]
component = "orders.wasm"
trigger = { http = { route = "/orders", methods = ["GET"] } }
grants = { kv = { orders = "write" } }
"#,
        |_| artifact(zerofn_test_artifacts::SHOP_ORDERS),
    );
    assert_eq!(
        summary(&findings),
        [
            "unused-kv-grant @ functions.orders.grants.kv.orders",
            "import-without-grant @ functions.orders.component",
        ]
    );
    assert!(findings[1].message.contains("read from a bucket"));
    assert_eq!(findings[1].severity, Some(Severity::High));
}

#[test]
fn imports_without_grants_and_imports_the_platform_refuses() {
    // The hostile guest imports outbound HTTP, key-value reads and writes, `wasi:config`
    // (`get` and `get-all`), sockets and the filesystem; it is granted nothing.
    let findings = review(&format!("\n[functions.f]\n{HTTP_FUNCTION}"), |_| {
        artifact(zerofn_test_artifacts::HOSTILE)
    });
    assert_eq!(
        summary(&findings),
        [
            "import-refused @ functions.f.component",
            "import-refused @ functions.f.component",
            "import-refused @ functions.f.component",
            "import-without-grant @ functions.f.component",
            "import-without-grant @ functions.f.component",
            "import-without-grant @ functions.f.component",
            "import-without-grant @ functions.f.component",
        ]
    );
    let messages: Vec<&str> = findings.iter().map(|f| f.message.as_str()).collect();
    assert!(messages[0].contains("`wasi:sockets/tcp`"), "{messages:?}");
    assert!(
        messages[1].contains("`wasi:filesystem/preopens`"),
        "{messages:?}"
    );
    assert!(messages[2].contains("get-all"), "{messages:?}");
    assert!(messages[3].contains("wasi:http/outgoing-handler"));
    assert!(messages[4].contains("read from"));
    assert!(messages[5].contains("write to"));
    assert!(messages[6].contains("wasi:config/store.get"));
    let component = &findings[3];
    assert_eq!(component.value.as_deref(), Some("\"f.wasm\""));
    assert_eq!(component.line, Some(6));
}

#[test]
fn over_broad_egress_is_reported_entry_by_entry() {
    let findings = review(
        &format!(
            r#"
[functions.f]
{HTTP_FUNCTION}config = {{ a = "b" }}
[functions.f.grants]
kv = {{ cache = "read-write" }}
egress = [
  "http://*.example.com",
  {{ url = "https://api.example.com/v1", methods = ["GET"], allow_private = true }},
  {{ url = "https://exact.example.com/v1/orders", methods = ["POST"] }},
]
"#
        ),
        |_| artifact(zerofn_test_artifacts::HOSTILE),
    );
    let egress: Vec<String> = summary(&findings)
        .into_iter()
        .filter(|s| s.contains("egress"))
        .collect();
    assert_eq!(
        egress,
        [
            "egress-wildcard-host @ functions.f.grants.egress[0]",
            "egress-plain-http @ functions.f.grants.egress[0]",
            "egress-any-method @ functions.f.grants.egress[0]",
            "egress-any-path @ functions.f.grants.egress[0]",
            "egress-allow-private @ functions.f.grants.egress[1]",
        ]
    );
    assert_eq!(
        findings
            .iter()
            .find(|f| f.rule == "egress-wildcard-host")
            .unwrap()
            .line,
        Some(12)
    );
    // Granted what it imports: nothing is missing.
    assert!(!findings.iter().any(|f| f.rule == "import-without-grant"));
}

#[test]
fn imports_the_platform_does_not_link_fail_the_deploy() {
    let bytes = component(&[
        ("wasi:keyvalue/store@0.1.0", &["open"]),
        ("fermyon:spin/variables@2.0.0", &["get"]),
        ("wasi:http/outgoing-handler@0.2.0", &["handle"]),
    ]);
    let findings = review(&format!("\n[functions.f]\n{HTTP_FUNCTION}"), |_| {
        bytes.clone()
    });
    assert_eq!(
        summary(&findings),
        [
            "import-unlinked @ functions.f.component",
            "import-unlinked @ functions.f.component",
            "import-without-grant @ functions.f.component",
        ]
    );
    assert!(findings[0].message.contains("`wasi:keyvalue/store@0.1.0`"));
    assert_eq!(findings[0].severity, Some(Severity::Critical));
    assert!(findings[0].is_error());
}

#[test]
fn capabilities_do_not_depend_on_the_interface_version_or_the_interface_used() {
    // Reads through `batch`, writes through `atomics`, outbound HTTP at an older 0.2 version.
    let bytes = component(&[
        ("wasi:keyvalue/store@0.2.0-draft", &["open"]),
        ("wasi:keyvalue/batch@0.2.0-draft", &["get-many"]),
        ("wasi:keyvalue/atomics@0.2.0-draft", &["increment"]),
        ("wasi:http/outgoing-handler@0.2.3", &["handle"]),
        ("wasi:config/store@0.2.0-rc.1", &["get"]),
    ]);
    let imports = zerofn_review::read_imports(&bytes).unwrap();
    let capabilities = zerofn_review::Capabilities::of(&imports);
    assert!(capabilities.outbound_http && capabilities.kv_read && capabilities.kv_write);
    assert!(capabilities.config_get && capabilities.unlinked.is_empty());
    assert!(capabilities.refused.is_empty());
    let findings = review(
        &format!(
            "\n[functions.f]\n{HTTP_FUNCTION}[functions.f.grants]\nkv = {{ c = \"read-write\" }}\nsecrets = [\"s\"]\negress = [{{ url = \"https://a.example.com/x\", methods = [\"GET\"] }}]\n"
        ),
        |_| bytes.clone(),
    );
    assert_eq!(summary(&findings), Vec::<String>::new());
    // Opening a bucket without any operation on it uses no access at all.
    let open_only = component(&[("wasi:keyvalue/store@0.2.0-draft", &["open"])]);
    let capabilities =
        zerofn_review::Capabilities::of(&zerofn_review::read_imports(&open_only).unwrap());
    assert!(!capabilities.kv());
}

#[test]
fn hostile_and_malformed_component_bytes_are_findings_not_panics() {
    let hostile = artifact(zerofn_test_artifacts::HOSTILE);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("text", b"not wasm at all".to_vec()),
        ("core module", b"\0asm\x01\0\0\0".to_vec()),
        ("truncated", hostile[..hostile.len() / 2].to_vec()),
        ("header only", b"\0asm\x0d\0\x01\0".to_vec()),
        ("garbage after header", {
            let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
            bytes.extend([0xff; 64]);
            bytes
        }),
        ("bad import name", component(&[("not a valid name!", &[])])),
    ];
    for (case, bytes) in cases {
        let findings = review(&format!("\n[functions.f]\n{HTTP_FUNCTION}"), |_| {
            bytes.clone()
        });
        if case == "header only" {
            // A component with nothing in it imports nothing: nothing to report.
            assert!(findings.is_empty(), "{case}: {:?}", summary(&findings));
            continue;
        }
        assert_eq!(
            summary(&findings),
            ["component-unreadable @ functions.f.component"],
            "{case}"
        );
        assert_eq!(findings[0].severity, Some(Severity::Critical), "{case}");
    }
}

#[test]
fn missing_and_unreadable_component_files_are_findings() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("a-directory.wasm")).unwrap();
    let text = format!(
        "{HEAD}\n[functions.f]\ncomponent = \"missing.wasm\"\ntrigger = {{ http = {{ route = \"/f\" }} }}\n\n[functions.g]\ncomponent = \"a-directory.wasm\"\ntrigger = {{ http = {{ route = \"/g\" }} }}\n"
    );
    let path = dir.path().join("zerofn.toml");
    std::fs::write(&path, text).unwrap();
    let manifest = zerofn_manifest::load(&path).unwrap();
    let findings = zerofn_review::lint(&manifest);
    assert_eq!(
        summary(&findings),
        [
            "component-unreadable @ functions.f.component",
            "component-unreadable @ functions.g.component",
        ]
    );
    assert!(
        findings[0].message.contains("does not exist"),
        "{}",
        findings[0].message
    );
    assert!(
        findings[1].message.contains("not a regular file"),
        "{}",
        findings[1].message
    );
}

/// The text, JSON and SARIF outputs of one review that has a finding of every kind the hostile
/// guest can show.
#[test]
fn outputs_are_stable() {
    let findings = review(
        &format!(
            r#"
[functions.f]
{HTTP_FUNCTION}
[functions.f.grants]
kv = {{ cache = "read" }}
egress = ["https://*.example.com"]

[functions.catalog]
component = "catalog.wasm"
trigger = {{ http = {{ route = "/catalog", methods = ["GET"] }} }}
grants = {{ secrets = ["token"] }}
"#
        ),
        |name| {
            artifact(match name {
                "catalog" => zerofn_test_artifacts::SHOP_CATALOG,
                _ => zerofn_test_artifacts::HOSTILE,
            })
        },
    );
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let mut failures = Vec::new();
    let text = render_text(&findings, Severity::High) + "\n";
    let json =
        serde_json::to_string_pretty(&sorted(json(&findings, Severity::High))).unwrap() + "\n";
    let sarif = serde_json::to_string_pretty(&sorted(sarif(&findings))).unwrap() + "\n";
    for (file, actual) in [
        ("lint.txt", text),
        ("lint.json", json),
        ("lint.sarif.json", sarif),
    ] {
        if let Err(e) = snapshot(&dir.join(file), &actual) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `value` with every object's keys in order, whether or not another crate of the build turns
/// on serde_json's `preserve_order`.
fn sorted(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let entries: std::collections::BTreeMap<String, serde_json::Value> =
                map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            serde_json::Value::Object(entries.into_iter().collect())
        }
        serde_json::Value::Array(items) => items.into_iter().map(sorted).collect(),
        other => other,
    }
}

/// Compares `actual` with the file at `expected`, or rewrites it when `ZEROFN_BLESS=1`.
fn snapshot(expected: &Path, actual: &str) -> Result<(), String> {
    if std::env::var_os("ZEROFN_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(expected.parent().unwrap()).unwrap();
        std::fs::write(expected, actual).map_err(|e| format!("{}: {e}", expected.display()))?;
        return Ok(());
    }
    match std::fs::read_to_string(expected) {
        Ok(text) if text == actual => Ok(()),
        Ok(text) => Err(format!(
            "{} differs (rerun with ZEROFN_BLESS=1 to accept):\n--- expected\n{text}\n--- actual\n{actual}",
            expected.display()
        )),
        Err(_) => Err(format!(
            "{} is missing (rerun with ZEROFN_BLESS=1 to create it); actual:\n{actual}",
            expected.display()
        )),
    }
}
