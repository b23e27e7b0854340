//! A digest of a build's source tree, so provenance says exactly what was built.

use crate::ProvenanceError;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Directories that hold outputs, not sources.
const SKIPPED: &[&str] = &["target", ".git", ".zerofn"];

/// SHA-256 over every file under `dir` (except build outputs and VCS metadata): the sorted list
/// of `relative/path NUL sha256-hex NL` lines. Equal trees give equal digests on any machine.
pub fn source_digest(dir: &Path) -> Result<String, ProvenanceError> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    files.sort();
    let mut hasher = Sha256::new();
    for (relative, path) in files {
        let bytes = std::fs::read(&path).map_err(|source| ProvenanceError::Io {
            path: path.clone(),
            source,
        })?;
        hasher.update(relative.as_bytes());
        hasher.update([0]);
        hasher.update(hex::encode(Sha256::digest(&bytes)).as_bytes());
        hasher.update(b"\n");
    }
    Ok(hex::encode(hasher.finalize()))
}

fn collect(
    root: &Path,
    dir: &Path,
    files: &mut Vec<(String, PathBuf)>,
) -> Result<(), ProvenanceError> {
    let io = |source| ProvenanceError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(io)?;
        let name = entry.file_name();
        if file_type.is_dir() {
            if !SKIPPED.iter().any(|s| name == *s) {
                collect(root, &path, files)?;
            }
        } else if file_type.is_file() {
            let relative = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            files.push((relative, path));
        }
    }
    Ok(())
}
