//! Who acts, on whose behalf, and where in the trace: the fields every event of one invocation
//! carries. Made once when an invocation is set up and shared (`Arc`) by everything that records
//! on its behalf (the runtime, each enforcement point), so that stamping an event clones a few
//! `Arc<str>`s and formats nothing.

use crate::{AuditEvent, EventKind, Outcome, TraceContext};
use std::sync::Arc;

/// One invocation as its events name it.
#[derive(Debug, Clone)]
pub struct InvocationScope {
    pub invocation_id: Arc<str>,
    pub app: Arc<str>,
    pub function: Arc<str>,
    pub version_id: Arc<str>,
    /// The function's workload identity (SPIFFE ID).
    pub identity: Arc<str>,
    /// Who asked for the invocation (see [`AuditEvent::caller`]).
    pub caller: Arc<str>,
    /// The invocation's own span; its capability uses are children of it.
    pub trace: TraceContext,
}

impl InvocationScope {
    /// An event of the invocation itself (start, end, a limit), in the invocation's span.
    pub fn event(&self, kind: EventKind, outcome: Outcome) -> AuditEvent {
        self.event_in(&self.trace, kind, outcome)
    }

    /// An event of one capability use, in that use's own `span` (see [`Self::span`]).
    pub fn event_in(&self, span: &TraceContext, kind: EventKind, outcome: Outcome) -> AuditEvent {
        AuditEvent::new(kind, outcome).stamped(self, span)
    }

    /// A new span for one capability use (a decision, a secret read, an outbound call, a
    /// key-value write), under the invocation's.
    pub fn span(&self) -> TraceContext {
        self.trace.child()
    }
}

impl AuditEvent {
    /// Stamps the invocation's fields (id, function, version, identity, caller) and `span`.
    pub fn stamped(self, scope: &InvocationScope, span: &TraceContext) -> Self {
        self.invocation(scope.invocation_id.clone())
            .function(scope.app.clone(), scope.function.clone())
            .version(scope.version_id.clone())
            .identity(scope.identity.clone())
            .caller(scope.caller.clone())
            .trace(span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> InvocationScope {
        InvocationScope {
            invocation_id: "inv-1".into(),
            app: "shop".into(),
            function: "checkout".into(),
            version_id: "v1".into(),
            identity: "spiffe://zerofn.local/app/shop/fn/checkout".into(),
            caller: "anonymous".into(),
            trace: TraceContext::start(),
        }
    }

    #[test]
    fn an_invocations_events_carry_its_span_and_a_use_its_own_below_it() {
        let scope = scope();
        let start = scope.event(EventKind::InvocationStart, Outcome::Success);
        assert_eq!(start.span_id.as_ref(), Some(scope.trace.span_id()));
        assert_eq!(start.trace_id.as_ref(), Some(scope.trace.trace_id()));
        assert_eq!(start.caller.as_deref(), Some("anonymous"));
        assert_eq!(
            start.identity.as_deref(),
            Some("spiffe://zerofn.local/app/shop/fn/checkout")
        );
        assert_eq!(start.version_id.as_deref(), Some("v1"));

        let span = scope.span();
        let read = scope.event_in(&span, EventKind::SecretRead, Outcome::Success);
        assert_eq!(read.trace_id.as_ref(), Some(scope.trace.trace_id()));
        assert_eq!(read.parent_span_id.as_ref(), Some(scope.trace.span_id()));
        assert_ne!(read.span_id, start.span_id);
        assert_eq!(read.invocation_id.as_deref(), Some("inv-1"));
    }
}
