//! Key pairs: generation, PKCS#8/SPKI PEM encoding (private keys optionally encrypted with a
//! passphrase, PBES2 with scrypt and AES-256-CBC), signing and verification.

use crate::SigningError;
use ed25519_dalek::pkcs8::spki::{DecodePublicKey, EncodePublicKey};
use pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The signature algorithms zerofn signs and verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// ECDSA over NIST P-256 with SHA-256; signatures are ASN.1 DER (as cosign writes them).
    EcdsaP256,
    /// Ed25519 (RFC 8032).
    Ed25519,
}

impl Algorithm {
    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ecdsa-p256",
            Self::Ed25519 => "ed25519",
        }
    }
}

impl std::str::FromStr for Algorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ecdsa-p256" | "p256" => Ok(Self::EcdsaP256),
            "ed25519" => Ok(Self::Ed25519),
            other => Err(format!(
                "unknown algorithm `{other}`: use `ecdsa-p256` or `ed25519`"
            )),
        }
    }
}

/// A private signing key.
pub enum PrivateKey {
    EcdsaP256(p256::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        write!(
            f,
            "PrivateKey({}, {})",
            self.algorithm().as_str(),
            self.public().key_id()
        )
    }
}

impl PrivateKey {
    /// A new random key from the operating system's random source.
    pub fn generate(algorithm: Algorithm) -> Result<Self, SigningError> {
        let mut secret = Zeroizing::new([0u8; 32]);
        loop {
            getrandom::fill(secret.as_mut_slice())
                .map_err(|e| SigningError::Randomness(e.to_string()))?;
            match algorithm {
                Algorithm::Ed25519 => {
                    return Ok(Self::Ed25519(ed25519_dalek::SigningKey::from_bytes(
                        &secret,
                    )));
                }
                // A random 256-bit string is a valid P-256 scalar except with negligible
                // probability; draw again in that case.
                Algorithm::EcdsaP256 => {
                    if let Ok(key) = p256::ecdsa::SigningKey::from_slice(secret.as_slice()) {
                        return Ok(Self::EcdsaP256(key));
                    }
                }
            }
        }
    }

    /// Reads a PKCS#8 PEM private key, encrypted or not.
    pub fn from_pem(pem: &str, passphrase: Option<&[u8]>) -> Result<Self, SigningError> {
        let encrypted = pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----");
        if encrypted {
            let Some(passphrase) = passphrase else {
                return Err(SigningError::PassphraseRequired);
            };
            if let Ok(key) = p256::ecdsa::SigningKey::from_pkcs8_encrypted_pem(pem, passphrase) {
                return Ok(Self::EcdsaP256(key));
            }
            if let Ok(key) = ed25519_dalek::SigningKey::from_pkcs8_encrypted_pem(pem, passphrase) {
                return Ok(Self::Ed25519(key));
            }
            return Err(SigningError::WrongPassphrase);
        }
        if let Ok(key) = p256::ecdsa::SigningKey::from_pkcs8_pem(pem) {
            return Ok(Self::EcdsaP256(key));
        }
        ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .map(Self::Ed25519)
            .map_err(|e| SigningError::MalformedKey(e.to_string()))
    }

    /// The key as PKCS#8 PEM, encrypted when a passphrase is given.
    pub fn to_pem(&self, passphrase: Option<&[u8]>) -> Result<Zeroizing<String>, SigningError> {
        let encoded = match (self, passphrase) {
            (Self::EcdsaP256(key), None) => key.to_pkcs8_pem(LineEnding::LF),
            (Self::EcdsaP256(key), Some(p)) => key.to_pkcs8_encrypted_pem(p, LineEnding::LF),
            (Self::Ed25519(key), None) => key.to_pkcs8_pem(LineEnding::LF),
            (Self::Ed25519(key), Some(p)) => key.to_pkcs8_encrypted_pem(p, LineEnding::LF),
        };
        encoded
            .map(|pem| Zeroizing::new(pem.to_string()))
            .map_err(|e| SigningError::MalformedKey(e.to_string()))
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::EcdsaP256(_) => Algorithm::EcdsaP256,
            Self::Ed25519(_) => Algorithm::Ed25519,
        }
    }

    /// Writes the key as PKCS#8 PEM to a new file (mode 0600 on Unix; never overwrites).
    pub fn write_pem_file(
        &self,
        path: &std::path::Path,
        passphrase: Option<&[u8]>,
    ) -> std::io::Result<()> {
        use std::io::Write;
        let pem = self
            .to_pem(passphrase)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        options.open(path)?.write_all(pem.as_bytes())
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        match self {
            Self::EcdsaP256(key) => PublicKey::EcdsaP256(*key.verifying_key()),
            Self::Ed25519(key) => PublicKey::Ed25519(key.verifying_key()),
        }
    }

    /// Signs `message` (ECDSA: deterministic, RFC 6979; the signature is ASN.1 DER).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        use p256::ecdsa::signature::Signer;
        match self {
            Self::EcdsaP256(key) => {
                let signature: p256::ecdsa::Signature = key.sign(message);
                signature.to_der().as_bytes().to_vec()
            }
            Self::Ed25519(key) => key.sign(message).to_bytes().to_vec(),
        }
    }
}

/// A public verification key.
#[derive(Clone, PartialEq, Eq)]
pub enum PublicKey {
    EcdsaP256(p256::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PublicKey({}, {})",
            self.algorithm().as_str(),
            self.key_id()
        )
    }
}

impl PublicKey {
    /// Reads an SPKI PEM public key (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_pem(pem: &str) -> Result<Self, SigningError> {
        if let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            return Ok(Self::EcdsaP256(key));
        }
        ed25519_dalek::VerifyingKey::from_public_key_pem(pem)
            .map(Self::Ed25519)
            .map_err(|e| SigningError::MalformedKey(e.to_string()))
    }

    /// The key as SPKI PEM.
    pub fn to_pem(&self) -> String {
        let encoded = match self {
            Self::EcdsaP256(key) => key.to_public_key_pem(LineEnding::LF),
            Self::Ed25519(key) => key.to_public_key_pem(LineEnding::LF),
        };
        // Encoding a valid in-memory key cannot fail; an empty string would fail to parse.
        encoded.unwrap_or_default()
    }

    fn spki_der(&self) -> Vec<u8> {
        let encoded = match self {
            Self::EcdsaP256(key) => key.to_public_key_der(),
            Self::Ed25519(key) => key.to_public_key_der(),
        };
        encoded
            .map(|doc| doc.as_bytes().to_vec())
            .unwrap_or_default()
    }

    /// The key id: lowercase hex SHA-256 of the DER SubjectPublicKeyInfo. Used as the DSSE
    /// `keyid` and the Sigstore bundle's `publicKey.hint`.
    pub fn key_id(&self) -> String {
        hex::encode(Sha256::digest(self.spki_der()))
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::EcdsaP256(_) => Algorithm::EcdsaP256,
            Self::Ed25519(_) => Algorithm::Ed25519,
        }
    }

    /// Whether `signature` is this key's signature over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        use p256::ecdsa::signature::Verifier;
        match self {
            Self::EcdsaP256(key) => p256::ecdsa::Signature::from_der(signature)
                .is_ok_and(|sig| key.verify(message, &sig).is_ok()),
            Self::Ed25519(key) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|sig| key.verify_strict(message, &sig).is_ok()),
        }
    }
}
