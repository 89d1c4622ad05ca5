//! Validation of every candidate kind but the personnummer (see
//! [`crate::personnummer`]): IBAN country lengths and mod 97, card prefixes,
//! lengths and Luhn, Swedish phone number shapes (normalised to E.164), e-mail
//! addresses, IPv4 octets and IPv6 as the standard library parses it.

use crate::{Builtin, Checksum, Confidence, CustomDetector};

/// A built-in candidate judged: its confidence before context and its
/// normalised value, or `None` when it is not one.
pub(crate) fn builtin(builtin: Builtin, candidate: &[u8]) -> Option<(Confidence, String)> {
    match builtin {
        // Judged by the personnummer rules in the set itself.
        Builtin::Personnummer => None,
        Builtin::Iban => iban(candidate).map(|iban| (Confidence::High, iban)),
        Builtin::PaymentCard => card(candidate).map(|card| (Confidence::Medium, card)),
        Builtin::Phone => phone(candidate).map(|phone| (Confidence::Medium, phone)),
        Builtin::Email => email(candidate).map(|email| (Confidence::High, email)),
        Builtin::Ipv4 => ipv4(candidate).map(|ip| (Confidence::Medium, ip)),
        Builtin::Ipv6 => ipv6(candidate).map(|ip| (Confidence::Medium, ip)),
    }
}

/// A custom candidate passes its checksum, if it has one.
pub(crate) fn custom(custom: &CustomDetector, candidate: &[u8]) -> bool {
    match custom.checksum {
        None => true,
        Some(Checksum::Luhn) => {
            let digits: Vec<u8> = candidate
                .iter()
                .copied()
                .filter(u8::is_ascii_digit)
                .collect();
            crate::checksum::luhn(&digits)
        }
        Some(Checksum::Mod97) => {
            let kept: Vec<u8> = candidate
                .iter()
                .copied()
                .filter(u8::is_ascii_alphanumeric)
                .collect();
            crate::checksum::mod97(&kept)
        }
    }
}

/// IBAN lengths by country (ISO 13616 registry), for the countries whose
/// accounts a Nordic organisation meets; others are checked by mod 97 alone
/// within the general 15–34 range.
const IBAN_LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AT", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"CH", 21),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DK", 18),
    (b"EE", 20),
    (b"ES", 24),
    (b"FI", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GL", 18),
    (b"GR", 27),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IS", 26),
    (b"IT", 27),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"MC", 27),
    (b"MT", 31),
    (b"NL", 18),
    (b"NO", 15),
    (b"PL", 28),
    (b"PT", 25),
    (b"RO", 24),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"TR", 26),
    (b"UA", 29),
];

fn iban(candidate: &[u8]) -> Option<String> {
    let compact: Vec<u8> = candidate.iter().copied().filter(|b| *b != b' ').collect();
    if compact.len() < 15 || compact.len() > 34 {
        return None;
    }
    let country = compact.get(..2)?;
    if let Some((_, length)) = IBAN_LENGTHS.iter().find(|(code, _)| &code[..] == country)
        && compact.len() != *length
    {
        return None;
    }
    crate::checksum::mod97(&compact).then(|| String::from_utf8_lossy(&compact).into_owned())
}

fn card(candidate: &[u8]) -> Option<String> {
    let digits: Vec<u8> = candidate
        .iter()
        .copied()
        .filter(u8::is_ascii_digit)
        .collect();
    let length = digits.len();
    if !(12..=19).contains(&length) {
        return None;
    }
    let prefix = |n: usize| -> u32 {
        digits[..n]
            .iter()
            .fold(0, |value, digit| value * 10 + u32::from(digit - b'0'))
    };
    let known = match digits[0] {
        // Visa.
        b'4' => matches!(length, 13 | 16 | 19),
        // Mastercard (51–55, 2221–2720), Maestro (50, 56–58).
        b'5' => {
            ((51..=55).contains(&prefix(2)) && length == 16) || matches!(prefix(2), 50 | 56..=58)
        }
        b'2' => (2221..=2720).contains(&prefix(4)) && length == 16,
        // Amex (34, 37), Diners (300–305, 36, 38), JCB (3528–3589).
        b'3' => {
            (matches!(prefix(2), 34 | 37) && length == 15)
                || ((300..=305).contains(&prefix(3)) || matches!(prefix(2), 36 | 38))
                    && (14..=19).contains(&length)
                || (3528..=3589).contains(&prefix(4)) && (16..=19).contains(&length)
        }
        // Discover (6011, 644–649, 65), Maestro (6…).
        b'6' => (12..=19).contains(&length),
        _ => false,
    };
    (known && crate::checksum::luhn(&digits)).then(|| String::from_utf8_lossy(&digits).into_owned())
}

/// A Swedish phone number in E.164 (`+46…`), from `+46`, `0046` or a national
/// `0`, with an optional `(0)`: 7 to 9 digits after the country code.
pub(crate) fn phone(candidate: &[u8]) -> Option<String> {
    let mut normalised = String::new();
    phone_into(candidate, &mut normalised).then_some(normalised)
}

/// [`phone`], writing the E.164 form into `out` (cleared first); false when it
/// is no phone number. Allocates nothing once `out` has room.
pub(crate) fn phone_into(candidate: &[u8], out: &mut String) -> bool {
    out.clear();
    if !matches!(candidate.first(), Some(b'0' | b'+')) || candidate.len() > 32 {
        return false;
    }
    let mut kept = [0u8; 32];
    let mut count = 0;
    for byte in candidate {
        if !matches!(byte, b' ' | b'-') {
            kept[count] = *byte;
            count += 1;
        }
    }
    let text = &kept[..count];
    let Some(national) = text
        .strip_prefix(b"+46")
        .or_else(|| text.strip_prefix(b"0046"))
        .or_else(|| text.strip_prefix(b"0"))
    else {
        return false;
    };
    let national = national.strip_prefix(b"(0)").unwrap_or(national);
    if !national.iter().all(u8::is_ascii_digit) || !(7..=9).contains(&national.len()) {
        return false;
    }
    // No trunk zero after the country code, and mobile numbers (7x) have 9.
    match national.first() {
        Some(b'0') | None => return false,
        Some(b'7') if national.len() != 9 => return false,
        _ => {}
    }
    out.push_str("+46");
    // ASCII digits, checked above.
    out.extend(national.iter().map(|digit| char::from(*digit)));
    true
}

fn email(candidate: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(candidate).ok()?;
    let (local, domain) = text.rsplit_once('@')?;
    let top = domain.rsplit('.').next().unwrap_or("");
    if local.is_empty()
        || local.len() > 64
        || domain.len() > 253
        || !(2..=24).contains(&top.len())
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
        || domain
            .split('.')
            .any(|label| label.is_empty() || label.len() > 63 || label.starts_with('-'))
    {
        return None;
    }
    Some(text.to_ascii_lowercase())
}

fn ipv4(candidate: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(candidate).ok()?;
    // Leading zeros are version numbers and dates more often than addresses.
    if text
        .split('.')
        .any(|octet| octet.len() > 1 && octet.starts_with('0'))
    {
        return None;
    }
    text.parse::<std::net::Ipv4Addr>()
        .ok()
        .map(|ip| ip.to_string())
}

fn ipv6(candidate: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(candidate).ok()?;
    // Not a time (10:30:00) nor code (std::vec): at least two groups, a
    // digit, and a letter or a `::` or all eight groups.
    let groups = text.split(':').filter(|group| !group.is_empty()).count();
    if groups < 2
        || !text.bytes().any(|b| b.is_ascii_digit())
        || (!text.contains("::") && groups < 8 && !text.bytes().any(|b| b.is_ascii_alphabetic()))
    {
        return None;
    }
    text.parse::<std::net::Ipv6Addr>()
        .ok()
        .map(|ip| ip.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ibans() {
        assert_eq!(
            iban(b"SE45 5000 0000 0583 9825 7466").as_deref(),
            Some("SE4550000000058398257466")
        );
        assert_eq!(iban(b"SE45 5000 0000 0583 9825 7467"), None, "check digits");
        assert_eq!(iban(b"SE4550000000058398257"), None, "too short for SE");
        assert!(iban(b"GB82WEST12345698765432").is_some());
    }

    #[test]
    fn cards() {
        assert_eq!(
            card(b"4111 1111 1111 1111").as_deref(),
            Some("4111111111111111")
        );
        assert!(card(b"5555-5555-5555-4444").is_some());
        assert!(card(b"378282246310005").is_some(), "Amex");
        assert_eq!(card(b"4111 1111 1111 1112"), None, "Luhn");
        assert_eq!(
            card(b"1234 5678 9012 3452"),
            None,
            "no issuer starts with 1"
        );
        assert_eq!(card(b"4111111111111"), None, "Luhn on 13 digits");
    }

    #[test]
    fn phones_in_e164() {
        for (text, expected) in [
            ("070-123 45 67", Some("+46701234567")),
            ("0701234567", Some("+46701234567")),
            ("+46 70 123 45 67", Some("+46701234567")),
            ("+46 (0)70-123 45 67", Some("+46701234567")),
            ("0046701234567", Some("+46701234567")),
            ("08-123 456 78", Some("+46812345678")),
            ("031-12 34 56", Some("+4631123456")),
            ("070-123 45", None),
            ("0012345678", None),
            ("12345678", None),
        ] {
            assert_eq!(phone(text.as_bytes()).as_deref(), expected, "{text}");
        }
    }

    #[test]
    fn addresses() {
        assert_eq!(
            email(b"Anna.Svensson@Firma.SE").as_deref(),
            Some("anna.svensson@firma.se")
        );
        assert_eq!(email(b"a..b@firma.se"), None);
        assert_eq!(ipv4(b"192.168.10.1").as_deref(), Some("192.168.10.1"));
        assert_eq!(ipv4(b"256.1.1.1"), None);
        assert_eq!(ipv4(b"1.02.3.4"), None);
        assert_eq!(ipv6(b"2001:db8::1").as_deref(), Some("2001:db8::1"));
        assert_eq!(ipv6(b"10:30:00"), None);
        assert_eq!(ipv6(b"d::"), None, "std::vec");
        assert_eq!(ipv6(b"::"), None);
        assert_eq!(
            ipv6(b"fe80::1ff:fe23:4567:890a").as_deref(),
            Some("fe80::1ff:fe23:4567:890a")
        );
    }
}
