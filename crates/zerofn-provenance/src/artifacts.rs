//! Writing and signing a function's artifacts in its app directory: what `zerofn build` records
//! after a build and what `zerofn sign` adds.

use crate::{ArtifactPaths, BuildRecord, ProvenanceError};
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use zerofn_manifest::{Function, Manifest};
use zerofn_signing::{Bundle, PrivateKey};

/// Records the SBOM and provenance of `function` after its build ran (`command`, between
/// `started` and `finished`; no command for a component built elsewhere).
pub fn write_build_artifacts(
    manifest: &Manifest,
    function: &Function,
    command: Option<&str>,
    started: SystemTime,
    finished: SystemTime,
) -> Result<ArtifactPaths, ProvenanceError> {
    let component = read(&function.component_path)?;
    let workdir = match &function.build {
        Some(build) => build.workdir.clone(),
        None => function
            .component_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| manifest.dir().to_path_buf()),
    };
    let packages = match find_cargo_lock(&workdir, manifest.dir()) {
        Some(lock) => crate::read_cargo_lock(&lock)?,
        None => Vec::new(),
    };
    let record = BuildRecord {
        app: manifest.app_name().to_string(),
        function: function.name.clone(),
        command: command.map(str::to_string),
        workdir: workdir
            .strip_prefix(manifest.dir())
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| ".".to_string()),
        source_digest: crate::source_digest(&workdir)?,
        started_on: crate::rfc3339(started),
        finished_on: crate::rfc3339(finished),
        invocation_id: uuid::Uuid::new_v4().to_string(),
    };
    let sbom = crate::sbom(
        manifest.app_name(),
        &function.name,
        &component,
        &packages,
        &crate::producers(&component),
        &record.finished_on,
    );
    let provenance = crate::provenance(&record, &packages);
    let paths = ArtifactPaths::new(manifest.dir(), &function.name);
    create_dir(&paths.dir)?;
    write_json(&paths.sbom, &sbom)?;
    write_json(&paths.provenance, &provenance)?;
    Ok(paths)
}

/// Signs `function`'s statement (component, canonical configuration, SBOM, referenced files,
/// recorded provenance) with `key` and writes the Sigstore bundle.
pub fn sign_function(
    manifest: &Manifest,
    function: &Function,
    key: &PrivateKey,
) -> Result<ArtifactPaths, ProvenanceError> {
    let paths = ArtifactPaths::new(manifest.dir(), &function.name);
    let component = read(&function.component_path)?;
    let provenance: serde_json::Value =
        serde_json::from_slice(&read(&paths.provenance)?).map_err(|e| {
            ProvenanceError::Malformed {
                path: paths.provenance.clone(),
                reason: e.to_string(),
            }
        })?;
    let sbom = read(&paths.sbom)?;
    let mut files = zerofn_manifest::AttachedFiles::new();
    for file in manifest.referenced_files(function) {
        files.insert(file.written, read(&file.path)?);
    }
    let statement =
        crate::function_statement(manifest, function, &component, &sbom, &files, provenance);
    let bundle = Bundle::sign(&statement, key).map_err(|e| ProvenanceError::Malformed {
        path: paths.provenance.clone(),
        reason: e.to_string(),
    })?;
    std::fs::write(&paths.bundle, bundle.to_json()).map_err(|source| ProvenanceError::Io {
        path: paths.bundle.clone(),
        source,
    })?;
    Ok(paths)
}

/// The nearest `Cargo.lock` from `start` up to `stop` (inclusive).
fn find_cargo_lock(start: &Path, stop: &Path) -> Option<PathBuf> {
    let mut dir = Some(start);
    while let Some(current) = dir {
        let candidate = current.join("Cargo.lock");
        if candidate.is_file() {
            return Some(candidate);
        }
        if current == stop {
            return None;
        }
        dir = current.parent();
    }
    None
}

fn read(path: &Path) -> Result<Vec<u8>, ProvenanceError> {
    std::fs::read(path).map_err(|source| ProvenanceError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn create_dir(path: &Path) -> Result<(), ProvenanceError> {
    std::fs::create_dir_all(path).map_err(|source| ProvenanceError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), ProvenanceError> {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    std::fs::write(path, text).map_err(|source| ProvenanceError::Io {
        path: path.to_path_buf(),
        source,
    })
}
