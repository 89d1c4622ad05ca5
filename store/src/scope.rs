//! Where a scan's end decides: the places a finished scan read, so that
//! nothing it could not read (a place unreadable, a unit of another, an
//! incremental read's untouched records) is resolved or replaced.

use crate::db::{self, Database, Value};
use crate::{ScanEnd, StoreError};

/// Whether a row about `path`, recorded before this scan, stays: it lies where
/// the scan could not read, or where it read incrementally and the record is
/// still there (a carried scope's own path is its folder, there too).
pub(crate) fn kept(end: &ScanEnd<'_>, path: &str) -> bool {
    outside(end, path)
        || end
            .unread_prefixes
            .iter()
            .any(|prefix| under_prefix(path, prefix))
        || end.carried.iter().any(|scope| {
            scope.prefix == path || (under_prefix(path, &scope.prefix) && scope.still_there(path))
        })
}

/// Whether every record in `place` (a folder or directory, see
/// `identity_index::Places`) is [`kept`]: it lies where the scan could not
/// read, or in a scope read incrementally from which nothing went.
pub(crate) fn keeps_all(end: &ScanEnd<'_>, place: &str) -> bool {
    // A place that neither lies in the unit nor holds part of it.
    let apart = !end.within.is_empty()
        && end
            .within
            .iter()
            .all(|prefix| !under_prefix(place, prefix) && !under_prefix(prefix, place));
    apart
        || end
            .unread_prefixes
            .iter()
            .any(|prefix| under_prefix(place, prefix))
        || end.carried.iter().any(|scope| {
            scope.gone.is_empty()
                && scope.present.is_none()
                && scope.left_out.is_none()
                && under_prefix(place, &scope.prefix)
        })
}

/// The rows of `select` (`SELECT … FROM … WHERE source = $1`) whose
/// `column` (the row's value at `at`) lies under one of `prefixes`, found by
/// range through the indexes of migration 17, each row once.
pub(crate) fn rows_within(
    database: &dyn Database,
    (select, column, at): (&str, &str, usize),
    source: &str,
    prefixes: &[String],
) -> Result<Vec<db::Row>, StoreError> {
    let sql = format!(
        "{select} AND {}",
        db::in_prefix_range(database.engine(), column, 2)
    );
    let mut found = Vec::new();
    for (index, prefix) in prefixes.iter().enumerate() {
        let [low, high] = db::prefix_range(prefix);
        for row in database.query(&sql, &[Value::from(source), low, high])? {
            let path = row.text(at)?;
            let earlier = prefixes[..index]
                .iter()
                .any(|other| under_prefix(&path, other));
            if under_prefix(&path, prefix) && !earlier {
                found.push(row);
            }
        }
    }
    Ok(found)
}

/// Whether the scan read all of its source, all of it anew: then whatever
/// older scans recorded can go wholesale.
pub(crate) fn whole_and_read(end: &ScanEnd<'_>) -> bool {
    end.within.is_empty() && end.unread_prefixes.is_empty() && end.carried.is_empty()
}

/// Whether `path` lies outside the unit a scan covered (never, for a scan
/// of a whole source).
pub(crate) fn outside(end: &ScanEnd<'_>, path: &str) -> bool {
    !end.within.is_empty() && !end.within.iter().any(|prefix| under_prefix(path, prefix))
}

/// Whether `path` is `prefix` or lies below it (an empty prefix holds all).
pub(crate) fn under_prefix(path: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}
