//! `zerofn.toml`, the app manifest: parsing, validation and located diagnostics.
//!
//! [`parse`] checks everything that the text alone decides (syntax, known keys, types, names,
//! routes, grant syntax, references between functions) and returns a [`Manifest`] or
//! [`Diagnostics`] that point at the offending span, like rustc. [`Manifest::check_deployable`]
//! checks what only holds at deploy time: component files exist, limits fit the operator's
//! [`LimitPolicy`], and the manifest asks for nothing this release cannot enforce.
//!
//! **Architecture invariant:** this crate does no I/O beyond reading the manifest ([`load`]),
//! looking at component files ([`Manifest::check_components`]) and reading the files the
//! manifest names for the CLI ([`Manifest::read_referenced_files`]). It never runs builds,
//! fetches URLs or opens sockets. The format is documented in `docs/manifest.md`.

#![forbid(unsafe_code)]

mod canonical;
mod deploy;
mod diagnostic;
mod egress;
mod files;
mod limits;
mod locate;
mod model;
mod raw;
mod route;
mod validate;

use std::path::Path;

pub use deploy::{Deployable, DeployableFunction};
pub use diagnostic::{Diagnostic, Diagnostics, Location, Related, Severity};
pub use egress::{canonical_host, is_internal_host};
pub use files::{AttachedFiles, MAX_ATTACHED_FILE_BYTES, ReferencedFile};
pub use limits::{
    LimitExceeded, LimitPolicy, LimitPolicyConfig, LimitPolicyError, LimitsConfig, LimitsSpec,
    ResolvedLimits,
};
pub use locate::Located;
pub use model::{
    ApiKeyAuth, Auth, BuildSpec, EgressRule, Function, Grants, InputSpec, JwtAuth, KvAccess,
    Manifest, MtlsAuth, Schedule, Trigger,
};
pub use route::{HttpMethod, Route, RouteError, UnknownMethod};

/// The conventional manifest file name.
pub const MANIFEST_FILE: &str = "zerofn.toml";

/// Parses and validates `text`, the contents of the manifest at `path`. `path` is used for
/// diagnostics and to resolve relative paths; the file is not read.
pub fn parse(path: &Path, text: &str) -> Result<Manifest, Diagnostics> {
    validate::parse(path, text)
}

/// Reads the manifest at `path` and [`parse`]s it. A file that cannot be read yields a
/// diagnostic without a location (`manifest-not-found` or `unreadable-manifest`).
pub fn load(path: &Path) -> Result<Manifest, Diagnostics> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text),
        Err(err) => {
            let (code, message, help) = match err.kind() {
                std::io::ErrorKind::NotFound => (
                    "manifest-not-found",
                    format!("manifest not found: {}", path.display()),
                    format!(
                        "run zerofn in the app's directory, or pass the path to its `{MANIFEST_FILE}`"
                    ),
                ),
                std::io::ErrorKind::InvalidData => (
                    "unreadable-manifest",
                    format!(
                        "cannot read manifest {}: it is not valid UTF-8",
                        path.display()
                    ),
                    "save the file as UTF-8".to_string(),
                ),
                _ => (
                    "unreadable-manifest",
                    format!("cannot read manifest {}: {err}", path.display()),
                    "check the file's permissions".to_string(),
                ),
            };
            let mut diagnostics = Diagnostics::new();
            diagnostics.push(Diagnostic::error(code, path, message).help(help));
            Err(diagnostics)
        }
    }
}

/// Whether `name` is a valid secret or bucket name: 1 to 64 lowercase letters, digits and `_`,
/// not starting with a digit.
pub fn is_identifier(name: &str) -> bool {
    let b = name.as_bytes();
    (1..=64).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

/// Whether `name` is a valid app or function name: a DNS label of 1 to 63 lowercase letters,
/// digits and `-`, starting with a letter and not ending with `-`.
pub fn is_dns_label(name: &str) -> bool {
    let b = name.as_bytes();
    (1..=63).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && !name.ends_with('-')
}
