//! One invocation: a new store and instance for the request, run under its deadline, memory
//! ceiling and body caps, with its start and end recorded, then thrown away.

use crate::config_store::{ConfigHost, Revealed};
use crate::error::{FailureKind, InvocationFailure};
use crate::guest_output::{CapturedOutput, OutputBudget};
use crate::sandbox::{Sandbox, SandboxIdentity};
use crate::{InvocationLimits, LoadedComponent, Runtime};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;
use wasmtime::{Store, Trap};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use zerofn_audit::{EventKind, GuestOutputLine, Outcome};

/// The body type requests are handed to guests in.
pub type RequestBody = http_body_util::combinators::UnsyncBoxBody<Bytes, wasmtime_wasi_http::Error>;
/// The body type of guest responses, already capped at the function's response limit.
pub type ResponseBody =
    http_body_util::combinators::UnsyncBoxBody<Bytes, wasmtime_wasi_http::Error>;

/// What the platform tells the runtime about one invocation.
pub struct Invocation {
    /// Its id, function, version, identity, caller and span: stamped on every event it records.
    pub scope: Arc<zerofn_audit::InvocationScope>,
    /// More fields for its `invocation.start` event (how it was called, say).
    pub start_detail: zerofn_audit::Detail,
    pub limits: InvocationLimits,
    pub output_budget: OutputBudget,
    /// Held until the sandbox is gone, then dropped: the platform's concurrency permits live
    /// here so that "in flight" means "a sandbox exists", not "a response is pending".
    pub lease: Option<Box<dyn Send>>,
    /// Takes the sandbox's outbound requests it can answer; the rest are refused.
    pub outbound: Option<Arc<dyn crate::Outbound>>,
    /// Answers the sandbox's `wasi:config/store` reads; without it every read is refused.
    pub config: Option<Arc<dyn crate::ConfigSource>>,
    /// Opens the buckets the invocation may use (`wasi:keyvalue`); without it none opens.
    pub keyvalue: Option<Arc<dyn crate::KeyValue>>,
    /// Raised by the platform to stop the invocation before its deadline (a quarantine): it
    /// then fails with [`FailureKind::Stopped`].
    pub stop: Option<crate::StopSignal>,
}

impl std::fmt::Debug for Invocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invocation")
            .field("scope", &self.scope)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

type HandleResult = Result<(), (FailureKind, String)>;

/// Stored as the response status when the guest sets an error instead of a response.
const GUEST_ERROR: u16 = u16::MAX;

impl Runtime {
    /// Runs `request` through a fresh instance of `component`.
    ///
    /// Returns the guest's response (its body may still be streaming) or why there is none. The
    /// invocation's end is recorded when the guest finishes, which can be after this returns.
    pub async fn invoke<B>(
        &self,
        component: &LoadedComponent,
        invocation: Invocation,
        request: hyper::Request<B>,
    ) -> Result<hyper::Response<ResponseBody>, InvocationFailure>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let started = Instant::now();
        let limits = invocation.limits;
        let deadline = tokio::time::Instant::now() + limits.timeout;
        let identity: Arc<SandboxIdentity> = invocation.scope;
        let failure = |kind: FailureKind, detail: String| InvocationFailure {
            kind,
            invocation_id: identity.invocation_id.to_string(),
            detail,
        };

        let output_cap = self.inner.config.output.max_bytes_per_invocation;
        let stdout = CapturedOutput::new(output_cap);
        let stderr = CapturedOutput::new(output_cap);
        // What the guest reads through `wasi:config`: redacted from its output and errors,
        // wiped when the invocation is over.
        let revealed = Revealed::default();
        let mut store = Store::new(
            &self.inner.engine,
            Sandbox::new(
                identity.clone(),
                self.inner.audit.clone(),
                limits.memory_bytes,
                stdout.clone(),
                stderr.clone(),
                crate::sandbox::PlatformHooks {
                    outbound: invocation.outbound,
                    config: ConfigHost::new(invocation.config, revealed.clone()),
                    keyvalue: invocation.keyvalue,
                },
            ),
        );
        store.limiter(|sandbox| &mut sandbox.limiter);
        let stop = invocation.stop;
        match &stop {
            None => {
                store.set_epoch_deadline(self.deadline_ticks(limits));
                store.epoch_deadline_trap();
            }
            Some(signal) => {
                // Woken at every tick instead of only at the deadline, so that a guest that
                // computes without a host call still notices the stop within one tick; it also
                // yields there, so that it never holds an executor thread for longer.
                let signal = signal.clone();
                let mut ticks_left = self.deadline_ticks(limits);
                store.set_epoch_deadline(1);
                store.epoch_deadline_callback(move |_| {
                    ticks_left = ticks_left.saturating_sub(1);
                    if ticks_left == 0 || signal.is_stopped() {
                        Ok(wasmtime::UpdateDeadline::Interrupt)
                    } else {
                        Ok(wasmtime::UpdateDeadline::Yield(1))
                    }
                });
            }
        }

        let on_exceeded = LimitReport {
            audit: self.inner.audit.clone(),
            identity: identity.clone(),
            reason: "request-body-too-large",
            limit: limits.max_request_body_bytes,
        };
        let request = request.map(|body| {
            CappedBody::new(
                body.map_err(Into::into).boxed_unsync(),
                limits.max_request_body_bytes,
                wasmtime_wasi_http::Error::HttpRequestBodySize(Some(limits.max_request_body_bytes)),
            )
            .on_exceeded(on_exceeded)
        });
        let status = Arc::new(AtomicU16::new(0));
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let (guest_request, response_out) = {
            let mut http = store.data_mut().http();
            let status = status.clone();
            let guest_request = http.new_incoming_request(Scheme::Http, request);
            let response_out = http.new_response_outparam_from_callback(move |response| {
                let code = match &response {
                    Ok(response) => response.status().as_u16(),
                    Err(_) => GUEST_ERROR,
                };
                status.store(code, Ordering::Relaxed);
                let _ = sender.send(response);
            });
            (guest_request, response_out)
        };
        let audit = self.inner.audit.clone();
        let mut start = identity.event(EventKind::InvocationStart, Outcome::Success);
        start.detail = invocation.start_detail;
        audit.record(start).await;
        let (guest_request, response_out) = match (guest_request, response_out) {
            (Ok(request), Ok(out)) => (request, out),
            (Err(e), _) | (_, Err(e)) => {
                let result = Err((FailureKind::Instantiation, format!("{e:#}")));
                finish(&audit, &identity, started, &status, &result).await;
                return Err(failure(FailureKind::Instantiation, format!("{e:#}")));
            }
        };

        let pre = component.pre.clone();
        let task_identity = identity.clone();
        let budget = invocation.output_budget;
        let lease = invocation.lease;
        let task_revealed = revealed.clone();
        let task_stop = stop.clone();
        let task = tokio::spawn(async move {
            let revealed = task_revealed;
            let run = async {
                let proxy = pre
                    .instantiate_async(&mut store)
                    .await
                    .map_err(|e| (FailureKind::Instantiation, format!("{e:#}")))?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, guest_request, response_out)
                    .await
                    .map_err(|e| (classify(&e), format!("{e:?}")))
            };
            let stopped = async {
                match &task_stop {
                    Some(signal) => signal.stopped().await,
                    None => std::future::pending().await,
                }
            };
            // A guest blocked in a host call is dropped here when told to stop; one that
            // computes traps at the next tick (the epoch callback above).
            let mut result: HandleResult = tokio::select! {
                timed = tokio::time::timeout_at(deadline, run) => match timed {
                    Ok(result) => result,
                    Err(_) => Err((FailureKind::Timeout, "deadline passed".into())),
                },
                () = stopped => Err((FailureKind::Stopped, "stopped by the platform".into())),
            };
            if let Err((kind, _)) = &mut result
                && task_stop
                    .as_ref()
                    .is_some_and(crate::StopSignal::is_stopped)
            {
                *kind = FailureKind::Stopped;
            }
            if store.data().limiter.hit
                && let Err((kind, _)) = &mut result
            {
                *kind = FailureKind::MemoryLimit;
            }
            if result.is_ok() {
                match status.load(Ordering::Relaxed) {
                    0 => {
                        result = Err((
                            FailureKind::NoResponse,
                            "the guest returned without setting a response".into(),
                        ))
                    }
                    GUEST_ERROR => {
                        result = Err((
                            FailureKind::GuestError,
                            "the guest set an error instead of a response".into(),
                        ))
                    }
                    _ => {}
                }
            }
            if let Err((_, detail)) = &mut result {
                *detail = revealed.redact_text(std::mem::take(detail));
            }
            // The sandbox is gone before its end is recorded: nothing of it outlives the
            // invocation.
            drop(store);
            drop(lease);
            let tag = |stream, line| GuestOutputLine {
                app: task_identity.app.to_string(),
                function: task_identity.function.to_string(),
                invocation_id: task_identity.invocation_id.to_string(),
                stream,
                line,
            };
            let mut lines = stdout.into_lines("stdout", &budget, &revealed, tag);
            lines.extend(stderr.into_lines("stderr", &budget, &revealed, tag));
            // The output is queued before the end is recorded: once `invocation.end` is in the
            // stream, so is everything the invocation wrote.
            if !lines.is_empty() {
                audit.guest_output(lines).await;
            }
            finish(&audit, &task_identity, started, &status, &result).await;
            drop(revealed);
            result
        });

        // No second timer here: at the deadline the task drops the store, and with it the
        // response sender, so this wait ends then at the latest.
        match receiver.await {
            Ok(Ok(response)) => {
                let on_exceeded = LimitReport {
                    audit: self.inner.audit.clone(),
                    identity,
                    reason: "response-body-too-large",
                    limit: limits.max_response_body_bytes,
                };
                Ok(response.map(|body| {
                    CappedBody::new(
                        body,
                        limits.max_response_body_bytes,
                        wasmtime_wasi_http::Error::HttpResponseBodySize(Some(
                            limits.max_response_body_bytes,
                        )),
                    )
                    .on_exceeded(on_exceeded)
                    .boxed_unsync()
                }))
            }
            Ok(Err(code)) => Err(failure(
                FailureKind::GuestError,
                revealed.redact_text(format!("{code:?}")),
            )),
            Err(_) => match task.await {
                Ok(Err((kind, detail))) => Err(failure(kind, detail)),
                Ok(Ok(())) => Err(failure(
                    FailureKind::NoResponse,
                    "the guest returned without setting a response".into(),
                )),
                Err(join) => Err(failure(FailureKind::Trap, join.to_string())),
            },
        }
    }

    fn deadline_ticks(&self, limits: InvocationLimits) -> u64 {
        let tick = self.inner.config.epoch_tick.as_nanos().max(1);
        let ticks = limits.timeout.as_nanos().div_ceil(tick);
        // One more tick: the ticker may advance just after the deadline is set.
        u64::try_from(ticks).unwrap_or(u64::MAX).saturating_add(1)
    }
}

fn classify(error: &wasmtime::Error) -> FailureKind {
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => FailureKind::Timeout,
        Some(Trap::StackOverflow) => FailureKind::StackOverflow,
        _ => FailureKind::Trap,
    }
}

async fn finish(
    audit: &zerofn_audit::AuditLog,
    identity: &SandboxIdentity,
    started: Instant,
    status: &AtomicU16,
    result: &HandleResult,
) {
    let duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let mut event = match result {
        Ok(()) => identity.event(EventKind::InvocationEnd, Outcome::Success),
        Err((kind, detail)) => {
            tracing::warn!(
                invocation = %identity.invocation_id,
                app = %identity.app,
                function = %identity.function,
                reason = kind.reason(),
                detail = %detail,
                "invocation failed"
            );
            identity
                .event(EventKind::InvocationEnd, Outcome::Failure)
                .reason(kind.reason())
        }
    };
    event = event.detail("duration_us", duration_us);
    let status = status.load(Ordering::Relaxed);
    if status != 0 && status != GUEST_ERROR {
        event = event.detail("status", status);
    }
    audit.record(event).await;
}

/// A body that fails once more than `limit` bytes have passed through it.
struct CappedBody<B> {
    inner: B,
    remaining: u64,
    exceeded: Option<wasmtime_wasi_http::Error>,
    on_exceeded: Option<LimitReport>,
}

impl<B> CappedBody<B> {
    fn new(inner: B, limit: u64, exceeded: wasmtime_wasi_http::Error) -> Self {
        Self {
            inner,
            remaining: limit,
            exceeded: Some(exceeded),
            on_exceeded: None,
        }
    }

    /// Records `report` once, when the cap is hit.
    fn on_exceeded(mut self, report: LimitReport) -> Self {
        self.on_exceeded = Some(report);
        self
    }
}

/// The `limit.hit` event a capped body records if its cap is reached (built only then).
struct LimitReport {
    audit: zerofn_audit::AuditLog,
    identity: Arc<SandboxIdentity>,
    reason: &'static str,
    limit: u64,
}

impl LimitReport {
    fn record(self) {
        let identity = &self.identity;
        let event = identity
            .event(EventKind::LimitHit, Outcome::Denied)
            .reason(self.reason)
            .detail("limit", self.limit);
        let audit = self.audit;
        tokio::spawn(async move { audit.record(event).await });
    }
}

impl<B> Body for CappedBody<B>
where
    B: Body<Data = Bytes, Error = wasmtime_wasi_http::Error> + Unpin,
{
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.exceeded.is_none() {
            // The cap was hit and its error returned: stay failed, never a clean end.
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > this.remaining {
                        this.remaining = 0;
                        if let Some(report) = this.on_exceeded.take() {
                            report.record();
                        }
                        return Poll::Ready(this.exceeded.take().map(Err));
                    }
                    this.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
