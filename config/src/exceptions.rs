//! `[[exceptions]]` as written, and the checks an entry must pass: findings
//! an organisation keeps on purpose, with a reason and an end date. Matching
//! findings against them is the rules layer's.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::rules::PathGlob;

/// The exception id of findings on records their custodian marked as kept (see
/// the IMAP source's `custodian_marks`); no `[[exceptions]]` entry may use it.
pub const CUSTODIAN_MARK_EXCEPTION: &str = "custodian-mark";

/// `[[exceptions]]`: findings kept on purpose.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExceptionConfig {
    /// A short name, shown with every finding it covers (`tvist-2024`).
    pub id: String,
    /// The rule it covers, or `"*"` for every rule.
    pub rule: String,
    /// Sources it covers. Default: every source.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Record-path globs it covers, as in rule `paths` (`Ekonomi/Tvist/**`,
    /// `anna/Behålls/*`). Default: every path.
    #[serde(default)]
    pub paths: Vec<PathGlob>,
    /// Single records, by their path as findings show it. Default: none (the
    /// globs decide).
    #[serde(default)]
    pub records: Vec<String>,
    /// Why it is kept (required): shown with the findings and in the report.
    pub reason: String,
    /// The last day it is in force, `YYYY-MM-DD` (required): from the next
    /// midnight in `daemon.timezone` its findings count again.
    pub until: String,
}

/// Why an `[[exceptions]]` entry is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExceptionError {
    /// No id.
    #[error("`id` is empty")]
    NoId,
    /// The id custodians' marks go under.
    #[error("the id `custodian-mark` is kept for what custodians mark themselves; choose another")]
    Reserved,
    /// No reason: nothing is excepted without one.
    #[error("`reason` is empty: say why it is kept")]
    NoReason,
    /// `until` is not a date.
    #[error("`until` {0:?} is not a date (YYYY-MM-DD)")]
    Until(String),
    /// The globs do not compile together.
    #[error("`paths`: {0}")]
    Globs(String),
}

impl ExceptionConfig {
    /// Check the entry: an id that is not reserved, a reason, an `until` that
    /// is a date, and paths whose globs compile together. Gives the instant
    /// it ends: the midnight after its last day in `timezone`.
    pub fn check(&self, timezone: chrono_tz::Tz) -> Result<DateTime<Utc>, ExceptionError> {
        if self.id.trim().is_empty() {
            return Err(ExceptionError::NoId);
        }
        if self.id == CUSTODIAN_MARK_EXCEPTION {
            return Err(ExceptionError::Reserved);
        }
        if self.reason.trim().is_empty() {
            return Err(ExceptionError::NoReason);
        }
        let mut builder = globset::GlobSetBuilder::new();
        for glob in &self.paths {
            builder.add(glob.glob.clone());
        }
        builder
            .build()
            .map_err(|error| ExceptionError::Globs(error.to_string()))?;
        tillsyn_core::dates::day_end(&self.until, timezone)
            .ok_or_else(|| ExceptionError::Until(self.until.clone()))
    }
}
