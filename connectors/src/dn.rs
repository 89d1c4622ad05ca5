//! Distinguished names compared as directories compare them (RFC 4514).
//!
//! Group member values written by different tools differ in ways a directory
//! ignores: `CN=Anna Berg, OU=People,dc=example,dc=se`, `cn=anna berg,ou=people,
//! dc=example,dc=se`, `cn=Anna\20Berg,…` and `cn=#…` all name one entry.
//! [`normalise`] gives each the same text: attribute types lower-cased (and
//! OIDs kept), spaces around separators dropped, escapes and hex pairs
//! decoded, values lower-cased (the naming attributes in use, `cn`, `ou`,
//! `dc`, `uid`, `o`, `l`, compare without case), the values of a
//! multi-valued RDN sorted, and the result written back with the escapes RFC
//! 4514 requires. A value in `#hex` form (BER) is kept as lower-cased hex.

/// `dn` in canonical form, or `None` when it is not a DN (no `=`, an escape
/// cut short, bytes that are not UTF-8).
pub fn normalise(dn: &str) -> Option<String> {
    let dn = dn.trim();
    if dn.is_empty() {
        return Some(String::new());
    }
    let mut rdns: Vec<String> = Vec::new();
    for rdn in split_unescaped(dn, &[',', ';'])? {
        let mut avas: Vec<String> = Vec::new();
        for ava in split_unescaped(rdn, &['+'])? {
            let (kind, value) = ava.split_once('=')?;
            let kind = kind.trim();
            if kind.is_empty()
                || !kind
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                return None;
            }
            let value = value_of(value)?;
            avas.push(format!("{}={}", kind.to_ascii_lowercase(), escape(&value)));
        }
        avas.sort();
        rdns.push(avas.join("+"));
    }
    Some(rdns.join(","))
}

/// Whether `a` and `b` name the same entry: equal as normalised DNs, or, when
/// either is no DN, equal ignoring case and outer spaces.
pub fn same(a: &str, b: &str) -> bool {
    if !a.contains('=') || !b.contains('=') {
        return a.trim().eq_ignore_ascii_case(b.trim());
    }
    match (normalise(a), normalise(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a.trim().eq_ignore_ascii_case(b.trim()),
    }
}

/// `value` normalised when it is a DN (it has an `=`), else trimmed and
/// lower-cased: the key values are compared by.
pub fn comparable(value: &str) -> String {
    if value.contains('=')
        && let Some(dn) = normalise(value)
    {
        return dn;
    }
    value.trim().to_lowercase()
}

/// Split `text` at unescaped `separators` (a backslash escapes the next
/// character; within double quotes nothing separates). `None` when it ends
/// in a lone backslash or an open quote.
fn split_unescaped<'a>(text: &'a str, separators: &[char]) -> Option<Vec<&'a str>> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    let mut quoted = false;
    for (index, c) in text.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            c if !quoted && separators.contains(&c) => {
                parts.push(&text[start..index]);
                start = index + c.len_utf8();
            }
            _ => {}
        }
    }
    if escaped || quoted {
        return None;
    }
    parts.push(&text[start..]);
    Some(parts)
}

/// An attribute value as written in a DN, decoded and lower-cased.
fn value_of(written: &str) -> Option<String> {
    // Unescaped spaces at either end do not count; an escaped one does.
    let trimmed = written.trim_start();
    let trimmed = trim_end_unescaped(trimmed);
    if let Some(hex) = trimmed.strip_prefix('#') {
        if hex.is_empty() || hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        return Some(format!("#{}", hex.to_ascii_lowercase()));
    }
    let unquoted = match trimmed
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    {
        Some(inner) => inner,
        None => trimmed,
    };
    let mut bytes: Vec<u8> = Vec::with_capacity(unquoted.len());
    let raw = unquoted.as_bytes();
    let mut index = 0;
    while index < raw.len() {
        if raw[index] == b'\\' {
            let next = *raw.get(index + 1)?;
            let hex_pair = raw
                .get(index + 1..index + 3)
                .filter(|pair| pair.iter().all(u8::is_ascii_hexdigit));
            match hex_pair {
                Some(pair) => {
                    let text = std::str::from_utf8(pair).ok()?;
                    bytes.push(u8::from_str_radix(text, 16).ok()?);
                    index += 3;
                }
                None => {
                    bytes.push(next);
                    index += 2;
                }
            }
        } else {
            bytes.push(raw[index]);
            index += 1;
        }
    }
    let value = String::from_utf8(bytes).ok()?;
    Some(value.to_lowercase())
}

/// `text` without unescaped spaces at its end.
fn trim_end_unescaped(text: &str) -> &str {
    let mut end = text.len();
    while end > 0 && text.as_bytes()[end - 1] == b' ' {
        // Count the backslashes before this space: an odd number escapes it.
        let backslashes = text.as_bytes()[..end - 1]
            .iter()
            .rev()
            .take_while(|byte| **byte == b'\\')
            .count();
        if backslashes % 2 == 1 {
            break;
        }
        end -= 1;
    }
    &text[..end]
}

/// A value written as RFC 4514 requires: `"+,;<>\` and `=` escaped, a
/// leading `#` or space and a trailing space escaped, control characters as
/// hex.
fn escape(value: &str) -> String {
    if value.starts_with('#')
        && value.len() > 1
        && value[1..].bytes().all(|b| b.is_ascii_hexdigit())
    {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (index, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '#' if index == 0 => out.push_str("\\#"),
            ' ' if index == 0 || index == last => out.push_str("\\ "),
            c if c.is_control() => {
                let mut buffer = [0u8; 4];
                for byte in c.encode_utf8(&mut buffer).bytes() {
                    out.push_str(&format!("\\{byte:02x}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spellings_of_one_entry_are_one_and_different_entries_differ() {
        let canonical = "cn=anna berg,ou=people,dc=example,dc=se";
        for spelling in [
            "cn=Anna Berg,ou=People,dc=example,dc=se",
            "CN=Anna Berg, OU=People, DC=example, DC=se",
            "cn = Anna Berg ,ou= people,dc=EXAMPLE,dc=se",
            "cn=Anna\\20Berg,ou=people,dc=example,dc=se",
            "cn=\"Anna Berg\",ou=people,dc=example,dc=se",
            "cn=Anna Berg;ou=people;dc=example;dc=se",
            "  cn=Anna Berg,ou=people,dc=example,dc=se  ",
        ] {
            assert_eq!(
                normalise(spelling).as_deref(),
                Some(canonical),
                "{spelling}"
            );
            assert!(same(spelling, canonical));
        }
        // Escaped separators stay in the value; hex pairs of UTF-8 decode.
        assert_eq!(
            normalise("cn=Berg\\, Anna,ou=people").as_deref(),
            Some("cn=berg\\, anna,ou=people")
        );
        assert_eq!(
            normalise("cn=\\C3\\96berg,ou=people").as_deref(),
            Some("cn=öberg,ou=people")
        );
        assert_eq!(
            normalise("cn=Öberg,ou=people").as_deref(),
            Some("cn=öberg,ou=people")
        );
        // A multi-valued RDN in either order; an escaped trailing space counts.
        assert_eq!(
            normalise("uid=a+cn=B,dc=se"),
            normalise("CN=b + UID=A,dc=se")
        );
        assert_ne!(normalise("cn=a\\ ,dc=se"), normalise("cn=a,dc=se"));
        assert_eq!(
            normalise("cn=#04024869,dc=se").as_deref(),
            Some("cn=#04024869,dc=se")
        );
        assert!(!same(
            "cn=anna berg,ou=people,dc=example,dc=se",
            "cn=anna bergh,ou=people,dc=example,dc=se"
        ));
        assert!(!same("cn=a,ou=x", "cn=a,ou=y"));
        // Not DNs.
        for bad in ["no equals", "cn=a\\", "cn=\"open", "=x", "c n=x", "cn=#zz"] {
            assert_eq!(normalise(bad), None, "{bad}");
        }
        assert_eq!(comparable(" Marketing "), "marketing");
        assert_eq!(
            comparable("CN=Marketing, OU=Lists"),
            "cn=marketing,ou=lists"
        );
    }

    proptest! {
        #[test]
        fn any_text_normalises_or_not_and_normal_forms_are_fixed_points(text in ".{0,60}") {
            if let Some(normal) = normalise(&text) {
                prop_assert_eq!(normalise(&normal), Some(normal.clone()));
            }
        }
    }
}
