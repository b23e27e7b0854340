//! Admission as a report: every reason a bundle would be refused, not only the first, with the
//! rule, the manifest location and the fix, as text, JSON or SARIF 2.1.0. `zerofn admit` runs it
//! without deploying (for CI); deploy itself stops at the first refusal.

use crate::DeployBundle;
use crate::signatures::{AdvisoryGate, check_advisories, verify_function};
use crate::trust::TrustPolicy;
use serde::Serialize;
use std::path::Path;
use zerofn_manifest::LimitPolicy;

/// One reason (or warning) admission found.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub rule: String,
    /// `error` refuses; `warning` does not.
    pub level: &'static str,
    pub message: String,
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The manifest field concerned, e.g. `functions.checkout`.
    pub field: Option<String>,
    pub help: Option<String>,
}

/// What admission checks against.
pub struct AdmissionPolicies<'a> {
    pub limits: &'a LimitPolicy,
    pub trust: &'a TrustPolicy,
    pub advisories: Option<&'a AdvisoryGate>,
}

/// Every finding for `bundle`, errors first.
pub fn admit(bundle: &DeployBundle, policies: &AdmissionPolicies<'_>) -> Vec<Finding> {
    let path = Path::new(&bundle.manifest_path);
    let manifest = match zerofn_manifest::parse(path, &bundle.manifest) {
        Ok(manifest) => manifest,
        Err(diagnostics) => return from_diagnostics(&diagnostics),
    };
    let mut findings = match manifest.check_deployable(policies.limits) {
        Ok(deployable) => from_diagnostics(&deployable.warnings),
        Err(diagnostics) => from_diagnostics(&diagnostics),
    };
    for function in manifest.functions() {
        let location = manifest.function_location(&function.name);
        let mut refuse = |error: crate::DeployError| {
            findings.push(Finding {
                rule: error.code().to_string(),
                level: "error",
                message: error.to_string(),
                file: bundle.manifest_path.clone(),
                line: location.as_ref().map(|l| l.line),
                column: location.as_ref().map(|l| l.column),
                field: Some(format!("functions.{}", function.name)),
                help: None,
            });
        };
        let Some(bytes) = bundle.components.get(&function.name) else {
            refuse(crate::DeployError::MissingComponent(function.name.clone()));
            continue;
        };
        let digest = zerofn_store::content_digest(bytes);
        let attestation = bundle
            .attestations
            .iter()
            .find(|a| a.function == function.name);
        if let Err(error) = verify_function(
            policies.trust,
            &manifest,
            function,
            digest.trim_start_matches("sha256:"),
            attestation,
        ) {
            refuse(error);
        }
        if let Some(gate) = policies.advisories
            && let Err(error) = check_advisories(gate, &function.name, attestation)
        {
            refuse(error);
        }
    }
    findings.sort_by_key(|f| f.level != "error");
    findings
}

fn from_diagnostics(diagnostics: &zerofn_manifest::Diagnostics) -> Vec<Finding> {
    diagnostics
        .iter()
        .map(|d| Finding {
            rule: d.code.to_string(),
            level: if d.is_error() { "error" } else { "warning" },
            message: d.message.clone(),
            file: d.file.display().to_string(),
            line: d.location.as_ref().map(|l| l.line),
            column: d.location.as_ref().map(|l| l.column),
            field: None,
            help: d.help.clone(),
        })
        .collect()
}

/// The findings as a SARIF 2.1.0 log, for code-scanning dashboards.
pub fn sarif(findings: &[Finding]) -> serde_json::Value {
    let mut rules: Vec<&str> = findings.iter().map(|f| f.rule.as_str()).collect();
    rules.sort_unstable();
    rules.dedup();
    let results: Vec<serde_json::Value> = findings
        .iter()
        .map(|f| {
            let mut region = serde_json::Map::new();
            if let Some(line) = f.line {
                region.insert("startLine".into(), line.into());
            }
            if let Some(column) = f.column {
                region.insert("startColumn".into(), column.into());
            }
            let text = match &f.help {
                Some(help) => format!("{} (help: {help})", f.message),
                None => f.message.clone(),
            };
            serde_json::json!({
                "ruleId": f.rule,
                "level": f.level,
                "message": {"text": text},
                "locations": [{"physicalLocation": {
                    "artifactLocation": {"uri": f.file},
                    "region": region,
                }}],
            })
        })
        .collect();
    serde_json::json!({
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{
            "tool": {"driver": {
                "name": "zerofn",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://zerofn.dev/docs/supply-chain",
                "rules": rules.iter().map(|id| serde_json::json!({
                    "id": id,
                    "shortDescription": {"text": id.replace('-', " ")},
                })).collect::<Vec<_>>(),
            }},
            "results": results,
        }],
    })
}
