//! The policy decision point (PDP, in NIST SP 800-207's words): every capability a function uses
//! (calling another function, reaching a host, reading a secret, using a bucket) is a Cedar
//! request, decided here; the runtime and the platform are the enforcement points that ask.
//!
//! - [`grants`]: a manifest's grants compiled into Cedar `permit` policies, one per grant, with
//!   ids that name the grant (`grant/shop/checkout/invoke/inventory`);
//! - [`Guardrails`]: the operator's organisation-wide `forbid` policies from `.cedar` files,
//!   which win over any grant;
//! - [`Pdp`]: both, validated against zerofn's schema, deciding [`AccessRequest`]s with the
//!   policies that decided them.
//!
//! - [`ControlPdp`]: the control plane's decisions: operators in roles (`viewer`, `deployer`,
//!   `security-admin`) taking control actions (`control.deploy`, ...), with built-in role
//!   permits and the guardrails that name control actions.
//!
//! Default deny: no permit, no access. Fail closed: a policy that errors while deciding denies.

#![forbid(unsafe_code)]

mod control;
pub mod grants;
mod guardrails;
mod pdp;
mod request;

pub use control::{
    CONTROL_ACTIONS, CONTROL_SCHEMA, ControlPdp, ControlRequest, Role, names_control_action,
};
pub use guardrails::Guardrails;
pub use pdp::{Decision, Pdp};
pub use request::{AccessRequest, Capability, Destination, FunctionRef, RequestContext};

/// The Cedar schema every policy is validated against.
pub const SCHEMA: &str = include_str!("schema.cedarschema");

/// Why policies could not be loaded or built.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read guardrails {}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{} holds no `.cedar` file; name guardrail files or a directory that has some", .0.display())]
    Empty(std::path::PathBuf),
    #[error("guardrails {}: {reason}", path.display())]
    Invalid {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error(
        "guardrails {}: policy `{id}` is a `permit`; guardrails may only `forbid` (permissions come from signed manifests' grants)",
        path.display()
    )]
    PermitInGuardrails {
        path: std::path::PathBuf,
        id: String,
    },
    #[error("the policies do not validate against zerofn's schema: {0}")]
    Schema(String),
}
