//! What one audit event says about a function's behaviour, read from its kind, outcome and
//! detail keys (as the emitting code in `zerofn-server` and `zerofn-runtime` writes them).
//! Anything missing or malformed is read as "nothing to say", never as an error.

use std::borrow::Cow;
use std::net::IpAddr;
use zerofn_audit::{AuditEvent, EventKind, Outcome};

/// Longest destination host or callee kept; longer ones are cut (they come from guests).
const MAX_KEY_LEN: usize = 253;

/// How an invocation ended, when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    Timeout,
    Error,
}

/// Who a refusal was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The function's own capability use (egress, key-value, secret, invoke).
    Own,
    /// A caller's request to the function (authentication, input, rate limits).
    Caller,
    /// A `request.refused`: the function's own if it names one of its invocations, a caller's
    /// otherwise (decided with the function's state).
    Request,
}

/// A privileged grant whose use is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grant {
    KvWrite,
    PrivateEgress,
}

impl Grant {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::KvWrite => "kv.write",
            Self::PrivateEgress => "egress to a private address",
        }
    }
}

/// The behaviour one event shows. Most events show one thing; an egress can show a destination,
/// a refusal and a privileged use at once.
#[derive(Debug, Default)]
pub(crate) struct Reading<'e> {
    /// The event is about a function's behaviour at all (and counts towards its warm-up).
    pub(crate) behaviour: bool,
    /// A destination host used or attempted.
    pub(crate) destination: Option<Cow<'e, str>>,
    /// A callee (`app/function`) invoked or attempted.
    pub(crate) callee: Option<String>,
    pub(crate) refused: Option<Refused>,
    /// How many refusals the event stands for (a rate-limit record also counts the ones it
    /// suppressed).
    pub(crate) refusals: u32,
    pub(crate) secret_read: bool,
    pub(crate) invocation_start: bool,
    /// `Some(None)`: an invocation ended well; `Some(Some(_))`: it failed.
    pub(crate) invocation_end: Option<Option<Failure>>,
    pub(crate) privileged: Option<Grant>,
}

/// Reads `event`.
pub(crate) fn read(event: &AuditEvent) -> Reading<'_> {
    let mut reading = Reading {
        behaviour: true,
        ..Reading::default()
    };
    let denied = event.outcome == Outcome::Denied;
    match event.kind {
        EventKind::InvocationStart => reading.invocation_start = true,
        EventKind::InvocationEnd => {
            reading.invocation_end = Some(match event.outcome {
                Outcome::Success => None,
                _ if event.reason.as_deref() == Some("timeout") => Some(Failure::Timeout),
                _ => Some(Failure::Error),
            });
        }
        EventKind::Egress => {
            reading.destination = detail_str(event, "destination").and_then(host_of);
            if is_private(event) {
                reading.privileged = Some(Grant::PrivateEgress);
            }
        }
        EventKind::EgressDenied => {
            reading.destination = detail_str(event, "destination").and_then(host_of);
            reading.refused = Some(Refused::Own);
        }
        EventKind::AuthzDecision => match detail_str(event, "action") {
            // Each refusal is counted at its enforcement point (`egress.denied`, `kv.denied`,
            // `secret.read`, `request.refused`), which follows its decision: not here again.
            Some("egress") => {
                reading.destination = detail_str(event, "resource").and_then(host_of);
            }
            Some("invoke") => {
                reading.callee = detail_str(event, "resource").map(callee_of);
            }
            _ => {}
        },
        EventKind::SecretRead => match event.outcome {
            Outcome::Success => reading.secret_read = true,
            Outcome::Denied => reading.refused = Some(Refused::Own),
            Outcome::Failure => {}
        },
        EventKind::KvWrite => {
            if event.outcome == Outcome::Success {
                reading.privileged = Some(Grant::KvWrite);
            }
        }
        EventKind::KvDenied => reading.refused = Some(Refused::Own),
        EventKind::RequestRefused => reading.refused = Some(Refused::Request),
        EventKind::AuthnDecision if denied => reading.refused = Some(Refused::Caller),
        EventKind::AuthnDecision | EventKind::LimitHit => {}
        // Deploys, the response loop's own actions, operators' work: not the function's doing.
        _ => reading.behaviour = false,
    }
    if reading.refused.is_some() {
        // A rate-limit refusal is recorded once per interval with how many it stood for.
        let suppressed = event
            .detail
            .get("suppressed")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        reading.refusals = u32::try_from(suppressed.min(100_000)).unwrap_or(0) + 1;
    }
    reading
}

fn detail_str<'a>(event: &'a AuditEvent, key: &str) -> Option<&'a str> {
    event.detail.get(key).and_then(serde_json::Value::as_str)
}

/// The host of a destination as events write it: `https://api.example.com:443` (an origin),
/// `api.example.com:443` (an authority), `https://[::1]:8080`. Lowercase, without a trailing
/// dot; `None` for anything without a host (`<no authority>`).
pub(crate) fn host_of(destination: &str) -> Option<Cow<'_, str>> {
    let rest = destination
        .split_once("://")
        .map_or(destination, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let (host, allowed): (&str, fn(char) -> bool) =
        if let Some(bracketed) = host_port.strip_prefix('[') {
            let address = bracketed.split(']').next().unwrap_or(bracketed);
            (address, |c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        } else {
            let host = match host_port.rsplit_once(':') {
                Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
                _ => host_port,
            };
            // Names as the egress point normalised them (IDNA as `xn--`), and IPv4 literals.
            (host, |c| {
                c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')
            })
        };
    let host = host.trim_end_matches('.');
    if host.is_empty() || !host.chars().all(allowed) {
        return None;
    }
    let host = bounded(host);
    Some(if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    })
}

/// A callee as `app/function` when the resource is a SPIFFE ID
/// (`spiffe://<trust domain>/app/<app>/fn/<function>`), else the resource as written.
pub(crate) fn callee_of(resource: &str) -> String {
    let parts: Vec<&str> = resource.rsplitn(5, '/').collect();
    if let [function, "fn", app, "app", _] = parts.as_slice() {
        return bounded(&format!("{app}/{function}")).to_string();
    }
    bounded(resource).to_string()
}

fn bounded(text: &str) -> &str {
    match text.char_indices().nth(MAX_KEY_LEN) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// Whether an egress event says its address was not public: its `range` (refusals), or its
/// `address` (exchanges) classified here.
fn is_private(event: &AuditEvent) -> bool {
    if let Some(range) = detail_str(event, "range") {
        return range != "public";
    }
    detail_str(event, "address")
        .and_then(|address| address.parse::<IpAddr>().ok())
        .is_some_and(non_public)
}

fn non_public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                // Carrier-grade NAT (100.64.0.0/10).
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return non_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                // Unique local (fc00::/7) and link-local (fe80::/10).
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_read_from_every_spelling_events_use() {
        for (destination, host) in [
            ("https://api.example.com:443", Some("api.example.com")),
            ("http://API.Example.com.:80", Some("api.example.com")),
            ("api.example.com:8443", Some("api.example.com")),
            (
                "https://user@evil.example.com/path?q",
                Some("evil.example.com"),
            ),
            ("https://[::1]:8080", Some("::1")),
            ("https://10.0.0.1", Some("10.0.0.1")),
            ("<no authority>", None),
            ("", None),
            ("https://", None),
            ("https://a b:1", None),
            ("://:::", None),
            ("https://ex:ample.com", None),
        ] {
            assert_eq!(host_of(destination).as_deref(), host, "{destination}");
        }
        let long = format!("https://{}.example.com", "a".repeat(1_000));
        assert_eq!(host_of(&long).map(|h| h.len()), Some(MAX_KEY_LEN));
    }

    #[test]
    fn callees_are_named_by_app_and_function() {
        assert_eq!(
            callee_of("spiffe://zerofn.local/app/shop/fn/inventory"),
            "shop/inventory"
        );
        assert_eq!(callee_of("shop/inventory"), "shop/inventory");
        assert_eq!(callee_of(""), "");
    }

    #[test]
    fn private_addresses_are_recognised() {
        for (address, private) in [
            ("10.1.2.3", true),
            ("192.168.0.1", true),
            ("127.0.0.1", true),
            ("169.254.169.254", true),
            ("100.64.0.1", true),
            ("::1", true),
            ("fd00::1", true),
            ("fe80::1", true),
            ("::ffff:10.0.0.1", true),
            ("93.184.216.34", false),
            ("2606:2800:220:1::1", false),
        ] {
            let ip: IpAddr = address.parse().unwrap_or_else(|e| panic!("{address}: {e}"));
            assert_eq!(non_public(ip), private, "{address}");
        }
    }
}
