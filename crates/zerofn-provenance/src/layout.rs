//! Where an app's supply-chain artifacts live: `APP_DIR/.zerofn/<function>/`, next to the sources
//! they describe, so that CI can archive or publish them with the component.

use std::path::{Path, PathBuf};

/// The directory under an app that holds its artifacts.
pub const ARTIFACTS_DIR: &str = ".zerofn";

/// The artifact files of one function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactPaths {
    pub dir: PathBuf,
    /// CycloneDX 1.6 JSON.
    pub sbom: PathBuf,
    /// The SLSA provenance v1 predicate.
    pub provenance: PathBuf,
    /// The Sigstore bundle v0.3 that signs the function's statement.
    pub bundle: PathBuf,
}

impl ArtifactPaths {
    pub fn new(app_dir: &Path, function: &str) -> Self {
        let dir = app_dir.join(ARTIFACTS_DIR).join(function);
        Self {
            sbom: dir.join("sbom.cdx.json"),
            provenance: dir.join("provenance.json"),
            bundle: dir.join("bundle.sigstore.json"),
            dir,
        }
    }
}
