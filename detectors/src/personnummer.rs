//! Swedish personal identity numbers (personnummer) and coordination numbers
//! (samordningsnummer), validated as the Tax Agency defines them.
//!
//! Accepted forms: `YYMMDD-NNNC`, `YYMMDD+NNNC` (`+` means 100 years or older),
//! `YYMMDDNNNC`, `YYYYMMDD-NNNC` and `YYYYMMDDNNNC`. The Luhn check digit is
//! computed over the ten digits `YYMMDDNNNC` as written; the date must exist,
//! with 60 added to the day for a samordningsnummer; the century comes from the
//! 12-digit form, else from the separator and today's date (the most recent
//! year that is not in the future). An organisationsnummer (month digits 20 or
//! more) passes Luhn too but is never a person.

/// Today's date, for the century of 10-digit numbers (a parameter, so the
/// detectors stay pure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Today {
    /// Year, e.g. 2026.
    pub year: u32,
    /// Month, 1–12.
    pub month: u32,
    /// Day, 1–31.
    pub day: u32,
}

/// What a candidate turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A person's number.
    Person {
        /// The 12 canonical digits, `YYYYMMDDNNNC` (the day as written, so a
        /// samordningsnummer keeps its +60).
        canonical: [u8; 12],
        /// A samordningsnummer (day + 60).
        coordination: bool,
        /// Written with a separator or as 12 digits (not a bare 10-digit run).
        formatted: bool,
    },
    /// An organisationsnummer: valid, but not a person.
    Organisation,
    /// Not a valid number.
    Invalid,
}

/// Judge `text` (digits with at most one `-` or `+`, nothing else).
pub fn judge(text: &[u8], today: Today) -> Verdict {
    if text.len() > 13 {
        return Verdict::Invalid;
    }
    let separator = text.iter().position(|b| *b == b'-' || *b == b'+');
    let mut digits = [0u8; 13];
    let mut count = 0;
    for byte in text {
        if byte.is_ascii_digit() {
            digits[count] = *byte;
            count += 1;
        }
    }
    let digits = &digits[..count];
    if digits.len() + usize::from(separator.is_some()) != text.len() {
        return Verdict::Invalid;
    }
    // The separator stands before the last four digits.
    if let Some(at) = separator
        && at + 5 != text.len()
    {
        return Verdict::Invalid;
    }
    let plus = separator.is_some_and(|at| text[at] == b'+');
    let (century, ten): (Option<u32>, &[u8]) = match digits.len() {
        12 => (Some(number(&digits[..2])), &digits[2..]),
        10 => (None, digits),
        _ => return Verdict::Invalid,
    };
    if !crate::checksum::luhn(ten) {
        return Verdict::Invalid;
    }
    let yy = number(&ten[..2]);
    let month = number(&ten[2..4]);
    let written_day = number(&ten[4..6]);
    if month >= 20 {
        return Verdict::Organisation;
    }
    let (day, coordination) = if written_day > 60 {
        (written_day - 60, true)
    } else {
        (written_day, false)
    };
    let year = match century {
        Some(century) => {
            if !(18..=20).contains(&century) || plus {
                return Verdict::Invalid;
            }
            century * 100 + yy
        }
        None => {
            let mut year = today.year - ((today.year + 100 - yy) % 100);
            if (year, month, day) > (today.year, today.month, today.day) {
                year -= 100;
            }
            if plus {
                year -= 100;
            }
            year
        }
    };
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Verdict::Invalid;
    }
    if (year, month, day) > (today.year, today.month, today.day) {
        return Verdict::Invalid;
    }
    let mut canonical = [0u8; 12];
    for (index, place) in [1000, 100, 10, 1].iter().enumerate() {
        // `year` has four digits: 1800–2099.
        canonical[index] = b'0' + ((year / place) % 10) as u8;
    }
    canonical[4..].copy_from_slice(&ten[2..]);
    Verdict::Person {
        canonical,
        coordination,
        formatted: separator.is_some() || digits.len() == 12,
    }
}

fn number(digits: &[u8]) -> u32 {
    digits
        .iter()
        .fold(0, |value, digit| value * 10 + u32::from(digit - b'0'))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: Today = Today {
        year: 2026,
        month: 11,
        day: 30,
    };

    fn person(text: &str) -> Option<(String, bool, bool)> {
        match judge(text.as_bytes(), TODAY) {
            Verdict::Person {
                canonical,
                coordination,
                formatted,
            } => Some((
                String::from_utf8_lossy(&canonical).into_owned(),
                coordination,
                formatted,
            )),
            _ => None,
        }
    }

    #[test]
    fn every_written_form_of_one_number() {
        for text in ["811218-9876", "8112189876", "19811218-9876", "198112189876"] {
            let (canonical, coordination, formatted) = person(text).expect(text);
            assert_eq!(canonical, "198112189876", "{text}");
            assert!(!coordination);
            assert_eq!(formatted, text != "8112189876", "{text}");
        }
    }

    #[test]
    fn the_century_comes_from_the_separator_and_today() {
        // 12 years old, and (with +) 112 years old.
        assert_eq!(
            person("141231-2389").map(|p| p.0).as_deref(),
            Some("201412312389")
        );
        assert_eq!(
            person("141231+2389").map(|p| p.0).as_deref(),
            Some("191412312389")
        );
        // A date later this year in the 2000s would be in the future: 1900s.
        assert_eq!(
            person("261231-2385").map(|p| p.0).as_deref(),
            Some("192612312385")
        );
        // 12 digits say their century; a date in the future is no one.
        assert_eq!(person("20261231-2385"), None);
        assert_eq!(person("18991231+1234"), None, "+ with 12 digits");
    }

    #[test]
    fn samordningsnummer_add_60_to_the_day() {
        let (canonical, coordination, _) = person("701063-2391").expect("samordning");
        assert_eq!(canonical, "197010632391");
        assert!(coordination);
        // Day 92 (32 + 60) does not exist.
        assert_eq!(person("701092-2396"), None);
    }

    #[test]
    fn invalid_numbers_and_organisations_are_not_people() {
        for (text, expected) in [
            ("811218-9875", Verdict::Invalid),      // check digit
            ("811318-9875", Verdict::Invalid),      // month 13 (Luhn-valid)
            ("810230-9872", Verdict::Invalid),      // 30 February (Luhn-valid)
            ("5566778899", Verdict::Organisation),  // organisationsnummer
            ("556677-8899", Verdict::Organisation), // with its dash
            ("81121-89876", Verdict::Invalid),      // separator misplaced
            ("81121898765", Verdict::Invalid),      // 11 digits
            ("8112189876-", Verdict::Invalid),
        ] {
            assert_eq!(judge(text.as_bytes(), TODAY), expected, "{text}");
        }
        // Leap days: 2000 was one, 1900 was not.
        assert!(person("20000229-0005").is_some());
        let leap_valid = (0..10)
            .map(|check| format!("000229-000{check}"))
            .find(|text| person(text).is_some());
        assert!(
            leap_valid.is_some(),
            "some check digit makes 29 Feb 2000 valid"
        );
        let not_leap = (0..10)
            .map(|check| format!("19000229-000{check}"))
            .find(|text| person(text).is_some());
        assert_eq!(not_leap, None, "29 Feb 1900 does not exist");
    }
}
