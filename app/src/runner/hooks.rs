//! What runs around scans, each in one place.
//!
//! - **Before a tick**: the erasure register is imported, once per tick (a
//!   pass of `tillsyn scan`, a scheduled scan's due time, a fleet source's
//!   tick on each instance), not once per scan or unit. A register with bad
//!   lines is refused whole (its line numbers logged, never its content),
//!   and what the store holds stays.
//! - **In the scan's own transaction** (`scan`): the findings it recorded
//!   are marked with the exceptions covering them, and the source's
//!   `conflict` rules are judged (for a fleet's units, once per tick, when
//!   the last unit is done), both before the scan's open count is taken.
//! - **After every scan**: what is older than `[daemon] retention` is pruned
//!   (indexed deletes; nothing to do most of the time), except on a copy of
//!   the store, which keeps what the store it was copied from holds.
//!
//! Metrics are the daemon's: its `record` takes every scan's outcome, the
//! scheduler's and the fleet's alike.

use chrono::{DateTime, Utc};

use super::{RunError, Runner, with_store};

impl Runner<'_> {
    /// Before a tick: import the erasure register, when there is one.
    pub async fn before_tick(&self, now: DateTime<Utc>) {
        let rules = self.rules.clone();
        let imported = with_store(self.store, move |store| {
            Ok(crate::erasure::import(&rules, store, now))
        })
        .await;
        match imported {
            Ok(None | Some(Ok(_))) => {}
            Ok(Some(Err(error))) => {
                tracing::warn!(error = %error, "Erasure register not read.");
            }
            Err(error) => {
                tracing::warn!(error = %error, "Erasure register not imported.");
            }
        }
    }

    /// After a scan: prune what is older than the retention.
    pub(super) async fn after_scan(&self, now: DateTime<Utc>) -> Result<(), RunError> {
        let Some(cutoff) = self.retention.and_then(|retention| retention.before(now)) else {
            return Ok(());
        };
        with_store(self.store, move |store| store.prune(cutoff).map(|_| ())).await
    }
}
