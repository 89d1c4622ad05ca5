//! What a connector reads *inside* a record when a `contains` rule needs it:
//! the text of mail bodies and of text files, run through the detectors at once
//! so that only what they matched travels on (the detector, the confidence and
//! and the keyed hash of the value: the value itself is dropped where it was
//! found).
//! The text itself is never kept, logged or stored.
//!
//! Bounded: a message, a part and a file larger than its limit is not read (the
//! record is counted as `oversized_content` and its findings stay open), so
//! memory per record is capped.
//!
//! Read: the mapped fields of directory entries and API items (case notes),
//! mail bodies (text/plain, and text/html with its tags removed, in the
//! transfer encodings and charsets that mail-parser decodes), plain-text
//! attachments and files, and PDF, DOCX, XLSX, ODT/ODS and ZIP attachments and
//! files through the extractor, which runs each document in a worker process
//! of its own ([`tillsyn_extract::Isolated`]). A document that cannot be read
//! (malformed, hostile, over a limit, too slow) fails alone: it is counted as
//! `unreadable_content` and its record's findings stay open.

use std::sync::Arc;

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use tillsyn_detectors::{Confidence, DetectorSet, Today};

use tillsyn_core::identity::{IdentityHash, IdentityKey};

/// Whether a content rule looks at a record, judged on what is known before
/// its content is read (folder, path, kind, attributes).
pub type Wants = Arc<dyn Fn(&crate::Record) -> bool + Send + Sync>;

/// What the rules of a source need read inside records, and the limits.
pub struct ContentPlan {
    /// The detectors every content rule of the source asks for, built once.
    pub detectors: Arc<DetectorSet>,
    /// The lowest confidence any rule asks for: lower matches are dropped.
    pub min: Confidence,
    /// Today, in the organisation's time zone, for personnummer centuries.
    pub today: Today,
    /// Byte limits.
    pub limits: ContentLimits,
    /// Whether a content rule looks at a record: content is read only for
    /// those (a Sent-mail rule reads no inbox).
    pub wants: Wants,
    /// Whether a content rule could look at any record in a place (a mail
    /// folder, judged on a record standing for it): the rules' kind, folder
    /// and path conditions only, since one message's attributes are not known
    /// before it is fetched.
    pub wants_place: Wants,
    /// The document extractor; without one, documents are not read (only
    /// text), and not counted as unreadable either.
    pub extractor: Option<Arc<tillsyn_extract::Isolated>>,
    /// Hashes what the detectors match, under the pseudonym key.
    pub identity: IdentityKey,
}

impl std::fmt::Debug for ContentPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentPlan")
            .field("detectors", &self.detectors)
            .field("min", &self.min)
            .field("today", &self.today)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// How much is read, at most (the defaults are `[content]`'s, in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentLimits {
    /// One message: the file (Maildir), or the parts chosen (IMAP).
    pub message_bytes: u64,
    /// One body part or attachment, decoded.
    pub part_bytes: u64,
    /// One file on a share.
    pub file_bytes: u64,
}

/// What was found inside one record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Content {
    /// Each part read, in order.
    pub parts: Vec<ContentPart>,
    /// Parts that could not be read (a document that failed to extract, a
    /// message that is not MIME): the record is not fully judged.
    pub unreadable: u32,
    /// Parts over the part limit, not read: the record is not fully judged
    /// either.
    pub oversized: u32,
}

/// One part of a record: a mail body, an attachment, or a file's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentPart {
    /// Which part.
    pub part: Part,
    /// What the detectors matched in it.
    pub matches: Vec<ContentMatch>,
}

/// Which part of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// A message body (text, or HTML as text).
    Body,
    /// An attachment, by its file name (which may name a person).
    Attachment(String),
    /// A file's own text.
    File,
    /// A mapped field of a directory entry or an API item (case notes), by
    /// its config name.
    Field(String),
}

/// One match inside a part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentMatch {
    /// Detector name.
    pub detector: String,
    /// How sure.
    pub confidence: Confidence,
    /// The keyed hash of the normalised value ([`crate::identity`]): what
    /// the identity index keeps. The value itself never leaves [`ContentPlan::detect`].
    pub hash: IdentityHash,
}

impl ContentPlan {
    /// Detect in one decoded text.
    pub fn detect(&self, part: Part, text: &[u8]) -> ContentPart {
        let mut matches = Vec::new();
        self.detectors
            .scan_each(text, self.today, self.min, |found| {
                matches.push(ContentMatch {
                    detector: self.detectors.name(found.detector).to_owned(),
                    confidence: found.confidence,
                    hash: self
                        .identity
                        .hash(self.detectors.name(found.detector), found.normalised),
                });
            });
        ContentPart { part, matches }
    }

    /// The bodies and attachments of one raw message. `None` when the message
    /// does not parse as MIME at all.
    pub fn mail(&self, parser: &MessageParser, raw: &[u8]) -> Option<Content> {
        let message = parser.parse(raw)?;
        let mut content = Content::default();
        self.message(&message, 0, &mut content);
        Some(content)
    }

    /// The parts of one message fetched one by one (IMAP part selection):
    /// each is a made MIME header and the part's raw bytes (`None` when the
    /// server sent none), read as a one-part message.
    pub fn mail_parts(
        &self,
        parser: &MessageParser,
        parts: &[(Vec<u8>, Option<Vec<u8>>)],
    ) -> Content {
        let mut content = Content::default();
        let mut raw = Vec::new();
        for (header, body) in parts {
            let Some(body) = body else {
                content.unreadable += 1;
                continue;
            };
            raw.clear();
            raw.extend_from_slice(header);
            raw.extend_from_slice(body);
            match parser.parse(&raw) {
                Some(message) => self.message(&message, 0, &mut content),
                None => content.unreadable += 1,
            }
        }
        content
    }

    /// One parsed message into `content`; forwarded messages inside it too,
    /// down to [`FORWARDED_DEPTH`].
    fn message(&self, message: &Message<'_>, depth: u32, content: &mut Content) {
        let limit = usize::try_from(self.limits.part_bytes).unwrap_or(usize::MAX);
        // Bodies: text/plain as it is, text/html as text with its blocks,
        // rows and cells on lines of their own. A message with both
        // alternatives has its text read once, from the plain one. A body
        // longer than the limit is read up to it and counted oversized: what
        // stood after the cut was not read.
        let text_count = message.text_body.len();
        let mut read_bodies = std::collections::BTreeSet::new();
        let body = |text: &str, content: &mut Content| {
            let bytes = text.as_bytes();
            if bytes.len() > limit {
                content.oversized += 1;
            }
            content
                .parts
                .push(self.detect(Part::Body, &bytes[..bytes.len().min(limit)]));
        };
        // mail-parser lists an HTML-only message's HTML among its text
        // bodies too: whichever list a part is in, HTML is read as HTML.
        let bodies = if text_count == 0 {
            &message.html_body
        } else {
            &message.text_body
        };
        for part_id in bodies {
            if !read_bodies.insert(*part_id) {
                continue;
            }
            match message.part(*part_id).map(|part| &part.body) {
                Some(PartType::Html(html)) => body(&tillsyn_extract::html::text(html), content),
                Some(PartType::Text(text)) => body(text, content),
                _ => {}
            }
        }
        for attachment in message.attachments() {
            let name = attachment.attachment_name().unwrap_or("").to_owned();
            let bytes: &[u8] = match &attachment.body {
                PartType::Text(text) => text.as_bytes(),
                PartType::Html(html) => html.as_bytes(),
                PartType::Binary(bytes) | PartType::InlineBinary(bytes) => bytes,
                PartType::Message(forwarded) => {
                    if depth < FORWARDED_DEPTH {
                        self.message(forwarded, depth + 1, content);
                    } else {
                        content.unreadable += 1;
                    }
                    continue;
                }
                PartType::Multipart(_) => continue,
            };
            let text_part = matches!(attachment.body, PartType::Text(_) | PartType::Html(_))
                || is_text_name(&name);
            if !text_part && tillsyn_extract::kind(&name, bytes).is_none() {
                continue;
            }
            if bytes.len() > limit {
                content.oversized += 1;
                continue;
            }
            if matches!(attachment.body, PartType::Html(_)) || tillsyn_extract::is_html_name(&name)
            {
                let html = String::from_utf8_lossy(bytes);
                content.parts.push(self.detect(
                    Part::Attachment(name),
                    tillsyn_extract::html::text(&html).as_bytes(),
                ));
            } else if text_part {
                content
                    .parts
                    .push(self.detect(Part::Attachment(name), bytes));
            } else if let Some(part) = self.document(Part::Attachment(name.clone()), &name, bytes) {
                match part {
                    Ok((part, truncated)) => {
                        content.oversized += u32::from(truncated);
                        content.parts.push(part);
                    }
                    Err(_) => content.unreadable += 1,
                }
            }
        }
    }
}

/// Forwarded messages inside forwarded messages are read this deep; a deeper
/// one is counted unreadable.
const FORWARDED_DEPTH: u32 = 8;

pub use tillsyn_extract::is_text_name;

impl ContentPlan {
    /// The mapped fields of a directory entry or API item (its attributes),
    /// each run through the detectors, when a content rule looks at it.
    pub fn fields(&self, record: &crate::Record) -> Option<Content> {
        if !(self.wants)(record) {
            return None;
        }
        let parts = record
            .attributes
            .iter()
            .map(|(name, value)| self.detect(Part::Field(name.clone()), value.as_bytes()))
            .collect();
        Some(Content {
            parts,
            ..Content::default()
        })
    }

    /// A document's text through the extractor, run through the detectors,
    /// and whether its text was cut at the limit (then what stood after the
    /// cut was not read: the caller counts it oversized); `None` without an
    /// extractor.
    pub fn document(
        &self,
        part: Part,
        name: &str,
        bytes: &[u8],
    ) -> Option<Result<(ContentPart, bool), tillsyn_extract::ExtractError>> {
        let extractor = self.extractor.as_ref()?;
        Some(extractor.extract(name, bytes).map(|extracted| {
            (
                self.detect(part, extracted.text.as_bytes()),
                extracted.truncated,
            )
        }))
    }
}

impl Content {
    /// What the detectors found, as one line of text: a file's entry in the
    /// share's content cache (`!` when it could not be read). Per detector,
    /// confidence and keyed hash, the number of matches; never a value.
    /// Detector names are escaped.
    pub fn encode_summary(&self) -> String {
        if self.unreadable > 0 || self.oversized > 0 {
            return "!".to_owned();
        }
        let mut counts: std::collections::BTreeMap<(&str, Confidence, IdentityHash), u64> =
            Default::default();
        for found in self.parts.iter().flat_map(|part| &part.matches) {
            *counts
                .entry((&found.detector, found.confidence, found.hash))
                .or_default() += 1;
        }
        counts
            .iter()
            .map(|((detector, confidence, hash), count)| {
                format!(
                    "{}~{}~{count}~{}",
                    detector
                        .replace('%', "%25")
                        .replace(',', "%2C")
                        .replace('~', "%7E"),
                    confidence.as_str(),
                    tillsyn_core::identity::to_hex(hash)
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The content [`Content::encode_summary`] wrote, as one file part with
    /// its matches; `None` when the text is not one (an entry of an older
    /// format is not: the file is read again).
    pub fn decode_summary(text: &str) -> Option<Content> {
        if text == "!" {
            return Some(Content {
                unreadable: 1,
                ..Content::default()
            });
        }
        let mut matches = Vec::new();
        for entry in text.split(',').filter(|entry| !entry.is_empty()) {
            let mut fields = entry.split('~');
            let detector = fields
                .next()?
                .replace("%7E", "~")
                .replace("%2C", ",")
                .replace("%25", "%");
            let confidence = match fields.next()? {
                "low" => Confidence::Low,
                "medium" => Confidence::Medium,
                "high" => Confidence::High,
                _ => return None,
            };
            let count: usize = fields.next()?.parse().ok()?;
            let hash = tillsyn_core::identity::from_hex(fields.next()?)?;
            if fields.next().is_some() || count > 1_000_000 || matches.len() > 10_000_000 {
                return None;
            }
            for _ in 0..count {
                matches.push(ContentMatch {
                    detector: detector.clone(),
                    confidence,
                    hash,
                });
            }
        }
        Some(Content {
            parts: vec![ContentPart {
                part: Part::File,
                matches,
            }],
            ..Content::default()
        })
    }
}
