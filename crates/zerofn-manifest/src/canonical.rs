//! The canonical configuration of a function: everything the manifest says about what the
//! function may do and how it is reached (trigger, limits, grants, auth, input), as JSON with
//! sorted keys and no whitespace. Its SHA-256 is a subject of the function's signed statement, so
//! editing the grants of a signed function breaks its signature exactly like editing its code.

use crate::{Auth, Function, Manifest};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::Path;

impl Manifest {
    /// The canonical configuration of `function` (see the module documentation).
    pub fn canonical_config(&self, function: &Function) -> Value {
        let grants = &function.grants;
        let limits = &function.limits;
        json!({
            "app": self.app_name(),
            "function": function.name,
            "trigger": {"http": {
                "route": function.route.to_string(),
                "methods": function.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
            }},
            "limits": {
                "timeout_ms": limits.timeout_ms,
                "memory_mb": limits.memory_mb,
                "max_concurrency": limits.max_concurrency,
                "max_request_body_bytes": limits.max_request_body_bytes,
                "max_response_body_bytes": limits.max_response_body_bytes,
            },
            "grants": {
                "egress": grants.egress.iter().map(|e| e.as_written.clone()).collect::<Vec<_>>(),
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
        })
    }

    /// The canonical configuration as bytes: JSON with sorted keys and no whitespace.
    pub fn canonical_config_bytes(&self, function: &Function) -> Vec<u8> {
        // serde_json's map keeps keys sorted, so equal configurations serialise identically.
        self.canonical_config(function).to_string().into_bytes()
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
    fn relative(&self, path: &Path) -> String {
        path.strip_prefix(self.dir())
            .unwrap_or(path)
            .to_string_lossy()
            .replace('\\', "/")
    }
}
