//! What the monthly report reads from the store (findings open at a moment,
//! counts per month, the scans of a month) and the report outbox.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::db::Value;
use super::{Store, StoreError, to_time};

/// Open at the moment `$1` and counted as broken: first seen before it, not
/// resolved by then, and under no exception in force then.
const OPEN_AT: &str = "first_seen < $1 AND (resolved_at IS NULL OR resolved_at >= $1)
     AND NOT coalesce(excepted_until, 0) > $1";

/// Findings [`Store::open_at`] reads a page.
const OPEN_PAGE: usize = 10_000;

/// A finding as it stood at some moment (open then).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAt {
    /// Rule id.
    pub rule: String,
    /// Source name.
    pub source: String,
    /// Record kind.
    pub record_kind: String,
    /// Record path.
    pub record_path: String,
    /// Custodian, as stored.
    pub custodian: Option<String>,
    /// Severity.
    pub severity: String,
    /// What was measured (English).
    pub detail: String,
    /// The same as data, when the finding has it (JSON).
    pub detail_data: Option<String>,
    /// First seen.
    pub first_seen: DateTime<Utc>,
}

/// One rule's numbers over a run of months.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleHistory {
    /// Open at each of the given moments, in order.
    pub open_at: Vec<u64>,
    /// First seen in the last month (between the last two moments).
    pub new: u64,
    /// Resolved in the last month.
    pub resolved: u64,
}

/// A scan's outcome, for coverage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanSummary {
    /// Source.
    pub source: String,
    /// The unit it scanned (an account, in a fleet); `None` for the whole.
    pub unit: Option<String>,
    /// Status.
    pub status: String,
    /// Finished, if it did.
    pub finished_at: Option<DateTime<Utc>>,
    /// Error kind for failed scans.
    pub error_kind: Option<String>,
}

/// A month's digests, counted (never their content).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DigestCoverage {
    /// Custodians with findings, each to get a digest.
    pub custodians: u64,
    /// Accepted by the mail server.
    pub sent: u64,
    /// Not yet accepted (waiting, or failed and to be tried again).
    pub waiting: u64,
    /// Given up after too many failed attempts.
    pub gave_up: u64,
    /// Custodians without an address.
    pub no_address: u64,
    /// Custodians whose address is outside the organisation's mail domains:
    /// never mailed.
    pub outside_domains: u64,
    /// Findings with no custodian to act on them: none known, or a system
    /// account (`root`, `nobody`, the service's own user, the configured
    /// `ignore_custodians`).
    pub no_custodian: u64,
}

/// How a month's digests were made: what [`Store::digest_month`] records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DigestMonth {
    /// Custodians with findings, each to get a digest.
    pub custodians: u64,
    /// Custodians without an address.
    pub no_address: u64,
    /// Custodians whose address is outside the organisation's domains.
    pub outside_domains: u64,
    /// Findings with no custodian to act on them.
    pub no_custodian: u64,
}

impl Store {
    /// Record how `month`'s digests were made: custodians, and why some
    /// could not get one.
    pub fn digest_month(&mut self, month: &str, made: DigestMonth) -> Result<(), StoreError> {
        let count = |n: u64| Value::from(i64::try_from(n).unwrap_or(i64::MAX));
        self.db().execute(
            "INSERT INTO digest_months (month, custodians, no_address, outside_domains, no_custodian)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (month) DO UPDATE SET custodians = excluded.custodians,
                 no_address = excluded.no_address, outside_domains = excluded.outside_domains,
                 no_custodian = excluded.no_custodian",
            &[
                Value::from(month),
                count(made.custodians),
                count(made.no_address),
                count(made.outside_domains),
                count(made.no_custodian),
            ],
        )?;
        Ok(())
    }

    /// `month`'s digests counted; `None` when none were made.
    pub fn digest_coverage(&self, month: &str) -> Result<Option<DigestCoverage>, StoreError> {
        let months = self.db().query(
            "SELECT custodians, no_address, outside_domains, no_custodian FROM digest_months
             WHERE month = $1",
            &[Value::from(month)],
        )?;
        let Some(counted) = months.first() else {
            return Ok(None);
        };
        let count = |index| counted.int(index).map(|n| u64::try_from(n).unwrap_or(0));
        let sent = self.outbox_counts(super::OutboxKind::Digest, month)?;
        Ok(Some(DigestCoverage {
            custodians: count(0)?,
            sent: sent.sent,
            waiting: sent.waiting,
            gave_up: sent.gave_up,
            no_address: count(1)?,
            outside_domains: count(2)?,
            no_custodian: count(3)?,
        }))
    }

    /// Findings open at `moment` and counted as broken: first seen before it,
    /// not resolved by then, and under no exception in force then. Ordered
    /// by rule (as bytes), then oldest first.
    ///
    /// Read 10,000 at a time in the table's order, each page's rows
    /// made findings before the next is read: a month with hundreds of
    /// thousands open holds them once, not a second time as rows.
    pub fn open_at(&self, moment: DateTime<Utc>) -> Result<Vec<OpenAt>, StoreError> {
        self.open_at_in_pages(moment, OPEN_PAGE)
    }

    /// [`Store::open_at`], `page` findings a read.
    pub(crate) fn open_at_in_pages(
        &self,
        moment: DateTime<Utc>,
        page: usize,
    ) -> Result<Vec<OpenAt>, StoreError> {
        let mut open = Vec::new();
        let mut after = i64::MIN;
        loop {
            let rows = self.db().query(
                &format!(
                    "SELECT id, rule, source, record_kind, record_path, custodian, severity,
                            detail, first_seen, detail_data
                     FROM findings
                     WHERE id > $2 AND {OPEN_AT}
                     ORDER BY id LIMIT {page}"
                ),
                &[Value::from(moment.timestamp()), Value::from(after)],
            )?;
            for row in &rows {
                after = row.int(0)?;
                open.push(OpenAt {
                    rule: row.text(1)?,
                    source: row.text(2)?,
                    record_kind: row.text(3)?,
                    record_path: row.text(4)?,
                    custodian: row.opt_text(5)?,
                    severity: row.text(6)?,
                    detail: row.text(7)?,
                    first_seen: to_time(row.int(8)?),
                    detail_data: row.opt_text(9)?,
                });
            }
            if rows.len() < page {
                break;
            }
        }
        // Stable: findings seen at the same moment stay in the order found.
        open.sort_by(|a, b| {
            a.rule
                .as_bytes()
                .cmp(b.rule.as_bytes())
                .then(a.first_seen.cmp(&b.first_seen))
        });
        Ok(open)
    }

    /// How many findings were open at `moment` (as [`Store::open_at`]
    /// counts them), per rule and custodian.
    pub fn open_counts_at(
        &self,
        moment: DateTime<Utc>,
    ) -> Result<BTreeMap<(String, Option<String>), u64>, StoreError> {
        self.db()
            .query(
                &format!(
                    "SELECT rule, custodian, count(*) FROM findings WHERE {OPEN_AT}
                     GROUP BY rule, custodian"
                ),
                &[Value::from(moment.timestamp())],
            )?
            .iter()
            .map(|row| {
                let count = u64::try_from(row.int(2)?).unwrap_or(0);
                Ok(((row.text(0)?, row.opt_text(1)?), count))
            })
            .collect()
    }

    /// Per rule: how many findings were open and counted as broken (under no
    /// exception in force) at each of `moments` (ascending), and how many were
    /// first seen and resolved between the last two. One pass over the
    /// findings.
    pub fn rule_history(
        &self,
        moments: &[DateTime<Utc>],
    ) -> Result<BTreeMap<String, RuleHistory>, StoreError> {
        let (Some(first), Some(last)) = (moments.first(), moments.last()) else {
            return Ok(BTreeMap::new());
        };
        let previous = moments
            .len()
            .checked_sub(2)
            .map_or(*first, |index| moments[index]);
        let mut columns = Vec::new();
        for moment in moments {
            let at = moment.timestamp();
            columns.push(format!(
                "sum(CASE WHEN first_seen < {at} AND (resolved_at IS NULL OR resolved_at >= {at})
                     AND NOT coalesce(excepted_until, 0) > {at} THEN 1 ELSE 0 END)"
            ));
        }
        let (from, to) = (previous.timestamp(), last.timestamp());
        columns.push(format!(
            "sum(CASE WHEN first_seen >= {from} AND first_seen < {to} THEN 1 ELSE 0 END)"
        ));
        columns.push(format!(
            "sum(CASE WHEN resolved_at IS NOT NULL AND resolved_at >= {from} AND resolved_at < {to}
                 THEN 1 ELSE 0 END)"
        ));
        let sql = format!(
            "SELECT rule, {} FROM findings
             WHERE first_seen < $2 AND (resolved_at IS NULL OR resolved_at >= $1)
             GROUP BY rule",
            columns.join(", ")
        );
        let count = moments.len();
        self.db()
            .query(&sql, &[Value::from(first.timestamp()), Value::from(to)])?
            .iter()
            .map(|row| {
                let counted = |index: usize| -> Result<u64, StoreError> {
                    Ok(row.opt_int(index)?.unwrap_or(0).max(0) as u64)
                };
                let open_at = (0..count)
                    .map(|index| counted(index + 1))
                    .collect::<Result<Vec<u64>, StoreError>>()?;
                Ok((
                    row.text(0)?,
                    RuleHistory {
                        open_at,
                        new: counted(count + 1)?,
                        resolved: counted(count + 2)?,
                    },
                ))
            })
            .collect()
    }

    /// Scans that started in `[from, to)`.
    pub fn scans_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<ScanSummary>, StoreError> {
        self.db()
            .query(
                "SELECT source, status, finished_at, error_kind, unit FROM scans
                 WHERE started_at >= $1 AND started_at < $2 ORDER BY id",
                &[Value::from(from.timestamp()), Value::from(to.timestamp())],
            )?
            .iter()
            .map(|row| {
                Ok(ScanSummary {
                    source: row.text(0)?,
                    status: row.text(1)?,
                    finished_at: row.opt_int(2)?.map(to_time),
                    error_kind: row.opt_text(3)?,
                    unit: row.opt_text(4)?,
                })
            })
            .collect()
    }
}
