//! The reader of one account's folders, as the folder walk (`read`) and the
//! content fetch (`content`) both use it: where records go, and what is
//! counted.

use chrono::{DateTime, Utc};
use mail_parser::MessageParser;

use super::config::ImapConfig;
use super::transport::ImapError;
use crate::content::Content;
use crate::{ProblemKind, Record, RecordSink, ScanContext, ScanReport};

/// Large messages of a batch: UID, and the record until it goes to be judged.
pub(super) type Held = Vec<(u32, Option<Record>)>;

pub(super) struct FolderReader<'a> {
    pub(super) config: &'a ImapConfig,
    pub(super) account: &'a str,
    pub(super) context: &'a ScanContext,
    pub(super) sink: RecordSink,
    pub(super) report: &'a mut ScanReport,
    pub(super) parser: MessageParser,
    /// Earliest received time, among messages read in this folder, at or after
    /// the age cutoff (not due yet).
    pub(super) earliest_young: Option<DateTime<Utc>>,
    /// On Gmail: which folder shows each label's messages.
    pub(super) labels: Option<super::gmail::LabelFolders>,
    /// The position of the folder being read among those scanned.
    pub(super) position: usize,
}

impl FolderReader<'_> {
    pub(super) async fn send(&mut self, record: Record) -> Result<(), ImapError> {
        self.sink.send(record).await.map_err(|_| ImapError::Sink)?;
        self.report.records += 1;
        Ok(())
    }

    /// A message whose content was to be read is gone (expunged since its
    /// structure was read): counted, and its findings stay open.
    pub(super) fn vanished(&mut self, held: &Held, position: usize) {
        self.report.count(ProblemKind::Vanished);
        if let Some((_, Some(record))) = held.get(position) {
            self.report.unread_prefixes.push(record.path.clone());
        }
    }

    /// Records [`judge`] is done with: their content attached (problems
    /// counted, a record not fully judged kept open), then sent on.
    pub(super) async fn deliver(
        &mut self,
        judged: Result<Vec<(Record, Option<Content>)>, tokio::task::JoinError>,
    ) -> Result<(), ImapError> {
        let judged = judged.map_err(|error| ImapError::Lost(format!("content worker: {error}")))?;
        for (mut record, content) in judged {
            match content {
                Some(content) => {
                    for _ in 0..content.unreadable {
                        self.report.count(ProblemKind::UnreadableContent);
                    }
                    for _ in 0..content.oversized {
                        self.report.count(ProblemKind::OversizedContent);
                    }
                    if content.unreadable > 0 || content.oversized > 0 {
                        self.report.unread_prefixes.push(record.path.clone());
                    }
                    record.content = Some(content);
                }
                None => {
                    self.report.count(ProblemKind::MalformedMail);
                    self.report.unread_prefixes.push(record.path.clone());
                }
            }
            self.send(record).await?;
        }
        Ok(())
    }
}
