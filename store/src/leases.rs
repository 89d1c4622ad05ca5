//! Scan leases: one process scans a source (or a unit) at a time, by a
//! lease in the store that runs on the database's clock.

use crate::db::{self, Value};
use crate::{Store, StoreError, database_now, lease_seconds, to_time};

impl Store {
    /// Take `source`'s scan lease for `lease`, unless another process holds
    /// it unexpired: then `Err(StoreError::Leased)` naming the holder. One
    /// immediate transaction, so of two processes racing exactly one wins.
    /// The database's clock sets and judges the lease ([`db::now_seconds`]).
    pub fn take_lease(
        &mut self,
        source: &str,
        lease: std::time::Duration,
    ) -> Result<(), StoreError> {
        let holder = self.holder.clone();
        // A unit's lease (`source` + UNIT_SEPARATOR + unit) and its whole
        // source's exclude each other: a scan of the whole source and one of
        // an account in it never run at once.
        let whole = tillsyn_core::unit::whole_source(source);
        let units = tillsyn_core::unit::units_prefix(whole);
        let seconds = lease_seconds(lease);
        db::transaction(self.db(), true, |db| {
            // Locked against another process taking it meanwhile: SQLite's
            // write lock, PostgreSQL's lock on the source's name (rows that
            // are not there yet cannot be locked).
            if db.engine() == db::Engine::Postgres {
                db.execute(
                    "SELECT pg_advisory_xact_lock(hashtext($1))",
                    &[Value::from(whole)],
                )?;
            }
            let now = database_now(db)?;
            let current = db.query(
                "SELECT holder, expires_at, source FROM scan_leases
                 WHERE source = $1 OR source = $2 OR substr(source, 1, $3) = $4",
                &[
                    Value::from(source),
                    Value::from(whole),
                    Value::from(units.chars().count() as i64),
                    Value::from(units.as_str()),
                ],
            )?;
            for row in &current {
                let (current_holder, expires_at, name) = (row.text(0)?, row.int(1)?, row.text(2)?);
                let overlaps = name == source || name == whole || source == whole;
                if overlaps && current_holder != holder && expires_at >= now {
                    return Err(StoreError::Leased {
                        name: source.to_owned(),
                        holder: current_holder,
                        until: to_time(expires_at),
                    });
                }
            }
            db.execute(
                "INSERT INTO scan_leases (source, holder, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT (source) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at",
                &[
                    Value::from(source),
                    Value::from(holder.as_str()),
                    Value::from(now.saturating_add(seconds)),
                ],
            )?;
            Ok(())
        })
    }

    /// Move this process's lease on `source` on by `lease` from now (the
    /// database's clock); false when the lease is no longer this process's.
    pub fn renew_lease(
        &mut self,
        source: &str,
        lease: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let now = db::now_seconds(self.db().engine());
        let changed = self.db().execute(
            &format!(
                "UPDATE scan_leases SET expires_at = {now} + $3 WHERE source = $1 AND holder = $2"
            ),
            &[
                Value::from(source),
                Value::from(self.holder.as_str()),
                Value::from(lease_seconds(lease)),
            ],
        )?;
        Ok(changed == 1)
    }

    /// Give up this process's lease on `source`.
    pub fn release_lease(&mut self, source: &str) -> Result<(), StoreError> {
        self.db().execute(
            "DELETE FROM scan_leases WHERE source = $1 AND holder = $2",
            &[Value::from(source), Value::from(self.holder.as_str())],
        )?;
        Ok(())
    }
}
