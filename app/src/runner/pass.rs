//! One pass over the configured sources, for the command line: `tillsyn
//! scan`, the demo and `tillsyn subject` (which scans a copy of the store).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tillsyn_store::{Store, StoreError};

use super::{BuildError, Contention, Job, Ran, RunError, Runner, ScanOutcome, Stop};
use crate::engine::Engine;

/// Why a pass over the sources could not be run (a failed scan is an
/// outcome, not this).
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// `--source` named no configured source.
    #[error("no source named {name:?}; configured: {known}")]
    UnknownSource {
        /// The name given.
        name: String,
        /// The names configured.
        known: String,
    },
    /// A source could not be built.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The runner failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one pass over the sources did.
pub struct ScanPass {
    /// One outcome per source scanned.
    pub outcomes: Vec<ScanOutcome>,
    /// Sources not scanned because another process was scanning them.
    pub busy: Vec<StoreError>,
    /// The store the pass wrote to.
    pub store: Arc<Mutex<Store>>,
}

/// Which store a pass writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassStore {
    /// The configured store: pruned by the retention after every scan.
    Configured,
    /// A copy of it (`--dry-run`, `tillsyn subject`): nothing is pruned.
    Copy,
}

/// Scan every source once (or the one named) and store what was found.
pub async fn scan_once(
    engine: &Engine,
    source_filter: Option<&str>,
) -> Result<(Vec<ScanOutcome>, Arc<Mutex<Store>>), PassError> {
    let store = engine.open_store()?;
    let pass = scan_pass(
        engine,
        source_filter,
        store,
        PassStore::Configured,
        Contention::Skip,
    )
    .await?;
    if let Some(busy) = pass.busy.into_iter().next() {
        return Err(busy.into());
    }
    Ok((pass.outcomes, pass.store))
}

/// How often `tillsyn scan --wait` asks again for a source another process
/// is scanning.
pub const WAIT_POLL: Duration = Duration::from_secs(1);

/// Scan every source once (or the one named) into `store`. A source another
/// process is scanning is waited for or left out and listed in
/// [`ScanPass::busy`], as `contention` says. The erasure register is
/// imported once, before the pass.
pub async fn scan_pass(
    engine: &Engine,
    source_filter: Option<&str>,
    store: Store,
    kind: PassStore,
    contention: Contention,
) -> Result<ScanPass, PassError> {
    let config = engine.config();
    let selected: Vec<_> = config
        .sources
        .iter()
        .filter(|source| source_filter.is_none_or(|name| source.name == name))
        .collect();
    if let Some(name) = source_filter
        && selected.is_empty()
    {
        let known: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
        return Err(PassError::UnknownSource {
            name: name.to_owned(),
            known: known.join(", "),
        });
    }
    let store = Arc::new(Mutex::new(store));
    let stop = Stop::default();
    let runner = match kind {
        PassStore::Configured => Runner::new(engine, &store, &stop),
        PassStore::Copy => Runner::new(engine, &store, &stop).on_copy(),
    };
    runner.before_tick(Utc::now()).await;
    let mut outcomes = Vec::new();
    let mut busy = Vec::new();
    for source_config in selected {
        let source = engine.source(source_config)?;
        let job = Job::whole(
            &source_config.name,
            source_config.scan_timeout,
            source_config.fingerprint(),
        );
        tracing::info!(source = %source_config.name, "Scan started.");
        let outcome = match runner.run(job, &source, contention).await? {
            Ran::Scanned(outcome) => outcome,
            Ran::Busy(leased) => {
                busy.push(leased);
                continue;
            }
        };
        match &outcome.error {
            None => tracing::info!(
                source = %outcome.source,
                status = outcome.status.as_str(),
                records = outcome.records,
                findings = outcome.findings,
                "Scan finished."
            ),
            // The message names accounts (often addresses): it goes to the
            // operator's output and the store, never to the log.
            Some((kind, _)) => tracing::warn!(
                source = %outcome.source,
                error_kind = %kind,
                "Scan failed."
            ),
        }
        outcomes.push(outcome);
    }
    Ok(ScanPass {
        outcomes,
        busy,
        store,
    })
}
