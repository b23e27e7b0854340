//! Which of the operator's guardrails forbid a flow the manifest declares: each capability
//! flow is asked of the same PDP the server builds, as one representative use.

use crate::model::{FlowKind, ThreatModel};
use zerofn_manifest::Manifest;
use zerofn_policy::{
    AccessRequest, Capability, Destination, FunctionRef, Guardrails, Pdp, RequestContext,
};

/// Records the guardrail ids on the model and, on each capability flow, the guardrails that
/// deny its representative use.
pub(crate) fn apply(
    manifest: &Manifest,
    guardrails: &Guardrails,
    model: &mut ThreatModel,
) -> Result<(), zerofn_policy::PolicyError> {
    let app = manifest.app_name();
    let pdp = Pdp::build(
        guardrails,
        manifest
            .functions()
            .map(|f| (FunctionRef::new(app, &f.name), &f.grants))
            .collect::<Vec<_>>(),
    )?;
    model.guardrails = pdp
        .policy_ids()
        .filter(|id| !id.starts_with("grant/"))
        .map(str::to_string)
        .collect();
    if model.guardrails.is_empty() {
        return Ok(());
    }
    for flow in &mut model.flows {
        let Some((function, capability)) = representative(manifest, flow) else {
            continue;
        };
        let decision = pdp.decide(&AccessRequest {
            principal: FunctionRef::new(app, function),
            capability,
            // Fixed, so that the same inputs always give the same model: guardrails that
            // depend on time or risk are judged at the epoch and risk 0.
            context: RequestContext {
                invocation_id: "threat-model".into(),
                caller_chain: Vec::new(),
                time: 0,
                risk: 0,
            },
        });
        if !decision.allowed {
            flow.forbidden_by = decision
                .policies
                .into_iter()
                .filter(|id| !id.starts_with("grant/"))
                .collect();
        }
    }
    Ok(())
}

/// The function using a capability flow and one use of it that its grant permits.
fn representative(manifest: &Manifest, flow: &crate::Flow) -> Option<(String, Capability)> {
    let parts: Vec<&str> = flow.id.splitn(3, '.').collect();
    let (function, target) = (parts.get(1)?.to_string(), parts.get(2)?.to_string());
    let capability = match flow.kind {
        FlowKind::Invoke => Capability::Invoke { callee: target },
        FlowKind::KvRead => Capability::KvRead { bucket: target },
        FlowKind::KvWrite => Capability::KvWrite { bucket: target },
        FlowKind::SecretRead => Capability::SecretRead { name: target },
        FlowKind::Egress => {
            let index: usize = target.parse().ok()?;
            let rule = manifest.function(&function)?.grants.egress.get(index)?;
            let host = if rule.any_subdomain {
                format!("sub.{}", rule.host)
            } else {
                rule.host.clone()
            };
            let method = rule.methods.first().map_or("GET", |m| m.as_str());
            Capability::Egress(Destination::new(
                &rule.scheme,
                &host,
                rule.effective_port(),
                &rule.path_prefix,
                method,
            ))
        }
        _ => return None,
    };
    Some((function, capability))
}
