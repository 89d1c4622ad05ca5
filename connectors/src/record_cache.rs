//! What earlier scans saw of each record, so that a scan can leave out the
//! records that did not change and whose verdict cannot have changed since.
//!
//! A connector that can tell cheaply whether an item changed (a file's size,
//! times and inode) gives each record a [`Record::stamp`](crate::Record): a
//! fingerprint of everything it read for it. The scan runner remembers, per
//! record, that stamp and the earliest time at which the rules could judge the
//! same record differently (an age limit it will pass); the next scan hands
//! that memory to the connector as a [`RecordCache`]. A record whose stamp is
//! the same and whose time has not come is neither built nor sent:
//! [`RecordCache::unchanged`] says so, and notes it, so that the runner keeps
//! what was found on it and forgets the records that were not seen at all.
//!
//! Records are remembered by a keyed hash of their path, never by the path
//! itself: 64 bits of their folder's (everything before the last `/`) and 64
//! of the whole path's, SipHash-1-3 under a key derived from the pseudonym
//! key. Sorted, a folder's records lie together, so a walker asking about
//! them one after another reads memory it just read. A collision needs both
//! halves to collide; it could only make a record be read again or, for a
//! record that went, keep its finding open one scan longer than it should.

use std::hash::Hasher;
use std::sync::atomic::{AtomicBool, Ordering};

use siphasher::sip::SipHasher13;

/// The layout of [`RecordCache::encode`]: part of the plan a cache is kept
/// under, so that a cache of another layout is never read as this one.
pub const FORMAT: u32 = 1;

/// Never: a record whose verdict time cannot change.
pub const NEVER: i64 = i64::MAX;

/// Keyed hashes of record paths (SipHash-1-3 under 16 bytes derived from the
/// pseudonym key): how the runner remembers records without their paths.
#[derive(Debug, Clone, Copy)]
pub struct PathHasher {
    k0: u64,
    k1: u64,
}

impl PathHasher {
    /// A hasher under `key`.
    pub fn new(key: [u8; 16]) -> PathHasher {
        let (low, high) = key.split_at(8);
        let word = |bytes: &[u8]| {
            let mut word = [0u8; 8];
            word.copy_from_slice(bytes);
            u64::from_le_bytes(word)
        };
        PathHasher {
            k0: word(low),
            k1: word(high),
        }
    }

    /// The keyed hash that stands for the record at `path`: its folder's
    /// (everything before the last `/`) in the high 64 bits, its own below.
    pub fn key(&self, path: &str) -> u128 {
        let folder = path.rsplit_once('/').map_or("", |(folder, _)| folder);
        (u128::from(self.hash(folder.as_bytes())) << 64) | u128::from(self.hash(path.as_bytes()))
    }

    /// The keyed hash of `bytes`.
    pub fn hash(&self, bytes: &[u8]) -> u64 {
        let mut hasher = SipHasher13::new_with_keys(self.k0, self.k1);
        hasher.write(bytes);
        hasher.finish()
    }
}

/// One remembered record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedRecord {
    /// Keyed hash of the record's folder and path ([`RecordCache::key`]).
    pub key: u128,
    /// The record's [`Record::stamp`](crate::Record) when it was last judged.
    pub stamp: u64,
    /// The first second (Unix time) at which the rules could judge the
    /// unchanged record differently; [`NEVER`] when no time can.
    pub recheck_at: i64,
}

/// Bytes per entry in [`RecordCache::encode`].
const ENTRY_BYTES: usize = 32;

/// Why a saved cache could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("record cache: {0}")]
pub struct DecodeError(&'static str);

/// The records earlier scans judged, for one scan of one source: which may be
/// left out, and which were.
#[derive(Debug)]
pub struct RecordCache {
    hasher: PathHasher,
    /// Sorted by key, keys unique.
    entries: Vec<CachedRecord>,
    /// Per entry: left out by this scan as unchanged.
    left_out: Vec<AtomicBool>,
    /// This scan's time, Unix seconds.
    now: i64,
}

impl RecordCache {
    /// A cache of `entries` (any order; of equal keys the first is kept) for a
    /// scan at `now`, keyed by `key` (16 bytes derived from the pseudonym key).
    pub fn new(key: [u8; 16], mut entries: Vec<CachedRecord>, now: i64) -> RecordCache {
        entries.sort_by_key(|entry| entry.key);
        entries.dedup_by_key(|entry| entry.key);
        let left_out = entries.iter().map(|_| AtomicBool::new(false)).collect();
        RecordCache {
            hasher: PathHasher::new(key),
            entries,
            left_out,
            now,
        }
    }

    /// The keyed hash that stands for the record at `path`: its folder's
    /// hash, then its own ([`PathHasher::key`]).
    pub fn key(&self, path: &str) -> u128 {
        self.hasher.key(path)
    }

    /// Where the entry of `key` is. Folder hashes spread evenly over their
    /// 64 bits, so the key's folder hash says about where it lies: the search
    /// starts there and gallops outwards to bracket it, then bisects. A
    /// million entries take a few probes near one place (a folder's records
    /// lie together, so its next lookup finds them in cache) where a plain
    /// binary search takes twenty far apart.
    fn find(&self, key: u128) -> Option<usize> {
        let entries = &self.entries;
        let last = entries.len().checked_sub(1)?;
        let fraction = ((key >> 64) as u64) as f64 / 18_446_744_073_709_551_616.0;
        let guess = ((fraction * entries.len() as f64) as usize).min(last);
        let (mut low, mut high) = (guess, guess);
        let mut step = 1usize;
        // Bracket: entries[low].key <= key <= entries[high].key, or an end.
        while low > 0 && entries[low].key > key {
            low = low.saturating_sub(step);
            step *= 2;
        }
        step = 1;
        while high < last && entries[high].key < key {
            high = (high + step).min(last);
            step *= 2;
        }
        let bracket = &entries[low..=high];
        let index = bracket.partition_point(|entry| entry.key < key);
        (bracket.get(index)?.key == key).then_some(low + index)
    }

    /// Whether the record at `path`, whose stamp is now `stamp`, is the one
    /// judged before and its verdict still stands: then the connector leaves
    /// it out, and this scan keeps what was found on it.
    pub fn unchanged(&self, path: &str, stamp: u64) -> bool {
        let key = self.key(path);
        let Some(index) = self.find(key) else {
            return false;
        };
        let entry = &self.entries[index];
        if entry.stamp != stamp || entry.recheck_at <= self.now {
            return false;
        }
        self.left_out[index].store(true, Ordering::Relaxed);
        true
    }

    /// Whether the record whose path hashes to `key` was left out by this
    /// scan as unchanged.
    pub fn was_left_out(&self, key: u128) -> bool {
        self.find(key)
            .is_some_and(|index| self.left_out[index].load(Ordering::Relaxed))
    }

    /// How many records this scan left out.
    pub fn left_out_count(&self) -> usize {
        self.left_out
            .iter()
            .filter(|flag| flag.load(Ordering::Relaxed))
            .count()
    }

    /// How many records earlier scans remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether earlier scans remembered nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What the next scan remembers: the records this scan left out, as they
    /// were, and those it judged (`judged`), replacing any of the same key.
    pub fn next(&self, judged: Vec<CachedRecord>) -> Vec<CachedRecord> {
        let mut next: Vec<CachedRecord> = judged;
        next.extend(
            self.entries
                .iter()
                .zip(&self.left_out)
                .filter(|(_, flag)| flag.load(Ordering::Relaxed))
                .map(|(entry, _)| *entry),
        );
        // Judged first: a stable sort keeps it ahead of the older entry.
        next.sort_by_key(|entry| entry.key);
        next.dedup_by_key(|entry| entry.key);
        next
    }

    /// `entries` (sorted by key) as bytes, to store.
    pub fn encode(entries: &[CachedRecord]) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(entries.len() * ENTRY_BYTES);
        for entry in entries {
            bytes.extend_from_slice(&entry.key.to_le_bytes());
            bytes.extend_from_slice(&entry.stamp.to_le_bytes());
            bytes.extend_from_slice(&entry.recheck_at.to_le_bytes());
        }
        bytes
    }

    /// Entries stored by [`RecordCache::encode`]; an error for anything else.
    pub fn decode(bytes: &[u8]) -> Result<Vec<CachedRecord>, DecodeError> {
        if !bytes.len().is_multiple_of(ENTRY_BYTES) {
            return Err(DecodeError("length is not a whole number of entries"));
        }
        let word = |chunk: &[u8]| {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            word
        };
        let key = |chunk: &[u8]| {
            let mut key = [0u8; 16];
            key.copy_from_slice(chunk);
            key
        };
        let entries: Vec<CachedRecord> = bytes
            .chunks_exact(ENTRY_BYTES)
            .map(|chunk| CachedRecord {
                key: u128::from_le_bytes(key(&chunk[0..16])),
                stamp: u64::from_le_bytes(word(&chunk[16..24])),
                recheck_at: i64::from_le_bytes(word(&chunk[24..32])),
            })
            .collect();
        if entries.windows(2).any(|pair| pair[0].key >= pair[1].key) {
            return Err(DecodeError("keys are not sorted and unique"));
        }
        Ok(entries)
    }
}

/// Builds a [`Record::stamp`](crate::Record) from the parts a connector read.
#[derive(Debug)]
pub struct StampBuilder(SipHasher13);

impl Default for StampBuilder {
    fn default() -> StampBuilder {
        StampBuilder(SipHasher13::new_with_keys(
            0x7469_6c6c_7379_6e00,
            0x7374_616d_7000,
        ))
    }
}

impl StampBuilder {
    /// Add a number.
    pub fn number(mut self, value: u64) -> StampBuilder {
        self.0.write_u64(value);
        self
    }

    /// Add a signed number.
    pub fn signed(mut self, value: i64) -> StampBuilder {
        self.0.write_i64(value);
        self
    }

    /// Add text, delimited.
    pub fn text(mut self, value: &str) -> StampBuilder {
        self.0.write_usize(value.len());
        self.0.write(value.as_bytes());
        self
    }

    /// The stamp.
    pub fn finish(self) -> u64 {
        self.0.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cache(entries: Vec<CachedRecord>, now: i64) -> RecordCache {
        RecordCache::new([7; 16], entries, now)
    }

    #[test]
    fn unchanged_records_are_left_out_until_their_time_and_remembered_as_they_were() {
        let empty = cache(Vec::new(), 1000);
        let (a, b, c) = (empty.key("a.txt"), empty.key("b.txt"), empty.key("c.txt"));
        let remembered = vec![
            CachedRecord {
                key: a,
                stamp: 1,
                recheck_at: NEVER,
            },
            CachedRecord {
                key: b,
                stamp: 2,
                recheck_at: 1000,
            },
            CachedRecord {
                key: c,
                stamp: 3,
                recheck_at: 5000,
            },
        ];
        let scan = cache(remembered.clone(), 1000);
        assert!(scan.unchanged("a.txt", 1));
        // b's time has come: judged again.
        assert!(!scan.unchanged("b.txt", 2));
        // c changed.
        assert!(!scan.unchanged("c.txt", 4));
        assert!(!scan.unchanged("new.txt", 9));
        assert_eq!(scan.left_out_count(), 1);
        assert!(scan.was_left_out(a) && !scan.was_left_out(b) && !scan.was_left_out(c));
        let judged = vec![CachedRecord {
            key: c,
            stamp: 4,
            recheck_at: NEVER,
        }];
        let next = scan.next(judged);
        let mut expected = vec![
            remembered[0],
            CachedRecord {
                key: c,
                stamp: 4,
                recheck_at: NEVER,
            },
        ];
        expected.sort_by_key(|entry| entry.key);
        assert_eq!(next, expected, "b was not seen: forgotten");
        // Another key: other hashes.
        assert_ne!(RecordCache::new([8; 16], Vec::new(), 0).key("a.txt"), a);
    }

    #[test]
    fn stamps_differ_when_any_part_does() {
        let stamp =
            |size: u64, name: &str| StampBuilder::default().number(size).text(name).finish();
        assert_eq!(stamp(1, "x"), stamp(1, "x"));
        assert_ne!(stamp(1, "x"), stamp(2, "x"));
        assert_ne!(stamp(1, "x"), stamp(1, "y"));
        assert_ne!(
            StampBuilder::default().text("ab").text("c").finish(),
            StampBuilder::default().text("a").text("bc").finish()
        );
    }

    proptest! {
        /// Interpolation finds exactly the keys there, however they spread.
        #[test]
        fn every_key_there_is_found_and_no_other(
            keys in proptest::collection::btree_set(any::<u128>(), 0..300),
            clustered in proptest::collection::btree_set(
                (0u64..4, any::<u64>()).prop_map(|(folder, own)| (u128::from(folder) << 64) | u128::from(own)),
                0..100,
            ),
            probes in proptest::collection::vec(any::<u128>(), 0..50),
        ) {
            for keys in [keys, clustered] {
                let entries: Vec<CachedRecord> = keys
                    .iter()
                    .map(|key| CachedRecord { key: *key, stamp: 0, recheck_at: NEVER })
                    .collect();
                let cache = cache(entries, 0);
                for (index, key) in keys.iter().enumerate() {
                    prop_assert_eq!(cache.find(*key), Some(index));
                }
                for probe in probes.iter().chain([0, u128::MAX, 500, 1 << 64].iter()) {
                    prop_assert_eq!(cache.find(*probe).is_some(), keys.contains(probe));
                }
            }
        }

        /// Any bytes decode to sorted entries or an error, never a panic; any
        /// entries round-trip.
        #[test]
        fn decoding_never_panics_and_entries_round_trip(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            raw in proptest::collection::vec((any::<u128>(), any::<u64>(), any::<i64>()), 0..50),
        ) {
            if let Ok(entries) = RecordCache::decode(&bytes) {
                prop_assert!(entries.windows(2).all(|pair| pair[0].key < pair[1].key));
            }
            let entries: Vec<CachedRecord> = raw
                .into_iter()
                .map(|(key, stamp, recheck_at)| CachedRecord { key, stamp, recheck_at })
                .collect();
            let sorted = cache(entries, 0).entries;
            let decoded = RecordCache::decode(&RecordCache::encode(&sorted));
            prop_assert_eq!(decoded.ok(), Some(sorted));
        }
    }
}
