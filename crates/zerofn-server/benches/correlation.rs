//! The added cost per invocation of correlation (issue 6): what the hot path does now that it
//! did not before, measured against the same work without it. Both sides build an
//! invocation's `invocation.start` and `invocation.end` events and record them (the channel
//! send to the real audit writer, with a real store behind it); the correlated side also reads
//! the caller's `traceparent` (or starts a trace: random ids), makes the invocation's scope,
//! stamps identity, caller and span on both events with the start's extra detail, and writes
//! `traceparent` on the request handed to the guest and on the response.
//!
//! Run: `cargo bench -p zerofn-server --bench correlation`. Results go to BENCHMARKS.md.

// A benchmark reports failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod timing;

use std::sync::Arc;
use timing::{measure, percentiles};
use zerofn_audit::{AuditEvent, AuditLog, EventKind, InvocationScope, Outcome};
use zerofn_server::correlation::{ANONYMOUS, Origin, set_traceparent};

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

struct Function {
    app: Arc<str>,
    name: Arc<str>,
    version_id: Arc<str>,
    identity: Arc<str>,
}

/// The invocation's events as they were before: id, function, version, duration, status.
async fn uncorrelated(audit: &AuditLog, function: &Function, id: u64) {
    let invocation_id: Arc<str> = format!("0190b1c2-0000-7000-8000-{id:012x}").into();
    audit
        .record(
            AuditEvent::new(EventKind::InvocationStart, Outcome::Success)
                .invocation(invocation_id.clone())
                .function(function.app.clone(), function.name.clone())
                .version(function.version_id.clone()),
        )
        .await;
    audit
        .record(
            AuditEvent::new(EventKind::InvocationEnd, Outcome::Success)
                .invocation(invocation_id)
                .function(function.app.clone(), function.name.clone())
                .version(function.version_id.clone())
                .detail("duration_us", 1234u64)
                .detail("status", 200u16),
        )
        .await;
}

/// The same, correlated: the trace read from `request` (or started), the scope, the stamped
/// events and the `traceparent` headers on the guest's request and on the response.
async fn correlated(
    audit: &AuditLog,
    function: &Function,
    id: u64,
    request: &mut http::HeaderMap,
    response: &mut http::HeaderMap,
) {
    let origin = Origin::from_headers(
        format!("0190b1c2-0000-7000-8000-{id:012x}"),
        ANONYMOUS,
        request,
    );
    let scope = Arc::new(InvocationScope {
        invocation_id: origin.invocation_id.clone(),
        app: function.app.clone(),
        function: function.name.clone(),
        version_id: function.version_id.clone(),
        identity: function.identity.clone(),
        caller: origin.caller.clone(),
        trace: origin.trace.clone(),
    });
    set_traceparent(request, &scope.trace);
    let mut start = scope.event(EventKind::InvocationStart, Outcome::Success);
    start.detail.0.push(("method", "POST".into()));
    start
        .detail
        .0
        .push(("route", "/checkout".to_string().into()));
    audit.record(start).await;
    set_traceparent(response, &scope.trace);
    audit
        .record(
            scope
                .event(EventKind::InvocationEnd, Outcome::Success)
                .detail("duration_us", 1234u64)
                .detail("status", 200u16),
        )
        .await;
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = zerofn_store::Store::open(dir.path()).unwrap();
    let audit = AuditLog::start(store).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let function = Function {
        app: "shop".into(),
        name: "checkout".into(),
        version_id: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
            .into(),
        identity: "spiffe://zerofn.local/app/shop/fn/checkout".into(),
    };
    let with_parent = {
        let mut headers = http::HeaderMap::new();
        headers.insert("traceparent", http::HeaderValue::from_static(PARENT));
        headers
    };

    println!("per invocation: build and record invocation.start + invocation.end");
    let mut id = 0u64;
    let mut run = |name: &str, op: &mut dyn FnMut(u64)| {
        let samples = measure(|| {
            id += 1;
            op(id);
        });
        percentiles(name, samples);
        // The writer catches up between variants, so none pays for another's backlog.
        runtime.block_on(audit.flush());
    };
    run("baseline: events without correlation", &mut |id| {
        runtime.block_on(uncorrelated(&audit, &function, id))
    });
    run("correlated: caller sent a traceparent", &mut |id| {
        let mut request = with_parent.clone();
        let mut response = http::HeaderMap::new();
        runtime.block_on(correlated(
            &audit,
            &function,
            id,
            &mut request,
            &mut response,
        ))
    });
    run("correlated: new trace (no traceparent)", &mut |id| {
        let mut request = http::HeaderMap::new();
        let mut response = http::HeaderMap::new();
        runtime.block_on(correlated(
            &audit,
            &function,
            id,
            &mut request,
            &mut response,
        ))
    });
    // The header maps the correlated runs clone and fill, alone: not part of the added cost.
    run("  (header maps alone, included above)", &mut |_| {
        let request = with_parent.clone();
        let response = http::HeaderMap::new();
        std::hint::black_box((request, response));
    });
}
