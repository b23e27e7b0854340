//! Admission of signed functions: each function's Sigstore bundle must verify against a key the
//! trust policy trusts for the app, and its statement must name the component's digest, the
//! digest of the function's canonical configuration, the digest of its SBOM and the digest of
//! every file its manifest entry refers to (a JWKS, a CA bundle). Checked at
//! deploy and again at every load from the store, so a revoked key stops what it signed.

use crate::DeployError;
use crate::trust::TrustPolicy;
use zerofn_audit::{AuditEvent, EventKind, Outcome};
use zerofn_manifest::{AttachedFiles, Function, Manifest};
use zerofn_provenance::{COMPONENT_SUFFIX, CONFIG_SUFFIX, SBOM_SUFFIX, SLSA_PROVENANCE_V1};
use zerofn_signing::{Bundle, SigningError, Subject};
use zerofn_store::Attestation;

/// When a function's signature is checked; the `check` of its `signature.verification` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Deploy,
    Restore,
    Rollback,
    TrustReload,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deploy => "deploy",
            Self::Restore => "restore",
            Self::Rollback => "rollback",
            Self::TrustReload => "trust-reload",
        }
    }
}

/// The result of one function's signature check, kept for its audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureCheck {
    pub function: String,
    /// The signer's key id, or the refusing rule and why.
    pub result: Result<String, (String, String)>,
}

impl SignatureCheck {
    pub(crate) fn of(function: &str, result: &Result<VerifiedFunction, DeployError>) -> Self {
        Self {
            function: function.to_string(),
            result: match result {
                Ok(verified) => Ok(verified.key_id.clone()),
                Err(error) => Err((error.code().to_string(), error.to_string())),
            },
        }
    }

    /// The `signature.verification` event of this check.
    pub fn event(&self, check: Check, app: &str, version_id: Option<&str>) -> AuditEvent {
        let event = match &self.result {
            Ok(key_id) => AuditEvent::new(EventKind::SignatureVerification, Outcome::Success)
                .reason("verified")
                .detail("key_id", key_id.clone()),
            Err((rule, message)) => {
                AuditEvent::new(EventKind::SignatureVerification, Outcome::Denied)
                    .reason(rule.clone())
                    .detail("message", message.clone())
            }
        }
        .function(app, self.function.as_str())
        .detail("check", check.as_str());
        match version_id {
            Some(version_id) => event.version(version_id),
            None => event,
        }
    }
}

/// What a verified attestation proves about a function.
#[derive(Debug, Clone)]
pub struct VerifiedFunction {
    /// The key that signed it.
    pub key_id: String,
    /// The signed SLSA provenance predicate.
    pub provenance: serde_json::Value,
    /// The signed CycloneDX SBOM.
    pub sbom: serde_json::Value,
}

/// Verifies `function`'s attestation.
pub(crate) fn verify_function(
    policy: &TrustPolicy,
    manifest: &Manifest,
    function: &Function,
    component_sha256: &str,
    attestation: Option<&Attestation>,
    files: &AttachedFiles,
) -> Result<VerifiedFunction, DeployError> {
    let refuse = |rule: &'static str, reason: String| DeployError::Admission {
        function: function.name.clone(),
        rule,
        reason,
    };
    let Some(attestation) = attestation else {
        return Err(refuse(
            "unsigned",
            "no signature bundle was sent: run `zerofn build` and `zerofn sign --key KEY`, then deploy again".into(),
        ));
    };
    let bundle = Bundle::from_json(&attestation.bundle)
        .map_err(|e| refuse("malformed-bundle", e.to_string()))?;
    let app = manifest.app_name();
    let verified = bundle
        .verify(&policy.keys_for(app))
        .map_err(|error| match error {
            SigningError::UntrustedSigner { key_ids } => {
                let revoked = key_ids.split(", ").any(|id| policy.is_revoked(id));
                if revoked {
                    refuse("signer-revoked", format!("the signing key ({key_ids}) has been revoked in the trust policy; sign with a trusted key"))
                } else {
                    refuse(
                        "signer-not-trusted",
                        format!("the signing key ({key_ids}) is not trusted for app `{app}`; add it to the trust policy with `apps` matching `{app}`, or sign with a key that is"),
                    )
                }
            }
            SigningError::BadSignature { key_id } => refuse(
                "bad-signature",
                format!("the signature by key {key_id} does not verify: the bundle was altered after signing"),
            ),
            other => refuse("malformed-bundle", other.to_string()),
        })?;
    let statement = &verified.statement;
    if statement.predicate_type != SLSA_PROVENANCE_V1 {
        return Err(refuse(
            "provenance-missing",
            format!(
                "the signed statement carries `{}`, not SLSA provenance v1; run `zerofn build` before `zerofn sign`",
                statement.predicate_type
            ),
        ));
    }
    let base = format!("{app}/{}", function.name);
    let component_subject = Subject {
        name: format!("{base}{COMPONENT_SUFFIX}"),
        digest: [("sha256".to_string(), component_sha256.to_string())].into(),
    };
    if !statement.subject.contains(&component_subject) {
        return Err(refuse(
            "component-not-signed",
            format!(
                "the component (sha256:{component_sha256}) is not the one that was signed: it changed after `zerofn sign`; sign it again"
            ),
        ));
    }
    let config_subject = Subject::sha256(
        format!("{base}{CONFIG_SUFFIX}"),
        &manifest.canonical_config_bytes(function),
    );
    if !statement.subject.contains(&config_subject) {
        return Err(refuse(
            "config-not-signed",
            format!(
                "the function's configuration in {} (trigger, limits, grants, auth, input) changed after it was signed; review the change and sign again",
                manifest.path().display()
            ),
        ));
    }
    for file in manifest.referenced_files(function) {
        let signed = files.get(&file.written).is_some_and(|bytes| {
            let subject = Subject::sha256(
                zerofn_provenance::file_subject_name(manifest, function, &file.written),
                bytes,
            );
            statement.subject.contains(&subject)
        });
        if !signed {
            return Err(refuse(
                "file-not-signed",
                format!(
                    "`{}` ({}) is not the file that was signed: it changed after `zerofn sign`, or was signed before the manifest named it; review it and sign again",
                    file.written, file.field
                ),
            ));
        }
    }
    let sbom: serde_json::Value = serde_json::from_str(&attestation.sbom).map_err(|e| {
        refuse(
            "sbom-missing",
            format!("the SBOM is not JSON: {e}; run `zerofn build`"),
        )
    })?;
    if sbom["bomFormat"] != "CycloneDX" {
        return Err(refuse(
            "sbom-missing",
            "no CycloneDX SBOM was sent; run `zerofn build`".into(),
        ));
    }
    let sbom_subject = Subject::sha256(format!("{base}{SBOM_SUFFIX}"), attestation.sbom.as_bytes());
    if !statement.subject.contains(&sbom_subject) {
        return Err(refuse(
            "sbom-not-signed",
            "the SBOM sent is not the one that was signed: dependencies are only judged from a signed SBOM; run `zerofn build` and `zerofn sign` again".into(),
        ));
    }
    Ok(VerifiedFunction {
        key_id: verified.key_id,
        provenance: verified.statement.predicate,
        sbom,
    })
}

/// Refuses a function whose SBOM names a package with an advisory at or above `block_at`.
pub(crate) fn check_advisories(
    gate: &AdvisoryGate,
    function: &str,
    attestation: Option<&Attestation>,
) -> Result<(), DeployError> {
    // Without a readable SBOM nothing can be checked: refuse rather than pass (the gate must
    // not depend on the signature check having run first).
    let sbom: serde_json::Value = attestation
        .and_then(|a| serde_json::from_str(&a.sbom).ok())
        .filter(|sbom: &serde_json::Value| sbom["bomFormat"] == "CycloneDX")
        .ok_or_else(|| DeployError::Admission {
            function: function.to_string(),
            rule: "sbom-missing",
            reason: "no readable CycloneDX SBOM to check for advisories; run `zerofn build`".into(),
        })?;
    let blocking: Vec<String> = gate
        .database
        .check_sbom(&sbom)
        .into_iter()
        .filter(|f| f.severity >= gate.block_at)
        .map(|f| {
            format!(
                "{}@{}: {} ({:?}){}",
                f.package,
                f.version,
                f.advisory,
                f.severity,
                f.fixed
                    .map(|v| format!(", fixed in {v}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    if blocking.is_empty() {
        return Ok(());
    }
    Err(DeployError::Admission {
        function: function.to_string(),
        rule: "blocking-advisory",
        reason: format!(
            "its dependencies have advisories at or above `{:?}`: {}; upgrade them (see `zerofn deps`) and build, sign and deploy again",
            gate.block_at,
            blocking.join("; ")
        ),
    })
}

/// The deploy-time dependency gate: an advisory database and the severity that blocks.
pub struct AdvisoryGate {
    pub database: zerofn_provenance::AdvisoryDatabase,
    pub block_at: zerofn_provenance::Severity,
}

impl std::fmt::Debug for AdvisoryGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdvisoryGate")
            .field("advisories", &self.database.len())
            .field("block_at", &self.block_at)
            .finish()
    }
}
