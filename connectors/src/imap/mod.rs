//! Mailboxes over IMAP: every employee's INBOX and Sent folder on the mail
//! server, read without changing anything.
//!
//! - **Read-only.** Folders are opened with EXAMINE and messages read with
//!   BODY.PEEK; no STORE, COPY, MOVE, EXPUNGE or APPEND is ever sent, so flags
//!   (`\Seen` too), UIDs and HIGHESTMODSEQ stay as they were.
//! - **Work on the server.** Ages use INTERNALDATE, never the sender's `Date:`.
//!   When only age rules apply, a `UID SEARCH BEFORE` picks the candidates and
//!   only their dates are fetched; headers (From/To/Cc only) are fetched only
//!   when a rule counts recipients.
//! - **Incremental.** Per account and folder the checkpoint keeps UIDVALIDITY,
//!   the highest UID read, the age cutoff used and the plan's fingerprint. A
//!   rescan reads new UIDs, re-dates only messages whose age crossed the cutoff
//!   since, and lists the UIDs still there so findings of expunged or moved
//!   messages resolve. A changed UIDVALIDITY or plan means a full read.
//! - **Content, part by part.** In a folder a `contains` rule looks at, each
//!   message's BODYSTRUCTURE comes with its headers; then only the parts worth
//!   reading are fetched (`BODY.PEEK[n]`), messages of the same shape in one
//!   command. A server that sends no structure has the message fetched whole.
//! - **Robust.** Every wait has a timeout; a broken connection is retried with
//!   backoff; accounts are read in parallel up to `max_connections`; an account
//!   that fails is reported and its earlier findings stay open while the others
//!   finish; when every account fails the scan fails.
//!
//! The flow and the split (transport, config, per-folder reading) follow the
//! design notes: connectors produce records, the scan runner does the rest.

mod checkpoint;
mod config;
mod content;
mod folders;
mod gmail;
mod read;
mod reader;
mod search;
pub(crate) mod structure;
mod transport;

use std::sync::Arc;

use futures::StreamExt;

use self::config::Account;
pub use self::config::{AccountsError, AuthConfig, CustodianMarks, ImapConfig, Security};
use self::transport::ImapError;
pub use crate::tls::TlsSetupError;
use crate::{Connector, ConnectorError, ProblemKind, RecordSink, ScanContext, ScanReport};

/// Why an IMAP source could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ImapBuildError {
    /// Accounts or credentials could not be read.
    #[error(transparent)]
    Accounts(#[from] AccountsError),
    /// TLS settings could not be made.
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
}

/// A built IMAP source.
#[derive(Debug, Clone)]
pub struct ImapSource {
    config: Arc<ImapConfig>,
    accounts: Arc<Vec<Account>>,
    tls: Arc<rustls::ClientConfig>,
}

impl ImapSource {
    /// Read credentials and TLS settings; nothing is contacted yet.
    pub fn build(config: ImapConfig) -> Result<ImapSource, ImapBuildError> {
        let accounts = config::accounts(&config)?;
        let tls = crate::tls::tls_config(
            config.ca_file.as_deref(),
            config.security != Security::Plain,
        )?;
        Ok(ImapSource {
            config: Arc::new(config),
            accounts: Arc::new(accounts),
            tls,
        })
    }

    /// Try every account, read-only: log in and LIST (at most
    /// `max_connections` at once). Returns what was checked, or the failures,
    /// accounts marked personal.
    pub async fn probe(&self) -> Result<String, ConnectorError> {
        let seconds = self.config.timeout_seconds;
        let results: Vec<(String, Result<usize, ImapError>)> =
            futures::stream::iter(0..self.accounts.len())
                .map(|index| {
                    let source = self.clone();
                    async move {
                        let account = &source.accounts[index];
                        let result = async {
                            let mut session = transport::login(
                                &source.config,
                                &source.tls,
                                account,
                                &transport::Received::default(),
                            )
                            .await?;
                            let folders = transport::timed(seconds, async {
                                let names = session
                                    .list(Some(""), Some("*"))
                                    .await
                                    .map_err(transport::from_imap)?;
                                let names: Vec<_> = names.collect().await;
                                Ok(names.len())
                            })
                            .await?;
                            let _ = tokio::time::timeout(
                                std::time::Duration::from_secs(5),
                                session.logout(),
                            )
                            .await;
                            Ok(folders)
                        }
                        .await;
                        (account.name.clone(), result)
                    }
                })
                .buffer_unordered(self.config.max_connections.max(1))
                .collect()
                .await;
        let mut failures: Vec<(String, ImapError)> = Vec::new();
        let mut folders = 0;
        for (name, result) in results {
            match result {
                Ok(count) => folders += count,
                Err(error) => failures.push((name, error)),
            }
        }
        failures.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some((_, first)) = failures.first() {
            let shown: Vec<String> = failures
                .iter()
                .take(5)
                .map(|(name, error)| format!("account {}: {error}", crate::mark_personal(name)))
                .collect();
            return Err(ConnectorError::Unavailable {
                kind: first.kind(),
                message: format!(
                    "{} of {} accounts failed: {}",
                    failures.len(),
                    self.accounts.len(),
                    shown.join("; ")
                ),
            });
        }
        Ok(format!(
            "{} accounts logged in and listed {folders} folders",
            self.accounts.len()
        ))
    }

    /// How many accounts it reads.
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// How many accounts it reads at once (`max_connections`).
    pub fn max_connections(&self) -> usize {
        self.config.max_connections.max(1)
    }

    /// Read one account, trying again after connection problems.
    async fn account(
        &self,
        account: &Account,
        context: &ScanContext,
        sink: &RecordSink,
    ) -> Result<ScanReport, ImapError> {
        let attempts = self.config.attempts.max(1);
        let mut attempt = 1;
        // Reads the server broke off by being busy or hanging up.
        let mut throttled = 0u64;
        // What the server sent, over every attempt.
        let received = transport::Received::default();
        loop {
            let mut report = ScanReport::default();
            let result = read::read_account(
                &self.config,
                &self.tls,
                account,
                context,
                sink,
                &mut report,
                &received,
            )
            .await;
            match result {
                Ok(()) => {
                    for _ in 0..throttled {
                        report.count(crate::ProblemKind::Throttled);
                    }
                    report.add_work("bytes_received", received.bytes());
                    return Ok(report);
                }
                Err(error) if error.retryable() && attempt < attempts => {
                    if matches!(error, ImapError::Throttled(_) | ImapError::Lost(_)) {
                        throttled += 1;
                    }
                    tracing::info!(
                        error_kind = error.kind(),
                        attempt,
                        "IMAP account read interrupted; trying again."
                    );
                    tokio::time::sleep(crate::READ_RETRY.after(attempt)).await;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

impl Connector for ImapSource {
    async fn scan(
        &self,
        context: ScanContext,
        sink: RecordSink,
    ) -> Result<ScanReport, ConnectorError> {
        // Owned values per task: borrowed ones trip the compiler's higher-ranked
        // lifetime check on Send futures.
        let context = Arc::new(context);
        let results: Vec<(String, Result<ScanReport, ImapError>)> =
            futures::stream::iter(0..self.accounts.len())
                .map(|index| {
                    let source = self.clone();
                    let context = context.clone();
                    let sink = sink.clone();
                    async move {
                        let account = &source.accounts[index];
                        let result = source.account(account, &context, &sink).await;
                        (account.name.clone(), result)
                    }
                })
                .buffer_unordered(self.config.max_connections.max(1))
                .collect()
                .await;
        let mut total = ScanReport::default();
        let mut failures: Vec<(String, ImapError)> = Vec::new();
        for (name, result) in results {
            match result {
                Ok(report) => total.merge(report),
                Err(ImapError::Cancelled) => return Err(ConnectorError::Cancelled),
                Err(ImapError::Sink) => return Err(ConnectorError::SinkClosed),
                Err(error) => failures.push((name, error)),
            }
        }
        failures.sort_by(|a, b| a.0.cmp(&b.0));
        if !failures.is_empty() && failures.len() == self.accounts.len() {
            let shown: Vec<String> = failures
                .iter()
                .take(5)
                .map(|(name, error)| format!("account {}: {error}", crate::mark_personal(name)))
                .collect();
            let more = failures.len().saturating_sub(5);
            return Err(ConnectorError::Unavailable {
                kind: failures[0].1.kind(),
                message: format!(
                    "every account failed: {}{}",
                    shown.join("; "),
                    if more > 0 {
                        format!("; and {more} more")
                    } else {
                        String::new()
                    }
                ),
            });
        }
        for (name, error) in failures {
            tracing::warn!(error_kind = error.kind(), "IMAP account could not be read.");
            total.count(ProblemKind::AccountFailed);
            total
                .notes
                .push(format!("account {}: {error}", crate::mark_personal(&name)));
            // Keep its earlier findings (and its old checkpoints) as they were.
            total.unread_prefixes.push(name.clone());
            for (key, value) in &context.checkpoints {
                if key.starts_with(&format!("{name}/")) {
                    total.checkpoints.insert(key.clone(), value.clone());
                }
            }
        }
        Ok(total)
    }
}

impl crate::capability::Units for ImapSource {
    /// The accounts' names, as record paths begin with them.
    fn parts(&self) -> Vec<String> {
        self.accounts
            .iter()
            .map(|account| account.name.clone())
            .collect()
    }

    /// The same source reading only the accounts named in `names` (one unit
    /// of the work, when instances share it).
    fn only(&self, names: &[String]) -> ImapSource {
        ImapSource {
            config: self.config.clone(),
            accounts: Arc::new(
                self.accounts
                    .iter()
                    .filter(|account| names.contains(&account.name))
                    .cloned()
                    .collect(),
            ),
            tls: self.tls.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    /// The connector's source never calls a command that changes a mailbox. The
    /// integration tests prove flags and UIDs stay; this keeps a future edit from
    /// even trying.
    #[test]
    fn no_mutating_command_is_ever_called() {
        let sources = [
            include_str!("mod.rs"),
            include_str!("folders.rs"),
            include_str!("read.rs"),
            include_str!("search.rs"),
            include_str!("checkpoint.rs"),
            include_str!("transport.rs"),
        ];
        let forbidden = [
            ".select(",
            ".store(",
            ".uid_store(",
            ".copy(",
            ".uid_copy(",
            ".mv(",
            ".uid_mv(",
            ".expunge(",
            ".uid_expunge(",
            ".append(",
            ".delete(",
            ".rename(",
            ".create(",
            ".subscribe(",
            ".close(",
            "\"BODY[",
        ];
        for source in sources {
            // This test's own list is the one place the names may appear.
            let code = source.split("#[cfg(test)]").next().unwrap_or(source);
            for word in forbidden {
                assert!(!code.contains(word), "IMAP connector must not use {word}");
            }
        }
    }
}
