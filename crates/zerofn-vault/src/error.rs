use std::path::PathBuf;

/// Why a key could not be loaded or an item could not be sealed or opened. No variant carries
/// key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The key file could not be read or written.
    #[error("master key file {}: {reason}", path.display())]
    KeyFile { path: PathBuf, reason: String },
    /// The key file is readable or writable by others than its owner.
    #[error(
        "master key file {} has mode {mode:o}: only its owner may read it; run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    KeyFilePermissions { path: PathBuf, mode: u32 },
    /// A key (in the file or the environment) is not in the `zmk1.<base64url>` form.
    #[error("{origin}: {reason}")]
    MalformedKey { origin: String, reason: String },
    /// No master key was configured where one was required.
    #[error("{0}")]
    NoKey(String),
    /// The item was wrapped by a master key this keyring does not hold.
    #[error(
        "the item was sealed under master key `{0}`, which this node does not hold: restore that key (as a previous key) to read it"
    )]
    UnknownMasterKey(String),
    /// Authentication failed: wrong key, wrong context or altered bytes.
    #[error("the sealed item does not open: it was altered, or belongs to another name")]
    Tampered,
    /// The operating system's random generator failed.
    #[error("no randomness available: {0}")]
    Random(String),
}
