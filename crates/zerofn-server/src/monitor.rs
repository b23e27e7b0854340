//! The monitor: the task that closes the loop. It follows the committed audit stream (through
//! `committed::Follower`, which reads what it missed from the store), feeds every event to the detectors and
//! opens an incident, with its automatic response, for each detection.
//!
//! **Invariant:** what the response loop itself causes (incidents, quarantines, releases,
//! revocations, alerts, its rollbacks, the refusals and stops a quarantine produces) is never
//! fed back to the detectors, so a response cannot trigger further responses.

use crate::committed::Follower;
use crate::platform::Platform;
use crate::response::MONITOR_CALLER;
use std::sync::Arc;
use tokio::sync::watch;
use zerofn_audit::{AuditEvent, CommittedEvent, EventKind};
use zerofn_detect::{Detection, Detectors};
use zerofn_store::AuditQuery;

/// How many recent events rebuild the detectors' baselines at start.
const HISTORY_EVENTS: u32 = 10_000;
/// How long the monitor waits before reading the store again after it failed.
const RETRY_AFTER_STORE_ERROR: std::time::Duration = std::time::Duration::from_millis(500);

/// The monitor, following the committed stream; [`Monitor::run`] drives it.
pub(crate) struct Monitor {
    platform: Arc<Platform>,
    events: Follower,
    detectors: Detectors,
    /// The id of the last stored event when the monitor started: history up to it teaches the
    /// baselines, what comes after it is observed.
    history_ends: i64,
}

impl Monitor {
    /// Remembers where the stored history ends and follows the committed stream from there
    /// (what is committed meanwhile is read from the store by the follower).
    ///
    /// Fails only on thresholds `[detection]` should have refused already.
    pub(crate) async fn start(
        platform: Arc<Platform>,
        detection: zerofn_detect::DetectorConfig,
    ) -> Result<Self, MonitorError> {
        let detectors = Detectors::with_config(detection)?;
        let history_ends = platform
            .store()
            .audit_events(&AuditQuery {
                limit: Some(1),
                ..Default::default()
            })
            .ok()
            .and_then(|rows| rows.last().map(|row| row.id))
            .unwrap_or(0);
        let events = Follower::start(
            platform.audit(),
            platform.store().clone(),
            Some(history_ends),
            AuditQuery::default(),
        )
        .await?;
        Ok(Self {
            platform,
            events,
            detectors,
            history_ends,
        })
    }

    /// Runs until the server stops.
    pub(crate) async fn run(mut self, mut stopped: watch::Receiver<bool>) {
        self.learn_history();
        loop {
            tokio::select! {
                next = self.events.next() => match next {
                    Ok(Some(followed)) => {
                        if let Some(event) = followed.into_committed() {
                            self.observe(&event);
                        }
                    }
                    Ok(None) => return,
                    Err(error) => {
                        // The follower resumes from its cursor on the next call: nothing is
                        // skipped, only delayed.
                        tracing::error!(%error, "monitor: the audit stream could not be read; retrying");
                        tokio::time::sleep(RETRY_AFTER_STORE_ERROR).await;
                    }
                },
                _ = stopped.changed() => {
                    if *stopped.borrow() {
                        return;
                    }
                }
            }
        }
    }

    /// Rebuilds the baselines from the stored history, without opening incidents for it.
    fn learn_history(&mut self) {
        let history = match self.platform.store().audit_events(&AuditQuery {
            limit: Some(HISTORY_EVENTS),
            ..Default::default()
        }) {
            Ok(rows) => rows,
            Err(error) => {
                tracing::error!(%error, "monitor: stored history not read; baselines start empty");
                return;
            }
        };
        for row in history.iter().filter(|row| row.id <= self.history_ends) {
            if let Some(event) = crate::committed::stored_event(row)
                && !caused_by_response(&event.event)
            {
                self.detectors.learn(&event);
            }
        }
    }

    /// Feeds one event to the detectors and responds to what they find.
    fn observe(&mut self, event: &CommittedEvent) {
        if caused_by_response(&event.event) {
            return;
        }
        for detection in self.detectors.observe(event) {
            self.respond(detection);
        }
    }

    /// Opens the incident in its own task: a rollback or a slow store never holds up detection.
    fn respond(&self, detection: Detection) {
        let platform = self.platform.clone();
        tokio::spawn(async move {
            let detector = detection.detector;
            if let Err(error) = platform.open_incident(detection).await {
                tracing::error!(%error, detector, "incident not opened");
            }
        });
    }
}

/// Why the monitor could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MonitorError {
    #[error(transparent)]
    Detection(#[from] zerofn_detect::ConfigError),
    #[error(transparent)]
    Follow(#[from] crate::committed::FollowError),
}

/// Whether the response loop caused `event` (directly, or as the immediate consequence of a
/// quarantine or revocation).
pub(crate) fn caused_by_response(event: &AuditEvent) -> bool {
    let reason = event.reason.as_deref();
    match event.kind {
        EventKind::IncidentOpened
        | EventKind::IncidentResolved
        | EventKind::Quarantine
        | EventKind::Release
        | EventKind::LeaseRevoked
        | EventKind::Alert => true,
        EventKind::RequestRefused => reason == Some("function-quarantined"),
        EventKind::InvocationEnd => reason == Some("stopped"),
        EventKind::SecretRead => reason == Some("lease-revoked"),
        _ => event.caller.as_deref() == Some(MONITOR_CALLER),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerofn_audit::Outcome;

    #[test]
    fn what_the_response_causes_is_not_observed() {
        let own = [
            AuditEvent::new(EventKind::Quarantine, Outcome::Success),
            AuditEvent::new(EventKind::Alert, Outcome::Failure),
            AuditEvent::new(EventKind::RequestRefused, Outcome::Denied)
                .reason("function-quarantined"),
            AuditEvent::new(EventKind::InvocationEnd, Outcome::Failure).reason("stopped"),
            AuditEvent::new(EventKind::SecretRead, Outcome::Denied).reason("lease-revoked"),
            AuditEvent::new(EventKind::Rollback, Outcome::Success).caller(MONITOR_CALLER),
        ];
        for event in own {
            assert!(caused_by_response(&event), "{event:?}");
        }
        let theirs = [
            AuditEvent::new(EventKind::Rollback, Outcome::Success).caller("operator:alice"),
            AuditEvent::new(EventKind::RequestRefused, Outcome::Denied).reason("no-route"),
            AuditEvent::new(EventKind::InvocationEnd, Outcome::Failure).reason("timeout"),
            AuditEvent::new(EventKind::EgressDenied, Outcome::Denied),
        ];
        for event in theirs {
            assert!(!caused_by_response(&event), "{event:?}");
        }
    }
}
