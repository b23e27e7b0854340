//! Cost of the request guards of the run stage, paid before any sandbox exists: input
//! validation (media type, size, UTF-8, depth scan, JSON parse, JSON Schema) and the rate-limit
//! buckets. Baselines in the same run: the bare libraries doing the core of the same work
//! (`serde_json` + `jsonschema` on the same document; one `governor` bucket), so zerofn's own
//! checks show apart from the library cost.
//!
//! Run: `cargo bench -p zerofn-server --bench guards`. Results go to BENCHMARKS.md.

// A benchmark reports failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod timing;

use std::num::NonZeroU32;
use timing::{measure, percentiles};

use zerofn_server::input::InputGuard;
use zerofn_server::rate_limit::{Buckets, Caller, RateLimits};

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
