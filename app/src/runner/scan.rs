//! One scan under its leases, its deadline and its stop flag: the store's
//! row for it, the connector in a task of its own, the rules over its
//! records, and how it ended.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tillsyn_connectors::{
    CancelFlag, Connector, ConnectorError, ProblemKind, RecordSink, ScanContext, ScanReport,
};
use tillsyn_core::unit::split_unit;
use tillsyn_rules::SourceRules;
use tillsyn_store::{RecordCacheUpdate, ScanEnd, ScanStatus, ScanTally, Store};

use super::consume::{Consumed, Destination, consume, document_extractor};
use super::lease::{Lease, StoreLease, renew_all};
use super::memory::{CheckedMemory, RecordMemory};
use super::{CHANNEL, Job, RunError, Runner, ScanOutcome, Source, with_store};

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

impl Runner<'_> {
    /// Scan one source (or `job`'s unit of it) at `now` and store what was
    /// found.
    ///
    /// The scan first takes the source's lease in the store; when another
    /// process holds it, nothing is read or written and the error is
    /// [`tillsyn_store::StoreError::Leased`]. The lease (and `job.held`) is
    /// renewed while the scan runs and given up at the end. The connector runs
    /// in a task of its own: a panic there fails this scan (kind `panic`),
    /// recorded like any other failure, and never the caller. At
    /// `job.timeout` the scan is asked to stop (file walkers poll the same
    /// flag) and, `stop.grace` later, cut off and recorded as failed (kind
    /// `timeout`). After it, the retention is applied (a failure to prune is
    /// logged; the scan's outcome stands).
    pub async fn scan_source(
        &self,
        job: Job<'_>,
        source: &Source,
        now: DateTime<Utc>,
    ) -> Result<ScanOutcome, RunError> {
        let source = match job.unit {
            Some(unit) => source.only(&unit.prefixes),
            None => source.clone(),
        };
        let read = move |context: ScanContext, sink: RecordSink| async move {
            source.scan(context, sink).await
        };
        let started = std::time::Instant::now();
        let mut outcome = self.scan_with(job, read, now).await?;
        outcome.duration = started.elapsed();
        // The scan is stored whatever happens here: a store that cannot
        // prune now is told, and prunes after the next scan.
        if let Err(error) = self.after_scan(Utc::now()).await {
            tracing::warn!(source = %job.name, error = %error, "Could not prune what is past the retention after the scan.");
        }
        Ok(outcome)
    }

    /// [`Runner::scan_source`] over any reader: `read` is started in a task
    /// of its own with the scan's context and sink.
    pub(super) async fn scan_with<F>(
        &self,
        job: Job<'_>,
        read: impl FnOnce(ScanContext, RecordSink) -> F,
        now: DateTime<Utc>,
    ) -> Result<ScanOutcome, RunError>
    where
        F: std::future::Future<Output = Result<ScanReport, ConnectorError>> + Send + 'static,
    {
        let Job {
            name,
            settings,
            unit,
            ..
        } = job;
        let rules = self.rules;
        let store = self.store;
        let lease = job.lease_duration();
        let source_rules = rules.for_source(name);
        // A unit's scan leaves conflicts to be judged once its source's units
        // are all done (the fleet does it, once).
        let conflict_rules = match unit {
            Some(_) => Vec::new(),
            None => source_rules.conflict_rules(),
        };
        let owned_name = name.to_owned();
        let lease_name = job.lease_name().to_owned();
        // A unit's scan is recorded as that unit's (its part after the source's
        // name): the source is complete only when every unit is.
        let unit_name =
            unit.and_then(|unit| split_unit(&unit.name).map(|(_, part)| part.to_owned()));
        let within: Vec<String> = unit.map(|unit| unit.prefixes.clone()).unwrap_or_default();
        let judges_erasures = source_rules.judges_erasures();
        let checked_key = tillsyn_rules::checked::key(&source_rules);
        let checked_plan = checked_key.map(|key| tillsyn_rules::checked::plan(&source_rules, key));
        let (scan_id, checkpoints, erasures, saved_cache, saved_checked) =
            with_store(store, move |store| {
                store.take_lease(&lease_name, lease)?;
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
            job,
            scan_id,
            checkpoints,
            records,
            checked,
            exceptions: rules.exceptions().clone(),
            now,
        };
        let result = self
            .run_scan(scan, read, source_rules, conflict_rules)
            .await;
        let lease_name = job.lease_name().to_owned();
        let released = with_store(store, move |store| store.release_lease(&lease_name)).await;
        let outcome = result?;
        released?;
        Ok(outcome)
    }
}

/// A scan that has its lease and its row in the store.
struct Started<'a> {
    job: Job<'a>,
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
impl Runner<'_> {
    /// Run the connector and the rules for a started scan, and record how it
    /// ended.
    async fn run_scan<F>(
        &self,
        scan: Started<'_>,
        read: impl FnOnce(ScanContext, RecordSink) -> F,
        source_rules: SourceRules,
        conflict_rules: Vec<(String, &'static str)>,
    ) -> Result<ScanOutcome, RunError>
    where
        F: std::future::Future<Output = Result<ScanReport, ConnectorError>> + Send + 'static,
    {
        let (store, stop) = (self.store, self.stop);
        let Started {
            job,
            scan_id,
            checkpoints,
            records: memory,
            checked,
            exceptions,
            now,
        } = scan;
        let Job {
            name,
            timeout,
            unit,
            held,
            ..
        } = job;
        let lease_name = job.lease_name();
        let store_lease = StoreLease {
            store: store.clone(),
            name: lease_name.to_owned(),
            duration: job.lease_duration(),
        };
        let leases: Vec<&dyn Lease> = std::iter::once(&store_lease as &dyn Lease)
            .chain(held)
            .collect();
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
        let mut renew = tokio::time::interval(job.lease_duration() / 3);
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
                    let kept = renew_all(&leases).await;
                    if !kept {
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
                        if !tillsyn_rules::checked::unchanged(
                            checked.remembered,
                            &judged,
                            &report,
                        ) =>
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
                    duration: std::time::Duration::ZERO,
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
                    duration: std::time::Duration::ZERO,
                })
            }
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
