//! The text of an Office Open XML or OpenDocument part: character data in
//! document order, runs of one paragraph joined as they are (Word splits
//! "811218-9876" over runs freely), a line break after each paragraph, row and
//! cell and for a line break inside a paragraph, a tab for a tab, a space
//! for ODF's space element. What stands apart on the page stays apart, so a
//! detector never reads two cells or lines as one number.

use quick_xml::events::Event;

/// Elements whose end closes a line of text.
fn ends_line(local: &[u8]) -> bool {
    matches!(
        local,
        b"p" | b"tr"
            | b"tc"
            | b"row"
            | b"c"
            | b"si"
            | b"table-cell"
            | b"table-row"
            | b"h"
            | b"list-item"
    )
}

/// The white space an empty element stands for, if it stands for any.
fn space(local: &[u8]) -> Option<char> {
    match local {
        b"br" | b"cr" | b"line-break" => Some('\n'),
        b"tab" => Some('\t'),
        b"s" => Some(' '),
        _ => None,
    }
}

/// The text of one XML part, or why it is no XML.
pub(crate) fn text(bytes: &[u8]) -> Result<String, String> {
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut text = String::new();
    let mut buffer = Vec::new();
    loop {
        match reader.read_event_into(&mut buffer) {
            Ok(Event::Text(chars)) => match chars.unescape() {
                Ok(unescaped) => text.push_str(&unescaped),
                Err(_) => text.push_str(&String::from_utf8_lossy(&chars)),
            },
            Ok(Event::CData(chars)) => text.push_str(&String::from_utf8_lossy(&chars)),
            Ok(Event::End(end)) if ends_line(end.local_name().as_ref()) => text.push('\n'),
            Ok(Event::Empty(empty)) => {
                if let Some(space) = space(empty.local_name().as_ref()) {
                    text.push(space);
                }
            }
            Ok(Event::Start(start)) => {
                if let Some(space) = space(start.local_name().as_ref()) {
                    text.push(space);
                }
            }
            Ok(Event::Eof) => return Ok(text),
            Ok(_) => {}
            Err(error) => {
                return Err(format!("XML at byte {}: {error}", reader.buffer_position()));
            }
        }
        buffer.clear();
    }
}
