//! Operators of the remote control plane: enrollment (key and TOTP secret), two-factor login
//! (a signed, single-use challenge and an RFC 6238 code with replay protection) and sessions.
//!
//! What a caller from outside learns is deliberately little: every login failure is the same
//! `login-refused`; the audit stream records which check failed (`reason`).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use zerofn_policy::Role;
use zerofn_store::{OperatorRecord, SessionRecord, Store, now_ms};
use zeroize::Zeroizing;

/// The domain-separation tag of the login message; a signature made for anything else (a
/// bundle, another protocol) can never be a login signature.
pub const LOGIN_CONTEXT: &str = "zerofn-operator-login-v1";

/// How long a login challenge is valid.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(60);
/// The session lifetime when the config names none.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(15 * 60);
/// The longest session the config may ask for.
pub const MAX_SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Consecutive failed logins after which an operator is locked out for [`LOCKOUT`].
pub const MAX_FAILED_LOGINS: i64 = 5;
/// How long a lockout lasts.
pub const LOCKOUT: Duration = Duration::from_secs(5 * 60);
/// Challenges held at once; beyond it the oldest expired ones are dropped, then new ones are
/// refused, so unauthenticated callers cannot grow memory without bound.
const MAX_CHALLENGES: usize = 10_000;

/// The TOTP parameters (RFC 6238 defaults, what authenticator apps expect).
const TOTP_DIGITS: usize = 6;
const TOTP_STEP_SECS: u64 = 30;
const TOTP_SKEW_STEPS: u16 = 1;
/// 160 bits, RFC 4226's recommended secret length.
const TOTP_SECRET_BYTES: usize = 20;

/// The message an operator signs to log in.
pub fn login_message(operator: &str, nonce: &str, audience: &str) -> Vec<u8> {
    format!("{LOGIN_CONTEXT}\n{operator}\n{nonce}\n{audience}").into_bytes()
}

/// The RFC 6238 generator for a secret (also what tests and authenticator apps compute).
pub fn totp(secret: &[u8], operator: &str) -> Result<totp_rs::Totp, String> {
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(TOTP_DIGITS as u8)
        .with_skew(TOTP_SKEW_STEPS)
        .with_step_duration(TOTP_STEP_SECS)
        .with_secret(secret.to_vec())
        .with_account_name(operator.to_string())
        .with_issuer(Some("zerofn"))
        .build()
        .map_err(|e| e.to_string())
}

/// Why enrollment or removal failed.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("`{0}` is not an operator name: use lowercase letters, digits and `-` (1 to 63)")]
    InvalidName(String),
    #[error("the operator key is not a usable public key: {0}")]
    InvalidKey(String),
    #[error("an operator named `{0}` exists; remove it first")]
    Exists(String),
    #[error(transparent)]
    Store(#[from] zerofn_store::StoreError),
    #[error("{0}")]
    Internal(String),
}

/// An enrolled operator and its TOTP secret, shown once.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Enrolled {
    pub operator: OperatorRecord,
    /// `otpauth://totp/...` for an authenticator app.
    pub otpauth_uri: String,
}

/// Why a login was refused. The caller sees only `login-refused`; `reason` goes to the audit
/// stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRefusal {
    pub reason: &'static str,
}

/// Why a session was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRefusal {
    /// `session-missing` or `session-invalid`: what the caller is told.
    pub code: &'static str,
    /// What the audit stream records: `session-missing`, `session-malformed`,
    /// `session-unknown`, `session-expired`, `session-revoked`, `operator-removed`.
    pub reason: &'static str,
}

/// An authenticated session: who, in which role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub operator: String,
    pub role: Role,
    pub token_hash: String,
}

/// A session issued at login.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct IssuedSession {
    /// The bearer token (`zfs_` + 64 hex digits), shown once.
    pub token: String,
    pub operator: String,
    pub role: String,
    pub expires_ms: i64,
}

struct Challenge {
    operator: String,
    expires: Instant,
}

/// Enrollment, login and sessions over the store.
pub struct OperatorAuth {
    store: Store,
    /// Seals TOTP secrets at rest; derived from the node secret.
    sealing_key: Zeroizing<[u8; 32]>,
    /// What login signatures are bound to: this control plane's SPIFFE ID.
    audience: String,
    session_ttl: Duration,
    challenge_ttl: Duration,
    challenges: Mutex<HashMap<String, Challenge>>,
}

impl std::fmt::Debug for OperatorAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorAuth")
            .field("audience", &self.audience)
            .field("session_ttl", &self.session_ttl)
            .finish_non_exhaustive()
    }
}

impl OperatorAuth {
    /// `node_secret` is the node's 32-byte secret; the TOTP sealing key is derived from it
    /// with HMAC-SHA256 under a label of its own, so it is never the compile cache's key.
    pub fn new(
        store: Store,
        node_secret: &[u8; 32],
        audience: String,
        session_ttl: Duration,
    ) -> Self {
        // HMAC-SHA256 keyed with the node secret, zero-padded to the block size as HMAC itself
        // pads it (so the derived key is unchanged): `new` takes a full block and cannot fail,
        // so there is no path that would seal under a zero key.
        let mut block = Zeroizing::new([0u8; 64]);
        block[..32].copy_from_slice(node_secret);
        let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new((&*block).into());
        mac.update(b"zerofn-operator-totp-seal-v1");
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&mac.finalize().into_bytes());
        Self {
            store,
            sealing_key: key,
            audience,
            session_ttl: session_ttl.min(MAX_SESSION_TTL),
            challenge_ttl: CHALLENGE_TTL,
            challenges: Mutex::new(HashMap::new()),
        }
    }

    /// The audience login signatures are bound to.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Enrolls `name` in `role` with the operator key `public_key_pem` (SPKI PEM, as written
    /// by `zerofn keygen`). Returns the TOTP secret as an `otpauth://` URI, this once.
    pub fn enroll(
        &self,
        name: &str,
        role: Role,
        public_key_pem: &str,
    ) -> Result<Enrolled, OperatorError> {
        if !zerofn_manifest::is_dns_label(name) {
            return Err(OperatorError::InvalidName(name.to_string()));
        }
        let key = zerofn_signing::PublicKey::from_pem(public_key_pem)
            .map_err(|e| OperatorError::InvalidKey(e.to_string()))?;
        let mut secret = Zeroizing::new([0u8; TOTP_SECRET_BYTES]);
        getrandom::fill(secret.as_mut_slice())
            .map_err(|e| OperatorError::Internal(e.to_string()))?;
        let otpauth_uri = totp(secret.as_slice(), name)
            .and_then(|t| t.to_url().map_err(|e| e.to_string()))
            .map_err(OperatorError::Internal)?;
        let record = OperatorRecord {
            name: name.to_string(),
            role: role.as_str().to_string(),
            public_key: key.to_pem(),
            totp_sealed: self.seal(name, secret.as_slice())?,
            created_ms: now_ms(),
            last_totp_step: None,
            failed_logins: 0,
            locked_until_ms: None,
        };
        if !self.store.create_operator(&record)? {
            return Err(OperatorError::Exists(name.to_string()));
        }
        Ok(Enrolled {
            operator: record,
            otpauth_uri,
        })
    }

    /// Removes `name` and every session of theirs.
    pub fn remove(&self, name: &str) -> Result<bool, OperatorError> {
        Ok(self.store.remove_operator(name)?)
    }

    /// A fresh single-use nonce for `operator`, valid for [`CHALLENGE_TTL`]. Issued whether
    /// or not the operator exists, so the endpoint does not tell who is enrolled.
    pub fn challenge(&self, operator: &str) -> Result<String, LoginRefusal> {
        // Names are DNS labels, so a challenge holds at most 63 bytes of caller input.
        if !zerofn_manifest::is_dns_label(operator) {
            return Err(LoginRefusal {
                reason: "operator-name-invalid",
            });
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|_| LoginRefusal {
            reason: "internal-error",
        })?;
        let nonce = hex::encode(bytes);
        let mut challenges = self
            .challenges
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        if challenges.len() >= MAX_CHALLENGES {
            challenges.retain(|_, c| c.expires > now);
            if challenges.len() >= MAX_CHALLENGES {
                return Err(LoginRefusal {
                    reason: "too-many-challenges",
                });
            }
        }
        challenges.insert(
            nonce.clone(),
            Challenge {
                operator: operator.to_string(),
                expires: now + self.challenge_ttl,
            },
        );
        Ok(nonce)
    }

    /// Checks both factors and issues a session. `now_secs` is the Unix time the TOTP code is
    /// checked at. Order: the challenge is consumed first (so a nonce is never usable twice,
    /// whatever else fails), then lockout, signature, the counted attempt, TOTP, replay.
    pub fn login(
        &self,
        operator: &str,
        nonce: &str,
        signature: &[u8],
        code: &str,
        now_secs: u64,
    ) -> Result<(IssuedSession, Role), LoginRefusal> {
        let refuse = |reason| LoginRefusal { reason };
        let challenge = self
            .challenges
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(nonce);
        let challenge = challenge.ok_or(refuse("challenge-unknown"))?;
        if challenge.expires <= Instant::now() {
            return Err(refuse("challenge-expired"));
        }
        if challenge.operator != operator {
            return Err(refuse("challenge-other-operator"));
        }
        let record = self
            .store
            .operator(operator)
            .map_err(|_| refuse("internal-error"))?
            .ok_or(refuse("operator-unknown"))?;
        let now = now_ms();
        if record.locked_until_ms.is_some_and(|until| until > now) {
            return Err(refuse("locked-out"));
        }
        // The key factor first, uncounted: a wrong signature needs no stolen key, so counting it
        // would let anyone who knows a name lock its operator out. Past it, each attempt is
        // counted (atomically) before the code is checked, so guesses in parallel share one
        // budget of MAX_FAILED_LOGINS.
        self.check_signature(&record, nonce, signature)?;
        let lock_until = now.saturating_add(i64::try_from(LOCKOUT.as_millis()).unwrap_or(i64::MAX));
        if !self
            .store
            .reserve_login_attempt(operator, now, MAX_FAILED_LOGINS, lock_until)
            .map_err(|_| refuse("internal-error"))?
        {
            return Err(refuse("locked-out"));
        }
        self.check_code(&record, code, now_secs)?;
        let role: Role = record.role.parse().map_err(|_| refuse("role-unknown"))?;
        let _ = self.store.reset_login_failures(operator);
        let mut token_bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(token_bytes.as_mut_slice()).map_err(|_| refuse("internal-error"))?;
        let token = format!("zfs_{}", hex::encode(token_bytes.as_slice()));
        let expires_ms = now.saturating_add(self.session_ttl.as_millis() as i64);
        self.store
            .create_session(&SessionRecord {
                token_hash: token_hash(&token),
                operator: operator.to_string(),
                created_ms: now,
                expires_ms,
                revoked_ms: None,
            })
            .map_err(|_| refuse("internal-error"))?;
        Ok((
            IssuedSession {
                token,
                operator: operator.to_string(),
                role: role.as_str().to_string(),
                expires_ms,
            },
            role,
        ))
    }

    fn check_signature(
        &self,
        record: &OperatorRecord,
        nonce: &str,
        signature: &[u8],
    ) -> Result<(), LoginRefusal> {
        let refuse = |reason| LoginRefusal { reason };
        let key = zerofn_signing::PublicKey::from_pem(&record.public_key)
            .map_err(|_| refuse("key-unreadable"))?;
        if !key.verify(
            &login_message(&record.name, nonce, &self.audience),
            signature,
        ) {
            return Err(refuse("signature-invalid"));
        }
        Ok(())
    }

    /// The TOTP code, then the replay guard (a step at or before the last accepted one).
    fn check_code(
        &self,
        record: &OperatorRecord,
        code: &str,
        now_secs: u64,
    ) -> Result<(), LoginRefusal> {
        let refuse = |reason| LoginRefusal { reason };
        let secret = self.open(&record.name, &record.totp_sealed)?;
        let generator = totp(&secret, &record.name).map_err(|_| refuse("totp-unreadable"))?;
        let code = code.trim();
        if code.len() != TOTP_DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(refuse("totp-malformed"));
        }
        let step = generator
            .check(code, now_secs)
            .ok_or(refuse("totp-invalid"))?;
        let step = i64::try_from(step).map_err(|_| refuse("totp-invalid"))?;
        if !self
            .store
            .accept_totp_step(&record.name, step)
            .map_err(|_| refuse("internal-error"))?
        {
            return Err(refuse("totp-replayed"));
        }
        Ok(())
    }

    /// The session `authorization` (an `Authorization` header value) proves, if any.
    pub fn authenticate(
        &self,
        authorization: Option<&[u8]>,
    ) -> Result<Authenticated, SessionRefusal> {
        let invalid = |reason| SessionRefusal {
            code: "session-invalid",
            reason,
        };
        let Some(header) = authorization else {
            return Err(SessionRefusal {
                code: "session-missing",
                reason: "session-missing",
            });
        };
        // The scheme is case-insensitive (RFC 9110, section 11.1).
        let token = std::str::from_utf8(header)
            .ok()
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| is_token(t))
            .ok_or(invalid("session-malformed"))?;
        let hash = token_hash(token);
        let session = self
            .store
            .session(&hash)
            .map_err(|_| invalid("internal-error"))?
            .ok_or(invalid("session-unknown"))?;
        // The lookup is by hash; comparing again in constant time costs nothing and keeps the
        // check independent of how the store indexes.
        if !crate::authn::constant_time_eq(session.token_hash.as_bytes(), hash.as_bytes()) {
            return Err(invalid("session-unknown"));
        }
        if session.revoked_ms.is_some() {
            return Err(invalid("session-revoked"));
        }
        if session.expires_ms <= now_ms() {
            return Err(invalid("session-expired"));
        }
        let record = self
            .store
            .operator(&session.operator)
            .map_err(|_| invalid("internal-error"))?
            .ok_or(invalid("operator-removed"))?;
        let role = record.role.parse().map_err(|_| invalid("role-unknown"))?;
        Ok(Authenticated {
            operator: record.name,
            role,
            token_hash: hash,
        })
    }

    /// Revokes the session with `token_hash`.
    pub fn logout(&self, token_hash: &str) -> Result<bool, zerofn_store::StoreError> {
        self.store.revoke_session(token_hash, now_ms())
    }

    /// AES-256-GCM with a random 96-bit nonce; the operator's name is the associated data,
    /// so a sealed secret copied to another row does not open.
    fn seal(&self, operator: &str, secret: &[u8]) -> Result<Vec<u8>, OperatorError> {
        let cipher = Aes256Gcm::new_from_slice(self.sealing_key.as_slice())
            .map_err(|e| OperatorError::Internal(e.to_string()))?;
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| OperatorError::Internal(e.to_string()))?;
        let sealed = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: secret,
                    aad: operator.as_bytes(),
                },
            )
            .map_err(|_| OperatorError::Internal("cannot seal the TOTP secret".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn open(&self, operator: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, LoginRefusal> {
        let refuse = LoginRefusal {
            reason: "totp-unreadable",
        };
        let cipher =
            Aes256Gcm::new_from_slice(self.sealing_key.as_slice()).map_err(|_| refuse.clone())?;
        if sealed.len() < 12 {
            return Err(refuse);
        }
        let (nonce, ciphertext) = sealed.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| refuse.clone())?;
        cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: operator.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| refuse)
    }
}

/// The stored form of a session token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn is_token(token: &str) -> bool {
    token
        .strip_prefix("zfs_")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_login_message_is_domain_separated() {
        assert_eq!(
            login_message("alice", "ab", "spiffe://zerofn.local/control"),
            b"zerofn-operator-login-v1\nalice\nab\nspiffe://zerofn.local/control"
        );
    }

    #[test]
    fn an_expired_challenge_is_refused_and_consumed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut auth = OperatorAuth::new(
            store,
            &[7; 32],
            "spiffe://zerofn.local/control".into(),
            DEFAULT_SESSION_TTL,
        );
        auth.challenge_ttl = Duration::ZERO;
        let key = zerofn_signing::PrivateKey::generate(zerofn_signing::Algorithm::Ed25519).unwrap();
        auth.enroll("vic", Role::Viewer, &key.public().to_pem())
            .unwrap();
        let nonce = auth.challenge("vic").unwrap();
        let signature = key.sign(&login_message("vic", &nonce, auth.audience()));
        let refusal = auth
            .login("vic", &nonce, &signature, "000000", 0)
            .unwrap_err();
        assert_eq!(refusal.reason, "challenge-expired");
        let again = auth
            .login("vic", &nonce, &signature, "000000", 0)
            .unwrap_err();
        assert_eq!(again.reason, "challenge-unknown");
    }

    #[test]
    fn sealed_secrets_open_only_for_their_operator_and_node() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let auth = OperatorAuth::new(store.clone(), &[7; 32], "a".into(), DEFAULT_SESSION_TTL);
        let sealed = auth.seal("vic", b"0123456789abcdefghij").unwrap();
        assert!(!sealed.windows(20).any(|w| w == b"0123456789abcdefghij"));
        assert_eq!(
            auth.open("vic", &sealed).unwrap().as_slice(),
            b"0123456789abcdefghij"
        );
        assert!(auth.open("eve", &sealed).is_err());
        let other = OperatorAuth::new(store, &[8; 32], "a".into(), DEFAULT_SESSION_TTL);
        assert!(other.open("vic", &sealed).is_err());
        assert!(auth.open("vic", &sealed[..5]).is_err());
    }

    #[test]
    fn tokens_are_recognised_by_shape() {
        assert!(is_token(&format!("zfs_{}", "a".repeat(64))));
        assert!(!is_token(&format!("zfs_{}", "g".repeat(64))));
        assert!(!is_token("zfs_"));
        assert!(!is_token(&"a".repeat(68)));
    }
}
