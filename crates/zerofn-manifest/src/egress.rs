//! The grammar of an `egress` grant's URL, `scheme://[*.]host[:port][/path-prefix]`, and the one
//! form in which hosts are compared: grants are parsed here, and the platform normalises a
//! guest's destination with [`canonical_host`] so that both sides of a match speak the same
//! spelling (lowercase, IDNA, no trailing dot, IPv4 in dotted decimal, IPv4-mapped IPv6 as
//! IPv4).

use crate::model::EgressRule;

/// The domain of internal calls between functions; never a destination on the network.
const INTERNAL_DOMAIN: &str = "fn.internal";

/// A host as egress rules compare it, or `None` if it cannot be one: a domain lowercased and
/// in its ASCII (IDNA) form without one trailing dot, an IPv4 address in dotted decimal (the
/// `url` crate already reads decimal, octal, hex and short forms), an IPv4-mapped IPv6 address
/// as the IPv4 address it maps, any other IPv6 address in brackets (`[2001:db8::1]`).
pub fn canonical_host(host: &url::Host<&str>) -> Option<String> {
    match host {
        url::Host::Domain(domain) => {
            let domain = domain.strip_suffix('.').unwrap_or(domain);
            let valid = !domain.is_empty()
                && domain.split('.').all(|label| !label.is_empty())
                && domain.is_ascii();
            valid.then(|| domain.to_ascii_lowercase())
        }
        url::Host::Ipv4(address) => Some(address.to_string()),
        url::Host::Ipv6(address) => Some(match address.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => format!("[{address}]"),
        }),
    }
}

/// Whether `host` (canonical) is in the reserved domain of internal calls.
pub fn is_internal_host(host: &str) -> bool {
    host == INTERNAL_DOMAIN || host.ends_with(&format!(".{INTERNAL_DOMAIN}"))
}

/// Parses one `egress` URL; on failure returns the reason and the fix. Methods and the
/// private-address grant come from the entry's table and are set by the caller.
pub(crate) fn parse_egress_url(text: &str) -> Result<EgressRule, (String, String)> {
    const WILDCARD_HELP: &str = "name each host the function needs, e.g. `https://api.example.com`; \
                                 `https://*.example.com` allows the subdomains of one domain";
    if text == "*" || text.ends_with("://*") || text.contains("://*/") || text.contains("://*:") {
        return Err((
            "wildcard egress is not allowed".into(),
            WILDCARD_HELP.into(),
        ));
    }
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err((
            "an egress entry is a URL with a scheme".into(),
            format!("write `https://{text}`"),
        ));
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        return Err((
            format!("scheme `{scheme}` is not supported; egress is HTTP only"),
            "use an `https://` (or `http://`) URL".into(),
        ));
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if authority.contains('@') {
        return Err((
            "egress URLs cannot carry credentials (`user@`)".into(),
            "remove the credentials; grant them as a secret (`secrets = [...]`) and send them from the function".into(),
        ));
    }
    let (any_subdomain, rest) = match rest.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    if rest.contains('*') {
        return Err((
            "`*` is only allowed as a leading `*.` in the host".into(),
            format!("{WILDCARD_HELP}; a path is already a prefix, so it needs no `*`"),
        ));
    }
    let url = url::Url::parse(&format!("{scheme}://{rest}")).map_err(|e| {
        (
            format!("not a valid URL ({e})"),
            "write it as `https://host[:port][/path]`".to_string(),
        )
    })?;
    let no_host = || {
        (
            "the URL has no host".to_string(),
            "write it as `https://host[:port][/path]`".to_string(),
        )
    };
    let host = url.host().ok_or_else(no_host)?;
    let canonical = canonical_host(&host).ok_or_else(no_host)?;
    if url.query().is_some() {
        return Err((
            "egress URLs cannot contain a query string".into(),
            "remove the `?...` part; a grant names a destination, not a request".into(),
        ));
    }
    if url.fragment().is_some() {
        return Err((
            "egress URLs cannot contain a fragment".into(),
            "remove the `#...` part".into(),
        ));
    }
    if is_internal_host(&canonical) {
        return Err((
            format!("`{INTERNAL_DOMAIN}` is the platform's domain for calls between functions"),
            "grant `invoke = [\"<function>\"]` to call another function of this app".into(),
        ));
    }
    if any_subdomain {
        let is_domain = matches!(host, url::Host::Domain(_));
        if !is_domain || !canonical.contains('.') {
            return Err((
                "a wildcard must cover the subdomains of a registered domain, not a whole top-level domain or an IP address".into(),
                WILDCARD_HELP.into(),
            ));
        }
    }
    Ok(EgressRule {
        scheme,
        host: canonical,
        any_subdomain,
        port: url.port(),
        path_prefix: url.path().to_string(),
        methods: Vec::new(),
        allow_private: false,
        as_written: text.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(url: &str) -> Option<String> {
        let url = url::Url::parse(url).ok()?;
        canonical_host(&url.host()?)
    }

    #[test]
    fn hosts_have_one_spelling() {
        for (written, canonical) in [
            ("http://Example.COM./", "example.com"),
            ("http://b\u{fc}cher.example/", "xn--bcher-kva.example"),
            ("http://B%C3%9Ccher.example/", "xn--bcher-kva.example"),
            ("http://2130706433/", "127.0.0.1"),
            ("http://0177.0.0.1/", "127.0.0.1"),
            ("http://0x7f.0.0.1/", "127.0.0.1"),
            ("http://0x7f000001/", "127.0.0.1"),
            ("http://127.1/", "127.0.0.1"),
            ("http://127.0.0.1./", "127.0.0.1"),
            ("http://0251.0376.0251.0376/", "169.254.169.254"),
            ("http://[::ffff:169.254.169.254]/", "169.254.169.254"),
            ("http://[::FFFF:7f00:1]/", "127.0.0.1"),
            ("http://[2001:DB8::1]/", "[2001:db8::1]"),
            ("http://[::127.0.0.1]/", "[::7f00:1]"),
        ] {
            assert_eq!(host(written).as_deref(), Some(canonical), "{written}");
        }
        for invalid in [
            "http://a..b/",
            "http://.example.com/",
            "http://example.com../",
        ] {
            assert_eq!(host(invalid), None, "{invalid}");
        }
    }

    #[test]
    fn the_internal_domain_is_no_destination() {
        assert!(is_internal_host("fn.internal"));
        assert!(is_internal_host("inventory.shop.fn.internal"));
        assert!(!is_internal_host("fn.internal.example.com"));
        assert!(!is_internal_host("xfn.internal"));
        assert!(parse_egress_url("http://inventory.shop.fn.internal").is_err());
        assert!(parse_egress_url("http://INVENTORY.shop.fn.internal.").is_err());
    }
}
