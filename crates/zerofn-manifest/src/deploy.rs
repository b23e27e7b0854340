//! Deploy-time checks: what must hold before a manifest's functions may serve traffic.
//!
//! Parsing accepts features that later releases will enforce. Until then this module decides
//! what happens to them, failing closed: a route that asks for a protection the platform
//! cannot give is refused (serving it without would silently drop it), while grants this
//! release does not provide are accepted with a warning because nothing is provided at run
//! time (deny by default).

use std::ops::Range;
use std::path::PathBuf;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::limits::{LimitPolicy, ResolvedLimits};
use crate::model::{Auth, Function, Manifest, Trigger};

/// A manifest that passed [`Manifest::check_deployable`].
#[derive(Debug, Clone)]
pub struct Deployable {
    /// One entry per function, sorted by name.
    pub functions: Vec<DeployableFunction>,
    /// Findings that do not block deployment; show them to the user.
    pub warnings: Diagnostics,
}

/// What the platform needs to serve one function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployableFunction {
    /// The function's name.
    pub name: String,
    /// The component file, which existed when checked.
    pub component_path: PathBuf,
    /// How it is reached: only HTTP functions are routed.
    pub trigger: Trigger,
    /// Its limits, with the policy's defaults filled in.
    pub limits: ResolvedLimits,
    /// What it may use, for the policy decision point.
    pub grants: crate::Grants,
    /// Who may call it (always set: a function without `auth` is not deployable).
    pub auth: Option<Auth>,
    /// Plain config values it reads through `wasi:config`.
    pub config: std::collections::BTreeMap<String, String>,
    /// What a request must look like before the function sees it.
    pub input: Option<crate::InputSpec>,
}

impl Manifest {
    /// Checks what only holds at deploy time, on the server that will run the app. Component
    /// files are not looked at here (the server receives their bytes, and the CLI checks the
    /// files with [`Manifest::check_components`] before sending them):
    ///
    /// - every limit is within `policy`'s ceilings (`limit-above-ceiling`; never clamped);
    /// - `input.max_body_bytes` is not above the function's `limits.max_request_body_bytes`
    ///   (`input-body-above-limit`; the smaller bound would silently win otherwise);
    /// - an `egress` grant to `*.domain` (`wildcard-egress`) or with `allow_private`
    ///   (`private-egress`) is flagged with a warning;
    ///
    /// Returns every function's resolved settings and the warnings, or all errors and
    /// warnings together.
    pub fn check_deployable(&self, policy: &LimitPolicy) -> Result<Deployable, Diagnostics> {
        let mut findings = self.diagnostics();
        let mut functions = Vec::new();
        for function in self.functions() {
            self.check_features(function, &mut findings);
            match policy.resolve(&function.limits) {
                Ok(limits) => {
                    self.check_input_bounds(function, &limits, &mut findings);
                    functions.push(DeployableFunction {
                        name: function.name.clone(),
                        component_path: function.component_path.clone(),
                        trigger: function.trigger.clone(),
                        limits,
                        grants: function.grants.clone(),
                        auth: function.auth.clone(),
                        input: function.input.clone(),
                        config: function.config.clone(),
                    })
                }
                Err(exceeded) => {
                    for e in exceeded {
                        let d = Diagnostic::error(
                            "limit-above-ceiling",
                            &self.path,
                            format!(
                                "`limits.{}` of function `{}` is {}, above the platform ceiling of {}",
                                e.field, function.name, e.requested, e.ceiling
                            ),
                        );
                        let d = match limit_span(function, e.field) {
                            Some(span) => {
                                d.at(&self.source, span, format!("ceiling is {}", e.ceiling))
                            }
                            None => d,
                        }
                        .field(format!("functions.{}.limits.{}", function.name, e.field));
                        findings.push(d.help(format!(
                            "lower it to at most {}, or ask the operator to raise the ceiling \
                             `limits.ceiling.{}` in the platform config",
                            e.ceiling, e.field
                        )));
                    }
                }
            }
        }
        findings.sort();
        if findings.has_errors() {
            Err(findings)
        } else {
            Ok(Deployable {
                functions,
                warnings: findings,
            })
        }
    }

    /// Checks that every function's component file exists (`missing-component`). This looks
    /// at the file system and nothing else; the component is not read.
    pub fn check_components(&self) -> Diagnostics {
        let mut findings = self.diagnostics();
        for function in self.functions() {
            let path = &function.component_path;
            let problem = match std::fs::metadata(path) {
                Ok(meta) if meta.is_file() => continue,
                Ok(_) => format!("component path is not a file: {}", path.display()),
                Err(_) => format!("component file not found: {}", path.display()),
            };
            findings.push(
                Diagnostic::error("missing-component", &self.path, problem)
                    .at(
                        &self.source,
                        function.spans.component.clone(),
                        "no component file here",
                    )
                    .help("run `zerofn build` first, or fix the path"),
            );
        }
        findings
    }

    fn check_features(&self, function: &Function, findings: &mut Diagnostics) {
        let name = &function.name;
        // Only HTTP functions have outside callers; schedule and queue functions may not
        // have `auth` at all (`auth-not-applicable`, at parse).
        if function.auth.is_none() && function.http().is_some() {
            findings.push(
                Diagnostic::error(
                    "missing-auth",
                    &self.path,
                    format!("function `{name}` does not say who may call it"),
                )
                .at_key(
                    &self.source,
                    function.spans.name.clone(),
                    "no `auth` for this function",
                )
                .field(format!("functions.{name}.auth"))
                .help(format!(
                    "zerofn never makes a route public by default; to serve it to anyone, add\n\
                     [functions.{name}.auth]\npublic = true"
                )),
            );
        }
        // Admission rule: a public route is explicit, and flagged so that reviews see it.
        if let (Some(Auth::Public), Some(span)) = (&function.auth, &function.spans.auth) {
            findings.push(
                Diagnostic::warning(
                    "public-route",
                    &self.path,
                    format!("function `{name}` is served to anyone (`public = true`)"),
                )
                .at_key(&self.source, span.clone(), "no authentication")
                .field(format!("functions.{name}.auth"))
                .help(
                    "intended for public content only; require `api-key` authentication otherwise",
                ),
            );
        }
        // Admission rules: egress grants that reach further than one named public host are
        // flagged so that reviews see them. A `*.` grant reaches any host an attacker can
        // register under the domain; `allow_private` reaches the platform's own network. They
        // are warnings, enforced as granted; an operator who forbids them says so in a Rego
        // policy or a Cedar guardrail.
        for (index, rule) in function.grants.egress.iter().enumerate() {
            let field = format!("functions.{name}.grants.egress[{index}]");
            if rule.any_subdomain {
                let d = Diagnostic::warning(
                    "wildcard-egress",
                    &self.path,
                    format!(
                        "function `{name}` may reach any subdomain through `{}`",
                        rule.as_written
                    ),
                );
                findings.push(self.at_field(d, &field, "wildcard destination").help(
                    "name each host the function calls, e.g. `https://assets.cdn.example.com`",
                ));
            }
            if rule.allow_private {
                let d = Diagnostic::warning(
                    "private-egress",
                    &self.path,
                    format!(
                        "function `{name}` may reach loopback, private and link-local addresses through `{}`",
                        rule.as_written
                    ),
                );
                findings.push(self.at_field(d, &field, "private addresses allowed").help(
                    "remove `allow_private` unless the destination really is on a private network",
                ));
            }
        }
        // Admission rule: what a write route accepts is declared. A warning, not a refusal:
        // some write routes take bodies no schema describes (uploads, forms).
        // A queue function takes events whose data anyone with `control.queue.send` chooses.
        let writes = match &function.trigger {
            Trigger::Http { methods, .. } => methods
                .iter()
                .any(|m| matches!(m.as_str(), "POST" | "PUT" | "PATCH")),
            Trigger::Queue { .. } => true,
            Trigger::Schedule(_) => false,
        };
        if writes
            && function
                .input
                .as_ref()
                .and_then(|i| i.schema.as_ref())
                .is_none()
        {
            findings.push(
                Diagnostic::warning(
                    "input-schema-missing",
                    &self.path,
                    format!("function `{name}` accepts writes without an input schema"),
                )
                .at_key(&self.source, function.spans.name.clone(), "no `input.schema`")
                .field(format!("functions.{name}.input.schema"))
                .help("declare `input = { schema = \"schemas/<name>.json\" }` so hostile bodies are refused before the function runs"),
            );
        }
    }

    /// `input-body-above-limit`: the body cap of `input` may not exceed the function's request
    /// body limit, which the operator's ceiling bounds.
    fn check_input_bounds(
        &self,
        function: &Function,
        limits: &ResolvedLimits,
        findings: &mut Diagnostics,
    ) {
        let Some(max) = function.input.as_ref().and_then(|i| i.max_body_bytes) else {
            return;
        };
        if max <= limits.max_request_body_bytes {
            return;
        }
        let name = &function.name;
        let d = Diagnostic::error(
            "input-body-above-limit",
            &self.path,
            format!(
                "`input.max_body_bytes` of function `{name}` is {max}, above its request body limit of {}",
                limits.max_request_body_bytes
            ),
        );
        findings.push(
            self.at_field(
                d,
                &format!("functions.{name}.input.max_body_bytes"),
                "above `limits.max_request_body_bytes`",
            )
            .help(format!(
                "lower it to at most {}, or raise `limits.max_request_body_bytes` of `{name}` too",
                limits.max_request_body_bytes
            )),
        );
    }

    /// Points `diagnostic` at the field `path`, with the value written there.
    fn at_field(&self, diagnostic: Diagnostic, path: &str, label: &str) -> Diagnostic {
        let diagnostic = diagnostic.field(path);
        match self.locate(path) {
            Some(found) => diagnostic.at(&self.source, found.location.span, label),
            None => diagnostic,
        }
    }

    pub(crate) fn diagnostics(&self) -> Diagnostics {
        let mut diagnostics = Diagnostics::new();
        diagnostics.add_source(&self.path, self.source.as_str());
        diagnostics
    }
}

fn limit_span(function: &Function, field: &str) -> Option<Range<usize>> {
    let spans = &function.spans;
    match field {
        "timeout_ms" => spans.timeout_ms.clone(),
        "memory_mb" => spans.memory_mb.clone(),
        "max_concurrency" => spans.max_concurrency.clone(),
        "max_request_body_bytes" => spans.max_request_body_bytes.clone(),
        "max_response_body_bytes" => spans.max_response_body_bytes.clone(),
        "requests_per_second" => spans.requests_per_second.clone(),
        "burst" => spans.burst.clone(),
        "caller_requests_per_second" => spans.caller_requests_per_second.clone(),
        "caller_burst" => spans.caller_burst.clone(),
        _ => None,
    }
}
