//! The state of one sandbox (the `T` of its `Store`): a WASI context that grants nothing, the
//! HTTP context, the memory limiter, and the hook that passes outbound requests to the
//! platform's [`Outbound`] and refuses what it does not take.

use crate::config_store::ConfigHost;
use crate::guest_output::CapturedOutput;
use crate::keyvalue::{KeyValue, KeyValueHost, KeyValueView};
use crate::limits::MemoryLimiter;
use crate::outbound::Outbound;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};
use zerofn_audit::{AuditLog, EventKind, Outcome};

/// Who is running in the sandbox, on whose behalf and in which trace, for the events it
/// records.
pub(crate) type SandboxIdentity = zerofn_audit::InvocationScope;

pub(crate) struct Sandbox {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    outbound: OutboundHook,
    /// `wasi:config/store`: reads go to the platform's source for the invocation.
    pub(crate) config: ConfigHost,
    keyvalue: KeyValueHost,
}

/// What the platform provides an invocation beyond its own memory: each `None` (or an empty
/// config source) means that capability is refused.
pub(crate) struct PlatformHooks {
    pub(crate) outbound: Option<Arc<dyn Outbound>>,
    pub(crate) config: ConfigHost,
    pub(crate) keyvalue: Option<Arc<dyn KeyValue>>,
}

impl Sandbox {
    pub(crate) fn new(
        identity: Arc<SandboxIdentity>,
        audit: AuditLog,
        memory_bytes: u64,
        stdout: CapturedOutput,
        stderr: CapturedOutput,
        hooks: PlatformHooks,
    ) -> Self {
        let PlatformHooks {
            outbound,
            config,
            keyvalue,
        } = hooks;
        let mut wasi = WasiCtx::builder();
        // No environment, arguments or preopened directories: the builder's defaults, relied
        // on here. Sockets and name lookup are switched off outright rather than left to an
        // address check, so no future default can open them.
        wasi.stdout(stdout)
            .stderr(stderr)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        Self {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(memory_bytes),
            keyvalue: KeyValueHost::new(identity.clone(), audit.clone(), keyvalue),
            outbound: OutboundHook {
                identity,
                audit,
                outbound,
            },
            config,
        }
    }

    /// The state `wasi:keyvalue` calls work on.
    pub(crate) fn keyvalue(&mut self) -> KeyValueView<'_> {
        self.keyvalue.view(&mut self.table)
    }
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Sandbox {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

/// Offers every outbound request to the platform's [`Outbound`]; refuses what it does not take
/// before a connection exists, and records the refusal.
struct OutboundHook {
    identity: Arc<SandboxIdentity>,
    audit: AuditLog,
    outbound: Option<Arc<dyn Outbound>>,
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<wasmtime_wasi_http::WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl WasiHttpHooks for OutboundHook {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let request = match &self.outbound {
            Some(outbound) => match outbound.route(request, options) {
                crate::Routed::Answered(answer) => {
                    return Box::new(async move {
                        let response = answer.await?;
                        // Nothing to drive after the response: the platform's future did it.
                        let done: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send> =
                            Box::new(async { Ok(()) });
                        Ok((response, done))
                    });
                }
                crate::Routed::Declined(request) => *request,
            },
            None => request,
        };
        let identity = self.identity.clone();
        let audit = self.audit.clone();
        let destination = destination(request.uri());
        Box::new(async move {
            audit
                .record(
                    identity
                        .event_in(&identity.span(), EventKind::EgressDenied, Outcome::Denied)
                        .reason("no-egress-grant")
                        .detail("destination", destination),
                )
                .await;
            Err(wasmtime_wasi_http::Error::HttpRequestDenied)
        })
    }
}

/// Scheme and authority only: paths and queries may carry the caller's data.
fn destination(uri: &http::Uri) -> String {
    match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => format!("{scheme}://{authority}"),
        (None, Some(authority)) => authority.to_string(),
        _ => "<no authority>".to_string(),
    }
}
