//! Which parts of a message are worth fetching, chosen from its BODYSTRUCTURE
//! before any body is read: text parts (an alternative's plain text when it has
//! one, else its HTML), attachments the extractor reads (PDF, Office, OpenDocument,
//! ZIP, by type or file name), text attachments, and `application/octet-stream`
//! (sniffed once fetched). Images, audio, video and the other binary types are
//! never fetched. Forwarded messages (`message/rfc822`) are walked into.
//!
//! Each chosen part carries its IMAP section (`2.1`) and a MIME header made
//! from the structure's type, parameters, transfer encoding and disposition, so
//! that the part's raw bytes (`BODY.PEEK[2.1]`, which has no header of its own)
//! decode as a one-part message, with the same charset and encoding handling as
//! a whole message.

use async_imap::imap_proto::{
    BodyContentCommon, BodyContentSinglePart, BodyParams, BodyStructure, ContentEncoding,
};

/// One part to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WantedPart {
    /// The IMAP section numbers (`[2, 1]` for `BODY.PEEK[2.1]`).
    pub section: Vec<u32>,
    /// A MIME header for the part's raw bytes, ending in the blank line.
    pub header: Vec<u8>,
    /// Its size on the wire, as the server reports it.
    pub octets: u64,
}

/// A section as IMAP writes it: `2.1`.
pub(crate) fn section_text(section: &[u32]) -> String {
    section
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// The parts of one message to fetch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Selection {
    /// Worth reading and under the part limit.
    pub parts: Vec<WantedPart>,
    /// Worth reading but over the part limit: not fetched, and the message is
    /// not fully judged.
    pub too_large: u32,
    /// Not worth reading (images, audio, unreadable binary types).
    pub skipped: u32,
}

impl Selection {
    /// Bytes the chosen parts take on the wire.
    pub fn octets(&self) -> u64 {
        self.parts.iter().map(|part| part.octets).sum()
    }

    /// The sections, as one key: messages of the same shape are fetched
    /// together.
    pub fn shape(&self) -> Vec<Vec<u32>> {
        self.parts.iter().map(|part| part.section.clone()).collect()
    }
}

/// Nesting beyond this is not walked (a hostile structure); the parts below
/// count as too large to read, so the message is not called clean.
const MAX_DEPTH: usize = 32;

/// Choose the parts of a message with structure `root` to read, each at most
/// `part_limit` decoded bytes.
pub(crate) fn select(root: &BodyStructure<'_>, part_limit: u64) -> Selection {
    let mut selection = Selection::default();
    container(root, &[], part_limit, 0, &mut selection);
    selection
}

/// The body of a message (the whole one, or one inside `message/rfc822` at
/// `path`): a multipart's children are `path.1`, `path.2`, …; a single part
/// is `path.1`.
fn container(
    body: &BodyStructure<'_>,
    path: &[u32],
    part_limit: u64,
    depth: usize,
    selection: &mut Selection,
) {
    match body {
        BodyStructure::Multipart { .. } => node(body, path, part_limit, depth, selection),
        _ => node(body, &child(path, 1), part_limit, depth, selection),
    }
}

fn child(path: &[u32], number: u32) -> Vec<u32> {
    let mut section = path.to_vec();
    section.push(number);
    section
}

fn node(
    body: &BodyStructure<'_>,
    path: &[u32],
    part_limit: u64,
    depth: usize,
    selection: &mut Selection,
) {
    if depth > MAX_DEPTH {
        selection.too_large += 1;
        return;
    }
    match body {
        BodyStructure::Multipart { common, bodies, .. } => {
            // An alternative's plain text says what its HTML says: read the
            // plain one when there is one.
            let alternative = common.ty.subtype.eq_ignore_ascii_case("alternative");
            let has_plain = bodies.iter().any(|body| is_plain_text(body));
            for (index, body) in bodies.iter().enumerate() {
                if alternative && has_plain && !is_plain_text(body) {
                    continue;
                }
                let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
                node(body, &child(path, number), part_limit, depth + 1, selection);
            }
        }
        BodyStructure::Message { body, .. } => {
            container(body, path, part_limit, depth + 1, selection);
        }
        BodyStructure::Text { common, other, .. } => {
            leaf(common, other, path, part_limit, selection);
        }
        BodyStructure::Basic { common, other, .. } => {
            if worth_reading(common) {
                leaf(common, other, path, part_limit, selection);
            } else {
                selection.skipped += 1;
            }
        }
    }
}

fn is_plain_text(body: &BodyStructure<'_>) -> bool {
    matches!(body, BodyStructure::Text { common, .. }
        if common.ty.subtype.eq_ignore_ascii_case("plain"))
}

/// The types the extractor reads, and `application/octet-stream`, which may
/// be anything and is sniffed after the fetch. Otherwise the file name decides
/// (a PDF sent as `application/x-something`).
fn worth_reading(common: &BodyContentCommon<'_>) -> bool {
    let ty = common.ty.ty.to_ascii_lowercase();
    let subtype = common.ty.subtype.to_ascii_lowercase();
    if ty == "application"
        && (subtype == "octet-stream"
            || tillsyn_extract::kind_of_media_type(&format!("{ty}/{subtype}")).is_some())
    {
        return true;
    }
    if matches!(
        ty.as_str(),
        "image" | "audio" | "video" | "font" | "model" | "multipart" | "message"
    ) {
        return false;
    }
    let name = file_name(common);
    tillsyn_extract::kind(&name, &[]).is_some() || tillsyn_extract::is_text_name(&name)
}

/// The part's file name, from what the structure carries, decoded when it is
/// an encoded word or RFC 2231 value (by mail-parser, from a made header).
fn file_name(common: &BodyContentCommon<'_>) -> String {
    let header = mime_header(common, &ContentEncoding::SevenBit);
    mail_parser::MessageParser::new()
        .parse(&header)
        .and_then(|message| {
            message
                .parts
                .first()
                .and_then(|part| mail_parser::MimeHeaders::attachment_name(part))
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

fn leaf(
    common: &BodyContentCommon<'_>,
    other: &BodyContentSinglePart<'_>,
    path: &[u32],
    part_limit: u64,
    selection: &mut Selection,
) {
    let octets = u64::from(other.octets);
    // Base64 takes 4 bytes on the wire for 3 decoded, in lines of 76 and a
    // line break (the estimate errs low: the decoded part is checked again).
    let decoded = match other.transfer_encoding {
        ContentEncoding::Base64 => (octets - octets / 78 * 2) / 4 * 3,
        _ => octets,
    };
    if decoded > part_limit {
        selection.too_large += 1;
        return;
    }
    selection.parts.push(WantedPart {
        section: path.to_vec(),
        header: mime_header(common, &other.transfer_encoding),
        octets,
    });
}

/// A MIME header for one part, from its structure: type and parameters,
/// transfer encoding, disposition and its parameters. Values the server sent
/// are quoted, with anything that could end the header line dropped.
fn mime_header(common: &BodyContentCommon<'_>, encoding: &ContentEncoding<'_>) -> Vec<u8> {
    let mut header = format!(
        "Content-Type: {}/{}",
        token(&common.ty.ty).to_ascii_lowercase(),
        token(&common.ty.subtype).to_ascii_lowercase()
    );
    parameters(&mut header, &common.ty.params);
    header.push_str("\r\nContent-Transfer-Encoding: ");
    header.push_str(match encoding {
        ContentEncoding::SevenBit => "7bit",
        ContentEncoding::EightBit => "8bit",
        ContentEncoding::Binary => "binary",
        ContentEncoding::Base64 => "base64",
        ContentEncoding::QuotedPrintable => "quoted-printable",
        ContentEncoding::Other(_) => "binary",
    });
    if let Some(disposition) = &common.disposition {
        header.push_str("\r\nContent-Disposition: ");
        header.push_str(&token(&disposition.ty).to_ascii_lowercase());
        parameters(&mut header, &disposition.params);
    }
    header.push_str("\r\n\r\n");
    header.into_bytes()
}

fn parameters(header: &mut String, params: &BodyParams<'_>) {
    for (name, value) in params.iter().flatten() {
        let name = token(name);
        if name.is_empty() {
            continue;
        }
        header.push_str("; ");
        header.push_str(&name);
        header.push('=');
        // RFC 2231 values (`name*`) are written bare: their own syntax has no
        // quotes and no spaces. Others are quoted.
        if name.ends_with('*') {
            header.push_str(&token(value));
        } else {
            header.push('"');
            for c in imap_unescaped(value).chars().filter(|c| !c.is_control()) {
                if c == '"' || c == '\\' {
                    header.push('\\');
                }
                header.push(c);
            }
            header.push('"');
        }
    }
}

/// A quoted IMAP string as the parser leaves it, escapes and all (`\"`),
/// as the text it stands for.
fn imap_unescaped(value: &str) -> String {
    let mut text = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => text.extend(chars.next()),
            c => text.push(c),
        }
    }
    text
}

/// Only the characters a MIME token (or an RFC 2231 value) may hold.
fn token(text: &str) -> String {
    text.chars()
        .filter(|c| {
            c.is_ascii_graphic() && !matches!(c, '"' | ';' | '(' | ')' | ',' | '<' | '>' | '@')
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_imap::imap_proto::{AttributeValue, Response};

    /// The parts chosen for a FETCH response's BODYSTRUCTURE (as a server
    /// sends it), as `(section, header)`.
    fn chosen(structure: &str, part_limit: u64) -> (Vec<(String, String)>, u32, u32) {
        let line = format!("* 1 FETCH (BODYSTRUCTURE {structure})\r\n");
        let (_, response) = Response::parse(line.as_bytes()).expect("parses");
        let attributes = match response {
            Response::Fetch(_, attributes) => attributes,
            _ => Vec::new(),
        };
        let root = attributes
            .iter()
            .find_map(|attribute| match attribute {
                AttributeValue::BodyStructure(root) => Some(root),
                _ => None,
            })
            .expect("a structure");
        let selection = select(root, part_limit);
        (
            selection
                .parts
                .iter()
                .map(|part| {
                    (
                        section_text(&part.section),
                        String::from_utf8_lossy(&part.header).into_owned(),
                    )
                })
                .collect(),
            selection.too_large,
            selection.skipped,
        )
    }

    fn sections(structure: &str) -> Vec<String> {
        chosen(structure, 1 << 20)
            .0
            .into_iter()
            .map(|(section, _)| section)
            .collect()
    }

    const PLAIN: &str = r#"("text" "plain" ("charset" "iso-8859-1") NIL NIL "quoted-printable" 120 3 NIL NIL NIL NIL)"#;
    const HTML: &str =
        r#"("text" "html" ("charset" "utf-8") NIL NIL "base64" 400 6 NIL NIL NIL NIL)"#;
    const PDF: &str = r#"("application" "pdf" ("name" "intyg.pdf") NIL NIL "base64" 3000 NIL ("attachment" ("filename" "intyg.pdf")) NIL NIL)"#;
    const JPEG: &str = r#"("image" "jpeg" ("name" "foto.jpg") NIL NIL "base64" 90000 NIL ("attachment" ("filename" "foto.jpg")) NIL NIL)"#;

    #[test]
    fn a_single_part_message_is_section_one_with_its_header() {
        let (parts, too_large, skipped) = chosen(PLAIN, 1 << 20);
        assert_eq!((too_large, skipped), (0, 0));
        assert_eq!(
            parts,
            [(
                "1".to_owned(),
                "Content-Type: text/plain; charset=\"iso-8859-1\"\r\n\
                 Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                    .to_owned()
            )]
        );
    }

    #[test]
    fn an_alternative_is_read_once_and_images_never() {
        let alternative = format!(r#"({PLAIN}{HTML} "alternative" ("boundary" "a") NIL NIL NIL)"#);
        let mixed = format!(r#"({alternative}{PDF}{JPEG} "mixed" ("boundary" "m") NIL NIL NIL)"#);
        let (parts, too_large, skipped) = chosen(&mixed, 1 << 20);
        let chosen_sections: Vec<&str> = parts.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(chosen_sections, ["1.1", "2"]);
        assert_eq!((too_large, skipped), (0, 1));
        assert!(
            parts[1].1.contains("filename=\"intyg.pdf\""),
            "{}",
            parts[1].1
        );
        // HTML alone is read.
        let html_only = format!(r#"({HTML}{JPEG} "alternative" ("boundary" "a") NIL NIL NIL)"#);
        assert_eq!(sections(&html_only), ["1"]);
    }

    #[test]
    fn a_forwarded_message_is_walked_into() {
        let inner_mixed = format!(r#"({PLAIN}{PDF} "mixed" ("boundary" "i") NIL NIL NIL)"#);
        let forwarded = format!(
            r#"("message" "rfc822" NIL NIL NIL "7bit" 5000 (NIL "Fwd" NIL NIL NIL NIL NIL NIL NIL NIL) {inner_mixed} 80 NIL NIL NIL NIL)"#
        );
        let outer = format!(r#"({PLAIN}{forwarded} "mixed" ("boundary" "o") NIL NIL NIL)"#);
        assert_eq!(sections(&outer), ["1", "2.1", "2.2"]);
        let forwarded_single = format!(
            r#"("message" "rfc822" NIL NIL NIL "7bit" 500 (NIL "Fwd" NIL NIL NIL NIL NIL NIL NIL NIL) {PLAIN} 8 NIL NIL NIL NIL)"#
        );
        let outer = format!(r#"({PLAIN}{forwarded_single} "mixed" ("boundary" "o") NIL NIL NIL)"#);
        assert_eq!(sections(&outer), ["1", "2.1"]);
    }

    #[test]
    fn readable_binaries_by_type_or_name_and_octet_streams_are_read() {
        let by_name = r#"("application" "x-unknown" NIL NIL NIL "base64" 300 NIL ("attachment" ("filename" "lista.xlsx")) NIL NIL)"#;
        let by_type = r#"("application" "vnd.openxmlformats-officedocument.wordprocessingml.document" NIL NIL NIL "base64" 300 NIL NIL NIL NIL)"#;
        let encoded_name = r#"("application" "x-unknown" NIL NIL NIL "base64" 300 NIL ("attachment" ("filename" "=?utf-8?q?s=C3=B6kande.pdf?=")) NIL NIL)"#;
        let continued = r#"("application" "x-unknown" NIL NIL NIL "base64" 300 NIL ("attachment" ("filename*" "utf-8''s%C3%B6kande.odt")) NIL NIL)"#;
        let octets = r#"("application" "octet-stream" NIL NIL NIL "base64" 300 NIL NIL NIL NIL)"#;
        let word97 =
            r#"("application" "msword" ("name" "cv.doc") NIL NIL "base64" 300 NIL NIL NIL NIL)"#;
        let mixed = format!(
            r#"({by_name}{by_type}{encoded_name}{continued}{octets}{word97}{JPEG} "mixed" ("boundary" "m") NIL NIL NIL)"#
        );
        let (parts, too_large, skipped) = chosen(&mixed, 1 << 20);
        let chosen_sections: Vec<&str> = parts.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(chosen_sections, ["1", "2", "3", "4", "5"]);
        assert_eq!((too_large, skipped), (0, 2));
    }

    #[test]
    fn parts_over_the_limit_are_counted_not_chosen() {
        let mixed = format!(r#"({PLAIN}{PDF} "mixed" ("boundary" "m") NIL NIL NIL)"#);
        // The PDF is 3000 base64 octets in 38 lines, 2193 bytes decoded.
        let (parts, too_large, _) = chosen(&mixed, 2192);
        assert_eq!(parts.len(), 1);
        assert_eq!(too_large, 1);
        let (parts, too_large, _) = chosen(&mixed, 2193);
        assert_eq!((parts.len(), too_large), (2, 0));
    }

    #[test]
    fn a_hostile_parameter_cannot_add_a_header_line() {
        let hostile = r#"("text" "plain" ("charset" "utf-8\"; x=\"y") NIL NIL "8bit" 10 1 NIL ("attachment" ("filename" "a\"b.txt")) NIL NIL)"#;
        let (parts, _, _) = chosen(hostile, 1 << 20);
        let header = &parts[0].1;
        assert_eq!(header.matches("\r\n").count(), 4, "{header}");
        assert!(header.contains(r#"filename="a\"b.txt""#), "{header}");
        let parsed = mail_parser::MessageParser::new()
            .parse(header.as_bytes())
            .expect("parses");
        assert_eq!(
            mail_parser::MimeHeaders::attachment_name(&parsed.parts[0]),
            Some("a\"b.txt")
        );
    }
}
