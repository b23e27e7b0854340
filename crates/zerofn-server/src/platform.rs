//! The platform's state and its operations: deploy, rollback, restore at start-up, and invoke.
//! The trigger and the control plane are thin adapters over this module.

use crate::DeployError;
use crate::authn::CallerAuth;
use crate::problem::Problem;
use crate::rate_limit::Caller;
use crate::routes::{ActiveApp, ActiveFunction, Lookup, RouteTable};
use crate::trust::TrustPolicy;
use http::StatusCode;
use http_body_util::BodyExt;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use zerofn_audit::{AuditEvent, AuditLog, EventKind, Outcome};
use zerofn_manifest::{DeployableFunction, LimitPolicy};
use zerofn_runtime::{
    FailureKind, Invocation, InvocationLimits, OutputBudget, ResponseBody, Runtime,
};
use zerofn_store::{Attestation, NewVersion, Store, VersionRecord};

/// An app as the CLI sends it: the manifest as written and each function's component.
#[derive(Debug, Clone)]
pub struct DeployBundle {
    /// Where the manifest was read from, for diagnostics.
    pub manifest_path: String,
    pub manifest: String,
    /// Component bytes by function name.
    pub components: BTreeMap<String, Vec<u8>>,
    /// Each function's signature bundle and SBOM.
    pub attestations: Vec<Attestation>,
    /// The files the manifest refers to (a JWKS, a CA bundle), by the path written there.
    pub files: zerofn_manifest::AttachedFiles,
}

/// What a successful deploy did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DeployReport {
    pub app: String,
    pub app_version: String,
    pub version_id: String,
    pub functions: Vec<FunctionSummary>,
    /// Diagnostics of severity warning, as JSON.
    pub warnings: serde_json::Value,
    /// Rendered warnings for people.
    pub warnings_text: String,
    /// The key id that signed each function.
    pub signers: BTreeMap<String, String>,
}

/// A served function, for listings.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FunctionSummary {
    pub name: String,
    /// The route of an HTTP function; empty for schedule and queue functions.
    pub route: String,
    pub methods: Vec<String>,
    /// The trigger as written: `POST /orders`, `schedule 0 * * * *`, `queue orders`.
    #[serde(default)]
    pub trigger: String,
    pub component_digest: String,
}

/// The platform: runtime, store, audit log and the active route table.
pub struct Platform {
    runtime: Runtime,
    store: Store,
    audit: AuditLog,
    policy: LimitPolicy,
    trust: RwLock<Arc<TrustPolicy>>,
    trust_source: TrustSource,
    advisory_gate: Option<crate::signatures::AdvisoryGate>,
    operator_policy: Option<zerofn_admission::OperatorPolicy>,
    routes: RwLock<Arc<RouteTable>>,
    global_permits: Arc<Semaphore>,
    /// Serialises deploys and rollbacks so two cannot interleave their table swaps.
    changes: tokio::sync::Mutex<()>,
    metrics: crate::metrics::Metrics,
    /// The operator's forbid policies, part of every PDP built.
    guardrails: zerofn_policy::Guardrails,
    /// The decision point for the active versions' grants; replaced with the route table.
    pdp: RwLock<Arc<zerofn_policy::Pdp>>,
    /// Denies everything: stands in if a PDP cannot be built (it is checked at deploy).
    deny_all: Arc<zerofn_policy::Pdp>,
    /// The SPIFFE trust domain of the functions' identities.
    trust_domain: String,
    /// This platform, for the outbound handlers of its invocations.
    me: std::sync::Weak<Platform>,
    /// Mints and verifies the per-invocation JWT-SVIDs.
    issuer: zerofn_identity::Issuer,
    /// Fetches and caches callers' token issuers' key sets.
    jwks: crate::authn::jwks::JwksClient,
    /// Operators of the remote control plane: enrollment, login, sessions.
    operators: crate::operators::OperatorAuth,
    /// Decides control actions of remote operators (role permits and control guardrails).
    control_pdp: zerofn_policy::ControlPdp,
    /// The built-in CA.
    ca: Arc<zerofn_identity::CertificateAuthority>,
    /// Whether the function listener serves TLS (so `mtls` functions can be served).
    function_tls: bool,
    /// The master keys that seal secrets (and anything else kept encrypted at rest).
    vault: Arc<crate::vault::Vault>,
    /// Reaches the destinations functions are granted.
    egress: crate::egress::Egress,
    /// The operator's key-value limits.
    kv_limits: crate::kv::KvLimits,
    /// Marked changed each time the route table is replaced (the schedule trigger follows it).
    route_changes: tokio::sync::watch::Sender<()>,
    /// Wakes the queue worker when an event is stored.
    queue_wake: tokio::sync::Notify,
    /// Functions that may not serve until released (see [`crate::quarantine`]).
    quarantines: crate::quarantine::Quarantines,
    /// The invocations running now, with the handles that stop them.
    in_flight: Arc<crate::quarantine::InFlight>,
    /// What the response loop does per severity (`[response]`).
    response: crate::response::ResponsePolicy,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform").finish_non_exhaustive()
    }
}

/// Where the trust policy is read from, for reloads.
#[derive(Debug, Clone)]
pub struct TrustSource {
    pub policy_file: std::path::PathBuf,
    pub data_dir: std::path::PathBuf,
}

/// What a trust-policy reload changed.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct TrustReload {
    /// Apps whose active version no longer passes, with the reason.
    pub suspended: Vec<(String, String)>,
    /// Apps that pass again.
    pub resumed: Vec<String>,
}

/// Seconds a client is asked to wait after a 429 or 503.
const RETRY_AFTER_SECS: u32 = 1;

/// The policies a platform enforces, fixed when it starts (the trust policy can be reloaded).
#[derive(Debug)]
pub struct PlatformPolicies {
    pub limits: LimitPolicy,
    pub trust: TrustPolicy,
    pub trust_source: TrustSource,
    pub advisory_gate: Option<crate::signatures::AdvisoryGate>,
    /// The operator's Rego admission rules.
    pub operator_policy: Option<zerofn_admission::OperatorPolicy>,
    /// Invocations in flight across all functions.
    pub max_concurrency: u32,
    /// The operator's Cedar guardrails.
    pub guardrails: zerofn_policy::Guardrails,
    /// The SPIFFE trust domain, e.g. `zerofn.local`.
    pub trust_domain: String,
    /// Fetches the key sets of `auth.jwt` functions that give a URL.
    pub jwks: crate::authn::jwks::JwksClient,
    /// Operators of the remote control plane.
    pub operators: crate::operators::OperatorAuth,
    /// The built-in CA: X.509 SVIDs for the node and for callers of `mtls` functions.
    pub ca: Arc<zerofn_identity::CertificateAuthority>,
    /// Whether the function listener serves TLS.
    pub function_tls: bool,
    /// The master keys.
    pub vault: Arc<crate::vault::Vault>,
    /// Reaches the destinations functions are granted (TLS roots included).
    pub egress: crate::egress::Egress,
    /// The operator's key-value limits.
    pub kv_limits: crate::kv::KvLimits,
    /// What the response loop does per severity.
    pub response: crate::response::ResponsePolicy,
}

impl Platform {
    /// The platform, with no app active. Fails if the guardrails do not validate.
    pub fn new(
        runtime: Runtime,
        store: Store,
        audit: AuditLog,
        policies: PlatformPolicies,
    ) -> Result<Arc<Self>, crate::ServerError> {
        let deny_all = Arc::new(zerofn_policy::Pdp::build(&policies.guardrails, [])?);
        let control_pdp = zerofn_policy::ControlPdp::build(&policies.guardrails)?;
        let issuer = zerofn_identity::Issuer::new()
            .map_err(|e| crate::ServerError::Identity(e.to_string()))?;
        Ok(Arc::new_cyclic(|me| Self {
            runtime,
            store,
            audit,
            policy: policies.limits,
            trust: RwLock::new(Arc::new(policies.trust)),
            trust_source: policies.trust_source,
            advisory_gate: policies.advisory_gate,
            operator_policy: policies.operator_policy,
            routes: RwLock::new(Arc::new(RouteTable::default())),
            global_permits: Arc::new(Semaphore::new(policies.max_concurrency as usize)),
            changes: tokio::sync::Mutex::new(()),
            metrics: crate::metrics::Metrics::default(),
            guardrails: policies.guardrails,
            pdp: RwLock::new(deny_all.clone()),
            deny_all,
            trust_domain: policies.trust_domain,
            me: me.clone(),
            issuer,
            jwks: policies.jwks,
            operators: policies.operators,
            control_pdp,
            ca: policies.ca,
            function_tls: policies.function_tls,
            vault: policies.vault,
            egress: policies.egress,
            kv_limits: policies.kv_limits,
            route_changes: tokio::sync::watch::channel(()).0,
            queue_wake: tokio::sync::Notify::new(),
            quarantines: crate::quarantine::Quarantines::default(),
            in_flight: Arc::default(),
            response: policies.response,
        }))
    }

    /// The functions in quarantine.
    pub(crate) fn quarantines(&self) -> &crate::quarantine::Quarantines {
        &self.quarantines
    }

    /// Every function in quarantine, by app and function.
    pub fn quarantined(&self) -> Vec<zerofn_store::QuarantineRecord> {
        self.quarantines.all()
    }

    /// The invocations running now.
    pub(crate) fn in_flight(&self) -> &crate::quarantine::InFlight {
        &self.in_flight
    }

    /// What the response loop does per severity.
    pub fn response_policy(&self) -> &crate::response::ResponsePolicy {
        &self.response
    }

    /// This platform as an `Arc`, for tasks that outlive a call (`None` while it shuts down).
    pub(crate) fn me(&self) -> Option<Arc<Platform>> {
        self.me.upgrade()
    }

    /// The SPIFFE trust domain of the functions' identities.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The master keys (see [`crate::vault`]), shared by everything sealed at rest.
    pub fn vault(&self) -> &Arc<crate::vault::Vault> {
        &self.vault
    }

    /// The built-in CA (see [`crate::certificates`]).
    pub fn ca(&self) -> &Arc<zerofn_identity::CertificateAuthority> {
        &self.ca
    }

    /// Egress: the connector that reaches granted destinations.
    pub(crate) fn egress(&self) -> &crate::egress::Egress {
        &self.egress
    }

    /// The issuer of the per-invocation JWT-SVIDs (its JWKS is on the control plane).
    pub fn issuer(&self) -> &zerofn_identity::Issuer {
        &self.issuer
    }

    /// The audience of the tokens the platform mints for its own use.
    pub fn token_audience(&self) -> String {
        format!("spiffe://{}/platform", self.trust_domain)
    }

    /// The decision point in force (a snapshot).
    pub fn pdp(&self) -> Arc<zerofn_policy::Pdp> {
        self.pdp
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The SPIFFE ID of `function` of `app`.
    pub fn spiffe_id(&self, app: &str, function: &str) -> String {
        crate::calls::spiffe_id(&self.trust_domain, app, function)
    }

    /// A decision point for `routes`' grants and the guardrails.
    fn build_pdp(
        &self,
        routes: &RouteTable,
    ) -> Result<zerofn_policy::Pdp, zerofn_policy::PolicyError> {
        zerofn_policy::Pdp::build(
            &self.guardrails,
            routes
                .apps()
                .flat_map(|app| app.functions.iter())
                .map(|f| {
                    (
                        zerofn_policy::FunctionRef::new(&*f.app, &*f.name),
                        &f.grants,
                    )
                })
                .collect::<Vec<_>>(),
        )
    }

    /// Checks that `app`'s grants compile with everything else active (before it is stored).
    fn check_policies(&self, app: &Arc<ActiveApp>) -> Result<(), DeployError> {
        self.build_pdp(&self.routes().with_app(app.clone()))
            .map(|_| ())
            .map_err(|e| DeployError::Policy(e.to_string()))
    }

    /// Operators of the remote control plane.
    pub fn operators(&self) -> &crate::operators::OperatorAuth {
        &self.operators
    }

    /// The control plane's decision point.
    pub fn control_pdp(&self) -> &zerofn_policy::ControlPdp {
        &self.control_pdp
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The operator's key-value limits.
    pub fn kv_limits(&self) -> crate::kv::KvLimits {
        self.kv_limits
    }

    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// The trust policy in force (a snapshot).
    pub fn trust(&self) -> Arc<TrustPolicy> {
        self.trust
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The current route table (a snapshot).
    pub fn routes(&self) -> Arc<RouteTable> {
        self.routes
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// A receiver marked changed whenever the route table is replaced.
    pub fn route_changes(&self) -> tokio::sync::watch::Receiver<()> {
        self.route_changes.subscribe()
    }

    /// Wakes the queue worker (see [`crate::triggers::queue`]).
    pub fn queue_wake(&self) -> &tokio::sync::Notify {
        &self.queue_wake
    }

    fn install(&self, app: Arc<ActiveApp>) {
        let mut routes = self
            .routes
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let next = routes.with_app(app);
        // Checked at deploy; if it still fails, deny every capability rather than keep
        // decisions for versions no longer active.
        let pdp = match self.build_pdp(&next) {
            Ok(pdp) => Arc::new(pdp),
            Err(error) => {
                tracing::error!(%error, "policy decision point rebuilt as deny-all");
                self.deny_all.clone()
            }
        };
        *self
            .pdp
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = pdp;
        *routes = Arc::new(next);
        self.route_changes.send_replace(());
        let keep: Vec<&str> = routes
            .apps()
            .flat_map(|a| a.functions.iter().map(|f| f.component.digest()))
            .collect();
        self.runtime.retain(&keep);
    }

    /// Validates, compiles, records and activates a new version. Nothing changes unless every
    /// step succeeds; the refusal says which rule refused it.
    pub async fn deploy(&self, bundle: DeployBundle) -> Result<DeployReport, DeployError> {
        let _change = self.changes.lock().await;
        let result = self.deploy_locked(&bundle).await;
        match &result {
            Ok(_) => self.metrics.deploy_admitted(),
            Err(DeployError::Refused(findings)) => self.metrics.deploy_refused(
                findings
                    .iter()
                    .filter(|f| f.is_error())
                    .map(|f| f.rule.as_str()),
            ),
            Err(error) if error.status().is_server_error() => self.metrics.deploy_failed(),
            Err(error) => self.metrics.deploy_refused([error.code()]),
        }
        match &result {
            Ok(report) => {
                self.audit
                    .record(
                        AuditEvent::new(EventKind::Deploy, Outcome::Success)
                            .app(report.app.clone())
                            .version(report.version_id.clone())
                            .detail("app_version", report.app_version.clone())
                            .detail("warnings", report.warnings.clone()),
                    )
                    .await;
            }
            Err(error) => {
                self.audit
                    .record(
                        AuditEvent::new(EventKind::DeployRefused, Outcome::Denied)
                            .reason(error.code())
                            .detail("manifest", bundle.manifest_path.clone())
                            .detail("refusal", error.to_json()),
                    )
                    .await;
            }
        }
        result
    }

    async fn deploy_locked(&self, bundle: &DeployBundle) -> Result<DeployReport, DeployError> {
        // A manifest that does not parse is malformed input (422), not a policy decision.
        zerofn_manifest::parse(Path::new(&bundle.manifest_path), &bundle.manifest)
            .map_err(DeployError::Manifest)?;
        let trust = self.trust();
        let admission = crate::admission::admit(
            bundle,
            &crate::admission::AdmissionPolicies {
                limits: &self.policy,
                trust: &trust,
                advisories: self.advisory_gate.as_ref(),
                operator: self.operator_policy.as_ref(),
                definitions: &self.store,
            },
        );
        let Some(admitted) = admission.admitted else {
            return Err(DeployError::Refused(admission.findings));
        };
        let warnings = admission.findings;
        let manifest = &admitted.manifest;
        let components = admitted
            .deployable
            .functions
            .iter()
            .filter_map(|f| {
                let bytes = bundle.components.get(&f.name)?;
                Some((f.name.clone(), bytes.clone()))
            })
            .collect();
        let version = NewVersion {
            app: manifest.app_name().to_string(),
            app_version: manifest.app_version().to_string(),
            manifest: bundle.manifest.clone(),
            components,
            attestations: bundle
                .attestations
                .iter()
                .filter(|a| admitted.signers.contains_key(&a.function))
                .cloned()
                .collect(),
            files: bundle
                .files
                .iter()
                .map(|(path, bytes)| (path.to_string(), bytes.to_vec()))
                .collect(),
        };
        let app = self
            .activate_candidate(
                &version.version_id(),
                &version,
                &admitted.deployable.functions,
            )
            .await?;
        self.check_policies(&app)?;
        let store = self.store.clone();
        let record = tokio::task::spawn_blocking(move || store.deploy(&version, "deploy"))
            .await
            .map_err(|e| DeployError::Internal(e.to_string()))??;
        let mut report = report(&record, &app, &warnings);
        report.signers = admitted.signers;
        self.install(app);
        Ok(report)
    }

    /// Compiles every function of a version and checks its routes against the other apps,
    /// returning the app ready to install.
    async fn activate_candidate(
        &self,
        version_id: &str,
        version: &NewVersion,
        functions: &[DeployableFunction],
    ) -> Result<Arc<ActiveApp>, DeployError> {
        let routes = self.routes();
        let files: zerofn_manifest::AttachedFiles = version.files.iter().cloned().collect();
        let mut active = Vec::new();
        for function in functions {
            let methods: Vec<String> = function
                .trigger
                .http()
                .map(|(_, methods)| methods.iter().map(|m| m.as_str().to_string()).collect())
                .unwrap_or_default();
            if let Some((route, _)) = function.trigger.http()
                && let Some(other) = routes.conflict(&version.app, route, &methods)
            {
                return Err(DeployError::RouteConflict {
                    function: function.name.clone(),
                    route: route.to_string(),
                    other_app: other.app.to_string(),
                    other_function: other.name.to_string(),
                });
            }
            let bytes = version
                .components
                .iter()
                .find(|(name, _)| *name == function.name)
                .map(|(_, bytes)| bytes.clone())
                .ok_or_else(|| DeployError::MissingComponent(function.name.clone()))?;
            let runtime = self.runtime.clone();
            let component = tokio::task::spawn_blocking(move || runtime.load(&bytes))
                .await
                .map_err(|e| DeployError::Internal(e.to_string()))?
                .map_err(|error| DeployError::Component {
                    function: function.name.clone(),
                    error: error.to_string(),
                })?;
            if let zerofn_runtime::ComponentOrigin::Recompiled { rejected } = component.origin() {
                self.audit
                    .record(
                        AuditEvent::new(EventKind::IntegrityFailure, Outcome::Denied)
                            .reason("compiled-cache-mismatch")
                            .function(version.app.as_str(), function.name.as_str())
                            .version(version_id)
                            .detail("digest", component.digest().to_string())
                            .detail("error", rejected.clone()),
                    )
                    .await;
            }
            let limits = &function.limits;
            active.push(Arc::new(ActiveFunction {
                app: version.app.as_str().into(),
                name: function.name.as_str().into(),
                version_id: version_id.into(),
                trigger: function.trigger.clone(),
                methods,
                component,
                limits: InvocationLimits {
                    timeout: Duration::from_millis(limits.timeout_ms),
                    memory_bytes: limits.memory_mb.saturating_mul(1 << 20),
                    max_request_body_bytes: limits.max_request_body_bytes,
                    max_response_body_bytes: limits.max_response_body_bytes,
                },
                max_concurrency: limits.max_concurrency,
                permits: Arc::new(Semaphore::new(limits.max_concurrency as usize)),
                output_budget: OutputBudget::new(&self.runtime.config().output),
                rate_limits: crate::rate_limit::RateLimits::new(limits),
                config: function.config.clone(),
                grants: function.grants.clone(),
                caller_auth: crate::authn::CallerAuth::compile(
                    function.auth.as_ref(),
                    &files,
                    &self.jwks,
                    self.function_tls,
                )
                .map_err(|reason| DeployError::Admission {
                    function: function.name.clone(),
                    rule: "auth-unusable",
                    reason,
                })?,
                input: match &function.input {
                    Some(spec) => Some(Arc::new(
                        crate::input::InputGuard::compile(
                            spec,
                            &files,
                            limits.max_request_body_bytes,
                        )
                        .map_err(|refusal| DeployError::Admission {
                            function: function.name.clone(),
                            rule: refusal.rule,
                            reason: refusal.message,
                        })?,
                    )),
                    None => None,
                },
            }));
        }
        Ok(Arc::new(ActiveApp {
            name: version.app.clone(),
            version_id: version_id.to_string(),
            app_version: version.app_version.clone(),
            functions: active,
            suspended: None,
        }))
    }

    /// Makes an earlier version active again: `to`, or the one active before the current one.
    pub async fn rollback(&self, app: &str, to: Option<&str>) -> Result<DeployReport, DeployError> {
        self.rollback_for(app, to, None).await
    }

    /// The response loop's rollback of `app` to its previous version for `incident`: its
    /// events carry the incident and the monitor as caller.
    pub(crate) async fn rollback_for_incident(
        &self,
        app: &str,
        incident: &str,
    ) -> Result<DeployReport, DeployError> {
        self.rollback_for(app, None, Some(incident)).await
    }

    async fn rollback_for(
        &self,
        app: &str,
        to: Option<&str>,
        incident: Option<&str>,
    ) -> Result<DeployReport, DeployError> {
        let _change = self.changes.lock().await;
        let result = self.rollback_locked(app, to, incident).await;
        if let Err(error) = &result {
            let mut event = AuditEvent::new(EventKind::RollbackRefused, Outcome::Denied)
                .reason(error.code())
                .app(app)
                .detail("to", to.map(str::to_string))
                .detail("refusal", error.to_json());
            if let Some(incident) = incident {
                event = event
                    .caller(crate::response::MONITOR_CALLER)
                    .detail("incident", incident.to_string());
            }
            self.audit.record(event).await;
        }
        result
    }

    async fn rollback_locked(
        &self,
        app: &str,
        to: Option<&str>,
        incident: Option<&str>,
    ) -> Result<DeployReport, DeployError> {
        let target = match to {
            Some(version_id) => version_id.to_string(),
            None => {
                let history = self.store.activations(app)?;
                let current = history
                    .first()
                    .map(|a| a.version_id.clone())
                    .ok_or_else(|| zerofn_store::StoreError::UnknownApp(app.to_string()))?;
                history
                    .iter()
                    .map(|a| &a.version_id)
                    .find(|id| **id != current)
                    .cloned()
                    .ok_or_else(|| DeployError::NothingToRollBackTo(app.to_string()))?
            }
        };
        let record = self.store.version(app, &target)?;
        let (active, warnings) = self.load_version(&record).await?;
        let record = self.store.activate(app, &target, "rollback")?;
        let report = report(
            &record,
            &active,
            &crate::admission::from_diagnostics(&warnings),
        );
        self.install(active);
        let mut event = AuditEvent::new(EventKind::Rollback, Outcome::Success)
            .app(app)
            .version(target);
        if let Some(incident) = incident {
            event = event
                .caller(crate::response::MONITOR_CALLER)
                .detail("incident", incident.to_string());
        }
        self.audit.record(event).await;
        Ok(report)
    }

    /// Loads a recorded version from the store: its stored manifest is validated again against
    /// today's policy and its components are checked against their digests.
    async fn load_version(
        &self,
        record: &VersionRecord,
    ) -> Result<(Arc<ActiveApp>, zerofn_manifest::Diagnostics), DeployError> {
        let path = format!("<stored {}@{}>/zerofn.toml", record.app, record.version_id);
        let manifest = zerofn_manifest::parse(Path::new(&path), &record.manifest)
            .map_err(DeployError::Manifest)?;
        let deployable = manifest
            .check_deployable(&self.policy)
            .map_err(DeployError::Manifest)?;
        let mut components = Vec::new();
        for component in &record.components {
            match self.store.component(&component.digest) {
                Ok(bytes) => components.push((component.function.clone(), bytes)),
                Err(error @ zerofn_store::StoreError::Integrity { .. }) => {
                    self.integrity_failure(
                        record,
                        Some(&component.function),
                        "component-digest-mismatch",
                        &error,
                    )
                    .await;
                    return Err(error.into());
                }
                Err(error) => return Err(error.into()),
            }
        }
        let version = NewVersion {
            app: record.app.clone(),
            app_version: record.app_version.clone(),
            manifest: record.manifest.clone(),
            components,
            attestations: self.store.attestations(&record.app, &record.version_id)?,
            files: match self.store.version_files(&record.app, &record.version_id) {
                Ok(files) => files,
                Err(error @ zerofn_store::StoreError::Integrity { .. }) => {
                    self.integrity_failure(record, None, "file-digest-mismatch", &error)
                        .await;
                    return Err(error.into());
                }
                Err(error) => return Err(error.into()),
            },
        };
        // The version id is a digest over the manifest, the components and the files: recomputing it
        // catches a manifest edited in the store (routes, limits) as well as swapped blobs.
        if version.version_id() != record.version_id {
            let error = zerofn_store::StoreError::Integrity {
                digest: record.version_id.clone(),
            };
            self.integrity_failure(record, None, "version-digest-mismatch", &error)
                .await;
            return Err(error.into());
        }
        let trust = self.trust();
        let files: zerofn_manifest::AttachedFiles = version.files.iter().cloned().collect();
        for stored in &record.components {
            let Some(function) = manifest.function(&stored.function) else {
                continue;
            };
            let digest = stored.digest.trim_start_matches("sha256:");
            let attestation = version
                .attestations
                .iter()
                .find(|a| a.function == stored.function);
            crate::signatures::verify_function(
                &trust,
                &manifest,
                function,
                digest,
                attestation,
                &files,
            )?;
        }

        let app = self
            .activate_candidate(&record.version_id, &version, &deployable.functions)
            .await?;
        Ok((app, deployable.warnings))
    }

    async fn integrity_failure(
        &self,
        record: &VersionRecord,
        function: Option<&str>,
        reason: &str,
        error: &zerofn_store::StoreError,
    ) {
        let event = AuditEvent::new(EventKind::IntegrityFailure, Outcome::Denied)
            .reason(reason)
            .app(record.app.as_str())
            .version(record.version_id.as_str())
            .detail("error", error.to_string());
        let event = match function {
            Some(function) => event.function(record.app.as_str(), function),
            None => event,
        };
        self.audit.record(event).await;
    }

    /// Reads the trust policy again and re-verifies every active version against it: a version
    /// whose signer was revoked (or is no longer trusted for its app) stops serving at once.
    pub async fn reload_trust(&self) -> Result<TrustReload, crate::trust::TrustError> {
        let _change = self.changes.lock().await;
        let policy =
            TrustPolicy::load(&self.trust_source.policy_file, &self.trust_source.data_dir)?;
        *self
            .trust
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(policy);
        let mut outcome = TrustReload::default();
        let apps: Vec<Arc<ActiveApp>> = self.routes().apps().cloned().collect();
        for app in apps {
            let verdict = self.reverify(&app);
            let changed = match (&verdict, &app.suspended) {
                (Err(reason), None) => {
                    outcome.suspended.push((app.name.clone(), reason.clone()));
                    true
                }
                (Ok(()), Some(_)) => {
                    outcome.resumed.push(app.name.clone());
                    true
                }
                _ => false,
            };
            if changed {
                let mut next = (*app).clone();
                next.suspended = verdict.clone().err();
                let (outcome_kind, reason) = match &verdict {
                    Err(reason) => (Outcome::Denied, reason.clone()),
                    Ok(()) => (Outcome::Success, "trust restored".to_string()),
                };
                self.install(Arc::new(next));
                self.audit
                    .record(
                        AuditEvent::new(EventKind::VersionSuspended, outcome_kind)
                            .reason(if verdict.is_err() {
                                "trust-revoked"
                            } else {
                                "trust-restored"
                            })
                            .app(app.name.as_str())
                            .version(app.version_id.as_str())
                            .detail("detail", reason),
                    )
                    .await;
            }
        }
        Ok(outcome)
    }

    /// Whether an active version's signatures still pass the trust policy in force.
    fn reverify(&self, app: &ActiveApp) -> Result<(), String> {
        let record = self
            .store
            .version(&app.name, &app.version_id)
            .map_err(|e| e.to_string())?;
        let path = format!("<stored {}@{}>/zerofn.toml", record.app, record.version_id);
        let manifest = zerofn_manifest::parse(Path::new(&path), &record.manifest)
            .map_err(|e| e.render(false))?;
        let attestations = self
            .store
            .attestations(&record.app, &record.version_id)
            .map_err(|e| e.to_string())?;
        let files: zerofn_manifest::AttachedFiles = self
            .store
            .version_files(&record.app, &record.version_id)
            .map_err(|e| e.to_string())?
            .into_iter()
            .collect();
        let trust = self.trust();
        for stored in &record.components {
            let Some(function) = manifest.function(&stored.function) else {
                continue;
            };
            let attestation = attestations.iter().find(|a| a.function == stored.function);
            crate::signatures::verify_function(
                &trust,
                &manifest,
                function,
                stored.digest.trim_start_matches("sha256:"),
                attestation,
                &files,
            )
            .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Serves every app's active version, as recorded in the store. An app whose version no
    /// longer loads is reported and skipped; the others serve.
    pub async fn restore(&self) -> Vec<(String, DeployError)> {
        let mut failures = Vec::new();
        let apps = match self.store.apps() {
            Ok(apps) => apps,
            Err(error) => return vec![("*".to_string(), error.into())],
        };
        for summary in apps {
            let loaded = match self.store.version(&summary.app, &summary.active_version_id) {
                Ok(record) => self.load_version(&record).await,
                Err(error) => Err(error.into()),
            };
            match loaded {
                Ok((app, _)) => self.install(app),
                Err(error) => {
                    self.audit
                        .record(
                            AuditEvent::new(EventKind::RestoreFailed, Outcome::Failure)
                                .reason(error.code())
                                .app(summary.app.clone())
                                .version(summary.active_version_id.clone())
                                .detail("error", error.to_json()),
                        )
                        .await;
                    failures.push((summary.app, error));
                }
            }
        }
        failures
    }

    /// Runs `request`, from outside the platform, through `function` under its concurrency
    /// caps and limits. Every refusal and failure becomes a problem-details response; none
    /// reveals guest internals. The caller must have been through [`Platform::authenticate`]
    /// (the trigger) or be the operator (the control plane).
    pub async fn invoke<B>(
        &self,
        function: &Arc<ActiveFunction>,
        invocation_id: String,
        request: hyper::Request<B>,
    ) -> hyper::Response<ResponseBody>
    where
        B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<zerofn_runtime::BodyError>,
    {
        self.invoke_in_chain(function, invocation_id, request, Arc::from([]), None)
            .await
    }

    /// [`Platform::invoke`] for a function called by the functions of `chain` (SPIFFE IDs,
    /// outermost first), which must finish by the caller's `deadline`: a callee never gets
    /// more time than its caller has left, so a whole call tree ends with its root.
    async fn invoke_in_chain<B>(
        &self,
        function: &Arc<ActiveFunction>,
        invocation_id: String,
        request: hyper::Request<B>,
        chain: Arc<[String]>,
        deadline: Option<std::time::Instant>,
    ) -> hyper::Response<ResponseBody>
    where
        B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<zerofn_runtime::BodyError>,
    {
        // Registered as running before the quarantine check (see `crate::quarantine`), so a
        // quarantine set meanwhile either refuses it here or stops it.
        let running = crate::quarantine::Running {
            version_id: function.version_id.clone(),
            stop: zerofn_runtime::StopSignal::new(),
            secrets_revoked: Arc::default(),
        };
        let registration = self.in_flight.register(
            &function.app,
            &function.name,
            &Arc::from(invocation_id.as_str()),
            running.clone(),
        );
        if let Some(quarantine) = self.quarantines.get(&function.app, &function.name) {
            let problem = crate::quarantine::refusal(&quarantine);
            return self.refuse(problem, &invocation_id, Some(function)).await;
        }
        let lease = match self.acquire(function) {
            Ok(lease) => lease,
            Err(problem) => return self.refuse(problem, &invocation_id, Some(function)).await,
        };
        if request.uri().authority().is_none()
            && !request.headers().contains_key(http::header::HOST)
        {
            let problem = Problem::new(
                StatusCode::BAD_REQUEST,
                "missing-host",
                "Missing Host header",
                "HTTP requests to zerofn must carry a Host header.".into(),
            );
            return self.refuse(problem, &invocation_id, Some(function)).await;
        }
        // A function with `input` has its body checked against its own cap (at most this one)
        // below, under the more specific rule.
        if function.input.is_none()
            && let Some(length) = content_length(&request)
            && length > function.limits.max_request_body_bytes
        {
            let problem = Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request-body-too-large",
                "Request body too large",
                format!(
                    "The body is {length} bytes; function `{}` accepts at most {} (manifest field `limits.max_request_body_bytes`).",
                    function.name, function.limits.max_request_body_bytes
                ),
            )
            .with("limit", function.limits.max_request_body_bytes);
            return self.refuse(problem, &invocation_id, Some(function)).await;
        }
        let mut limits = function.limits;
        if let Some(deadline) = deadline {
            limits.timeout = limits
                .timeout
                .min(deadline.saturating_duration_since(std::time::Instant::now()));
        }
        // Input checks come before the sandbox, the token and the invocation's start: a
        // refused body never reaches code. Reading it counts against the function's time.
        let request: hyper::Request<zerofn_runtime::RequestBody> = match &function.input {
            Some(guard) => match guard
                .check_request(
                    &function.name,
                    request,
                    tokio::time::Instant::now() + limits.timeout,
                )
                .await
            {
                Ok(request) => request.map(crate::problem::full_body),
                Err(problem) => return self.refuse(problem, &invocation_id, Some(function)).await,
            },
            None => request.map(|body| body.map_err(Into::into).boxed_unsync()),
        };
        let (token, token_lease) =
            match self.mint_token(function, limits.timeout, &invocation_id, &chain) {
                Ok(minted) => minted,
                Err(error) => {
                    let problem = Problem::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "identity-unavailable",
                        "Identity unavailable",
                        format!("No token could be minted for the invocation: {error}."),
                    );
                    return self.refuse(problem, &invocation_id, Some(function)).await;
                }
            };
        let invocation = Invocation {
            invocation_id: invocation_id.as_str().into(),
            app: function.app.clone(),
            function: function.name.clone(),
            version_id: function.version_id.clone(),
            limits,
            output_budget: function.output_budget.clone(),
            // The token is revoked when the lease goes, that is when the sandbox is gone.
            lease: Some(Box::new((lease, token_lease, registration))),
            config: Some(Arc::new(crate::secrets::InvocationSecrets {
                platform: self.me.clone(),
                function: function.clone(),
                invocation_id: invocation_id.as_str().into(),
                chain: chain.clone(),
                revoked: running.secrets_revoked.clone(),
            })),
            keyvalue: Some(Arc::new(crate::kv::InvocationKeyValue {
                platform: self.me.clone(),
                function: function.clone(),
                invocation_id: invocation_id.as_str().into(),
                chain: chain.clone(),
            })),
            outbound: Some(Arc::new(crate::calls::CallerOutbound {
                platform: self.me.clone(),
                caller: function.clone(),
                invocation_id: invocation_id.as_str().into(),
                chain,
                calls: std::sync::atomic::AtomicU32::new(0),
                token: token.into(),
                deadline: std::time::Instant::now() + limits.timeout,
                egress_in_flight: Arc::new(Semaphore::new(crate::egress::MAX_IN_FLIGHT)),
            })),
            stop: Some(running.stop),
        };
        match self
            .runtime
            .invoke(&function.component, invocation, request)
            .await
        {
            Ok(mut response) => {
                if let Ok(id) = http::HeaderValue::from_str(&invocation_id) {
                    response
                        .headers_mut()
                        .insert(crate::problem::INVOCATION_ID_HEADER, id);
                }
                response
            }
            Err(failure) if failure.kind == FailureKind::Stopped => {
                match self.quarantines.get(&function.app, &function.name) {
                    Some(quarantine) => crate::quarantine::refusal(&quarantine),
                    None => failure_problem(failure.kind),
                }
                .into_response(&invocation_id)
            }
            Err(failure) => failure_problem(failure.kind).into_response(&invocation_id),
        }
    }

    /// Authenticates a request from outside for `function` (before any sandbox exists): first
    /// removes every header the platform reserves (`x-zerofn-*`: only the platform says who
    /// called), then checks the credential, removes it from the request and sets what it
    /// proved. Returns the refusal to send otherwise. Every decision is an `authn.decision`
    /// event; no secret is ever recorded.
    pub async fn authenticate<B>(
        &self,
        function: &ActiveFunction,
        invocation_id: &str,
        request: &mut hyper::Request<B>,
    ) -> Result<Option<Caller>, Problem> {
        crate::calls::remove_reserved_headers(request.headers_mut());
        let auth = &function.caller_auth;
        let result = match auth {
            CallerAuth::Public => return Ok(None),
            CallerAuth::ApiKey { header } => self.check_api_key(function, header, request).await,
            CallerAuth::Jwt(jwt) => jwt.authenticate(request.headers_mut()).await,
            CallerAuth::Mtls(policy) => {
                let peer = request
                    .extensions()
                    .get::<zerofn_identity::PeerCertificates>()
                    .cloned();
                crate::authn::authenticate_client_certificate(
                    policy,
                    peer.as_ref(),
                    request.headers_mut(),
                )
            }
            // Not deployable (admission refuses it); refuse rather than serve.
            CallerAuth::Unsupported => Err(crate::authn::Refusal::new(
                "auth-not-supported",
                StatusCode::FORBIDDEN,
                "This function's authentication method is not supported.",
            )),
        };
        let (outcome, reason, credential, subject) = match &result {
            Ok(who) => (
                Outcome::Success,
                "authenticated",
                who.credential.clone(),
                who.subject.clone(),
            ),
            Err(refusal) => (
                Outcome::Denied,
                refusal.rule,
                refusal.credential.clone(),
                None,
            ),
        };
        self.audit
            .record(
                AuditEvent::new(EventKind::AuthnDecision, outcome)
                    .reason(reason)
                    .invocation(invocation_id)
                    .function(function.app.clone(), function.name.clone())
                    .version(function.version_id.clone())
                    .detail("method", auth.method())
                    .detail("credential", credential)
                    .detail("subject", subject),
            )
            .await;
        result
            .map(|who| who.caller(auth.method()))
            .map_err(|refusal| {
                let mut problem = Problem::new(
                    refusal.status,
                    refusal.rule,
                    if refusal.status == StatusCode::SERVICE_UNAVAILABLE {
                        "Authentication unavailable"
                    } else {
                        "Not authenticated"
                    },
                    refusal.detail,
                )
                .already_recorded();
                if let Some(challenge) = refusal.challenge
                    && refusal.status == StatusCode::UNAUTHORIZED
                {
                    problem = problem.challenge(challenge);
                }
                if refusal.status == StatusCode::SERVICE_UNAVAILABLE {
                    problem = problem.retry_after(RETRY_AFTER_SECS);
                }
                problem
            })
    }

    /// Checks the API key in `header`, removes it and sets the key's id in its place.
    async fn check_api_key<B>(
        &self,
        function: &ActiveFunction,
        header: &str,
        request: &mut hyper::Request<B>,
    ) -> Result<crate::authn::Authenticated, crate::authn::Refusal> {
        let presented = request.headers().get(header).map(|v| v.as_bytes().to_vec());
        // The lookup is a store read: off the async workers, so that a flood of bad keys
        // during a deploy cannot stall the server.
        let record = match crate::authn::key_id(presented.as_deref()) {
            Some(id) => {
                let store = self.store.clone();
                tokio::task::spawn_blocking(move || store.api_key(&id).ok().flatten())
                    .await
                    .ok()
                    .flatten()
            }
            None => None,
        };
        let result = crate::authn::check_api_key(
            presented.as_deref(),
            header,
            &function.app,
            &function.name,
            now_ms(),
            |id| record.filter(|r| r.id == id),
        );
        request.headers_mut().remove(header);
        let id = result?;
        if let Ok(value) = http::HeaderValue::from_str(&id) {
            request
                .headers_mut()
                .insert(crate::authn::API_KEY_ID_HEADER, value);
        }
        Ok(crate::authn::Authenticated {
            credential: Some(id),
            subject: None,
        })
    }

    /// Creates an API key for `functions` of `app` (`["*"]`: all), valid for `expires_in`
    /// (until revoked when `None`), and records the change. Returns the key, which is shown
    /// once and never stored.
    pub async fn create_api_key(
        &self,
        app: &str,
        functions: Vec<String>,
        name: &str,
        expires_in: Option<Duration>,
    ) -> Result<(zerofn_store::ApiKeyRecord, String), DeployError> {
        let now = now_ms();
        let expires_ms = expires_in
            .map(|d| now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)));
        let created = crate::authn::create_api_key(app, functions, name, now, expires_ms)
            .map_err(DeployError::Internal)?;
        self.store.create_api_key(&created.record)?;
        self.audit
            .record(
                AuditEvent::new(EventKind::CredentialChange, Outcome::Success)
                    .reason("api-key-created")
                    .app(app)
                    .detail("key_id", created.record.id.clone())
                    .detail("functions", created.record.functions.clone())
                    .detail("expires_ms", expires_ms),
            )
            .await;
        Ok((created.record, created.key))
    }

    /// Revokes API key `id`; the next request with it is refused.
    pub async fn revoke_api_key(&self, id: &str) -> Result<bool, DeployError> {
        let revoked = self.store.revoke_api_key(id, now_ms())?;
        self.audit
            .record(
                AuditEvent::new(
                    EventKind::CredentialChange,
                    if revoked {
                        Outcome::Success
                    } else {
                        Outcome::Denied
                    },
                )
                .reason(if revoked {
                    "api-key-revoked"
                } else {
                    "api-key-unknown"
                })
                .detail("key_id", id.to_string()),
            )
            .await;
        Ok(revoked)
    }

    /// The invocation's JWT-SVID: its function's SPIFFE ID, for the platform, until its
    /// deadline, with its grants as scopes and its callers as chain.
    fn mint_token(
        &self,
        function: &ActiveFunction,
        timeout: Duration,
        invocation_id: &str,
        chain: &[String],
    ) -> Result<(String, zerofn_identity::TokenLease), zerofn_identity::TokenError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let deadline = now + timeout;
        self.issuer.mint(&zerofn_identity::SvidClaims {
            sub: self.spiffe_id(&function.app, &function.name),
            aud: vec![self.token_audience()],
            exp: deadline.as_secs() + u64::from(deadline.subsec_nanos() > 0),
            iat: now.as_secs(),
            jti: invocation_id.to_string(),
            scopes: scopes(&function.grants),
            chain: chain.to_vec(),
        })
    }

    /// One function calling another (see [`crate::calls`]): depth and fan-out caps, the PDP's
    /// decision on `invoke`, then the callee in its own sandbox with the caller's verified
    /// identity. Every refusal is a problem-details response the caller's code receives.
    pub(crate) async fn call(
        &self,
        call: crate::calls::Call,
        mut request: http::Request<ResponseBody>,
    ) -> hyper::Response<ResponseBody> {
        let caller = &call.caller;
        let refuse = |problem: Problem| self.refuse(problem, &call.caller_invocation, Some(caller));
        // The caller's identity and chain come from its verified, live token.
        let claims = match self.issuer.verify(
            &call.token,
            &self.token_audience(),
            &self.spiffe_id(&caller.app, &caller.name),
        ) {
            Ok(claims) => claims,
            Err(error) => {
                return refuse(Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "caller-token-invalid",
                    "Caller identity not verified",
                    format!("The calling invocation's token was refused: {error}."),
                ))
                .await;
            }
        };
        let caller_id = claims.sub;
        if call.chain.len() + 1 >= crate::calls::MAX_CALL_DEPTH {
            return refuse(Problem::new(
                StatusCode::LOOP_DETECTED,
                "call-depth-exceeded",
                "Call chain too deep",
                format!(
                    "Calls may go {} functions deep; this chain already has {}.",
                    crate::calls::MAX_CALL_DEPTH,
                    call.chain.len() + 1
                ),
            ))
            .await;
        }
        if call.number > crate::calls::MAX_CALLS_PER_INVOCATION {
            return refuse(Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "call-fan-out-exceeded",
                "Too many calls",
                format!(
                    "One invocation may call other functions at most {} times.",
                    crate::calls::MAX_CALLS_PER_INVOCATION
                ),
            ))
            .await;
        }
        if call.callee_app != *caller.app {
            return refuse(Problem::new(
                StatusCode::FORBIDDEN,
                "cross-app-call",
                "Call to another app",
                format!(
                    "Function `{}` of app `{}` may only call functions of its own app, not `{}` of `{}`.",
                    caller.name, caller.app, call.callee, call.callee_app
                ),
            ))
            .await;
        }
        let decision = self
            .decide(
                caller,
                &call.caller_invocation,
                &call.chain,
                zerofn_policy::Capability::Invoke {
                    callee: call.callee.clone(),
                },
                self.spiffe_id(&call.callee_app, &call.callee),
                |event| event,
            )
            .await;
        if !decision.allowed {
            let problem = Problem::new(
                StatusCode::FORBIDDEN,
                "invoke-denied",
                "Call not permitted",
                format!(
                    "Function `{}` may not call `{}`: {}. To allow it, add `invoke = [\"{}\"]` under `[functions.{}.grants]` and sign again.",
                    caller.name,
                    call.callee,
                    decision.explanation(),
                    call.callee,
                    caller.name
                ),
            )
            .with("policies", decision.policies.clone())
            .already_recorded();
            return self
                .refuse(problem, &call.caller_invocation, Some(caller))
                .await;
        }
        let callee = match self.routes().app(&call.callee_app) {
            Some(app) if app.suspended.is_none() => app
                .functions
                .iter()
                .find(|f| *f.name == *call.callee)
                .cloned(),
            _ => None,
        };
        let Some(callee) = callee else {
            return refuse(Problem::new(
                StatusCode::NOT_FOUND,
                "unknown-function",
                "No such function",
                format!(
                    "App `{}` serves no function `{}`.",
                    call.callee_app, call.callee
                ),
            ))
            .await;
        };
        // The callee's declared methods hold for internal calls too.
        let method = request.method().as_str().to_string();
        if !callee.methods.contains(&method) {
            return refuse(
                Problem::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method-not-allowed",
                    "Method not allowed",
                    format!(
                        "Function `{}` accepts {}, not {method}.",
                        callee.name,
                        callee.methods.join(", ")
                    ),
                )
                .with("allow", callee.methods.clone()),
            )
            .await;
        }
        if let Err(problem) = self
            .check_rates(
                &callee,
                &Caller::Function(caller_id.clone()),
                crate::rate_limit::Buckets::Both,
                &call.caller_invocation,
            )
            .await
        {
            return problem;
        }
        let mut chain = claims.chain;
        chain.push(caller_id.clone());
        crate::calls::set_identity_headers(request.headers_mut(), &caller_id, &chain);
        let invocation_id = uuid::Uuid::now_v7().to_string();
        Box::pin(self.invoke_in_chain(
            &callee,
            invocation_id,
            request,
            Arc::from(chain),
            Some(call.deadline),
        ))
        .await
    }

    /// Takes a token from `caller`'s bucket, then from the function's, as `buckets` says (see
    /// [`crate::rate_limit`]), or answers 429 with `Retry-After`. Refusals are counted in the
    /// metrics; at most one a second per function and bucket is written to the audit stream,
    /// carrying the number of those only counted since.
    pub async fn check_rates(
        &self,
        function: &ActiveFunction,
        caller: &Caller,
        buckets: crate::rate_limit::Buckets,
        invocation_id: &str,
    ) -> Result<(), hyper::Response<ResponseBody>> {
        let Err(refused) = function.rate_limits.check(caller, buckets) else {
            return Ok(());
        };
        let limits = &function.rate_limits;
        self.metrics
            .count_rate_limited(&function.app, &function.name, refused.scope);
        let (rate_field, burst_field) = refused.fields();
        let whose = match refused.scope {
            crate::rate_limit::Scope::Function => "from all callers together".to_string(),
            crate::rate_limit::Scope::Caller => format!("from one caller ({})", caller.key()),
        };
        let problem = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            refused.scope.rule(),
            "Too many requests",
            format!(
                "Function `{}` accepts {} requests a second (bursts of {}) {whose} (manifest fields `{rate_field}` and `{burst_field}`); retry after {} s.",
                function.name,
                refused.per_second,
                refused.burst,
                refused.retry_after_secs()
            ),
        )
        .with("limit", refused.per_second)
        .with("burst", refused.burst)
        .retry_after(refused.retry_after_secs())
        .already_recorded();
        if let Some(suppressed) = limits.audit_due(refused.scope) {
            self.audit
                .record(
                    AuditEvent::new(EventKind::RequestRefused, Outcome::Denied)
                        .reason(refused.scope.rule())
                        .invocation(invocation_id)
                        .function(function.app.clone(), function.name.clone())
                        .version(function.version_id.clone())
                        .detail("status", 429)
                        .detail("caller", caller.key())
                        .detail("suppressed", suppressed),
                )
                .await;
        }
        Err(problem.into_response(invocation_id))
    }

    /// Asks the PDP whether `caller`, running invocation `invocation_id` for the functions of
    /// `chain`, may use `capability`, and records the decision as an `authz.decision` event
    /// naming `resource` (with whatever `detail` adds). Every enforcement point decides here.
    pub(crate) async fn decide(
        &self,
        caller: &ActiveFunction,
        invocation_id: &Arc<str>,
        chain: &[String],
        capability: zerofn_policy::Capability,
        resource: String,
        detail: impl FnOnce(AuditEvent) -> AuditEvent,
    ) -> zerofn_policy::Decision {
        let action = capability.action();
        let decision = self.pdp().decide(&zerofn_policy::AccessRequest {
            principal: zerofn_policy::FunctionRef::new(&*caller.app, &*caller.name),
            capability,
            context: zerofn_policy::RequestContext {
                invocation_id: invocation_id.to_string(),
                caller_chain: chain.to_vec(),
                time: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64),
                risk: 0,
            },
        });
        let event = AuditEvent::new(
            EventKind::AuthzDecision,
            if decision.allowed {
                Outcome::Success
            } else {
                Outcome::Denied
            },
        )
        .reason(decision.explanation())
        .invocation(invocation_id.clone())
        .function(caller.app.clone(), caller.name.clone())
        .version(caller.version_id.clone())
        .detail("action", action)
        .detail("resource", resource)
        .detail("policies", decision.policies.clone());
        self.audit.record(detail(event)).await;
        decision
    }

    /// Takes a global and a per-function permit, or says which cap is full.
    fn acquire(
        &self,
        function: &ActiveFunction,
    ) -> Result<(OwnedSemaphorePermit, OwnedSemaphorePermit), Problem> {
        let global = self
            .global_permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| {
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "platform-at-capacity",
                    "Platform at capacity",
                    "Every sandbox of this server is in use; retry shortly.".into(),
                )
                .retry_after(RETRY_AFTER_SECS)
            })?;
        let own = function.permits.clone().try_acquire_owned().map_err(|_| {
            Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "function-at-capacity",
                "Function at capacity",
                format!(
                    "Function `{}` already runs {} invocations, its limit (manifest field `limits.max_concurrency`); retry shortly.",
                    function.name, function.max_concurrency
                ),
            )
            .retry_after(RETRY_AFTER_SECS)
        })?;
        Ok((global, own))
    }

    /// Records a refusal and turns it into a response.
    pub async fn refuse(
        &self,
        problem: Problem,
        invocation_id: &str,
        function: Option<&ActiveFunction>,
    ) -> hyper::Response<ResponseBody> {
        self.metrics.request_refused(&problem.code);
        let mut event = AuditEvent::new(EventKind::RequestRefused, Outcome::Denied)
            .reason(problem.code.clone())
            .invocation(invocation_id)
            .detail("status", problem.status.as_u16());
        // Where a body broke its schema (pointers, keywords; never the values).
        if let Some((_, errors)) = problem.extra.iter().find(|(key, _)| key == "errors") {
            event = event.detail("errors", errors.clone());
        }
        if let Some(function) = function {
            event = event
                .function(function.app.clone(), function.name.clone())
                .version(function.version_id.clone());
        }
        self.audit.record(event).await;
        problem.into_response(invocation_id)
    }

    /// Resolves a path and method to a function, or the refusal that explains why not (with the
    /// function concerned, when there is one, for the audit record).
    pub fn route(
        &self,
        path: &str,
        method: &str,
    ) -> Result<Arc<ActiveFunction>, (Problem, Option<Arc<ActiveFunction>>)> {
        match self.routes().lookup(path, method) {
            Lookup::Found(function) => Ok(function),
            Lookup::MethodNotAllowed(allowed) => Err((
                Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                format!(
                    "{path} accepts {}; the manifest's `trigger.http.methods` lists what a route accepts.",
                    allowed.join(", ")
                ),
            )
            .with("allow", allowed),
                None,
            )),
            Lookup::Suspended(function) => Err((
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "version-suspended",
                    "Version suspended",
                    format!(
                        "App `{}` is suspended by its operator; retry later.",
                        function.app
                    ),
                ),
                Some(function),
            )),
            Lookup::NotFound => Err((
                Problem::new(
                    StatusCode::NOT_FOUND,
                    "no-route",
                    "No such route",
                    format!("No deployed function serves {path}."),
                ),
                None,
            )),
        }
    }
}

fn content_length<B>(request: &hyper::Request<B>) -> Option<u64> {
    request
        .headers()
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The caller learns the class of failure and the invocation id to quote; the cause stays in
/// the platform log and the audit stream.
fn failure_problem(kind: FailureKind) -> Problem {
    match kind {
        FailureKind::Timeout => Problem::new(
            StatusCode::GATEWAY_TIMEOUT,
            "function-timeout",
            "Function timed out",
            "The function did not finish within its time limit.".into(),
        ),
        FailureKind::Instantiation => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "sandbox-unavailable",
            "Sandbox unavailable",
            "No sandbox could be created for this request; retry shortly.".into(),
        )
        .retry_after(RETRY_AFTER_SECS),
        FailureKind::Stopped => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "invocation-stopped",
            "Invocation stopped",
            "The platform stopped this invocation in response to an incident; see `zerofn incidents list`.".into(),
        ),
        _ => Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "function-failed",
            "Function failed",
            "The function failed. Quote the invocation id to the operator; details are in the platform log.".into(),
        ),
    }
}

fn report(
    record: &VersionRecord,
    app: &ActiveApp,
    warnings: &[zerofn_admission::Finding],
) -> DeployReport {
    DeployReport {
        app: record.app.clone(),
        app_version: record.app_version.clone(),
        version_id: record.version_id.clone(),
        functions: app.functions.iter().map(|f| f.summary()).collect(),
        warnings: serde_json::to_value(warnings).unwrap_or_default(),
        warnings_text: zerofn_admission::render_findings(warnings),
        signers: BTreeMap::new(),
    }
}

/// A function's grants as token scopes: `invoke:inventory`, `egress:https://api.example.com`,
/// `secret.read:stripe_key`, `kv.read:carts`, `kv.write:carts`.
fn scopes(grants: &zerofn_manifest::Grants) -> Vec<String> {
    let mut scopes: Vec<String> = grants
        .invoke
        .iter()
        .map(|f| format!("invoke:{f}"))
        .chain(
            grants
                .egress
                .iter()
                .map(|e| format!("egress:{}", e.as_written)),
        )
        .chain(grants.secrets.iter().map(|s| format!("secret.read:{s}")))
        .collect();
    for (bucket, access) in &grants.kv {
        let (read, write) = match access {
            zerofn_manifest::KvAccess::Read => (true, false),
            zerofn_manifest::KvAccess::Write => (false, true),
            zerofn_manifest::KvAccess::ReadWrite => (true, true),
        };
        if read {
            scopes.push(format!("kv.read:{bucket}"));
        }
        if write {
            scopes.push(format!("kv.write:{bucket}"));
        }
    }
    scopes
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
