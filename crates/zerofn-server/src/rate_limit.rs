//! Abuse limits (denial of service and denial of wallet): one token bucket per function for
//! everyone together, and one per caller, on top of the concurrency caps. GCRA buckets from
//! `governor`; this module decides what a caller is and keeps the per-caller map bounded.
//!
//! **Invariants:** a request is counted against its caller before its function, so one noisy
//! caller exhausts its own bucket before the function's; the caller map never holds more than
//! [`MAX_TRACKED_CALLERS`] entries (beyond that, new callers share one overflow bucket until idle
//! ones are dropped), so a flood of distinct addresses cannot grow memory without bound.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use zerofn_manifest::ResolvedLimits;

/// Callers tracked one by one per function; past this, new callers share a bucket.
pub const MAX_TRACKED_CALLERS: usize = 65_536;
/// The key of the shared bucket used once [`MAX_TRACKED_CALLERS`] are tracked.
const OVERFLOW_CALLER: &str = "overflow";
/// Idle callers are swept at most this often when the map is full.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// At most one audit event per function and scope in this period; the others are counted
/// in the next event (`suppressed`) and in the metrics.
const AUDIT_INTERVAL: Duration = Duration::from_secs(1);

/// Who sends a request, for the per-caller bucket: the most specific identity known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Not (yet) authenticated: the client's IP address.
    Address(std::net::IpAddr),
    /// An authenticated caller: `api-key:<id>`, `jwt:<iss> <sub>`, `spiffe://...`.
    Identity(String),
    /// Another function of the platform, by SPIFFE ID.
    Function(String),
    /// Nothing is known of the caller (a request that did not come over TCP).
    Unknown,
}

impl Caller {
    /// The bucket key, also shown in audit events.
    pub fn key(&self) -> String {
        match self {
            Caller::Address(ip) => format!("address:{ip}"),
            Caller::Identity(id) | Caller::Function(id) => id.clone(),
            Caller::Unknown => "unknown".to_string(),
        }
    }
}

/// Which bucket refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The function's bucket for everyone together.
    Function,
    /// The caller's own bucket.
    Caller,
}

impl Scope {
    /// The refusal's rule id.
    pub fn rule(self) -> &'static str {
        match self {
            Scope::Function => "function-rate-limited",
            Scope::Caller => "caller-rate-limited",
        }
    }

    /// For metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Function => "function",
            Scope::Caller => "caller",
        }
    }
}

/// Which buckets a request is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buckets {
    /// The caller's only (before authentication: the address's).
    Caller,
    /// The function's only (the caller's was charged already).
    Function,
    /// The caller's, then the function's.
    Both,
}

/// A request over a limit: which one, and when a token will be there again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateRefusal {
    pub scope: Scope,
    pub retry_after: Duration,
    /// The rate and burst of the bucket that refused.
    pub per_second: u64,
    pub burst: u64,
}

impl RateRefusal {
    /// Whole seconds for `Retry-After`, at least 1.
    pub fn retry_after_secs(&self) -> u32 {
        u32::try_from(self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0))
            .unwrap_or(u32::MAX)
            .max(1)
    }

    /// The manifest fields that set the bucket.
    pub fn fields(&self) -> (&'static str, &'static str) {
        match self.scope {
            Scope::Function => ("limits.requests_per_second", "limits.burst"),
            Scope::Caller => ("limits.caller_requests_per_second", "limits.caller_burst"),
        }
    }
}

/// One function's buckets.
pub struct RateLimits {
    function: DefaultDirectRateLimiter,
    callers: DefaultKeyedRateLimiter<String>,
    limits: (u64, u64, u64, u64),
    clock: DefaultClock,
    last_sweep: Mutex<Instant>,
    audit: [AuditThrottle; 2],
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("limits", &self.limits)
            .field("tracked_callers", &self.callers.len())
            .finish_non_exhaustive()
    }
}

fn quota(per_second: u64, burst: u64) -> Quota {
    let clamp =
        |n: u64| NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(clamp(per_second)).allow_burst(clamp(burst))
}

impl RateLimits {
    /// Full buckets for a function with `limits`.
    pub fn new(limits: &ResolvedLimits) -> Self {
        RateLimits {
            function: DefaultDirectRateLimiter::direct(quota(
                limits.requests_per_second,
                limits.burst,
            )),
            callers: DefaultKeyedRateLimiter::keyed(quota(
                limits.caller_requests_per_second,
                limits.caller_burst,
            )),
            limits: (
                limits.requests_per_second,
                limits.burst,
                limits.caller_requests_per_second,
                limits.caller_burst,
            ),
            clock: DefaultClock::default(),
            last_sweep: Mutex::new(Instant::now()),
            audit: [AuditThrottle::default(), AuditThrottle::default()],
        }
    }

    /// Takes a token from each bucket `buckets` names, the caller's first.
    pub fn check(&self, caller: &Caller, buckets: Buckets) -> Result<(), RateRefusal> {
        if buckets != Buckets::Function {
            self.check_caller(caller)?;
        }
        if buckets != Buckets::Caller {
            self.check_function()?;
        }
        Ok(())
    }

    /// Takes a token from `caller`'s bucket.
    pub fn check_caller(&self, caller: &Caller) -> Result<(), RateRefusal> {
        let key = self.tracked_key(caller.key());
        self.callers
            .check_key(&key)
            .map_err(|not_until| RateRefusal {
                scope: Scope::Caller,
                retry_after: not_until.wait_time_from(self.clock.now()),
                per_second: self.limits.2,
                burst: self.limits.3,
            })
    }

    /// Takes a token from the function's bucket.
    pub fn check_function(&self) -> Result<(), RateRefusal> {
        self.function.check().map_err(|not_until| RateRefusal {
            scope: Scope::Function,
            retry_after: not_until.wait_time_from(self.clock.now()),
            per_second: self.limits.0,
            burst: self.limits.1,
        })
    }

    /// `key`, or the overflow bucket's when the map is full even after dropping idle callers.
    fn tracked_key(&self, key: String) -> String {
        if self.callers.len() < MAX_TRACKED_CALLERS {
            return key;
        }
        if let Ok(mut last) = self.last_sweep.try_lock()
            && last.elapsed() >= SWEEP_INTERVAL
        {
            *last = Instant::now();
            // Drops the callers whose buckets are full again: forgetting them loses nothing.
            self.callers.retain_recent();
            self.callers.shrink_to_fit();
        }
        if self.callers.len() < MAX_TRACKED_CALLERS {
            key
        } else {
            OVERFLOW_CALLER.to_string()
        }
    }

    /// Whether a refusal in `scope` should be written to the audit stream now; if so, how many
    /// refusals in that scope were only counted since the last one written.
    pub fn audit_due(&self, scope: Scope) -> Option<u64> {
        self.audit[scope as usize].due()
    }
}

/// Lets one refusal event through per [`AUDIT_INTERVAL`] and counts the others, so that a
/// flood of refused requests cannot flood the audit store (the metrics count every one).
#[derive(Default)]
struct AuditThrottle {
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl AuditThrottle {
    fn due(&self) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match *last {
            Some(at) if now.duration_since(at) < AUDIT_INTERVAL => {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                None
            }
            _ => {
                *last = Some(now);
                Some(self.suppressed.swap(0, Ordering::Relaxed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(
        per_second: u64,
        burst: u64,
        caller_per_second: u64,
        caller_burst: u64,
    ) -> RateLimits {
        let mut resolved = zerofn_manifest::LimitPolicy::default().defaults;
        resolved.requests_per_second = per_second;
        resolved.burst = burst;
        resolved.caller_requests_per_second = caller_per_second;
        resolved.caller_burst = caller_burst;
        RateLimits::new(&resolved)
    }

    // One token a second: a burst is spent long before the next token arrives.
    #[test]
    fn a_caller_gets_its_burst_then_is_refused_with_a_retry_time() {
        let limits = limits(1000, 1000, 1, 3);
        let alice = Caller::Identity("api-key:alice".into());
        for _ in 0..3 {
            limits.check_caller(&alice).unwrap();
        }
        let refused = limits.check_caller(&alice).unwrap_err();
        assert_eq!(refused.scope, Scope::Caller);
        assert_eq!(refused.retry_after_secs(), 1);
        assert_eq!(refused.fields().0, "limits.caller_requests_per_second");
        // Another caller has its own bucket.
        limits
            .check_caller(&Caller::Address("127.0.0.2".parse().unwrap()))
            .unwrap();
    }

    #[test]
    fn the_function_bucket_is_shared_by_everyone() {
        let limits = limits(1, 2, 1000, 1000);
        limits.check_function().unwrap();
        limits.check_function().unwrap();
        let refused = limits.check_function().unwrap_err();
        assert_eq!(refused.scope, Scope::Function);
        assert_eq!(refused.scope.rule(), "function-rate-limited");
    }

    #[test]
    fn many_distinct_callers_share_an_overflow_bucket_instead_of_growing_the_map() {
        let limits = limits(1000, 1000, 1, 1);
        for i in 0..MAX_TRACKED_CALLERS as u32 {
            let _ = limits.check_caller(&Caller::Address(std::net::IpAddr::from(i.to_be_bytes())));
        }
        assert_eq!(limits.callers.len(), MAX_TRACKED_CALLERS);
        // No sweep in the next second, however long the filling took.
        *limits.last_sweep.lock().unwrap() = Instant::now();
        let newcomer = Caller::Identity("late".into());
        // The first newcomer gets the overflow bucket's one token; the map does not grow.
        limits.check_caller(&newcomer).unwrap();
        assert!(limits.callers.len() <= MAX_TRACKED_CALLERS + 1);
        assert!(
            limits
                .check_caller(&Caller::Identity("later".into()))
                .is_err()
        );
    }

    #[test]
    fn refusal_events_are_throttled_and_counted() {
        let limits = limits(1, 1, 1, 1);
        assert_eq!(limits.audit_due(Scope::Caller), Some(0));
        assert_eq!(limits.audit_due(Scope::Caller), None);
        assert_eq!(limits.audit_due(Scope::Caller), None);
        assert_eq!(limits.audit_due(Scope::Function), Some(0));
    }
}
