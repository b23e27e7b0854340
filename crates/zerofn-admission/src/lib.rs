//! Admission: what decides whether a version may be deployed, and how a refusal explains itself.
//!
//! - [`Finding`]: one reason (or warning), with the rule id, the manifest file, line, column and
//!   field path, the offending value and the fix;
//! - [`RULES`]: the built-in rules, each with its rationale and fix;
//! - [`OperatorPolicy`]: the operator's own rules in Rego, evaluated over one JSON document
//!   (manifest, SBOM, provenance, signer) conftest style (`deny`, `violation`, `warn`);
//! - [`sarif`] and [`render_text`]: the findings for dashboards and for people.
//!
//! The checks that need the platform's state (trust policy, advisory database) live in the
//! server, which turns their refusals into findings; this crate owns the vocabulary.

#![forbid(unsafe_code)]

mod finding;
mod rego;
mod report;
mod rules;

pub use finding::{Finding, Level, Severity};
pub use rego::{OperatorPolicy, PolicyError};
pub use report::{render_findings, render_text, sarif, sarif_with_rules};
pub use rules::{RULES, Rule, rule};
