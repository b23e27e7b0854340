//! Deploy-time checks and the parsed model, against manifests written to a scratch directory
//! (component files are created or left out per test). Rendered diagnostics are compared with
//! `snapshots/deploy-<name>.stderr`, with the scratch directory shown as `$DIR`.

// Test helpers outside `#[test]` functions: a panic is how they report a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use zerofn_manifest::{
    Auth, Deployable, Diagnostics, HttpMethod, KvAccess, LimitPolicy, LimitPolicyConfig, Severity,
};

const EXAMPLE: &str = include_str!("cases/ok-full-example.toml");

/// Writes `text` as `zerofn.toml` in a fresh directory named `name`, plus empty `files`.
fn app(name: &str, text: &str, files: &[&str]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("zerofn-manifest")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for file in files {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"\0asm").unwrap();
    }
    let manifest = dir.join("zerofn.toml");
    std::fs::write(&manifest, text).unwrap();
    manifest
}

fn deploy(
    name: &str,
    text: &str,
    files: &[&str],
    policy: &LimitPolicy,
) -> Result<Deployable, Diagnostics> {
    let manifest = zerofn_manifest::load(&app(name, text, files)).unwrap();
    manifest.check_deployable(policy)
}

/// Compares rendered diagnostics with their snapshot and checks `(code, line, column)`.
fn assert_diagnostics(
    name: &str,
    diagnostics: &Diagnostics,
    expected: &[(Severity, &str, usize, usize)],
) {
    let actual: Vec<_> = diagnostics
        .iter()
        .map(|d| {
            let l = d.location.as_ref().unwrap();
            (d.severity, d.code, l.line, l.column)
        })
        .collect();
    assert_eq!(actual, expected);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("zerofn-manifest")
        .join(name);
    let rendered = diagnostics
        .render(false)
        .replace(&dir.display().to_string(), "$DIR");
    let snapshot =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/snapshots/deploy-{name}.stderr"));
    if let Err(diff) = common::snapshot(&snapshot, &rendered) {
        panic!("{diff}");
    }
}

#[test]
fn full_example_parses_every_field_and_deploys_with_warnings() {
    let files = [
        "checkout/target/wasm32-wasip2/release/checkout.wasm",
        "inventory.wasm",
    ];
    let path = app("full-example", EXAMPLE, &files);
    let manifest = zerofn_manifest::load(&path).unwrap();
    let dir = path.parent().unwrap();

    assert_eq!(manifest.app_name(), "shop");
    assert_eq!(manifest.app_version(), "0.1.0");
    assert_eq!(manifest.dir(), dir);
    assert_eq!(manifest.path(), path);
    assert_eq!(manifest.source(), EXAMPLE);
    let names: Vec<&str> = manifest.functions().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["checkout", "inventory"], "sorted by name");

    let checkout = manifest.function("checkout").unwrap();
    assert_eq!(
        checkout.component,
        "checkout/target/wasm32-wasip2/release/checkout.wasm"
    );
    assert_eq!(checkout.component_path, dir.join(&checkout.component));
    let build = checkout.build.as_ref().unwrap();
    assert_eq!(
        build.command,
        "cargo build --release --target wasm32-wasip2"
    );
    assert_eq!(build.workdir, dir.join("checkout"));
    let (route, methods) = checkout.http().unwrap();
    assert_eq!(route.to_string(), "/checkout");
    assert!(!route.is_prefix());
    assert_eq!(methods, [HttpMethod::Post]);
    assert_eq!(checkout.limits.timeout_ms, Some(2000));
    assert_eq!(checkout.limits.memory_mb, Some(64));
    assert_eq!(checkout.limits.max_concurrency, Some(64));
    assert_eq!(checkout.limits.max_request_body_bytes, Some(1_048_576));
    assert_eq!(checkout.limits.max_response_body_bytes, Some(8_388_608));
    let egress = &checkout.grants.egress;
    assert_eq!(egress.len(), 2);
    assert_eq!(
        (egress[0].scheme.as_str(), egress[0].host.as_str()),
        ("https", "payments.example.com")
    );
    assert_eq!(
        (
            egress[0].port,
            egress[0].path_prefix.as_str(),
            egress[0].any_subdomain
        ),
        (None, "/", false)
    );
    assert_eq!(
        (egress[1].host.as_str(), egress[1].any_subdomain),
        ("cdn.example.com", true)
    );
    assert_eq!(
        (egress[1].port, egress[1].path_prefix.as_str()),
        (Some(8443), "/assets")
    );
    assert_eq!(
        egress[1].to_string(),
        "https://*.cdn.example.com:8443/assets"
    );
    assert_eq!(checkout.grants.secrets, ["payments_key"]);
    assert_eq!(checkout.grants.kv.get("orders"), Some(&KvAccess::ReadWrite));
    assert_eq!(checkout.grants.invoke, ["inventory"]);
    assert_eq!(checkout.auth, Some(Auth::Public));
    assert_eq!(checkout.input, None);

    let inventory = manifest.function("inventory").unwrap();
    let (route, methods) = inventory.http().unwrap();
    assert_eq!(
        methods,
        [HttpMethod::Get, HttpMethod::Head],
        "default methods"
    );
    assert!(route.matches("/inventory/42"));
    assert!(inventory.grants.is_empty());
    assert_eq!(inventory.auth, Some(Auth::Public));

    // The example grants a `*.` egress destination: it deploys, flagged for review.
    let policy = LimitPolicy::default();
    let deployable = manifest.check_deployable(&policy).unwrap();
    assert_eq!(deployable.functions.len(), 2);
    let checkout = &deployable.functions[0];
    assert_eq!(checkout.name, "checkout");
    assert_eq!(checkout.limits.timeout_ms, 2000);
    assert_eq!(checkout.limits.max_concurrency, 64);
    let inventory = &deployable.functions[1];
    assert_eq!(
        inventory.limits, policy.defaults,
        "unset limits take the defaults"
    );
    assert!(!deployable.warnings.has_errors());
    let w = Severity::Warning;
    assert_diagnostics(
        "full-example",
        &deployable.warnings,
        &[
            (w, "input-schema-missing", 5, 12),
            (w, "wildcard-egress", 12, 43),
            (w, "public-route", 18, 10),
            (w, "public-route", 25, 10),
        ],
    );
}

#[test]
fn missing_component_file_is_an_error_at_the_component_value() {
    let text = "[app]\nname = \"shop\"\nversion = \"0.1.0\"\n\n[functions.checkout]\n\
                component = \"build/checkout.wasm\"\ntrigger = { http = { route = \"/checkout\" } }\n";
    let manifest = zerofn_manifest::load(&app("missing-component", text, &[])).unwrap();
    let err = manifest.check_components();
    let d = err.iter().next().unwrap();
    assert!(d.message.contains("build/checkout.wasm"), "{}", d.message);
    assert_eq!(d.value.as_deref(), Some("\"build/checkout.wasm\""));
    assert_diagnostics(
        "missing-component",
        &err,
        &[(Severity::Error, "missing-component", 6, 13)],
    );
}

#[test]
fn limit_above_ceiling_is_refused_not_clamped() {
    let text = "[app]\nname = \"shop\"\nversion = \"0.1.0\"\n\n[functions.report]\n\
                component = \"report.wasm\"\ntrigger = { http = { route = \"/report\" } }\n\
                limits = { timeout_ms = 120000, memory_mb = 256 }\nauth = { public = true }\n";
    let policy: LimitPolicyConfig = toml::from_str("[ceiling]\nmemory_mb = 128\n").unwrap();
    let policy = policy.resolve().unwrap();
    let err = deploy("limit-above-ceiling", text, &["report.wasm"], &policy).unwrap_err();
    let messages: Vec<&str> = err.iter().map(|d| d.message.as_str()).collect();
    assert!(
        messages[0].contains("60000"),
        "names the ceiling: {}",
        messages[0]
    );
    assert!(
        messages[1].contains("128"),
        "names the ceiling: {}",
        messages[1]
    );
    let e = Severity::Error;
    assert_diagnostics(
        "limit-above-ceiling",
        &err,
        &[
            (e, "limit-above-ceiling", 8, 25),
            (e, "limit-above-ceiling", 8, 45),
            (Severity::Warning, "public-route", 9, 19),
        ],
    );
}

#[test]
fn input_deploys_and_mtls_names_its_ca_bundle() {
    let text = "[app]\nname = \"shop\"\nversion = \"0.1.0\"\n\n[functions.admin]\n\
                component = \"admin.wasm\"\ntrigger = { http = { route = \"/admin/...\" } }\n\n\
                [functions.admin.auth]\n\
                mtls = { ca = \"certs/ca.pem\", spiffe_id = \"spiffe://example.com/ops/*\" }\n\n\
                [functions.admin.input]\nschema = \"schemas/admin.json\"\ncontent_types = [\"application/json\"]\nmax_body_bytes = 65536\nmax_json_depth = 32\n";
    let manifest = zerofn_manifest::load(&app("input", text, &["admin.wasm"])).unwrap();
    let admin = manifest.function("admin").unwrap();
    let input = admin.input.as_ref().unwrap();
    assert_eq!(
        input.schema,
        Some(manifest.dir().join("schemas/admin.json"))
    );
    assert_eq!(
        (input.max_body_bytes, input.max_json_depth),
        (Some(65536), Some(32))
    );
    let referenced: Vec<_> = manifest
        .referenced_files(admin)
        .into_iter()
        .map(|f| (f.field, f.written))
        .collect();
    assert_eq!(
        referenced,
        [
            (
                "functions.admin.auth.mtls.ca".to_string(),
                "certs/ca.pem".to_string()
            ),
            (
                "functions.admin.input.schema".to_string(),
                "schemas/admin.json".to_string()
            ),
        ]
    );

    assert_eq!(input.schema_file.as_deref(), Some("schemas/admin.json"));
    assert_eq!(input.accepted_content_types(), ["application/json"]);
    let deployable = manifest.check_deployable(&LimitPolicy::default()).unwrap();
    assert_eq!(deployable.functions[0].input.as_ref(), Some(input));
}

#[test]
fn input_bounds_have_defaults_and_may_not_exceed_the_request_limit() {
    let text = "[app]\nname = \"shop\"\nversion = \"0.1.0\"\n\n[functions.orders]\n\
                component = \"orders.wasm\"\ntrigger = { http = { route = \"/orders\", methods = [\"POST\"] } }\n\
                limits = { max_request_body_bytes = 4096 }\n\n\
                [functions.orders.auth]\npublic = true\n\n\
                [functions.orders.input]\nschema = \"./schemas/order.json\"\nmax_body_bytes = 8192\n";
    let manifest =
        zerofn_manifest::load(&app("input-body-above-limit", text, &["orders.wasm"])).unwrap();
    let input = manifest.function("orders").unwrap().input.clone().unwrap();
    // The bundle key is the path as written, so the CLI and the server name the same file.
    assert_eq!(input.schema_file.as_deref(), Some("./schemas/order.json"));
    assert_eq!(
        input.json_depth(),
        zerofn_manifest::InputSpec::DEFAULT_MAX_JSON_DEPTH
    );
    let err = manifest
        .check_deployable(&LimitPolicy::default())
        .unwrap_err();
    assert_diagnostics(
        "input-body-above-limit",
        &err,
        &[
            (Severity::Warning, "public-route", 11, 10),
            (Severity::Error, "input-body-above-limit", 15, 18),
        ],
    );
}

#[test]
fn jwt_auth_deploys_and_names_its_key_set_file() {
    let text = "[app]\nname = \"shop\"\nversion = \"0.1.0\"\n\n[functions.admin]\n\
                component = \"admin.wasm\"\ntrigger = { http = { route = \"/admin/...\" } }\n\n\
                [functions.admin.auth]\n\
                jwt = { issuer = \"https://id.example.com\", audience = \"shop\", jwks = \"keys/jwks.json\", algorithms = [\"ES256\"], required_claims = [\"sub\"] }\n";
    let manifest = zerofn_manifest::load(&app("jwt-file", text, &["admin.wasm"])).unwrap();
    let admin = manifest.function("admin").unwrap();
    let Some(Auth::Jwt(jwt)) = &admin.auth else {
        panic!("{:?}", admin.auth)
    };
    assert_eq!(jwt.algorithms, ["ES256"]);
    assert_eq!(jwt.required_claims, ["sub"]);
    assert_eq!(
        (jwt.jwks_file().as_deref(), jwt.jwks_url()),
        (Some("keys/jwks.json"), None)
    );
    assert!(manifest.check_deployable(&LimitPolicy::default()).is_ok());

    // The CLI reads the file for the deploy; a missing one is located at its field.
    let missing = manifest.read_referenced_files().unwrap_err();
    let finding = missing.iter().next().unwrap();
    assert_eq!(finding.code, "missing-file");
    assert_eq!(
        finding.field.as_deref(),
        Some("functions.admin.auth.jwt.jwks")
    );
    std::fs::create_dir_all(manifest.dir().join("keys")).unwrap();
    std::fs::write(manifest.dir().join("keys/jwks.json"), b"{\"keys\":[]}").unwrap();
    let files = manifest.read_referenced_files().unwrap();
    assert_eq!(files.get("keys/jwks.json"), Some(&b"{\"keys\":[]}"[..]));

    // The server refuses a bundle without it, and one that carries more.
    let mut attached = zerofn_manifest::AttachedFiles::new();
    let codes = |files: &zerofn_manifest::AttachedFiles| -> Vec<&'static str> {
        manifest
            .check_attached_files(files)
            .iter()
            .map(|d| d.code)
            .collect()
    };
    assert_eq!(codes(&attached), ["missing-file"]);
    attached.insert("keys/jwks.json", b"{}".to_vec());
    assert!(codes(&attached).is_empty());
    attached.insert("../../etc/passwd", b"x".to_vec());
    assert_eq!(codes(&attached), ["file-not-referenced"]);
}

#[test]
fn a_jwks_url_must_be_https() {
    for jwks in [
        "http://id.example.com/jwks.json",
        "ftp://id.example.com/k",
        "https://user@id.example.com/k",
    ] {
        let text = format!(
            "[app]\nname = \"shop\"\nversion = \"0.1.0\"\n\n[functions.admin]\n\
             component = \"admin.wasm\"\ntrigger = {{ http = {{ route = \"/admin\" }} }}\n\
             auth = {{ jwt = {{ issuer = \"i\", audience = \"a\", jwks = \"{jwks}\" }} }}\n"
        );
        let errors = zerofn_manifest::parse(Path::new("zerofn.toml"), &text).unwrap_err();
        assert!(
            errors.iter().any(|d| d.code == "invalid-auth"),
            "{jwks}: {}",
            errors.render(false)
        );
    }
}

#[test]
fn errors_and_warnings_are_reported_together() {
    let text = "[app]\nname = \"shop\"\nversion = \"0.1.0\"\n\n[functions.a]\ncomponent = \"a.wasm\"\n\
                trigger = { http = { route = \"/a\" } }\ngrants = { egress = [\"https://*.example.com\"] }\n";
    let err = deploy("errors-and-warnings", text, &[], &LimitPolicy::default()).unwrap_err();
    assert!(err.has_errors());
    // No `auth` at all is refused: a route is never public by default.
    assert_diagnostics(
        "errors-and-warnings",
        &err,
        &[
            (Severity::Error, "missing-auth", 5, 12),
            (Severity::Warning, "wildcard-egress", 8, 22),
        ],
    );
    let json = err.to_json();
    assert_eq!(json[1]["severity"], "warning");
    assert_eq!(json[1]["code"], "wildcard-egress");
}

#[test]
fn json_has_the_documented_shape() {
    let err = zerofn_manifest::parse(
        Path::new("zerofn.toml"),
        "[app]\nname = \"Shop\"\nversion = \"0.1.0\"\n",
    )
    .unwrap_err();
    assert_eq!(err.len(), 2, "{err}");
    let json = err.to_json();
    assert_eq!(json[0]["code"], "no-functions");
    let json = &json[1];
    let first = json.as_object().unwrap();
    let keys: Vec<&str> = first.keys().map(String::as_str).collect();
    let mut expected = [
        "severity", "code", "message", "file", "line", "column", "field", "value", "help",
    ];
    expected.sort_unstable();
    let mut keys = keys;
    keys.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(json["severity"], "error");
    assert_eq!(json["code"], "invalid-name");
    assert_eq!(json["file"], "zerofn.toml");
    assert_eq!(json["line"], 2);
    assert_eq!(json["column"], 8);
    assert_eq!(json["value"], "\"Shop\"");
    assert!(json["help"].as_str().unwrap().contains("`shop`"));
    assert_eq!(err.to_string(), err.render(false));
}

#[test]
fn missing_manifest_file_is_a_diagnostic_without_location() {
    let path =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("zerofn-manifest/no-such-dir/zerofn.toml");
    let err = zerofn_manifest::load(&path).unwrap_err();
    let d = err.iter().next().unwrap();
    assert_eq!(d.code, "manifest-not-found");
    assert_eq!(d.location, None);
    assert!(err.render(false).contains("manifest not found"));
    assert_eq!(err.to_json()[0]["line"], serde_json::Value::Null);
}

#[test]
fn color_rendering_adds_styles_only_when_asked() {
    let err = zerofn_manifest::parse(Path::new("zerofn.toml"), "[app]\n").unwrap_err();
    assert!(err.render(true).contains('\x1b'));
    assert!(!err.render(false).contains('\x1b'));
}

#[test]
fn wildcard_and_private_egress_deploy_flagged_at_the_offending_element() {
    let text = "[app]\nname = \"shop\"\nversion = \"0.1.0\"\n\n[functions.a]\ncomponent = \"a.wasm\"\n\
                trigger = { http = { route = \"/a\" } }\nauth = { public = true }\n\
                [functions.a.grants]\negress = [\n  \"https://api.example.com\",\n  \"https://*.example.com\",\n  \
                { url = \"http://10.0.0.7:8080/hooks\", methods = [\"POST\"], allow_private = true },\n]\n";
    let deployable = deploy("wildcard-egress", text, &[], &LimitPolicy::default()).unwrap();
    let warnings = &deployable.warnings;
    let wildcards: Vec<_> = warnings
        .iter()
        .filter(|d| d.code == "wildcard-egress")
        .collect();
    assert_eq!(wildcards.len(), 1, "{warnings}");
    let wildcard = wildcards[0];
    assert!(!wildcard.is_error());
    assert_eq!(
        wildcard.field.as_deref(),
        Some("functions.a.grants.egress[1]")
    );
    let location = wildcard.location.as_ref().unwrap();
    assert_eq!((location.line, location.column), (12, 3));
    assert_eq!(wildcard.value.as_deref(), Some("\"https://*.example.com\""));
    assert!(wildcard.help.as_ref().unwrap().contains("name each host"));
    let private = warnings
        .iter()
        .find(|d| d.code == "private-egress")
        .unwrap();
    assert_eq!(
        private.field.as_deref(),
        Some("functions.a.grants.egress[2]")
    );
    assert_eq!(private.location.as_ref().unwrap().line, 13);
    let json = warnings.to_json();
    let json = json
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "wildcard-egress")
        .unwrap();
    assert_eq!(json["severity"], "warning");
    assert_eq!(json["field"], "functions.a.grants.egress[1]");
    assert_eq!(json["line"], 12);

    let grants = &deployable.functions[0].grants.egress;
    assert_eq!(grants.len(), 3);
    assert!(grants[0].methods.is_empty() && !grants[0].allow_private);
    assert_eq!(grants[2].methods, [HttpMethod::Post]);
    assert!(grants[2].allow_private);
    assert_eq!(grants[2].host, "10.0.0.7");
    assert_eq!(grants[2].path_prefix, "/hooks");
    assert_eq!(grants[2].as_written, "http://10.0.0.7:8080/hooks");
}

#[test]
fn egress_hosts_are_kept_in_their_canonical_form() {
    let text = "[app]\nname = \"shop\"\nversion = \"0.1.0\"\n\n[functions.a]\ncomponent = \"a.wasm\"\n\
                trigger = { http = { route = \"/a\" } }\nauth = { public = true }\n\
                [functions.a.grants]\negress = [\"HTTP://API.Example.COM./v1\", \"http://0x7f000001:81\", \
                \"http://[::ffff:10.0.0.1]\", \"https://b\u{fc}cher.example\"]\n";
    let manifest = zerofn_manifest::parse(Path::new("zerofn.toml"), text).unwrap();
    let hosts: Vec<&str> = manifest
        .function("a")
        .unwrap()
        .grants
        .egress
        .iter()
        .map(|rule| rule.host.as_str())
        .collect();
    assert_eq!(
        hosts,
        [
            "api.example.com",
            "127.0.0.1",
            "10.0.0.1",
            "xn--bcher-kva.example"
        ]
    );
}

#[test]
fn schedule_and_queue_functions_deploy_without_auth_and_are_not_routed() {
    let text = include_str!("cases/ok-schedule-and-queue.toml");
    let deployable = deploy(
        "schedule-and-queue",
        text,
        &[
            "report.wasm",
            "fulfil.wasm",
            "orders.wasm",
            "schemas/order.json",
        ],
        &LimitPolicy::default(),
    )
    .unwrap();
    let kinds: Vec<(&str, &str)> = deployable
        .functions
        .iter()
        .map(|f| (f.name.as_str(), f.trigger.kind()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("fulfil", "queue"),
            ("orders", "http"),
            ("report", "schedule")
        ]
    );
    let report = &deployable.functions[2];
    assert!(report.trigger.http().is_none());
    assert_eq!(report.auth, None);
    assert_eq!(deployable.functions[0].trigger.queue(), Some("orders"));
    // No `missing-auth` for the functions that have no outside caller.
    assert!(
        deployable.warnings.iter().all(|d| d.code != "missing-auth"),
        "{:?}",
        deployable.warnings
    );
}

#[test]
fn cron_expressions_are_utc_with_optional_seconds() {
    use zerofn_manifest::Schedule;
    let every_second = Schedule::parse("* * * * * *").unwrap();
    let start = chrono::DateTime::from_timestamp(1_000_000, 0).unwrap();
    assert_eq!(
        every_second.next_after(&start).unwrap().timestamp(),
        1_000_001
    );
    let hourly = Schedule::parse("0 * * * *").unwrap();
    assert_eq!(hourly.next_after(&start).unwrap().timestamp() % 3600, 0);
    for bad in [
        "",
        "* * * *",
        "61 * * * *",
        "0 0 30 2 *",
        "* * * * * * 2030",
    ] {
        assert!(Schedule::parse(bad).is_err(), "{bad:?}");
    }
}
