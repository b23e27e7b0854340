//! The statement zerofn signs for a function: its component and its canonical configuration as
//! subjects, its SLSA provenance as predicate.

use zerofn_manifest::{Function, Manifest};
use zerofn_signing::{Statement, Subject};

/// The predicate type of SLSA provenance v1.
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// Subject name suffixes: `APP/FUNCTION.wasm` and `APP/FUNCTION.config.json`.
pub const COMPONENT_SUFFIX: &str = ".wasm";
pub const CONFIG_SUFFIX: &str = ".config.json";

/// The statement for `function` of `manifest`, whose component is `component`.
pub fn function_statement(
    manifest: &Manifest,
    function: &Function,
    component: &[u8],
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
        ],
        SLSA_PROVENANCE_V1,
        provenance,
    )
}
