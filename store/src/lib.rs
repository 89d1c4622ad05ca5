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

mod conflicts;
pub mod db;
mod findings;
pub mod fleet;
mod identities;
mod identity_index;
mod leases;
mod memory;
mod migrations;
mod model;
mod open;
mod outbox;
mod report;
mod retention;
mod scans;
mod scope;

pub use model::*;
pub use outbox::{AfterFailure, NewOutboxEntry, OutboxCounts, OutboxEntry, OutboxKey, OutboxKind};
pub use report::{DigestCoverage, DigestMonth, OpenAt, RuleHistory, ScanSummary};

use std::path::PathBuf;
pub use tillsyn_core::status::ScanStatus;

use chrono::{DateTime, Utc};
use db::Database;

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
    /// The store's database, in the SQL both engines speak ([`db`]).
    fn db(&self) -> &dyn Database {
        &*self.database
    }

    /// Schema version in use.
    pub fn schema_version(&self) -> Result<usize, StoreError> {
        Ok(self.db().schema_version()?)
    }

    /// This process's name in leases and claims.
    pub fn holder(&self) -> &str {
        &self.holder
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod upgrade_tests;
