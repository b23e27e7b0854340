//! Streaming detectors over the audit stream.
//!
//! [`Detectors`] watches committed audit events, keeps a baseline per function, and returns a
//! [`Detection`] when a function does something its baseline says it does not. It is pure: no
//! clock of its own (time comes from the events), no I/O, no platform state. The server's
//! monitor feeds it and turns detections into incidents and responses.
//!
//! Meaning and thresholds of every detector: `docs/detection.md`.

#![forbid(unsafe_code)]

mod baseline;
mod config;
mod function;
mod rate;
mod reading;

pub use config::{ConfigError, DetectorConfig};

use function::{FunctionState, Judge};
use rate::Clock;
use serde::Serialize;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use zerofn_audit::CommittedEvent;

/// A function reached a host never seen in its baseline.
pub const NEW_EGRESS_DESTINATION: &str = "new-egress-destination";
/// A function invoked a function it never called before.
pub const NEW_CALLEE: &str = "new-callee";
/// Refusals about a function far above its baseline.
pub const DENIED_SPIKE: &str = "denied-spike";
/// Secret reads far above the function's baseline.
pub const SECRET_READ_BURST: &str = "secret-read-burst";
/// Failed invocations (other than timeouts) far above the function's baseline.
pub const ERROR_SPIKE: &str = "error-spike";
/// Timed-out invocations far above the function's baseline.
pub const TIMEOUT_SPIKE: &str = "timeout-spike";
/// Uses of a privileged grant (key-value writes, egress to private addresses) far above the
/// function's baseline.
pub const PRIVILEGED_GRANT_USE: &str = "privileged-grant-use";

/// Every detector's id, in the order `docs/detection.md` documents them.
pub const DETECTOR_IDS: &[&str] = &[
    NEW_EGRESS_DESTINATION,
    NEW_CALLEE,
    DENIED_SPIKE,
    SECRET_READ_BURST,
    ERROR_SPIKE,
    TIMEOUT_SPIKE,
    PRIVILEGED_GRANT_USE,
];

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
#[derive(Debug)]
pub struct Detectors {
    config: DetectorConfig,
    clock: Clock,
    functions: HashMap<u64, Vec<FunctionState>, BuildHasherDefault<KeyHasher>>,
    tracked: usize,
    forgotten: u64,
}

impl Default for Detectors {
    fn default() -> Self {
        Self::build(DetectorConfig::default())
    }
}

impl Detectors {
    /// The detectors with the documented defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The detectors with `config`, once it is checked.
    pub fn with_config(config: DetectorConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::build(config))
    }

    fn build(config: DetectorConfig) -> Self {
        Self {
            clock: Clock::new(config.window_ms, config.ewma_alpha),
            config,
            functions: HashMap::default(),
            tracked: 0,
            forgotten: 0,
        }
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// Looks at one event; returns what it shows, if anything.
    pub fn observe(&mut self, event: &CommittedEvent) -> Vec<Detection> {
        let mut out = Vec::new();
        self.judge(event, &mut out);
        out
    }

    /// Feeds history (at start-up, the recent audit events replayed from the store) without
    /// reporting anything. It is judged exactly as [`Detectors::observe`] would, so the state
    /// rebuilt is the state a server that never stopped would have: what was reported then
    /// (a destination, a callee) stays reported, and is not learned as normal by the replay.
    pub fn learn(&mut self, event: &CommittedEvent) {
        let mut out = Vec::new();
        self.judge(event, &mut out);
    }

    /// Functions whose baselines are held now.
    pub fn tracked_functions(&self) -> usize {
        self.tracked
    }

    /// Functions forgotten to stay within `max_functions` since the start.
    pub fn forgotten_functions(&self) -> u64 {
        self.forgotten
    }

    fn judge(&mut self, committed: &CommittedEvent, out: &mut Vec<Detection>) {
        let event = &committed.event;
        let (Some(app), Some(function)) = (&event.app, &event.function) else {
            return;
        };
        let reading = reading::read(event);
        if !reading.behaviour {
            return;
        }
        let key = function_key(app, function);
        let known = self
            .functions
            .get(&key)
            .is_some_and(|states| states.iter().any(|s| s.is(app, function)));
        if !known {
            if self.tracked >= self.config.max_functions {
                self.forget_least_recent();
            }
            self.functions
                .entry(key)
                .or_default()
                .push(FunctionState::new(
                    app.clone(),
                    function.clone(),
                    self.clock,
                    event.at_ms,
                ));
            self.tracked += 1;
        }
        let judge = Judge {
            config: &self.config,
            clock: self.clock,
        };
        if let Some(state) = self
            .functions
            .get_mut(&key)
            .and_then(|states| states.iter_mut().find(|s| s.is(app, function)))
        {
            state.observe(&judge, committed.id, event, reading, out);
        }
    }

    /// Forgets the function seen least recently (its baselines start again if it returns).
    fn forget_least_recent(&mut self) {
        let oldest = self
            .functions
            .iter()
            .flat_map(|(key, states)| {
                states
                    .iter()
                    .enumerate()
                    .map(move |(i, s)| (s.now_ms, *key, i))
            })
            .min_by_key(|(at, _, _)| *at);
        let Some((_, key, index)) = oldest else {
            return;
        };
        if let Some(states) = self.functions.get_mut(&key) {
            states.swap_remove(index);
            if states.is_empty() {
                self.functions.remove(&key);
            }
        }
        self.tracked = self.tracked.saturating_sub(1);
        self.forgotten = self.forgotten.saturating_add(1);
    }
}

/// The functions map's key: one hash of the app and function names, computed once per event.
/// Two functions whose keys collide share an entry and are told apart by name.
fn function_key(app: &str, function: &str) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    app.hash(&mut hasher);
    function.hash(&mut hasher);
    hasher.finish()
}

/// Hashes a key that is already a hash: as is.
#[derive(Debug, Default, Clone, Copy)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}
