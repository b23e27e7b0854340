//! Findings for people (text) and for code-scanning dashboards (SARIF 2.1.0).

use crate::{Finding, RULES, Rule};
use serde_json::{Value, json};

/// The findings as text, one block per finding, then the verdict:
///
/// ```text
/// warning[wildcard-egress]: function `checkout` may reach any subdomain through `https://*.example.com`
///   --> shop/zerofn.toml:12:3
///   = field: functions.checkout.grants.egress[1] = "https://*.example.com"
///   = help: name each host the function calls
/// ```
pub fn render_text(findings: &[Finding]) -> String {
    let mut text = render_findings(findings);
    let errors = findings.iter().filter(|f| f.is_error()).count();
    if errors == 0 {
        text.push_str("admitted");
    } else {
        text.push_str(&format!("refused: {errors} error(s)"));
    }
    text
}

/// The findings as text, without the verdict (e.g. a deploy's warnings).
pub fn render_findings(findings: &[Finding]) -> String {
    let mut text = String::new();
    for f in findings {
        let severity = f.severity.map(|s| format!(" ({s})")).unwrap_or_default();
        text.push_str(&format!(
            "{}[{}]{severity}: {}\n  --> {}\n",
            f.level.as_str(),
            f.rule,
            f.message,
            f.position()
        ));
        match (&f.field, &f.value) {
            (Some(field), Some(value)) => text.push_str(&format!("  = field: {field} = {value}\n")),
            (Some(field), None) => text.push_str(&format!("  = field: {field}\n")),
            (None, Some(value)) => text.push_str(&format!("  = value: {value}\n")),
            (None, None) => {}
        }
        if let Some(help) = &f.help {
            text.push_str(&format!("  = help: {help}\n"));
        }
    }
    text
}

/// The findings as a SARIF 2.1.0 log. Each result carries the physical location (file, line,
/// column) and, as a logical location, the manifest field path.
pub fn sarif(findings: &[Finding]) -> Value {
    sarif_with_rules(findings, RULES)
}

/// [`sarif`] for findings of another rule catalogue (`zerofn lint`'s): rule descriptors come
/// from `catalogue`, and a finding's severity becomes the `security-severity` dashboards rank by.
pub fn sarif_with_rules(findings: &[Finding], catalogue: &[Rule]) -> Value {
    let rule = |id: &str| catalogue.iter().find(|r| r.id == id);
    let mut ids: Vec<&str> = findings.iter().map(|f| f.rule.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let rules: Vec<Value> = ids
        .iter()
        .map(|id| {
            let mut descriptor = json!({
                "id": id,
                "shortDescription": {"text": id.replace(['-', '.'], " ")},
            });
            if let (Some(rule), Value::Object(map)) = (rule(id), &mut descriptor) {
                map.insert("fullDescription".into(), json!({"text": rule.rationale}));
                map.insert("help".into(), json!({"text": rule.fix}));
                map.insert(
                    "defaultConfiguration".into(),
                    json!({"level": rule.level.as_str()}),
                );
            }
            // GitHub ranks a rule's results by the rule's `security-severity`; the highest
            // severity any of its findings has is the honest one.
            let severity = findings
                .iter()
                .filter(|f| f.rule == *id)
                .filter_map(|f| f.severity)
                .max();
            if let (Some(severity), Value::Object(map)) = (severity, &mut descriptor) {
                map.insert(
                    "properties".into(),
                    json!({"security-severity": severity.score(), "tags": ["security"]}),
                );
            }
            descriptor
        })
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let mut region = serde_json::Map::new();
            if let Some(line) = f.line {
                region.insert("startLine".into(), line.into());
            }
            if let Some(column) = f.column {
                region.insert("startColumn".into(), column.into());
            }
            if let Some(value) = &f.value {
                region.insert("snippet".into(), json!({"text": value}));
            }
            // SARIF requires a region to say where it starts, and a location to say something.
            let mut location = serde_json::Map::new();
            if !f.file.is_empty() {
                let mut physical = json!({"artifactLocation": {"uri": f.file}});
                if region.contains_key("startLine")
                    && let Value::Object(map) = &mut physical
                {
                    map.insert("region".into(), Value::Object(region));
                }
                location.insert("physicalLocation".into(), physical);
            }
            if let Some(field) = &f.field {
                location.insert(
                    "logicalLocations".into(),
                    json!([{"fullyQualifiedName": field, "kind": "member"}]),
                );
            }
            let locations = if location.is_empty() {
                Vec::new()
            } else {
                vec![Value::Object(location)]
            };
            let text = match &f.help {
                Some(help) => format!("{} (help: {help})", f.message),
                None => f.message.clone(),
            };
            let mut result = json!({
                "ruleId": f.rule,
                "ruleIndex": ids.iter().position(|id| *id == f.rule),
                "level": f.level.as_str(),
                "message": {"text": text},
                "locations": locations,
            });
            if let (Some(severity), Value::Object(map)) = (f.severity, &mut result) {
                map.insert("properties".into(), json!({"severity": severity.as_str()}));
            }
            result
        })
        .collect();
    json!({
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{
            "tool": {"driver": {
                "name": "zerofn",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://zerofn.dev/docs/supply-chain",
                "rules": rules,
            }},
            "results": results,
        }],
    })
}
