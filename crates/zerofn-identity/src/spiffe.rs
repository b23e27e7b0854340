//! SPIFFE IDs as text: parsing (`spiffe://<trust domain>/<path>`), the platform's reserved
//! paths, and the ID patterns an `mtls` function may name.

use std::fmt;

/// A parsed SPIFFE ID: a trust domain and a path of one or more segments.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpiffeId {
    trust_domain: String,
    /// The path without its leading `/`; never empty.
    path: String,
}

/// Why a text is not a SPIFFE ID this platform accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{id}` is not a SPIFFE ID: {reason}")]
pub struct SpiffeIdError {
    pub id: String,
    pub reason: &'static str,
}

impl SpiffeId {
    /// Parses `spiffe://<trust domain>/<segment>[/<segment>...]`. Segments use letters, digits,
    /// `.`, `-` and `_`, and are neither empty nor `.` or `..` (the SPIFFE ID specification);
    /// an ID without a path names a trust domain, not a workload, and is refused.
    pub fn parse(id: &str) -> Result<Self, SpiffeIdError> {
        let error = |reason| SpiffeIdError {
            id: id.to_string(),
            reason,
        };
        let rest = id
            .strip_prefix("spiffe://")
            .ok_or_else(|| error("the scheme must be `spiffe://`"))?;
        let (trust_domain, path) = rest
            .split_once('/')
            .ok_or_else(|| error("a workload ID needs a path after the trust domain"))?;
        if !crate::is_trust_domain(trust_domain) {
            return Err(error(
                "the trust domain uses lowercase letters, digits, `.`, `-` and `_`",
            ));
        }
        for segment in path.split('/') {
            check_segment(segment).map_err(error)?;
        }
        Ok(Self {
            trust_domain: trust_domain.to_string(),
            path: path.to_string(),
        })
    }

    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The path's segments, in order.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.path.split('/')
    }

    /// Whether the path is one the platform names itself with: `/app/...` (functions),
    /// `/node/...` (nodes), `/control...` (the control plane) and `/platform...` (the audience
    /// of the platform's own tokens). A caller certificate naming one of them could impersonate
    /// a function or a node, so none is issued for callers.
    pub fn is_reserved(&self) -> bool {
        matches!(
            self.segments().next(),
            Some(RESERVED_APP | RESERVED_NODE | RESERVED_CONTROL | RESERVED_PLATFORM)
        )
    }
}

/// The first path segment of function IDs.
const RESERVED_APP: &str = "app";
/// The first path segment of node IDs.
const RESERVED_NODE: &str = "node";
/// The control plane's path (and anything under it, kept for its future parts).
const RESERVED_CONTROL: &str = "control";
/// The audience of the platform's own tokens.
const RESERVED_PLATFORM: &str = "platform";

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spiffe://{}/{}", self.trust_domain, self.path)
    }
}

fn check_segment(segment: &str) -> Result<(), &'static str> {
    if segment.is_empty() {
        return Err("path segments may not be empty (no `//` and no trailing `/`)");
    }
    if segment == "." || segment == ".." {
        return Err("path segments may not be `.` or `..`");
    }
    if !segment
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err("path segments use letters, digits, `.`, `-` and `_`");
    }
    Ok(())
}

/// `spiffe://<trust domain>/node/<name>`: a node's server and client SVID.
pub fn node_spiffe_id(trust_domain: &str, node: &str) -> String {
    format!("spiffe://{trust_domain}/{RESERVED_NODE}/{node}")
}

/// `spiffe://<trust domain>/control`: the control plane's SVID.
pub fn control_spiffe_id(trust_domain: &str) -> String {
    format!("spiffe://{trust_domain}/{RESERVED_CONTROL}")
}

/// Which SPIFFE IDs an `mtls` function accepts.
///
/// Syntax: a SPIFFE ID whose path segments are literal, or `*`. A `*` segment matches exactly
/// one path segment, whatever it is: `spiffe://example.org/billing/*` matches
/// `spiffe://example.org/billing/worker` but neither `spiffe://example.org/billing` nor
/// `spiffe://example.org/billing/a/b`. The trust domain is always literal and partial
/// wildcards (`work*`) are refused, so a pattern never matches more than it reads as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpiffeIdPattern {
    trust_domain: String,
    /// `None` is `*`.
    segments: Vec<Option<String>>,
}

impl SpiffeIdPattern {
    pub fn parse(pattern: &str) -> Result<Self, SpiffeIdError> {
        let error = |reason| SpiffeIdError {
            id: pattern.to_string(),
            reason,
        };
        // Replace each `*` segment by a valid placeholder so that one parser checks the rest.
        let literal = pattern
            .split('/')
            .enumerate()
            .map(|(i, segment)| {
                if i >= 3 && segment == "*" {
                    "x"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let id = SpiffeId::parse(&literal).map_err(|e| error(e.reason))?;
        let segments = pattern
            .splitn(4, '/')
            .nth(3)
            .unwrap_or_default()
            .split('/')
            .map(|segment| (segment != "*").then(|| segment.to_string()))
            .collect();
        Ok(Self {
            trust_domain: id.trust_domain,
            segments,
        })
    }

    /// Whether `id` matches: same trust domain, same number of segments, each literal segment
    /// equal.
    pub fn matches(&self, id: &SpiffeId) -> bool {
        id.trust_domain == self.trust_domain
            && id.segments().count() == self.segments.len()
            && id
                .segments()
                .zip(&self.segments)
                .all(|(segment, want)| want.as_deref().is_none_or(|want| want == segment))
    }
}

impl fmt::Display for SpiffeIdPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spiffe://{}", self.trust_domain)?;
        for segment in &self.segments {
            write!(f, "/{}", segment.as_deref().unwrap_or("*"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_parsed_strictly() {
        let id = SpiffeId::parse("spiffe://zerofn.local/app/shop/fn/checkout").unwrap();
        assert_eq!(id.trust_domain(), "zerofn.local");
        assert_eq!(id.to_string(), "spiffe://zerofn.local/app/shop/fn/checkout");
        assert!(id.is_reserved());
        assert!(
            SpiffeId::parse("spiffe://zerofn.local/control")
                .unwrap()
                .is_reserved()
        );
        assert!(
            SpiffeId::parse("spiffe://zerofn.local/node/a")
                .unwrap()
                .is_reserved()
        );
        assert!(
            !SpiffeId::parse("spiffe://zerofn.local/callers/ci")
                .unwrap()
                .is_reserved()
        );
        assert!(
            !SpiffeId::parse("spiffe://zerofn.local/controller")
                .unwrap()
                .is_reserved()
        );
        for bad in [
            "https://zerofn.local/a",
            "spiffe://zerofn.local",
            "spiffe://zerofn.local/",
            "spiffe://zerofn.local/a//b",
            "spiffe://zerofn.local/a/",
            "spiffe://zerofn.local/a/../b",
            "spiffe://Zerofn.local/a",
            "spiffe://zerofn.local/a?b",
            "spiffe://user@zerofn.local/a",
        ] {
            assert!(SpiffeId::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn patterns_match_whole_segments() {
        let pattern = SpiffeIdPattern::parse("spiffe://zerofn.local/billing/*").unwrap();
        assert_eq!(pattern.to_string(), "spiffe://zerofn.local/billing/*");
        let id = |s| SpiffeId::parse(s).unwrap();
        assert!(pattern.matches(&id("spiffe://zerofn.local/billing/worker")));
        assert!(!pattern.matches(&id("spiffe://zerofn.local/billing")));
        assert!(!pattern.matches(&id("spiffe://zerofn.local/billing/a/b")));
        assert!(!pattern.matches(&id("spiffe://other.local/billing/worker")));
        assert!(!pattern.matches(&id("spiffe://zerofn.local/payroll/worker")));
        let exact = SpiffeIdPattern::parse("spiffe://zerofn.local/ci/deployer").unwrap();
        assert!(exact.matches(&id("spiffe://zerofn.local/ci/deployer")));
        assert!(!exact.matches(&id("spiffe://zerofn.local/ci/deployer2")));
        let middle = SpiffeIdPattern::parse("spiffe://zerofn.local/team/*/ci").unwrap();
        assert!(middle.matches(&id("spiffe://zerofn.local/team/a/ci")));
        for bad in [
            "spiffe://*/a",
            "spiffe://zerofn.local/work*",
            "spiffe://zerofn.local/**",
            "spiffe://zerofn.local",
            "spiffe://zerofn.local/a/",
            "*",
            "",
        ] {
            assert!(SpiffeIdPattern::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
