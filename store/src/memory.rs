//! What a source remembers between scans: connector checkpoints, the
//! record cache and the memory of records checked.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::db::{self, Value};
use crate::scope::rows_within;
use crate::{CheckedRow, SavedRecordCache, Store, StoreError, custodian_words};

impl Store {
    /// Every checkpoint of a source.
    /// The checkpoints of `source` under `prefixes` (a unit's; all of the
    /// source's when empty).
    pub fn checkpoints_within(
        &self,
        source: &str,
        prefixes: &[String],
    ) -> Result<BTreeMap<String, String>, StoreError> {
        if prefixes.is_empty() {
            return self.checkpoints(source);
        }
        rows_within(
            self.db(),
            (
                "SELECT key, value FROM checkpoints WHERE source = $1",
                "key",
                0,
            ),
            source,
            prefixes,
        )?
        .iter()
        .map(|row| Ok((row.text(0)?, row.text(1)?)))
        .collect()
    }

    /// Every checkpoint of `source`.
    pub fn checkpoints(&self, source: &str) -> Result<BTreeMap<String, String>, StoreError> {
        self.db()
            .query(
                "SELECT key, value FROM checkpoints WHERE source = $1",
                &[Value::from(source)],
            )?
            .iter()
            .map(|row| Ok((row.text(0)?, row.text(1)?)))
            .collect()
    }

    /// The record cache the last finished scan of `source` left (see
    /// [`tillsyn_connectors::record_cache`]).
    pub fn record_cache(&self, source: &str) -> Result<Option<SavedRecordCache>, StoreError> {
        self.db()
            .query(
                "SELECT plan, complete, data FROM record_cache WHERE source = $1",
                &[Value::from(source)],
            )?
            .first()
            .map(|row| {
                Ok(SavedRecordCache {
                    plan: row.int(0)? as u64,
                    complete: row.int(1)? != 0,
                    data: row.blob(2)?,
                })
            })
            .transpose()
    }

    /// The memory of records checked in `source` (see [`crate::checked`]),
    /// and the plan it was made under.
    pub fn checked_memory(&self, source: &str) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        self.db()
            .query(
                "SELECT plan, data FROM checked_memory WHERE source = $1",
                &[Value::from(source)],
            )?
            .first()
            .map(|row| Ok((row.int(0)? as u64, row.blob(1)?)))
            .transpose()
    }

    /// The plan the stored memory of records checked in `source` was made
    /// under, without reading the memory.
    pub fn checked_plan(&self, source: &str) -> Result<Option<u64>, StoreError> {
        self.db()
            .query(
                "SELECT plan FROM checked_memory WHERE source = $1",
                &[Value::from(source)],
            )?
            .first()
            .map(|row| Ok(row.int(0)? as u64))
            .transpose()
    }

    /// After a finished scan of `source`: the memory for the next one and
    /// the records each of its rules checked.
    pub fn save_checked(
        &mut self,
        source: &str,
        plan: u64,
        memory: &[u8],
        counts: &[tillsyn_rules::checked::RuleCount],
    ) -> Result<(), StoreError> {
        db::transaction(self.db(), true, |db| {
            db.execute(
                "INSERT INTO checked_memory (source, plan, data) VALUES ($1, $2, $3)
                 ON CONFLICT (source) DO UPDATE SET plan = excluded.plan, data = excluded.data",
                &[
                    Value::from(source),
                    Value::from(plan as i64),
                    Value::from(memory),
                ],
            )?;
            db.execute(
                "DELETE FROM checked_counts WHERE source = $1",
                &[Value::from(source)],
            )?;
            for count in counts {
                let custodians: Vec<u8> = count
                    .custodians
                    .iter()
                    .flat_map(|custodian| custodian.to_le_bytes())
                    .collect();
                db.execute(
                    "INSERT INTO checked_counts (source, rule, records, custodians, complete)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (source, rule) DO UPDATE SET records = excluded.records,
                         custodians = excluded.custodians, complete = excluded.complete",
                    &[
                        Value::from(source),
                        Value::from(count.rule.as_str()),
                        Value::from(i64::try_from(count.records).unwrap_or(i64::MAX)),
                        Value::from(custodians),
                        Value::from(count.complete),
                    ],
                )?;
            }
            Ok(())
        })
    }

    /// The records every rule checked in every source, as last counted (a
    /// source scanned unit by unit has a row per unit, under the source's
    /// name).
    pub fn checked_counts(&self) -> Result<Vec<CheckedRow>, StoreError> {
        self.db()
            .query(
                "SELECT rule, source, records, custodians, complete FROM checked_counts
                 ORDER BY rule, source",
                &[],
            )?
            .iter()
            .map(|row| {
                Ok(CheckedRow {
                    rule: row.text(0)?,
                    source: tillsyn_core::unit::whole_source(&row.text(1)?).to_owned(),
                    records: row.int(2)?.max(0) as u64,
                    custodians: custodian_words(&row.blob(3)?),
                    complete: row.int(4)? != 0,
                })
            })
            .collect()
    }

    /// A checkpoint value for incremental scans.
    pub fn checkpoint(&self, source: &str, key: &str) -> Result<Option<String>, StoreError> {
        self.db()
            .query(
                "SELECT value FROM checkpoints WHERE source = $1 AND key = $2",
                &[Value::from(source), Value::from(key)],
            )?
            .first()
            .map(|row| row.text(0))
            .transpose()
            .map_err(StoreError::from)
    }

    /// Set a checkpoint value.
    pub fn set_checkpoint(
        &mut self,
        source: &str,
        key: &str,
        value: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.db().execute(
            "INSERT INTO checkpoints (source, key, value, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (source, key) DO UPDATE SET value = excluded.value,
                 updated_at = excluded.updated_at",
            &[
                Value::from(source),
                Value::from(key),
                Value::from(value),
                Value::from(now.timestamp()),
            ],
        )?;
        Ok(())
    }
}
