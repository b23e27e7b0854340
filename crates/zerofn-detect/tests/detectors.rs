//! The detectors over synthetic audit streams: each fires on its anomaly, stays quiet during
//! warm-up and on noisy normal traffic, fires once per anomaly, keeps its state bounded, and
//! reads malformed events as nothing.

use serde_json::json;
use zerofn_audit::{AuditEvent, CommittedEvent, EventKind, Outcome};
use zerofn_detect::{Detection, DetectorConfig, Detectors, Severity};

/// One-second windows and a 30-second warm-up, so a test's stream stays short.
fn config() -> DetectorConfig {
    DetectorConfig {
        window_ms: 1_000,
        warmup_events: 100,
        warmup_windows: 30,
        cooldown_ms: 60_000,
        ..DetectorConfig::default()
    }
}

#[derive(Clone, Copy)]
struct Function {
    app: &'static str,
    name: &'static str,
    version: &'static str,
}

const CHECKOUT: Function = Function {
    app: "shop",
    name: "checkout",
    version: "v1",
};
const INVENTORY: Function = Function {
    app: "shop",
    name: "inventory",
    version: "v7",
};
const REPORTS: Function = Function {
    app: "finance",
    name: "reports",
    version: "v2",
};

/// A stream being fed to the detectors: ids in order, a deterministic generator for noise.
struct Stream {
    detectors: Detectors,
    id: i64,
    invocations: u64,
    seed: u64,
    /// When set, every event fed is kept here too.
    recorded: Option<Vec<CommittedEvent>>,
}

impl Stream {
    fn new(config: DetectorConfig) -> Self {
        Self {
            detectors: Detectors::with_config(config).unwrap_or_else(|e| panic!("config: {e}")),
            id: 0,
            invocations: 0,
            seed: 0x9e37_79b9_7f4a_7c15,
            recorded: None,
        }
    }

    /// xorshift64*: noise that is the same on every run.
    fn random(&mut self, below: u64) -> u64 {
        self.seed ^= self.seed >> 12;
        self.seed ^= self.seed << 25;
        self.seed ^= self.seed >> 27;
        self.seed.wrapping_mul(0x2545_f491_4f6c_dd1d) % below
    }

    fn feed(&mut self, event: AuditEvent) -> Vec<Detection> {
        self.id += 1;
        let committed = CommittedEvent { id: self.id, event };
        let found = self.detectors.observe(&committed);
        if let Some(recorded) = &mut self.recorded {
            recorded.push(committed);
        }
        found
    }

    fn invocation(&mut self) -> String {
        self.invocations += 1;
        format!("inv-{}", self.invocations)
    }

    /// One second (`second`) of a function's usual traffic: 3 to 7 invocations, each reaching
    /// one of two hosts, reading a secret, sometimes writing a key; now and then one fails or
    /// times out, and callers are now and then refused.
    fn normal_second(&mut self, f: Function, second: i64) -> Vec<Detection> {
        let mut found = Vec::new();
        let base = second * 1_000;
        let count = 3 + self.random(5);
        for n in 0..count {
            let at = base + i64::try_from(n * 120).unwrap_or(0);
            let inv = self.invocation();
            let host = if self.random(3) == 0 {
                "https://cdn.example.net:443"
            } else {
                "https://api.stripe.com:443"
            };
            found.extend(self.feed(event(
                f,
                EventKind::InvocationStart,
                Outcome::Success,
                at,
                &inv,
            )));
            found.extend(
                self.feed(
                    event(f, EventKind::AuthzDecision, Outcome::Success, at + 1, &inv)
                        .detail("action", "egress")
                        .detail("resource", host)
                        .detail("phase", "request"),
                ),
            );
            found.extend(
                self.feed(
                    event(f, EventKind::Egress, Outcome::Success, at + 2, &inv)
                        .reason("exchanged")
                        .detail("destination", host)
                        .detail("address", "93.184.216.34"),
                ),
            );
            found.extend(
                self.feed(
                    event(f, EventKind::SecretRead, Outcome::Success, at + 3, &inv)
                        .reason("secret-read")
                        .detail("name", "stripe-key"),
                ),
            );
            if self.random(2) == 0 {
                found.extend(
                    self.feed(
                        event(f, EventKind::KvWrite, Outcome::Success, at + 4, &inv)
                            .detail("operation", "set")
                            .detail("bucket", "carts"),
                    ),
                );
            }
            let end = match self.random(100) {
                0 | 1 => event(f, EventKind::InvocationEnd, Outcome::Failure, at + 5, &inv)
                    .reason("trap"),
                2 => event(f, EventKind::InvocationEnd, Outcome::Failure, at + 5, &inv)
                    .reason("timeout"),
                _ => event(f, EventKind::InvocationEnd, Outcome::Success, at + 5, &inv),
            };
            found.extend(self.feed(end.detail("duration_us", 900)));
        }
        if self.random(10) == 0 {
            let inv = self.invocation();
            found.extend(
                self.feed(
                    event(
                        f,
                        EventKind::AuthnDecision,
                        Outcome::Denied,
                        base + 900,
                        &inv,
                    )
                    .reason("jwt-expired"),
                ),
            );
        }
        if self.random(15) == 0 {
            let inv = self.invocation();
            found.extend(
                self.feed(
                    event(
                        f,
                        EventKind::RequestRefused,
                        Outcome::Denied,
                        base + 950,
                        &inv,
                    )
                    .reason("input-schema")
                    .detail("status", 400),
                ),
            );
        }
        found
    }

    fn normal(&mut self, functions: &[Function], seconds: std::ops::Range<i64>) -> Vec<Detection> {
        let mut found = Vec::new();
        for second in seconds {
            for f in functions {
                found.extend(self.normal_second(*f, second));
            }
        }
        found
    }

    /// `count` secret reads by checkout, one a millisecond from `start`, in one invocation.
    fn secret_burst(&mut self, start: i64, count: i64) -> Vec<Detection> {
        let inv = self.invocation();
        let mut found = Vec::new();
        for n in 0..count {
            found.extend(self.feed(event(
                CHECKOUT,
                EventKind::SecretRead,
                Outcome::Success,
                start + n,
                &inv,
            )));
        }
        found
    }

    /// A stream past warm-up for `f`: a minute of its usual traffic, with nothing reported.
    fn warmed(f: Function) -> Self {
        let mut stream = Self::new(config());
        let found = stream.normal(&[f], 0..60);
        assert_eq!(found, Vec::<Detection>::new(), "normal traffic reported");
        stream
    }
}

fn event(f: Function, kind: EventKind, outcome: Outcome, at_ms: i64, inv: &str) -> AuditEvent {
    let mut event = AuditEvent::new(kind, outcome)
        .function(f.app, f.name)
        .version(f.version)
        .invocation(inv);
    event.at_ms = at_ms;
    event
}

fn only(found: Vec<Detection>, detector: &str) -> Detection {
    assert_eq!(found.len(), 1, "expected one {detector}, got {found:#?}");
    let detection = found.into_iter().next().unwrap_or_else(|| unreachable!());
    assert_eq!(detection.detector, detector, "{detection:#?}");
    detection
}

// ---- new-egress-destination ----

#[test]
fn a_new_egress_destination_is_reported_once_with_its_invocation_as_evidence() {
    let mut stream = Stream::warmed(CHECKOUT);
    let inv = stream.invocation();
    let at = 61_000;
    assert!(
        stream
            .feed(event(
                CHECKOUT,
                EventKind::InvocationStart,
                Outcome::Success,
                at,
                &inv
            ))
            .is_empty()
    );
    let start_id = stream.id;
    let found = stream.feed(
        event(
            CHECKOUT,
            EventKind::AuthzDecision,
            Outcome::Success,
            at + 3,
            &inv,
        )
        .detail("action", "egress")
        .detail("resource", "https://evil.example.com:443"),
    );
    let offending = stream.id;
    let detection = only(found, "new-egress-destination");
    assert_eq!(detection.severity, Severity::High);
    assert_eq!(
        (detection.app.as_str(), detection.function.as_str()),
        ("shop", "checkout")
    );
    assert_eq!(detection.version_id.as_deref(), Some("v1"));
    assert_eq!(detection.offending_at_ms, at + 3);
    assert_eq!(detection.evidence, vec![start_id, offending]);
    assert!(
        detection
            .summary
            .starts_with("shop/checkout called evil.example.com, not in its baseline of 2 destinations learned over "),
        "{}",
        detection.summary
    );
    assert!(
        detection.summary.ends_with("(version v1)"),
        "{}",
        detection.summary
    );

    // The same destination again, in the same invocation and later ones: one anomaly, one report.
    assert!(
        stream
            .feed(
                event(CHECKOUT, EventKind::Egress, Outcome::Success, at + 4, &inv)
                    .detail("destination", "https://EVIL.example.com.:443")
                    .detail("address", "203.0.113.9"),
            )
            .is_empty()
    );
    for second in 62..200 {
        let inv = stream.invocation();
        let found = stream.feed(
            event(
                CHECKOUT,
                EventKind::Egress,
                Outcome::Success,
                second * 1_000,
                &inv,
            )
            .detail("destination", "https://evil.example.com:443"),
        );
        assert!(found.is_empty(), "{found:#?}");
    }
    // Normal traffic still passes unreported.
    assert!(stream.normal(&[CHECKOUT], 200..230).is_empty());
}

#[test]
fn a_refused_egress_to_a_new_host_is_reported_too() {
    let mut stream = Stream::warmed(CHECKOUT);
    let inv = stream.invocation();
    let found = stream.feed(
        event(
            CHECKOUT,
            EventKind::EgressDenied,
            Outcome::Denied,
            61_000,
            &inv,
        )
        .reason("no-egress-grant")
        .detail("destination", "http://169.254.169.254:80"),
    );
    let detection = only(found, "new-egress-destination");
    assert!(
        detection.summary.starts_with(
            "shop/checkout tried to reach 169.254.169.254 (refused), not in its baseline"
        ),
        "{}",
        detection.summary
    );
}

#[test]
fn a_new_version_that_reaches_a_reported_host_is_reported_again_after_the_cooldown() {
    let mut stream = Stream::warmed(CHECKOUT);
    let call = |stream: &mut Stream, f: Function, at: i64| {
        let inv = stream.invocation();
        stream.feed(
            event(f, EventKind::Egress, Outcome::Success, at, &inv)
                .detail("destination", "https://evil.example.com:443"),
        )
    };
    only(
        call(&mut stream, CHECKOUT, 61_000),
        "new-egress-destination",
    );
    let v2 = Function {
        version: "v2",
        ..CHECKOUT
    };
    // Within the cooldown: quiet, whichever version.
    assert!(call(&mut stream, v2, 62_000).is_empty());
    // Past the cooldown, the same version stays reported; a new one is reported again.
    assert!(call(&mut stream, CHECKOUT, 200_000).is_empty());
    let again = only(call(&mut stream, v2, 200_001), "new-egress-destination");
    assert_eq!(again.version_id.as_deref(), Some("v2"));
    assert!(call(&mut stream, v2, 400_000).is_empty());
}

#[test]
fn destinations_seen_during_warm_up_are_learned_not_reported() {
    let mut stream = Stream::new(config());
    let inv = stream.invocation();
    // In the first second, before any warm-up: learned, allowed or not.
    for (kind, outcome, host) in [
        (
            EventKind::Egress,
            Outcome::Success,
            "https://rare.example.org:443",
        ),
        (
            EventKind::EgressDenied,
            Outcome::Denied,
            "https://blocked.example.org:443",
        ),
    ] {
        assert!(
            stream
                .feed(event(CHECKOUT, kind, outcome, 500, &inv).detail("destination", host))
                .is_empty()
        );
    }
    assert!(stream.normal(&[CHECKOUT], 1..60).is_empty());
    for host in [
        "https://rare.example.org:443",
        "https://blocked.example.org:8443",
    ] {
        let inv = stream.invocation();
        assert!(
            stream
                .feed(
                    event(CHECKOUT, EventKind::Egress, Outcome::Success, 61_000, &inv)
                        .detail("destination", host)
                )
                .is_empty(),
            "{host} was in the baseline"
        );
    }
}

#[test]
fn baselines_are_per_function() {
    let mut stream = Stream::new(config());
    assert!(stream.normal(&[CHECKOUT, INVENTORY], 0..60).is_empty());
    // Inventory reaching checkout's destination is new for inventory... only if it never did;
    // both use the same two hosts here, so a third one is new for each, separately.
    let inv = stream.invocation();
    let found = stream.feed(
        event(INVENTORY, EventKind::Egress, Outcome::Success, 61_000, &inv)
            .detail("destination", "https://new.example.com:443"),
    );
    assert_eq!(only(found, "new-egress-destination").function, "inventory");
    let inv = stream.invocation();
    let found = stream.feed(
        event(CHECKOUT, EventKind::Egress, Outcome::Success, 61_001, &inv)
            .detail("destination", "https://new.example.com:443"),
    );
    assert_eq!(only(found, "new-egress-destination").function, "checkout");
}

// ---- new-callee ----

fn invoke(f: Function, outcome: Outcome, at: i64, inv: &str, callee: &str) -> AuditEvent {
    event(f, EventKind::AuthzDecision, outcome, at, inv)
        .detail("action", "invoke")
        .detail(
            "resource",
            format!("spiffe://zerofn.local/app/shop/fn/{callee}"),
        )
}

#[test]
fn a_new_callee_is_reported_after_warm_up_only() {
    let mut stream = Stream::new(config());
    let inv = stream.invocation();
    assert!(
        stream
            .feed(invoke(CHECKOUT, Outcome::Success, 10, &inv, "inventory"))
            .is_empty()
    );
    for second in 0..60 {
        assert!(stream.normal_second(CHECKOUT, second).is_empty());
        let inv = stream.invocation();
        let found = stream.feed(invoke(
            CHECKOUT,
            Outcome::Success,
            second * 1_000 + 500,
            &inv,
            "inventory",
        ));
        assert!(found.is_empty(), "{found:#?}");
    }
    let inv = stream.invocation();
    let detection = only(
        stream.feed(invoke(CHECKOUT, Outcome::Success, 61_000, &inv, "admin")),
        "new-callee",
    );
    assert_eq!(detection.severity, Severity::Medium);
    assert!(
        detection.summary.starts_with(
            "shop/checkout invoked shop/admin, a function it never called before: its baseline has 1 callee learned over "
        ),
        "{}",
        detection.summary
    );
    // A refused attempt at another new callee is reported as such.
    let inv = stream.invocation();
    let detection = only(
        stream.feed(invoke(CHECKOUT, Outcome::Denied, 61_100, &inv, "payroll")),
        "new-callee",
    );
    assert!(
        detection
            .summary
            .contains("tried to invoke (refused) shop/payroll"),
        "{}",
        detection.summary
    );
    // Each once.
    let inv = stream.invocation();
    assert!(
        stream
            .feed(invoke(CHECKOUT, Outcome::Success, 61_200, &inv, "admin"))
            .is_empty()
    );
}

// ---- denied-spike ----

#[test]
fn a_spike_of_the_functions_own_refusals_is_high() {
    let mut stream = Stream::warmed(CHECKOUT);
    let mut found = Vec::new();
    let mut ids = Vec::new();
    for n in 0..40 {
        let inv = stream.invocation();
        found.extend(
            stream.feed(
                event(
                    CHECKOUT,
                    EventKind::KvDenied,
                    Outcome::Denied,
                    60_000 + n * 10,
                    &inv,
                )
                .reason("kv-not-granted")
                .detail("operation", "open")
                .detail("bucket", format!("other-{n}")),
            ),
        );
        ids.push(stream.id);
    }
    let detection = only(found, "denied-spike");
    assert_eq!(detection.severity, Severity::High);
    // Fired on the refusal that crossed the floor (10), with every refusal so far as evidence.
    assert_eq!(detection.evidence, ids[..10].to_vec());
    assert_eq!(detection.offending_at_ms, 60_090);
    assert!(
        detection
            .summary
            .starts_with("shop/checkout was refused 10 times in the last 1 s (its own capability uses), against a baseline of 0.0"),
        "{}",
        detection.summary
    );
    // Still going a little later, within the cooldown: no second incident.
    for n in 0..40 {
        let inv = stream.invocation();
        let found = stream.feed(
            event(
                CHECKOUT,
                EventKind::SecretRead,
                Outcome::Denied,
                65_000 + n,
                &inv,
            )
            .reason("secret-not-granted"),
        );
        assert!(found.is_empty(), "{found:#?}");
    }
}

#[test]
fn refusals_of_callers_are_a_medium_spike_and_counted_apart() {
    let mut stream = Stream::warmed(CHECKOUT);
    let mut found = Vec::new();
    for n in 0..30 {
        let inv = stream.invocation();
        found.extend(
            stream.feed(
                event(
                    CHECKOUT,
                    EventKind::AuthnDecision,
                    Outcome::Denied,
                    60_000 + n * 10,
                    &inv,
                )
                .reason("jwt-bad-signature"),
            ),
        );
    }
    let detection = only(found, "denied-spike");
    assert_eq!(detection.severity, Severity::Medium);
    assert!(
        detection.summary.contains("(requests from its callers)"),
        "{}",
        detection.summary
    );
}

#[test]
fn a_refused_call_inside_the_functions_own_invocation_is_its_own_refusal() {
    let mut stream = Stream::warmed(CHECKOUT);
    let inv = stream.invocation();
    stream.feed(event(
        CHECKOUT,
        EventKind::InvocationStart,
        Outcome::Success,
        60_000,
        &inv,
    ));
    let mut found = Vec::new();
    for n in 0..12 {
        found.extend(
            stream.feed(
                event(
                    CHECKOUT,
                    EventKind::RequestRefused,
                    Outcome::Denied,
                    60_001 + n,
                    &inv,
                )
                .reason("invoke-denied")
                .detail("status", 403),
            ),
        );
    }
    assert_eq!(only(found, "denied-spike").severity, Severity::High);
}

#[test]
fn one_rate_limit_record_counts_the_refusals_it_stands_for() {
    let mut stream = Stream::warmed(CHECKOUT);
    let inv = stream.invocation();
    let found = stream.feed(
        event(
            CHECKOUT,
            EventKind::RequestRefused,
            Outcome::Denied,
            60_000,
            &inv,
        )
        .reason("rate-limit-caller")
        .detail("status", 429)
        .detail("suppressed", 499),
    );
    let detection = only(found, "denied-spike");
    assert!(
        detection.summary.contains("refused 500 times"),
        "{}",
        detection.summary
    );
    assert_eq!(detection.evidence, vec![stream.id]);
}

#[test]
fn decisions_are_not_counted_twice_with_their_enforcement_point() {
    let mut stream = Stream::warmed(CHECKOUT);
    let mut found = Vec::new();
    // Nine refused egresses, each recorded as its decision and its refusal: 9 refusals, under
    // the floor of 10.
    for n in 0..9 {
        let inv = stream.invocation();
        found.extend(
            stream.feed(
                event(
                    CHECKOUT,
                    EventKind::AuthzDecision,
                    Outcome::Denied,
                    60_000 + n * 10,
                    &inv,
                )
                .detail("action", "egress")
                .detail("resource", "https://api.stripe.com:443"),
            ),
        );
        found.extend(
            stream.feed(
                event(
                    CHECKOUT,
                    EventKind::EgressDenied,
                    Outcome::Denied,
                    60_001 + n * 10,
                    &inv,
                )
                .reason("guardrail")
                .detail("destination", "https://api.stripe.com:443"),
            ),
        );
    }
    assert!(found.is_empty(), "{found:#?}");
}

// ---- secret-read-burst ----

#[test]
fn a_burst_of_secret_reads_is_high() {
    let mut stream = Stream::warmed(CHECKOUT);
    let found = stream.secret_burst(60_000, 100);
    let detection = only(found, "secret-read-burst");
    assert_eq!(detection.severity, Severity::High);
    assert_eq!(detection.evidence.len(), 20, "bounded by max_evidence");
    assert!(
        detection
            .summary
            .starts_with("shop/checkout read secrets 20 times in the last 1 s")
    );
}

// ---- error-spike and timeout-spike ----

#[test]
fn an_error_spike_and_a_timeout_spike_are_reported_apart() {
    let mut stream = Stream::warmed(CHECKOUT);
    let mut found = Vec::new();
    for n in 0..10 {
        let inv = stream.invocation();
        found.extend(
            stream.feed(
                event(
                    CHECKOUT,
                    EventKind::InvocationEnd,
                    Outcome::Failure,
                    60_000 + n * 50,
                    &inv,
                )
                .reason("trap"),
            ),
        );
    }
    let detection = only(found, "error-spike");
    assert_eq!(detection.severity, Severity::Medium);
    assert!(
        detection.summary.starts_with("shop/checkout failed 5 of ")
            && detection.summary.contains(" invocations in the last 1 s ("),
        "{}",
        detection.summary
    );
    let mut found = Vec::new();
    for n in 0..10 {
        let inv = stream.invocation();
        found.extend(
            stream.feed(
                event(
                    CHECKOUT,
                    EventKind::InvocationEnd,
                    Outcome::Failure,
                    60_600 + n * 10,
                    &inv,
                )
                .reason("timeout"),
            ),
        );
    }
    assert_eq!(only(found, "timeout-spike").severity, Severity::Medium);
}

#[test]
fn more_traffic_at_the_usual_error_rate_is_not_an_error_spike() {
    let mut stream = Stream::new(config());
    // A function that fails one invocation in ten, 10 a second.
    let mut seconds = 0..60i64;
    let run = |stream: &mut Stream, second: i64, per_second: i64| {
        let mut found = Vec::new();
        for n in 0..per_second {
            let inv = stream.invocation();
            let at = second * 1_000 + n * (1_000 / per_second);
            let end = if n % 10 == 0 {
                event(
                    CHECKOUT,
                    EventKind::InvocationEnd,
                    Outcome::Failure,
                    at,
                    &inv,
                )
                .reason("trap")
            } else {
                event(
                    CHECKOUT,
                    EventKind::InvocationEnd,
                    Outcome::Success,
                    at,
                    &inv,
                )
            };
            found.extend(stream.feed(end));
        }
        found
    };
    for second in seconds.by_ref() {
        assert!(run(&mut stream, second, 10).is_empty());
    }
    // Ten times the traffic, same share of failures: 10 failures a second, far above the
    // baseline of 1, but 10% of invocations.
    for second in 60..70 {
        let found = run(&mut stream, second, 100);
        assert!(found.is_empty(), "{found:#?}");
    }
}

// ---- privileged-grant-use ----

#[test]
fn privileged_grants_used_far_above_their_baseline_are_reported_per_grant() {
    let mut stream = Stream::warmed(CHECKOUT);
    let inv = stream.invocation();
    let mut found = Vec::new();
    for n in 0..60 {
        found.extend(
            stream.feed(
                event(
                    CHECKOUT,
                    EventKind::KvWrite,
                    Outcome::Success,
                    60_000 + n,
                    &inv,
                )
                .detail("operation", "delete")
                .detail("bucket", "carts"),
            ),
        );
    }
    let detection = only(found, "privileged-grant-use");
    assert_eq!(detection.severity, Severity::Medium);
    assert!(
        detection.summary.contains("used its kv.write grant"),
        "{}",
        detection.summary
    );

    // Egress to private addresses is another grant, with its own cooldown.
    let mut found = Vec::new();
    for n in 0..30 {
        found.extend(
            stream.feed(
                event(
                    CHECKOUT,
                    EventKind::Egress,
                    Outcome::Success,
                    60_100 + n,
                    &inv,
                )
                .detail("destination", "https://api.stripe.com:443")
                .detail("address", "10.0.0.7"),
            ),
        );
    }
    let detection = only(found, "privileged-grant-use");
    assert!(
        detection
            .summary
            .contains("used its egress to a private address grant"),
        "{}",
        detection.summary
    );
}

// ---- warm-up, noise, cooldown ----

#[test]
fn nothing_fires_during_warm_up_whatever_the_traffic() {
    let mut stream = Stream::new(config());
    let inv = stream.invocation();
    let mut found = Vec::new();
    for n in 0..50i64 {
        let at = n * 100;
        found.extend(
            stream.feed(
                event(CHECKOUT, EventKind::EgressDenied, Outcome::Denied, at, &inv)
                    .detail("destination", format!("https://h{n}.example.com")),
            ),
        );
        found.extend(stream.feed(event(
            CHECKOUT,
            EventKind::SecretRead,
            Outcome::Success,
            at,
            &inv,
        )));
        found.extend(
            stream.feed(
                event(
                    CHECKOUT,
                    EventKind::InvocationEnd,
                    Outcome::Failure,
                    at,
                    &inv,
                )
                .reason("timeout"),
            ),
        );
        found.extend(stream.feed(invoke(
            CHECKOUT,
            Outcome::Success,
            at,
            &inv,
            &format!("f{n}"),
        )));
        found.extend(stream.feed(event(
            CHECKOUT,
            EventKind::KvWrite,
            Outcome::Success,
            at,
            &inv,
        )));
    }
    // 250 events, but 5 s of a 30 s warm-up.
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn a_long_noisy_normal_stream_reports_nothing() {
    let mut stream = Stream::new(config());
    // An hour of three functions, with a doubled-traffic surge now and then.
    let mut found = Vec::new();
    for second in 0..3_600 {
        for f in [CHECKOUT, INVENTORY, REPORTS] {
            found.extend(stream.normal_second(f, second));
            if second % 600 < 20 {
                found.extend(stream.normal_second(f, second));
            }
        }
    }
    assert!(
        stream.id > 100_000,
        "the stream is long: {} events",
        stream.id
    );
    assert_eq!(found, Vec::<Detection>::new());
}

#[test]
fn the_same_spike_fires_again_only_after_its_cooldown() {
    let mut stream = Stream::warmed(CHECKOUT);
    only(stream.secret_burst(60_000, 50), "secret-read-burst");
    assert!(stream.normal(&[CHECKOUT], 61..100).is_empty());
    assert!(
        stream.secret_burst(100_000, 50).is_empty(),
        "within the cooldown"
    );
    assert!(stream.normal(&[CHECKOUT], 101..130).is_empty());
    only(stream.secret_burst(130_000, 50), "secret-read-burst");
}

#[test]
fn a_spike_does_not_raise_the_baseline_for_the_next() {
    let mut config = config();
    config.cooldown_ms = 1_000;
    let mut stream = Stream::new(config);
    assert!(stream.normal(&[CHECKOUT], 0..60).is_empty());
    for (start, expected) in [(60_000, 1), (62_000, 1)] {
        let found = stream.secret_burst(start, 100);
        assert_eq!(found.len(), expected, "burst at {start}: {found:#?}");
    }
}

// ---- start-up replay ----

#[test]
fn learning_history_rebuilds_the_state_a_running_server_would_have() {
    // What a server saw: a minute of normal traffic, then a call to a new host (reported).
    let mut live = Stream::new(config());
    live.recorded = Some(Vec::new());
    assert!(live.normal(&[CHECKOUT], 0..60).is_empty());
    let inv = live.invocation();
    let evil = |f: Function, at: i64, inv: &str| {
        event(f, EventKind::Egress, Outcome::Success, at, inv)
            .detail("destination", "https://evil.example.com:443")
    };
    only(
        live.feed(evil(CHECKOUT, 61_000, &inv)),
        "new-egress-destination",
    );
    let history = live.recorded.take().unwrap_or_default();

    // A restarted server replays it: learns the baseline, and the report stands.
    let mut restarted = Stream::new(config());
    for committed in &history {
        restarted.detectors.learn(committed);
    }
    restarted.id = live.id;
    let inv = restarted.invocation();
    assert!(
        restarted.feed(evil(CHECKOUT, 62_000, &inv)).is_empty(),
        "already reported for v1: replaying did not make it new again"
    );
    let found = restarted.feed(
        event(CHECKOUT, EventKind::Egress, Outcome::Success, 62_001, &inv)
            .detail("destination", "https://other.example.com:443"),
    );
    only(found, "new-egress-destination");
    let found = restarted.feed(
        event(CHECKOUT, EventKind::Egress, Outcome::Success, 62_002, &inv)
            .detail("destination", "https://api.stripe.com:443"),
    );
    assert!(
        found.is_empty(),
        "the replayed baseline holds the usual hosts"
    );

    // Replaying only the normal part leaves the new host new.
    let mut fresh = Stream::new(config());
    for committed in &history[..history.len() - 1] {
        fresh.detectors.learn(committed);
    }
    fresh.id = live.id;
    let inv = fresh.invocation();
    only(
        fresh.feed(evil(CHECKOUT, 62_000, &inv)),
        "new-egress-destination",
    );
}

// ---- bounds and bad input ----

#[test]
fn the_number_of_functions_tracked_is_capped_least_recent_first() {
    let mut config = config();
    config.max_functions = 3;
    let mut stream = Stream::new(config);
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
    for (n, name) in names.iter().enumerate() {
        let f = Function {
            app: "many",
            name,
            version: "v1",
        };
        let at = i64::try_from(n).unwrap_or(0) * 1_000;
        stream.feed(event(
            f,
            EventKind::InvocationStart,
            Outcome::Success,
            at,
            "inv",
        ));
        assert!(stream.detectors.tracked_functions() <= 3);
    }
    assert_eq!(stream.detectors.tracked_functions(), 3);
    assert_eq!(stream.detectors.forgotten_functions(), 7);
}

#[test]
fn a_forgotten_function_warms_up_again() {
    let mut config = config();
    config.max_functions = 1;
    let mut stream = Stream::new(config);
    assert!(stream.normal(&[CHECKOUT], 0..60).is_empty());
    stream.feed(event(
        INVENTORY,
        EventKind::InvocationStart,
        Outcome::Success,
        60_000,
        "x",
    ));
    let inv = stream.invocation();
    let found = stream.feed(
        event(CHECKOUT, EventKind::Egress, Outcome::Success, 61_000, &inv)
            .detail("destination", "https://evil.example.com:443"),
    );
    assert!(found.is_empty(), "checkout was forgotten: in warm-up again");
}

#[test]
fn past_the_set_cap_every_unseen_destination_is_reported_and_nothing_grows() {
    let mut config = config();
    config.max_set_size = 4;
    let mut stream = Stream::new(config);
    assert!(stream.normal(&[CHECKOUT], 0..60).is_empty());
    let mut reported = 0;
    for n in 0..1_000 {
        let inv = stream.invocation();
        reported += stream
            .feed(
                event(
                    CHECKOUT,
                    EventKind::Egress,
                    Outcome::Success,
                    61_000 + n,
                    &inv,
                )
                .detail("destination", format!("https://h{n}.example.com")),
            )
            .len();
    }
    // Each host is new once (the set of reported ones is capped too; old reports make room).
    assert_eq!(reported, 1_000);
}

#[test]
fn malformed_and_partial_events_are_read_as_nothing() {
    let mut stream = Stream::warmed(CHECKOUT);
    let inv = stream.invocation();
    let mut found = Vec::new();
    // No function: ignored.
    let mut orphan = AuditEvent::new(EventKind::EgressDenied, Outcome::Denied)
        .detail("destination", "https://evil.example.com");
    orphan.at_ms = 61_000;
    found.extend(stream.feed(orphan));
    let mut app_only = AuditEvent::new(EventKind::Egress, Outcome::Success)
        .app("shop")
        .detail("destination", "https://evil.example.com");
    app_only.at_ms = 61_000;
    found.extend(stream.feed(app_only));
    // Missing or ill-typed details.
    for detail in [
        json!(null),
        json!(42),
        json!(["https://evil.example.com"]),
        json!({"host": "evil.example.com"}),
        json!(""),
        json!("<no authority>"),
        json!("https://"),
        json!("://:::"),
    ] {
        found.extend(
            stream.feed(
                event(CHECKOUT, EventKind::Egress, Outcome::Success, 61_001, &inv)
                    .detail("destination", detail.clone())
                    .detail("address", detail.clone()),
            ),
        );
        found.extend(
            stream.feed(
                event(
                    CHECKOUT,
                    EventKind::AuthzDecision,
                    Outcome::Success,
                    61_002,
                    &inv,
                )
                .detail("action", detail.clone())
                .detail("resource", detail.clone()),
            ),
        );
    }
    // A `suppressed` count that is not one: the record counts once.
    for suppressed in [
        json!(null),
        json!("many"),
        json!([1]),
        json!({"n": 1}),
        json!(-5),
        json!(1.5),
    ] {
        found.extend(
            stream.feed(
                event(
                    CHECKOUT,
                    EventKind::RequestRefused,
                    Outcome::Denied,
                    61_003,
                    &inv,
                )
                .detail("suppressed", suppressed),
            ),
        );
    }
    found.extend(stream.feed(event(
        CHECKOUT,
        EventKind::Egress,
        Outcome::Success,
        61_004,
        &inv,
    )));
    found.extend(
        stream.feed(
            event(
                CHECKOUT,
                EventKind::AuthzDecision,
                Outcome::Success,
                61_005,
                &inv,
            )
            .detail("action", "invoke"),
        ),
    );
    // No invocation, no version.
    let mut bare =
        AuditEvent::new(EventKind::InvocationEnd, Outcome::Failure).function("shop", "checkout");
    bare.at_ms = 61_006;
    found.extend(stream.feed(bare));
    // Six refusals, under the floor of ten.
    assert_eq!(found, Vec::<Detection>::new());

    // Times out of order, far in the past, far in the future: no panic, and time never goes back.
    for at in [
        0,
        -1,
        i64::MIN,
        i64::MAX,
        61_007,
        i64::MIN / 2,
        i64::MAX - 1,
    ] {
        let _ = stream.feed(
            event(CHECKOUT, EventKind::SecretRead, Outcome::Success, at, &inv).detail("name", "x"),
        );
        let _ = stream.feed(
            event(CHECKOUT, EventKind::EgressDenied, Outcome::Denied, at, &inv)
                .detail("destination", "https://evil.example.com"),
        );
    }
}

#[test]
fn a_clock_set_back_neither_fires_nor_freezes_the_detectors() {
    let mut stream = Stream::new(config());
    let hour = 3_600;
    assert!(
        stream
            .normal(&[CHECKOUT], 10 * hour..10 * hour + 60)
            .is_empty()
    );
    // The server's clock goes back two hours: traffic goes on as usual.
    let found = stream.normal(&[CHECKOUT], 8 * hour..8 * hour + 600);
    assert_eq!(found, Vec::<Detection>::new());
    // The detectors still see a burst as one.
    only(
        stream.secret_burst((8 * hour + 700) * 1_000, 60),
        "secret-read-burst",
    );
}

#[test]
fn an_event_committed_late_counts_at_the_functions_time() {
    let mut stream = Stream::warmed(CHECKOUT);
    // An exchange stamped when it started, 45 s ago, and recorded when its body ended.
    let inv = stream.invocation();
    let found = stream.feed(
        event(CHECKOUT, EventKind::Egress, Outcome::Success, 15_000, &inv)
            .detail("destination", "https://evil.example.com:443"),
    );
    let detection = only(found, "new-egress-destination");
    assert_eq!(detection.offending_at_ms, 15_000, "the event's own time");
    assert!(stream.normal(&[CHECKOUT], 60..120).is_empty());
}

#[test]
fn the_platforms_own_actions_are_not_the_functions_behaviour() {
    let mut stream = Stream::new(config());
    for n in 0..1_000 {
        for kind in [
            EventKind::IncidentOpened,
            EventKind::Quarantine,
            EventKind::Deploy,
            EventKind::Alert,
        ] {
            stream.feed(event(CHECKOUT, kind, Outcome::Success, n * 100, "x"));
        }
    }
    assert_eq!(stream.detectors.tracked_functions(), 0);
}

// ---- configuration ----

#[test]
fn configuration_is_read_strictly_from_toml() {
    let config: DetectorConfig =
        toml::from_str("window_ms = 5000\nz_threshold = 6.0\ndisabled = [\"new-callee\"]\n")
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.window_ms, 5_000);
    assert_eq!(config.z_threshold, 6.0);
    assert_eq!(
        config.warmup_events,
        DetectorConfig::default().warmup_events
    );
    assert!(Detectors::with_config(config).is_ok());

    let unknown = toml::from_str::<DetectorConfig>("z_treshold = 6.0\n");
    let message = unknown.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("z_treshold"), "{message}");
}

#[test]
fn configuration_that_cannot_work_is_refused_with_its_key() {
    let cases: Vec<(&str, DetectorConfig)> = vec![
        (
            "window_ms",
            DetectorConfig {
                window_ms: 10,
                ..DetectorConfig::default()
            },
        ),
        (
            "ewma_alpha",
            DetectorConfig {
                ewma_alpha: 0.0,
                ..DetectorConfig::default()
            },
        ),
        (
            "ewma_alpha",
            DetectorConfig {
                ewma_alpha: f64::NAN,
                ..DetectorConfig::default()
            },
        ),
        (
            "z_threshold",
            DetectorConfig {
                z_threshold: -1.0,
                ..DetectorConfig::default()
            },
        ),
        (
            "min_std_dev",
            DetectorConfig {
                min_std_dev: 0.0,
                ..DetectorConfig::default()
            },
        ),
        (
            "max_functions",
            DetectorConfig {
                max_functions: 0,
                ..DetectorConfig::default()
            },
        ),
        (
            "max_set_size",
            DetectorConfig {
                max_set_size: 0,
                ..DetectorConfig::default()
            },
        ),
        (
            "max_evidence",
            DetectorConfig {
                max_evidence: 0,
                ..DetectorConfig::default()
            },
        ),
        (
            "denied_floor",
            DetectorConfig {
                denied_floor: 0,
                ..DetectorConfig::default()
            },
        ),
        (
            "min_failure_ratio",
            DetectorConfig {
                min_failure_ratio: 1.5,
                ..DetectorConfig::default()
            },
        ),
        (
            "disabled",
            DetectorConfig {
                disabled: vec!["new-calee".into()],
                ..DetectorConfig::default()
            },
        ),
    ];
    for (key, config) in cases {
        let error = Detectors::with_config(config)
            .err()
            .unwrap_or_else(|| panic!("{key} accepted"));
        assert_eq!(error.key, key);
        assert!(
            error.to_string().starts_with(&format!("detection.{key}: ")),
            "{error}"
        );
    }
    assert!(DetectorConfig::default().validate().is_ok());
}

#[test]
fn a_disabled_detector_stays_quiet_and_the_others_still_work() {
    let mut config = config();
    config.disabled = vec!["new-egress-destination".into()];
    let mut stream = Stream::new(config);
    assert!(stream.normal(&[CHECKOUT], 0..60).is_empty());
    let inv = stream.invocation();
    assert!(
        stream
            .feed(
                event(CHECKOUT, EventKind::Egress, Outcome::Success, 61_000, &inv)
                    .detail("destination", "https://evil.example.com:443"),
            )
            .is_empty()
    );
    only(
        stream.feed(invoke(CHECKOUT, Outcome::Success, 61_001, &inv, "admin")),
        "new-callee",
    );
}

#[test]
fn a_traffic_surge_doing_the_usual_per_invocation_is_not_a_burst() {
    let mut stream = Stream::warmed(CHECKOUT);
    // Five times the invocations for 20 s, each doing what invocations usually do: secret reads
    // and key-value writes far above their per-window baselines and floors.
    let mut found = Vec::new();
    for second in 60..80 {
        for _ in 0..5 {
            found.extend(stream.normal_second(CHECKOUT, second));
        }
    }
    assert_eq!(found, Vec::<Detection>::new());
    // The same reads packed into few invocations are a burst.
    only(stream.secret_burst(200_000, 60), "secret-read-burst");
}
