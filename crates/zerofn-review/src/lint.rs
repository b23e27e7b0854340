//! `zerofn lint`: each function's grants against what its component can use.
//!
//! A grant the imports cannot use is unused; a grant wider than any use the imports allow is
//! over-broad; an import no grant covers can never succeed; an import the platform refuses or
//! does not link is reported as such. Every finding names the manifest field it is about (the
//! grant, or the function's `component` for findings about imports), where it is written and
//! how to fix it.

use crate::imports::{Capabilities, Refusal, read_imports};
use crate::rules::lint_rule;
use zerofn_admission::{Finding, Level, Severity};
use zerofn_manifest::{Function, KvAccess, Manifest};

/// Reviews every function of `manifest`, reading each component from the path the manifest
/// gives. Findings are in function order (by name), then in the order of the checks.
pub fn lint(manifest: &Manifest) -> Vec<Finding> {
    let mut findings = Vec::new();
    for function in manifest.functions() {
        let bytes = read_component(&function.component_path);
        findings.extend(lint_function(
            manifest,
            function,
            bytes.as_deref().map_err(String::as_str),
        ));
    }
    findings
}

/// Reads a component file, refusing anything but a regular file of a reviewable size.
fn read_component(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let metadata = std::fs::metadata(path).map_err(|e| describe_io(&e))?;
    if !metadata.is_file() {
        return Err("it is not a regular file".into());
    }
    if metadata.len() > crate::imports::MAX_COMPONENT_BYTES as u64 {
        return Err(format!(
            "it is {} bytes, above the {}-byte limit",
            metadata.len(),
            crate::imports::MAX_COMPONENT_BYTES
        ));
    }
    std::fs::read(path).map_err(|e| describe_io(&e))
}

fn describe_io(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "the file does not exist".into(),
        _ => error.to_string(),
    }
}

/// Reviews one function given its component's bytes (or why they could not be read).
pub fn lint_function(
    manifest: &Manifest,
    function: &Function,
    component: Result<&[u8], &str>,
) -> Vec<Finding> {
    let mut review = Review {
        manifest,
        function,
        findings: Vec::new(),
    };
    let component_field = review.field("component");
    let imports = match component
        .map_err(str::to_string)
        .and_then(|bytes| read_imports(bytes).map_err(|e| e.to_string()))
    {
        Ok(imports) => imports,
        Err(why) => {
            review.push(
                "component-unreadable",
                format!(
                    "cannot review function `{}`: component `{}` cannot be read: {why}",
                    function.name,
                    function.component_path.display()
                ),
                &component_field,
                None,
            );
            return review.findings;
        }
    };
    let capabilities = Capabilities::of(&imports);
    review.imports(&capabilities, &component_field);
    review.outbound(&capabilities, &component_field);
    review.kv(&capabilities, &component_field);
    review.secrets(&capabilities, &component_field);
    review.findings
}

/// The number of findings at or above `threshold`.
pub fn at_or_above(findings: &[Finding], threshold: Severity) -> usize {
    findings
        .iter()
        .filter(|f| f.severity.is_some_and(|s| s >= threshold))
        .count()
}

/// The findings for people, as `zerofn admit` prints its own, then the counts by severity and
/// the verdict against `fail_on`.
pub fn render_text(findings: &[Finding], fail_on: Severity) -> String {
    let mut text = zerofn_admission::render_findings(findings);
    if findings.is_empty() {
        text.push_str("no findings");
    } else {
        let counts: Vec<String> = Severity::ALL
            .iter()
            .rev()
            .filter_map(|severity| {
                let n = findings
                    .iter()
                    .filter(|f| f.severity == Some(*severity))
                    .count();
                (n > 0).then(|| format!("{n} {severity}"))
            })
            .collect();
        text.push_str(&format!(
            "{} finding(s): {}",
            findings.len(),
            counts.join(", ")
        ));
    }
    let failing = at_or_above(findings, fail_on);
    if failing > 0 {
        text.push_str(&format!("\nfailed: {failing} at or above `{fail_on}`"));
    } else {
        text.push_str(&format!("\npassed: none at or above `{fail_on}`"));
    }
    text
}

/// The findings as one JSON document: `{"findings": [...], "fail_on": "high", "failing": n}`.
pub fn json(findings: &[Finding], fail_on: Severity) -> serde_json::Value {
    serde_json::json!({
        "findings": findings,
        "fail_on": fail_on,
        "failing": at_or_above(findings, fail_on),
    })
}

/// The findings as SARIF 2.1.0, with the lint rules as the rule catalogue.
pub fn sarif(findings: &[Finding]) -> serde_json::Value {
    zerofn_admission::sarif_with_rules(findings, &crate::rules::rules())
}

struct Review<'a> {
    manifest: &'a Manifest,
    function: &'a Function,
    findings: Vec<Finding>,
}

impl Review<'_> {
    /// `functions.<name>.<rest>`.
    fn field(&self, rest: &str) -> String {
        format!("functions.{}.{rest}", key(&self.function.name))
    }

    fn push(&mut self, id: &str, message: String, field: &str, help: Option<String>) {
        let (level, severity, fix) = match lint_rule(id) {
            Some(rule) => (rule.rule.level, rule.severity, rule.rule.fix),
            None => (Level::Warning, Severity::Info, ""),
        };
        let mut finding = Finding::new(id, level, message)
            .in_file(self.manifest.path().display().to_string())
            .severity(severity)
            .field(field)
            .help(help.unwrap_or_else(|| fix.to_string()));
        // A field that is not written (a grant that is missing) is located at the function.
        if let Some(found) = self.manifest.locate(field) {
            finding = finding
                .at(found.location.line, found.location.column)
                .value(found.written);
        } else if let Some(location) = self.manifest.function_location(&self.function.name) {
            finding = finding.at(location.line, location.column);
        }
        self.findings.push(finding);
    }

    fn imports(&mut self, capabilities: &Capabilities, component_field: &str) {
        let name = &self.function.name;
        for import in &capabilities.unlinked {
            self.push(
                "import-unlinked",
                format!(
                    "function `{name}` imports `{import}`, which zerofn does not link: the deploy will fail"
                ),
                component_field,
                None,
            );
        }
        for (refusal, interfaces) in &capabilities.refused {
            let list = interfaces
                .iter()
                .map(|i| format!("`{i}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let message = match refusal {
                Refusal::ConfigGetAll => format!(
                    "function `{name}` imports {}",
                    Refusal::ConfigGetAll.describe()
                ),
                other => format!(
                    "function `{name}` imports {list}; the platform refuses every call to {}",
                    other.describe()
                ),
            };
            self.push("import-refused", message, component_field, None);
        }
    }

    fn outbound(&mut self, capabilities: &Capabilities, component_field: &str) {
        let function = self.function;
        let name = &function.name;
        if !capabilities.outbound_http {
            for (i, rule) in function.grants.egress.iter().enumerate() {
                self.push(
                    "unused-egress-grant",
                    format!(
                        "function `{name}` is granted egress to `{}`, but its component does not import `wasi:http/outgoing-handler`",
                        rule.as_written
                    ),
                    &self.field(&format!("grants.egress[{i}]")),
                    None,
                );
            }
            for (i, target) in function.grants.invoke.iter().enumerate() {
                self.push(
                    "unused-invoke-grant",
                    format!(
                        "function `{name}` may invoke `{target}`, but its component does not import `wasi:http/outgoing-handler`"
                    ),
                    &self.field(&format!("grants.invoke[{i}]")),
                    None,
                );
            }
            return;
        }
        if function.grants.egress.is_empty() && function.grants.invoke.is_empty() {
            self.push(
                "import-without-grant",
                format!(
                    "function `{name}` imports `wasi:http/outgoing-handler`, but has no `egress` or `invoke` grant: every outbound request is refused"
                ),
                component_field,
                Some(format!(
                    "add `egress = [\"https://host/path\"]` (or `invoke = [\"<function>\"]`) under [functions.{name}.grants], or remove the outbound call"
                )),
            );
        }
        for (i, rule) in function.grants.egress.iter().enumerate() {
            let field = self.field(&format!("grants.egress[{i}]"));
            let url = &rule.as_written;
            if rule.any_subdomain {
                self.push(
                    "egress-wildcard-host",
                    format!(
                        "function `{name}` may reach any subdomain of `{}` through `{url}`",
                        rule.host
                    ),
                    &field,
                    None,
                );
            }
            if rule.scheme == "http" {
                self.push(
                    "egress-plain-http",
                    format!("function `{name}` may send requests in clear text to `{url}`"),
                    &field,
                    None,
                );
            }
            if rule.allow_private {
                self.push(
                    "egress-allow-private",
                    format!("function `{name}` may reach non-public addresses through `{url}` (`allow_private`)"),
                    &field,
                    None,
                );
            }
            if rule.methods.is_empty() {
                self.push(
                    "egress-any-method",
                    format!("function `{name}` may send any method to `{url}`"),
                    &field,
                    Some(format!(
                        "write it as {{ url = \"{url}\", methods = [\"GET\"] }} with the methods the function sends"
                    )),
                );
            }
            if rule.path_prefix == "/" {
                self.push(
                    "egress-any-path",
                    format!("function `{name}` may reach every path of `{url}`"),
                    &field,
                    None,
                );
            }
        }
    }

    fn kv(&mut self, capabilities: &Capabilities, component_field: &str) {
        let name = &self.function.name;
        let reads = capabilities.kv_open && capabilities.kv_read;
        let writes = capabilities.kv_open && capabilities.kv_write;
        for (bucket, access) in &self.function.grants.kv {
            let field = self.field(&format!("grants.kv.{}", key(bucket)));
            let granted = access.as_str();
            let usable_read = access.can_read() && reads;
            let usable_write = access.can_write() && writes;
            if !usable_read && !usable_write {
                let why = if !capabilities.kv_open {
                    "its component does not import `wasi:keyvalue/store.open`".to_string()
                } else {
                    format!(
                        "its component's `wasi:keyvalue` imports can only {}",
                        uses(reads, writes)
                    )
                };
                self.push(
                    "unused-kv-grant",
                    format!(
                        "function `{name}` is granted `{granted}` on bucket `{bucket}`, but {why}"
                    ),
                    &field,
                    None,
                );
            } else if *access == KvAccess::ReadWrite && !(reads && writes) {
                let narrower = if reads { "read" } else { "write" };
                self.push(
                    "kv-access-broader-than-use",
                    format!(
                        "function `{name}` is granted `read-write` on bucket `{bucket}`, but its component's imports can only {}",
                        uses(reads, writes)
                    ),
                    &field,
                    Some(format!("grant `{}` = \"{narrower}\"", key(bucket))),
                );
            }
        }
        let grants = &self.function.grants.kv;
        for (possible, needed, what, verb, verbs) in [
            (
                reads,
                grants.values().any(|a| a.can_read()),
                "read",
                "read from",
                "reads from",
            ),
            (
                writes,
                grants.values().any(|a| a.can_write()),
                "write",
                "write to",
                "writes to",
            ),
        ] {
            if possible && !needed {
                self.push(
                    "import-without-grant",
                    format!(
                        "function `{name}` imports `wasi:keyvalue` functions that {verb} a bucket, but no `kv` grant allows `{what}`: every such call is refused"
                    ),
                    component_field,
                    Some(format!(
                        "grant the bucket it uses under [functions.{name}.grants] (`kv = {{ <bucket> = \"{what}\" }}`), or remove the code that {verbs} it"
                    )),
                );
            }
        }
    }

    fn secrets(&mut self, capabilities: &Capabilities, component_field: &str) {
        let function = self.function;
        let name = &function.name;
        if !capabilities.config_get {
            for (i, secret) in function.grants.secrets.iter().enumerate() {
                self.push(
                    "unused-secret-grant",
                    format!(
                        "function `{name}` is granted secret `{secret}`, but its component does not import `wasi:config/store.get`"
                    ),
                    &self.field(&format!("grants.secrets[{i}]")),
                    None,
                );
            }
        } else if function.grants.secrets.is_empty() && function.config.is_empty() {
            self.push(
                "import-without-grant",
                format!(
                    "function `{name}` imports `wasi:config/store.get`, but is granted no secret and has no `config` value: every read is refused"
                ),
                component_field,
                Some(format!(
                    "grant the secrets it reads (`secrets = [\"<name>\"]` under [functions.{name}.grants]) or set `config`, or remove the read"
                )),
            );
        }
    }
}

fn uses(reads: bool, writes: bool) -> &'static str {
    match (reads, writes) {
        (true, true) => "read and write",
        (true, false) => "read",
        (false, true) => "write",
        (false, false) => "open buckets, neither reading nor writing them",
    }
}

/// A TOML key as a field path writes it: bare when it can be, quoted otherwise.
fn key(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        name.to_string()
    } else {
        format!("\"{name}\"")
    }
}
