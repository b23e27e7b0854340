//! Least-privilege review, the design stage of Zero Trust: are a function's grants the smallest
//! that let it work?
//!
//! - statically (`zerofn lint`): each function's grants against the imports of its component;
//! - from use (`zerofn policy suggest`): each function's grants against what the audit stream
//!   says it did, as a manifest diff with the evidence for each grant.
//!
//! Findings are [`zerofn_admission::Finding`]s with a severity, so they print as text, JSON and
//! SARIF exactly like admission's.

#![forbid(unsafe_code)]

pub mod diff;
pub mod imports;
pub mod lint;
pub mod rules;
pub mod suggest;
pub mod usage;

pub use imports::{Capabilities, Import, ImportError, read_imports};
pub use lint::{at_or_above, lint, lint_function};
pub use rules::{LINT_RULES, LintRule};
