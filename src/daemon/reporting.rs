//! The monthly report in the daemon: made at the report schedule's first tick
//! after a month ends, put in the outbox, and delivered; deliveries that fail are
//! tried again with a doubling wait until the server accepts them.
//!
//! At start the reports the daemon missed while it was down are made: every month
//! after the newest one in the outbox whose time has passed (at most a year; on a
//! fresh install only the month just ended). Each month is made and sent once:
//! the outbox keeps it, across restarts.
//!
//! With `[digest]`, each custodian's digest of the month just ended is made at the
//! digest schedule's first tick after the month (the report's by default),
//! once, and delivered through its own outbox in the same loop.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::{Loaded, Shared};
use tillsyn_app::report::Month;
use tillsyn_app::report::mail::prepare;
use tillsyn_app::report::outbox::deliver_due;
use tillsyn_app::runner::with_store;
use tillsyn_store::{AfterFailure, OutboxKind};

/// Longest single sleep before the wall clock is read again.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Make and deliver monthly reports until the daemon stops.
pub async fn report_loop(shared: Arc<Shared>, mut config: watch::Receiver<Arc<Loaded>>) {
    if let Ok(Some(at)) = with_store(&shared.store, |store| {
        store.outbox_last_sent(OutboxKind::Report)
    })
    .await
    {
        shared.metrics.report_sent(at);
    }
    loop {
        if shared.stop.flag.is_cancelled() {
            return;
        }
        let loaded = config.borrow_and_update().clone();
        let report = loaded.engine.config().report.clone();
        let mail = report.as_ref().and_then(|report| report.mail.clone());
        shared.metrics.report_enabled(mail.is_some());
        let (Some(report), Some(mail)) = (report, mail) else {
            // Nothing to send: wait for a reload that configures it.
            tokio::select! {
                changed = config.changed() => if changed.is_err() { return },
                () = shared.stop.flag.cancelled() => return,
            }
            continue;
        };
        let zone = loaded.engine.config().daemon.timezone.0;
        let now = Utc::now();
        let latest = Month::of(now, zone).previous();
        // Every month since the newest one in the outbox (at most a year), or
        // only the month just ended on a fresh install: a daemon that was down
        // over several month ends makes each report it missed.
        let newest = with_store(&shared.store, |store| {
            store.newest_outbox_period(OutboxKind::Report)
        })
        .await
        .ok()
        .flatten()
        .and_then(|month| month.parse::<Month>().ok());
        let mut months = vec![latest];
        while months.len() < 12 && newest.is_some_and(|newest| newest < months[0].previous()) {
            let earlier = months[0].previous();
            months.insert(0, earlier);
        }
        for month in months {
            let due = report
                .schedule
                .next_after(month.end(zone) - chrono::TimeDelta::seconds(1), zone);
            if due.is_none_or(|due| due > now) {
                continue;
            }
            let config = Arc::new(loaded.engine.config().clone());
            match prepare(&config, &shared.store, month, now).await {
                Ok(entry) if entry.sent_at.is_none() && entry.attempts == 0 => {
                    tracing::info!(month = %month, "Monthly report made; sending it.");
                }
                Ok(_) => {}
                Err(error) => tracing::error!(
                    month = %month,
                    error_kind = error.kind(),
                    error = error.loggable().as_deref().unwrap_or("(not logged: may name a person)"),
                    "The monthly report could not be made."
                ),
            }
        }
        let digest_retry = digests(&shared, &loaded, latest, now).await;
        let mut next_retry: Option<DateTime<Utc>> = digest_retry;
        match deliver_due(&mail, &shared.store, OutboxKind::Report, Duration::ZERO).await {
            Ok(delivered) => {
                for key in delivered.sent {
                    tracing::info!(month = %key.period, "Monthly report sent.");
                    shared.metrics.report_sent(Utc::now());
                }
                for (key, error, after) in delivered.failed {
                    shared.metrics.report_delivery_failed();
                    // The server's reply is logged with any address in it
                    // pseudonymised (it may name a recipient).
                    let reply =
                        tillsyn_app::privacy::PersonDisplay::for_config(loaded.engine.config())
                            .map(|display| display.text(&error.to_string()))
                            .unwrap_or_else(|_| {
                                "(not logged: the pseudonym key is unreadable)".into()
                            });
                    match after {
                        AfterFailure::Retry(next) => tracing::warn!(
                            month = %key.period,
                            error_kind = error.kind(),
                            error = %reply,
                            next_attempt = %next.to_rfc3339(),
                            "Monthly report not delivered; it waits in the outbox and is tried again."
                        ),
                        AfterFailure::GaveUp => tracing::error!(
                            month = %key.period,
                            error_kind = error.kind(),
                            error = %reply,
                            attempts = OutboxKind::Report.max_attempts(),
                            "Monthly report not delivered, and given up after too many attempts."
                        ),
                    }
                }
            }
            Err(error) => {
                tracing::error!(
                    error_kind = error.kind(),
                    "The report outbox could not be read."
                )
            }
        }
        if let Ok(Some(report_retry)) = with_store(&shared.store, |store| {
            store.outbox_next_attempt(OutboxKind::Report)
        })
        .await
        {
            next_retry = Some(next_retry.map_or(report_retry, |retry| retry.min(report_retry)));
        }
        let digest_tick = loaded
            .engine
            .config()
            .digest
            .as_ref()
            .and_then(|digest| digest.schedule.as_ref())
            .and_then(|schedule| schedule.next_after(Utc::now(), zone));
        let next_tick = match (report.schedule.next_after(Utc::now(), zone), digest_tick) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let wake = match (next_tick, next_retry) {
            (Some(tick), Some(retry)) => Some(tick.min(retry)),
            (tick, retry) => tick.or(retry),
        };
        let wait = wake
            .map(|wake| (wake - Utc::now()).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(MAX_SLEEP)
            .min(MAX_SLEEP)
            .max(Duration::from_millis(200));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            changed = config.changed() => if changed.is_err() { return },
            () = shared.stop.flag.cancelled() => return,
        }
    }
}

/// With `[digest]`: make the digests of `month` (the month just ended) once
/// its schedule's tick has passed, and deliver what is due. Returns when the
/// next waiting digest is to be tried.
async fn digests(
    shared: &Arc<Shared>,
    loaded: &Loaded,
    month: Month,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    use tillsyn_app::report::digest;
    let settings = loaded.engine.config().digest.as_ref()?;
    let zone = loaded.engine.config().daemon.timezone.0;
    let schedule = settings.schedule.as_ref().or(loaded
        .engine
        .config()
        .report
        .as_ref()
        .map(|report| &report.schedule))?;
    let due = schedule.next_after(month.end(zone) - chrono::TimeDelta::seconds(1), zone);
    if due.is_some_and(|due| due <= now) {
        let config = loaded.engine.config().clone();
        let month_end = month.end(zone);
        let ready = with_store(&shared.store, move |store| {
            Ok(!digest::made(store, month).unwrap_or(true)
                && digest::scanned_since(&config, store, month_end).unwrap_or(false))
        })
        .await;
        let made = match ready {
            Ok(true) => Ok(Some(
                digest::prepare(loaded.engine.config(), &shared.store, month, now).await,
            )),
            Ok(false) => Ok(None),
            Err(error) => Err(error),
        };
        match made {
            Ok(Some(Ok(prepared))) => tracing::info!(
                month = %month,
                custodians = prepared.month.custodians,
                queued = prepared.queued,
                no_address = prepared.month.no_address,
                outside_domains = prepared.month.outside_domains,
                no_custodian = prepared.month.no_custodian,
                "Personal digests made; sending them."
            ),
            Ok(Some(Err(error))) => {
                tracing::error!(month = %month, error = %error, "Personal digests could not be made.")
            }
            Ok(None) => {}
            Err(error) => tracing::error!(error = %error, "Personal digests: the store failed."),
        }
    }
    match digest::deliver_due(loaded.engine.config(), &shared.store).await {
        Ok(delivered) if delivered.sent + delivered.failed + delivered.gave_up > 0 => {
            tracing::info!(
                sent = delivered.sent,
                failed = delivered.failed,
                gave_up = delivered.gave_up,
                "Personal digests delivered; failures wait in the outbox."
            )
        }
        Ok(_) => {}
        Err(error) => tracing::error!(error = %error, "Personal digests could not be sent."),
    }
    with_store(&shared.store, |store| {
        Ok(digest::next_attempt(store).ok().flatten())
    })
    .await
    .ok()
    .flatten()
}
