//! Why an SBOM, provenance or statement could not be produced.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ProvenanceError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is malformed: {reason} (run `zerofn build` again)")]
    Malformed { path: PathBuf, reason: String },
    #[error("{path} is not a valid Cargo.lock: {reason}")]
    CargoLock { path: PathBuf, reason: String },
}
