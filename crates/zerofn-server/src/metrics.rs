//! The platform's own metrics, in the Prometheus text format (OpenMetrics), so that the
//! monitoring loop's numbers (rejected deployments, each function's egress) can be scraped by
//! what users already run. The control plane serves them at `/v1/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KvOperationLabels {
    app: String,
    function: String,
    operation: String,
    /// `ok`, or the rule that refused it.
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RateLabels {
    app: String,
    function: String,
    scope: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionOutcomeLabels {
    app: String,
    function: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionRuleLabels {
    app: String,
    function: String,
    rule: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuditEventLabels {
    kind: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DetectionLabels {
    detector: String,
    severity: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResolutionLabels {
    resolution: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionLabels {
    app: String,
    function: String,
}

/// Counters of deploy decisions and of each function's egress.
pub struct Metrics {
    registry: Registry,
    deploys: Family<OutcomeLabels, Counter>,
    refusals: Family<RuleLabels, Counter>,
    rate_limited: Family<RateLabels, Counter>,
    kv_operations: Family<KvOperationLabels, Counter>,
    kv_bytes_written: Family<FunctionLabels, Counter>,
    egress: EgressMetrics,
    audit_events: Family<AuditEventLabels, Counter>,
    otlp_events: Family<OutcomeLabels, Counter>,
    request_refusals: Family<RuleLabels, Counter>,
    incidents: Family<DetectionLabels, Counter>,
    resolutions: Family<ResolutionLabels, Counter>,
    response_actions: Family<ActionLabels, Counter>,
    time_to_detect: Histogram,
    time_to_respond: Histogram,
    quarantined: Gauge,
}

/// Each function's egress: requests by outcome, refusals by rule, bytes each way. Cloning
/// shares the counters.
#[derive(Clone)]
pub struct EgressMetrics {
    requests: Family<FunctionOutcomeLabels, Counter>,
    refusals: Family<FunctionRuleLabels, Counter>,
    sent: Family<FunctionLabels, Counter>,
    received: Family<FunctionLabels, Counter>,
}

impl std::fmt::Debug for EgressMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EgressMetrics").finish_non_exhaustive()
    }
}

impl EgressMetrics {
    /// Counts a refused request under `rule`.
    pub fn denied(&self, app: &str, function: &str, rule: &str) {
        self.count(app, function, "denied");
        self.refusals
            .get_or_create(&FunctionRuleLabels {
                app: app.into(),
                function: function.into(),
                rule: rule.into(),
            })
            .inc();
    }

    /// Counts an allowed request that is over (`outcome` `allowed`: it got a response;
    /// `failed`: it did not) and the bytes it moved.
    pub fn finished(&self, app: &str, function: &str, outcome: &str, sent: u64, received: u64) {
        self.count(app, function, outcome);
        let labels = FunctionLabels {
            app: app.into(),
            function: function.into(),
        };
        self.sent.get_or_create(&labels).inc_by(sent);
        self.received.get_or_create(&labels).inc_by(received);
    }

    fn count(&self, app: &str, function: &str, outcome: &str) {
        self.requests
            .get_or_create(&FunctionOutcomeLabels {
                app: app.into(),
                function: function.into(),
                outcome: outcome.into(),
            })
            .inc();
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("zerofn");
        let deploys = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "deploys",
            "Deploy attempts by outcome (admitted, refused, failed: the platform could not complete it)",
            deploys.clone(),
        );
        let refusals = Family::<RuleLabels, Counter>::default();
        registry.register(
            "deploy_refusals",
            "Refused deploys by the rule that refused them (a deploy refused by two rules counts once for each)",
            refusals.clone(),
        );
        let rate_limited = Family::<RateLabels, Counter>::default();
        registry.register(
            "requests_rate_limited",
            "Requests refused with 429 by a function's rate limit, by bucket (function: everyone together; caller: one caller)",
            rate_limited.clone(),
        );
        let egress = EgressMetrics {
            requests: Family::default(),
            refusals: Family::default(),
            sent: Family::default(),
            received: Family::default(),
        };
        registry.register(
            "egress_requests",
            "Outbound requests of each function by outcome (allowed: a response came; denied: refused before any connection; failed: allowed, but no response)",
            egress.requests.clone(),
        );
        registry.register(
            "egress_refusals",
            "Refused outbound requests of each function by the rule that refused them",
            egress.refusals.clone(),
        );
        registry.register(
            "egress_sent_bytes",
            "Request body bytes each function sent to allowed destinations",
            egress.sent.clone(),
        );
        registry.register(
            "egress_received_bytes",
            "Response body bytes each function received from allowed destinations",
            egress.received.clone(),
        );
        let kv_operations = Family::<KvOperationLabels, Counter>::default();
        registry.register(
            "kv_operations",
            "Key-value operations by function, operation and outcome (`ok` or the refusing rule)",
            kv_operations.clone(),
        );
        let kv_bytes_written = Family::<FunctionLabels, Counter>::default();
        registry.register(
            "kv_bytes_written",
            "Value bytes functions wrote with set and set-many",
            kv_bytes_written.clone(),
        );
        let audit_events = Family::<AuditEventLabels, Counter>::default();
        registry.register(
            "audit_events",
            "Audit events committed to the store, by kind and outcome (see docs/audit-events.md)",
            audit_events.clone(),
        );
        let otlp_events = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "otlp_events",
            "Audit events sent to the OTLP collector as log records (exported), or not (dropped: the collector failed or the export fell behind; the store keeps them)",
            otlp_events.clone(),
        );
        let request_refusals = Family::<RuleLabels, Counter>::default();
        registry.register(
            "request_refusals",
            "Requests and calls refused before or instead of a sandbox, by rule (e.g. function-quarantined, request-body-too-large)",
            request_refusals.clone(),
        );
        let incidents = Family::<DetectionLabels, Counter>::default();
        registry.register(
            "incidents",
            "Incidents opened, by detector and severity",
            incidents.clone(),
        );
        let resolutions = Family::<ResolutionLabels, Counter>::default();
        registry.register(
            "incident_resolutions",
            "Incidents resolved by an operator, by resolution (true-positive, false-positive); the false-positive rate is false / (true + false)",
            resolutions.clone(),
        );
        let response_actions = Family::<ActionLabels, Counter>::default();
        registry.register(
            "response_actions",
            "Automatic response actions, by action and outcome (success, failure, skipped)",
            response_actions.clone(),
        );
        // 1 ms to about 33 s.
        let time_to_detect = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "incident_time_to_detect_seconds",
            "From the offending event to its incident being opened",
            time_to_detect.clone(),
        );
        let time_to_respond = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "incident_time_to_respond_seconds",
            "From an incident being opened to its first action in force",
            time_to_respond.clone(),
        );
        let quarantined = Gauge::default();
        registry.register(
            "functions_quarantined",
            "Functions in quarantine now",
            quarantined.clone(),
        );
        Metrics {
            registry,
            audit_events,
            otlp_events,
            request_refusals,
            incidents,
            resolutions,
            response_actions,
            time_to_detect,
            time_to_respond,
            quarantined,
            kv_operations,
            kv_bytes_written,
            deploys,
            refusals,
            rate_limited,
            egress,
        }
    }
}

impl Metrics {
    /// Counts an admitted deploy.
    pub fn deploy_admitted(&self) {
        self.deploys
            .get_or_create(&OutcomeLabels {
                outcome: "admitted".into(),
            })
            .inc();
    }

    /// Counts a deploy the platform could not complete (store or internal error).
    pub fn deploy_failed(&self) {
        self.deploys
            .get_or_create(&OutcomeLabels {
                outcome: "failed".into(),
            })
            .inc();
    }

    /// Counts a refused deploy once, and once under each distinct rule that refused it.
    pub fn deploy_refused<'a>(&self, rules: impl IntoIterator<Item = &'a str>) {
        self.deploys
            .get_or_create(&OutcomeLabels {
                outcome: "refused".into(),
            })
            .inc();
        let mut rules: Vec<&str> = rules.into_iter().collect();
        rules.sort_unstable();
        rules.dedup();
        for rule in rules {
            self.refusals
                .get_or_create(&RuleLabels { rule: rule.into() })
                .inc();
        }
    }

    /// Counts a request refused by a rate limit.
    pub fn count_rate_limited(&self, app: &str, function: &str, scope: crate::rate_limit::Scope) {
        self.rate_limited
            .get_or_create(&RateLabels {
                app: app.into(),
                function: function.into(),
                scope: scope.as_str().into(),
            })
            .inc();
    }

    /// The egress counters (a shared handle).
    pub fn egress(&self) -> EgressMetrics {
        self.egress.clone()
    }

    /// Counts one key-value operation of `function` of `app`: `outcome` is `ok` or the rule
    /// that refused it.
    pub fn kv_operation(&self, app: &str, function: &str, operation: &str, outcome: &str) {
        self.kv_operations
            .get_or_create(&KvOperationLabels {
                app: app.into(),
                function: function.into(),
                operation: operation.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Counts value bytes `function` of `app` wrote.
    pub fn kv_bytes_written(&self, app: &str, function: &str, bytes: u64) {
        self.kv_bytes_written
            .get_or_create(&FunctionLabels {
                app: app.into(),
                function: function.into(),
            })
            .inc_by(bytes);
    }

    /// Counts one committed audit event.
    pub fn audit_event(&self, kind: &str, outcome: &str) {
        self.audit_events
            .get_or_create(&AuditEventLabels {
                kind: kind.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Counts a request or call refused under `rule`.
    pub fn request_refused(&self, rule: &str) {
        self.request_refusals
            .get_or_create(&RuleLabels { rule: rule.into() })
            .inc();
    }

    /// Counts an incident opened `detect_ms` after its offending event.
    pub fn incident_opened(&self, detector: &str, severity: &str, detect_ms: i64) {
        self.incidents
            .get_or_create(&DetectionLabels {
                detector: detector.into(),
                severity: severity.into(),
            })
            .inc();
        self.time_to_detect.observe(seconds(detect_ms));
    }

    /// Records that an incident's first action was in force `respond_ms` after it opened.
    pub fn incident_responded(&self, respond_ms: i64) {
        self.time_to_respond.observe(seconds(respond_ms));
    }

    /// Counts a response action by outcome.
    pub fn response_action(&self, action: &str, outcome: &str) {
        self.response_actions
            .get_or_create(&ActionLabels {
                action: action.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Counts events the OTLP collector took.
    pub fn otlp_exported(&self, count: u64) {
        self.otlp_events
            .get_or_create(&OutcomeLabels {
                outcome: "exported".into(),
            })
            .inc_by(count);
    }

    /// Counts events not exported.
    pub fn otlp_dropped(&self, count: u64) {
        self.otlp_events
            .get_or_create(&OutcomeLabels {
                outcome: "dropped".into(),
            })
            .inc_by(count);
    }

    /// Counts an operator's resolution.
    pub fn incident_resolved(&self, resolution: &str) {
        self.resolutions
            .get_or_create(&ResolutionLabels {
                resolution: resolution.into(),
            })
            .inc();
    }

    /// How many functions are in quarantine now.
    pub fn set_quarantined(&self, count: usize) {
        self.quarantined
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Counts every committed audit event (`zerofn_audit_events_total`) until `stopped`, from the
/// committed stream: an event is counted once it is in the store, and a gap in the broadcast
/// is read from the store, so the count is exact.
pub(crate) async fn count_audit_events(
    platform: std::sync::Arc<crate::Platform>,
    after: Option<i64>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let follower = crate::committed::Follower::start(
        platform.audit(),
        platform.store().clone(),
        after,
        Default::default(),
    )
    .await;
    let mut follower = match follower {
        Ok(follower) => follower,
        Err(error) => {
            tracing::error!(%error, "audit events are not counted");
            return;
        }
    };
    loop {
        tokio::select! {
            next = follower.next() => match next {
                Ok(Some(event)) => platform.metrics().audit_event(event.kind(), event.outcome()),
                Ok(None) => return,
                Err(error) => {
                    tracing::error!(%error, "audit events are no longer counted");
                    return;
                }
            },
            _ = stopped.changed() => return,
        }
    }
}

/// Milliseconds as seconds; a clock that went backwards counts as zero.
fn seconds(ms: i64) -> f64 {
    ms.max(0) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_per_rule_and_per_deploy() {
        let metrics = Metrics::default();
        metrics.deploy_admitted();
        metrics.deploy_refused(["unsigned", "wildcard-egress", "unsigned"]);
        metrics.deploy_refused(["unsigned"]);
        let text = metrics.encode();
        assert!(
            text.contains("zerofn_deploys_total{outcome=\"admitted\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("zerofn_deploys_total{outcome=\"refused\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("zerofn_deploy_refusals_total{rule=\"unsigned\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("zerofn_deploy_refusals_total{rule=\"wildcard-egress\"} 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn the_loop_is_measured() {
        let metrics = Metrics::default();
        metrics.incident_opened("new-egress-destination", "high", 12);
        metrics.incident_responded(3);
        metrics.response_action("quarantine", "success");
        metrics.incident_resolved("false-positive");
        metrics.request_refused("function-quarantined");
        metrics.set_quarantined(1);
        let text = metrics.encode();
        for line in [
            "zerofn_incidents_total{detector=\"new-egress-destination\",severity=\"high\"} 1",
            "zerofn_incident_time_to_detect_seconds_count 1",
            "zerofn_incident_time_to_respond_seconds_sum 0.003",
            "zerofn_response_actions_total{action=\"quarantine\",outcome=\"success\"} 1",
            "zerofn_incident_resolutions_total{resolution=\"false-positive\"} 1",
            "zerofn_request_refusals_total{rule=\"function-quarantined\"} 1",
            "zerofn_functions_quarantined 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn egress_is_counted_per_function_by_outcome_rule_and_bytes() {
        let metrics = Metrics::default();
        let egress = metrics.egress();
        egress.denied("shop", "checkout", "egress-not-granted");
        egress.denied("shop", "checkout", "egress-not-granted");
        egress.finished("shop", "checkout", "allowed", 10, 250);
        egress.finished("shop", "checkout", "allowed", 5, 50);
        egress.finished("shop", "other", "failed", 0, 0);
        let text = metrics.encode();
        for line in [
            "zerofn_egress_requests_total{app=\"shop\",function=\"checkout\",outcome=\"denied\"} 2",
            "zerofn_egress_requests_total{app=\"shop\",function=\"checkout\",outcome=\"allowed\"} 2",
            "zerofn_egress_requests_total{app=\"shop\",function=\"other\",outcome=\"failed\"} 1",
            "zerofn_egress_refusals_total{app=\"shop\",function=\"checkout\",rule=\"egress-not-granted\"} 2",
            "zerofn_egress_sent_bytes_total{app=\"shop\",function=\"checkout\"} 15",
            "zerofn_egress_received_bytes_total{app=\"shop\",function=\"checkout\"} 300",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
