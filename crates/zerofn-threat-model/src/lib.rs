//! Threat models derived from what an app declares: its manifest, the operator's trust policy
//! and guardrails. The data-flow model (entry points, functions, data stores, external
//! destinations, internal calls, trust boundaries), the STRIDE threats of each element tied to
//! the control zerofn applies or the gap where none does, and its renderings (Markdown, JSON,
//! Mermaid, Graphviz DOT, and SVG through Graphviz's `dot`).
//!
//! Nothing here runs the app or reads the platform's state: the same manifest and deployment
//! context always give the same model, byte for byte, so it can be checked in and reviewed.

#![forbid(unsafe_code)]

mod guardrails;
mod model;
pub mod render;
mod stride;

pub use model::{
    Boundary, Deployment, Element, ElementKind, EntryPoint, Flow, FlowKind, Signer, ThreatModel,
};
pub use stride::{RULES, Rule, Status, Stride, Threat, rule};

/// The model could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The grants and guardrails do not form a valid policy set (the server would not start
    /// with them either).
    #[error("the grants and guardrails do not validate: {0}")]
    Policy(#[from] zerofn_policy::PolicyError),
}

/// The threat model of `manifest`'s app, deployed as `deployment` says.
pub fn build(
    manifest: &zerofn_manifest::Manifest,
    deployment: &Deployment,
) -> Result<ThreatModel, Error> {
    let mut model = model::data_flow(manifest, deployment);
    guardrails::apply(manifest, &deployment.guardrails, &mut model)?;
    model.threats = stride::enumerate(manifest, &model);
    Ok(model)
}
