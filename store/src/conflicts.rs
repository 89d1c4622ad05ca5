//! Conflict keys: what two sources say of one key, kept as keyed hashes, and
//! judging the conflicts between them.

use chrono::{DateTime, Utc};

use crate::db::{self, Database, Value};
use crate::scope::{kept, rows_within, whole_and_read};
use crate::{NewConflictKey, ScanEnd, Store, StoreError};

impl Store {
    /// Judge `conflict_rules` again from every source's latest keys, outside
    /// a scan: a fleet does it once for a source whose units were scanned one
    /// by one (their scans leave it out). Conflicts no longer there resolve,
    /// marked with the newest scan. Returns how many resolved.
    pub fn judge_conflicts(
        &mut self,
        conflict_rules: &[(String, &'static str)],
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        db::transaction(self.db(), true, |db| {
            let newest = db
                .query("SELECT max(id) FROM scans", &[])?
                .first()
                .map(|row| row.opt_int(0))
                .transpose()?
                .flatten();
            let Some(newest) = newest else {
                return Ok(0);
            };
            let mut resolved = 0;
            for (rule, severity) in conflict_rules {
                resolved += judge_conflicts(db, rule, severity, newest, at.timestamp())?;
            }
            Ok(resolved)
        })
    }

    /// Store conflict keys seen by scan `scan_id` of `source`.
    pub fn record_conflict_keys(
        &mut self,
        scan_id: i64,
        source: &str,
        keys: &[NewConflictKey],
    ) -> Result<(), StoreError> {
        let rows: Vec<Vec<Value>> = keys
            .iter()
            .map(|key| {
                vec![
                    Value::from(key.rule.as_str()),
                    Value::from(key.side),
                    Value::from(source),
                    Value::from(key.key.as_str()),
                    Value::from(key.record_id.as_str()),
                    Value::from(key.record_path.as_str()),
                    Value::from(key.record_kind),
                    Value::from(key.custodian.as_deref()),
                    Value::from(scan_id),
                ]
            })
            .collect();
        db::transaction(self.db(), true, |db| {
            db.insert_many(
                "INSERT INTO conflict_keys (rule, side, source, key, record_id, record_path,
                     record_kind, custodian, scan_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                rows,
            )?;
            Ok(())
        })
    }
}

/// Remove the conflict keys of `source` that scans before `scan_id` recorded,
/// except those [`kept`].
pub(crate) fn replace_older_conflict_keys(
    database: &dyn Database,
    source: &str,
    scan_id: i64,
    end: &ScanEnd<'_>,
) -> Result<(), StoreError> {
    if whole_and_read(end) {
        database.execute(
            "DELETE FROM conflict_keys WHERE source = $1 AND scan_id < $2",
            &[Value::from(source), Value::from(scan_id)],
        )?;
        return Ok(());
    }
    // A record's older keys go together, or stay together.
    let older = match end.within {
        [] => database.query(
            "SELECT DISTINCT record_path, scan_id FROM conflict_keys WHERE source = $1 AND scan_id < $2",
            &[Value::from(source), Value::from(scan_id)],
        )?,
        within => rows_within(
            database,
            (
                "SELECT record_path, scan_id FROM conflict_keys WHERE source = $1",
                "record_path",
                0,
            ),
            source,
            within,
        )?,
    };
    let mut decided = std::collections::BTreeSet::new();
    for row in &older {
        let path = row.text(0)?;
        if row.int(1)? >= scan_id || !decided.insert(path.clone()) {
            continue;
        }
        if !kept(end, &path) {
            database.execute(
                "DELETE FROM conflict_keys WHERE source = $1 AND scan_id < $2 AND record_path = $3",
                &[
                    Value::from(source),
                    Value::from(scan_id),
                    Value::from(path.as_str()),
                ],
            )?;
        }
    }
    Ok(())
}

/// Judge a `conflict` rule from every source's latest keys: a forbidden record
/// whose person is marked is a finding (new or seen again by this scan); the
/// rule's open findings no longer in that set resolve. Returns how many resolved.
pub(crate) fn judge_conflicts(
    database: &dyn Database,
    rule: &str,
    severity: &str,
    scan_id: i64,
    finished: i64,
) -> Result<u64, StoreError> {
    // Each forbidden record whose person is marked, once, with the first
    // source that marks them.
    let current = database.query(
        "SELECT f.source, f.record_id, min(f.record_path), min(f.record_kind), min(f.custodian),
                min(m.source)
         FROM conflict_keys f
         JOIN conflict_keys m ON m.rule = f.rule AND m.side = 'marked' AND m.key = f.key
         WHERE f.rule = $1 AND f.side = 'forbidden'
         GROUP BY f.source, f.record_id",
        &[Value::from(rule)],
    )?;
    let mut rows: Vec<Vec<Value>> = Vec::with_capacity(current.len());
    for row in &current {
        let data = tillsyn_core::detail::Detail::Conflict {
            marked_in: row.text(5)?,
        };
        let detail = data.render(tillsyn_core::language::Language::En);
        rows.push(vec![
            Value::from(rule),
            Value::from(row.text(0)?),
            Value::from(row.text(1)?),
            Value::from(row.text(2)?),
            Value::from(row.text(3)?),
            Value::from(row.opt_text(4)?),
            Value::from(severity),
            Value::from(detail),
            Value::from(finished),
            Value::from(scan_id),
            Value::from(data.to_json()),
        ]);
    }
    {
        // One row per (source, record): grouped so above.
        database.insert_many(
            "INSERT INTO findings (rule, source, record_id, record_path, record_kind, custodian,
                 severity, detail, age_days, first_seen, first_seen_scan, last_seen, last_seen_scan,
                 detail_data)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, $10, $9, $10, $11)
             ON CONFLICT (rule, source, record_id) WHERE resolved_at IS NULL DO UPDATE SET
                 record_path = excluded.record_path, custodian = excluded.custodian,
                 severity = excluded.severity, detail = excluded.detail,
                 last_seen = excluded.last_seen, last_seen_scan = excluded.last_seen_scan,
                 detail_data = excluded.detail_data",
            rows,
        )?;
    }
    Ok(database.execute(
        "UPDATE findings SET resolved_at = $2, resolved_scan = $3
         WHERE rule = $1 AND resolved_at IS NULL AND last_seen_scan < $3",
        &[
            Value::from(rule),
            Value::from(finished),
            Value::from(scan_id),
        ],
    )?)
}
