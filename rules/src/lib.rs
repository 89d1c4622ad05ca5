//! The rules engine: which records a rule looks at, and whether a record breaks it.
//!
//! Rules see only [`Record`]s, never a protocol type. A [`RuleSet`] is compiled once
//! from the config; [`RuleSet::for_source`] picks the rules that can apply to one
//! source and what they need from it (the scan plan), and
//! [`SourceRules::evaluate`] checks one record against them.
//!
//! Kinds:
//! - `max_age`: kept longer than allowed, counted from a timestamp, optionally from
//!   the end of the fiscal year it falls in, plus a grace. With `date:NAME` the clock
//!   starts at an event (a position filled) and records without it are not due.
//! - `max_recipients`: a message copied to more people than allowed, own domains
//!   excluded.
//! - `max_interval`: a second event late after a first, or still missing once the
//!   limit has passed ("incidents reported within 72 hours of detection").
//! - `contains`: personal data inside a record (a personnummer in a mail body),
//!   as the detectors found it, at a minimum confidence and count.

pub mod checked;
mod checks;
pub mod coverage;
pub mod exceptions;
pub mod identity;
#[cfg(test)]
mod properties;
pub mod register;
mod set;
mod source;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use tillsyn_core::detail;

use chrono::{DateTime, Datelike, Utc};
use globset::GlobSet;
use tillsyn_connectors::Record;

use tillsyn_config::rules::{Check, RuleConfig};

/// A rule with its globs compiled.
#[derive(Debug)]
pub struct CompiledRule {
    /// The rule as configured.
    pub config: RuleConfig,
    paths: GlobSet,
    exclude: GlobSet,
    /// For `conflict` rules: the `marked_by` globs.
    marked_paths: GlobSet,
    marked_exclude: GlobSet,
}

/// Which side of a `conflict` rule a record is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictSide {
    /// It marks a person (an opt-out).
    Marked,
    /// It must not exist for a marked person (a list membership).
    Forbidden,
}

impl ConflictSide {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictSide::Marked => "marked",
            ConflictSide::Forbidden => "forbidden",
        }
    }
}

/// A record's part in a `conflict` rule: which rule, which side, whose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictKey {
    /// Rule id.
    pub rule: String,
    /// Side.
    pub side: ConflictSide,
    /// The keyed hash of the person's key (trimmed and compared as
    /// directories compare values), in hex: the store never holds the
    /// address itself.
    pub key: String,
}

/// Why rules could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// A rule's path globs.
    #[error("rule {rule:?}: cannot compile its path globs: {source}")]
    Globs {
        /// The rule.
        rule: String,
        /// Why.
        #[source]
        source: globset::Error,
    },
    /// The detectors of `contains` rules.
    #[error(transparent)]
    Detectors(#[from] tillsyn_detectors::BuildError),
}

/// All configured rules, compiled.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Arc<CompiledRule>>,
    timezone: chrono_tz::Tz,
    /// The detectors, when a `contains` rule needs them.
    detectors: Option<Arc<tillsyn_detectors::DetectorSet>>,
    /// `[content]` limits.
    limits: tillsyn_config::ContentConfig,
    /// Hashes what the detectors find (see [`RuleSet::with_identity_key`]).
    identity: Option<tillsyn_core::identity::IdentityKey>,
    /// `[identity]`.
    identity_config: tillsyn_config::IdentityConfig,
    /// Each source's `identifiers`.
    identifiers: std::collections::HashMap<String, std::collections::BTreeMap<String, String>>,
    /// `[erasure] register`.
    erasure_register: Option<std::path::PathBuf>,
    /// The identifier kinds the config knows: an erasure request of another
    /// is refused.
    erasure_kinds: Arc<std::collections::BTreeSet<String>>,
    /// `[erasure.source]`.
    erasure_source: Option<tillsyn_config::ErasureSource>,
    /// `[[exceptions]]`.
    exceptions: Arc<crate::exceptions::Exceptions>,
}

/// The rules that apply to one source, and what they need from it.
#[derive(Debug, Clone)]
pub struct SourceRules {
    rules: Vec<Arc<CompiledRule>>,
    timezone: chrono_tz::Tz,
    detectors: Option<Arc<tillsyn_detectors::DetectorSet>>,
    limits: tillsyn_config::ContentConfig,
    identity: Option<tillsyn_core::identity::IdentityKey>,
    identity_config: tillsyn_config::IdentityConfig,
    identifiers: std::collections::BTreeMap<String, String>,
    /// Erasure requests (keyed hash → when requested), for `erased` rules.
    erasures: Arc<Erasures>,
    /// When this source's records are erasure requests: how to read them.
    erasure_source: Option<tillsyn_config::ErasureSource>,
    /// The identifier kinds the config knows (a request of another is no
    /// request).
    erasure_kinds: Arc<std::collections::BTreeSet<String>>,
    /// Whether any rule reads mail participants, or the identity index takes
    /// mail addresses.
    pub participants: bool,
}

/// How many of a source's rules have their checked records counted
/// ([`SourceRules::checking`]): one bit each in a word per record.
pub const CHECKED_RULES: usize = 64;

/// Today in `zone`, for personnummer centuries.
pub fn today(zone: chrono_tz::Tz, now: DateTime<Utc>) -> tillsyn_detectors::Today {
    let local = now.with_timezone(&zone);
    tillsyn_detectors::Today {
        year: u32::try_from(local.year()).unwrap_or(2026),
        month: local.month(),
        day: local.day(),
    }
}

/// Erasure requests as `erased` rules see them: keyed hash → when requested.
pub type Erasures = std::collections::HashMap<tillsyn_core::identity::IdentityHash, DateTime<Utc>>;

/// A record (or its mailbox folder) that still holds an identifier whose
/// erasure is overdue.
#[derive(Debug, Clone)]
pub struct Unerased {
    /// The `erased` rule.
    pub rule: Arc<CompiledRule>,
    /// Where: the record's id, path and kind (a mailbox's folder when it is
    /// the mailbox's own account).
    pub record_id: String,
    /// Record path.
    pub record_path: String,
    /// Record kind.
    pub record_kind: &'static str,
    /// Days since the earliest overdue request.
    pub age_days: i64,
    /// What, as data, without the identifier.
    pub data: detail::Detail,
}

/// A promise that governs a record, as the subject locator shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Governing {
    /// Rule id.
    pub rule: String,
    /// The quoted promise.
    pub policy: String,
    /// When the policy says the record must be gone (`max_age` rules whose
    /// timestamp the record has).
    pub gone_by: Option<DateTime<Utc>>,
    /// The rule also asks for attributes of the record, not checked here: it
    /// governs the record if those hold.
    pub conditional: bool,
}

/// One broken rule on one record.
#[derive(Debug, Clone)]
pub struct Violation {
    /// The rule.
    pub rule: Arc<CompiledRule>,
    /// Whole days since the rule's timestamp (for mail: since received), if known.
    pub age_days: Option<i64>,
    /// What was measured, in words (English), without personal data.
    pub detail: String,
    /// The same as data, to be read in another language.
    pub data: detail::Detail,
}

impl Violation {
    /// Whether the record's custodian marked it as kept on purpose and the rule
    /// takes such a mark: age rules do (a custodian may keep what they still
    /// need); a mail copied too widely or data where it must not be is not
    /// made right by a mark.
    pub fn custodian_marked(&self, record: &Record) -> bool {
        matches!(self.rule.config.check, Check::MaxAge(_))
            && record
                .attributes
                .contains_key(tillsyn_connectors::CUSTODIAN_MARK)
    }
}
