//! The detectors' thresholds, windows and caps: the server's `[detection]` section.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Every tunable of the detectors. Each default is the documented one (`docs/detection.md`);
/// an unknown key is an error, so a misspelt threshold never silently keeps its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorConfig {
    /// Length of one counting window, in milliseconds. Rates are counts per window; the
    /// current count slides over the last window in tenths of it.
    pub window_ms: u64,
    /// Weight of the newest window in the EWMA baselines (0 < alpha <= 1). 0.05 remembers about
    /// the last 20 windows.
    pub ewma_alpha: f64,
    /// How many standard deviations above its baseline mean a count must be to be a spike.
    pub z_threshold: f64,
    /// The smallest standard deviation a baseline is taken to have, so a function whose count
    /// never varied does not fire on a difference of one.
    pub min_std_dev: f64,
    /// Events a function must have produced before any detector fires for it.
    pub warmup_events: u64,
    /// Windows since a function's first event before any detector fires for it.
    pub warmup_windows: u64,
    /// After a detector fires for a function and key, how long the same detection stays quiet.
    pub cooldown_ms: u64,
    /// Functions tracked at once; past it the least recently seen one is forgotten.
    pub max_functions: usize,
    /// Destinations (and, separately, callees) learned per function; past it the baseline stops
    /// growing and every further unseen one is reported (after warm-up).
    pub max_set_size: usize,
    /// Event ids a detection carries as its evidence, at most.
    pub max_evidence: usize,
    /// Refusals in a window below which `denied-spike` never fires.
    pub denied_floor: u32,
    /// Secret reads in a window below which `secret-read-burst` never fires.
    pub secret_read_floor: u32,
    /// Failed invocations (other than timeouts) in a window below which `error-spike` never fires.
    pub error_floor: u32,
    /// Timed-out invocations in a window below which `timeout-spike` never fires.
    pub timeout_floor: u32,
    /// Uses of one privileged grant in a window below which `privileged-grant-use` never fires.
    pub privileged_floor: u32,
    /// Share of the window's ended invocations that must have failed (or timed out) for
    /// `error-spike` (`timeout-spike`) to fire, so more traffic at the usual error rate is not
    /// an error spike.
    pub min_failure_ratio: f64,
    /// For the rate detectors but `error-spike` and `timeout-spike`: how many times its usual
    /// share per invocation the window's count must be, so that more invocations doing what
    /// they usually do is not a spike. Not applied to a function started less than once every
    /// two windows on average.
    pub min_per_invocation_factor: f64,
    /// Detector ids turned off.
    pub disabled: Vec<String>,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            window_ms: 10_000,
            ewma_alpha: 0.05,
            z_threshold: 4.0,
            min_std_dev: 1.0,
            warmup_events: 100,
            warmup_windows: 30,
            cooldown_ms: 600_000,
            max_functions: 4_096,
            max_set_size: 256,
            max_evidence: 20,
            denied_floor: 10,
            secret_read_floor: 20,
            error_floor: 5,
            timeout_floor: 5,
            privileged_floor: 20,
            min_failure_ratio: 0.2,
            min_per_invocation_factor: 2.0,
            disabled: Vec::new(),
        }
    }
}

/// A `[detection]` value that cannot work; names the key and what it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: &'static str,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "detection.{}: {}", self.key, self.message)
    }
}

impl std::error::Error for ConfigError {}

impl DetectorConfig {
    /// Refuses values the detectors cannot work with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let error = |key, message: &str| {
            Err(ConfigError {
                key,
                message: message.to_string(),
            })
        };
        if !(1_000..=3_600_000).contains(&self.window_ms) {
            return error("window_ms", "must be between 1000 (1 s) and 3600000 (1 h)");
        }
        if !(self.ewma_alpha > 0.0 && self.ewma_alpha <= 1.0) {
            return error("ewma_alpha", "must be greater than 0 and at most 1");
        }
        if !(self.z_threshold.is_finite() && self.z_threshold > 0.0) {
            return error("z_threshold", "must be a positive number");
        }
        if !(self.min_std_dev.is_finite() && self.min_std_dev > 0.0) {
            return error("min_std_dev", "must be a positive number");
        }
        if !(1..=1_000_000).contains(&self.max_functions) {
            return error("max_functions", "must be between 1 and 1000000");
        }
        if !(1..=100_000).contains(&self.max_set_size) {
            return error("max_set_size", "must be between 1 and 100000");
        }
        if !(1..=1_000).contains(&self.max_evidence) {
            return error("max_evidence", "must be between 1 and 1000");
        }
        for (key, floor) in [
            ("denied_floor", self.denied_floor),
            ("secret_read_floor", self.secret_read_floor),
            ("error_floor", self.error_floor),
            ("timeout_floor", self.timeout_floor),
            ("privileged_floor", self.privileged_floor),
        ] {
            if floor == 0 {
                return error(key, "must be at least 1, or a single event could fire");
            }
        }
        if !(0.0..=1.0).contains(&self.min_failure_ratio) {
            return error("min_failure_ratio", "must be between 0 and 1");
        }
        if !(self.min_per_invocation_factor.is_finite() && self.min_per_invocation_factor >= 1.0) {
            return error(
                "min_per_invocation_factor",
                "must be a number of at least 1",
            );
        }
        if let Some(unknown) = self
            .disabled
            .iter()
            .find(|id| !crate::DETECTOR_IDS.contains(&id.as_str()))
        {
            return Err(ConfigError {
                key: "disabled",
                message: format!(
                    "`{unknown}` is not a detector; the detectors are {}",
                    crate::DETECTOR_IDS.join(", ")
                ),
            });
        }
        Ok(())
    }

    pub(crate) fn enabled(&self, detector: &str) -> bool {
        !self.disabled.iter().any(|id| id == detector)
    }
}
