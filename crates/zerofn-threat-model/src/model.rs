//! The data-flow model of one app: its elements (outside callers, functions, data stores,
//! external destinations), the flows between them and the trust boundaries those flows cross,
//! derived from the manifest and the operator's deployment context.

use serde::Serialize;
use zerofn_manifest::{Auth, EgressRule, Function, Manifest, Trigger};

/// What the operator's side says about where the app runs: who may sign it, whether the
/// function listener serves TLS, and the guardrails every capability use is also decided by.
#[derive(Debug, Clone, Default)]
pub struct Deployment {
    /// The keys the trust policy lets sign this app now (revoked keys excluded).
    pub signers: Vec<Signer>,
    /// Whether the function listener serves TLS (`[server] tls = "builtin"`).
    pub listener_tls: bool,
    /// The operator's Cedar guardrails (forbid-only).
    pub guardrails: zerofn_policy::Guardrails,
}

/// A key the trust policy lets sign the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signer {
    /// The key's name in the trust policy.
    pub name: String,
    /// The data directory's development key (`zerofn up` creates it), trusted for every app
    /// of that directory and nowhere else.
    pub development: bool,
}

/// The data-flow model and its threats.
#[derive(Debug, Clone, Serialize)]
pub struct ThreatModel {
    /// The model's format, for tools reading the JSON.
    pub schema: &'static str,
    pub app: String,
    pub version: String,
    pub boundaries: Vec<Boundary>,
    pub elements: Vec<Element>,
    pub flows: Vec<Flow>,
    pub entry_points: Vec<EntryPoint>,
    /// The keys that may sign the app, from the trust policy.
    pub signers: Vec<Signer>,
    /// Whether the function listener serves TLS.
    pub listener_tls: bool,
    /// The ids of the operator's guardrails.
    pub guardrails: Vec<String>,
    pub threats: Vec<crate::Threat>,
}

impl ThreatModel {
    /// The JSON document's `schema`.
    pub const SCHEMA: &'static str = "zerofn.threat-model/v1";

    /// The element or flow with `id`.
    pub fn element(&self, id: &str) -> Option<&Element> {
        self.elements.iter().find(|e| e.id == id)
    }

    /// The flow with `id`.
    pub fn flow(&self, id: &str) -> Option<&Flow> {
        self.flows.iter().find(|f| f.id == id)
    }

    /// The threat with `id`.
    pub fn threat(&self, id: &str) -> Option<&crate::Threat> {
        self.threats.iter().find(|t| t.id == id)
    }
}

/// A trust boundary: a zone whose inside trusts nothing that crosses into it unchecked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Boundary {
    pub id: String,
    pub name: String,
    /// The boundary this one sits inside (a function's sandbox inside the node).
    pub parent: Option<String>,
    pub description: String,
}

/// What an element is, in data-flow-diagram terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ElementKind {
    /// Outside the platform's control: callers, operators, destinations.
    ExternalEntity,
    /// Code that runs: a function, the platform's scheduler and control plane.
    Process,
    /// Where data rests: buckets, secrets, queues, the audit log.
    DataStore,
}

impl ElementKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ElementKind::ExternalEntity => "external entity",
            ElementKind::Process => "process",
            ElementKind::DataStore => "data store",
        }
    }
}

/// A node of the data-flow diagram.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Element {
    /// Stable: `fn.<name>`, `kv.<bucket>`, `secret.<name>`, `queue.<name>`, `dest.<url>`,
    /// `callers`, `operators`, `scheduler`, `control-plane`, `audit-log`.
    pub id: String,
    pub kind: ElementKind,
    pub name: String,
    pub boundary: String,
    pub description: String,
}

/// What a flow carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlowKind {
    /// An HTTP request from outside to a function's route.
    Request,
    /// A schedule tick the platform delivers.
    Schedule,
    /// A queued event the platform delivers.
    QueueDelivery,
    /// An event an operator sends to a queue.
    QueueSend,
    /// A function calling another through the platform (`invoke`).
    Invoke,
    KvRead,
    KvWrite,
    SecretRead,
    /// Outbound HTTP to a granted destination (`egress`).
    Egress,
    /// A signed bundle deployed through the control plane.
    Deploy,
    /// The audit events of a function's invocations and capability uses.
    Audit,
}

impl FlowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowKind::Request => "request",
            FlowKind::Schedule => "schedule",
            FlowKind::QueueDelivery => "queue-delivery",
            FlowKind::QueueSend => "queue-send",
            FlowKind::Invoke => "invoke",
            FlowKind::KvRead => "kv-read",
            FlowKind::KvWrite => "kv-write",
            FlowKind::SecretRead => "secret-read",
            FlowKind::Egress => "egress",
            FlowKind::Deploy => "deploy",
            FlowKind::Audit => "audit",
        }
    }
}

/// An edge of the data-flow diagram, from where data leaves to where it arrives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flow {
    /// Stable: `request.<fn>`, `invoke.<caller>.<callee>`, `kv-write.<fn>.<bucket>`,
    /// `egress.<fn>.<index>`, ...
    pub id: String,
    pub kind: FlowKind,
    pub from: String,
    pub to: String,
    /// What the diagram writes on the edge.
    pub label: String,
    /// The trust boundaries it crosses, `from → to`; `None` when it stays inside one.
    pub crosses: Option<(String, String)>,
    /// The manifest field that declares it, when one does.
    pub field: Option<String>,
    /// For capability flows: the guardrails that forbid a use of it (the flow can never be
    /// used while they hold). Empty when none does.
    pub forbidden_by: Vec<String>,
}

/// A way into the app: an HTTP route, a schedule or a queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryPoint {
    pub function: String,
    /// `http`, `schedule` or `queue`.
    pub trigger: &'static str,
    /// `GET /catalog/...`, `schedule 0 3 * * *`, `queue orders`.
    pub describe: String,
    /// `public`, `jwt`, `mtls`, `api-key`; `platform` for schedules and queues (no outside
    /// caller).
    pub auth: &'static str,
    /// The input schema file, when the function has one.
    pub input_schema: Option<String>,
    /// The flow that carries it.
    pub flow: String,
}

/// Trust-boundary ids.
pub(crate) const INTERNET: &str = "internet";
pub(crate) const PRIVATE_NETWORK: &str = "private-network";
pub(crate) const OPERATORS: &str = "operators";
pub(crate) const NODE: &str = "node";

pub(crate) fn sandbox(function: &str) -> String {
    format!("sandbox.{function}")
}

pub(crate) fn function_id(function: &str) -> String {
    format!("fn.{function}")
}

/// The element id of an egress destination: one per URL as written, shared by every function
/// granted it.
pub(crate) fn destination_id(rule: &EgressRule) -> String {
    format!("dest.{}", rule.as_written)
}

/// Builds the elements, flows and boundaries (not yet the threats).
pub(crate) fn data_flow(manifest: &Manifest, deployment: &Deployment) -> ThreatModel {
    let mut builder = Builder::default();
    let functions: Vec<&Function> = manifest.functions().collect();
    builder.boundary(
        INTERNET,
        "Internet",
        None,
        "callers of the function listener and public destinations: nothing here is trusted",
    );
    builder.boundary(
        OPERATORS,
        "Operators",
        None,
        "people and pipelines that sign and deploy the app and send queue events, through the control plane",
    );
    builder.boundary(
        NODE,
        "zerofn node",
        None,
        "the platform process and its store: the policy decision point and every enforcement point",
    );
    for function in &functions {
        builder.boundary(
            &sandbox(&function.name),
            &format!("sandbox: {}", function.name),
            Some(NODE),
            "one wasmtime store per invocation, thrown away when it ends; nothing granted beyond the function's grants",
        );
    }
    if functions
        .iter()
        .flat_map(|f| &f.grants.egress)
        .any(|rule| rule.allow_private)
    {
        builder.boundary(
            PRIVATE_NETWORK,
            "Private network",
            None,
            "loopback, private and link-local addresses, reachable only by grants with `allow_private`",
        );
    }

    builder.element(
        "operators",
        ElementKind::ExternalEntity,
        "Operators / build pipeline",
        OPERATORS,
        "sign bundles with a key the trust policy names, deploy them, set secrets, send queue events",
    );
    builder.element(
        "control-plane",
        ElementKind::Process,
        "Control plane",
        NODE,
        "deploy (admission, signature checks), secrets, queues: a Unix socket or an mTLS listener with Cedar-authorized operators",
    );
    builder.element(
        "audit-log",
        ElementKind::DataStore,
        "Audit log",
        NODE,
        "every decision, invocation and capability use; hash-chained, with signed checkpoints",
    );
    builder.flow(
        "deploy",
        FlowKind::Deploy,
        "operators",
        "control-plane",
        "signed bundle".into(),
        None,
    );
    let http = functions
        .iter()
        .any(|f| matches!(f.trigger, Trigger::Http { .. }));
    if http {
        builder.element(
            "callers",
            ElementKind::ExternalEntity,
            "HTTP callers",
            INTERNET,
            "anyone who can reach the function listener",
        );
    }
    if functions
        .iter()
        .any(|f| matches!(f.trigger, Trigger::Schedule(_)))
    {
        builder.element(
            "scheduler",
            ElementKind::Process,
            "Scheduler",
            NODE,
            "fires schedule functions at their cron matches (UTC)",
        );
    }

    let mut entry_points = Vec::new();
    for function in &functions {
        let name = &function.name;
        let id = function_id(name);
        builder.element(
            &id,
            ElementKind::Process,
            name,
            &sandbox(name),
            &format!("component `{}`", function.component),
        );
        let input_schema = function
            .input
            .as_ref()
            .and_then(|input| input.schema_file.clone());
        let (flow, auth) = match &function.trigger {
            Trigger::Http { .. } => {
                let flow = format!("request.{name}");
                let auth = function.auth.as_ref().map_or("none", Auth::kind);
                builder.flow(
                    &flow,
                    FlowKind::Request,
                    "callers",
                    &id,
                    format!("{} ({auth})", function.trigger.describe()),
                    Some(format!("functions.{name}.trigger")),
                );
                (flow, auth)
            }
            Trigger::Schedule(schedule) => {
                let flow = format!("schedule.{name}");
                builder.flow(
                    &flow,
                    FlowKind::Schedule,
                    "scheduler",
                    &id,
                    format!("tick {}", schedule.cron()),
                    Some(format!("functions.{name}.trigger")),
                );
                (flow, "platform")
            }
            Trigger::Queue { name: queue } => {
                let store = format!("queue.{queue}");
                builder.element(
                    &store,
                    ElementKind::DataStore,
                    &format!("queue {queue}"),
                    NODE,
                    "events checked before they are stored, delivered at least once",
                );
                builder.flow(
                    &format!("queue-send.{queue}"),
                    FlowKind::QueueSend,
                    "operators",
                    &store,
                    "CloudEvent (zerofn queue send)".into(),
                    None,
                );
                let flow = format!("queue.{name}");
                builder.flow(
                    &flow,
                    FlowKind::QueueDelivery,
                    &store,
                    &id,
                    "CloudEvent".into(),
                    Some(format!("functions.{name}.trigger")),
                );
                (flow, "platform")
            }
        };
        entry_points.push(EntryPoint {
            function: name.clone(),
            trigger: function.trigger.kind(),
            describe: function.trigger.describe(),
            auth,
            input_schema,
            flow,
        });

        for callee in &function.grants.invoke {
            builder.flow(
                &format!("invoke.{name}.{callee}"),
                FlowKind::Invoke,
                &id,
                &function_id(callee),
                "invoke".into(),
                Some(format!("functions.{name}.grants.invoke")),
            );
        }
        for (bucket, access) in &function.grants.kv {
            let store = format!("kv.{bucket}");
            builder.element(
                &store,
                ElementKind::DataStore,
                &format!("bucket {bucket}"),
                NODE,
                "the app's key-value bucket; every value sealed (XChaCha20-Poly1305) in the store",
            );
            let field = Some(format!("functions.{name}.grants.kv.{bucket}"));
            if access.can_read() {
                builder.flow(
                    &format!("kv-read.{name}.{bucket}"),
                    FlowKind::KvRead,
                    &store,
                    &id,
                    "kv read".into(),
                    field.clone(),
                );
            }
            if access.can_write() {
                builder.flow(
                    &format!("kv-write.{name}.{bucket}"),
                    FlowKind::KvWrite,
                    &id,
                    &store,
                    "kv write".into(),
                    field,
                );
            }
        }
        for secret in &function.grants.secrets {
            let store = format!("secret.{secret}");
            builder.element(
                &store,
                ElementKind::DataStore,
                &format!("secret {secret}"),
                NODE,
                "sealed by the vault; decrypted only inside an invocation that reads it",
            );
            builder.flow(
                &format!("secret-read.{name}.{secret}"),
                FlowKind::SecretRead,
                &store,
                &id,
                "wasi:config get".into(),
                Some(format!("functions.{name}.grants.secrets")),
            );
        }
        for (index, rule) in function.grants.egress.iter().enumerate() {
            let destination = destination_id(rule);
            // One element per URL, shared by the functions granted it: it is on the private
            // network as soon as one of them may reach it there.
            let private = manifest.functions().any(|other| {
                other
                    .grants
                    .egress
                    .iter()
                    .any(|r| r.as_written == rule.as_written && r.allow_private)
            });
            let boundary = if private { PRIVATE_NETWORK } else { INTERNET };
            builder.element(
                &destination,
                ElementKind::ExternalEntity,
                &rule.as_written,
                boundary,
                "an external destination the function is granted",
            );
            let methods = if rule.methods.is_empty() {
                "any method".to_string()
            } else {
                rule.methods
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            builder.flow(
                &format!("egress.{name}.{index}"),
                FlowKind::Egress,
                &id,
                &destination,
                format!("{} {methods}", rule.scheme),
                Some(format!("functions.{name}.grants.egress[{index}]")),
            );
        }
        builder.flow(
            &format!("audit.{name}"),
            FlowKind::Audit,
            &id,
            "audit-log",
            "events".into(),
            None,
        );
    }

    let Builder {
        boundaries,
        elements,
        mut flows,
    } = builder;
    for flow in &mut flows {
        let boundary_of = |id: &str| {
            elements
                .iter()
                .find(|e| e.id == id)
                .map(|e| e.boundary.clone())
                .unwrap_or_default()
        };
        let (from, to) = (boundary_of(&flow.from), boundary_of(&flow.to));
        if from != to {
            flow.crosses = Some((from, to));
        }
    }
    ThreatModel {
        schema: ThreatModel::SCHEMA,
        app: manifest.app_name().to_string(),
        version: manifest.app_version().to_string(),
        boundaries,
        elements,
        flows,
        entry_points,
        signers: deployment.signers.clone(),
        listener_tls: deployment.listener_tls,
        guardrails: Vec::new(),
        threats: Vec::new(),
    }
}

#[derive(Default)]
struct Builder {
    boundaries: Vec<Boundary>,
    elements: Vec<Element>,
    flows: Vec<Flow>,
}

impl Builder {
    fn boundary(&mut self, id: &str, name: &str, parent: Option<&str>, description: &str) {
        self.boundaries.push(Boundary {
            id: id.to_string(),
            name: name.to_string(),
            parent: parent.map(str::to_string),
            description: description.to_string(),
        });
    }

    /// Adds an element once: buckets, secrets and destinations are shared between functions.
    fn element(&mut self, id: &str, kind: ElementKind, name: &str, boundary: &str, text: &str) {
        if self.elements.iter().any(|e| e.id == id) {
            return;
        }
        self.elements.push(Element {
            id: id.to_string(),
            kind,
            name: name.to_string(),
            boundary: boundary.to_string(),
            description: text.to_string(),
        });
    }

    fn flow(
        &mut self,
        id: &str,
        kind: FlowKind,
        from: &str,
        to: &str,
        label: String,
        field: Option<String>,
    ) {
        if self.flows.iter().any(|f| f.id == id) {
            return;
        }
        self.flows.push(Flow {
            id: id.to_string(),
            kind,
            from: from.to_string(),
            to: to.to_string(),
            label,
            crosses: None,
            field,
            forbidden_by: Vec::new(),
        });
    }
}
