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
                help: rule(error.code()).map(|r| r.fix.to_string()),
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

/// A built-in admission rule: what it protects against and how to satisfy it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rule {
    pub id: &'static str,
    /// `error` refuses a deploy; `warning` does not.
    pub level: &'static str,
    pub rationale: &'static str,
    pub fix: &'static str,
}

/// The built-in rules that admission applies beyond the manifest's syntax.
pub const RULES: &[Rule] = &[
    Rule {
        id: "missing-auth",
        level: "error",
        rationale: "A route nobody declared public must not become public by omission.",
        fix: "Add `[functions.<name>.auth]` with `public = true`, or an authentication method.",
    },
    Rule {
        id: "wildcard-egress",
        level: "error",
        rationale: "A `*.` destination reaches any host an attacker can register under the domain.",
        fix: "Name each host the function calls.",
    },
    Rule {
        id: "input-schema-missing",
        level: "warning",
        rationale: "A write route without a schema hands hostile bodies to code.",
        fix: "Declare `input.schema` (enforced once input validation lands).",
    },
    Rule {
        id: "limit-above-ceiling",
        level: "error",
        rationale: "No manifest may grant itself more than the operator allows.",
        fix: "Lower the limit, or ask the operator to raise the ceiling.",
    },
    Rule {
        id: "unsigned",
        level: "error",
        rationale: "Only signed code runs.",
        fix: "`zerofn build`, then `zerofn sign --key KEY`.",
    },
    Rule {
        id: "signer-not-trusted",
        level: "error",
        rationale: "A signature only counts from a key trusted for this app.",
        fix: "Sign with a trusted key, or add the key to the trust policy for this app.",
    },
    Rule {
        id: "signer-revoked",
        level: "error",
        rationale: "A revoked key signs nothing.",
        fix: "Sign again with a key that is not revoked.",
    },
    Rule {
        id: "bad-signature",
        level: "error",
        rationale: "An altered bundle proves nothing.",
        fix: "Sign again; never edit bundles.",
    },
    Rule {
        id: "malformed-bundle",
        level: "error",
        rationale: "Only standard Sigstore bundles with in-toto statements are verified.",
        fix: "Produce the bundle with `zerofn sign`.",
    },
    Rule {
        id: "provenance-missing",
        level: "error",
        rationale: "Code without provenance cannot be traced to its build.",
        fix: "Run `zerofn build` before `zerofn sign`.",
    },
    Rule {
        id: "component-not-signed",
        level: "error",
        rationale: "The component changed after it was signed.",
        fix: "Sign the component you deploy.",
    },
    Rule {
        id: "config-not-signed",
        level: "error",
        rationale: "Permissions changed after signing are as dangerous as code changed after signing.",
        fix: "Review the configuration change and sign again.",
    },
    Rule {
        id: "sbom-missing",
        level: "error",
        rationale: "Without an SBOM, dependencies cannot be checked.",
        fix: "Run `zerofn build`.",
    },
    Rule {
        id: "blocking-advisory",
        level: "error",
        rationale: "Known-vulnerable dependencies do not ship.",
        fix: "Upgrade the package to a fixed version (`zerofn deps`).",
    },
];

/// The built-in rule with `id`, if it is one.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
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
                "rules": rules.iter().map(|id| match rule(id) {
                    Some(rule) => serde_json::json!({
                        "id": id,
                        "shortDescription": {"text": id.replace('-', " ")},
                        "fullDescription": {"text": rule.rationale},
                        "help": {"text": rule.fix},
                        "defaultConfiguration": {"level": rule.level},
                    }),
                    None => serde_json::json!({
                        "id": id,
                        "shortDescription": {"text": id.replace('-', " ")},
                    }),
                }).collect::<Vec<_>>(),
            }},
            "results": results,
        }],
    })
}
