//! Master keys, and sealing and opening items under them.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::VaultError;

const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 24;
/// The textual form of a master key: `zmk1.` then the 32 bytes in unpadded base64url.
const KEY_PREFIX: &str = "zmk1.";
/// Domain separation: a wrapped data key never opens as an item, nor the reverse.
const WRAP_AAD: &[u8] = b"zerofn-vault/v1/data-key\0";
const DATA_AAD: &[u8] = b"zerofn-vault/v1/item\0";

/// One 256-bit master key and its public id.
pub struct MasterKey {
    id: String,
    key: Zeroizing<[u8; KEY_BYTES]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).finish()
    }
}

impl MasterKey {
    /// A new random key.
    pub fn generate() -> Result<Self, VaultError> {
        let mut key = Zeroizing::new([0u8; KEY_BYTES]);
        getrandom::fill(key.as_mut_slice()).map_err(|e| VaultError::Random(e.to_string()))?;
        Ok(Self::from_bytes(key))
    }

    /// Parses the `zmk1.<base64url>` form; `origin` says where it was read, for errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, VaultError> {
        let malformed = |reason: &str| VaultError::MalformedKey {
            origin: origin.to_string(),
            reason: reason.to_string(),
        };
        let encoded = text
            .trim()
            .strip_prefix(KEY_PREFIX)
            .ok_or_else(|| malformed("a master key starts with `zmk1.`"))?;
        let bytes = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(encoded)
                .map_err(|_| malformed("the key after `zmk1.` is not unpadded base64url"))?,
        );
        let mut key = Zeroizing::new([0u8; KEY_BYTES]);
        if bytes.len() != KEY_BYTES {
            return Err(malformed("a master key is 32 bytes"));
        }
        key.copy_from_slice(&bytes);
        Ok(Self::from_bytes(key))
    }

    fn from_bytes(key: Zeroizing<[u8; KEY_BYTES]>) -> Self {
        let digest = Sha256::new()
            .chain_update(b"zerofn master key id\0")
            .chain_update(key.as_slice())
            .finalize();
        MasterKey {
            id: hex_prefix(&digest),
            key,
        }
    }

    /// The key's id: 16 hex digits of a hash of it, safe to record and show.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The `zmk1.<base64url>` form, for the key file. Wiped when dropped.
    pub fn encode(&self) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "{KEY_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(self.key.as_slice())
        ))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&*self.key).into())
    }
}

fn hex_prefix(digest: &[u8]) -> String {
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// An encrypted item as stored: which master key wrapped its data key, the wrapped data key
/// (nonce then ciphertext) and the item (nonce then ciphertext).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub master_key_id: String,
    pub wrapped_key: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// The master keys a node holds: the current one, which seals, and any previous ones still
/// being retired, which only open.
#[derive(Debug)]
pub struct Keyring {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl Keyring {
    /// A keyring of `current` and the `previous` keys (ids equal to the current one's are
    /// dropped).
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> Self {
        let mut previous = previous;
        previous.retain(|key| key.id != current.id);
        Keyring { current, previous }
    }

    /// The key new items are sealed under.
    pub fn current(&self) -> &MasterKey {
        &self.current
    }

    /// The keys kept only to open items sealed before a rotation.
    pub fn previous(&self) -> &[MasterKey] {
        &self.previous
    }

    /// A keyring with a new random current key, keeping every key of this one as previous.
    pub fn rotated(&self) -> Result<Keyring, VaultError> {
        let mut previous = vec![self.current.clone_key()];
        previous.extend(self.previous.iter().map(MasterKey::clone_key));
        Ok(Keyring::new(MasterKey::generate()?, previous))
    }

    /// This keyring without its previous keys, once nothing is sealed under them any more.
    pub fn retired(&self) -> Keyring {
        Keyring::new(self.current.clone_key(), Vec::new())
    }

    /// Encrypts `plaintext` under a fresh data key bound to `context`.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Sealed, VaultError> {
        let data_key = Zeroizing::new(random::<KEY_BYTES>()?);
        let ciphertext = encrypt(
            &XChaCha20Poly1305::new((&*data_key).into()),
            DATA_AAD,
            context,
            plaintext,
        )?;
        let wrapped_key = encrypt(
            &self.current.cipher(),
            WRAP_AAD,
            context,
            data_key.as_slice(),
        )?;
        Ok(Sealed {
            master_key_id: self.current.id.clone(),
            wrapped_key,
            ciphertext,
        })
    }

    /// Decrypts `sealed`, which must have been sealed with the same `context`.
    pub fn open(&self, context: &str, sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let data_key = self.unwrap_data_key(context, sealed)?;
        let cipher =
            XChaCha20Poly1305::new_from_slice(&data_key).map_err(|_| VaultError::Tampered)?;
        decrypt(&cipher, DATA_AAD, context, &sealed.ciphertext)
    }

    /// `sealed` with its data key wrapped by the current master key, or `None` when it
    /// already is. The item's ciphertext is unchanged.
    pub fn rewrap(&self, context: &str, sealed: &Sealed) -> Result<Option<Sealed>, VaultError> {
        if sealed.master_key_id == self.current.id {
            return Ok(None);
        }
        let data_key = self.unwrap_data_key(context, sealed)?;
        let wrapped_key = encrypt(&self.current.cipher(), WRAP_AAD, context, &data_key)?;
        Ok(Some(Sealed {
            master_key_id: self.current.id.clone(),
            wrapped_key,
            ciphertext: sealed.ciphertext.clone(),
        }))
    }

    fn unwrap_data_key(
        &self,
        context: &str,
        sealed: &Sealed,
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let master = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|key| key.id == sealed.master_key_id)
            .ok_or_else(|| VaultError::UnknownMasterKey(sealed.master_key_id.clone()))?;
        let data_key = decrypt(&master.cipher(), WRAP_AAD, context, &sealed.wrapped_key)?;
        if data_key.len() != KEY_BYTES {
            return Err(VaultError::Tampered);
        }
        Ok(data_key)
    }
}

impl MasterKey {
    fn clone_key(&self) -> MasterKey {
        MasterKey {
            id: self.id.clone(),
            key: self.key.clone(),
        }
    }
}

fn random<const N: usize>() -> Result<[u8; N], VaultError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| VaultError::Random(e.to_string()))?;
    Ok(bytes)
}

fn aad(domain: &[u8], context: &str) -> Vec<u8> {
    [domain, context.as_bytes()].concat()
}

fn encrypt(
    cipher: &XChaCha20Poly1305,
    domain: &[u8],
    context: &str,
    plaintext: &[u8],
) -> Result<Vec<u8>, VaultError> {
    let nonce = random::<NONCE_BYTES>()?;
    let aad = aad(domain, context);
    let ciphertext = cipher
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| VaultError::Tampered)?;
    Ok([nonce.as_slice(), &ciphertext].concat())
}

fn decrypt(
    cipher: &XChaCha20Poly1305,
    domain: &[u8],
    context: &str,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    let (nonce, ciphertext) = sealed
        .split_at_checked(NONCE_BYTES)
        .ok_or(VaultError::Tampered)?;
    let nonce = XNonce::try_from(nonce).map_err(|_| VaultError::Tampered)?;
    let aad = aad(domain, context);
    cipher
        .decrypt(
            &nonce,
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| VaultError::Tampered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Keyring {
        Keyring::new(MasterKey::generate().unwrap(), Vec::new())
    }

    #[test]
    fn seals_and_opens_under_its_context_only() {
        let ring = ring();
        let sealed = ring.seal("secret:shop/key", b"hunter2").unwrap();
        assert_eq!(
            ring.open("secret:shop/key", &sealed).unwrap().as_slice(),
            b"hunter2"
        );
        assert!(!sealed.ciphertext.windows(7).any(|w| w == b"hunter2"));
        assert!(matches!(
            ring.open("secret:shop/other", &sealed),
            Err(VaultError::Tampered)
        ));
    }

    #[test]
    fn each_item_gets_its_own_data_key_and_nonces() {
        let ring = ring();
        let a = ring.seal("c", b"same").unwrap();
        let b = ring.seal("c", b"same").unwrap();
        assert_ne!(a.wrapped_key, b.wrapped_key);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn altered_bytes_do_not_open() {
        let ring = ring();
        let sealed = ring.seal("c", b"value").unwrap();
        for index in 0..sealed.ciphertext.len() {
            let mut bad = sealed.clone();
            bad.ciphertext[index] ^= 1;
            assert!(matches!(ring.open("c", &bad), Err(VaultError::Tampered)));
        }
        let mut bad = sealed.clone();
        bad.wrapped_key[30] ^= 0x80;
        assert!(matches!(ring.open("c", &bad), Err(VaultError::Tampered)));
        let mut short = sealed;
        short.ciphertext.truncate(10);
        assert!(matches!(ring.open("c", &short), Err(VaultError::Tampered)));
    }

    #[test]
    fn a_data_key_never_opens_as_an_item() {
        let ring = ring();
        let sealed = ring.seal("c", b"value").unwrap();
        let swapped = Sealed {
            ciphertext: sealed.wrapped_key.clone(),
            ..sealed
        };
        assert!(ring.open("c", &swapped).is_err());
    }

    #[test]
    fn rotation_rewraps_data_keys_and_keeps_items() {
        let old = ring();
        let sealed = old.seal("c", b"value").unwrap();
        let new = old.rotated().unwrap();
        assert_ne!(new.current().id(), old.current().id());
        assert_eq!(new.open("c", &sealed).unwrap().as_slice(), b"value");
        let rewrapped = new.rewrap("c", &sealed).unwrap().unwrap();
        assert_eq!(rewrapped.master_key_id, new.current().id());
        assert_eq!(rewrapped.ciphertext, sealed.ciphertext);
        assert!(new.rewrap("c", &rewrapped).unwrap().is_none());
        let retired = new.retired();
        assert_eq!(retired.open("c", &rewrapped).unwrap().as_slice(), b"value");
        assert!(matches!(
            retired.open("c", &sealed),
            Err(VaultError::UnknownMasterKey(id)) if id == old.current().id()
        ));
    }

    #[test]
    fn keys_round_trip_through_their_text_form_and_bad_text_is_refused() {
        let key = MasterKey::generate().unwrap();
        let parsed = MasterKey::parse(&key.encode(), "test").unwrap();
        assert_eq!(parsed.id(), key.id());
        for bad in [
            "",
            "zmk1.",
            "zmk2.AAAA",
            "zmk1.not base64!",
            "zmk1.AAAA",
            &format!("zmk1.{}", URL_SAFE_NO_PAD.encode([0u8; 33])),
        ] {
            let error = MasterKey::parse(bad, "ZEROFN_MASTER_KEY").unwrap_err();
            assert!(
                error.to_string().starts_with("ZEROFN_MASTER_KEY: "),
                "{error}"
            );
        }
        assert!(!format!("{key:?}").contains(&key.encode()[5..]));
    }
}
