//! The data-flow diagram in Graphviz DOT.

use super::{node_id, worst_gap};
use crate::{ElementKind, FlowKind, ThreatModel};
use zerofn_admission::Severity;

/// The diagram: one cluster per trust boundary (sandboxes inside the node), external entities
/// as boxes, processes as ellipses, data stores as cylinders; the audit flows dashed, flows a
/// guardrail forbids dotted, and flows with a gap of medium severity or more red.
pub fn dot(model: &ThreatModel) -> String {
    let mut out = format!(
        "digraph {} {{\n  label=\"{}\";\n  labelloc=t;\n  rankdir=LR;\n  fontname=\"Helvetica\";\n  node [fontname=\"Helvetica\", fontsize=11];\n  edge [fontname=\"Helvetica\", fontsize=9];\n",
        quote(&format!("threat model {}", model.app)),
        escape(&format!("{} {} data flow", model.app, model.version))
    );
    clusters(model, None, 1, &mut out);
    for flow in &model.flows {
        let mut attributes = vec![format!("label=\"{}\"", escape(&flow.label))];
        if flow.kind == FlowKind::Audit {
            attributes.push("style=dashed".into());
            attributes.push("color=gray50".into());
        }
        if !flow.forbidden_by.is_empty() {
            attributes.push("style=dotted".into());
            attributes.push("arrowhead=tee".into());
        }
        if worst_gap(model, &flow.id).is_some_and(|s| s >= Severity::Medium) {
            attributes.push("color=red".into());
            attributes.push("fontcolor=red".into());
            attributes.push("penwidth=2".into());
        }
        out.push_str(&format!(
            "  {} -> {} [{}];\n",
            node_id(&flow.from),
            node_id(&flow.to),
            attributes.join(", ")
        ));
    }
    out.push_str("}\n");
    out
}

fn clusters(model: &ThreatModel, parent: Option<&str>, depth: usize, out: &mut String) {
    let indent = "  ".repeat(depth);
    for boundary in model
        .boundaries
        .iter()
        .filter(|b| b.parent.as_deref() == parent)
    {
        out.push_str(&format!(
            "{indent}subgraph cluster_{} {{\n{indent}  label=\"{}\";\n{indent}  style=dashed;\n{indent}  color=\"#b03030\";\n",
            node_id(&boundary.id),
            escape(&boundary.name)
        ));
        for element in model.elements.iter().filter(|e| e.boundary == boundary.id) {
            let shape = match element.kind {
                ElementKind::ExternalEntity => "box",
                ElementKind::Process => "ellipse",
                ElementKind::DataStore => "cylinder",
            };
            let color = if worst_gap(model, &element.id).is_some_and(|s| s >= Severity::Medium) {
                ", color=red"
            } else {
                ""
            };
            out.push_str(&format!(
                "{indent}  {} [label=\"{}\", shape={shape}{color}];\n",
                node_id(&element.id),
                escape(&element.name)
            ));
        }
        clusters(model, Some(&boundary.id), depth + 1, out);
        out.push_str(&format!("{indent}}}\n"));
    }
}

/// The inside of a DOT double-quoted string.
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

fn quote(text: &str) -> String {
    format!("\"{}\"", escape(text))
}
