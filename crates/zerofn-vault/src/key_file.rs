//! Where master keys come from: a key file only its owner can read, or the environment.
//!
//! The key file is text: `#` comments, then one `zmk1.<base64url>` key per line. The first
//! key is the current one; any others are previous keys still being retired by a rotation.
//! The environment holds the current key in `ZEROFN_MASTER_KEY` and, during a rotation, the
//! previous ones in `ZEROFN_MASTER_KEY_PREVIOUS` (separated by commas or white space).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::{Keyring, MasterKey, VaultError};

/// The variable holding the current master key.
pub const MASTER_KEY_ENV: &str = "ZEROFN_MASTER_KEY";
/// The variable holding previous master keys during a rotation.
pub const PREVIOUS_KEYS_ENV: &str = "ZEROFN_MASTER_KEY_PREVIOUS";

const HEADER: &str = "# zerofn master keys. The first is current; any others are being retired.\n\
                      # Keep this file secret (mode 0600) and backed up: without it nothing sealed can be read.\n";

/// Where a node's master keys are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterKeySource {
    /// A key file (mode 0600).
    File(PathBuf),
    /// `ZEROFN_MASTER_KEY` and `ZEROFN_MASTER_KEY_PREVIOUS`.
    Environment,
}

impl MasterKeySource {
    /// For messages: `key file /var/lib/zerofn/master.key` or `environment (ZEROFN_MASTER_KEY)`.
    pub fn describe(&self) -> String {
        match self {
            MasterKeySource::File(path) => format!("key file {}", path.display()),
            MasterKeySource::Environment => format!("environment ({MASTER_KEY_ENV})"),
        }
    }

    /// Reads the keyring; a file that does not exist yet is created with a new key (mode
    /// 0600), so that the embedded default needs no setup. The environment must be set.
    pub fn load_or_create(&self) -> Result<Keyring, VaultError> {
        match self {
            MasterKeySource::File(path) => match read_key_file(path) {
                Err(VaultError::KeyFile { .. }) if !path.exists() => {
                    let keyring = Keyring::new(MasterKey::generate()?, Vec::new());
                    write_key_file(path, &keyring)?;
                    Ok(keyring)
                }
                other => other,
            },
            MasterKeySource::Environment => keyring_from_env(
                std::env::var(MASTER_KEY_ENV).ok().as_deref(),
                std::env::var(PREVIOUS_KEYS_ENV).ok().as_deref(),
            ),
        }
    }

    /// Writes `keyring` where it came from. Only a key file can be written: keys in the
    /// environment are the operator's to change.
    pub fn store(&self, keyring: &Keyring) -> Result<(), VaultError> {
        match self {
            MasterKeySource::File(path) => write_key_file(path, keyring),
            MasterKeySource::Environment => Err(VaultError::NoKey(format!(
                "the master key comes from the environment, which zerofn cannot change: put the \
                 new key in {MASTER_KEY_ENV} and the old one in {PREVIOUS_KEYS_ENV}, restart, and \
                 the server re-wraps every item under the new key"
            ))),
        }
    }
}

/// A keyring from the values of `ZEROFN_MASTER_KEY` and `ZEROFN_MASTER_KEY_PREVIOUS`.
pub fn keyring_from_env(
    current: Option<&str>,
    previous: Option<&str>,
) -> Result<Keyring, VaultError> {
    let current = current.filter(|v| !v.trim().is_empty()).ok_or_else(|| {
        VaultError::NoKey(format!(
            "{MASTER_KEY_ENV} is not set; generate a key with `zerofn secrets generate-master-key`"
        ))
    })?;
    let current = MasterKey::parse(current, MASTER_KEY_ENV)?;
    let previous = previous
        .unwrap_or_default()
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|v| !v.is_empty())
        .map(|v| MasterKey::parse(v, PREVIOUS_KEYS_ENV))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Keyring::new(current, previous))
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> VaultError {
    VaultError::KeyFile {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Reads a key file, refusing one that others may read or write.
pub fn read_key_file(path: &Path) -> Result<Keyring, VaultError> {
    let metadata = std::fs::metadata(path).map_err(|e| file_error(path, e))?;
    if !metadata.is_file() {
        return Err(file_error(path, "not a regular file"));
    }
    check_owner_only(path, &metadata)?;
    let text =
        zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| file_error(path, e))?);
    let mut keys = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .map(|(index, line)| {
            MasterKey::parse(line, &format!("{} line {}", path.display(), index + 1))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(file_error(path, "holds no key"));
    }
    let current = keys.remove(0);
    Ok(Keyring::new(current, keys))
}

#[cfg(unix)]
fn check_owner_only(path: &Path, metadata: &std::fs::Metadata) -> Result<(), VaultError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(VaultError::KeyFilePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_owner_only(_: &Path, _: &std::fs::Metadata) -> Result<(), VaultError> {
    Ok(())
}

/// Replaces the key file with `keyring` atomically (a new file, mode 0600, synced, then
/// renamed over the old one), so a crash leaves either the old keys or the new ones.
pub fn write_key_file(path: &Path, keyring: &Keyring) -> Result<(), VaultError> {
    let mut text = zeroize::Zeroizing::new(String::from(HEADER));
    for key in std::iter::once(keyring.current()).chain(keyring.previous()) {
        text.push_str(&key.encode());
        text.push('\n');
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| file_error(path, e))?;
    let staging = path.with_extension("new");
    let _ = std::fs::remove_file(&staging);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&staging)
        .map_err(|e| file_error(&staging, e))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| file_error(&staging, e))?;
    std::fs::rename(&staging, path).map_err(|e| file_error(path, e))?;
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_created_owner_only_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys").join("master.key");
        let source = MasterKeySource::File(path.clone());
        let first = source.load_or_create().unwrap();
        let again = source.load_or_create().unwrap();
        assert_eq!(first.current().id(), again.current().id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn rotation_state_survives_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let source = MasterKeySource::File(dir.path().join("master.key"));
        let ring = source.load_or_create().unwrap();
        let rotated = ring.rotated().unwrap();
        source.store(&rotated).unwrap();
        let read = source.load_or_create().unwrap();
        assert_eq!(read.current().id(), rotated.current().id());
        assert_eq!(read.previous().len(), 1);
        assert_eq!(read.previous()[0].id(), ring.current().id());
    }

    #[cfg(unix)]
    #[test]
    fn a_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        MasterKeySource::File(path.clone())
            .load_or_create()
            .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = read_key_file(&path).unwrap_err();
        assert!(matches!(
            error,
            VaultError::KeyFilePermissions { mode: 0o644, .. }
        ));
        assert!(error.to_string().contains("chmod 600"), "{error}");
    }

    #[test]
    fn malformed_files_say_where() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let source = MasterKeySource::File(path.clone());
        source.load_or_create().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{text}zmk1.short\n")).unwrap();
        let error = read_key_file(&path).unwrap_err().to_string();
        assert!(error.contains("line 4"), "{error}");
        std::fs::write(&path, "# nothing\n").unwrap();
        assert!(
            read_key_file(&path)
                .unwrap_err()
                .to_string()
                .contains("holds no key")
        );
    }

    #[test]
    fn environment_keys() {
        let current = MasterKey::generate().unwrap();
        let old = MasterKey::generate().unwrap();
        let ring = keyring_from_env(
            Some(&current.encode()),
            Some(&format!(" {}, ", old.encode().as_str())),
        )
        .unwrap();
        assert_eq!(ring.current().id(), current.id());
        assert_eq!(ring.previous()[0].id(), old.id());
        let missing = keyring_from_env(None, None).unwrap_err().to_string();
        assert!(
            missing.contains("ZEROFN_MASTER_KEY is not set"),
            "{missing}"
        );
        assert!(keyring_from_env(Some("zmk1.bad"), None).is_err());
        assert!(
            MasterKeySource::Environment
                .store(&ring)
                .unwrap_err()
                .to_string()
                .contains("ZEROFN_MASTER_KEY_PREVIOUS")
        );
    }
}
