//! Values as real stores keep them: dates in the formats directories and APIs
//! write, and a pattern that picks a value out of a longer one.
//!
//! A source maps a record attribute or date either to where the store keeps
//! it (`contract_end = "contractEnd"`) or, with more to say, to a table:
//! `contract_end = { attribute = "info", pattern = "slutdatum:\\s*(\\d{4}-\\d{2}-\\d{2})", format = "iso8601" }`
//! (`pointer` instead of `attribute` for an HTTP source). The pattern is a
//! regex with one capture group, tried on each value in turn; the first value
//! it matches gives the capture. A value it does not match is no error (the
//! record simply lacks it); a date captured that does not read as one is.
//!
//! Dates are read by [`tillsyn_core::dates::parse_date`]: GeneralizedTime, ISO 8601 (with or
//! without an offset), `YYYYMMDD`, Unix seconds or milliseconds, and Active
//! Directory FILETIME (100 ns ticks since 1601; `0` and `9223372036854775807`
//! mean never). A date without a time is midnight, and a time without an
//! offset is local time, in the organisation's time zone (`daemon.timezone`).

use chrono_tz::Tz;
use serde::{Deserialize, Deserializer};
use tillsyn_core::dates::{DateFormat, DateValue, parse_date};

/// A regex with one capture group: what it captures is the value.
#[derive(Debug, Clone)]
pub struct ValuePattern(regex::Regex);

impl ValuePattern {
    /// Compile `pattern`; an error says why it cannot be used.
    pub fn new(pattern: &str) -> Result<ValuePattern, String> {
        let regex = regex::Regex::new(pattern).map_err(|error| format!("bad pattern: {error}"))?;
        // Group 0 is the whole match.
        match regex.captures_len() {
            2 => Ok(ValuePattern(regex)),
            groups => Err(format!(
                "pattern {pattern:?} has {} capture groups; it needs exactly one, around the value",
                groups - 1
            )),
        }
    }

    /// What the group captures in `value`, when it matches.
    pub fn capture<'a>(&self, value: &'a str) -> Option<&'a str> {
        self.0
            .captures(value)
            .and_then(|captures| captures.get(1))
            .map(|group| group.as_str())
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl PartialEq for ValuePattern {
    fn eq(&self, other: &ValuePattern) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for ValuePattern {}

impl std::hash::Hash for ValuePattern {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

/// A value picked as a date that does not read as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotADate;

/// Where a store keeps a record's attribute or date, and how to read it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ValueMapping {
    /// The LDAP attribute or the JSON pointer.
    pub from: String,
    /// Picks the value out of a longer one. Default: the whole value.
    pub pattern: Option<ValuePattern>,
    /// How a date is written. Default: [`DateFormat::Auto`].
    pub format: DateFormat,
    /// For flags kept as bits of a number (Active Directory's
    /// `userAccountControl`: 2 is "disabled"): the value becomes `true` when
    /// any of these bits is set, else `false`. Default: none.
    pub flag: Option<u64>,
}

impl ValueMapping {
    /// A mapping of the whole value at `from`.
    pub fn plain(from: impl Into<String>) -> ValueMapping {
        ValueMapping {
            from: from.into(),
            pattern: None,
            format: DateFormat::Auto,
            flag: None,
        }
    }

    /// A value as the mapping gives it: captured by the pattern, then read
    /// as a flag.
    fn read<'a>(&self, value: &'a str) -> Option<&'a str> {
        let value = match &self.pattern {
            None => value,
            Some(pattern) => pattern.capture(value)?,
        };
        match self.flag {
            None => Some(value),
            Some(bits) => {
                let number: i64 = value.trim().parse().ok()?;
                Some(if (number as u64) & bits != 0 {
                    "true"
                } else {
                    "false"
                })
            }
        }
    }

    /// The first of `values` the pattern matches, as captured (without a
    /// pattern, the first value).
    pub fn pick<'a>(&self, values: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
        let mut values = values.into_iter();
        match (&self.pattern, self.flag) {
            (None, None) => values.next(),
            _ => values.find_map(|value| self.read(value)),
        }
    }

    /// Every value, or with a pattern every capture, in order.
    pub fn all<'a>(&'a self, values: impl IntoIterator<Item = &'a str> + 'a) -> Vec<&'a str> {
        values
            .into_iter()
            .filter_map(|value| self.read(value))
            .collect()
    }

    /// The date in `values`: `Ok(None)` when none is there (or the pattern
    /// matches none), [`NotADate`] when the value picked is not a date.
    pub fn date<'a>(
        &self,
        values: impl IntoIterator<Item = &'a str>,
        zone: Tz,
    ) -> Result<Option<DateValue>, NotADate> {
        match self.pick(values) {
            None => Ok(None),
            Some(value) => parse_date(value, self.format, zone)
                .map(Some)
                .ok_or(NotADate),
        }
    }
}

impl<'de> Deserialize<'de> for ValueMapping {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ValueMapping, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            #[serde(alias = "pointer")]
            attribute: String,
            #[serde(default)]
            pattern: Option<String>,
            #[serde(default)]
            format: DateFormat,
            #[serde(default)]
            flag: Option<u64>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Plain(String),
            Table(Table),
        }
        match Written::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom(
                "expected an attribute (or JSON pointer) as a string, or a table \
                 { attribute | pointer, pattern, format, flag }",
            )
        })? {
            Written::Plain(from) => Ok(ValueMapping::plain(from)),
            Written::Table(table) => Ok(ValueMapping {
                from: table.attribute,
                pattern: table
                    .pattern
                    .as_deref()
                    .map(ValuePattern::new)
                    .transpose()
                    .map_err(serde::de::Error::custom)?,
                format: table.format,
                flag: table.flag,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STOCKHOLM: Tz = chrono_tz::Europe::Stockholm;

    #[test]
    fn a_pattern_picks_the_first_value_it_matches() {
        let mapping: ValueMapping = toml::from_str::<toml::Table>(
            r#"m = { attribute = "info", pattern = 'slutdatum:\s*(\d{4}-\d{2}-\d{2})' }"#,
        )
        .expect("toml")["m"]
            .clone()
            .try_into()
            .expect("mapping");
        assert_eq!(mapping.from, "info");
        let values = [
            "kund sedan 2019",
            "Slutdatum: 2024-01-01",
            "slutdatum: 2024-03-01",
            "slutdatum: 2025-01-01",
        ];
        assert_eq!(mapping.pick(values), Some("2024-03-01"));
        assert_eq!(
            mapping.date(values, STOCKHOLM),
            Ok(Some(DateValue::At(
                "2024-02-29T23:00:00Z".parse().expect("time")
            )))
        );
        // Nothing matches: no date, no error.
        assert_eq!(mapping.date(["kund sedan 2019"], STOCKHOLM), Ok(None));
        // A match that is no date: an error.
        let loose = ValueMapping {
            pattern: Some(ValuePattern::new(r"slut:\s*(\S+)").expect("pattern")),
            ..ValueMapping::plain("info")
        };
        assert_eq!(loose.date(["slut: 2024-02-30"], STOCKHOLM), Err(NotADate));
        assert_eq!(loose.all(["slut: a", "x", "slut: b"]), ["a", "b"]);
        // A flag in a bit field: userAccountControl 514 is disabled (2), 512 not.
        let disabled = ValueMapping {
            flag: Some(2),
            ..ValueMapping::plain("userAccountControl")
        };
        assert_eq!(disabled.all(["514"]), ["true"]);
        assert_eq!(disabled.all(["512"]), ["false"]);
        assert_eq!(disabled.all(["not a number"]), Vec::<&str>::new());
        // Plain strings still work; a pattern needs exactly one group.
        let plain: ValueMapping = toml::Value::String("customerEndDate".into())
            .try_into()
            .expect("plain");
        assert_eq!(plain, ValueMapping::plain("customerEndDate"));
        assert_eq!(plain.pick(["a", "b"]), Some("a"));
        for bad in [r"slutdatum", r"(a)(b)", r"(unclosed"] {
            assert!(ValuePattern::new(bad).is_err(), "{bad}");
        }
        let unknown = toml::from_str::<toml::Table>(r#"m = { attribute = "x", patern = "(a)" }"#)
            .expect("toml")["m"]
            .clone()
            .try_into::<ValueMapping>();
        assert!(unknown.is_err());
    }
}
