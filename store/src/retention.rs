//! Retention: pruning what `[daemon] retention` no longer keeps.

use chrono::{DateTime, Utc};

use crate::db::{self, Value};
use crate::{PruneCounts, Store, StoreError, database_now};

impl Store {
    /// Forget what is older than `cutoff` (`[daemon] retention`): resolved
    /// findings resolved before it, scans finished before it (but each source's
    /// latest scan and latest successful scan, which the daemon's catch-up and
    /// metrics read), conflict keys recorded by scans started before it, sent
    /// reports sent before it, and expired leases. Open findings stay whatever
    /// their age. Returns the rows removed.
    pub fn prune(&mut self, cutoff: DateTime<Utc>) -> Result<PruneCounts, StoreError> {
        let cutoff = Value::from(cutoff.timestamp());
        db::transaction(self.db(), true, |db| {
            let now = Value::from(database_now(db)?);
            let at = std::slice::from_ref(&cutoff);
            let findings = db.execute(
                "DELETE FROM findings WHERE resolved_at IS NOT NULL AND resolved_at < $1",
                at,
            )?;
            let conflict_keys = db.execute(
                "DELETE FROM conflict_keys WHERE scan_id IN
                     (SELECT id FROM scans WHERE started_at < $1)",
                at,
            )?;
            let kept = "SELECT max(id) FROM scans GROUP BY source
                        UNION SELECT max(id) FROM scans WHERE status IN ('complete', 'partial') GROUP BY source";
            db.execute(
                &format!(
                    "DELETE FROM scan_problems WHERE scan_id IN
                         (SELECT id FROM scans WHERE finished_at < $1 AND id NOT IN ({kept}))"
                ),
                at,
            )?;
            let scans = db.execute(
                &format!("DELETE FROM scans WHERE finished_at < $1 AND id NOT IN ({kept})"),
                at,
            )?;
            // A source not scanned since the cutoff (gone from the config): its
            // identity rows go with it.
            let identities = db
                .query(
                    "SELECT CAST(coalesce(sum(entries), 0) AS BIGINT) FROM identity_segments
                     WHERE source NOT IN (SELECT source FROM scans WHERE started_at >= $1)",
                    at,
                )?
                .first()
                .map(|row| row.int(0))
                .transpose()?
                .unwrap_or(0);
            db.execute(
                "DELETE FROM identity_segments WHERE source NOT IN
                     (SELECT source FROM scans WHERE started_at >= $1)",
                at,
            )?;
            db.execute(
                "DELETE FROM identity_places WHERE source NOT IN
                     (SELECT source FROM scans WHERE started_at >= $1)",
                at,
            )?;
            // Sent and given-up mail of every kind; what still waits stays.
            let reports = db.execute(
                "DELETE FROM outbox WHERE (sent_at IS NOT NULL AND sent_at < $1)
                     OR (gave_up_at IS NOT NULL AND gave_up_at < $1)",
                at,
            )?;
            db.execute("DELETE FROM subject_lookups WHERE at < $1", at)?;
            db.execute(
                "DELETE FROM scan_leases WHERE expires_at < $1",
                std::slice::from_ref(&now),
            )?;
            Ok(PruneCounts {
                findings,
                scans,
                conflict_keys,
                identities: identities.max(0) as u64,
                reports,
            })
        })
    }
}
