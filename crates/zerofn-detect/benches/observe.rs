//! Cost of `Detectors::observe` per audit event and per invocation (an invocation here is six
//! events: start, egress decision, egress, secret read, key-value write, end), on 200 warmed
//! functions of 20 apps. The detectors run in the monitor task, off the invocation's path;
//! this is the work the monitor does for each invocation (the bar for everything an
//! invocation adds: <= 5 µs).
//!
//! Run: `cargo bench -p zerofn-detect --bench observe`. Results go to BENCHMARKS.md.

use std::time::{Duration, Instant};
use zerofn_audit::{AuditEvent, CommittedEvent, EventKind, Outcome};
use zerofn_detect::Detectors;

const APPS: usize = 20;
const FUNCTIONS: usize = 10;
const WARM_SECONDS: i64 = 600;
const MEASURED_INVOCATIONS: usize = 200_000;

fn invocation(app: &str, function: &str, at: i64, n: u64) -> Vec<AuditEvent> {
    let inv = format!("{n:032x}");
    let host = if n.is_multiple_of(3) {
        "https://cdn.example.net:443"
    } else {
        "https://api.stripe.com:443"
    };
    let base = |kind, outcome| {
        AuditEvent::new(kind, outcome)
            .function(app.to_string(), function.to_string())
            .version("01J9Z3V6ZKX3Q2W8E5R7T1Y4U6")
            .invocation(inv.clone())
    };
    let mut events = vec![
        base(EventKind::InvocationStart, Outcome::Success),
        base(EventKind::AuthzDecision, Outcome::Success)
            .reason("egress allowed by grant")
            .detail("action", "egress")
            .detail("resource", host)
            .detail("phase", "request"),
        base(EventKind::Egress, Outcome::Success)
            .reason("exchanged")
            .detail("destination", host)
            .detail("address", "93.184.216.34")
            .detail("status", 200),
        base(EventKind::SecretRead, Outcome::Success)
            .reason("secret-read")
            .detail("name", "stripe-key"),
        base(EventKind::KvWrite, Outcome::Success)
            .detail("operation", "set")
            .detail("bucket", "carts"),
        base(EventKind::InvocationEnd, Outcome::Success).detail("duration_us", 800),
    ];
    for (offset, event) in events.iter_mut().enumerate() {
        event.at_ms = at + offset as i64;
    }
    events
}

/// Nanoseconds this thread has run on a CPU (Linux), so a machine shared with other work does
/// not count its waits in the mean.
fn cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() {
    let names: Vec<(String, String)> = (0..APPS)
        .flat_map(|a| (0..FUNCTIONS).map(move |f| (format!("app{a}"), format!("fn{f}"))))
        .collect();
    let mut detectors = Detectors::new();
    let mut id = 0i64;
    let mut n = 0u64;
    // Warm every function past its warm-up: 10 minutes, one invocation each per second.
    for second in 0..WARM_SECONDS {
        for (app, function) in &names {
            n += 1;
            for event in invocation(app, function, second * 1_000 + (n % 900) as i64, n) {
                id += 1;
                detectors.learn(&CommittedEvent { id, event });
            }
        }
    }
    // The measured stream, built beforehand: 200 invocations per second over the functions.
    let mut groups = Vec::with_capacity(MEASURED_INVOCATIONS);
    for i in 0..MEASURED_INVOCATIONS {
        let (app, function) = &names[i % names.len()];
        n += 1;
        let at = WARM_SECONDS * 1_000 + (i as i64) * 5;
        let group: Vec<CommittedEvent> = invocation(app, function, at, n)
            .into_iter()
            .map(|event| {
                id += 1;
                CommittedEvent { id, event }
            })
            .collect();
        groups.push(group);
    }
    let events = (MEASURED_INVOCATIONS * 6) as f64;
    let mut per_invocation = Vec::with_capacity(MEASURED_INVOCATIONS);
    let mut detections = 0usize;
    let cpu_started = cpu_ns();
    let started = Instant::now();
    for group in &groups {
        let one = Instant::now();
        for committed in group {
            detections += detectors.observe(committed).len();
        }
        per_invocation.push(one.elapsed());
    }
    let total = started.elapsed();
    let cpu = cpu_ns()
        .zip(cpu_started)
        .map(|(end, start)| end.saturating_sub(start));
    per_invocation.sort_unstable();
    println!(
        "observe: {} functions, {} invocations ({} events), {} detections",
        names.len(),
        MEASURED_INVOCATIONS,
        events as u64,
        detections
    );
    println!(
        "  per event: mean {:.0} ns wall clock{}",
        total.as_nanos() as f64 / events,
        cpu.map(|ns| format!(", {:.0} ns on CPU", ns as f64 / events))
            .unwrap_or_default()
    );
    println!(
        "  per invocation (6 events): mean {:.2} µs, p50 {:.2} µs, p99 {:.2} µs",
        total.as_nanos() as f64 / MEASURED_INVOCATIONS as f64 / 1_000.0,
        percentile(&per_invocation, 0.50).as_nanos() as f64 / 1_000.0,
        percentile(&per_invocation, 0.99).as_nanos() as f64 / 1_000.0,
    );
    assert_eq!(detections, 0, "the benchmark's traffic is normal");
}
