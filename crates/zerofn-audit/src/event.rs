//! The audit event schema (`zerofn.audit/v1`), documented for users in `docs/audit-events.md`.

use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::Value;
use std::sync::Arc;

/// The schema identifier carried by every event; bumped on any incompatible change.
pub const SCHEMA: &str = "zerofn.audit/v1";

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EventKind {
    /// A sandbox was created for an invocation.
    #[serde(rename = "invocation.start")]
    InvocationStart,
    /// An invocation finished; carries duration and outcome.
    #[serde(rename = "invocation.end")]
    InvocationEnd,
    /// An invocation hit a limit that does not end it at once (a body cap).
    #[serde(rename = "limit.hit")]
    LimitHit,
    /// A request was refused before any sandbox existed (no route, method, overload, size).
    #[serde(rename = "request.refused")]
    RequestRefused,
    /// A new version was recorded and activated.
    #[serde(rename = "deploy")]
    Deploy,
    /// A deploy was refused; carries the diagnostics.
    #[serde(rename = "deploy.refused")]
    DeployRefused,
    /// An earlier version was made active again.
    #[serde(rename = "rollback")]
    Rollback,
    /// A guest's outbound request was refused before any connection opened.
    #[serde(rename = "egress.denied")]
    EgressDenied,
    /// A guest's allowed outbound request is over: the destination, address, status and bytes
    /// (`success`), or why no response came (`failure`).
    #[serde(rename = "egress")]
    Egress,
    /// A guest's key-value operation was refused (a bucket not granted, a write to a read-only
    /// bucket, a key or value over its limit); carries the rule, the operation and the bucket.
    #[serde(rename = "kv.denied")]
    KvDenied,
    /// A control-plane request was refused (malformed, unknown endpoint or target).
    #[serde(rename = "control.refused")]
    ControlRefused,
    /// A rollback was refused.
    #[serde(rename = "rollback.refused")]
    RollbackRefused,
    /// A stored version could not be restored at start-up for a reason other than integrity.
    #[serde(rename = "restore.failed")]
    RestoreFailed,
    /// An active version stopped (or resumed) serving after a trust-policy change.
    #[serde(rename = "version.suspended")]
    VersionSuspended,
    /// A stored component failed its integrity check and was not loaded.
    #[serde(rename = "integrity.failure")]
    IntegrityFailure,
    /// The policy decision point allowed or denied a capability use; carries the action, the
    /// resource and the policies that decided.
    #[serde(rename = "authz.decision")]
    AuthzDecision,
    /// A caller from outside was authenticated, or refused, before any sandbox existed.
    #[serde(rename = "authn.decision")]
    AuthnDecision,
    /// An operator created or revoked a credential (an API key); never carries the secret.
    #[serde(rename = "credential.change")]
    CredentialChange,
    /// An invocation read a secret through `wasi:config/store`, or was refused; carries the
    /// name and version, never the value.
    #[serde(rename = "secret.read")]
    SecretRead,
    /// An operator listed, set, rotated or deleted secrets, or rotated the master key (or the
    /// server finished an interrupted rotation); never carries a value or a key.
    #[serde(rename = "secret.admin")]
    SecretAdmin,
    /// A schedule tick was not delivered (the previous run still going, the app suspended).
    #[serde(rename = "trigger.skipped")]
    TriggerSkipped,
    /// An event was offered to a local queue: stored, or refused with its rule.
    #[serde(rename = "queue.enqueue")]
    QueueEnqueue,
    /// A queue message was delivered to its consumer (success) or failed and will be retried.
    #[serde(rename = "queue.delivery")]
    QueueDelivery,
    /// A queue message failed its last attempt and was kept as a dead letter.
    #[serde(rename = "queue.dead_letter")]
    QueueDeadLetter,
    /// A guest's key-value write (set, delete, increment, set-many, delete-many) was done;
    /// carries the operation and the bucket, never the key's value.
    #[serde(rename = "kv.write")]
    KvWrite,
    /// A guest read a key-value bucket: the first read that succeeded through a bucket its
    /// invocation opened; carries the operation and the bucket, never a key or a value.
    #[serde(rename = "kv.read")]
    KvRead,
    /// Admission decided a bundle: admitted or refused, with the count of findings by level
    /// and the rules that refused it.
    #[serde(rename = "admission.verdict")]
    AdmissionVerdict,
    /// A function's signature bundle was checked against the trust policy (at deploy, restore,
    /// rollback or trust reload): the signer's key id on success, the reason otherwise.
    #[serde(rename = "signature.verification")]
    SignatureVerification,
    /// An operator logged in to the remote control plane, or was refused (bad signature, TOTP,
    /// lockout).
    #[serde(rename = "operator.login")]
    OperatorLogin,
    /// A detector opened an incident; carries the detector, the severity and the ids of the
    /// events that are its evidence.
    #[serde(rename = "incident.opened")]
    IncidentOpened,
    /// An operator resolved an incident as a true or a false positive.
    #[serde(rename = "incident.resolved")]
    IncidentResolved,
    /// A function was quarantined (new invocations refused with 503, in-flight ones stopped).
    #[serde(rename = "quarantine")]
    Quarantine,
    /// A quarantined function was released and serves again.
    #[serde(rename = "release")]
    Release,
    /// Credentials of running invocations were revoked by the response loop (their tokens,
    /// their secret leases).
    #[serde(rename = "lease.revoked")]
    LeaseRevoked,
    /// An incident was sent to the operator's webhook (success) or could not be (failure).
    #[serde(rename = "alert")]
    Alert,
    /// The audit chain was checkpointed: its head hash signed by the node's key.
    #[serde(rename = "audit.checkpoint")]
    AuditCheckpoint,
    /// The server started serving.
    #[serde(rename = "server.start")]
    ServerStart,
    /// The server stopped serving.
    #[serde(rename = "server.stop")]
    ServerStop,
}

impl EventKind {
    /// Every kind, in the order `docs/audit-events.md` documents them.
    pub const ALL: &'static [EventKind] = &[
        Self::InvocationStart,
        Self::InvocationEnd,
        Self::LimitHit,
        Self::RequestRefused,
        Self::Deploy,
        Self::DeployRefused,
        Self::Rollback,
        Self::EgressDenied,
        Self::Egress,
        Self::KvDenied,
        Self::ControlRefused,
        Self::VersionSuspended,
        Self::RollbackRefused,
        Self::RestoreFailed,
        Self::IntegrityFailure,
        Self::AuthzDecision,
        Self::AuthnDecision,
        Self::CredentialChange,
        Self::SecretRead,
        Self::SecretAdmin,
        Self::TriggerSkipped,
        Self::QueueEnqueue,
        Self::QueueDelivery,
        Self::QueueDeadLetter,
        Self::KvWrite,
        Self::KvRead,
        Self::AdmissionVerdict,
        Self::SignatureVerification,
        Self::OperatorLogin,
        Self::IncidentOpened,
        Self::IncidentResolved,
        Self::Quarantine,
        Self::Release,
        Self::LeaseRevoked,
        Self::Alert,
        Self::AuditCheckpoint,
        Self::ServerStart,
        Self::ServerStop,
    ];

    /// The kind written as `name`, if there is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|kind| kind.as_str() == name)
    }

    /// The kind as it is written in the stream, e.g. `invocation.end`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvocationStart => "invocation.start",
            Self::InvocationEnd => "invocation.end",
            Self::LimitHit => "limit.hit",
            Self::RequestRefused => "request.refused",
            Self::Deploy => "deploy",
            Self::DeployRefused => "deploy.refused",
            Self::Rollback => "rollback",
            Self::EgressDenied => "egress.denied",
            Self::Egress => "egress",
            Self::KvDenied => "kv.denied",
            Self::ControlRefused => "control.refused",
            Self::VersionSuspended => "version.suspended",
            Self::RollbackRefused => "rollback.refused",
            Self::RestoreFailed => "restore.failed",
            Self::IntegrityFailure => "integrity.failure",
            Self::AuthzDecision => "authz.decision",
            Self::AuthnDecision => "authn.decision",
            Self::CredentialChange => "credential.change",
            Self::SecretRead => "secret.read",
            Self::SecretAdmin => "secret.admin",
            Self::TriggerSkipped => "trigger.skipped",
            Self::QueueEnqueue => "queue.enqueue",
            Self::QueueDelivery => "queue.delivery",
            Self::QueueDeadLetter => "queue.dead_letter",
            Self::KvWrite => "kv.write",
            Self::KvRead => "kv.read",
            Self::AdmissionVerdict => "admission.verdict",
            Self::SignatureVerification => "signature.verification",
            Self::OperatorLogin => "operator.login",
            Self::IncidentOpened => "incident.opened",
            Self::IncidentResolved => "incident.resolved",
            Self::Quarantine => "quarantine",
            Self::Release => "release",
            Self::LeaseRevoked => "lease.revoked",
            Self::Alert => "alert",
            Self::AuditCheckpoint => "audit.checkpoint",
            Self::ServerStart => "server.start",
            Self::ServerStop => "server.stop",
        }
    }
}

/// How it ended. `reason` on the event says why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The action happened as asked.
    Success,
    /// The action was attempted and failed (a trap, a timeout, a limit).
    Failure,
    /// The platform refused the action.
    Denied,
}

impl Outcome {
    /// The outcome as it is written in the stream.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
        }
    }
}

/// One audit event. Build it with [`AuditEvent::new`] and the chained setters.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    pub schema: &'static str,
    pub kind: EventKind,
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invocation_id: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<Arc<str>>,
    /// The function's workload identity (its SPIFFE ID), when a function acted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<Arc<str>>,
    /// Who asked: `jwt:<sub>`, `mtls:<SPIFFE ID>`, `api-key:<id>`, the calling function's
    /// SPIFFE ID, `operator:<name>`, `schedule`, `queue:<name>`, `monitor` or `anonymous`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller: Option<Arc<str>>,
    /// W3C trace id (32 lowercase hex digits) shared by every event of one request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<Arc<str>>,
    /// This event's span (16 hex digits): the invocation's, or the capability use's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span_id: Option<Arc<str>>,
    /// The span that caused this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<Arc<str>>,
    /// Kind-specific fields (duration, status, limit, route, diagnostics, ...).
    #[serde(skip_serializing_if = "Detail::is_empty")]
    pub detail: Detail,
}

impl AuditEvent {
    /// A new event stamped with the current time.
    pub fn new(kind: EventKind, outcome: Outcome) -> Self {
        Self {
            schema: SCHEMA,
            kind,
            at_ms: zerofn_store::now_ms(),
            outcome,
            reason: None,
            invocation_id: None,
            app: None,
            function: None,
            version_id: None,
            identity: None,
            caller: None,
            trace_id: None,
            span_id: None,
            parent_span_id: None,
            detail: Detail::default(),
        }
    }

    /// Why it ended as it did (a stable, kebab-case code such as `timeout`).
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// The invocation this event belongs to.
    pub fn invocation(mut self, invocation_id: impl Into<Arc<str>>) -> Self {
        self.invocation_id = Some(invocation_id.into());
        self
    }

    /// The app concerned (for app-wide events such as deploys).
    pub fn app(mut self, app: impl Into<Arc<str>>) -> Self {
        self.app = Some(app.into());
        self
    }

    /// The app and function concerned. Names are shared, not copied: the hot path passes the
    /// `Arc<str>`s it already holds.
    pub fn function(mut self, app: impl Into<Arc<str>>, function: impl Into<Arc<str>>) -> Self {
        self.app = Some(app.into());
        self.function = Some(function.into());
        self
    }

    /// The app version concerned.
    pub fn version(mut self, version_id: impl Into<Arc<str>>) -> Self {
        self.version_id = Some(version_id.into());
        self
    }

    /// The acting function's workload identity (SPIFFE ID).
    pub fn identity(mut self, spiffe_id: impl Into<Arc<str>>) -> Self {
        self.identity = Some(spiffe_id.into());
        self
    }

    /// Who asked for the action (see the field's documentation for the forms).
    pub fn caller(mut self, caller: impl Into<Arc<str>>) -> Self {
        self.caller = Some(caller.into());
        self
    }

    /// The trace and span this event belongs to.
    pub fn trace(mut self, context: &crate::TraceContext) -> Self {
        self.trace_id = Some(context.trace_id().clone());
        self.span_id = Some(context.span_id().clone());
        self.parent_span_id = context.parent_span_id().cloned();
        self
    }

    /// Adds a kind-specific field.
    pub fn detail(mut self, key: &'static str, value: impl Into<Value>) -> Self {
        self.detail.0.push((key, value.into()));
        self
    }

    pub(crate) fn to_row(&self) -> zerofn_store::NewAuditRow {
        // Serialising a plain struct of strings and numbers cannot fail.
        let json = serde_json::to_string(self).unwrap_or_default();
        zerofn_store::NewAuditRow {
            at_ms: self.at_ms,
            kind: self.kind.as_str(),
            invocation_id: self.invocation_id.clone(),
            app: self.app.clone(),
            function: self.function.clone(),
            outcome: self.outcome.as_str(),
            trace_id: self.trace_id.clone(),
            json,
        }
    }
}

/// Kind-specific fields, serialised as a JSON object. Keys are the schema's own names (static
/// strings), so recording an event allocates no keys.
#[derive(Debug, Clone, Default)]
pub struct Detail(pub Vec<(&'static str, Value)>);

impl Detail {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

impl Serialize for Detail {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}
