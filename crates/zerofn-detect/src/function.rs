//! One function's baselines and the detectors that run on its events.

use crate::baseline::{Baseline, Verdict};
use crate::rate::{Clock, Rate, Spike};
use crate::reading::{Failure, Grant, Reading, Refused};
use crate::{Detection, DetectorConfig, Severity};
use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use zerofn_audit::{AuditEvent, Outcome};

/// Invocations started by the function remembered, to tell a refusal inside one of them (its
/// own call refused) from a refusal of a caller's request.
const STARTED_REMEMBERED: usize = 64;

/// How far behind a function's time an event must be to be read as the server's clock set back
/// (at least ten windows). Less is an event committed late: an egress exchange is stamped when
/// it starts and recorded when its body ends.
const CLOCK_STEP_MS: i64 = 3_600_000;

/// The settings one event is judged with.
pub(crate) struct Judge<'a> {
    pub(crate) config: &'a DetectorConfig,
    pub(crate) clock: Clock,
}

#[derive(Debug)]
struct Rates {
    starts: Rate,
    denied_own: Rate,
    denied_callers: Rate,
    secret_reads: Rate,
    ends: Rate,
    errors: Rate,
    timeouts: Rate,
    kv_writes: Rate,
    private_egress: Rate,
}

impl Rates {
    fn new(clock: Clock, at_ms: i64) -> Self {
        Self {
            starts: Rate::new(clock, at_ms),
            denied_own: Rate::new(clock, at_ms),
            denied_callers: Rate::new(clock, at_ms),
            secret_reads: Rate::new(clock, at_ms),
            ends: Rate::new(clock, at_ms),
            errors: Rate::new(clock, at_ms),
            timeouts: Rate::new(clock, at_ms),
            kv_writes: Rate::new(clock, at_ms),
            private_egress: Rate::new(clock, at_ms),
        }
    }

    fn advance(&mut self, clock: Clock, at_ms: i64) {
        for rate in [
            &mut self.starts,
            &mut self.denied_own,
            &mut self.denied_callers,
            &mut self.secret_reads,
            &mut self.ends,
            &mut self.errors,
            &mut self.timeouts,
            &mut self.kv_writes,
            &mut self.private_egress,
        ] {
            rate.advance(clock, at_ms);
        }
    }
}

#[derive(Debug)]
pub(crate) struct FunctionState {
    app: Arc<str>,
    function: Arc<str>,
    first_ms: i64,
    /// The latest event time seen; time never goes backwards for a function (events of one
    /// function may be committed slightly out of their `at_ms` order).
    pub(crate) now_ms: i64,
    /// Added to events' `at_ms` since the server's clock was last set back (see
    /// [`CLOCK_STEP_MS`]).
    skew_ms: i64,
    events: u64,
    destinations: Baseline,
    callees: Baseline,
    rates: Rates,
    /// The function's recent events: (id, hash of their invocation id), newest last.
    recent: VecDeque<(i64, u64)>,
    started: VecDeque<u64>,
    invocation: LastHash,
    version: LastHash,
}

/// The hash of the last string hashed: a function's consecutive events mostly share their
/// invocation and always their version, so most events hash neither again.
#[derive(Debug, Default)]
struct LastHash(Option<(Arc<str>, u64)>);

impl LastHash {
    /// `0` for none.
    fn hash(&mut self, text: Option<&Arc<str>>) -> u64 {
        let Some(text) = text else { return 0 };
        if let Some((last, hashed)) = &self.0
            && (Arc::ptr_eq(last, text) || **last == **text)
        {
            return *hashed;
        }
        let hashed = hash(text);
        self.0 = Some((text.clone(), hashed));
        hashed
    }
}

/// What is being looked at, for the detection's wording.
struct Subject<'e> {
    event: &'e AuditEvent,
    id: i64,
}

impl FunctionState {
    pub(crate) fn is(&self, app: &str, function: &str) -> bool {
        *self.app == *app && *self.function == *function
    }

    pub(crate) fn new(app: Arc<str>, function: Arc<str>, clock: Clock, at_ms: i64) -> Self {
        Self {
            app,
            function,
            first_ms: at_ms,
            now_ms: at_ms,
            skew_ms: 0,
            events: 0,
            destinations: Baseline::default(),
            callees: Baseline::default(),
            rates: Rates::new(clock, at_ms),
            recent: VecDeque::new(),
            started: VecDeque::new(),
            invocation: LastHash::default(),
            version: LastHash::default(),
        }
    }

    /// Judges one event of this function; pushes what it shows onto `out`.
    pub(crate) fn observe(
        &mut self,
        judge: &Judge<'_>,
        id: i64,
        event: &AuditEvent,
        reading: Reading<'_>,
        out: &mut Vec<Detection>,
    ) {
        let config = judge.config;
        let clock = judge.clock;
        let mut at = event.at_ms.saturating_add(self.skew_ms);
        let step = CLOCK_STEP_MS.max(clock.window_ms.saturating_mul(10));
        if at < self.now_ms.saturating_sub(step) {
            // The server's clock was set back: carry on from where this function's time was,
            // rather than counting everything from now on into one frozen slice.
            self.skew_ms = self.skew_ms.saturating_add(self.now_ms.saturating_sub(at));
            at = self.now_ms;
        }
        self.now_ms = self.now_ms.max(at);
        let now = self.now_ms;
        self.events = self.events.saturating_add(1);
        let invocation = self.invocation.hash(event.invocation_id.as_ref());
        if self.recent.len() >= config.max_evidence {
            self.recent.pop_front();
        }
        self.recent.push_back((id, invocation));
        if reading.invocation_start && invocation != 0 {
            if self.started.len() >= STARTED_REMEMBERED {
                self.started.pop_front();
            }
            self.started.push_back(invocation);
        }
        let windows = now.saturating_sub(self.first_ms) / clock.window_ms;
        let warm = self.events > config.warmup_events
            && u64::try_from(windows).unwrap_or(0) >= config.warmup_windows;
        let version = self.version.hash(event.version_id.as_ref());
        let cooldown = i64::try_from(config.cooldown_ms).unwrap_or(i64::MAX);
        let subject = Subject { event, id };
        self.rates.advance(clock, now);
        if reading.invocation_start {
            self.rates.starts.add(id, now, 1, config.max_evidence);
        }
        let invocations = Some(Invocations {
            count: self.rates.starts.count(),
            usual: self.rates.starts.mean(),
        });

        if let Some(host) = reading.destination {
            let verdict =
                self.destinations
                    .observe(&host, warm, version, now, cooldown, config.max_set_size);
            if verdict == Verdict::New && config.enabled(crate::NEW_EGRESS_DESTINATION) {
                let summary = format!(
                    "{} {} {host}{}, not in its baseline of {} learned over {}{}",
                    self.name(),
                    if event.outcome == Outcome::Denied {
                        "tried to reach"
                    } else {
                        "called"
                    },
                    if event.outcome == Outcome::Denied {
                        " (refused)"
                    } else {
                        ""
                    },
                    plural(self.destinations.len() as u64, "destination"),
                    plural(self.events, "event"),
                    version_note(event),
                );
                out.push(self.detection(
                    crate::NEW_EGRESS_DESTINATION,
                    Severity::High,
                    &subject,
                    summary,
                    self.invocation_evidence(invocation, id),
                ));
            }
        }

        if let Some(callee) = reading.callee {
            let verdict =
                self.callees
                    .observe(&callee, warm, version, now, cooldown, config.max_set_size);
            if verdict == Verdict::New && config.enabled(crate::NEW_CALLEE) {
                let summary = format!(
                    "{} {} {callee}, a function it never called before: its baseline has {} learned over {}{}",
                    self.name(),
                    if event.outcome == Outcome::Denied {
                        "tried to invoke (refused)"
                    } else {
                        "invoked"
                    },
                    plural(self.callees.len() as u64, "callee"),
                    plural(self.events, "event"),
                    version_note(event),
                );
                out.push(self.detection(
                    crate::NEW_CALLEE,
                    Severity::Medium,
                    &subject,
                    summary,
                    self.invocation_evidence(invocation, id),
                ));
            }
        }

        if let Some(refused) = reading.refused {
            let own = match refused {
                Refused::Own => true,
                Refused::Caller => false,
                Refused::Request => invocation != 0 && self.started.contains(&invocation),
            };
            let (rate, severity, whose) = if own {
                (
                    &mut self.rates.denied_own,
                    Severity::High,
                    "its own capability uses",
                )
            } else {
                (
                    &mut self.rates.denied_callers,
                    Severity::Medium,
                    "requests from its callers",
                )
            };
            rate.add(id, now, reading.refusals, config.max_evidence);
            if let Some(spike) = check(
                rate,
                judge,
                warm,
                now,
                crate::DENIED_SPIKE,
                config.denied_floor,
                invocations,
            ) {
                let evidence = rate.evidence(clock, now);
                let summary = format!(
                    "{} was refused {} in the last {} ({whose}), against a baseline of {}",
                    self.name(),
                    plural(u64::from(spike.count), "time"),
                    seconds(clock.window_ms),
                    baseline(&spike, config.denied_floor),
                );
                out.push(self.detection(
                    crate::DENIED_SPIKE,
                    severity,
                    &subject,
                    summary,
                    evidence,
                ));
            }
        }

        if reading.secret_read {
            let rate = &mut self.rates.secret_reads;
            rate.add(id, now, 1, config.max_evidence);
            if let Some(spike) = check(
                rate,
                judge,
                warm,
                now,
                crate::SECRET_READ_BURST,
                config.secret_read_floor,
                invocations,
            ) {
                let evidence = rate.evidence(clock, now);
                let summary = format!(
                    "{} read secrets {} in the last {}, against a baseline of {}",
                    self.name(),
                    plural(u64::from(spike.count), "time"),
                    seconds(clock.window_ms),
                    baseline(&spike, config.secret_read_floor),
                );
                out.push(self.detection(
                    crate::SECRET_READ_BURST,
                    Severity::High,
                    &subject,
                    summary,
                    evidence,
                ));
            }
        }

        if let Some(failure) = reading.invocation_end {
            self.rates.ends.add(id, now, 1, config.max_evidence);
            let ended = self.rates.ends.count();
            let which = match failure {
                None => None,
                Some(Failure::Error) => Some((
                    &mut self.rates.errors,
                    crate::ERROR_SPIKE,
                    config.error_floor,
                    "failed",
                )),
                Some(Failure::Timeout) => Some((
                    &mut self.rates.timeouts,
                    crate::TIMEOUT_SPIKE,
                    config.timeout_floor,
                    "timed out",
                )),
            };
            if let Some((rate, detector, floor, verb)) = which {
                rate.add(id, now, 1, config.max_evidence);
                let ratio = f64::from(rate.count()) / f64::from(ended.max(1));
                if ratio >= config.min_failure_ratio
                    && let Some(spike) = check(rate, judge, warm, now, detector, floor, None)
                {
                    let evidence = rate.evidence(clock, now);
                    let summary = format!(
                        "{} {verb} {} of {} invocations in the last {} ({:.0}%), against a baseline of {}",
                        self.name(),
                        spike.count,
                        ended,
                        seconds(clock.window_ms),
                        ratio * 100.0,
                        baseline(&spike, floor),
                    );
                    out.push(self.detection(
                        detector,
                        Severity::Medium,
                        &subject,
                        summary,
                        evidence,
                    ));
                }
            }
        }

        if let Some(grant) = reading.privileged {
            let rate = match grant {
                Grant::KvWrite => &mut self.rates.kv_writes,
                Grant::PrivateEgress => &mut self.rates.private_egress,
            };
            rate.add(id, now, 1, config.max_evidence);
            if let Some(spike) = check(
                rate,
                judge,
                warm,
                now,
                crate::PRIVILEGED_GRANT_USE,
                config.privileged_floor,
                invocations,
            ) {
                let evidence = rate.evidence(clock, now);
                let summary = format!(
                    "{} used its {} grant {} in the last {}, against a baseline of {}",
                    self.name(),
                    grant.name(),
                    plural(u64::from(spike.count), "time"),
                    seconds(clock.window_ms),
                    baseline(&spike, config.privileged_floor),
                );
                out.push(self.detection(
                    crate::PRIVILEGED_GRANT_USE,
                    Severity::Medium,
                    &subject,
                    summary,
                    evidence,
                ));
            }
        }
    }

    fn name(&self) -> String {
        format!("{}/{}", self.app, self.function)
    }

    /// The recent events of the offending event's invocation, the offending one last.
    fn invocation_evidence(&self, invocation: u64, id: i64) -> Vec<i64> {
        if invocation == 0 {
            return vec![id];
        }
        self.recent
            .iter()
            .filter(|(_, of)| *of == invocation)
            .map(|(id, _)| *id)
            .collect()
    }

    fn detection(
        &self,
        detector: &'static str,
        severity: Severity,
        subject: &Subject<'_>,
        summary: String,
        mut evidence: Vec<i64>,
    ) -> Detection {
        // The offending event is always there, and last.
        if evidence.last() != Some(&subject.id) {
            evidence.retain(|id| *id != subject.id);
            evidence.push(subject.id);
        }
        Detection {
            detector,
            severity,
            app: self.app.to_string(),
            function: self.function.to_string(),
            version_id: subject.event.version_id.as_deref().map(str::to_string),
            summary,
            evidence,
            offending_at_ms: subject.event.at_ms,
        }
    }
}

/// The function's invocations started over the last window, and per window usually.
#[derive(Debug, Clone, Copy)]
struct Invocations {
    count: u32,
    usual: f64,
}

/// Whether `rate`, just counted into, is a spike that may be reported now: past warm-up, at or
/// above its floor, `z_threshold` deviations above its baseline, out of proportion to the
/// function's invocations when they are given (so more traffic doing the usual is not a spike),
/// and out of its cooldown.
fn check(
    rate: &mut Rate,
    judge: &Judge<'_>,
    warm: bool,
    now: i64,
    detector: &str,
    floor: u32,
    invocations: Option<Invocations>,
) -> Option<Spike> {
    let config = judge.config;
    if !warm || !config.enabled(detector) {
        return None;
    }
    let spike = rate.spike(config.min_std_dev);
    if spike.count < floor || spike.z < config.z_threshold {
        return None;
    }
    // A function invoked less than about once per window has no usual share to compare with.
    if let Some(invocations) = invocations
        && invocations.usual >= 0.5
    {
        let usual_share = spike.mean / invocations.usual;
        let share = f64::from(spike.count) / f64::from(invocations.count.max(1));
        if share < config.min_per_invocation_factor * usual_share {
            return None;
        }
    }
    let cooldown = i64::try_from(config.cooldown_ms).unwrap_or(i64::MAX);
    if rate
        .last_fired_ms
        .is_some_and(|at| now.saturating_sub(at) < cooldown)
    {
        return None;
    }
    rate.fired(now);
    Some(spike)
}

fn hash(text: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    // 0 means "none" to the callers.
    hasher.finish().max(1)
}

fn plural(count: u64, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

fn seconds(ms: i64) -> String {
    if ms % 1_000 == 0 {
        format!("{} s", ms / 1_000)
    } else {
        format!("{:.1} s", ms as f64 / 1_000.0)
    }
}

fn baseline(spike: &Spike, floor: u32) -> String {
    format!(
        "{:.1} ± {:.1} per window (z = {:.1}, floor {floor})",
        spike.mean, spike.std_dev, spike.z
    )
}

fn version_note(event: &AuditEvent) -> String {
    event
        .version_id
        .as_deref()
        .map(|version| format!(" (version {version})"))
        .unwrap_or_default()
}
