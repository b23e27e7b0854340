//! Where a `jwt` function's verification keys come from. A JWKS *file* travels with the
//! deploy and is fixed for the version (rotating it is a new, signed deploy). A JWKS *URL* is
//! fetched by the platform over TLS, cached for the `Cache-Control: max-age` it is served with
//! (within bounds), and fetched again early when a token names a key the cache does not hold:
//! that is how an issuer's key rotation reaches zerofn without a deploy. One cache per URL is
//! shared by every function that names it.

use super::jwt::parse_jwks;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use jsonwebtoken::jwk::JwkSet;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Cached this long when the response says nothing (or `no-store`).
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
/// A `max-age` outside these bounds is clamped: too short would hammer the issuer, too long
/// would keep a withdrawn key trusted.
const MIN_MAX_AGE: Duration = Duration::from_secs(30);
const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// A token naming an unknown key triggers at most one fetch per this interval, so a flood of
/// made-up `kid`s cannot turn the platform against the issuer.
pub const UNKNOWN_KEY_REFETCH_INTERVAL: Duration = Duration::from_secs(1);
/// When the issuer cannot be reached, expired keys are still used for this long (an outage of
/// the issuer should not take every function down at once); after it, requests are refused.
const MAX_STALE: Duration = Duration::from_secs(3600);
/// A whole fetch (connect, TLS, response) must finish within this.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// A larger key set is refused.
const MAX_JWKS_BYTES: usize = 1 << 20;

/// A function's keys.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// From a file sent with the deploy.
    Fixed(Arc<JwkSet>),
    /// From an https URL.
    Remote(Arc<RemoteKeySet>),
}

/// Fetches key sets; holds the TLS roots and one cache per URL.
pub struct JwksClient {
    tls: tokio_rustls::TlsConnector,
    sets: Mutex<HashMap<String, Arc<RemoteKeySet>>>,
}

impl std::fmt::Debug for JwksClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksClient").finish_non_exhaustive()
    }
}

impl JwksClient {
    /// A client that trusts the system's roots plus the PEM certificates in `extra_roots`
    /// (an operator's private CA, or a test's).
    pub fn new(extra_roots: Option<&[u8]>) -> Result<Self, String> {
        let roots = crate::tls_roots::system_roots_and(extra_roots, "JWKS CA bundle")?;
        let config = rustls::ClientConfig::builder_with_provider(zerofn_identity::tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            sets: Mutex::new(HashMap::new()),
        })
    }

    /// The shared cache for `url` (which the manifest has checked is `https://`).
    pub fn remote(&self, url: &str) -> Result<Arc<RemoteKeySet>, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("invalid JWKS URL: {e}"))?;
        if parsed.scheme() != "https" || parsed.host_str().is_none() {
            return Err("the JWKS URL must be https://host/...".into());
        }
        let mut sets = self.sets.lock().unwrap_or_else(|p| p.into_inner());
        Ok(sets
            .entry(url.to_string())
            .or_insert_with(|| {
                Arc::new(RemoteKeySet {
                    url: parsed,
                    tls: self.tls.clone(),
                    cache: Mutex::new(Cache::default()),
                    fetching: tokio::sync::Mutex::new(()),
                })
            })
            .clone())
    }
}

/// A key set at a URL, cached.
pub struct RemoteKeySet {
    url: url::Url,
    tls: tokio_rustls::TlsConnector,
    cache: Mutex<Cache>,
    /// One fetch at a time; others wait for its result.
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for RemoteKeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKeySet")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default, Clone)]
struct Cache {
    keys: Option<Arc<JwkSet>>,
    fresh_until: Option<Instant>,
    last_fetch: Option<Instant>,
    last_error: Option<String>,
}

/// The key set could not be obtained.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the key set at {url} is unavailable: {reason}")]
pub struct JwksUnavailable {
    pub url: String,
    pub reason: String,
}

impl RemoteKeySet {
    /// The URL, for messages.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// The key set to verify a token with. `has_key` says whether a set holds the key the
    /// token names; when the cached set does not, it is fetched again (at most once per
    /// [`UNKNOWN_KEY_REFETCH_INTERVAL`]).
    pub async fn keys(
        &self,
        has_key: impl Fn(&JwkSet) -> bool,
    ) -> Result<Arc<JwkSet>, JwksUnavailable> {
        let now = Instant::now();
        let seen = self.snapshot();
        if let Some(keys) = self.usable(&seen, &has_key, now) {
            return Ok(keys);
        }
        let _fetching = match self.fetching.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                // A fetch is under way (it may take FETCH_TIMEOUT while the issuer is down):
                // a held set that is still within MAX_STALE and has the key answers now,
                // rather than every request queueing behind the fetch.
                if let Ok(keys) = self.held(&seen, now)
                    && has_key(&keys)
                {
                    return Ok(keys);
                }
                self.fetching.lock().await
            }
        };
        // Another request may have fetched while this one waited.
        let current = self.snapshot();
        if current.last_fetch != seen.last_fetch
            && let Some(keys) = self.usable(&current, &has_key, Instant::now())
        {
            return Ok(keys);
        }
        if current
            .last_fetch
            .is_some_and(|at| at.elapsed() < UNKNOWN_KEY_REFETCH_INTERVAL)
        {
            // Just fetched (or just failed): answer from what is held rather than fetch again.
            // A fresh set without the key means the key does not exist.
            return self.held(&current, Instant::now());
        }
        let fetched = tokio::time::timeout(FETCH_TIMEOUT, self.fetch())
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {FETCH_TIMEOUT:?}")));
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        cache.last_fetch = Some(now);
        match fetched {
            Ok((keys, max_age)) => {
                let keys = Arc::new(keys);
                cache.keys = Some(keys.clone());
                cache.fresh_until = Some(now + max_age);
                cache.last_error = None;
                Ok(keys)
            }
            Err(reason) => {
                tracing::warn!(url = %self.url, %reason, "JWKS fetch failed");
                cache.last_error = Some(reason);
                let held = cache.clone();
                drop(cache);
                self.held(&held, now)
            }
        }
    }

    /// The held set while it is fresh or within [`MAX_STALE`] of expiring.
    fn held(&self, cache: &Cache, now: Instant) -> Result<Arc<JwkSet>, JwksUnavailable> {
        let within = cache
            .fresh_until
            .is_some_and(|until| now < until + MAX_STALE);
        cache
            .keys
            .clone()
            .filter(|_| within)
            .ok_or_else(|| JwksUnavailable {
                url: self.url.to_string(),
                reason: cache
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "never fetched".into()),
            })
    }

    fn snapshot(&self) -> Cache {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The cached set if it is fresh and holds the key.
    fn usable(
        &self,
        cache: &Cache,
        has_key: &impl Fn(&JwkSet) -> bool,
        now: Instant,
    ) -> Option<Arc<JwkSet>> {
        let fresh = cache.fresh_until.is_some_and(|until| now < until);
        cache.keys.clone().filter(|keys| fresh && has_key(keys))
    }

    /// One GET of the key set: the set and how long it may be cached.
    async fn fetch(&self) -> Result<(JwkSet, Duration), String> {
        let host = self.url.host_str().ok_or("no host")?;
        let port = self.url.port_or_known_default().unwrap_or(443);
        // An IPv6 literal comes bracketed from `url`; names and sockets want it bare.
        let bare_host = host.trim_start_matches('[').trim_end_matches(']');
        let stream = tokio::net::TcpStream::connect((bare_host, port))
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let server_name = rustls::pki_types::ServerName::try_from(bare_host.to_string())
            .map_err(|e| format!("invalid host name: {e}"))?;
        let stream = self
            .tls
            .connect(server_name, stream)
            .await
            .map_err(|e| format!("TLS handshake failed: {e}"))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| format!("HTTP handshake failed: {e}"))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let path = match self.url.query() {
            Some(query) => format!("{}?{query}", self.url.path()),
            None => self.url.path().to_string(),
        };
        let authority = match self.url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        let request = http::Request::get(path)
            .header(http::header::HOST, authority)
            .header(
                http::header::ACCEPT,
                "application/json, application/jwk-set+json",
            )
            .header(http::header::USER_AGENT, "zerofn-jwks")
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        if response.status() != http::StatusCode::OK {
            return Err(format!("answered {}", response.status()));
        }
        let max_age = max_age(response.headers());
        let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|e| format!("body unreadable: {e}"))?
            .to_bytes();
        let keys = parse_jwks(&body)?;
        Ok((keys, max_age))
    }
}

/// How long a response may be cached, from `Cache-Control: max-age`, clamped.
fn max_age(headers: &http::HeaderMap) -> Duration {
    let seconds = headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|directive| directive.trim().strip_prefix("max-age="))
        .find_map(|v| v.trim().parse::<u64>().ok());
    seconds
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_MAX_AGE)
        .clamp(MIN_MAX_AGE, MAX_MAX_AGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_and_clamped() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(max_age(&headers), DEFAULT_MAX_AGE);
        headers.insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("public, max-age=600"),
        );
        assert_eq!(max_age(&headers), Duration::from_secs(600));
        headers.insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("max-age=1"),
        );
        assert_eq!(max_age(&headers), MIN_MAX_AGE);
        headers.insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("max-age=99999999"),
        );
        assert_eq!(max_age(&headers), MAX_MAX_AGE);
    }
}
