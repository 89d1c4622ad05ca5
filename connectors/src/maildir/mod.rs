//! Maildir++ trees as Dovecot keeps them, read on the mail host itself.
//!
//! Layout read: `ROOT/<account>/<mailbox_dir>/` is one account's Maildir (INBOX in
//! its `cur/` and `new/`, other folders in `.Name/` and `.Parent.Child/`, names in
//! modified UTF-7). With `account` set, `ROOT` itself is that one account's Maildir.
//!
//! A message's received time is its file's mtime, which is what Dovecot reports as
//! IMAP INTERNALDATE; the sender-controlled `Date:` header is never used for age.
//! Headers are read (up to `max_header_bytes`, read-only, atime untouched) only when
//! a rule needs participants; a stale-inbox rule needs one `stat` per message.
//! Malformed, empty or oversized headers are counted and the message is still a
//! record, so it is still checked by its dates.
//!
//! The backend's files, as for every connector: `config` (the settings),
//! `transport` (file names and header blocks), `read` (the walk). There is no
//! `checkpoint`: every scan lists every file name, which costs one `readdir`
//! per folder and one `stat` per message, and reads headers only when a rule
//! needs participants; there is nothing a checkpoint would let it skip that is
//! not already skipped.

mod config;
mod read;
mod transport;

pub use config::MaildirConfig;

use crate::{Connector, ConnectorError, RecordSink, ScanContext, ScanReport};

/// A built Maildir source.
#[derive(Debug, Clone)]
pub struct MaildirSource {
    config: MaildirConfig,
}

impl MaildirSource {
    /// Build the source from its config.
    pub fn build(config: MaildirConfig) -> MaildirSource {
        MaildirSource { config }
    }
}

impl MaildirSource {
    /// Whether the root can be listed, read-only: what `check-config
    /// --connect` runs.
    pub fn probe(&self) -> Result<String, ConnectorError> {
        crate::local_fs::probe_root(&self.config.root)
    }
}

impl Connector for MaildirSource {
    async fn scan(
        &self,
        context: ScanContext,
        sink: RecordSink,
    ) -> Result<ScanReport, ConnectorError> {
        let config = self.config.clone();
        tokio::task::spawn_blocking(move || read::scan_blocking(&config, &context, &sink))
            .await
            .map_err(|error| ConnectorError::Worker(error.to_string()))?
    }
}

#[cfg(test)]
mod cancel_tests {
    use super::*;

    /// As for the file share: the deadline's flag stops the Maildir walk.
    #[tokio::test]
    async fn the_walk_stops_when_its_flag_is_set() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cur = dir.path().join("anna/Maildir/cur");
        std::fs::create_dir_all(&cur).expect("dir");
        std::fs::create_dir_all(dir.path().join("anna/Maildir/new")).expect("dir");
        for n in 0..20 {
            std::fs::write(cur.join(format!("{n}.M1P1.host:2,S")), b"Subject: x\n\nb")
                .expect("mail");
        }
        let config: MaildirConfig =
            toml::from_str(&format!("root = {:?}", dir.path().display().to_string()))
                .expect("config");
        let source = MaildirSource::build(config);
        let context = ScanContext {
            source: std::sync::Arc::from("mail"),
            needs: crate::Needs::default(),
            cancel: crate::CancelFlag::default(),
            checkpoints: Default::default(),
            content: None,
            timezone: chrono_tz::UTC,
            records: None,
        };
        context.cancel.cancel();
        let (sink, mut receiver) = RecordSink::channel(1024);
        let drain = tokio::spawn(async move { while receiver.recv().await.is_some() {} });
        let cancelled = source.scan(context, sink).await;
        assert!(
            matches!(cancelled, Err(ConnectorError::Cancelled)),
            "{cancelled:?}"
        );
        drain.await.expect("drain");
    }
}
