//! A bounded set a function's baseline learns (its destinations, its callees), and the unseen
//! members it was already reported for.

use std::collections::{HashMap, HashSet};

/// What a set says about one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Known, or learned now (during warm-up).
    Known,
    /// Unseen, and already reported for this version (or within the cooldown).
    Suppressed,
    /// Unseen: report it.
    New,
}

#[derive(Debug, Clone, Copy)]
struct Flag {
    version: u64,
    at_ms: i64,
}

#[derive(Debug, Default)]
pub(crate) struct Baseline {
    known: HashSet<Box<str>>,
    /// Unseen members reported, with the version that used them and when. They stay out of
    /// `known`: a reported destination is never learned as normal by being used again.
    flagged: HashMap<Box<str>, Flag>,
}

impl Baseline {
    pub(crate) fn len(&self) -> usize {
        self.known.len()
    }

    /// Looks at one use of `member` by `version` at `at_ms`. During warm-up it is learned
    /// (while the set has room); after it, an unseen member is new unless it was reported for
    /// the same version, or less than `cooldown_ms` ago.
    pub(crate) fn observe(
        &mut self,
        member: &str,
        warm: bool,
        version: u64,
        at_ms: i64,
        cooldown_ms: i64,
        cap: usize,
    ) -> Verdict {
        if self.known.contains(member) {
            return Verdict::Known;
        }
        if !warm {
            // At the cap the baseline stops growing; what it could not learn is reported
            // after warm-up like anything unseen.
            if self.known.len() < cap {
                self.known.insert(member.into());
            }
            return Verdict::Known;
        }
        if let Some(flag) = self.flagged.get_mut(member) {
            if flag.version == version || at_ms.saturating_sub(flag.at_ms) < cooldown_ms {
                return Verdict::Suppressed;
            }
            *flag = Flag { version, at_ms };
            return Verdict::New;
        }
        if self.flagged.len() >= cap {
            // The oldest report makes room; if it recurs it may be reported once more.
            if let Some(oldest) = self
                .flagged
                .iter()
                .min_by_key(|(_, flag)| flag.at_ms)
                .map(|(member, _)| member.clone())
            {
                self.flagged.remove(&oldest);
            }
        }
        self.flagged.insert(member.into(), Flag { version, at_ms });
        Verdict::New
    }

    #[cfg(test)]
    pub(crate) fn sizes(&self) -> (usize, usize) {
        (self.known.len(), self.flagged.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_in_warm_up_then_reports_once_per_version() {
        let mut set = Baseline::default();
        assert_eq!(set.observe("a", false, 1, 0, 1_000, 4), Verdict::Known);
        assert_eq!(set.observe("a", true, 1, 10, 1_000, 4), Verdict::Known);
        assert_eq!(set.observe("b", true, 1, 20, 1_000, 4), Verdict::New);
        assert_eq!(set.observe("b", true, 1, 30, 1_000, 4), Verdict::Suppressed);
        assert_eq!(
            set.observe("b", true, 1, 1_000_000, 1_000, 4),
            Verdict::Suppressed,
            "the same version stays reported"
        );
        assert_eq!(
            set.observe("b", true, 2, 500, 1_000_000, 4),
            Verdict::Suppressed,
            "a new version within the cooldown is quiet"
        );
        assert_eq!(
            set.observe("b", true, 2, 2_000_000, 1_000, 4),
            Verdict::New,
            "a new version using it after the cooldown is reported again"
        );
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn stays_within_its_cap() {
        let mut set = Baseline::default();
        for i in 0..100 {
            set.observe(&format!("learn{i}"), false, 1, i, 10, 8);
        }
        for i in 0..100 {
            assert_eq!(
                set.observe(&format!("new{i}"), true, 1, 1_000 + i, 10, 8),
                Verdict::New
            );
        }
        assert_eq!(set.sizes(), (8, 8));
    }
}
