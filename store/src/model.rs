//! What the store takes and gives: findings, scans, identity rows, the
//! state of a source; plain data.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tillsyn_connectors::CarriedScope;

use crate::{ScanStatus, identity_index};

/// A finding as the scan runner hands it to the store.
#[derive(Debug, Clone)]
pub struct NewFinding {
    /// Rule id.
    pub rule: String,
    /// Record id within the source.
    pub record_id: String,
    /// Record path, for unread-prefix protection.
    pub record_path: String,
    /// Record kind.
    pub record_kind: &'static str,
    /// Custodian as the store knows it.
    pub custodian: Option<String>,
    /// Severity.
    pub severity: &'static str,
    /// What was measured.
    pub detail: String,
    /// Days since the rule's timestamp.
    pub age_days: Option<i64>,
    /// `detail` as data ([`tillsyn_core::detail::Detail`], JSON), to be read
    /// in the report's language.
    pub detail_data: Option<String>,
    /// The record's custodian marked it as kept on purpose, and the rule allows
    /// that (an age rule): excepted as [`CUSTODIAN_MARK_EXCEPTION`] while the
    /// mark stays.
    pub custodian_marked: bool,
}

pub use tillsyn_config::CUSTODIAN_MARK_EXCEPTION;

/// Until when a custodian's mark excepts: for as long as it stays, which the
/// next scan that reads the record decides.
pub(crate) const CUSTODIAN_MARK_UNTIL: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z

/// A stored finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Row id.
    pub id: i64,
    /// Rule id.
    pub rule: String,
    /// Source name.
    pub source: String,
    /// Record id.
    pub record_id: String,
    /// Where the record is (the id, or for a directory entry kept by a stable
    /// id, its DN when last seen).
    pub record_path: String,
    /// Record kind.
    pub record_kind: String,
    /// Custodian (raw; output pseudonymises it).
    pub custodian: Option<String>,
    /// Severity.
    pub severity: String,
    /// What was measured.
    pub detail: String,
    /// Days since the rule's timestamp, when last seen.
    pub age_days: Option<i64>,
    /// First seen.
    pub first_seen: DateTime<Utc>,
    /// The last time a scan read the record and saw the breach (an incremental
    /// scan that did not read an unchanged record leaves it as it was).
    pub last_seen: DateTime<Utc>,
    /// Resolved, if it has been.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Scan that first saw it.
    pub first_seen_scan: i64,
    /// Scan that last saw it.
    pub last_seen_scan: i64,
    /// Scan that resolved it, if one did.
    pub resolved_scan: Option<i64>,
    /// The exception ("dispens") that covers it, and when that ends; it is
    /// excepted only until then (see [`Finding::excepted_at`]).
    pub exception: Option<(String, DateTime<Utc>)>,
}

impl Finding {
    /// The exception it is kept under at `now`, if one is in force.
    pub fn excepted_at(&self, now: DateTime<Utc>) -> Option<&str> {
        self.exception
            .as_ref()
            .filter(|(_, ends)| *ends > now)
            .map(|(id, _)| id.as_str())
    }
}

/// Rows [`Store::prune`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneCounts {
    /// Resolved findings.
    pub findings: u64,
    /// Scans (with their problem counts).
    pub scans: u64,
    /// Conflict keys.
    pub conflict_keys: u64,
    /// Identity index rows of sources not scanned since the cutoff.
    pub identities: u64,
    /// Sent reports.
    pub reports: u64,
}

/// What [`Store::query`] selects; `None` fields select everything.
#[derive(Debug, Clone, Default)]
pub struct FindingQuery {
    /// Open, resolved or all.
    pub filter: FindingFilter,
    /// Only this source.
    pub source: Option<String>,
    /// Only this rule.
    pub rule: Option<String>,
    /// Only findings first seen at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only those last seen by this scan.
    pub seen_by_scan: Option<i64>,
    /// Only this finding.
    pub id: Option<i64>,
}

/// Which findings to list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FindingFilter {
    /// Not resolved.
    #[default]
    Open,
    /// Resolved.
    Resolved,
    /// Both.
    All,
}

/// What finishing a scan changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanTally {
    /// Findings first seen in this scan.
    pub new: u64,
    /// Findings this scan resolved.
    pub resolved: u64,
    /// Findings of the source open after the scan.
    pub open: u64,
}

/// A record's part in a `conflict` rule, as the scan runner stores it.
#[derive(Debug, Clone)]
pub struct NewConflictKey {
    /// Rule id.
    pub rule: String,
    /// `marked` or `forbidden`.
    pub side: &'static str,
    /// The person's key.
    pub key: String,
    /// Record id.
    pub record_id: String,
    /// Record path.
    pub record_path: String,
    /// Record kind.
    pub record_kind: &'static str,
    /// Custodian as the store knows it.
    pub custodian: Option<String>,
}

pub use identity_index::IdentityBatch;

/// One place the identity index holds an identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRow {
    /// Source name.
    pub source: String,
    /// What kind of identifier matched.
    pub kind: String,
    /// Which field held it.
    pub field: String,
    /// Record id.
    pub record_id: String,
    /// Record path.
    pub record_path: String,
    /// Record kind.
    pub record_kind: String,
    /// The container it lives in.
    pub container: String,
    /// When the record was received or last modified.
    pub record_time: Option<DateTime<Utc>>,
}

/// One `tillsyn subject` lookup, as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectLookup {
    /// When it ran.
    pub at: DateTime<Utc>,
    /// The kinds of identifier asked for, sorted (`email`, `personnummer`).
    pub kinds: Vec<String>,
    /// Their keyed hashes, in hex.
    pub hashes: Vec<String>,
    /// Places found (0 until it completed).
    pub hits: u64,
    /// Whether it asked servers (`--search`, `--verify`), not only the index.
    pub asked_servers: bool,
    /// When it completed; `None` for one that failed or was stopped
    /// before it did (its row was written before any server was asked).
    pub completed_at: Option<DateTime<Utc>>,
}

/// How a scan that read its source to the end finished.
#[derive(Debug, Clone)]
pub struct ScanEnd<'a> {
    /// `Complete` or `Partial` (anything else resolves nothing).
    pub status: ScanStatus,
    /// Records read.
    pub records: u64,
    /// Problems counted, by kind.
    pub problems: &'a [(&'a str, u64)],
    /// Record-path prefixes that could not be read.
    pub unread_prefixes: &'a [String],
    /// A scan of one unit of a source (an IMAP account, see
    /// [`crate::scan::Unit`]): the record-path prefixes it covers. Nothing
    /// outside them is decided: findings, conflict keys, identity entries and
    /// checkpoints there stay as other units' scans left them. Empty: the
    /// whole source.
    pub within: &'a [String],
    /// Places read incrementally.
    pub carried: &'a [CarriedScope],
    /// The connector's new checkpoints (replace the old ones).
    pub checkpoints: &'a BTreeMap<String, String>,
    /// The `conflict` rules this source takes part in, with their severities:
    /// judged again from every source's latest keys.
    pub conflict_rules: &'a [(String, &'static str)],
    /// When it finished.
    pub finished_at: DateTime<Utc>,
    /// What becomes of the source's record cache.
    pub record_cache: RecordCacheUpdate,
}

impl ScanEnd<'static> {
    /// A complete scan of the whole source that read `records` anew and
    /// left nothing out: no problems, unread or carried places, checkpoints
    /// or conflict rules; the record cache kept. Other ends start from it
    /// (`ScanEnd { carried: …, ..ScanEnd::complete(…) }`).
    pub fn complete(records: u64, finished_at: DateTime<Utc>) -> ScanEnd<'static> {
        static NO_CHECKPOINTS: BTreeMap<String, String> = BTreeMap::new();
        ScanEnd {
            status: ScanStatus::Complete,
            records,
            problems: &[],
            unread_prefixes: &[],
            within: &[],
            carried: &[],
            checkpoints: &NO_CHECKPOINTS,
            conflict_rules: &[],
            finished_at,
            record_cache: RecordCacheUpdate::Keep,
        }
    }
}

/// A record cache as the store keeps it (see [`Store::record_cache`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedRecordCache {
    /// Fingerprint of the rules and settings it was made under.
    pub plan: u64,
    /// It holds every record the store keeps anything about.
    pub complete: bool,
    /// The encoded entries.
    pub data: Vec<u8>,
}

/// What a finished scan does with its source's record cache (see
/// [`Store::record_cache`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordCacheUpdate {
    /// It stays as it is (the scan changed nothing in it).
    Keep,
    /// It becomes this: the plan it was made under, and the encoded entries.
    Replace {
        /// Fingerprint of the rules and settings.
        plan: u64,
        /// It holds every record the store keeps anything about.
        complete: bool,
        /// How many entries.
        entries: usize,
        /// [`tillsyn_connectors::record_cache::RecordCache::encode`]d.
        data: Vec<u8>,
    },
    /// It goes (the source is not cached any more).
    Clear,
}

/// Open findings of one rule in one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenGroup {
    /// Rule id.
    pub rule: String,
    /// Source name.
    pub source: String,
    /// How many are open and count as broken (under no exception in force).
    pub count: u64,
    /// When the longest-open of those was first seen (`None` when every one
    /// is excepted).
    pub oldest_first_seen: Option<DateTime<Utc>>,
    /// How many are open under an exception in force.
    pub excepted: u64,
    /// How many records the rule checked in the source at its last finished
    /// scan (see [`crate::checked`]); `None` when none was counted.
    pub checked: Option<u64>,
}

/// Records one rule checked in one source (see [`Store::checked_counts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedRow {
    /// Rule id.
    pub rule: String,
    /// Source name.
    pub source: String,
    /// Records checked.
    pub records: u64,
    /// Keyed hashes of their custodians.
    pub custodians: Vec<u64>,
    /// Every record was counted (else: at least this many).
    pub complete: bool,
}

/// What one scan changed for one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleChanges {
    /// Rule id.
    pub rule: String,
    /// Findings first seen.
    pub new: u64,
    /// Findings resolved.
    pub resolved: u64,
}

/// A stored scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanRow {
    /// Scan id.
    pub id: i64,
    /// Source.
    pub source: String,
    /// Started.
    pub started_at: DateTime<Utc>,
    /// Finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Status.
    pub status: ScanStatus,
    /// Records read.
    pub records: u64,
    /// Error kind for failed scans.
    pub error_kind: Option<String>,
}

/// Where a source stands: the one definition of "complete" that the report,
/// erasure, `tillsyn subject`, the digests and `tillsyn_scan_success` share.
///
/// A source scanned whole is as its last finished scan left it. A source
/// scanned unit by unit (a fleet's IMAP accounts) is complete only when the
/// last finished scan of every unit it was scanned by is complete: one
/// account read to the end never speaks for sixty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceState {
    /// Complete when every part's last scan is; failed when every part's
    /// failed; partial otherwise; `None` when never scanned.
    pub status: Option<ScanStatus>,
    /// Parts (the whole, or its units) whose last scan failed.
    pub failed_parts: usize,
    /// Parts: 1 for a source scanned whole, else its units.
    pub parts: usize,
    /// When the source had last been read completely: the earliest of every
    /// part's latest complete scan (or the last complete scan of the whole,
    /// if later); `None` while any part has none.
    pub complete_at: Option<DateTime<Utc>>,
    /// When the source had last been read to the end (complete or partial),
    /// every part of it: `tillsyn_scan_last_success_timestamp_seconds`.
    pub succeeded_at: Option<DateTime<Utc>>,
    /// When every part had last finished a scan, complete or not.
    pub finished_at: Option<DateTime<Utc>>,
    /// When the latest scan of any part started.
    pub started_at: Option<DateTime<Utc>>,
}

impl SourceState {
    /// Every part's last scan read to its end (complete or partial): what
    /// `tillsyn_scan_success` shows.
    pub fn succeeded(&self) -> bool {
        self.status.is_some() && self.failed_parts == 0
    }
}
