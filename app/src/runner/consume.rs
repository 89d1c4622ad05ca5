//! Records to findings: the rules over each batch of records as it
//! arrives, findings and identity postings written in batches, and the
//! document extractor the connectors are given.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tillsyn_connectors::record_cache::{CachedRecord, RecordCache};
use tillsyn_rules::SourceRules;
use tillsyn_store::{IdentityBatch, NewConflictKey, NewFinding, Store};

use super::{BATCH, RunError};

/// Where [`consume`] writes: the store, the scan and its source, and the
/// scan's record cache, if any.
pub(super) struct Destination<'a> {
    pub(super) store: &'a Arc<Mutex<Store>>,
    pub(super) scan_id: i64,
    pub(super) source: &'a str,
    /// A scan of the whole source (not one unit of it).
    pub(super) whole: bool,
    pub(super) cache: Option<&'a RecordCache>,
    /// Where the rules that checked each record are noted.
    pub(super) judged: Option<&'a mut tillsyn_rules::checked::Judged>,
}

/// What [`consume`] did.
#[derive(Debug, Default)]
pub(super) struct Consumed {
    /// Records read.
    pub(super) records: u64,
    /// Findings seen.
    pub(super) findings: u64,
    /// The stamped records judged, for the record cache.
    pub(super) judged: Vec<CachedRecord>,
    /// Records read without a stamp (none are remembered).
    pub(super) unstamped: u64,
}

/// Evaluate records as they arrive and store findings in batches.
pub(super) fn consume(
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
pub(super) fn document_extractor(
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
