//! Delivering what the outbox holds, one way for every kind of mail: the
//! monthly report and the custodians' digests.
//!
//! Each message is claimed in the store before it is sent, so of several
//! processes trying at once (a fleet's instances, the daemon and `tillsyn
//! report --send` or `tillsyn digest --send`) exactly one sends it. The claim
//! lasts long enough for every SMTP step to time out once; a crashed sender's
//! claim runs out after it. A refused or failed delivery is tried again after
//! a doubling wait (from `[report] retry_seconds`, at most an hour), until
//! the kind's [`OutboxKind::max_attempts`]: then it is given up and counted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tillsyn_core::backoff::Backoff;

use super::mail::{MailError, deliver};
use crate::runner::with_store;
use tillsyn_config::report::MailConfig;
use tillsyn_store::{AfterFailure, OutboxEntry, OutboxKey, OutboxKind, Store};

/// Longest wait between two delivery attempts.
const MAX_RETRY: Duration = Duration::from_secs(3600);

/// How one delivery attempt went.
#[derive(Debug)]
pub enum Delivery {
    /// The server accepted it.
    Sent,
    /// It failed: it waits for its next attempt, or was given up.
    Failed(MailError, AfterFailure),
    /// Another process claimed it first (and is sending it, or has): nothing
    /// was sent from here.
    Claimed,
}

/// What one round of deliveries did.
#[derive(Debug, Default)]
pub struct Delivered {
    /// Accepted by the server.
    pub sent: Vec<OutboxKey>,
    /// Refused or not reached, with the error and what happens next.
    pub failed: Vec<(OutboxKey, MailError, AfterFailure)>,
    /// Claimed by another process.
    pub elsewhere: u64,
}

/// The wait after a delivery's `failures`th failure: `retry_seconds`,
/// doubling, at most an hour.
pub fn backoff(mail: &MailConfig, failures: u32) -> Duration {
    Backoff::new(Duration::from_secs(mail.retry_seconds), MAX_RETRY).after(failures)
}

/// Try to deliver `entry` and record how it went. The report goes to the
/// report's recipients, a digest to its own address only. The error is the
/// store's; the mail server's is in [`Delivery::Failed`].
pub async fn deliver_entry(
    mail: &MailConfig,
    store: &Arc<Mutex<Store>>,
    entry: &OutboxEntry,
) -> Result<Delivery, MailError> {
    let hold = Duration::from_secs(mail.smtp.timeout_seconds.saturating_mul(4) + 60);
    let key = entry.key.clone();
    let claimed = with_store(store, {
        let key = key.clone();
        move |store| store.outbox_claim(&key, hold)
    })
    .await?;
    if !claimed {
        return Ok(Delivery::Claimed);
    }
    let mut envelope = mail.clone();
    if let Some(address) = &entry.address {
        envelope.recipients = vec![address.clone()];
    }
    match deliver(&envelope, &entry.message).await {
        Ok(()) => {
            with_store(store, move |store| store.outbox_sent(&key)).await?;
            Ok(Delivery::Sent)
        }
        Err(error) => {
            // The server's words name the server and perhaps a recipient;
            // the store keeps them, output pseudonymises what it shows.
            let text = error.to_string();
            let wait = backoff(mail, entry.attempts.saturating_add(1));
            let after =
                with_store(store, move |store| store.outbox_failed(&key, &text, wait)).await?;
            Ok(Delivery::Failed(error, after))
        }
    }
}

/// Deliver every message of `kind` that is due, `pause` between two sends
/// (a digest round is paced; the report is one message).
pub async fn deliver_due(
    mail: &MailConfig,
    store: &Arc<Mutex<Store>>,
    kind: OutboxKind,
    pause: Duration,
) -> Result<Delivered, MailError> {
    let due = with_store(store, move |store| store.outbox_waiting(kind, true)).await?;
    let mut delivered = Delivered::default();
    for (index, entry) in due.into_iter().enumerate() {
        if index > 0 && !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        match deliver_entry(mail, store, &entry).await? {
            Delivery::Sent => delivered.sent.push(entry.key),
            Delivery::Failed(error, after) => delivered.failed.push((entry.key, error, after)),
            Delivery::Claimed => delivered.elsewhere += 1,
        }
    }
    Ok(delivered)
}
