//! The one date policy, and dates as real stores write them.
//!
//! [`parse_date`] reads GeneralizedTime, ISO 8601 (with or without an
//! offset), `YYYYMMDD`, Unix seconds or milliseconds, and Active Directory
//! FILETIME (100 ns ticks since 1601; `0` and `9223372036854775807` mean
//! never). A date without a time is midnight, and a time without an offset
//! is local time, in the organisation's time zone (`daemon.timezone`):
//! [`midnight`] is the one rule for that, used wherever tillsyn reads a date
//! (a directory or API field, a marker file, a path, the erasure register,
//! `--since`, an exception's `until`). [`instant`] reads what a person types:
//! an RFC 3339 time or a local day.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

/// How a date is written, when guessing could go wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DateFormat {
    /// Recognise any of the formats below (see [`parse_date`]).
    #[default]
    Auto,
    /// LDAP GeneralizedTime: `20240115103000Z`, with an optional fraction and
    /// offset.
    GeneralizedTime,
    /// ISO 8601 / RFC 3339: `2024-01-15`, `2024-01-15T10:30:00+01:00`,
    /// `2024-01-15 10:30:00` (local).
    Iso8601,
    /// `20240115`.
    Yyyymmdd,
    /// Seconds since 1970.
    UnixSeconds,
    /// Milliseconds since 1970.
    UnixMillis,
    /// Active Directory FILETIME: 100 ns ticks since 1601.
    Filetime,
}

/// A date as a store gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateValue {
    /// A point in time.
    At(DateTime<Utc>),
    /// The store's way of saying there is none (FILETIME `0` or its maximum).
    Never,
}

/// Seconds from 1601-01-01 (FILETIME's epoch) to 1970-01-01.
const FILETIME_EPOCH_OFFSET: i64 = 11_644_473_600;

/// FILETIME's "never" besides `0`.
const FILETIME_NEVER: i64 = i64::MAX;

/// Read `text` as a date written in `format`, with `zone` for dates without
/// a time and times without an offset; `None` when it is not one.
///
/// With [`DateFormat::Auto`]: a value of digits only is `YYYYMMDD` (8
/// digits), Unix seconds (9–11), Unix milliseconds (13) or FILETIME (17–19),
/// and `0` is never; digits with `Z` or an offset are GeneralizedTime;
/// anything else is tried as ISO 8601. Other lengths of digits are
/// ambiguous: name the format.
pub fn parse_date(text: &str, format: DateFormat, zone: Tz) -> Option<DateValue> {
    let text = text.trim();
    match format {
        DateFormat::Auto => auto(text, zone),
        DateFormat::GeneralizedTime => generalized_time(text).map(DateValue::At),
        DateFormat::Iso8601 => iso8601(text, zone).map(DateValue::At),
        DateFormat::Yyyymmdd => yyyymmdd(text, zone).map(DateValue::At),
        DateFormat::UnixSeconds => unix(text, 1).map(DateValue::At),
        DateFormat::UnixMillis => unix(text, 1000).map(DateValue::At),
        DateFormat::Filetime => filetime(text),
    }
}

fn auto(text: &str, zone: Tz) -> Option<DateValue> {
    if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
        if text.bytes().all(|byte| byte == b'0') {
            return Some(DateValue::Never);
        }
        return match text.len() {
            8 => yyyymmdd(text, zone).map(DateValue::At),
            9..=11 => unix(text, 1).map(DateValue::At),
            13 => unix(text, 1000).map(DateValue::At),
            17..=19 => filetime(text),
            _ => None,
        };
    }
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits >= 10 {
        return generalized_time(text).map(DateValue::At);
    }
    iso8601(text, zone).map(DateValue::At)
}

/// Midnight of `date` in `zone` (or the first moment of the day, where a
/// clock change skips midnight).
///
/// **The one date policy.** A date without a time, wherever tillsyn reads
/// one (a directory or API field, a marker file, a path, the erasure
/// register, `--since`, an exception's `until`), means this: the start of
/// that day in `daemon.timezone`.
pub fn midnight(date: NaiveDate, zone: Tz) -> Option<DateTime<Utc>> {
    local(date.and_hms_opt(0, 0, 0)?, zone)
}

/// A bare `YYYY-MM-DD` (trimmed) as [`midnight`] in `zone`; `None` for any
/// other text.
pub fn day(text: &str, zone: Tz) -> Option<DateTime<Utc>> {
    midnight(
        NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()?,
        zone,
    )
}

/// The end of the bare `YYYY-MM-DD` `text` (trimmed): the next day's
/// [`midnight`] in `zone` (an exception's `until` day is still inside it).
pub fn day_end(text: &str, zone: Tz) -> Option<DateTime<Utc>> {
    midnight(
        NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
            .ok()?
            .succ_opt()?,
        zone,
    )
}

/// `time` read on the wall clock of `zone`.
fn local(time: NaiveDateTime, zone: Tz) -> Option<DateTime<Utc>> {
    match zone.from_local_datetime(&time) {
        chrono::LocalResult::Single(at) => Some(at.with_timezone(&Utc)),
        chrono::LocalResult::Ambiguous(earlier, _) => Some(earlier.with_timezone(&Utc)),
        // Skipped by a clock change: an hour later is there.
        chrono::LocalResult::None => local(time + chrono::TimeDelta::hours(1), zone),
    }
}

fn yyyymmdd(text: &str, zone: Tz) -> Option<DateTime<Utc>> {
    if text.len() != 8 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    midnight(NaiveDate::parse_from_str(text, "%Y%m%d").ok()?, zone)
}

fn unix(text: &str, per_second: i64) -> Option<DateTime<Utc>> {
    let value: i64 = text.parse().ok()?;
    DateTime::from_timestamp(
        value.div_euclid(per_second),
        (value.rem_euclid(per_second) * (1_000_000_000 / per_second)) as u32,
    )
}

fn filetime(text: &str) -> Option<DateValue> {
    let ticks: i64 = text.parse().ok()?;
    if ticks == 0 || ticks == FILETIME_NEVER {
        return Some(DateValue::Never);
    }
    if ticks < 0 {
        return None;
    }
    let seconds = ticks / 10_000_000 - FILETIME_EPOCH_OFFSET;
    let nanos = (ticks % 10_000_000) * 100;
    DateTime::from_timestamp(seconds, nanos as u32).map(DateValue::At)
}

fn iso8601(text: &str, zone: Tz) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    // A space for the T, or an offset without a colon.
    for pattern in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%z",
    ] {
        if let Ok(time) = DateTime::parse_from_str(text, pattern) {
            return Some(time.with_timezone(&Utc));
        }
    }
    if let Some(utc) = text.strip_suffix(['Z', 'z'])
        && let Some(time) = naive_time(utc)
    {
        return Some(time.and_utc());
    }
    if let Some(time) = naive_time(text) {
        return local(time, zone);
    }
    day(text, zone)
}

fn naive_time(text: &str) -> Option<NaiveDateTime> {
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|pattern| NaiveDateTime::parse_from_str(text, pattern).ok())
}

/// LDAP GeneralizedTime (`20240115103000Z`, `202401151030Z`, `2024011510Z`,
/// with an optional fraction, and `Z` or `±hh[mm]`).
pub fn generalized_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    let rest = &text[digits.len()..];
    let base = match digits.len() {
        14 => NaiveDateTime::parse_from_str(&digits, "%Y%m%d%H%M%S").ok()?,
        12 => NaiveDateTime::parse_from_str(&format!("{digits}00"), "%Y%m%d%H%M%S").ok()?,
        10 => NaiveDateTime::parse_from_str(&format!("{digits}0000"), "%Y%m%d%H%M%S").ok()?,
        _ => return None,
    };
    // Skip a fraction (".123" or ",123"), then read Z or ±hhmm.
    let rest = rest
        .strip_prefix(['.', ','])
        .map(|after| after.trim_start_matches(|c: char| c.is_ascii_digit()))
        .unwrap_or(rest);
    let offset_seconds = match rest {
        "Z" | "z" => 0,
        // ASCII only: the slices below are by byte, and a server may send
        // anything after the digits.
        offset if offset.is_ascii() && (offset.len() == 5 || offset.len() == 3) => {
            let sign = match &offset[..1] {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let hours: i32 = offset[1..3].parse().ok()?;
            let minutes: i32 = if offset.len() == 5 {
                offset[3..5].parse().ok()?
            } else {
                0
            };
            sign * (hours * 3600 + minutes * 60)
        }
        _ => return None,
    };
    Some(base.and_utc() - chrono::TimeDelta::seconds(i64::from(offset_seconds)))
}

/// An RFC 3339 time, or a bare `YYYY-MM-DD` as [`midnight`] in `zone`:
/// what a person writes for a moment (`--since`, the erasure register's
/// request date, an API's date field). `None` for anything else.
pub fn instant(text: &str, zone: Tz) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    day(text, zone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STOCKHOLM: Tz = chrono_tz::Europe::Stockholm;

    fn read(text: &str, format: DateFormat) -> Option<String> {
        parse_date(text, format, STOCKHOLM).map(|value| match value {
            DateValue::At(time) => time.to_rfc3339(),
            DateValue::Never => "never".to_owned(),
        })
    }

    #[test]
    fn every_format_reads_as_stores_write_it() {
        use DateFormat::*;
        let cases: &[(&str, DateFormat, Option<&str>)] = &[
            ("20240115103000Z", Auto, Some("2024-01-15T10:30:00+00:00")),
            (
                "20240115103000.5Z",
                GeneralizedTime,
                Some("2024-01-15T10:30:00+00:00"),
            ),
            (
                "20240115103000+0200",
                Auto,
                Some("2024-01-15T08:30:00+00:00"),
            ),
            ("202401151030Z", Auto, Some("2024-01-15T10:30:00+00:00")),
            // Date only: midnight in Stockholm (winter: UTC+1, summer: UTC+2).
            ("2024-01-15", Auto, Some("2024-01-14T23:00:00+00:00")),
            ("2024-07-15", Iso8601, Some("2024-07-14T22:00:00+00:00")),
            ("20240115", Auto, Some("2024-01-14T23:00:00+00:00")),
            (
                "2024-01-15T10:30:00+01:00",
                Auto,
                Some("2024-01-15T09:30:00+00:00"),
            ),
            (
                "2024-01-15T10:30:00Z",
                Auto,
                Some("2024-01-15T10:30:00+00:00"),
            ),
            (
                "2024-01-15T10:30:00.123Z",
                Auto,
                Some("2024-01-15T10:30:00.123+00:00"),
            ),
            // No offset: local time.
            (
                "2024-01-15 10:30:00",
                Auto,
                Some("2024-01-15T09:30:00+00:00"),
            ),
            ("2024-01-15T10:30", Auto, Some("2024-01-15T09:30:00+00:00")),
            ("1705314600", Auto, Some("2024-01-15T10:30:00+00:00")),
            ("1705314600000", Auto, Some("2024-01-15T10:30:00+00:00")),
            (
                "1705314600123",
                UnixMillis,
                Some("2024-01-15T10:30:00.123+00:00"),
            ),
            ("1705314600", UnixSeconds, Some("2024-01-15T10:30:00+00:00")),
            // FILETIME: 2024-01-15T10:30:00Z, and AD's two nevers.
            (
                "133497882000000000",
                Auto,
                Some("2024-01-15T10:30:00+00:00"),
            ),
            (
                "133497882000000000",
                Filetime,
                Some("2024-01-15T10:30:00+00:00"),
            ),
            ("0", Auto, Some("never")),
            ("0", Filetime, Some("never")),
            ("9223372036854775807", Auto, Some("never")),
            ("9223372036854775807", Filetime, Some("never")),
            ("-1", Filetime, None),
            // Not dates, or ambiguous without a format.
            ("2024-13-01", Auto, None),
            ("20241315", Auto, None),
            ("20240115103000", Auto, None),
            ("123456", Auto, None),
            ("yesterday", Auto, None),
            ("", Auto, None),
            ("2024-01-15", Yyyymmdd, None),
            ("20240115", Iso8601, None),
        ];
        for (text, format, expected) in cases {
            assert_eq!(
                read(text, *format).as_deref(),
                *expected,
                "{text:?} as {format:?}"
            );
        }
    }

    #[test]
    fn an_instant_is_rfc3339_or_a_local_day() {
        assert_eq!(
            instant("2024-01-15T10:30:00+01:00", STOCKHOLM).map(|t| t.to_rfc3339()),
            Some("2024-01-15T09:30:00+00:00".to_owned())
        );
        assert_eq!(
            instant(" 2024-07-15 ", STOCKHOLM).map(|t| t.to_rfc3339()),
            Some("2024-07-14T22:00:00+00:00".to_owned())
        );
        for text in ["", "15/1/2024", "2024-02-30", "1705314600"] {
            assert_eq!(instant(text, STOCKHOLM), None, "{text:?}");
        }
    }

    proptest! {
        #[test]
        fn any_text_is_a_date_or_not_never_a_panic(text in ".{0,40}", digits in "[0-9]{1,20}") {
            for format in [
                DateFormat::Auto,
                DateFormat::GeneralizedTime,
                DateFormat::Iso8601,
                DateFormat::Yyyymmdd,
                DateFormat::UnixSeconds,
                DateFormat::UnixMillis,
                DateFormat::Filetime,
            ] {
                let _ = parse_date(&text, format, STOCKHOLM);
                let _ = parse_date(&digits, format, STOCKHOLM);
            }
        }
    }
}
