//! Reading one account: for each folder [`super::folders`] chose, a full or an
//! incremental read, turning FETCH responses into records.

use std::collections::HashSet;
use std::sync::Arc;

use async_imap::imap_proto::{MessageSection, SectionPath};
use async_imap::types::Fetch;
use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt;
use mail_parser::MessageParser;

use super::checkpoint::FolderCheckpoint;
use super::config::{Account, ImapConfig};
use super::content::{JudgeQueue, Unjudged, WHOLE_MESSAGE_BYTES};
use super::folders::{Folder, choose_folders};
use super::reader::{FolderReader, Held};
use super::transport::{
    self, ImapError, ImapSession, from_imap, range_text, search_date, timed, to_uids, uid_sets,
};
use crate::mail_headers::{self, HeaderProblem};
use crate::{
    CarriedScope, Participants, PlaceTotal, ProblemKind, Record, RecordKind, RecordSink,
    ScanContext, ScanReport,
};

/// Only these headers are fetched: the participants, nothing else. No
/// RFC822.SIZE: no rule needs it, and a server may have to read every message
/// to compute it (Dovecot does, the first time: 0.3 s per 1000 messages). No
/// FLAGS: no rule reads them.
const HEADER_QUERY: &str = "(UID INTERNALDATE BODY.PEEK[HEADER.FIELDS (FROM TO CC)])";
/// The same without INTERNALDATE, when no rule on the source reads a date.
const HEADER_ONLY_QUERY: &str = "(UID BODY.PEEK[HEADER.FIELDS (FROM TO CC)])";
const DATE_QUERY: &str = "(UID INTERNALDATE)";

/// What one FETCH round reads of each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Read {
    /// Participants' headers (and dates when a rule needs them), and content
    /// where a content rule looks.
    Headers,
    /// Dates, and content where a content rule looks.
    Dates,
    /// Dates only: messages read before, dated again.
    DatesOnly,
}

/// Read one account: log in, choose folders, read each; what the server
/// sends is counted in `received`.
pub(crate) async fn read_account(
    config: &ImapConfig,
    tls: &Arc<rustls::ClientConfig>,
    account: &Account,
    context: &ScanContext,
    sink: &RecordSink,
    report: &mut ScanReport,
    received: &transport::Received,
) -> Result<(), ImapError> {
    let folders = if config
        .folders
        .iter()
        .all(|f| f.eq_ignore_ascii_case("INBOX"))
    {
        vec![Folder {
            raw: "INBOX".into(),
            display: "INBOX".into(),
            special_use: Some("\\Inbox"),
        }]
    } else {
        // Folder discovery gets a connection of its own: in a Dovecot session
        // that has run LIST (with its default mailbox_list_index = yes), every
        // later EXAMINE re-reads the whole Maildir, 0.3 s per 20,000 messages
        // (measured; see BENCHMARKS.md). One more login costs milliseconds.
        let mut lister = transport::login(config, tls, account, received).await?;
        let folders = choose_folders(config, &mut lister, report, &account.name).await?;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), lister.logout()).await;
        folders
    };
    let mut session = transport::login(config, tls, account, received).await?;
    // Gmail shows a message in the folder of each of its labels: read it in
    // one (see `gmail`).
    let labels = if folders.len() > 1 {
        let seconds = config.timeout_seconds;
        let capabilities = timed(seconds, async {
            session.capabilities().await.map_err(from_imap)
        })
        .await?;
        capabilities
            .has_str("X-GM-EXT-1")
            .then(|| super::gmail::LabelFolders::new(&folders))
    } else {
        None
    };
    let mut reader = FolderReader {
        config,
        account: &account.name,
        context,
        sink: sink.clone(),
        report,
        parser: MessageParser::new(),
        earliest_young: None,
        labels,
        position: 0,
    };
    for (position, folder) in folders.iter().enumerate() {
        reader.position = position;
        reader.folder(&mut session, folder).await?;
    }
    reader.sink.flush().await.map_err(|_| ImapError::Sink)?;
    // Courtesy only: the read is complete whether or not the server answers.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), session.logout()).await;
    Ok(())
}

impl FolderReader<'_> {
    pub(super) async fn folder(
        &mut self,
        session: &mut ImapSession,
        folder: &Folder,
    ) -> Result<(), ImapError> {
        let seconds = self.config.timeout_seconds;
        let mailbox = timed(seconds, async {
            session.examine(&folder.raw).await.map_err(from_imap)
        })
        .await?;
        let prefix = format!("{}/{}", self.account, folder.display);
        let uid_validity = mailbox.uid_validity.unwrap_or(0);
        let last_uid = match mailbox.uid_next {
            Some(next) => next.saturating_sub(1),
            None if mailbox.exists == 0 => 0,
            None => {
                let all = self.search(session, "ALL").await?;
                all.iter().copied().max().unwrap_or(0)
            }
        };
        let needs = self.context.needs;
        // Every message there counts as checked, whether or not a search
        // picked it to be fetched.
        self.report.place_totals.push(PlaceTotal {
            prefix: prefix.clone(),
            place: self.folder_probe(folder),
            records: u64::from(mailbox.exists),
        });
        // Without UIDVALIDITY and UIDNEXT the server gives no way to tell that a
        // folder is unchanged: it is read in full, and no checkpoint is kept.
        let comparable = mailbox.uid_validity.is_some() && mailbox.uid_next.is_some();
        let plan = super::checkpoint::plan(needs.plan);
        let previous = comparable
            .then(|| {
                crate::checkpoint::load::<FolderCheckpoint>(
                    &self.context.checkpoints,
                    &prefix,
                    &plan,
                )
            })
            .flatten()
            // A flag set or taken away changes no UID: with flags as custodian
            // marks, every folder is read in full.
            .filter(|_| !self.config.custodian_marks.flagged)
            .filter(|previous| {
                previous.uid_validity == uid_validity
                    && previous.last_uid <= last_uid
                    && (needs.windowed_ages || needs.age_cutoff.is_none())
            });
        self.earliest_young = None;
        let mut next_due = None;
        if mailbox.exists > 0 {
            next_due = match previous {
                Some(previous) => {
                    self.incremental(session, folder, &prefix, previous, last_uid, mailbox.exists)
                        .await?
                }
                None => {
                    let bound = self.range(session, folder, 1, last_uid).await?;
                    self.next_due(bound)
                }
            };
        }
        let checkpoint = FolderCheckpoint {
            uid_validity,
            last_uid,
            exists: mailbox.exists,
            cutoff: needs.age_cutoff.map(|cutoff| cutoff.timestamp()),
            next_due: next_due.map(|due| due.timestamp()),
        };
        if comparable {
            crate::checkpoint::store(&mut self.report.checkpoints, prefix, &plan, &checkpoint);
        } else {
            self.report.add_work("folders_without_uidvalidity", 1);
        }
        Ok(())
    }

    /// The earliest time a message read so far can become due: the earliest
    /// young message seen, or `bound` when the read could not see beyond it.
    /// `None` when nothing is known (every later read re-checks).
    pub(super) fn next_due(&self, bound: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        match (self.earliest_young, bound) {
            (Some(young), Some(bound)) => Some(young.min(bound)),
            (Some(young), None) => Some(young),
            (None, bound) => bound,
        }
    }

    /// Read what changed since `previous`; returns the new `next_due` bound.
    pub(super) async fn incremental(
        &mut self,
        session: &mut ImapSession,
        folder: &Folder,
        prefix: &str,
        previous: FolderCheckpoint,
        last_uid: u32,
        exists: u32,
    ) -> Result<Option<DateTime<Utc>>, ImapError> {
        // New mail since the last read.
        let mut bound = self
            .range(session, folder, previous.last_uid + 1, last_uid)
            .await?;
        if previous.last_uid == 0 {
            return Ok(self.next_due(bound));
        }
        let previous_due = previous
            .next_due
            .and_then(|seconds| DateTime::from_timestamp(seconds, 0));
        // Older mail whose age crossed the cutoff since the last read is dated
        // again (SEARCH is by whole days, so two days' margin; rules check
        // exactly). Not needed while the cutoff has not reached the earliest
        // message that was still young: then none can have crossed.
        if let Some(cutoff) = self.context.needs.age_cutoff {
            if previous_due.is_none_or(|due| cutoff >= due) {
                let since = previous
                    .cutoff
                    .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
                    .unwrap_or(cutoff)
                    - TimeDelta::days(2);
                let until = cutoff + TimeDelta::days(2);
                let query = format!(
                    "UID 1:{} SINCE {} BEFORE {}",
                    previous.last_uid,
                    search_date(since),
                    search_date(until)
                );
                let crossed = to_uids(self.search(session, &query).await?);
                // Only dated again: a message's content never changes under its
                // UID, and what was found in it stands (carried below).
                for set in uid_sets(crossed, self.config.fetch_batch as usize) {
                    self.fetch(session, folder, &set, Read::DatesOnly).await?;
                }
                // Everything received before the window's end (less a day, for
                // the server's time zone) was in it.
                let window = until - TimeDelta::days(1);
                bound = Some(bound.map_or(window, |b| b.min(window)));
            } else if let Some(due) = previous_due {
                bound = Some(bound.map_or(due, |b| b.min(due)));
            }
        }
        // Which old UIDs are still there, so findings of the others resolve.
        // The same highest UID and the same count: nothing came, nothing went.
        let unchanged = last_uid == previous.last_uid && exists == previous.exists;
        let present = if unchanged {
            None
        } else {
            let present = self
                .search(session, &format!("UID 1:{}", previous.last_uid))
                .await?;
            self.report.add_work("uids_listed", present.len() as u64);
            // As many old UIDs as there were messages: none went (new mail
            // came, with higher UIDs).
            (present.len() as u64 != u64::from(previous.exists)).then(|| Arc::new(to_uids(present)))
        };
        self.report.carried.push(CarriedScope {
            prefix: prefix.to_owned(),
            gone: Vec::new(),
            present,
            left_out: None,
        });
        Ok(self.next_due(bound))
    }

    /// Read UIDs `first..=last` as the plan needs: headers, or the dates of the
    /// candidates a server-side search picks, or all dates. When a search stopped
    /// short of the young messages, returns the time below which it saw them all.
    pub(super) async fn range(
        &mut self,
        session: &mut ImapSession,
        folder: &Folder,
        first: u32,
        last: u32,
    ) -> Result<Option<DateTime<Utc>>, ImapError> {
        if first > last {
            return Ok(None);
        }
        let needs = self.context.needs;
        let batch = self.config.fetch_batch.max(1);
        // Headers and content are read in batches: a batch's records wait for
        // their content, so memory stays bounded by the batch.
        if needs.participants || needs.content {
            let mut start = first;
            while start <= last {
                let end = start.saturating_add(batch - 1).min(last);
                let read = if needs.participants {
                    Read::Headers
                } else {
                    Read::Dates
                };
                self.fetch(session, folder, &range_text(start, end), read)
                    .await?;
                if end == u32::MAX {
                    break;
                }
                start = end + 1;
            }
            Ok(None)
        } else if let Some(cutoff) = needs.received_before() {
            let until = cutoff + TimeDelta::days(2);
            let query = format!(
                "UID {} BEFORE {}",
                range_text(first, last),
                search_date(until)
            );
            let candidates = to_uids(self.search(session, &query).await?);
            for set in uid_sets(candidates, batch as usize) {
                self.fetch(session, folder, &set, Read::Dates).await?;
            }
            Ok(Some(until - TimeDelta::days(1)))
        } else {
            self.fetch(session, folder, &range_text(first, last), Read::Dates)
                .await?;
            Ok(None)
        }
    }

    pub(super) async fn search(
        &mut self,
        session: &mut ImapSession,
        query: &str,
    ) -> Result<HashSet<u32>, ImapError> {
        let seconds = self.config.timeout_seconds;
        timed(seconds, async {
            session.uid_search(query).await.map_err(from_imap)
        })
        .await
    }

    pub(super) async fn fetch(
        &mut self,
        session: &mut ImapSession,
        folder: &Folder,
        set: &str,
        read: Read,
    ) -> Result<(), ImapError> {
        let seconds = self.config.timeout_seconds;
        let headers = read == Read::Headers;
        let dated = !headers || self.context.needs.age_cutoff.is_some();
        let query = match (headers, dated) {
            (true, true) => HEADER_QUERY,
            (true, false) => HEADER_ONLY_QUERY,
            (false, _) => DATE_QUERY,
        };
        // Content, when a content rule looks at this folder: each message's
        // size and first bytes come with its headers. A small message is then
        // complete and judged whole; a larger one has its structure read and
        // only its parts worth reading fetched (see `read_large`).
        let plan = self
            .context
            .content
            .clone()
            .filter(|_| read != Read::DatesOnly)
            .filter(|plan| (plan.wants_place)(&self.folder_probe(folder)));
        let small = plan
            .as_ref()
            .map_or(0, |plan| WHOLE_MESSAGE_BYTES.min(plan.limits.message_bytes));
        let query = match &plan {
            Some(_) => std::borrow::Cow::Owned(query.replacen(
                "(UID",
                &format!("(UID RFC822.SIZE BODY.PEEK[]<0.{small}>"),
                1,
            )),
            None => std::borrow::Cow::Borrowed(query),
        };
        let query = match &self.labels {
            Some(_) => std::borrow::Cow::Owned(query.replacen("(UID", "(UID X-GM-LABELS", 1)),
            None => query,
        };
        let query = if self.config.custodian_marks.flagged {
            std::borrow::Cow::Owned(query.replacen("(UID", "(UID FLAGS", 1))
        } else {
            query
        };
        // Small messages go to be judged with their records; large ones wait
        // here for their structure and parts.
        let mut large: Held = Vec::new();
        let mut queue = plan.as_ref().map(JudgeQueue::new);
        {
            let mut stream = timed(seconds, async {
                session
                    .uid_fetch(set, query.as_ref())
                    .await
                    .map_err(from_imap)
            })
            .await?;
            while let Some(item) = timed(seconds, async { Ok(stream.next().await) }).await? {
                if self.context.cancel.is_cancelled() {
                    return Err(ImapError::Cancelled);
                }
                let fetch = item.map_err(from_imap)?;
                // Unsolicited FETCH responses (flag changes by other clients)
                // carry no UID or no date: not ours to read.
                let Some(record) = self.record(&fetch, folder, headers) else {
                    continue;
                };
                if let (Some(labels), Some(carried)) = (&self.labels, fetch.gmail_labels())
                    && labels.read_earlier(carried, self.position)
                {
                    self.report.add_work("label_copies_left_out", 1);
                    continue;
                }
                self.report.add_work(
                    if headers {
                        "headers_fetched"
                    } else {
                        "dates_fetched"
                    },
                    1,
                );
                let (Some(plan), Some(queue), Some(uid)) = (&plan, &mut queue, fetch.uid) else {
                    self.send(record).await?;
                    continue;
                };
                if !(plan.wants)(&record) {
                    self.send(record).await?;
                    continue;
                }
                match (fetch.size, fetch.body()) {
                    (Some(size), Some(raw))
                        if raw.len() as u64 == u64::from(size) && u64::from(size) <= small =>
                    {
                        self.report.add_work("messages_content_read", 1);
                        queue
                            .push(self, record, Unjudged::Whole(raw.to_vec()), raw.len())
                            .await?;
                    }
                    _ => large.push((uid, Some(record))),
                }
            }
        }
        if let (Some(plan), Some(queue)) = (&plan, queue) {
            self.read_large(session, plan, &mut large, queue).await?;
        }
        for record in large.into_iter().filter_map(|(_, record)| record) {
            self.send(record).await?;
        }
        Ok(())
    }

    /// A record standing for any message of `folder`, to ask whether a
    /// content rule looks at the folder at all before its bodies are fetched.
    pub(super) fn folder_probe(&self, folder: &Folder) -> Record {
        let id = format!("{}/{}/0", self.account, folder.display);
        let mut record = Record::new(RecordKind::Message, self.context.source.clone(), id);
        record.container = folder.display.clone();
        record.custodian = Some(self.account.to_owned());
        if let Some(special_use) = folder.special_use {
            record
                .attributes
                .insert("special_use".into(), special_use.to_owned());
        }
        record
    }

    pub(super) fn record(
        &mut self,
        fetch: &Fetch,
        folder: &Folder,
        headers: bool,
    ) -> Option<Record> {
        let uid = fetch.uid?;
        let header_section = SectionPath::Full(MessageSection::Header);
        // Without an age rule the date is not asked for (see `fetch`); then the
        // header section tells our answers from unsolicited FETCH responses.
        let received = if headers && self.context.needs.age_cutoff.is_none() {
            fetch.section(&header_section)?;
            None
        } else {
            Some(fetch.internal_date()?.with_timezone(&Utc))
        };
        let id = format!("{}/{}/{uid}", self.account, folder.display);
        let mut record = Record::new(RecordKind::Message, self.context.source.clone(), id);
        record.container = folder.display.clone();
        record.custodian = Some(self.account.to_owned());
        record.timestamps.received = received;
        if let (Some(cutoff), Some(received)) = (self.context.needs.age_cutoff, received)
            && received >= cutoff
        {
            self.earliest_young = Some(self.earliest_young.map_or(received, |e| e.min(received)));
        }
        if let Some(size) = fetch.size {
            record
                .attributes
                .insert("size_bytes".into(), size.to_string());
        }
        if let Some(special_use) = folder.special_use {
            record
                .attributes
                .insert("special_use".into(), special_use.to_owned());
        }
        // The custodian's own "kept on purpose", where the organisation allows it.
        let marks = &self.config.custodian_marks;
        let mark = if marks.folders.contains(&folder.display) {
            Some("folder")
        } else if marks.flagged
            && fetch
                .flags()
                .any(|flag| matches!(flag, async_imap::types::Flag::Flagged))
        {
            Some("flagged")
        } else {
            None
        };
        if let Some(mark) = mark {
            record
                .attributes
                .insert(crate::CUSTODIAN_MARK.into(), mark.to_owned());
        }
        if headers {
            let header = fetch.section(&header_section).unwrap_or_default();
            let participants = if header.iter().all(|byte| byte.is_ascii_whitespace()) {
                // No From, To or Cc at all: nothing to count, nothing broken.
                Participants::default()
            } else {
                match mail_headers::participants(&self.parser, header) {
                    Ok(participants) => participants,
                    Err(HeaderProblem::Malformed) => {
                        self.report.count(ProblemKind::MalformedMail);
                        Participants::default()
                    }
                }
            };
            record.participants = Some(participants);
        }
        Some(record)
    }
}
