//! The scan runner: one scan of one source, from connector to stored findings,
//! and the policy around it.
//!
//! It owns what every connector would otherwise repeat: recording the scan's start
//! and end, streaming records through a bounded channel into the rules engine,
//! writing findings in batches, and deciding how the scan ended. Connectors only
//! produce records.
//!
//! A scan ends `complete` (read everything), `partial` (finished, some places
//! unreadable: nothing under them resolves) or `failed` (nothing resolves). The
//! findings a failed scan saw are still recorded, so a breach seen once is not lost.
//!
//! Every caller (the daemon's scheduler, a fleet instance, `tillsyn scan`, the
//! demo, `tillsyn subject`) goes through one [`Runner`]:
//! - [`lease`]: the one lease mechanism. A [`Lease`] is renewed every third of
//!   its duration while a scan runs; the store's lease on the source (or unit)
//!   is one, a fleet's lease on a unit another. Losing either stops the scan.
//! - [`contention`]: what a caller does when another process holds the work,
//!   one [`Contention`] per caller: wait, skip or hold.
//! - [`hooks`]: what runs around scans, each in one place: the erasure
//!   register is imported once per tick, before it; after every scan,
//!   exceptions are marked and conflicts judged (in the scan's own
//!   transaction) and what is older than the retention is pruned.
//! - `scan`: one scan under its lease, its deadline and its stop flag;
//!   `consume`: records to rules to findings in batches; `memory`: what
//!   earlier scans judged and checked, so unchanged records are not judged
//!   again.
//! - [`pass`]: every source once, for the command line.

mod consume;
pub mod contention;
pub mod hooks;
pub mod lease;
mod memory;
pub mod pass;
mod scan;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use contention::{Contention, Ran};
pub use lease::{LEASE, Lease};
pub use pass::{PassError, PassStore, ScanPass, WAIT_POLL, scan_once, scan_pass};
pub use tillsyn_connectors::source::{BuildError, Source};
use tillsyn_connectors::{CancelFlag, ProblemKind};
use tillsyn_core::period::Period;
use tillsyn_core::unit::unit_name;
use tillsyn_rules::RuleSet;
use tillsyn_store::{ScanStatus, ScanTally, Store, StoreError};

use crate::engine::Engine;

/// Findings are written in transactions of this many.
const BATCH: usize = 1000;
/// Records in flight between connector and rules.
const CHANNEL: usize = 1024;

/// What every scan of one caller shares: the rules, the retention, the store
/// and the stop flag. Built once per pass or tick from the [`Engine`].
#[derive(Clone, Copy)]
pub struct Runner<'a> {
    /// The rules every scan is judged by.
    pub rules: &'a RuleSet,
    /// `[daemon] retention`: what is older goes after every scan. `None` on
    /// a copy of the store (a dry run, `tillsyn subject`), which must keep
    /// what the store it was copied from holds.
    pub retention: Option<&'a Period>,
    /// The store scans are written to.
    pub store: &'a Arc<Mutex<Store>>,
    /// How scans are stopped from outside.
    pub stop: &'a Stop,
}

impl<'a> Runner<'a> {
    /// The runner for `engine`'s rules and retention, writing to `store`.
    pub fn new(engine: &'a Engine, store: &'a Arc<Mutex<Store>>, stop: &'a Stop) -> Runner<'a> {
        Runner {
            rules: engine.rules(),
            retention: Some(&engine.config().daemon.retention),
            store,
            stop,
        }
    }

    /// The same runner for a copy of the store: nothing is pruned.
    pub fn on_copy(self) -> Runner<'a> {
        Runner {
            retention: None,
            ..self
        }
    }
}

/// The units `source`, named `name`, splits into when instances share the
/// work: one per part ([`Source::parts`], an IMAP account, whose record
/// paths begin with its name). Empty: the source is one unit, scanned whole.
pub fn units(source: &Source, name: &str) -> Vec<Unit> {
    source
        .parts()
        .into_iter()
        .map(|part| Unit {
            name: unit_name(name, &part),
            prefixes: vec![part],
        })
        .collect()
}

/// The result of one scan.
#[derive(Debug, Clone)]
pub struct ScanOutcome {
    /// Source name.
    pub source: String,
    /// Scan id in the store.
    pub scan_id: i64,
    /// How it ended.
    pub status: ScanStatus,
    /// Records read.
    pub records: u64,
    /// Findings seen in this scan.
    pub findings: u64,
    /// New, resolved and open after the scan (zero resolved when failed).
    pub tally: ScanTally,
    /// Problems counted, by kind.
    pub problems: Vec<(ProblemKind, u64)>,
    /// What went wrong with parts of the store, one line each.
    pub notes: Vec<String>,
    /// Work the connector did, by name.
    pub work: std::collections::BTreeMap<&'static str, u64>,
    /// Why it failed: bounded kind and message.
    pub error: Option<(String, String)>,
    /// How long the scan took, from taking its lease to storing its end
    /// (a caller's wait or hold around it not counted).
    pub duration: std::time::Duration,
}

/// Errors that stop the runner itself (not a failed scan, which is an outcome).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A worker task ended abnormally.
    #[error("scan worker failed: {0}")]
    Worker(String),
}

/// How a scan is stopped from outside: `flag` asks the connector to stop; if it
/// has not stopped `grace` after that, the runner drops it and records the scan
/// as failed (`cancelled`), so shutdown never waits on a stuck server.
#[derive(Debug, Clone)]
pub struct Stop {
    /// Set to ask the scan to stop.
    pub flag: CancelFlag,
    /// How long the connector gets to notice.
    pub grace: std::time::Duration,
}

impl Default for Stop {
    fn default() -> Stop {
        Stop {
            flag: CancelFlag::default(),
            grace: std::time::Duration::from_secs(5),
        }
    }
}

/// A part of a source scanned on its own, when instances share the work
/// (issue 16): an IMAP account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// [`unit_name`]`(source, part)`: the name its lease,
    /// its memory of records checked and its row in the fleet go by.
    pub name: String,
    /// The record-path prefixes it covers: its scan decides nothing outside
    /// them ([`tillsyn_store::ScanEnd::within`]).
    pub prefixes: Vec<String>,
}

/// One scan to run: which source (or unit of it), how long it may take, and
/// which lease besides the store's it runs under.
#[derive(Clone, Copy)]
pub struct Job<'a> {
    /// The source's name.
    pub name: &'a str,
    /// The source's `scan_timeout`.
    pub timeout: Duration,
    /// [`tillsyn_config::SourceConfig::fingerprint`]: a record cache made
    /// under other settings is not used.
    pub settings: u64,
    /// One unit of the source only; `None`: all of it.
    pub unit: Option<&'a Unit>,
    /// A lease held elsewhere (a fleet's on the unit), renewed with the
    /// store's own; the store's lease then lasts as long. `None`: the store's
    /// lease alone, for [`LEASE`].
    pub held: Option<&'a dyn Lease>,
}

impl<'a> Job<'a> {
    /// A scan of all of source `name`, under the store's lease alone.
    pub fn whole(name: &'a str, timeout: Duration, settings: u64) -> Job<'a> {
        Job {
            name,
            timeout,
            settings,
            unit: None,
            held: None,
        }
    }

    /// The name the scan's store lease and memory of records checked go by.
    fn lease_name(&self) -> &'a str {
        self.unit.map_or(self.name, |unit| unit.name.as_str())
    }

    /// How long the scan's leases last without renewal.
    fn lease_duration(&self) -> Duration {
        self.held.map_or(LEASE, |held| held.duration())
    }
}

impl std::fmt::Debug for Job<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Job")
            .field("name", &self.name)
            .field("unit", &self.unit)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ScanOutcome {
    /// The scan ran to its end: it was not stopped by shutdown or by a lost
    /// lease (a failed read or a timeout is an end).
    pub fn finished(&self) -> bool {
        !matches!(
            self.error.as_ref().map(|(kind, _)| kind.as_str()),
            Some("cancelled" | "lease_lost")
        )
    }
}

/// Run `work` on the store on a blocking thread (SQLite is synchronous).
pub async fn with_store<T: Send + 'static>(
    store: &Arc<Mutex<Store>>,
    work: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, RunError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let mut guard = store
            .lock()
            .map_err(|_| RunError::Worker("store lock poisoned".into()))?;
        work(&mut guard).map_err(RunError::Store)
    })
    .await
    .map_err(|error| RunError::Worker(error.to_string()))?
}
