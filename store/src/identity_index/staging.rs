//! A running scan's rows: held encoded in memory, spilled sorted past
//! [`crate::SPILL_BYTES`], and written as one run when the scan finishes.

use std::collections::HashMap;

use super::SPILL_BYTES;
use super::codec::{RawEntry, corrupt, decode_staged, encode_staged, staged_identity};
use super::segment::RunWriter;
use super::segment::{RunTarget, SegmentInserts, next_run};
use crate::StoreError;
use crate::db::{Database, Value};
use tillsyn_rules::identity::NewIdentity;

/// Identity rows encoded as the index stages them, until they are written:
/// one buffer, not a few strings per row.
#[derive(Debug, Default)]
pub struct IdentityBatch {
    pub(super) bytes: Vec<u8>,
    /// Start and end in `bytes` of each entry.
    pub(super) spans: Vec<(usize, usize)>,
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
pub(crate) struct Places {
    pub(super) held: std::collections::BTreeSet<String>,
    pub(super) last: Vec<u8>,
}

impl Places {
    pub(super) fn add(&mut self, entry: &RawEntry<'_>) {
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
pub(super) struct Staged {
    pub(super) batches: Vec<IdentityBatch>,
    pub(super) bytes: usize,
    pub(super) entries: usize,
}

impl Staged {
    /// Take `batch`'s rows, leaving it empty.
    pub(super) fn take(&mut self, batch: &mut IdentityBatch) {
        self.bytes += batch.bytes.len();
        self.entries += batch.spans.len();
        // Held until the spill: without the room a growing batch left over.
        let mut taken = std::mem::take(batch);
        taken.bytes.shrink_to_fit();
        taken.spans.shrink_to_fit();
        self.batches.push(taken);
    }

    /// Write the entries as one run, sorted by hash, kind, field and record,
    /// one of each, handing each segment to `write`.
    pub(super) fn write_run(
        &self,
        places: &mut Places,
        write: impl FnMut(i64, i64, &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        // Each entry with its hash as a number (most comparisons end there),
        // sorted in place: one array the size of the entries, no second.
        let mut keyed: Vec<(u128, &[u8])> = Vec::with_capacity(self.entries);
        for batch in &self.batches {
            for &(start, end) in &batch.spans {
                let raw = batch.bytes.get(start..end).ok_or_else(corrupt)?;
                let mut hash = [0u8; 16];
                hash.copy_from_slice(raw.get(..16).ok_or_else(corrupt)?);
                keyed.push((u128::from_be_bytes(hash), raw));
            }
        }
        keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        let mut run = RunWriter::new(self.entries, write);
        let mut previous: Option<&(u128, &[u8])> = None;
        for entry in &keyed {
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
        run.flush()
    }
}

/// Rows of running scans, by scan id.
#[derive(Debug)]
pub(crate) struct Staging {
    pub(super) scans: HashMap<i64, Staged>,
    /// Runs each scan has spilled.
    pub(super) spilled: HashMap<i64, i64>,
    /// The places of each scan's spilled rows.
    pub(super) spilled_places: HashMap<i64, Places>,
    /// Encoded bytes a scan holds before it spills them.
    pub(super) spill_bytes: usize,
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
            crate::db::transaction(database, true, |database| {
                let mut inserts =
                    SegmentInserts::new(database, RunTarget::Staged { scan_id, spill });
                staged.write_run(places, |key, count, data| inserts.push(key, count, data))?;
                inserts.flush()
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
             WHERE scan_id = $1 ORDER BY id",
            &[Value::from(scan_id), Value::from(source), Value::from(base)],
        )?;
        if let Some(staged) = self.scans.remove(&scan_id) {
            let run = base + self.spilled.get(&scan_id).copied().unwrap_or(0) + 1;
            let mut inserts = SegmentInserts::new(
                database,
                RunTarget::Index {
                    source,
                    scan_id,
                    run,
                },
            );
            staged.write_run(&mut places, |key, count, data| {
                inserts.push(key, count, data)
            })?;
            inserts.flush()?;
        }
        Ok(places)
    }
}
