//! Operator policies in Rego (OPA's language), evaluated in-process with `regorus`, conftest
//! style: every rule named `deny`, `violation` or `warn` (or starting with `deny_`,
//! `violation_`, `warn_`) in any loaded package yields messages; `deny` and `violation` refuse,
//! `warn` reports. A message is a string, or an object with `msg` and optionally `id` (the rule
//! id in refusals, SARIF and counters), `field` (a manifest field path such as
//! `functions.checkout.grants.egress[0]`, which admission turns into a line and column) and
//! `help`.
//!
//! Policies fail closed: a file that does not compile stops the platform from starting (and
//! `zerofn admit` from running); a policy that fails to evaluate, or runs past its time budget,
//! refuses the deploy with `policy-error`.

use crate::{Finding, Level};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one evaluation of all policies may run before it refuses the deploy.
const EVALUATION_BUDGET: Duration = Duration::from_secs(2);

/// The loaded, compiled operator policies.
#[derive(Clone)]
pub struct OperatorPolicy {
    engine: regorus::Engine,
    files: Vec<PathBuf>,
    /// `data.<package>` of every loaded module, deduplicated.
    packages: Vec<String>,
}

impl std::fmt::Debug for OperatorPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorPolicy")
            .field("files", &self.files)
            .field("packages", &self.packages)
            .finish_non_exhaustive()
    }
}

/// Why operator policies could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("policy {} does not compile: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("{} holds no `.rego` file; name policy files or a directory that has some", .0.display())]
    Empty(PathBuf),
}

impl OperatorPolicy {
    /// Loads every `.rego` file named in `paths`; a directory contributes its `.rego` files
    /// (recursively, in name order), except OPA unit tests (`*_test.rego`).
    pub fn load(paths: &[PathBuf]) -> Result<Self, PolicyError> {
        let mut engine = regorus::Engine::new();
        // A builtin that errors makes the evaluation fail (and the deploy refused) rather than
        // quietly leaving a `deny` rule undefined.
        engine.set_strict_builtin_errors(true);
        let mut files = Vec::new();
        for path in paths {
            let found = rego_files(path)?;
            if found.is_empty() {
                return Err(PolicyError::Empty(path.clone()));
            }
            files.extend(found);
        }
        let mut packages = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).map_err(|source| PolicyError::Io {
                path: file.clone(),
                source,
            })?;
            let package = engine
                .add_policy(file.display().to_string(), text)
                .map_err(|e| PolicyError::Invalid {
                    path: file.clone(),
                    reason: e.to_string(),
                })?;
            if !packages.contains(&package) {
                packages.push(package);
            }
        }
        // Analyse now (without evaluating any rule) so that scheduling errors fail at load and
        // clones start prepared. A call to an undefined function only shows when its rule is
        // evaluated: it refuses the deploy with `policy-error`.
        if let Err(e) = engine.eval_query("true".to_string(), false) {
            return Err(PolicyError::Invalid {
                path: files.first().cloned().unwrap_or_default(),
                reason: e.to_string(),
            });
        }
        Ok(OperatorPolicy {
            engine,
            files,
            packages,
        })
    }

    /// The policy files in force.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Evaluates every policy over `input`. Findings name their rule and, when the policy
    /// said so, the field; the caller locates fields in the manifest.
    pub fn evaluate(&self, input: &serde_json::Value) -> Vec<Finding> {
        let mut engine = self.engine.clone();
        if let Some(interval) = NonZeroU32::new(64) {
            engine.set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
                limit: EVALUATION_BUDGET,
                check_interval: interval,
            });
        }
        let input = match serde_json::to_string(input)
            .map_err(|e| e.to_string())
            .and_then(|text| regorus::Value::from_json_str(&text).map_err(|e| e.to_string()))
        {
            Ok(value) => value,
            Err(reason) => return vec![policy_error(format!("cannot build the input: {reason}"))],
        };
        engine.set_input(input);
        let mut findings = Vec::new();
        for package in &self.packages {
            let results = match engine.eval_query(package.clone(), false) {
                Ok(results) => results,
                Err(e) => {
                    findings.push(policy_error(format!("{package}: {e}")));
                    continue;
                }
            };
            let Some(rules) = results
                .result
                .first()
                .and_then(|r| r.expressions.first())
                .and_then(|e| serde_json::to_value(&e.value).ok())
            else {
                continue;
            };
            let Some(rules) = rules.as_object() else {
                continue;
            };
            let short = package.strip_prefix("data.").unwrap_or(package);
            for (name, value) in rules {
                let Some(level) = level_of(name) else {
                    continue;
                };
                for message in messages(value) {
                    findings.push(finding(short, name, level, message));
                }
            }
        }
        findings
    }
}

/// The level of a conftest-style rule name, or `None` for any other rule.
fn level_of(rule: &str) -> Option<Level> {
    let base = rule.split_once('_').map_or(rule, |(base, _)| base);
    match base {
        "deny" | "violation" => Some(Level::Error),
        "warn" => Some(Level::Warning),
        _ => None,
    }
}

/// A rule's messages: a set or array of them, or a single one.
fn messages(value: &serde_json::Value) -> Vec<&serde_json::Value> {
    match value {
        serde_json::Value::Array(items) => items.iter().collect(),
        serde_json::Value::Bool(false) | serde_json::Value::Null => Vec::new(),
        other => vec![other],
    }
}

fn finding(package: &str, rule: &str, level: Level, message: &serde_json::Value) -> Finding {
    let default_id = format!("{package}.{rule}");
    match message {
        serde_json::Value::String(text) => Finding::new(default_id, level, text.clone()),
        serde_json::Value::Object(object) => {
            let text = match object.get("msg") {
                Some(serde_json::Value::String(text)) => text.clone(),
                _ => message.to_string(),
            };
            let id = object
                .get("id")
                .and_then(serde_json::Value::as_str)
                .filter(|id| !id.is_empty())
                .map_or(default_id, str::to_string);
            let mut finding = Finding::new(id, level, text);
            if let Some(field) = object.get("field").and_then(serde_json::Value::as_str) {
                finding = finding.field(field);
            }
            if let Some(help) = object.get("help").and_then(serde_json::Value::as_str) {
                finding = finding.help(help);
            }
            finding
        }
        // `deny = true` style rules: the rule itself is the message.
        serde_json::Value::Bool(true) => {
            Finding::new(default_id.clone(), level, format!("{default_id} holds"))
        }
        other => Finding::new(default_id, level, other.to_string()),
    }
}

fn policy_error(reason: String) -> Finding {
    Finding::new(
        "policy-error",
        Level::Error,
        format!("an operator policy failed to evaluate: {reason}"),
    )
    .help("fix the policy; until it evaluates, every deploy is refused")
}

fn rego_files(path: &Path) -> Result<Vec<PathBuf>, PolicyError> {
    let io = |source| PolicyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    // A symbolic link to a directory is refused, neither followed (a link loop would recurse
    // forever) nor skipped (the rules behind it would silently not apply); an unreadable
    // entry is refused too.
    let mut entries: Vec<(PathBuf, bool)> = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io)? {
        let entry = entry.map_err(io)?;
        let kind = entry.file_type().map_err(io)?;
        let entry_path = entry.path();
        if kind.is_symlink() && entry_path.is_dir() {
            return Err(io(std::io::Error::other(format!(
                "{} is a symbolic link to a directory, which is not followed: name the directory itself",
                entry_path.display()
            ))));
        }
        entries.push((entry_path, kind.is_dir()));
    }
    entries.sort();
    for (entry, is_dir) in entries {
        if is_dir {
            files.extend(rego_files(&entry)?);
        } else if entry.extension().is_some_and(|ext| ext == "rego")
            && !entry
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with("_test.rego"))
        {
            files.push(entry);
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn policy(text: &str) -> Result<OperatorPolicy, PolicyError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.rego"), text).unwrap();
        std::fs::write(dir.path().join("p_test.rego"), "not rego at all").unwrap();
        OperatorPolicy::load(&[dir.path().to_path_buf()])
    }

    const EGRESS_HTTP: &str = r#"
package main

deny contains msg if {
    some name, f in input.manifest.functions
    some i, url in f.grants.egress
    startswith(url, "http://")
    msg := {
        "msg": sprintf("function %s reaches %s in clear text", [name, url]),
        "id": "egress-plain-http",
        "field": sprintf("functions.%s.grants.egress[%d]", [name, i]),
        "help": "use https",
    }
}

warn_versions contains "app versions should be semver" if {
    not regex.match(`^[0-9]+\.[0-9]+\.[0-9]+$`, input.manifest.app.version)
}

helper := 1
"#;

    #[test]
    fn deny_messages_become_findings_with_id_field_and_help() {
        let policy = policy(EGRESS_HTTP).unwrap();
        let input = serde_json::json!({"manifest": {
            "app": {"version": "latest"},
            "functions": {"checkout": {"grants": {"egress": ["https://a.example", "http://b.example"]}}},
        }});
        let mut findings = policy.evaluate(&input);
        findings.sort_by(|a, b| a.rule.cmp(&b.rule));
        assert_eq!(findings.len(), 2, "{findings:?}");
        assert_eq!(findings[0].rule, "egress-plain-http");
        assert_eq!(findings[0].level, Level::Error);
        assert_eq!(
            findings[0].message,
            "function checkout reaches http://b.example in clear text"
        );
        assert_eq!(
            findings[0].field.as_deref(),
            Some("functions.checkout.grants.egress[1]")
        );
        assert_eq!(findings[0].help.as_deref(), Some("use https"));
        assert_eq!(findings[1].rule, "main.warn_versions");
        assert_eq!(findings[1].level, Level::Warning);
    }

    #[test]
    fn a_compliant_input_yields_nothing() {
        let policy = policy(EGRESS_HTTP).unwrap();
        let input = serde_json::json!({"manifest": {
            "app": {"version": "1.0.0"},
            "functions": {"checkout": {"grants": {"egress": ["https://a.example"]}}},
        }});
        assert_eq!(policy.evaluate(&input), Vec::new());
    }

    #[test]
    fn broken_policies_fail_to_load_with_the_file_named() {
        let syntax = policy("package main\ndeny contains msg if {").unwrap_err();
        assert!(syntax.to_string().contains("p.rego"), "{syntax}");
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            OperatorPolicy::load(&[empty.path().to_path_buf()]),
            Err(PolicyError::Empty(_))
        ));
        assert!(matches!(
            OperatorPolicy::load(&[empty.path().join("missing.rego")]),
            Err(PolicyError::Io { .. })
        ));
    }

    #[test]
    #[cfg(unix)]
    fn a_linked_directory_of_policies_is_refused_not_followed_or_skipped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.rego"), "package main\n").unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("loop")).unwrap();
        let error = OperatorPolicy::load(&[dir.path().to_path_buf()]).unwrap_err();
        assert!(error.to_string().contains("symbolic link"), "{error}");
    }

    #[test]
    fn an_undefined_function_refuses_every_deploy() {
        let policy = policy("package main\ndeny contains 1 if { no_such_fn(1) }").unwrap();
        let findings = policy.evaluate(&serde_json::json!({}));
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].rule, "policy-error");
        assert!(findings[0].message.contains("no_such_fn"), "{findings:?}");
    }

    #[test]
    fn an_evaluation_error_refuses_instead_of_passing() {
        let policy =
            policy("package main\ndeny contains \"x\" if { to_number(input.n) > 1 }").unwrap();
        let findings = policy.evaluate(&serde_json::json!({"n": "not a number"}));
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].rule, "policy-error");
        assert!(findings[0].is_error());
    }

    #[test]
    fn a_runaway_policy_is_stopped_and_refuses() {
        let policy = policy(
            "package main\ndeny contains x if { some x in numbers.range(1, 5000); some y in numbers.range(1, 5000); x * y < 0 }",
        )
        .unwrap();
        let findings = policy.evaluate(&serde_json::json!({}));
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].rule, "policy-error");
    }
}
