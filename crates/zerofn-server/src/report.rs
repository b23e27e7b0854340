//! The monitoring loop's own figures (`zerofn report`): how fast incidents are detected and
//! responded to, how often detections were wrong, what was refused. Computed from the store
//! (incidents and the audit stream), so they cover every run, not only this process's.

use crate::platform::Platform;
use std::collections::BTreeMap;
use zerofn_store::{IncidentRecord, StoreError};

/// Mean and 99th percentile (nearest rank) of some durations, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Timing {
    pub count: u64,
    pub mean_ms: Option<f64>,
    pub p99_ms: Option<i64>,
}

impl Timing {
    pub fn of(mut samples: Vec<i64>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let count = samples.len();
        let mean = samples.iter().map(|&s| s as f64).sum::<f64>() / count as f64;
        // Nearest rank: the smallest sample at or above 99% of them.
        let rank = (count * 99).div_ceil(100).max(1);
        Self {
            count: count as u64,
            mean_ms: Some(mean),
            p99_ms: samples.get(rank - 1).copied(),
        }
    }
}

/// Refusals of one rule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuleCount {
    /// The kind of event that recorded them (`request.refused`, `egress.denied`, ...).
    pub kind: String,
    pub rule: String,
    pub count: i64,
}

/// What `zerofn report` prints.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LoopReport {
    pub incidents: u64,
    pub open: u64,
    pub true_positives: u64,
    pub false_positives: u64,
    /// False positives over resolved incidents; `None` until one is resolved.
    pub false_positive_rate: Option<f64>,
    /// Offending event → incident opened.
    pub time_to_detect: Timing,
    /// Incident opened → first action in force.
    pub time_to_respond: Timing,
    pub by_detector: BTreeMap<String, u64>,
    pub by_severity: BTreeMap<String, u64>,
    /// Deploys refused (`deploy.refused` events).
    pub rejected_deployments: i64,
    /// Every denied decision in the audit stream, by kind and rule, most frequent first.
    pub refusals_by_rule: Vec<RuleCount>,
    /// Functions in quarantine now.
    pub quarantined: Vec<zerofn_store::QuarantineRecord>,
}

impl LoopReport {
    /// The figures over `incidents` and the audit stream's `denials` (kind, rule, count).
    pub fn compute(
        incidents: &[IncidentRecord],
        denials: Vec<(String, String, i64)>,
        quarantined: Vec<zerofn_store::QuarantineRecord>,
    ) -> Self {
        let mut report = LoopReport {
            incidents: incidents.len() as u64,
            quarantined,
            ..Default::default()
        };
        for incident in incidents {
            match incident.resolution.as_deref() {
                Some("true-positive") => report.true_positives += 1,
                Some("false-positive") => report.false_positives += 1,
                _ => {}
            }
            if incident.status == "open" {
                report.open += 1;
            }
            *report
                .by_detector
                .entry(incident.detector.clone())
                .or_default() += 1;
            *report
                .by_severity
                .entry(incident.severity.clone())
                .or_default() += 1;
        }
        let resolved = report.true_positives + report.false_positives;
        report.false_positive_rate =
            (resolved > 0).then(|| report.false_positives as f64 / resolved as f64);
        report.time_to_detect = Timing::of(
            incidents
                .iter()
                .map(|i| (i.opened_ms - i.offending_ms).max(0))
                .collect(),
        );
        report.time_to_respond = Timing::of(
            incidents
                .iter()
                .filter_map(|i| Some((i.responded_ms? - i.opened_ms).max(0)))
                .collect(),
        );
        report.rejected_deployments = denials
            .iter()
            .filter(|(kind, _, _)| kind == "deploy.refused")
            .map(|(_, _, count)| count)
            .sum();
        report.refusals_by_rule = denials
            .into_iter()
            .map(|(kind, rule, count)| RuleCount { kind, rule, count })
            .collect();
        report
    }
}

impl Platform {
    /// The loop's figures, from the store.
    pub fn loop_report(&self) -> Result<LoopReport, StoreError> {
        let incidents = self.store().all_incidents()?;
        let denials = self.store().denials_by_rule()?;
        Ok(LoopReport::compute(&incidents, denials, self.quarantined()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p99_is_the_nearest_rank() {
        assert_eq!(Timing::of(Vec::new()), Timing::default());
        let one = Timing::of(vec![7]);
        assert_eq!((one.mean_ms, one.p99_ms), (Some(7.0), Some(7)));
        let hundred = Timing::of((1..=100).rev().collect());
        assert_eq!(hundred.p99_ms, Some(99));
        assert_eq!(hundred.mean_ms, Some(50.5));
        let two_hundred = Timing::of((1..=200).collect());
        assert_eq!(two_hundred.p99_ms, Some(198));
    }
}
