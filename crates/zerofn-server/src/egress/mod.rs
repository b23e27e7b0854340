//! Egress: the enforcement point for a function's outbound HTTP to anything but another
//! function. Nothing leaves unless the function's `egress` grants, as decided by the PDP with
//! the operator's guardrails, allow it:
//!
//! 1. the guest's URL is normalised ([`destination`]); user info is refused;
//! 2. the PDP decides scheme, host, port, path and method before any name lookup, so a host
//!    that is not granted is never even resolved;
//! 3. the platform resolves the name itself and classifies every address ([`address`]); the
//!    PDP decides again for each, with the address and whether it is private (only a grant
//!    with `allow_private` covers a private one);
//! 4. the connector ([`connect`]) connects to exactly those addresses, verifies TLS for the
//!    granted name, sends the request as it was matched, and streams the response back.
//!
//! Every refusal reaches the guest as `HttpRequestDenied` (`ConnectionLimitReached` for the
//! in-flight cap) before any connection exists, and is an `egress.denied` event naming the
//! rule; every allowed exchange is an `egress` event when it ends; every decision is an
//! `authz.decision` event ([`record`]). Counters per function feed [`crate::metrics`].

mod address;
mod connect;
mod destination;
mod record;

pub use address::{AddressClass, classify};
pub use connect::Timeouts;
pub use destination::{Target, Unusable, normalise};

use crate::platform::Platform;
use crate::routes::ActiveFunction;
use connect::{Connector, MeteredBody};
use http_body_util::BodyExt;
use record::{Recorder, Refusal};
use std::net::IpAddr;
use std::sync::Arc;
use zerofn_policy::grants::EgressMiss;
use zerofn_runtime::BodyError as Error;
use zerofn_runtime::OutboundBody;

/// The URL is not an HTTP URL with a valid host.
pub const RULE_INVALID_URL: &str = "egress-invalid-url";
/// The URL carries user info (`user@host`, `granted.com@evil`).
pub const RULE_USERINFO: &str = "egress-userinfo";
/// No grant names the host with this scheme and port.
pub const RULE_NOT_GRANTED: &str = "egress-not-granted";
/// A grant names the destination, but its path prefix does not cover the path.
pub const RULE_PATH_NOT_GRANTED: &str = "egress-path-not-granted";
/// A grant covers the destination, but not the method.
pub const RULE_METHOD_NOT_ALLOWED: &str = "egress-method-not-allowed";
/// The destination is (or resolves to) a non-public address and no grant allows private ones.
pub const RULE_PRIVATE_ADDRESS: &str = "egress-private-address";
/// An operator's guardrail (a Cedar `forbid`) refused it; `detail.policies` names it.
pub const RULE_GUARDRAIL: &str = "egress-guardrail";
/// A policy failed to evaluate (which denies).
pub const RULE_POLICY_ERROR: &str = "egress-policy-error";
/// The invocation already has [`MAX_IN_FLIGHT`] exchanges open.
pub const RULE_IN_FLIGHT: &str = "egress-in-flight-limit";

/// How many egress exchanges one invocation may have open at once (from the request until its
/// response body ends): each holds a connection, and a guest must not be able to hold the
/// platform's sockets by the thousand.
pub const MAX_IN_FLIGHT: usize = 16;

/// The platform's egress: the connector and its TLS roots, built once at start.
pub struct Egress {
    connector: Connector,
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Egress").finish_non_exhaustive()
    }
}

impl Egress {
    /// Egress that verifies servers against the system's roots and the PEM certificates of
    /// `extra_ca` (`[egress] ca`).
    pub fn new(extra_ca: Option<&[u8]>) -> Result<Self, String> {
        let roots = crate::tls_roots::system_roots_and(extra_ca, "egress CA bundle")?;
        Ok(Egress {
            connector: Connector::new(roots)?,
        })
    }
}

/// Who asks, for one outbound request.
pub(crate) struct EgressCall {
    pub(crate) caller: Arc<ActiveFunction>,
    /// The calling invocation.
    pub(crate) scope: Arc<zerofn_audit::InvocationScope>,
    /// SPIFFE IDs of the functions that called this invocation, outermost first.
    pub(crate) chain: Arc<[String]>,
    /// When the invocation must be over; no exchange outlives it.
    pub(crate) deadline: std::time::Instant,
    /// This exchange's place among the invocation's [`MAX_IN_FLIGHT`]; `None` when they were
    /// all taken. Held until the response body ends.
    pub(crate) in_flight: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Decides `request` and, if allowed, sends it; the guest receives the response or the error.
pub(crate) async fn send(
    platform: &Platform,
    mut call: EgressCall,
    request: http::Request<OutboundBody>,
    options: Option<zerofn_runtime::RequestOptions>,
) -> Result<http::Response<OutboundBody>, Error> {
    let deadline = tokio::time::Instant::from_std(call.deadline);
    let timeouts = Timeouts::new(options, deadline);
    // One span for the whole exchange: its decisions, its event, and (through the
    // `traceparent` it carries) whatever the destination records.
    let span = call.scope.span();
    let mut record = Recorder {
        audit: platform.audit().clone(),
        metrics: platform.metrics().egress(),
        caller: call.caller.clone(),
        scope: call.scope.clone(),
        span: span.clone(),
        resolved_non_public: None,
    };
    let foreign = crate::correlation::foreign_traceparent(request.headers(), &call.scope);
    let method = request.method().as_str().to_string();
    let target = match normalise(request.uri()) {
        Ok(target) => target,
        Err(unusable) => {
            let (rule, help) = match unusable {
                Unusable::UserInfo => (
                    RULE_USERINFO,
                    "send credentials in a header, never in the URL's user info".to_string(),
                ),
                Unusable::Invalid(why) => (RULE_INVALID_URL, why),
            };
            return Err(record
                .refuse(Refusal {
                    rule,
                    origin: destination::origin_as_sent(request.uri()),
                    method,
                    address: None,
                    policies: Vec::new(),
                    help,
                })
                .await);
        }
    };

    let Some(in_flight) = call.in_flight.take() else {
        record
            .refuse(Refusal {
                rule: RULE_IN_FLIGHT,
                origin: target.origin(),
                method,
                address: None,
                policies: Vec::new(),
                help: format!(
                    "one invocation may have {MAX_IN_FLIGHT} outbound requests open at once; finish reading a response (or drop it) before sending more"
                ),
            })
            .await;
        return Err(Error::ConnectionLimitReached);
    };

    // Before any lookup: is this destination granted at all?
    let before = zerofn_policy::Destination {
        scheme: target.scheme.to_string(),
        host: target.host.clone(),
        port: target.port,
        path: target.path.clone(),
        method: method.clone(),
        address: target.literal,
        private: target.literal.is_some_and(|ip| classify(ip).is_private()),
    };
    let decision = decide(platform, &call, &span, &before, "request", foreign).await;
    if !decision.allowed {
        return Err(record
            .refuse(refusal(&call.caller, &target, &before, &decision))
            .await);
    }

    // From here the exchange may be cut short by the end of the invocation (this future is
    // dropped then): the guard records that.
    let unfinished = record.unfinished(&target, &method);
    let exchange = Exchange {
        target: &target,
        before: &before,
        timeouts,
        in_flight,
    };
    let result = resolve_and_send(platform, &call, &mut record, exchange, request).await;
    unfinished.disarm();
    result
}

/// An allowed exchange on its way.
struct Exchange<'a> {
    target: &'a Target,
    /// The destination as decided before any lookup.
    before: &'a zerofn_policy::Destination,
    timeouts: Timeouts,
    in_flight: tokio::sync::OwnedSemaphorePermit,
}

/// The allowed part of [`send`]: resolve, decide each address, connect to one of them.
async fn resolve_and_send(
    platform: &Platform,
    call: &EgressCall,
    record: &mut Recorder,
    exchange: Exchange<'_>,
    mut request: http::Request<OutboundBody>,
) -> Result<http::Response<OutboundBody>, Error> {
    let Exchange {
        target,
        before,
        timeouts,
        in_flight,
    } = exchange;
    let started = std::time::Instant::now();
    let method = &before.method;
    // The platform resolves the name itself, and every address it got is decided: the
    // connection goes to one of exactly these.
    let addresses = match target.literal {
        Some(ip) => vec![ip],
        None => match resolve(target, timeouts).await {
            Ok(addresses) => addresses,
            Err((reason, error, detail)) => {
                record
                    .failed(target, method, reason, None, detail, started)
                    .await;
                return Err(error);
            }
        },
    };
    let mut non_public: Vec<&'static str> = addresses
        .iter()
        .map(|ip| classify(*ip))
        .filter(|class| class.is_private())
        .map(|class| class.range())
        .collect();
    non_public.sort_unstable();
    non_public.dedup();
    record.resolved_non_public = Some(non_public);
    if target.literal.is_none() {
        for ip in &addresses {
            let resolved = zerofn_policy::Destination {
                address: Some(*ip),
                private: classify(*ip).is_private(),
                ..before.clone()
            };
            let decision = decide(platform, call, &record.span, &resolved, "resolved", None).await;
            if !decision.allowed {
                return Err(record
                    .refuse(refusal(&call.caller, target, &resolved, &decision))
                    .await);
            }
        }
    }

    // What was matched is what is sent: origin-form target, Host from the normalised URL.
    let uri = target.path_and_query().parse::<http::Uri>();
    let host = http::HeaderValue::from_str(&target.host_header());
    let (Ok(uri), Ok(host)) = (uri, host) else {
        // The normalised form always makes both; this is the check that it did.
        record
            .failed(
                target,
                method,
                "invalid-request",
                None,
                "the normalised URL is not a valid request target".into(),
                started,
            )
            .await;
        return Err(Error::HttpRequestUriInvalid);
    };
    *request.uri_mut() = uri;
    request.headers_mut().insert(http::header::HOST, host);
    // The destination continues the exchange's span, not whatever the guest wrote.
    crate::correlation::set_traceparent(request.headers_mut(), &record.span);
    let request = request.map(MeteredBody::new);
    let on_end = record.on_end(target, method, started, in_flight);
    let connector = &platform.egress().connector;
    match connector
        .send(target, &addresses, request, timeouts, on_end)
        .await
    {
        Ok(response) => Ok(response.map(|body| body.boxed_unsync())),
        Err((failure, address)) => {
            let error = failure.error();
            record
                .failed(
                    target,
                    method,
                    failure.reason(),
                    address,
                    failure.to_string(),
                    started,
                )
                .await;
            Err(error)
        }
    }
}

/// Asks the PDP about `destination` (recorded as an `authz.decision` with its `phase`).
async fn decide(
    platform: &Platform,
    call: &EgressCall,
    span: &zerofn_audit::TraceContext,
    destination: &zerofn_policy::Destination,
    phase: &'static str,
    guest_traceparent: Option<String>,
) -> zerofn_policy::Decision {
    let resource = format!(
        "{}://{}:{}",
        destination.scheme, destination.host, destination.port
    );
    let (method, address) = (
        destination.method.clone(),
        destination.address.map(|a| a.to_string()),
    );
    platform
        .decide(
            &call.scope,
            span,
            &call.chain,
            zerofn_policy::Capability::Egress(destination.clone()),
            resource,
            |event| {
                let event = event
                    .detail("method", method)
                    .detail("phase", phase)
                    .detail("address", address);
                match guest_traceparent {
                    Some(sent) => event.detail("guest_traceparent", sent),
                    None => event,
                }
            },
        )
        .await
}

/// The rule, and how to fix it, for a destination the PDP denied.
fn refusal(
    caller: &ActiveFunction,
    target: &Target,
    destination: &zerofn_policy::Destination,
    decision: &zerofn_policy::Decision,
) -> Refusal {
    let field = format!("functions.{}.grants.egress", caller.name);
    let origin = target.origin();
    let (rule, help) = if !decision.errors.is_empty() {
        (
            RULE_POLICY_ERROR,
            format!(
                "a policy failed to evaluate: {}",
                decision.errors.join("; ")
            ),
        )
    } else if !decision.policies.is_empty() {
        (
            RULE_GUARDRAIL,
            format!(
                "the operator's guardrail {} forbids it",
                decision.policies.join(", ")
            ),
        )
    } else {
        match zerofn_policy::grants::egress_miss(&caller.grants, destination) {
            Some(EgressMiss::Path) => (
                RULE_PATH_NOT_GRANTED,
                format!(
                    "no grant's path prefix covers the path; widen the prefix in `{field}` and sign again"
                ),
            ),
            Some(EgressMiss::Method) => (
                RULE_METHOD_NOT_ALLOWED,
                format!(
                    "the grant does not list {}; add it to `methods` of the entry in `{field}` and sign again",
                    destination.method
                ),
            ),
            Some(EgressMiss::Private) => (
                RULE_PRIVATE_ADDRESS,
                format!(
                    "the destination is a non-public address ({}); a grant reaches one only with `allow_private = true` in `{field}`",
                    destination
                        .address
                        .map_or("unknown", |ip| classify(ip).range())
                ),
            ),
            Some(EgressMiss::Host | EgressMiss::SchemeOrPort) | None => (
                RULE_NOT_GRANTED,
                format!("grant it with `\"{origin}\"` in `{field}` and sign again"),
            ),
        }
    };
    Refusal {
        rule,
        origin,
        method: destination.method.clone(),
        address: destination.address,
        policies: decision.policies.clone(),
        help,
    }
}

/// Resolves the target's name with the platform's resolver, within the connect timeout.
/// Returns the addresses in the resolver's order, each once, IPv4-mapped ones as IPv4.
async fn resolve(
    target: &Target,
    timeouts: Timeouts,
) -> Result<Vec<IpAddr>, (&'static str, Error, String)> {
    let lookup = tokio::net::lookup_host((target.bare_host(), target.port));
    match tokio::time::timeout_at(timeouts.connect_by, lookup).await {
        Err(_) => Err((
            "dns-timeout",
            Error::DnsTimeout,
            "no answer within the connect timeout".into(),
        )),
        Ok(Err(error)) => Err((
            "dns-failed",
            Error::DnsError {
                rcode: Some("name not resolved".into()),
                info_code: None,
            },
            error.to_string(),
        )),
        Ok(Ok(found)) => {
            let mut addresses: Vec<IpAddr> = Vec::new();
            for address in found {
                let ip = address.ip().to_canonical();
                if !addresses.contains(&ip) {
                    addresses.push(ip);
                }
            }
            if addresses.is_empty() {
                return Err((
                    "dns-failed",
                    Error::DnsError {
                        rcode: Some("no address".into()),
                        info_code: None,
                    },
                    "the name has no address".into(),
                ));
            }
            Ok(addresses)
        }
    }
}
