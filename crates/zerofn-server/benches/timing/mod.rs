//! The timing loop every zerofn-server bench shares: each operation timed alone, after a
//! warm-up, and reported as p50 and p99.

use std::time::{Duration, Instant};

const ROUNDS: usize = 5;
const PER_ROUND: usize = 2_000;

/// Times `op` `ROUNDS × PER_ROUND` times, one sample per call, after a warm-up.
pub fn measure(mut op: impl FnMut()) -> Vec<Duration> {
    for _ in 0..PER_ROUND / 10 {
        op();
    }
    let mut samples = Vec::with_capacity(ROUNDS * PER_ROUND);
    for _ in 0..ROUNDS {
        for _ in 0..PER_ROUND {
            let start = Instant::now();
            op();
            samples.push(start.elapsed());
        }
    }
    samples
}

/// Prints `name` with the p50 and p99 of `samples`, in microseconds.
pub fn percentiles(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "{name:<52} p50 {:>8.2} µs   p99 {:>8.2} µs   (n={})",
        at(0.50).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        samples.len()
    );
}
