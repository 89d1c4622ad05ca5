//! Modified UTF-7 (RFC 3501 §5.1.3), the encoding IMAP servers, Dovecot's Maildir++
//! folder names among them, use for non-ASCII mailbox names: `Skickade&AOQ-` is
//! "Skickadeä". Undecodable input is returned unchanged rather than rejected: a
//! folder is scanned under its raw name rather than skipped.

/// Decode one mailbox name component.
pub(crate) fn decode(name: &str) -> String {
    decode_strict(name).unwrap_or_else(|| name.to_owned())
}

fn decode_strict(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(start) = rest.find('&') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after.find('-')?;
        let encoded = &after[..end];
        if encoded.is_empty() {
            out.push('&');
        } else {
            let bytes = base64_decode(encoded)?;
            if bytes.len() % 2 != 0 {
                return None;
            }
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect();
            out.push_str(&String::from_utf16(&units).ok()?);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// Base64 with `,` for `/` and no padding.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut bits: u32 = 0;
    let mut bit_count = 0;
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for byte in text.bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b',' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(value);
        bit_count += 6;
        if bit_count >= 8 {
            bit_count -= 8;
            out.push((bits >> bit_count) as u8);
            bits &= (1 << bit_count) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn decodes_mailbox_names() {
        let cases = [
            ("INBOX", "INBOX"),
            ("Skickade objekt", "Skickade objekt"),
            ("Skickat &AOQ-r h&AOQ-r", "Skickat är här"),
            ("&AMUA5AD2-", "Åäö"),
            ("Tom &- Jerry", "Tom & Jerry"),
            ("&Jjo-!", "☺!"),
            ("broken &AOQ", "broken &AOQ"),
            ("&ZeVnLIqe-", "日本語"),
        ];
        for (raw, expected) in cases {
            assert_eq!(decode(raw), expected, "{raw}");
        }
    }
}
