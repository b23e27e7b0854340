//! The canonical configuration of a function: everything the manifest says about what the
//! function may do and how it is reached (trigger, limits, grants, auth, input), as JSON with
//! sorted keys and no whitespace. Its SHA-256 is a subject of the function's signed statement, so
//! editing the grants of a signed function breaks its signature exactly like editing its code.

use crate::{Auth, EgressRule, Function, Manifest, Trigger};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::Path;

impl Manifest {
    /// The canonical configuration of `function` (see the module documentation).
    pub fn canonical_config(&self, function: &Function) -> Value {
        let grants = &function.grants;
        let limits = &function.limits;
        let mut config = json!({
            "app": self.app_name(),
            "function": function.name,
            // The `http` form is unchanged since it was the only kind, so that signatures made
            // before schedule and queue triggers still verify.
            "trigger": match &function.trigger {
                Trigger::Http { route, methods } => json!({"http": {
                    "route": route.to_string(),
                    "methods": methods.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
                }}),
                Trigger::Schedule(schedule) => json!({"schedule": {"cron": schedule.cron()}}),
                Trigger::Queue { name } => json!({"queue": {"name": name}}),
            },
            "limits": {
                "timeout_ms": limits.timeout_ms,
                "memory_mb": limits.memory_mb,
                "max_concurrency": limits.max_concurrency,
                "max_request_body_bytes": limits.max_request_body_bytes,
                "max_response_body_bytes": limits.max_response_body_bytes,
            },
            "grants": {
                "egress": grants.egress.iter().map(canonical_egress).collect::<Vec<_>>(),
                "secrets": grants.secrets,
                "kv": grants.kv.iter().map(|(bucket, access)| (bucket.clone(), Value::from(access.as_str()))).collect::<serde_json::Map<_, _>>(),
                "invoke": grants.invoke,
            },
            "auth": function.auth.as_ref().map(|auth| self.canonical_auth(auth)),
            "input": function.input.as_ref().map(|input| json!({
                "schema": input.schema.as_deref().map(|p| self.relative(p)),
                "content_types": input.content_types,
                "max_body_bytes": input.max_body_bytes,
                "max_json_depth": input.max_json_depth,
            })),
        });
        // Rate limits joined the format later: written only when set, so that the digests of
        // functions signed before them do not change.
        let rates = [
            ("requests_per_second", limits.requests_per_second),
            ("burst", limits.burst),
            (
                "caller_requests_per_second",
                limits.caller_requests_per_second,
            ),
            ("caller_burst", limits.caller_burst),
        ];
        // Likewise `config`, written only when the function has any.
        if !function.config.is_empty()
            && let Some(object) = config.as_object_mut()
        {
            object.insert("config".into(), json!(function.config));
        }
        if let Some(written) = config["limits"].as_object_mut() {
            for (key, value) in rates {
                if let Some(value) = value {
                    written.insert(key.to_string(), Value::from(value));
                }
            }
        }
        config
    }

    /// The canonical configuration as bytes: JSON with sorted keys and no whitespace.
    pub fn canonical_config_bytes(&self, function: &Function) -> Vec<u8> {
        let mut out = String::new();
        write_sorted(&self.canonical_config(function), &mut out);
        out.into_bytes()
    }

    /// The lowercase hex SHA-256 of [`Manifest::canonical_config_bytes`].
    pub fn config_digest(&self, function: &Function) -> String {
        hex::encode(Sha256::digest(self.canonical_config_bytes(function)))
    }

    fn canonical_auth(&self, auth: &Auth) -> Value {
        match auth {
            Auth::Public => json!({"public": true}),
            Auth::Jwt(jwt) => json!({"jwt": {
                "issuer": jwt.issuer,
                "audience": jwt.audience,
                "jwks": jwt.jwks,
                "algorithms": jwt.algorithms,
                "required_claims": jwt.required_claims,
            }}),
            Auth::Mtls(mtls) => json!({"mtls": {
                "ca": self.relative(&mtls.ca),
                "spiffe_id": mtls.spiffe_id,
            }}),
            Auth::ApiKey(key) => json!({"api-key": {"header": key.header}}),
        }
    }

    /// A path as written in the manifest (relative to its directory), with `/` separators.
    pub(crate) fn relative(&self, path: &Path) -> String {
        path.strip_prefix(self.dir())
            .unwrap_or(path)
            .to_string_lossy()
            .replace('\\', "/")
    }
}

/// An egress grant as its URL when it says nothing more (so the digest of a grant written
/// before methods existed is unchanged), else the URL with its methods and private-address
/// grant: widening either after signing breaks the signature.
fn canonical_egress(rule: &EgressRule) -> Value {
    if rule.methods.is_empty() && !rule.allow_private {
        return Value::from(rule.as_written.as_str());
    }
    json!({
        "url": rule.as_written,
        "methods": rule.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
        "allow_private": rule.allow_private,
    })
}

/// Writes `value` as JSON with object keys sorted (by their UTF-8 bytes) at every level and no
/// whitespace. Sorting here, not trusting the map type, keeps the bytes (and so signatures)
/// the same whichever way `serde_json` is built: with `preserve_order` (which another crate in
/// the build may turn on) its maps keep insertion order.
fn write_sorted(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(key.as_str()).to_string());
                out.push(':');
                write_sorted(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_sorted(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sorted_at_every_level_whatever_the_insertion_order() {
        let mut inner = serde_json::Map::new();
        inner.insert("zeta".into(), json!(1));
        inner.insert("alpha".into(), json!([{"b": true, "a": null}]));
        let mut outer = serde_json::Map::new();
        outer.insert("y".into(), Value::Object(inner));
        outer.insert("x".into(), json!("q\"uote"));
        let mut out = String::new();
        write_sorted(&Value::Object(outer), &mut out);
        assert_eq!(
            out,
            r#"{"x":"q\"uote","y":{"alpha":[{"a":null,"b":true}],"zeta":1}}"#
        );
    }
}
