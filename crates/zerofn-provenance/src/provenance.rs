//! SLSA provenance v1 predicates for zerofn builds.

use crate::LockedPackage;
use serde_json::{Value, json};

/// The builder zerofn records: the local `zerofn build` of this version.
pub const BUILDER_ID: &str = "https://zerofn.dev/builders/local@v1";
/// The build type: a function's build command run in its working directory.
pub const BUILD_TYPE: &str = "https://zerofn.dev/buildtypes/function-command@v1";

/// What `zerofn build` observed while building one function.
#[derive(Debug, Clone)]
pub struct BuildRecord {
    pub app: String,
    pub function: String,
    /// The build command, or `None` for a component built elsewhere.
    pub command: Option<String>,
    /// The working directory, relative to the app directory.
    pub workdir: String,
    /// SHA-256 of the source tree (see [`crate::source_digest`]).
    pub source_digest: String,
    pub started_on: String,
    pub finished_on: String,
    pub invocation_id: String,
}

/// The SLSA provenance v1 predicate for one function's build.
pub fn provenance(record: &BuildRecord, packages: &[LockedPackage]) -> Value {
    let mut dependencies = vec![json!({
        "uri": format!("file:{}", record.workdir),
        "digest": {"sha256": record.source_digest},
        "annotations": {"role": "source"},
    })];
    dependencies.extend(packages.iter().filter_map(|p| {
        p.checksum
            .as_ref()
            .map(|checksum| json!({"uri": p.purl(), "digest": {"sha256": checksum}}))
    }));
    json!({
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "app": record.app,
                "function": record.function,
                "command": record.command,
                "workdir": record.workdir,
            },
            "internalParameters": {},
            "resolvedDependencies": dependencies,
        },
        "runDetails": {
            "builder": {
                "id": BUILDER_ID,
                "version": {"zerofn": env!("CARGO_PKG_VERSION")},
            },
            "metadata": {
                "invocationId": record.invocation_id,
                "startedOn": record.started_on,
                "finishedOn": record.finished_on,
            },
        },
    })
}
