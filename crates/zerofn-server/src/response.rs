//! Automatic response: what the platform does when a detection opens an incident. The
//! operator's `[response]` section maps each severity to actions (`quarantine`,
//! `revoke-leases`, `rollback`, `alert`); each action is an audit event and is recorded on the
//! incident with the time it was in force. Also the operator's side: resolving incidents and
//! releasing quarantined functions.
//!
//! Events this module records carry the caller [`MONITOR_CALLER`], and the monitor does not
//! feed them (nor their direct consequences) back to the detectors.

use crate::platform::Platform;
use crate::problem::Problem;
use crate::quarantine::Running;
use http::StatusCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use zerofn_audit::{AuditEvent, EventKind, Outcome};
use zerofn_detect::{Detection, Severity};
use zerofn_store::{IncidentAction, IncidentRecord, QuarantineRecord, StoreError};

/// The `caller` of every event the response loop records.
pub const MONITOR_CALLER: &str = "monitor";

/// One automatic response action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// The function stops serving: new invocations get 503 `function-quarantined` naming the
    /// incident, running ones are stopped, calls to it from other functions are refused.
    Quarantine,
    /// Running invocations of the function lose their tokens and their secret leases (further
    /// `wasi:config` reads are refused).
    RevokeLeases,
    /// The app goes back to its previous version when the incident implicates the active one.
    Rollback,
    /// The incident is posted to the webhook as a CloudEvent.
    Alert,
}

impl Action {
    pub const ALL: [Action; 4] = [
        Action::Quarantine,
        Action::RevokeLeases,
        Action::Rollback,
        Action::Alert,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Quarantine => "quarantine",
            Action::RevokeLeases => "revoke-leases",
            Action::Rollback => "rollback",
            Action::Alert => "alert",
        }
    }

    /// The action written as `name`, or a message listing the ones there are.
    pub fn parse(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == name)
            .ok_or_else(|| {
                format!(
                    "`{name}` is not a response action; use {}",
                    Self::ALL
                        .iter()
                        .map(|a| format!("\"{}\"", a.as_str()))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }
}

/// The actions taken for each severity, and where alerts go (`[response]`).
#[derive(Debug, Clone)]
pub struct ResponsePolicy {
    pub low: Vec<Action>,
    pub medium: Vec<Action>,
    pub high: Vec<Action>,
    pub critical: Vec<Action>,
    pub webhook: Option<crate::alert::Webhook>,
}

impl Default for ResponsePolicy {
    /// The documented defaults without a webhook (`alert` needs one).
    fn default() -> Self {
        Self::defaults(false)
    }
}

impl ResponsePolicy {
    /// The documented defaults: `critical` quarantine, revoke-leases, rollback, alert; `high`
    /// quarantine, revoke-leases, alert; `medium` alert; `low` nothing. `alert` is left out
    /// when no webhook is configured.
    pub fn defaults(alerting: bool) -> Self {
        use Action::*;
        let keep = |actions: &[Action]| -> Vec<Action> {
            actions
                .iter()
                .copied()
                .filter(|a| alerting || *a != Alert)
                .collect()
        };
        Self {
            low: Vec::new(),
            medium: keep(&[Alert]),
            high: keep(&[Quarantine, RevokeLeases, Alert]),
            critical: keep(&[Quarantine, RevokeLeases, Rollback, Alert]),
            webhook: None,
        }
    }

    /// The actions for `severity`.
    pub fn actions(&self, severity: Severity) -> &[Action] {
        match severity {
            Severity::Low => &self.low,
            Severity::Medium => &self.medium,
            Severity::High => &self.high,
            Severity::Critical => &self.critical,
        }
    }
}

/// Why an incident or quarantine operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum IncidentError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "function `{function}` of app `{app}` is not quarantined (see `zerofn incidents list --status open`)"
    )]
    NotQuarantined { app: String, function: String },
    #[error("{0}")]
    InvalidRequest(String),
}

impl IncidentError {
    /// The stable rule id.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Store(StoreError::UnknownIncident(_)) => "unknown-incident",
            Self::Store(StoreError::IncidentAlreadyResolved { .. }) => "incident-already-resolved",
            Self::Store(_) => "store-error",
            Self::NotQuarantined { .. } => "not-quarantined",
            Self::InvalidRequest(_) => "invalid-incident-request",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Store(StoreError::UnknownIncident(_)) | Self::NotQuarantined { .. } => {
                StatusCode::NOT_FOUND
            }
            Self::Store(StoreError::IncidentAlreadyResolved { .. }) => StatusCode::CONFLICT,
            Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
        }
    }
}

impl From<IncidentError> for Problem {
    fn from(error: IncidentError) -> Self {
        Problem::new(error.status(), error.code(), "Refused", error.to_string())
    }
}

/// How an operator judged an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resolution {
    TruePositive,
    FalsePositive,
}

impl Resolution {
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::TruePositive => "true-positive",
            Resolution::FalsePositive => "false-positive",
        }
    }
}

impl Platform {
    /// Opens an incident for `detection` and applies the actions its severity is configured
    /// with. This is what the monitor does with each detection (and what tests call directly).
    /// Returns the incident as stored once the synchronous actions are in force (an alert is
    /// sent in the background and recorded when it is over).
    pub async fn open_incident(
        &self,
        detection: Detection,
    ) -> Result<IncidentRecord, IncidentError> {
        let id = format!("inc-{}", uuid::Uuid::now_v7());
        let opened_ms = zerofn_store::now_ms();
        let incident = IncidentRecord {
            id: id.clone(),
            app: detection.app.clone(),
            function: detection.function.clone(),
            version_id: detection.version_id.clone(),
            detector: detection.detector.to_string(),
            severity: detection.severity.as_str().to_string(),
            summary: detection.summary.clone(),
            evidence: detection.evidence.clone(),
            offending_ms: detection.offending_at_ms,
            opened_ms,
            actions: Vec::new(),
            responded_ms: None,
            status: "open".into(),
            resolution: None,
            resolved_ms: None,
            resolved_by: None,
            note: None,
        };
        self.store().open_incident(&incident)?;
        self.metrics().incident_opened(
            detection.detector,
            detection.severity.as_str(),
            opened_ms - detection.offending_at_ms,
        );
        let mut event = AuditEvent::new(EventKind::IncidentOpened, Outcome::Success)
            .reason(detection.detector)
            .function(detection.app.as_str(), detection.function.as_str())
            .caller(MONITOR_CALLER)
            .detail("incident", id.clone())
            .detail("detector", detection.detector)
            .detail("severity", detection.severity.as_str())
            .detail("evidence", detection.evidence.clone())
            .detail("summary", detection.summary.clone())
            .detail("offending_ms", detection.offending_at_ms);
        if let Some(version) = &detection.version_id {
            event = event.version(version.as_str());
        }
        self.audit().record(event).await;
        self.respond(&incident, detection.severity).await;
        Ok(self.store().incident(&id)?.unwrap_or(incident))
    }

    /// Applies the actions configured for `severity`. Rollback goes first when configured: if
    /// it applies, the implicated version no longer serves and quarantine is not needed; if it
    /// does not, quarantine (when configured) is the fallback.
    async fn respond(&self, incident: &IncidentRecord, severity: Severity) {
        let policy = self.response_policy();
        let actions = policy.actions(severity);
        let mut responded = false;
        let mut quarantine = actions.contains(&Action::Quarantine);
        if actions.contains(&Action::Rollback) {
            let (action, rolled_back) = self.roll_back_implicated(incident, quarantine).await;
            responded |= rolled_back;
            quarantine &= !rolled_back;
            self.note_action(incident, action, rolled_back);
        }
        if quarantine {
            let action = self.quarantine_function(incident).await;
            responded = true;
            self.note_action(incident, action, true);
        } else if actions.contains(&Action::Quarantine) {
            self.note_action(
                incident,
                IncidentAction {
                    action: Action::Quarantine.as_str().into(),
                    outcome: "skipped".into(),
                    at_ms: zerofn_store::now_ms(),
                    detail: "not needed: the implicated version was rolled back".into(),
                },
                false,
            );
        }
        if actions.contains(&Action::RevokeLeases) {
            let action = self.revoke_leases(incident).await;
            responded = true;
            self.note_action(incident, action, true);
        }
        if actions.contains(&Action::Alert) {
            self.alert(incident, !responded);
        }
    }

    /// Records `action` on the incident (and in the metrics); the first one `in_force` sets
    /// the incident's time to respond.
    fn note_action(&self, incident: &IncidentRecord, action: IncidentAction, in_force: bool) {
        self.metrics()
            .response_action(&action.action, &action.outcome);
        match self
            .store()
            .record_incident_action(&incident.id, &action, in_force)
        {
            Ok(true) => self
                .metrics()
                .incident_responded(action.at_ms - incident.opened_ms),
            Ok(false) => {}
            Err(error) => {
                tracing::error!(%error, incident = %incident.id, "response action not recorded on the incident");
            }
        }
    }

    /// Puts the incident's function in quarantine and stops its running invocations.
    async fn quarantine_function(&self, incident: &IncidentRecord) -> IncidentAction {
        let record = QuarantineRecord {
            app: incident.app.clone(),
            function: incident.function.clone(),
            incident_id: incident.id.clone(),
            since_ms: zerofn_store::now_ms(),
        };
        // In force from here: the in-memory set is what every invocation checks.
        let fresh = self.quarantines().insert(record.clone());
        let stopped = self.stop_running(&incident.app, &incident.function, None);
        let at_ms = zerofn_store::now_ms();
        let in_force_by = match self.quarantines().get(&record.app, &record.function) {
            Some(existing) => existing.incident_id,
            None => record.incident_id.clone(),
        };
        let persisted = match self.store().quarantine(&record) {
            Ok(_) => String::new(),
            Err(error) => {
                tracing::error!(%error, "quarantine not persisted; it holds until the server stops");
                format!(" (not persisted: {error})")
            }
        };
        self.metrics()
            .set_quarantined(self.quarantines().all().len());
        let detail = if fresh {
            format!(
                "{}/{} quarantined; {} running invocation(s) stopped{persisted}",
                record.app,
                record.function,
                stopped.len()
            )
        } else {
            format!(
                "{}/{} was already quarantined by {in_force_by}; {} running invocation(s) stopped",
                record.app,
                record.function,
                stopped.len()
            )
        };
        self.audit()
            .record(
                AuditEvent::new(EventKind::Quarantine, Outcome::Success)
                    .reason(if fresh {
                        "incident"
                    } else {
                        "already-quarantined"
                    })
                    .function(record.app.as_str(), record.function.as_str())
                    .caller(MONITOR_CALLER)
                    .detail("incident", incident.id.clone())
                    .detail("quarantined_by", in_force_by)
                    .detail("stopped", stopped.clone()),
            )
            .await;
        if !stopped.is_empty() {
            self.record_revoked(incident, &stopped, "invocation-stopped")
                .await;
        }
        IncidentAction {
            action: Action::Quarantine.as_str().into(),
            outcome: "success".into(),
            at_ms,
            detail,
        }
    }

    /// Stops the running invocations of `function` of `app` (of `version` only, when given)
    /// and revokes their tokens at once (their leases go with their sandboxes); their ids.
    fn stop_running(&self, app: &str, function: &str, version: Option<&str>) -> Vec<String> {
        let mut stopped = Vec::new();
        for (id, running) in self.in_flight().of(app, function) {
            if version.is_some_and(|v| *running.version_id != *v) {
                continue;
            }
            running.stop.stop();
            running.secrets_revoked.store(true, Ordering::SeqCst);
            self.issuer().revoke(&id);
            stopped.push(id.to_string());
        }
        stopped.sort();
        stopped
    }

    /// Revokes the tokens and secret leases of the function's running invocations.
    async fn revoke_leases(&self, incident: &IncidentRecord) -> IncidentAction {
        let running: Vec<(Arc<str>, Running)> =
            self.in_flight().of(&incident.app, &incident.function);
        let mut revoked = Vec::new();
        for (id, running) in running {
            running.secrets_revoked.store(true, Ordering::SeqCst);
            self.issuer().revoke(&id);
            revoked.push(id.to_string());
        }
        revoked.sort();
        let at_ms = zerofn_store::now_ms();
        self.record_revoked(incident, &revoked, "revoke-leases")
            .await;
        IncidentAction {
            action: Action::RevokeLeases.as_str().into(),
            outcome: "success".into(),
            at_ms,
            detail: format!(
                "tokens and secret leases of {} running invocation(s) revoked",
                revoked.len()
            ),
        }
    }

    async fn record_revoked(&self, incident: &IncidentRecord, invocations: &[String], why: &str) {
        self.audit()
            .record(
                AuditEvent::new(EventKind::LeaseRevoked, Outcome::Success)
                    .reason(why)
                    .function(incident.app.as_str(), incident.function.as_str())
                    .caller(MONITOR_CALLER)
                    .detail("incident", incident.id.clone())
                    .detail("invocations", invocations.to_vec()),
            )
            .await;
    }

    /// Rolls the app back when the incident implicates its active version: the incident names
    /// a version, that version is the app's active one, and the app has an earlier version.
    /// Returns the action and whether the app was rolled back.
    async fn roll_back_implicated(
        &self,
        incident: &IncidentRecord,
        quarantine_fallback: bool,
    ) -> (IncidentAction, bool) {
        let skipped = |reason: String| {
            let fallback = if quarantine_fallback {
                "; quarantine applies instead"
            } else {
                ""
            };
            IncidentAction {
                action: Action::Rollback.as_str().into(),
                outcome: "skipped".into(),
                at_ms: zerofn_store::now_ms(),
                detail: format!("{reason}{fallback}"),
            }
        };
        let Some(version) = &incident.version_id else {
            return (
                skipped("not applicable: the incident names no version".into()),
                false,
            );
        };
        let active = self
            .routes()
            .app(&incident.app)
            .map(|app| app.version_id.clone());
        if active.as_deref() != Some(version.as_str()) {
            return (
                skipped(format!(
                    "not applicable: version {version} is not the active version of `{}`",
                    incident.app
                )),
                false,
            );
        }
        let earlier = self
            .store()
            .activations(&incident.app)
            .map(|history| history.iter().any(|a| a.version_id != *version))
            .unwrap_or(false);
        if !earlier {
            return (
                skipped(format!(
                    "not applicable: `{}` has no earlier version to roll back to",
                    incident.app
                )),
                false,
            );
        }
        match self
            .rollback_for_incident(&incident.app, &incident.id)
            .await
        {
            Ok(report) => {
                let at_ms = zerofn_store::now_ms();
                let stopped = self.stop_running(&incident.app, &incident.function, Some(version));
                if !stopped.is_empty() {
                    self.record_revoked(incident, &stopped, "invocation-stopped")
                        .await;
                }
                (
                    IncidentAction {
                        action: Action::Rollback.as_str().into(),
                        outcome: "success".into(),
                        at_ms,
                        detail: format!(
                            "`{}` rolled back from {version} to {}; {} running invocation(s) of the implicated version stopped",
                            incident.app,
                            report.version_id,
                            stopped.len()
                        ),
                    },
                    true,
                )
            }
            Err(error) => {
                let fallback = if quarantine_fallback {
                    "; quarantine applies instead"
                } else {
                    ""
                };
                (
                    IncidentAction {
                        action: Action::Rollback.as_str().into(),
                        outcome: "failure".into(),
                        at_ms: zerofn_store::now_ms(),
                        detail: format!("rollback refused: {error}{fallback}"),
                    },
                    false,
                )
            }
        }
    }

    /// Sends the alert in the background; `sets_response`: no earlier action was in force, so
    /// a delivered alert is the incident's response.
    fn alert(&self, incident: &IncidentRecord, sets_response: bool) {
        let Some(platform) = self.me() else {
            return;
        };
        let incident = incident.clone();
        tokio::spawn(async move {
            let policy = platform.response_policy();
            let (outcome, detail) = match &policy.webhook {
                None => ("skipped", "no `response.webhook` is configured".to_string()),
                Some(webhook) => {
                    let event = crate::alert::incident_event(&incident, platform.trust_domain());
                    match crate::alert::send(webhook, &event).await {
                        Ok(attempt) => (
                            "success",
                            format!("delivered to {} (attempt {attempt})", webhook.url),
                        ),
                        Err(error) => (
                            "failure",
                            format!(
                                "not delivered to {} after {} attempt(s): {error}",
                                webhook.url, webhook.attempts
                            ),
                        ),
                    }
                }
            };
            platform
                .audit()
                .record(
                    AuditEvent::new(
                        EventKind::Alert,
                        if outcome == "success" {
                            Outcome::Success
                        } else {
                            Outcome::Failure
                        },
                    )
                    .reason(outcome)
                    .function(incident.app.as_str(), incident.function.as_str())
                    .caller(MONITOR_CALLER)
                    .detail("incident", incident.id.clone())
                    .detail("detail", detail.clone()),
                )
                .await;
            let action = IncidentAction {
                action: Action::Alert.as_str().into(),
                outcome: outcome.into(),
                at_ms: zerofn_store::now_ms(),
                detail,
            };
            platform.note_action(&incident, action, sets_response && outcome == "success");
        });
    }

    /// Releases a quarantined function: it serves again. The incident stays open until an
    /// operator resolves it.
    pub async fn release(
        &self,
        app: &str,
        function: &str,
        by: &str,
    ) -> Result<QuarantineRecord, IncidentError> {
        let stored = self.store().release(app, function)?;
        let held = self.quarantines().remove(app, function);
        self.metrics()
            .set_quarantined(self.quarantines().all().len());
        let Some(record) = stored.or(held) else {
            return Err(IncidentError::NotQuarantined {
                app: app.to_string(),
                function: function.to_string(),
            });
        };
        self.audit()
            .record(
                AuditEvent::new(EventKind::Release, Outcome::Success)
                    .reason("released")
                    .function(app, function)
                    .caller(by)
                    .detail("incident", record.incident_id.clone())
                    .detail("since_ms", record.since_ms),
            )
            .await;
        Ok(record)
    }

    /// Resolves open incident `id`; a resolution is final.
    pub async fn resolve_incident(
        &self,
        id: &str,
        resolution: Resolution,
        by: &str,
        note: Option<&str>,
    ) -> Result<IncidentRecord, IncidentError> {
        if note.is_some_and(|n| n.len() > MAX_NOTE_BYTES) {
            return Err(IncidentError::InvalidRequest(format!(
                "the note is longer than {MAX_NOTE_BYTES} bytes"
            )));
        }
        let incident = self.store().resolve_incident(
            id,
            resolution.as_str(),
            by,
            note,
            zerofn_store::now_ms(),
        )?;
        self.metrics().incident_resolved(resolution.as_str());
        self.audit()
            .record(
                AuditEvent::new(EventKind::IncidentResolved, Outcome::Success)
                    .reason(resolution.as_str())
                    .function(incident.app.as_str(), incident.function.as_str())
                    .caller(by)
                    .detail("incident", incident.id.clone())
                    .detail("detector", incident.detector.clone())
                    .detail("note", note.map(str::to_string)),
            )
            .await;
        Ok(incident)
    }

    /// Loads the store's quarantines into force (at start, before anything is served).
    pub fn load_quarantines(&self) -> Result<usize, StoreError> {
        let records = self.store().quarantines()?;
        let count = records.len();
        for record in records {
            self.quarantines().insert(record);
        }
        self.metrics().set_quarantined(count);
        Ok(count)
    }
}

/// The longest resolution note.
pub const MAX_NOTE_BYTES: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse_by_name_and_defaults_need_a_webhook_to_alert() {
        assert_eq!(
            Action::parse("revoke-leases").unwrap(),
            Action::RevokeLeases
        );
        let unknown = Action::parse("nuke").unwrap_err();
        assert!(unknown.contains("\"quarantine\""), "{unknown}");
        let quiet = ResponsePolicy::defaults(false);
        assert!(quiet.medium.is_empty());
        assert_eq!(
            quiet.critical,
            [Action::Quarantine, Action::RevokeLeases, Action::Rollback]
        );
        let loud = ResponsePolicy::defaults(true);
        assert_eq!(loud.medium, [Action::Alert]);
        assert!(loud.actions(Severity::Low).is_empty());
    }
}
