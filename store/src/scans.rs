//! Scans: beginning one, recording what it found, and finishing it, which
//! is where a finding is resolved only by a scan that read its place; and
//! what the store says of a source's scans afterwards.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::conflicts::{judge_conflicts, replace_older_conflict_keys};
use crate::db::{self, Database, Value};
use crate::findings::open_count;
use crate::scope::{keeps_all, kept, outside, rows_within, under_prefix, whole_and_read};
use crate::{
    CUSTODIAN_MARK_EXCEPTION, CUSTODIAN_MARK_UNTIL, NewFinding, RecordCacheUpdate, RuleChanges,
    ScanEnd, ScanRow, ScanStatus, ScanTally, SourceState, Store, StoreError, database_now,
    identity_index, to_time,
};

impl Store {
    /// Record the start of a scan of the whole of `source`; returns its id.
    pub fn begin_scan(
        &mut self,
        source: &str,
        started_at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        self.begin_unit_scan(source, None, started_at)
    }

    /// Record the start of a scan of `source`, or of one `unit` of it (an
    /// account, in a fleet); returns its id.
    pub fn begin_unit_scan(
        &mut self,
        source: &str,
        unit: Option<&str>,
        started_at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        // Scans of this source left `running` by a process that holds no
        // lease any more (it died) failed: nothing is scanning them.
        self.db().execute(
            "UPDATE scans SET status = 'failed', error_kind = 'interrupted',
                 error_message = 'the tillsyn process running the scan stopped before it finished',
                 finished_at = $3
             WHERE source = $1 AND status = 'running' AND holder IS NOT NULL AND holder <> $2
               AND NOT EXISTS (SELECT 1 FROM scan_leases l
                               WHERE l.holder = scans.holder AND l.expires_at >= $3)",
            &[
                Value::from(source),
                Value::from(self.holder.as_str()),
                Value::from(database_now(self.db())?),
            ],
        )?;
        let inserted = self.db().query(
            "INSERT INTO scans (source, unit, started_at, status, holder)
             VALUES ($1, $2, $3, 'running', $4) RETURNING id",
            &[
                Value::from(source),
                Value::from(unit),
                Value::from(started_at.timestamp()),
                Value::from(self.holder.as_str()),
            ],
        )?;
        Ok(inserted
            .first()
            .ok_or(StoreError::Missing("scans"))?
            .int(0)?)
    }

    /// Store findings seen by scan `scan_id` of `source` at `seen_at`: new ones are
    /// inserted, open ones get their `last_seen` moved on.
    pub fn record_findings(
        &mut self,
        scan_id: i64,
        source: &str,
        seen_at: DateTime<Utc>,
        findings: &[NewFinding],
    ) -> Result<(), StoreError> {
        // One row per finding: a record read twice in a scan (an account
        // read again after a broken connection) keeps its last reading, as
        // upserting both in turn would.
        let mut kept = std::collections::HashSet::new();
        let mut latest: Vec<&NewFinding> = findings
            .iter()
            .rev()
            .filter(|finding| kept.insert((finding.rule.as_str(), finding.record_id.as_str())))
            .collect();
        latest.reverse();
        let rows: Vec<Vec<Value>> = latest
            .into_iter()
            .map(|finding| {
                let (exception, until) = if finding.custodian_marked {
                    (Some(CUSTODIAN_MARK_EXCEPTION), Some(CUSTODIAN_MARK_UNTIL))
                } else {
                    (None, None)
                };
                vec![
                    Value::from(finding.rule.as_str()),
                    Value::from(source),
                    Value::from(finding.record_id.as_str()),
                    Value::from(finding.record_path.as_str()),
                    Value::from(finding.record_kind),
                    Value::from(finding.custodian.as_deref()),
                    Value::from(finding.severity),
                    Value::from(finding.detail.as_str()),
                    Value::from(finding.age_days),
                    Value::from(seen_at.timestamp()),
                    Value::from(scan_id),
                    Value::from(exception),
                    Value::from(until),
                    Value::from(finding.detail_data.as_deref()),
                ]
            })
            .collect();
        db::transaction(self.db(), true, |db| {
            {
                db.insert_many(
                    "INSERT INTO findings (rule, source, record_id, record_path, record_kind, custodian,
                         severity, detail, age_days, first_seen, first_seen_scan, last_seen,
                         last_seen_scan, exception, excepted_until, detail_data)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $10, $11, $12, $13, $14)
                     ON CONFLICT (rule, source, record_id) WHERE resolved_at IS NULL DO UPDATE SET
                         record_path = excluded.record_path, custodian = excluded.custodian,
                         severity = excluded.severity, detail = excluded.detail,
                         age_days = excluded.age_days, last_seen = excluded.last_seen,
                         last_seen_scan = excluded.last_seen_scan,
                         exception = excluded.exception, excepted_until = excluded.excepted_until,
                         detail_data = excluded.detail_data",
                    rows,
                )?;
            }
            Ok(())
        })
    }

    /// Finish a scan that read its source to the end (`Complete` or `Partial`):
    /// resolve the source's open findings it did not see, except those under
    /// unread prefixes (an empty prefix protects the whole source) and those under
    /// carried scopes whose records were not reported gone; and replace the
    /// source's checkpoints.
    pub fn finish_scan(
        &mut self,
        scan_id: i64,
        end: &ScanEnd<'_>,
    ) -> Result<ScanTally, StoreError> {
        // Two fields: the database, and the identity rows staged in memory.
        let database: &dyn Database = &*self.database;
        let staging = &mut self.staging;
        db::transaction(database, true, |db| {
            let source = db
                .query(
                    "SELECT source FROM scans WHERE id = $1",
                    &[Value::from(scan_id)],
                )?
                .first()
                .ok_or(StoreError::Missing("scans"))?
                .text(0)?;
            // Scans of units of one source, by instances sharing PostgreSQL,
            // finish one at a time: each rewrites the source's identity
            // segments, conflict keys and checkpoints. (SQLite's write lock
            // does this by itself.)
            if db.engine() == db::Engine::Postgres {
                db.execute(
                    "SELECT pg_advisory_xact_lock(hashtext($1))",
                    &[Value::from(format!("finish:{source}"))],
                )?;
            }
            db.execute(
                "UPDATE scans SET status = $2, finished_at = $3, records = $4 WHERE id = $1",
                &[
                    Value::from(scan_id),
                    Value::from(end.status.as_str()),
                    Value::from(end.finished_at.timestamp()),
                    Value::from(i64::try_from(end.records).unwrap_or(i64::MAX)),
                ],
            )?;
            for (kind, count) in end.problems {
                db.execute(
                    "INSERT INTO scan_problems (scan_id, kind, count) VALUES ($1, $2, $3)",
                    &[
                        Value::from(scan_id),
                        Value::from(*kind),
                        Value::from(i64::try_from(*count).unwrap_or(i64::MAX)),
                    ],
                )?;
            }
            let under = under_prefix;
            let mut resolved = 0u64;
            if matches!(end.status, ScanStatus::Complete | ScanStatus::Partial) {
                let finished = end.finished_at.timestamp();
                // This scan's keys and identities replace the source's older
                // ones, except where it could not read or did not read again.
                replace_older_conflict_keys(db, &source, scan_id, end)?;
                let written = staging.write(db, scan_id, &source)?;
                if whole_and_read(end) {
                    db.execute(
                        "DELETE FROM identity_segments WHERE source = $1 AND scan_id < $2",
                        &[Value::from(source.as_str()), Value::from(scan_id)],
                    )?;
                    identity_index::set_places(db, &source, &written, true)?;
                } else if match end.within {
                    [] => identity_index::places(db, &source)?,
                    // Places outside a unit are apart: only its own can
                    // have lost records.
                    within => rows_within(
                        db,
                        (
                            "SELECT place FROM identity_places WHERE source = $1",
                            "place",
                            0,
                        ),
                        &source,
                        within,
                    )?
                    .iter()
                    .map(|row| row.text(0))
                    .collect::<Result<_, _>>()?,
                }
                .iter()
                .all(|place| keeps_all(end, place))
                {
                    // Nothing older can have gone: no need to read it.
                    identity_index::set_places(db, &source, &written, false)?;
                } else {
                    let kept_places =
                        identity_index::filter_older(db, &source, scan_id, |path| kept(end, path))?;
                    identity_index::set_places(db, &source, &kept_places, true)?;
                    identity_index::set_places(db, &source, &written, false)?;
                }
                identity_index::compact(db, &source)?;
                for (rule, severity) in end.conflict_rules {
                    resolved += judge_conflicts(db, rule, severity, scan_id, finished)?;
                }
                // What this scan did not see resolves, unless it lies where the
                // scan could not read, or where it read incrementally and the
                // record is still there (its finding is carried; `last_seen`
                // stays the last time the record was actually read).
                let unseen = match end.within {
                    [] => db.query(
                        "SELECT id, record_path FROM findings
                         WHERE source = $1 AND resolved_at IS NULL AND last_seen_scan < $2",
                        &[Value::from(source.as_str()), Value::from(scan_id)],
                    )?,
                    // A unit's scan reads its own part only.
                    within => rows_within(
                        db,
                        (
                            "SELECT id, record_path, last_seen_scan FROM findings
                             WHERE source = $1 AND resolved_at IS NULL",
                            "record_path",
                            1,
                        ),
                        &source,
                        within,
                    )?
                    .into_iter()
                    .filter(|row| row.int(2).is_ok_and(|seen| seen < scan_id))
                    .collect(),
                };
                let mut resolving: Vec<Vec<Value>> = Vec::new();
                for row in &unseen {
                    let (id, path) = (row.int(0)?, row.text(1)?);
                    if outside(end, &path)
                        || end
                            .unread_prefixes
                            .iter()
                            .any(|prefix| under(&path, prefix))
                    {
                        continue;
                    }
                    // Folders nest (`Arkiv`, `Arkiv/2024`): the closest scope
                    // decides. A finding on a folder read incrementally (its
                    // scope's own path) stays: the folder is there.
                    let carried = end
                        .carried
                        .iter()
                        .filter(|scope| under(&path, &scope.prefix))
                        .max_by_key(|scope| scope.prefix.len())
                        .is_some_and(|scope| scope.prefix == path || scope.still_there(&path));
                    if !carried {
                        resolving.push(vec![
                            Value::from(id),
                            Value::from(finished),
                            Value::from(scan_id),
                        ]);
                    }
                }
                resolved += db.execute_many(
                    "UPDATE findings SET resolved_at = $2, resolved_scan = $3 WHERE id = $1",
                    resolving,
                )?;
                match &end.record_cache {
                    RecordCacheUpdate::Keep => {}
                    RecordCacheUpdate::Replace {
                        plan,
                        complete,
                        entries,
                        data,
                    } => {
                        db.execute(
                            "INSERT INTO record_cache (source, plan, complete, entries, data)
                             VALUES ($1, $2, $3, $4, $5)
                             ON CONFLICT (source) DO UPDATE SET plan = excluded.plan,
                                 complete = excluded.complete, entries = excluded.entries,
                                 data = excluded.data",
                            &[
                                Value::from(source.as_str()),
                                Value::from(*plan as i64),
                                Value::from(*complete),
                                Value::from(i64::try_from(*entries).unwrap_or(i64::MAX)),
                                Value::from(data.as_slice()),
                            ],
                        )?;
                    }
                    RecordCacheUpdate::Clear => {
                        db.execute(
                            "DELETE FROM record_cache WHERE source = $1",
                            &[Value::from(source.as_str())],
                        )?;
                    }
                }
                if end.within.is_empty() {
                    db.execute(
                        "DELETE FROM checkpoints WHERE source = $1",
                        &[Value::from(source.as_str())],
                    )?;
                } else {
                    // A unit's scan replaces the checkpoints of its own
                    // places only (keys are record-path prefixes).
                    let older = rows_within(
                        db,
                        ("SELECT key FROM checkpoints WHERE source = $1", "key", 0),
                        &source,
                        end.within,
                    )?;
                    let mut inside: Vec<Vec<Value>> = Vec::new();
                    for row in &older {
                        inside.push(vec![
                            Value::from(source.as_str()),
                            Value::from(row.text(0)?),
                        ]);
                    }
                    db.execute_many(
                        "DELETE FROM checkpoints WHERE source = $1 AND key = $2",
                        inside,
                    )?;
                }
                for (key, value) in end.checkpoints {
                    db.execute(
                        "INSERT INTO checkpoints (source, key, value, updated_at)
                         VALUES ($1, $2, $3, $4)",
                        &[
                            Value::from(source.as_str()),
                            Value::from(key.as_str()),
                            Value::from(value.as_str()),
                            Value::from(end.finished_at.timestamp()),
                        ],
                    )?;
                }
            }
            staging.drop_scan(db, scan_id)?;
            let new = db
                .query(
                    "SELECT count(*) FROM findings WHERE first_seen_scan = $1",
                    &[Value::from(scan_id)],
                )?
                .first()
                .map(|row| row.int(0))
                .transpose()?
                .unwrap_or(0);
            let open = open_count(db, &source, end.finished_at)?;
            Ok(ScanTally {
                new: new.max(0) as u64,
                resolved,
                open,
            })
        })
    }

    /// Mark a scan failed. Nothing is resolved; findings it saw stay as recorded.
    pub fn fail_scan(
        &mut self,
        scan_id: i64,
        records: u64,
        error_kind: &str,
        error_message: &str,
        finished_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.db().execute(
            "UPDATE scans SET status = 'failed', finished_at = $2, records = $3,
                 error_kind = $4, error_message = $5 WHERE id = $1",
            &[
                Value::from(scan_id),
                Value::from(finished_at.timestamp()),
                Value::from(i64::try_from(records).unwrap_or(i64::MAX)),
                Value::from(error_kind),
                Value::from(error_message),
            ],
        )?;
        // A half-read source does not change who is on which side, nor whom
        // the identity index finds where.
        self.db().execute(
            "DELETE FROM conflict_keys WHERE scan_id = $1",
            &[Value::from(scan_id)],
        )?;
        let database: &dyn Database = &*self.database;
        self.staging.drop_scan(database, scan_id)?;
        Ok(())
    }

    /// The latest scan of `source`.
    pub fn last_scan(&self, source: &str) -> Result<Option<ScanRow>, StoreError> {
        self.db()
            .query(
                "SELECT id, source, started_at, finished_at, status, records, error_kind
                 FROM scans WHERE source = $1 ORDER BY id DESC LIMIT 1",
                &[Value::from(source)],
            )?
            .first()
            .map(|row| {
                Ok(ScanRow {
                    id: row.int(0)?,
                    source: row.text(1)?,
                    started_at: to_time(row.int(2)?),
                    finished_at: row.opt_int(3)?.map(to_time),
                    status: ScanStatus::parse(&row.text(4)?),
                    records: row.int(5)?.max(0) as u64,
                    error_kind: row.opt_text(6)?,
                })
            })
            .transpose()
    }

    /// Per rule, the findings scan `scan_id` saw first and those it resolved
    /// (including `conflict` findings it resolved on another source).
    pub fn scan_changes(&self, scan_id: i64) -> Result<Vec<RuleChanges>, StoreError> {
        self.db()
            .query(
                "SELECT rule, sum(CASE WHEN first_seen_scan = $1 THEN 1 ELSE 0 END),
                        sum(CASE WHEN resolved_scan = $1 THEN 1 ELSE 0 END)
                 FROM findings WHERE first_seen_scan = $1 OR resolved_scan = $1
                 GROUP BY rule ORDER BY rule",
                &[Value::from(scan_id)],
            )?
            .iter()
            .map(|row| {
                Ok(RuleChanges {
                    rule: row.text(0)?,
                    new: row.int(1)?.max(0) as u64,
                    resolved: row.int(2)?.max(0) as u64,
                })
            })
            .collect()
    }

    /// When the latest scan of `source` that read to the end (complete or
    /// partial) finished.
    pub fn last_success(&self, source: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .db()
            .query(
                "SELECT max(finished_at) FROM scans
                 WHERE source = $1 AND status IN ('complete', 'partial')",
                &[Value::from(source)],
            )?
            .first()
            .map(|row| row.opt_int(0))
            .transpose()?
            .flatten()
            .map(to_time))
    }

    /// Where `source` stands, by the one definition of complete: its last
    /// scan of the whole, or, when it was last scanned unit by unit, each
    /// unit's last finished scan. See [`SourceState`].
    pub fn source_state(&self, source: &str) -> Result<SourceState, StoreError> {
        let latest = self.db().query(
            "SELECT unit, finished_at, status, started_at FROM scans
             WHERE id IN (SELECT max(id) FROM scans
                          WHERE source = $1 AND status <> 'running' GROUP BY unit)",
            &[Value::from(source)],
        )?;
        let complete = self.db().query(
            "SELECT unit, max(finished_at) FROM scans
             WHERE source = $1 AND status = 'complete' GROUP BY unit",
            &[Value::from(source)],
        )?;
        let succeeded = self.db().query(
            "SELECT unit, max(finished_at) FROM scans
             WHERE source = $1 AND status IN ('complete', 'partial') GROUP BY unit",
            &[Value::from(source)],
        )?;
        let mut whole: Option<PartState> = None;
        let mut units: BTreeMap<String, PartState> = BTreeMap::new();
        for row in &latest {
            let part = PartState {
                status: ScanStatus::parse(&row.text(2)?),
                finished_at: row.opt_int(1)?.map(to_time),
                started_at: to_time(row.int(3)?),
                complete_at: None,
                succeeded_at: None,
            };
            match row.opt_text(0)? {
                Some(unit) => units.insert(unit, part),
                None => whole.replace(part),
            };
        }
        for (rows, succeeded) in [(&complete, false), (&succeeded, true)] {
            for row in rows {
                let at = row.opt_int(1)?.map(to_time);
                let part = match row.opt_text(0)? {
                    Some(unit) => units.get_mut(&unit),
                    None => whole.as_mut(),
                };
                if let Some(part) = part {
                    match succeeded {
                        true => part.succeeded_at = at,
                        false => part.complete_at = at,
                    }
                }
            }
        }
        // A whole-source scan since the last unit scan speaks for all of it.
        let newest_unit = units.values().map(|part| part.started_at).max();
        let parts: Vec<PartState> = match (&whole, newest_unit) {
            (Some(whole), Some(newest)) if whole.started_at >= newest => vec![whole.clone()],
            (Some(whole), None) => vec![whole.clone()],
            _ => units.into_values().collect(),
        };
        let whole_complete = whole.as_ref().and_then(|whole| whole.complete_at);
        let whole_succeeded = whole.as_ref().and_then(|whole| whole.succeeded_at);
        let all = |test: fn(&PartState) -> bool| !parts.is_empty() && parts.iter().all(test);
        let status = if parts.is_empty() {
            None
        } else if all(|part| part.status == ScanStatus::Complete) {
            Some(ScanStatus::Complete)
        } else if all(|part| part.status == ScanStatus::Failed) {
            Some(ScanStatus::Failed)
        } else {
            Some(ScanStatus::Partial)
        };
        // Read completely as of the moment every part had been: the earliest
        // of their latest complete reads, all parts needing one.
        let parts_complete = parts
            .iter()
            .map(|part| part.complete_at)
            .collect::<Option<Vec<_>>>()
            .and_then(|times| times.into_iter().min());
        Ok(SourceState {
            status,
            failed_parts: parts
                .iter()
                .filter(|part| part.status == ScanStatus::Failed)
                .count(),
            parts: parts.len(),
            complete_at: parts_complete.max(whole_complete),
            succeeded_at: parts
                .iter()
                .map(|part| part.succeeded_at)
                .collect::<Option<Vec<_>>>()
                .and_then(|times| times.into_iter().min())
                .max(whole_succeeded),
            finished_at: parts
                .iter()
                .map(|part| part.finished_at)
                .collect::<Option<Vec<_>>>()
                .and_then(|times| times.into_iter().min()),
            started_at: parts.iter().map(|part| part.started_at).max(),
        })
    }

    /// Problems counted by a scan, by kind.
    pub fn scan_problems(&self, scan_id: i64) -> Result<Vec<(String, u64)>, StoreError> {
        self.db()
            .query(
                "SELECT kind, count FROM scan_problems WHERE scan_id = $1 ORDER BY kind",
                &[Value::from(scan_id)],
            )?
            .iter()
            .map(|row| Ok((row.text(0)?, row.int(1)?.max(0) as u64)))
            .collect()
    }
}

/// The last scan of one part of a source (the whole, or one unit).
#[derive(Debug, Clone)]
pub(crate) struct PartState {
    status: ScanStatus,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    complete_at: Option<DateTime<Utc>>,
    succeeded_at: Option<DateTime<Utc>>,
}
