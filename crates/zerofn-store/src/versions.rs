//! Apps and their immutable versions: component blobs addressed by digest, version records, and
//! the activation history that says which version serves and what a rollback returns to.

use crate::{Store, StoreError, content_digest, now_ms};
use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};

/// A version about to be recorded: the manifest as written and each function's component.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub app: String,
    pub app_version: String,
    pub manifest: String,
    /// `(function name, component bytes)`, one per function.
    pub components: Vec<(String, Vec<u8>)>,
    /// What each function was admitted with, by function name.
    pub attestations: Vec<Attestation>,
    /// `(path as written in the manifest, bytes)` of every file the manifest refers to.
    pub files: Vec<(String, Vec<u8>)>,
}

/// A function's signature bundle (Sigstore bundle JSON) and SBOM (CycloneDX JSON), kept with
/// the version so that every later load can verify it again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attestation {
    pub function: String,
    pub bundle: String,
    pub sbom: String,
}

impl NewVersion {
    /// The version id: a digest over the manifest, every function's component digest and every
    /// referenced file's digest, so the same app deployed twice is the same version, and any
    /// change to code or configuration is a new one.
    pub fn version_id(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.app.as_bytes());
        hasher.update([0]);
        hasher.update(self.manifest.as_bytes());
        let mut parts: Vec<(String, String)> = self
            .components
            .iter()
            .map(|(function, bytes)| (function.clone(), content_digest(bytes)))
            .collect();
        // Files are part of what the version is: a new key set is a new version, so a deploy
        // of it can never be mistaken for (and keep the files of) the old one.
        parts.extend(
            self.files
                .iter()
                .map(|(path, bytes)| (format!("file:{path}"), content_digest(bytes))),
        );
        parts.sort();
        for (function, digest) in parts {
            hasher.update([0]);
            hasher.update(function.as_bytes());
            hasher.update([0]);
            hasher.update(digest.as_bytes());
        }
        format!("sha256:{}", hex::encode(hasher.finalize()))
    }
}

/// A function's component within a recorded version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ComponentRef {
    pub function: String,
    pub digest: String,
}

/// A recorded, immutable version of an app.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct VersionRecord {
    pub app: String,
    pub version_id: String,
    pub app_version: String,
    pub manifest: String,
    pub created_ms: i64,
    pub components: Vec<ComponentRef>,
}

/// One entry of an app's activation history.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Activation {
    pub seq: i64,
    pub version_id: String,
    pub reason: String,
    pub at_ms: i64,
}

/// An app and the version that serves it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AppSummary {
    pub app: String,
    pub active_version_id: String,
    pub app_version: String,
    pub activated_ms: i64,
}

impl Store {
    /// Records `version` and makes it the app's active version, in one transaction: either the
    /// blobs, the record and the activation all commit, or nothing does and the previous version
    /// keeps serving. Recording a version that already exists only re-activates it.
    pub fn deploy(&self, version: &NewVersion, reason: &str) -> Result<VersionRecord, StoreError> {
        let version_id = version.version_id();
        let created_ms = now_ms();
        let mut connection = self.connection();
        let tx = connection.transaction()?;
        tx.execute(
            "INSERT OR IGNORE INTO versions (app, version_id, app_version, manifest, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                version.app,
                version_id,
                version.app_version,
                version.manifest,
                created_ms
            ],
        )?;
        // Components and referenced files are blobs by digest, linked to the version by name.
        let links = [
            ("version_components", "function", &version.components),
            ("version_files", "path", &version.files),
        ];
        for (table, key, entries) in links {
            for (name, bytes) in entries {
                let digest = content_digest(bytes);
                tx.execute(
                    "INSERT OR IGNORE INTO blobs (digest, bytes) VALUES (?1, ?2)",
                    params![digest, bytes],
                )?;
                tx.execute(
                    &format!(
                        "INSERT OR IGNORE INTO {table} (app, version_id, {key}, digest)
                         VALUES (?1, ?2, ?3, ?4)"
                    ),
                    params![version.app, version_id, name, digest],
                )?;
            }
        }
        for attestation in &version.attestations {
            tx.execute(
                // A redeploy of the same content with a new signature replaces the old one:
                // the stored bundle is always the one this deploy verified.
                "INSERT INTO attestations (app, version_id, function, bundle, sbom)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (app, version_id, function)
                 DO UPDATE SET bundle = excluded.bundle, sbom = excluded.sbom",
                params![
                    version.app,
                    version_id,
                    attestation.function,
                    attestation.bundle,
                    attestation.sbom
                ],
            )?;
        }
        tx.execute(
            "INSERT INTO activations (app, version_id, reason, at_ms) VALUES (?1, ?2, ?3, ?4)",
            params![version.app, version_id, reason, created_ms],
        )?;
        tx.commit()?;
        sync_to_disk(&connection)?;
        drop(connection);
        self.version(&version.app, &version_id)
    }

    /// Makes an already recorded version active again (a rollback or roll-forward).
    pub fn activate(
        &self,
        app: &str,
        version_id: &str,
        reason: &str,
    ) -> Result<VersionRecord, StoreError> {
        let record = self.version(app, version_id)?;
        let connection = self.connection();
        connection.execute(
            "INSERT INTO activations (app, version_id, reason, at_ms) VALUES (?1, ?2, ?3, ?4)",
            params![app, version_id, reason, now_ms()],
        )?;
        sync_to_disk(&connection)?;
        Ok(record)
    }

    /// The version that serves `app`, if it was ever deployed.
    pub fn active_version(&self, app: &str) -> Result<Option<VersionRecord>, StoreError> {
        let version_id: Option<String> = self
            .connection()
            .query_row(
                "SELECT version_id FROM activations WHERE app = ?1 ORDER BY seq DESC LIMIT 1",
                params![app],
                |row| row.get(0),
            )
            .optional()?;
        version_id.map(|id| self.version(app, &id)).transpose()
    }

    /// The activation history of `app`, newest first.
    pub fn activations(&self, app: &str) -> Result<Vec<Activation>, StoreError> {
        let connection = self.connection();
        let mut statement = connection.prepare(
            "SELECT seq, version_id, reason, at_ms FROM activations WHERE app = ?1 ORDER BY seq DESC",
        )?;
        let rows = statement.query_map(params![app], |row| {
            Ok(Activation {
                seq: row.get(0)?,
                version_id: row.get(1)?,
                reason: row.get(2)?,
                at_ms: row.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every deployed app with its active version, sorted by name.
    pub fn apps(&self) -> Result<Vec<AppSummary>, StoreError> {
        let connection = self.connection();
        let mut statement = connection.prepare(
            "SELECT a.app, a.version_id, v.app_version, a.at_ms
             FROM activations a JOIN versions v ON v.app = a.app AND v.version_id = a.version_id
             WHERE a.seq = (SELECT MAX(seq) FROM activations WHERE app = a.app)
             ORDER BY a.app",
        )?;
        let rows = statement.query_map([], |row| {
            Ok(AppSummary {
                app: row.get(0)?,
                active_version_id: row.get(1)?,
                app_version: row.get(2)?,
                activated_ms: row.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every recorded version of `app`, newest first.
    pub fn versions(&self, app: &str) -> Result<Vec<VersionRecord>, StoreError> {
        let ids: Vec<String> = {
            let connection = self.connection();
            let mut statement = connection.prepare(
                "SELECT version_id FROM versions WHERE app = ?1 ORDER BY created_ms DESC, rowid DESC",
            )?;
            let rows = statement.query_map(params![app], |row| row.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        if ids.is_empty() {
            return Err(StoreError::UnknownApp(app.to_string()));
        }
        ids.iter().map(|id| self.version(app, id)).collect()
    }

    /// One recorded version.
    pub fn version(&self, app: &str, version_id: &str) -> Result<VersionRecord, StoreError> {
        let connection = self.connection();
        let record = connection
            .query_row(
                "SELECT app_version, manifest, created_ms FROM versions
                 WHERE app = ?1 AND version_id = ?2",
                params![app, version_id],
                |row| {
                    Ok(VersionRecord {
                        app: app.to_string(),
                        version_id: version_id.to_string(),
                        app_version: row.get(0)?,
                        manifest: row.get(1)?,
                        created_ms: row.get(2)?,
                        components: Vec::new(),
                    })
                },
            )
            .optional()?;
        let Some(mut record) = record else {
            return Err(StoreError::UnknownVersion {
                app: app.to_string(),
                version: version_id.to_string(),
            });
        };
        let mut statement = connection.prepare(
            "SELECT function, digest FROM version_components
             WHERE app = ?1 AND version_id = ?2 ORDER BY function",
        )?;
        let rows = statement.query_map(params![app, version_id], |row| {
            Ok(ComponentRef {
                function: row.get(0)?,
                digest: row.get(1)?,
            })
        })?;
        record.components = rows.collect::<Result<_, _>>()?;
        Ok(record)
    }

    /// What each function of a version was admitted with, by function name.
    pub fn attestations(
        &self,
        app: &str,
        version_id: &str,
    ) -> Result<Vec<Attestation>, StoreError> {
        let connection = self.connection();
        let mut statement = connection.prepare(
            "SELECT function, bundle, sbom FROM attestations
             WHERE app = ?1 AND version_id = ?2 ORDER BY function",
        )?;
        let rows = statement.query_map(params![app, version_id], |row| {
            Ok(Attestation {
                function: row.get(0)?,
                bundle: row.get(1)?,
                sbom: row.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The files a version's manifest refers to, `(path as written, bytes)`, each checked
    /// against its digest like a component.
    pub fn version_files(
        &self,
        app: &str,
        version_id: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let refs: Vec<(String, String)> = {
            let connection = self.connection();
            let mut statement = connection.prepare(
                "SELECT path, digest FROM version_files
                 WHERE app = ?1 AND version_id = ?2 ORDER BY path",
            )?;
            let rows = statement.query_map(params![app, version_id], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        refs.into_iter()
            .map(|(path, digest)| Ok((path, self.component(&digest)?)))
            .collect()
    }

    /// The bytes of a component, checked against their digest before they are returned: a blob
    /// that was altered on disk is refused, never handed to the compiler.
    pub fn component(&self, digest: &str) -> Result<Vec<u8>, StoreError> {
        let bytes: Option<Vec<u8>> = self
            .connection()
            .query_row(
                "SELECT bytes FROM blobs WHERE digest = ?1",
                params![digest],
                |row| row.get(0),
            )
            .optional()?;
        let bytes = bytes.ok_or_else(|| StoreError::Malformed(format!("missing blob {digest}")))?;
        if content_digest(&bytes) != digest {
            return Err(StoreError::Integrity {
                digest: digest.to_string(),
            });
        }
        Ok(bytes)
    }
}

/// Makes what was committed survive power loss, not only a crash of the process: a deploy or
/// rollback is reported done only once it is on disk.
fn sync_to_disk(connection: &rusqlite::Connection) -> Result<(), StoreError> {
    connection.query_row("PRAGMA wal_checkpoint(FULL)", [], |_| Ok(()))?;
    Ok(())
}
