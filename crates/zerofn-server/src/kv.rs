//! The enforcement point of functions' key-value access (`wasi:keyvalue`). Each invocation gets
//! an [`InvocationKeyValue`]: `open(bucket)` asks the PDP whether the function may read and
//! write that bucket of *its own app* (there is no syntax for another app's bucket: the app
//! comes from the route table, the name is only ever a bucket name), and the bucket it returns
//! enforces that access, the operator's size limits and the app's quotas on every operation
//! before the store sees it. Values are sealed and opened by the store with the node's keyring.
//!
//! Every refusal is an error to the guest and a `kv.denied` event naming the rule; every open
//! is an `authz.decision` event; every write that succeeds (set, delete, increment, set-many,
//! delete-many) is a `kv.write` event with the operation, the bucket and the number of keys
//! (never a key or a value). Each is in its own span under the invocation's. Reads that succeed
//! are counted per function in the metrics; the first through each opened bucket is also a
//! `kv.read` event, so that the audit stream shows which buckets a function really reads
//! (`zerofn policy suggest` narrows `read-write` from it) without one event per read.

use crate::platform::Platform;
use crate::routes::ActiveFunction;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use zerofn_audit::{AuditEvent, EventKind, InvocationScope, Outcome, TraceContext};
use zerofn_runtime::{KeyPage, KeyValue, KvBucket, KvError, shown};
use zerofn_store::{KvQuota, KvStoreError};
use zerofn_vault::Keyring;

/// Keys `list-keys` returns per page.
pub const LIST_PAGE_KEYS: usize = 1000;

/// The operator's limits on key-value use (`[kv]` in the platform config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvLimits {
    /// Bytes of one key (UTF-8).
    pub max_key_bytes: usize,
    /// Bytes of one value.
    pub max_value_bytes: usize,
    /// Keys in one `get-many`, `set-many` or `delete-many`.
    pub max_batch_keys: usize,
    /// Value bytes one `get-many` returns or one `set-many` writes.
    pub max_batch_bytes: usize,
    /// Keys in one bucket of one app.
    pub max_keys_per_bucket: u64,
    /// Key and value bytes across all buckets of one app.
    pub max_bytes_per_app: u64,
}

impl Default for KvLimits {
    fn default() -> Self {
        Self {
            max_key_bytes: 512,
            max_value_bytes: 1 << 20,
            max_batch_keys: 100,
            max_batch_bytes: 4 << 20,
            max_keys_per_bucket: 100_000,
            max_bytes_per_app: 256 << 20,
        }
    }
}

impl KvLimits {
    fn quota(&self) -> KvQuota {
        KvQuota {
            max_keys_per_bucket: self.max_keys_per_bucket,
            max_bytes_per_app: self.max_bytes_per_app,
        }
    }
}

/// One invocation's key-value access.
pub(crate) struct InvocationKeyValue {
    pub(crate) platform: Weak<Platform>,
    pub(crate) function: Arc<ActiveFunction>,
    /// The invocation's id, identity, caller and span.
    pub(crate) scope: Arc<InvocationScope>,
    /// SPIFFE IDs of the functions that called this invocation, for the PDP's context.
    pub(crate) chain: Arc<[String]>,
}

#[async_trait::async_trait]
impl KeyValue for InvocationKeyValue {
    async fn open(&self, bucket: &str) -> Result<Arc<dyn KvBucket>, KvError> {
        let platform = self.platform.upgrade().ok_or(KvError::AccessDenied)?;
        let function = &self.function;
        let request = |capability| zerofn_policy::AccessRequest {
            principal: zerofn_policy::FunctionRef::new(&*function.app, &*function.name),
            capability,
            context: zerofn_policy::RequestContext {
                invocation_id: self.scope.invocation_id.to_string(),
                caller_chain: self.chain.to_vec(),
                time: zerofn_store::now_ms() / 1000,
                risk: 0,
            },
        };
        let read_request = request(zerofn_policy::Capability::KvRead {
            bucket: bucket.to_string(),
        });
        let write_request = request(zerofn_policy::Capability::KvWrite {
            bucket: bucket.to_string(),
        });
        // Host calls run on the guest's fiber stack, too shallow for Cedar's evaluator (it
        // reports a recursion limit and denies): decide on a thread of the blocking pool.
        let pdp = platform.pdp();
        let (read, write) = tokio::task::spawn_blocking(move || {
            (pdp.decide(&read_request), pdp.decide(&write_request))
        })
        .await
        .map_err(|_| KvError::AccessDenied)?;
        let access = match (read.allowed, write.allowed) {
            (true, true) => "read-write",
            (true, false) => "read",
            (false, true) => "write",
            (false, false) => "none",
        };
        let allowed = read.allowed || write.allowed;
        let mut policies = read.policies.clone();
        policies.extend(write.policies.iter().cloned());
        let reason = if allowed {
            format!("{access} allowed by {}", policies.join(", "))
        } else {
            read.explanation()
        };
        // The open's span: its decision, and its refusal if it is refused.
        let span = self.scope.span();
        platform
            .audit()
            .record(
                event(
                    &self.scope,
                    &span,
                    EventKind::AuthzDecision,
                    if allowed {
                        Outcome::Success
                    } else {
                        Outcome::Denied
                    },
                    reason,
                )
                .detail("action", "kv.open")
                .detail("resource", format!("{}/{}", function.app, shown(bucket)))
                .detail("access", access)
                .detail("read", read.explanation())
                .detail("write", write.explanation())
                .detail("policies", policies),
            )
            .await;
        if !allowed {
            refusal(
                &platform,
                &self.function,
                &self.scope,
                &span,
                Refusal {
                    rule: "kv-not-granted",
                    operation: "open",
                    bucket,
                    key: None,
                },
            )
            .await;
            return Err(KvError::AccessDenied);
        }
        Ok(Arc::new(PlatformBucket {
            platform: self.platform.clone(),
            function: self.function.clone(),
            scope: self.scope.clone(),
            bucket: bucket.to_string(),
            read: read.allowed,
            write: write.allowed,
            read_recorded: AtomicBool::new(false),
        }))
    }
}

fn event(
    scope: &InvocationScope,
    span: &TraceContext,
    kind: EventKind,
    outcome: Outcome,
    reason: String,
) -> AuditEvent {
    scope.event_in(span, kind, outcome).reason(reason)
}

/// What was refused, for the `kv.denied` event.
struct Refusal<'a> {
    rule: &'static str,
    operation: &'static str,
    bucket: &'a str,
    key: Option<&'a str>,
}

/// Records a `kv.denied` event and counts the refusal.
async fn refusal(
    platform: &Platform,
    function: &ActiveFunction,
    scope: &InvocationScope,
    span: &TraceContext,
    refused: Refusal<'_>,
) {
    platform.metrics().kv_operation(
        &function.app,
        &function.name,
        refused.operation,
        refused.rule,
    );
    let mut event = event(
        scope,
        span,
        EventKind::KvDenied,
        Outcome::Denied,
        refused.rule.to_string(),
    )
    .detail("operation", refused.operation)
    .detail("bucket", shown(refused.bucket));
    if let Some(key) = refused.key {
        event = event.detail("key", shown(key));
    }
    platform.audit().record(event).await;
}

/// A bucket opened for one invocation, with the access the PDP decided at `open`.
struct PlatformBucket {
    platform: Weak<Platform>,
    function: Arc<ActiveFunction>,
    scope: Arc<InvocationScope>,
    bucket: String,
    read: bool,
    write: bool,
    /// Whether this handle's first successful read was recorded (`kv.read`).
    read_recorded: AtomicBool,
}

/// What an operation needs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    Read,
    Write,
}

/// A refusal: the rule and what the guest is told.
struct Refused {
    rule: &'static str,
    error: KvError,
    key: Option<String>,
}

impl Refused {
    fn other(rule: &'static str, message: String) -> Self {
        Self {
            rule,
            error: KvError::Other(format!("{rule}: {message}")),
            key: None,
        }
    }

    fn key(mut self, key: &str) -> Self {
        self.key = Some(key.to_string());
        self
    }
}

impl PlatformBucket {
    /// Runs one operation on `keys` keys: access check, then `run` (which checks sizes and
    /// calls the store); a refusal is recorded and counted, a success counted and, for a
    /// write, recorded as `kv.write` (for the handle's first read, `kv.read`).
    async fn operation<T>(
        &self,
        operation: &'static str,
        need: Need,
        keys: usize,
        run: impl AsyncFnOnce(&Platform) -> Result<T, Refused>,
    ) -> Result<T, KvError> {
        let platform = self.platform.upgrade().ok_or(KvError::AccessDenied)?;
        let span = self.scope.span();
        let result = match need {
            Need::Read if !self.read => Err(Refused {
                rule: "kv-write-only",
                error: KvError::AccessDenied,
                key: None,
            }),
            Need::Write if !self.write => Err(Refused {
                rule: "kv-read-only",
                error: KvError::AccessDenied,
                key: None,
            }),
            _ => run(&platform).await,
        };
        match result {
            Ok(value) => {
                platform.metrics().kv_operation(
                    &self.function.app,
                    &self.function.name,
                    operation,
                    "ok",
                );
                let first_read =
                    need == Need::Read && !self.read_recorded.swap(true, Ordering::Relaxed);
                if first_read {
                    // Evidence that the function reads this bucket, once per handle: a
                    // read-heavy function does not multiply the stream.
                    platform
                        .audit()
                        .record(
                            event(
                                &self.scope,
                                &span,
                                EventKind::KvRead,
                                Outcome::Success,
                                "read".into(),
                            )
                            .detail("operation", operation)
                            .detail("bucket", shown(&self.bucket)),
                        )
                        .await;
                }
                if need == Need::Write {
                    // Which keys is the guest's data; how many is the record.
                    platform
                        .audit()
                        .record(
                            event(
                                &self.scope,
                                &span,
                                EventKind::KvWrite,
                                Outcome::Success,
                                "written".into(),
                            )
                            .detail("operation", operation)
                            .detail("bucket", shown(&self.bucket))
                            .detail("keys", keys),
                        )
                        .await;
                }
                Ok(value)
            }
            Err(refused) => {
                refusal(
                    &platform,
                    &self.function,
                    &self.scope,
                    &span,
                    Refusal {
                        rule: refused.rule,
                        operation,
                        bucket: &self.bucket,
                        key: refused.key.as_deref(),
                    },
                )
                .await;
                Err(refused.error)
            }
        }
    }

    fn check_key(&self, limits: &KvLimits, key: &str) -> Result<(), Refused> {
        if key.is_empty() {
            return Err(Refused::other(
                "kv-key-empty",
                "a key may not be empty".into(),
            ));
        }
        if key.len() > limits.max_key_bytes {
            return Err(Refused::other(
                "kv-key-too-large",
                format!(
                    "the key is {} bytes; keys are at most {} (platform config `kv.max_key_bytes`)",
                    key.len(),
                    limits.max_key_bytes
                ),
            )
            .key(key));
        }
        Ok(())
    }

    fn check_value(&self, limits: &KvLimits, key: &str, value: &[u8]) -> Result<(), Refused> {
        if value.len() > limits.max_value_bytes {
            return Err(Refused::other(
                "kv-value-too-large",
                format!(
                    "the value is {} bytes; values are at most {} (platform config `kv.max_value_bytes`)",
                    value.len(),
                    limits.max_value_bytes
                ),
            )
            .key(key));
        }
        Ok(())
    }

    fn check_batch(&self, limits: &KvLimits, keys: usize) -> Result<(), Refused> {
        if keys > limits.max_batch_keys {
            return Err(Refused::other(
                "kv-batch-too-large",
                format!(
                    "a batch names {keys} keys; batches are at most {} (platform config `kv.max_batch_keys`)",
                    limits.max_batch_keys
                ),
            ));
        }
        Ok(())
    }

    /// Runs `work` against the store off the async executor (SQLite blocks).
    async fn store<T: Send + 'static>(
        &self,
        platform: &Platform,
        work: impl FnOnce(&zerofn_store::Store, &Keyring) -> Result<T, KvStoreError> + Send + 'static,
    ) -> Result<T, Refused> {
        let store = platform.store().clone();
        let vault = platform.vault().clone();
        // Inside the vault's lock, so that a master-key rotation never interleaves with a
        // value being sealed or opened.
        let result = tokio::task::spawn_blocking(move || {
            vault.with_keyring(|keyring| work(&store, keyring))
        })
        .await
        .unwrap_or_else(|join| {
            Err(KvStoreError::Store(zerofn_store::StoreError::Malformed(
                format!("the store task failed: {join}"),
            )))
        });
        match result {
            Ok(value) => Ok(value),
            Err(error) => Err(self.store_failure(platform, error).await),
        }
    }

    async fn store_failure(&self, platform: &Platform, error: KvStoreError) -> Refused {
        match error {
            KvStoreError::BucketFull { max } => Refused::other(
                "kv-bucket-full",
                format!(
                    "bucket `{}` holds {max} keys, the most allowed (platform config `kv.max_keys_per_bucket`); delete keys first",
                    shown(&self.bucket)
                ),
            ),
            KvStoreError::AppFull { max } => Refused::other(
                "kv-app-full",
                format!(
                    "app `{}` would hold more than {max} bytes of keys and values (platform config `kv.max_bytes_per_app`); delete keys first",
                    self.function.app
                ),
            ),
            KvStoreError::NotANumber => Refused::other(
                "kv-not-a-number",
                "increment needs the value to be a decimal unsigned 64-bit number".into(),
            ),
            KvStoreError::Overflow => Refused::other(
                "kv-overflow",
                "the increment would overflow an unsigned 64-bit number".into(),
            ),
            KvStoreError::Vault(error) => {
                // A value that does not open was altered, moved under another name, or sealed
                // under a master key this node lacks: an integrity failure, not a guest error.
                tracing::error!(app = %self.function.app, bucket = %shown(&self.bucket), %error, "a key-value value does not open");
                platform
                    .audit()
                    .record(
                        event(
                            &self.scope,
                            &self.scope.span(),
                            EventKind::IntegrityFailure,
                            Outcome::Denied,
                            "kv-value-unreadable".into(),
                        )
                        .detail("bucket", shown(&self.bucket))
                        .detail("error", error.to_string()),
                    )
                    .await;
                Refused::other(
                    "kv-value-unreadable",
                    "a stored value failed its integrity check and was not returned; the operator has been told".into(),
                )
            }
            KvStoreError::Store(error) => {
                tracing::error!(app = %self.function.app, %error, "key-value store failure");
                Refused::other(
                    "kv-store-error",
                    "the store failed; the platform log has the cause".into(),
                )
            }
        }
    }

    fn names(&self) -> (String, String) {
        (self.function.app.to_string(), self.bucket.clone())
    }
}

#[async_trait::async_trait]
impl KvBucket for PlatformBucket {
    async fn get(&self, key: String) -> Result<Option<Vec<u8>>, KvError> {
        self.operation("get", Need::Read, 1, async |platform| {
            self.check_key(&platform.kv_limits(), &key)?;
            let (app, bucket) = self.names();
            let value = self
                .store(platform, move |store, keyring| {
                    store.kv_get(keyring, &app, &bucket, &key)
                })
                .await?;
            Ok(value.map(|v| v.to_vec()))
        })
        .await
    }

    async fn set(&self, key: String, value: Vec<u8>) -> Result<(), KvError> {
        self.write_entries("set", vec![(key, value)]).await
    }

    async fn delete(&self, key: String) -> Result<(), KvError> {
        self.delete_keys("delete", vec![key]).await
    }

    async fn exists(&self, key: String) -> Result<bool, KvError> {
        self.operation("exists", Need::Read, 1, async |platform| {
            self.check_key(&platform.kv_limits(), &key)?;
            let (app, bucket) = self.names();
            self.store(platform, move |store, _| {
                Ok(store.kv_exists(&app, &bucket, &key)?)
            })
            .await
        })
        .await
    }

    async fn list_keys(&self, cursor: Option<u64>) -> Result<KeyPage, KvError> {
        self.operation("list-keys", Need::Read, 0, async |platform| {
            let (app, bucket) = self.names();
            let (keys, cursor) = self
                .store(platform, move |store, _| {
                    Ok(store.kv_list_keys(&app, &bucket, cursor.unwrap_or(0), LIST_PAGE_KEYS)?)
                })
                .await?;
            Ok(KeyPage { keys, cursor })
        })
        .await
    }

    async fn increment(&self, key: String, delta: u64) -> Result<u64, KvError> {
        // It reads too, but what it needs is the right to change the value.
        self.operation("increment", Need::Write, 1, async |platform| {
            let limits = platform.kv_limits();
            self.check_key(&limits, &key)?;
            let (app, bucket) = self.names();
            self.store(platform, move |store, keyring| {
                store.kv_increment(keyring, &app, &bucket, &key, delta, limits.quota())
            })
            .await
        })
        .await
    }

    async fn get_many(&self, keys: Vec<String>) -> Result<Vec<Option<(String, Vec<u8>)>>, KvError> {
        self.operation("get-many", Need::Read, keys.len(), async |platform| {
            let limits = platform.kv_limits();
            self.check_batch(&limits, keys.len())?;
            for key in &keys {
                self.check_key(&limits, key)?;
            }
            let (app, bucket) = self.names();
            let values = self
                .store(platform, move |store, keyring| {
                    let mut total = 0usize;
                    let mut values = Vec::with_capacity(keys.len());
                    for key in keys {
                        let value = store.kv_get(keyring, &app, &bucket, &key)?;
                        total = total.saturating_add(value.as_ref().map_or(0, |v| v.len()));
                        if total > limits.max_batch_bytes {
                            return Ok(None);
                        }
                        values.push(value.map(|v| (key, v.to_vec())));
                    }
                    Ok(Some(values))
                })
                .await?;
            values.ok_or_else(|| {
                Refused::other(
                    "kv-batch-too-large",
                    format!(
                        "the values asked for exceed {} bytes (platform config `kv.max_batch_bytes`); ask for fewer keys at once",
                        limits.max_batch_bytes
                    ),
                )
            })
        })
        .await
    }

    async fn set_many(&self, entries: Vec<(String, Vec<u8>)>) -> Result<(), KvError> {
        self.write_entries("set-many", entries).await
    }

    async fn delete_many(&self, keys: Vec<String>) -> Result<(), KvError> {
        self.delete_keys("delete-many", keys).await
    }
}

impl PlatformBucket {
    /// `set` and `set-many`: all entries are written, or none.
    async fn write_entries(
        &self,
        operation: &'static str,
        entries: Vec<(String, Vec<u8>)>,
    ) -> Result<(), KvError> {
        self.operation(operation, Need::Write, entries.len(), async |platform| {
            let limits = platform.kv_limits();
            self.check_batch(&limits, entries.len())?;
            let mut total = 0usize;
            for (key, value) in &entries {
                self.check_key(&limits, key)?;
                self.check_value(&limits, key, value)?;
                total = total.saturating_add(value.len());
            }
            if total > limits.max_batch_bytes {
                return Err(Refused::other(
                    "kv-batch-too-large",
                    format!(
                        "the batch writes {total} bytes; batches write at most {} (platform config `kv.max_batch_bytes`)",
                        limits.max_batch_bytes
                    ),
                ));
            }
            let bytes = total as u64;
            let (app, bucket) = self.names();
            self.store(platform, move |store, keyring| {
                store.kv_set_many(keyring, &app, &bucket, &entries, limits.quota())
            })
            .await?;
            platform
                .metrics()
                .kv_bytes_written(&self.function.app, &self.function.name, bytes);
            Ok(())
        })
        .await
    }

    /// `delete` and `delete-many`: absent keys are skipped.
    async fn delete_keys(&self, operation: &'static str, keys: Vec<String>) -> Result<(), KvError> {
        self.operation(operation, Need::Write, keys.len(), async |platform| {
            let limits = platform.kv_limits();
            self.check_batch(&limits, keys.len())?;
            for key in &keys {
                self.check_key(&limits, key)?;
            }
            let (app, bucket) = self.names();
            self.store(platform, move |store, _| {
                Ok(store.kv_delete_many(&app, &bucket, &keys)?)
            })
            .await
        })
        .await
    }
}
