//! Control-plane decisions: which operator role may take which control action. Role permits
//! are built in (one `permit` per role, id `role/<role>`); the operator's guardrails that name
//! control actions in their action scope are added as `forbid`s and win over the roles.

use crate::pdp::{Decision, add, applies_to, decision, uid, validate};
use crate::{Guardrails, PolicyError};
use cedar_policy::{
    ActionConstraint, Authorizer, Context, Entities, Entity, Policy, PolicyId, PolicySet, Request,
    RestrictedExpression, Schema,
};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The control-plane schema (operators, roles, control actions).
pub const CONTROL_SCHEMA: &str = include_str!("control.cedarschema");

/// Every control action, in the order the docs list them.
pub const CONTROL_ACTIONS: [&str; 13] = [
    "control.read",
    "control.audit.read",
    "control.deploy",
    "control.rollback",
    "control.invoke",
    "control.trust.reload",
    "control.api-key.manage",
    "control.ca.issue",
    "control.secrets.manage",
    "control.queue.send",
    "control.incidents.read",
    "control.incidents.manage",
    "control.release",
];

/// An operator's role. Least privilege: each role has only the actions its job needs, and the
/// roles that change what runs (`deployer`) and what is trusted (`security-admin`) are
/// disjoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Reads state: apps, versions, metrics, JWKS, logs, API key records, the names and
    /// versions of secrets (never their values); reads, follows and verifies the audit
    /// stream and its traces; reads incidents, quarantines and the monitoring loop's report.
    Viewer,
    /// Reads, deploys, rolls back and invokes functions, and sends events to local queues.
    Deployer,
    /// Reads, reloads the trust policy, creates or revokes API keys, issues client
    /// certificates from the built-in CA, sets, rotates and deletes secrets (and rotates the
    /// master key), sends events to local queues (to replay or test what a consumer
    /// refuses), resolves incidents and releases quarantined functions.
    SecurityAdmin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Deployer, Role::SecurityAdmin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Deployer => "deployer",
            Role::SecurityAdmin => "security-admin",
        }
    }

    /// The control actions the role's built-in policy permits.
    pub fn actions(self) -> &'static [&'static str] {
        match self {
            Role::Viewer => &[
                "control.read",
                "control.audit.read",
                "control.incidents.read",
            ],
            Role::Deployer => &[
                "control.read",
                "control.audit.read",
                "control.incidents.read",
                "control.deploy",
                "control.rollback",
                "control.invoke",
                "control.queue.send",
            ],
            Role::SecurityAdmin => &[
                "control.read",
                "control.audit.read",
                "control.trust.reload",
                "control.api-key.manage",
                "control.ca.issue",
                "control.secrets.manage",
                "control.queue.send",
                "control.incidents.read",
                "control.incidents.manage",
                "control.release",
            ],
        }
    }

    /// The built-in Cedar policy of the role.
    pub fn policy_text(self) -> String {
        let actions: Vec<String> = self
            .actions()
            .iter()
            .map(|a| format!("Action::\"{a}\""))
            .collect();
        format!(
            "permit(principal in Role::\"{}\", action in [{}], resource == ControlPlane::\"control\");",
            self.as_str(),
            actions.join(", ")
        )
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .ok_or_else(|| format!("unknown role `{text}`: use viewer, deployer or security-admin"))
    }
}

/// One control-plane question: may this operator, in this role, take this action now?
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlRequest {
    pub operator: String,
    pub role: Role,
    /// One of [`CONTROL_ACTIONS`]; anything else is denied.
    pub action: String,
    /// Seconds since the Unix epoch.
    pub time: i64,
    pub method: String,
    pub path: String,
}

/// The control plane's decision point: the role permits and the control guardrails, validated
/// against [`CONTROL_SCHEMA`] in strict mode.
pub struct ControlPdp {
    policies: PolicySet,
    authorizer: Authorizer,
    schema: Schema,
    sources: BTreeMap<String, (String, Option<std::path::PathBuf>)>,
}

impl std::fmt::Debug for ControlPdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPdp")
            .field("policies", &self.sources.len())
            .finish_non_exhaustive()
    }
}

impl ControlPdp {
    /// The built-in role permits plus every guardrail whose action scope names a control
    /// action (see [`names_control_action`]).
    pub fn build(guardrails: &Guardrails) -> Result<Self, PolicyError> {
        let schema = Schema::from_cedarschema_str(CONTROL_SCHEMA)
            .map(|(schema, _warnings)| schema)
            .map_err(|e| PolicyError::Schema(e.to_string()))?;
        let mut policies = PolicySet::new();
        let mut sources = BTreeMap::new();
        for role in Role::ALL {
            let id = format!("role/{role}");
            let text = role.policy_text();
            let policy = Policy::parse(Some(PolicyId::new(&id)), &text)
                .map_err(|e| PolicyError::Schema(format!("{id}: {e}")))?;
            add(&mut policies, policy)?;
            sources.insert(id, (text, None));
        }
        for (policy, file) in &guardrails.policies {
            if names_control_action(policy) {
                sources.insert(
                    policy.id().to_string(),
                    (policy.to_string(), Some(file.clone())),
                );
                add(&mut policies, policy.clone())?;
            }
        }
        validate(&schema, &policies)?;
        Ok(Self {
            policies,
            authorizer: Authorizer::new(),
            schema,
            sources,
        })
    }

    /// Decides `request`. Default deny; an unknown action or an evaluation error denies.
    pub fn decide(&self, request: &ControlRequest) -> Decision {
        let denied = |error: String| Decision {
            allowed: false,
            policies: Vec::new(),
            errors: vec![error],
        };
        if !CONTROL_ACTIONS.contains(&request.action.as_str()) {
            return denied(format!("`{}` is not a control action", request.action));
        }
        match self.cedar(request) {
            Ok((cedar, entities)) => decision(&self.authorizer.is_authorized(
                &cedar,
                &self.policies,
                &entities,
            )),
            Err(error) => denied(error),
        }
    }

    /// The text of policy `id` and, for a guardrail, the file it came from.
    pub fn policy(&self, id: &str) -> Option<(&str, Option<&std::path::Path>)> {
        self.sources
            .get(id)
            .map(|(text, file)| (text.as_str(), file.as_deref()))
    }

    fn cedar(&self, request: &ControlRequest) -> Result<(Request, Entities), String> {
        let error = |e: PolicyError| e.to_string();
        let role = uid("Role", request.role.as_str()).map_err(error)?;
        let principal = uid("Operator", &request.operator).map_err(error)?;
        let operator = Entity::new(
            principal.clone(),
            HashMap::from([(
                "role".to_string(),
                RestrictedExpression::new_string(request.role.as_str().to_string()),
            )]),
            HashSet::from([role.clone()]),
        )
        .map_err(|e| e.to_string())?;
        let resource = uid("ControlPlane", "control").map_err(error)?;
        let entities = Entities::from_entities(
            [
                operator,
                Entity::new_no_attrs(role, HashSet::new()),
                Entity::new_no_attrs(resource.clone(), HashSet::new()),
            ],
            Some(&self.schema),
        )
        .map_err(|e| e.to_string())?;
        let context = Context::from_pairs([
            (
                "time".to_string(),
                RestrictedExpression::new_long(request.time),
            ),
            (
                "method".to_string(),
                RestrictedExpression::new_string(request.method.clone()),
            ),
            (
                "path".to_string(),
                RestrictedExpression::new_string(request.path.clone()),
            ),
        ])
        .map_err(|e| e.to_string())?;
        let action = uid("Action", &request.action).map_err(error)?;
        let cedar = Request::new(principal, action, resource, context, Some(&self.schema))
            .map_err(|e| e.to_string())?;
        Ok((cedar, entities))
    }
}

/// Whether `policy`'s action scope names a control action. Such a guardrail is a control-plane
/// guardrail: it is validated against [`CONTROL_SCHEMA`] and left out of the functions' PDP.
/// An unscoped guardrail (`action` alone) applies to function actions only, so adding the
/// control plane did not change what existing guardrails mean.
pub fn names_control_action(policy: &Policy) -> bool {
    match policy.action_constraint() {
        ActionConstraint::Any => false,
        _ => CONTROL_ACTIONS.iter().any(|a| applies_to(policy, a)),
    }
}
