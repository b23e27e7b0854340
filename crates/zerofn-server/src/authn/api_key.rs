//! API keys (`auth.api-key`). A key is `zfn_<id>_<secret>`: the id finds the record, the secret is
//! checked against its stored SHA-256 in constant time, then revocation, expiry and scope.
//! Refusals are 401/403 problem details that say what was missing or wrong, never echoing the
//! key.

use super::Refusal;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use sha2::{Digest, Sha256};
use zerofn_store::ApiKeyRecord;

/// The prefix of every zerofn API key (so secret scanners can find leaked ones).
pub const API_KEY_PREFIX: &str = "zfn_";
/// Set by the platform on an authenticated request: the id (never the secret) of the key used.
pub const API_KEY_ID_HEADER: &str = "x-zerofn-api-key-id";

/// A freshly created key: the record to store and the key to show once.
#[derive(Debug)]
pub struct NewApiKey {
    pub record: ApiKeyRecord,
    pub key: String,
}

/// Creates a key for `functions` of `app` (`["*"]` for all), valid until `expires_ms`.
pub fn create_api_key(
    app: &str,
    functions: Vec<String>,
    name: &str,
    now_ms: i64,
    expires_ms: Option<i64>,
) -> Result<NewApiKey, String> {
    let mut id = [0u8; 8];
    let mut secret = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut id).map_err(|e| e.to_string())?;
    getrandom::fill(secret.as_mut_slice()).map_err(|e| e.to_string())?;
    let id = hex::encode(id);
    let secret = B64.encode(secret.as_slice());
    Ok(NewApiKey {
        key: format!("{API_KEY_PREFIX}{id}_{secret}"),
        record: ApiKeyRecord {
            id,
            app: app.to_string(),
            functions,
            name: name.to_string(),
            secret_hash: hash(&secret),
            created_ms: now_ms,
            expires_ms,
            revoked_ms: None,
        },
    })
}

/// The id a presented key names, if it looks like a zerofn key (`zfn_` + 16 hex digits + `_`):
/// anything else is refused without a store lookup.
pub fn key_id(presented: Option<&[u8]>) -> Option<String> {
    let text = std::str::from_utf8(presented?).ok()?;
    let (id, _secret) = text.strip_prefix(API_KEY_PREFIX)?.split_once('_')?;
    (id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_string())
}

/// Checks the key presented in `header` for `function` of `app`, looking its record up with
/// `find`. Returns the key's id.
pub fn check_api_key(
    presented: Option<&[u8]>,
    header: &str,
    app: &str,
    function: &str,
    now_ms: i64,
    find: impl FnOnce(&str) -> Option<ApiKeyRecord>,
) -> Result<String, Refusal> {
    let unauthorized = |rule, detail: String, key_id: Option<String>| Refusal {
        credential: key_id,
        ..Refusal::new(rule, http::StatusCode::UNAUTHORIZED, detail)
            .challenge(super::Challenge::ApiKey)
    };
    let Some(presented) = presented else {
        return Err(unauthorized(
            "api-key-missing",
            format!("This function requires an API key in the `{header}` header."),
            None,
        ));
    };
    let invalid = || {
        unauthorized(
            "api-key-invalid",
            format!("The key in `{header}` is not a valid API key for this platform."),
            None,
        )
    };
    let id = key_id(Some(presented)).ok_or_else(invalid)?;
    let secret = std::str::from_utf8(presented)
        .ok()
        .and_then(|text| text.split_once(&format!("{id}_")))
        .map(|(_, secret)| secret)
        .ok_or_else(invalid)?;
    let record = find(&id).ok_or_else(invalid)?;
    let expected = hex::decode(&record.secret_hash).unwrap_or_default();
    let actual = Sha256::digest(secret.as_bytes());
    if !constant_time_eq(&expected, &actual) {
        return Err(invalid());
    }
    let id = record.id.clone();
    if record.revoked_ms.is_some() {
        return Err(unauthorized(
            "api-key-revoked",
            format!("API key `{id}` has been revoked."),
            Some(id),
        ));
    }
    if record.expires_ms.is_some_and(|at| now_ms >= at) {
        return Err(unauthorized(
            "api-key-expired",
            format!("API key `{id}` has expired."),
            Some(id),
        ));
    }
    let scoped = record.app == app && record.functions.iter().any(|f| f == "*" || f == function);
    if !scoped {
        return Err(Refusal {
            credential: Some(id.clone()),
            ..Refusal::new(
                "api-key-not-scoped",
                http::StatusCode::FORBIDDEN,
                format!("API key `{id}` is not valid for function `{function}` of app `{app}`."),
            )
        });
    }
    Ok(id)
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Equality whose time does not depend on where the inputs differ (`subtle`, the RustCrypto
/// crate the signature crates use for the same purpose).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(functions: &[&str], expires_ms: Option<i64>) -> NewApiKey {
        create_api_key(
            "shop",
            functions.iter().map(|f| f.to_string()).collect(),
            "ci",
            1_000,
            expires_ms,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn check(
        presented: Option<&str>,
        new: &NewApiKey,
        function: &str,
        now: i64,
    ) -> Result<String, Refusal> {
        check_api_key(
            presented.map(str::as_bytes),
            "x-api-key",
            "shop",
            function,
            now,
            |id| (id == new.record.id).then(|| new.record.clone()),
        )
    }

    #[test]
    fn a_scoped_live_key_passes_and_names_its_id() {
        let new = key(&["checkout"], None);
        assert!(new.key.starts_with("zfn_"));
        assert_eq!(
            check(Some(&new.key), &new, "checkout", 2_000),
            Ok(new.record.id.clone())
        );
        let all = key(&["*"], None);
        assert!(check(Some(&all.key), &all, "anything", 2_000).is_ok());
    }

    #[test]
    fn every_bad_key_is_refused_with_its_own_rule_and_without_echoing_it() {
        let new = key(&["checkout"], Some(5_000));
        let rule = |r: Result<String, Refusal>| r.map_err(|e| e.rule).unwrap_err();
        assert_eq!(
            rule(check(None, &new, "checkout", 2_000)),
            "api-key-missing"
        );
        let wrong_secret = format!("zfn_{}_AAAA", new.record.id);
        for bad in [
            "",
            "nonsense",
            "zfn_",
            "zfn_unknown_secret",
            wrong_secret.as_str(),
        ] {
            let refusal = check(Some(bad), &new, "checkout", 2_000).unwrap_err();
            assert_eq!(refusal.rule, "api-key-invalid", "{bad}");
            assert!(
                !refusal.detail.contains(bad) || bad.is_empty(),
                "{}",
                refusal.detail
            );
        }
        assert_eq!(
            rule(check(Some(&new.key), &new, "checkout", 5_000)),
            "api-key-expired"
        );
        let refusal = check(Some(&new.key), &new, "payments", 2_000).unwrap_err();
        assert_eq!(refusal.rule, "api-key-not-scoped");
        assert_eq!(refusal.status, http::StatusCode::FORBIDDEN);
        assert!(!refusal.detail.contains(&new.key));
        let mut revoked = key(&["checkout"], None);
        revoked.record.revoked_ms = Some(1_500);
        assert_eq!(
            rule(check(Some(&revoked.key), &revoked, "checkout", 2_000)),
            "api-key-revoked"
        );
        // An unreadable scope (empty) allows nothing.
        let none = key(&[], None);
        assert_eq!(
            rule(check(Some(&none.key), &none, "checkout", 2_000)),
            "api-key-not-scoped"
        );
    }
}
