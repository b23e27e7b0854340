//! The causal tree of one trace, built from its audit events (`zerofn trace`, `GET
//! /v1/traces/<trace_id>`). Every event of an invocation carries its trace id, its span and the
//! span that caused it (see [`crate::correlation`]); the events of one span are one node: an
//! invocation (its start, end, authentication, refusals), or one capability use (a decision
//! and what followed it: a secret read, an egress exchange, a call, a key-value write). A
//! node's children are the spans it caused, oldest first: the capability uses of an
//! invocation, and under a call or an egress exchange to a function of this node, the
//! invocation it started.
//!
//! Built from what the store holds, so it trusts nothing about shape: a parent that is not in
//! the trace (the caller outside the platform, or an event lost), or a cycle, puts the node at
//! the root with `parent_unknown` set; nesting stops at [`MAX_DEPTH`].

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use zerofn_store::AuditRow;

/// How deep the tree goes; deeper nodes are put at the root (calls are at most
/// [`crate::calls::MAX_CALL_DEPTH`] deep, each with a handful of levels).
pub const MAX_DEPTH: usize = 64;
/// The most events one trace is read with.
pub const MAX_EVENTS: u32 = 10_000;

/// One trace as a tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceTree {
    pub trace_id: String,
    /// Invocation nodes.
    pub invocations: usize,
    pub events: usize,
    /// From the first event to the last.
    pub duration_ms: i64,
    pub roots: Vec<SpanNode>,
}

/// The events of one span, and the spans it caused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanNode {
    pub span_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
    /// `invocation`, `refused`, or the capability: `invoke`, `egress`, `secret.read`,
    /// `kv.write`, `kv.denied`, `kv.open`, `authz`; otherwise the first event's kind.
    pub kind: String,
    /// One line for people.
    pub summary: String,
    /// When the span's first event happened (milliseconds since the Unix epoch).
    pub at_ms: i64,
    /// The parent span is not in the trace: for an invocation, a caller outside the platform;
    /// for anything else, a record that is missing.
    #[serde(default)]
    pub parent_unknown: bool,
    /// The span's events as recorded, oldest first.
    pub events: Vec<Value>,
    pub children: Vec<SpanNode>,
}

/// Whether `text` is a W3C trace id: 32 lowercase hex digits, not all zero.
pub fn is_trace_id(text: &str) -> bool {
    text.len() == 32
        && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && text.bytes().any(|b| b != b'0')
}

/// The tree of `trace_id` from its events (any order); `None` when there are none.
pub fn build(trace_id: &str, rows: &[AuditRow]) -> Option<TraceTree> {
    if rows.is_empty() {
        return None;
    }
    let mut rows: Vec<&AuditRow> = rows.iter().collect();
    rows.sort_by_key(|row| (row.at_ms, row.id));

    // Spans in the order their first event happened.
    let mut order: Vec<String> = Vec::new();
    let mut spans: HashMap<String, Vec<&AuditRow>> = HashMap::new();
    for row in &rows {
        let span =
            text(&row.event, "span_id").map_or_else(|| format!("event-{}", row.id), str::to_owned);
        spans
            .entry(span.clone())
            .or_insert_with(|| {
                order.push(span.clone());
                Vec::new()
            })
            .push(row);
    }
    let parent_of = |span: &str| -> Option<String> {
        spans
            .get(span)?
            .iter()
            .find_map(|row| text(&row.event, "parent_span_id").map(str::to_owned))
    };
    let mut children: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut roots: Vec<&str> = Vec::new();
    for span in &order {
        match parent_of(span) {
            Some(parent) if parent != *span => match spans.get_key_value(parent.as_str()) {
                Some((parent, _)) => children.entry(parent.as_str()).or_default().push(span),
                None => roots.push(span),
            },
            _ => roots.push(span),
        }
    }

    let mut builder = Builder {
        spans: &spans,
        children: &children,
        placed: HashSet::new(),
        parent_of: &parent_of,
    };
    let mut tree: Vec<SpanNode> = Vec::new();
    let mut pending: Vec<(&str, bool)> = roots.iter().map(|s| (*s, true)).collect();
    // Whatever the roots did not reach (a cycle, or nesting past the cap) joins the root too.
    loop {
        for (span, _) in std::mem::take(&mut pending) {
            if let Some(node) = builder.node(span, 0, false) {
                tree.push(node);
            }
        }
        match order.iter().find(|s| !builder.placed.contains(s.as_str())) {
            Some(left) => pending.push((left, true)),
            None => break,
        }
    }
    tree.sort_by_key(|node| node.at_ms);
    let invocations = count(&tree, &|node| node.kind == "invocation");
    let first = rows.first().map_or(0, |row| row.at_ms);
    let last = rows.last().map_or(0, |row| row.at_ms);
    Some(TraceTree {
        trace_id: trace_id.to_string(),
        invocations,
        events: rows.len(),
        duration_ms: last - first,
        roots: tree,
    })
}

struct Builder<'a, F> {
    spans: &'a HashMap<String, Vec<&'a AuditRow>>,
    children: &'a BTreeMap<&'a str, Vec<&'a str>>,
    placed: HashSet<String>,
    parent_of: &'a F,
}

impl<F: Fn(&str) -> Option<String>> Builder<'_, F> {
    fn node(&mut self, span: &str, depth: usize, under_call: bool) -> Option<SpanNode> {
        if !self.placed.insert(span.to_string()) {
            return None;
        }
        let rows = self.spans.get(span)?;
        let parent_span_id = (self.parent_of)(span);
        let parent_unknown = parent_span_id.is_some() && depth == 0;
        let (kind, summary) = describe(rows, under_call);
        let mut children = Vec::new();
        if depth < MAX_DEPTH {
            let is_call = kind == "invoke" || kind == "egress";
            for child in self.children.get(span).into_iter().flatten() {
                if let Some(node) = self.node(child, depth + 1, is_call) {
                    children.push(node);
                }
            }
        }
        children.sort_by_key(|node| node.at_ms);
        Some(SpanNode {
            span_id: span.to_string(),
            parent_span_id,
            kind,
            summary,
            at_ms: rows.first().map_or(0, |row| row.at_ms),
            parent_unknown,
            events: rows.iter().map(|row| row.event.clone()).collect(),
            children,
        })
    }
}

fn count(nodes: &[SpanNode], matches: &dyn Fn(&SpanNode) -> bool) -> usize {
    nodes
        .iter()
        .map(|node| usize::from(matches(node)) + count(&node.children, matches))
        .sum()
}

fn text<'a>(event: &'a Value, field: &str) -> Option<&'a str> {
    event.get(field)?.as_str()
}

fn detail<'a>(event: &'a Value, field: &str) -> Option<&'a Value> {
    event.get("detail")?.get(field)
}

fn detail_text(event: &Value, field: &str) -> String {
    match detail(event, field) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// `spiffe://<domain>/app/<app>/fn/<function>` as `<app>/<function>`; anything else as is.
fn short_identity(identity: &str) -> String {
    let path = identity
        .strip_prefix("spiffe://")
        .and_then(|rest| rest.split_once('/'))
        .map(|(_, path)| path);
    match path.map(|p| p.split('/').collect::<Vec<_>>()).as_deref() {
        Some(["app", app, "fn", function]) => format!("{app}/{function}"),
        _ => identity.to_string(),
    }
}

fn decided(event: &Value) -> &'static str {
    match text(event, "outcome") {
        Some("success") => "allowed",
        Some("denied") => "denied",
        _ => "failed",
    }
}

/// The node's kind and its line, from the span's events.
fn describe(rows: &[&AuditRow], under_call: bool) -> (String, String) {
    let find = |kinds: &[&str]| {
        rows.iter()
            .find(|row| kinds.contains(&row.kind.as_str()))
            .map(|row| &row.event)
    };
    if let Some(start_or_end) = find(&["invocation.start", "invocation.end"]) {
        return (
            "invocation".into(),
            invocation_line(rows, start_or_end, under_call),
        );
    }
    let any = &rows[0].event;
    let refusal = find(&["request.refused"]);
    if let Some(event) = find(&["egress", "egress.denied"]) {
        let head = format!(
            "egress {} {}",
            detail_text(event, "method"),
            detail_text(event, "destination")
        );
        let tail = match (text(event, "kind"), text(event, "outcome")) {
            (Some("egress"), Some("success")) => detail_text(event, "status"),
            (Some("egress.denied"), _) => format!("denied {}", text(event, "reason").unwrap_or("")),
            _ => format!("failed {}", text(event, "reason").unwrap_or("")),
        };
        return ("egress".into(), format!("{head}  {tail}"));
    }
    if let Some(event) = find(&["secret.read"]) {
        let outcome = match (text(event, "outcome"), text(event, "reason")) {
            (Some("success"), _) => "allowed".to_string(),
            (Some("denied"), _) => "denied".to_string(),
            (_, reason) => reason.unwrap_or("failed").to_string(),
        };
        return (
            "secret.read".into(),
            format!("secret.read {}  {outcome}", detail_text(event, "name")),
        );
    }
    if let Some(event) = find(&["kv.write"]) {
        let keys = detail(event, "keys").and_then(Value::as_u64).unwrap_or(0);
        return (
            "kv.write".into(),
            format!(
                "kv.write {} {}  {keys} key{}",
                detail_text(event, "bucket"),
                detail_text(event, "operation"),
                if keys == 1 { "" } else { "s" }
            ),
        );
    }
    if let Some(event) = find(&["kv.denied"])
        && find(&["authz.decision"]).is_none()
    {
        return (
            "kv.denied".into(),
            format!(
                "kv.denied {} {}  {}",
                detail_text(event, "bucket"),
                detail_text(event, "operation"),
                text(event, "reason").unwrap_or("")
            ),
        );
    }
    if let Some(event) = find(&["authz.decision"]) {
        let action = detail_text(event, "action");
        let resource = detail_text(event, "resource");
        return match action.as_str() {
            "invoke" => {
                let outcome = match refusal {
                    Some(refused) if decided(event) == "allowed" => {
                        format!("refused {}", text(refused, "reason").unwrap_or(""))
                    }
                    _ => decided(event).to_string(),
                };
                (
                    "invoke".into(),
                    format!("invoke {}  {outcome}", short_identity(&resource)),
                )
            }
            "kv.open" => (
                "kv.open".into(),
                format!(
                    "kv.open {}  {} {}",
                    resource,
                    detail_text(event, "access"),
                    decided(event)
                ),
            ),
            "egress" => (
                "egress".into(),
                format!(
                    "egress {} {}  {}",
                    detail_text(event, "method"),
                    resource,
                    decided(event)
                ),
            ),
            _ => (
                "authz".into(),
                format!("authz {action} {resource}  {}", decided(event)),
            ),
        };
    }
    if let Some(refused) = refusal {
        let who = match (text(refused, "app"), text(refused, "function")) {
            (Some(app), Some(function)) => format!("  {app}/{function}"),
            _ => String::new(),
        };
        let caller = text(refused, "caller")
            .map(|c| format!("  caller={c}"))
            .unwrap_or_default();
        return (
            "refused".into(),
            format!(
                "refused {} {}{who}{caller}",
                detail_text(refused, "status"),
                text(refused, "reason").unwrap_or("")
            ),
        );
    }
    let kind = text(any, "kind").unwrap_or("event").to_string();
    let line = format!(
        "{kind} {} {}",
        text(any, "outcome").unwrap_or(""),
        text(any, "reason").unwrap_or("")
    );
    (kind, line.trim_end().to_string())
}

fn invocation_line(rows: &[&AuditRow], any: &Value, under_call: bool) -> String {
    let start = rows
        .iter()
        .find(|row| row.kind == "invocation.start")
        .map(|row| &row.event);
    let end = rows
        .iter()
        .find(|row| row.kind == "invocation.end")
        .map(|row| &row.event);
    let mut line = String::new();
    if let Some(start) = start {
        let method = detail_text(start, "method");
        let route = detail_text(start, "route");
        if !method.is_empty() || !route.is_empty() {
            line.push_str(format!("{method} {route}").trim());
            line.push_str("  ");
        }
    }
    line.push_str(&format!(
        "{}/{}",
        text(any, "app").unwrap_or("?"),
        text(any, "function").unwrap_or("?")
    ));
    match end {
        Some(end) => {
            let status = detail_text(end, "status");
            if !status.is_empty() {
                line.push_str(&format!("  {status}"));
            }
            if text(end, "outcome") != Some("success") {
                line.push_str(&format!("  {}", text(end, "reason").unwrap_or("failed")));
            }
            if let Some(us) = detail(end, "duration_us").and_then(Value::as_u64) {
                line.push_str(&format!("  {:.1} ms", us as f64 / 1000.0));
            }
        }
        None => line.push_str("  (no end recorded)"),
    }
    if !under_call && let Some(caller) = text(any, "caller") {
        line.push_str(&format!("  caller={caller}"));
    }
    if let Some(refused) = start.and_then(|s| detail(s, "refused_traceparent")) {
        line.push_str(&format!(
            "  (caller's traceparent refused: {})",
            refused
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("malformed")
        ));
    }
    line
}

/// The tree as text, one node a line:
///
/// ```text
/// trace 4bf92f3577b34da6a3ce929d0e0e4736  (2 invocations, 9 events, 41 ms)
/// └─ POST /checkout  shop/checkout  201  12.3 ms  caller=anonymous
///    ├─ invoke shop/inventory  allowed
///    │  └─ GET /inventory  shop/inventory  200  1.1 ms
///    └─ kv.write orders set  1 key
/// ```
pub fn render(tree: &TraceTree) -> String {
    let mut out = format!(
        "trace {}  ({} invocation{}, {} event{}, {} ms)\n",
        tree.trace_id,
        tree.invocations,
        if tree.invocations == 1 { "" } else { "s" },
        tree.events,
        if tree.events == 1 { "" } else { "s" },
        tree.duration_ms
    );
    render_nodes(&tree.roots, "", &mut out);
    out
}

fn render_nodes(nodes: &[SpanNode], prefix: &str, out: &mut String) {
    for (i, node) in nodes.iter().enumerate() {
        let last = i + 1 == nodes.len();
        out.push_str(prefix);
        out.push_str(if last { "└─ " } else { "├─ " });
        // Names in a summary may be a guest's choice: no control character reaches a terminal.
        out.extend(
            node.summary
                .chars()
                .map(|c| if c.is_control() { '\u{fffd}' } else { c }),
        );
        if node.parent_unknown && node.kind != "invocation" {
            out.push_str(&format!(
                "  [parent span {} not in this trace]",
                node.parent_span_id.as_deref().unwrap_or("?")
            ));
        }
        out.push('\n');
        let deeper = format!("{prefix}{}", if last { "   " } else { "│  " });
        render_nodes(&node.children, &deeper, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    fn row(id: i64, at_ms: i64, event: Value) -> AuditRow {
        AuditRow {
            id,
            at_ms,
            kind: event["kind"].as_str().unwrap().to_string(),
            invocation_id: event["invocation_id"].as_str().map(str::to_owned),
            app: event["app"].as_str().map(str::to_owned),
            function: event["function"].as_str().map(str::to_owned),
            outcome: event["outcome"].as_str().unwrap().to_string(),
            event,
        }
    }

    fn event(kind: &str, span: &str, parent: Option<&str>, function: &str, detail: Value) -> Value {
        let mut event = json!({
            "kind": kind, "outcome": "success", "trace_id": TRACE, "span_id": span,
            "app": "shop", "function": function, "caller": "anonymous", "detail": detail,
        });
        if let Some(parent) = parent {
            event["parent_span_id"] = json!(parent);
        }
        event
    }

    /// checkout (span a, from outside span x) calls inventory through call span b (inventory's
    /// span c), reads a secret (span d) and writes a key (span e).
    fn two_functions() -> Vec<AuditRow> {
        vec![
            row(
                9,
                109,
                event(
                    "kv.write",
                    "e",
                    Some("a"),
                    "checkout",
                    json!({"operation": "set", "bucket": "orders", "keys": 1}),
                ),
            ),
            row(
                1,
                100,
                event(
                    "invocation.start",
                    "a",
                    Some("x"),
                    "checkout",
                    json!({"method": "POST", "route": "/checkout"}),
                ),
            ),
            row(
                2,
                101,
                event(
                    "authz.decision",
                    "b",
                    Some("a"),
                    "checkout",
                    json!({"action": "invoke", "resource": "spiffe://zerofn.local/app/shop/fn/inventory"}),
                ),
            ),
            row(
                3,
                102,
                event(
                    "invocation.start",
                    "c",
                    Some("b"),
                    "inventory",
                    json!({"method": "GET", "route": "/inventory"}),
                ),
            ),
            row(
                4,
                103,
                event(
                    "invocation.end",
                    "c",
                    Some("b"),
                    "inventory",
                    json!({"status": 200, "duration_us": 1100}),
                ),
            ),
            row(
                5,
                104,
                event(
                    "authz.decision",
                    "d",
                    Some("a"),
                    "checkout",
                    json!({"action": "secret.read", "resource": "shop/payments_key"}),
                ),
            ),
            row(
                6,
                105,
                event(
                    "secret.read",
                    "d",
                    Some("a"),
                    "checkout",
                    json!({"name": "payments_key"}),
                ),
            ),
            row(
                10,
                110,
                event(
                    "invocation.end",
                    "a",
                    Some("x"),
                    "checkout",
                    json!({"status": 201, "duration_us": 12300}),
                ),
            ),
        ]
    }

    #[test]
    fn a_call_nests_its_callee_and_each_use_sits_under_its_invocation() {
        let tree = build(TRACE, &two_functions()).unwrap();
        assert_eq!(tree.invocations, 2);
        assert_eq!(tree.events, 8);
        assert_eq!(tree.duration_ms, 10);
        assert_eq!(tree.roots.len(), 1);
        let root = &tree.roots[0];
        assert_eq!(root.span_id, "a");
        assert!(root.parent_unknown, "its caller is outside the platform");
        let kinds: Vec<&str> = root.children.iter().map(|n| n.kind.as_str()).collect();
        assert_eq!(kinds, ["invoke", "secret.read", "kv.write"]);
        assert_eq!(root.children[0].children[0].span_id, "c");
        assert_eq!(
            render(&tree),
            "trace 4bf92f3577b34da6a3ce929d0e0e4736  (2 invocations, 8 events, 10 ms)\n\
             └─ POST /checkout  shop/checkout  201  12.3 ms  caller=anonymous\n\
             \x20  ├─ invoke shop/inventory  allowed\n\
             \x20  │  └─ GET /inventory  shop/inventory  200  1.1 ms\n\
             \x20  ├─ secret.read payments_key  allowed\n\
             \x20  └─ kv.write orders set  1 key\n"
        );
    }

    #[test]
    fn an_event_whose_parent_is_missing_is_put_at_the_root_and_marked() {
        let mut rows = two_functions();
        rows.push(row(
            11,
            111,
            event(
                "kv.write",
                "f",
                Some("gone"),
                "checkout",
                json!({"operation": "delete", "bucket": "orders", "keys": 2}),
            ),
        ));
        let tree = build(TRACE, &rows).unwrap();
        assert_eq!(tree.roots.len(), 2);
        assert!(tree.roots[1].parent_unknown);
        assert!(
            render(&tree).ends_with(
                "└─ kv.write orders delete  2 keys  [parent span gone not in this trace]\n"
            ),
            "{}",
            render(&tree)
        );
    }

    #[test]
    fn a_cycle_of_spans_ends_at_the_root_instead_of_looping() {
        let rows = vec![
            row(
                1,
                100,
                event("invocation.start", "p", Some("q"), "a", json!({})),
            ),
            row(
                2,
                101,
                event("invocation.start", "q", Some("p"), "b", json!({})),
            ),
        ];
        let tree = build(TRACE, &rows).unwrap();
        assert_eq!(tree.roots.len(), 1);
        assert_eq!(tree.roots[0].children.len(), 1);
        assert_eq!(tree.invocations, 2);
    }

    #[test]
    fn no_events_is_no_tree_and_ids_are_checked() {
        assert!(build(TRACE, &[]).is_none());
        assert!(is_trace_id(TRACE));
        for bad in [
            "",
            "4BF92F3577B34DA6A3CE929D0E0E4736",
            "4bf92f3577b34da6a3ce929d0e0e473",
            "00000000000000000000000000000000",
            "4bf92f3577b34da6a3ce929d0e0e473g",
            "../../../../etc/passwd0000000000",
        ] {
            assert!(!is_trace_id(bad), "{bad}");
        }
    }

    #[test]
    fn the_tree_survives_json() {
        let tree = build(TRACE, &two_functions()).unwrap();
        let text = serde_json::to_string(&tree).unwrap();
        let back: TraceTree = serde_json::from_str(&text).unwrap();
        assert_eq!(back, tree);
    }
}
