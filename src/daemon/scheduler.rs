//! One task per source: wait for the next time its schedule matches, scan, repeat.
//!
//! A source never scans twice at once, by construction: its task runs one scan at
//! a time, and the ticks that pass while a scan runs are counted in
//! `tillsyn_scans_skipped_total` and not made up for; the next scan is at the next
//! matching time after the scan ends. Waits are taken in steps of at most a minute
//! and measured against the wall clock each time, so a clock change (or a suspended
//! machine) does not push a scan out by the length of the jump.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::{Loaded, Shared};
use tillsyn_app::runner::{self, Contention, Ran, Runner, ScanOutcome, with_store};

/// Longest single sleep before the wall clock is read again.
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// Overrun ticks counted per scan at most (a per-second schedule and a day-long
/// scan would otherwise walk 86,400 ticks).
const MAX_COUNTED_TICKS: u64 = 1_000_000;

/// What ended a wait.
enum Woke {
    /// The scheduled time came.
    Due,
    /// The config changed: work out the next time again.
    Reloaded,
    /// The daemon is stopping (or the config channel closed).
    Stop,
}

/// Scan source `name` on its schedule until the daemon stops. With `catch_up`,
/// the first scan runs at once (a run was missed while the daemon was down, or
/// the source was never scanned).
pub async fn source_loop(
    name: String,
    shared: Arc<Shared>,
    mut config: watch::Receiver<Arc<Loaded>>,
    mut catch_up: bool,
) {
    loop {
        if shared.stop.flag.is_cancelled() {
            return;
        }
        let loaded = config.borrow_and_update().clone();
        let zone = loaded.engine.config().daemon.timezone.0;
        let due = match loaded.sources.get(&name) {
            // Removed by a reload: idle until a reload brings it back.
            None => None,
            Some(_) if catch_up => Some(Utc::now()),
            Some(source) => source.schedule.next_after(Utc::now(), zone),
        };
        let woke = match due {
            Some(due) => wait_until(due, &shared, &mut config).await,
            None => wait_for_reload(&shared, &mut config).await,
        };
        match woke {
            Woke::Stop => return,
            Woke::Reloaded => continue,
            Woke::Due => {}
        }
        let Some(due) = due else { continue };
        let Some(source) = loaded.sources.get(&name).cloned() else {
            continue;
        };
        catch_up = false;
        scan_now(&name, &source, &loaded, &shared).await;
        let skipped = source
            .schedule
            .ticks_between(due, Utc::now(), zone, MAX_COUNTED_TICKS);
        if skipped > 0 {
            shared.metrics.scans_skipped(&name, skipped);
            tracing::info!(
                source = %name,
                skipped,
                "Scheduled scans skipped: the previous scan was still running."
            );
        }
    }
}

async fn wait_until(
    due: DateTime<Utc>,
    shared: &Shared,
    config: &mut watch::Receiver<Arc<Loaded>>,
) -> Woke {
    loop {
        let left = (due - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        if left.is_zero() {
            return Woke::Due;
        }
        tokio::select! {
            () = tokio::time::sleep(left.min(MAX_SLEEP)) => {}
            changed = config.changed() => {
                return if changed.is_ok() { Woke::Reloaded } else { Woke::Stop };
            }
            () = shared.stop.flag.cancelled() => return Woke::Stop,
        }
    }
}

async fn wait_for_reload(shared: &Shared, config: &mut watch::Receiver<Arc<Loaded>>) -> Woke {
    tokio::select! {
        changed = config.changed() => if changed.is_ok() { Woke::Reloaded } else { Woke::Stop },
        () = shared.stop.flag.cancelled() => Woke::Stop,
    }
}

/// Run one scan of `name` and take its outcome into the metrics and the log.
async fn scan_now(
    name: &str,
    source: &super::ScheduledSource,
    loaded: &Loaded,
    shared: &Arc<Shared>,
) {
    shared.metrics.scan_running(name, true);
    tracing::info!(source = %name, "Scan started.");
    let runner = Runner::new(&loaded.engine, &shared.store, &shared.stop);
    // Each due time of a source's schedule is its own tick.
    runner.before_tick(Utc::now()).await;
    let job = runner::Job::whole(name, source.timeout, source.settings);
    let result = runner.run(job, &source.source, Contention::Skip).await;
    shared.metrics.scan_running(name, false);
    match result {
        Ok(Ran::Scanned(outcome)) => {
            let duration = outcome.duration.as_secs_f64();
            record(&outcome, duration, loaded, shared, true).await
        }
        Ok(Ran::Busy(_)) => {
            // Another process (a `scan --once`, another instance) is scanning
            // it: this tick is skipped, as when the previous scan still runs.
            shared.metrics.scans_skipped(name, 1);
            tracing::info!(source = %name, "Scan skipped: another tillsyn process is scanning this source.");
        }
        Err(error) => {
            // The runner itself failed (the store): the scan may not even be
            // recorded, so count it here.
            shared.metrics.scan_error(name, "store");
            tracing::error!(source = %name, error = %error, "Scan could not be run.");
        }
    }
}

/// Take a finished scan into the metrics and the log. With `read_open`, the
/// open-violation gauges are read from the store again (a fleet's instances
/// leave that to [`super::fleet::gauges_loop`]).
pub(super) async fn record(
    outcome: &ScanOutcome,
    duration: f64,
    loaded: &Loaded,
    shared: &Arc<Shared>,
    read_open: bool,
) {
    let scan_id = outcome.scan_id;
    let source = outcome.source.clone();
    let store_view = with_store(&shared.store, move |store| {
        let open = match read_open {
            true => Some(store.open_summary(Utc::now())?),
            false => None,
        };
        let state = store.source_state(&source)?;
        Ok((store.scan_changes(scan_id)?, open, state))
    })
    .await;
    // Unreadable, the open-violation gauges keep their values rather than drop.
    let (changes, open, state) = match store_view {
        Ok((changes, open, state)) => (changes, open, Some(state)),
        Err(error) => {
            tracing::error!(source = %outcome.source, error = %error, "Could not read the store after a scan.");
            (Vec::new(), None, None)
        }
    };
    shared.metrics.scan_finished(
        outcome,
        duration,
        Utc::now(),
        &changes,
        &loaded.known,
        open.as_deref(),
    );
    // Success is the source's, by the one definition: in a fleet, one
    // account's scan does not speak for the others.
    if let Some(state) = &state {
        shared.metrics.restore_source(&outcome.source, state);
    }
    match &outcome.error {
        None => tracing::info!(
            source = %outcome.source,
            status = outcome.status.as_str(),
            records = outcome.records,
            new = outcome.tally.new,
            resolved = outcome.tally.resolved,
            open = outcome.tally.open,
            duration_seconds = duration,
            "Scan finished."
        ),
        // The message can name accounts (often addresses): it is kept in the
        // store for the operator, and only its kind is logged.
        Some((kind, _)) => tracing::warn!(
            source = %outcome.source,
            error_kind = %kind,
            duration_seconds = duration,
            "Scan failed; its findings stay as they were."
        ),
    }
    release_freed_memory();
}

/// Hand back to the system the memory a scan freed. glibc keeps freed
/// memory for the process's next allocations, so a daemon idle after a scan
/// of many records held about twice what it used (a 200,000-file share:
/// 97 MB resident, 48 MB after this; BENCHMARKS.md, "Daemon"). Other C
/// libraries: nothing is done.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns glibc's free pages to the system; it
    // touches no memory in use.
    unsafe {
        libc::malloc_trim(0);
    }
}
