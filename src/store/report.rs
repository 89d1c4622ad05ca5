//! What the monthly report reads from the store (findings open at a moment,
//! counts per month, the scans of a month) and the report outbox.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::db::Value;
use super::{Store, StoreError, to_time};

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
    /// Status.
    pub status: String,
    /// Finished, if it did.
    pub finished_at: Option<DateTime<Utc>>,
    /// Error kind for failed scans.
    pub error_kind: Option<String>,
}

/// A month's report in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// `YYYY-MM`.
    pub month: String,
    /// Subject line.
    pub subject: String,
    /// The whole message, as sent.
    pub message: Vec<u8>,
    /// When the server accepted it.
    pub sent_at: Option<DateTime<Utc>>,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Not before this.
    pub next_attempt_at: DateTime<Utc>,
}

/// A digest waiting to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestEntry {
    /// `YYYY-MM`.
    pub month: String,
    /// The custodian's pseudonym.
    pub recipient: String,
    /// Where it goes.
    pub address: String,
    /// The message, as it is sent.
    pub message: Vec<u8>,
    /// Delivery attempts so far.
    pub attempts: u32,
}

/// A month's digests, counted (never their content).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DigestCoverage {
    /// Custodians with findings.
    pub custodians: u64,
    /// Accepted by the mail server.
    pub sent: u64,
    /// Not yet accepted (waiting, or failed and to be tried again).
    pub waiting: u64,
    /// Custodians without an address.
    pub no_address: u64,
}

impl Store {
    /// Put `recipient`'s digest of `month` in the outbox unless one is there;
    /// whether it was put.
    pub fn digest_put(
        &mut self,
        month: &str,
        recipient: &str,
        address: &str,
        message: &[u8],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let changed = self.db().execute(
            "INSERT INTO digest_outbox (month, recipient, address, created_at, message, next_attempt_at)
             VALUES ($1, $2, $3, $4, $5, $4)
             ON CONFLICT (month, recipient) DO NOTHING",
            &[
                Value::from(month),
                Value::from(recipient),
                Value::from(address),
                Value::from(now.timestamp()),
                Value::from(message),
            ],
        )?;
        Ok(changed > 0)
    }

    /// Record how many custodians `month` had, and how many without an address.
    pub fn digest_month(
        &mut self,
        month: &str,
        custodians: u64,
        no_address: u64,
    ) -> Result<(), StoreError> {
        self.db().execute(
            "INSERT INTO digest_months (month, custodians, no_address) VALUES ($1, $2, $3)
             ON CONFLICT (month) DO UPDATE SET custodians = excluded.custodians, no_address = excluded.no_address",
            &[
                Value::from(month),
                Value::from(i64::try_from(custodians).unwrap_or(i64::MAX)),
                Value::from(i64::try_from(no_address).unwrap_or(i64::MAX)),
            ],
        )?;
        Ok(())
    }

    /// Digests not sent whose next attempt is due at `now`.
    pub fn digest_pending(&self, now: DateTime<Utc>) -> Result<Vec<DigestEntry>, StoreError> {
        self.db()
            .query(
                "SELECT month, recipient, address, message, attempts FROM digest_outbox
                 WHERE sent_at IS NULL AND message IS NOT NULL AND next_attempt_at <= $1
                 ORDER BY month, recipient",
                &[Value::from(now.timestamp())],
            )?
            .iter()
            .map(|row| {
                Ok(DigestEntry {
                    month: row.text(0)?,
                    recipient: row.text(1)?,
                    address: row.text(2)?,
                    message: row.blob(3)?,
                    attempts: u32::try_from(row.int(4)?).unwrap_or(u32::MAX),
                })
            })
            .collect()
    }

    /// When the earliest unsent digest is to be tried next.
    pub fn digest_next_attempt(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let next = self
            .db()
            .query(
                "SELECT min(next_attempt_at) FROM digest_outbox
                 WHERE sent_at IS NULL AND message IS NOT NULL",
                &[],
            )?
            .first()
            .map(|row| row.opt_int(0))
            .transpose()?
            .flatten();
        Ok(next.map(to_time))
    }

    /// The server took it: sent, and its body dropped.
    pub fn digest_sent(
        &mut self,
        month: &str,
        recipient: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.db().execute(
            "UPDATE digest_outbox SET sent_at = $3, attempts = attempts + 1, last_error = NULL,
                 message = NULL
             WHERE month = $1 AND recipient = $2",
            &[
                Value::from(month),
                Value::from(recipient),
                Value::from(at.timestamp()),
            ],
        )?;
        Ok(())
    }

    /// It failed: why, and when to try again.
    pub fn digest_failed(
        &mut self,
        month: &str,
        recipient: &str,
        error: &str,
        next: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.db().execute(
            "UPDATE digest_outbox SET attempts = attempts + 1, last_error = $3, next_attempt_at = $4
             WHERE month = $1 AND recipient = $2",
            &[
                Value::from(month),
                Value::from(recipient),
                Value::from(error),
                Value::from(next.timestamp()),
            ],
        )?;
        Ok(())
    }

    /// The unsent digests of `month`: recipient pseudonym and message.
    pub fn digest_messages(&self, month: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.db()
            .query(
                "SELECT recipient, message FROM digest_outbox
                 WHERE month = $1 AND message IS NOT NULL ORDER BY recipient",
                &[Value::from(month)],
            )?
            .iter()
            .map(|row| Ok((row.text(0)?, row.blob(1)?)))
            .collect()
    }

    /// `month`'s digests counted; `None` when none were made.
    pub fn digest_coverage(&self, month: &str) -> Result<Option<DigestCoverage>, StoreError> {
        let months = self.db().query(
            "SELECT custodians, no_address FROM digest_months WHERE month = $1",
            &[Value::from(month)],
        )?;
        let Some(counted) = months.first() else {
            return Ok(None);
        };
        let (custodians, no_address) = (counted.int(0)?, counted.int(1)?);
        let sums = self.db().query(
            "SELECT CAST(coalesce(sum(CASE WHEN sent_at IS NULL THEN 0 ELSE 1 END), 0) AS BIGINT),
                    CAST(coalesce(sum(CASE WHEN sent_at IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT)
             FROM digest_outbox WHERE month = $1",
            &[Value::from(month)],
        )?;
        let (sent, waiting) = match sums.first() {
            Some(row) => (row.int(0)?, row.int(1)?),
            None => (0, 0),
        };
        Ok(Some(DigestCoverage {
            custodians: custodians as u64,
            sent: sent as u64,
            waiting: waiting as u64,
            no_address: no_address as u64,
        }))
    }

    /// Findings open at `moment` and counted as broken: first seen before it,
    /// not resolved by then, and under no exception in force then.
    pub fn open_at(&self, moment: DateTime<Utc>) -> Result<Vec<OpenAt>, StoreError> {
        self.db()
            .query(
            "SELECT rule, source, record_kind, record_path, custodian, severity, detail, first_seen,
                    detail_data
             FROM findings
             WHERE first_seen < $1 AND (resolved_at IS NULL OR resolved_at >= $1)
                 AND NOT coalesce(excepted_until, 0) > $1
             ORDER BY rule, first_seen, id",
                &[Value::from(moment.timestamp())],
            )?
            .iter()
            .map(|row| {
                Ok(OpenAt {
                    rule: row.text(0)?,
                    source: row.text(1)?,
                    record_kind: row.text(2)?,
                    record_path: row.text(3)?,
                    custodian: row.opt_text(4)?,
                    severity: row.text(5)?,
                    detail: row.text(6)?,
                    first_seen: to_time(row.int(7)?),
                    detail_data: row.opt_text(8)?,
                })
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
                "SELECT source, status, finished_at, error_kind FROM scans
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
                })
            })
            .collect()
    }

    /// The outbox entry of `month`.
    pub fn outbox(&self, month: &str) -> Result<Option<OutboxEntry>, StoreError> {
        self.db()
            .query(
                "SELECT month, subject, message, sent_at, attempts, last_error, next_attempt_at
                 FROM report_outbox WHERE month = $1",
                &[Value::from(month)],
            )?
            .first()
            .map(outbox_row)
            .transpose()
    }

    /// Put `month`'s rendered report in the outbox, unless one is there already
    /// (then that one stays, sent or not). Returns the entry the outbox holds.
    pub fn outbox_put(
        &mut self,
        month: &str,
        subject: &str,
        message: &[u8],
        now: DateTime<Utc>,
    ) -> Result<OutboxEntry, StoreError> {
        self.db().execute(
            "INSERT INTO report_outbox (month, created_at, subject, message, next_attempt_at)
             VALUES ($1, $2, $3, $4, $2)
             ON CONFLICT (month) DO NOTHING",
            &[
                Value::from(month),
                Value::from(now.timestamp()),
                Value::from(subject),
                Value::from(message),
            ],
        )?;
        self.outbox(month)?
            .ok_or(StoreError::Missing("report_outbox"))
    }

    /// Months whose report waits to be sent, oldest first.
    pub fn outbox_pending(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        self.db()
            .query(
                "SELECT month, subject, message, sent_at, attempts, last_error, next_attempt_at
                 FROM report_outbox WHERE sent_at IS NULL ORDER BY month",
                &[],
            )?
            .iter()
            .map(outbox_row)
            .collect()
    }

    /// Claim `month`'s unsent report for this process until `until`, before
    /// sending it: true when this process may send it now, false when it was
    /// sent meanwhile or another process holds an unexpired claim. One write, so
    /// of two processes racing, exactly one wins.
    pub fn outbox_claim(
        &mut self,
        month: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let changed = self.db().execute(
            "UPDATE report_outbox SET claimed_by = $2, claimed_until = $3
             WHERE month = $1 AND sent_at IS NULL
               AND (claimed_until IS NULL OR claimed_until < $4 OR claimed_by = $2)",
            &[
                Value::from(month),
                Value::from(self.holder.as_str()),
                Value::from(until.timestamp()),
                Value::from(now.timestamp()),
            ],
        )?;
        Ok(changed == 1)
    }

    /// The server accepted `month`'s report.
    pub fn outbox_sent(&mut self, month: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.db().execute(
            "UPDATE report_outbox SET sent_at = $2, attempts = attempts + 1, last_error = NULL,
                 claimed_by = NULL, claimed_until = NULL
             WHERE month = $1 AND sent_at IS NULL",
            &[Value::from(month), Value::from(at.timestamp())],
        )?;
        Ok(())
    }

    /// A delivery of `month`'s report failed; try again from `next`.
    pub fn outbox_failed(
        &mut self,
        month: &str,
        error: &str,
        next: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.db().execute(
            "UPDATE report_outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3,
                 claimed_by = NULL, claimed_until = NULL
             WHERE month = $1 AND sent_at IS NULL",
            &[
                Value::from(month),
                Value::from(error),
                Value::from(next.timestamp()),
            ],
        )?;
        Ok(())
    }

    /// The newest month in the outbox, sent or not.
    pub fn newest_outbox_month(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .db()
            .query("SELECT max(month) FROM report_outbox", &[])?
            .first()
            .map(|row| row.opt_text(0))
            .transpose()?
            .flatten())
    }

    /// When a report was last accepted by the mail server.
    pub fn last_report_sent(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .db()
            .query("SELECT max(sent_at) FROM report_outbox", &[])?
            .first()
            .map(|row| row.opt_int(0))
            .transpose()?
            .flatten()
            .map(to_time))
    }
}

fn outbox_row(row: &super::db::Row) -> Result<OutboxEntry, StoreError> {
    Ok(OutboxEntry {
        month: row.text(0)?,
        subject: row.text(1)?,
        message: row.blob(2)?,
        sent_at: row.opt_int(3)?.map(to_time),
        attempts: u32::try_from(row.int(4)?).unwrap_or(u32::MAX),
        last_error: row.opt_text(5)?,
        next_attempt_at: to_time(row.int(6)?),
    })
}
