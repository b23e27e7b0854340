//! Envelope encryption for what zerofn keeps at rest (secrets, key-value data).
//!
//! Each item is encrypted with its own random data key (XChaCha20-Poly1305), and the data key
//! is wrapped by the node's current master key (XChaCha20-Poly1305 again). Both encryptions
//! authenticate a *context* string the caller chooses (`secret:shop/payments_key`), so a row
//! copied under another name does not open. Rotating the master key re-wraps the data keys
//! only: the items themselves are not re-encrypted.
//!
//! Master keys come from a key file (mode 0600, see [`key_file`]) or from the environment
//! ([`MasterKeySource`]). No I/O besides that; no hand-rolled cryptography: the RustCrypto
//! `chacha20poly1305` crate does the work, this crate arranges keys and formats.
//!
//! **Invariants:** key material lives in [`zeroize::Zeroizing`] buffers and is wiped when
//! dropped; plaintext returned by [`Keyring::open`] is too. A [`Sealed`] names the master key
//! that wrapped it, so a keyring holding the current and the previous keys opens both during a
//! rotation.

#![forbid(unsafe_code)]

mod error;
pub mod key_file;
mod keyring;

pub use error::VaultError;
pub use key_file::MasterKeySource;
pub use keyring::{Keyring, MasterKey, Sealed};
