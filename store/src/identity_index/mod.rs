//! How the identity index is kept: in sorted runs of compact segments, not
//! one SQLite row per occurrence.
//!
//! - **Staging.** A scan's rows are held encoded in one buffer
//!   ([`IdentityBatch`]) until the scan finishes; past [`SPILL_BYTES`] they
//!   are sorted and spilled to a temporary table as a run of their own.
//! - **Runs and segments.** A finishing scan writes its rows sorted by hash as
//!   a *run*: a few SQLite rows (segments), each holding the entries of one
//!   hash range (at most [`MAX_SEGMENT_ENTRIES`]: a range with more takes
//!   several segments under its key, read in the order written). A run of n
//!   entries splits the hash space into 2^b ranges (b ≤ 12) so that a
//!   segment holds about [`SEGMENT_ENTRIES`]: 200,000 entries make 1,024
//!   rows, ten make one.
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

mod codec;
mod runs;
mod segment;
mod staging;
#[cfg(test)]
mod tests;

use tillsyn_core::identity::IdentityHash;

pub(crate) use runs::{compact, filter_older, lookup, places, set_places};
pub use staging::IdentityBatch;
pub(crate) use staging::Staging;

/// Encoded bytes a running scan holds in memory before it spills them
/// (with their sort array, about 1.4 times this at a spill). At 8 MB a
/// header scan of a million messages peaks at 92 MB RSS; at 16 MB the
/// staged bytes and their sort array held 13 MB more at a spill (heaptrack).
const SPILL_BYTES: usize = 8 << 20;

/// Entries a segment holds, about (a run's granularity is chosen for it).
const SEGMENT_ENTRIES: usize = 256;

/// Entries a segment holds at most. A hash range with more (one address in
/// every message of a mailbox: its owner's, a list's) takes several
/// segments under one key, in order, so that reading or merging any one
/// segment holds a bounded number of entries in memory (measured: one
/// address in 1,000,000 messages made one segment whose merge took 350 MB).
pub(crate) const MAX_SEGMENT_ENTRIES: i64 = 4096;

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
