//! Signed artifacts in the formats the supply-chain ecosystem already uses: key pairs (ECDSA
//! P-256 and Ed25519, PKCS#8 PEM, optionally passphrase-encrypted), DSSE envelopes (signatures
//! over the pre-authentication encoding, never the raw payload), in-toto Statements v1, and
//! Sigstore bundles v0.3 for key-pair signing.
//!
//! **Invariant:** nothing here hand-rolls cryptography. Signatures, key encodings and key
//! encryption come from the RustCrypto crates (`p256`, `ed25519-dalek`, `pkcs8`); this crate only
//! arranges bytes in the standard formats and checks them on the way back in.

#![forbid(unsafe_code)]

mod bundle;
mod dsse;
mod error;
mod keys;
mod statement;

pub use bundle::{BUNDLE_MEDIA_TYPE, Bundle, VerifiedBundle};
pub use dsse::{Envelope, EnvelopeSignature, pae};
pub use error::SigningError;
pub use keys::{Algorithm, PrivateKey, PublicKey};
pub use statement::{IN_TOTO_PAYLOAD_TYPE, STATEMENT_TYPE, Statement, Subject};
