//! `zerofn deps`' matching of SBOM packages against OSV advisories, on the repository's test
//! database and the example app's real SBOM.

// Test helpers outside `#[test]` functions report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use zerofn_provenance::{AdvisoryDatabase, Severity};

fn database() -> AdvisoryDatabase {
    AdvisoryDatabase::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/advisories"))
        .unwrap()
}

fn sbom(packages: &[(&str, &str)]) -> serde_json::Value {
    let components: Vec<_> = packages
        .iter()
        .map(|(name, version)| {
            serde_json::json!({"type": "library", "name": name, "version": version,
                "purl": format!("pkg:cargo/{name}@{version}")})
        })
        .collect();
    serde_json::json!({"bomFormat": "CycloneDX", "specVersion": "1.6", "components": components})
}

#[test]
fn a_flagged_version_is_found_with_its_fix_and_severity() {
    let findings = database().check_sbom(&sbom(&[("smallvec", "1.6.0"), ("serde", "1.0.0")]));
    assert_eq!(findings.len(), 1, "{findings:?}");
    let finding = &findings[0];
    assert_eq!(finding.advisory, "ZEROFN-TEST-0001");
    assert_eq!(finding.package, "smallvec");
    assert_eq!(finding.version, "1.6.0");
    assert_eq!(finding.severity, Severity::High);
    assert_eq!(finding.fixed.as_deref(), Some("1.6.1"));
    assert_eq!(finding.aliases, ["CVE-0000-0001"]);
}

#[test]
fn range_ends_and_listed_versions_follow_osv_semantics() {
    let db = database();
    assert!(
        db.check_sbom(&sbom(&[("smallvec", "1.6.1")])).is_empty(),
        "fixed is exclusive"
    );
    assert_eq!(
        db.check_sbom(&sbom(&[("wasip2", "2.0.0")])).len(),
        1,
        "last_affected is inclusive"
    );
    assert!(db.check_sbom(&sbom(&[("wasip2", "2.0.1")])).is_empty());
    assert_eq!(
        db.check_sbom(&sbom(&[("serde_json", "0.9.0")]))[0].severity,
        Severity::Low
    );
    assert!(db.check_sbom(&sbom(&[("serde_json", "0.9.1")])).is_empty());
}

#[test]
fn events_are_evaluated_in_version_order_and_unparseable_ones_fail_closed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.json"),
        r#"{"id": "T-1", "affected": [{"package": {"ecosystem": "crates.io", "name": "x"},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "2.0.0"}, {"fixed": "2.5.0"},
                                                      {"introduced": "0"}, {"fixed": "1.0.0"}]}]}]}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.json"),
        r#"{"id": "T-2", "affected": [{"package": {"ecosystem": "crates.io", "name": "y"},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "not-a-version"}]}]}]}"#,
    )
    .unwrap();
    let db = AdvisoryDatabase::load(dir.path()).unwrap();
    assert_eq!(db.check_sbom(&sbom(&[("x", "2.1.0")])).len(), 1);
    assert_eq!(db.check_sbom(&sbom(&[("x", "0.5.0")])).len(), 1);
    assert!(db.check_sbom(&sbom(&[("x", "1.5.0")])).is_empty());
    assert_eq!(db.check_sbom(&sbom(&[("y", "1.0.0")])).len(), 1);
}

#[test]
fn the_example_apps_real_sbom_is_clean_against_the_test_database() {
    let shop = Path::new(zerofn_test_artifacts::EXAMPLES_DIR).join("shop");
    let packages = zerofn_provenance::read_cargo_lock(&shop.join("Cargo.lock")).unwrap();
    let component = std::fs::read(zerofn_test_artifacts::SHOP_CHECKOUT).unwrap();
    let sbom = zerofn_provenance::sbom("shop", "checkout", &component, &packages, &[], "t");
    assert!(database().check_sbom(&sbom).is_empty());
}

#[test]
fn a_malformed_advisory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.json"), "{\"id\": 3}").unwrap();
    let error = AdvisoryDatabase::load(dir.path()).err().unwrap();
    assert!(error.to_string().contains("not an OSV advisory"), "{error}");
    assert!(AdvisoryDatabase::load(&dir.path().join("missing")).is_err());
}
