//! The decision point: grants and guardrails in one validated policy set, the functions as
//! entities, and a decision per request that names the policies that made it.

use crate::grants::{self, GrantPolicy};
use crate::{AccessRequest, Capability, FunctionRef, Guardrails, PolicyError, SCHEMA};
use cedar_policy::{
    ActionConstraint, Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityId,
    EntityTypeName, EntityUid, Policy, PolicyId, PolicySet, Request, RestrictedExpression, Schema,
    ValidationMode, Validator,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use zerofn_manifest::Grants;

/// What the PDP decided, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    pub allowed: bool,
    /// The policies that decided: the permits that allowed, or the forbids that denied. Empty
    /// for a default deny (nothing permitted it).
    pub policies: Vec<String>,
    /// Evaluation errors; any error denies.
    pub errors: Vec<String>,
}

impl Decision {
    /// One line for people and audit reasons.
    pub fn explanation(&self) -> String {
        match (
            self.allowed,
            self.policies.is_empty(),
            self.errors.is_empty(),
        ) {
            (_, _, false) => format!(
                "denied: a policy failed to evaluate ({})",
                self.errors.join("; ")
            ),
            (true, _, _) => format!("allowed by {}", self.policies.join(", ")),
            (false, true, _) => "denied: no grant permits it (default deny)".to_string(),
            (false, false, _) => format!("denied by {}", self.policies.join(", ")),
        }
    }
}

/// The decision point for a set of functions and their grants.
///
/// Cedar evaluates every policy of the set it is given, so one set for the whole platform
/// would cost a decision time proportional to all grants of all apps. Each (function, action)
/// gets its own slice instead: the function's grants for that action plus the guardrails whose
/// action scope includes it. That is exactly the set of policies that can apply (every grant
/// is `principal ==` one function and `action ==` one action), so the decision is the same as
/// over the whole set, and the whole set is what is validated.
pub struct Pdp {
    /// Per action: the guardrails that apply to it (the slice of a principal with no grants).
    guardrails_only: HashMap<&'static str, PolicySet>,
    /// Per (function's Cedar id, action): its grants for the action plus those guardrails.
    slices: HashMap<(String, &'static str), PolicySet>,
    empty: PolicySet,
    entities: Entities,
    authorizer: Authorizer,
    /// Each policy's text and, for guardrails, its file.
    sources: BTreeMap<String, (String, Option<std::path::PathBuf>)>,
}

impl std::fmt::Debug for Pdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pdp")
            .field("policies", &self.sources.len())
            .finish_non_exhaustive()
    }
}

impl Pdp {
    /// Compiles `functions`' grants, adds `guardrails`, and validates everything against the
    /// schema in strict mode.
    pub fn build<'a>(
        guardrails: &Guardrails,
        functions: impl IntoIterator<Item = (FunctionRef, &'a Grants)>,
    ) -> Result<Self, PolicyError> {
        let schema = schema()?;
        let mut policies = PolicySet::new();
        let mut sources = BTreeMap::new();
        let mut entities = Vec::new();
        let mut apps = HashSet::new();
        let mut guardrails_only: HashMap<&'static str, PolicySet> =
            ACTIONS.iter().map(|a| (*a, PolicySet::new())).collect();
        for (policy, file) in &guardrails.policies {
            // Control-plane guardrails are the control PDP's (see `control.rs`).
            if crate::control::names_control_action(policy) {
                continue;
            }
            sources.insert(
                policy.id().to_string(),
                (policy.to_string(), Some(file.clone())),
            );
            add(&mut policies, policy.clone())?;
            for action in ACTIONS {
                if applies_to(policy, action)
                    && let Some(set) = guardrails_only.get_mut(action)
                {
                    add(set, policy.clone())?;
                }
            }
        }
        let mut slices = HashMap::new();
        for (function, grants) in functions {
            let mut function_slices: HashMap<&'static str, PolicySet> = guardrails_only.clone();
            let app = uid("App", &function.app)?;
            apps.insert(function.app.clone());
            entities.push(function_entity(&function, &app)?);
            for secret in &grants.secrets {
                entities.push(Entity::new_no_attrs(
                    uid("Secret", &format!("{}/{secret}", function.app))?,
                    HashSet::from([app.clone()]),
                ));
            }
            for bucket in grants.kv.keys() {
                entities.push(Entity::new_no_attrs(
                    uid("Bucket", &format!("{}/{bucket}", function.app))?,
                    HashSet::from([app.clone()]),
                ));
            }
            for GrantPolicy {
                id,
                action: grant_action,
                text,
            } in grants::compile(&function, grants)
            {
                let policy = Policy::parse(Some(PolicyId::new(&id)), &text)
                    .map_err(|e| PolicyError::Schema(format!("{id}: {e}")))?;
                let action = ACTIONS
                    .iter()
                    .find(|a| **a == grant_action)
                    .copied()
                    .ok_or_else(|| PolicyError::Schema(format!("{id}: unknown action")))?;
                if let Some(set) = function_slices.get_mut(action) {
                    add(set, policy.clone())?;
                }
                add(&mut policies, policy)?;
                sources.insert(id, (text, None));
            }
            for (action, set) in function_slices {
                slices.insert((function.cedar_id(), action), set);
            }
        }
        for app in apps {
            entities.push(Entity::new_no_attrs(uid("App", &app)?, HashSet::new()));
        }
        validate(&schema, &policies)?;
        // Buckets and secrets granted to several functions appear once.
        let mut seen = HashSet::new();
        entities.retain(|e| seen.insert(e.uid()));
        let entities = Entities::from_entities(entities, Some(&schema))
            .map_err(|e| PolicyError::Schema(e.to_string()))?;
        Ok(Pdp {
            guardrails_only,
            slices,
            empty: PolicySet::new(),
            entities,
            authorizer: Authorizer::new(),
            sources,
        })
    }

    /// Decides `request`. Default deny; an evaluation error denies.
    pub fn decide(&self, request: &AccessRequest) -> Decision {
        match self.cedar_request(request) {
            Ok(cedar) => decision(&self.authorizer.is_authorized(
                &cedar,
                self.slice(request),
                &self.entities,
            )),
            Err(error) => Decision {
                allowed: false,
                policies: Vec::new(),
                errors: vec![error],
            },
        }
    }

    /// The text of policy `id` and, for a guardrail, the file it came from.
    pub fn policy(&self, id: &str) -> Option<(&str, Option<&std::path::Path>)> {
        self.sources
            .get(id)
            .map(|(text, file)| (text.as_str(), file.as_deref()))
    }

    /// Every policy id, sorted.
    pub fn policy_ids(&self) -> impl Iterator<Item = &str> {
        self.sources.keys().map(String::as_str)
    }

    /// For the decision benchmark's baseline: Cedar alone deciding `request` `n` times with
    /// the request built once; returns (p50, p99, max).
    #[doc(hidden)]
    pub fn bare_cedar_baseline(
        &self,
        request: &AccessRequest,
        n: usize,
    ) -> (
        std::time::Duration,
        std::time::Duration,
        std::time::Duration,
    ) {
        let Ok(cedar) = self.cedar_request(request) else {
            return Default::default();
        };
        let mut samples: Vec<std::time::Duration> = (0..n.max(1))
            .map(|_| {
                let start = std::time::Instant::now();
                let response =
                    self.authorizer
                        .is_authorized(&cedar, self.slice(request), &self.entities);
                std::hint::black_box(response);
                start.elapsed()
            })
            .collect();
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
        (at(0.5), at(0.99), samples[samples.len() - 1])
    }

    fn slice(&self, request: &AccessRequest) -> &PolicySet {
        let action = request.capability.action();
        self.slices
            .get(&(request.principal.cedar_id(), action))
            .or_else(|| self.guardrails_only.get(action))
            .unwrap_or(&self.empty)
    }

    fn cedar_request(&self, request: &AccessRequest) -> Result<Request, String> {
        let principal =
            uid("Function", &request.principal.cedar_id()).map_err(|e| e.to_string())?;
        let action_name = request.capability.action();
        let action = uid("Action", action_name).map_err(|e| e.to_string())?;
        let (kind, id) = request.capability.resource(&request.principal.app);
        let resource = uid(kind, &id).map_err(|e| e.to_string())?;
        let c = &request.context;
        let mut pairs = vec![
            (
                "invocation_id".to_string(),
                RestrictedExpression::new_string(c.invocation_id.clone()),
            ),
            (
                "caller_chain".to_string(),
                RestrictedExpression::new_set(
                    c.caller_chain
                        .iter()
                        .map(|id| RestrictedExpression::new_string(id.clone())),
                ),
            ),
            (
                "depth".to_string(),
                RestrictedExpression::new_long(c.caller_chain.len() as i64),
            ),
            ("time".to_string(), RestrictedExpression::new_long(c.time)),
            ("risk".to_string(), RestrictedExpression::new_long(c.risk)),
        ];
        if let Capability::Egress(d) = &request.capability {
            let destination = RestrictedExpression::new_record([
                (
                    "scheme".to_string(),
                    RestrictedExpression::new_string(d.scheme.clone()),
                ),
                (
                    "host".to_string(),
                    RestrictedExpression::new_string(d.host.clone()),
                ),
                (
                    "port".to_string(),
                    RestrictedExpression::new_long(i64::from(d.port)),
                ),
                (
                    "path".to_string(),
                    RestrictedExpression::new_string(d.path.clone()),
                ),
                (
                    "method".to_string(),
                    RestrictedExpression::new_string(d.method.clone()),
                ),
                (
                    "address".to_string(),
                    RestrictedExpression::new_string(
                        d.address.map(|a| a.to_string()).unwrap_or_default(),
                    ),
                ),
                (
                    "private".to_string(),
                    RestrictedExpression::new_bool(d.private),
                ),
            ])
            .map_err(|e| e.to_string())?;
            pairs.push(("destination".to_string(), destination));
        }
        // Built by this function to the schema's shape (tests decide every action against the
        // validated policies), so it is not re-validated on the hot path.
        let context = Context::from_pairs(pairs).map_err(|e| e.to_string())?;
        Request::new(principal, action, resource, context, None).map_err(|e| e.to_string())
    }
}

/// Validates `policies` against `schema` in strict mode, naming each failing policy.
pub(crate) fn validate(schema: &Schema, policies: &PolicySet) -> Result<(), PolicyError> {
    let validation = Validator::new(schema.clone()).validate(policies, ValidationMode::Strict);
    if validation.validation_passed() {
        return Ok(());
    }
    let errors: Vec<String> = validation
        .validation_errors()
        .map(|e| format!("{}: {e}", e.policy_id()))
        .collect();
    Err(PolicyError::Schema(errors.join("; ")))
}

/// Cedar's answer as a [`Decision`]: any evaluation error denies.
pub(crate) fn decision(response: &cedar_policy::Response) -> Decision {
    let errors: Vec<String> = response
        .diagnostics()
        .errors()
        .map(ToString::to_string)
        .collect();
    let mut policies: Vec<String> = response
        .diagnostics()
        .reason()
        .map(ToString::to_string)
        .collect();
    policies.sort();
    Decision {
        allowed: response.decision() == CedarDecision::Allow && errors.is_empty(),
        policies,
        errors,
    }
}

/// Every action of the schema.
const ACTIONS: [&str; 5] = ["invoke", "egress", "secret.read", "kv.read", "kv.write"];

/// Whether `policy`'s action scope includes `action`.
pub(crate) fn applies_to(policy: &Policy, action: &str) -> bool {
    let named = |uid: &EntityUid| uid.id().unescaped() == action;
    match policy.action_constraint() {
        ActionConstraint::Any => true,
        ActionConstraint::Eq(uid) => named(&uid),
        ActionConstraint::In(uids) => uids.iter().any(named),
    }
}

fn schema() -> Result<Schema, PolicyError> {
    Schema::from_cedarschema_str(SCHEMA)
        .map(|(schema, _warnings)| schema)
        .map_err(|e| PolicyError::Schema(e.to_string()))
}

pub(crate) fn add(policies: &mut PolicySet, policy: Policy) -> Result<(), PolicyError> {
    let id = policy.id().to_string();
    policies
        .add(policy)
        .map_err(|e| PolicyError::Schema(format!("{id}: {e}")))
}

pub(crate) fn uid(kind: &str, id: &str) -> Result<EntityUid, PolicyError> {
    let kind = EntityTypeName::from_str(kind).map_err(|e| PolicyError::Schema(e.to_string()))?;
    Ok(EntityUid::from_type_name_and_id(kind, EntityId::new(id)))
}

fn function_entity(function: &FunctionRef, app: &EntityUid) -> Result<Entity, PolicyError> {
    let attrs = HashMap::from([
        (
            "app".to_string(),
            RestrictedExpression::new_string(function.app.clone()),
        ),
        (
            "name".to_string(),
            RestrictedExpression::new_string(function.name.clone()),
        ),
    ]);
    Entity::new(
        uid("Function", &function.cedar_id())?,
        attrs,
        HashSet::from([app.clone()]),
    )
    .map_err(|e| PolicyError::Schema(e.to_string()))
}
