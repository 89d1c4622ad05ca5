//! One entry of the index (an identifier's keyed hash and where it was
//! found), and its encodings: staged (as a scan holds it) and front-coded
//! (as a segment stores it). What does not decode is an error, never a panic.

use std::cmp::Ordering;

use crate::{IdentityRow, StoreError};
use tillsyn_core::identity::IdentityHash;
use tillsyn_rules::identity::NewIdentity;

pub(super) fn corrupt() -> StoreError {
    StoreError::Corrupt("an identity index segment does not decode".to_owned())
}

/// One entry, as decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry<'a> {
    pub hash: IdentityHash,
    pub kind: &'a str,
    pub field: &'a str,
    pub record_id: &'a str,
    pub record_path: &'a str,
    pub record_kind: &'a str,
    pub container: &'a str,
    pub record_time: Option<i64>,
}

impl Entry<'_> {
    /// The entry as the store answers a lookup.
    pub fn row(&self, source: &str) -> IdentityRow {
        IdentityRow {
            source: source.to_owned(),
            kind: self.kind.to_owned(),
            field: self.field.to_owned(),
            record_id: self.record_id.to_owned(),
            record_path: self.record_path.to_owned(),
            record_kind: self.record_kind.to_owned(),
            container: self.container.to_owned(),
            record_time: self.record_time.map(crate::to_time),
        }
    }

    /// What makes an entry the same as another: its hash, kind, field and
    /// record. Ordered as staged entries are (strings by length, then bytes).
    pub(super) fn identity_order(&self, other: &Entry<'_>) -> Ordering {
        let by_length = |a: &str, b: &str| a.len().cmp(&b.len()).then_with(|| a.cmp(b));
        self.hash
            .cmp(&other.hash)
            .then_with(|| by_length(self.kind, other.kind))
            .then_with(|| by_length(self.field, other.field))
            .then_with(|| by_length(self.record_id, other.record_id))
    }
}

/// An entry as bytes, for writing segments: decoded from staged rows
/// without a UTF-8 check (they were `&str` when staged), or taken from an
/// [`Entry`].
#[derive(Debug, Clone, Copy)]
pub(super) struct RawEntry<'a> {
    pub(super) hash: IdentityHash,
    pub(super) kind: &'a [u8],
    pub(super) field: &'a [u8],
    pub(super) record_id: &'a [u8],
    pub(super) record_path: &'a [u8],
    pub(super) record_kind: &'a [u8],
    pub(super) container: &'a [u8],
    pub(super) record_time: Option<i64>,
}

impl<'a> Entry<'a> {
    pub(super) fn raw(&self) -> RawEntry<'a> {
        RawEntry {
            hash: self.hash,
            kind: self.kind.as_bytes(),
            field: self.field.as_bytes(),
            record_id: self.record_id.as_bytes(),
            record_path: self.record_path.as_bytes(),
            record_kind: self.record_kind.as_bytes(),
            container: self.container.as_bytes(),
            record_time: self.record_time,
        }
    }
}

/// An entry with its own strings (for merging runs).
#[derive(Debug, Clone, Default)]
pub(super) struct OwnedEntry {
    pub(super) hash: IdentityHash,
    pub(super) kind: String,
    pub(super) field: String,
    pub(super) record_id: String,
    pub(super) record_path: String,
    pub(super) record_kind: String,
    pub(super) container: String,
    pub(super) record_time: Option<i64>,
}

impl OwnedEntry {
    #[cfg(test)]
    pub(super) fn new(entry: &Entry<'_>) -> OwnedEntry {
        OwnedEntry {
            hash: entry.hash,
            kind: entry.kind.to_owned(),
            field: entry.field.to_owned(),
            record_id: entry.record_id.to_owned(),
            record_path: entry.record_path.to_owned(),
            record_kind: entry.record_kind.to_owned(),
            container: entry.container.to_owned(),
            record_time: entry.record_time,
        }
    }

    pub(super) fn view(&self) -> Entry<'_> {
        Entry {
            hash: self.hash,
            kind: &self.kind,
            field: &self.field,
            record_id: &self.record_id,
            record_path: &self.record_path,
            record_kind: &self.record_kind,
            container: &self.container,
            record_time: self.record_time,
        }
    }
}

// ---- The staged form: self-contained entries, sortable as bytes. ----
//
// hash (16), then kind, field and record id each as a 4-byte big-endian
// length and the bytes (so that sorting the bytes sorts by hash, kind, field
// and record), then a flags byte, the time (8 bytes, when flagged), the
// record path (unless it is the id), record kind and container.

pub(super) const HAS_TIME: u8 = 1;
pub(super) const PATH_IS_ID: u8 = 2;
pub(super) const NEW_KIND: u8 = 4;
pub(super) const NEW_FIELD: u8 = 8;
pub(super) const NEW_RECORD_KIND: u8 = 16;
pub(super) const NEW_CONTAINER: u8 = 32;

pub(super) fn put_long_str(out: &mut Vec<u8>, text: &str) {
    // Record ids and paths are far below 4 GiB; a longer one is cut, at a
    // character boundary.
    let mut end = text.len().min(u32::MAX as usize);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u32).to_be_bytes());
    out.extend_from_slice(&text.as_bytes()[..end]);
}

pub(super) fn encode_staged(identity: &NewIdentity<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(&identity.hash);
    put_long_str(out, identity.kind);
    put_long_str(out, identity.field);
    put_long_str(out, identity.record_id);
    let mut flags = 0;
    if identity.record_time.is_some() {
        flags |= HAS_TIME;
    }
    if identity.record_path == identity.record_id {
        flags |= PATH_IS_ID;
    }
    out.push(flags);
    if let Some(time) = identity.record_time {
        out.extend_from_slice(&time.to_le_bytes());
    }
    if flags & PATH_IS_ID == 0 {
        put_long_str(out, identity.record_path);
    }
    put_long_str(out, identity.record_kind);
    put_long_str(out, identity.container);
}

/// A cursor over encoded bytes.
pub(super) struct Bytes<'a> {
    pub(super) data: &'a [u8],
    pub(super) at: usize,
}

impl<'a> Bytes<'a> {
    pub(super) fn take(&mut self, count: usize) -> Result<&'a [u8], StoreError> {
        let end = self.at.checked_add(count).ok_or_else(corrupt)?;
        let bytes = self.data.get(self.at..end).ok_or_else(corrupt)?;
        self.at = end;
        Ok(bytes)
    }

    pub(super) fn byte(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }

    pub(super) fn hash(&mut self) -> Result<IdentityHash, StoreError> {
        let mut hash = [0u8; 16];
        hash.copy_from_slice(self.take(16)?);
        Ok(hash)
    }

    pub(super) fn long_bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let mut length = [0u8; 4];
        length.copy_from_slice(self.take(4)?);
        self.take(u32::from_be_bytes(length) as usize)
    }

    pub(super) fn varint(&mut self) -> Result<u64, StoreError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(corrupt())
    }

    pub(super) fn short_str(&mut self) -> Result<&'a str, StoreError> {
        let length = usize::try_from(self.varint()?).map_err(|_| corrupt())?;
        std::str::from_utf8(self.take(length)?).map_err(|_| corrupt())
    }
}

pub(super) fn decode_staged(raw: &[u8]) -> Result<RawEntry<'_>, StoreError> {
    let mut bytes = Bytes { data: raw, at: 0 };
    let hash = bytes.hash()?;
    let kind = bytes.long_bytes()?;
    let field = bytes.long_bytes()?;
    let record_id = bytes.long_bytes()?;
    let flags = bytes.byte()?;
    let record_time = if flags & HAS_TIME != 0 {
        let mut time = [0u8; 8];
        time.copy_from_slice(bytes.take(8)?);
        Some(i64::from_le_bytes(time))
    } else {
        None
    };
    let record_path = if flags & PATH_IS_ID != 0 {
        record_id
    } else {
        bytes.long_bytes()?
    };
    Ok(RawEntry {
        hash,
        kind,
        field,
        record_id,
        record_path,
        record_kind: bytes.long_bytes()?,
        container: bytes.long_bytes()?,
        record_time,
    })
}

/// The length of the identity part of a staged entry (hash, kind, field,
/// record id): entries equal there are one.
pub(super) fn staged_identity(raw: &[u8]) -> &[u8] {
    let mut at = 16;
    for _ in 0..3 {
        let Some(length) = raw.get(at..at + 4) else {
            return raw;
        };
        let mut bytes = [0u8; 4];
        bytes.copy_from_slice(length);
        at += 4 + u32::from_be_bytes(bytes) as usize;
    }
    raw.get(..at).unwrap_or(raw)
}

// ---- The segment form: front-coded. ----

pub(super) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

pub(super) fn put_short_bytes(out: &mut Vec<u8>, text: &[u8]) {
    put_varint(out, text.len() as u64);
    out.extend_from_slice(text);
}

/// The bytes UTF-8 texts `a` and `b` share at their start, ending at a
/// character boundary (not before a continuation byte).
pub(super) fn shared_prefix(a: &[u8], b: &[u8]) -> usize {
    let mut shared = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    while shared > 0 && a.get(shared).is_some_and(|byte| byte & 0xc0 == 0x80) {
        shared -= 1;
    }
    shared
}
