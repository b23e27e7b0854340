//! The database schema and its migrations, keyed by SQLite's `user_version`.

use crate::StoreError;
use rusqlite::Connection;

const SCHEMA_VERSION: i64 = 9;

const SCHEMA_V1: &str = "
CREATE TABLE blobs (
    digest TEXT PRIMARY KEY,
    bytes  BLOB NOT NULL
) STRICT;
CREATE TABLE versions (
    app         TEXT NOT NULL,
    version_id  TEXT NOT NULL,
    app_version TEXT NOT NULL,
    manifest    TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    PRIMARY KEY (app, version_id)
) STRICT;
CREATE TABLE version_components (
    app        TEXT NOT NULL,
    version_id TEXT NOT NULL,
    function   TEXT NOT NULL,
    digest     TEXT NOT NULL REFERENCES blobs(digest),
    PRIMARY KEY (app, version_id, function),
    FOREIGN KEY (app, version_id) REFERENCES versions(app, version_id)
) STRICT;
CREATE TABLE activations (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    app        TEXT NOT NULL,
    version_id TEXT NOT NULL,
    reason     TEXT NOT NULL,
    at_ms      INTEGER NOT NULL,
    FOREIGN KEY (app, version_id) REFERENCES versions(app, version_id)
) STRICT;
CREATE INDEX activations_by_app ON activations(app, seq);
CREATE TABLE audit_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms         INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    invocation_id TEXT,
    app           TEXT,
    function      TEXT,
    outcome       TEXT NOT NULL,
    event         TEXT NOT NULL
) STRICT;
CREATE INDEX audit_by_invocation ON audit_events(invocation_id);
CREATE INDEX audit_by_function ON audit_events(app, function, id);
CREATE TABLE guest_logs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms         INTEGER NOT NULL,
    app           TEXT NOT NULL,
    function      TEXT NOT NULL,
    invocation_id TEXT NOT NULL,
    stream        TEXT NOT NULL,
    line          TEXT NOT NULL
) STRICT;
CREATE INDEX logs_by_function ON guest_logs(app, function, id);
";

/// Version 2: what each function of a version was admitted with (signature bundle, SBOM).
const SCHEMA_V2: &str = "
CREATE TABLE attestations (
    app        TEXT NOT NULL,
    version_id TEXT NOT NULL,
    function   TEXT NOT NULL,
    bundle     TEXT NOT NULL,
    sbom       TEXT NOT NULL,
    PRIMARY KEY (app, version_id, function),
    FOREIGN KEY (app, version_id) REFERENCES versions(app, version_id)
) STRICT;
";

/// Version 3: API keys for `auth.api-key` functions. Only a SHA-256 of each key's secret is
/// kept; the key itself is shown once, when it is created.
const SCHEMA_V3: &str = "
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    app         TEXT NOT NULL,
    functions   TEXT NOT NULL,
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    expires_ms  INTEGER,
    revoked_ms  INTEGER
) STRICT;
CREATE INDEX api_keys_by_app ON api_keys(app);
";

/// Version 4: the files a version's manifest refers to (a JWKS, a CA bundle, a schema), by
/// the path written in the manifest; their bytes are blobs, checked against their digest.
const SCHEMA_V4: &str = "
CREATE TABLE version_files (
    app        TEXT NOT NULL,
    version_id TEXT NOT NULL,
    path       TEXT NOT NULL,
    digest     TEXT NOT NULL REFERENCES blobs(digest),
    PRIMARY KEY (app, version_id, path),
    FOREIGN KEY (app, version_id) REFERENCES versions(app, version_id)
) STRICT;
";

/// Version 5: operators of the remote control plane and their sessions. An operator's TOTP
/// secret is stored sealed (AES-256-GCM under a key derived from the node secret, see
/// `zerofn-server`'s `operators`), never in plaintext; `last_totp_step` is the replay guard
/// (a code at or before it is refused). Sessions keep only the SHA-256 of their token.
const SCHEMA_V5: &str = "
CREATE TABLE operators (
    name             TEXT PRIMARY KEY,
    role             TEXT NOT NULL,
    public_key       TEXT NOT NULL,
    totp_sealed      BLOB NOT NULL,
    created_ms       INTEGER NOT NULL,
    last_totp_step   INTEGER,
    failed_logins    INTEGER NOT NULL DEFAULT 0,
    locked_until_ms  INTEGER
) STRICT;
CREATE TABLE operator_sessions (
    token_hash  TEXT PRIMARY KEY,
    operator    TEXT NOT NULL REFERENCES operators(name) ON DELETE CASCADE,
    created_ms  INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL,
    revoked_ms  INTEGER
) STRICT;
CREATE INDEX operator_sessions_by_operator ON operator_sessions(operator);
";

/// Version 6: local queues (`trigger.queue`). A message is a CloudEvent in the JSON format; it
/// is deleted once delivered, and dead-lettered (`dead_ms` set, kept with its last error) when
/// its attempts run out.
const SCHEMA_V6: &str = "
CREATE TABLE queue_messages (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    app            TEXT NOT NULL,
    queue          TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    event          TEXT NOT NULL,
    enqueued_ms    INTEGER NOT NULL,
    attempts       INTEGER NOT NULL,
    available_ms   INTEGER NOT NULL,
    lease_until_ms INTEGER,
    last_error     TEXT,
    dead_ms        INTEGER
) STRICT;
CREATE INDEX queue_messages_due ON queue_messages(dead_ms, available_ms, id);
CREATE INDEX queue_messages_by_queue ON queue_messages(app, queue, id);
";

/// Version 7: secrets, per app and name, sealed by `zerofn-vault` (envelope encryption): the
/// id of the master key that wrapped the data key, the wrapped data key and the ciphertext.
/// No plaintext column exists. A rotation replaces the row with a new version.
const SCHEMA_V7: &str = "
CREATE TABLE secrets (
    app           TEXT NOT NULL,
    name          TEXT NOT NULL,
    version       INTEGER NOT NULL,
    master_key_id TEXT NOT NULL,
    wrapped_key   BLOB NOT NULL,
    ciphertext    BLOB NOT NULL,
    created_ms    INTEGER NOT NULL,
    rotated_ms    INTEGER NOT NULL,
    PRIMARY KEY (app, name)
) STRICT;
";

/// Version 8: functions' key-value data (`wasi:keyvalue`), one row per (app, bucket, key).
/// Values are sealed (`master_key_id`, `wrapped_key`, `ciphertext`: see `kv.rs`); keys are
/// stored as their bytes, so comparisons are exact. `id` is the `list-keys` cursor; `size`
/// (key and value bytes) is what the app's quota counts.
const SCHEMA_V8: &str = "
CREATE TABLE kv_entries (
    id            INTEGER PRIMARY KEY,
    app           TEXT NOT NULL,
    bucket        TEXT NOT NULL,
    key           BLOB NOT NULL,
    size          INTEGER NOT NULL,
    master_key_id TEXT NOT NULL,
    wrapped_key   BLOB NOT NULL,
    ciphertext    BLOB NOT NULL,
    updated_ms    INTEGER NOT NULL,
    UNIQUE (app, bucket, key)
) STRICT;
CREATE INDEX kv_entries_by_app ON kv_entries(app, size);
";

/// Version 9: the monitoring loop.
/// - `audit_events` gains the trace id (for `zerofn trace`) and the hash chain: `hash` is
///   SHA-256 over the previous row's hash, this row's id and its event JSON (see
///   `zerofn-audit`'s chain). Rows written before version 9 have no hash; the chain starts at
///   the first row that has one.
/// - `audit_checkpoints`: the chain's head at a point, signed by the node's key (a DSSE
///   envelope), so that rewriting the whole chain after it is detected too.
/// - `incidents`: what the detectors opened, with their evidence, the actions taken and how an
///   operator resolved them.
/// - `quarantines`: functions that may not serve until released (survives a restart).
const SCHEMA_V9: &str = "
ALTER TABLE audit_events ADD COLUMN trace_id TEXT;
ALTER TABLE audit_events ADD COLUMN hash BLOB;
CREATE INDEX audit_by_trace ON audit_events(trace_id) WHERE trace_id IS NOT NULL;
CREATE TABLE audit_checkpoints (
    event_id INTEGER PRIMARY KEY,
    at_ms    INTEGER NOT NULL,
    hash     BLOB NOT NULL,
    key_id   TEXT NOT NULL,
    envelope TEXT NOT NULL
) STRICT;
CREATE TABLE incidents (
    id            TEXT PRIMARY KEY,
    app           TEXT NOT NULL,
    function      TEXT NOT NULL,
    version_id    TEXT,
    detector      TEXT NOT NULL,
    severity      TEXT NOT NULL,
    summary       TEXT NOT NULL,
    evidence      TEXT NOT NULL,
    offending_ms  INTEGER NOT NULL,
    opened_ms     INTEGER NOT NULL,
    actions       TEXT NOT NULL,
    responded_ms  INTEGER,
    status        TEXT NOT NULL,
    resolution    TEXT,
    resolved_ms   INTEGER,
    resolved_by   TEXT,
    note          TEXT
) STRICT;
CREATE INDEX incidents_by_function ON incidents(app, function, opened_ms);
CREATE TABLE quarantines (
    app         TEXT NOT NULL,
    function    TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    since_ms    INTEGER NOT NULL,
    PRIMARY KEY (app, function)
) STRICT;
";

/// Sets durability pragmas and brings the schema up to date.
pub(crate) fn prepare(connection: &Connection) -> Result<(), StoreError> {
    // WAL lets readers proceed during the audit writer's batches. synchronous=NORMAL in WAL
    // mode makes every commit survive a crash of the process (kill -9); deploys additionally
    // sync to disk before they report success (see `versions.rs`).
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    // The WAL is copied back into the database (and synced) every 8 192 pages (32 MiB)
    // instead of SQLite's 1 000: the audit writer's batches are the bulk of all writes, and
    // copying back eight times less often is what takes audit appends past 100 000 events/s
    // (BENCHMARKS.md). Durability is unchanged: every commit is in the WAL either way.
    connection.pragma_update(None, "wal_autocheckpoint", 8192)?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    connection.busy_timeout(std::time::Duration::from_secs(5))?;
    let found: i64 = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (version, sql) in [
        (1, SCHEMA_V1),
        (2, SCHEMA_V2),
        (3, SCHEMA_V3),
        (4, SCHEMA_V4),
        (5, SCHEMA_V5),
        (6, SCHEMA_V6),
        (7, SCHEMA_V7),
        (8, SCHEMA_V8),
        (9, SCHEMA_V9),
    ] {
        if found < version {
            connection.execute_batch(&format!(
                "BEGIN; {sql} PRAGMA user_version = {version}; COMMIT;"
            ))?;
        }
    }
    Ok(())
}
