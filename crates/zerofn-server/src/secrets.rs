//! The secrets broker. Operators set, rotate, list and delete an app's secrets; values are
//! sealed by the [`Vault`](crate::vault::Vault) (a data key per value, wrapped by the master
//! key) and never stored, logged or audited in plaintext. An invocation reads the secrets its
//! grants name through `wasi:config/store` ([`InvocationSecrets`]): each read is a PDP
//! decision, decrypted on demand for that invocation only, and audited (function, invocation,
//! name, version; never the value). `get-all` is refused: a function names what it reads.

use crate::platform::Platform;
use crate::routes::ActiveFunction;
use http::StatusCode;
use std::sync::{Arc, Weak};
use zerofn_audit::{AuditEvent, EventKind, Outcome};
use zerofn_runtime::{ConfigFuture, ConfigRefusal, ConfigSource, ConfigValue};
use zerofn_store::{SecretRecord, SecretWrite, StoreError, secret_context};
use zerofn_vault::VaultError;
use zeroize::Zeroizing;

/// The largest secret value, in bytes.
pub const MAX_SECRET_BYTES: usize = 64 << 10;

/// Why an operator's secrets request was refused or failed. Never carries a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("`{0}` is not an app name: use the `[app] name` of the manifest")]
    InvalidApp(String),
    #[error(
        "`{0}` is not a secret name: use 1 to 64 lowercase letters, digits and `_`, not starting with a digit (as in `secrets = [...]` grants)"
    )]
    InvalidName(String),
    #[error("the value is empty: a secret must hold something")]
    Empty,
    #[error("the value is {len} bytes; a secret holds at most {max}")]
    TooLarge { len: usize, max: usize },
    #[error(
        "the value is not UTF-8 text: functions read secrets through `wasi:config`, whose values are strings (encode binary values, e.g. as base64)"
    )]
    NotText,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Vault(#[from] VaultError),
    #[error("{0}")]
    Rotation(#[from] crate::vault::RotationError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl SecretError {
    /// The stable code of the refusal.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidApp(_) => "invalid-app-name",
            Self::InvalidName(_) => "invalid-secret-name",
            Self::Empty => "secret-empty",
            Self::TooLarge { .. } => "secret-too-large",
            Self::NotText => "secret-not-text",
            Self::Store(StoreError::SecretExists { .. }) => "secret-exists",
            Self::Store(StoreError::UnknownSecret { .. }) => "unknown-secret",
            Self::Store(_) => "store-error",
            Self::Vault(_) | Self::Rotation(_) => "master-key-error",
            Self::Internal(_) => "internal-error",
        }
    }

    /// The HTTP status the control plane answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidApp(_) | Self::InvalidName(_) | Self::Empty | Self::NotText => {
                StatusCode::BAD_REQUEST
            }
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Store(StoreError::SecretExists { .. }) => StatusCode::CONFLICT,
            Self::Store(StoreError::UnknownSecret { .. }) => StatusCode::NOT_FOUND,
            Self::Vault(VaultError::NoKey(_)) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<SecretError> for crate::problem::Problem {
    fn from(error: SecretError) -> Self {
        crate::problem::Problem::new(
            error.status(),
            error.code(),
            "Secrets request refused",
            error.to_string(),
        )
    }
}

/// What deleting a secret did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Deleted {
    pub app: String,
    pub name: String,
    /// Active functions whose grants still name it: their reads now find nothing.
    pub still_granted_to: Vec<String>,
}

fn check_names(app: &str, name: &str) -> Result<(), SecretError> {
    if !zerofn_manifest::is_dns_label(app) {
        return Err(SecretError::InvalidApp(app.chars().take(64).collect()));
    }
    if !zerofn_manifest::is_identifier(name) {
        return Err(SecretError::InvalidName(name.chars().take(64).collect()));
    }
    Ok(())
}

fn check_value(value: &[u8]) -> Result<(), SecretError> {
    if value.is_empty() {
        return Err(SecretError::Empty);
    }
    if value.len() > MAX_SECRET_BYTES {
        return Err(SecretError::TooLarge {
            len: value.len(),
            max: MAX_SECRET_BYTES,
        });
    }
    std::str::from_utf8(value).map_err(|_| SecretError::NotText)?;
    Ok(())
}

async fn blocking<T: Send + 'static>(
    task: impl FnOnce() -> Result<T, SecretError> + Send + 'static,
) -> Result<T, SecretError> {
    tokio::task::spawn_blocking(task)
        .await
        .map_err(|e| SecretError::Internal(e.to_string()))?
}

impl Platform {
    /// For `zerofn up`, the development path only: stores a random value (32 bytes, base64url)
    /// for every secret `manifest` grants that the app does not have yet, so that an example
    /// deploys and runs with no setup. Returns the names created; each is a `secret.admin`
    /// event like any other write. Never used by `deploy`, which refuses undefined secrets.
    pub async fn create_missing_dev_secrets(
        &self,
        manifest: &zerofn_manifest::Manifest,
    ) -> Result<Vec<String>, SecretError> {
        use base64::Engine as _;
        let app = manifest.app_name();
        let mut names: Vec<String> = manifest
            .functions()
            .flat_map(|f| f.grants.secrets.iter().cloned())
            .collect();
        names.sort();
        names.dedup();
        let mut created = Vec::new();
        for name in names {
            let store = self.store().clone();
            let (owner, wanted) = (app.to_string(), name.clone());
            let exists = tokio::task::spawn_blocking(move || store.has_secret(&owner, &wanted))
                .await
                .map_err(|e| SecretError::Store(StoreError::Malformed(e.to_string())))?
                .map_err(SecretError::Store)?;
            if exists {
                continue;
            }
            let mut bytes = Zeroizing::new([0u8; 32]);
            getrandom::fill(bytes.as_mut_slice())
                .map_err(|e| SecretError::Store(StoreError::Malformed(e.to_string())))?;
            let value = Zeroizing::new(
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(bytes.as_slice())
                    .into_bytes(),
            );
            self.write_secret(app, &name, SecretWrite::Create, value)
                .await?;
            created.push(name);
        }
        Ok(created)
    }

    /// Creates (`SecretWrite::Create`) or rotates (`SecretWrite::Rotate`, a new version) the
    /// secret `name` of `app`. Invocations already running keep what they read; the next read
    /// gets the new version.
    pub async fn write_secret(
        &self,
        app: &str,
        name: &str,
        write: SecretWrite,
        value: Zeroizing<Vec<u8>>,
    ) -> Result<SecretRecord, SecretError> {
        let reason = match write {
            SecretWrite::Create => "secret-set",
            SecretWrite::Rotate => "secret-rotated",
        };
        let result = match check_names(app, name).and_then(|()| check_value(&value)) {
            Ok(()) => {
                let (store, vault) = (self.store().clone(), self.vault().clone());
                let (app, name) = (app.to_string(), name.to_string());
                blocking(move || {
                    vault.with_keyring(|keyring| {
                        store.put_secret(&app, &name, write, |context| {
                            keyring.seal(context, &value).map_err(SecretError::from)
                        })
                    })
                })
                .await
            }
            Err(error) => Err(error),
        };
        let event = match &result {
            Ok(record) => AuditEvent::new(EventKind::SecretAdmin, Outcome::Success)
                .reason(reason)
                .detail("version", record.version)
                .detail("master_key_id", record.master_key_id.clone()),
            Err(error) => AuditEvent::new(EventKind::SecretAdmin, Outcome::Denied)
                .reason(error.code())
                .detail("action", reason)
                .detail("error", error.to_string()),
        };
        self.audit()
            .record(event.app(app).detail("name", name.to_string()))
            .await;
        result
    }

    /// Deletes the secret `name` of `app`. Functions granted it read nothing from then on.
    pub async fn delete_secret(&self, app: &str, name: &str) -> Result<Deleted, SecretError> {
        let result = match check_names(app, name) {
            Ok(()) => {
                let store = self.store().clone();
                let (a, n) = (app.to_string(), name.to_string());
                blocking(move || match store.delete_secret(&a, &n)? {
                    true => Ok(()),
                    false => Err(StoreError::UnknownSecret { app: a, name: n }.into()),
                })
                .await
            }
            Err(error) => Err(error),
        };
        let event = match &result {
            Ok(()) => {
                AuditEvent::new(EventKind::SecretAdmin, Outcome::Success).reason("secret-deleted")
            }
            Err(error) => AuditEvent::new(EventKind::SecretAdmin, Outcome::Denied)
                .reason(error.code())
                .detail("action", "secret-deleted"),
        };
        self.audit()
            .record(event.app(app).detail("name", name.to_string()))
            .await;
        result?;
        let still_granted_to = self
            .routes()
            .app(app)
            .map(|active| {
                active
                    .functions
                    .iter()
                    .filter(|f| f.grants.secrets.iter().any(|s| s == name))
                    .map(|f| f.name.to_string())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Deleted {
            app: app.to_string(),
            name: name.to_string(),
            still_granted_to,
        })
    }

    /// The secrets of `app`: names, versions, master key ids and times; never values.
    pub async fn list_secrets(&self, app: &str) -> Result<Vec<SecretRecord>, SecretError> {
        if !zerofn_manifest::is_dns_label(app) {
            return Err(SecretError::InvalidApp(app.chars().take(64).collect()));
        }
        let store = self.store().clone();
        let a = app.to_string();
        let records = blocking(move || Ok(store.secrets(&a)?)).await?;
        self.audit()
            .record(
                AuditEvent::new(EventKind::SecretAdmin, Outcome::Success)
                    .reason("secrets-listed")
                    .app(app)
                    .detail("count", records.len()),
            )
            .await;
        Ok(records)
    }

    /// Rotates the master key and re-wraps every sealed row (see [`crate::vault`]).
    pub async fn rotate_master_key(&self) -> Result<crate::vault::Rotation, SecretError> {
        let (store, vault) = (self.store().clone(), self.vault().clone());
        let result = blocking(move || Ok(vault.rotate(&store)?)).await;
        self.record_rotation("master-key-rotated", &result).await;
        result
    }

    /// Records a rotation (or a failed one).
    pub(crate) async fn record_rotation(
        &self,
        reason: &str,
        result: &Result<crate::vault::Rotation, SecretError>,
    ) {
        let event = match result {
            Ok(rotation) => {
                let outcome = if rotation.rows.unopened.is_empty() {
                    Outcome::Success
                } else {
                    Outcome::Failure
                };
                AuditEvent::new(EventKind::SecretAdmin, outcome)
                    .reason(reason)
                    .detail("current_key_id", rotation.current_key_id.clone())
                    .detail("retired_key_ids", rotation.retired_key_ids.clone())
                    .detail("rewrapped", rotation.rows.rewrapped)
                    .detail(
                        "unopened",
                        serde_json::to_value(&rotation.rows.unopened).unwrap_or_default(),
                    )
            }
            Err(error) => AuditEvent::new(EventKind::SecretAdmin, Outcome::Failure)
                .reason(error.code())
                .detail("action", reason.to_string())
                .detail("error", error.to_string()),
        };
        self.audit().record(event).await;
    }

    /// One invocation's read of secret `name` (see [`InvocationSecrets`]).
    async fn read_secret(
        &self,
        reader: &InvocationSecrets,
        name: String,
    ) -> Result<Option<ConfigValue>, ConfigRefusal> {
        let function = &reader.function;
        // The read's own span: its decision and its `secret.read` event.
        let span = reader.scope.span();
        let record = |outcome: Outcome, reason: &str| {
            reader
                .scope
                .event_in(&span, EventKind::SecretRead, outcome)
                .reason(reason)
                // A guest chooses the name: bounded before it is recorded.
                .detail("name", name.chars().take(128).collect::<String>())
        };
        let not_granted = ConfigRefusal(format!(
            "secret `{}` is not granted to function `{}`: name it in `secrets = [...]` under `[functions.{}.grants]` and sign again",
            name.chars().take(128).collect::<String>(),
            function.name,
            function.name
        ));
        // A name outside the grammar cannot be granted; it is refused without asking Cedar to
        // build an entity from it.
        if !zerofn_manifest::is_identifier(&name) {
            self.audit()
                .record(record(Outcome::Denied, "secret-not-granted"))
                .await;
            return Err(not_granted);
        }
        let decision = self
            .decide(
                &reader.scope,
                &span,
                &reader.chain,
                zerofn_policy::Capability::SecretRead { name: name.clone() },
                format!("{}/{name}", function.app),
                |event| event,
            )
            .await;
        if !decision.allowed {
            self.audit()
                .record(record(Outcome::Denied, "secret-not-granted"))
                .await;
            return Err(not_granted);
        }
        let (store, vault) = (self.store().clone(), self.vault().clone());
        let (app, key) = (function.app.to_string(), name.clone());
        let opened = tokio::task::spawn_blocking(move || {
            vault.with_keyring(|keyring| {
                let Some((stored, sealed)) = store.secret(&app, &key).map_err(|e| e.to_string())?
                else {
                    return Ok(None);
                };
                let context = secret_context(&app, &key, stored.version);
                match keyring.open(&context, &sealed) {
                    Ok(mut plaintext) => match String::from_utf8(std::mem::take(&mut *plaintext)) {
                        Ok(text) => Ok(Some((stored.version, Zeroizing::new(text)))),
                        Err(not_text) => {
                            drop(Zeroizing::new(not_text.into_bytes()));
                            Err(VaultError::Tampered.to_string())
                        }
                    },
                    Err(error) => Err(error.to_string()),
                }
            })
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        match opened {
            Ok(Some((version, value))) => {
                self.audit()
                    .record(
                        record(Outcome::Success, "secret-read").detail("secret_version", version),
                    )
                    .await;
                Ok(Some(value))
            }
            Ok(None) => {
                self.audit()
                    .record(record(Outcome::Failure, "secret-undefined"))
                    .await;
                Ok(None)
            }
            Err(error) => {
                self.audit()
                    .record(
                        reader
                            .scope
                            .event_in(&span, EventKind::IntegrityFailure, Outcome::Denied)
                            .reason("secret-unreadable")
                            .detail("name", name.clone())
                            .detail("error", error),
                    )
                    .await;
                self.audit()
                    .record(record(Outcome::Failure, "secret-unreadable"))
                    .await;
                Err(ConfigRefusal(format!(
                    "secret `{name}` could not be read; the operator can see why in the audit stream (invocation {})",
                    reader.scope.invocation_id
                )))
            }
        }
    }
}

/// One invocation's `wasi:config/store`: its function's secrets, as its grants allow.
pub(crate) struct InvocationSecrets {
    pub(crate) platform: Weak<Platform>,
    pub(crate) function: Arc<ActiveFunction>,
    /// The invocation's id, identity, caller and span.
    pub(crate) scope: Arc<zerofn_audit::InvocationScope>,
    /// SPIFFE IDs of the functions that called this invocation, outermost first.
    pub(crate) chain: Arc<[String]>,
    /// Set by the response loop (`revoke-leases`, quarantine): every later read is refused.
    pub(crate) revoked: Arc<std::sync::atomic::AtomicBool>,
}

impl InvocationSecrets {
    /// A read after the response loop revoked the invocation's leases: refused and recorded
    /// (`secret.read`, reason `lease-revoked`).
    fn refuse_revoked(&self, name: String) -> ConfigFuture<Option<ConfigValue>> {
        let platform = self.platform.upgrade();
        let event = self
            .scope
            .event_in(&self.scope.span(), EventKind::SecretRead, Outcome::Denied)
            .reason("lease-revoked")
            .detail("name", name.chars().take(128).collect::<String>());
        Box::pin(async move {
            if let Some(platform) = platform {
                platform.audit().record(event).await;
            }
            Err(ConfigRefusal(
                "this invocation's leases were revoked in response to an incident".into(),
            ))
        })
    }

    fn refused<T: Send + 'static>(message: &str) -> ConfigFuture<T> {
        let refusal = ConfigRefusal(message.to_string());
        Box::pin(async move { Err(refusal) })
    }
}

impl ConfigSource for InvocationSecrets {
    fn get(&self, name: String) -> ConfigFuture<Option<ConfigValue>> {
        if self.revoked.load(std::sync::atomic::Ordering::SeqCst) {
            return self.refuse_revoked(name);
        }
        // A plain config value is part of the signed manifest, not a secret: no decision or
        // read event (validation keeps its names apart from granted secrets).
        if let Some(value) = self.function.config.get(&name) {
            let value = ConfigValue::new(value.clone());
            return Box::pin(async move { Ok(Some(value)) });
        }
        let Some(platform) = self.platform.upgrade() else {
            return Self::refused("the platform is shutting down");
        };
        let reader = InvocationSecrets {
            platform: self.platform.clone(),
            function: self.function.clone(),
            scope: self.scope.clone(),
            chain: self.chain.clone(),
            revoked: self.revoked.clone(),
        };
        Box::pin(async move { platform.read_secret(&reader, name).await })
    }

    fn get_all(&self) -> ConfigFuture<Vec<(String, ConfigValue)>> {
        let Some(platform) = self.platform.upgrade() else {
            return Self::refused("the platform is shutting down");
        };
        let event = self
            .scope
            .event_in(&self.scope.span(), EventKind::SecretRead, Outcome::Denied)
            .reason("secret-list-refused");
        Box::pin(async move {
            platform.audit().record(event).await;
            Err(ConfigRefusal(
                "listing configuration is not allowed: read each granted secret by name with `get`"
                    .into(),
            ))
        })
    }
}
