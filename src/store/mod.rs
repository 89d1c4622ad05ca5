//! The findings store: an embedded SQLite database in the state dir.
//!
//! It keeps every scan (with its status and counted problems), every finding with
//! `first_seen` / `last_seen` / `resolved_at`, and per-source checkpoints for
//! incremental scans. The rule that keeps the auditor honest lives here: a finding
//! is resolved only by a later scan of its source that *finished* and no longer saw
//! it. A failed scan resolves nothing; a partial one resolves nothing under the
//! places it could not read. A scan left `running` by a crash is marked failed when
//! the store is next opened by a process that is alone with it (`store.lock`), so
//! a command run beside the daemon never fails the daemon's scan in progress.
//!
//! rusqlite is synchronous: callers on async code use `spawn_blocking`.

pub mod db;
mod identity_index;
mod migrations;
mod outbox;
mod report;

pub use outbox::{AfterFailure, NewOutboxEntry, OutboxCounts, OutboxEntry, OutboxKey, OutboxKind};
pub use report::{DigestCoverage, DigestMonth, OpenAt, RuleHistory, ScanSummary};

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
pub use tillsyn_core::status::ScanStatus;
use tillsyn_rules::register::ErasureRequest;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use db::{Database, Value};
use rusqlite::Connection;
use tillsyn_connectors::CarriedScope;

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state dir could not be made or used.
    #[error("cannot use state dir {path}: {source}")]
    StateDir {
        /// The dir.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A database operation failed.
    #[error("findings database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The shared PostgreSQL failed.
    #[error("findings database: PostgreSQL: {0}")]
    Postgres(String),
    /// This process's pseudonym key is not the one the shared store's
    /// other processes use: their keyed hashes would not match.
    #[error(
        "the pseudonym key ([privacy] key_file) is not the one the other tillsyn instances on this \
         store use: keyed hashes would not match. Give every instance the same key file. (After \
         replacing the key on purpose everywhere: DELETE FROM store_facts WHERE name = 'pseudonym_key')"
    )]
    KeyMismatch,
    /// The database is newer than this program.
    #[error(
        "findings database has schema version {found}, newer than this tillsyn ({known}); upgrade tillsyn"
    )]
    TooNew {
        /// Version on disk.
        found: usize,
        /// Newest version known here.
        known: usize,
    },
    /// A row that was just written is not there.
    #[error("findings database: a row of {0} went missing")]
    Missing(&'static str),
    /// Stored data that does not decode (the file was changed by hand, or
    /// damaged).
    #[error("findings database: {0}")]
    Corrupt(String),
    /// Another process is scanning the source.
    #[error(
        "source {name:?} is being scanned by another tillsyn process ({holder}, lease until {until}); not scanned twice at once"
    )]
    Leased {
        /// The source.
        name: String,
        /// Who holds the lease: host:pid:random.
        holder: String,
        /// When the lease runs out unless renewed.
        until: DateTime<Utc>,
    },
}

impl StoreError {
    /// Bounded kind for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::StateDir { .. } => "state_dir",
            StoreError::Sqlite(_) => "sqlite",
            StoreError::Postgres(_) => "postgres",
            StoreError::KeyMismatch => "pseudonym_key",
            StoreError::TooNew { .. } => "schema_too_new",
            StoreError::Missing(_) => "missing_row",
            StoreError::Corrupt(_) => "corrupt",
            StoreError::Leased { .. } => "leased",
        }
    }
}

impl From<db::DbError> for StoreError {
    fn from(error: db::DbError) -> StoreError {
        match error {
            db::DbError::Sqlite(error) => StoreError::Sqlite(error),
            db::DbError::Postgres(message) => StoreError::Postgres(message),
            db::DbError::TooNew { found, known } => StoreError::TooNew { found, known },
            type_error @ db::DbError::Type { .. } => StoreError::Corrupt(type_error.to_string()),
        }
    }
}

/// Keyed-hash custodians as stored: 8 bytes each, little-endian.
fn custodian_words(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .map(|chunk| {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            u64::from_le_bytes(word)
        })
        .collect()
}

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
const CUSTODIAN_MARK_UNTIL: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z

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

/// The last scan of one part of a source (the whole, or one unit).
#[derive(Debug, Clone)]
struct PartState {
    status: ScanStatus,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    complete_at: Option<DateTime<Utc>>,
    succeeded_at: Option<DateTime<Utc>>,
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

/// The open database.
pub struct Store {
    /// SQLite in `state_dir`, or a shared PostgreSQL ([`Store::open_postgres`]).
    database: Box<dyn Database>,
    /// `store.lock`, held while this process has the store open, when it could
    /// take it: the first tillsyn process (the daemon, say) holds it, and only
    /// the holder marks `running` scans as interrupted.
    lock: Option<std::fs::File>,
    /// Who this process is in leases and outbox claims: host, pid and a random
    /// part, so a restarted process never takes its predecessor's lease for its
    /// own.
    holder: String,
    /// Identity rows of running scans, until they finish.
    staging: identity_index::Staging,
}

/// The columns [`finding_row`] reads, in its order.
const FINDING_COLUMNS: &str =
    "id, rule, source, record_id, record_kind, custodian, severity, detail,
    age_days, first_seen, last_seen, resolved_at, first_seen_scan, last_seen_scan, resolved_scan,
    record_path, exception, excepted_until";

fn finding_row(row: &db::Row) -> Result<Finding, db::DbError> {
    Ok(Finding {
        id: row.int(0)?,
        rule: row.text(1)?,
        source: row.text(2)?,
        record_id: row.text(3)?,
        record_kind: row.text(4)?,
        custodian: row.opt_text(5)?,
        severity: row.text(6)?,
        detail: row.text(7)?,
        age_days: row.opt_int(8)?,
        first_seen: to_time(row.int(9)?),
        last_seen: to_time(row.int(10)?),
        resolved_at: row.opt_int(11)?.map(to_time),
        first_seen_scan: row.int(12)?,
        last_seen_scan: row.int(13)?,
        resolved_scan: row.opt_int(14)?,
        record_path: row.text(15)?,
        exception: match (row.opt_text(16)?, row.opt_int(17)?) {
            (Some(id), Some(ends)) => Some((id, to_time(ends))),
            _ => None,
        },
    })
}

/// The database's clock now, in Unix seconds ([`db::now_seconds`]).
fn database_now(db: &dyn Database) -> Result<i64, StoreError> {
    let sql = format!("SELECT {}", db::now_seconds(db.engine()));
    Ok(db
        .query(&sql, &[])?
        .first()
        .ok_or(StoreError::Missing("database clock"))?
        .int(0)?)
}

/// A lease's length in whole seconds, at least one.
fn lease_seconds(lease: std::time::Duration) -> i64 {
    i64::try_from(lease.as_secs()).unwrap_or(i64::MAX).max(1)
}

fn holder_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned());
    format!(
        "{host}:{}:{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

fn to_time(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap_or_default()
}

impl Store {
    /// The store `config` names: the shared PostgreSQL of `[store]`, or
    /// SQLite in `state_dir`. A shared store must have been used under
    /// `key` only ([`Store::check_shared_key`]).
    pub fn for_config(
        config: &tillsyn_config::Config,
        key: &tillsyn_core::identity::IdentityKey,
    ) -> Result<Store, StoreError> {
        match &config.store {
            Some(store) => {
                let opened = Store::open_postgres_at(store)?;
                opened.check_shared_key(key)?;
                Ok(opened)
            }
            None => Store::open(&config.daemon.state_dir),
        }
    }

    /// Note `key`'s check value in the store, or check it against the one
    /// noted there: processes sharing a store must share the pseudonym key
    /// ([`StoreError::KeyMismatch`]). Only a keyed hash of a fixed text is
    /// kept, which says nothing of the key.
    pub fn check_shared_key(
        &self,
        key: &tillsyn_core::identity::IdentityKey,
    ) -> Result<(), StoreError> {
        let check = tillsyn_core::identity::to_hex(&key.hash("store key check", "tillsyn"));
        self.db().execute(
            "INSERT INTO store_facts (name, value) VALUES ('pseudonym_key', $1)
             ON CONFLICT (name) DO NOTHING",
            &[Value::from(check.as_str())],
        )?;
        let noted = self
            .db()
            .query(
                "SELECT value FROM store_facts WHERE name = 'pseudonym_key'",
                &[],
            )?
            .first()
            .map(|row| row.text(0))
            .transpose()?;
        match noted {
            Some(noted) if noted != check => Err(StoreError::KeyMismatch),
            _ => Ok(()),
        }
    }

    /// A private copy of the store `config` names, for `--dry-run` and
    /// `--verify` (see [`Store::open_copy`]). A shared PostgreSQL is not
    /// copied: those runs are refused there, with why.
    pub fn copy_for_config(config: &tillsyn_config::Config) -> Result<Store, StoreError> {
        match &config.store {
            Some(store) => Store::copy_of_postgres(store),
            None => Store::open_copy(&config.daemon.state_dir),
        }
    }

    /// A private in-memory copy of the shared PostgreSQL store at `target`,
    /// for `--dry-run` and `--verify`: every table of the store copied row
    /// for row into an in-memory SQLite store of the same schema, so scans
    /// run against it exactly as against the real one, and nothing reaches
    /// PostgreSQL. The shared store must be at this version's schema (the
    /// copy does not migrate it: that would be a write).
    pub fn copy_of_postgres(target: &tillsyn_config::StoreConfig) -> Result<Store, StoreError> {
        let source = db::Postgres::connect(target)?;
        let (found, known) = (source.schema_version()?, migrations::MIGRATIONS.len());
        if found != known {
            return Err(StoreError::Postgres(format!(
                "the shared store's schema is version {found} and this tillsyn's {known}: \
                 a private copy is made only of a store at this version (run this version's \
                 daemon, or any command that opens the store, once first)"
            )));
        }
        let copy = Store::ready(Box::new(Connection::open_in_memory()?), None)?;
        let tables = copy.db().query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            &[],
        )?;
        db::transaction(copy.db(), true, |db| {
            for table in &tables {
                let name = table.text(0)?;
                let rows = source.query(&format!("SELECT * FROM {name}"), &[])?;
                let Some(width) = rows.first().map(|row| row.0.len()) else {
                    continue;
                };
                let placeholders: Vec<String> = (1..=width).map(|at| format!("${at}")).collect();
                db.execute_many(
                    &format!("INSERT INTO {name} VALUES ({})", placeholders.join(", ")),
                    rows.into_iter().map(|row| row.0).collect(),
                )?;
            }
            Ok::<(), StoreError>(())
        })?;
        Ok(copy)
    }

    /// Open (creating when needed) `findings.sqlite` in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        let state_error = |source| StoreError::StateDir {
            path: state_dir.to_path_buf(),
            source,
        };
        if !state_dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(state_dir)
                .map_err(state_error)?;
        }
        let path = state_dir.join("findings.sqlite");
        // The database holds where personal data was found: owner-only from its
        // first byte, whatever the umask (SQLite gives its WAL and shared-memory
        // files the database's mode).
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(state_error)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(state_error)?;
        let connection = Connection::open(&path)?;
        connection.busy_timeout(std::time::Duration::from_secs(10))?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        connection.pragma_update(None, "cache_size", -16384)?;
        // A `running` scan is a crashed one only when no other tillsyn process
        // has the store open: `tillsyn findings` run beside the daemon must not
        // mark the daemon's scan in progress as failed.
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(state_dir.join("store.lock"))
            .map_err(state_error)?;
        let lock = lock.try_lock().is_ok().then_some(lock);
        let mut store = Store::ready(Box::new(connection), lock)?;
        if store.lock.is_some() {
            store.fail_interrupted_scans()?;
        }
        Ok(store)
    }

    /// A private in-memory copy of the store in `state_dir` (empty when there is
    /// none yet), for `scan --dry-run`: scans run against it exactly as against
    /// the real one, and nothing reaches the file.
    pub fn open_copy(state_dir: &Path) -> Result<Store, StoreError> {
        let mut connection = Connection::open_in_memory()?;
        let path = state_dir.join("findings.sqlite");
        if path.exists() {
            let source = Connection::open_with_flags(
                &path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            source.busy_timeout(std::time::Duration::from_secs(10))?;
            let backup = rusqlite::backup::Backup::new(&source, &mut connection)?;
            backup.run_to_completion(1000, std::time::Duration::ZERO, None)?;
        }
        Store::ready(Box::new(connection), None)
    }

    /// A store on `database`, migrated to this version, with its staging
    /// table; `lock` when this process holds `store.lock`.
    fn ready(
        database: Box<dyn Database>,
        lock: Option<std::fs::File>,
    ) -> Result<Store, StoreError> {
        let mut store = Store {
            database,
            lock,
            holder: holder_id(),
            staging: identity_index::Staging::default(),
        };
        store.migrate()?;
        store.create_staging()?;
        Ok(store)
    }

    /// This connection's spill table for identity rows of running scans (see
    /// [`Store::record_identities`]): a temporary table in a temporary file,
    /// gone with the connection, so a crashed scan leaves nothing behind.
    fn create_staging(&self) -> Result<(), StoreError> {
        let table = "CREATE TEMP TABLE IF NOT EXISTS staged_identity_segments (
                 scan_id INTEGER NOT NULL,
                 spill   INTEGER NOT NULL,
                 key     INTEGER NOT NULL,
                 entries INTEGER NOT NULL,
                 data    BLOB    NOT NULL
             );";
        match self.db().engine() {
            db::Engine::Sqlite => {
                self.db().batch("PRAGMA temp_store = FILE")?;
                self.db().batch(table)?;
            }
            db::Engine::Postgres => self.db().batch(&db::postgres_ddl(table))?,
        }
        Ok(())
    }

    /// Open the store in a shared PostgreSQL at `url`
    /// (`postgres://user@host:port/database`, the password apart), migrating
    /// its schema to this version (instances starting together migrate once).
    /// Scans left `running` are not failed here: in a fleet, another instance
    /// may be running them.
    pub fn open_postgres(url: &str, password: Option<&[u8]>) -> Result<Store, StoreError> {
        Store::open_postgres_at(&tillsyn_config::StoreConfig {
            url: url.to_owned(),
            password: password.map(|password| tillsyn_core::secret::Secret::new(password.to_vec())),
            ca_file: None,
        })
    }

    /// [`Store::open_postgres`] at `target`, with its TLS settings.
    pub fn open_postgres_at(target: &tillsyn_config::StoreConfig) -> Result<Store, StoreError> {
        Store::ready(Box::new(db::Postgres::connect(target)?), None)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        db::migrate(self.db())?;
        Ok(())
    }

    /// The store's database, in the SQL both engines speak ([`db`]).
    fn db(&self) -> &dyn Database {
        &*self.database
    }

    fn fail_interrupted_scans(&mut self) -> Result<(), StoreError> {
        self.db().execute(
            "UPDATE scans SET status = 'failed', error_kind = 'interrupted',
                 error_message = 'tillsyn stopped before the scan finished'
             WHERE status = 'running'",
            &[],
        )?;
        Ok(())
    }

    /// Schema version in use.
    pub fn schema_version(&self) -> Result<usize, StoreError> {
        Ok(self.db().schema_version()?)
    }

    /// Forget what is older than `cutoff` (`[daemon] retention`): resolved
    /// findings resolved before it, scans finished before it (but each source's
    /// latest scan and latest successful scan, which the daemon's catch-up and
    /// metrics read), conflict keys recorded by scans started before it, sent
    /// reports sent before it, and expired leases. Open findings stay whatever
    /// their age. Returns the rows removed.
    pub fn prune(&mut self, cutoff: DateTime<Utc>) -> Result<PruneCounts, StoreError> {
        let cutoff = Value::from(cutoff.timestamp());
        db::transaction(self.db(), true, |db| {
            let now = Value::from(database_now(db)?);
            let at = std::slice::from_ref(&cutoff);
            let findings = db.execute(
                "DELETE FROM findings WHERE resolved_at IS NOT NULL AND resolved_at < $1",
                at,
            )?;
            let conflict_keys = db.execute(
                "DELETE FROM conflict_keys WHERE scan_id IN
                     (SELECT id FROM scans WHERE started_at < $1)",
                at,
            )?;
            let kept = "SELECT max(id) FROM scans GROUP BY source
                        UNION SELECT max(id) FROM scans WHERE status IN ('complete', 'partial') GROUP BY source";
            db.execute(
                &format!(
                    "DELETE FROM scan_problems WHERE scan_id IN
                         (SELECT id FROM scans WHERE finished_at < $1 AND id NOT IN ({kept}))"
                ),
                at,
            )?;
            let scans = db.execute(
                &format!("DELETE FROM scans WHERE finished_at < $1 AND id NOT IN ({kept})"),
                at,
            )?;
            // A source not scanned since the cutoff (gone from the config): its
            // identity rows go with it.
            let identities = db
                .query(
                    "SELECT CAST(coalesce(sum(entries), 0) AS BIGINT) FROM identity_segments
                     WHERE source NOT IN (SELECT source FROM scans WHERE started_at >= $1)",
                    at,
                )?
                .first()
                .map(|row| row.int(0))
                .transpose()?
                .unwrap_or(0);
            db.execute(
                "DELETE FROM identity_segments WHERE source NOT IN
                     (SELECT source FROM scans WHERE started_at >= $1)",
                at,
            )?;
            db.execute(
                "DELETE FROM identity_places WHERE source NOT IN
                     (SELECT source FROM scans WHERE started_at >= $1)",
                at,
            )?;
            // Sent and given-up mail of every kind; what still waits stays.
            let reports = db.execute(
                "DELETE FROM outbox WHERE (sent_at IS NOT NULL AND sent_at < $1)
                     OR (gave_up_at IS NOT NULL AND gave_up_at < $1)",
                at,
            )?;
            db.execute("DELETE FROM subject_lookups WHERE at < $1", at)?;
            db.execute(
                "DELETE FROM scan_leases WHERE expires_at < $1",
                std::slice::from_ref(&now),
            )?;
            Ok(PruneCounts {
                findings,
                scans,
                conflict_keys,
                identities: identities.max(0) as u64,
                reports,
            })
        })
    }

    /// This process's name in leases and claims.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Take `source`'s scan lease for `lease`, unless another process holds
    /// it unexpired: then `Err(StoreError::Leased)` naming the holder. One
    /// immediate transaction, so of two processes racing exactly one wins.
    /// The database's clock sets and judges the lease ([`db::now_seconds`]).
    pub fn take_lease(
        &mut self,
        source: &str,
        lease: std::time::Duration,
    ) -> Result<(), StoreError> {
        let holder = self.holder.clone();
        // A unit's lease (`source` + UNIT_SEPARATOR + unit) and its whole
        // source's exclude each other: a scan of the whole source and one of
        // an account in it never run at once.
        let whole = tillsyn_core::unit::whole_source(source);
        let units = tillsyn_core::unit::units_prefix(whole);
        let seconds = lease_seconds(lease);
        db::transaction(self.db(), true, |db| {
            // Locked against another process taking it meanwhile: SQLite's
            // write lock, PostgreSQL's lock on the source's name (rows that
            // are not there yet cannot be locked).
            if db.engine() == db::Engine::Postgres {
                db.execute(
                    "SELECT pg_advisory_xact_lock(hashtext($1))",
                    &[Value::from(whole)],
                )?;
            }
            let now = database_now(db)?;
            let current = db.query(
                "SELECT holder, expires_at, source FROM scan_leases
                 WHERE source = $1 OR source = $2 OR substr(source, 1, $3) = $4",
                &[
                    Value::from(source),
                    Value::from(whole),
                    Value::from(units.chars().count() as i64),
                    Value::from(units.as_str()),
                ],
            )?;
            for row in &current {
                let (current_holder, expires_at, name) = (row.text(0)?, row.int(1)?, row.text(2)?);
                let overlaps = name == source || name == whole || source == whole;
                if overlaps && current_holder != holder && expires_at >= now {
                    return Err(StoreError::Leased {
                        name: source.to_owned(),
                        holder: current_holder,
                        until: to_time(expires_at),
                    });
                }
            }
            db.execute(
                "INSERT INTO scan_leases (source, holder, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT (source) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at",
                &[
                    Value::from(source),
                    Value::from(holder.as_str()),
                    Value::from(now.saturating_add(seconds)),
                ],
            )?;
            Ok(())
        })
    }

    /// Move this process's lease on `source` on by `lease` from now (the
    /// database's clock); false when the lease is no longer this process's.
    pub fn renew_lease(
        &mut self,
        source: &str,
        lease: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let now = db::now_seconds(self.db().engine());
        let changed = self.db().execute(
            &format!(
                "UPDATE scan_leases SET expires_at = {now} + $3 WHERE source = $1 AND holder = $2"
            ),
            &[
                Value::from(source),
                Value::from(self.holder.as_str()),
                Value::from(lease_seconds(lease)),
            ],
        )?;
        Ok(changed == 1)
    }

    /// Give up this process's lease on `source`.
    pub fn release_lease(&mut self, source: &str) -> Result<(), StoreError> {
        self.db().execute(
            "DELETE FROM scan_leases WHERE source = $1 AND holder = $2",
            &[Value::from(source), Value::from(self.holder.as_str())],
        )?;
        Ok(())
    }

    /// Record the start of a scan of the whole of `source`; returns its id.
    pub fn begin_scan(
        &mut self,
        source: &str,
        started_at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        self.begin_unit_scan(source, None, started_at)
    }

    /// Record the start of a scan of `source`, or of one `unit` of it (an
    /// account, in a fleet); returns its id.
    pub fn begin_unit_scan(
        &mut self,
        source: &str,
        unit: Option<&str>,
        started_at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        // Scans of this source left `running` by a process that holds no
        // lease any more (it died) failed: nothing is scanning them.
        self.db().execute(
            "UPDATE scans SET status = 'failed', error_kind = 'interrupted',
                 error_message = 'the tillsyn process running the scan stopped before it finished',
                 finished_at = $3
             WHERE source = $1 AND status = 'running' AND holder IS NOT NULL AND holder <> $2
               AND NOT EXISTS (SELECT 1 FROM scan_leases l
                               WHERE l.holder = scans.holder AND l.expires_at >= $3)",
            &[
                Value::from(source),
                Value::from(self.holder.as_str()),
                Value::from(database_now(self.db())?),
            ],
        )?;
        let inserted = self.db().query(
            "INSERT INTO scans (source, unit, started_at, status, holder)
             VALUES ($1, $2, $3, 'running', $4) RETURNING id",
            &[
                Value::from(source),
                Value::from(unit),
                Value::from(started_at.timestamp()),
                Value::from(self.holder.as_str()),
            ],
        )?;
        Ok(inserted
            .first()
            .ok_or(StoreError::Missing("scans"))?
            .int(0)?)
    }

    /// Store findings seen by scan `scan_id` of `source` at `seen_at`: new ones are
    /// inserted, open ones get their `last_seen` moved on.
    pub fn record_findings(
        &mut self,
        scan_id: i64,
        source: &str,
        seen_at: DateTime<Utc>,
        findings: &[NewFinding],
    ) -> Result<(), StoreError> {
        // One row per finding: a record read twice in a scan (an account
        // read again after a broken connection) keeps its last reading, as
        // upserting both in turn would.
        let mut kept = std::collections::HashSet::new();
        let mut latest: Vec<&NewFinding> = findings
            .iter()
            .rev()
            .filter(|finding| kept.insert((finding.rule.as_str(), finding.record_id.as_str())))
            .collect();
        latest.reverse();
        let rows: Vec<Vec<Value>> = latest
            .into_iter()
            .map(|finding| {
                let (exception, until) = if finding.custodian_marked {
                    (Some(CUSTODIAN_MARK_EXCEPTION), Some(CUSTODIAN_MARK_UNTIL))
                } else {
                    (None, None)
                };
                vec![
                    Value::from(finding.rule.as_str()),
                    Value::from(source),
                    Value::from(finding.record_id.as_str()),
                    Value::from(finding.record_path.as_str()),
                    Value::from(finding.record_kind),
                    Value::from(finding.custodian.as_deref()),
                    Value::from(finding.severity),
                    Value::from(finding.detail.as_str()),
                    Value::from(finding.age_days),
                    Value::from(seen_at.timestamp()),
                    Value::from(scan_id),
                    Value::from(exception),
                    Value::from(until),
                    Value::from(finding.detail_data.as_deref()),
                ]
            })
            .collect();
        db::transaction(self.db(), true, |db| {
            {
                db.insert_many(
                    "INSERT INTO findings (rule, source, record_id, record_path, record_kind, custodian,
                         severity, detail, age_days, first_seen, first_seen_scan, last_seen,
                         last_seen_scan, exception, excepted_until, detail_data)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $10, $11, $12, $13, $14)
                     ON CONFLICT (rule, source, record_id) WHERE resolved_at IS NULL DO UPDATE SET
                         record_path = excluded.record_path, custodian = excluded.custodian,
                         severity = excluded.severity, detail = excluded.detail,
                         age_days = excluded.age_days, last_seen = excluded.last_seen,
                         last_seen_scan = excluded.last_seen_scan,
                         exception = excluded.exception, excepted_until = excluded.excepted_until,
                         detail_data = excluded.detail_data",
                    rows,
                )?;
            }
            Ok(())
        })
    }

    /// Finish a scan that read its source to the end (`Complete` or `Partial`):
    /// resolve the source's open findings it did not see, except those under
    /// unread prefixes (an empty prefix protects the whole source) and those under
    /// carried scopes whose records were not reported gone; and replace the
    /// source's checkpoints.
    pub fn finish_scan(
        &mut self,
        scan_id: i64,
        end: &ScanEnd<'_>,
    ) -> Result<ScanTally, StoreError> {
        // Two fields: the database, and the identity rows staged in memory.
        let database: &dyn Database = &*self.database;
        let staging = &mut self.staging;
        db::transaction(database, true, |db| {
            let source = db
                .query(
                    "SELECT source FROM scans WHERE id = $1",
                    &[Value::from(scan_id)],
                )?
                .first()
                .ok_or(StoreError::Missing("scans"))?
                .text(0)?;
            // Scans of units of one source, by instances sharing PostgreSQL,
            // finish one at a time: each rewrites the source's identity
            // segments, conflict keys and checkpoints. (SQLite's write lock
            // does this by itself.)
            if db.engine() == db::Engine::Postgres {
                db.execute(
                    "SELECT pg_advisory_xact_lock(hashtext($1))",
                    &[Value::from(format!("finish:{source}"))],
                )?;
            }
            db.execute(
                "UPDATE scans SET status = $2, finished_at = $3, records = $4 WHERE id = $1",
                &[
                    Value::from(scan_id),
                    Value::from(end.status.as_str()),
                    Value::from(end.finished_at.timestamp()),
                    Value::from(i64::try_from(end.records).unwrap_or(i64::MAX)),
                ],
            )?;
            for (kind, count) in end.problems {
                db.execute(
                    "INSERT INTO scan_problems (scan_id, kind, count) VALUES ($1, $2, $3)",
                    &[
                        Value::from(scan_id),
                        Value::from(*kind),
                        Value::from(i64::try_from(*count).unwrap_or(i64::MAX)),
                    ],
                )?;
            }
            let under = under_prefix;
            let mut resolved = 0u64;
            if matches!(end.status, ScanStatus::Complete | ScanStatus::Partial) {
                let finished = end.finished_at.timestamp();
                // This scan's keys and identities replace the source's older
                // ones, except where it could not read or did not read again.
                replace_older_conflict_keys(db, &source, scan_id, end)?;
                let written = staging.write(db, scan_id, &source)?;
                if whole_and_read(end) {
                    db.execute(
                        "DELETE FROM identity_segments WHERE source = $1 AND scan_id < $2",
                        &[Value::from(source.as_str()), Value::from(scan_id)],
                    )?;
                    identity_index::set_places(db, &source, &written, true)?;
                } else if match end.within {
                    [] => identity_index::places(db, &source)?,
                    // Places outside a unit are apart: only its own can
                    // have lost records.
                    within => rows_within(
                        db,
                        (
                            "SELECT place FROM identity_places WHERE source = $1",
                            "place",
                            0,
                        ),
                        &source,
                        within,
                    )?
                    .iter()
                    .map(|row| row.text(0))
                    .collect::<Result<_, _>>()?,
                }
                .iter()
                .all(|place| keeps_all(end, place))
                {
                    // Nothing older can have gone: no need to read it.
                    identity_index::set_places(db, &source, &written, false)?;
                } else {
                    let kept_places =
                        identity_index::filter_older(db, &source, scan_id, |path| kept(end, path))?;
                    identity_index::set_places(db, &source, &kept_places, true)?;
                    identity_index::set_places(db, &source, &written, false)?;
                }
                identity_index::compact(db, &source)?;
                for (rule, severity) in end.conflict_rules {
                    resolved += judge_conflicts(db, rule, severity, scan_id, finished)?;
                }
                // What this scan did not see resolves, unless it lies where the
                // scan could not read, or where it read incrementally and the
                // record is still there (its finding is carried; `last_seen`
                // stays the last time the record was actually read).
                let unseen = match end.within {
                    [] => db.query(
                        "SELECT id, record_path FROM findings
                         WHERE source = $1 AND resolved_at IS NULL AND last_seen_scan < $2",
                        &[Value::from(source.as_str()), Value::from(scan_id)],
                    )?,
                    // A unit's scan reads its own part only.
                    within => rows_within(
                        db,
                        (
                            "SELECT id, record_path, last_seen_scan FROM findings
                             WHERE source = $1 AND resolved_at IS NULL",
                            "record_path",
                            1,
                        ),
                        &source,
                        within,
                    )?
                    .into_iter()
                    .filter(|row| row.int(2).is_ok_and(|seen| seen < scan_id))
                    .collect(),
                };
                let mut resolving: Vec<Vec<Value>> = Vec::new();
                for row in &unseen {
                    let (id, path) = (row.int(0)?, row.text(1)?);
                    if outside(end, &path)
                        || end
                            .unread_prefixes
                            .iter()
                            .any(|prefix| under(&path, prefix))
                    {
                        continue;
                    }
                    // Folders nest (`Arkiv`, `Arkiv/2024`): the closest scope
                    // decides. A finding on a folder read incrementally (its
                    // scope's own path) stays: the folder is there.
                    let carried = end
                        .carried
                        .iter()
                        .filter(|scope| under(&path, &scope.prefix))
                        .max_by_key(|scope| scope.prefix.len())
                        .is_some_and(|scope| scope.prefix == path || scope.still_there(&path));
                    if !carried {
                        resolving.push(vec![
                            Value::from(id),
                            Value::from(finished),
                            Value::from(scan_id),
                        ]);
                    }
                }
                resolved += db.execute_many(
                    "UPDATE findings SET resolved_at = $2, resolved_scan = $3 WHERE id = $1",
                    resolving,
                )?;
                match &end.record_cache {
                    RecordCacheUpdate::Keep => {}
                    RecordCacheUpdate::Replace {
                        plan,
                        complete,
                        entries,
                        data,
                    } => {
                        db.execute(
                            "INSERT INTO record_cache (source, plan, complete, entries, data)
                             VALUES ($1, $2, $3, $4, $5)
                             ON CONFLICT (source) DO UPDATE SET plan = excluded.plan,
                                 complete = excluded.complete, entries = excluded.entries,
                                 data = excluded.data",
                            &[
                                Value::from(source.as_str()),
                                Value::from(*plan as i64),
                                Value::from(*complete),
                                Value::from(i64::try_from(*entries).unwrap_or(i64::MAX)),
                                Value::from(data.as_slice()),
                            ],
                        )?;
                    }
                    RecordCacheUpdate::Clear => {
                        db.execute(
                            "DELETE FROM record_cache WHERE source = $1",
                            &[Value::from(source.as_str())],
                        )?;
                    }
                }
                if end.within.is_empty() {
                    db.execute(
                        "DELETE FROM checkpoints WHERE source = $1",
                        &[Value::from(source.as_str())],
                    )?;
                } else {
                    // A unit's scan replaces the checkpoints of its own
                    // places only (keys are record-path prefixes).
                    let older = rows_within(
                        db,
                        ("SELECT key FROM checkpoints WHERE source = $1", "key", 0),
                        &source,
                        end.within,
                    )?;
                    let mut inside: Vec<Vec<Value>> = Vec::new();
                    for row in &older {
                        inside.push(vec![
                            Value::from(source.as_str()),
                            Value::from(row.text(0)?),
                        ]);
                    }
                    db.execute_many(
                        "DELETE FROM checkpoints WHERE source = $1 AND key = $2",
                        inside,
                    )?;
                }
                for (key, value) in end.checkpoints {
                    db.execute(
                        "INSERT INTO checkpoints (source, key, value, updated_at)
                         VALUES ($1, $2, $3, $4)",
                        &[
                            Value::from(source.as_str()),
                            Value::from(key.as_str()),
                            Value::from(value.as_str()),
                            Value::from(end.finished_at.timestamp()),
                        ],
                    )?;
                }
            }
            staging.drop_scan(db, scan_id)?;
            let new = db
                .query(
                    "SELECT count(*) FROM findings WHERE first_seen_scan = $1",
                    &[Value::from(scan_id)],
                )?
                .first()
                .map(|row| row.int(0))
                .transpose()?
                .unwrap_or(0);
            let open = open_count(db, &source, end.finished_at)?;
            Ok(ScanTally {
                new: new.max(0) as u64,
                resolved,
                open,
            })
        })
    }

    /// Judge `conflict_rules` again from every source's latest keys, outside
    /// a scan: a fleet does it once for a source whose units were scanned one
    /// by one (their scans leave it out). Conflicts no longer there resolve,
    /// marked with the newest scan. Returns how many resolved.
    pub fn judge_conflicts(
        &mut self,
        conflict_rules: &[(String, &'static str)],
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        db::transaction(self.db(), true, |db| {
            let newest = db
                .query("SELECT max(id) FROM scans", &[])?
                .first()
                .map(|row| row.opt_int(0))
                .transpose()?
                .flatten();
            let Some(newest) = newest else {
                return Ok(0);
            };
            let mut resolved = 0;
            for (rule, severity) in conflict_rules {
                resolved += judge_conflicts(db, rule, severity, newest, at.timestamp())?;
            }
            Ok(resolved)
        })
    }

    /// How many findings of `source` are open now and count as broken.
    pub fn open_count(&self, source: &str) -> Result<u64, StoreError> {
        open_count(self.db(), source, Utc::now())
    }

    /// Store conflict keys seen by scan `scan_id` of `source`.
    pub fn record_conflict_keys(
        &mut self,
        scan_id: i64,
        source: &str,
        keys: &[NewConflictKey],
    ) -> Result<(), StoreError> {
        let rows: Vec<Vec<Value>> = keys
            .iter()
            .map(|key| {
                vec![
                    Value::from(key.rule.as_str()),
                    Value::from(key.side),
                    Value::from(source),
                    Value::from(key.key.as_str()),
                    Value::from(key.record_id.as_str()),
                    Value::from(key.record_path.as_str()),
                    Value::from(key.record_kind),
                    Value::from(key.custodian.as_deref()),
                    Value::from(scan_id),
                ]
            })
            .collect();
        db::transaction(self.db(), true, |db| {
            db.insert_many(
                "INSERT INTO conflict_keys (rule, side, source, key, record_id, record_path,
                     record_kind, custodian, scan_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                rows,
            )?;
            Ok(())
        })
    }

    /// Stage the identifiers found in records read by scan `scan_id` of
    /// `source`. They reach the index when the scan finishes
    /// ([`Store::finish_scan`]), sorted by hash into segments
    /// ([`identity_index`]); a failed scan's rows never do. Where a newer scan
    /// holds the same hash, record, kind and field as an older one, the newer
    /// entry is the one a lookup sees; the entries of records gone are removed
    /// when the scan finishes.
    pub fn record_identities(
        &mut self,
        scan_id: i64,
        identities: &mut IdentityBatch,
    ) -> Result<(), StoreError> {
        let database: &dyn Database = &*self.database;
        self.staging.add(database, scan_id, identities)
    }

    /// Every place the identity index holds one of `hashes`, by source and
    /// record.
    pub fn identities(
        &self,
        hashes: &[tillsyn_core::identity::IdentityHash],
    ) -> Result<Vec<IdentityRow>, StoreError> {
        let mut rows = Vec::new();
        for hash in hashes {
            identity_index::lookup(self.db(), hash, None, |source, entry| {
                rows.push(entry.row(source));
            })?;
        }
        rows.sort_by(|a, b| {
            (&a.source, &a.record_path, &a.kind, &a.field).cmp(&(
                &b.source,
                &b.record_path,
                &b.kind,
                &b.field,
            ))
        });
        Ok(rows)
    }

    /// Add erasure requests (keyed hashes only). One already there keeps the
    /// earlier of the two dates. Returns how many were new.
    pub fn import_erasures(
        &mut self,
        requests: &[ErasureRequest],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        db::transaction(self.db(), true, |db| {
            let count = |db: &dyn Database| -> Result<i64, StoreError> {
                let rows = db.query("SELECT count(*) FROM erasure_requests", &[])?;
                Ok(rows.first().map(|row| row.int(0)).transpose()?.unwrap_or(0))
            };
            let before = count(db)?;
            let upsert = format!(
                "INSERT INTO erasure_requests (hash, kind, requested_at, imported_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (hash) DO UPDATE SET
                     requested_at = {}(erasure_requests.requested_at, excluded.requested_at)",
                db::least(db.engine())
            );
            for request in requests {
                db.execute(
                    &upsert,
                    &[
                        Value::from(&request.hash[..]),
                        Value::from(request.kind.as_str()),
                        Value::from(request.requested_at.timestamp()),
                        Value::from(now.timestamp()),
                    ],
                )?;
            }
            Ok((count(db)? - before).max(0) as u64)
        })
    }

    /// Every erasure request, oldest first.
    pub fn erasure_requests(&self) -> Result<Vec<ErasureRequest>, StoreError> {
        self.db()
            .query(
                "SELECT hash, kind, requested_at FROM erasure_requests ORDER BY requested_at, hash",
                &[],
            )?
            .iter()
            .map(|row| {
                let bytes = row.blob(0)?;
                let mut hash = [0u8; 16];
                if bytes.len() == 16 {
                    hash.copy_from_slice(&bytes);
                }
                Ok(ErasureRequest {
                    hash,
                    kind: row.text(1)?,
                    requested_at: to_time(row.int(2)?),
                })
            })
            .collect()
    }

    /// Whether the index holds `hash` in `source`.
    pub fn holds(
        &self,
        source: &str,
        hash: &tillsyn_core::identity::IdentityHash,
    ) -> Result<bool, StoreError> {
        let mut held = false;
        identity_index::lookup(self.db(), hash, Some(source), |_, _| held = true)?;
        Ok(held)
    }

    /// Log the start of one `tillsyn subject` lookup in the audit log, before
    /// anything is looked up; returns its id for [`Store::complete_subject_lookup`].
    /// A lookup that fails or is killed still leaves this row.
    pub fn begin_subject_lookup(&mut self, lookup: &SubjectLookup) -> Result<i64, StoreError> {
        let inserted = self.db().query(
            "INSERT INTO subject_lookups (at, kinds, hashes, hits, asked_servers)
             VALUES ($1, $2, $3, 0, $4) RETURNING id",
            &[
                Value::from(lookup.at.timestamp()),
                Value::from(lookup.kinds.join(",")),
                Value::from(lookup.hashes.join(",")),
                Value::from(lookup.asked_servers),
            ],
        )?;
        Ok(inserted
            .first()
            .ok_or(StoreError::Missing("subject_lookups"))?
            .int(0)?)
    }

    /// The lookup `id` completed at `at`, finding `hits` places.
    pub fn complete_subject_lookup(
        &mut self,
        id: i64,
        hits: u64,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.db().execute(
            "UPDATE subject_lookups SET hits = $2, completed_at = $3 WHERE id = $1",
            &[
                Value::from(id),
                Value::from(i64::try_from(hits).unwrap_or(i64::MAX)),
                Value::from(at.timestamp()),
            ],
        )?;
        Ok(())
    }

    /// The audit log of lookups, oldest first.
    pub fn subject_lookups(&self) -> Result<Vec<SubjectLookup>, StoreError> {
        let split = |text: String| -> Vec<String> {
            text.split(',')
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect()
        };
        self.db()
            .query(
                "SELECT at, kinds, hashes, hits, asked_servers, completed_at FROM subject_lookups
                 ORDER BY id",
                &[],
            )?
            .iter()
            .map(|row| {
                Ok(SubjectLookup {
                    at: to_time(row.int(0)?),
                    kinds: split(row.text(1)?),
                    hashes: split(row.text(2)?),
                    hits: row.int(3)?.max(0) as u64,
                    asked_servers: row.int(4)? != 0,
                    completed_at: row.opt_int(5)?.map(to_time),
                })
            })
            .collect()
    }

    /// Mark a scan failed. Nothing is resolved; findings it saw stay as recorded.
    pub fn fail_scan(
        &mut self,
        scan_id: i64,
        records: u64,
        error_kind: &str,
        error_message: &str,
        finished_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.db().execute(
            "UPDATE scans SET status = 'failed', finished_at = $2, records = $3,
                 error_kind = $4, error_message = $5 WHERE id = $1",
            &[
                Value::from(scan_id),
                Value::from(finished_at.timestamp()),
                Value::from(i64::try_from(records).unwrap_or(i64::MAX)),
                Value::from(error_kind),
                Value::from(error_message),
            ],
        )?;
        // A half-read source does not change who is on which side, nor whom
        // the identity index finds where.
        self.db().execute(
            "DELETE FROM conflict_keys WHERE scan_id = $1",
            &[Value::from(scan_id)],
        )?;
        let database: &dyn Database = &*self.database;
        self.staging.drop_scan(database, scan_id)?;
        Ok(())
    }

    /// Findings, newest rule/source/record order, optionally for one source and
    /// only those seen by one scan.
    pub fn findings(
        &self,
        filter: FindingFilter,
        source: Option<&str>,
        seen_by_scan: Option<i64>,
    ) -> Result<Vec<Finding>, StoreError> {
        self.query(&FindingQuery {
            filter,
            source: source.map(str::to_owned),
            seen_by_scan,
            ..FindingQuery::default()
        })
    }

    /// Findings that match `query`, in rule/source/record order.
    pub fn query(&self, query: &FindingQuery) -> Result<Vec<Finding>, StoreError> {
        let state = match query.filter {
            FindingFilter::Open => "resolved_at IS NULL",
            FindingFilter::Resolved => "resolved_at IS NOT NULL",
            FindingFilter::All => "TRUE",
        };
        // Open findings are unique by (rule, source, record): that order is the
        // partial index's, no sort needed.
        let order = match query.filter {
            FindingFilter::Open => "rule, source, record_id",
            FindingFilter::Resolved | FindingFilter::All => "rule, source, record_id, id",
        };
        let sql = format!(
            "SELECT {FINDING_COLUMNS}
             FROM findings
             WHERE {state} AND (CAST($1 AS TEXT) IS NULL OR source = $1)
                 AND (CAST($2 AS BIGINT) IS NULL OR last_seen_scan = $2)
                 AND (CAST($3 AS TEXT) IS NULL OR rule = $3) AND (CAST($4 AS BIGINT) IS NULL OR first_seen >= $4)
                 AND (CAST($5 AS BIGINT) IS NULL OR id = $5)
             ORDER BY {order}"
        );
        self.db()
            .query(
                &sql,
                &[
                    Value::from(query.source.clone()),
                    Value::from(query.seen_by_scan),
                    Value::from(query.rule.clone()),
                    Value::from(query.since.map(|since| since.timestamp())),
                    Value::from(query.id),
                ],
            )?
            .iter()
            .map(|row| Ok(finding_row(row)?))
            .collect()
    }

    /// One finding by id.
    pub fn finding(&self, id: i64) -> Result<Option<Finding>, StoreError> {
        Ok(self
            .query(&FindingQuery {
                filter: FindingFilter::All,
                id: Some(id),
                ..FindingQuery::default()
            })?
            .pop())
    }

    /// The latest scan of `source`.
    pub fn last_scan(&self, source: &str) -> Result<Option<ScanRow>, StoreError> {
        self.db()
            .query(
                "SELECT id, source, started_at, finished_at, status, records, error_kind
                 FROM scans WHERE source = $1 ORDER BY id DESC LIMIT 1",
                &[Value::from(source)],
            )?
            .first()
            .map(|row| {
                Ok(ScanRow {
                    id: row.int(0)?,
                    source: row.text(1)?,
                    started_at: to_time(row.int(2)?),
                    finished_at: row.opt_int(3)?.map(to_time),
                    status: ScanStatus::parse(&row.text(4)?),
                    records: row.int(5)?.max(0) as u64,
                    error_kind: row.opt_text(6)?,
                })
            })
            .transpose()
    }

    /// Open findings per rule and source at `now`, with the earliest
    /// `first_seen` among those counted as broken: what the metrics show as
    /// open violations and their age. Findings under an exception in force
    /// are counted apart (`excepted`), not as broken.
    pub fn open_summary(&self, now: DateTime<Utc>) -> Result<Vec<OpenGroup>, StoreError> {
        let rows = self.db().query(
            "SELECT rule, source,
                    sum(CASE WHEN coalesce(excepted_until, 0) > $1 THEN 0 ELSE 1 END),
                    min(CASE WHEN coalesce(excepted_until, 0) > $1 THEN NULL ELSE first_seen END),
                    sum(CASE WHEN coalesce(excepted_until, 0) > $1 THEN 1 ELSE 0 END)
             FROM findings
             WHERE resolved_at IS NULL GROUP BY rule, source ORDER BY rule, source",
            &[Value::from(now.timestamp())],
        )?;
        let mut groups: BTreeMap<(String, String), OpenGroup> = BTreeMap::new();
        for row in &rows {
            let group = OpenGroup {
                rule: row.text(0)?,
                source: row.text(1)?,
                count: row.int(2)?.max(0) as u64,
                oldest_first_seen: row.opt_int(3)?.map(to_time),
                excepted: row.int(4)?.max(0) as u64,
                checked: None,
            };
            groups.insert((group.rule.clone(), group.source.clone()), group);
        }
        // Every pair with a count, findings or not: a rule kept everywhere
        // still shows what it checked.
        let counted = self
            .db()
            .query("SELECT rule, source, records FROM checked_counts", &[])?;
        for row in &counted {
            let (rule, records) = (row.text(0)?, row.int(2)?.max(0) as u64);
            // A source scanned unit by unit counts in each unit's row.
            let source = tillsyn_core::unit::whole_source(&row.text(1)?).to_owned();
            let checked = &mut groups
                .entry((rule.clone(), source.clone()))
                .or_insert(OpenGroup {
                    rule,
                    source,
                    count: 0,
                    oldest_first_seen: None,
                    excepted: 0,
                    checked: None,
                })
                .checked;
            *checked = Some(checked.unwrap_or(0) + records);
        }
        Ok(groups.into_values().collect())
    }

    /// Take every exception mark but custodians' off the open findings (of
    /// `source`, or of every source): what applying no exceptions comes to.
    pub fn clear_exceptions(&mut self, source: Option<&str>) -> Result<(), StoreError> {
        self.db().execute(
            "UPDATE findings SET exception = NULL, excepted_until = NULL
             WHERE exception IS NOT NULL AND exception != $2 AND resolved_at IS NULL
                 AND (CAST($1 AS TEXT) IS NULL OR source = $1)",
            &[Value::from(source), Value::from(CUSTODIAN_MARK_EXCEPTION)],
        )?;
        Ok(())
    }

    /// Mark the open findings (of `source`, or of all) with `exceptions`:
    /// each with the first exception, in config order, that covers it.
    /// Returns how many open findings each covers, by id.
    pub fn mark_exceptions(
        &mut self,
        exceptions: &tillsyn_rules::exceptions::Exceptions,
        source: Option<&str>,
    ) -> Result<BTreeMap<String, u64>, StoreError> {
        // None configured (the usual case): only marks left by earlier
        // exceptions go, found by their index, without reading every finding.
        if exceptions.is_empty() {
            self.clear_exceptions(source)?;
            return Ok(BTreeMap::new());
        }
        self.apply_exceptions(source, |rule, source, path| {
            exceptions
                .covering(rule, source, path)
                .map(|exception| (exception.config.id.clone(), exception.ends))
        })
    }

    /// Mark the open findings (of `source`, or of every source) with the
    /// exception that covers them, as `covering` says (its id and end), and
    /// clear the mark where none does any more. Returns how many open
    /// findings each exception covers, by id.
    pub fn apply_exceptions(
        &mut self,
        source: Option<&str>,
        covering: impl Fn(&str, &str, &str) -> Option<(String, DateTime<Utc>)>,
    ) -> Result<BTreeMap<String, u64>, StoreError> {
        db::transaction(self.db(), true, |db| {
            let mut covered: BTreeMap<String, u64> = BTreeMap::new();
            let rows = db.query(
                "SELECT id, rule, source, record_path, exception, excepted_until FROM findings
                 WHERE resolved_at IS NULL AND (CAST($1 AS TEXT) IS NULL OR source = $1)",
                &[Value::from(source)],
            )?;
            for row in &rows {
                let (id, rule, source, path) =
                    (row.int(0)?, row.text(1)?, row.text(2)?, row.text(3)?);
                // Its mark: exception, end.
                let stored = row.opt_text(4)?.zip(row.opt_int(5)?);
                // A custodian's mark is the custodian's to set and take back: the
                // scan that reads the record decides it.
                if stored
                    .as_ref()
                    .is_some_and(|(exception, _)| exception == CUSTODIAN_MARK_EXCEPTION)
                {
                    continue;
                }
                let wanted = covering(&rule, &source, &path)
                    .map(|(exception, ends)| (exception, ends.timestamp()));
                if let Some((exception, _)) = &wanted {
                    *covered.entry(exception.clone()).or_insert(0) += 1;
                }
                if stored != wanted {
                    let (exception, until) = wanted.unzip();
                    db.execute(
                        "UPDATE findings SET exception = $2, excepted_until = $3 WHERE id = $1",
                        &[Value::from(id), Value::from(exception), Value::from(until)],
                    )?;
                }
            }
            Ok(covered)
        })
    }

    /// Per rule, the findings scan `scan_id` saw first and those it resolved
    /// (including `conflict` findings it resolved on another source).
    pub fn scan_changes(&self, scan_id: i64) -> Result<Vec<RuleChanges>, StoreError> {
        self.db()
            .query(
                "SELECT rule, sum(CASE WHEN first_seen_scan = $1 THEN 1 ELSE 0 END),
                        sum(CASE WHEN resolved_scan = $1 THEN 1 ELSE 0 END)
                 FROM findings WHERE first_seen_scan = $1 OR resolved_scan = $1
                 GROUP BY rule ORDER BY rule",
                &[Value::from(scan_id)],
            )?
            .iter()
            .map(|row| {
                Ok(RuleChanges {
                    rule: row.text(0)?,
                    new: row.int(1)?.max(0) as u64,
                    resolved: row.int(2)?.max(0) as u64,
                })
            })
            .collect()
    }

    /// When the latest scan of `source` that read to the end (complete or
    /// partial) finished.
    pub fn last_success(&self, source: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .db()
            .query(
                "SELECT max(finished_at) FROM scans
                 WHERE source = $1 AND status IN ('complete', 'partial')",
                &[Value::from(source)],
            )?
            .first()
            .map(|row| row.opt_int(0))
            .transpose()?
            .flatten()
            .map(to_time))
    }

    /// Where `source` stands, by the one definition of complete: its last
    /// scan of the whole, or, when it was last scanned unit by unit, each
    /// unit's last finished scan. See [`SourceState`].
    pub fn source_state(&self, source: &str) -> Result<SourceState, StoreError> {
        let latest = self.db().query(
            "SELECT unit, finished_at, status, started_at FROM scans
             WHERE id IN (SELECT max(id) FROM scans
                          WHERE source = $1 AND status <> 'running' GROUP BY unit)",
            &[Value::from(source)],
        )?;
        let complete = self.db().query(
            "SELECT unit, max(finished_at) FROM scans
             WHERE source = $1 AND status = 'complete' GROUP BY unit",
            &[Value::from(source)],
        )?;
        let succeeded = self.db().query(
            "SELECT unit, max(finished_at) FROM scans
             WHERE source = $1 AND status IN ('complete', 'partial') GROUP BY unit",
            &[Value::from(source)],
        )?;
        let mut whole: Option<PartState> = None;
        let mut units: BTreeMap<String, PartState> = BTreeMap::new();
        for row in &latest {
            let part = PartState {
                status: ScanStatus::parse(&row.text(2)?),
                finished_at: row.opt_int(1)?.map(to_time),
                started_at: to_time(row.int(3)?),
                complete_at: None,
                succeeded_at: None,
            };
            match row.opt_text(0)? {
                Some(unit) => units.insert(unit, part),
                None => whole.replace(part),
            };
        }
        for (rows, succeeded) in [(&complete, false), (&succeeded, true)] {
            for row in rows {
                let at = row.opt_int(1)?.map(to_time);
                let part = match row.opt_text(0)? {
                    Some(unit) => units.get_mut(&unit),
                    None => whole.as_mut(),
                };
                if let Some(part) = part {
                    match succeeded {
                        true => part.succeeded_at = at,
                        false => part.complete_at = at,
                    }
                }
            }
        }
        // A whole-source scan since the last unit scan speaks for all of it.
        let newest_unit = units.values().map(|part| part.started_at).max();
        let parts: Vec<PartState> = match (&whole, newest_unit) {
            (Some(whole), Some(newest)) if whole.started_at >= newest => vec![whole.clone()],
            (Some(whole), None) => vec![whole.clone()],
            _ => units.into_values().collect(),
        };
        let whole_complete = whole.as_ref().and_then(|whole| whole.complete_at);
        let whole_succeeded = whole.as_ref().and_then(|whole| whole.succeeded_at);
        let all = |test: fn(&PartState) -> bool| !parts.is_empty() && parts.iter().all(test);
        let status = if parts.is_empty() {
            None
        } else if all(|part| part.status == ScanStatus::Complete) {
            Some(ScanStatus::Complete)
        } else if all(|part| part.status == ScanStatus::Failed) {
            Some(ScanStatus::Failed)
        } else {
            Some(ScanStatus::Partial)
        };
        // Read completely as of the moment every part had been: the earliest
        // of their latest complete reads, all parts needing one.
        let parts_complete = parts
            .iter()
            .map(|part| part.complete_at)
            .collect::<Option<Vec<_>>>()
            .and_then(|times| times.into_iter().min());
        Ok(SourceState {
            status,
            failed_parts: parts
                .iter()
                .filter(|part| part.status == ScanStatus::Failed)
                .count(),
            parts: parts.len(),
            complete_at: parts_complete.max(whole_complete),
            succeeded_at: parts
                .iter()
                .map(|part| part.succeeded_at)
                .collect::<Option<Vec<_>>>()
                .and_then(|times| times.into_iter().min())
                .max(whole_succeeded),
            finished_at: parts
                .iter()
                .map(|part| part.finished_at)
                .collect::<Option<Vec<_>>>()
                .and_then(|times| times.into_iter().min()),
            started_at: parts.iter().map(|part| part.started_at).max(),
        })
    }

    /// Note the kinds the accounts (or file owners) of `source` were indexed
    /// as by a scan (`email`, `account`): with `replace` (a scan of the whole
    /// source) instead of what was noted, else added to it (one unit's).
    pub fn note_account_kinds(
        &mut self,
        source: &str,
        kinds: &[&str],
        replace: bool,
    ) -> Result<(), StoreError> {
        let mut noted = if replace {
            BTreeSet::new()
        } else {
            self.account_kinds(source)?
        };
        noted.extend(kinds.iter().map(|kind| (*kind).to_owned()));
        let name = tillsyn_core::unit::unit_name("account_kinds", source);
        let value = noted.into_iter().collect::<Vec<_>>().join(",");
        self.db().execute(
            "INSERT INTO store_facts (name, value) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            &[Value::from(name.as_str()), Value::from(value.as_str())],
        )?;
        Ok(())
    }

    /// The kinds `source`'s accounts were indexed as ([`Store::note_account_kinds`]);
    /// empty before a scan indexed any.
    pub fn account_kinds(&self, source: &str) -> Result<BTreeSet<String>, StoreError> {
        let name = tillsyn_core::unit::unit_name("account_kinds", source);
        Ok(self
            .db()
            .query(
                "SELECT value FROM store_facts WHERE name = $1",
                &[Value::from(name.as_str())],
            )?
            .first()
            .map(|row| row.text(0))
            .transpose()?
            .map(|value| {
                value
                    .split(',')
                    .filter(|kind| !kind.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Problems counted by a scan, by kind.
    pub fn scan_problems(&self, scan_id: i64) -> Result<Vec<(String, u64)>, StoreError> {
        self.db()
            .query(
                "SELECT kind, count FROM scan_problems WHERE scan_id = $1 ORDER BY kind",
                &[Value::from(scan_id)],
            )?
            .iter()
            .map(|row| Ok((row.text(0)?, row.int(1)?.max(0) as u64)))
            .collect()
    }

    /// Every checkpoint of a source.
    /// The checkpoints of `source` under `prefixes` (a unit's; all of the
    /// source's when empty).
    pub fn checkpoints_within(
        &self,
        source: &str,
        prefixes: &[String],
    ) -> Result<BTreeMap<String, String>, StoreError> {
        if prefixes.is_empty() {
            return self.checkpoints(source);
        }
        rows_within(
            self.db(),
            (
                "SELECT key, value FROM checkpoints WHERE source = $1",
                "key",
                0,
            ),
            source,
            prefixes,
        )?
        .iter()
        .map(|row| Ok((row.text(0)?, row.text(1)?)))
        .collect()
    }

    /// Every checkpoint of `source`.
    pub fn checkpoints(&self, source: &str) -> Result<BTreeMap<String, String>, StoreError> {
        self.db()
            .query(
                "SELECT key, value FROM checkpoints WHERE source = $1",
                &[Value::from(source)],
            )?
            .iter()
            .map(|row| Ok((row.text(0)?, row.text(1)?)))
            .collect()
    }

    /// The record cache the last finished scan of `source` left (see
    /// [`tillsyn_connectors::record_cache`]).
    pub fn record_cache(&self, source: &str) -> Result<Option<SavedRecordCache>, StoreError> {
        self.db()
            .query(
                "SELECT plan, complete, data FROM record_cache WHERE source = $1",
                &[Value::from(source)],
            )?
            .first()
            .map(|row| {
                Ok(SavedRecordCache {
                    plan: row.int(0)? as u64,
                    complete: row.int(1)? != 0,
                    data: row.blob(2)?,
                })
            })
            .transpose()
    }

    /// The memory of records checked in `source` (see [`crate::checked`]),
    /// and the plan it was made under.
    pub fn checked_memory(&self, source: &str) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        self.db()
            .query(
                "SELECT plan, data FROM checked_memory WHERE source = $1",
                &[Value::from(source)],
            )?
            .first()
            .map(|row| Ok((row.int(0)? as u64, row.blob(1)?)))
            .transpose()
    }

    /// The plan the stored memory of records checked in `source` was made
    /// under, without reading the memory.
    pub fn checked_plan(&self, source: &str) -> Result<Option<u64>, StoreError> {
        self.db()
            .query(
                "SELECT plan FROM checked_memory WHERE source = $1",
                &[Value::from(source)],
            )?
            .first()
            .map(|row| Ok(row.int(0)? as u64))
            .transpose()
    }

    /// After a finished scan of `source`: the memory for the next one and
    /// the records each of its rules checked.
    pub fn save_checked(
        &mut self,
        source: &str,
        plan: u64,
        memory: &[u8],
        counts: &[tillsyn_rules::checked::RuleCount],
    ) -> Result<(), StoreError> {
        db::transaction(self.db(), true, |db| {
            db.execute(
                "INSERT INTO checked_memory (source, plan, data) VALUES ($1, $2, $3)
                 ON CONFLICT (source) DO UPDATE SET plan = excluded.plan, data = excluded.data",
                &[
                    Value::from(source),
                    Value::from(plan as i64),
                    Value::from(memory),
                ],
            )?;
            db.execute(
                "DELETE FROM checked_counts WHERE source = $1",
                &[Value::from(source)],
            )?;
            for count in counts {
                let custodians: Vec<u8> = count
                    .custodians
                    .iter()
                    .flat_map(|custodian| custodian.to_le_bytes())
                    .collect();
                db.execute(
                    "INSERT INTO checked_counts (source, rule, records, custodians, complete)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (source, rule) DO UPDATE SET records = excluded.records,
                         custodians = excluded.custodians, complete = excluded.complete",
                    &[
                        Value::from(source),
                        Value::from(count.rule.as_str()),
                        Value::from(i64::try_from(count.records).unwrap_or(i64::MAX)),
                        Value::from(custodians),
                        Value::from(count.complete),
                    ],
                )?;
            }
            Ok(())
        })
    }

    /// The records every rule checked in every source, as last counted (a
    /// source scanned unit by unit has a row per unit, under the source's
    /// name).
    pub fn checked_counts(&self) -> Result<Vec<CheckedRow>, StoreError> {
        self.db()
            .query(
                "SELECT rule, source, records, custodians, complete FROM checked_counts
                 ORDER BY rule, source",
                &[],
            )?
            .iter()
            .map(|row| {
                Ok(CheckedRow {
                    rule: row.text(0)?,
                    source: tillsyn_core::unit::whole_source(&row.text(1)?).to_owned(),
                    records: row.int(2)?.max(0) as u64,
                    custodians: custodian_words(&row.blob(3)?),
                    complete: row.int(4)? != 0,
                })
            })
            .collect()
    }

    /// A checkpoint value for incremental scans.
    pub fn checkpoint(&self, source: &str, key: &str) -> Result<Option<String>, StoreError> {
        self.db()
            .query(
                "SELECT value FROM checkpoints WHERE source = $1 AND key = $2",
                &[Value::from(source), Value::from(key)],
            )?
            .first()
            .map(|row| row.text(0))
            .transpose()
            .map_err(StoreError::from)
    }

    /// Set a checkpoint value.
    pub fn set_checkpoint(
        &mut self,
        source: &str,
        key: &str,
        value: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.db().execute(
            "INSERT INTO checkpoints (source, key, value, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (source, key) DO UPDATE SET value = excluded.value,
                 updated_at = excluded.updated_at",
            &[
                Value::from(source),
                Value::from(key),
                Value::from(value),
                Value::from(now.timestamp()),
            ],
        )?;
        Ok(())
    }
}

/// Whether a row about `path`, recorded before this scan, stays: it lies where
/// the scan could not read, or where it read incrementally and the record is
/// still there (a carried scope's own path is its folder, there too).
fn kept(end: &ScanEnd<'_>, path: &str) -> bool {
    outside(end, path)
        || end
            .unread_prefixes
            .iter()
            .any(|prefix| under_prefix(path, prefix))
        || end.carried.iter().any(|scope| {
            scope.prefix == path || (under_prefix(path, &scope.prefix) && scope.still_there(path))
        })
}

/// Whether every record in `place` (a folder or directory, see
/// `identity_index::Places`) is [`kept`]: it lies where the scan could not
/// read, or in a scope read incrementally from which nothing went.
fn keeps_all(end: &ScanEnd<'_>, place: &str) -> bool {
    // A place that neither lies in the unit nor holds part of it.
    let apart = !end.within.is_empty()
        && end
            .within
            .iter()
            .all(|prefix| !under_prefix(place, prefix) && !under_prefix(prefix, place));
    apart
        || end
            .unread_prefixes
            .iter()
            .any(|prefix| under_prefix(place, prefix))
        || end.carried.iter().any(|scope| {
            scope.gone.is_empty()
                && scope.present.is_none()
                && scope.left_out.is_none()
                && under_prefix(place, &scope.prefix)
        })
}

/// Remove the conflict keys of `source` that scans before `scan_id` recorded,
/// except those [`kept`].
fn replace_older_conflict_keys(
    database: &dyn Database,
    source: &str,
    scan_id: i64,
    end: &ScanEnd<'_>,
) -> Result<(), StoreError> {
    if whole_and_read(end) {
        database.execute(
            "DELETE FROM conflict_keys WHERE source = $1 AND scan_id < $2",
            &[Value::from(source), Value::from(scan_id)],
        )?;
        return Ok(());
    }
    // A record's older keys go together, or stay together.
    let older = match end.within {
        [] => database.query(
            "SELECT DISTINCT record_path, scan_id FROM conflict_keys WHERE source = $1 AND scan_id < $2",
            &[Value::from(source), Value::from(scan_id)],
        )?,
        within => rows_within(
            database,
            (
                "SELECT record_path, scan_id FROM conflict_keys WHERE source = $1",
                "record_path",
                0,
            ),
            source,
            within,
        )?,
    };
    let mut decided = std::collections::BTreeSet::new();
    for row in &older {
        let path = row.text(0)?;
        if row.int(1)? >= scan_id || !decided.insert(path.clone()) {
            continue;
        }
        if !kept(end, &path) {
            database.execute(
                "DELETE FROM conflict_keys WHERE source = $1 AND scan_id < $2 AND record_path = $3",
                &[
                    Value::from(source),
                    Value::from(scan_id),
                    Value::from(path.as_str()),
                ],
            )?;
        }
    }
    Ok(())
}

/// The rows of `select` (`SELECT … FROM … WHERE source = $1`) whose
/// `column` (the row's value at `at`) lies under one of `prefixes`, found by
/// range through the indexes of migration 17, each row once.
fn rows_within(
    database: &dyn Database,
    (select, column, at): (&str, &str, usize),
    source: &str,
    prefixes: &[String],
) -> Result<Vec<db::Row>, StoreError> {
    let sql = format!(
        "{select} AND {}",
        db::in_prefix_range(database.engine(), column, 2)
    );
    let mut found = Vec::new();
    for (index, prefix) in prefixes.iter().enumerate() {
        let [low, high] = db::prefix_range(prefix);
        for row in database.query(&sql, &[Value::from(source), low, high])? {
            let path = row.text(at)?;
            let earlier = prefixes[..index]
                .iter()
                .any(|other| under_prefix(&path, other));
            if under_prefix(&path, prefix) && !earlier {
                found.push(row);
            }
        }
    }
    Ok(found)
}

/// Whether the scan read all of its source, all of it anew: then whatever
/// older scans recorded can go wholesale.
fn whole_and_read(end: &ScanEnd<'_>) -> bool {
    end.within.is_empty() && end.unread_prefixes.is_empty() && end.carried.is_empty()
}

/// Whether `path` lies outside the unit a scan covered (never, for a scan
/// of a whole source).
fn outside(end: &ScanEnd<'_>, path: &str) -> bool {
    !end.within.is_empty() && !end.within.iter().any(|prefix| under_prefix(path, prefix))
}

/// Whether `path` is `prefix` or lies below it (an empty prefix holds all).
fn under_prefix(path: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// How many findings of `source` are open at `now` and count as broken (under
/// no exception in force).
fn open_count(
    database: &dyn Database,
    source: &str,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let open = database
        .query(
            "SELECT count(*) FROM findings WHERE source = $1 AND resolved_at IS NULL
                 AND NOT coalesce(excepted_until, 0) > $2",
            &[Value::from(source), Value::from(now.timestamp())],
        )?
        .first()
        .map(|row| row.int(0))
        .transpose()?
        .unwrap_or(0);
    Ok(open.max(0) as u64)
}

/// Judge a `conflict` rule from every source's latest keys: a forbidden record
/// whose person is marked is a finding (new or seen again by this scan); the
/// rule's open findings no longer in that set resolve. Returns how many resolved.
fn judge_conflicts(
    database: &dyn Database,
    rule: &str,
    severity: &str,
    scan_id: i64,
    finished: i64,
) -> Result<u64, StoreError> {
    // Each forbidden record whose person is marked, once, with the first
    // source that marks them.
    let current = database.query(
        "SELECT f.source, f.record_id, min(f.record_path), min(f.record_kind), min(f.custodian),
                min(m.source)
         FROM conflict_keys f
         JOIN conflict_keys m ON m.rule = f.rule AND m.side = 'marked' AND m.key = f.key
         WHERE f.rule = $1 AND f.side = 'forbidden'
         GROUP BY f.source, f.record_id",
        &[Value::from(rule)],
    )?;
    let mut rows: Vec<Vec<Value>> = Vec::with_capacity(current.len());
    for row in &current {
        let data = tillsyn_core::detail::Detail::Conflict {
            marked_in: row.text(5)?,
        };
        let detail = data.render(tillsyn_core::language::Language::En);
        rows.push(vec![
            Value::from(rule),
            Value::from(row.text(0)?),
            Value::from(row.text(1)?),
            Value::from(row.text(2)?),
            Value::from(row.text(3)?),
            Value::from(row.opt_text(4)?),
            Value::from(severity),
            Value::from(detail),
            Value::from(finished),
            Value::from(scan_id),
            Value::from(data.to_json()),
        ]);
    }
    {
        // One row per (source, record): grouped so above.
        database.insert_many(
            "INSERT INTO findings (rule, source, record_id, record_path, record_kind, custodian,
                 severity, detail, age_days, first_seen, first_seen_scan, last_seen, last_seen_scan,
                 detail_data)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, $10, $9, $10, $11)
             ON CONFLICT (rule, source, record_id) WHERE resolved_at IS NULL DO UPDATE SET
                 record_path = excluded.record_path, custodian = excluded.custodian,
                 severity = excluded.severity, detail = excluded.detail,
                 last_seen = excluded.last_seen, last_seen_scan = excluded.last_seen_scan,
                 detail_data = excluded.detail_data",
            rows,
        )?;
    }
    Ok(database.execute(
        "UPDATE findings SET resolved_at = $2, resolved_scan = $3
         WHERE rule = $1 AND resolved_at IS NULL AND last_seen_scan < $3",
        &[
            Value::from(rule),
            Value::from(finished),
            Value::from(scan_id),
        ],
    )?)
}

#[cfg(test)]
mod tests;
