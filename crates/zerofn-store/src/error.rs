//! Typed errors of the store, so that callers can tell "not found" from "disk broken".

use std::path::PathBuf;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created or secured.
    #[error("cannot prepare data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The database file could not be opened.
    #[error("cannot open the store at {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer zerofn.
    #[error(
        "the store has schema version {found}, newer than this zerofn understands ({supported}); upgrade zerofn"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    /// No app by that name has been deployed.
    #[error("no app named `{0}` has been deployed")]
    UnknownApp(String),
    /// The app has no version with that id.
    #[error("app `{app}` has no version `{version}`")]
    UnknownVersion { app: String, version: String },
    /// A stored blob no longer matches its digest: the store was tampered with or corrupted.
    #[error(
        "stored component {digest} does not match its digest (store corrupted or tampered with)"
    )]
    Integrity { digest: String },
    /// A secret of that name already exists (set creates; rotate replaces).
    #[error(
        "app `{app}` already has a secret `{name}`: use `zerofn secrets rotate {app} {name}` to replace its value"
    )]
    SecretExists { app: String, name: String },
    /// The app has no secret of that name.
    #[error("app `{app}` has no secret `{name}` (see `zerofn secrets list {app}`)")]
    UnknownSecret { app: String, name: String },
    /// No incident has that id.
    #[error("there is no incident `{0}` (see `zerofn incidents list`)")]
    UnknownIncident(String),
    /// The incident was resolved already; a resolution is final.
    #[error("incident `{id}` is already resolved as {resolution} by {by}; a resolution is final")]
    IncidentAlreadyResolved {
        id: String,
        resolution: String,
        by: String,
    },
    /// A record could not be encoded or decoded.
    #[error("malformed record in the store: {0}")]
    Malformed(String),
    /// Any other SQLite failure.
    #[error("store error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}
