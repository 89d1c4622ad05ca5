//! What a caller does when another process holds the work it wants to scan:
//! one [`Contention`] per caller, applied in one place.
//!
//! - `tillsyn scan --wait` waits until the other process is done;
//! - `tillsyn scan`, the demo and the daemon's scheduler skip the source (the
//!   daemon counts it in `tillsyn_scans_skipped_total`);
//! - a fleet's instance holds the unit a moment before giving it back, so a
//!   unit that cannot be scanned now (another process scanning it, the store
//!   failing, the lease lost) is not claimed again at once.

use std::time::Duration;

use chrono::Utc;
use tillsyn_store::StoreError;

use super::{Job, RunError, Runner, ScanOutcome, Source};

/// What to do when another process holds the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contention {
    /// Try again every `poll` until the other process is done (or the runner
    /// is stopped).
    Wait {
        /// Pause between attempts.
        poll: Duration,
    },
    /// Do not scan; report it as [`Ran::Busy`].
    Skip,
    /// Like `Skip`, but after any scan that did not run or did not finish
    /// (busy, store failing, lease lost), keep the work this long (or until
    /// the runner is stopped) before returning.
    Hold(Duration),
}

/// What [`Runner::run`] did.
#[derive(Debug)]
pub enum Ran {
    /// The scan ran: its outcome, whatever it was.
    Scanned(ScanOutcome),
    /// Another process held the work; nothing was read or written.
    Busy(StoreError),
}

impl Runner<'_> {
    /// Scan `source` as `job` says, by `contention` when another process
    /// holds it. Errors are the runner's own (the store failing), never a
    /// failed scan's, which is an outcome.
    pub async fn run(
        &self,
        job: Job<'_>,
        source: &Source,
        contention: Contention,
    ) -> Result<Ran, RunError> {
        loop {
            let result = self.scan_source(job, source, Utc::now()).await;
            let busy = matches!(result, Err(RunError::Store(StoreError::Leased { .. })));
            if let Contention::Wait { poll } = contention
                && busy
                && !self.stop.flag.is_cancelled()
            {
                tokio::select! {
                    () = tokio::time::sleep(poll) => continue,
                    () = self.stop.flag.cancelled() => {}
                }
            }
            let finished = matches!(&result, Ok(outcome) if outcome.finished());
            if let Contention::Hold(hold) = contention
                && !finished
                && !self.stop.flag.is_cancelled()
            {
                tokio::select! {
                    () = tokio::time::sleep(hold) => {}
                    () = self.stop.flag.cancelled() => {}
                }
            }
            return match result {
                Ok(outcome) => Ok(Ran::Scanned(outcome)),
                Err(RunError::Store(leased @ StoreError::Leased { .. })) => Ok(Ran::Busy(leased)),
                Err(error) => Err(error),
            };
        }
    }
}
