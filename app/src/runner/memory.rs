//! What earlier scans left for this one: the record cache (what they
//! judged, so an unchanged record is not judged again) and the memory of
//! records checked (to count what each rule checked).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tillsyn_connectors::record_cache::RecordCache;
use tillsyn_connectors::{CarriedScope, LeftOut};
use tillsyn_core::fingerprint::Fingerprint;
use tillsyn_rules::SourceRules;
use tillsyn_store::{RecordCacheUpdate, SavedRecordCache};

use super::consume::Consumed;

/// the plan it is kept under, and what earlier scans left under that plan.
pub(super) struct CheckedMemory {
    pub(super) key: [u8; 16],
    pub(super) plan: u64,
    /// The store holds a memory made under the same plan (read only when
    /// this scan changed something).
    pub(super) remembered: bool,
}

/// The record cache of one scan (see [`tillsyn_connectors::record_cache`]):
/// what earlier scans judged, handed to the connector, and the plan it is
/// kept under. Lifecycle only: the connector decides what is unchanged, the
/// rules when a verdict can change.
pub(super) struct RecordMemory {
    pub(super) cache: Arc<RecordCache>,
    /// Fingerprint of the rules, the source's settings and this build.
    pub(super) plan: u64,
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
    pub(super) fn load(
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
    pub(super) fn finish(
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
