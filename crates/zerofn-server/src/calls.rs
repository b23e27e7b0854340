//! Function-to-function calls. A function calls another of its app with ordinary outbound HTTP
//! to `http://<function>.<app>.fn.internal/<path>`; the platform takes the request inside the
//! process (it never reaches a network), asks the PDP whether the caller's grants allow
//! `invoke` on the callee, and runs the callee in its own sandbox under its own limits. The
//! callee learns who called from headers only the platform sets (`x-zerofn-caller`,
//! `x-zerofn-caller-chain`): every `x-zerofn-*` header the caller wrote is removed first. Call
//! chains are capped in depth and each invocation in fan-out, so recursion cannot exhaust the
//! platform. Each call is a span of its own under the caller's invocation, and the callee's
//! invocation a child of it: the callee's `traceparent` is the platform's, never the one the
//! caller's code wrote (see [`crate::correlation`]).

use crate::platform::Platform;
use crate::routes::ActiveFunction;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use zerofn_runtime::{Outbound, Routed};

/// The reserved domain of internal calls.
pub const INTERNAL_SUFFIX: &str = ".fn.internal";
/// How many functions deep a call chain may go (the first function is depth 1).
pub const MAX_CALL_DEPTH: usize = 8;
/// How many calls one invocation may make.
pub const MAX_CALLS_PER_INVOCATION: u32 = 32;
/// The verified SPIFFE ID of the calling function.
pub const CALLER_HEADER: &str = "x-zerofn-caller";
/// The SPIFFE IDs of every function in the chain, outermost first, comma-separated.
pub const CALLER_CHAIN_HEADER: &str = "x-zerofn-caller-chain";
/// Headers with this prefix are the platform's: a caller's copies are removed.
pub const RESERVED_HEADER_PREFIX: &str = "x-zerofn-";

pub use zerofn_identity::{is_trust_domain, spiffe_id};

/// The function and app an internal host names: `inventory.shop.fn.internal` →
/// `("inventory", "shop")`. Case-insensitive, as hosts are; anything else is not internal.
pub fn internal_target(host: &str) -> Option<(String, String)> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let rest = host.strip_suffix(INTERNAL_SUFFIX)?;
    let (function, app) = rest.split_once('.')?;
    (zerofn_manifest::is_dns_label(function) && zerofn_manifest::is_dns_label(app))
        .then(|| (function.to_string(), app.to_string()))
}

/// One invocation's outbound side: internal calls go to [`Platform::call`], everything else
/// to the egress enforcement point ([`crate::egress`]).
pub(crate) struct CallerOutbound {
    pub(crate) platform: Weak<Platform>,
    pub(crate) caller: Arc<ActiveFunction>,
    /// The invocation's id, identity, caller and span.
    pub(crate) scope: Arc<zerofn_audit::InvocationScope>,
    /// SPIFFE IDs of the functions that called this invocation, outermost first.
    pub(crate) chain: Arc<[String]>,
    pub(crate) calls: AtomicU32,
    /// The invocation's JWT-SVID, held here (never by the guest) and presented on its behalf.
    pub(crate) token: Arc<str>,
    /// When the invocation must be over; its callees get no more.
    pub(crate) deadline: std::time::Instant,
    /// Egress exchanges in flight ([`crate::egress::MAX_IN_FLIGHT`] at most).
    pub(crate) egress_in_flight: Arc<tokio::sync::Semaphore>,
}

/// What the platform needs to decide and run one call.
pub(crate) struct Call {
    pub(crate) caller: Arc<ActiveFunction>,
    /// The calling invocation.
    pub(crate) scope: Arc<zerofn_audit::InvocationScope>,
    pub(crate) chain: Arc<[String]>,
    pub(crate) token: Arc<str>,
    pub(crate) deadline: std::time::Instant,
    pub(crate) callee_app: String,
    pub(crate) callee: String,
    /// 1 for the invocation's first call.
    pub(crate) number: u32,
}

impl Outbound for CallerOutbound {
    fn route(
        &self,
        request: http::Request<zerofn_runtime::OutboundBody>,
        options: Option<zerofn_runtime::RequestOptions>,
    ) -> Routed {
        let Some(platform) = self.platform.upgrade() else {
            return Routed::Declined(Box::new(request));
        };
        let Some((callee, callee_app)) = request.uri().host().and_then(internal_target) else {
            let call = crate::egress::EgressCall {
                caller: self.caller.clone(),
                scope: self.scope.clone(),
                chain: self.chain.clone(),
                deadline: self.deadline,
                // Taken now, in the order the guest sent its requests, so the cap is exact.
                in_flight: self.egress_in_flight.clone().try_acquire_owned().ok(),
            };
            return Routed::Answered(Box::pin(async move {
                crate::egress::send(&platform, call, request, options).await
            }));
        };
        let call = Call {
            caller: self.caller.clone(),
            scope: self.scope.clone(),
            chain: self.chain.clone(),
            token: self.token.clone(),
            deadline: self.deadline,
            callee_app,
            callee,
            number: self.calls.fetch_add(1, Ordering::Relaxed).saturating_add(1),
        };
        Routed::Answered(Box::pin(
            async move { Ok(platform.call(call, request).await) },
        ))
    }
}

/// Removes every header with the platform's reserved prefix.
pub(crate) fn remove_reserved_headers(headers: &mut http::HeaderMap) {
    let reserved: Vec<http::HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(RESERVED_HEADER_PREFIX))
        .cloned()
        .collect();
    for name in reserved {
        headers.remove(&name);
    }
}

/// Removes every platform-reserved header the caller wrote, then sets the caller's identity.
pub(crate) fn set_identity_headers(headers: &mut http::HeaderMap, caller: &str, chain: &[String]) {
    remove_reserved_headers(headers);
    if let Ok(value) = http::HeaderValue::from_str(caller) {
        headers.insert(CALLER_HEADER, value);
    }
    if let Ok(value) = http::HeaderValue::from_str(&chain.join(", ")) {
        headers.insert(CALLER_CHAIN_HEADER, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_hosts_name_a_function_and_an_app() {
        assert_eq!(
            internal_target("inventory.shop.fn.internal"),
            Some(("inventory".into(), "shop".into()))
        );
        assert_eq!(
            internal_target("Inventory.Shop.FN.internal."),
            Some(("inventory".into(), "shop".into()))
        );
        for host in [
            "shop.fn.internal",
            "a.b.c.fn.internal",
            "inventory.shop.fn.internal.evil.com",
            "inventory.shop.fn.internalx",
            "-x.shop.fn.internal",
            "example.com",
            "",
        ] {
            assert_eq!(internal_target(host), None, "{host}");
        }
    }

    #[test]
    fn caller_copies_of_identity_headers_are_replaced() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            CALLER_HEADER,
            http::HeaderValue::from_static("spiffe://evil"),
        );
        headers.append("X-Zerofn-Caller", http::HeaderValue::from_static("again"));
        headers.insert("x-zerofn-anything", http::HeaderValue::from_static("x"));
        headers.insert("accept", http::HeaderValue::from_static("*/*"));
        set_identity_headers(
            &mut headers,
            "spiffe://zerofn.local/app/shop/fn/checkout",
            &["spiffe://zerofn.local/app/shop/fn/checkout".to_string()],
        );
        assert_eq!(
            headers.get_all(CALLER_HEADER).iter().collect::<Vec<_>>(),
            ["spiffe://zerofn.local/app/shop/fn/checkout"]
        );
        assert!(headers.get("x-zerofn-anything").is_none());
        assert_eq!(
            headers.get("accept").map(|v| v.as_bytes()),
            Some(&b"*/*"[..])
        );
    }
}
