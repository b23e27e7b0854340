//! One counted behaviour of one function: its count over the last window (sliding, in tenths of
//! a window) and its baseline, the EWMA mean and variance of its count per closed window.

use std::collections::VecDeque;

/// Sub-windows the sliding count is kept in.
const SLICES: usize = 10;

/// Empty windows applied one by one when a rate wakes up after a silence; past this many the
/// baseline has decayed below any floor anyway (0.95^256 < 1e-5).
const MAX_EMPTY_WINDOWS: i64 = 256;

/// The window arithmetic every rate of a function shares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    pub(crate) window_ms: i64,
    pub(crate) slice_ms: i64,
    pub(crate) alpha: f64,
}

impl Clock {
    pub(crate) fn new(window_ms: u64, alpha: f64) -> Self {
        let window_ms = i64::try_from(window_ms).unwrap_or(i64::MAX).max(1);
        Self {
            window_ms,
            slice_ms: (window_ms / SLICES as i64).max(1),
            alpha,
        }
    }
}

/// A spike as measured: the sliding count against the baseline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spike {
    pub(crate) count: u32,
    pub(crate) mean: f64,
    pub(crate) std_dev: f64,
    pub(crate) z: f64,
}

#[derive(Debug)]
pub(crate) struct Rate {
    slices: [u32; SLICES],
    /// Slice index (`at_ms / slice_ms`) of the newest slice.
    head: i64,
    /// Window index (`at_ms / window_ms`) being counted into `window_count`.
    window: i64,
    window_count: u32,
    mean: f64,
    variance: f64,
    /// Closed windows learned.
    windows: u64,
    /// This window was an anomaly that fired: it is kept out of the baseline, so one spike does
    /// not raise the bar for the next.
    fired_in_window: bool,
    pub(crate) last_fired_ms: Option<i64>,
    /// Recent counted events (id, at_ms), newest last.
    evidence: VecDeque<(i64, i64)>,
}

impl Rate {
    /// A rate whose first window starts at `at_ms` (the function's first event, so windows
    /// before the behaviour first shows count as zeros).
    pub(crate) fn new(clock: Clock, at_ms: i64) -> Self {
        Self {
            slices: [0; SLICES],
            head: at_ms.div_euclid(clock.slice_ms),
            window: at_ms.div_euclid(clock.window_ms),
            window_count: 0,
            mean: 0.0,
            variance: 0.0,
            windows: 0,
            fired_in_window: false,
            last_fired_ms: None,
            evidence: VecDeque::new(),
        }
    }

    /// Moves time to `at_ms` (never backwards): closes the windows that ended into the
    /// baseline and drops the slices that left the sliding window.
    pub(crate) fn advance(&mut self, clock: Clock, at_ms: i64) {
        let slice = at_ms.div_euclid(clock.slice_ms);
        if slice > self.head {
            let gone = (slice - self.head).min(SLICES as i64);
            for step in 1..=gone {
                self.slices[slot(self.head + step)] = 0;
            }
            self.head = slice;
        }
        let window = at_ms.div_euclid(clock.window_ms);
        if window > self.window {
            if !self.fired_in_window {
                self.learn(clock.alpha, f64::from(self.window_count));
            }
            let empty = (window - self.window - 1).min(MAX_EMPTY_WINDOWS);
            for _ in 0..empty {
                self.learn(clock.alpha, 0.0);
            }
            self.window = window;
            self.window_count = 0;
            self.fired_in_window = false;
        }
    }

    /// Counts `weight` occurrences at the current time (after [`Rate::advance`]).
    pub(crate) fn add(&mut self, id: i64, at_ms: i64, weight: u32, max_evidence: usize) {
        let slot = slot(self.head);
        self.slices[slot] = self.slices[slot].saturating_add(weight);
        self.window_count = self.window_count.saturating_add(weight);
        if self.evidence.len() >= max_evidence {
            self.evidence.pop_front();
        }
        self.evidence.push_back((id, at_ms));
    }

    /// The count over the last window.
    pub(crate) fn count(&self) -> u32 {
        self.slices
            .iter()
            .fold(0u32, |sum, c| sum.saturating_add(*c))
    }

    /// The baseline's mean count per window.
    pub(crate) fn mean(&self) -> f64 {
        self.mean
    }

    /// The sliding count measured against the baseline.
    pub(crate) fn spike(&self, min_std_dev: f64) -> Spike {
        let count = self.count();
        let std_dev = self.variance.max(0.0).sqrt().max(min_std_dev);
        Spike {
            count,
            mean: self.mean,
            std_dev,
            z: (f64::from(count) - self.mean) / std_dev,
        }
    }

    /// Marks that this rate fired now.
    pub(crate) fn fired(&mut self, at_ms: i64) {
        self.fired_in_window = true;
        self.last_fired_ms = Some(at_ms);
    }

    /// Ids of the counted events still inside the sliding window, oldest first.
    pub(crate) fn evidence(&self, clock: Clock, now_ms: i64) -> Vec<i64> {
        let since = now_ms.saturating_sub(clock.window_ms);
        self.evidence
            .iter()
            .filter(|(_, at)| *at > since)
            .map(|(id, _)| *id)
            .collect()
    }

    /// One closed window's count into the baseline: a running mean and variance while there
    /// are fewer windows than the EWMA's memory (so the baseline does not start from zero),
    /// then the EWMA.
    fn learn(&mut self, alpha: f64, count: f64) {
        self.windows = self.windows.saturating_add(1);
        let weight = alpha.max(1.0 / self.windows as f64);
        let diff = count - self.mean;
        let step = weight * diff;
        self.mean += step;
        self.variance = (1.0 - weight) * (self.variance + diff * step);
    }
}

fn slot(slice: i64) -> usize {
    // rem_euclid of a positive modulus is in 0..SLICES.
    usize::try_from(slice.rem_euclid(SLICES as i64)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> Clock {
        Clock::new(10_000, 0.05)
    }

    #[test]
    fn the_baseline_learns_the_usual_count_per_window() {
        let clock = clock();
        let mut rate = Rate::new(clock, 0);
        let mut id = 0;
        for window in 0..100i64 {
            for i in 0..(if window % 2 == 0 { 4 } else { 6 }) {
                let at = window * 10_000 + i * 100;
                rate.advance(clock, at);
                id += 1;
                rate.add(id, at, 1, 20);
            }
        }
        rate.advance(clock, 100 * 10_000);
        assert!((rate.mean - 5.0).abs() < 0.3, "mean {}", rate.mean);
        assert!(
            (rate.variance.sqrt() - 1.0).abs() < 0.3,
            "std dev {}",
            rate.variance.sqrt()
        );
    }

    #[test]
    fn the_sliding_count_forgets_what_left_the_window() {
        let clock = clock();
        let mut rate = Rate::new(clock, 0);
        for at in [0, 1_000, 2_000] {
            rate.advance(clock, at);
            rate.add(at, at, 1, 20);
        }
        assert_eq!(rate.count(), 3);
        rate.advance(clock, 10_500);
        assert_eq!(rate.count(), 2, "the event at 0 left the window");
        rate.advance(clock, 1_000_000);
        assert_eq!(rate.count(), 0);
        assert_eq!(rate.evidence(clock, 1_000_000), Vec::<i64>::new());
    }

    #[test]
    fn silence_decays_the_baseline() {
        let clock = clock();
        let mut rate = Rate::new(clock, 0);
        for window in 0..50i64 {
            let at = window * 10_000;
            rate.advance(clock, at);
            rate.add(window, at, 10, 20);
        }
        let busy = rate.mean;
        rate.advance(clock, 10_000_000_000);
        assert!(rate.mean < busy / 1_000.0, "{} after {busy}", rate.mean);
    }
}
