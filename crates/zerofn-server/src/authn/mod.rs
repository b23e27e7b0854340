//! Authenticating callers from outside, before any sandbox exists. A function's `auth` is
//! compiled once, when its version is installed, into a [`CallerAuth`]; each request is then
//! checked against it by [`crate::Platform::authenticate`]. Refusals are 401/403 problem
//! details that say what was missing or wrong, never echoing the credential.

mod api_key;
pub(crate) use api_key::constant_time_eq;
pub mod jwks;
pub mod jwt;

pub use api_key::{
    API_KEY_ID_HEADER, API_KEY_PREFIX, NewApiKey, check_api_key, create_api_key, key_id,
};

pub use crate::problem::Challenge;
use http::{HeaderMap, HeaderValue, StatusCode};
use jwks::{JwksClient, KeySource};
use jwt::JwtPolicy;
use std::sync::Arc;
use zerofn_manifest::{AttachedFiles, Auth};

/// Why a caller was refused: the rule, the status and what to say (never the credential).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rule: &'static str,
    pub status: StatusCode,
    pub detail: String,
    /// What names the credential without revealing it (an API key's id), when known.
    pub credential: Option<String>,
    /// The `WWW-Authenticate` challenge of a 401.
    pub challenge: Option<Challenge>,
}

impl Refusal {
    pub fn new(rule: &'static str, status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            rule,
            status,
            detail: detail.into(),
            credential: None,
            challenge: None,
        }
    }

    /// With the `WWW-Authenticate` challenge a 401 carries (RFC 9110 §11.6.1).
    pub fn challenge(mut self, challenge: Challenge) -> Self {
        self.challenge = Some(challenge);
        self
    }
}

/// Who a caller proved to be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authenticated {
    /// The credential's name: an API key's id, a token's key id.
    pub credential: Option<String>,
    /// The caller's identity: a token's `sub`.
    pub subject: Option<String>,
}

impl Authenticated {
    /// The caller for its own rate-limit bucket, named by the `method` that proved it
    /// (`jwt:<sub>`, `mtls:<SPIFFE ID>`, `api-key:<id>`); `None` when nothing names the caller
    /// (a token without `sub`), whose address stands for it.
    pub fn caller(&self, method: &str) -> Option<crate::rate_limit::Caller> {
        let name = match method {
            "api-key" => self.credential.as_ref()?,
            _ => self.subject.as_ref()?,
        };
        Some(crate::rate_limit::Caller::Identity(format!(
            "{method}:{name}"
        )))
    }
}

/// A function's `auth`, ready to check requests.
#[derive(Debug, Clone)]
pub enum CallerAuth {
    /// `public = true`.
    Public,
    /// `api-key`: the key is read from `header`.
    ApiKey { header: String },
    /// `jwt`: bearer tokens.
    Jwt(Arc<JwtAuthenticator>),
    /// `mtls`: a client certificate from the function's CA, checked per request.
    Mtls(Arc<zerofn_identity::ClientCertPolicy>),
    /// A method this release cannot enforce (admission refuses it; this fails closed).
    Unsupported,
}

impl CallerAuth {
    /// Compiles `auth`, with the version's referenced `files`; `jwks` fetches key sets given
    /// by URL; `listener_tls` says whether the function listener serves TLS (without it no
    /// client certificate can ever be presented). A JWKS or CA file that is not usable, or
    /// `mtls` without TLS, is an error (refused at deploy and at restore).
    pub fn compile(
        auth: Option<&Auth>,
        files: &AttachedFiles,
        jwks: &JwksClient,
        listener_tls: bool,
    ) -> Result<Self, String> {
        Ok(match auth {
            Some(Auth::Public) => CallerAuth::Public,
            Some(Auth::ApiKey(key)) => CallerAuth::ApiKey {
                header: key.header.clone(),
            },
            Some(Auth::Jwt(jwt)) => {
                let policy = JwtPolicy::new(jwt)?;
                let keys = match (jwt.jwks_url(), jwt.jwks_file()) {
                    (Some(url), _) => KeySource::Remote(jwks.remote(url)?),
                    (None, Some(path)) => {
                        let bytes = files
                            .get(&path)
                            .ok_or_else(|| format!("the JWKS file `{path}` was not sent"))?;
                        let set = jwt::parse_jwks(bytes)
                            .map_err(|e| format!("the JWKS file `{path}` is not usable: {e}"))?;
                        KeySource::Fixed(Arc::new(set))
                    }
                    (None, None) => {
                        return Err("`auth.jwt.jwks` is neither a URL nor a path".into());
                    }
                };
                CallerAuth::Jwt(Arc::new(JwtAuthenticator { policy, keys }))
            }
            Some(Auth::Mtls(mtls)) => {
                if !listener_tls {
                    return Err("`mtls` needs the function listener to serve TLS: set `[server] tls = \"builtin\"` in the platform config".into());
                }
                let path = mtls.ca_written.as_str();
                let bundle = files
                    .get(path)
                    .ok_or_else(|| format!("the CA bundle `{path}` was not sent"))?;
                let policy =
                    zerofn_identity::ClientCertPolicy::from_pem(bundle, mtls.spiffe_id.as_deref())
                        .map_err(|e| format!("`auth.mtls` is not usable ({path}): {e}"))?;
                CallerAuth::Mtls(Arc::new(policy))
            }
            None => CallerAuth::Unsupported,
        })
    }

    /// The method's name as the manifest writes it, for the audit log.
    pub fn method(&self) -> &'static str {
        match self {
            CallerAuth::Public => "public",
            CallerAuth::ApiKey { .. } => "api-key",
            CallerAuth::Jwt(_) => "jwt",
            CallerAuth::Mtls(_) => "mtls",
            CallerAuth::Unsupported => "unsupported",
        }
    }
}

/// A `jwt` function's policy and keys.
#[derive(Debug)]
pub struct JwtAuthenticator {
    policy: JwtPolicy,
    keys: KeySource,
}

impl JwtAuthenticator {
    /// Checks the bearer token in `headers`, removes it (the function never sees the caller's
    /// credential) and sets the verified claims in platform-only headers.
    pub async fn authenticate(&self, headers: &mut HeaderMap) -> Result<Authenticated, Refusal> {
        let authorization = headers.remove(http::header::AUTHORIZATION);
        let (token, header) = self
            .policy
            .read_header(authorization.as_ref().map(HeaderValue::as_bytes))?;
        let keys = match &self.keys {
            KeySource::Fixed(keys) => keys.clone(),
            KeySource::Remote(remote) => remote
                .keys(|set| self.policy.select_key(set, &header).is_some())
                .await
                .map_err(|error| {
                    tracing::warn!(%error, "refusing a bearer token: no key set");
                    Refusal::new(
                        "jwks-unavailable",
                        StatusCode::SERVICE_UNAVAILABLE,
                        "The token issuer's keys cannot be fetched right now; try again later.",
                    )
                })?,
        };
        let jwk = self.policy.select_key(&keys, &header).ok_or_else(|| {
            Refusal::new(
                "jwt-unknown-key",
                StatusCode::UNAUTHORIZED,
                "The token is signed with a key the issuer does not publish (unknown `kid`).",
            )
            .challenge(Challenge::BearerInvalidToken)
        })?;
        let verified = self.policy.verify(token, &header, jwk)?;
        let mut set = |name: &'static str, value: &str| {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        };
        if let Some(subject) = verified.claim("sub") {
            set(jwt::SUBJECT_HEADER, subject);
        }
        if let Some(issuer) = verified.claim("iss") {
            set(jwt::ISSUER_HEADER, issuer);
        }
        set(jwt::PAYLOAD_HEADER, &verified.payload_segment);
        Ok(Authenticated {
            credential: verified.key_id.clone(),
            subject: verified.claim("sub").map(str::to_string),
        })
    }
}

/// Set by the platform on a request authenticated with a client certificate: the SPIFFE ID
/// its X.509-SVID names.
pub const CLIENT_SPIFFE_ID_HEADER: &str = "x-zerofn-client-spiffe-id";

/// Checks the client certificate `peer` of the request's connection (the trigger attaches it
/// after the TLS handshake proved the client holds its key) against `policy` now.
pub fn authenticate_client_certificate(
    policy: &zerofn_identity::ClientCertPolicy,
    peer: Option<&zerofn_identity::PeerCertificates>,
    headers: &mut HeaderMap,
) -> Result<Authenticated, Refusal> {
    let chain = peer.map(|peer| &peer.0[..]);
    let identity = policy
        .verify(chain, std::time::SystemTime::now())
        .map_err(|refusal| {
            let status = if refusal.is_forbidden() {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::UNAUTHORIZED
            };
            let detail = match &refusal {
                zerofn_identity::CertRefusal::Missing => "This function requires a client certificate (mutual TLS) issued by its CA; connect over TLS presenting one.".to_string(),
                other => sentence(&other.to_string()),
            };
            Refusal::new(refusal.code(), status, detail)
        })?;
    let spiffe_id = identity.spiffe_id.to_string();
    if let Ok(value) = HeaderValue::from_str(&spiffe_id) {
        headers.insert(CLIENT_SPIFFE_ID_HEADER, value);
    }
    Ok(Authenticated {
        credential: None,
        subject: Some(spiffe_id),
    })
}

/// `text` with its first letter capitalised and a full stop, as problem details read.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limit::Caller;

    #[test]
    fn each_method_names_its_caller_for_the_rate_limits() {
        let key = Authenticated {
            credential: Some("zfk_1".into()),
            subject: None,
        };
        assert_eq!(
            key.caller("api-key"),
            Some(Caller::Identity("api-key:zfk_1".into()))
        );
        let token = Authenticated {
            credential: Some("kid-1".into()),
            subject: Some("alice".into()),
        };
        assert_eq!(
            token.caller("jwt"),
            Some(Caller::Identity("jwt:alice".into()))
        );
        // A token without `sub` names no caller (its key id is shared by every holder).
        let anonymous = Authenticated {
            credential: Some("kid-1".into()),
            subject: None,
        };
        assert_eq!(anonymous.caller("jwt"), None);
        let certificate = Authenticated {
            credential: None,
            subject: Some("spiffe://example.org/billing".into()),
        };
        assert_eq!(
            certificate.caller("mtls"),
            Some(Caller::Identity("mtls:spiffe://example.org/billing".into()))
        );
    }
}
