//! How the identity index is kept: in sorted runs of compact segments, not
//! one SQLite row per occurrence.
//!
//! - **Staging.** A scan's rows are held encoded in one buffer
//!   ([`IdentityBatch`]) until the scan finishes; past [`SPILL_BYTES`] they
//!   are sorted and spilled to a temporary table as a run of their own.
//! - **Runs and segments.** A finishing scan writes its rows sorted by hash as
//!   a *run*: a few SQLite rows (segments), each holding the entries of one
//!   hash range. A run of n entries splits the hash space into 2^b ranges
//!   (b ≤ 12) so that a segment holds about [`SEGMENT_ENTRIES`]: 200,000
//!   entries make 1,024 rows, ten make one.
//! - **Lookup.** A hash lies in one range per granularity, so a lookup asks
//!   for 13 keys and walks the few segments found; entries are sorted, so it
//!   stops at the first larger hash.
//! - **Following the records.** A complete scan's run replaces the source's
//!   older ones. Where a scan read incrementally or could not read, older
//!   runs are kept, less the entries of records gone. Past [`MAX_RUNS`] runs
//!   a source's small runs are merged (into the largest too, once they add up
//!   to a quarter of it), streaming, so lookups read a bounded number of rows
//!   and merging costs stay proportional to what changed.
//!
//! Segment entries are front-coded: a kind, field, record kind or container
//! the same as the previous entry's is not written again, and a record id or
//! path shares its prefix with the previous one's. A segment starts afresh,
//! so each decodes alone. Whatever does not decode is an error, never a panic.

use std::cmp::Ordering;
use std::collections::HashMap;

use super::db::{Database, Value};
use tillsyn_core::identity::IdentityHash;

use super::{IdentityRow, StoreError};
use tillsyn_rules::identity::NewIdentity;

/// Encoded bytes a running scan holds in memory before it spills them.
const SPILL_BYTES: usize = 32 << 20;

/// Entries a segment holds, about (a run's granularity is chosen for it).
const SEGMENT_ENTRIES: usize = 256;

/// Bits of the hash that key the finest segments.
const KEY_BITS: u32 = 12;

/// Runs a source keeps before its small ones are merged.
pub(super) const MAX_RUNS: i64 = 4;

/// The first [`KEY_BITS`] bits of a hash.
fn prefix(hash: &IdentityHash) -> i64 {
    (i64::from(hash[0]) << 4) | (i64::from(hash[1]) >> 4)
}

/// The key of the segment holding `hash` in a run split into `2^bits` ranges.
fn key(hash: &IdentityHash, bits: u32) -> i64 {
    (i64::from(bits) << KEY_BITS) | (prefix(hash) >> (KEY_BITS - bits))
}

/// The granularity for a run of `entries`.
fn bits_for(entries: usize) -> u32 {
    let ranges = entries.div_ceil(SEGMENT_ENTRIES).max(1);
    ranges.next_power_of_two().trailing_zeros().min(KEY_BITS)
}

fn corrupt() -> StoreError {
    StoreError::Corrupt("an identity index segment does not decode".to_owned())
}

/// One entry, as decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry<'a> {
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
            record_time: self.record_time.map(super::to_time),
        }
    }

    /// What makes an entry the same as another: its hash, kind, field and
    /// record. Ordered as staged entries are (strings by length, then bytes).
    fn identity_order(&self, other: &Entry<'_>) -> Ordering {
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
struct RawEntry<'a> {
    hash: IdentityHash,
    kind: &'a [u8],
    field: &'a [u8],
    record_id: &'a [u8],
    record_path: &'a [u8],
    record_kind: &'a [u8],
    container: &'a [u8],
    record_time: Option<i64>,
}

impl<'a> Entry<'a> {
    fn raw(&self) -> RawEntry<'a> {
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
#[derive(Debug, Clone)]
struct OwnedEntry {
    hash: IdentityHash,
    kind: String,
    field: String,
    record_id: String,
    record_path: String,
    record_kind: String,
    container: String,
    record_time: Option<i64>,
}

impl OwnedEntry {
    fn new(entry: &Entry<'_>) -> OwnedEntry {
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

    fn view(&self) -> Entry<'_> {
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

const HAS_TIME: u8 = 1;
const PATH_IS_ID: u8 = 2;
const NEW_KIND: u8 = 4;
const NEW_FIELD: u8 = 8;
const NEW_RECORD_KIND: u8 = 16;
const NEW_CONTAINER: u8 = 32;

fn put_long_str(out: &mut Vec<u8>, text: &str) {
    // Record ids and paths are far below 4 GiB; a longer one is cut, at a
    // character boundary.
    let mut end = text.len().min(u32::MAX as usize);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u32).to_be_bytes());
    out.extend_from_slice(&text.as_bytes()[..end]);
}

fn encode_staged(identity: &NewIdentity<'_>, out: &mut Vec<u8>) {
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
struct Bytes<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Bytes<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], StoreError> {
        let end = self.at.checked_add(count).ok_or_else(corrupt)?;
        let bytes = self.data.get(self.at..end).ok_or_else(corrupt)?;
        self.at = end;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }

    fn hash(&mut self) -> Result<IdentityHash, StoreError> {
        let mut hash = [0u8; 16];
        hash.copy_from_slice(self.take(16)?);
        Ok(hash)
    }

    fn long_bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let mut length = [0u8; 4];
        length.copy_from_slice(self.take(4)?);
        self.take(u32::from_be_bytes(length) as usize)
    }

    fn varint(&mut self) -> Result<u64, StoreError> {
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

    fn short_str(&mut self) -> Result<&'a str, StoreError> {
        let length = usize::try_from(self.varint()?).map_err(|_| corrupt())?;
        std::str::from_utf8(self.take(length)?).map_err(|_| corrupt())
    }

    fn done(&self) -> bool {
        self.at >= self.data.len()
    }
}

fn decode_staged(raw: &[u8]) -> Result<RawEntry<'_>, StoreError> {
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
fn staged_identity(raw: &[u8]) -> &[u8] {
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

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
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

fn put_short_bytes(out: &mut Vec<u8>, text: &[u8]) {
    put_varint(out, text.len() as u64);
    out.extend_from_slice(text);
}

/// The bytes UTF-8 texts `a` and `b` share at their start, ending at a
/// character boundary (not before a continuation byte).
fn shared_prefix(a: &[u8], b: &[u8]) -> usize {
    let mut shared = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    while shared > 0 && a.get(shared).is_some_and(|byte| byte & 0xc0 == 0x80) {
        shared -= 1;
    }
    shared
}

/// Writes one segment's entries, front-coded.
#[derive(Debug, Default)]
struct SegmentWriter {
    data: Vec<u8>,
    count: i64,
    kind: Vec<u8>,
    field: Vec<u8>,
    record_kind: Vec<u8>,
    container: Vec<u8>,
    record_id: Vec<u8>,
    record_path: Vec<u8>,
}

/// Make `held` a copy of `new`, reusing its room.
fn remember(held: &mut Vec<u8>, new: &[u8]) {
    held.clear();
    held.extend_from_slice(new);
}

impl SegmentWriter {
    fn push(&mut self, entry: &RawEntry<'_>) {
        let first = self.count == 0;
        let mut flags = 0;
        if entry.record_time.is_some() {
            flags |= HAS_TIME;
        }
        if entry.record_path == entry.record_id {
            flags |= PATH_IS_ID;
        }
        for (bit, new, previous) in [
            (NEW_KIND, entry.kind, &self.kind),
            (NEW_FIELD, entry.field, &self.field),
            (NEW_RECORD_KIND, entry.record_kind, &self.record_kind),
            (NEW_CONTAINER, entry.container, &self.container),
        ] {
            if first || new != previous.as_slice() {
                flags |= bit;
            }
        }
        self.data.extend_from_slice(&entry.hash);
        self.data.push(flags);
        if let Some(time) = entry.record_time {
            put_varint(&mut self.data, ((time << 1) ^ (time >> 63)) as u64);
        }
        if flags & NEW_KIND != 0 {
            put_short_bytes(&mut self.data, entry.kind);
            remember(&mut self.kind, entry.kind);
        }
        if flags & NEW_FIELD != 0 {
            put_short_bytes(&mut self.data, entry.field);
            remember(&mut self.field, entry.field);
        }
        let shared = shared_prefix(entry.record_id, &self.record_id);
        put_varint(&mut self.data, shared as u64);
        put_short_bytes(&mut self.data, &entry.record_id[shared..]);
        if flags & PATH_IS_ID == 0 {
            let shared = shared_prefix(entry.record_path, &self.record_path);
            put_varint(&mut self.data, shared as u64);
            put_short_bytes(&mut self.data, &entry.record_path[shared..]);
        }
        remember(&mut self.record_id, entry.record_id);
        remember(&mut self.record_path, entry.record_path);
        if flags & NEW_RECORD_KIND != 0 {
            put_short_bytes(&mut self.data, entry.record_kind);
            remember(&mut self.record_kind, entry.record_kind);
        }
        if flags & NEW_CONTAINER != 0 {
            put_short_bytes(&mut self.data, entry.container);
            remember(&mut self.container, entry.container);
        }
        self.count += 1;
    }

    /// The segment so far, and a fresh start (the next entry is coded
    /// against nothing before it).
    fn take(&mut self) -> (i64, Vec<u8>) {
        let taken = (self.count, std::mem::take(&mut self.data));
        self.count = 0;
        self.record_id.clear();
        self.record_path.clear();
        taken
    }
}

/// Reads one segment's entries.
struct SegmentReader<'a> {
    bytes: Bytes<'a>,
    kind: &'a str,
    field: &'a str,
    record_kind: &'a str,
    container: &'a str,
    record_id: String,
    record_path: String,
}

impl<'a> SegmentReader<'a> {
    fn new(data: &'a [u8]) -> SegmentReader<'a> {
        SegmentReader {
            bytes: Bytes { data, at: 0 },
            kind: "",
            field: "",
            record_kind: "",
            container: "",
            record_id: String::new(),
            record_path: String::new(),
        }
    }

    /// Apply a shared prefix and suffix to `text`.
    fn front_coded(bytes: &mut Bytes<'a>, text: &mut String) -> Result<(), StoreError> {
        let shared = usize::try_from(bytes.varint()?).map_err(|_| corrupt())?;
        if shared > text.len() || !text.is_char_boundary(shared) {
            return Err(corrupt());
        }
        text.truncate(shared);
        text.push_str(bytes.short_str()?);
        Ok(())
    }

    /// The next entry, `None` at the end.
    fn next_entry(&mut self) -> Result<Option<Entry<'_>>, StoreError> {
        if self.bytes.done() {
            return Ok(None);
        }
        let first = self.bytes.at == 0;
        let hash = self.bytes.hash()?;
        let flags = self.bytes.byte()?;
        let all_new = NEW_KIND | NEW_FIELD | NEW_RECORD_KIND | NEW_CONTAINER;
        if first && flags & all_new != all_new {
            return Err(corrupt());
        }
        let record_time = if flags & HAS_TIME != 0 {
            let zigzag = self.bytes.varint()?;
            Some((zigzag >> 1) as i64 ^ -((zigzag & 1) as i64))
        } else {
            None
        };
        if flags & NEW_KIND != 0 {
            self.kind = self.bytes.short_str()?;
        }
        if flags & NEW_FIELD != 0 {
            self.field = self.bytes.short_str()?;
        }
        Self::front_coded(&mut self.bytes, &mut self.record_id)?;
        if flags & PATH_IS_ID == 0 {
            Self::front_coded(&mut self.bytes, &mut self.record_path)?;
        } else {
            self.record_path.clear();
            self.record_path.push_str(&self.record_id);
        }
        if flags & NEW_RECORD_KIND != 0 {
            self.record_kind = self.bytes.short_str()?;
        }
        if flags & NEW_CONTAINER != 0 {
            self.container = self.bytes.short_str()?;
        }
        Ok(Some(Entry {
            hash,
            kind: self.kind,
            field: self.field,
            record_id: &self.record_id,
            record_path: &self.record_path,
            record_kind: self.record_kind,
            container: self.container,
            record_time,
        }))
    }
}

/// Every entry of a segment, owned (for merging and tests).
fn owned_entries(data: &[u8]) -> Result<Vec<OwnedEntry>, StoreError> {
    let mut reader = SegmentReader::new(data);
    let mut entries = Vec::new();
    while let Some(entry) = reader.next_entry()? {
        entries.push(OwnedEntry::new(&entry));
    }
    Ok(entries)
}

/// Where a run's segments go: `(key, entries, data)`.
type SegmentSink<'w> = Box<dyn FnMut(i64, i64, &[u8]) -> Result<(), StoreError> + 'w>;

/// Split entries in hash order into segments at `bits`' granularity, handing
/// each to `write`.
struct RunWriter<'w> {
    bits: u32,
    key: Option<i64>,
    segment: SegmentWriter,
    write: SegmentSink<'w>,
}

impl<'w> RunWriter<'w> {
    fn new(
        entries: usize,
        write: impl FnMut(i64, i64, &[u8]) -> Result<(), StoreError> + 'w,
    ) -> RunWriter<'w> {
        RunWriter {
            bits: bits_for(entries),
            key: None,
            segment: SegmentWriter::default(),
            write: Box::new(write),
        }
    }

    fn push(&mut self, entry: &RawEntry<'_>) -> Result<(), StoreError> {
        let key = key(&entry.hash, self.bits);
        if self.key != Some(key) {
            self.flush()?;
            self.key = Some(key);
        }
        self.segment.push(entry);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        if let Some(key) = self.key
            && self.segment.count > 0
        {
            let (count, data) = self.segment.take();
            (self.write)(key, count, &data)?;
        }
        Ok(())
    }
}

/// Identity rows encoded as the index stages them, until they are written:
/// one buffer, not a few strings per row.
#[derive(Debug, Default)]
pub struct IdentityBatch {
    bytes: Vec<u8>,
    /// Start and end in `bytes` of each entry.
    spans: Vec<(usize, usize)>,
}

impl IdentityBatch {
    /// Add `identity`.
    pub fn push(&mut self, identity: &NewIdentity<'_>) {
        let start = self.bytes.len();
        encode_staged(identity, &mut self.bytes);
        self.spans.push((start, self.bytes.len()));
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether it holds no row.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

/// The places (folders, directories) whose records the index holds: a
/// record's parent path, or a folder's own. When a scan keeps everything in
/// each of a source's places, its older entries need not be read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Places {
    held: std::collections::BTreeSet<String>,
    last: Vec<u8>,
}

impl Places {
    fn add(&mut self, entry: &RawEntry<'_>) {
        let place = if entry.record_kind == b"folder" {
            entry.record_path
        } else {
            entry
                .record_path
                .iter()
                .rposition(|byte| *byte == b'/')
                .map_or(&[][..], |slash| &entry.record_path[..slash])
        };
        if place != self.last.as_slice() {
            self.last.clear();
            self.last.extend_from_slice(place);
            self.held
                .insert(String::from_utf8_lossy(place).into_owned());
        }
    }

    /// Every place held.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.held.iter().map(String::as_str)
    }
}

/// A scan's staged rows: the batches handed over, kept as they came.
#[derive(Debug, Default)]
struct Staged {
    batches: Vec<IdentityBatch>,
    bytes: usize,
    entries: usize,
}

impl Staged {
    /// Take `batch`'s rows, leaving it empty.
    fn take(&mut self, batch: &mut IdentityBatch) {
        self.bytes += batch.bytes.len();
        self.entries += batch.spans.len();
        self.batches.push(std::mem::take(batch));
    }

    /// Write the entries as one run, sorted by hash, kind, field and record,
    /// one of each, handing each segment to `write`.
    fn write_run(
        &self,
        places: &mut Places,
        write: impl FnMut(i64, i64, &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        // Each entry with its hash as a number (most comparisons end there),
        // put in order of the hash's first bits by counting, then sorted
        // within each range.
        let mut counts = vec![0usize; (1 << KEY_BITS) + 1];
        let mut keyed: Vec<(u128, &[u8])> = Vec::with_capacity(self.entries);
        for batch in &self.batches {
            for &(start, end) in &batch.spans {
                let raw = batch.bytes.get(start..end).ok_or_else(corrupt)?;
                let mut hash = [0u8; 16];
                hash.copy_from_slice(raw.get(..16).ok_or_else(corrupt)?);
                counts[prefix(&hash) as usize + 1] += 1;
                keyed.push((u128::from_be_bytes(hash), raw));
            }
        }
        for index in 1..counts.len() {
            counts[index] += counts[index - 1];
        }
        let mut order: Vec<(u128, &[u8])> = vec![(0, &[][..]); keyed.len()];
        let mut next = counts.clone();
        for entry in keyed {
            let range = (entry.0 >> (128 - KEY_BITS)) as usize;
            order[next[range]] = entry;
            next[range] += 1;
        }
        let mut run = RunWriter::new(self.entries, write);
        for range in counts.windows(2) {
            let entries = &mut order[range[0]..range[1]];
            entries.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
            let mut previous: Option<&(u128, &[u8])> = None;
            for entry in entries.iter() {
                if previous.is_some_and(|last| {
                    last.0 == entry.0 && staged_identity(last.1) == staged_identity(entry.1)
                }) {
                    continue;
                }
                let entry_read = decode_staged(entry.1)?;
                places.add(&entry_read);
                run.push(&entry_read)?;
                previous = Some(entry);
            }
        }
        run.flush()
    }
}

/// Rows of running scans, by scan id.
#[derive(Debug)]
pub(super) struct Staging {
    scans: HashMap<i64, Staged>,
    /// Runs each scan has spilled.
    spilled: HashMap<i64, i64>,
    /// The places of each scan's spilled rows.
    spilled_places: HashMap<i64, Places>,
    /// Encoded bytes a scan holds before it spills them.
    spill_bytes: usize,
}

impl Default for Staging {
    fn default() -> Staging {
        Staging {
            scans: HashMap::new(),
            spilled: HashMap::new(),
            spilled_places: HashMap::new(),
            spill_bytes: SPILL_BYTES,
        }
    }
}

impl Staging {
    /// Staging that spills past `bytes` (tests spill at once).
    #[cfg(test)]
    pub fn spilling_at(bytes: usize) -> Staging {
        Staging {
            spill_bytes: bytes,
            ..Staging::default()
        }
    }

    /// Stage `identities` for `scan_id` (leaving the batch empty); past the
    /// spill size they go to the connection's temporary table.
    pub fn add(
        &mut self,
        database: &dyn Database,
        scan_id: i64,
        identities: &mut IdentityBatch,
    ) -> Result<(), StoreError> {
        let staged = self.scans.entry(scan_id).or_default();
        staged.take(identities);
        if staged.bytes >= self.spill_bytes {
            let spill = self.spilled.entry(scan_id).or_insert(0);
            *spill += 1;
            let spill = *spill;
            let places = self.spilled_places.entry(scan_id).or_default();
            super::db::transaction(database, true, |database| {
                staged.write_run(places, |key, count, data| {
                    database.execute(
                        "INSERT INTO staged_identity_segments (scan_id, spill, key, entries, data)
                         VALUES ($1, $2, $3, $4, $5)",
                        &[
                            Value::from(scan_id),
                            Value::from(spill),
                            Value::from(key),
                            Value::from(count),
                            Value::from(data),
                        ],
                    )?;
                    Ok(())
                })
            })?;
            *staged = Staged::default();
        }
        Ok(())
    }

    /// Forget what `scan_id` staged (it failed, or has been written).
    pub fn drop_scan(&mut self, database: &dyn Database, scan_id: i64) -> Result<(), StoreError> {
        self.scans.remove(&scan_id);
        self.spilled.remove(&scan_id);
        self.spilled_places.remove(&scan_id);
        database.execute(
            "DELETE FROM staged_identity_segments WHERE scan_id = $1",
            &[Value::from(scan_id)],
        )?;
        Ok(())
    }

    /// Write what `scan_id` staged as `source`'s runs; returns the places of
    /// what it wrote.
    pub fn write(
        &mut self,
        database: &dyn Database,
        scan_id: i64,
        source: &str,
    ) -> Result<Places, StoreError> {
        let mut places = self.spilled_places.remove(&scan_id).unwrap_or_default();
        let base = next_run(database)?;
        database.execute(
            "INSERT INTO identity_segments (key, source, scan_id, run, entries, data)
             SELECT key, $2, scan_id, $3 + spill, entries, data FROM staged_identity_segments
             WHERE scan_id = $1",
            &[Value::from(scan_id), Value::from(source), Value::from(base)],
        )?;
        if let Some(staged) = self.scans.remove(&scan_id) {
            let run = base + self.spilled.get(&scan_id).copied().unwrap_or(0) + 1;
            // Sent in batches: one round trip per batch on PostgreSQL.
            let mut segments: Vec<Vec<Value>> = Vec::new();
            staged.write_run(&mut places, |key, count, data| {
                segments.push(vec![
                    Value::from(key),
                    Value::from(source),
                    Value::from(scan_id),
                    Value::from(run),
                    Value::from(count),
                    Value::from(data),
                ]);
                if segments.len() >= SEGMENT_BATCH {
                    insert_segments(database, std::mem::take(&mut segments))?;
                }
                Ok(())
            })?;
            insert_segments(database, segments)?;
        }
        Ok(places)
    }
}

/// A run id not in use.
fn next_run(database: &dyn Database) -> Result<i64, StoreError> {
    Ok(database
        .query(
            "SELECT CAST(coalesce(max(run), 0) + 1 AS BIGINT) FROM identity_segments",
            &[],
        )?
        .first()
        .map(|row| row.int(0))
        .transpose()?
        .unwrap_or(1))
}

/// Segments written to the database in one batch.
const SEGMENT_BATCH: usize = 512;

/// Write segments (key, source, scan, run, entries, data) of a run.
fn insert_segments(database: &dyn Database, segments: Vec<Vec<Value>>) -> Result<(), StoreError> {
    database.insert_many(
        "INSERT INTO identity_segments (key, source, scan_id, run, entries, data)
         VALUES ($1, $2, $3, $4, $5, $6)",
        segments,
    )?;
    Ok(())
}

/// The data of segment `id`.
fn segment_data(database: &dyn Database, id: i64) -> Result<Vec<u8>, StoreError> {
    database
        .query(
            "SELECT data FROM identity_segments WHERE id = $1",
            &[Value::from(id)],
        )?
        .first()
        .ok_or(StoreError::Missing("identity_segments"))?
        .blob(0)
        .map_err(StoreError::from)
}

/// Keep of `source`'s segments older than `scan_id` only the entries `keep`
/// holds to, by record path; returns the places of those kept.
pub(super) fn filter_older(
    database: &dyn Database,
    source: &str,
    scan_id: i64,
    keep: impl Fn(&str) -> bool,
) -> Result<Places, StoreError> {
    let mut places = Places::default();
    // One segment at a time, rewritten before the next is read: memory stays
    // one segment's, however many lose entries.
    let ids: Vec<i64> = database
        .query(
            "SELECT id FROM identity_segments WHERE source = $1 AND scan_id < $2",
            &[Value::from(source), Value::from(scan_id)],
        )?
        .iter()
        .map(|row| row.int(0))
        .collect::<Result<_, _>>()?;
    let mut kept = SegmentWriter::default();
    for id in ids {
        let data = segment_data(database, id)?;
        let mut reader = SegmentReader::new(&data);
        let mut dropped = false;
        while let Some(entry) = reader.next_entry()? {
            if keep(entry.record_path) {
                let raw = entry.raw();
                places.add(&raw);
                kept.push(&raw);
            } else {
                dropped = true;
            }
        }
        let (count, data) = kept.take();
        if !dropped {
            continue;
        }
        if count == 0 {
            database.execute(
                "DELETE FROM identity_segments WHERE id = $1",
                &[Value::from(id)],
            )?;
        } else {
            database.execute(
                "UPDATE identity_segments SET entries = $2, data = $3 WHERE id = $1",
                &[Value::from(id), Value::from(count), Value::from(data)],
            )?;
        }
    }
    Ok(places)
}

/// The places `source`'s index holds.
pub(super) fn places(database: &dyn Database, source: &str) -> Result<Vec<String>, StoreError> {
    Ok(database
        .query(
            "SELECT place FROM identity_places WHERE source = $1",
            &[Value::from(source)],
        )?
        .iter()
        .map(|row| row.text(0))
        .collect::<Result<_, _>>()?)
}

/// Record `places` as `source`'s, replacing what was there when `replace`.
pub(super) fn set_places(
    database: &dyn Database,
    source: &str,
    places: &Places,
    replace: bool,
) -> Result<(), StoreError> {
    if replace {
        database.execute(
            "DELETE FROM identity_places WHERE source = $1",
            &[Value::from(source)],
        )?;
    }
    database.execute_many(
        "INSERT INTO identity_places (source, place) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        places
            .iter()
            .map(|place| vec![Value::from(source), Value::from(place)])
            .collect(),
    )?;
    Ok(())
}

/// One run being merged: its segments in hash order, read one at a time.
struct RunCursor {
    scan_id: i64,
    run: i64,
    segments: std::vec::IntoIter<i64>,
    /// Segments read ahead, in key order.
    ahead: std::collections::VecDeque<Vec<u8>>,
    entries: std::vec::IntoIter<OwnedEntry>,
    current: Option<OwnedEntry>,
}

/// Segments a merge reads in one statement (one round trip on PostgreSQL).
const READ_AHEAD: usize = 32;

impl RunCursor {
    fn advance(&mut self, database: &dyn Database) -> Result<(), StoreError> {
        loop {
            if let Some(entry) = self.entries.next() {
                self.current = Some(entry);
                return Ok(());
            }
            if self.ahead.is_empty() {
                let ids: Vec<i64> = self.segments.by_ref().take(READ_AHEAD).collect();
                self.ahead = segments_data(database, &ids)?.into();
            }
            let Some(data) = self.ahead.pop_front() else {
                self.current = None;
                return Ok(());
            };
            self.entries = owned_entries(&data)?.into_iter();
        }
    }
}

/// The data of segments `ids`, in that order.
fn segments_data(database: &dyn Database, ids: &[i64]) -> Result<Vec<Vec<u8>>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=ids.len()).map(|at| format!("${at}")).collect();
    let values: Vec<Value> = ids.iter().map(|id| Value::from(*id)).collect();
    let mut by_id: std::collections::HashMap<i64, Vec<u8>> = database
        .query(
            &format!(
                "SELECT id, data FROM identity_segments WHERE id IN ({})",
                placeholders.join(", ")
            ),
            &values,
        )?
        .iter()
        .map(|row| Ok((row.int(0)?, row.blob(1)?)))
        .collect::<Result<_, StoreError>>()?;
    ids.iter()
        .map(|id| {
            by_id
                .remove(id)
                .ok_or(StoreError::Missing("identity_segments"))
        })
        .collect()
}

/// Merge `source`'s runs once there are more than [`MAX_RUNS`]: all but the
/// largest, or all once the others add up to a quarter of it. Where two runs
/// hold the same hash, kind, field and record, the newer scan's entry stays.
pub(super) fn compact(database: &dyn Database, source: &str) -> Result<(), StoreError> {
    // (run, scan, entries), largest first.
    let mut runs: Vec<(i64, i64, i64)> = database
        .query(
            "SELECT run, max(scan_id), CAST(sum(entries) AS BIGINT) FROM identity_segments
             WHERE source = $1 GROUP BY run ORDER BY sum(entries) DESC, run",
            &[Value::from(source)],
        )?
        .iter()
        .map(|row| Ok((row.int(0)?, row.int(1)?, row.int(2)?)))
        .collect::<Result<_, StoreError>>()?;
    if runs.len() as i64 <= MAX_RUNS {
        return Ok(());
    }
    let others: i64 = runs.iter().skip(1).map(|run| run.2).sum();
    if others * 4 < runs[0].2 {
        runs.remove(0);
    }
    let total: i64 = runs.iter().map(|run| run.2).sum();
    let merged_run = next_run(database)?;
    let merged_scan = runs.iter().map(|run| run.1).max().unwrap_or(0);
    let mut cursors = Vec::new();
    {
        for &(run, scan_id, _) in &runs {
            let ids: Vec<i64> = database
                .query(
                    "SELECT id FROM identity_segments WHERE run = $1 ORDER BY key",
                    &[Value::from(run)],
                )?
                .iter()
                .map(|row| row.int(0))
                .collect::<Result<_, _>>()?;
            let mut cursor = RunCursor {
                scan_id,
                run,
                segments: ids.into_iter(),
                ahead: Default::default(),
                entries: Vec::new().into_iter(),
                current: None,
            };
            cursor.advance(database)?;
            cursors.push(cursor);
        }
        // Written in batches: one round trip per batch on PostgreSQL.
        let pending: std::cell::RefCell<Vec<Vec<Value>>> = Default::default();
        let mut out = RunWriter::new(usize::try_from(total).unwrap_or(0), |key, count, data| {
            let mut pending = pending.borrow_mut();
            pending.push(vec![
                Value::from(key),
                Value::from(source),
                Value::from(merged_scan),
                Value::from(merged_run),
                Value::from(count),
                Value::from(data),
            ]);
            if pending.len() >= SEGMENT_BATCH {
                insert_segments(database, std::mem::take(&mut *pending))?;
            }
            Ok(())
        });
        loop {
            // The least entry; of equals, the newest scan's.
            let mut least: Option<usize> = None;
            for (index, cursor) in cursors.iter().enumerate() {
                let Some(entry) = &cursor.current else {
                    continue;
                };
                least = match least {
                    None => Some(index),
                    Some(best) => {
                        let best_cursor = &cursors[best];
                        let order = best_cursor
                            .current
                            .as_ref()
                            .map_or(Ordering::Greater, |best_entry| {
                                entry.view().identity_order(&best_entry.view())
                            });
                        let newer =
                            (cursor.scan_id, cursor.run) > (best_cursor.scan_id, best_cursor.run);
                        match order {
                            Ordering::Less => Some(index),
                            Ordering::Equal if newer => Some(index),
                            _ => Some(best),
                        }
                    }
                };
            }
            let Some(best) = least else {
                break;
            };
            let Some(chosen) = cursors[best].current.take() else {
                break;
            };
            out.push(&chosen.view().raw())?;
            // Its equals in other runs are older: skip them.
            for cursor in cursors.iter_mut() {
                while cursor
                    .current
                    .as_ref()
                    .is_some_and(|entry| entry.view().identity_order(&chosen.view()).is_eq())
                {
                    cursor.advance(database)?;
                }
            }
            cursors[best].advance(database)?;
        }
        out.flush()?;
        drop(out);
        insert_segments(database, pending.take())?;
    }
    for (run, _, _) in runs {
        database.execute(
            "DELETE FROM identity_segments WHERE run = $1",
            &[Value::from(run)],
        )?;
    }
    Ok(())
}

/// Every entry the index holds for `hash` (in `source` only, when given), with
/// its source; where two scans' runs hold the same record, kind and field, the
/// newer one's.
pub(super) fn lookup(
    database: &dyn Database,
    hash: &IdentityHash,
    source: Option<&str>,
    mut found: impl FnMut(&str, Entry<'_>),
) -> Result<(), StoreError> {
    let mut values: Vec<Value> = (0..=KEY_BITS)
        .map(|bits| Value::from(key(hash, bits)))
        .collect();
    values.push(Value::from(source));
    let rows = database.query(
        "SELECT source, data FROM identity_segments
         WHERE key IN ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             AND (CAST($14 AS TEXT) IS NULL OR source = $14)
         ORDER BY source, scan_id DESC, run DESC",
        &values,
    )?;
    let mut seen = std::collections::HashSet::new();
    for row in &rows {
        let source = row.text(0)?;
        let data = row.blob(1).map_err(|_| corrupt())?;
        let mut reader = SegmentReader::new(&data);
        while let Some(entry) = reader.next_entry()? {
            match entry.hash.cmp(hash) {
                Ordering::Less => continue,
                Ordering::Greater => break,
                Ordering::Equal => {}
            }
            let key = (
                source.clone(),
                entry.record_id.to_owned(),
                entry.kind.to_owned(),
                entry.field.to_owned(),
            );
            if seen.insert(key) {
                found(&source, entry);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn identity<'a>(
        hash: IdentityHash,
        id: &'a str,
        path: &'a str,
        time: Option<i64>,
    ) -> NewIdentity<'a> {
        NewIdentity {
            hash,
            kind: "email",
            field: "from",
            record_id: id,
            record_path: path,
            record_kind: "message",
            container: "INBOX",
            record_time: time,
        }
    }

    fn run_of(rows: &[NewIdentity<'_>]) -> Vec<(i64, i64, Vec<OwnedEntry>)> {
        let mut batch = IdentityBatch::default();
        for row in rows {
            batch.push(row);
        }
        let mut staged = Staged::default();
        staged.take(&mut batch);
        assert!(batch.is_empty());
        let mut segments = Vec::new();
        staged
            .write_run(&mut Places::default(), |key, count, data| {
                segments.push((key, count, owned_entries(data)?));
                Ok(())
            })
            .expect("run");
        segments
    }

    #[test]
    fn a_run_is_sorted_deduplicated_and_split_by_hash_range() {
        let low = [0x00; 16];
        let mut next = [0x00; 16];
        next[15] = 9;
        let rows = [
            identity([0xff; 16], "INBOX/3", "INBOX/3", None),
            identity(low, "x", "anna/INBOX/1", Some(1_700_000_000)),
            // The same hash, kind, field and record again: one entry.
            identity(low, "x", "anna/INBOX/1", Some(1_700_000_001)),
            identity(next, "é/ü", "é/ü", Some(-5)),
        ];
        let segments = run_of(&rows);
        // Three entries fit one segment (granularity 0: key 0).
        assert_eq!(segments.len(), 1);
        assert_eq!(segments[0].0, 0);
        assert_eq!(segments[0].1, 3);
        let entries = &segments[0].2;
        assert_eq!(entries[0].record_path, "anna/INBOX/1");
        assert_eq!(entries[0].record_id, "x");
        assert_eq!(entries[0].record_time, Some(1_700_000_000));
        assert_eq!(entries[1].record_path, "é/ü");
        assert_eq!(entries[1].record_time, Some(-5));
        assert_eq!(entries[2].record_time, None);
        assert_eq!(entries[2].hash, [0xff; 16]);
        // Many entries: ranges at a finer granularity, each key's hashes
        // inside it, sorted.
        let hashes: Vec<IdentityHash> = (0..1000u32)
            .map(|n| {
                let mut hash = [0u8; 16];
                hash[..4].copy_from_slice(&n.wrapping_mul(2_654_435_761).to_be_bytes());
                hash
            })
            .collect();
        let paths: Vec<String> = (0..1000).map(|n| format!("INBOX/{n}")).collect();
        let many: Vec<NewIdentity<'_>> = hashes
            .iter()
            .zip(&paths)
            .map(|(hash, path)| identity(*hash, path, path, None))
            .collect();
        let segments = run_of(&many);
        let bits = bits_for(1000);
        assert_eq!(bits, 2);
        assert_eq!(segments.len(), 4);
        let mut total = 0;
        for (segment_key, count, entries) in &segments {
            total += count;
            assert!(entries.windows(2).all(|pair| pair[0].hash < pair[1].hash));
            assert!(
                entries
                    .iter()
                    .all(|entry| key(&entry.hash, bits) == *segment_key)
            );
        }
        assert_eq!(total, 1000);
    }

    proptest! {
        #[test]
        fn any_bytes_decode_to_entries_or_an_error_never_a_panic(
            data in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let mut reader = SegmentReader::new(&data);
            let mut decoded = 0;
            while let Ok(Some(_)) = reader.next_entry() {
                decoded += 1;
            }
            prop_assert!(decoded <= data.len());
            let _ = decode_staged(&data);
            prop_assert!(staged_identity(&data).len() <= data.len());
        }

        #[test]
        fn any_entries_round_trip_through_a_segment(
            rows in proptest::collection::vec(
                (any::<[u8; 16]>(), "[a-zé/]{0,30}", "[a-zé/]{0,30}", "[a-z]{0,200}",
                 proptest::option::of(any::<i64>())),
                1..40,
            ),
        ) {
            let rows: Vec<NewIdentity<'_>> = rows
                .iter()
                .map(|(hash, id, path, field, time)| NewIdentity {
                    field,
                    ..identity(*hash, id, path, *time)
                })
                .collect();
            let mut expected: Vec<&NewIdentity<'_>> = rows.iter().collect();
            expected.sort_by(|a, b| {
                (a.hash, a.field.len(), a.field, a.record_id.len(), a.record_id)
                    .cmp(&(b.hash, b.field.len(), b.field, b.record_id.len(), b.record_id))
            });
            expected.dedup_by(|a, b| (a.hash, a.field, a.record_id) == (b.hash, b.field, b.record_id));
            let decoded: Vec<OwnedEntry> = run_of(&rows)
                .into_iter()
                .flat_map(|(_, _, entries)| entries)
                .collect();
            prop_assert_eq!(decoded.len(), expected.len());
            for (entry, row) in decoded.iter().zip(expected) {
                prop_assert_eq!(entry.hash, row.hash);
                prop_assert_eq!(&entry.record_id, row.record_id);
                prop_assert_eq!(&entry.record_path, row.record_path);
                prop_assert_eq!(&entry.field, row.field);
                prop_assert_eq!(&entry.kind, row.kind);
                prop_assert_eq!(&entry.container, row.container);
                prop_assert_eq!(entry.record_time, row.record_time);
            }
        }
    }
}
