//! How the identity index is kept: in segments, not one row per occurrence.
//!
//! A scan's identity rows are held encoded in memory (spilled to a temporary
//! table past [`SPILL_BYTES`]) until the scan finishes. Then they are sorted by
//! hash and written as *segments*: one SQLite row per 12-bit hash bucket
//! holding every entry of that bucket, so a scan of a mailbox with 100,000
//! correspondents writes 4,096 rows, not 100,000. A lookup reads one bucket's
//! segments and walks them; entries are sorted, so it stops at the first
//! larger hash.
//!
//! Segments follow the records as rows did: a complete scan's segments
//! replace the source's older ones; where a scan read incrementally or could
//! not read, older segments are kept, less the entries of records gone. A
//! source with more than [`MAX_GENERATIONS`] scans' segments has them merged
//! into one, bucket by bucket, so lookups read a bounded number of rows.
//!
//! An entry is: the 16-byte hash, a flags byte, the record's time (8 bytes,
//! when flagged), then length-prefixed strings: kind, field, record id, record
//! path (when it differs from the id), record kind, container. A blob that
//! does not decode is an error, never a panic.

use std::collections::HashMap;

use rusqlite::{Connection, Transaction, params};
use tillsyn_connectors::identity::IdentityHash;

use super::{IdentityRow, NewIdentity, StoreError};

/// Encoded bytes a running scan holds in memory before it spills them.
const SPILL_BYTES: usize = 16 << 20;

/// Scans' segments a source keeps before they are merged into one.
pub(super) const MAX_GENERATIONS: i64 = 4;

const HAS_TIME: u8 = 1;
const PATH_IS_ID: u8 = 2;

/// The bucket of a hash: its first 12 bits.
pub(super) fn bucket(hash: &IdentityHash) -> i64 {
    (i64::from(hash[0]) << 4) | (i64::from(hash[1]) >> 4)
}

/// One encoded entry, borrowed from a segment.
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
    /// The whole entry as encoded.
    pub raw: &'a [u8],
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
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    let mut length = text.len();
    loop {
        let byte = (length & 0x7f) as u8;
        length >>= 7;
        if length == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(text.as_bytes());
}

/// Append `identity` encoded to `out`.
pub(super) fn encode(identity: &NewIdentity, out: &mut Vec<u8>) {
    out.extend_from_slice(&identity.hash);
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
    put_str(out, &identity.kind);
    put_str(out, &identity.field);
    put_str(out, &identity.record_id);
    if flags & PATH_IS_ID == 0 {
        put_str(out, &identity.record_path);
    }
    put_str(out, identity.record_kind);
    put_str(out, &identity.container);
}

fn corrupt() -> StoreError {
    StoreError::Corrupt("an identity index segment does not decode".to_owned())
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], StoreError> {
        let end = self.at.checked_add(count).ok_or_else(corrupt)?;
        let bytes = self.data.get(self.at..end).ok_or_else(corrupt)?;
        self.at = end;
        Ok(bytes)
    }

    fn text(&mut self) -> Result<&'a str, StoreError> {
        let mut length = 0usize;
        for shift in (0..35).step_by(7) {
            let byte = self.take(1)?[0];
            length |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return std::str::from_utf8(self.take(length)?).map_err(|_| corrupt());
            }
        }
        Err(corrupt())
    }

    fn entry(&mut self) -> Result<Entry<'a>, StoreError> {
        let start = self.at;
        let mut hash = [0u8; 16];
        hash.copy_from_slice(self.take(16)?);
        let flags = self.take(1)?[0];
        let record_time = if flags & HAS_TIME != 0 {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(self.take(8)?);
            Some(i64::from_le_bytes(bytes))
        } else {
            None
        };
        let kind = self.text()?;
        let field = self.text()?;
        let record_id = self.text()?;
        let record_path = if flags & PATH_IS_ID != 0 {
            record_id
        } else {
            self.text()?
        };
        let record_kind = self.text()?;
        let container = self.text()?;
        Ok(Entry {
            hash,
            kind,
            field,
            record_id,
            record_path,
            record_kind,
            container,
            record_time,
            raw: &self.data[start..self.at],
        })
    }
}

/// Every entry of a segment, in order; an error where it stops decoding.
pub(super) fn entries(data: &[u8]) -> impl Iterator<Item = Result<Entry<'_>, StoreError>> {
    let mut reader = Reader { data, at: 0 };
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || reader.at >= reader.data.len() {
            return None;
        }
        let entry = reader.entry();
        failed = entry.is_err();
        Some(entry)
    })
}

/// One running scan's rows, encoded.
#[derive(Debug, Default)]
struct Staged {
    bytes: Vec<u8>,
    /// Hash, start and end in `bytes` of each entry.
    spans: Vec<(IdentityHash, u32, u32)>,
}

/// Segments of sorted, deduplicated entries, by bucket: `(bucket, entries,
/// data)`.
type Segments = Vec<(i64, i64, Vec<u8>)>;

impl Staged {
    fn segments(&self) -> Segments {
        let mut order: Vec<&[u8]> = self
            .spans
            .iter()
            .map(|&(_, start, end)| &self.bytes[start as usize..end as usize])
            .collect();
        // An entry starts with its hash: sorting the bytes sorts by hash.
        order.sort_unstable();
        order.dedup();
        group(order.into_iter())
    }
}

/// Entries in hash order, as segments by bucket.
fn group<'a>(sorted: impl Iterator<Item = &'a [u8]>) -> Segments {
    let mut segments: Segments = Vec::new();
    for raw in sorted {
        let mut hash = [0u8; 16];
        hash.copy_from_slice(&raw[..16]);
        let bucket = bucket(&hash);
        match segments.last_mut() {
            Some((last, count, data)) if *last == bucket => {
                *count += 1;
                data.extend_from_slice(raw);
            }
            _ => segments.push((bucket, 1, raw.to_vec())),
        }
    }
    segments
}

/// Rows of running scans, by scan id.
#[derive(Debug)]
pub(super) struct Staging {
    scans: HashMap<i64, Staged>,
    /// Encoded bytes a scan holds before it spills them.
    spill_bytes: usize,
}

impl Default for Staging {
    fn default() -> Staging {
        Staging {
            scans: HashMap::new(),
            spill_bytes: SPILL_BYTES,
        }
    }
}

impl Staging {
    /// Staging that spills past `bytes` (tests spill at once).
    #[cfg(test)]
    pub fn spilling_at(bytes: usize) -> Staging {
        Staging {
            scans: HashMap::new(),
            spill_bytes: bytes,
        }
    }

    /// Stage `identities` for `scan_id`; past the spill size they go to the
    /// connection's temporary table.
    pub fn add(
        &mut self,
        connection: &mut Connection,
        scan_id: i64,
        identities: &[NewIdentity],
    ) -> Result<(), StoreError> {
        let staged = self.scans.entry(scan_id).or_default();
        for identity in identities {
            let start = staged.bytes.len();
            encode(identity, &mut staged.bytes);
            let end = staged.bytes.len();
            let (Ok(start), Ok(end)) = (u32::try_from(start), u32::try_from(end)) else {
                return Err(StoreError::Corrupt(
                    "identity staging overflowed".to_owned(),
                ));
            };
            staged.spans.push((identity.hash, start, end));
        }
        if staged.bytes.len() >= self.spill_bytes {
            let segments = staged.segments();
            *staged = Staged::default();
            let transaction = connection.transaction()?;
            {
                let mut insert = transaction.prepare_cached(
                    "INSERT INTO staged_identity_segments (scan_id, bucket, entries, data)
                     VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (bucket, count, data) in &segments {
                    insert.execute(params![scan_id, bucket, count, data])?;
                }
            }
            transaction.commit()?;
        }
        Ok(())
    }

    /// Forget what `scan_id` staged (it failed, or has been written).
    pub fn drop_scan(&mut self, connection: &Connection, scan_id: i64) -> Result<(), StoreError> {
        self.scans.remove(&scan_id);
        connection.execute(
            "DELETE FROM staged_identity_segments WHERE scan_id = ?1",
            [scan_id],
        )?;
        Ok(())
    }

    /// Write what `scan_id` staged as `source`'s segments.
    pub fn write(
        &mut self,
        transaction: &Transaction<'_>,
        scan_id: i64,
        source: &str,
    ) -> Result<(), StoreError> {
        if let Some(staged) = self.scans.remove(&scan_id) {
            let mut insert = transaction.prepare_cached(
                "INSERT INTO identity_segments (bucket, source, scan_id, entries, data)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (bucket, count, data) in staged.segments() {
                insert.execute(params![bucket, source, scan_id, count, data])?;
            }
        }
        transaction.execute(
            "INSERT INTO identity_segments (bucket, source, scan_id, entries, data)
             SELECT bucket, ?2, scan_id, entries, data FROM staged_identity_segments
             WHERE scan_id = ?1",
            params![scan_id, source],
        )?;
        Ok(())
    }
}

/// Keep of `source`'s segments older than `scan_id` only the entries `keep`
/// holds to, by record path.
pub(super) fn filter_older(
    transaction: &Transaction<'_>,
    source: &str,
    scan_id: i64,
    keep: impl Fn(&str) -> bool,
) -> Result<(), StoreError> {
    let older: Vec<(i64, Vec<u8>)> = {
        let mut query = transaction
            .prepare("SELECT id, data FROM identity_segments WHERE source = ?1 AND scan_id < ?2")?;
        query
            .query_map(params![source, scan_id], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?
            .collect::<Result<_, _>>()?
    };
    let mut delete = transaction.prepare("DELETE FROM identity_segments WHERE id = ?1")?;
    let mut update = transaction
        .prepare("UPDATE identity_segments SET entries = ?2, data = ?3 WHERE id = ?1")?;
    for (id, data) in older {
        let mut kept = Vec::with_capacity(data.len());
        let mut count = 0i64;
        let mut dropped = false;
        for entry in entries(&data) {
            let entry = entry?;
            if keep(entry.record_path) {
                kept.extend_from_slice(entry.raw);
                count += 1;
            } else {
                dropped = true;
            }
        }
        if count == 0 {
            delete.execute([id])?;
        } else if dropped {
            update.execute(params![id, count, kept])?;
        }
    }
    Ok(())
}

/// Merge `source`'s segments into one generation (`scan_id`) once they come
/// from more than [`MAX_GENERATIONS`] scans. Where two generations hold the
/// same hash, record, kind and field, the newer one's entry stays.
pub(super) fn compact(
    transaction: &Transaction<'_>,
    source: &str,
    scan_id: i64,
) -> Result<(), StoreError> {
    let generations: i64 = transaction.query_row(
        "SELECT count(DISTINCT scan_id) FROM identity_segments WHERE source = ?1",
        [source],
        |row| row.get(0),
    )?;
    if generations <= MAX_GENERATIONS {
        return Ok(());
    }
    let buckets: Vec<i64> = {
        let mut query = transaction
            .prepare("SELECT DISTINCT bucket FROM identity_segments WHERE source = ?1")?;
        query
            .query_map([source], |row| row.get(0))?
            .collect::<Result<_, _>>()?
    };
    let mut read = transaction.prepare(
        "SELECT id, data FROM identity_segments WHERE source = ?1 AND bucket = ?2
         ORDER BY scan_id DESC",
    )?;
    let mut delete = transaction.prepare("DELETE FROM identity_segments WHERE id = ?1")?;
    let mut insert = transaction.prepare(
        "INSERT INTO identity_segments (bucket, source, scan_id, entries, data)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for bucket in buckets {
        let rows: Vec<(i64, Vec<u8>)> = read
            .query_map(params![source, bucket], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?
            .collect::<Result<_, _>>()?;
        let mut merged: Vec<Entry<'_>> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (_, data) in &rows {
            for entry in entries(data) {
                let entry = entry?;
                if seen.insert((entry.hash, entry.record_id, entry.kind, entry.field)) {
                    merged.push(entry);
                }
            }
        }
        merged.sort_unstable_by(|a, b| a.raw.cmp(b.raw));
        for (id, _) in &rows {
            delete.execute([id])?;
        }
        for (bucket, count, data) in group(merged.iter().map(|entry| entry.raw)) {
            insert.execute(params![bucket, source, scan_id, count, data])?;
        }
    }
    Ok(())
}

/// Every entry the index holds for `hash` (in `source` only, when given), with
/// its source; where two scans' segments hold the same record, kind and field,
/// the newer one's.
pub(super) fn lookup(
    connection: &Connection,
    hash: &IdentityHash,
    source: Option<&str>,
    mut found: impl FnMut(&str, Entry<'_>),
) -> Result<(), StoreError> {
    let mut query = connection.prepare_cached(
        "SELECT source, data FROM identity_segments
         WHERE bucket = ?1 AND (?2 IS NULL OR source = ?2)
         ORDER BY source, scan_id DESC",
    )?;
    let mut rows = query.query(params![bucket(hash), source])?;
    let mut seen = std::collections::HashSet::new();
    while let Some(row) = rows.next()? {
        let source: String = row.get(0)?;
        let data = row.get_ref(1)?.as_blob().map_err(|_| corrupt())?;
        for entry in entries(data) {
            let entry = entry?;
            match entry.hash.cmp(hash) {
                std::cmp::Ordering::Less => continue,
                std::cmp::Ordering::Greater => break,
                std::cmp::Ordering::Equal => {}
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

    fn identity(hash: IdentityHash, id: &str, path: &str, time: Option<i64>) -> NewIdentity {
        NewIdentity {
            hash,
            kind: "email".into(),
            field: "from".into(),
            record_id: id.into(),
            record_path: path.into(),
            record_kind: "message",
            container: "INBOX".into(),
            record_time: time,
        }
    }

    #[test]
    fn entries_round_trip_and_sort_by_hash_within_buckets() {
        let staged_rows = [
            identity([0xff; 16], "INBOX/3", "INBOX/3", None),
            identity([0x00; 16], "x", "anna/INBOX/1", Some(1_700_000_000)),
            identity([0x00; 16], "x", "anna/INBOX/1", Some(1_700_000_000)),
            identity(
                [0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9],
                "é/ü",
                "é/ü",
                Some(-5),
            ),
        ];
        let mut staged = Staged::default();
        for row in &staged_rows {
            let start = staged.bytes.len() as u32;
            encode(row, &mut staged.bytes);
            staged
                .spans
                .push((row.hash, start, staged.bytes.len() as u32));
        }
        let segments = staged.segments();
        // Two buckets (0 and 0xfff); the duplicate once.
        assert_eq!(
            segments
                .iter()
                .map(|(bucket, count, _)| (*bucket, *count))
                .collect::<Vec<_>>(),
            vec![(0, 2), (0xfff, 1)]
        );
        let first: Vec<Entry<'_>> = entries(&segments[0].2)
            .collect::<Result<_, _>>()
            .expect("decodes");
        assert_eq!(first[0].record_path, "anna/INBOX/1");
        assert_eq!(first[0].record_id, "x");
        assert_eq!(first[0].record_time, Some(1_700_000_000));
        assert_eq!(first[1].record_path, "é/ü");
        assert_eq!(first[1].record_time, Some(-5));
        assert!(first[0].hash < first[1].hash);
        let last: Vec<Entry<'_>> = entries(&segments[1].2)
            .collect::<Result<_, _>>()
            .expect("decodes");
        assert_eq!(last[0].record_time, None);
        assert_eq!(last[0].record_path, "INBOX/3");
    }

    proptest! {
        #[test]
        fn any_bytes_decode_to_entries_or_an_error_never_a_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut decoded = 0usize;
            for entry in entries(&data) {
                match entry {
                    Ok(entry) => decoded += entry.raw.len(),
                    Err(_) => break,
                }
            }
            prop_assert!(decoded <= data.len());
        }

        #[test]
        fn any_identity_round_trips(
            hash in any::<[u8; 16]>(),
            id in ".{0,40}",
            path in ".{0,40}",
            field in "[a-z]{0,300}",
            time in proptest::option::of(any::<i64>()),
        ) {
            let mut row = identity(hash, &id, &path, time);
            row.field = field;
            let mut data = Vec::new();
            encode(&row, &mut data);
            let decoded: Vec<Entry<'_>> = entries(&data).collect::<Result<_, _>>().expect("decodes");
            prop_assert_eq!(decoded.len(), 1);
            let entry = decoded[0];
            prop_assert_eq!(entry.hash, hash);
            prop_assert_eq!(entry.record_id, id.as_str());
            prop_assert_eq!(entry.record_path, path.as_str());
            prop_assert_eq!(entry.field, row.field.as_str());
            prop_assert_eq!(entry.record_time, time);
            prop_assert_eq!(entry.raw.len(), data.len());
        }
    }
}
