//! Audit append throughput with the hash chain and durability: events recorded through the
//! real writer (channel, batching, JSON, chain hash, one SQLite transaction per batch in WAL
//! mode with synchronous=NORMAL, signed checkpoints every 10 000 events), N at a time and then
//! flushed, so that every event counted is committed. Baselines in the same run: the same
//! batched inserts straight into the store without the writer or any hashing, and the chain
//! hash alone.
//!
//! Run: `cargo bench -p zerofn-audit --bench append`. Results go to BENCHMARKS.md.

// A benchmark reports failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};
use zerofn_audit::{
    AuditEvent, AuditLog, CheckpointKey, CheckpointPolicy, EventKind, Outcome, TraceContext,
};
use zerofn_signing::{Algorithm, PrivateKey};
use zerofn_store::{ChainedAuditRow, NewAuditRow, Store};

const EVENTS: usize = 200_000;
const ROUNDS: usize = 5;
const BATCH: usize = 4_096;

fn event(n: usize, app: &Arc<str>, function: &Arc<str>, trace: &TraceContext) -> AuditEvent {
    AuditEvent::new(EventKind::InvocationEnd, Outcome::Success)
        .function(app.clone(), function.clone())
        .invocation(format!("0193b6c2-7d1e-7f3a-9c44-{n:012}"))
        .version("v-3f9a2c")
        .identity("spiffe://zerofn.local/app/shop/fn/checkout")
        .caller("jwt:alice")
        .trace(trace)
        .detail("duration_us", 812)
        .detail("status", 200)
        .detail("fuel", 1_250_000)
}

fn events(count: usize) -> Vec<AuditEvent> {
    let app: Arc<str> = "shop".into();
    let function: Arc<str> = "checkout".into();
    let trace = TraceContext::start();
    (0..count)
        .map(|n| event(n, &app, &function, &trace))
        .collect()
}

fn report(name: &str, mut rates: Vec<f64>) {
    rates.sort_by(f64::total_cmp);
    println!(
        "{name:<58} median {:>9.0} events/s   min {:>9.0}   max {:>9.0}   ({ROUNDS} rounds of {EVENTS})",
        rates[rates.len() / 2],
        rates[0],
        rates[rates.len() - 1]
    );
}

fn rate(elapsed: Duration) -> f64 {
    EVENTS as f64 / elapsed.as_secs_f64()
}

fn writer(runtime: &tokio::runtime::Runtime, checkpoints: bool) -> Vec<f64> {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let policy = checkpoints.then(|| {
        CheckpointPolicy::new(Arc::new(CheckpointKey::from_key(
            PrivateKey::generate(Algorithm::Ed25519).unwrap(),
        )))
    });
    let audit = AuditLog::start_with(store.clone(), policy).unwrap();
    let mut rates = Vec::new();
    runtime.block_on(async {
        // Warm-up.
        for e in events(BATCH) {
            audit.record(e).await;
        }
        audit.flush().await;
        for _ in 0..ROUNDS {
            let batch = events(EVENTS);
            let start = Instant::now();
            for e in batch {
                audit.record(e).await;
            }
            audit.flush().await;
            rates.push(rate(start.elapsed()));
        }
    });
    if checkpoints {
        let report =
            zerofn_audit::verify(&store, &[audit.checkpoint_key().unwrap().clone()]).unwrap();
        assert!(report.intact, "{}", report.render());
        // One per batch that crosses 10 000 events since the last: 10 000 to 14 095 apart.
        assert!(report.checkpoints as usize >= ROUNDS * EVENTS / 14_096);
    }
    rates
}

/// The same events, serialised and inserted in batches of 4 096 per transaction, with no
/// writer thread, no channel and no hashing (a constant hash fills the column).
fn baseline() -> Vec<f64> {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut next_id = 0i64;
    let mut rates = Vec::new();
    for _ in 0..ROUNDS {
        let batch = events(EVENTS);
        let start = Instant::now();
        for chunk in batch.chunks(BATCH) {
            let rows: Vec<ChainedAuditRow> = chunk
                .iter()
                .map(|e| {
                    next_id += 1;
                    ChainedAuditRow {
                        id: next_id,
                        hash: [0; 32],
                        row: NewAuditRow {
                            at_ms: e.at_ms,
                            kind: e.kind.as_str(),
                            invocation_id: e.invocation_id.clone(),
                            app: e.app.clone(),
                            function: e.function.clone(),
                            outcome: e.outcome.as_str(),
                            trace_id: e.trace_id.clone(),
                            json: serde_json::to_string(e).unwrap(),
                        },
                    }
                })
                .collect();
            store.append(&rows, None, &[]).unwrap();
        }
        rates.push(rate(start.elapsed()));
    }
    rates
}

/// The chain hash alone over the same event texts.
fn hashing() -> Vec<f64> {
    let texts: Vec<String> = events(EVENTS)
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    let mut rates = Vec::new();
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let mut head = zerofn_audit::GENESIS;
        for (id, text) in texts.iter().enumerate() {
            head = zerofn_audit::link_hash(&head, id as i64, text.as_bytes());
        }
        std::hint::black_box(head);
        rates.push(rate(start.elapsed()));
    }
    rates
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let bytes = serde_json::to_string(&events(1)[0]).unwrap().len();
    println!("audit append, one invocation.end event of {bytes} bytes of JSON");
    report(
        "writer: chained, checkpointed, committed (record N, flush)",
        writer(&runtime, true),
    );
    report("writer: chained, no checkpoints", writer(&runtime, false));
    report(
        "baseline: batched inserts, no writer, no hashing",
        baseline(),
    );
    report("chain hash alone (SHA-256 per event)", hashing());
}
