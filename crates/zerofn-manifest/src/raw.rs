//! The manifest exactly as written: serde types that mirror `zerofn.toml`, with spans.
//!
//! Serde enforces the shape (known keys, value types); everything that needs judgement
//! (names, routes, URLs, cross-references) is checked afterwards in `validate`, where every
//! value still carries its span so a diagnostic can point at it.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// The whole document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawManifest {
    pub app: Spanned<RawApp>,
    pub functions: Option<Spanned<BTreeMap<Spanned<String>, Spanned<RawFunction>>>>,
}

/// `[app]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApp {
    pub name: Spanned<String>,
    pub version: Spanned<String>,
}

/// `[functions.<name>]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFunction {
    pub component: Spanned<String>,
    pub build: Option<Spanned<RawBuild>>,
    pub trigger: Spanned<RawTrigger>,
    pub limits: Option<Spanned<RawLimits>>,
    pub grants: Option<Spanned<RawGrants>>,
    pub auth: Option<Spanned<RawAuth>>,
    pub input: Option<Spanned<RawInput>>,
    pub config: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
}

/// `build = { command, workdir }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBuild {
    pub command: Spanned<String>,
    pub workdir: Option<Spanned<String>>,
}

/// `trigger = { http | schedule | queue = ... }`: `validate` checks that exactly one is set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTrigger {
    pub http: Option<Spanned<RawHttpTrigger>>,
    pub schedule: Option<Spanned<RawScheduleTrigger>>,
    pub queue: Option<Spanned<RawQueueTrigger>>,
}

/// `trigger.schedule = { cron }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScheduleTrigger {
    pub cron: Spanned<String>,
}

/// `trigger.queue = { name }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQueueTrigger {
    pub name: Spanned<String>,
}

/// `trigger.http = { route, methods }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttpTrigger {
    pub route: Spanned<String>,
    pub methods: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `limits = { ... }`: every field optional; the platform policy fills the gaps.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub timeout_ms: Option<Spanned<i64>>,
    pub memory_mb: Option<Spanned<i64>>,
    pub max_concurrency: Option<Spanned<i64>>,
    pub max_request_body_bytes: Option<Spanned<i64>>,
    pub max_response_body_bytes: Option<Spanned<i64>>,
    pub requests_per_second: Option<Spanned<i64>>,
    pub burst: Option<Spanned<i64>>,
    pub caller_requests_per_second: Option<Spanned<i64>>,
    pub caller_burst: Option<Spanned<i64>>,
}

/// `[functions.<name>.grants]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGrants {
    pub egress: Option<Spanned<Vec<Spanned<RawEgress>>>>,
    pub secrets: Option<Spanned<Vec<Spanned<String>>>>,
    pub kv: Option<Spanned<BTreeMap<Spanned<String>, Spanned<RawKvMode>>>>,
    pub invoke: Option<Spanned<Vec<Spanned<String>>>>,
}

/// One `egress` entry: a URL string, or a table that adds methods and the private-address
/// grant to a URL.
#[derive(Debug)]
pub(crate) enum RawEgress {
    Url(String),
    Table(RawEgressTable),
}

/// `{ url = "...", methods = [...], allow_private = true }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEgressTable {
    pub url: Spanned<String>,
    pub methods: Option<Spanned<Vec<Spanned<String>>>>,
    pub allow_private: Option<Spanned<bool>>,
}

// Written by hand rather than `#[serde(untagged)]`: an untagged enum buffers the value and
// loses the spans the table's fields carry, and its error says nothing useful.
impl<'de> Deserialize<'de> for RawEgress {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawEgress;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a URL string or a table")
            }

            fn visit_str<E: serde::de::Error>(self, url: &str) -> Result<RawEgress, E> {
                Ok(RawEgress::Url(url.to_string()))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawEgress, A::Error> {
                RawEgressTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(RawEgress::Table)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A key-value bucket's access mode as written.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RawKvMode {
    Read,
    Write,
    ReadWrite,
}

/// `[functions.<name>.auth]`: at most one of these may be present; `validate` checks that.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuth {
    pub public: Option<Spanned<bool>>,
    pub jwt: Option<Spanned<RawJwt>>,
    pub mtls: Option<Spanned<RawMtls>>,
    #[serde(rename = "api-key")]
    pub api_key: Option<Spanned<RawApiKey>>,
}

/// `auth.jwt`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJwt {
    pub issuer: Spanned<String>,
    pub audience: Spanned<String>,
    pub jwks: Spanned<String>,
    #[serde(default)]
    pub algorithms: Vec<Spanned<String>>,
    #[serde(default)]
    pub required_claims: Vec<Spanned<String>>,
}

/// `auth.mtls`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMtls {
    pub ca: Spanned<String>,
    pub spiffe_id: Option<Spanned<String>>,
}

/// `auth.api-key`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApiKey {
    pub header: Option<Spanned<String>>,
}

/// `[functions.<name>.input]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInput {
    pub schema: Option<Spanned<String>>,
    #[serde(default)]
    pub content_types: Vec<Spanned<String>>,
    pub max_body_bytes: Option<Spanned<i64>>,
    pub max_json_depth: Option<Spanned<i64>>,
}
