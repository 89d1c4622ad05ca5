//! The text of a PDF, with its layout's boundaries kept: a line that is
//! apart on the page stays apart in the text, so that a detector never reads
//! the end of one line and the start of the next as one number.
//!
//! Each page's content stream is walked operator by operator:
//! - a new text object (`BT`), a move to the next line (`T*`, `'`, `"`), and
//!   a move or a new matrix that changes the line (`Td`, `TD`, `Tm` with a
//!   vertical offset) end the line;
//! - a move along the same line, and a gap inside a `TJ` array wider than
//!   [`GAP`], become a space;
//! - strings are decoded by their font's encoding (simple encodings and
//!   `ToUnicode` maps, as lopdf reads them).
//!
//! A page whose fonts or content cannot be read is skipped; the rest count.

use std::collections::BTreeMap;

use lopdf::content::Content;
use lopdf::{Document, Encoding, Object};

/// A `TJ` adjustment at or past this (in thousandths of the font size,
/// moving right) is a gap between words, not kerning.
const GAP: f32 = -200.0;

/// The text of every page of `document`, each line on its own, handed to
/// `push` page by page until it returns false.
pub(crate) fn pages(document: &Document, mut push: impl FnMut(&str) -> bool) {
    for (_, page) in document.get_pages() {
        let Ok(text) = page_text(document, page) else {
            continue;
        };
        if !push(&text) {
            break;
        }
    }
}

/// Text gathered line by line.
#[derive(Default)]
struct Lines {
    text: String,
}

impl Lines {
    /// End the current line, unless it is empty.
    fn end_line(&mut self) {
        if !self.text.is_empty() && !self.text.ends_with('\n') {
            self.text.push('\n');
        }
    }

    /// A gap on the current line.
    fn space(&mut self) {
        if !self.text.is_empty() && !self.text.ends_with([' ', '\n']) {
            self.text.push(' ');
        }
    }

    fn push(&mut self, text: &str) {
        self.text.push_str(text);
    }
}

fn number(object: &Object) -> Option<f32> {
    match object {
        Object::Integer(value) => Some(*value as f32),
        Object::Real(value) => Some(*value),
        _ => None,
    }
}

fn page_text(document: &Document, page: lopdf::ObjectId) -> Result<String, lopdf::Error> {
    let encodings: BTreeMap<Vec<u8>, Encoding> = document
        .get_page_fonts(page)?
        .into_iter()
        .filter_map(|(name, font)| {
            font.get_font_encoding(document)
                .ok()
                .map(|encoding| (name, encoding))
        })
        .collect();
    let content = Content::decode(&document.get_page_content(page)?)?;
    let mut lines = Lines::default();
    let mut encoding: Option<&Encoding> = None;
    // The vertical position of the text matrix last set by `Tm`.
    let mut matrix_y: Option<f32> = None;
    let show = |lines: &mut Lines, encoding: Option<&Encoding>, object: &Object| {
        if let (Object::String(bytes, _), Some(encoding)) = (object, encoding)
            && let Ok(text) = Document::decode_text(encoding, bytes)
        {
            lines.push(&text);
        }
    };
    for operation in &content.operations {
        let operands = &operation.operands;
        match operation.operator.as_str() {
            "Tf" => {
                encoding = operands
                    .first()
                    .and_then(|name| name.as_name().ok())
                    .and_then(|name| encodings.get(name));
            }
            "BT" => {
                lines.end_line();
                matrix_y = None;
            }
            "T*" => lines.end_line(),
            "Td" | "TD" => {
                let dx = operands.first().and_then(number).unwrap_or(0.0);
                let dy = operands.get(1).and_then(number).unwrap_or(0.0);
                if dy != 0.0 {
                    lines.end_line();
                } else if dx != 0.0 {
                    lines.space();
                }
            }
            "Tm" => {
                let y = operands.get(5).and_then(number);
                match (matrix_y, y) {
                    (Some(before), Some(now)) if before == now => lines.space(),
                    _ => lines.end_line(),
                }
                matrix_y = y;
            }
            "Tj" => {
                if let Some(text) = operands.first() {
                    show(&mut lines, encoding, text);
                }
            }
            "'" => {
                lines.end_line();
                if let Some(text) = operands.first() {
                    show(&mut lines, encoding, text);
                }
            }
            "\"" => {
                lines.end_line();
                if let Some(text) = operands.get(2) {
                    show(&mut lines, encoding, text);
                }
            }
            "TJ" => {
                let Some(Object::Array(items)) = operands.first() else {
                    continue;
                };
                for item in items {
                    match number(item) {
                        Some(adjustment) if adjustment <= GAP => lines.space(),
                        Some(_) => {}
                        None => show(&mut lines, encoding, item),
                    }
                }
            }
            _ => {}
        }
    }
    lines.end_line();
    Ok(lines.text)
}
