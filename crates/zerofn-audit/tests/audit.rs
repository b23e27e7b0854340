//! Events recorded through the writer land in the real store, in order, with their schema.

// Test helpers outside `#[test]` functions report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use zerofn_audit::{AuditEvent, AuditLog, EventKind, GuestOutputLine, Outcome};
use zerofn_store::{AuditQuery, LogQuery, Store};

#[tokio::test]
async fn recorded_events_and_output_are_stored_after_flush() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let audit = AuditLog::start(store.clone()).unwrap();
    for i in 0..1000 {
        audit
            .record(
                AuditEvent::new(EventKind::InvocationEnd, Outcome::Failure)
                    .reason("timeout")
                    .invocation(format!("inv-{i}"))
                    .function("shop", "checkout")
                    .detail("duration_ms", 5),
            )
            .await;
    }
    audit
        .guest_output(vec![GuestOutputLine {
            app: "shop".into(),
            function: "checkout".into(),
            invocation_id: "inv-1".into(),
            stream: "stderr",
            line: "boom".into(),
        }])
        .await;
    audit.flush().await;

    let events = store
        .audit_events(&AuditQuery {
            limit: Some(10_000),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(events.len(), 1000);
    assert_eq!(events[0].invocation_id.as_deref(), Some("inv-0"));
    assert_eq!(events[999].invocation_id.as_deref(), Some("inv-999"));
    let event = &events[0].event;
    assert_eq!(event["schema"], "zerofn.audit/v1");
    assert_eq!(event["kind"], "invocation.end");
    assert_eq!(event["outcome"], "failure");
    assert_eq!(event["reason"], "timeout");
    assert_eq!(event["detail"]["duration_ms"], 5);
    let logs = store.logs(&LogQuery::default()).unwrap();
    assert_eq!(logs[0].line, "boom");
    assert_eq!(logs[0].stream, "stderr");
}
