//! A manifest's grants as Cedar `permit` policies: one policy per grant, named after it, so a
//! decision says which grant allowed it (`grant/shop/checkout/egress/0`).

use crate::FunctionRef;
use zerofn_manifest::{Grants, KvAccess};

/// One generated policy: its id, the action it permits and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantPolicy {
    pub id: String,
    pub action: String,
    pub text: String,
}

/// The permits for `function`'s `grants`.
pub fn compile(function: &FunctionRef, grants: &Grants) -> Vec<GrantPolicy> {
    let principal = format!("Function::{}", literal(&function.cedar_id()));
    let app = &function.app;
    let base = format!("grant/{}/{}", function.app, function.name);
    let mut policies = Vec::new();
    // `resource` is the whole resource clause: `resource == Host::"x"` or `resource is Host`.
    let mut permit = |id: String, action: &str, resource: String, when: Option<String>| {
        let condition = when
            .map(|c| format!("\nwhen {{ {c} }}"))
            .unwrap_or_default();
        policies.push(GrantPolicy {
            action: action.to_string(),
            text: format!(
                "@id({})\npermit(principal == {principal}, action == Action::{}, {resource}){condition};",
                literal(&id),
                literal(action)
            ),
            id,
        });
    };
    for callee in &grants.invoke {
        permit(
            format!("{base}/invoke/{callee}"),
            "invoke",
            format!(
                "resource == Function::{}",
                literal(&format!("{app}/{callee}"))
            ),
            None,
        );
    }
    for secret in &grants.secrets {
        permit(
            format!("{base}/secret.read/{secret}"),
            "secret.read",
            format!(
                "resource == Secret::{}",
                literal(&format!("{app}/{secret}"))
            ),
            None,
        );
    }
    for (bucket, access) in &grants.kv {
        let resource = format!(
            "resource == Bucket::{}",
            literal(&format!("{app}/{bucket}"))
        );
        let actions: &[&str] = match access {
            KvAccess::Read => &["kv.read"],
            KvAccess::Write => &["kv.write"],
            KvAccess::ReadWrite => &["kv.read", "kv.write"],
        };
        for action in actions {
            permit(
                format!("{base}/{action}/{bucket}"),
                action,
                resource.clone(),
                None,
            );
        }
    }
    for (index, rule) in grants.egress.iter().enumerate() {
        let id = format!("{base}/egress/{index}");
        let mut conditions = vec![format!(
            "context.destination.scheme == {}",
            literal(&rule.scheme)
        )];
        conditions.push(format!(
            "context.destination.port == {}",
            rule.effective_port()
        ));
        let prefix = rule.path_prefix.trim_end_matches('/');
        if !prefix.is_empty() {
            conditions.push(format!(
                "(context.destination.path == {} || context.destination.path like {})",
                literal(prefix),
                like_literal(&format!("{prefix}/"))
            ));
        }
        if rule.any_subdomain {
            // `*.example.com`: any subdomain, not the domain itself.
            conditions.push(format!(
                "context.destination.host like {}",
                like_literal(&format!(".{}", rule.host))
            ));
            permit(
                id,
                "egress",
                "resource is Host".into(),
                Some(conditions.join(" && ")),
            );
        } else {
            permit(
                id,
                "egress",
                format!("resource == Host::{}", literal(&rule.host)),
                Some(conditions.join(" && ")),
            );
        }
    }
    policies
}

/// A Cedar string literal. Names and hosts in manifests are already restricted; this escapes
/// whatever they may still hold, so no manifest text can change a policy's structure.
pub fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A `like` pattern that matches anything ending (for `.domain`) or starting (for `/path/`)
/// with `text`: literal `*` in `text` are escaped, and the wildcard goes on the open side.
fn like_literal(text: &str) -> String {
    let escaped = literal(text).replace('*', "\\*");
    let inner = &escaped[1..escaped.len() - 1];
    if text.starts_with('.') {
        format!("\"*{inner}\"")
    } else {
        format!("\"{inner}*\"")
    }
}
