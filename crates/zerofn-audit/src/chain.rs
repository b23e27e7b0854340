//! The hash chain over audit events: each stored event carries
//! `SHA-256(previous hash || id as 8 bytes big-endian || event JSON)`, so that editing,
//! removing, inserting or reordering a stored event breaks every link after it. The first
//! chained event follows [`GENESIS`]; events stored before the chain existed have no hash.

use sha2::{Digest, Sha256};

/// The "previous hash" of the first chained event.
pub const GENESIS: [u8; 32] = [0; 32];

/// The link hash of the event stored as `id` with text `json`, after the event whose hash is
/// `previous`.
pub fn link_hash(previous: &[u8; 32], id: i64, json: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(id.to_be_bytes());
    hasher.update(json);
    hasher.finalize().into()
}

/// The end of the chain: the last stored event's id and hash. The writer appends after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    pub id: i64,
    pub hash: [u8; 32],
}

impl ChainHead {
    /// Where the writer continues in `store`: after the last stored event, with an id above
    /// every id the table ever gave (so that rows removed from the end show as a gap rather
    /// than being silently replaced). A last event without a hash (written before the chain
    /// existed) starts the chain afresh from [`GENESIS`].
    pub fn read(store: &zerofn_store::Store) -> Result<Self, zerofn_store::StoreError> {
        let tail = store.audit_tail()?;
        let last_id = tail.last_id.unwrap_or(0);
        let id = last_id.max(tail.highest_id_given.unwrap_or(0));
        let hash = tail
            .last_hash
            .as_deref()
            .and_then(|h| <[u8; 32]>::try_from(h).ok());
        if tail.last_id.is_some() && hash.is_none() {
            tracing::warn!(
                last_id,
                "the last audit event has no chain hash; the chain starts afresh after it"
            );
        }
        Ok(Self {
            id,
            hash: hash.unwrap_or(GENESIS),
        })
    }
}

/// The first 8 bytes of a hash in hex: enough to tell two hashes apart in a report.
pub(crate) fn short(hash: &[u8]) -> String {
    hex::encode(&hash[..hash.len().min(8)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_covers_the_previous_hash_the_id_and_the_text() {
        let base = link_hash(&GENESIS, 1, b"{}");
        assert_ne!(base, link_hash(&[1; 32], 1, b"{}"));
        assert_ne!(base, link_hash(&GENESIS, 2, b"{}"));
        assert_ne!(base, link_hash(&GENESIS, 1, b"{ }"));
        // The id is 8 bytes big-endian: the layout is fixed, so that anyone can recompute it.
        let mut manual = Sha256::new();
        manual.update([0u8; 32]);
        manual.update([0, 0, 0, 0, 0, 0, 0, 1]);
        manual.update(b"{}");
        assert_eq!(base, <[u8; 32]>::from(manual.finalize()));
    }
}
