//! The statement zerofn signs for a function: its component, its canonical configuration and
//! its SBOM as subjects, and one subject per file its manifest entry refers to (a JWKS, a CA
//! bundle, a schema); its SLSA provenance is the predicate. The SBOM and the files are subjects so
//! that what admission judges and what authenticates callers is what was signed, not something
//! sent alongside.

use zerofn_manifest::{AttachedFiles, Function, Manifest};
use zerofn_signing::{Statement, Subject};

/// The predicate type of SLSA provenance v1.
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// Subject name suffixes: `APP/FUNCTION.wasm`, `APP/FUNCTION.config.json` and
/// `APP/FUNCTION.sbom.cdx.json`.
pub const COMPONENT_SUFFIX: &str = ".wasm";
pub const CONFIG_SUFFIX: &str = ".config.json";
pub const SBOM_SUFFIX: &str = ".sbom.cdx.json";
/// A referenced file's subject is `APP/FUNCTION.files/<path as written>`.
pub const FILES_INFIX: &str = ".files/";

/// The subject name of the file written as `path` in `function`'s manifest entry.
pub fn file_subject_name(manifest: &Manifest, function: &Function, path: &str) -> String {
    format!(
        "{}/{}{FILES_INFIX}{path}",
        manifest.app_name(),
        function.name
    )
}

/// The statement for `function` of `manifest`, whose component is `component`, whose
/// CycloneDX SBOM file holds `sbom` and whose referenced files are in `files`.
pub fn function_statement(
    manifest: &Manifest,
    function: &Function,
    component: &[u8],
    sbom: &[u8],
    files: &AttachedFiles,
    provenance: serde_json::Value,
) -> Statement {
    let base = format!("{}/{}", manifest.app_name(), function.name);
    let file_subjects = manifest
        .referenced_files(function)
        .into_iter()
        .filter_map(|file| {
            let bytes = files.get(&file.written)?;
            Some(Subject::sha256(
                file_subject_name(manifest, function, &file.written),
                bytes,
            ))
        });
    Statement::new(
        vec![
            Subject::sha256(format!("{base}{COMPONENT_SUFFIX}"), component),
            Subject::sha256(
                format!("{base}{CONFIG_SUFFIX}"),
                &manifest.canonical_config_bytes(function),
            ),
            Subject::sha256(format!("{base}{SBOM_SUFFIX}"), sbom),
        ]
        .into_iter()
        .chain(file_subjects)
        .collect(),
        SLSA_PROVENANCE_V1,
        provenance,
    )
}
