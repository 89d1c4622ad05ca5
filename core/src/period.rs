//! Human-written spans of time: `"31d"`, `"36 months"`, `"7y"`, `"72h"`,
//! `"1 year 6 months"`, and the Swedish `"3 månader"`, `"7 år"`.
//!
//! Retention promises are calendar promises: "36 months from the contact" ends on
//! the same day of the month three years later, not after 36 × 30.44 days. So a
//! [`Period`] keeps months (years are 12 of them) apart from fixed seconds, and adds
//! months on the calendar. A bare `m` is refused as ambiguous (minutes or months?).

use std::fmt;

use chrono::{DateTime, Months, Utc};

/// A span of calendar months plus fixed seconds, with the text it was written as.
#[derive(Clone, PartialEq, Eq)]
pub struct Period {
    months: u32,
    seconds: u64,
    text: String,
}

/// Why a period did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    /// Nothing to parse.
    #[error("empty duration")]
    Empty,
    /// A number was expected.
    #[error("expected a number in {0:?}, e.g. \"31d\", \"36 months\", \"7y\"")]
    MissingNumber(String),
    /// The unit is not one we know.
    #[error("unknown unit {unit:?} in {text:?}; use s, min, h, d, w, months or y")]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole text.
        text: String,
    },
    /// `m` could be minutes or months.
    #[error("ambiguous unit \"m\" in {0:?}: write \"min\" or \"months\"")]
    AmbiguousM(String),
    /// The number does not fit.
    #[error("duration {0:?} is too large")]
    TooLarge(String),
}

impl Period {
    /// A period of whole days.
    pub fn days(days: u64) -> Period {
        Period {
            months: 0,
            seconds: days * 86_400,
            text: format!("{days}d"),
        }
    }

    /// The zero period.
    pub fn zero() -> Period {
        Period::days(0)
    }

    /// Whether it is zero.
    pub fn is_zero(&self) -> bool {
        self.months == 0 && self.seconds == 0
    }

    /// `start` plus this period: months on the calendar (the 31st clamps to the
    /// month's last day), then the seconds. `None` past the representable range.
    pub fn after(&self, start: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let shifted = start.checked_add_months(Months::new(self.months))?;
        let seconds = i64::try_from(self.seconds).ok()?;
        shifted.checked_add_signed(chrono::TimeDelta::try_seconds(seconds)?)
    }

    /// `end` minus this period: the inverse of [`Period::after`] (seconds first,
    /// then calendar months). `None` past the representable range.
    pub fn before(&self, end: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let seconds = i64::try_from(self.seconds).ok()?;
        let shifted = end.checked_sub_signed(chrono::TimeDelta::try_seconds(seconds)?)?;
        shifted.checked_sub_months(Months::new(self.months))
    }

    /// The fixed length, for timeouts and intervals; `None` when the period has
    /// calendar months, whose length varies.
    pub fn fixed(&self) -> Option<std::time::Duration> {
        (self.months == 0).then(|| std::time::Duration::from_secs(self.seconds))
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Period({:?})", self.text)
    }
}

enum Unit {
    Seconds(u64),
    Months(u32),
}

fn unit(name: &str) -> Option<Unit> {
    Some(match name {
        "s" | "sec" | "secs" | "second" | "seconds" | "sek" | "sekund" | "sekunder" => {
            Unit::Seconds(1)
        }
        "min" | "mins" | "minute" | "minutes" | "minut" | "minuter" => Unit::Seconds(60),
        "h" | "hr" | "hrs" | "hour" | "hours" | "tim" | "timme" | "timmar" => Unit::Seconds(3600),
        "d" | "day" | "days" | "dag" | "dagar" => Unit::Seconds(86_400),
        "w" | "wk" | "week" | "weeks" | "v" | "vecka" | "veckor" => Unit::Seconds(604_800),
        "mo" | "mon" | "month" | "months" | "mån" | "månad" | "månader" => Unit::Months(1),
        "y" | "yr" | "yrs" | "year" | "years" | "år" => Unit::Months(12),
        _ => return None,
    })
}

impl std::str::FromStr for Period {
    type Err = PeriodError;

    fn from_str(text: &str) -> Result<Period, PeriodError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(PeriodError::Empty);
        }
        let mut months: u32 = 0;
        let mut seconds: u64 = 0;
        let mut rest = trimmed;
        let too_large = || PeriodError::TooLarge(text.to_owned());
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(PeriodError::MissingNumber(text.to_owned()));
            }
            let number: u64 = rest[..digits].parse().map_err(|_| too_large())?;
            rest = rest[digits..].trim_start();
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c.is_whitespace() || c == ',')
                .unwrap_or(rest.len());
            let name = rest[..unit_len].to_lowercase();
            rest = rest[unit_len..].trim_start_matches([' ', ',']);
            if name == "m" {
                return Err(PeriodError::AmbiguousM(text.to_owned()));
            }
            match unit(&name) {
                Some(Unit::Seconds(scale)) => {
                    let add = number.checked_mul(scale).ok_or_else(too_large)?;
                    seconds = seconds.checked_add(add).ok_or_else(too_large)?;
                }
                Some(Unit::Months(scale)) => {
                    let add = u32::try_from(number)
                        .ok()
                        .and_then(|n| n.checked_mul(scale))
                        .ok_or_else(too_large)?;
                    months = months.checked_add(add).ok_or_else(too_large)?;
                }
                None if name.is_empty() => {
                    return Err(PeriodError::UnknownUnit {
                        unit: String::new(),
                        text: text.to_owned(),
                    });
                }
                None => {
                    return Err(PeriodError::UnknownUnit {
                        unit: name,
                        text: text.to_owned(),
                    });
                }
            }
        }
        // Ten thousand years is far past any retention promise; beyond it chrono's
        // date range ends.
        if months > 120_000 || seconds > 120_000 * 31 * 86_400 {
            return Err(too_large());
        }
        Ok(Period {
            months,
            seconds,
            text: trimmed.to_owned(),
        })
    }
}

impl<'de> serde::Deserialize<'de> for Period {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Period, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 12, 0, 0)
            .single()
            .expect("valid date")
    }

    #[test]
    fn parses_the_forms_policies_use() {
        let start = at(2020, 1, 31);
        let cases: &[(&str, DateTime<Utc>)] = &[
            ("31d", at(2020, 3, 2)),
            ("36 months", at(2023, 1, 31)),
            ("7y", at(2027, 1, 31)),
            ("1 month", at(2020, 2, 29)),
            ("1 year 6 months", at(2021, 7, 31)),
            ("2w", at(2020, 2, 14)),
            ("3 månader", at(2020, 4, 30)),
            ("7 år", at(2027, 1, 31)),
            ("90 dagar", at(2020, 4, 30)),
            ("0d", at(2020, 1, 31)),
        ];
        for (text, expected) in cases {
            let period: Period = text.parse().expect(text);
            assert_eq!(period.after(start), Some(*expected), "{text}");
            assert_eq!(period.to_string(), *text);
        }
        let back: Period = "1 month 1d".parse().expect("period");
        assert_eq!(back.before(at(2020, 3, 31)), Some(at(2020, 2, 29)));
        let hours: Period = "72h".parse().expect("72h");
        assert_eq!(
            hours.fixed(),
            Some(std::time::Duration::from_secs(72 * 3600))
        );
        assert_eq!("1y".parse::<Period>().expect("1y").fixed(), None);
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert_eq!("".parse::<Period>(), Err(PeriodError::Empty));
        assert!(matches!(
            "36m".parse::<Period>(),
            Err(PeriodError::AmbiguousM(_))
        ));
        assert!(matches!(
            "31 fortnights".parse::<Period>(),
            Err(PeriodError::UnknownUnit { .. })
        ));
        assert!(matches!(
            "31".parse::<Period>(),
            Err(PeriodError::UnknownUnit { .. })
        ));
        assert!(matches!(
            "days".parse::<Period>(),
            Err(PeriodError::MissingNumber(_))
        ));
        assert!(matches!(
            "99999999999999999999d".parse::<Period>(),
            Err(PeriodError::TooLarge(_))
        ));
        assert!(matches!(
            "20000y".parse::<Period>(),
            Err(PeriodError::TooLarge(_))
        ));
    }
}
