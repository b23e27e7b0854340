//! The data-flow diagram as a Mermaid flowchart (GitHub renders it in Markdown).

use super::{node_id, worst_gap};
use crate::{ElementKind, FlowKind, ThreatModel};
use zerofn_admission::Severity;

/// The diagram: one subgraph per trust boundary (sandboxes inside the node), external
/// entities as rectangles, processes rounded, data stores as cylinders; flows with a gap of
/// medium severity or more are drawn thick and red.
pub fn mermaid(model: &ThreatModel) -> String {
    let mut out = String::from("flowchart LR\n");
    boundaries(model, None, 1, &mut out);
    let mut red = Vec::new();
    for (index, flow) in model.flows.iter().enumerate() {
        let arrow = match (flow.kind, flow.forbidden_by.is_empty()) {
            (_, false) => "--x",
            (FlowKind::Audit, _) => "-.->",
            _ => "-->",
        };
        out.push_str(&format!(
            "  {} {arrow}|\"{}\"| {}\n",
            node_id(&flow.from),
            escape(&flow.label),
            node_id(&flow.to)
        ));
        if worst_gap(model, &flow.id).is_some_and(|s| s >= Severity::Medium) {
            red.push(index.to_string());
        }
    }
    if !red.is_empty() {
        out.push_str(&format!(
            "  linkStyle {} stroke:#d00,stroke-width:2px\n",
            red.join(",")
        ));
    }
    out
}

fn boundaries(model: &ThreatModel, parent: Option<&str>, depth: usize, out: &mut String) {
    let indent = "  ".repeat(depth);
    for boundary in model
        .boundaries
        .iter()
        .filter(|b| b.parent.as_deref() == parent)
    {
        out.push_str(&format!(
            "{indent}subgraph {}[\"{}\"]\n",
            node_id(&format!("boundary:{}", boundary.id)),
            escape(&boundary.name)
        ));
        for element in model.elements.iter().filter(|e| e.boundary == boundary.id) {
            let label = escape(&element.name);
            let shape = match element.kind {
                ElementKind::ExternalEntity => format!("[\"{label}\"]"),
                ElementKind::Process => format!("(\"{label}\")"),
                ElementKind::DataStore => format!("[(\"{label}\")]"),
            };
            out.push_str(&format!("{indent}  {}{shape}\n", node_id(&element.id)));
        }
        boundaries(model, Some(&boundary.id), depth + 1, out);
        out.push_str(&format!("{indent}end\n"));
    }
}

/// Mermaid labels are quoted; a quote inside is written as an entity, and so are the
/// characters Markdown or Mermaid would read as markup.
fn escape(text: &str) -> String {
    text.replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
}
