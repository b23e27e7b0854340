//! Admission of a deploy bundle: every reason it would be refused, not only the first. The
//! manifest checks, the signature and provenance checks, the advisory gate and the operator's
//! Rego policies each contribute findings, located at the manifest field they concern. Deploy
//! and `zerofn admit` run exactly this; deploy goes ahead only when no finding is an error.

use crate::DeployBundle;
use crate::signatures::{AdvisoryGate, VerifiedFunction, check_advisories, verify_function};
use crate::trust::TrustPolicy;
use std::collections::BTreeMap;
use std::path::Path;
use zerofn_admission::{Finding, Level, OperatorPolicy};
use zerofn_manifest::{Deployable, LimitPolicy, Manifest};

/// What admission checks against.
pub struct AdmissionPolicies<'a> {
    pub limits: &'a LimitPolicy,
    pub trust: &'a TrustPolicy,
    pub advisories: Option<&'a AdvisoryGate>,
    pub operator: Option<&'a OperatorPolicy>,
    pub definitions: &'a dyn Definitions,
}

/// What a grant may name outside the manifest. (The app's own functions, which `invoke`
/// names, are checked by the manifest itself: `unknown-invoke-target`.)
pub trait Definitions: Send + Sync {
    /// Whether a secret called `name` is defined for `app`.
    fn has_secret(&self, app: &str, name: &str) -> bool;
    /// Whether [`Definitions::has_secret`] knows; when it does not (no store at hand),
    /// secret grants are reported as `grant-unchecked` warnings instead.
    fn knows_secrets(&self) -> bool {
        true
    }
}

/// The server's store: a secret is defined once `zerofn secrets set` stored it. A store that
/// cannot answer defines nothing (the grant is refused).
impl Definitions for zerofn_store::Store {
    fn has_secret(&self, app: &str, name: &str) -> bool {
        zerofn_store::Store::has_secret(self, app, name).unwrap_or(false)
    }
}

/// For `zerofn admit`, which runs without the server's store (only the server opens it):
/// secret grants cannot be checked, and are reported as `grant-unchecked` warnings; deploy
/// checks them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Offline;

impl Definitions for Offline {
    fn has_secret(&self, _app: &str, _name: &str) -> bool {
        false
    }

    fn knows_secrets(&self) -> bool {
        false
    }
}

/// The outcome of admission: every finding, errors first, and what was admitted if nothing
/// refused.
pub struct Admission {
    pub findings: Vec<Finding>,
    /// Each function's signature check, in manifest order (for its audit event).
    pub signatures: Vec<crate::signatures::SignatureCheck>,
    pub(crate) admitted: Option<Admitted>,
}

/// A bundle that passed: its parsed manifest, the resolved settings of every function, and the
/// key that signed each.
pub(crate) struct Admitted {
    pub manifest: Manifest,
    pub deployable: Deployable,
    pub signers: BTreeMap<String, String>,
}

impl Admission {
    /// Whether the bundle may be deployed.
    pub fn is_admitted(&self) -> bool {
        self.admitted.is_some()
    }

    /// How many findings refuse the bundle.
    pub fn errors(&self) -> usize {
        self.findings.iter().filter(|f| f.is_error()).count()
    }
}

/// Runs every admission check over `bundle`.
pub fn admit(bundle: &DeployBundle, policies: &AdmissionPolicies<'_>) -> Admission {
    let path = Path::new(&bundle.manifest_path);
    let manifest = match zerofn_manifest::parse(path, &bundle.manifest) {
        Ok(manifest) => manifest,
        Err(diagnostics) => {
            return Admission {
                findings: from_diagnostics(&diagnostics),
                signatures: Vec::new(),
                admitted: None,
            };
        }
    };
    let (mut findings, deployable) = match manifest.check_deployable(policies.limits) {
        Ok(deployable) => (from_diagnostics(&deployable.warnings), Some(deployable)),
        Err(diagnostics) => (from_diagnostics(&diagnostics), None),
    };
    for unexpected in bundle
        .components
        .keys()
        .filter(|name| manifest.function(name).is_none())
    {
        findings.push(
            Finding::new(
                "unexpected-component",
                Level::Error,
                crate::DeployError::UnexpectedComponent(unexpected.clone()).to_string(),
            )
            .in_file(&bundle.manifest_path),
        );
    }
    findings.extend(from_diagnostics(
        &manifest.check_attached_files(&bundle.files),
    ));
    findings.extend(undefined_grants(&manifest, policies.definitions));
    findings.extend(input_schemas(&manifest, &bundle.files));
    let mut verified = BTreeMap::new();
    let mut digests = BTreeMap::new();
    let mut signatures = Vec::new();
    for function in manifest.functions() {
        let refuse = |error: crate::DeployError| function_finding(&manifest, &function.name, error);
        let Some(bytes) = bundle.components.get(&function.name) else {
            findings.push(refuse(crate::DeployError::MissingComponent(
                function.name.clone(),
            )));
            continue;
        };
        let digest = zerofn_store::content_digest(bytes);
        let sha256 = digest.trim_start_matches("sha256:").to_string();
        let attestation = bundle
            .attestations
            .iter()
            .find(|a| a.function == function.name);
        let result = verify_function(
            policies.trust,
            &manifest,
            function,
            &sha256,
            attestation,
            &bundle.files,
        );
        signatures.push(crate::signatures::SignatureCheck::of(
            &function.name,
            &result,
        ));
        match result {
            Ok(function_verified) => {
                verified.insert(function.name.clone(), function_verified);
            }
            Err(error) => findings.push(refuse(error)),
        }
        // Dependencies are judged at deploy time only: a new advisory does not take a running
        // version down (that is the monitoring loop's decision), it blocks the next deploy.
        if let Some(gate) = policies.advisories
            && let Err(error) = check_advisories(gate, &function.name, attestation)
        {
            findings.push(refuse(error));
        }
        digests.insert(function.name.clone(), sha256);
    }
    if let Some(operator) = policies.operator {
        let input = policy_input(bundle, &manifest, &digests, &verified);
        findings.extend(
            operator
                .evaluate(&input)
                .into_iter()
                .map(|finding| locate(&manifest, finding)),
        );
    }
    findings.sort_by_key(|f| f.level);
    let admitted = match deployable {
        Some(deployable) if !findings.iter().any(Finding::is_error) => Some(Admitted {
            manifest,
            deployable,
            signers: verified
                .into_iter()
                .map(|(name, v)| (name, v.key_id))
                .collect(),
        }),
        _ => None,
    };
    Admission {
        findings,
        signatures,
        admitted,
    }
}

impl Admission {
    /// The `admission.verdict` event: admitted or refused, the count of findings by level and
    /// the rules that refused the bundle.
    pub fn verdict_event(&self, app: &str, manifest_path: &str) -> zerofn_audit::AuditEvent {
        use zerofn_audit::{AuditEvent, EventKind, Outcome};
        let count = |level: Level| self.findings.iter().filter(|f| f.level == level).count();
        let mut refused_by: Vec<&str> = self
            .findings
            .iter()
            .filter(|f| f.is_error())
            .map(|f| f.rule.as_str())
            .collect();
        refused_by.sort_unstable();
        refused_by.dedup();
        let (outcome, reason) = if self.is_admitted() {
            (Outcome::Success, "admitted")
        } else {
            (Outcome::Denied, "refused")
        };
        AuditEvent::new(EventKind::AdmissionVerdict, outcome)
            .reason(reason)
            .app(app)
            .detail("manifest", manifest_path)
            .detail(
                "findings",
                serde_json::json!({
                    "error": count(Level::Error),
                    "warning": count(Level::Warning),
                }),
            )
            .detail("refused_by", refused_by)
    }
}

/// `grant-undefined`: every granted secret must exist for the app.
fn undefined_grants(manifest: &Manifest, definitions: &dyn Definitions) -> Vec<Finding> {
    let app = manifest.app_name();
    let mut findings = Vec::new();
    for function in manifest.functions() {
        for (index, secret) in function.grants.secrets.iter().enumerate() {
            let field = format!("functions.{}.grants.secrets[{index}]", function.name);
            if !definitions.knows_secrets() {
                let finding = Finding::new(
                    "grant-unchecked",
                    Level::Warning,
                    format!(
                        "function `{}` is granted secret `{secret}`, which only the server can check exists for app `{app}`",
                        function.name
                    ),
                )
                .field(field)
                .help("deploy refuses the grant (`grant-undefined`) unless `zerofn secrets set` stored the secret first");
                findings.push(locate(manifest, finding));
                continue;
            }
            if definitions.has_secret(app, secret) {
                continue;
            }
            let finding = Finding::new(
                "grant-undefined",
                Level::Error,
                format!(
                    "function `{}` is granted secret `{secret}`, which is not defined for app `{app}`",
                    function.name
                ),
            )
            .field(field)
            .help("a grant must name something that exists: store it with `zerofn secrets set APP NAME` first, or remove the grant");
            findings.push(locate(manifest, finding));
        }
    }
    findings
}

/// `input-schema-invalid`, `input-schema-external-ref`: every input schema compiles, as JSON
/// Schema 2020-12, from the file that was sent, without fetching anything. (A schema file that
/// was not sent is `missing-file`, reported by the attached-file check.)
fn input_schemas(manifest: &Manifest, files: &zerofn_manifest::AttachedFiles) -> Vec<Finding> {
    let mut findings = Vec::new();
    for function in manifest.functions() {
        let Some(written) = function.input.as_ref().and_then(|i| i.schema_file.as_ref()) else {
            continue;
        };
        let Some(bytes) = files.get(written) else {
            continue;
        };
        if let Err(refusal) = crate::input::compile_schema(bytes) {
            let fix = zerofn_admission::rule(refusal.rule).map(|r| r.fix);
            let mut finding = Finding::new(
                refusal.rule,
                Level::Error,
                format!(
                    "the input schema `{written}` of function `{}` cannot be installed: {}",
                    function.name, refusal.message
                ),
            )
            .field(format!("functions.{}.input.schema", function.name));
            if let Some(fix) = fix {
                finding = finding.help(fix);
            }
            findings.push(locate(manifest, finding));
        }
    }
    findings
}

/// The one JSON document operator policies see: the manifest as written, and per function
/// its component digest, the verified signer, the signed provenance and the signed SBOM
/// (`null` where the signature did not verify: policies only ever see signed claims).
pub fn policy_input(
    bundle: &DeployBundle,
    manifest: &Manifest,
    digests: &BTreeMap<String, String>,
    verified: &BTreeMap<String, VerifiedFunction>,
) -> serde_json::Value {
    let functions: serde_json::Map<String, serde_json::Value> = manifest
        .functions()
        .map(|function| {
            let verified = verified.get(&function.name);
            (
                function.name.clone(),
                serde_json::json!({
                    "grants": normalised_grants(&function.grants),
                    "component": {"sha256": digests.get(&function.name)},
                    "signer": verified.map(|v| serde_json::json!({"key_id": v.key_id})),
                    "provenance": verified.map(|v| &v.provenance),
                    "sbom": verified.map(|v| &v.sbom),
                }),
            )
        })
        .collect();
    serde_json::json!({
        "manifest_file": bundle.manifest_path,
        "app": {"name": manifest.app_name(), "version": manifest.app_version()},
        "manifest": manifest.to_json(),
        "functions": functions,
    })
}

/// A function's grants as the platform enforces them (schemes and hosts lowercased, default
/// ports filled in), so that rules match what is enforced, not how it was spelled.
fn normalised_grants(grants: &zerofn_manifest::Grants) -> serde_json::Value {
    let egress: Vec<serde_json::Value> = grants
        .egress
        .iter()
        .map(|rule| {
            serde_json::json!({
                "scheme": rule.scheme,
                "host": rule.host,
                "any_subdomain": rule.any_subdomain,
                "port": rule.effective_port(),
                "path_prefix": rule.path_prefix,
                "methods": rule.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
                "allow_private": rule.allow_private,
                "as_written": rule.as_written,
            })
        })
        .collect();
    let kv: serde_json::Map<String, serde_json::Value> = grants
        .kv
        .iter()
        .map(|(bucket, access)| (bucket.clone(), access.as_str().into()))
        .collect();
    serde_json::json!({
        "egress": egress,
        "invoke": grants.invoke,
        "secrets": grants.secrets,
        "kv": kv,
    })
}

/// A refusal about one function, pointed at its `[functions.<name>]` table.
fn function_finding(manifest: &Manifest, function: &str, error: crate::DeployError) -> Finding {
    let rule = error.code().to_string();
    let message = error.to_string();
    let help = zerofn_admission::rule(&rule).map(|r| r.fix);
    let mut finding = Finding::new(rule, Level::Error, message)
        .in_file(manifest.path().display().to_string())
        .field(format!("functions.{function}"));
    if let Some(location) = manifest.function_location(function) {
        finding = finding.at(location.line, location.column);
    }
    if let Some(help) = help {
        finding = finding.help(help);
    }
    finding
}

/// Fills in the file, line, column and written value of a finding that names a field.
fn locate(manifest: &Manifest, finding: Finding) -> Finding {
    let mut finding = finding.in_file(manifest.path().display().to_string());
    if let Some(found) = finding.field.as_deref().and_then(|f| manifest.locate(f)) {
        finding = finding
            .at(found.location.line, found.location.column)
            .value(found.written);
    }
    finding
}

/// Manifest diagnostics as findings.
pub fn from_diagnostics(diagnostics: &zerofn_manifest::Diagnostics) -> Vec<Finding> {
    diagnostics
        .iter()
        .map(|d| Finding {
            rule: d.code.to_string(),
            level: if d.is_error() {
                Level::Error
            } else {
                Level::Warning
            },
            severity: None,
            message: d.message.clone(),
            file: d.file.display().to_string(),
            line: d.location.as_ref().map(|l| l.line),
            column: d.location.as_ref().map(|l| l.column),
            field: d.field.clone(),
            value: d.value.clone(),
            help: d.help.clone(),
        })
        .collect()
}
