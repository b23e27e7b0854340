//! Cost of the request guards of the run stage, paid before any sandbox exists: input
//! validation (media type, size, UTF-8, depth scan, JSON parse, JSON Schema) and the rate-limit
//! buckets. Baselines in the same run: the bare libraries doing the core of the same work
//! (`serde_json` + `jsonschema` on the same document; one `governor` bucket), so zerofn's own
//! checks show apart from the library cost.
//!
//! Run: `cargo bench -p zerofn-server --bench guards`. Results go to BENCHMARKS.md.

// A benchmark reports failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use zerofn_server::input::InputGuard;
use zerofn_server::rate_limit::{Buckets, Caller, RateLimits};

const ROUNDS: usize = 5;
const PER_ROUND: usize = 2_000;

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["items"],
  "properties": {
    "items": {
      "type": "array", "minItems": 1, "maxItems": 1000,
      "items": {
        "type": "object", "additionalProperties": false, "required": ["sku", "qty"],
        "properties": {
          "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{2}$"},
          "qty": {"type": "integer", "minimum": 1, "maximum": 100}
        }
      }
    }
  }
}"#;

fn percentiles(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "{name:<52} p50 {:>8.2} µs   p99 {:>8.2} µs   (n={})",
        at(0.50).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        samples.len()
    );
}

fn measure(mut op: impl FnMut()) -> Vec<Duration> {
    for _ in 0..PER_ROUND / 10 {
        op();
    }
    let mut samples = Vec::with_capacity(ROUNDS * PER_ROUND);
    for _ in 0..ROUNDS {
        for _ in 0..PER_ROUND {
            let start = Instant::now();
            op();
            samples.push(start.elapsed());
        }
    }
    samples
}

fn basket(lines: usize) -> Vec<u8> {
    let items: Vec<String> = (0..lines)
        .map(|i| format!(r#"{{"sku":"TEA-{:02}","qty":{}}}"#, i % 100, i % 100 + 1))
        .collect();
    format!(r#"{{"items":[{}]}}"#, items.join(",")).into_bytes()
}

fn input_case(lines: usize) {
    let mut files = zerofn_manifest::AttachedFiles::new();
    files.insert("schema.json", SCHEMA.as_bytes().to_vec());
    let spec = zerofn_manifest::InputSpec {
        schema: None,
        schema_file: Some("schema.json".into()),
        content_types: Vec::new(),
        max_body_bytes: None,
        max_json_depth: None,
    };
    let guard = InputGuard::compile(&spec, &files, 1 << 20).unwrap();
    let body = basket(lines);
    let label = format!("{lines} lines, {} bytes", body.len());
    let zerofn = measure(|| {
        guard
            .check_data("checkout", Some("application/json"), &body)
            .unwrap();
    });
    let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let baseline = measure(|| {
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(validator.is_valid(&value));
    });
    percentiles(&format!("input: zerofn InputGuard, {label}"), zerofn);
    percentiles(
        &format!("baseline: serde_json + jsonschema, {label}"),
        baseline,
    );
}

fn rate_case() {
    let mut limits = zerofn_manifest::LimitPolicy::default().defaults;
    limits.requests_per_second = 10_000;
    limits.burst = u64::from(u32::MAX);
    limits.caller_requests_per_second = 10_000;
    limits.caller_burst = u64::from(u32::MAX);
    let buckets = RateLimits::new(&limits);
    let caller = Caller::Address("127.0.0.1".parse().unwrap());
    let zerofn = measure(|| buckets.check(&caller, Buckets::Both).unwrap());
    let quota =
        governor::Quota::per_second(NonZeroU32::new(10_000).unwrap()).allow_burst(NonZeroU32::MAX);
    let bare = governor::DefaultDirectRateLimiter::direct(quota);
    let baseline = measure(|| bare.check().unwrap());
    percentiles(
        "rate limits: caller bucket (keyed) + function bucket",
        zerofn,
    );
    percentiles("baseline: one governor direct bucket", baseline);
}

fn main() {
    input_case(2);
    input_case(500);
    rate_case();
}
