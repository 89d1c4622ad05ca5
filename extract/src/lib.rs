//! Text out of the documents people mail and keep on shares: PDF, DOCX, XLSX,
//! ODT/ODS and ZIP archives (nested up to a depth), so that `contains` rules can
//! look inside them. Untrusted input, so:
//!
//! - **Bounded.** Every archive member is read through `take` at its declared
//!   and its real size, decompressed bytes are counted across the whole
//!   document (zip bombs), nesting stops at a depth, and the text kept is
//!   capped. See [`Limits`].
//! - **Isolated.** [`Isolated`] runs the extraction in a child process of the
//!   tillsyn binary (`tillsyn __extract`), with an address-space and a CPU-time
//!   limit and a wall-clock deadline: a panic, a hang or a memory blow-up in a
//!   parser kills only the child, and the document fails alone. The text goes
//!   back over a pipe; nothing touches disk.
//!
//! [`extract`] is the in-process function the child runs.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::panic)]

pub mod html;
mod isolated;
mod pdf;
#[doc(hidden)]
pub mod samples;
mod xml;

use std::io::{Cursor, Read};

pub use isolated::{Isolated, worker_main};

/// The first argument that makes the tillsyn binary an extraction worker.
pub fn isolated_argument() -> &'static str {
    isolated::WORKER_ARGUMENT
}

/// How much is read, at most, per document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// One archive member, decompressed. Default 50 MB.
    pub member_bytes: u64,
    /// Everything decompressed out of one document, all members and nested
    /// archives together. Default 200 MB.
    pub total_bytes: u64,
    /// Archives inside archives, counting the document itself as 1. Default 3.
    pub depth: u32,
    /// Text kept per document. Default 10 MB.
    pub text_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            member_bytes: 50 << 20,
            total_bytes: 200 << 20,
            depth: 3,
            text_bytes: 10 << 20,
        }
    }
}

/// Why a document gave no text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    /// Not a format this crate reads.
    #[error("not a document format tillsyn reads")]
    Unsupported,
    /// It claims a format but is not a valid one (truncated, random bytes).
    #[error("malformed {kind}: {reason}")]
    Malformed {
        /// The format it claimed.
        kind: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// A limit was reached (a zip bomb, an oversized member).
    #[error("over the limit: {0}")]
    TooLarge(&'static str),
    /// Archives nested deeper than the limit.
    #[error("archives nested deeper than {0}")]
    TooDeep(u32),
    /// The worker process failed: killed at its deadline or memory limit,
    /// crashed, or could not start.
    #[error("extraction worker: {0}")]
    Worker(String),
}

impl ExtractError {
    /// Bounded kind, for counters.
    pub fn kind(&self) -> &'static str {
        match self {
            ExtractError::Unsupported => "unsupported",
            ExtractError::Malformed { .. } => "malformed",
            ExtractError::TooLarge(_) => "too_large",
            ExtractError::TooDeep(_) => "too_deep",
            ExtractError::Worker(_) => "worker",
        }
    }
}

/// The formats read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// PDF.
    Pdf,
    /// Word (Office Open XML).
    Docx,
    /// Excel (Office Open XML).
    Xlsx,
    /// OpenDocument text or spreadsheet.
    Odf,
    /// Any other ZIP archive: its members are read in turn.
    Zip,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Pdf => "PDF",
            Kind::Docx => "DOCX",
            Kind::Xlsx => "XLSX",
            Kind::Odf => "OpenDocument",
            Kind::Zip => "ZIP",
        }
    }
}

/// The format of a file named `name` whose bytes start with `head`, when it is
/// one this crate reads. The extension decides among ZIP-based formats; a
/// `.pdf` that does not start like one is still a PDF (and fails as such).
pub fn kind(name: &str, head: &[u8]) -> Option<Kind> {
    let lower = name.to_ascii_lowercase();
    let extension = lower
        .rsplit_once('.')
        .map_or("", |(_, extension)| extension);
    match extension {
        "pdf" => Some(Kind::Pdf),
        "docx" | "docm" | "dotx" => Some(Kind::Docx),
        "xlsx" | "xlsm" | "xltx" => Some(Kind::Xlsx),
        "odt" | "ods" | "odp" | "ott" | "ots" => Some(Kind::Odf),
        "zip" => Some(Kind::Zip),
        _ if head.starts_with(b"%PDF-") => Some(Kind::Pdf),
        _ if head.starts_with(b"PK\x03\x04") => Some(Kind::Zip),
        _ => None,
    }
}

/// The format of a MIME media type (`application/pdf`), when it is one this
/// crate reads: for mail attachments whose names say nothing.
pub fn kind_of_media_type(media_type: &str) -> Option<Kind> {
    match media_type.to_ascii_lowercase().as_str() {
        "application/pdf" | "application/x-pdf" => Some(Kind::Pdf),
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        | "application/vnd.ms-word.document.macroenabled.12" => Some(Kind::Docx),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        | "application/vnd.ms-excel.sheet.macroenabled.12" => Some(Kind::Xlsx),
        "application/vnd.oasis.opendocument.text"
        | "application/vnd.oasis.opendocument.spreadsheet"
        | "application/vnd.oasis.opendocument.presentation" => Some(Kind::Odf),
        "application/zip" | "application/x-zip-compressed" | "application/x-zip" => Some(Kind::Zip),
        _ => None,
    }
}

/// Whether a name is an HTML file, read as [`html::text`] reads it.
pub fn is_html_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".htm") || lower.ends_with(".html")
}

/// Whether a name is one of the text formats read as they are.
pub fn is_text_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [
        ".txt", ".csv", ".tsv", ".log", ".md", ".json", ".xml", ".htm", ".html", ".eml",
    ]
    .iter()
    .any(|extension| lower.ends_with(extension))
        || lower.contains(".log.")
        || lower.contains("access.log")
}

/// A document's text, and whether it was cut at [`Limits::text_bytes`]: what
/// stood after the cut was not read, so a cut document is never read in
/// full.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extracted {
    /// The text, each line, paragraph, cell and page on a line of its own.
    pub text: String,
    /// Text was left out at the limit.
    pub truncated: bool,
}

/// The text of document `name` (`bytes`), in process. Use [`Isolated`] for
/// anything from outside.
pub fn extract(name: &str, bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
    let kind = kind(name, bytes).ok_or(ExtractError::Unsupported)?;
    let mut budget = Budget {
        limits: *limits,
        decompressed: 0,
        text: String::new(),
        truncated: false,
    };
    budget.document(kind, bytes, 1)?;
    Ok(Extracted {
        text: budget.text,
        truncated: budget.truncated,
    })
}

/// What one document has used of its limits, and the text so far.
struct Budget {
    limits: Limits,
    decompressed: u64,
    text: String,
    /// Text was left out at the limit.
    truncated: bool,
}

impl Budget {
    fn document(&mut self, kind: Kind, bytes: &[u8], depth: u32) -> Result<(), ExtractError> {
        if depth > self.limits.depth {
            return Err(ExtractError::TooDeep(self.limits.depth));
        }
        match kind {
            Kind::Pdf => self.pdf(bytes),
            Kind::Docx | Kind::Xlsx | Kind::Odf | Kind::Zip => self.archive(kind, bytes, depth),
        }
    }

    /// Whether there is room for more text; past the limit, what is left is
    /// marked as cut.
    fn has_room(&mut self) -> bool {
        let room = self.text.len() < self.limits.text_bytes;
        self.truncated |= !room;
        room
    }

    fn push(&mut self, text: &str) {
        let room = self.limits.text_bytes.saturating_sub(self.text.len());
        if text.len() > room {
            self.truncated = true;
        }
        if room == 0 {
            return;
        }
        let mut end = text.len().min(room);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        self.text.push_str(&text[..end]);
        self.text.push('\n');
    }

    fn pdf(&mut self, bytes: &[u8]) -> Result<(), ExtractError> {
        let malformed = |reason: String| ExtractError::Malformed {
            kind: "PDF",
            reason,
        };
        if !bytes.starts_with(b"%PDF-") {
            return Err(malformed("it does not start with %PDF-".into()));
        }
        let document =
            lopdf::Document::load_mem(bytes).map_err(|error| malformed(error.to_string()))?;
        pdf::pages(&document, |text| {
            if !self.has_room() {
                return false;
            }
            self.push(text);
            true
        });
        Ok(())
    }

    fn archive(&mut self, kind: Kind, bytes: &[u8], depth: u32) -> Result<(), ExtractError> {
        let malformed = |reason: String| ExtractError::Malformed {
            kind: kind.name(),
            reason,
        };
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
            .map_err(|error| malformed(error.to_string()))?;
        let names: Vec<String> = archive.file_names().map(str::to_owned).collect();
        let wanted: Vec<String> = match kind {
            Kind::Docx => names
                .iter()
                .filter(|name| {
                    name.starts_with("word/")
                        && name.ends_with(".xml")
                        && (name.as_str() == "word/document.xml"
                            || name.starts_with("word/header")
                            || name.starts_with("word/footer")
                            || name.as_str() == "word/footnotes.xml"
                            || name.as_str() == "word/comments.xml")
                })
                .cloned()
                .collect(),
            Kind::Xlsx => names
                .iter()
                .filter(|name| {
                    name.as_str() == "xl/sharedStrings.xml"
                        || (name.starts_with("xl/worksheets/") && name.ends_with(".xml"))
                })
                .cloned()
                .collect(),
            Kind::Odf => names
                .iter()
                .filter(|name| name.as_str() == "content.xml")
                .cloned()
                .collect(),
            Kind::Zip => names.clone(),
            Kind::Pdf => Vec::new(),
        };
        if kind != Kind::Zip && wanted.is_empty() {
            return Err(malformed("none of the format's parts is there".into()));
        }
        for name in wanted {
            if !self.has_room() {
                break;
            }
            let member = self.member(&mut archive, &name)?;
            match kind {
                Kind::Zip => {
                    if let Some(inner) = crate::kind(&name, &member) {
                        self.document(inner, &member, depth + 1)?;
                    } else if is_html_name(&name) {
                        self.push(&html::text(&String::from_utf8_lossy(&member)));
                    } else if is_text_name(&name) {
                        self.push(&String::from_utf8_lossy(&member));
                    }
                }
                _ => {
                    let text = xml::text(&member).map_err(malformed)?;
                    self.push(&text);
                }
            }
        }
        Ok(())
    }

    /// One member's bytes, read within the member and the total limits
    /// whatever its header claims.
    fn member(
        &mut self,
        archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
        name: &str,
    ) -> Result<Vec<u8>, ExtractError> {
        let mut file = archive
            .by_name(name)
            .map_err(|error| ExtractError::Malformed {
                kind: "ZIP",
                reason: format!("member {name:?}: {error}"),
            })?;
        if file.is_dir() {
            return Ok(Vec::new());
        }
        let declared = file.size();
        if declared > self.limits.member_bytes {
            return Err(ExtractError::TooLarge("an archive member's size"));
        }
        let room = self.limits.total_bytes.saturating_sub(self.decompressed);
        if declared > room {
            return Err(ExtractError::TooLarge(
                "the decompressed total of the document",
            ));
        }
        // The header may lie: read one byte past what may be read, and refuse
        // if it is there.
        let cap = self.limits.member_bytes.min(room);
        let mut bytes = Vec::new();
        (&mut file)
            .take(cap + 1)
            .read_to_end(&mut bytes)
            .map_err(|error| ExtractError::Malformed {
                kind: "ZIP",
                reason: format!("member {name:?}: {error}"),
            })?;
        if bytes.len() as u64 > cap {
            return Err(ExtractError::TooLarge("an archive member, as decompressed"));
        }
        self.decompressed += bytes.len() as u64;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests;
