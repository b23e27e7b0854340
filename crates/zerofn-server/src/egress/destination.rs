//! A guest's outbound URL in the one form grants are matched against: scheme, canonical host
//! ([`zerofn_manifest::canonical_host`]: lowercase, IDNA, no trailing dot, any numeric IPv4
//! spelling as dotted decimal, IPv4-mapped IPv6 as IPv4), port (explicit or the scheme's
//! default) and path with dot segments resolved. User info is refused outright: `user@host`
//! and `granted.com@evil` name a host after the `@`, which is exactly the confusion a check
//! that reads the wrong part would fall for.
//!
//! What is matched is what is sent: the request line and the `Host` header are rewritten from
//! the normalised form, never passed through as the guest spelled them.

use std::net::IpAddr;

/// A destination ready to be decided and reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `http` or `https`.
    pub scheme: &'static str,
    /// Canonical host; IPv6 in brackets.
    pub host: String,
    /// The host's address when it is an IP literal (no name to resolve).
    pub literal: Option<IpAddr>,
    pub port: u16,
    /// The path, dot segments resolved, percent-encoded as sent.
    pub path: String,
    /// The query, without `?`, if any.
    pub query: Option<String>,
}

impl Target {
    /// `scheme://host:port`: what audit events and messages name. Never the path or query,
    /// which may carry data.
    pub fn origin(&self) -> String {
        format!("{}://{}:{}", self.scheme, self.host, self.port)
    }

    /// The request target sent on the wire (origin form): path and query.
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(query) => format!("{}?{query}", self.path),
            None => self.path.clone(),
        }
    }

    /// The `Host` header: the host, and the port unless it is the scheme's default.
    pub fn host_header(&self) -> String {
        if self.port == default_port(self.scheme) {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The host without IPv6 brackets, as a name to resolve or to check a certificate for.
    pub fn bare_host(&self) -> &str {
        self.host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&self.host)
    }
}

/// Why a URL cannot be a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// It carries user info (`user@host`, `granted.com@evil`).
    UserInfo,
    /// No scheme, no host, a scheme other than `http`/`https`, or a host that does not parse.
    Invalid(String),
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "https" { 443 } else { 80 }
}

/// The normalised destination of `uri`, which must be absolute (`wasi:http` always gives
/// scheme and authority).
pub fn normalise(uri: &http::Uri) -> Result<Target, Unusable> {
    let scheme = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("http") => "http",
        Some("https") => "https",
        Some(other) => {
            return Err(Unusable::Invalid(format!("scheme `{other}` is not HTTP")));
        }
        None => return Err(Unusable::Invalid("no scheme".into())),
    };
    let authority = uri
        .authority()
        .map(http::uri::Authority::as_str)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| Unusable::Invalid("no host".into()))?;
    // Anything that could be read as user info is refused before any parser sees it, so no
    // parser's reading of it matters.
    if authority.contains('@') {
        return Err(Unusable::UserInfo);
    }
    // Only an origin-form target may follow the authority: anything else (`@evil/`, another
    // URL) could be read as part of it. (`http` refuses such paths today; this does not rely
    // on it.)
    let path = match uri.path() {
        "" => "/",
        path if path.starts_with('/') => path,
        _ => return Err(Unusable::Invalid("the path does not start with `/`".into())),
    };
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    let url = url::Url::parse(&format!("{scheme}://{authority}{path}{query}"))
        .map_err(|e| Unusable::Invalid(format!("the URL does not parse: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Unusable::UserInfo);
    }
    let host = url
        .host()
        .as_ref()
        .and_then(zerofn_manifest::canonical_host)
        .ok_or_else(|| Unusable::Invalid("the host is not a valid name or address".into()))?;
    let literal = match url.host() {
        Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)),
        _ => None,
    };
    let port = url.port().unwrap_or_else(|| default_port(scheme));
    Ok(Target {
        scheme,
        host,
        literal,
        port,
        path: url.path().to_string(),
        query: url.query().map(str::to_string),
    })
}

/// `scheme://host[:port]` of a URL that could not be normalised, for the audit record: user
/// info is cut off (it may hold a password) and so are path and query.
pub fn origin_as_sent(uri: &http::Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("?");
    let authority = uri.authority().map_or("", |a| a.as_str());
    let host = authority.rsplit('@').next().unwrap_or(authority);
    format!("{scheme}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(uri: &str) -> Result<Target, Unusable> {
        normalise(&uri.parse::<http::Uri>().unwrap())
    }

    fn origin(uri: &str) -> String {
        target(uri).unwrap().origin()
    }

    #[test]
    fn numeric_case_dot_and_idna_spellings_become_one_host() {
        for (uri, expected) in [
            ("http://Example.COM/", "http://example.com:80"),
            ("http://example.com./", "http://example.com:80"),
            ("HTTPS://example.com:443/", "https://example.com:443"),
            ("https://example.com:8443/", "https://example.com:8443"),
            (
                "http://xn--bcher-kva.example/",
                "http://xn--bcher-kva.example:80",
            ),
            (
                "http://XN--BCHER-KVA.example/",
                "http://xn--bcher-kva.example:80",
            ),
            ("http://2130706433/", "http://127.0.0.1:80"),
            ("http://0177.0.0.1/", "http://127.0.0.1:80"),
            ("http://0x7f.0.0.1/", "http://127.0.0.1:80"),
            ("http://0x7F000001:8080/", "http://127.0.0.1:8080"),
            ("http://017700000001/", "http://127.0.0.1:80"),
            ("http://127.1/", "http://127.0.0.1:80"),
            ("http://2852039166/", "http://169.254.169.254:80"),
            ("http://0251.0376.0251.0376/", "http://169.254.169.254:80"),
            ("http://0xa9fea9fe/", "http://169.254.169.254:80"),
            ("http://0xA9.0xFE.0xA9.0xFE/", "http://169.254.169.254:80"),
            (
                "http://[::ffff:169.254.169.254]/",
                "http://169.254.169.254:80",
            ),
            ("http://[::ffff:7f00:1]:8080/", "http://127.0.0.1:8080"),
            ("http://[::1]:8080/", "http://[::1]:8080"),
            ("http://[2001:DB8:0:0::1]/", "http://[2001:db8::1]:80"),
        ] {
            assert_eq!(origin(uri), expected, "{uri}");
        }
        let mapped = target("http://[::ffff:127.0.0.1]/").unwrap();
        assert_eq!(mapped.literal, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(mapped.bare_host(), "127.0.0.1");
        let v6 = target("http://[::1]/").unwrap();
        assert_eq!(v6.literal, Some("::1".parse().unwrap()));
        assert_eq!(v6.bare_host(), "::1");
        assert_eq!(target("http://example.com/").unwrap().literal, None);
    }

    #[test]
    fn user_info_is_refused_however_it_is_written() {
        for uri in [
            "http://user@example.com/",
            "http://user:pass@example.com/",
            "http://granted.com@evil.com/",
            "http://granted.com:443@evil.com/",
            "http://@example.com/",
        ] {
            assert_eq!(target(uri), Err(Unusable::UserInfo), "{uri}");
        }
        assert_eq!(
            origin_as_sent(&"http://user:secret@evil.com:81/x?y".parse().unwrap()),
            "http://evil.com:81"
        );
    }

    #[test]
    fn what_is_matched_is_what_is_sent() {
        let t = target("http://Example.com:80/api/../admin/./x?q=1&r=%20").unwrap();
        assert_eq!(t.path, "/admin/x");
        assert_eq!(t.path_and_query(), "/admin/x?q=1&r=%20");
        assert_eq!(t.host_header(), "example.com");
        let t = target("http://example.com/api/%2e%2e/admin").unwrap();
        assert_eq!(t.path, "/admin");
        let t = target("https://0x7f000001:8443").unwrap();
        assert_eq!(t.path, "/");
        assert_eq!(t.host_header(), "127.0.0.1:8443");
        let t = target("http://[::1]:81/").unwrap();
        assert_eq!(t.host_header(), "[::1]:81");
    }

    #[test]
    fn hosts_that_are_not_names_are_refused() {
        for uri in [
            "http://a..b/",
            "http://.example.com/",
            "http://example.com../",
            "ftp://example.com/",
        ] {
            assert!(
                matches!(target(uri), Err(Unusable::Invalid(_))),
                "{uri}: {:?}",
                target(uri)
            );
        }
    }
}
