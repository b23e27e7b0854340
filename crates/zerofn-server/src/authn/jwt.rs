//! Bearer tokens from an OpenID Connect–style issuer (`auth.jwt`). The header is read first
//! and judged on its own (allowed algorithm, known key, no `crit`), so that `alg: none`, an
//! HMAC token keyed with a public key, or a key of the wrong type never reaches signature
//! code; then `jsonwebtoken` verifies the signature and the registered claims (`iss`, `aud`,
//! `exp`, `nbf` with a bounded skew), and the required claims are checked.

use super::{Challenge, Refusal};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use http::StatusCode;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

/// Accepted when the manifest lists no `algorithms`: the asymmetric algorithms issuers use.
pub const DEFAULT_ALGORITHMS: &[&str] = &["RS256", "PS256", "ES256", "EdDSA"];
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const CLOCK_SKEW_SECS: u64 = 60;
/// A longer `Authorization` value is refused unread.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Set by the platform on an authenticated request: the token's verified `sub`.
pub const SUBJECT_HEADER: &str = "x-zerofn-jwt-sub";
/// Set by the platform: the verified `iss`.
pub const ISSUER_HEADER: &str = "x-zerofn-jwt-iss";
/// Set by the platform: the verified payload (every claim), base64url JSON, as Envoy's
/// `forward_payload_header` does.
pub const PAYLOAD_HEADER: &str = "x-zerofn-jwt-payload";

/// What a function's `auth.jwt` requires of a token (its keys come separately).
#[derive(Debug, Clone)]
pub struct JwtPolicy {
    pub issuer: String,
    pub audience: String,
    pub algorithms: Vec<Algorithm>,
    pub required_claims: Vec<String>,
}

/// A verified token: its claims, and the payload segment that carried them.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    pub claims: serde_json::Map<String, serde_json::Value>,
    pub payload_segment: String,
    pub key_id: Option<String>,
}

impl VerifiedToken {
    /// A string claim.
    pub fn claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(|v| v.as_str())
    }
}

/// What the header of a presented token says, before anything is trusted.
#[derive(Debug, Clone)]
pub struct TokenHeader {
    pub algorithm: Algorithm,
    pub key_id: Option<String>,
}

impl JwtPolicy {
    /// The policy for `auth`; an algorithm outside the accepted set is an error (the manifest
    /// refuses them too: this is the second check).
    pub fn new(auth: &zerofn_manifest::JwtAuth) -> Result<Self, String> {
        let names: Vec<&str> = if auth.algorithms.is_empty() {
            DEFAULT_ALGORITHMS.to_vec()
        } else {
            auth.algorithms.iter().map(String::as_str).collect()
        };
        let algorithms = names
            .into_iter()
            .map(asymmetric_algorithm)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            issuer: auth.issuer.clone(),
            audience: auth.audience.clone(),
            algorithms,
            required_claims: auth.required_claims.clone(),
        })
    }

    /// Reads the bearer token from an `Authorization` value and judges its header.
    pub fn read_header<'t>(
        &self,
        authorization: Option<&'t [u8]>,
    ) -> Result<(&'t str, TokenHeader), Refusal> {
        let Some(value) = authorization else {
            return Err(unauthenticated(
                "jwt-missing",
                "This function requires a bearer token: send `Authorization: Bearer <token>`.",
            ));
        };
        if value.len() > MAX_TOKEN_BYTES {
            return Err(invalid("jwt-malformed", "The bearer token is too long."));
        }
        let token = std::str::from_utf8(value)
            .ok()
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
            })
            .ok_or_else(|| {
                unauthenticated(
                    "jwt-missing",
                    "The Authorization header does not carry a bearer token: send `Authorization: Bearer <token>`.",
                )
            })?;
        let header = token
            .split('.')
            .next()
            .and_then(|segment| B64.decode(segment).ok())
            .and_then(|bytes| {
                serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes).ok()
            })
            .filter(|_| token.split('.').count() == 3)
            .ok_or_else(|| {
                invalid(
                    "jwt-malformed",
                    "The bearer token is not a JWS compact token (three base64url segments).",
                )
            })?;
        if header.contains_key("crit") {
            return Err(invalid(
                "jwt-malformed",
                "The token's header has `crit` extensions, which zerofn does not understand and so must refuse.",
            ));
        }
        let alg = header.get("alg").and_then(|a| a.as_str()).unwrap_or("");
        let algorithm = asymmetric_algorithm(alg)
            .ok()
            .filter(|a| self.algorithms.contains(a))
            .ok_or_else(|| {
                invalid(
                    "jwt-algorithm-not-allowed",
                    format!(
                        "The token is signed with `{}`, which this function does not accept (accepted: {}).",
                        if alg.is_empty() { "no algorithm" } else { alg },
                        self.algorithm_names()
                    ),
                )
            })?;
        let key_id = header
            .get("kid")
            .and_then(|k| k.as_str())
            .map(str::to_string);
        Ok((token, TokenHeader { algorithm, key_id }))
    }

    /// The key of `keys` that may verify a token with `header`: the one its `kid` names (or
    /// the only suitable key when it names none), declared for signatures and for this
    /// algorithm when the key set says so.
    pub fn select_key<'k>(&self, keys: &'k JwkSet, header: &TokenHeader) -> Option<&'k Jwk> {
        let suitable = |jwk: &&Jwk| {
            let for_signing = !matches!(
                jwk.common.public_key_use,
                Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
            );
            let for_algorithm = jwk
                .common
                .key_algorithm
                .is_none_or(|declared| declared.to_string() == format!("{:?}", header.algorithm));
            for_signing && for_algorithm
        };
        match &header.key_id {
            Some(kid) => keys
                .keys
                .iter()
                .filter(suitable)
                .find(|jwk| jwk.common.key_id.as_deref() == Some(kid)),
            None => {
                let mut candidates = keys.keys.iter().filter(suitable);
                let only = candidates.next();
                candidates.next().is_none().then_some(only).flatten()
            }
        }
    }

    /// Verifies `token` (whose header is `header`) with `jwk` at the current time.
    pub fn verify(
        &self,
        token: &str,
        header: &TokenHeader,
        jwk: &Jwk,
    ) -> Result<VerifiedToken, Refusal> {
        let key = DecodingKey::from_jwk(jwk).map_err(|_| {
            invalid(
                "jwt-unknown-key",
                "The key the token names cannot be used to verify it.",
            )
        })?;
        let mut validation = Validation::new(header.algorithm);
        validation.algorithms = vec![header.algorithm];
        validation.leeway = CLOCK_SKEW_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &key,
            &validation,
        )
        .map_err(|error| self.refusal(error.kind()))?;
        for claim in &self.required_claims {
            if data
                .claims
                .get(claim)
                .is_none_or(serde_json::Value::is_null)
            {
                return Err(invalid(
                    "jwt-claim-missing",
                    format!("The token lacks the required claim `{claim}`."),
                ));
            }
        }
        Ok(VerifiedToken {
            claims: data.claims,
            payload_segment: token.split('.').nth(1).unwrap_or_default().to_string(),
            key_id: header.key_id.clone(),
        })
    }

    fn refusal(&self, kind: &jsonwebtoken::errors::ErrorKind) -> Refusal {
        use jsonwebtoken::errors::ErrorKind;
        match kind {
            ErrorKind::ExpiredSignature => invalid("jwt-expired", "The token has expired."),
            ErrorKind::ImmatureSignature => {
                invalid("jwt-not-yet-valid", "The token is not valid yet (`nbf`).")
            }
            ErrorKind::InvalidIssuer => invalid(
                "jwt-wrong-issuer",
                format!("The token was not issued by `{}`.", self.issuer),
            ),
            ErrorKind::InvalidAudience => invalid(
                "jwt-wrong-audience",
                format!("The token is not for audience `{}`.", self.audience),
            ),
            ErrorKind::MissingRequiredClaim(claim) => invalid(
                "jwt-claim-missing",
                format!("The token lacks the registered claim `{claim}`."),
            ),
            ErrorKind::InvalidSignature => invalid(
                "jwt-bad-signature",
                "The token's signature does not verify with the issuer's key.",
            ),
            ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => invalid(
                "jwt-algorithm-not-allowed",
                "The token's algorithm does not match its key.",
            ),
            _ => invalid("jwt-malformed", "The bearer token is malformed."),
        }
    }

    fn algorithm_names(&self) -> String {
        self.algorithms
            .iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `name` as an asymmetric JWS algorithm. HMAC and `none` are never accepted: a verifier that
/// holds only public keys cannot use a shared secret, and treating a public key as one is the
/// classic key-confusion forgery.
fn asymmetric_algorithm(name: &str) -> Result<Algorithm, String> {
    let algorithm = match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        other => return Err(format!("algorithm `{other}` is not accepted")),
    };
    Ok(algorithm)
}

/// Parses a JWKS document (RFC 7517 §5); keys zerofn cannot use (symmetric, unknown types)
/// are dropped rather than failing the set, as relying parties do.
pub fn parse_jwks(bytes: &[u8]) -> Result<JwkSet, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let keys = value
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or("not a JWK set: no `keys` array")?;
    let keys: Vec<Jwk> = keys
        .iter()
        .filter_map(|key| serde_json::from_value::<Jwk>(key.clone()).ok())
        .filter(|jwk| DecodingKey::from_jwk(jwk).is_ok())
        .filter(|jwk| {
            !matches!(
                jwk.algorithm,
                jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_)
            )
        })
        .collect();
    if keys.is_empty() {
        return Err("the key set has no usable public key".into());
    }
    Ok(JwkSet { keys })
}

fn unauthenticated(rule: &'static str, detail: impl Into<String>) -> Refusal {
    Refusal::new(rule, StatusCode::UNAUTHORIZED, detail).challenge(Challenge::Bearer)
}

fn invalid(rule: &'static str, detail: impl Into<String>) -> Refusal {
    Refusal::new(rule, StatusCode::UNAUTHORIZED, detail).challenge(Challenge::BearerInvalidToken)
}
