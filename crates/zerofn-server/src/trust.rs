//! The trust policy: which signing keys may sign which apps, and which keys are revoked. Read
//! from `trust.toml` in the data directory (or `--trust FILE`), plus the data directory's
//! development key, which `zerofn up` creates and which is trusted there and nowhere else.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use zerofn_signing::PublicKey;

/// The policy file's name inside the data directory.
pub const TRUST_FILE: &str = "trust.toml";
/// The development key pair `zerofn up` creates in the data directory.
pub const DEV_KEY_FILE: &str = "dev-signing.key";
pub const DEV_PUBLIC_KEY_FILE: &str = "dev-signing.pub";

/// One trusted key.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// A name for people (`release`, `ci`, `development`).
    pub name: String,
    pub key: PublicKey,
    /// App-name globs this key may sign (`*` matches any run of characters).
    pub apps: Vec<String>,
    /// A revoked key signs nothing: new deploys are refused and versions it signed stop serving.
    pub revoked: bool,
}

/// Who may sign what.
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    pub keys: Vec<TrustedKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    keys: Vec<KeyEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    name: String,
    public_key: PathBuf,
    apps: Vec<String>,
    #[serde(default)]
    revoked: bool,
}

/// The trust policy could not be read.
#[derive(Debug, thiserror::Error)]
#[error("trust policy {path}: {reason}")]
pub struct TrustError {
    pub path: PathBuf,
    pub reason: String,
}

impl TrustPolicy {
    /// Reads `path` (missing: no keys) and adds the development key of `data_dir`, if any.
    pub fn load(path: &Path, data_dir: &Path) -> Result<Self, TrustError> {
        let error = |reason: String| TrustError {
            path: path.to_path_buf(),
            reason,
        };
        let mut policy = Self::default();
        if path.exists() {
            let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
            let file: PolicyFile = toml::from_str(&text).map_err(|e| error(e.to_string()))?;
            let base = path.parent().unwrap_or(Path::new("."));
            for entry in file.keys {
                let key_path = base.join(&entry.public_key);
                let pem = std::fs::read_to_string(&key_path).map_err(|e| {
                    error(format!("key `{}`: {}: {e}", entry.name, key_path.display()))
                })?;
                let key = PublicKey::from_pem(&pem)
                    .map_err(|e| error(format!("key `{}`: {e}", entry.name)))?;
                if entry.apps.is_empty() {
                    return Err(error(format!(
                        "key `{}` names no apps: list the app globs it may sign in `apps`",
                        entry.name
                    )));
                }
                policy.keys.push(TrustedKey {
                    name: entry.name,
                    key,
                    apps: entry.apps,
                    revoked: entry.revoked,
                });
            }
        }
        // The development key is trusted for every app of this data directory unless an entry
        // of the policy revokes it (list `dev-signing.pub` with `revoked = true`).
        let dev = data_dir.join(DEV_PUBLIC_KEY_FILE);
        if dev.exists() {
            let pem = std::fs::read_to_string(&dev).map_err(|e| error(e.to_string()))?;
            let key =
                PublicKey::from_pem(&pem).map_err(|e| error(format!("development key: {e}")))?;
            policy.keys.push(TrustedKey {
                name: "development (this data directory only)".into(),
                key,
                apps: vec!["*".into()],
                revoked: false,
            });
        }
        Ok(policy)
    }

    /// The keys that may sign `app` now. A key revoked by any entry is excluded from all of
    /// them, the development key included.
    pub fn keys_for(&self, app: &str) -> Vec<PublicKey> {
        self.keys
            .iter()
            .filter(|k| !self.is_revoked(&k.key.key_id()))
            .filter(|k| k.apps.iter().any(|glob| glob_matches(glob, app)))
            .map(|k| k.key.clone())
            .collect()
    }

    /// Whether any entry revokes the key with `key_id`.
    pub fn is_revoked(&self, key_id: &str) -> bool {
        self.keys
            .iter()
            .any(|k| k.revoked && k.key.key_id() == key_id)
    }

    /// The entry of the key with `key_id`, trusted for any app or not.
    pub fn key(&self, key_id: &str) -> Option<&TrustedKey> {
        self.keys.iter().find(|k| k.key.key_id() == key_id)
    }
}

/// `*` matches any run of characters; everything else matches itself.
fn glob_matches(glob: &str, text: &str) -> bool {
    let parts: Vec<&str> = glob.split('*').collect();
    if parts.len() == 1 {
        return glob == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// The data directory's development key, created on first use (the directory 0700, the private
/// key 0600, unencrypted: it protects nothing beyond this data directory, where it is the only
/// place it is trusted).
pub fn ensure_dev_key(data_dir: &Path) -> Result<zerofn_signing::PrivateKey, TrustError> {
    let private = data_dir.join(DEV_KEY_FILE);
    let error = |reason: String| TrustError {
        path: private.clone(),
        reason,
    };
    if private.exists() {
        let pem = std::fs::read_to_string(&private).map_err(|e| error(e.to_string()))?;
        return zerofn_signing::PrivateKey::from_pem(&pem, None).map_err(|e| error(e.to_string()));
    }
    zerofn_store::create_private_dir(data_dir).map_err(|e| error(e.to_string()))?;
    let key = zerofn_signing::PrivateKey::generate(zerofn_signing::Algorithm::EcdsaP256)
        .map_err(|e| error(e.to_string()))?;
    key.write_pem_file(&private, None)
        .map_err(|e| error(e.to_string()))?;
    std::fs::write(data_dir.join(DEV_PUBLIC_KEY_FILE), key.public().to_pem())
        .map_err(|e| error(e.to_string()))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::glob_matches;

    #[test]
    fn globs() {
        assert!(glob_matches("*", "shop"));
        assert!(glob_matches("shop", "shop"));
        assert!(!glob_matches("shop", "shops"));
        assert!(glob_matches("shop-*", "shop-eu"));
        assert!(!glob_matches("shop-*", "shop"));
        assert!(glob_matches("*-eu", "shop-eu"));
        assert!(glob_matches("a*b*c", "aXXbYYc"));
        assert!(!glob_matches("a*b*c", "aXXcYYb"));
        assert!(!glob_matches("ab*ba", "aba"));
    }
}
