//! The active route table: which deployed function answers a path and method. Replaced whole on
//! every deploy or rollback, so a request sees either the old table or the new one.

use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::Semaphore;
use zerofn_manifest::Route;
use zerofn_runtime::{InvocationLimits, LoadedComponent, OutputBudget};

/// A function of an active version, ready to be invoked.
#[derive(Debug)]
pub struct ActiveFunction {
    pub app: Arc<str>,
    pub name: Arc<str>,
    pub version_id: Arc<str>,
    /// Its workload identity (SPIFFE ID), stamped on its events.
    pub identity: Arc<str>,
    /// How it is reached; only `Http` functions are in the route lookup.
    pub trigger: zerofn_manifest::Trigger,
    /// The methods of an HTTP function; empty for the others, which no request reaches.
    pub methods: Vec<String>,
    pub component: Arc<LoadedComponent>,
    pub limits: InvocationLimits,
    pub max_concurrency: u32,
    pub permits: Arc<Semaphore>,
    pub output_budget: OutputBudget,
    /// What the function may use; compiled into the PDP's permits.
    pub grants: zerofn_manifest::Grants,
    /// Who may call it from outside, and how that is checked.
    pub caller_auth: crate::authn::CallerAuth,
    /// Plain config values it reads through `wasi:config` (`config` in the manifest).
    pub config: std::collections::BTreeMap<String, String>,
    /// Its request-rate buckets, for everyone and per caller (new with each version).
    pub rate_limits: crate::rate_limit::RateLimits,
    /// What its request bodies must look like (`None`: anything within the body limit).
    pub input: Option<Arc<crate::input::InputGuard>>,
}

impl ActiveFunction {
    /// The route of an HTTP function.
    pub fn route(&self) -> Option<&Route> {
        self.trigger.http().map(|(route, _)| route)
    }

    /// The function as listings show it.
    pub fn summary(&self) -> crate::FunctionSummary {
        crate::FunctionSummary {
            name: self.name.to_string(),
            route: self.route().map(Route::to_string).unwrap_or_default(),
            methods: self.methods.clone(),
            trigger: self.trigger.describe(),
            component_digest: self.component.digest().to_string(),
        }
    }
}

/// An app's active version.
#[derive(Debug, Clone)]
pub struct ActiveApp {
    pub name: String,
    pub version_id: String,
    pub app_version: String,
    pub functions: Vec<Arc<ActiveFunction>>,
    /// Why the version no longer serves (its signer was revoked, say): every request gets 503
    /// with this reason until an operator redeploys or rolls back.
    pub suspended: Option<String>,
}

/// What a path and method resolve to.
#[derive(Debug)]
pub enum Lookup {
    Found(Arc<ActiveFunction>),
    /// The route belongs to a suspended version (the reason is in the audit stream).
    Suspended(Arc<ActiveFunction>),
    /// The path is served, but not for this method; the allowed methods are listed.
    MethodNotAllowed(Vec<String>),
    NotFound,
}

/// Every active app, by name.
#[derive(Debug, Default, Clone)]
pub struct RouteTable {
    apps: BTreeMap<String, Arc<ActiveApp>>,
}

impl RouteTable {
    pub fn apps(&self) -> impl Iterator<Item = &Arc<ActiveApp>> {
        self.apps.values()
    }

    pub fn app(&self, name: &str) -> Option<&Arc<ActiveApp>> {
        self.apps.get(name)
    }

    /// A copy of this table with `app` added or replaced.
    pub fn with_app(&self, app: Arc<ActiveApp>) -> Self {
        let mut next = self.clone();
        next.apps.insert(app.name.clone(), app);
        next
    }

    /// The function of another app that already serves `route` for one of `methods`.
    pub fn conflict(
        &self,
        app: &str,
        route: &Route,
        methods: &[String],
    ) -> Option<&Arc<ActiveFunction>> {
        self.apps
            .values()
            .filter(|other| other.name != app)
            .flat_map(|other| other.functions.iter())
            .find(|f| f.route() == Some(route) && f.methods.iter().any(|m| methods.contains(m)))
    }

    /// The most specific route wins: exact routes before prefixes, longer prefixes first.
    pub fn lookup(&self, path: &str, method: &str) -> Lookup {
        let mut best: Option<(&ActiveApp, &Arc<ActiveFunction>, usize)> = None;
        let mut allowed: Vec<String> = Vec::new();
        let functions = self
            .apps
            .values()
            .flat_map(|app| app.functions.iter().map(move |f| (app.as_ref(), f)));
        for (app, function) in functions {
            // Schedule and queue functions have no route: no request reaches them.
            let Some(score) = function.route().and_then(|route| specificity(route, path)) else {
                continue;
            };
            if !function.methods.iter().any(|m| m == method) {
                allowed.extend(function.methods.iter().cloned());
                continue;
            }
            if best.is_none_or(|(_, _, best_score)| score > best_score) {
                best = Some((app, function, score));
            }
        }
        match best {
            Some((app, function, _)) if app.suspended.is_some() => {
                Lookup::Suspended(function.clone())
            }
            Some((_, function, _)) => Lookup::Found(function.clone()),
            None if !allowed.is_empty() => {
                allowed.sort();
                allowed.dedup();
                Lookup::MethodNotAllowed(allowed)
            }
            None => Lookup::NotFound,
        }
    }
}

/// How specifically `route` matches `path`: exact routes beat every prefix, longer prefixes beat
/// shorter ones; `None` when it does not match.
fn specificity(route: &Route, path: &str) -> Option<usize> {
    if !route.matches(path) {
        return None;
    }
    if route.is_prefix() {
        Some(route.base().len())
    } else {
        Some(usize::MAX)
    }
}
