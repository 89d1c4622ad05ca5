//! `tillsyn run` with `[fleet]`: one of several instances with the same config
//! and the same `[store]` PostgreSQL, sharing the work by leases in it (see
//! [`tillsyn_store::fleet`] for the lease table).
//!
//! - **Units.** Per source, a task registers the source's units (one per IMAP
//!   account, else the whole source) and, whenever fewer than `units_at_once`
//!   scans of it run here, claims units due for the schedule's current tick:
//!   the last matching time at or before now. A unit finished for that tick,
//!   by any instance, is not offered again until the next one, so schedules
//!   keep meaning "once per tick per unit" across the fleet, and a unit never
//!   finished (a new install, or a tick missed while every instance was down)
//!   is due at once.
//! - **Leases.** The scan runner renews the unit's lease every third of
//!   `lease_seconds` (a [`tillsyn_app::runner::Lease`], renewed with the
//!   store's own); a lease it cannot
//!   renew stops the scan, recorded as failed (`lease_lost`). A killed
//!   instance renews nothing, and its units are claimed again once their
//!   leases run out. A scan that ends (complete, partial or failed) finishes
//!   the unit for the tick: a failing account waits for the next tick, as it
//!   does on one instance. A scan stopped by shutdown or a lost lease gives the
//!   unit back, for another instance to take at once.
//! - **Once.** A source's `conflict` rules are judged once per tick, after its
//!   last unit finished, by whichever instance claims `conflicts:<source>:<tick>`
//!   first. The monthly report and the digests go through the outboxes in the
//!   shared store, whose claims already let exactly one instance send each.
//! - **Metrics.** Each instance counts the scans it ran. The gauges read from
//!   the store (open violations, exceptions, records checked, oldest age) are
//!   refreshed by every instance every [`GAUGE_REFRESH`] (or lease, if
//!   shorter), so every instance
//!   exports the same values; the alert rules in `monitoring/` take `max` over
//!   instances. `tillsyn_instance_units_leased` counts this instance's leases.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{Loaded, ScheduledSource, Shared};
use tillsyn_app::runner::{self, Contention, Ran, Runner, Source, Unit, with_store};
use tillsyn_config::FleetSettings;
use tillsyn_store::fleet::{Fleet, Lease};

/// How often every instance reads the open-violation gauges from the store.
pub const GAUGE_REFRESH: Duration = Duration::from_secs(30);
/// Longest wait before looking for work again: a crashed instance's units
/// are taken over at most this long after their leases ran out.
const MAX_POLL: Duration = Duration::from_secs(30);
/// Pause after the database could not be reached.
const RETRY: Duration = Duration::from_secs(5);

/// What the per-source tasks of one instance share.
pub struct FleetShared {
    /// The lease table.
    pub fleet: Fleet,
    /// `[fleet]` as loaded at start.
    pub settings: FleetSettings,
    /// Units this instance holds now, over every source.
    held: AtomicUsize,
}

impl FleetShared {
    /// The fleet side of an instance.
    pub fn new(fleet: Fleet, settings: FleetSettings) -> FleetShared {
        FleetShared {
            fleet,
            settings,
            held: AtomicUsize::new(0),
        }
    }

    fn lease(&self) -> Duration {
        Duration::from_secs(self.settings.lease_seconds.max(3))
    }

    fn held(&self, shared: &Shared, change: isize) {
        let now = if change >= 0 {
            self.held.fetch_add(change.unsigned_abs(), Ordering::SeqCst) + change.unsigned_abs()
        } else {
            self.held
                .fetch_sub(change.unsigned_abs(), Ordering::SeqCst)
                .saturating_sub(change.unsigned_abs())
        };
        shared.metrics.units_leased(now);
    }
}

/// A source's units by their names in the fleet (`None`: the whole source).
type UnitsByName = BTreeMap<String, Option<Unit>>;

/// The units of `source` named `name`: its own, or the whole source as one.
fn units_of(name: &str, source: &Source) -> Vec<Option<Unit>> {
    let units = runner::units(source, name);
    if units.is_empty() {
        vec![None]
    } else {
        units.into_iter().map(Some).collect()
    }
}

fn unit_name(name: &str, unit: &Option<Unit>) -> String {
    unit.as_ref()
        .map_or_else(|| name.to_owned(), |unit| unit.name.clone())
}

/// Scan source `name`'s units as the fleet hands them out, until the daemon
/// stops.
pub async fn source_loop(
    name: String,
    shared: Arc<Shared>,
    fleet: Arc<FleetShared>,
    mut config: watch::Receiver<Arc<Loaded>>,
) {
    let mut running: JoinSet<()> = JoinSet::new();
    let mut registered: Option<Arc<UnitsByName>> = None;
    // The units of the source as last built (a source of 20,000 accounts is
    // not listed again after every scan): rebuilt when a reload changes it.
    let mut built: Option<(Arc<ScheduledSource>, Arc<UnitsByName>)> = None;
    // The tick whose erasure register this instance imported last.
    let mut imported_for: Option<i64> = None;
    loop {
        if shared.stop.flag.is_cancelled() {
            break;
        }
        let loaded = config.borrow_and_update().clone();
        let zone = loaded.engine.config().daemon.timezone.0;
        let Some(source) = loaded.sources.get(&name).cloned() else {
            // Removed by a reload: idle until a reload brings it back.
            if wait(&shared, &mut config, &mut running, None).await {
                break;
            }
            continue;
        };
        let units = match &built {
            Some((from, units)) if Arc::ptr_eq(from, &source) => units.clone(),
            _ => {
                let units: Arc<UnitsByName> = Arc::new(
                    units_of(&name, &source.source)
                        .into_iter()
                        .map(|unit| (unit_name(&name, &unit), unit))
                        .collect(),
                );
                built = Some((source.clone(), units.clone()));
                units
            }
        };
        if !registered
            .as_ref()
            .is_some_and(|registered| Arc::ptr_eq(registered, &units))
        {
            let names: Vec<String> = units.keys().cloned().collect();
            match fleet.fleet.register(&name, &names).await {
                Ok(()) => registered = Some(units.clone()),
                Err(error) => {
                    tracing::warn!(source = %name, error = %error, "Could not register the source's units in the fleet; trying again.");
                    if wait(&shared, &mut config, &mut running, Some(RETRY)).await {
                        break;
                    }
                    continue;
                }
            }
        }
        let Some(tick) = source.schedule.last_at_or_before(Utc::now(), zone) else {
            if wait(&shared, &mut config, &mut running, None).await {
                break;
            }
            continue;
        };
        if imported_for != Some(tick.timestamp()) {
            // Once per tick on each instance, before its first unit.
            Runner::new(&loaded.engine, &shared.store, &shared.stop)
                .before_tick(Utc::now())
                .await;
            imported_for = Some(tick.timestamp());
        }
        let capacity = fleet
            .settings
            .units_at_once
            .unwrap_or_else(|| default_at_once(&source.source))
            .max(1);
        let free = capacity.saturating_sub(running.len());
        let mut pause = MAX_POLL.min(fleet.lease() / 2);
        if free > 0 {
            match fleet
                .fleet
                .claim(&name, tick.timestamp(), fleet.lease(), free)
                .await
            {
                Ok(leases) => {
                    for lease in leases {
                        let Some(unit) = units.get(&lease.unit).cloned() else {
                            // Registered by an instance with another config.
                            let _ = fleet.fleet.release(&lease.unit).await;
                            continue;
                        };
                        fleet.held(&shared, 1);
                        running.spawn(scan_unit(UnitScan {
                            name: name.clone(),
                            unit,
                            lease,
                            source: source.clone(),
                            loaded: loaded.clone(),
                            shared: shared.clone(),
                            fleet: fleet.clone(),
                        }));
                    }
                }
                Err(error) => {
                    tracing::warn!(source = %name, error = %error, "Could not claim work from the fleet; trying again.");
                    pause = RETRY;
                }
            }
        }
        shared.metrics.scan_running(&name, !running.is_empty());
        // Wake for the next tick, a finished scan, a reload or a poll.
        let next_tick = source
            .schedule
            .next_after(Utc::now(), zone)
            .and_then(|next| (next - Utc::now()).to_std().ok())
            .unwrap_or(pause);
        let free_now = running.len() < capacity;
        let wake = if free_now {
            pause.min(next_tick)
        } else {
            next_tick
        };
        if wait(&shared, &mut config, &mut running, Some(wake)).await {
            break;
        }
    }
    // Stopping: the scans see the stop flag; wait for them to record it.
    while running.join_next().await.is_some() {}
    shared.metrics.scan_running(&name, false);
}

/// Units of one source scanned at once when `[fleet] units_at_once` is not
/// set: as many as the source reads accounts at once on one instance.
fn default_at_once(source: &Source) -> usize {
    match source {
        Source::Imap(imap) => imap.max_connections(),
        _ => 1,
    }
}

/// Wait up to `timeout` (forever with `None`) or until a running scan ends, or
/// the config changes. `true` when the daemon is stopping.
async fn wait(
    shared: &Shared,
    config: &mut watch::Receiver<Arc<Loaded>>,
    running: &mut JoinSet<()>,
    timeout: Option<Duration>,
) -> bool {
    let sleep = async {
        match timeout {
            Some(timeout) => tokio::time::sleep(timeout.max(Duration::from_millis(50))).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = sleep => false,
        Some(_) = running.join_next(), if !running.is_empty() => false,
        changed = config.changed() => changed.is_err(),
        () = shared.stop.flag.cancelled() => true,
    }
}

/// One claimed unit to scan.
struct UnitScan {
    name: String,
    unit: Option<Unit>,
    lease: Lease,
    source: Arc<ScheduledSource>,
    loaded: Arc<Loaded>,
    shared: Arc<Shared>,
    fleet: Arc<FleetShared>,
}

/// Scan one unit under its lease, then finish it for the tick (or give it
/// back), and judge the source's conflicts when it was the tick's last.
async fn scan_unit(work: UnitScan) {
    let UnitScan {
        name,
        unit,
        lease,
        source,
        loaded,
        shared,
        fleet,
    } = work;
    let held = UnitLease {
        fleet: fleet.clone(),
        unit: lease.unit.clone(),
        last_renewed: Mutex::new(Instant::now()),
    };
    let job = runner::Job {
        name: &name,
        timeout: source.timeout,
        settings: source.settings,
        unit: unit.as_ref(),
        held: Some(&held),
    };
    tracing::debug!(source = %name, "Unit scan started.");
    // Not run, or stopped by a lost lease: held a moment longer before it is
    // given back, so a unit that cannot be scanned now (the store failing,
    // another process scanning it) is not claimed again at once.
    let contention = Contention::Hold(RETRY.min(fleet.lease() / 2));
    let result = Runner::new(&loaded.engine, &shared.store, &shared.stop)
        .run(job, &source.source, contention)
        .await;
    let finish = matches!(&result, Ok(Ran::Scanned(outcome)) if outcome.finished());
    match result {
        Ok(Ran::Scanned(outcome)) => {
            let duration = outcome.duration.as_secs_f64();
            super::scheduler::record(&outcome, duration, &loaded, &shared, false).await
        }
        Ok(Ran::Busy(_)) => {
            tracing::info!(source = %name, "Unit skipped: another tillsyn process is scanning it.");
        }
        Err(error) => {
            shared.metrics.scan_error(&name, "store");
            tracing::error!(source = %name, error = %error, "Unit scan could not be run.");
        }
    }
    let ended = if finish {
        fleet.fleet.finish(&lease).await.map(|held| {
            if !held {
                tracing::warn!(source = %name, "A unit's lease had run out when its scan ended; another instance may scan it again.");
            }
        })
    } else {
        fleet.fleet.release(&lease.unit).await
    };
    fleet.held(&shared, -1);
    if let Err(error) = ended {
        tracing::warn!(source = %name, error = %error, "Could not finish a unit in the fleet; its lease runs out by itself.");
        return;
    }
    if finish {
        judge_conflicts_once(&name, &lease, &loaded, &shared, &fleet).await;
    }
}

/// A fleet's lease on one unit, renewed with the scan's store lease:
/// lost when another instance took the unit, or when the database has not
/// answered for half the lease (the scan then stops before another instance
/// may take the unit).
struct UnitLease {
    fleet: Arc<FleetShared>,
    unit: String,
    last_renewed: Mutex<Instant>,
}

impl runner::Lease for UnitLease {
    fn duration(&self) -> Duration {
        self.fleet.lease()
    }

    fn renew(&self) -> Pin<Box<dyn Future<Output = bool> + Send + '_>> {
        Box::pin(async move {
            match self.fleet.fleet.renew(&self.unit, self.fleet.lease()).await {
                Ok(true) => {
                    if let Ok(mut last) = self.last_renewed.lock() {
                        *last = Instant::now();
                    }
                    true
                }
                Ok(false) => false,
                Err(error) => {
                    tracing::warn!(error = %error, "Could not renew a unit's lease.");
                    self.last_renewed
                        .lock()
                        .map(|last| last.elapsed() < self.fleet.lease() / 2)
                        .unwrap_or(false)
                }
            }
        })
    }
}

/// After a unit of `name` finished for its tick: when it was the tick's last
/// and the source takes part in `conflict` rules, judge them, once in the
/// fleet.
async fn judge_conflicts_once(
    name: &str,
    lease: &Lease,
    loaded: &Loaded,
    shared: &Arc<Shared>,
    fleet: &FleetShared,
) {
    let conflict_rules = loaded.engine.rules().for_source(name).conflict_rules();
    if conflict_rules.is_empty() {
        return;
    }
    match fleet.fleet.unfinished(name, lease.tick).await {
        Ok(0) => {}
        Ok(_) => return,
        Err(error) => {
            tracing::warn!(source = %name, error = %error, "Could not ask the fleet whether the tick is done; conflicts are judged at the next tick.");
            return;
        }
    }
    let key = format!("conflicts:{name}:{}", lease.tick);
    match fleet.fleet.claim_once(&key).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(error) => {
            tracing::warn!(source = %name, error = %error, "Could not claim the conflict judging.");
            return;
        }
    }
    let judged = with_store(&shared.store, move |store| {
        store.judge_conflicts(&conflict_rules, Utc::now())
    })
    .await;
    match judged {
        Ok(resolved) => {
            tracing::info!(source = %name, resolved, "Conflicts judged for the tick.")
        }
        Err(error) => {
            tracing::error!(source = %name, error = %error, "Conflicts could not be judged.")
        }
    }
}

/// Read the store's gauges every [`GAUGE_REFRESH`] (or lease, if shorter),
/// so every instance exports what the fleet as a whole found.
pub async fn gauges_loop(
    shared: Arc<Shared>,
    fleet: Arc<FleetShared>,
    config: watch::Receiver<Arc<Loaded>>,
) {
    let every = GAUGE_REFRESH.min(fleet.lease());
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shared.stop.flag.cancelled() => return,
        }
        let loaded = config.borrow().clone();
        match with_store(&shared.store, |store| store.open_summary(Utc::now())).await {
            Ok(open) => shared.metrics.refresh_open(&loaded.known, &open),
            Err(error) => {
                tracing::warn!(error = %error, "Could not read the open violations from the store.")
            }
        }
    }
}
