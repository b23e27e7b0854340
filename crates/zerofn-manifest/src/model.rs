//! The validated manifest: what the rest of zerofn reads once `parse` has accepted a file.
//!
//! **Invariant:** every value here has passed validation (names, routes, URLs, references
//! between functions), so consumers never re-check syntax. Deploy-time facts (files exist,
//! limits fit the operator's policy, features are enforceable) are checked separately by
//! [`Manifest::check_deployable`].

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::limits::LimitsSpec;
use crate::route::{HttpMethod, Route};

/// A parsed and validated `zerofn.toml`.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub(crate) path: PathBuf,
    pub(crate) dir: PathBuf,
    pub(crate) source: String,
    pub(crate) app_name: String,
    pub(crate) app_version: String,
    pub(crate) functions: BTreeMap<String, Function>,
}

impl Manifest {
    /// `app.name`.
    pub fn app_name(&self) -> &str {
        &self.app_name
    }

    /// `app.version`.
    pub fn app_version(&self) -> &str {
        &self.app_version
    }

    /// The directory containing the manifest; relative paths in it resolve against this.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest's path, as given to `parse` or `load`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The manifest's text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// All functions, sorted by name.
    pub fn functions(&self) -> impl Iterator<Item = &Function> {
        self.functions.values()
    }

    /// Where `[functions.<name>]` is written, for findings about the function as a whole.
    pub fn function_location(&self, name: &str) -> Option<crate::Location> {
        let function = self.function(name)?;
        Some(crate::Location::new(
            &self.source,
            function.spans.name.clone(),
        ))
    }

    /// Where the field at `path` (`functions.checkout.grants.egress[0]`) is written, and its
    /// text; `None` when the manifest has no such field.
    pub fn locate(&self, path: &str) -> Option<crate::Located> {
        crate::locate::locate(&self.source, path)
    }

    /// The manifest as written, as a JSON document (for operator policies).
    pub fn to_json(&self) -> serde_json::Value {
        crate::locate::to_json(&self.source)
    }

    /// The function called `name`.
    pub fn function(&self, name: &str) -> Option<&Function> {
        self.functions.get(name)
    }
}

/// One `[functions.<name>]` entry.
#[derive(Debug, Clone)]
pub struct Function {
    /// The table key, a DNS label.
    pub name: String,
    /// `component` as written.
    pub component: String,
    /// `component` resolved against the manifest's directory.
    pub component_path: PathBuf,
    /// How `zerofn build` builds the component, if the manifest says.
    pub build: Option<BuildSpec>,
    /// `trigger`: how the function is reached (exactly one kind).
    pub trigger: Trigger,
    /// `limits` as written; the platform's [`LimitPolicy`](crate::LimitPolicy) fills the gaps.
    pub limits: LimitsSpec,
    /// `grants`: what the function may reach beyond its own memory. Empty means nothing.
    pub grants: Grants,
    /// `auth`, if written.
    pub auth: Option<Auth>,
    /// `input`, if written.
    pub input: Option<InputSpec>,
    /// `config`: plain (not secret) values the function reads through `wasi:config`.
    pub config: BTreeMap<String, String>,
    /// Where things were written, for deploy-time diagnostics.
    pub(crate) spans: FunctionSpans,
}

impl Function {
    /// The route and methods of an HTTP function; `None` for schedule and queue functions,
    /// which nothing outside the platform reaches.
    pub fn http(&self) -> Option<(&Route, &[HttpMethod])> {
        self.trigger.http()
    }
}

/// `trigger`: how a function is reached. Only `Http` functions are in the route table;
/// `Schedule` and `Queue` functions are invoked by the platform with a CloudEvent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// `trigger.http = { route, methods }`.
    Http {
        /// `trigger.http.route`.
        route: Route,
        /// `trigger.http.methods`, deduplicated; `[GET, HEAD]` when not written.
        methods: Vec<HttpMethod>,
    },
    /// `trigger.schedule = { cron }`.
    Schedule(Schedule),
    /// `trigger.queue = { name }`: the app's local queue the function consumes.
    Queue {
        /// `trigger.queue.name`, a bucket-style name (`[a-z_][a-z0-9_]{0,63}`).
        name: String,
    },
}

impl Trigger {
    /// The key it was written as: `http`, `schedule` or `queue`.
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Http { .. } => "http",
            Trigger::Schedule(_) => "schedule",
            Trigger::Queue { .. } => "queue",
        }
    }

    /// The route and methods of an HTTP trigger.
    pub fn http(&self) -> Option<(&Route, &[HttpMethod])> {
        match self {
            Trigger::Http { route, methods } => Some((route, methods)),
            _ => None,
        }
    }

    /// The queue a queue trigger consumes.
    pub fn queue(&self) -> Option<&str> {
        match self {
            Trigger::Queue { name } => Some(name),
            _ => None,
        }
    }

    /// The trigger as listings show it: `GET,HEAD /path`, `schedule 0 * * * *`, `queue orders`.
    pub fn describe(&self) -> String {
        match self {
            Trigger::Http { route, methods } => format!(
                "{} {route}",
                methods
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Trigger::Schedule(schedule) => format!("schedule {}", schedule.cron()),
            Trigger::Queue { name } => format!("queue {name}"),
        }
    }
}

/// A validated cron expression, evaluated in UTC. Five fields (minute, hour, day of month,
/// month, day of week) or six with seconds first; `@hourly`-style nicknames too. No year field.
#[derive(Debug, Clone)]
pub struct Schedule {
    written: String,
    /// Boxed: the parsed pattern is large, and most triggers are HTTP ones.
    cron: Box<croner::Cron>,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.written == other.written
    }
}

impl Eq for Schedule {}

impl Schedule {
    /// Parses `cron` (see the type's documentation); the error says what is wrong with it.
    pub fn parse(cron: &str) -> Result<Self, String> {
        let parser = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .year(croner::parser::Year::Disallowed)
            .build();
        let parsed = parser.parse(cron).map_err(|e| e.to_string())?;
        // A pattern that can never match (`0 0 30 2 *`) would stall the scheduler's search.
        let epoch = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        parsed
            .find_next_occurrence(&epoch, false)
            .map_err(|_| "the pattern never matches a real date".to_string())?;
        Ok(Self {
            written: cron.to_string(),
            cron: Box::new(parsed),
        })
    }

    /// The expression as written.
    pub fn cron(&self) -> &str {
        &self.written
    }

    /// The first time strictly after `after` the expression matches, if any.
    pub fn next_after(
        &self,
        after: &chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        self.cron.find_next_occurrence(after, false).ok()
    }
}

/// Byte spans of the values that deploy-time checks point at.
#[derive(Debug, Clone, Default)]
pub(crate) struct FunctionSpans {
    /// The function's key in `[functions.<name>]`.
    pub name: Range<usize>,
    pub component: Range<usize>,
    pub timeout_ms: Option<Range<usize>>,
    pub memory_mb: Option<Range<usize>>,
    pub max_concurrency: Option<Range<usize>>,
    pub max_request_body_bytes: Option<Range<usize>>,
    pub max_response_body_bytes: Option<Range<usize>>,
    pub requests_per_second: Option<Range<usize>>,
    pub burst: Option<Range<usize>>,
    pub caller_requests_per_second: Option<Range<usize>>,
    pub caller_burst: Option<Range<usize>>,
    pub egress: Option<Range<usize>>,
    pub secrets: Option<Range<usize>>,
    pub kv: Option<Range<usize>>,
    pub invoke: Option<Range<usize>>,
    pub auth: Option<Range<usize>>,
    pub input: Option<Range<usize>>,
    pub config: Option<Range<usize>>,
}

/// `build = { command, workdir }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSpec {
    /// The shell command, non-empty.
    pub command: String,
    /// `workdir` (default `.`) resolved against the manifest's directory.
    pub workdir: PathBuf,
}

/// What a function may reach. Everything not named here is denied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Outbound HTTP destinations.
    pub egress: Vec<EgressRule>,
    /// Secret names, unique.
    pub secrets: Vec<String>,
    /// Key-value buckets and the access to each.
    pub kv: BTreeMap<String, KvAccess>,
    /// Other functions of the same app this one may call; never itself.
    pub invoke: Vec<String>,
}

impl Grants {
    /// True when the function is granted nothing.
    pub fn is_empty(&self) -> bool {
        self.egress.is_empty()
            && self.secrets.is_empty()
            && self.kv.is_empty()
            && self.invoke.is_empty()
    }
}

/// One `egress` entry: a URL `scheme://[*.]host[:port][/path-prefix]`, written alone or as
/// `{ url = "...", methods = [...], allow_private = true }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressRule {
    /// `http` or `https`.
    pub scheme: String,
    /// The host in its canonical form ([`crate::canonical_host`]), without the `*.` of a
    /// wildcard.
    pub host: String,
    /// Written as `*.host`: any subdomain of `host` (not `host` itself).
    pub any_subdomain: bool,
    /// The port if written; `None` means the scheme's default.
    pub port: Option<u16>,
    /// The path prefix, `/` when none was written. It matches whole segments: `/api` covers
    /// `/api` and `/api/...`, never `/apix`.
    pub path_prefix: String,
    /// The methods allowed, deduplicated; empty means any method.
    pub methods: Vec<HttpMethod>,
    /// Whether the destination may resolve to a loopback, private, link-local or otherwise
    /// non-public address (`allow_private = true`); refused otherwise.
    pub allow_private: bool,
    /// The URL exactly as written.
    pub as_written: String,
}

impl EgressRule {
    /// The port the destination is reached on: the written one, or the scheme's default.
    pub fn effective_port(&self) -> u16 {
        self.port
            .unwrap_or(if self.scheme == "https" { 443 } else { 80 })
    }
}

impl fmt::Display for EgressRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_written)
    }
}

/// Access to a key-value bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KvAccess {
    /// `"read"`
    Read,
    /// `"write"`
    Write,
    /// `"read-write"`
    ReadWrite,
}

impl KvAccess {
    /// As written in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            KvAccess::Read => "read",
            KvAccess::Write => "write",
            KvAccess::ReadWrite => "read-write",
        }
    }

    /// May the function read?
    pub fn can_read(self) -> bool {
        matches!(self, KvAccess::Read | KvAccess::ReadWrite)
    }

    /// May the function write?
    pub fn can_write(self) -> bool {
        matches!(self, KvAccess::Write | KvAccess::ReadWrite)
    }
}

/// `[functions.<name>.auth]`: exactly one method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// `public = true`: anyone may call the route.
    Public,
    /// `jwt = { ... }`
    Jwt(JwtAuth),
    /// `mtls = { ... }`
    Mtls(MtlsAuth),
    /// `api-key = { ... }`
    ApiKey(ApiKeyAuth),
}

impl Auth {
    /// The key it was written as: `public`, `jwt`, `mtls` or `api-key`.
    pub fn kind(&self) -> &'static str {
        match self {
            Auth::Public => "public",
            Auth::Jwt(_) => "jwt",
            Auth::Mtls(_) => "mtls",
            Auth::ApiKey(_) => "api-key",
        }
    }
}

/// Bearer-token authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtAuth {
    /// Expected `iss`.
    pub issuer: String,
    /// Expected `aud`.
    pub audience: String,
    /// Where the keys are: an `https://` URL or a path relative to the manifest, as written.
    pub jwks: String,
    /// Accepted `alg` values; empty means the platform's default set.
    pub algorithms: Vec<String>,
    /// Claims a token must carry.
    pub required_claims: Vec<String>,
}

impl JwtAuth {
    /// `jwks` when it is an `https://` URL, fetched (and refreshed) by the server.
    pub fn jwks_url(&self) -> Option<&str> {
        self.jwks
            .starts_with("https://")
            .then_some(self.jwks.as_str())
    }

    /// `jwks` when it is a path relative to the manifest, with `/` separators: its key in the
    /// deploy bundle (the one name the CLI, admission and the server all use).
    pub fn jwks_file(&self) -> Option<String> {
        (!self.jwks.contains("://")).then(|| self.jwks.replace('\\', "/"))
    }
}

/// Client-certificate authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtlsAuth {
    /// CA bundle, resolved against the manifest's directory.
    pub ca: PathBuf,
    /// `ca` as written (with `/` separators): its key in the deploy bundle.
    pub ca_written: String,
    /// SPIFFE ID pattern the client's SVID must match, if any.
    pub spiffe_id: Option<String>,
}

/// API-key authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyAuth {
    /// Header carrying the key, lowercase; `x-api-key` by default.
    pub header: String,
}

/// `[functions.<name>.input]`: what a request must look like before the function sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSpec {
    /// JSON Schema file, resolved against the manifest's directory.
    pub schema: Option<PathBuf>,
    /// `schema` as written (with `/` separators): its key in the deploy bundle.
    pub schema_file: Option<String>,
    /// Accepted `Content-Type`s, lowercase; empty means the default (see
    /// [`InputSpec::accepted_content_types`]).
    pub content_types: Vec<String>,
    /// Largest body accepted, in bytes; `limits.max_request_body_bytes` when not written.
    pub max_body_bytes: Option<u64>,
    /// Deepest JSON nesting accepted; [`InputSpec::DEFAULT_MAX_JSON_DEPTH`] when not written.
    pub max_json_depth: Option<u32>,
}

impl InputSpec {
    /// The JSON nesting accepted when `max_json_depth` is not written: deep enough for any
    /// reasonable document, shallow enough that no parser or validator recursion is at risk.
    pub const DEFAULT_MAX_JSON_DEPTH: u32 = 64;
    /// The most `max_json_depth` may say. JSON parsing and schema validation recurse once per
    /// level; above this the parser's own limit (128) would refuse anyway.
    pub const MAX_JSON_DEPTH_CEILING: u32 = 100;

    /// `max_json_depth`, or the default.
    pub fn json_depth(&self) -> u32 {
        self.max_json_depth.unwrap_or(Self::DEFAULT_MAX_JSON_DEPTH)
    }

    /// The media types a request may carry: `content_types` as written or, when it is empty,
    /// `application/json` if there is a schema (a schema describes JSON), and any type
    /// otherwise (an empty list).
    pub fn accepted_content_types(&self) -> Vec<String> {
        if self.content_types.is_empty() && self.schema.is_some() {
            vec!["application/json".to_string()]
        } else {
            self.content_types.clone()
        }
    }
}
