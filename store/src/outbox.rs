//! The outbox: every mail tillsyn sends (the monthly report, each custodian's
//! digest) is stored, finished, before its first attempt, and sent from here.
//!
//! One table and one life for both kinds:
//! - **put** once per kind, period and recipient; a second put of the same
//!   keeps the first (a restart or a second process never makes it twice);
//! - **claim** before sending, for long enough to send it: of several
//!   processes (a fleet, the daemon and `tillsyn report --send`) exactly one
//!   holds the claim, and the others leave it;
//! - **sent** once the server accepted it (a digest's body is dropped then:
//!   it was its custodian's to read, not ours to keep), or **failed**, to be
//!   tried again after a wait, until [`OutboxKind::max_attempts`] attempts
//!   have failed: then it is given up, counted, and never tried again;
//! - **pruned** by retention once sent or given up.
//!
//! Claims, waits and sent times are the database's clock
//! ([`super::db::now_seconds`]), so hosts whose clocks disagree never take
//! each other's claims.

use chrono::{DateTime, Utc};

use super::db::{self, Value};
use super::{Store, StoreError, database_now, to_time};

/// What a message in the outbox is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OutboxKind {
    /// The monthly report, to the report's recipients.
    Report,
    /// One custodian's monthly digest.
    Digest,
}

impl OutboxKind {
    /// The store's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxKind::Report => "report",
            OutboxKind::Digest => "digest",
        }
    }

    /// Failed attempts after which a message is given up: a report after 72
    /// (about three days, at most an hour apart), a digest after 8 (a few
    /// hours): a digest that keeps failing is not retried for ever.
    pub fn max_attempts(self) -> u32 {
        match self {
            OutboxKind::Report => 72,
            OutboxKind::Digest => 8,
        }
    }
}

/// Which message: its kind, period (`YYYY-MM`) and recipient (`""` for the
/// report, the custodian's pseudonym for a digest).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutboxKey {
    /// Report or digest.
    pub kind: OutboxKind,
    /// The month it is for.
    pub period: String,
    /// Whose it is.
    pub recipient: String,
}

impl OutboxKey {
    /// The monthly report of `period`.
    pub fn report(period: &str) -> OutboxKey {
        OutboxKey {
            kind: OutboxKind::Report,
            period: period.to_owned(),
            recipient: String::new(),
        }
    }

    /// The digest of `period` for the custodian whose pseudonym is
    /// `recipient`.
    pub fn digest(period: &str, recipient: &str) -> OutboxKey {
        OutboxKey {
            kind: OutboxKind::Digest,
            period: period.to_owned(),
            recipient: recipient.to_owned(),
        }
    }

    fn values(&self) -> [Value; 3] {
        [
            Value::from(self.kind.as_str()),
            Value::from(self.period.as_str()),
            Value::from(self.recipient.as_str()),
        ]
    }
}

/// A message in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Which.
    pub key: OutboxKey,
    /// Where it goes: a digest's address; `None` for the report, which goes
    /// to the report's recipients.
    pub address: Option<String>,
    /// Subject line.
    pub subject: String,
    /// The whole message, as sent; empty once a digest was sent.
    pub message: Vec<u8>,
    /// When the server accepted it.
    pub sent_at: Option<DateTime<Utc>>,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Not before this.
    pub next_attempt_at: DateTime<Utc>,
    /// When it was given up after too many failed attempts.
    pub gave_up_at: Option<DateTime<Utc>>,
}

/// A new message for the outbox.
#[derive(Debug, Clone, Copy)]
pub struct NewOutboxEntry<'a> {
    /// Which.
    pub key: &'a OutboxKey,
    /// A digest's address; `None` for the report.
    pub address: Option<&'a str>,
    /// Subject line.
    pub subject: &'a str,
    /// The whole message, as it is to be sent.
    pub message: &'a [u8],
}

/// How a failed attempt left a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// It waits, and is tried again from then.
    Retry(DateTime<Utc>),
    /// It failed [`OutboxKind::max_attempts`] times and is given up.
    GaveUp,
}

/// One kind of message of one period, counted (never their content).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct OutboxCounts {
    /// Accepted by the mail server.
    pub sent: u64,
    /// Not yet accepted (waiting, or failed and to be tried again).
    pub waiting: u64,
    /// Given up after too many failed attempts.
    pub gave_up: u64,
}

const COLUMNS: &str = "kind, period, recipient, address, subject, message, sent_at, attempts,
                       last_error, next_attempt_at, gave_up_at";

impl Store {
    /// Put a message in the outbox unless one with its key is there (then
    /// that one stays, sent or not); whether it was put. It is due at once.
    pub fn outbox_put(&mut self, entry: NewOutboxEntry<'_>) -> Result<bool, StoreError> {
        let now = db::now_seconds(self.db().engine());
        let [kind, period, recipient] = entry.key.values();
        let changed = self.db().execute(
            &format!(
                "INSERT INTO outbox (kind, period, recipient, address, subject, created_at, message,
                                     next_attempt_at)
                 VALUES ($1, $2, $3, $4, $5, {now}, $6, {now})
                 ON CONFLICT (kind, period, recipient) DO NOTHING"
            ),
            &[
                kind,
                period,
                recipient,
                Value::from(entry.address),
                Value::from(entry.subject),
                Value::from(entry.message),
            ],
        )?;
        Ok(changed > 0)
    }

    /// The message with `key`, if the outbox has it.
    pub fn outbox_entry(&self, key: &OutboxKey) -> Result<Option<OutboxEntry>, StoreError> {
        self.db()
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM outbox WHERE kind = $1 AND period = $2 AND recipient = $3"
                ),
                &key.values(),
            )?
            .first()
            .map(entry_row)
            .transpose()
    }

    /// The messages of `kind` waiting to be sent (not sent, not given up),
    /// oldest period first; `due_only` keeps those whose next attempt is due
    /// now by the database's clock.
    pub fn outbox_waiting(
        &self,
        kind: OutboxKind,
        due_only: bool,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let due = if due_only {
            format!(
                " AND next_attempt_at <= {}",
                db::now_seconds(self.db().engine())
            )
        } else {
            String::new()
        };
        self.db()
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM outbox
                     WHERE kind = $1 AND sent_at IS NULL AND gave_up_at IS NULL
                       AND message IS NOT NULL{due}
                     ORDER BY period, recipient"
                ),
                &[Value::from(kind.as_str())],
            )?
            .iter()
            .map(entry_row)
            .collect()
    }

    /// When the earliest waiting message of `kind` is to be tried next.
    pub fn outbox_next_attempt(
        &self,
        kind: OutboxKind,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let next = self
            .db()
            .query(
                "SELECT min(next_attempt_at) FROM outbox
                 WHERE kind = $1 AND sent_at IS NULL AND gave_up_at IS NULL AND message IS NOT NULL",
                &[Value::from(kind.as_str())],
            )?
            .first()
            .map(|row| row.opt_int(0))
            .transpose()?
            .flatten();
        Ok(next.map(to_time))
    }

    /// Claim the message with `key` for this process for `hold`, before
    /// sending it: true when this process may send it now; false when it was
    /// sent or given up meanwhile, or another process holds an unexpired
    /// claim. One write, so of several processes racing exactly one wins.
    pub fn outbox_claim(
        &mut self,
        key: &OutboxKey,
        hold: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let now = db::now_seconds(self.db().engine());
        let [kind, period, recipient] = key.values();
        let changed = self.db().execute(
            &format!(
                "UPDATE outbox SET claimed_by = $4, claimed_until = {now} + $5
                 WHERE kind = $1 AND period = $2 AND recipient = $3
                   AND sent_at IS NULL AND gave_up_at IS NULL
                   AND (claimed_until IS NULL OR claimed_until < {now} OR claimed_by = $4)"
            ),
            &[
                kind,
                period,
                recipient,
                Value::from(self.holder.as_str()),
                Value::from(i64::try_from(hold.as_secs()).unwrap_or(i64::MAX).max(1)),
            ],
        )?;
        Ok(changed == 1)
    }

    /// The server accepted the message with `key`: sent now. A digest's body
    /// is dropped.
    pub fn outbox_sent(&mut self, key: &OutboxKey) -> Result<(), StoreError> {
        let now = db::now_seconds(self.db().engine());
        let drop_body = if key.kind == OutboxKind::Digest {
            ", message = NULL"
        } else {
            ""
        };
        let [kind, period, recipient] = key.values();
        self.db().execute(
            &format!(
                "UPDATE outbox SET sent_at = {now}, attempts = attempts + 1, last_error = NULL,
                     claimed_by = NULL, claimed_until = NULL{drop_body}
                 WHERE kind = $1 AND period = $2 AND recipient = $3 AND sent_at IS NULL"
            ),
            &[kind, period, recipient],
        )?;
        Ok(())
    }

    /// An attempt to send the message with `key` failed with `error` (the
    /// server's words, never the message): it is tried again `wait` from
    /// now, or given up once it has failed [`OutboxKind::max_attempts`]
    /// times.
    pub fn outbox_failed(
        &mut self,
        key: &OutboxKey,
        error: &str,
        wait: std::time::Duration,
    ) -> Result<AfterFailure, StoreError> {
        let [kind, period, recipient] = key.values();
        let max = i64::from(key.kind.max_attempts());
        let wait = i64::try_from(wait.as_secs()).unwrap_or(i64::MAX).max(1);
        db::transaction(self.db(), true, |db| {
            let now = database_now(db)?;
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $4,
                     next_attempt_at = $5, claimed_by = NULL, claimed_until = NULL,
                     gave_up_at = CASE WHEN attempts + 1 >= CAST($6 AS BIGINT)
                                       THEN CAST($7 AS BIGINT) ELSE NULL END
                 WHERE kind = $1 AND period = $2 AND recipient = $3 AND sent_at IS NULL",
                &[
                    kind.clone(),
                    period.clone(),
                    recipient.clone(),
                    Value::from(error),
                    Value::from(now.saturating_add(wait)),
                    Value::from(max),
                    Value::from(now),
                ],
            )?;
            let gave_up = db
                .query(
                    "SELECT gave_up_at FROM outbox WHERE kind = $1 AND period = $2 AND recipient = $3",
                    &[kind, period, recipient],
                )?
                .first()
                .map(|row| row.opt_int(0))
                .transpose()?
                .flatten()
                .is_some();
            Ok(if gave_up {
                AfterFailure::GaveUp
            } else {
                AfterFailure::Retry(to_time(now.saturating_add(wait)))
            })
        })
    }

    /// The messages of `kind` and `period`, counted.
    pub fn outbox_counts(
        &self,
        kind: OutboxKind,
        period: &str,
    ) -> Result<OutboxCounts, StoreError> {
        let rows = self.db().query(
            "SELECT CAST(coalesce(sum(CASE WHEN sent_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT),
                    CAST(coalesce(sum(CASE WHEN sent_at IS NULL AND gave_up_at IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT),
                    CAST(coalesce(sum(CASE WHEN sent_at IS NULL AND gave_up_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT)
             FROM outbox WHERE kind = $1 AND period = $2",
            &[Value::from(kind.as_str()), Value::from(period)],
        )?;
        let Some(row) = rows.first() else {
            return Ok(OutboxCounts::default());
        };
        let count = |index| row.int(index).map(|n| u64::try_from(n).unwrap_or(0));
        Ok(OutboxCounts {
            sent: count(0)?,
            waiting: count(1)?,
            gave_up: count(2)?,
        })
    }

    /// The unsent messages of `kind` and `period`: recipient and message.
    pub fn outbox_messages(
        &self,
        kind: OutboxKind,
        period: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.db()
            .query(
                "SELECT recipient, message FROM outbox
                 WHERE kind = $1 AND period = $2 AND sent_at IS NULL AND message IS NOT NULL
                 ORDER BY recipient",
                &[Value::from(kind.as_str()), Value::from(period)],
            )?
            .iter()
            .map(|row| Ok((row.text(0)?, row.blob(1)?)))
            .collect()
    }

    /// The newest period of `kind` in the outbox, sent or not.
    pub fn newest_outbox_period(&self, kind: OutboxKind) -> Result<Option<String>, StoreError> {
        Ok(self
            .db()
            .query(
                "SELECT max(period) FROM outbox WHERE kind = $1",
                &[Value::from(kind.as_str())],
            )?
            .first()
            .map(|row| row.opt_text(0))
            .transpose()?
            .flatten())
    }

    /// When a message of `kind` was last accepted by the mail server.
    pub fn outbox_last_sent(&self, kind: OutboxKind) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .db()
            .query(
                "SELECT max(sent_at) FROM outbox WHERE kind = $1",
                &[Value::from(kind.as_str())],
            )?
            .first()
            .map(|row| row.opt_int(0))
            .transpose()?
            .flatten()
            .map(to_time))
    }
}

fn kind_of(text: &str) -> Result<OutboxKind, StoreError> {
    match text {
        "report" => Ok(OutboxKind::Report),
        "digest" => Ok(OutboxKind::Digest),
        _ => Err(StoreError::Missing("outbox kind")),
    }
}

fn entry_row(row: &db::Row) -> Result<OutboxEntry, StoreError> {
    Ok(OutboxEntry {
        key: OutboxKey {
            kind: kind_of(&row.text(0)?)?,
            period: row.text(1)?,
            recipient: row.text(2)?,
        },
        address: row.opt_text(3)?,
        subject: row.text(4)?,
        message: row.opt_blob(5)?.unwrap_or_default(),
        sent_at: row.opt_int(6)?.map(to_time),
        attempts: u32::try_from(row.int(7)?).unwrap_or(u32::MAX),
        last_error: row.opt_text(8)?,
        next_attempt_at: to_time(row.int(9)?),
        gave_up_at: row.opt_int(10)?.map(to_time),
    })
}
