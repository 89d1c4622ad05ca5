//! Segments and runs: writing sorted entries as front-coded segments of one
//! hash range each, reading them back, and the segment rows in the store
//! (a new run id, batched inserts, one segment read).

use super::codec::{
    Bytes, Entry, HAS_TIME, NEW_CONTAINER, NEW_FIELD, NEW_KIND, NEW_RECORD_KIND, OwnedEntry,
    PATH_IS_ID, RawEntry, corrupt, put_short_bytes, put_varint, shared_prefix,
};
use super::{MAX_SEGMENT_ENTRIES, bits_for, key};
use crate::StoreError;
use crate::db::{Database, Value};
use tillsyn_core::identity::IdentityHash;

/// Writes one segment's entries, front-coded.
#[derive(Debug, Default)]
pub(super) struct SegmentWriter {
    pub(super) data: Vec<u8>,
    pub(super) count: i64,
    pub(super) kind: Vec<u8>,
    pub(super) field: Vec<u8>,
    pub(super) record_kind: Vec<u8>,
    pub(super) container: Vec<u8>,
    pub(super) record_id: Vec<u8>,
    pub(super) record_path: Vec<u8>,
}

/// Make `held` a copy of `new`, reusing its room.
pub(super) fn remember(held: &mut Vec<u8>, new: &[u8]) {
    held.clear();
    held.extend_from_slice(new);
}

impl SegmentWriter {
    pub(super) fn push(&mut self, entry: &RawEntry<'_>) {
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
    pub(super) fn take(&mut self) -> (i64, Vec<u8>) {
        let taken = (self.count, std::mem::take(&mut self.data));
        self.count = 0;
        self.record_id.clear();
        self.record_path.clear();
        taken
    }
}

/// What one front-coded entry changes from the one before it: new values,
/// or `None` where the previous one's stands.
struct Delta<'a> {
    hash: IdentityHash,
    record_time: Option<i64>,
    kind: Option<&'a str>,
    field: Option<&'a str>,
    /// Bytes of the previous record id kept, and what follows them.
    record_id: (usize, &'a str),
    /// The same for the path; `None` when the path is the record id.
    record_path: Option<(usize, &'a str)>,
    record_kind: Option<&'a str>,
    container: Option<&'a str>,
}

impl<'a> Delta<'a> {
    /// Read the entry at `bytes`; `first` when it opens its segment (which
    /// must then give every value).
    fn read(bytes: &mut Bytes<'a>) -> Result<Delta<'a>, StoreError> {
        let first = bytes.at == 0;
        let hash = bytes.hash()?;
        let flags = bytes.byte()?;
        let all_new = NEW_KIND | NEW_FIELD | NEW_RECORD_KIND | NEW_CONTAINER;
        if first && flags & all_new != all_new {
            return Err(corrupt());
        }
        let record_time = if flags & HAS_TIME != 0 {
            let zigzag = bytes.varint()?;
            Some((zigzag >> 1) as i64 ^ -((zigzag & 1) as i64))
        } else {
            None
        };
        let new_if = |bit: u8, bytes: &mut Bytes<'a>| -> Result<Option<&'a str>, StoreError> {
            if flags & bit != 0 {
                bytes.short_str().map(Some)
            } else {
                Ok(None)
            }
        };
        let kind = new_if(NEW_KIND, bytes)?;
        let field = new_if(NEW_FIELD, bytes)?;
        let front_coded = |bytes: &mut Bytes<'a>| -> Result<(usize, &'a str), StoreError> {
            let shared = usize::try_from(bytes.varint()?).map_err(|_| corrupt())?;
            Ok((shared, bytes.short_str()?))
        };
        let record_id = front_coded(bytes)?;
        let record_path = if flags & PATH_IS_ID == 0 {
            Some(front_coded(bytes)?)
        } else {
            None
        };
        let record_kind = new_if(NEW_RECORD_KIND, bytes)?;
        let container = new_if(NEW_CONTAINER, bytes)?;
        Ok(Delta {
            hash,
            record_time,
            kind,
            field,
            record_id,
            record_path,
            record_kind,
            container,
        })
    }

    /// Make `text` the previous value's shared bytes and this one's suffix.
    fn front_code(text: &mut String, (shared, suffix): (usize, &str)) -> Result<(), StoreError> {
        if shared > text.len() || !text.is_char_boundary(shared) {
            return Err(corrupt());
        }
        text.truncate(shared);
        text.push_str(suffix);
        Ok(())
    }

    /// Apply to `entry`, the previous entry of the same segment (reusing its
    /// room), or a cleared one at a segment's start.
    fn apply_to(&self, entry: &mut OwnedEntry) -> Result<(), StoreError> {
        entry.hash = self.hash;
        entry.record_time = self.record_time;
        for (new, held) in [
            (self.kind, &mut entry.kind),
            (self.field, &mut entry.field),
            (self.record_kind, &mut entry.record_kind),
            (self.container, &mut entry.container),
        ] {
            if let Some(new) = new {
                held.clear();
                held.push_str(new);
            }
        }
        Self::front_code(&mut entry.record_id, self.record_id)?;
        match self.record_path {
            Some(path) => Self::front_code(&mut entry.record_path, path)?,
            None => entry.record_path.clone_from(&entry.record_id),
        }
        Ok(())
    }
}

/// Decode the entry at `*at` of segment `data` into `entry` (the segment's
/// previous entry, whose room is reused; cleared where a segment starts
/// afresh) and move `*at` past it.
pub(super) fn decode_next(
    data: &[u8],
    at: &mut usize,
    entry: &mut OwnedEntry,
) -> Result<(), StoreError> {
    if *at == 0 {
        entry.record_id.clear();
        entry.record_path.clear();
    }
    let mut bytes = Bytes { data, at: *at };
    Delta::read(&mut bytes)?.apply_to(entry)?;
    *at = bytes.at;
    Ok(())
}

/// Reads one segment's entries.
pub(super) struct SegmentReader<'a> {
    data: &'a [u8],
    at: usize,
    entry: OwnedEntry,
}

impl<'a> SegmentReader<'a> {
    pub(super) fn new(data: &'a [u8]) -> SegmentReader<'a> {
        SegmentReader {
            data,
            at: 0,
            entry: OwnedEntry::default(),
        }
    }

    /// The next entry, `None` at the end.
    pub(super) fn next_entry(&mut self) -> Result<Option<Entry<'_>>, StoreError> {
        if self.at >= self.data.len() {
            return Ok(None);
        }
        decode_next(self.data, &mut self.at, &mut self.entry)?;
        Ok(Some(self.entry.view()))
    }
}

/// Every entry of a segment, owned (for tests).
#[cfg(test)]
pub(super) fn owned_entries(data: &[u8]) -> Result<Vec<OwnedEntry>, StoreError> {
    let mut reader = SegmentReader::new(data);
    let mut entries = Vec::new();
    while let Some(entry) = reader.next_entry()? {
        entries.push(OwnedEntry::new(&entry));
    }
    Ok(entries)
}

/// Where a run's segments go: `(key, entries, data)`.
pub(super) type SegmentSink<'w> = Box<dyn FnMut(i64, i64, &[u8]) -> Result<(), StoreError> + 'w>;

/// Split entries in hash order into segments at `bits`' granularity, handing
/// each to `write`.
pub(super) struct RunWriter<'w> {
    pub(super) bits: u32,
    pub(super) key: Option<i64>,
    pub(super) segment: SegmentWriter,
    pub(super) write: SegmentSink<'w>,
}

impl<'w> RunWriter<'w> {
    pub(super) fn new(
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

    pub(super) fn push(&mut self, entry: &RawEntry<'_>) -> Result<(), StoreError> {
        let key = key(&entry.hash, self.bits);
        if self.key != Some(key) || self.segment.count >= MAX_SEGMENT_ENTRIES {
            self.flush()?;
            self.key = Some(key);
        }
        self.segment.push(entry);
        Ok(())
    }

    pub(super) fn flush(&mut self) -> Result<(), StoreError> {
        if let Some(key) = self.key
            && self.segment.count > 0
        {
            let (count, data) = self.segment.take();
            (self.write)(key, count, &data)?;
        }
        Ok(())
    }
}

/// A run id not in use.
pub(super) fn next_run(database: &dyn Database) -> Result<i64, StoreError> {
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

/// Segments written to the database in one batch, at most.
const SEGMENT_BATCH: usize = 512;

/// Segment bytes a batch holds before it is written, whatever its count: a
/// hash range in every message makes segments of [`MAX_SEGMENT_ENTRIES`]
/// entries, and 512 of those held 19 MB at the end of a scan of a million
/// messages.
const SEGMENT_BATCH_BYTES: usize = 1 << 20;

/// Where a run's segments are written.
#[derive(Debug, Clone, Copy)]
pub(super) enum RunTarget<'d> {
    /// The index: a run of `source`'s, written by scan `scan_id`.
    Index {
        source: &'d str,
        scan_id: i64,
        run: i64,
    },
    /// The connection's staging table: spill `spill` of running scan
    /// `scan_id`.
    Staged { scan_id: i64, spill: i64 },
}

/// The segments of one run, written in batches: one round trip per batch
/// on PostgreSQL, bounded in count and bytes.
pub(super) struct SegmentInserts<'d> {
    database: &'d dyn Database,
    target: RunTarget<'d>,
    pending: Vec<Vec<Value>>,
    bytes: usize,
}

impl<'d> SegmentInserts<'d> {
    pub(super) fn new(database: &'d dyn Database, target: RunTarget<'d>) -> SegmentInserts<'d> {
        SegmentInserts {
            database,
            target,
            pending: Vec::new(),
            bytes: 0,
        }
    }

    /// Add segment `key` of `count` entries; writes the batch once full.
    pub(super) fn push(&mut self, key: i64, count: i64, data: &[u8]) -> Result<(), StoreError> {
        self.bytes += data.len();
        self.pending.push(match self.target {
            RunTarget::Index {
                source,
                scan_id,
                run,
            } => vec![
                Value::from(key),
                Value::from(source),
                Value::from(scan_id),
                Value::from(run),
                Value::from(count),
                Value::from(data),
            ],
            RunTarget::Staged { scan_id, spill } => vec![
                Value::from(scan_id),
                Value::from(spill),
                Value::from(key),
                Value::from(count),
                Value::from(data),
            ],
        });
        if self.pending.len() >= SEGMENT_BATCH || self.bytes >= SEGMENT_BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Write what is pending.
    pub(super) fn flush(&mut self) -> Result<(), StoreError> {
        self.bytes = 0;
        let pending = std::mem::take(&mut self.pending);
        if pending.is_empty() {
            return Ok(());
        }
        let statement = match self.target {
            RunTarget::Index { .. } => {
                "INSERT INTO identity_segments (key, source, scan_id, run, entries, data)
                 VALUES ($1, $2, $3, $4, $5, $6)"
            }
            RunTarget::Staged { .. } => {
                "INSERT INTO staged_identity_segments (scan_id, spill, key, entries, data)
                 VALUES ($1, $2, $3, $4, $5)"
            }
        };
        self.database.insert_many(statement, pending)?;
        Ok(())
    }
}

/// The data of segment `id`.
pub(super) fn segment_data(database: &dyn Database, id: i64) -> Result<Vec<u8>, StoreError> {
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
