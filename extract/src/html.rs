//! The text of HTML (mail bodies sent as HTML only, `.html` files), with its
//! layout's boundaries kept: block elements, line breaks, table rows and
//! cells and list items each end a line, so text in two cells never runs
//! together for a detector; inline elements (`<b>`, `<span>`, `<a>`) join
//! what they hold, as the page shows it. Character references are decoded
//! (`&amp;`, `&#246;`, `&#x2D;`, `&nbsp;`); scripts, styles and comments are
//! left out.
//!
//! A hand-written scanner, forgiving as browsers are: a `<` that opens no tag
//! is text, an unclosed tag or comment ends the text. It never fails and
//! never panics, whatever the bytes.

/// Elements whose start and end each end a line.
const BLOCKS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "br",
    "caption",
    "center",
    "dd",
    "details",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "title",
    "tr",
    "ul",
];

/// Elements whose content is never text.
const SKIPPED: &[&str] = &["script", "style", "head", "template", "noscript"];

/// The text of `html`.
pub fn text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        push_text(&mut out, &rest[..open]);
        let tag = &rest[open..];
        if let Some(comment) = tag.strip_prefix("<!--") {
            rest = comment.find("-->").map_or("", |end| &comment[end + 3..]);
            continue;
        }
        let Some(close) = tag.find('>') else {
            // An unclosed tag: what follows is not text.
            rest = "";
            break;
        };
        let inside = &tag[1..close];
        rest = &tag[close + 1..];
        let name = tag_name(inside);
        if name.is_empty() {
            // `<` followed by no element name (`a < b`) is text.
            if !inside.starts_with(['/', '!', '?']) {
                push_text(&mut out, &tag[..=close]);
            }
            continue;
        }
        let closing = inside.starts_with('/');
        if !closing && SKIPPED.contains(&name.as_str()) {
            let end = format!("</{name}");
            rest = find_ignoring_case(rest, &end).map_or("", |at| {
                rest[at..].find('>').map_or("", |gt| &rest[at + gt + 1..])
            });
            continue;
        }
        if BLOCKS.contains(&name.as_str()) {
            end_line(&mut out);
        }
    }
    push_text(&mut out, rest);
    end_line(&mut out);
    out
}

/// The lower-cased element name of a tag's inside (`/td`, `br/`, `TD
/// class=x`); empty when it names none.
fn tag_name(inside: &str) -> String {
    inside
        .trim_start_matches('/')
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase()
}

fn find_ignoring_case(haystack: &str, needle: &str) -> Option<usize> {
    let needle = needle.as_bytes();
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle))
}

fn end_line(out: &mut String) {
    let trimmed = out.trim_end_matches([' ', '\t']).len();
    out.truncate(trimmed);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
}

/// Text between tags: white space collapsed as a browser shows it, and
/// character references decoded.
fn push_text(out: &mut String, text: &str) {
    let mut rest = text;
    while !rest.is_empty() {
        let (plain, after) = match rest.find('&') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, ""),
        };
        push_spaced(out, plain);
        rest = after;
        if rest.is_empty() {
            break;
        }
        match reference(rest) {
            Some((decoded, length)) => {
                if decoded.is_whitespace() {
                    push_spaced(out, " ");
                } else {
                    out.push(decoded);
                }
                rest = &rest[length..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
}

fn push_spaced(out: &mut String, text: &str) {
    for c in text.chars() {
        if c.is_whitespace() {
            if !out.is_empty() && !out.ends_with([' ', '\n']) {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
}

/// The character a reference at the start of `text` stands for, and the
/// reference's length; `None` when it is none.
fn reference(text: &str) -> Option<(char, usize)> {
    let end = text.get(1..).and_then(|rest| {
        rest.char_indices()
            .take(32)
            .find(|(_, c)| *c == ';')
            .map(|(at, _)| at + 1)
    })?;
    let body = &text[1..end];
    let decoded = if let Some(number) = body.strip_prefix('#') {
        let value = match number.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => number.parse::<u32>().ok()?,
        };
        char::from_u32(value).filter(|c| *c != '\0')?
    } else {
        named(body)?
    };
    Some((decoded, end + 1))
}

/// The named references mail and office HTML use.
fn named(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" | "ensp" | "emsp" | "thinsp" => ' ',
        "ndash" => '–',
        "mdash" => '—',
        "minus" => '−',
        "shy" => '\u{AD}',
        "hellip" => '…',
        "laquo" => '«',
        "raquo" => '»',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "euro" => '€',
        "copy" => '©',
        "reg" => '®',
        "deg" => '°',
        "sect" => '§',
        "aring" => 'å',
        "Aring" => 'Å',
        "auml" => 'ä',
        "Auml" => 'Ä',
        "ouml" => 'ö',
        "Ouml" => 'Ö',
        "uuml" => 'ü',
        "Uuml" => 'Ü',
        "eacute" => 'é',
        "Eacute" => 'É',
        "egrave" => 'è',
        "aelig" => 'æ',
        "AElig" => 'Æ',
        "oslash" => 'ø',
        "Oslash" => 'Ø',
        "szlig" => 'ß',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cells_and_breaks_end_lines_inline_elements_join() {
        let html = "<html><head><style>td { x: 1 }</style><title>T</title></head><body>\
            <table><tr><td>Kontaktuppgifter</td><td>430815-4725</td></tr>\
            <tr><th>Granskat</th><td>19<b>81</b>1218-9876</td></tr></table>\
            <p>Rad ett<br>rad&nbsp;två &amp; <span>tre</span></p><ul><li>a</li><li>b</li></ul>\
            <script>var x = '<td>';</script><!-- <td>hidden</td> -->sist &#246;&#x2D;&auml;</body></html>";
        let text = text(html);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "Kontaktuppgifter",
                "430815-4725",
                "Granskat",
                "19811218-9876",
                "Rad ett",
                "rad två & tre",
                "a",
                "b",
                "sist ö-ä"
            ]
        );
    }

    #[test]
    fn broken_html_is_text_not_an_error() {
        for html in [
            "a < b",
            "<td",
            "<!-- open",
            "&",
            "&#xZZ;",
            "&#0;",
            "<>x",
            "</>",
        ] {
            let _ = text(html);
        }
        assert_eq!(text("a < b and c > d").trim(), "a < b and c > d");
        assert_eq!(text("x &unknown; y").trim(), "x &unknown; y");
    }
}
