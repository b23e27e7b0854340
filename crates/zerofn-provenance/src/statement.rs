//! The statement zerofn signs for a function: its component, its canonical configuration and
//! its SBOM as subjects, its SLSA provenance as predicate. The SBOM is a subject so that the
//! dependency list admission checks is the one that was signed, not one sent alongside.

use zerofn_manifest::{Function, Manifest};
use zerofn_signing::{Statement, Subject};

/// The predicate type of SLSA provenance v1.
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// Subject name suffixes: `APP/FUNCTION.wasm`, `APP/FUNCTION.config.json` and
/// `APP/FUNCTION.sbom.cdx.json`.
pub const COMPONENT_SUFFIX: &str = ".wasm";
pub const CONFIG_SUFFIX: &str = ".config.json";
pub const SBOM_SUFFIX: &str = ".sbom.cdx.json";

/// The statement for `function` of `manifest`, whose component is `component` and whose
/// CycloneDX SBOM file holds `sbom`.
pub fn function_statement(
    manifest: &Manifest,
    function: &Function,
    component: &[u8],
    sbom: &[u8],
    provenance: serde_json::Value,
) -> Statement {
    let base = format!("{}/{}", manifest.app_name(), function.name);
    Statement::new(
        vec![
            Subject::sha256(format!("{base}{COMPONENT_SUFFIX}"), component),
            Subject::sha256(
                format!("{base}{CONFIG_SUFFIX}"),
                &manifest.canonical_config_bytes(function),
            ),
            Subject::sha256(format!("{base}{SBOM_SUFFIX}"), sbom),
        ],
        SLSA_PROVENANCE_V1,
        provenance,
    )
}
