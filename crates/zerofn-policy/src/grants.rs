//! A manifest's grants as Cedar `permit` policies: one policy per grant, named after it, so a
//! decision says which grant allowed it (`grant/shop/checkout/egress/0`).

use crate::{Destination, FunctionRef};
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
        if !rule.methods.is_empty() {
            let methods: Vec<String> = rule.methods.iter().map(|m| literal(m.as_str())).collect();
            conditions.push(format!(
                "[{}].contains(context.destination.method)",
                methods.join(", ")
            ));
        }
        if !rule.allow_private {
            conditions.push("!context.destination.private".to_string());
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

/// Why no egress grant of a function covers a destination: the furthest any grant got, in
/// the order its conditions are written. This explains a default deny the PDP decided; it
/// never decides (the PDP does, guardrails included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EgressMiss {
    /// No grant names the host.
    Host,
    /// A grant names the host, with another scheme or port.
    SchemeOrPort,
    /// ... and the scheme and port, but its path prefix does not cover the path.
    Path,
    /// ... and the path, but not the method.
    Method,
    /// ... and the method, for public addresses only, and this address is not public.
    Private,
}

/// The [`EgressMiss`] of `destination` against `grants`, or `None` when a grant covers it.
/// Mirrors the conditions [`compile`] writes (tests check that both agree).
pub fn egress_miss(grants: &Grants, destination: &Destination) -> Option<EgressMiss> {
    let mut furthest = EgressMiss::Host;
    for rule in &grants.egress {
        let host = if rule.any_subdomain {
            destination.host.ends_with(&format!(".{}", rule.host))
        } else {
            destination.host == rule.host
        };
        let prefix = rule.path_prefix.trim_end_matches('/');
        let checks = [
            (host, EgressMiss::Host),
            (
                destination.scheme == rule.scheme && destination.port == rule.effective_port(),
                EgressMiss::SchemeOrPort,
            ),
            (
                prefix.is_empty()
                    || destination.path == prefix
                    || destination
                        .path
                        .strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with('/')),
                EgressMiss::Path,
            ),
            (
                rule.methods.is_empty()
                    || rule
                        .methods
                        .iter()
                        .any(|m| m.as_str() == destination.method),
                EgressMiss::Method,
            ),
            (
                rule.allow_private || !destination.private,
                EgressMiss::Private,
            ),
        ];
        match checks.into_iter().find(|(passed, _)| !passed) {
            None => return None,
            Some((_, miss)) => furthest = furthest.max(miss),
        }
    }
    Some(furthest)
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
