//! The one lease mechanism: work held by one process at a time, renewed
//! while it runs.
//!
//! A scan always holds the store's lease on its source (or unit), taken with
//! its row in the store and given up at its end; a fleet's instance also
//! holds its lease on the unit in the fleet's table. Both are a [`Lease`],
//! renewed together every third of the lease by the scan's loop: when one is
//! lost (another process took the work, or its database stopped answering
//! for too long), the scan stops and is recorded as failed (`lease_lost`).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tillsyn_store::Store;

use super::with_store;

/// How long a scan's lease on its source lasts without renewal; the runner
/// renews it every third of that while the scan runs, so a crashed process's
/// source is free again within this time.
pub const LEASE: Duration = Duration::from_secs(60);

/// A hold on some work that lasts [`Lease::duration`] unless renewed.
pub trait Lease: Send + Sync {
    /// How long the hold lasts without renewal.
    fn duration(&self) -> Duration;

    /// Renew the hold: `false` once it is lost, and the work must stop.
    fn renew(&self) -> Pin<Box<dyn Future<Output = bool> + Send + '_>>;
}

/// The store's lease on a source or unit, by the name the scan goes by.
pub(super) struct StoreLease {
    pub(super) store: Arc<Mutex<Store>>,
    pub(super) name: String,
    pub(super) duration: Duration,
}

impl Lease for StoreLease {
    fn duration(&self) -> Duration {
        self.duration
    }

    fn renew(&self) -> Pin<Box<dyn Future<Output = bool> + Send + '_>> {
        Box::pin(async move {
            let name = self.name.clone();
            let duration = self.duration;
            // A store that does not answer now will be reported by the
            // scan's own writes; the lease then simply runs out.
            let renewed =
                with_store(&self.store, move |store| store.renew_lease(&name, duration)).await;
            !matches!(renewed, Ok(false))
        })
    }
}

/// Renew every lease in `leases`, each one even when an earlier one was
/// lost; `true` when all are still held.
pub(super) async fn renew_all(leases: &[&dyn Lease]) -> bool {
    let mut held = true;
    for lease in leases {
        held &= lease.renew().await;
    }
    held
}
