//! SBOM, provenance and statements from the real example app and its real components.

// Test helpers outside `#[test]` functions report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use zerofn_provenance::*;

fn shop() -> std::path::PathBuf {
    Path::new(zerofn_test_artifacts::EXAMPLES_DIR).join("shop")
}

#[test]
fn producers_name_the_toolchain() {
    let component = std::fs::read(zerofn_test_artifacts::HELLO).unwrap();
    let found = producers(&component);
    assert!(
        found
            .iter()
            .any(|p| p.field == "processed-by" && p.name == "wit-bindgen-rust"),
        "{found:?}"
    );
    assert!(producers(b"not wasm").is_empty());
}

#[test]
fn the_sbom_lists_locked_packages_with_purls_and_checksums() {
    let packages = read_cargo_lock(&shop().join("Cargo.lock")).unwrap();
    let component = std::fs::read(zerofn_test_artifacts::SHOP_CHECKOUT).unwrap();
    let sbom = sbom(
        "shop",
        "checkout",
        &component,
        &packages,
        &producers(&component),
        "2026-11-24T00:00:00Z",
    );
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    assert_eq!(sbom["specVersion"], "1.6");
    assert!(
        sbom["serialNumber"]
            .as_str()
            .unwrap()
            .starts_with("urn:uuid:")
    );
    assert_eq!(sbom["metadata"]["component"]["name"], "shop/checkout");
    let serde_json_entry = sbom["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "serde_json")
        .expect("serde_json is a dependency of checkout");
    assert!(
        serde_json_entry["purl"]
            .as_str()
            .unwrap()
            .starts_with("pkg:cargo/serde_json@")
    );
    assert_eq!(serde_json_entry["hashes"][0]["alg"], "SHA-256");
    assert!(
        !sbom["metadata"]["tools"]["components"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_malformed_cargo_lock_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Cargo.lock");
    std::fs::write(&path, "[[package]]\nname = 3\n").unwrap();
    assert!(matches!(
        read_cargo_lock(&path),
        Err(ProvenanceError::CargoLock { .. })
    ));
    assert!(matches!(
        read_cargo_lock(&dir.path().join("missing.lock")),
        Err(ProvenanceError::Io { .. })
    ));
}

#[test]
fn the_source_digest_follows_sources_and_ignores_outputs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::create_dir_all(dir.path().join("target/release")).unwrap();
    std::fs::write(dir.path().join("src/lib.rs"), "fn a() {}").unwrap();
    let first = source_digest(dir.path()).unwrap();
    std::fs::write(dir.path().join("target/release/out.wasm"), "anything").unwrap();
    assert_eq!(source_digest(dir.path()).unwrap(), first);
    std::fs::write(dir.path().join("src/lib.rs"), "fn b() {}").unwrap();
    assert_ne!(source_digest(dir.path()).unwrap(), first);
}

#[test]
fn the_statement_covers_the_component_and_the_configuration() {
    let manifest = zerofn_manifest::load(&shop().join("zerofn.toml")).unwrap();
    let function = manifest.function("checkout").unwrap();
    let component = std::fs::read(zerofn_test_artifacts::SHOP_CHECKOUT).unwrap();
    let record = BuildRecord {
        app: "shop".into(),
        function: "checkout".into(),
        command: function.build.as_ref().map(|b| b.command.clone()),
        workdir: ".".into(),
        source_digest: source_digest(&shop().join("checkout")).unwrap(),
        started_on: rfc3339(std::time::SystemTime::UNIX_EPOCH),
        finished_on: rfc3339(std::time::SystemTime::UNIX_EPOCH),
        invocation_id: "build-1".into(),
    };
    let packages = read_cargo_lock(&shop().join("Cargo.lock")).unwrap();
    let predicate = provenance(&record, &packages);
    assert_eq!(predicate["runDetails"]["builder"]["id"], BUILDER_ID);
    assert_eq!(
        predicate["runDetails"]["metadata"]["startedOn"],
        "1970-01-01T00:00:00Z"
    );
    assert_eq!(
        predicate["buildDefinition"]["resolvedDependencies"][0]["digest"]["sha256"],
        record.source_digest
    );
    let sbom = br#"{"bomFormat":"CycloneDX"}"#;
    let statement = function_statement(
        &manifest,
        function,
        &component,
        sbom,
        &zerofn_manifest::AttachedFiles::new(),
        predicate,
    );
    assert_eq!(statement.predicate_type, SLSA_PROVENANCE_V1);
    assert_eq!(statement.subject[0].name, "shop/checkout.wasm");
    assert_eq!(statement.subject[1].name, "shop/checkout.config.json");
    assert_eq!(
        statement.subject[1].sha256_hex(),
        Some(manifest.config_digest(function).as_str())
    );
    assert_eq!(statement.subject[2].name, "shop/checkout.sbom.cdx.json");
    assert_eq!(statement.subject[2].digest["sha256"], sha256_hex(sbom));
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
