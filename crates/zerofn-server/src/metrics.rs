//! The platform's own metrics, in the Prometheus text format (OpenMetrics), so that the
//! monitoring loop's numbers (rejected deployments first) can be scraped by what users already
//! run. The control plane serves them at `/v1/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KvOperationLabels {
    app: String,
    function: String,
    operation: String,
    /// `ok`, or the rule that refused it.
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionLabels {
    app: String,
    function: String,
}

/// Counters of deploy decisions and of functions' key-value use.
pub struct Metrics {
    registry: Registry,
    deploys: Family<OutcomeLabels, Counter>,
    refusals: Family<RuleLabels, Counter>,
    kv_operations: Family<KvOperationLabels, Counter>,
    kv_bytes_written: Family<FunctionLabels, Counter>,
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
        Metrics {
            registry,
            deploys,
            refusals,
            kv_operations,
            kv_bytes_written,
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

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
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
}
