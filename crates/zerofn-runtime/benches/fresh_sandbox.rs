//! In-process cost of a fresh-sandbox invocation of `examples/hello`: zerofn's runtime against
//! bare wasmtime (`ProxyPre` + a new `Store` per request, the `wasmtime serve` recipe) on the
//! same component, in the same run, interleaved so drift hits all alike. Two baselines: wasmtime's
//! default pooling settings, and the same slot-reset tuning zerofn uses (keep-resident +
//! PAGEMAP_SCAN), so that zerofn's own overhead is measured apart from its tuning.
//!
//! Run: `cargo bench -p zerofn-runtime --bench fresh_sandbox`. Results go to BENCHMARKS.md.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};
use zerofn_runtime::{Invocation, InvocationLimits, OutputBudget, Runtime, RuntimeConfig};

const ROUNDS: usize = 10;
const PER_ROUND: usize = 2_000;

fn main() {
    // One thread, as in FIELD-NOTES' measurement: the figure is the sandbox's cost, not a
    // cross-thread wake-up's.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => panic!("tokio: {error}"),
    };
    runtime.block_on(run());
}

async fn run() {
    let bytes = std::fs::read(zerofn_test_artifacts::HELLO).unwrap_or_else(|e| panic!("{e}"));
    let bare = Bare::new(&bytes, false);
    let tuned = Bare::new(&bytes, true);
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = zerofn_store::Store::open(data.path()).unwrap_or_else(|e| panic!("{e}"));
    let audit = zerofn_audit::AuditLog::start(store).unwrap_or_else(|e| panic!("{e}"));
    let zerofn =
        Runtime::new(RuntimeConfig::default(), audit.clone()).unwrap_or_else(|e| panic!("{e}"));
    let component = zerofn.load(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let limits = InvocationLimits::default();
    // Names are shared `Arc<str>`s, as the platform's active functions hold them.
    let name: std::sync::Arc<str> = "hello".into();
    let version: std::sync::Arc<str> = "sha256:bench".into();
    let budget = OutputBudget::new(&RuntimeConfig::default().output);

    let mut bare_samples = Vec::new();
    let mut tuned_samples = Vec::new();
    let mut zerofn_samples = Vec::new();
    for round in 0..=ROUNDS {
        // Round 0 warms both paths up and is discarded.
        let mut bare_round = Vec::with_capacity(PER_ROUND);
        let mut tuned_round = Vec::with_capacity(PER_ROUND);
        let mut zerofn_round = Vec::with_capacity(PER_ROUND);
        for i in 0..PER_ROUND {
            let started = Instant::now();
            bare.invoke().await;
            bare_round.push(started.elapsed());

            let started = Instant::now();
            tuned.invoke().await;
            tuned_round.push(started.elapsed());

            let started = Instant::now();
            // The lease is dropped when the sandbox is gone: waiting for that charges each
            // invocation its own teardown, as the baseline's `task.await` does.
            let (lease, sandbox_gone) = tokio::sync::oneshot::channel::<()>();
            let invocation = Invocation {
                scope: Arc::new(zerofn_audit::InvocationScope {
                    invocation_id: format!("bench-{round}-{i}").into(),
                    app: name.clone(),
                    function: name.clone(),
                    version_id: version.clone(),
                    identity: name.clone(),
                    caller: name.clone(),
                    trace: zerofn_audit::TraceContext::start(),
                }),
                start_detail: zerofn_audit::Detail::default(),
                limits,
                output_budget: budget.clone(),
                lease: Some(Box::new(lease)),
                outbound: None,
                config: None,
                keyvalue: None,
                stop: None,
            };
            let request = hyper::Request::get("http://localhost/hello")
                .body(Empty::<Bytes>::new())
                .unwrap_or_else(|e| panic!("{e}"));
            let response = zerofn
                .invoke(&component, invocation, request)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let body = response
                .into_body()
                .collect()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(body.to_bytes().len(), 19);
            let _ = sandbox_gone.await;
            zerofn_round.push(started.elapsed());
        }
        if round > 0 {
            bare_samples.extend(bare_round);
            tuned_samples.extend(tuned_round);
            zerofn_samples.extend(zerofn_round);
        }
        audit.flush().await;
    }
    let bare = Stats::of(&mut bare_samples);
    let tuned = Stats::of(&mut tuned_samples);
    let ours = Stats::of(&mut zerofn_samples);
    println!(
        "fresh-sandbox invocation of examples/hello, {} samples each",
        bare.count
    );
    println!(
        "{:<24} {:>10} {:>10} {:>10} {:>12}",
        "", "mean µs", "p50 µs", "p99 µs", "per second"
    );
    for (name, s) in [
        ("bare wasmtime (default)", &bare),
        ("bare wasmtime (tuned)", &tuned),
        ("zerofn runtime", &ours),
    ] {
        println!(
            "{name:<24} {:>10.1} {:>10.1} {:>10.1} {:>12.0}",
            s.mean,
            s.p50,
            s.p99,
            1e6 / s.mean
        );
    }
    for (name, base) in [("tuned", &tuned), ("default", &bare)] {
        println!(
            "zerofn vs bare ({name}): mean {:+.1} %, p50 {:+.1} %, p99 {:+.1} %",
            (ours.mean / base.mean - 1.0) * 100.0,
            (ours.p50 / base.p50 - 1.0) * 100.0,
            (ours.p99 / base.p99 - 1.0) * 100.0
        );
    }
}

struct Stats {
    count: usize,
    mean: f64,
    p50: f64,
    p99: f64,
}

impl Stats {
    fn of(samples: &mut [Duration]) -> Self {
        samples.sort();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let at = |q: f64| us(samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)]);
        Self {
            count: samples.len(),
            mean: samples.iter().map(|d| us(*d)).sum::<f64>() / samples.len() as f64,
            p50: at(0.50),
            p99: at(0.99),
        }
    }
}

/// The baseline: what an embedder writes with wasmtime alone, with the same pooling allocator.
struct Bare {
    engine: Engine,
    pre: ProxyPre<BareState>,
}

struct BareState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: NoOutbound,
}

struct NoOutbound;

impl wasmtime_wasi_http::WasiHttpHooks for NoOutbound {
    fn send_request(
        &mut self,
        _: http::Request<wasmtime_wasi_http::WasiBody>,
        _: Option<wasmtime_wasi_http::RequestOptions>,
        _: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<wasmtime_wasi_http::WasiBody>,
                    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
                )>,
            > + Send,
    > {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

impl WasiView for BareState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for BareState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl Bare {
    fn new(bytes: &[u8], tuned: bool) -> Self {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(256)
            .total_core_instances(1024)
            .total_memories(512)
            .total_tables(512)
            .total_stacks(256);
        if tuned {
            pool.linear_memory_keep_resident(1 << 20)
                .table_keep_resident(1 << 20)
                .pagemap_scan(wasmtime::Enabled::Auto);
        }
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).unwrap_or_else(|e| panic!("{e}"));
        let component = Component::new(&engine, bytes).unwrap_or_else(|e| panic!("{e}"));
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap_or_else(|e| panic!("{e}"));
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .unwrap_or_else(|e| panic!("{e}"));
        let pre = ProxyPre::new(
            linker
                .instantiate_pre(&component)
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Self { engine, pre }
    }

    async fn invoke(&self) {
        let mut store = Store::new(
            &self.engine,
            BareState {
                wasi: WasiCtx::builder().build(),
                http: WasiHttpCtx::new(),
                table: ResourceTable::new(),
                hooks: NoOutbound,
            },
        );
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let request = hyper::Request::get("http://localhost/hello")
            .body(Empty::<Bytes>::new())
            .unwrap_or_else(|e| panic!("{e}"));
        let req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)
            .unwrap_or_else(|e| panic!("{e}"));
        let out = store
            .data_mut()
            .http()
            .new_response_outparam(sender)
            .unwrap_or_else(|e| panic!("{e}"));
        let pre = self.pre.clone();
        let task = tokio::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
        });
        let response = match receiver.await {
            Ok(Ok(response)) => response,
            _ => panic!("no response"),
        };
        let body = response
            .into_body()
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(body.to_bytes().len(), 19);
        let _ = task.await;
    }
}
