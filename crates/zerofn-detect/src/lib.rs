//! Streaming detectors over the audit stream.
//!
//! [`Detectors`] watches committed audit events, keeps a baseline per function, and returns a
//! [`Detection`] when a function does something its baseline says it does not. It is pure: no
//! clock of its own (time comes from the events), no I/O, no platform state. The server's
//! monitor feeds it and turns detections into incidents and responses.
//!
//! Meaning and thresholds of every detector: `docs/detection.md`.

#![forbid(unsafe_code)]

use serde::Serialize;
use zerofn_audit::CommittedEvent;

/// How serious a detection is; the operator's `[response]` configuration maps each severity
/// to the actions taken automatically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

/// One anomaly: which detector, about which function, and the events that show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    /// The detector's stable id, e.g. `new-egress-destination`.
    pub detector: &'static str,
    pub severity: Severity,
    pub app: String,
    pub function: String,
    /// The version that was serving when the offending event happened.
    pub version_id: Option<String>,
    /// One sentence for people: what was seen and against which baseline.
    pub summary: String,
    /// Ids of the audit events that triggered it, oldest first; the last is the offending one.
    pub evidence: Vec<i64>,
    /// When the offending event happened (its `at_ms`): the start of time-to-detect.
    pub offending_at_ms: i64,
}

/// The detectors of every function. Feed it every committed event, in stream order.
#[derive(Debug, Default)]
pub struct Detectors {}

impl Detectors {
    pub fn new() -> Self {
        Self::default()
    }

    /// Looks at one event; returns what it shows, if anything.
    pub fn observe(&mut self, event: &CommittedEvent) -> Vec<Detection> {
        let _ = event;
        Vec::new()
    }
}
