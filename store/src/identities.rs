//! The identity index's entries, erasure requests and the `tillsyn
//! subject` audit log.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use tillsyn_rules::register::ErasureRequest;

use crate::db::{self, Database, Value};
use crate::{
    IdentityBatch, IdentityRow, Store, StoreError, SubjectLookup, identity_index, to_time,
};

impl Store {
    /// Stage the identifiers found in records read by scan `scan_id` of
    /// `source`. They reach the index when the scan finishes
    /// ([`Store::finish_scan`]), sorted by hash into segments
    /// ([`identity_index`]); a failed scan's rows never do. Where a newer scan
    /// holds the same hash, record, kind and field as an older one, the newer
    /// entry is the one a lookup sees; the entries of records gone are removed
    /// when the scan finishes.
    pub fn record_identities(
        &mut self,
        scan_id: i64,
        identities: &mut IdentityBatch,
    ) -> Result<(), StoreError> {
        let database: &dyn Database = &*self.database;
        self.staging.add(database, scan_id, identities)
    }

    /// Every place the identity index holds one of `hashes`, by source and
    /// record.
    pub fn identities(
        &self,
        hashes: &[tillsyn_core::identity::IdentityHash],
    ) -> Result<Vec<IdentityRow>, StoreError> {
        let mut rows = Vec::new();
        for hash in hashes {
            identity_index::lookup(self.db(), hash, None, |source, entry| {
                rows.push(entry.row(source));
            })?;
        }
        rows.sort_by(|a, b| {
            (&a.source, &a.record_path, &a.kind, &a.field).cmp(&(
                &b.source,
                &b.record_path,
                &b.kind,
                &b.field,
            ))
        });
        Ok(rows)
    }

    /// Add erasure requests (keyed hashes only). One already there keeps the
    /// earlier of the two dates. Returns how many were new.
    pub fn import_erasures(
        &mut self,
        requests: &[ErasureRequest],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        db::transaction(self.db(), true, |db| {
            let count = |db: &dyn Database| -> Result<i64, StoreError> {
                let rows = db.query("SELECT count(*) FROM erasure_requests", &[])?;
                Ok(rows.first().map(|row| row.int(0)).transpose()?.unwrap_or(0))
            };
            let before = count(db)?;
            let upsert = format!(
                "INSERT INTO erasure_requests (hash, kind, requested_at, imported_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (hash) DO UPDATE SET
                     requested_at = {}(erasure_requests.requested_at, excluded.requested_at)",
                db::least(db.engine())
            );
            for request in requests {
                db.execute(
                    &upsert,
                    &[
                        Value::from(&request.hash[..]),
                        Value::from(request.kind.as_str()),
                        Value::from(request.requested_at.timestamp()),
                        Value::from(now.timestamp()),
                    ],
                )?;
            }
            Ok((count(db)? - before).max(0) as u64)
        })
    }

    /// Every erasure request, oldest first.
    pub fn erasure_requests(&self) -> Result<Vec<ErasureRequest>, StoreError> {
        self.db()
            .query(
                "SELECT hash, kind, requested_at FROM erasure_requests ORDER BY requested_at, hash",
                &[],
            )?
            .iter()
            .map(|row| {
                let bytes = row.blob(0)?;
                let mut hash = [0u8; 16];
                if bytes.len() == 16 {
                    hash.copy_from_slice(&bytes);
                }
                Ok(ErasureRequest {
                    hash,
                    kind: row.text(1)?,
                    requested_at: to_time(row.int(2)?),
                })
            })
            .collect()
    }

    /// Whether the index holds `hash` in `source`.
    pub fn holds(
        &self,
        source: &str,
        hash: &tillsyn_core::identity::IdentityHash,
    ) -> Result<bool, StoreError> {
        let mut held = false;
        identity_index::lookup(self.db(), hash, Some(source), |_, _| held = true)?;
        Ok(held)
    }

    /// Log the start of one `tillsyn subject` lookup in the audit log, before
    /// anything is looked up; returns its id for [`Store::complete_subject_lookup`].
    /// A lookup that fails or is killed still leaves this row.
    pub fn begin_subject_lookup(&mut self, lookup: &SubjectLookup) -> Result<i64, StoreError> {
        let inserted = self.db().query(
            "INSERT INTO subject_lookups (at, kinds, hashes, hits, asked_servers)
             VALUES ($1, $2, $3, 0, $4) RETURNING id",
            &[
                Value::from(lookup.at.timestamp()),
                Value::from(lookup.kinds.join(",")),
                Value::from(lookup.hashes.join(",")),
                Value::from(lookup.asked_servers),
            ],
        )?;
        Ok(inserted
            .first()
            .ok_or(StoreError::Missing("subject_lookups"))?
            .int(0)?)
    }

    /// The lookup `id` completed at `at`, finding `hits` places.
    pub fn complete_subject_lookup(
        &mut self,
        id: i64,
        hits: u64,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.db().execute(
            "UPDATE subject_lookups SET hits = $2, completed_at = $3 WHERE id = $1",
            &[
                Value::from(id),
                Value::from(i64::try_from(hits).unwrap_or(i64::MAX)),
                Value::from(at.timestamp()),
            ],
        )?;
        Ok(())
    }

    /// The audit log of lookups, oldest first.
    pub fn subject_lookups(&self) -> Result<Vec<SubjectLookup>, StoreError> {
        let split = |text: String| -> Vec<String> {
            text.split(',')
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect()
        };
        self.db()
            .query(
                "SELECT at, kinds, hashes, hits, asked_servers, completed_at FROM subject_lookups
                 ORDER BY id",
                &[],
            )?
            .iter()
            .map(|row| {
                Ok(SubjectLookup {
                    at: to_time(row.int(0)?),
                    kinds: split(row.text(1)?),
                    hashes: split(row.text(2)?),
                    hits: row.int(3)?.max(0) as u64,
                    asked_servers: row.int(4)? != 0,
                    completed_at: row.opt_int(5)?.map(to_time),
                })
            })
            .collect()
    }

    /// Note the kinds the accounts (or file owners) of `source` were indexed
    /// as by a scan (`email`, `account`): with `replace` (a scan of the whole
    /// source) instead of what was noted, else added to it (one unit's).
    pub fn note_account_kinds(
        &mut self,
        source: &str,
        kinds: &[&str],
        replace: bool,
    ) -> Result<(), StoreError> {
        let mut noted = if replace {
            BTreeSet::new()
        } else {
            self.account_kinds(source)?
        };
        noted.extend(kinds.iter().map(|kind| (*kind).to_owned()));
        let name = tillsyn_core::unit::unit_name("account_kinds", source);
        let value = noted.into_iter().collect::<Vec<_>>().join(",");
        self.db().execute(
            "INSERT INTO store_facts (name, value) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            &[Value::from(name.as_str()), Value::from(value.as_str())],
        )?;
        Ok(())
    }

    /// The kinds `source`'s accounts were indexed as ([`Store::note_account_kinds`]);
    /// empty before a scan indexed any.
    pub fn account_kinds(&self, source: &str) -> Result<BTreeSet<String>, StoreError> {
        let name = tillsyn_core::unit::unit_name("account_kinds", source);
        Ok(self
            .db()
            .query(
                "SELECT value FROM store_facts WHERE name = $1",
                &[Value::from(name.as_str())],
            )?
            .first()
            .map(|row| row.text(0))
            .transpose()?
            .map(|value| {
                value
                    .split(',')
                    .filter(|kind| !kind.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default())
    }
}
