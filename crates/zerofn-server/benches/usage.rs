//! Cost of `zerofn policy suggest`'s evidence: `app_usage` (what `GET /v1/apps/<app>/usage`
//! runs) over a stored stream of 1 000 000 events, 70 % of them of the app reviewed (100 000
//! shop-like invocations of seven events: start, call decision, egress, secret read, key-value
//! write and read, end) and 30 % of another app. Baselines in the same run, over the same
//! store: the same pages read from the store without parsing them, and the pages read and
//! parsed as JSON without aggregating.
//!
//! Run: `cargo bench -p zerofn-server --bench usage`. Results go to BENCHMARKS.md.

// A benchmark reports failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};
use zerofn_audit::{AuditEvent, AuditLog, EventKind, Outcome};
use zerofn_server::control::each_usage_row;
use zerofn_store::Store;

const INVOCATIONS: usize = 100_000;
const NOISE_EVENTS: usize = 300_000;
const ROUNDS: usize = 5;

fn shop_invocation(n: usize) -> Vec<AuditEvent> {
    let at = 1_700_000_000_000 + n as i64;
    let base = |kind, outcome| {
        let mut event = AuditEvent::new(kind, outcome)
            .function("shop".to_string(), "checkout".to_string())
            .version("sha256:3f9a2c")
            .invocation(format!("0193b6c2-7d1e-7f3a-9c44-{n:012}"))
            .identity("spiffe://zerofn.local/app/shop/fn/checkout");
        event.at_ms = at;
        event
    };
    vec![
        base(EventKind::InvocationStart, Outcome::Success),
        base(EventKind::AuthzDecision, Outcome::Success)
            .reason("allowed by grant/shop/checkout/invoke/inventory")
            .detail("action", "invoke")
            .detail("resource", "spiffe://zerofn.local/app/shop/fn/inventory"),
        base(EventKind::Egress, Outcome::Success)
            .reason("exchanged")
            .detail("destination", "https://payments.example.com:443")
            .detail("method", "POST")
            .detail("address", "93.184.216.34")
            .detail("range", "public")
            .detail("status", 201),
        base(EventKind::SecretRead, Outcome::Success)
            .reason("secret-read")
            .detail("name", "payments_key"),
        base(EventKind::KvWrite, Outcome::Success)
            .detail("operation", "set")
            .detail("bucket", "orders"),
        base(EventKind::KvRead, Outcome::Success)
            .detail("operation", "get")
            .detail("bucket", "orders"),
        base(EventKind::InvocationEnd, Outcome::Success).detail("duration_us", 800),
    ]
}

fn noise(n: usize) -> AuditEvent {
    let mut event = AuditEvent::new(EventKind::InvocationEnd, Outcome::Success)
        .function("blog".to_string(), "render".to_string())
        .invocation(format!("0193b6c2-7d1e-7f3a-9c45-{n:012}"))
        .detail("duration_us", 500);
    event.at_ms = 1_700_000_000_000 + n as i64;
    event
}

/// A store holding the stream, written by the real audit writer (chain hashes included).
fn stored_stream(runtime: &tokio::runtime::Runtime) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let audit = AuditLog::start_with(store.clone(), None).unwrap();
    runtime.block_on(async {
        for n in 0..INVOCATIONS {
            for event in shop_invocation(n) {
                audit.record(event).await;
            }
            // Interleaved, as two apps' traffic is.
            for k in 0..NOISE_EVENTS / INVOCATIONS {
                audit.record(noise(n * 3 + k)).await;
            }
        }
        audit.flush().await;
    });
    (dir, store)
}

/// Reads every row of the window as `app_usage` does, handing each to `each`.
fn pages(store: &Store, mut each: impl FnMut(&str)) -> usize {
    let mut rows = 0;
    each_usage_row(store, "shop", None, |_, text| {
        rows += 1;
        each(text);
    })
    .unwrap();
    rows
}

fn measure(name: &str, rows: usize, mut run: impl FnMut()) {
    let mut times: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed()
        })
        .collect();
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "{name:<44} median {:>8.1} ms ({:>9.0} events/s)   min {:>8.1} ms   max {:>8.1} ms",
        median.as_secs_f64() * 1e3,
        rows as f64 / median.as_secs_f64(),
        times[0].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let (_dir, store) = stored_stream(&runtime);
    println!(
        "stream: {} events stored in {:.1} s",
        INVOCATIONS * 7 + NOISE_EVENTS,
        started.elapsed().as_secs_f64()
    );
    let rows = pages(&store, |_| {});
    // Every shop event is of a kind that counts but `invocation.end`.
    assert_eq!(rows, INVOCATIONS * 6);

    measure("baseline: store pages only", rows, || {
        let mut bytes = 0;
        pages(&store, |text| bytes += text.len());
        std::hint::black_box(bytes);
    });
    measure("baseline: store pages + JSON parse", rows, || {
        let mut parsed = 0;
        pages(&store, |text| {
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            parsed += usize::from(value.is_object());
        });
        std::hint::black_box(parsed);
    });
    measure("app_usage (pages + parse + aggregate)", rows, || {
        let usage = zerofn_server::control::app_usage(&store, "shop", None).unwrap();
        let checkout = usage.function("checkout").unwrap();
        assert_eq!(checkout.invocations.count, INVOCATIONS as u64);
        std::hint::black_box(usage);
    });
}
