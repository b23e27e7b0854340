//! The on-disk cache of compiled components. wasmtime trusts precompiled code completely
//! (deserialising it is `unsafe`: it is native code), so every entry carries an HMAC-SHA256,
//! keyed by a secret of this node, over the component's digest and the compiled bytes. An entry
//! whose tag does not verify is discarded and the component is compiled again from its verified
//! bytes; it is never loaded.
//!
//! Entry format: `tag (32 bytes) || compiled bytes`, in `DIR/<sha256 hex>.cwasm`.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

type HmacSha256 = Hmac<Sha256>;
const TAG_LEN: usize = 32;

/// Where compiled components are kept, and the key that authenticates them.
#[derive(Clone)]
pub struct CompileCache {
    dir: PathBuf,
    key: [u8; 32],
}

impl std::fmt::Debug for CompileCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("CompileCache")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// What a lookup found.
pub(crate) enum Lookup {
    Hit(Component),
    Miss,
    /// An entry existed but was not authentic (or not loadable by this engine); it was removed.
    Rejected(String),
}

impl CompileCache {
    /// A cache in `dir` authenticated with `key` (32 secret bytes, see [`load_or_create_key`]).
    pub fn new(dir: PathBuf, key: [u8; 32]) -> Self {
        Self { dir, key }
    }

    fn path(&self, digest: &str) -> PathBuf {
        self.dir
            .join(format!("{}.cwasm", digest.trim_start_matches("sha256:")))
    }

    fn tag(&self, digest: &str, compiled: &[u8]) -> Option<HmacSha256> {
        let mut mac = HmacSha256::new_from_slice(&self.key).ok()?;
        mac.update(digest.as_bytes());
        mac.update(&[0]);
        mac.update(compiled);
        Some(mac)
    }

    pub(crate) fn get(&self, engine: &Engine, digest: &str) -> Lookup {
        let path = self.path(digest);
        let Ok(entry) = std::fs::read(&path) else {
            return Lookup::Miss;
        };
        let reject = |reason: String| {
            let _ = std::fs::remove_file(&path);
            Lookup::Rejected(reason)
        };
        if entry.len() < TAG_LEN {
            return reject("entry too short".into());
        }
        let (tag, compiled) = entry.split_at(TAG_LEN);
        let authentic = self
            .tag(digest, compiled)
            .is_some_and(|mac| mac.verify_slice(tag).is_ok());
        if !authentic {
            return reject("authentication tag does not verify".into());
        }
        match deserialize(engine, compiled) {
            Ok(component) => Lookup::Hit(component),
            Err(error) => reject(format!("not loadable by this engine: {error}")),
        }
    }

    /// Stores `component` (best effort: a cache that cannot be written only costs compile time).
    pub(crate) fn put(&self, digest: &str, component: &Component) {
        let Ok(compiled) = component.serialize() else {
            return;
        };
        let Some(mac) = self.tag(digest, &compiled) else {
            return;
        };
        let mut entry = mac.finalize().into_bytes().to_vec();
        entry.extend_from_slice(&compiled);
        let path = self.path(digest);
        let temporary = path.with_extension("tmp");
        if std::fs::create_dir_all(&self.dir).is_ok() && std::fs::write(&temporary, entry).is_ok() {
            let _ = std::fs::rename(&temporary, &path);
        }
    }
}

/// Deserialises compiled code whose authenticity was just verified.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, compiled: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: wasmtime requires that the bytes were produced by `Component::serialize` of a
    // compatible engine and not altered since. The caller verified the HMAC-SHA256 over them
    // with this node's secret key, which only this node's zerofn holds and which it uses only
    // to tag bytes it serialised itself; wasmtime checks engine compatibility itself.
    unsafe { Component::deserialize(engine, compiled) }
}

/// The node's cache key in `path`: created (32 random bytes, mode 0600) when missing.
pub fn load_or_create_key(path: &Path) -> std::io::Result<[u8; 32]> {
    if let Ok(bytes) = std::fs::read(path) {
        return bytes.try_into().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} is not a 32-byte key; delete it to create a new one",
                    path.display()
                ),
            )
        });
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(&key)?;
    Ok(key)
}
