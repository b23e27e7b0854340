//! From text to [`Manifest`]: TOML syntax, then shape (serde), then meaning.
//!
//! Syntax errors are all reported at once (the TOML parser recovers); a shape error stops at
//! the first one (serde cannot continue past it); meaning is checked in full so that one run
//! shows every remaining problem.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::egress::parse_egress_url;
use crate::limits::{LimitPolicy, LimitsSpec};
use crate::model::{
    ApiKeyAuth, Auth, BuildSpec, EgressRule, Function, FunctionSpans, Grants, InputSpec, JwtAuth,
    KvAccess, Manifest, MtlsAuth, Schedule, Trigger,
};
use crate::raw::{
    RawAuth, RawEgress, RawFunction, RawGrants, RawHttpTrigger, RawInput, RawKvMode, RawLimits,
    RawManifest, RawTrigger,
};
use crate::route::{HttpMethod, Route, RouteError};

/// The longest `config` value, in bytes.
pub const MAX_CONFIG_VALUE_BYTES: usize = 4096;

/// Parses and validates `text`, the contents of the manifest at `path`.
pub(crate) fn parse(path: &Path, text: &str) -> Result<Manifest, Diagnostics> {
    let mut cx = Checker {
        file: path,
        src: text,
        diagnostics: Vec::new(),
    };
    let raw = match read_raw(&mut cx) {
        Some(raw) => raw,
        None => return Err(cx.finish()),
    };
    let manifest = cx.manifest(raw);
    if cx.diagnostics.iter().any(Diagnostic::is_error) {
        return Err(cx.finish());
    }
    match manifest {
        Some(manifest) => Ok(manifest),
        None => Err(cx.finish()),
    }
}

/// Collects diagnostics about one file.
pub(crate) struct Checker<'a> {
    pub file: &'a Path,
    pub src: &'a str,
    pub diagnostics: Vec<Diagnostic>,
}

impl<'a> Checker<'a> {
    /// Records an error at `span`, with the text there as the offending value.
    fn error(
        &mut self,
        code: &'static str,
        span: Range<usize>,
        message: String,
        label: &str,
        help: String,
    ) {
        let d = Diagnostic::error(code, self.file, message)
            .at(self.src, span, label)
            .help(help);
        self.diagnostics.push(d);
    }

    /// Names the field of the diagnostic just reported.
    fn last_at_field(&mut self, field: String) {
        if let Some(last) = self.diagnostics.pop() {
            self.diagnostics.push(last.field(field));
        }
    }

    pub(crate) fn finish(self) -> Diagnostics {
        let mut diagnostics = Diagnostics::new();
        diagnostics.add_source(self.file, self.src);
        for d in self.diagnostics {
            diagnostics.push(d);
        }
        diagnostics.sort();
        diagnostics
    }

    fn manifest(&mut self, raw: RawManifest) -> Option<Manifest> {
        let app = raw.app.into_inner();
        self.dns_label("app name", &app.name);
        self.version(&app.version);

        let dir = match self.file.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };

        let entries = match raw.functions {
            Some(functions) if !functions.get_ref().is_empty() => functions.into_inner(),
            functions => {
                let span = functions.map_or(0..0, |f| f.span());
                let d = Diagnostic::error(
                    "no-functions",
                    self.file,
                    "an app needs at least one function",
                )
                .at_key(self.src, span, "no functions declared")
                .help(
                    "add a function, e.g.\n[functions.hello]\ncomponent = \"hello.wasm\"\n\
                         trigger = { http = { route = \"/hello\" } }",
                );
                self.diagnostics.push(d);
                return None;
            }
        };

        let names: BTreeSet<String> = entries.keys().map(|k| k.get_ref().clone()).collect();
        let mut functions = BTreeMap::new();
        let mut routes = Vec::new();
        for (name, function) in entries {
            let name_span = name.span();
            let name = name.into_inner();
            self.dns_label(
                "function name",
                &Spanned::new(name_span.clone(), name.clone()),
            );
            if let Some((mut f, route_span)) =
                self.function(&name, function.into_inner(), &dir, &names)
            {
                f.spans.name = name_span;
                if let Some(route_span) = route_span {
                    routes.push((route_span, name.clone()));
                }
                functions.insert(name, f);
            }
        }
        routes.sort_by_key(|(span, _)| span.start);
        self.duplicate_routes(&routes, &functions);

        Some(Manifest {
            path: self.file.to_path_buf(),
            dir,
            source: self.src.to_string(),
            app_name: app.name.into_inner(),
            app_version: app.version.into_inner(),
            functions,
        })
    }

    fn function(
        &mut self,
        name: &str,
        raw: RawFunction,
        dir: &Path,
        names: &BTreeSet<String>,
    ) -> Option<(Function, Option<Range<usize>>)> {
        let mut spans = FunctionSpans {
            component: raw.component.span(),
            ..FunctionSpans::default()
        };
        self.relative_path("component", &raw.component);
        let component_path = dir.join(raw.component.get_ref());

        let build = raw.build.map(|build| {
            let build = build.into_inner();
            if build.command.get_ref().trim().is_empty() {
                self.error(
                    "invalid-build",
                    build.command.span(),
                    "`build.command` is empty".into(),
                    "nothing to run",
                    "write the command that builds the component, e.g. \
                     `cargo build --release --target wasm32-wasip2`, or remove `build`"
                        .into(),
                );
            }
            let workdir = match &build.workdir {
                Some(workdir) => {
                    self.relative_path("build.workdir", workdir);
                    dir.join(workdir.get_ref())
                }
                None => dir.to_path_buf(),
            };
            BuildSpec {
                command: build.command.into_inner(),
                workdir,
            }
        });

        // Keep checking after a bad trigger so that one run reports every problem.
        let trigger = self.trigger(name, raw.trigger);
        let http = matches!(trigger, Some((Trigger::Http { .. }, _)));

        let limits = match raw.limits {
            Some(limits) => self.limits(limits.into_inner(), &mut spans),
            None => LimitsSpec::default(),
        };
        let grants = match raw.grants {
            Some(grants) => self.grants(name, grants.into_inner(), names, &mut spans),
            None => Grants::default(),
        };
        // The platform itself invokes schedule and queue functions: there is no outside
        // caller to authenticate, so an `auth` there would promise a check that never runs.
        let raw_auth = match raw.auth {
            Some(auth) if trigger.is_some() && !http => {
                self.error(
                    "auth-not-applicable",
                    auth.span(),
                    format!(
                        "function `{name}` has `auth`, but only HTTP functions are called from outside"
                    ),
                    "not used by this trigger",
                    "remove `auth`: the platform is the only caller of schedule and queue \
                     functions (queue events are sent by operators through the control plane)"
                        .into(),
                );
                self.last_at_field(format!("functions.{name}.auth"));
                None
            }
            auth => auth,
        };
        let auth = raw_auth
            .and_then(|auth| self.auth(auth, dir))
            .map(|(auth, span)| {
                spans.auth = Some(span);
                auth
            });
        let input = raw.input.map(|input| {
            spans.input = Some(input.span());
            self.input(input.into_inner(), dir)
        });

        let config = match raw.config {
            Some(config) => {
                spans.config = Some(config.span());
                self.config(config.into_inner(), &grants)
            }
            None => BTreeMap::new(),
        };

        let (trigger, route_span) = trigger?;
        let function = Function {
            name: name.to_string(),
            component: raw.component.into_inner(),
            component_path,
            build,
            trigger,
            limits,
            grants,
            auth,
            input,
            config,
            spans,
        };
        Some((function, route_span))
    }

    /// `config = { name = "value" }`: names as secret names, values short text, and no name
    /// that is also a granted secret (which one the function read would be ambiguous).
    fn config(
        &mut self,
        raw: BTreeMap<Spanned<String>, Spanned<String>>,
        grants: &Grants,
    ) -> BTreeMap<String, String> {
        let mut config = BTreeMap::new();
        for (name, value) in raw {
            let mut valid = self.identifier("config name", &name);
            if grants.secrets.contains(name.get_ref()) {
                valid = false;
                self.error(
                    "config-shadows-secret",
                    name.span(),
                    format!(
                        "`{}` is both a config value and a granted secret",
                        name.get_ref()
                    ),
                    "also in `grants.secrets`",
                    "rename the config value: a function reads both through `wasi:config`, so one \
                     name must mean one thing"
                        .into(),
                );
            }
            if value.get_ref().len() > MAX_CONFIG_VALUE_BYTES {
                valid = false;
                self.error(
                    "invalid-config",
                    value.span(),
                    format!(
                        "config value `{}` is {} bytes; at most {MAX_CONFIG_VALUE_BYTES} are allowed",
                        name.get_ref(),
                        value.get_ref().len()
                    ),
                    "too long",
                    "keep config values short; large data belongs in a key-value bucket".into(),
                );
            }
            if valid {
                config.insert(name.into_inner(), value.into_inner());
            }
        }
        config
    }

    /// `trigger`: exactly one kind. Returns it with the route's span for HTTP triggers.
    fn trigger(
        &mut self,
        name: &str,
        raw: Spanned<RawTrigger>,
    ) -> Option<(Trigger, Option<Range<usize>>)> {
        let trigger_span = raw.span();
        let raw = raw.into_inner();
        let mut present: Vec<(&str, Range<usize>)> = Vec::new();
        if let Some(http) = &raw.http {
            present.push(("http", http.span()));
        }
        if let Some(schedule) = &raw.schedule {
            present.push(("schedule", schedule.span()));
        }
        if let Some(queue) = &raw.queue {
            present.push(("queue", queue.span()));
        }
        present.sort_by_key(|p| p.1.start);
        match present.as_slice() {
            [] => {
                self.error(
                    "missing-trigger",
                    trigger_span,
                    format!("function `{name}` has no trigger"),
                    "expected one trigger kind",
                    "add one of `http = { route = \"/path\" }`, `schedule = { cron = \"0 * * * *\" }` \
                     or `queue = { name = \"orders\" }`"
                        .into(),
                );
                return None;
            }
            [_] => {}
            [(first, first_span), (second, second_span), ..] => {
                let d = Diagnostic::error(
                    "conflicting-trigger",
                    self.file,
                    format!(
                        "function `{name}` sets both `trigger.{first}` and `trigger.{second}`; a function has exactly one trigger"
                    ),
                )
                .at_key(self.src, second_span.clone(), "second trigger kind")
                .related(self.src, first_span.clone(), "first trigger kind")
                .field(format!("functions.{name}.trigger"))
                .help(
                    "keep one trigger; to run the same code on two triggers, declare two functions \
                     with the same `component`",
                );
                self.diagnostics.push(d);
                return None;
            }
        }
        if let Some(http) = raw.http {
            let http = http.into_inner();
            let route_span = http.route.span();
            return self
                .http_trigger(http)
                .map(|(route, methods)| (Trigger::Http { route, methods }, Some(route_span)));
        }
        if let Some(schedule) = raw.schedule {
            let cron = schedule.into_inner().cron;
            return match Schedule::parse(cron.get_ref()) {
                Ok(schedule) => Some((Trigger::Schedule(schedule), None)),
                Err(reason) => {
                    self.error(
                        "invalid-cron",
                        cron.span(),
                        format!("invalid cron expression `{}`: {reason}", cron.get_ref()),
                        "invalid cron expression",
                        "write five fields `minute hour day-of-month month day-of-week` (UTC), or six \
                         with seconds first, e.g. `0 * * * *` for every hour or `*/10 * * * * *` for \
                         every ten seconds"
                            .into(),
                    );
                    self.last_at_field(format!("functions.{name}.trigger.schedule.cron"));
                    None
                }
            };
        }
        if let Some(queue) = raw.queue {
            let queue_name = queue.into_inner().name;
            if !self.identifier("queue name", &queue_name) {
                self.last_at_field(format!("functions.{name}.trigger.queue.name"));
                return None;
            }
            return Some((
                Trigger::Queue {
                    name: queue_name.into_inner(),
                },
                None,
            ));
        }
        None
    }

    fn http_trigger(&mut self, http: RawHttpTrigger) -> Option<(Route, Vec<HttpMethod>)> {
        let text = http.route.get_ref();
        let route = match Route::parse(text) {
            Ok(route) => Some(route),
            Err(err) => {
                let help = match &err {
                    RouteError::NoLeadingSlash if text.is_empty() => {
                        "write a path such as `/` or `/orders`".to_string()
                    }
                    RouteError::NoLeadingSlash => format!("write `/{text}`"),
                    RouteError::Query => {
                        "remove the query string; routing uses the path only, and the function \
                         still receives the full URL"
                            .to_string()
                    }
                    RouteError::Fragment => "remove the `#...` part".to_string(),
                    RouteError::EmptySegment => "remove the extra `/`".to_string(),
                    RouteError::DotSegment => {
                        "write the path without `.` or `..` segments".to_string()
                    }
                    RouteError::MisplacedEllipsis | RouteError::Wildcard(_) => {
                        "to route a path and everything below it, end the route with `/...`, \
                         e.g. `/api/...`"
                            .to_string()
                    }
                    RouteError::Character(_) => {
                        "percent-encode the character, e.g. a space as `%20`".to_string()
                    }
                };
                self.error(
                    "invalid-route",
                    http.route.span(),
                    format!("invalid route `{text}`: {err}"),
                    "invalid route",
                    help,
                );
                None
            }
        };

        let mut methods = Vec::new();
        match &http.methods {
            None => methods.extend(HttpMethod::DEFAULT),
            Some(list) if list.get_ref().is_empty() => self.error(
                "invalid-methods",
                list.span(),
                "`methods` is empty, so no request could reach this function".into(),
                "no methods",
                "list the methods to accept, e.g. `[\"POST\"]`, or remove `methods` to accept \
                 GET and HEAD"
                    .into(),
            ),
            Some(list) => methods = self.method_list(list),
        }
        Some((route?, methods))
    }

    /// The methods of a non-empty `methods` list, each known and listed once; reports the
    /// rest (`unknown-method`, `duplicate-method`).
    fn method_list(&mut self, list: &Spanned<Vec<Spanned<String>>>) -> Vec<HttpMethod> {
        let mut methods = Vec::new();
        let mut seen: BTreeMap<HttpMethod, Range<usize>> = BTreeMap::new();
        for method in list.get_ref() {
            let text = method.get_ref();
            match text.parse::<HttpMethod>() {
                Ok(m) => {
                    if let Some(first) = seen.get(&m) {
                        let d = Diagnostic::error(
                            "duplicate-method",
                            self.file,
                            format!("method `{m}` is listed twice"),
                        )
                        .at(self.src, method.span(), "listed again here")
                        .related(self.src, first.clone(), "first listed here")
                        .help("remove the repeated method");
                        self.diagnostics.push(d);
                    } else {
                        seen.insert(m, method.span());
                        methods.push(m);
                    }
                }
                Err(_) => {
                    let upper = text.to_ascii_uppercase();
                    let help = if upper.parse::<HttpMethod>().is_ok() {
                        format!("methods are case-sensitive: write `\"{upper}\"`")
                    } else {
                        format!(
                            "use one of {}",
                            list_of(HttpMethod::ALL.map(HttpMethod::as_str))
                        )
                    };
                    self.error(
                        "unknown-method",
                        method.span(),
                        format!("unknown HTTP method `{text}`"),
                        "unknown method",
                        help,
                    );
                }
            }
        }
        methods
    }

    fn limits(&mut self, raw: RawLimits, spans: &mut FunctionSpans) -> LimitsSpec {
        let defaults = LimitPolicy::default().defaults;
        let mut field = |key: &str,
                         value: Option<Spanned<i64>>,
                         max: u64,
                         default: u64,
                         slot: &mut Option<Range<usize>>| {
            let value = value?;
            *slot = Some(value.span());
            self.positive(
                &format!("limits.{key}"),
                "invalid-limit",
                &value,
                max,
                &format!(
                    "remove it to use the platform default ({default}), or set a positive value"
                ),
            )
        };
        LimitsSpec {
            timeout_ms: field(
                "timeout_ms",
                raw.timeout_ms,
                u64::MAX,
                defaults.timeout_ms,
                &mut spans.timeout_ms,
            ),
            memory_mb: field(
                "memory_mb",
                raw.memory_mb,
                u64::MAX,
                defaults.memory_mb,
                &mut spans.memory_mb,
            ),
            max_concurrency: field(
                "max_concurrency",
                raw.max_concurrency,
                u64::from(u32::MAX),
                u64::from(defaults.max_concurrency),
                &mut spans.max_concurrency,
            )
            .and_then(|v| u32::try_from(v).ok()),
            max_request_body_bytes: field(
                "max_request_body_bytes",
                raw.max_request_body_bytes,
                u64::MAX,
                defaults.max_request_body_bytes,
                &mut spans.max_request_body_bytes,
            ),
            max_response_body_bytes: field(
                "max_response_body_bytes",
                raw.max_response_body_bytes,
                u64::MAX,
                defaults.max_response_body_bytes,
                &mut spans.max_response_body_bytes,
            ),
            requests_per_second: field(
                "requests_per_second",
                raw.requests_per_second,
                u64::MAX,
                defaults.requests_per_second,
                &mut spans.requests_per_second,
            ),
            burst: field(
                "burst",
                raw.burst,
                u64::MAX,
                defaults.burst,
                &mut spans.burst,
            ),
            caller_requests_per_second: field(
                "caller_requests_per_second",
                raw.caller_requests_per_second,
                u64::MAX,
                defaults.caller_requests_per_second,
                &mut spans.caller_requests_per_second,
            ),
            caller_burst: field(
                "caller_burst",
                raw.caller_burst,
                u64::MAX,
                defaults.caller_burst,
                &mut spans.caller_burst,
            ),
        }
    }

    /// Checks `0 < value <= max` and returns it.
    fn positive(
        &mut self,
        key: &str,
        code: &'static str,
        value: &Spanned<i64>,
        max: u64,
        help: &str,
    ) -> Option<u64> {
        let v = *value.get_ref();
        match u64::try_from(v) {
            Ok(0) | Err(_) => {
                self.error(
                    code,
                    value.span(),
                    format!("`{key}` must be greater than 0"),
                    "not a positive number",
                    help.to_string(),
                );
                None
            }
            Ok(v) if v > max => {
                self.error(
                    code,
                    value.span(),
                    format!("`{key}` is too large (at most {max})"),
                    "too large",
                    format!("set `{key}` to at most {max}"),
                );
                None
            }
            Ok(v) => Some(v),
        }
    }

    fn grants(
        &mut self,
        name: &str,
        raw: RawGrants,
        names: &BTreeSet<String>,
        spans: &mut FunctionSpans,
    ) -> Grants {
        let mut grants = Grants::default();

        if let Some(egress) = raw.egress {
            spans.egress = non_empty_span(&egress);
            let mut seen = BTreeMap::new();
            for entry in egress.into_inner() {
                if let Some(LocatedEgress { rule, span }) = self.egress_entry(entry) {
                    let key = (
                        rule.scheme.clone(),
                        rule.any_subdomain,
                        rule.host.clone(),
                        rule.effective_port(),
                        rule.path_prefix.clone(),
                    );
                    let url = Spanned::new(span, rule.as_written.clone());
                    if self.first_time(&mut seen, key, &url, "egress destination") {
                        grants.egress.push(rule);
                    }
                }
            }
        }

        if let Some(secrets) = raw.secrets {
            spans.secrets = non_empty_span(&secrets);
            let mut seen = BTreeMap::new();
            for secret in secrets.into_inner() {
                if self.identifier("secret name", &secret)
                    && self.first_time(&mut seen, secret.get_ref().clone(), &secret, "secret")
                {
                    grants.secrets.push(secret.into_inner());
                }
            }
        }

        if let Some(kv) = raw.kv {
            spans.kv = (!kv.get_ref().is_empty()).then(|| kv.span());
            for (bucket, mode) in kv.into_inner() {
                if self.identifier("bucket name", &bucket) {
                    let access = match mode.into_inner() {
                        RawKvMode::Read => KvAccess::Read,
                        RawKvMode::Write => KvAccess::Write,
                        RawKvMode::ReadWrite => KvAccess::ReadWrite,
                    };
                    grants.kv.insert(bucket.into_inner(), access);
                }
            }
        }

        if let Some(invoke) = raw.invoke {
            spans.invoke = non_empty_span(&invoke);
            let mut seen = BTreeMap::new();
            for (index, target) in invoke.into_inner().into_iter().enumerate() {
                let field = format!("functions.{name}.grants.invoke[{index}]");
                let text = target.get_ref();
                if text == name {
                    self.error(
                        "self-invoke",
                        target.span(),
                        format!("function `{name}` cannot grant itself `invoke`"),
                        "this is the function itself",
                        "remove it; a function calls its own code directly".into(),
                    );
                    self.last_at_field(field);
                } else if !names.contains(text) {
                    let others: Vec<&str> = names
                        .iter()
                        .map(String::as_str)
                        .filter(|n| *n != name)
                        .collect();
                    let help = match suggest(text, others.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None if others.is_empty() => {
                            "this app has no other function to invoke".to_string()
                        }
                        None => format!("functions in this app: {}", list_of(others)),
                    };
                    self.error(
                        "unknown-invoke-target",
                        target.span(),
                        format!("`invoke` names unknown function `{text}`"),
                        "no such function in this manifest",
                        help,
                    );
                    self.last_at_field(field);
                } else if self.first_time(&mut seen, text.clone(), &target, "function") {
                    grants.invoke.push(target.into_inner());
                }
            }
        }
        grants
    }

    /// One `egress` entry, a URL or a table with one; reports what is wrong with it.
    fn egress_entry(&mut self, entry: Spanned<RawEgress>) -> Option<LocatedEgress> {
        let entry_span = entry.span();
        let (url, url_span, table) = match entry.into_inner() {
            RawEgress::Url(url) => (url, entry_span, None),
            RawEgress::Table(table) => {
                let span = table.url.span();
                let url = table.url.get_ref().clone();
                (url, span, Some(table))
            }
        };
        let mut rule = match parse_egress_url(&url) {
            Ok(rule) => rule,
            Err((message, help)) => {
                self.error(
                    "invalid-egress",
                    url_span,
                    format!("invalid egress `{url}`: {message}"),
                    "invalid egress",
                    help,
                );
                return None;
            }
        };
        if let Some(table) = table {
            match &table.methods {
                Some(list) if list.get_ref().is_empty() => {
                    self.error(
                        "invalid-methods",
                        list.span(),
                        "`methods` is empty, so the grant allows no request".into(),
                        "no methods",
                        "list the methods the function sends, e.g. `[\"POST\"]`, or remove \
                         `methods` to allow any method"
                            .into(),
                    );
                    return None;
                }
                Some(list) => rule.methods = self.method_list(list),
                None => {}
            }
            rule.allow_private = table.allow_private.is_some_and(|b| *b.get_ref());
        }
        Some(LocatedEgress {
            rule,
            span: url_span,
        })
    }

    /// Records `key`; on a repeat reports `duplicate-grant` and returns false.
    fn first_time<K: Ord>(
        &mut self,
        seen: &mut BTreeMap<K, Range<usize>>,
        key: K,
        at: &Spanned<String>,
        what: &str,
    ) -> bool {
        if let Some(first) = seen.get(&key) {
            let d = Diagnostic::error(
                "duplicate-grant",
                self.file,
                format!("{what} `{}` is granted twice", at.get_ref()),
            )
            .at(self.src, at.span(), "granted again here")
            .related(self.src, first.clone(), "first granted here")
            .help("remove the repeated entry");
            self.diagnostics.push(d);
            return false;
        }
        seen.insert(key, at.span());
        true
    }

    /// Validates `auth`; returns the method and the span of its value.
    fn auth(&mut self, raw: Spanned<RawAuth>, dir: &Path) -> Option<(Auth, Range<usize>)> {
        let span = raw.span();
        let raw = raw.into_inner();
        let mut present: Vec<(&str, Range<usize>)> = Vec::new();
        if let Some(public) = &raw.public {
            present.push(("public", public.span()));
        }
        if let Some(jwt) = &raw.jwt {
            present.push(("jwt", jwt.span()));
        }
        if let Some(mtls) = &raw.mtls {
            present.push(("mtls", mtls.span()));
        }
        if let Some(api_key) = &raw.api_key {
            present.push(("api-key", api_key.span()));
        }
        present.sort_by_key(|p| p.1.start);
        let method_span = match present.as_slice() {
            [] => {
                let d = Diagnostic::error(
                    "invalid-auth",
                    self.file,
                    "`auth` names no authentication method",
                )
                .at_key(self.src, span, "empty `auth`")
                .help("set exactly one of `public = true`, `jwt`, `mtls` or `api-key`");
                self.diagnostics.push(d);
                return None;
            }
            [(_, span)] => span.clone(),
            [(first, first_span), (second, second_span), ..] => {
                let d = Diagnostic::error(
                    "conflicting-auth",
                    self.file,
                    format!("`auth` sets both `{first}` and `{second}`; a route has exactly one authentication method"),
                )
                .at(self.src, second_span.clone(), format!("`{second}` set here"))
                .related(self.src, first_span.clone(), format!("`{first}` set here"))
                .help("keep one method and remove the others");
                self.diagnostics.push(d);
                return None;
            }
        };

        if let Some(public) = raw.public {
            if !public.get_ref() {
                self.error(
                    "invalid-auth",
                    public.span(),
                    "`public = false` does not choose an authentication method".into(),
                    "not a method",
                    "write `public = true` for a public route, or use `jwt`, `mtls` or `api-key`"
                        .into(),
                );
                return None;
            }
            return Some((Auth::Public, method_span));
        }
        if let Some(jwt) = raw.jwt {
            let jwt = jwt.into_inner();
            for (key, value) in [("issuer", &jwt.issuer), ("audience", &jwt.audience)] {
                self.non_empty(&format!("auth.jwt.{key}"), value);
            }
            self.jwks_source(&jwt.jwks);
            for alg in &jwt.algorithms {
                if !JWT_ALGORITHMS.contains(&alg.get_ref().as_str()) {
                    self.error(
                        "invalid-auth",
                        alg.span(),
                        format!("unsupported JWT algorithm `{}`", alg.get_ref()),
                        "unsupported algorithm",
                        format!(
                            "use asymmetric algorithms verifiable with the JWKS: {}",
                            list_of(JWT_ALGORITHMS)
                        ),
                    );
                }
            }
            for claim in &jwt.required_claims {
                self.non_empty("auth.jwt.required_claims", claim);
            }
            let jwt = Auth::Jwt(JwtAuth {
                issuer: jwt.issuer.into_inner(),
                audience: jwt.audience.into_inner(),
                jwks: jwt.jwks.into_inner(),
                algorithms: jwt
                    .algorithms
                    .into_iter()
                    .map(Spanned::into_inner)
                    .collect(),
                required_claims: jwt
                    .required_claims
                    .into_iter()
                    .map(Spanned::into_inner)
                    .collect(),
            });
            return Some((jwt, method_span));
        }
        if let Some(mtls) = raw.mtls {
            let mtls = mtls.into_inner();
            self.relative_path("auth.mtls.ca", &mtls.ca);
            if let Some(id) = &mtls.spiffe_id
                && !id.get_ref().starts_with("spiffe://")
            {
                self.error(
                    "invalid-auth",
                    id.span(),
                    format!("`spiffe_id` `{}` is not a SPIFFE ID", id.get_ref()),
                    "expected `spiffe://...`",
                    "write it as `spiffe://<trust-domain>/<path>`".into(),
                );
            }
            let mtls = Auth::Mtls(MtlsAuth {
                ca: dir.join(mtls.ca.get_ref()),
                ca_written: mtls.ca.get_ref().replace('\\', "/"),
                spiffe_id: mtls.spiffe_id.map(Spanned::into_inner),
            });
            return Some((mtls, method_span));
        }
        if let Some(api_key) = raw.api_key {
            let header = match api_key.into_inner().header {
                Some(header) => {
                    let text = header.get_ref();
                    if text.is_empty()
                        || !text
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    {
                        self.error(
                            "invalid-auth",
                            header.span(),
                            format!("`{text}` is not a valid HTTP header name"),
                            "invalid header name",
                            "use letters, digits and `-`, e.g. `x-api-key`".into(),
                        );
                    } else if text.to_ascii_lowercase().starts_with("x-zerofn-") {
                        self.error(
                            "invalid-auth",
                            header.span(),
                            format!("`{text}` is a header the platform reserves"),
                            "reserved header",
                            "`x-zerofn-*` headers are set by the platform only; use e.g. `x-api-key`".into(),
                        );
                    }
                    text.to_ascii_lowercase()
                }
                None => "x-api-key".to_string(),
            };
            return Some((Auth::ApiKey(ApiKeyAuth { header }), method_span));
        }
        None
    }

    fn input(&mut self, raw: RawInput, dir: &Path) -> InputSpec {
        if let Some(schema) = &raw.schema {
            self.relative_path("input.schema", schema);
        }
        for ct in &raw.content_types {
            let text = ct.get_ref();
            let valid = match text.split_once('/') {
                Some((kind, sub)) => {
                    let token = |s: &str| {
                        !s.is_empty()
                            && s.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
                    };
                    token(kind) && token(sub)
                }
                None => false,
            };
            if !valid {
                self.error(
                    "invalid-input",
                    ct.span(),
                    format!("`{text}` is not a media type"),
                    "expected `type/subtype`",
                    "write a media type without parameters, e.g. `application/json`".into(),
                );
            }
        }
        let max_body_bytes = raw.max_body_bytes.as_ref().and_then(|v| {
            self.positive(
                "input.max_body_bytes",
                "invalid-input",
                v,
                u64::MAX,
                "set a positive number of bytes, or remove it",
            )
        });
        let max_json_depth = raw.max_json_depth.as_ref().and_then(|v| {
            self.positive(
                "input.max_json_depth",
                "invalid-input",
                v,
                u64::from(InputSpec::MAX_JSON_DEPTH_CEILING),
                "set a positive depth, or remove it",
            )
        });
        InputSpec {
            schema: raw.schema.as_ref().map(|s| dir.join(s.get_ref())),
            schema_file: raw.schema.map(|s| s.get_ref().replace('\\', "/")),
            content_types: raw
                .content_types
                .into_iter()
                .map(|c| c.into_inner().to_ascii_lowercase())
                .collect(),
            max_body_bytes,
            max_json_depth: max_json_depth.and_then(|d| u32::try_from(d).ok()),
        }
    }

    /// Two functions on one route with a method in common: the router could not choose.
    /// `routes` holds each function's route span and name, in file order, so that a duplicate
    /// is reported at the later definition.
    fn duplicate_routes(
        &mut self,
        routes: &[(Range<usize>, String)],
        functions: &BTreeMap<String, Function>,
    ) {
        for (i, (span, name)) in routes.iter().enumerate() {
            let Some(function) = functions.get(name) else {
                continue;
            };
            let Some((route, methods)) = function.http() else {
                continue;
            };
            let earlier = routes[..i].iter().find_map(|(first_span, first_name)| {
                let (first_route, first_methods) = functions.get(first_name)?.http()?;
                let shared: Vec<&str> = methods
                    .iter()
                    .filter(|m| first_methods.contains(m))
                    .map(|m| m.as_str())
                    .collect();
                (first_route == route && !shared.is_empty())
                    .then_some((first_span, first_name, shared))
            });
            if let Some((first_span, first_name, shared)) = earlier {
                let d = Diagnostic::error(
                    "duplicate-route",
                    self.file,
                    format!("route `{route}` is already used by function `{first_name}`"),
                )
                .at(self.src, span.clone(), format!("{} also routed to `{first_name}`", shared.join(", ")))
                .related(self.src, first_span.clone(), format!("`{first_name}` uses it here"))
                .help(format!(
                    "give `{name}` a different route, or split `methods` so that each method goes to one function"
                ));
                self.diagnostics.push(d);
            }
        }
    }

    fn non_empty(&mut self, key: &str, value: &Spanned<String>) {
        if value.get_ref().trim().is_empty() {
            self.error(
                "invalid-auth",
                value.span(),
                format!("`{key}` is empty"),
                "empty",
                format!("set `{key}`"),
            );
        }
    }

    /// An `https://` URL (keys are public, but who serves them is not: never plain HTTP), or a
    /// path relative to the manifest.
    fn jwks_source(&mut self, value: &Spanned<String>) {
        let text = value.get_ref();
        if !text.contains("://") {
            self.relative_path("auth.jwt.jwks", value);
            return;
        }
        let valid = url::Url::parse(text)
            .ok()
            .filter(|url| url.scheme() == "https" && url.host().is_some())
            .filter(|url| url.username().is_empty() && url.password().is_none());
        if valid.is_none() || !text.starts_with("https://") {
            self.error(
                "invalid-auth",
                value.span(),
                format!("`auth.jwt.jwks` `{text}` is neither an https URL nor a relative path"),
                "expected `https://host/path` or a file path",
                "fetch keys over https (a key set served over plain HTTP can be replaced in transit), \
                 without user info, or give a path to a JWKS file next to the manifest"
                    .into(),
            );
        }
    }

    fn relative_path(&mut self, key: &str, value: &Spanned<String>) {
        let text = value.get_ref();
        if text.trim().is_empty() {
            self.error(
                "invalid-path",
                value.span(),
                format!("`{key}` is empty"),
                "empty path",
                format!("set `{key}` to a path relative to the manifest's directory"),
            );
        } else if Path::new(text).is_absolute() || text.starts_with('/') || text.starts_with('\\') {
            self.error(
                "invalid-path",
                value.span(),
                format!("`{key}` is an absolute path"),
                "absolute path",
                "write it relative to the manifest's directory, so the app builds and deploys from any checkout".into(),
            );
        }
    }

    /// `[a-z][a-z0-9-]{0,62}`, not ending in `-`: usable as a DNS label and in URLs.
    fn dns_label(&mut self, what: &str, value: &Spanned<String>) -> bool {
        let text = value.get_ref();
        let valid = crate::is_dns_label(text);
        if !valid {
            let fix = suggested_fix(text, '-');
            self.error(
                "invalid-name",
                value.span(),
                format!("invalid {what} `{text}`"),
                "invalid name",
                format!("use 1 to 63 lowercase letters, digits and `-`, starting with a letter and not ending with `-`{fix}"),
            );
        }
        valid
    }

    /// `[a-z_][a-z0-9_]{0,63}`: secret and bucket names.
    fn identifier(&mut self, what: &str, value: &Spanned<String>) -> bool {
        let text = value.get_ref();
        let valid = crate::is_identifier(text);
        if !valid {
            let fix = suggested_fix(text, '_');
            self.error(
                "invalid-name",
                value.span(),
                format!("invalid {what} `{text}`"),
                "invalid name",
                format!(
                    "use 1 to 64 lowercase letters, digits and `_`, not starting with a digit{fix}"
                ),
            );
        }
        valid
    }

    /// `MAJOR.MINOR.PATCH`, optionally `-prerelease` and `+build`.
    fn version(&mut self, value: &Spanned<String>) {
        let text = value.get_ref();
        let (core, rest) = match text.find(['-', '+']) {
            Some(i) => (&text[..i], &text[i + 1..]),
            None => (text.as_str(), ""),
        };
        let numbers: Vec<&str> = core.split('.').collect();
        let number_ok = |n: &&str| {
            !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
                && (n.len() == 1 || !n.starts_with('0'))
        };
        let suffix_ok = text.len() == core.len()
            || (!rest.is_empty()
                && rest.split(['.', '+']).all(|p| {
                    !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                }));
        if numbers.len() != 3 || !numbers.iter().all(number_ok) || !suffix_ok {
            self.error(
                "invalid-version",
                value.span(),
                format!("invalid app version `{text}`"),
                "not MAJOR.MINOR.PATCH",
                "write a semantic version such as `0.1.0` or `1.2.0-beta.1`".into(),
            );
        }
    }
}

/// Algorithms whose keys a JWKS can publish; symmetric ones (`HS*`) and `none` are refused.
const JWT_ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

fn non_empty_span<T>(list: &Spanned<Vec<T>>) -> Option<Range<usize>> {
    (!list.get_ref().is_empty()).then(|| list.span())
}

/// An egress rule and where its URL is written.
struct LocatedEgress {
    rule: EgressRule,
    span: Range<usize>,
}

/// A name that passes the rules, derived from an invalid one, for the help line.
fn fix_name(text: &str, separator: char) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with(separator) {
            out.push(separator);
        }
    }
    let out = out
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .trim_end_matches(separator);
    out.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches(separator)
        .to_string()
}

/// `` `a`, `b` and `c` ``
pub(crate) fn list_of<'s>(items: impl IntoIterator<Item = &'s str>) -> String {
    let items: Vec<String> = items.into_iter().map(|i| format!("`{i}`")).collect();
    match items.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// The closest candidate within a small edit distance, for "did you mean".
pub(crate) fn suggest<'s>(
    word: &str,
    candidates: impl IntoIterator<Item = &'s str>,
) -> Option<&'s str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// Parses the TOML and deserializes the raw shape, reporting syntax or shape errors.
fn read_raw(cx: &mut Checker<'_>) -> Option<RawManifest> {
    let (table, errors) = toml::de::DeTable::parse_recoverable(cx.src);
    if !errors.is_empty() {
        for error in errors {
            let span = error.span().unwrap_or(0..0);
            let d = Diagnostic::error(
                "toml-syntax",
                cx.file,
                format!("invalid TOML: {}", error.message()),
            )
            .at_key(cx.src, span, "")
            .help("the manifest must be valid TOML; see https://toml.io");
            cx.diagnostics.push(d);
        }
        return None;
    }
    match RawManifest::deserialize(toml::de::Deserializer::from(table)) {
        Ok(raw) => Some(raw),
        Err(error) => {
            let d = shape_error(cx, &error);
            cx.diagnostics.push(d);
            None
        }
    }
}

/// Turns serde's message into a diagnostic with our codes, wording and a help line.
fn shape_error(cx: &Checker<'_>, error: &toml::de::Error) -> Diagnostic {
    let message = error.message();
    let span = error.span().unwrap_or(0..0);
    // toml's Display ends with "in `a.b`" when it knows the key path and has no input text.
    let rendered = error.to_string();
    let table = rendered
        .lines()
        .find_map(|l| l.strip_prefix("in `").and_then(|l| l.strip_suffix('`')))
        .map(|path| format!(" in `[{path}]`"))
        .unwrap_or_default();
    let ticked = backticked(message);

    if message.starts_with("unknown field") {
        let key = ticked.first().copied().unwrap_or_default();
        let expected = &ticked[1.min(ticked.len())..];
        let mut help = match suggest(key, expected.iter().copied()) {
            Some(s) => format!("did you mean `{s}`? "),
            None => String::new(),
        };
        if expected.is_empty() {
            help.push_str("this table takes no keys");
        } else {
            help.push_str(&format!("expected {}", list_of(expected.iter().copied())));
        }
        return Diagnostic::error(
            "unknown-key",
            cx.file,
            format!("unknown key `{key}`{table}"),
        )
        .at_key(cx.src, span, "unknown key")
        .help(help);
    }
    if message.starts_with("missing field") {
        let key = ticked.first().copied().unwrap_or_default();
        let (message, label) = if key == "app" {
            (
                "missing `[app]` table".to_string(),
                "expected an `[app]` table in this file".to_string(),
            )
        } else {
            (
                format!("missing required key `{key}`{table}"),
                format!("this table needs `{key}`"),
            )
        };
        return Diagnostic::error("missing-key", cx.file, message)
            .at_key(cx.src, span, label)
            .help(missing_help(key));
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let expected = plain_type(expected);
        if found.contains("as i128") || found.contains("as u128") {
            return Diagnostic::error("invalid-type", cx.file, "integer is too large")
                .at(cx.src, span, "too large")
                .help("use a number below 2^63");
        }
        let found_kind = found.split([' ', '`']).next().unwrap_or(found);
        let found_kind = match found_kind {
            "sequence" => "array",
            "map" => "table",
            "floating" => "float",
            other => other,
        };
        return Diagnostic::error(
            "invalid-type",
            cx.file,
            format!("expected {expected}, found {found_kind}"),
        )
        .at(cx.src, span, format!("expected {expected}"))
        .help(type_help(&expected));
    }
    if message.starts_with("unknown variant") {
        let value = ticked.first().copied().unwrap_or_default();
        let expected = list_of(ticked.iter().skip(1).copied());
        return Diagnostic::error("invalid-value", cx.file, format!("invalid value `{value}`"))
            .at(cx.src, span, format!("expected {expected}"))
            .help(format!("use {expected}"));
    }
    if message == "wanted string or table" {
        return Diagnostic::error("invalid-type", cx.file, "expected a string")
            .at(cx.src, span, "expected a string")
            .help("put the value in double quotes");
    }
    Diagnostic::error("invalid-value", cx.file, format!("{message}{table}"))
        .at(cx.src, span, "")
        .help("see docs/manifest.md for the manifest format")
}

fn backticked(message: &str) -> Vec<&str> {
    message.split('`').skip(1).step_by(2).collect()
}

fn plain_type(serde_expected: &str) -> String {
    match serde_expected {
        "i64" | "u64" | "u32" | "i32" => "an integer".into(),
        "a sequence" => "an array".into(),
        "a map" => "a table".into(),
        s if s.starts_with("struct ") => "a table".into(),
        s => s.to_string(),
    }
}

fn type_help(expected: &str) -> String {
    match expected {
        "an integer" => "write a whole number without quotes or units, e.g. `2000`".into(),
        "a table" => "write a table, e.g. `{ key = \"value\" }`, or a `[section]`".into(),
        "an array" => "write an array, e.g. `[\"a\", \"b\"]`".into(),
        "a string" => "put the value in double quotes".into(),
        "a boolean" => "write `true` or `false`".into(),
        "a URL string or a table" => "write a URL, e.g. `\"https://api.example.com\"`, or a table, e.g. `{ url = \"https://api.example.com\", methods = [\"GET\"] }`".into(),
        other => format!("write {other}"),
    }
}

fn missing_help(key: &str) -> String {
    match key {
        "app" => "add\n[app]\nname = \"my-app\"\nversion = \"0.1.0\"".into(),
        "name" => "add `name = \"my-app\"` (lowercase letters, digits and `-`)".into(),
        "version" => "add `version = \"0.1.0\"`".into(),
        "component" => {
            "add `component = \"path/to/function.wasm\"`, relative to the manifest's directory"
                .into()
        }
        "trigger" => "add `trigger = { http = { route = \"/path\" } }`".into(),
        "route" => "add `route = \"/path\"`".into(),
        "cron" => "add `cron = \"0 * * * *\"` (UTC; five fields, or six with seconds first)".into(),
        "command" => "add `command = \"cargo build --release --target wasm32-wasip2\"`".into(),
        "issuer" => "add `issuer = \"https://id.example.com\"`, the expected `iss` claim".into(),
        "audience" => "add `audience = \"my-app\"`, the expected `aud` claim".into(),
        "jwks" => "add `jwks = \"https://id.example.com/.well-known/jwks.json\"`".into(),
        "ca" => "add `ca = \"certs/clients-ca.pem\"`, relative to the manifest's directory".into(),
        "url" => {
            "add `url = \"https://api.example.com\"`, the destination this entry grants".into()
        }
        other => format!("add `{other} = ...`; see docs/manifest.md"),
    }
}

/// ", e.g. `fixed`" when the name can be fixed by rewriting it, else nothing.
fn suggested_fix(text: &str, separator: char) -> String {
    let fixed = fix_name(text, separator);
    if !fixed.is_empty() && fixed != text {
        format!(", e.g. `{fixed}`")
    } else {
        String::new()
    }
}
