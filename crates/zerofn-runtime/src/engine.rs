//! The one wasmtime engine of a zerofn process: configured once for isolation and speed
//! (component model, async, pooling allocator sized explicitly, epoch interruption), with the
//! linker every component is checked against and a cache of compiled components by digest.

use crate::LoadError;
use crate::component::{ComponentOrigin, LoadedComponent};
use crate::guest_output::OutputLimits;
use crate::sandbox::Sandbox;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use zerofn_audit::AuditLog;

/// Operator settings of the sandbox engine. The defaults suit one 2-core machine.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// The most sandboxes alive at once across all functions: the size of the instance pool.
    /// The trigger's global concurrency cap must not exceed it.
    pub max_instances: u32,
    /// The most linear memory any one invocation may be granted (the operator's ceiling); each
    /// pool slot is sized for it.
    pub max_memory_bytes: u64,
    /// How often the engine's epoch advances; deadlines are precise to about one tick.
    pub epoch_tick: Duration,
    /// The guest's WebAssembly stack; exhausting it is a trap, not a host crash.
    pub max_wasm_stack_bytes: usize,
    /// Caps on captured guest stdout/stderr.
    pub output: OutputLimits,
    /// The authenticated on-disk cache of compiled code; `None` keeps compiled code in memory
    /// only.
    pub compile_cache: Option<crate::CompileCache>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            max_instances: 256,
            max_memory_bytes: 512 << 20,
            epoch_tick: Duration::from_millis(5),
            max_wasm_stack_bytes: 512 << 10,
            output: OutputLimits::default(),
            compile_cache: None,
        }
    }
}

/// Core instances, memories and tables one component may have. Rust components built for
/// `wasm32-wasip2` use one of each; components from other toolchains use a handful.
const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 16;
const MAX_MEMORIES_PER_COMPONENT: u32 = 2;
const MAX_TABLES_PER_COMPONENT: u32 = 4;

/// Bytes of each memory and table slot kept mapped between invocations (and zeroed).
const KEEP_RESIDENT_BYTES: usize = 1 << 20;

/// The sandbox engine. Cheap to clone; clones share the engine, linker and cache.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<RuntimeInner>,
}

pub(crate) struct RuntimeInner {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<Sandbox>,
    pub(crate) config: RuntimeConfig,
    pub(crate) audit: AuditLog,
    cache: Mutex<HashMap<String, Arc<LoadedComponent>>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Builds the engine and linker and starts the epoch ticker.
    pub fn new(config: RuntimeConfig, audit: AuditLog) -> Result<Self, LoadError> {
        let engine = Engine::new(&engine_config(&config)?)
            .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        // Every WASI 0.2 interface is linked so that any ordinary component instantiates; the
        // sandbox's context is what refuses the capabilities behind them.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        crate::config_store::add_to_linker(&mut linker)
            .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        crate::keyvalue::add_to_linker(&mut linker, Sandbox::keyvalue)
            .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        start_epoch_ticker(&engine, config.epoch_tick)
            .map_err(|e| LoadError::Engine(format!("cannot start the epoch ticker: {e}")))?;
        Ok(Self {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                config,
                audit,
                cache: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The configuration the runtime was built with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// Compiles `bytes` (once per digest), links it and pre-instantiates it. CPU-heavy on a
    /// cache miss (about 100 ms for a small component): call it off the async executor.
    pub fn load(&self, bytes: &[u8]) -> Result<Arc<LoadedComponent>, LoadError> {
        let digest = crate::component::digest(bytes);
        if let Some(hit) = self.cache().get(&digest) {
            return Ok(hit.clone());
        }
        let engine = &self.inner.engine;
        let (component, origin) = match &self.inner.config.compile_cache {
            None => (
                LoadedComponent::compile(engine, bytes)?,
                ComponentOrigin::Compiled,
            ),
            Some(cache) => match cache.get(engine, &digest) {
                crate::compile_cache::Lookup::Hit(component) => (component, ComponentOrigin::Cache),
                miss => {
                    let component = LoadedComponent::compile(engine, bytes)?;
                    cache.put(&digest, &component);
                    let origin = match miss {
                        crate::compile_cache::Lookup::Rejected(rejected) => {
                            tracing::error!(%digest, %rejected, "compiled-code cache entry discarded");
                            ComponentOrigin::Recompiled { rejected }
                        }
                        _ => ComponentOrigin::Compiled,
                    };
                    (component, origin)
                }
            },
        };
        let loaded = Arc::new(LoadedComponent::link(
            &self.inner.linker,
            digest.clone(),
            &component,
            origin,
        )?);
        self.cache().insert(digest, loaded.clone());
        Ok(loaded)
    }

    /// Drops compiled components no longer in `keep` (digests), to bound the cache after
    /// redeploys.
    pub fn retain(&self, keep: &[&str]) {
        self.cache()
            .retain(|digest, _| keep.contains(&digest.as_str()));
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LoadedComponent>>> {
        // The map is only ever inserted into or pruned; a panic elsewhere cannot break it.
        self.inner
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn engine_config(config: &RuntimeConfig) -> Result<Config, LoadError> {
    let max_memory = usize::try_from(config.max_memory_bytes)
        .map_err(|_| LoadError::Engine("max_memory_bytes does not fit this machine".into()))?;
    let instances = config.max_instances.max(1);
    let mut pool = PoolingAllocationConfig::new();
    // Every sandbox can have its component's maximum of each resource at once, so one hungry
    // component cannot exhaust the pool for the others (slots are address space, not memory).
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(MAX_CORE_INSTANCES_PER_COMPONENT))
        .total_memories(instances.saturating_mul(MAX_MEMORIES_PER_COMPONENT))
        .total_tables(instances.saturating_mul(MAX_TABLES_PER_COMPONENT))
        .total_stacks(instances)
        .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MAX_MEMORIES_PER_COMPONENT)
        .max_tables_per_component(MAX_TABLES_PER_COMPONENT)
        .max_memory_size(max_memory)
        // Reset the low pages of a reused slot with memset (only the pages that are resident,
        // found with PAGEMAP_SCAN where the kernel has it) instead of unmapping them: the next
        // invocation then starts without page faults. Either way the slot is zeroed before
        // reuse (the CVE-2022-39393 class; see the fresh-heap test).
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(KEEP_RESIDENT_BYTES)
        .pagemap_scan(wasmtime::Enabled::Auto);
    let mut wasm = Config::new();
    wasm.wasm_component_model(true)
        .epoch_interruption(true)
        .max_wasm_stack(config.max_wasm_stack_bytes)
        // Fiber stacks must hold the guest's stack plus the host frames below it.
        .async_stack_size(config.max_wasm_stack_bytes + (1 << 20))
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Ok(wasm)
}

/// Advances the engine's epoch on a timer so that a guest that never yields still reaches its
/// deadline. The thread ends when the engine is dropped.
fn start_epoch_ticker(engine: &Engine, tick: Duration) -> std::io::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("zerofn-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(tick);
            }
        })?;
    Ok(())
}
