//! The scan runner: one scan of one source, from connector to stored findings.
//!
//! It owns what every connector would otherwise repeat: recording the scan's start
//! and end, streaming records through a bounded channel into the rules engine,
//! writing findings in batches, and deciding how the scan ended. Connectors only
//! produce records.
//!
//! A scan ends `complete` (read everything), `partial` (finished, some places
//! unreadable: nothing under them resolves) or `failed` (nothing resolves). The
//! findings a failed scan saw are still recorded, so a breach seen once is not lost.

use std::sync::{Arc, Mutex};
use tillsyn_core::fingerprint::Fingerprint;
use tillsyn_core::unit::{split_unit, unit_name};

use chrono::{DateTime, Utc};

use crate::engine::Engine;
use tillsyn_connectors::record_cache::{CachedRecord, RecordCache};
pub use tillsyn_connectors::source::{BuildError, Source};
use tillsyn_connectors::{
    CancelFlag, CarriedScope, Connector, ConnectorError, LeftOut, ProblemKind, RecordSink,
    ScanContext, ScanReport,
};

use tillsyn_rules::{RuleSet, SourceRules};
use tillsyn_store::{
    IdentityBatch, NewConflictKey, NewFinding, RecordCacheUpdate, SavedRecordCache, ScanEnd,
    ScanStatus, ScanTally, Store, StoreError,
};

/// Findings are written in transactions of this many.
const BATCH: usize = 1000;
/// Records in flight between connector and rules.
const CHANNEL: usize = 1024;

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

/// Scan every source once (or the one named) and store what was found.
pub async fn scan_once(
    engine: &Engine,
    source_filter: Option<&str>,
) -> Result<(Vec<ScanOutcome>, Arc<Mutex<Store>>), PassError> {
    let store = engine.open_store()?;
    let pass = scan_pass(engine, source_filter, store, false).await?;
    if let Some(busy) = pass.busy.into_iter().next() {
        return Err(busy.into());
    }
    Ok((pass.outcomes, pass.store))
}

/// Scan every source once (or the one named) into `store`. A source another
/// process is scanning is waited for (`wait`) or left out and listed in
/// [`ScanPass::busy`].
pub async fn scan_pass(
    engine: &Engine,
    source_filter: Option<&str>,
    store: Store,
    wait: bool,
) -> Result<ScanPass, PassError> {
    let config = engine.config();
    let rules = engine.rules();
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
    let mut outcomes = Vec::new();
    let mut busy = Vec::new();
    for source_config in selected {
        let source = engine.source(source_config)?;
        let job = Job::whole(
            &source_config.name,
            &source,
            source_config.scan_timeout,
            source_config.fingerprint(),
        );
        tracing::info!(source = %source_config.name, "Scan started.");
        let outcome = loop {
            match scan_source(job, rules, &store, Utc::now(), &Stop::default()).await {
                Err(RunError::Store(StoreError::Leased { .. })) if wait => {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
                Err(RunError::Store(leased @ StoreError::Leased { .. })) => {
                    busy.push(leased);
                    break None;
                }
                other => break Some(other?),
            }
        };
        let Some(outcome) = outcome else { continue };
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

/// How long a scan's lease on its source lasts without renewal; the runner
/// renews it every third of that while the scan runs, so a crashed process's
/// source is free again within this time.
pub const LEASE: std::time::Duration = std::time::Duration::from_secs(60);

/// Why a scan stopped before its connector finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stopped {
    /// Shutdown asked for it.
    Cancelled,
    /// The source's `scan_timeout` passed.
    Timeout,
    /// The scan's lease was lost: another process has the work now.
    LeaseLost,
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

/// Asked while a scan runs, every third of its lease: whether the work may go
/// on (a fleet's lease on the unit was renewed). `false` stops the scan, which
/// is recorded as failed (`lease_lost`): another instance has taken the work.
pub type KeepAlive = Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>> + Send + Sync,
>;

/// One scan to run: which source, built, and how long it may take.
#[derive(Clone, Copy)]
pub struct Job<'a> {
    /// The source's name.
    pub name: &'a str,
    /// The built connector.
    pub source: &'a Source,
    /// The source's `scan_timeout`.
    pub timeout: std::time::Duration,
    /// [`SourceConfig::fingerprint`]: a record cache made under other
    /// settings is not used.
    pub settings: u64,
    /// One unit of the source only; `None`: all of it.
    pub unit: Option<&'a Unit>,
    /// How long the scan's lease lasts without renewal ([`LEASE`] unless a
    /// fleet sets its own).
    pub lease: std::time::Duration,
    /// Asked at every renewal whether the scan may go on.
    pub keep_alive: Option<&'a KeepAlive>,
}

impl<'a> Job<'a> {
    /// A scan of all of `source`, under the default lease.
    pub fn whole(
        name: &'a str,
        source: &'a Source,
        timeout: std::time::Duration,
        settings: u64,
    ) -> Job<'a> {
        Job {
            name,
            source,
            timeout,
            settings,
            unit: None,
            lease: LEASE,
            keep_alive: None,
        }
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

/// Scan one source at `now` and store what was found.
///
/// The scan first takes the source's lease in the store; when another process
/// holds it, nothing is read or written and the error is
/// [`StoreError::Leased`]. The lease is renewed while the scan runs and given up
/// at the end. The connector runs in a task of its own: a panic there fails this
/// scan (kind `panic`), recorded like any other failure, and never the caller.
/// At `job.timeout` the scan is asked to stop (file walkers poll the same flag)
/// and, `stop.grace` later, cut off and recorded as failed (kind `timeout`).
pub async fn scan_source(
    job: Job<'_>,
    rules: &RuleSet,
    store: &Arc<Mutex<Store>>,
    now: DateTime<Utc>,
    stop: &Stop,
) -> Result<ScanOutcome, RunError> {
    let source = match job.unit {
        Some(unit) => job.source.only(&unit.prefixes),
        None => job.source.clone(),
    };
    let read = move |context: ScanContext, sink: RecordSink| async move {
        source.scan(context, sink).await
    };
    let target = Target {
        name: job.name,
        timeout: job.timeout,
        settings: job.settings,
        unit: job.unit,
        lease: job.lease,
        keep_alive: job.keep_alive,
    };
    scan_with(target, read, rules, store, now, stop).await
}

/// What [`scan_with`] scans: the source's name, `scan_timeout` and settings
/// fingerprint, the unit, and how the scan's lease is kept.
#[derive(Clone, Copy)]
struct Target<'a> {
    name: &'a str,
    timeout: std::time::Duration,
    settings: u64,
    unit: Option<&'a Unit>,
    lease: std::time::Duration,
    keep_alive: Option<&'a KeepAlive>,
}

impl<'a> Target<'a> {
    /// All of source `name`, under the default lease.
    #[cfg(test)]
    fn whole(name: &'a str, timeout: std::time::Duration, settings: u64) -> Target<'a> {
        Target {
            name,
            timeout,
            settings,
            unit: None,
            lease: LEASE,
            keep_alive: None,
        }
    }

    /// The name the scan's lease and memory of records checked go by.
    fn lease_name(&self) -> &'a str {
        self.unit.map_or(self.name, |unit| unit.name.as_str())
    }
}

/// [`scan_source`] over any reader: `read` is started in a task of its own
/// with the scan's context and sink.
async fn scan_with<F>(
    target: Target<'_>,
    read: impl FnOnce(ScanContext, RecordSink) -> F,
    rules: &RuleSet,
    store: &Arc<Mutex<Store>>,
    now: DateTime<Utc>,
    stop: &Stop,
) -> Result<ScanOutcome, RunError>
where
    F: std::future::Future<Output = Result<ScanReport, ConnectorError>> + Send + 'static,
{
    let Target {
        name,
        timeout: _,
        settings,
        unit,
        lease,
        keep_alive: _,
    } = target;
    let source_rules = rules.for_source(name);
    // A unit's scan leaves conflicts to be judged once its source's units
    // are all done (the fleet does it, once).
    let conflict_rules = match unit {
        Some(_) => Vec::new(),
        None => source_rules.conflict_rules(),
    };
    let owned_name = name.to_owned();
    let lease_name = target.lease_name().to_owned();
    // A unit's scan is recorded as that unit's (its part after the source's
    // name): the source is complete only when every unit is.
    let unit_name = unit.and_then(|unit| split_unit(&unit.name).map(|(_, part)| part.to_owned()));
    let within: Vec<String> = unit.map(|unit| unit.prefixes.clone()).unwrap_or_default();
    let judges_erasures = source_rules.judges_erasures();
    let importer = rules.clone();
    let checked_key = tillsyn_rules::checked::key(&source_rules);
    let checked_plan = checked_key.map(|key| tillsyn_rules::checked::plan(&source_rules, key));
    let (scan_id, checkpoints, erasures, saved_cache, saved_checked) =
        with_store(store, move |store| {
            store.take_lease(&lease_name, lease)?;
            // The erasure register, when there is one, is read at every scan: a
            // register with bad lines is refused whole (its line numbers logged,
            // never its content), and what the store holds stays.
            if let Some(Err(error)) = crate::erasure::import(&importer, store, now) {
                tracing::warn!(source = %owned_name, error = %error, "Erasure register not read.");
            }
            let erasures: tillsyn_rules::Erasures = if judges_erasures {
                store
                    .erasure_requests()?
                    .into_iter()
                    .map(|request| (request.hash, request.requested_at))
                    .collect()
            } else {
                Default::default()
            };
            let checkpoints = store.checkpoints_within(&owned_name, &within)?;
            let cache = store.record_cache(&owned_name)?;
            let checked = store.checked_plan(&lease_name)?;
            Ok((
                store.begin_unit_scan(&owned_name, unit_name.as_deref(), now)?,
                checkpoints,
                erasures,
                cache,
                checked,
            ))
        })
        .await?;
    let source_rules = source_rules.with_erasures(Arc::new(erasures));
    // The record cache is the whole source's: a unit's scan neither uses
    // nor changes it.
    let records = match unit {
        Some(_) => None,
        None => RecordMemory::load(name, &source_rules, settings, saved_cache, now),
    };
    let checked = checked_key
        .zip(checked_plan)
        .map(|(key, plan)| CheckedMemory {
            key,
            plan,
            remembered: saved_checked == Some(plan),
        });
    let scan = Started {
        target,
        scan_id,
        checkpoints,
        records,
        checked,
        exceptions: rules.exceptions().clone(),
        now,
    };
    let result = run_scan(scan, read, source_rules, conflict_rules, store, stop).await;
    let lease_name = target.lease_name().to_owned();
    let released = with_store(store, move |store| store.release_lease(&lease_name)).await;
    let outcome = result?;
    released?;
    Ok(outcome)
}

/// A scan that has its lease and its row in the store.
struct Started<'a> {
    target: Target<'a>,
    scan_id: i64,
    checkpoints: std::collections::BTreeMap<String, String>,
    records: Option<RecordMemory>,
    /// What earlier scans checked, to count this one's checked records.
    checked: Option<CheckedMemory>,
    /// `[[exceptions]]`, to mark this scan's findings with.
    exceptions: Arc<tillsyn_rules::exceptions::Exceptions>,
    now: DateTime<Utc>,
}

/// The checked-records memory of one scan (see [`crate::checked`]): its key,
/// the plan it is kept under, and what earlier scans left under that plan.
struct CheckedMemory {
    key: [u8; 16],
    plan: u64,
    /// The store holds a memory made under the same plan (read only when
    /// this scan changed something).
    remembered: bool,
}

/// The record cache of one scan (see [`tillsyn_connectors::record_cache`]):
/// what earlier scans judged, handed to the connector, and the plan it is
/// kept under. Lifecycle only: the connector decides what is unchanged, the
/// rules when a verdict can change.
struct RecordMemory {
    cache: Arc<RecordCache>,
    /// Fingerprint of the rules, the source's settings and this build.
    plan: u64,
    /// The entries the cache was loaded with are those stored (not replaced
    /// because the plan or the encoding changed).
    stored: bool,
    /// ... and they hold every record the store keeps anything about.
    stored_complete: bool,
}

impl RecordMemory {
    /// The cache for a scan of `name` at `now`, from what the store held
    /// (`saved`): empty when it was made under another plan or cannot be
    /// read; `None` when the rules forbid leaving records out.
    fn load(
        name: &str,
        rules: &SourceRules,
        settings: u64,
        saved: Option<SavedRecordCache>,
        now: DateTime<Utc>,
    ) -> Option<RecordMemory> {
        let key = rules.record_cache_key()?;
        let plan = Fingerprint::new("record cache plan")
            .number(rules.judging_fingerprint())
            .number(settings)
            .text(env!("CARGO_PKG_VERSION"))
            .number(u64::from(tillsyn_connectors::record_cache::FORMAT))
            .value();
        let (entries, stored, stored_complete) = match saved {
            Some(saved) if saved.plan == plan => match RecordCache::decode(&saved.data) {
                Ok(entries) => (entries, true, saved.complete),
                Err(error) => {
                    tracing::warn!(source = %name, error = %error, "Record cache not read; every record is judged again.");
                    (Vec::new(), false, false)
                }
            },
            _ => (Vec::new(), false, false),
        };
        Some(RecordMemory {
            cache: Arc::new(RecordCache::new(key, entries, now.timestamp())),
            plan,
            stored,
            stored_complete,
        })
    }

    /// What the store keeps after a scan that finished, having judged
    /// `consumed.judged` (the stamped records it read), and the carried scope
    /// of the records it left out. `read_all`: the scan could read every
    /// place.
    fn finish(
        &self,
        consumed: Consumed,
        read_all: bool,
    ) -> (RecordCacheUpdate, Option<CarriedScope>) {
        let Consumed {
            judged, unstamped, ..
        } = consumed;
        let left_out = self.cache.left_out_count();
        let everything_left_out =
            judged.is_empty() && unstamped == 0 && left_out == self.cache.len();
        let scope = (left_out > 0).then(|| CarriedScope {
            prefix: String::new(),
            gone: Vec::new(),
            present: None,
            // Every record the store knows of was left out unchanged: all of
            // it is carried, and the store need not ask record by record.
            left_out: (!(everything_left_out && self.stored_complete))
                .then(|| LeftOut(self.cache.clone())),
        });
        // Nothing read again, nothing gone: the stored cache stays as it is.
        if self.stored && everything_left_out {
            return (RecordCacheUpdate::Keep, scope);
        }
        let next = self.cache.next(judged);
        // A connector that stamps nothing leaves nothing to remember.
        if next.is_empty() {
            return (RecordCacheUpdate::Clear, scope);
        }
        let update = RecordCacheUpdate::Replace {
            plan: self.plan,
            complete: read_all && unstamped == 0,
            entries: next.len(),
            data: RecordCache::encode(&next),
        };
        (update, scope)
    }
}

async fn run_scan<F>(
    scan: Started<'_>,
    read: impl FnOnce(ScanContext, RecordSink) -> F,
    source_rules: SourceRules,
    conflict_rules: Vec<(String, &'static str)>,
    store: &Arc<Mutex<Store>>,
    stop: &Stop,
) -> Result<ScanOutcome, RunError>
where
    F: std::future::Future<Output = Result<ScanReport, ConnectorError>> + Send + 'static,
{
    let Started {
        target,
        scan_id,
        checkpoints,
        records: memory,
        checked,
        exceptions,
        now,
    } = scan;
    let Target {
        name,
        timeout,
        unit,
        lease,
        keep_alive,
        ..
    } = target;
    let lease_name = target.lease_name();
    // Findings this scan recorded are marked with the exceptions covering
    // them before the scan's open count is taken.
    let apply_exceptions = move |store: &mut Store, source: &str| {
        store.mark_exceptions(&exceptions, Some(source)).map(|_| ())
    };
    let apply_on_failure = apply_exceptions.clone();
    // This scan's own flag: set by shutdown or by the deadline, whichever first.
    let scan_flag = CancelFlag::default();
    let context = ScanContext {
        source: Arc::from(name),
        needs: source_rules.needs(now),
        cancel: scan_flag.clone(),
        checkpoints,
        content: source_rules.content_plan(now).map(|mut plan| {
            plan.extractor = document_extractor(source_rules.content_limits());
            Arc::new(plan)
        }),
        timezone: source_rules.timezone(),
        records: memory.as_ref().map(|memory| memory.cache.clone()),
    };
    let (sink, mut receiver) = RecordSink::channel(CHANNEL);
    let consumer_store = store.clone();
    let source_name = name.to_owned();
    let consumer_cache = context.records.clone();
    let whole = unit.is_none();
    let judged = checked
        .as_ref()
        .map(|checked| tillsyn_rules::checked::Judged::new(checked.key));
    let consumer = tokio::task::spawn_blocking(move || {
        let mut judged = judged;
        let consumed = consume(
            &mut receiver,
            &source_rules,
            Destination {
                store: &consumer_store,
                scan_id,
                source: &source_name,
                whole,
                cache: consumer_cache.as_deref(),
                judged: judged.as_mut(),
            },
            now,
        );
        (consumed, judged, source_rules)
    });
    // The connector in a task of its own, so that a panic in it is this scan's
    // failure. Aborting the task drops its sink, which ends the consumer.
    let mut connector = tokio::spawn(read(context, sink));
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut renew = tokio::time::interval(lease / 3);
    renew.tick().await;
    let mut stopped: Option<(Stopped, tokio::time::Instant)> = None;
    let scanned = loop {
        let cut_off = async {
            match stopped {
                Some((_, at)) => tokio::time::sleep_until(at + stop.grace).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            joined = &mut connector => break match joined {
                Ok(result) => result,
                Err(error) if error.is_panic() => Err(ConnectorError::Panicked(format!(
                    "the connector ({})",
                    panic_text(error.into_panic())
                ))),
                Err(error) => Err(ConnectorError::Worker(error.to_string())),
            },
            () = stop.flag.cancelled(), if stopped.is_none() => {
                scan_flag.cancel();
                stopped = Some((Stopped::Cancelled, tokio::time::Instant::now()));
            }
            () = &mut deadline, if stopped.is_none() => {
                tracing::warn!(source = %name, timeout_seconds = timeout.as_secs(), "Scan deadline passed; stopping it.");
                scan_flag.cancel();
                stopped = Some((Stopped::Timeout, tokio::time::Instant::now()));
            }
            () = cut_off => {
                connector.abort();
                break Err(ConnectorError::Cancelled);
            }
            _ = renew.tick(), if stopped.is_none() => {
                let owned = lease_name.to_owned();
                // A store that does not answer now will be reported by the
                // scan's own writes; the lease then simply runs out.
                let renewed = with_store(store, move |store| store.renew_lease(&owned, lease)).await;
                let kept = match keep_alive {
                    Some(keep_alive) => keep_alive().await,
                    None => true,
                };
                if matches!(renewed, Ok(false)) || !kept {
                    tracing::warn!(source = %name, "Scan lease lost (another process has taken the work); stopping the scan.");
                    scan_flag.cancel();
                    stopped = Some((Stopped::LeaseLost, tokio::time::Instant::now()));
                }
            }
        }
    };
    let scanned = match (scanned, stopped) {
        (Err(ConnectorError::Cancelled), Some((Stopped::Timeout, _))) => {
            Err(ConnectorError::Unavailable {
                kind: "timeout",
                message: format!(
                    "the scan ran past its scan_timeout of {} s and was stopped",
                    timeout.as_secs()
                ),
            })
        }
        (Err(ConnectorError::Cancelled), Some((Stopped::LeaseLost, _)))
        | (Ok(_), Some((Stopped::LeaseLost, _))) => Err(ConnectorError::Unavailable {
            kind: "lease_lost",
            message: "the scan's lease ran out and another process took the work".to_owned(),
        }),
        (scanned, _) => scanned,
    };
    let (consumed, judged, source_rules) = match consumer.await {
        Ok((result, judged, source_rules)) => (Ok(result), judged, Some(source_rules)),
        Err(error) => (Err(error), None, None),
    };
    let consumed = match consumed {
        Ok(result) => Ok(result),
        Err(error) if error.is_panic() => Err(ConnectorError::Panicked(format!(
            "the rules engine ({})",
            panic_text(error.into_panic())
        ))),
        Err(error) => Err(ConnectorError::Worker(error.to_string())),
    };
    let (records, findings, consumed, scanned) = match consumed {
        Ok(Ok(consumed)) => (consumed.records, consumed.findings, consumed, scanned),
        // The rules or the store failed under the scan: it did not see every
        // record, so it fails, whatever the connector says.
        Ok(Err(error)) => (
            0,
            0,
            Consumed::default(),
            Err(ConnectorError::Worker(format!(
                "evaluating records: {error}"
            ))),
        ),
        Err(error) => (0, 0, Consumed::default(), Err(error)),
    };
    let finished = Utc::now();
    let owned_name = name.to_owned();
    match scanned {
        Ok(mut report) => {
            let record_cache = match &memory {
                Some(memory) => {
                    let read_all = report.unread_prefixes.is_empty();
                    let (update, scope) = memory.finish(consumed, read_all);
                    report.carried.extend(scope);
                    update
                }
                // A unit's scan leaves the source's record cache alone.
                None if unit.is_some() => RecordCacheUpdate::Keep,
                None => RecordCacheUpdate::Clear,
            };
            let problems: Vec<(ProblemKind, u64)> =
                report.problems.iter().map(|(k, v)| (*k, *v)).collect();
            let status = if report.unread_prefixes.is_empty() {
                ScanStatus::Complete
            } else {
                ScanStatus::Partial
            };
            let stored_problems: Vec<(&'static str, u64)> =
                problems.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            // What each rule checked: this scan's records and what it carried,
            // counted when the scan changed something.
            let counting = match (checked, judged, source_rules) {
                (Some(checked), Some(judged), Some(rules))
                    if !tillsyn_rules::checked::unchanged(checked.remembered, &judged, &report) =>
                {
                    Some((checked, judged, rules))
                }
                _ => None,
            };
            let notes = report.notes.clone();
            let work = report.work.clone();
            let source_name_for_exceptions = owned_name.clone();
            let memory_name = lease_name.to_owned();
            let within = unit.map(|unit| unit.prefixes.clone()).unwrap_or_default();
            let tally = with_store(store, move |store| {
                let end = ScanEnd {
                    status,
                    records,
                    problems: &stored_problems,
                    unread_prefixes: &report.unread_prefixes,
                    within: &within,
                    carried: &report.carried,
                    checkpoints: &report.checkpoints,
                    conflict_rules: &conflict_rules,
                    finished_at: finished,
                    record_cache,
                };
                apply_exceptions(store, &source_name_for_exceptions)?;
                let tally = store.finish_scan(scan_id, &end)?;
                if let Some((checked, judged, rules)) = counting {
                    // A unit keeps its own memory of records checked.
                    let source = &memory_name;
                    let previous = match checked.remembered {
                        true => store.checked_memory(source)?,
                        false => None,
                    };
                    let counted = tillsyn_rules::checked::count(
                        previous
                            .as_ref()
                            .filter(|(plan, _)| *plan == checked.plan)
                            .map(|(_, data)| data.as_slice()),
                        judged,
                        &report,
                        &rules,
                    );
                    store.save_checked(
                        source,
                        checked.plan,
                        &counted.memory.encode(),
                        &counted.counts,
                    )?;
                }
                Ok(tally)
            })
            .await?;
            Ok(ScanOutcome {
                source: owned_name,
                scan_id,
                status,
                records,
                findings,
                tally,
                problems,
                notes,
                work,
                error: None,
            })
        }
        Err(error) => {
            let kind = error.kind().to_owned();
            let message = error.to_string();
            let (stored_kind, stored_message) = (kind.clone(), message.clone());
            let source_name_for_exceptions = owned_name.clone();
            with_store(store, move |store| {
                store.fail_scan(scan_id, records, &stored_kind, &stored_message, finished)?;
                apply_on_failure(store, &source_name_for_exceptions)
            })
            .await?;
            let open = with_store(store, {
                let name = owned_name.clone();
                move |store| store.open_count(&name)
            })
            .await?;
            Ok(ScanOutcome {
                source: owned_name,
                scan_id,
                status: ScanStatus::Failed,
                records,
                findings,
                tally: ScanTally {
                    new: 0,
                    resolved: 0,
                    open,
                },
                problems: Vec::new(),
                notes: Vec::new(),
                work: Default::default(),
                error: Some((kind, message)),
            })
        }
    }
}

/// A panic's message, when it has one.
fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned())
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

/// Where [`consume`] writes: the store, the scan and its source, and the
/// scan's record cache, if any.
struct Destination<'a> {
    store: &'a Arc<Mutex<Store>>,
    scan_id: i64,
    source: &'a str,
    /// A scan of the whole source (not one unit of it).
    whole: bool,
    cache: Option<&'a RecordCache>,
    /// Where the rules that checked each record are noted.
    judged: Option<&'a mut tillsyn_rules::checked::Judged>,
}

/// What [`consume`] did.
#[derive(Debug, Default)]
struct Consumed {
    /// Records read.
    records: u64,
    /// Findings seen.
    findings: u64,
    /// The stamped records judged, for the record cache.
    judged: Vec<CachedRecord>,
    /// Records read without a stamp (none are remembered).
    unstamped: u64,
}

/// Evaluate records as they arrive and store findings in batches.
fn consume(
    receiver: &mut tokio::sync::mpsc::Receiver<Vec<tillsyn_connectors::Record>>,
    rules: &SourceRules,
    destination: Destination<'_>,
    now: DateTime<Utc>,
) -> Result<Consumed, RunError> {
    let Destination {
        store,
        scan_id,
        source,
        whole,
        cache,
        judged: mut checked,
    } = destination;
    let mut judged = Vec::new();
    let mut unstamped = 0u64;
    let mut records = 0u64;
    let mut findings = 0u64;
    let mut findings_batch: Vec<NewFinding> = Vec::with_capacity(BATCH);
    let mut keys_batch: Vec<NewConflictKey> = Vec::new();
    let mut identities_batch = IdentityBatch::default();
    let identity = rules.identity_plan(now);
    let erasure_plan = rules.erasure_plan(now);
    let mut requests = Vec::new();
    let mut not_requests = 0u64;
    // Stop reading on a store error: dropping the receiver ends the connector
    // with SinkClosed, and the scan is recorded as failed.
    let flush = |batch: &mut Vec<NewFinding>| {
        flush_batch(store, batch, |store, rows| {
            store.record_findings(scan_id, source, now, rows)
        })
    };
    let flush_keys = |batch: &mut Vec<NewConflictKey>| {
        flush_batch(store, batch, |store, rows| {
            store.record_conflict_keys(scan_id, source, rows)
        })
    };
    let flush_identities = |batch: &mut IdentityBatch| -> Result<(), RunError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut guard = store
            .lock()
            .map_err(|_| RunError::Worker("store lock poisoned".into()))?;
        guard.record_identities(scan_id, batch)?;
        Ok(())
    };
    while let Some(batch) = receiver.blocking_recv() {
        for record in batch {
            records += 1;
            match (cache, record.stamp) {
                (Some(cache), Some(stamp)) => judged.push(CachedRecord {
                    key: cache.key(&record.path),
                    stamp,
                    recheck_at: rules.recheck_at(&record, now),
                }),
                _ => unstamped += 1,
            }
            if let Some(checked) = checked.as_deref_mut() {
                checked.note(&record, rules.checking(&record));
            }
            for violation in rules.evaluate(&record, now) {
                findings += 1;
                findings_batch.push(NewFinding {
                    rule: violation.rule.config.id.clone(),
                    record_id: record.id.clone(),
                    record_path: record.path.clone(),
                    record_kind: record.kind.as_str(),
                    custodian: record.custodian.clone(),
                    severity: violation.rule.config.severity.as_str(),
                    custodian_marked: violation.custodian_marked(&record),
                    detail_data: violation.data.to_json(),
                    detail: violation.detail,
                    age_days: violation.age_days,
                });
            }
            for key in rules.conflict_keys(&record) {
                keys_batch.push(NewConflictKey {
                    rule: key.rule,
                    side: key.side.as_str(),
                    key: key.key,
                    record_id: record.id.clone(),
                    record_path: record.path.clone(),
                    record_kind: record.kind.as_str(),
                    custodian: record.custodian.clone(),
                });
            }
            if let Some(plan) = &erasure_plan {
                match rules.erasure_request(&record, plan) {
                    Some(request) => requests.push(request),
                    None => not_requests += 1,
                }
            }
            if let Some(identity) = &identity {
                let mut rows = Vec::new();
                identity.rows(&record, &mut rows);
                for row in &rows {
                    identities_batch.push(row);
                }
                for unerased in rules.unerased(&record, &rows, now) {
                    findings += 1;
                    findings_batch.push(NewFinding {
                        rule: unerased.rule.config.id.clone(),
                        record_id: unerased.record_id,
                        record_path: unerased.record_path,
                        record_kind: unerased.record_kind,
                        custodian: record.custodian.clone(),
                        severity: unerased.rule.config.severity.as_str(),
                        detail: unerased.data.render(tillsyn_core::language::Language::En),
                        detail_data: unerased.data.to_json(),
                        age_days: Some(unerased.age_days),
                        // Erasure is the person's right, not the custodian's call.
                        custodian_marked: false,
                    });
                }
            }
            if keys_batch.len() >= BATCH {
                flush_keys(&mut keys_batch)?;
            }
            if identities_batch.len() >= BATCH {
                flush_identities(&mut identities_batch)?;
            }
            if findings_batch.len() >= BATCH {
                flush(&mut findings_batch)?;
            }
        }
    }
    flush(&mut findings_batch)?;
    flush_keys(&mut keys_batch)?;
    flush_identities(&mut identities_batch)?;
    // What the accounts were indexed as: whether they cover addresses is
    // judged by this, never assumed.
    if let Some(identity) = &identity {
        let kinds = identity.custodian_kinds();
        if !kinds.is_empty() {
            store
                .lock()
                .map_err(|_| RunError::Worker("store lock poisoned".into()))?
                .note_account_kinds(source, &kinds, whole)?;
        }
    }
    if !requests.is_empty() {
        flush_batch(store, &mut requests, |store, rows| {
            store.import_erasures(rows, now).map(|_| ())
        })?;
    }
    if not_requests > 0 {
        // Counted, never quoted: the items name people.
        tracing::warn!(
            source,
            items = not_requests,
            "Erasure source: items without a valid identifier or date were not read as requests."
        );
    }
    Ok(Consumed {
        records,
        findings,
        judged,
        unstamped,
    })
}

/// Write a batch of rows with the store locked, and empty it.
fn flush_batch<T>(
    store: &Arc<Mutex<Store>>,
    batch: &mut Vec<T>,
    write: impl FnOnce(&mut Store, &[T]) -> Result<(), tillsyn_store::StoreError>,
) -> Result<(), RunError> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut guard = store
        .lock()
        .map_err(|_| RunError::Worker("store lock poisoned".into()))?;
    write(&mut guard, batch)?;
    batch.clear();
    Ok(())
}

/// The document extractor for `[content]`'s limits: workers of this binary
/// (`tillsyn __extract`), one per document; `None` when this binary cannot
/// be found to start them (documents are then not read, and not counted as
/// unreadable either).
fn document_extractor(
    limits: &tillsyn_config::ContentConfig,
) -> Option<Arc<tillsyn_extract::Isolated>> {
    let isolated = tillsyn_extract::Isolated::of_this_binary().ok()?;
    Some(Arc::new(tillsyn_extract::Isolated {
        limits: tillsyn_extract::Limits {
            member_bytes: limits.member_bytes,
            total_bytes: limits.archive_total_bytes,
            depth: limits.archive_depth,
            ..isolated.limits
        },
        deadline: std::time::Duration::from_secs(limits.document_seconds.max(1)),
        memory_bytes: limits.document_memory_bytes,
        ..isolated
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn setup() -> (tempfile::TempDir, Arc<Mutex<Store>>, RuleSet) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Mutex::new(Store::open(dir.path()).expect("store")));
        let rules = RuleSet::new(&[], chrono_tz::UTC).expect("rules");
        (dir, store, rules)
    }

    fn quick_stop() -> Stop {
        Stop {
            flag: CancelFlag::default(),
            grace: Duration::from_millis(100),
        }
    }

    /// Scan source `s` with `read` under `timeout`, with a short grace.
    async fn scan_reading<F>(
        store: &Arc<Mutex<Store>>,
        rules: &RuleSet,
        timeout: Duration,
        read: impl FnOnce(ScanContext, RecordSink) -> F,
    ) -> Result<ScanOutcome, RunError>
    where
        F: std::future::Future<Output = Result<ScanReport, ConnectorError>> + Send + 'static,
    {
        let target = Target::whole("s", timeout, 0);
        scan_with(target, read, rules, store, Utc::now(), &quick_stop()).await
    }

    fn last_scan(store: &Arc<Mutex<Store>>) -> tillsyn_store::ScanRow {
        store
            .lock()
            .expect("lock")
            .last_scan("s")
            .expect("scan")
            .expect("a scan row")
    }

    #[tokio::test]
    #[allow(clippy::panic)]
    async fn a_panicking_reader_fails_its_scan_and_nothing_else() {
        let (_dir, store, rules) = setup();
        let read = |_context: ScanContext, _sink: RecordSink| async move {
            if std::hint::black_box(true) {
                panic!("a parser met something it did not expect");
            }
            Ok(ScanReport::default())
        };
        let outcome = scan_reading(&store, &rules, Duration::from_secs(60), read)
            .await
            .expect("the runner itself survives");
        assert_eq!(outcome.status, ScanStatus::Failed);
        let (kind, message) = outcome.error.expect("an error");
        assert_eq!(kind, "panic");
        assert!(message.contains("did not expect"), "{message}");
        let row = last_scan(&store);
        assert_eq!(row.status, ScanStatus::Failed);
        assert_eq!(row.error_kind.as_deref(), Some("panic"));
        // The lease is given back: the next scan runs.
        let outcome = scan_reading(
            &store,
            &rules,
            Duration::from_secs(60),
            |_c: ScanContext, _s: RecordSink| async { Ok(ScanReport::default()) },
        )
        .await
        .expect("scan");
        assert_eq!(outcome.status, ScanStatus::Complete);
    }

    #[tokio::test]
    async fn the_deadline_stops_a_reader_that_polls_the_flag() {
        let (_dir, store, rules) = setup();
        let read = |context: ScanContext, _sink: RecordSink| async move {
            while !context.cancel.is_cancelled() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(ConnectorError::Cancelled)
        };
        let outcome = scan_reading(&store, &rules, Duration::from_millis(50), read)
            .await
            .expect("runner");
        assert_eq!(outcome.status, ScanStatus::Failed);
        assert_eq!(outcome.error.expect("error").0, "timeout");
        assert_eq!(last_scan(&store).error_kind.as_deref(), Some("timeout"));
    }

    #[tokio::test]
    async fn the_deadline_cuts_off_a_reader_stuck_where_it_cannot_poll() {
        let (_dir, store, rules) = setup();
        // As a walker blocked in a hung NFS stat: it never looks at the flag.
        let read = |_context: ScanContext, _sink: RecordSink| async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(ScanReport::default())
        };
        let outcome = scan_reading(&store, &rules, Duration::from_millis(50), read)
            .await
            .expect("runner");
        assert_eq!(outcome.status, ScanStatus::Failed);
        assert_eq!(outcome.error.expect("error").0, "timeout");
    }

    #[tokio::test]
    async fn a_source_leased_by_another_process_is_not_scanned() {
        let (dir, store, rules) = setup();
        let mut other = Store::open(dir.path()).expect("second process");
        other
            .take_lease("s", std::time::Duration::from_secs(60))
            .expect("lease");
        let result = scan_reading(
            &store,
            &rules,
            Duration::from_secs(60),
            |_c: ScanContext, _s: RecordSink| async { Ok(ScanReport::default()) },
        )
        .await;
        assert!(
            matches!(result, Err(RunError::Store(StoreError::Leased { .. }))),
            "{result:?}"
        );
        assert!(
            store
                .lock()
                .expect("lock")
                .last_scan("s")
                .expect("scan")
                .is_none(),
            "nothing was recorded"
        );
    }

    /// A share scanned at `now` with the config `toml` (its sources and
    /// rules; the state in `dir`).
    async fn scan_share_at(
        dir: &std::path::Path,
        toml: &str,
        store: &Arc<Mutex<Store>>,
        now: DateTime<Utc>,
    ) -> (ScanOutcome, std::collections::BTreeSet<String>) {
        let config = tillsyn_config::parse(toml, &dir.join("tillsyn.toml")).expect("config");
        let rules = RuleSet::for_config(&config)
            .expect("rules")
            .with_identity_key(tillsyn_core::identity::IdentityKey::new(
                tillsyn_core::secret::Secret::new(b"record cache test key".to_vec()),
            ));
        let source_config = &config.sources[0];
        let source = Source::build(&source_config.settings).expect("source");
        let job = Job::whole(
            &source_config.name,
            &source,
            Duration::from_secs(60),
            source_config.fingerprint(),
        );
        let outcome = scan_source(job, &rules, store, now, &quick_stop())
            .await
            .expect("scan");
        assert_eq!(outcome.status, ScanStatus::Complete, "{outcome:?}");
        let open = store
            .lock()
            .expect("lock")
            .findings(tillsyn_store::FindingFilter::Open, None, None)
            .expect("findings")
            .into_iter()
            .map(|finding| format!("{}:{}", finding.rule, finding.record_path))
            .collect();
        (outcome, open)
    }

    fn file_at(path: &std::path::Path, text: &str, modified: DateTime<Utc>) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        std::fs::write(path, text).expect("file");
        let file = std::fs::File::options()
            .append(true)
            .open(path)
            .expect("open");
        file.set_modified(modified.into()).expect("mtime");
    }

    /// Per rule of source `share`: records checked, custodians, complete.
    fn checked(store: &Arc<Mutex<Store>>) -> Vec<(String, u64, usize, bool)> {
        store
            .lock()
            .expect("lock")
            .checked_counts()
            .expect("counts")
            .into_iter()
            .filter(|row| row.source == "share")
            .map(|row| (row.rule, row.records, row.custodians.len(), row.complete))
            .collect()
    }

    fn counts(stale: u64, applications: u64) -> Vec<(String, u64, usize, bool)> {
        vec![
            ("applications".to_owned(), applications, 1, true),
            ("stale".to_owned(), stale, 1, true),
        ]
    }

    fn set(items: &[&str]) -> std::collections::BTreeSet<String> {
        items.iter().map(|item| (*item).to_owned()).collect()
    }

    /// The record cache leaves out exactly the records that cannot be judged
    /// otherwise: not one whose age passes its limit between scans, nor one
    /// whose marker date changed above it, nor one rewritten; and a record
    /// that went is not carried. Found exactly at every step.
    #[tokio::test]
    async fn the_record_cache_leaves_out_only_what_cannot_have_changed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let share = dir.path().join("share");
        let start = Utc::now();
        let days = |n: i64| chrono::TimeDelta::days(n);
        file_at(&share.join("a/old.txt"), "x", start - days(40));
        file_at(&share.join("a/young.txt"), "x", start - days(20));
        file_at(&share.join("a/fresh.txt"), "x", start - days(1));
        file_at(&share.join("b/changed.txt"), "x", start - days(40));
        file_at(&share.join("gone.txt"), "x", start - days(40));
        let filled = |ago: i64| format!("tillsatt {}\n", (start - days(ago)).format("%Y-%m-%d"));
        file_at(&share.join("jobs/j1/TILLSATT.txt"), &filled(10), start);
        file_at(&share.join("jobs/j1/cv.pdf"), "x", start - days(1));
        let toml = format!(
            "[daemon]\nstate_dir = {state:?}\n\n\
             [[sources]]\nname = \"share\"\ntype = \"fileshare\"\nroot = {root:?}\n\
             markers = [{{ file = \"TILLSATT.txt\", date = \"position_filled\" }}]\n\n\
             [[rules]]\nid = \"stale\"\nkind = \"max_age\"\npolicy = \"p\"\nmax_age = \"30d\"\n\
             timestamp = \"modified\"\nwhen = {{ exclude_paths = [\"jobs/**\"] }}\n\n\
             [[rules]]\nid = \"applications\"\nkind = \"max_age\"\npolicy = \"p\"\nmax_age = \"60d\"\n\
             timestamp = \"date:position_filled\"\nwhen = {{ paths = [\"jobs/**\"] }}\n",
            state = dir.path().join("state").display().to_string(),
            root = share.display().to_string(),
        );
        let store = Arc::new(Mutex::new(
            Store::open(&dir.path().join("state")).expect("store"),
        ));
        let files = 6;

        let (first, open) = scan_share_at(dir.path(), &toml, &store, start).await;
        assert_eq!(first.records, files);
        assert_eq!(first.work.get("records_unchanged"), None);
        assert_eq!(
            open,
            set(&["stale:a/old.txt", "stale:b/changed.txt", "stale:gone.txt"])
        );
        // Records checked: five outside jobs/, one application.
        assert_eq!(checked(&store), counts(5, 1));

        // Nothing changed: every record is left out, and what was found stands.
        let (again, open) = scan_share_at(
            dir.path(),
            &toml,
            &store,
            start + chrono::TimeDelta::minutes(1),
        )
        .await;
        assert_eq!(again.records, 0);
        assert_eq!(again.work.get("records_unchanged"), Some(&files));
        assert_eq!(
            open,
            set(&["stale:a/old.txt", "stale:b/changed.txt", "stale:gone.txt"])
        );
        assert_eq!((again.tally.new, again.tally.resolved), (0, 0));
        // What was left out still counts as checked.
        assert_eq!(checked(&store), counts(5, 1));

        // Fifteen days on: young.txt passed 30 days; the position was filled
        // 100 days ago, not 10; changed.txt was rewritten; gone.txt went.
        file_at(&share.join("b/changed.txt"), "new", start);
        std::fs::remove_file(share.join("gone.txt")).expect("remove");
        file_at(&share.join("jobs/j1/TILLSATT.txt"), &filled(100), start);
        let (later, open) = scan_share_at(dir.path(), &toml, &store, start + days(15)).await;
        assert_eq!(
            open,
            set(&[
                "applications:jobs/j1/cv.pdf",
                "stale:a/old.txt",
                "stale:a/young.txt"
            ])
        );
        // old.txt (broken for good) and fresh.txt (due in 14 more days) were
        // left out; young.txt, cv.pdf and changed.txt were judged again.
        assert_eq!(later.work.get("records_unchanged"), Some(&2));
        assert_eq!(later.records, 3);
        assert_eq!((later.tally.new, later.tally.resolved), (2, 2));
        // gone.txt no longer counts; the two left out still do.
        assert_eq!(checked(&store), counts(4, 1));

        // Other rules: nothing judged under the old ones is left out.
        let stricter = toml.replace("max_age = \"30d\"", "max_age = \"10d\"");
        let (rules_changed, open) =
            scan_share_at(dir.path(), &stricter, &store, start + days(15)).await;
        assert_eq!(rules_changed.work.get("records_unchanged"), None);
        assert_eq!(rules_changed.records, 5);
        assert_eq!(checked(&store), counts(4, 1));
        let (again, same) = scan_share_at(dir.path(), &stricter, &store, start + days(15)).await;
        assert_eq!(again.work.get("records_unchanged"), Some(&5));
        assert_eq!(same, open);
        assert_eq!(checked(&store), counts(4, 1));
        // Another identity index: records are read again for it too.
        let unindexed = format!("{stricter}\n[identity]\nenabled = false\n");
        let (identity_changed, unchanged_open) =
            scan_share_at(dir.path(), &unindexed, &store, start + days(15)).await;
        assert_eq!(identity_changed.work.get("records_unchanged"), None);
        assert_eq!(unchanged_open, open);
        assert_eq!(
            open,
            set(&[
                "applications:jobs/j1/cv.pdf",
                "stale:a/fresh.txt",
                "stale:a/old.txt",
                "stale:a/young.txt",
                "stale:b/changed.txt"
            ])
        );
    }
}
