//! HTTP triggers: routes (exact or prefix) and methods.

use std::fmt;
use std::str::FromStr;

/// An HTTP method a route may accept. Only these are allowed in a manifest; anything else is an
/// `unknown-method` error rather than silently never matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HttpMethod {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `PATCH`
    Patch,
    /// `DELETE`
    Delete,
    /// `OPTIONS`
    Options,
}

impl HttpMethod {
    /// Every method, in the order the docs list them.
    pub const ALL: [HttpMethod; 7] = [
        HttpMethod::Get,
        HttpMethod::Head,
        HttpMethod::Post,
        HttpMethod::Put,
        HttpMethod::Patch,
        HttpMethod::Delete,
        HttpMethod::Options,
    ];

    /// What a route accepts when the manifest names no methods.
    pub const DEFAULT: [HttpMethod; 2] = [HttpMethod::Get, HttpMethod::Head];

    /// The method's name as on the wire, e.g. `"POST"`.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Options => "OPTIONS",
        }
    }
}

impl fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name is not one of [`HttpMethod::ALL`] (matching is case-sensitive, as in HTTP).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown HTTP method `{0}`")]
pub struct UnknownMethod(pub String);

impl FromStr for HttpMethod {
    type Err = UnknownMethod;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HttpMethod::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownMethod(s.to_string()))
    }
}

/// A validated route: either an exact path, or a prefix written with a trailing `/...`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    /// The path without the `/...` suffix; empty for the catch-all `/...`.
    base: String,
    prefix: bool,
}

/// Why a route was rejected; the message is shown to the manifest's author.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// Routes are absolute paths.
    #[error("a route must start with `/`")]
    NoLeadingSlash,
    /// Query strings are not part of routing.
    #[error("a route cannot contain a query string (`?`)")]
    Query,
    /// Fragments never reach a server.
    #[error("a route cannot contain a fragment (`#`)")]
    Fragment,
    /// `//` would be an empty segment, which clients and proxies normalise inconsistently.
    #[error("a route cannot contain an empty segment (`//`)")]
    EmptySegment,
    /// Dot segments are resolved away by clients, so such a route could never be requested as
    /// written, and they invite path-confusion bugs.
    #[error("a route cannot contain `.` or `..` segments")]
    DotSegment,
    /// `...` is only meaningful as the final segment.
    #[error(
        "`...` is only allowed as the last segment, to mean \"this path and everything below it\""
    )]
    MisplacedEllipsis,
    /// No other wildcard syntax exists.
    #[error("`{0}` is not allowed in a route; the only wildcard is a trailing `/...`")]
    Wildcard(char),
    /// Whitespace, control characters and non-ASCII must be percent-encoded.
    #[error("`{0}` is not allowed in a route; percent-encode it")]
    Character(char),
}

impl Route {
    /// Parses a route as written in a manifest.
    pub fn parse(text: &str) -> Result<Route, RouteError> {
        if !text.starts_with('/') {
            return Err(RouteError::NoLeadingSlash);
        }
        if text.contains('?') {
            return Err(RouteError::Query);
        }
        if text.contains('#') {
            return Err(RouteError::Fragment);
        }
        for c in text.chars() {
            match c {
                '*' | '{' | '}' => return Err(RouteError::Wildcard(c)),
                'a'..='z' | 'A'..='Z' | '0'..='9' => {}
                '-' | '.' | '_' | '~' | '!' | '$' | '&' | '\'' | '(' | ')' | '+' | ',' | ';'
                | '=' | ':' | '@' | '%' | '/' => {}
                _ => return Err(RouteError::Character(c)),
            }
        }
        let (base, prefix) = match text.strip_suffix("/...") {
            Some(base) => (base, true),
            None => (text, false),
        };
        // Segments after the leading `/`; the root route `/` has one empty segment, and an
        // exact route may end with `/` (a distinct path from the one without it).
        let segments: Vec<&str> = base.split('/').skip(1).collect();
        let last = segments.len().saturating_sub(1);
        for (i, segment) in segments.iter().enumerate() {
            match *segment {
                "" if i == last && !prefix => {}
                "" if base.is_empty() => {}
                "" => return Err(RouteError::EmptySegment),
                "." | ".." => return Err(RouteError::DotSegment),
                "..." => return Err(RouteError::MisplacedEllipsis),
                _ => {}
            }
        }
        Ok(Route {
            base: base.to_string(),
            prefix,
        })
    }

    /// True for a `/...` route.
    pub fn is_prefix(&self) -> bool {
        self.prefix
    }

    /// The path (for prefix routes: without the `/...`; empty for the catch-all `/...`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Does a request for `path` (no query string) hit this route? A prefix route `/api/...`
    /// matches `/api` and anything below `/api/`, but not `/apix`.
    pub fn matches(&self, path: &str) -> bool {
        if !self.prefix {
            return path == self.base;
        }
        match path.strip_prefix(self.base.as_str()) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)?;
        if self.prefix {
            f.write_str("/...")?;
        }
        Ok(())
    }
}

impl FromStr for Route {
    type Err = RouteError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Route::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(text: &str) -> Route {
        Route::parse(text).unwrap()
    }

    #[test]
    fn exact_route_matches_only_itself() {
        let r = route("/checkout");
        assert!(r.matches("/checkout"));
        assert!(!r.matches("/checkout/"));
        assert!(!r.matches("/checkout/x"));
        assert!(!r.matches("/"));
        assert_eq!(r.to_string(), "/checkout");
    }

    #[test]
    fn prefix_route_matches_itself_and_below() {
        let r = route("/api/...");
        assert!(r.is_prefix());
        assert!(r.matches("/api"));
        assert!(r.matches("/api/"));
        assert!(r.matches("/api/x"));
        assert!(r.matches("/api/x/y"));
        assert!(!r.matches("/apix"));
        assert!(!r.matches("/ap"));
        assert!(!r.matches("/"));
        assert_eq!(r.to_string(), "/api/...");
    }

    #[test]
    fn catch_all_matches_everything() {
        let r = route("/...");
        assert!(r.matches("/"));
        assert!(r.matches("/anything/at/all"));
        assert_eq!(r.to_string(), "/...");
    }

    #[test]
    fn root_and_trailing_slash_are_exact() {
        assert!(route("/").matches("/"));
        assert!(!route("/").matches("/x"));
        assert!(route("/a/").matches("/a/"));
        assert!(!route("/a/").matches("/a"));
    }

    #[test]
    fn bad_routes_are_rejected_with_a_reason() {
        let cases = [
            ("checkout", RouteError::NoLeadingSlash),
            ("", RouteError::NoLeadingSlash),
            ("/a?x=1", RouteError::Query),
            ("/a#x", RouteError::Fragment),
            ("//a", RouteError::EmptySegment),
            ("/a//b", RouteError::EmptySegment),
            ("/a//...", RouteError::EmptySegment),
            ("/a/../b", RouteError::DotSegment),
            ("/a/./b", RouteError::DotSegment),
            ("/..", RouteError::DotSegment),
            ("/a/.../b", RouteError::MisplacedEllipsis),
            ("/a/*", RouteError::Wildcard('*')),
            ("/a/{id}", RouteError::Wildcard('{')),
            ("/a b", RouteError::Character(' ')),
            ("/é", RouteError::Character('é')),
        ];
        for (text, expected) in cases {
            assert_eq!(Route::parse(text), Err(expected), "{text:?}");
        }
    }

    #[test]
    fn methods_parse_case_sensitively() {
        assert_eq!("POST".parse::<HttpMethod>(), Ok(HttpMethod::Post));
        assert!("post".parse::<HttpMethod>().is_err());
        assert!("TRACE".parse::<HttpMethod>().is_err());
        for m in HttpMethod::ALL {
            assert_eq!(m.as_str().parse::<HttpMethod>(), Ok(m));
        }
    }
}
