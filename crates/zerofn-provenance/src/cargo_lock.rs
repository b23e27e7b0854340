//! The packages a Rust function was built from, as resolved in its `Cargo.lock`.

use crate::ProvenanceError;
use serde::Deserialize;
use std::path::Path;

/// One locked package.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LockedPackage {
    pub name: String,
    pub version: String,
    /// `registry+https://...` for crates.io packages; absent for the workspace's own.
    pub source: Option<String>,
    /// The registry's SHA-256 of the `.crate` file.
    pub checksum: Option<String>,
}

impl LockedPackage {
    /// The package URL (`pkg:cargo/NAME@VERSION`).
    pub fn purl(&self) -> String {
        format!("pkg:cargo/{}@{}", self.name, self.version)
    }
}

#[derive(Deserialize)]
struct Lock {
    #[serde(default)]
    package: Vec<LockedPackage>,
}

/// Reads `path` (a `Cargo.lock`), sorted by name and version.
pub fn read_cargo_lock(path: &Path) -> Result<Vec<LockedPackage>, ProvenanceError> {
    let text = std::fs::read_to_string(path).map_err(|source| ProvenanceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let lock: Lock = toml::from_str(&text).map_err(|e| ProvenanceError::CargoLock {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut packages = lock.package;
    packages.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    Ok(packages)
}
