//! The renderings of a model: Markdown for people, JSON for tools, Mermaid and Graphviz DOT
//! diagrams, and SVG through Graphviz's `dot` when it is installed.

mod dot;
mod markdown;
mod mermaid;
mod svg;

pub use dot::dot;
pub use markdown::markdown;
pub use mermaid::mermaid;
pub use svg::{SvgError, svg};

/// The model as pretty JSON (schema `zerofn.threat-model/v1`), ending with a newline.
pub fn json(model: &crate::ThreatModel) -> String {
    // A model holds only strings, numbers and enums: serializing it cannot fail.
    let mut text = serde_json::to_string_pretty(model).unwrap_or_default();
    text.push('\n');
    text
}

/// A diagram node id made of the element id: letters, digits and `_` only, so that both
/// Mermaid and DOT take it bare, prefixed so that it never starts with a digit or names a
/// keyword (`end`, `graph`).
fn node_id(element: &str) -> String {
    let mut id = String::from("n_");
    for c in element.chars() {
        id.push(if c.is_ascii_alphanumeric() { c } else { '_' });
    }
    // Two ids that differ only in punctuation (`dest.a-b` and `dest.a.b`) would collide:
    // a short hash of the original keeps them apart.
    let hash = element.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    id.push_str(&format!("_{:06x}", hash & 0xff_ffff));
    id
}

/// The worst gap on each element or flow, for diagrams to mark.
fn worst_gap(model: &crate::ThreatModel, element: &str) -> Option<zerofn_admission::Severity> {
    model
        .threats
        .iter()
        .filter(|t| t.element == element && t.status == crate::Status::Gap)
        .map(|t| t.severity)
        .max()
}
