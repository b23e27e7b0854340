//! What a function was built from, in the formats supply-chain tools already read: a CycloneDX
//! 1.6 SBOM (from the function's `Cargo.lock` and the component's `producers` section), SLSA
//! provenance v1 (builder, build command, source digest, resolved dependencies, times), and the
//! in-toto statement zerofn signs, whose subjects are the component's SHA-256 and the SHA-256 of
//! the function's canonical configuration.

#![forbid(unsafe_code)]

mod advisories;
mod artifacts;
mod cargo_lock;
mod error;
mod layout;
mod producers;
mod provenance;
mod sbom;
mod source;
mod statement;

pub use advisories::{AdvisoryDatabase, Finding, Severity};
pub use artifacts::{sign_function, write_build_artifacts};
pub use cargo_lock::{LockedPackage, read_cargo_lock};
pub use error::ProvenanceError;
pub use layout::{ARTIFACTS_DIR, ArtifactPaths};
pub use producers::{Producer, producers};
pub use provenance::{BUILD_TYPE, BUILDER_ID, BuildRecord, provenance};
pub use sbom::sbom;
pub use source::source_digest;
pub use statement::{
    COMPONENT_SUFFIX, CONFIG_SUFFIX, FILES_INFIX, SBOM_SUFFIX, SLSA_PROVENANCE_V1,
    file_subject_name, function_statement,
};

/// RFC 3339 UTC timestamp with seconds, as SLSA and CycloneDX write them.
pub fn rfc3339(time: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}
