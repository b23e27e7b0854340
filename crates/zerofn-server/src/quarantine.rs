//! Quarantine's enforcement state: which functions may not serve (the in-memory copy of the
//! store's `quarantines`, checked on every invocation) and the invocations running now, per
//! function, with the handles that stop them and revoke their credentials.
//!
//! **Invariant:** an invocation registers as running *before* it checks the quarantine, and a
//! quarantine is set *before* the running invocations are stopped, so every invocation either
//! sees the quarantine or is stopped by it.

use crate::problem::Problem;
use http::StatusCode;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use zerofn_runtime::StopSignal;
use zerofn_store::QuarantineRecord;

/// Seconds a refused caller is asked to wait: a quarantine lasts until an operator acts.
const RETRY_AFTER_SECS: u32 = 60;

type FunctionKey = (Arc<str>, Arc<str>);

/// The functions in quarantine, by app and function.
#[derive(Debug, Default)]
pub(crate) struct Quarantines {
    by_function: RwLock<HashMap<FunctionKey, QuarantineRecord>>,
    /// How many there are: the request path reads this alone while there are none.
    count: AtomicUsize,
}

impl Quarantines {
    /// The quarantine `function` of `app` is in, if any.
    pub(crate) fn get(&self, app: &str, function: &str) -> Option<QuarantineRecord> {
        if self.count.load(Ordering::SeqCst) == 0 {
            return None;
        }
        self.read()
            .get(&(Arc::from(app), Arc::from(function)))
            .cloned()
    }

    /// Puts a function in quarantine; false if it already was (the first record stays).
    pub(crate) fn insert(&self, record: QuarantineRecord) -> bool {
        let mut map = self.write();
        let key = (
            Arc::from(record.app.as_str()),
            Arc::from(record.function.as_str()),
        );
        if map.contains_key(&key) {
            return false;
        }
        map.insert(key, record);
        self.count.store(map.len(), Ordering::SeqCst);
        true
    }

    /// Takes a function out of quarantine.
    pub(crate) fn remove(&self, app: &str, function: &str) -> Option<QuarantineRecord> {
        let mut map = self.write();
        let removed = map.remove(&(Arc::from(app), Arc::from(function)));
        self.count.store(map.len(), Ordering::SeqCst);
        removed
    }

    /// Every quarantine, by app and function.
    pub(crate) fn all(&self) -> Vec<QuarantineRecord> {
        let mut all: Vec<_> = self.read().values().cloned().collect();
        all.sort_by(|a, b| (&a.app, &a.function).cmp(&(&b.app, &b.function)));
        all
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<FunctionKey, QuarantineRecord>> {
        self.by_function
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<FunctionKey, QuarantineRecord>> {
        self.by_function
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The refusal of an invocation of a quarantined function (rule `function-quarantined`).
pub(crate) fn refusal(record: &QuarantineRecord) -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "function-quarantined",
        "Function quarantined",
        format!(
            "Function `{}` of app `{}` is quarantined by incident {} and serves nothing until an operator releases it: see `zerofn incidents show {}`, then `zerofn release {}/{}`.",
            record.function,
            record.app,
            record.incident_id,
            record.incident_id,
            record.app,
            record.function
        ),
    )
    .with("incident", record.incident_id.clone())
    .with("since_ms", record.since_ms)
    .retry_after(RETRY_AFTER_SECS)
}

/// What the response loop can do to one running invocation.
#[derive(Debug, Clone)]
pub(crate) struct Running {
    pub(crate) version_id: Arc<str>,
    pub(crate) stop: StopSignal,
    /// Once set, its `wasi:config` reads are refused (see [`crate::secrets`]).
    pub(crate) secrets_revoked: Arc<AtomicBool>,
}

/// The invocations running now, per function.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    by_function: Mutex<HashMap<FunctionKey, HashMap<Arc<str>, Running>>>,
}

impl InFlight {
    /// Registers a running invocation until the returned guard is dropped (with the sandbox).
    pub(crate) fn register(
        self: &Arc<Self>,
        app: &Arc<str>,
        function: &Arc<str>,
        invocation_id: &Arc<str>,
        running: Running,
    ) -> Registration {
        let key = (app.clone(), function.clone());
        self.lock()
            .entry(key.clone())
            .or_default()
            .insert(invocation_id.clone(), running);
        Registration {
            in_flight: Arc::downgrade(self),
            key,
            invocation_id: invocation_id.clone(),
        }
    }

    /// The running invocations of `function` of `app`, by invocation id.
    pub(crate) fn of(&self, app: &str, function: &str) -> Vec<(Arc<str>, Running)> {
        self.lock()
            .get(&(Arc::from(app), Arc::from(function)))
            .map(|running| {
                running
                    .iter()
                    .map(|(id, r)| (id.clone(), r.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FunctionKey, HashMap<Arc<str>, Running>>> {
        self.by_function
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Removes its invocation from [`InFlight`] when dropped.
#[derive(Debug)]
pub(crate) struct Registration {
    in_flight: std::sync::Weak<InFlight>,
    key: FunctionKey,
    invocation_id: Arc<str>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let Some(in_flight) = self.in_flight.upgrade() else {
            return;
        };
        let mut map = in_flight.lock();
        if let Some(running) = map.get_mut(&self.key) {
            running.remove(&self.invocation_id);
            if running.is_empty() {
                map.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invocation_is_running_until_its_registration_goes() {
        let in_flight = Arc::new(InFlight::default());
        let (app, function) = (Arc::from("a"), Arc::from("f"));
        let running = Running {
            version_id: "v".into(),
            stop: StopSignal::new(),
            secrets_revoked: Arc::default(),
        };
        let first = in_flight.register(&app, &function, &Arc::from("1"), running.clone());
        let second = in_flight.register(&app, &function, &Arc::from("2"), running);
        assert_eq!(in_flight.of("a", "f").len(), 2);
        assert!(in_flight.of("a", "g").is_empty());
        drop(first);
        assert_eq!(&*in_flight.of("a", "f")[0].0, "2");
        drop(second);
        assert!(in_flight.lock().is_empty(), "nothing left behind");
    }

    #[test]
    fn a_quarantine_is_found_until_removed() {
        let quarantines = Quarantines::default();
        assert!(quarantines.get("a", "f").is_none());
        let record = QuarantineRecord {
            app: "a".into(),
            function: "f".into(),
            incident_id: "inc-1".into(),
            since_ms: 1,
        };
        assert!(quarantines.insert(record.clone()));
        assert!(!quarantines.insert(record.clone()));
        assert_eq!(quarantines.get("a", "f"), Some(record.clone()));
        assert!(quarantines.get("a", "g").is_none());
        let problem = refusal(&record);
        assert_eq!(problem.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(problem.detail.contains("inc-1"), "{}", problem.detail);
        assert!(problem.detail.contains("zerofn release a/f"));
        assert_eq!(quarantines.remove("a", "f"), Some(record));
        assert!(quarantines.get("a", "f").is_none());
    }
}
