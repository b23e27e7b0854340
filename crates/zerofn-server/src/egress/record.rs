//! What egress records: the `egress.denied` event of a refusal, the `egress` event of an
//! exchange when it ends (or is cut short), and the function's egress counters.

use super::classify;
use super::connect::{self, BodyEnd};
use super::destination::Target;
use crate::routes::ActiveFunction;
use std::net::IpAddr;
use std::sync::Arc;
use zerofn_audit::{AuditEvent, AuditLog, EventKind, InvocationScope, Outcome, TraceContext};
use zerofn_runtime::BodyError as Error;

/// A refusal as recorded.
pub(super) struct Refusal {
    pub(super) rule: &'static str,
    pub(super) origin: String,
    pub(super) method: String,
    pub(super) address: Option<IpAddr>,
    pub(super) policies: Vec<String>,
    pub(super) help: String,
}

/// Records one caller's egress events and counters.
pub(super) struct Recorder {
    pub(super) audit: AuditLog,
    pub(super) metrics: crate::metrics::EgressMetrics,
    pub(super) caller: Arc<ActiveFunction>,
    pub(super) scope: Arc<InvocationScope>,
    /// The exchange's span (a child of the invocation's).
    pub(super) span: TraceContext,
    /// The non-public ranges among every address the destination resolved to, once known:
    /// each was decided, so a grant without `allow_private` would have refused the exchange
    /// even when the connection went to a public one (`zerofn policy suggest`).
    pub(super) resolved_non_public: Option<Vec<&'static str>>,
}

impl Recorder {
    fn event(&self, kind: EventKind, outcome: Outcome) -> AuditEvent {
        self.scope.event_in(&self.span, kind, outcome)
    }

    /// Records `refusal` and returns what the guest receives.
    pub(super) async fn refuse(&self, refusal: Refusal) -> Error {
        self.metrics
            .denied(&self.caller.app, &self.caller.name, refusal.rule);
        tracing::info!(
            invocation = %self.scope.invocation_id,
            app = %self.caller.app,
            function = %self.caller.name,
            rule = refusal.rule,
            destination = %refusal.origin,
            "egress refused: {}",
            refusal.help
        );
        let mut event = self
            .event(EventKind::EgressDenied, Outcome::Denied)
            .reason(refusal.rule)
            .detail("destination", refusal.origin)
            .detail("method", refusal.method)
            .detail("help", refusal.help);
        if let Some(ip) = refusal.address {
            event = event
                .detail("address", ip.to_string())
                .detail("range", classify(ip).range());
        }
        if !refusal.policies.is_empty() {
            event = event.detail("policies", refusal.policies);
        }
        self.audit.record(event).await;
        Error::HttpRequestDenied
    }

    /// Records an allowed request that got no response.
    pub(super) async fn failed(
        &self,
        target: &Target,
        method: &str,
        reason: &'static str,
        address: Option<std::net::SocketAddr>,
        error: String,
        started: std::time::Instant,
    ) {
        self.metrics
            .finished(&self.caller.app, &self.caller.name, "failed", 0, 0);
        let event = self
            .event(EventKind::Egress, Outcome::Failure)
            .reason(reason)
            .detail("destination", target.origin())
            .detail("method", method.to_string())
            .detail("address", address.map(|a| a.ip().to_string()))
            .detail("range", address.map(|a| classify(a.ip()).range()))
            .detail("resolved_non_public", self.resolved_non_public.clone())
            .detail("error", error)
            .detail("duration_ms", elapsed_ms(started));
        self.audit.record(event).await;
    }

    /// The report of an exchange that the end of its invocation cut short (its future is
    /// dropped then, before any response).
    pub(super) fn unfinished(&self, target: &Target, method: &str) -> Unfinished {
        let audit = self.audit.clone();
        let metrics = self.metrics.clone();
        let (app, function) = (self.caller.app.clone(), self.caller.name.clone());
        let event = self
            .event(EventKind::Egress, Outcome::Failure)
            .reason("invocation-ended")
            .detail("destination", target.origin())
            .detail("method", method.to_string());
        Unfinished(Some(Box::new(move || {
            metrics.finished(&app, &function, "failed", 0, 0);
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move { audit.record(event).await });
            }
        })))
    }

    /// The report of an exchange that reached a server, made when its response body ends.
    pub(super) fn on_end(
        &self,
        target: &Target,
        method: &str,
        started: std::time::Instant,
        in_flight: tokio::sync::OwnedSemaphorePermit,
    ) -> connect::OnEnd {
        let audit = self.audit.clone();
        let metrics = self.metrics.clone();
        let event = self
            .event(EventKind::Egress, Outcome::Success)
            .reason("exchanged")
            .detail("destination", target.origin())
            .detail("method", method.to_string())
            .detail("resolved_non_public", self.resolved_non_public.clone());
        let (app, function) = (self.caller.app.clone(), self.caller.name.clone());
        Box::new(move |ended: connect::Ended| {
            drop(in_flight);
            metrics.finished(&app, &function, "allowed", ended.sent, ended.received);
            let body = match &ended.body {
                BodyEnd::Complete => "complete",
                BodyEnd::Dropped => "dropped",
                BodyEnd::Failed(_) => "failed",
            };
            let mut event = event
                .detail("address", ended.address.ip().to_string())
                // Whether the grant's `allow_private` was needed (`zerofn policy suggest`).
                .detail("range", classify(ended.address.ip()).range())
                .detail("status", ended.status)
                .detail("bytes_sent", ended.sent)
                .detail("bytes_received", ended.received)
                .detail("body", body)
                .detail("duration_ms", elapsed_ms(started));
            if let BodyEnd::Failed(error) = ended.body {
                event = event.detail("error", error);
            }
            // The body ends inside the guest's resources, outside any async context of ours.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move { audit.record(event).await });
            }
        })
    }
}

/// Reports its exchange as cut short if dropped before [`Unfinished::disarm`].
pub(super) struct Unfinished(Option<Box<dyn FnOnce() + Send>>);

impl Unfinished {
    pub(super) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(report) = self.0.take() {
            report();
        }
    }
}

fn elapsed_ms(started: std::time::Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
