//! Why a key, envelope or bundle was refused. Every variant says what to do about it.

/// A signing or verification failure.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// The PEM is not a key this crate reads.
    #[error(
        "not a usable key: {0} (expected a PKCS#8 PEM private key or SPKI PEM public key, ECDSA P-256 or Ed25519, as written by `zerofn keygen`)"
    )]
    MalformedKey(String),
    /// The private key is encrypted and no passphrase was given.
    #[error("the private key is encrypted: give its passphrase (--passphrase-file, or the prompt)")]
    PassphraseRequired,
    /// The passphrase does not decrypt the key.
    #[error("the passphrase does not decrypt this key")]
    WrongPassphrase,
    /// The system's random source failed.
    #[error("no randomness available: {0}")]
    Randomness(String),
    /// An envelope or bundle is not well formed.
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    /// No signature on the envelope was made by a trusted key.
    #[error("no signature was made by a trusted key (key ids on the envelope: {key_ids})")]
    UntrustedSigner { key_ids: String },
    /// A signature by a trusted key does not verify: the signed content was altered.
    #[error("the signature by key {key_id} does not verify: the signed content was altered")]
    BadSignature { key_id: String },
}
