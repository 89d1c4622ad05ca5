//! The one fingerprint: a 64-bit digest of "what was in force" (the rules,
//! a source's settings, a connector's read plan) that is stored beside what
//! it decided, so that a later run can tell whether it may reuse it.
//!
//! It must come out the same on every build and every machine, which rules
//! out `std`'s `DefaultHasher` (its algorithm may change between Rust
//! releases) and anything keyed at random. It is FNV-1a over a domain tag
//! and length-prefixed fields, so `("ab", "c")` and `("a", "bc")` differ and
//! two uses with different tags never collide by construction. It is not a
//! secret and not collision-resistant against an adversary: it tells apart
//! configs an administrator wrote, nothing more. What must not be guessable
//! (identifiers, pseudonyms) uses the keyed hash in [`crate::identity`].

/// FNV-1a's starting value.
const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a's multiplier.
const PRIME: u64 = 0x0100_0000_01b3;

/// A stable fingerprint being built. Each call absorbs one field.
///
/// ```
/// use tillsyn_core::fingerprint::Fingerprint;
/// let mut plan = Fingerprint::new("ldap plan");
/// plan.text("ou=people,dc=example,dc=org").text("(objectClass=person)");
/// assert_eq!(plan.hex().len(), 16);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(u64);

impl Fingerprint {
    /// A fingerprint for one purpose, named by `domain` (`"ldap plan"`,
    /// `"source settings"`): the same fields under another domain give
    /// another value.
    pub fn new(domain: &str) -> Fingerprint {
        let mut fingerprint = Fingerprint(OFFSET);
        fingerprint.text(domain);
        fingerprint
    }

    fn absorb(&mut self, bytes: &[u8]) {
        self.0 = bytes.iter().fold(self.0, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
        });
    }

    /// Absorb `bytes` as one field (its length first).
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Fingerprint {
        self.absorb(&(bytes.len() as u64).to_le_bytes());
        self.absorb(bytes);
        self
    }

    /// Absorb `text` as one field.
    pub fn text(&mut self, text: &str) -> &mut Fingerprint {
        self.bytes(text.as_bytes())
    }

    /// Absorb a number as one field.
    pub fn number(&mut self, number: u64) -> &mut Fingerprint {
        self.bytes(&number.to_le_bytes())
    }

    /// Absorb an optional text: `None` and `Some("")` differ.
    pub fn optional(&mut self, text: Option<&str>) -> &mut Fingerprint {
        match text {
            None => self.bytes(&[0]),
            Some(text) => self.bytes(&[1]).text(text),
        }
    }

    /// Absorb a list of texts: its length, then each.
    pub fn texts<'a>(&mut self, texts: impl IntoIterator<Item = &'a str>) -> &mut Fingerprint {
        let texts: Vec<&str> = texts.into_iter().collect();
        self.number(texts.len() as u64);
        for text in texts {
            self.text(text);
        }
        self
    }

    /// Absorb a value's `Debug` form: for config structs, whose derived
    /// `Debug` names every field, so any edit changes the fingerprint.
    pub fn debug(&mut self, value: &impl std::fmt::Debug) -> &mut Fingerprint {
        self.text(&format!("{value:?}"))
    }

    /// The fingerprint so far.
    pub fn value(&self) -> u64 {
        self.0
    }

    /// The fingerprint as 16 lower-case hex digits.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

/// A quick stable hash of `bytes` for in-memory slots: the fingerprint's
/// function with no domain and no framing.
pub fn quick(bytes: &[u8]) -> u64 {
    let mut fingerprint = Fingerprint(OFFSET);
    fingerprint.absorb(bytes);
    fingerprint.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_fixed_across_builds() {
        // FNV-1a test vectors: a change to the function shows here, and
        // would make every stored fingerprint stale.
        assert_eq!(quick(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(quick(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(quick(b"foobar"), 0x8594_4171_f739_67e8);
        let mut plan = Fingerprint::new("test");
        plan.text("a").number(7).optional(None);
        assert_eq!(plan.hex(), format!("{:016x}", plan.value()));
        let mut again = Fingerprint::new("test");
        again.text("a").number(7).optional(None);
        assert_eq!(plan, again);
    }

    #[test]
    fn fields_are_framed_and_domains_apart() {
        let of = |domain: &str, fields: &[&str]| {
            let mut fingerprint = Fingerprint::new(domain);
            fingerprint.texts(fields.iter().copied());
            fingerprint.value()
        };
        assert_ne!(of("x", &["ab", "c"]), of("x", &["a", "bc"]));
        assert_ne!(of("x", &["a"]), of("y", &["a"]));
        assert_ne!(of("x", &[]), of("x", &[""]));
        let mut none = Fingerprint::new("x");
        none.optional(None);
        let mut empty = Fingerprint::new("x");
        empty.optional(Some(""));
        assert_ne!(none, empty);
    }
}
