//! The check digits identifiers carry: Luhn (personnummer, payment cards,
//! many customer numbers) and ISO 7064 mod 97-10 (IBAN).

/// Whether `digits` (ASCII digits only, check digit last) pass the Luhn test.
/// Anything else than ASCII digits fails.
pub fn luhn(digits: &[u8]) -> bool {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut sum = 0u32;
    for (index, digit) in digits.iter().rev().enumerate() {
        let mut value = u32::from(digit - b'0');
        if index % 2 == 1 {
            value *= 2;
            if value > 9 {
                value -= 9;
            }
        }
        sum += value;
    }
    sum.is_multiple_of(10)
}

/// Whether `text` (letters and digits, no spaces) passes ISO 7064 mod 97-10 as an
/// IBAN does: the first four characters moved to the end, letters as 10–35,
/// the whole number modulo 97 equal to 1.
pub fn mod97(text: &[u8]) -> bool {
    if text.len() < 5 {
        return false;
    }
    let (head, tail) = text.split_at(4);
    let mut remainder = 0u32;
    for byte in tail.iter().chain(head) {
        let value = match byte {
            b'0'..=b'9' => u32::from(byte - b'0'),
            b'A'..=b'Z' => u32::from(byte - b'A') + 10,
            b'a'..=b'z' => u32::from(byte - b'a') + 10,
            _ => return false,
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_cases() {
        for (digits, valid) in [
            ("8112189876", true),
            ("8112189875", false),
            ("4111111111111111", true),
            ("4111111111111112", false),
            ("79927398713", true),
            ("0", true),
            ("", false),
            ("81121x9876", false),
        ] {
            assert_eq!(luhn(digits.as_bytes()), valid, "{digits}");
        }
    }

    #[test]
    fn mod97_cases() {
        for (iban, valid) in [
            ("SE4550000000058398257466", true),
            ("SE4550000000058398257467", false),
            ("GB82WEST12345698765432", true),
            ("DE89370400440532013000", true),
            ("DE89370400440532013001", false),
            ("NO9386011117947", true),
            ("SE45", false),
            ("SE45 5000", false),
        ] {
            assert_eq!(mod97(iban.as_bytes()), valid, "{iban}");
        }
    }
}
