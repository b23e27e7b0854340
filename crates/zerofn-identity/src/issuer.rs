//! The JWT-SVID issuer: mints one token per invocation, keeps the set of live tokens, verifies
//! presented tokens against it, rotates its signing key and publishes the verification keys.

use crate::jws::{self, JwsError};
use crate::jws::{SigningKey, VerifyingKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The claims of a JWT-SVID as zerofn mints them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SvidClaims {
    /// The function's SPIFFE ID.
    pub sub: String,
    /// Who the token is for.
    pub aud: Vec<String>,
    /// The invocation's deadline, in Unix seconds (rounded up).
    pub exp: u64,
    /// When it was minted, in Unix seconds.
    pub iat: u64,
    /// The invocation id.
    pub jti: String,
    /// The capabilities the function was granted (`invoke:inventory`, `egress:https://...`).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// SPIFFE IDs of the functions that called this invocation, outermost first.
    #[serde(default)]
    pub chain: Vec<String>,
}

/// Why a token was refused (or could not be minted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Jws(#[from] JwsError),
    #[error("the token's claims are not a JWT-SVID: {0}")]
    Claims(String),
    #[error("the token expired at {exp} (now {now})")]
    Expired { exp: u64, now: u64 },
    #[error("the token is not for `{expected}`")]
    WrongAudience { expected: String },
    #[error(
        "the token's invocation `{jti}` has ended: tokens are revoked when their invocation ends"
    )]
    Revoked { jti: String },
    #[error("the token names `{sub}` but was presented for `{presenter}`")]
    WrongPresenter { sub: String, presenter: String },
    #[error("no randomness for a signing key: {0}")]
    Randomness(String),
}

/// Mints and verifies JWT-SVIDs. Cheap to clone.
#[derive(Clone)]
pub struct Issuer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer").finish_non_exhaustive()
    }
}

struct Inner {
    keys: RwLock<KeyRing>,
    /// Tokens whose invocation is running: jti → subject.
    live: Mutex<HashMap<String, String>>,
}

struct KeyRing {
    current_kid: String,
    current: SigningKey,
    /// Every key a live token may be signed with: kid → key and, for retired keys, the Unix
    /// second after which it is dropped.
    verifying: Vec<(String, VerifyingKey, Option<u64>)>,
}

/// Revokes its token when dropped: hold it exactly as long as the invocation lasts.
pub struct TokenLease {
    issuer: Weak<Inner>,
    jti: String,
}

impl std::fmt::Debug for TokenLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenLease")
            .field("jti", &self.jti)
            .finish()
    }
}

impl Drop for TokenLease {
    fn drop(&mut self) {
        if let Some(inner) = self.issuer.upgrade() {
            inner.revoke(&self.jti);
        }
    }
}

impl Issuer {
    /// An issuer with a fresh signing key.
    pub fn new() -> Result<Self, TokenError> {
        let (kid, key) = new_key()?;
        let verifying = vec![(kid.clone(), key.verifying_key(), None)];
        Ok(Issuer {
            inner: Arc::new(Inner {
                keys: RwLock::new(KeyRing {
                    current_kid: kid,
                    current: key,
                    verifying,
                }),
                live: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Mints `claims` and marks the token live until the returned lease is dropped.
    pub fn mint(&self, claims: &SvidClaims) -> Result<(String, TokenLease), TokenError> {
        let payload = serde_json::to_vec(claims).map_err(|e| TokenError::Claims(e.to_string()))?;
        let token = {
            let keys = self.inner.read_keys();
            jws::sign(&keys.current, &keys.current_kid, &payload)
        };
        self.inner
            .live_tokens()
            .insert(claims.jti.clone(), claims.sub.clone());
        Ok((
            token,
            TokenLease {
                issuer: Arc::downgrade(&self.inner),
                jti: claims.jti.clone(),
            },
        ))
    }

    /// Verifies `token` as presented by `presenter` (a SPIFFE ID) to `audience`: signature by a
    /// current or recently rotated key, `alg` ES256, not expired, for `audience`, still live,
    /// and naming `presenter`.
    pub fn verify(
        &self,
        token: &str,
        audience: &str,
        presenter: &str,
    ) -> Result<SvidClaims, TokenError> {
        let now = unix_now();
        let payload = {
            let keys = self.inner.read_keys();
            jws::verify(token, |kid| {
                keys.verifying
                    .iter()
                    .filter(|(_, _, retire_after)| retire_after.is_none_or(|at| at > now))
                    .find(|(k, _, _)| k == kid)
                    .map(|(_, key, _)| key)
            })?
        };
        let claims: SvidClaims =
            serde_json::from_slice(&payload).map_err(|e| TokenError::Claims(e.to_string()))?;
        if now >= claims.exp {
            return Err(TokenError::Expired {
                exp: claims.exp,
                now,
            });
        }
        if !claims.aud.iter().any(|a| a == audience) {
            return Err(TokenError::WrongAudience {
                expected: audience.to_string(),
            });
        }
        if self.inner.live_tokens().get(&claims.jti) != Some(&claims.sub) {
            return Err(TokenError::Revoked { jti: claims.jti });
        }
        if claims.sub != presenter {
            return Err(TokenError::WrongPresenter {
                sub: claims.sub,
                presenter: presenter.to_string(),
            });
        }
        Ok(claims)
    }

    /// Ends a token before its lease is dropped.
    pub fn revoke(&self, jti: &str) {
        self.inner.revoke(jti);
    }

    /// How many tokens are live (invocations running).
    pub fn live(&self) -> usize {
        self.inner.live_tokens().len()
    }

    /// Starts signing with a new key. The old one still verifies for `overlap` (the longest a
    /// token it signed can live), then is dropped.
    pub fn rotate(&self, overlap: Duration) -> Result<(), TokenError> {
        let (kid, key) = new_key()?;
        let mut keys = self
            .inner
            .keys
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = unix_now();
        let retire = now.saturating_add(overlap.as_secs());
        let previous = keys.current_kid.clone();
        for (k, _, retire_after) in &mut keys.verifying {
            if *k == previous {
                *retire_after = Some(retire);
            }
        }
        keys.verifying
            .retain(|(_, _, retire_after)| retire_after.is_none_or(|at| at > now));
        keys.verifying
            .push((kid.clone(), key.verifying_key(), None));
        keys.current_kid = kid;
        keys.current = key;
        Ok(())
    }

    /// The verification keys as a SPIFFE JWT bundle (a JWKS with `use` = `jwt-svid`).
    pub fn jwks(&self) -> serde_json::Value {
        let now = unix_now();
        let keys = self.inner.read_keys();
        let keys: Vec<serde_json::Value> = keys
            .verifying
            .iter()
            .filter(|(_, _, retire_after)| retire_after.is_none_or(|at| at > now))
            .map(|(kid, key, _)| {
                serde_json::json!({
                    "kty": "EC",
                    "crv": "P-256",
                    "x": B64.encode(key.x()),
                    "y": B64.encode(key.y()),
                    "kid": kid,
                    "use": "jwt-svid",
                    "alg": "ES256",
                })
            })
            .collect();
        serde_json::json!({"keys": keys})
    }
}

impl Inner {
    fn read_keys(&self) -> std::sync::RwLockReadGuard<'_, KeyRing> {
        self.keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn live_tokens(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn revoke(&self, jti: &str) {
        self.live_tokens().remove(jti);
    }
}

fn new_key() -> Result<(String, SigningKey), TokenError> {
    let key = SigningKey::generate().map_err(TokenError::Randomness)?;
    let kid = hex::encode(&sha2::Sha256::digest(key.verifying_key().sec1())[..16]);
    Ok((kid, key))
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
