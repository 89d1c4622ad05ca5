//! Reading what is in messages for the detectors: small messages fetched
//! whole, large ones part by part (by their structure: text and documents,
//! never pictures), and what was fetched judged on a blocking thread while
//! the next batch arrives.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_imap::imap_proto::SectionPath;
use futures::StreamExt;
use mail_parser::MessageParser;

use super::reader::{FolderReader, Held};
use super::structure::{self, Selection};
use super::transport::{ImapError, ImapSession, from_imap, timed, uid_sets};
use crate::content::{Content, ContentPlan};
use crate::{ProblemKind, Record};

/// Messages being parsed and judged on a blocking thread, each with its
/// record and what was found.
pub(super) type Judging = tokio::task::JoinHandle<Vec<(Record, Option<Content>)>>;

/// What waits to be judged, for one record.
pub(super) enum Unjudged {
    /// The whole message (a small one, or the server sent no structure).
    Whole(Vec<u8>),
    /// The chosen parts: each one's made header and raw bytes (`None` when
    /// the server sent none).
    Parts(Vec<(Vec<u8>, Option<Vec<u8>>)>),
}

/// Parse and judge fetched messages on one blocking thread: documents are
/// extracted by worker processes, which must not be awaited on the runtime's
/// threads, and one hand-off per message would cost more than the parsing.
pub(super) fn judge(plan: &Arc<ContentPlan>, pending: Vec<(Record, Unjudged)>) -> Judging {
    let plan = plan.clone();
    tokio::task::spawn_blocking(move || {
        let parser = MessageParser::new();
        pending
            .into_iter()
            .map(|(record, unjudged)| {
                let content = match unjudged {
                    Unjudged::Whole(raw) => plan.mail(&parser, &raw),
                    Unjudged::Parts(parts) => Some(plan.mail_parts(&parser, &parts)),
                };
                (record, content)
            })
            .collect()
    })
}

/// Messages whose parts are to be fetched, by UID: their position among the
/// large messages, and the parts.
pub(super) type ByUid = HashMap<u32, (usize, Selection)>;

/// A message this small is fetched whole with its headers: asking for its
/// structure first would cost a round trip more than the bytes it could save.
/// Larger ones are fetched part by part.
pub(super) const WHOLE_MESSAGE_BYTES: u64 = 64 << 10;

/// Messages wait, up to this many bytes, to be judged together. Small, so
/// that records flow on steadily and little is left to judge when a batch's
/// last message arrives (measured: 8 MB made the content scan 25 % slower).
pub(super) const PENDING_BYTES: usize = 1 << 20;

/// Fetched content on its way to [`judge`], records with it: one batch is
/// judged while the next is received, and judged records go straight on.
pub(super) struct JudgeQueue {
    plan: Arc<ContentPlan>,
    pending: Vec<(Record, Unjudged)>,
    pending_bytes: usize,
    in_flight: Option<Judging>,
}

impl JudgeQueue {
    pub(super) fn new(plan: &Arc<ContentPlan>) -> JudgeQueue {
        JudgeQueue {
            plan: plan.clone(),
            pending: Vec::new(),
            pending_bytes: 0,
            in_flight: None,
        }
    }

    pub(super) async fn push(
        &mut self,
        reader: &mut FolderReader<'_>,
        record: Record,
        unjudged: Unjudged,
        bytes: usize,
    ) -> Result<(), ImapError> {
        self.pending.push((record, unjudged));
        self.pending_bytes += bytes;
        if self.pending_bytes >= PENDING_BYTES {
            if let Some(judging) = self.in_flight.take() {
                reader.deliver(judging.await).await?;
            }
            self.in_flight = Some(judge(&self.plan, std::mem::take(&mut self.pending)));
            self.pending_bytes = 0;
        }
        Ok(())
    }

    pub(super) async fn finish(mut self, reader: &mut FolderReader<'_>) -> Result<(), ImapError> {
        if let Some(judging) = self.in_flight.take() {
            reader.deliver(judging.await).await?;
        }
        if !self.pending.is_empty() {
            reader
                .deliver(judge(&self.plan, self.pending).await)
                .await?;
        }
        Ok(())
    }
}

impl FolderReader<'_> {
    /// The content of the larger messages: their structures, then what
    /// [`read_content`](Self::read_content) fetches of them.
    pub(super) async fn read_large(
        &mut self,
        session: &mut ImapSession,
        plan: &Arc<ContentPlan>,
        held: &mut Held,
        queue: JudgeQueue,
    ) -> Result<(), ImapError> {
        let seconds = self.config.timeout_seconds;
        let batch = self.config.fetch_batch.max(1) as usize;
        let limit = plan.limits.message_bytes;
        let mut by_parts: Vec<(usize, Selection)> = Vec::new();
        let mut whole: Vec<usize> = Vec::new();
        let mut waiting: HashMap<u32, usize> = held
            .iter()
            .enumerate()
            .map(|(position, (uid, _))| (*uid, position))
            .collect();
        for set in uid_sets(waiting.keys().copied().collect(), batch) {
            let mut stream = timed(seconds, async {
                session
                    .uid_fetch(&set, "(UID RFC822.SIZE BODYSTRUCTURE)")
                    .await
                    .map_err(from_imap)
            })
            .await?;
            while let Some(item) = timed(seconds, async { Ok(stream.next().await) }).await? {
                if self.context.cancel.is_cancelled() {
                    return Err(ImapError::Cancelled);
                }
                let fetch = item.map_err(from_imap)?;
                let Some((position, path)) = fetch
                    .uid
                    .and_then(|uid| waiting.remove(&uid))
                    .and_then(|position| {
                        Some((position, held.get(position)?.1.as_ref()?.path.clone()))
                    })
                else {
                    continue;
                };
                match fetch.bodystructure() {
                    Some(root) => {
                        let selection = structure::select(root, plan.limits.part_bytes);
                        self.report
                            .add_work("message_parts_skipped", selection.skipped.into());
                        if selection.octets() > limit {
                            self.report.count(ProblemKind::OversizedContent);
                            self.report.unread_prefixes.push(path);
                            continue;
                        }
                        for _ in 0..selection.too_large {
                            self.report.count(ProblemKind::OversizedContent);
                        }
                        if selection.too_large > 0 {
                            self.report.unread_prefixes.push(path);
                        }
                        self.report.add_work("messages_content_read", 1);
                        by_parts.push((position, selection));
                    }
                    None if fetch.size.is_some_and(|size| u64::from(size) > limit) => {
                        self.report.count(ProblemKind::OversizedContent);
                        self.report.unread_prefixes.push(path);
                    }
                    None => {
                        self.report.add_work("messages_content_read", 1);
                        whole.push(position);
                    }
                }
            }
        }
        for position in waiting.into_values() {
            self.vanished(held, position);
        }
        self.read_content(session, plan, held, by_parts, whole, queue)
            .await
    }

    /// Fetch and judge the content of held records: the chosen parts of each
    /// message, messages of the same shape (the same sections) in one command,
    /// and whole messages where the server gave no structure, each cut one
    /// byte past the limit (so one over it costs no more than the limit and is
    /// known to be over). `BODY.PEEK` only: `\Seen` never changes. A message
    /// gone between the two reads (expunged) is counted as vanished.
    pub(super) async fn read_content(
        &mut self,
        session: &mut ImapSession,
        plan: &Arc<ContentPlan>,
        held: &mut Held,
        by_parts: Vec<(usize, Selection)>,
        whole: Vec<usize>,
        mut queue: JudgeQueue,
    ) -> Result<(), ImapError> {
        let seconds = self.config.timeout_seconds;
        let batch = self.config.fetch_batch.max(1) as usize;
        // Messages by shape (their sections), each by UID.
        let mut shapes: BTreeMap<Vec<Vec<u32>>, ByUid> = BTreeMap::new();
        for (position, selection) in by_parts {
            let Some((uid, Some(record))) = held.get_mut(position) else {
                continue;
            };
            if selection.parts.is_empty() {
                // Nothing in it is text or a document: judged as it is.
                record.content = Some(Content::default());
                continue;
            }
            shapes
                .entry(selection.shape())
                .or_default()
                .insert(*uid, (position, selection));
        }
        for (shape, mut waiting) in shapes {
            let sections: Vec<String> = shape
                .iter()
                .map(|section| format!("BODY.PEEK[{}]", structure::section_text(section)))
                .collect();
            let query = format!("(UID {})", sections.join(" "));
            for set in uid_sets(waiting.keys().copied().collect(), batch) {
                let mut stream = timed(seconds, async {
                    session.uid_fetch(&set, &query).await.map_err(from_imap)
                })
                .await?;
                while let Some(item) = timed(seconds, async { Ok(stream.next().await) }).await? {
                    if self.context.cancel.is_cancelled() {
                        return Err(ImapError::Cancelled);
                    }
                    let fetch = item.map_err(from_imap)?;
                    let Some((position, selection)) =
                        fetch.uid.and_then(|uid| waiting.remove(&uid))
                    else {
                        continue;
                    };
                    let mut bytes = 0;
                    let parts: Vec<(Vec<u8>, Option<Vec<u8>>)> = selection
                        .parts
                        .into_iter()
                        .map(|part| {
                            let body = fetch
                                .section(&SectionPath::Part(part.section, None))
                                .map(<[u8]>::to_vec);
                            bytes += body.as_ref().map_or(0, Vec::len);
                            (part.header, body)
                        })
                        .collect();
                    self.report
                        .add_work("message_parts_read", parts.len() as u64);
                    if let Some(record) = held.get_mut(position).and_then(|(_, r)| r.take()) {
                        queue
                            .push(self, record, Unjudged::Parts(parts), bytes)
                            .await?;
                    }
                }
            }
            for (position, _) in waiting.into_values() {
                self.vanished(held, position);
            }
        }
        if !whole.is_empty() {
            let limit = plan.limits.message_bytes;
            let query = format!("(UID BODY.PEEK[]<0.{}>)", limit.saturating_add(1));
            let mut waiting: HashMap<u32, usize> = whole
                .into_iter()
                .filter_map(|position| held.get(position).map(|(uid, _)| (*uid, position)))
                .collect();
            for set in uid_sets(waiting.keys().copied().collect(), batch) {
                let mut stream = timed(seconds, async {
                    session.uid_fetch(&set, &query).await.map_err(from_imap)
                })
                .await?;
                while let Some(item) = timed(seconds, async { Ok(stream.next().await) }).await? {
                    if self.context.cancel.is_cancelled() {
                        return Err(ImapError::Cancelled);
                    }
                    let fetch = item.map_err(from_imap)?;
                    let (Some(position), Some(raw)) =
                        (fetch.uid.and_then(|uid| waiting.remove(&uid)), fetch.body())
                    else {
                        continue;
                    };
                    let Some(record) = held.get_mut(position).and_then(|(_, r)| r.take()) else {
                        continue;
                    };
                    if raw.len() as u64 > limit {
                        self.report.count(ProblemKind::OversizedContent);
                        self.report.unread_prefixes.push(record.path.clone());
                        self.send(record).await?;
                        continue;
                    }
                    queue
                        .push(self, record, Unjudged::Whole(raw.to_vec()), raw.len())
                        .await?;
                }
            }
            for position in waiting.into_values() {
                self.vanished(held, position);
            }
        }
        queue.finish(self).await
    }
}
