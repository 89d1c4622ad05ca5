//! Keyed hashes of identifiers (a personnummer, an e-mail address, a phone
//! number), the only form in which tillsyn keeps what identifies a person.
//!
//! An identifier is normalised first (by its detector: 12-digit personnummer,
//! lower-case e-mail, E.164 phone) and hashed with HMAC-SHA-256 under the
//! pseudonym key, with its kind in the message, and cut to 128 bits. Without
//! the key nobody can test whether a given person is in the store; with it,
//! they can, which is what `tillsyn subject` is for. The plain value is dropped
//! where it was found: it never travels further than the connector.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Secret;

/// The keyed hash of one identifier.
pub type IdentityHash = [u8; 16];

/// Hashes identifiers under the pseudonym key. `Debug` shows no key.
#[derive(Clone)]
pub struct IdentityKey {
    /// HMAC with the key already absorbed: each hash starts from a copy.
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentityKey(**REDACTED**)")
    }
}

impl IdentityKey {
    /// A hasher under `key` (the pseudonym key).
    pub fn new(key: Secret) -> IdentityKey {
        // HMAC takes keys of any length: the fallback cannot happen.
        let keyed = Hmac::<Sha256>::new_from_slice(key.expose())
            .unwrap_or_else(|_| <Hmac<Sha256> as hmac::digest::KeyInit>::new(&Default::default()));
        IdentityKey { keyed }
    }

    /// The keyed hash of `normalised`, an identifier of `kind` (a detector's
    /// name: `personnummer`, `email`, `phone`, …) in its canonical form.
    pub fn hash(&self, kind: &str, normalised: &str) -> IdentityHash {
        let mut hash = [0u8; 16];
        let mut mac = self.keyed.clone();
        // Domain-separated from the custodian pseudonyms made with the same key.
        mac.update(b"tillsyn identity\0");
        mac.update(kind.as_bytes());
        mac.update(b"\0");
        mac.update(normalised.as_bytes());
        let full = mac.finalize().into_bytes();
        hash.copy_from_slice(&full[..16]);
        hash
    }
}

/// A hash as 32 lower-case hex digits (for text, such as the share's content
/// cache).
pub fn to_hex(hash: &IdentityHash) -> String {
    hash.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// 32 hex digits back into a hash; `None` for anything else.
pub fn from_hex(text: &str) -> Option<IdentityHash> {
    if text.len() != 32 || !text.is_ascii() {
        return None;
    }
    let mut hash = [0u8; 16];
    for (index, byte) in hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(index * 2..index * 2 + 2)?, 16).ok()?;
    }
    Some(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_keyed_kind_separated_and_round_trip_as_hex() {
        let key = IdentityKey::new(Secret::new(vec![7; 32]));
        let other = IdentityKey::new(Secret::new(vec![8; 32]));
        let hash = key.hash("personnummer", "198112189876");
        assert_eq!(hash, key.hash("personnummer", "198112189876"));
        assert_ne!(hash, other.hash("personnummer", "198112189876"));
        assert_ne!(hash, key.hash("phone", "198112189876"));
        assert_ne!(hash, key.hash("personnummer", "198112189875"));
        assert_eq!(from_hex(&to_hex(&hash)), Some(hash));
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex(&"g".repeat(32)), None);
        assert!(!format!("{key:?}").contains('7'));
    }
}
