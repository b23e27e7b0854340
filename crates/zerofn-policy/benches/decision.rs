//! Cost of one policy decision (the issue's bar: p99 <= 20 µs on this machine), for a platform
//! with 20 apps of 10 functions each (every function with invoke, secret, bucket and egress
//! grants: 2,000+ permits) and five guardrails. Measured per decision, interleaved by round.
//! Baseline in the same run: bare Cedar `is_authorized` on a request built once, over the same
//! policies and entities, so zerofn's own cost (building the request and context, reading the
//! answer) shows apart from Cedar's.
//!
//! Run: `cargo bench -p zerofn-policy --bench decision`. Results go to BENCHMARKS.md.

use std::path::Path;
use std::time::{Duration, Instant};
use zerofn_policy::{
    AccessRequest, Capability, Destination, FunctionRef, Guardrails, Pdp, RequestContext,
};

const APPS: usize = 20;
const FUNCTIONS: usize = 10;
const ROUNDS: usize = 10;
const PER_ROUND: usize = 5_000;

const GUARDRAILS: &str = r#"
@id("no-plain-http")
forbid(principal, action == Action::"egress", resource) when { context.destination.scheme == "http" };
@id("no-metadata")
forbid(principal, action == Action::"egress", resource == Host::"169.254.169.254");
@id("deep-chains")
forbid(principal, action == Action::"invoke", resource) when { context.depth > 8 };
@id("risky")
forbid(principal, action, resource) when { context.risk > 80 };
@id("payments-secrets")
forbid(principal, action == Action::"secret.read", resource) when { resource in App::"payments" };
"#;

fn manifest(app: usize) -> String {
    let mut text = format!("[app]\nname = \"app{app}\"\nversion = \"1.0.0\"\n");
    for f in 0..FUNCTIONS {
        let next = (f + 1) % FUNCTIONS;
        let after = (f + 2) % FUNCTIONS;
        text.push_str(&format!(
            "\n[functions.fn{f}]\ncomponent = \"f.wasm\"\ntrigger = {{ http = {{ route = \"/a{app}/f{f}\" }} }}\n\
             auth = {{ public = true }}\n\
             grants = {{ invoke = [\"fn{next}\", \"fn{after}\"], secrets = [\"key{f}\", \"token\"], \
             kv = {{ cache = \"read-write\", shared = \"read\" }}, \
             egress = [\"https://api{f}.example.com/v1\", \"https://auth.example.com\", \"https://cdn.example.net:8443/assets\"] }}\n"
        ));
    }
    text
}

fn main() {
    let manifests: Vec<_> = (0..APPS)
        .map(|app| {
            zerofn_manifest::parse(Path::new("zerofn.toml"), &manifest(app))
                .unwrap_or_else(|e| panic!("benchmark manifest: {e}"))
        })
        .collect();
    let dir = std::env::temp_dir().join(format!("zerofn-bench-guardrails-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join("org.cedar"), GUARDRAILS).unwrap_or_else(|e| panic!("{e}"));
    let guardrails = Guardrails::load(std::slice::from_ref(&dir)).unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir_all(&dir);
    let functions: Vec<_> = manifests
        .iter()
        .flat_map(|m| {
            m.functions()
                .map(|f| (FunctionRef::new(m.app_name(), &f.name), &f.grants))
        })
        .collect();
    let started = Instant::now();
    let pdp = Pdp::build(&guardrails, functions).unwrap_or_else(|e| panic!("{e}"));
    let build = started.elapsed();

    let context = RequestContext {
        invocation_id: "0193a5f0-7c1e-7d2a-9b1e-3f4a5b6c7d8e".into(),
        caller_chain: vec!["spiffe://zerofn.local/app/app7/fn/fn2".into()],
        time: 1_800_000_000,
        risk: 10,
    };
    let request = |function: &str, capability: Capability| AccessRequest {
        principal: FunctionRef::new("app7", function),
        capability,
        context: context.clone(),
    };
    let cases = [
        (
            "invoke, granted",
            request(
                "fn3",
                Capability::Invoke {
                    callee: "fn4".into(),
                },
            ),
            true,
        ),
        (
            "invoke, not granted",
            request(
                "fn3",
                Capability::Invoke {
                    callee: "fn9".into(),
                },
            ),
            false,
        ),
        (
            "egress, granted",
            request(
                "fn3",
                Capability::Egress(Destination::new(
                    "https",
                    "api3.example.com",
                    443,
                    "/v1/orders",
                    "POST",
                )),
            ),
            true,
        ),
        (
            "egress, guardrail",
            request(
                "fn3",
                Capability::Egress(Destination::new(
                    "http",
                    "api3.example.com",
                    80,
                    "/v1",
                    "GET",
                )),
            ),
            false,
        ),
        (
            "secret.read, granted",
            request(
                "fn3",
                Capability::SecretRead {
                    name: "key3".into(),
                },
            ),
            true,
        ),
    ];
    for (name, request, expected) in &cases {
        let decision = pdp.decide(request);
        assert_eq!(decision.allowed, *expected, "{name}: {decision:?}");
    }

    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    for _ in 0..ROUNDS {
        for (index, (_, request, _)) in cases.iter().enumerate() {
            for _ in 0..PER_ROUND {
                let start = Instant::now();
                let decision = pdp.decide(request);
                samples[index].push(start.elapsed());
                std::hint::black_box(decision);
            }
        }
    }
    println!(
        "policy decisions: {} policies ({APPS} apps x {FUNCTIONS} functions + 5 guardrails), built in {:.1} ms; {ROUNDS} rounds x {PER_ROUND}",
        pdp.policy_ids().count(),
        build.as_secs_f64() * 1e3
    );
    println!("{:<24} {:>9} {:>9} {:>9}", "", "p50", "p99", "max");
    for (index, (name, _, _)) in cases.iter().enumerate() {
        let s = &mut samples[index];
        s.sort_unstable();
        let at = |q: f64| s[((s.len() as f64 * q) as usize).min(s.len() - 1)];
        println!(
            "{name:<24} {:>7.1}µs {:>7.1}µs {:>7.1}µs",
            micros(at(0.5)),
            micros(at(0.99)),
            micros(s[s.len() - 1])
        );
    }
    let baseline = pdp.bare_cedar_baseline(&cases[0].1, ROUNDS * PER_ROUND);
    println!(
        "{:<24} {:>7.1}µs {:>7.1}µs {:>7.1}µs   (bare Cedar is_authorized, request prebuilt)",
        "baseline",
        micros(baseline.0),
        micros(baseline.1),
        micros(baseline.2)
    );
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
