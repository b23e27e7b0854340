//! STRIDE per element: the threat catalogue ([`RULES`]) and the threats of each element and
//! flow of a model, each tied to the control zerofn applies or to the gap where none does.

use crate::model::{ElementKind, FlowKind, ThreatModel};
use serde::Serialize;
use zerofn_admission::Severity;
use zerofn_manifest::{Auth, EgressRule, Function, HttpMethod, Manifest, Trigger};

/// The six STRIDE categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stride {
    Spoofing,
    Tampering,
    Repudiation,
    InformationDisclosure,
    DenialOfService,
    ElevationOfPrivilege,
}

impl Stride {
    pub fn as_str(self) -> &'static str {
        match self {
            Stride::Spoofing => "spoofing",
            Stride::Tampering => "tampering",
            Stride::Repudiation => "repudiation",
            Stride::InformationDisclosure => "information-disclosure",
            Stride::DenialOfService => "denial-of-service",
            Stride::ElevationOfPrivilege => "elevation-of-privilege",
        }
    }

    /// The letter of STRIDE.
    pub fn letter(self) -> char {
        match self {
            Stride::Spoofing => 'S',
            Stride::Tampering => 'T',
            Stride::Repudiation => 'R',
            Stride::InformationDisclosure => 'I',
            Stride::DenialOfService => 'D',
            Stride::ElevationOfPrivilege => 'E',
        }
    }
}

/// Whether zerofn answers a threat, or leaves a gap the app's author should close or accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// A platform control applies; the severity is what remains.
    Control,
    /// Nothing the platform does answers it as declared.
    Gap,
}

/// One entry of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// Stable: tools and the docs match on it.
    pub id: &'static str,
    pub category: Stride,
    /// What it is enumerated for.
    pub applies_to: &'static str,
    pub title: &'static str,
    /// Where the controls it names are documented.
    pub reference: &'static str,
}

/// One threat to one element or flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Threat {
    /// `<rule>@<element or flow id>`: stable while the manifest keeps the element.
    pub id: String,
    pub rule: &'static str,
    pub category: Stride,
    /// The element or flow it threatens.
    pub element: String,
    pub severity: Severity,
    pub status: Status,
    /// The threat, on this element.
    pub threat: String,
    /// The control that applies (naming the mechanism), or why none does.
    pub control: String,
    /// How to close a gap.
    pub fix: Option<String>,
    pub reference: &'static str,
    /// The manifest field it is about, when one is.
    pub field: Option<String>,
    /// The field's line in the manifest.
    pub line: Option<usize>,
}

const SECURITY: &str = "docs/security.md";
const MANIFEST_AUTH: &str = "docs/manifest.md#authentication";
const MANIFEST_INPUT: &str = "docs/manifest.md#input";
const MANIFEST_LIMITS: &str = "docs/manifest.md#limits";
const MANIFEST_EGRESS: &str = "docs/manifest.md#egress";
const MANIFEST_KV: &str = "docs/manifest.md#key-value-grantskv";
const POLICY: &str = "docs/policy.md";
const SUPPLY_CHAIN: &str = "docs/supply-chain.md";
const AUDIT: &str = "docs/audit-events.md";
const CONFIGURATION: &str = "docs/configuration.md";

/// The catalogue, in the order threats are listed for an element.
pub const RULES: &[Rule] = &[
    Rule {
        id: "caller-spoofing",
        category: Stride::Spoofing,
        applies_to: "entry points (requests, schedule ticks, queue deliveries)",
        title: "A caller pretends to be someone it is not",
        reference: MANIFEST_AUTH,
    },
    Rule {
        id: "call-spoofing",
        category: Stride::Spoofing,
        applies_to: "internal calls (invoke)",
        title: "A caller forges the identity a callee sees",
        reference: POLICY,
    },
    Rule {
        id: "destination-spoofing",
        category: Stride::Spoofing,
        applies_to: "egress flows",
        title: "Something else answers in the destination's name",
        reference: MANIFEST_EGRESS,
    },
    Rule {
        id: "signer-spoofing",
        category: Stride::Spoofing,
        applies_to: "the deploy flow",
        title: "Someone deploys code in the app's name",
        reference: SUPPLY_CHAIN,
    },
    Rule {
        id: "input-tampering",
        category: Stride::Tampering,
        applies_to: "entry points (requests, queue deliveries)",
        title: "Crafted input reaches the function's code (injection, deserialization)",
        reference: MANIFEST_INPUT,
    },
    Rule {
        id: "code-tampering",
        category: Stride::Tampering,
        applies_to: "functions",
        title: "The code or configuration that runs is not what was reviewed",
        reference: SUPPLY_CHAIN,
    },
    Rule {
        id: "stored-data-tampering",
        category: Stride::Tampering,
        applies_to: "key-value buckets",
        title: "Stored data is written by someone who should not, or with unchecked content",
        reference: MANIFEST_KV,
    },
    Rule {
        id: "audit-tampering",
        category: Stride::Tampering,
        applies_to: "the audit log",
        title: "The record of what happened is edited or truncated",
        reference: AUDIT,
    },
    Rule {
        id: "caller-repudiation",
        category: Stride::Repudiation,
        applies_to: "HTTP entry points",
        title: "A caller denies having made a request",
        reference: AUDIT,
    },
    Rule {
        id: "action-repudiation",
        category: Stride::Repudiation,
        applies_to: "functions",
        title: "No one can tell what a function did with its capabilities",
        reference: AUDIT,
    },
    Rule {
        id: "listener-eavesdropping",
        category: Stride::InformationDisclosure,
        applies_to: "HTTP entry points",
        title: "Requests, responses and credentials are read on the wire",
        reference: CONFIGURATION,
    },
    Rule {
        id: "egress-in-clear",
        category: Stride::InformationDisclosure,
        applies_to: "egress flows",
        title: "What a function sends out is read or changed on the wire",
        reference: MANIFEST_EGRESS,
    },
    Rule {
        id: "broad-egress",
        category: Stride::InformationDisclosure,
        applies_to: "egress flows",
        title: "A grant reaches more hosts, methods or paths than the function needs",
        reference: MANIFEST_EGRESS,
    },
    Rule {
        id: "secret-exfiltration",
        category: Stride::InformationDisclosure,
        applies_to: "functions that read secrets",
        title: "A compromised function sends a secret it reads to a place of its choosing",
        reference: SECURITY,
    },
    Rule {
        id: "secret-disclosure",
        category: Stride::InformationDisclosure,
        applies_to: "secrets",
        title: "A secret is read by something other than the functions granted it",
        reference: SECURITY,
    },
    Rule {
        id: "stored-data-disclosure",
        category: Stride::InformationDisclosure,
        applies_to: "key-value buckets",
        title: "Stored data is read by someone who should not",
        reference: MANIFEST_KV,
    },
    Rule {
        id: "entry-flooding",
        category: Stride::DenialOfService,
        applies_to: "entry points",
        title: "Callers exhaust the function or the node",
        reference: MANIFEST_LIMITS,
    },
    Rule {
        id: "call-amplification",
        category: Stride::DenialOfService,
        applies_to: "internal calls (invoke)",
        title: "Calls loop or fan out until the node is exhausted",
        reference: POLICY,
    },
    Rule {
        id: "store-exhaustion",
        category: Stride::DenialOfService,
        applies_to: "key-value buckets and queues",
        title: "A store fills up and refuses everyone",
        reference: CONFIGURATION,
    },
    Rule {
        id: "sandbox-escape",
        category: Stride::ElevationOfPrivilege,
        applies_to: "functions",
        title: "Code gains what its grants do not name (ambient authority, another invocation's memory)",
        reference: SECURITY,
    },
    Rule {
        id: "confused-deputy",
        category: Stride::ElevationOfPrivilege,
        applies_to: "internal calls (invoke)",
        title: "A caller gets a callee to use capabilities the caller was not granted",
        reference: POLICY,
    },
    Rule {
        id: "private-network-reach",
        category: Stride::ElevationOfPrivilege,
        applies_to: "egress flows",
        title: "Egress reaches loopback or private addresses (SSRF into the operator's network)",
        reference: MANIFEST_EGRESS,
    },
    Rule {
        id: "capability-misuse",
        category: Stride::ElevationOfPrivilege,
        applies_to: "capability flows (invoke, kv, secrets, egress)",
        title: "A capability is used beyond what its grant and the guardrails allow",
        reference: POLICY,
    },
];

/// The catalogue entry `id`.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// Collects threats in the model's element order.
struct Threats<'a> {
    manifest: &'a Manifest,
    threats: Vec<Threat>,
}

/// What one threat says before it is located and given its rule's fields.
struct Entry {
    severity: Severity,
    status: Status,
    threat: String,
    control: String,
    fix: Option<String>,
    field: Option<String>,
}

fn control(severity: Severity, threat: String, control: String) -> Entry {
    Entry {
        severity,
        status: Status::Control,
        threat,
        control,
        fix: None,
        field: None,
    }
}

fn gap(severity: Severity, threat: String, why: String, fix: String) -> Entry {
    Entry {
        severity,
        status: Status::Gap,
        threat,
        control: why,
        fix: Some(fix),
        field: None,
    }
}

impl Entry {
    fn at(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl Threats<'_> {
    fn add(&mut self, rule_id: &'static str, element: &str, entry: Entry) {
        // Every id used below is in RULES (a test checks every rule is documented).
        let Some(rule) = rule(rule_id) else {
            return;
        };
        let line = entry.field.as_deref().and_then(|field| {
            self.manifest
                .locate(field)
                .map(|located| located.location.line)
        });
        self.threats.push(Threat {
            id: format!("{}@{element}", rule.id),
            rule: rule.id,
            category: rule.category,
            element: element.to_string(),
            severity: entry.severity,
            status: entry.status,
            threat: entry.threat,
            control: entry.control,
            fix: entry.fix,
            reference: rule.reference,
            field: entry.field,
            line,
        });
    }
}

/// Methods that carry a body the function parses.
fn has_body_method(methods: &[HttpMethod]) -> bool {
    methods
        .iter()
        .any(|m| matches!(m.as_str(), "POST" | "PUT" | "PATCH"))
}

fn is_public(function: &Function) -> bool {
    matches!(function.auth, Some(Auth::Public)) && matches!(function.trigger, Trigger::Http { .. })
}

fn holds_grants(function: &Function) -> bool {
    !function.grants.is_empty()
}

/// A function whose unchecked outside input reaches its code: public, a body method (or a
/// queue), and no input schema.
fn takes_unchecked_public_input(function: &Function) -> bool {
    let schema = function.input.as_ref().is_some_and(|i| i.schema.is_some());
    is_public(function)
        && !schema
        && function
            .http()
            .is_some_and(|(_, methods)| has_body_method(methods))
}

/// Egress that reaches more than one known service: a wildcard host, or a whole host with
/// any method.
fn is_broad(rule: &EgressRule) -> bool {
    rule.any_subdomain || (rule.path_prefix == "/" && rule.methods.is_empty())
}

fn verb(count: usize, one: &'static str, many: &'static str) -> &'static str {
    if count == 1 { one } else { many }
}

fn list(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Enumerates the threats of every element and flow of `model`.
pub(crate) fn enumerate(manifest: &Manifest, model: &ThreatModel) -> Vec<Threat> {
    let mut out = Threats {
        manifest,
        threats: Vec::new(),
    };
    let guardrails = if model.guardrails.is_empty() {
        "no guardrails are configured, so the grants alone decide".to_string()
    } else {
        format!(
            "the operator's guardrails ({}) are decided with them and win over any grant",
            list(&model.guardrails)
        )
    };

    signer(&mut out, model);
    for function in manifest.functions() {
        let name = &function.name;
        let id = crate::model::function_id(name);
        entry(&mut out, model, function);
        out.add(
            "code-tampering",
            &id,
            control(
                Severity::Info,
                format!("`{name}` runs code or configuration other than what was signed"),
                "the component's digest and its canonical configuration (grants, limits, auth, input, config, referenced files) are subjects of the signed in-toto statement, checked against the trust policy at deploy and at every load; compiled code is cached under an HMAC of the node's key".into(),
            )
            .at(format!("functions.{name}.component")),
        );
        out.add(
            "action-repudiation",
            &id,
            control(
                Severity::Info,
                format!("no one can tell what `{name}` did with its grants"),
                "every invocation has `invocation.start`/`invocation.end` events, and its capability uses are audited (`authz.decision` for each call, egress, secret read and bucket `open`; `egress`, `secret.read`, `kv.write` and the first `kv.read` per bucket), with the invocation id, the function's SPIFFE identity and the W3C trace".into(),
            ),
        );
        secret_exfiltration(&mut out, function);
        out.add(
            "sandbox-escape",
            &id,
            control(
                Severity::Info,
                format!("`{name}` reaches what its grants do not name, or another invocation's data"),
                "a WASI 0.2 component in wasmtime: a new store per invocation, no environment, files, sockets or name lookup, memory and time limits (`limits`), outbound HTTP, config and key-value only through the platform's enforcement points".into(),
            ),
        );
        for callee in &function.grants.invoke {
            invoke(&mut out, manifest, model, function, callee, &guardrails);
        }
        for bucket in function.grants.kv.keys() {
            for kind in ["kv-read", "kv-write"] {
                let flow = format!("{kind}.{name}.{bucket}");
                if model.flow(&flow).is_some() {
                    capability(&mut out, model, &flow, &guardrails);
                }
            }
        }
        for secret in &function.grants.secrets {
            capability(
                &mut out,
                model,
                &format!("secret-read.{name}.{secret}"),
                &guardrails,
            );
        }
        for (index, rule) in function.grants.egress.iter().enumerate() {
            egress(&mut out, model, function, index, rule, &guardrails);
        }
    }
    for element in &model.elements {
        if element.kind != ElementKind::DataStore {
            continue;
        }
        if let Some(bucket) = element.id.strip_prefix("kv.") {
            kv_store(&mut out, manifest, &element.id, bucket);
        } else if let Some(secret) = element.id.strip_prefix("secret.") {
            let readers: Vec<String> = manifest
                .functions()
                .filter(|f| f.grants.secrets.iter().any(|s| s == secret))
                .map(|f| f.name.clone())
                .collect();
            out.add(
                "secret-disclosure",
                &element.id,
                control(
                    Severity::Info,
                    format!("secret `{secret}` is read by something other than {}", list(&readers)),
                    "sealed at rest by the vault (envelope encryption), decrypted only when a granted read asks for it inside the invocation, redacted from its output, never written to the audit stream; each read is a PDP decision and a `secret.read` event".into(),
                ),
            );
        } else if let Some(queue) = element.id.strip_prefix("queue.") {
            out.add(
                "store-exhaustion",
                &element.id,
                control(
                    Severity::Info,
                    format!("queue `{queue}` fills up"),
                    "a queue holding 10 000 undelivered messages refuses more (`queue-full`); failed deliveries back off and are dead-lettered after the configured attempts (`[queues]`)".into(),
                ),
            );
        } else if element.id == "audit-log" {
            out.add(
                "audit-tampering",
                &element.id,
                control(
                    Severity::Info,
                    "the audit log is edited, reordered or truncated".into(),
                    "one writer chains every event (SHA-256 over the previous hash, id and event) and signs the head with the node's Ed25519 key every 10 000 events or 60 s; `zerofn audit verify` locates any break".into(),
                ),
            );
        }
    }
    out.threats
}

fn signer(out: &mut Threats<'_>, model: &ThreatModel) {
    let named: Vec<String> = model
        .signers
        .iter()
        .filter(|s| !s.development)
        .map(|s| s.name.clone())
        .collect();
    let development = model.signers.iter().any(|s| s.development);
    let threat = format!("someone deploys code in `{}`'s name", model.app);
    let fix = "list the release pipeline's key for this app in the trust policy (`trust.toml`) and revoke `dev-signing.pub` (`revoked = true`) on production nodes".to_string();
    let entry = match (named.is_empty(), development) {
        (true, false) => control(
            Severity::Info,
            threat,
            "no key in the trust policy may sign this app, so every deploy is refused (fail closed) until one is listed".into(),
        ),
        (true, true) => gap(
            Severity::Medium,
            threat,
            "only the development key of this data directory may sign it: whoever can read the data directory can sign a deploy".into(),
            fix,
        ),
        (false, true) => gap(
            Severity::Low,
            threat,
            format!(
                "keys {} may sign it, and so may this data directory's development key",
                list(&named)
            ),
            fix,
        ),
        (false, false) => control(
            Severity::Info,
            threat,
            format!(
                "only keys {} may sign it; a deploy signed by any other key, or with changed code or configuration, is refused",
                list(&named)
            ),
        ),
    };
    out.add("signer-spoofing", "deploy", entry);
}

/// The threats of a function's entry point.
fn entry(out: &mut Threats<'_>, model: &ThreatModel, function: &Function) {
    let name = &function.name;
    let auth_field = format!("functions.{name}.auth");
    let schema = function.input.as_ref().and_then(|i| i.schema_file.clone());
    match &function.trigger {
        Trigger::Http { route, methods } => {
            let flow = format!("request.{name}");
            let route_text = function.trigger.describe();
            let spoofing = match &function.auth {
                None => gap(
                    Severity::High,
                    format!("anyone calls `{route_text}`"),
                    "no `auth` is written: the deploy is refused (`missing-auth`)".into(),
                    format!(
                        "add `[functions.{name}.auth]` with `jwt`, `mtls` or `api-key`, or `public = true` if anyone may call it"
                    ),
                ),
                Some(Auth::Public) => gap(
                    if holds_grants(function) {
                        Severity::Medium
                    } else {
                        Severity::Low
                    },
                    format!("anyone calls `{route_text}`; `{name}` cannot tell callers apart"),
                    if holds_grants(function) {
                        "`public = true`: the route is served to anyone, and the function holds grants that any caller can set in motion".into()
                    } else {
                        "`public = true`: the route is served to anyone (the function holds no grants)".into()
                    },
                    format!(
                        "authenticate callers (`[functions.{name}.auth]` `jwt`, `mtls` or `api-key`) unless the route is meant for anyone"
                    ),
                ),
                Some(auth) => control(
                    Severity::Info,
                    format!("a caller of `{route_text}` pretends to be someone else"),
                    format!(
                        "`auth.{}`: {} before any sandbox exists; the function sees only the verified identity (`x-zerofn-*` headers set by the platform, a caller's own removed)",
                        auth.kind(),
                        match auth {
                            Auth::Jwt(_) =>
                                "bearer tokens are verified (algorithm, key set, issuer, audience, time)",
                            Auth::Mtls(_) =>
                                "client certificates are validated against the CA bundle and the SPIFFE ID pattern",
                            _ =>
                                "API keys are checked against their hash, scope, expiry and revocation",
                        }
                    ),
                ),
            };
            out.add("caller-spoofing", &flow, spoofing.at(auth_field.clone()));

            let input_field = if function.input.is_some() {
                format!("functions.{name}.input")
            } else {
                format!("functions.{name}.trigger")
            };
            let tampering = match (&schema, has_body_method(methods)) {
                (Some(file), _) => control(
                    Severity::Info,
                    format!("crafted input to `{route_text}` reaches `{name}`'s code"),
                    format!("the input guard checks media type, size, UTF-8, depth and the JSON Schema `{file}` before the sandbox starts, for calls from other functions too"),
                ),
                (None, true) => gap(
                    if is_public(function) {
                        Severity::High
                    } else {
                        Severity::Medium
                    },
                    format!("crafted bodies to `{route_text}` reach `{name}`'s code"),
                    "no `input.schema`: the body reaches the function unchecked beyond its size cap, which must then parse and validate everything itself".into(),
                    format!("describe the body in a JSON Schema 2020-12 file and name it in `[functions.{name}.input] schema`"),
                ),
                (None, false) => control(
                    Severity::Low,
                    format!("crafted paths, queries or headers to `{route_text}` reach `{name}`'s code"),
                    format!("only {} (no body to check); bodies are capped at `limits.max_request_body_bytes`, forged `x-zerofn-*` headers removed; the path below `{route}` and the query reach the function, which validates them itself", methods.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")),
                ),
            };
            out.add("input-tampering", &flow, tampering.at(input_field));

            let repudiation = match &function.auth {
                Some(Auth::Public) | None => gap(
                    Severity::Low,
                    format!("a caller of `{route_text}` denies making a request"),
                    "callers are anonymous: `invocation.start` records their address and trace, not an identity".into(),
                    format!("authenticate callers (`[functions.{name}.auth]`) if their actions must be attributable"),
                ),
                Some(auth) => control(
                    Severity::Info,
                    format!("a caller of `{route_text}` denies making a request"),
                    format!("`invocation.start` records the verified caller (`{}` identity), in the hash-chained audit log", auth.kind()),
                ),
            };
            out.add(
                "caller-repudiation",
                &flow,
                repudiation.at(auth_field.clone()),
            );

            let credentials = matches!(function.auth, Some(Auth::Jwt(_) | Auth::ApiKey(_)));
            let eavesdropping = match (model.listener_tls, &function.auth) {
                (true, _) => control(
                    Severity::Info,
                    format!("requests to `{route_text}` are read on the wire"),
                    "the function listener serves TLS 1.3 with the node's SVID (`[server] tls = \"builtin\"`)".into(),
                ),
                (false, Some(Auth::Mtls(_))) => control(
                    Severity::Info,
                    format!("requests to `{route_text}` are read on the wire"),
                    "`auth.mtls` needs the listener to serve TLS: without it the deploy is refused (`auth-unusable`)".into(),
                ),
                (false, _) => gap(
                    if credentials {
                        Severity::High
                    } else {
                        Severity::Medium
                    },
                    format!("requests to `{route_text}` are read or changed on the wire"),
                    if credentials {
                        "the function listener serves plain HTTP, and callers send their credentials (tokens, API keys) with every request".into()
                    } else {
                        "the function listener serves plain HTTP".into()
                    },
                    "serve the function listener over TLS (`[server] tls = \"builtin\"` in the platform config), or terminate TLS in front of it".into(),
                ),
            };
            out.add("listener-eavesdropping", &flow, eavesdropping);

            out.add(
                "entry-flooding",
                &flow,
                control(
                    if is_public(function) { Severity::Low } else { Severity::Info },
                    format!("callers exhaust `{name}` or the node through `{route_text}`"),
                    "token buckets per caller (by address before authentication, then identity) and for all callers (`limits.*requests_per_second`, `*burst`), `max_concurrency`, `timeout_ms`, body caps; a refusal is a 429 with `Retry-After`".into(),
                )
                .at(format!("functions.{name}.limits")),
            );
        }
        Trigger::Schedule(schedule) => {
            let flow = format!("schedule.{name}");
            out.add(
                "caller-spoofing",
                &flow,
                control(
                    Severity::Info,
                    format!("someone triggers `{name}` as if the schedule had"),
                    "no route: only the platform's scheduler invokes it (every path is `404 no-route`)".into(),
                ),
            );
            out.add(
                "entry-flooding",
                &flow,
                control(
                    Severity::Info,
                    format!("ticks of `{}` pile up", schedule.cron()),
                    "a tick is skipped while the previous one runs (`trigger.skipped`); `timeout_ms` bounds each run".into(),
                ),
            );
        }
        Trigger::Queue { name: queue } => {
            let flow = format!("queue.{name}");
            out.add(
                "caller-spoofing",
                &flow,
                control(
                    Severity::Info,
                    format!("someone sends events to queue `{queue}` in another's name"),
                    "no route: events are sent only by operators through the control plane (authenticated, Cedar-authorized, audited), and delivered by the platform".into(),
                ),
            );
            let tampering = match &schema {
                Some(file) => control(
                    Severity::Info,
                    format!("crafted events on queue `{queue}` reach `{name}`'s code"),
                    format!(
                        "each event is checked as a CloudEvent and its `data` against `{file}` before it is stored"
                    ),
                ),
                None => gap(
                    Severity::Medium,
                    format!("crafted events on queue `{queue}` reach `{name}`'s code"),
                    "no `input.schema`: an event's `data` is stored and delivered unchecked".into(),
                    format!(
                        "describe the event data in a JSON Schema and name it in `[functions.{name}.input] schema`"
                    ),
                ),
            };
            out.add(
                "input-tampering",
                &flow,
                tampering.at(format!("functions.{name}.trigger")),
            );
            out.add(
                "entry-flooding",
                &flow,
                control(
                    Severity::Info,
                    format!("events on queue `{queue}` exhaust `{name}`"),
                    "deliveries run under the function's `max_concurrency` and `timeout_ms`; failures back off (1 s doubling to 5 min)".into(),
                ),
            );
        }
    }
}

fn secret_exfiltration(out: &mut Threats<'_>, function: &Function) {
    let grants = &function.grants;
    if grants.secrets.is_empty() {
        return;
    }
    let name = &function.name;
    let threat = format!(
        "a compromised `{name}` sends {} where it likes",
        list(&grants.secrets)
    );
    let broad: Vec<String> = grants
        .egress
        .iter()
        .filter(|r| is_broad(r))
        .map(|r| r.as_written.clone())
        .collect();
    let entry = if grants.egress.is_empty() {
        control(
            Severity::Low,
            threat,
            "no egress grant: the secret can leave only in the function's responses (and through the functions it invokes)".into(),
        )
    } else if broad.is_empty() {
        control(
            Severity::Low,
            threat,
            format!(
                "egress is limited to {} (each request decided by the PDP before any lookup or connection)",
                list(&grants.egress.iter().map(|r| r.as_written.clone()).collect::<Vec<_>>())
            ),
        )
        .at(format!("functions.{name}.grants.egress"))
    } else {
        gap(
            Severity::High,
            threat,
            format!(
                "it reads secrets and its egress is broad ({}): any host or method those grants cover is an exfiltration path",
                list(&broad)
            ),
            "narrow each egress grant to the exact host, path and methods the secret is meant for, or move the secret to a function without broad egress".into(),
        )
        .at(format!("functions.{name}.grants.egress"))
    };
    out.add(
        "secret-exfiltration",
        &crate::model::function_id(name),
        entry,
    );
}

fn invoke(
    out: &mut Threats<'_>,
    manifest: &Manifest,
    model: &ThreatModel,
    function: &Function,
    callee: &str,
    guardrails: &str,
) {
    let name = &function.name;
    let flow = format!("invoke.{name}.{callee}");
    let field = format!("functions.{name}.grants.invoke");
    out.add(
        "call-spoofing",
        &flow,
        control(
            Severity::Info,
            format!("`{callee}` is told the call comes from someone other than `{name}`"),
            "the platform sets the verified caller identity (SPIFFE ID) on the call and strips any `x-zerofn-*` header the caller wrote".into(),
        )
        .at(field.clone()),
    );
    out.add(
        "call-amplification",
        &flow,
        control(
            Severity::Info,
            format!("calls from `{name}` to `{callee}` loop or fan out"),
            "call depth and fan-out per invocation are capped; each callee runs under its own limits and rate caps".into(),
        ),
    );
    let deputy = manifest.function(callee).map(|target| {
        let mine = &function.grants;
        let theirs = &target.grants;
        let mut extra: Vec<String> = Vec::new();
        extra.extend(
            theirs
                .secrets
                .iter()
                .filter(|s| !mine.secrets.contains(s))
                .map(|s| format!("secret {s}")),
        );
        extra.extend(
            theirs
                .kv
                .iter()
                .filter(|(b, a)| mine.kv.get(*b) != Some(a))
                .map(|(b, a)| format!("kv {b} ({})", a.as_str())),
        );
        extra.extend(
            theirs
                .egress
                .iter()
                .filter(|r| !mine.egress.contains(r))
                .map(|r| format!("egress {}", r.as_written)),
        );
        extra.extend(
            theirs
                .invoke
                .iter()
                .filter(|c| !mine.invoke.contains(c) && c.as_str() != name)
                .map(|c| format!("invoke {c}")),
        );
        extra
    });
    let threat = format!("`{name}` gets `{callee}` to use grants `{name}` does not hold");
    let entry = match deputy {
        Some(extra) if !extra.is_empty() => gap(
            Severity::Medium,
            threat,
            format!(
                "`{callee}` holds {} that `{name}` does not; the PDP decides its uses by `{callee}`'s grants, so what `{name}` sends decides what they are used for",
                list(&extra)
            ),
            format!(
                "have `{callee}` check the caller identity the platform sets (and validate calls with an `input.schema`), or grant `{name}` what it needs directly"
            ),
        ),
        _ => control(
            Severity::Low,
            threat,
            format!("`{callee}` holds no grant `{name}` lacks"),
        ),
    };
    out.add("confused-deputy", &flow, entry.at(field));
    capability(out, model, &flow, guardrails);
}

fn capability(out: &mut Threats<'_>, model: &ThreatModel, flow_id: &str, guardrails: &str) {
    let Some(flow) = model.flow(flow_id) else {
        return;
    };
    let name = |id: &str| {
        model
            .element(id)
            .map_or_else(|| id.to_string(), |e| e.name.clone())
    };
    let (holder, what) = match flow.kind {
        FlowKind::Invoke => (name(&flow.from), format!("calls `{}`", name(&flow.to))),
        FlowKind::KvRead => (name(&flow.to), format!("reads {}", name(&flow.from))),
        FlowKind::KvWrite => (name(&flow.from), format!("writes {}", name(&flow.to))),
        FlowKind::SecretRead => (name(&flow.to), format!("reads {}", name(&flow.from))),
        _ => (
            name(&flow.from),
            format!("sends requests to `{}`", name(&flow.to)),
        ),
    };
    let threat = format!("`{holder}` {what} beyond its grant");
    let entry = if flow.forbidden_by.is_empty() {
        control(
            Severity::Info,
            threat,
            format!(
                "each use is an `AccessRequest` decided by the Cedar PDP against the grant's permit and audited (`authz.decision`); {guardrails}"
            ),
        )
    } else {
        control(
            Severity::Info,
            threat,
            format!(
                "forbidden by guardrail {}: the grant is declared but every use of it is denied",
                list(&flow.forbidden_by)
            ),
        )
    };
    let entry = match &flow.field {
        Some(field) => entry.at(field.clone()),
        None => entry,
    };
    out.add("capability-misuse", flow_id, entry);
}

fn egress(
    out: &mut Threats<'_>,
    model: &ThreatModel,
    function: &Function,
    index: usize,
    rule: &EgressRule,
    guardrails: &str,
) {
    let name = &function.name;
    let flow = format!("egress.{name}.{index}");
    let field = format!("functions.{name}.grants.egress[{index}]");
    let url = &rule.as_written;
    let secrets = !function.grants.secrets.is_empty();
    let https = rule.scheme == "https";
    let plain_fix = format!("grant `https://` instead of `{url}`");
    out.add(
        "destination-spoofing",
        &flow,
        if https {
            control(
                Severity::Info,
                format!("something else answers as `{url}`"),
                "TLS with certificate verification (system roots plus the operator's `egress_ca`), connecting only to addresses the PDP allowed".into(),
            )
        } else {
            gap(
                if secrets { Severity::High } else { Severity::Medium },
                format!("something else answers as `{url}`"),
                "plain `http`: nothing authenticates the destination".into(),
                plain_fix.clone(),
            )
        }
        .at(field.clone()),
    );
    out.add(
        "egress-in-clear",
        &flow,
        if https {
            control(
                Severity::Info,
                format!("what `{name}` sends to `{url}` is read on the wire"),
                "TLS (rustls) protects the exchange".into(),
            )
        } else {
            gap(
                if secrets {
                    Severity::High
                } else {
                    Severity::Medium
                },
                format!("what `{name}` sends to `{url}` is read or changed on the wire"),
                if secrets {
                    format!(
                        "plain `http`, from a function that reads {}",
                        list(&function.grants.secrets)
                    )
                } else {
                    "plain `http`".into()
                },
                plain_fix,
            )
        }
        .at(field.clone()),
    );
    let broad_entry = if rule.any_subdomain {
        gap(
            if secrets { Severity::High } else { Severity::Medium },
            format!("`{name}` reaches hosts under `{}` it does not need", rule.host),
            "a wildcard host reaches every host registered under the domain, including ones others control".into(),
            "grant the exact hosts the function calls".into(),
        )
    } else if rule.methods.is_empty() || rule.path_prefix == "/" {
        let mut wide = Vec::new();
        if rule.methods.is_empty() {
            wide.push("any method");
        }
        if rule.path_prefix == "/" {
            wide.push("any path");
        }
        gap(
            Severity::Low,
            format!("`{name}` uses `{url}` beyond what it needs"),
            format!("the grant allows {}", wide.join(" and ")),
            "add the path prefix and the `methods` the function uses: `{ url = \"...\", methods = [\"POST\"] }`".into(),
        )
    } else {
        control(
            Severity::Info,
            format!("`{name}` uses `{url}` beyond what it needs"),
            "one host, a path prefix and named methods, decided for every request before any lookup".into(),
        )
    };
    out.add("broad-egress", &flow, broad_entry.at(field.clone()));
    out.add(
        "private-network-reach",
        &flow,
        if rule.allow_private {
            gap(
                Severity::Medium,
                format!("`{name}` reaches loopback or private addresses through `{url}`"),
                "`allow_private = true`: the destination may resolve to loopback, private or link-local addresses, where the node's and the operator's internal services listen".into(),
                "use a public destination and drop `allow_private`, or keep it only where the service really is on the private network".into(),
            )
        } else {
            control(
                Severity::Info,
                format!("`{name}` reaches loopback or private addresses through `{url}`"),
                "every address the name resolves to is checked and non-public ones are refused; the connector never resolves again (no DNS rebinding)".into(),
            )
        }
        .at(field),
    );
    capability(out, model, &flow, guardrails);
}

fn kv_store(out: &mut Threats<'_>, manifest: &Manifest, element: &str, bucket: &str) {
    let with = |test: fn(zerofn_manifest::KvAccess) -> bool| -> Vec<&Function> {
        manifest
            .functions()
            .filter(|f| f.grants.kv.get(bucket).is_some_and(|a| test(*a)))
            .collect()
    };
    let writers = with(zerofn_manifest::KvAccess::can_write);
    let readers = with(zerofn_manifest::KvAccess::can_read);
    let names = |fs: &[&Function]| list(&fs.iter().map(|f| f.name.clone()).collect::<Vec<_>>());

    let unchecked: Vec<&Function> = writers
        .iter()
        .copied()
        .filter(|f| takes_unchecked_public_input(f))
        .collect();
    let tampering = if writers.is_empty() {
        control(
            Severity::Info,
            format!("bucket `{bucket}` is written by someone who should not"),
            "no function may write it".into(),
        )
    } else if unchecked.is_empty() {
        control(
            Severity::Info,
            format!("bucket `{bucket}` is written by someone who should not"),
            format!(
                "only {} may write it (the PDP decides access at each `open`, and every operation is held to it); values are sealed with AEAD, so a value changed in the store is never returned",
                names(&writers)
            ),
        )
    } else {
        let first = unchecked[0];
        gap(
            Severity::Medium,
            format!("bucket `{bucket}` holds content crafted by anyone"),
            format!("{} {} it and take public bodies with no `input.schema`: unchecked outside input can end up stored, and read back by {}", names(&unchecked), verb(unchecked.len(), "writes", "write"), if readers.is_empty() { "no function".to_string() } else { names(&readers) }),
            format!("give {} an `input.schema`, or authenticate its callers", names(&unchecked)),
        )
        .at(format!("functions.{}.grants.kv.{bucket}", first.name))
    };
    out.add("stored-data-tampering", element, tampering);

    let public: Vec<&Function> = readers.iter().copied().filter(|f| is_public(f)).collect();
    let disclosure = if public.is_empty() {
        control(
            Severity::Info,
            format!("bucket `{bucket}` is read by someone who should not"),
            format!(
                "only {} may read it (the PDP decides access at each `open`, and every operation is held to it); values are sealed (XChaCha20-Poly1305) at rest",
                if readers.is_empty() {
                    "no function".to_string()
                } else {
                    names(&readers)
                }
            ),
        )
    } else {
        let first = public[0];
        gap(
            Severity::Medium,
            format!("anyone reads bucket `{bucket}`"),
            format!("{} {} it and {} public routes: whatever is returned from it is returned to anyone", names(&public), verb(public.len(), "reads", "read"), verb(public.len(), "serves", "serve")),
            format!("authenticate the callers of {} (`auth`), or have it return only what every caller may see", names(&public)),
        )
        .at(format!("functions.{}.auth", first.name))
    };
    out.add("stored-data-disclosure", element, disclosure);

    out.add(
        "store-exhaustion",
        element,
        control(
            Severity::Info,
            format!("bucket `{bucket}` fills up"),
            "the operator's `[kv]` limits cap key and value sizes, batches, the keys per bucket and the bytes per app; a write past them is refused (`kv-bucket-full`, ...) and audited".into(),
        ),
    );
}
