//! The runs of a source in the store: following records (filtering what
//! is gone), compacting past [`crate::MAX_RUNS`], and looking a hash up.

use std::cmp::Ordering;

use super::codec::{Entry, OwnedEntry, corrupt};
use super::segment::{
    RunTarget, RunWriter, SegmentInserts, SegmentReader, SegmentWriter, decode_next, next_run,
    segment_data,
};
use super::staging::Places;
use super::{KEY_BITS, MAX_RUNS, key};
use crate::StoreError;
use crate::db::{Database, Value};
use tillsyn_core::identity::IdentityHash;

/// Keep of `source`'s segments older than `scan_id` only the entries `keep`
/// holds to, by record path; returns the places of those kept.
pub(crate) fn filter_older(
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
pub(crate) fn places(database: &dyn Database, source: &str) -> Result<Vec<String>, StoreError> {
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
pub(crate) fn set_places(
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

/// One run being merged: its segments in hash order, read a few at a time
/// and decoded one entry at a time into [`RunCursor::current`].
pub(super) struct RunCursor {
    pub(super) scan_id: i64,
    pub(super) run: i64,
    /// Its segments' ids and entry counts, in key order.
    pub(super) segments: std::vec::IntoIter<(i64, i64)>,
    /// Segments read ahead, in key order.
    pub(super) ahead: std::collections::VecDeque<Vec<u8>>,
    /// The segment being decoded, and where its next entry starts.
    pub(super) data: Vec<u8>,
    pub(super) at: usize,
    /// The entry at the cursor (its room reused by the next); `None` once
    /// the run is done.
    pub(super) current: Option<OwnedEntry>,
}

/// Segments a merge reads in one statement (one round trip on PostgreSQL),
/// at most.
pub(super) const READ_AHEAD: usize = 32;

/// Entries a run's read-ahead holds, about: a hash in every message makes
/// segments of [`super::MAX_SEGMENT_ENTRIES`], and 32 of those for each of a
/// merge's runs held 24 MB.
const READ_AHEAD_ENTRIES: i64 = 2 * super::MAX_SEGMENT_ENTRIES;

impl RunCursor {
    /// A cursor at the first entry of `run`.
    pub(super) fn open(
        database: &dyn Database,
        run: i64,
        scan_id: i64,
    ) -> Result<RunCursor, StoreError> {
        let segments: Vec<(i64, i64)> = database
            .query(
                "SELECT id, entries FROM identity_segments WHERE run = $1 ORDER BY key, id",
                &[Value::from(run)],
            )?
            .iter()
            .map(|row| Ok((row.int(0)?, row.int(1)?)))
            .collect::<Result<_, StoreError>>()?;
        let mut cursor = RunCursor {
            scan_id,
            run,
            segments: segments.into_iter(),
            ahead: Default::default(),
            data: Vec::new(),
            at: 0,
            current: Some(OwnedEntry::default()),
        };
        cursor.advance(database)?;
        Ok(cursor)
    }

    /// Move to the next entry.
    pub(super) fn advance(&mut self, database: &dyn Database) -> Result<(), StoreError> {
        loop {
            let Some(current) = self.current.as_mut() else {
                return Ok(());
            };
            if self.at < self.data.len() {
                return decode_next(&self.data, &mut self.at, current);
            }
            if self.ahead.is_empty() {
                let mut ids = Vec::new();
                let mut entries = 0;
                while ids.len() < READ_AHEAD
                    && (ids.is_empty() || entries < READ_AHEAD_ENTRIES)
                    && let Some((id, count)) = self.segments.next()
                {
                    ids.push(id);
                    entries += count;
                }
                self.ahead = segments_data(database, &ids)?.into();
            }
            match self.ahead.pop_front() {
                Some(data) => {
                    self.data = data;
                    self.at = 0;
                }
                None => self.current = None,
            }
        }
    }
}

/// The data of segments `ids`, in that order.
pub(super) fn segments_data(
    database: &dyn Database,
    ids: &[i64],
) -> Result<Vec<Vec<u8>>, StoreError> {
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
pub(crate) fn compact(database: &dyn Database, source: &str) -> Result<(), StoreError> {
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
            cursors.push(RunCursor::open(database, run, scan_id)?);
        }
        let mut inserts = SegmentInserts::new(
            database,
            RunTarget::Index {
                source,
                scan_id: merged_scan,
                run: merged_run,
            },
        );
        let mut out = RunWriter::new(usize::try_from(total).unwrap_or(0), |key, count, data| {
            inserts.push(key, count, data)
        });
        // The entry written last (its room reused).
        let mut chosen = OwnedEntry::default();
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
            let Some(current) = &cursors[best].current else {
                break;
            };
            chosen.clone_from(current);
            out.push(&chosen.view().raw())?;
            // Past it, and past its equals in other runs (older ones).
            for cursor in cursors.iter_mut() {
                while cursor
                    .current
                    .as_ref()
                    .is_some_and(|entry| entry.view().identity_order(&chosen.view()).is_eq())
                {
                    cursor.advance(database)?;
                }
            }
        }
        out.flush()?;
        drop(out);
        inserts.flush()?;
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
pub(crate) fn lookup(
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
