//! Correlation: where each invocation sits in a W3C trace and who asked for it. The edge (the
//! HTTP trigger, the schedule and queue triggers, the control plane's invoke) makes an
//! [`Origin`]: the caller's `traceparent` continued, or a new trace when there is none or it is
//! malformed (the refused value is recorded in `invocation.start`). The platform turns it into
//! the invocation's [`InvocationScope`], which every event of the invocation is stamped with;
//! each capability use takes a child span of it, and every request the platform sends on the
//! invocation's behalf (a call to another function, an egress request) carries that span's
//! `traceparent`, replacing whatever the guest wrote: the platform's spans are authoritative.

use crate::routes::ActiveFunction;
use std::sync::Arc;
use zerofn_audit::{AuditEvent, InvocationScope, TRACEPARENT, TraceContext};

/// The caller of a public function, and of anything whose caller proved nothing.
pub const ANONYMOUS: &str = "anonymous";
/// The caller of an invocation an operator asked for through the control plane (`zerofn
/// invoke`); which operator is in the control plane's own events.
pub const OPERATOR: &str = "operator";
/// The caller of a scheduled delivery.
pub const SCHEDULE: &str = "schedule";

/// How many characters of a refused `traceparent` are recorded (a valid one has 55).
const MAX_RECORDED_TRACEPARENT: usize = 128;

/// Where an invocation comes from: its id, who asked, and its place in a trace.
#[derive(Debug, Clone)]
pub struct Origin {
    pub invocation_id: Arc<str>,
    /// `jwt:<sub>`, `mtls:<SPIFFE ID>`, `api-key:<id>`, a calling function's SPIFFE ID,
    /// `schedule`, `queue:<name>`, `operator:<name>` or `anonymous`.
    pub caller: Arc<str>,
    /// The invocation's own span.
    pub trace: TraceContext,
    /// The `traceparent` the caller sent, if it was refused (and a new trace started).
    pub refused_traceparent: Option<RefusedTraceparent>,
}

/// A caller's `traceparent` that was not continued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedTraceparent {
    /// The value as sent, cut to 128 characters.
    pub value: String,
    /// Why, from [`zerofn_audit::TraceParentError`].
    pub reason: String,
}

impl Origin {
    /// An invocation continuing the trace a caller's `traceparent` names; a new trace when
    /// there is none, or it is malformed, or there are several (W3C Trace Context: a receiver
    /// that cannot parse the header restarts the trace).
    pub fn from_headers(
        invocation_id: impl Into<Arc<str>>,
        caller: impl Into<Arc<str>>,
        headers: &http::HeaderMap,
    ) -> Self {
        let mut values = headers.get_all(TRACEPARENT).iter();
        let (trace, refused) = match (values.next(), values.next()) {
            (None, _) => (TraceContext::start(), None),
            (Some(value), None) => {
                let text = String::from_utf8_lossy(value.as_bytes());
                continue_or_start(&text)
            }
            (Some(value), Some(_)) => (
                TraceContext::start(),
                Some(RefusedTraceparent {
                    value: bounded(&String::from_utf8_lossy(value.as_bytes())),
                    reason: "several traceparent headers".into(),
                }),
            ),
        };
        Self {
            invocation_id: invocation_id.into(),
            caller: caller.into(),
            trace,
            refused_traceparent: refused,
        }
    }

    /// An invocation continuing `traceparent` (a CloudEvent's distributed-tracing extension
    /// attribute), or starting a trace.
    pub fn from_traceparent(
        invocation_id: impl Into<Arc<str>>,
        caller: impl Into<Arc<str>>,
        traceparent: Option<&str>,
    ) -> Self {
        let (trace, refused) = match traceparent {
            Some(value) => continue_or_start(value),
            None => (TraceContext::start(), None),
        };
        Self {
            invocation_id: invocation_id.into(),
            caller: caller.into(),
            trace,
            refused_traceparent: refused,
        }
    }

    /// An invocation in `trace` (a callee, whose parent is its caller's call span).
    pub fn in_trace(
        invocation_id: impl Into<Arc<str>>,
        caller: impl Into<Arc<str>>,
        trace: TraceContext,
    ) -> Self {
        Self {
            invocation_id: invocation_id.into(),
            caller: caller.into(),
            trace,
            refused_traceparent: None,
        }
    }

    /// The same origin with the caller its credential proved.
    pub fn with_caller(mut self, caller: impl Into<Arc<str>>) -> Self {
        self.caller = caller.into();
        self
    }

    /// The invocation of `function` this origin starts.
    pub fn scope(&self, function: &ActiveFunction) -> InvocationScope {
        InvocationScope {
            invocation_id: self.invocation_id.clone(),
            app: function.app.clone(),
            function: function.name.clone(),
            version_id: function.version_id.clone(),
            identity: function.identity.clone(),
            caller: self.caller.clone(),
            trace: self.trace.clone(),
        }
    }

    /// Stamps an event recorded before the invocation exists (a refusal, an authentication
    /// decision): its id, caller and span, and `function`'s fields when there is one.
    pub fn stamp(&self, event: AuditEvent, function: Option<&ActiveFunction>) -> AuditEvent {
        let event = event
            .invocation(self.invocation_id.clone())
            .caller(self.caller.clone())
            .trace(&self.trace);
        match function {
            Some(function) => event
                .function(function.app.clone(), function.name.clone())
                .version(function.version_id.clone())
                .identity(function.identity.clone()),
            None => event,
        }
    }
}

/// The caller's context continued, or a new trace and why the caller's was refused.
fn continue_or_start(value: &str) -> (TraceContext, Option<RefusedTraceparent>) {
    match TraceContext::continue_from(value) {
        Ok(trace) => (trace, None),
        Err(error) => (
            TraceContext::start(),
            Some(RefusedTraceparent {
                value: bounded(value),
                reason: error.to_string(),
            }),
        ),
    }
}

fn bounded(value: &str) -> String {
    value.chars().take(MAX_RECORDED_TRACEPARENT).collect()
}

/// Sets `traceparent` to `span`'s, replacing every value already there (the guest's, the
/// caller's): whoever receives the request continues the platform's span.
pub fn set_traceparent(headers: &mut http::HeaderMap, span: &TraceContext) {
    headers.remove(TRACEPARENT);
    if let Ok(value) = http::HeaderValue::from_str(&span.traceparent()) {
        headers.insert(TRACEPARENT, value);
    }
}

/// The `traceparent` a guest put on an outbound request, when it does not continue the
/// invocation's trace (a guest that continues it sends a span of its own, which is fine):
/// recorded, never followed.
pub(crate) fn foreign_traceparent(
    headers: &http::HeaderMap,
    scope: &InvocationScope,
) -> Option<String> {
    let sent: Vec<&http::HeaderValue> = headers.get_all(TRACEPARENT).iter().collect();
    match sent.as_slice() {
        [] => None,
        [value] => {
            let text = String::from_utf8_lossy(value.as_bytes());
            match TraceContext::continue_from(&text) {
                Ok(context) if context.trace_id() == scope.trace.trace_id() => None,
                _ => Some(bounded(&text)),
            }
        }
        [first, ..] => Some(bounded(&String::from_utf8_lossy(first.as_bytes()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(values: &[&str]) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        for value in values {
            headers.append(TRACEPARENT, http::HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn a_valid_traceparent_is_continued_and_a_bad_one_restarts_with_the_reason() {
        let origin = Origin::from_headers("i", ANONYMOUS, &headers(&[PARENT]));
        assert_eq!(
            &**origin.trace.trace_id(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(
            origin.trace.parent_span_id().map(|s| &**s),
            Some("00f067aa0ba902b7")
        );
        assert!(origin.refused_traceparent.is_none());

        let origin = Origin::from_headers("i", ANONYMOUS, &headers(&["00-nope"]));
        assert_ne!(
            &**origin.trace.trace_id(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(origin.trace.parent_span_id().is_none());
        let refused = origin.refused_traceparent.unwrap();
        assert_eq!(refused.value, "00-nope");
        assert!(refused.reason.contains("traceparent is not"), "{refused:?}");

        let origin = Origin::from_headers("i", ANONYMOUS, &headers(&[PARENT, PARENT]));
        assert!(origin.trace.parent_span_id().is_none());
        assert_eq!(
            origin.refused_traceparent.unwrap().reason,
            "several traceparent headers"
        );

        let origin = Origin::from_headers("i", ANONYMOUS, &http::HeaderMap::new());
        assert!(origin.refused_traceparent.is_none());
        assert!(origin.trace.parent_span_id().is_none());

        let long = "x".repeat(1000);
        let origin = Origin::from_traceparent("i", SCHEDULE, Some(&long));
        assert_eq!(origin.refused_traceparent.unwrap().value.len(), 128);
    }

    #[test]
    fn the_platforms_span_replaces_what_the_guest_wrote() {
        let span = TraceContext::start();
        let mut sent = headers(&[PARENT, PARENT]);
        set_traceparent(&mut sent, &span);
        assert_eq!(
            sent.get_all(TRACEPARENT).iter().collect::<Vec<_>>(),
            [span.traceparent().as_str()]
        );
    }

    #[test]
    fn only_a_guest_traceparent_outside_the_invocations_trace_is_foreign() {
        let scope = InvocationScope {
            invocation_id: "i".into(),
            app: "a".into(),
            function: "f".into(),
            version_id: "v".into(),
            identity: "spiffe://zerofn.local/app/a/fn/f".into(),
            caller: ANONYMOUS.into(),
            trace: TraceContext::start(),
        };
        assert_eq!(foreign_traceparent(&http::HeaderMap::new(), &scope), None);
        let own = scope.trace.child().traceparent();
        assert_eq!(foreign_traceparent(&headers(&[&own]), &scope), None);
        assert_eq!(
            foreign_traceparent(&headers(&[PARENT]), &scope).as_deref(),
            Some(PARENT)
        );
        assert_eq!(
            foreign_traceparent(&headers(&["garbage"]), &scope).as_deref(),
            Some("garbage")
        );
    }
}
