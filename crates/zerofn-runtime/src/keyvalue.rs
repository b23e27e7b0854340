//! `wasi:keyvalue` for guests: the `store`, `atomics` and `batch` interfaces of
//! `wasi:keyvalue@0.2.0-draft` (the version wasmtime 48 ships, vendored in `wit/keyvalue`),
//! answered by the platform's [`KeyValue`]. The runtime knows nothing of apps, grants or the
//! store: `open` asks the platform for a [`KvBucket`] and every operation goes to it. Without a
//! [`KeyValue`] every `open` is refused (`access-denied`) and recorded.

use crate::sandbox::SandboxIdentity;
use std::sync::Arc;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use zerofn_audit::{AuditLog, EventKind, Outcome};

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit/keyvalue",
        world: "wasi:keyvalue/imports",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": super::BucketHandle,
        },
    });
}

use bindings::wasi::keyvalue::{atomics, batch, store};

/// Buckets one invocation may hold open at once. Each handle is host memory the guest's memory
/// limit does not count; no function needs more than a handful.
pub const MAX_OPEN_BUCKETS: usize = 64;

/// Why a key-value operation was refused or failed, as the guest sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvError {
    /// `no-such-store`.
    NoSuchStore,
    /// `access-denied`: the bucket is not granted, or not for this operation. The platform has
    /// recorded why.
    AccessDenied,
    /// `other(message)`: a limit, a tampered value, a store failure. The message starts with
    /// the rule id (`kv-value-too-large: ...`) and never carries stored data.
    Other(String),
}

/// One page of `list-keys`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPage {
    pub keys: Vec<String>,
    /// Where the next page starts; `None` on the last page.
    pub cursor: Option<u64>,
}

/// The platform's side of one invocation's key-value access: decides which buckets it may
/// open.
#[async_trait::async_trait]
pub trait KeyValue: Send + Sync + 'static {
    /// Opens `bucket` (the name exactly as the guest wrote it), or refuses.
    async fn open(&self, bucket: &str) -> Result<Arc<dyn KvBucket>, KvError>;
}

/// A bucket the platform opened for one invocation. Each operation enforces the access the
/// bucket was opened with and the platform's limits.
#[async_trait::async_trait]
pub trait KvBucket: Send + Sync + 'static {
    async fn get(&self, key: String) -> Result<Option<Vec<u8>>, KvError>;
    async fn set(&self, key: String, value: Vec<u8>) -> Result<(), KvError>;
    async fn delete(&self, key: String) -> Result<(), KvError>;
    async fn exists(&self, key: String) -> Result<bool, KvError>;
    async fn list_keys(&self, cursor: Option<u64>) -> Result<KeyPage, KvError>;
    /// Adds `delta` to the decimal number stored at `key` (absent is 0), atomically.
    async fn increment(&self, key: String, delta: u64) -> Result<u64, KvError>;
    async fn get_many(&self, keys: Vec<String>) -> Result<Vec<Option<(String, Vec<u8>)>>, KvError>;
    async fn set_many(&self, entries: Vec<(String, Vec<u8>)>) -> Result<(), KvError>;
    async fn delete_many(&self, keys: Vec<String>) -> Result<(), KvError>;
}

/// The guest's `bucket` resource.
pub struct BucketHandle(Arc<dyn KvBucket>);

/// The key-value part of a sandbox's state.
pub(crate) struct KeyValueHost {
    identity: Arc<SandboxIdentity>,
    audit: AuditLog,
    keyvalue: Option<Arc<dyn KeyValue>>,
    open_buckets: usize,
}

impl KeyValueHost {
    pub(crate) fn new(
        identity: Arc<SandboxIdentity>,
        audit: AuditLog,
        keyvalue: Option<Arc<dyn KeyValue>>,
    ) -> Self {
        Self {
            identity,
            audit,
            keyvalue,
            open_buckets: 0,
        }
    }

    /// The view the bindings are implemented on.
    pub(crate) fn view<'a>(&'a mut self, table: &'a mut ResourceTable) -> KeyValueView<'a> {
        KeyValueView { host: self, table }
    }

    async fn refuse(&self, rule: &'static str, bucket: &str) {
        self.audit
            .record(
                self.identity
                    .event_in(&self.identity.span(), EventKind::KvDenied, Outcome::Denied)
                    .reason(rule)
                    .detail("operation", "open")
                    .detail("bucket", crate::keyvalue::shown(bucket)),
            )
            .await;
    }
}

/// A guest-chosen name as it may appear in an event: at most 128 characters.
pub fn shown(name: &str) -> String {
    const MAX: usize = 128;
    match name.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &name[..end]),
        None => name.to_string(),
    }
}

pub(crate) struct KeyValueView<'a> {
    host: &'a mut KeyValueHost,
    table: &'a mut ResourceTable,
}

impl KeyValueView<'_> {
    fn bucket(&self, handle: &Resource<BucketHandle>) -> wasmtime::Result<Arc<dyn KvBucket>> {
        Ok(self.table.get(handle)?.0.clone())
    }
}

/// Links `store`, `atomics` and `batch` into `linker`, with `view` giving each call its
/// sandbox's key-value state.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> KeyValueView<'_>,
) -> wasmtime::Result<()> {
    store::add_to_linker::<_, HasKeyValue>(linker, view)?;
    atomics::add_to_linker::<_, HasKeyValue>(linker, view)?;
    batch::add_to_linker::<_, HasKeyValue>(linker, view)?;
    Ok(())
}

struct HasKeyValue;

impl HasData for HasKeyValue {
    type Data<'a> = KeyValueView<'a>;
}

type Answer<T> = wasmtime::Result<Result<T, store::Error>>;

fn answer<T>(result: Result<T, KvError>) -> Answer<T> {
    Ok(result.map_err(|error| match error {
        KvError::NoSuchStore => store::Error::NoSuchStore,
        KvError::AccessDenied => store::Error::AccessDenied,
        KvError::Other(message) => store::Error::Other(message),
    }))
}

impl store::Host for KeyValueView<'_> {
    async fn open(&mut self, identifier: String) -> Answer<Resource<BucketHandle>> {
        if self.host.open_buckets >= MAX_OPEN_BUCKETS {
            self.host
                .refuse("kv-too-many-open-buckets", &identifier)
                .await;
            return answer(Err(KvError::Other(format!(
                "kv-too-many-open-buckets: an invocation may hold at most {MAX_OPEN_BUCKETS} buckets open at once; drop the ones it no longer uses"
            ))));
        }
        let Some(keyvalue) = self.host.keyvalue.clone() else {
            self.host.refuse("kv-not-granted", &identifier).await;
            return answer(Err(KvError::AccessDenied));
        };
        match keyvalue.open(&identifier).await {
            Ok(bucket) => {
                let handle = self.table.push(BucketHandle(bucket))?;
                self.host.open_buckets += 1;
                answer(Ok(handle))
            }
            Err(error) => answer(Err(error)),
        }
    }
}

impl store::HostBucket for KeyValueView<'_> {
    async fn get(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> Answer<Option<Vec<u8>>> {
        answer(self.bucket(&bucket)?.get(key).await)
    }

    async fn set(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
        value: Vec<u8>,
    ) -> Answer<()> {
        answer(self.bucket(&bucket)?.set(key, value).await)
    }

    async fn delete(&mut self, bucket: Resource<BucketHandle>, key: String) -> Answer<()> {
        answer(self.bucket(&bucket)?.delete(key).await)
    }

    async fn exists(&mut self, bucket: Resource<BucketHandle>, key: String) -> Answer<bool> {
        answer(self.bucket(&bucket)?.exists(key).await)
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<BucketHandle>,
        cursor: Option<u64>,
    ) -> Answer<store::KeyResponse> {
        answer(
            self.bucket(&bucket)?
                .list_keys(cursor)
                .await
                .map(|page| store::KeyResponse {
                    keys: page.keys,
                    cursor: page.cursor,
                }),
        )
    }

    async fn drop(&mut self, bucket: Resource<BucketHandle>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        self.host.open_buckets = self.host.open_buckets.saturating_sub(1);
        Ok(())
    }
}

impl atomics::Host for KeyValueView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
        delta: u64,
    ) -> Answer<u64> {
        answer(self.bucket(&bucket)?.increment(key, delta).await)
    }
}

impl batch::Host for KeyValueView<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> Answer<Vec<Option<(String, Vec<u8>)>>> {
        answer(self.bucket(&bucket)?.get_many(keys).await)
    }

    async fn set_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Answer<()> {
        answer(self.bucket(&bucket)?.set_many(key_values).await)
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> Answer<()> {
        answer(self.bucket(&bucket)?.delete_many(keys).await)
    }
}
