//! Exceptions ("dispens"): findings an organisation keeps on purpose, with a
//! reason and an end date.
//!
//! A legal hold, a dispute, the Accounting Act or a case still open can make
//! keeping data right where a rule says it is late. `[[exceptions]]` in the
//! config says which findings (a rule or every rule; sources, path globs or
//! single records), why, and until when: nothing is excepted for ever.
//!
//! Exceptions never change what a scan finds. The store marks each open
//! finding with the first exception in config order that covers it, and when
//! that exception ends (`Store::mark_exceptions` in the store); a finding
//! is excepted at a time only while its exception is still in force, so an
//! exception that ends makes its findings count again without a scan. The
//! marks are set again after every scan and whenever the config is read, so
//! an edited exception applies at once.

use chrono::{DateTime, Utc};
use globset::{GlobSet, GlobSetBuilder};

use tillsyn_config::{ExceptionConfig, ExceptionError};

/// Exceptions as checked: their globs compiled and their end as an instant.
#[derive(Debug, Clone, Default)]
pub struct Exceptions {
    entries: Vec<Exception>,
}

/// One exception, compiled.
#[derive(Debug, Clone)]
pub struct Exception {
    /// As configured.
    pub config: ExceptionConfig,
    /// The midnight after its last day, in the organisation's time zone.
    pub ends: DateTime<Utc>,
    paths: GlobSet,
}

impl Exception {
    /// Check and compile one entry.
    pub fn new(
        config: ExceptionConfig,
        timezone: chrono_tz::Tz,
    ) -> Result<Exception, ExceptionError> {
        let ends = config.check(timezone)?;
        let mut builder = GlobSetBuilder::new();
        for glob in &config.paths {
            builder.add(glob.glob.clone());
        }
        let paths = builder
            .build()
            .map_err(|error| ExceptionError::Globs(error.to_string()))?;
        Ok(Exception {
            config,
            ends,
            paths,
        })
    }

    /// Whether it covers a finding of `rule` in `source` on the record at
    /// `path` (whether or not it is still in force).
    pub fn covers(&self, rule: &str, source: &str, path: &str) -> bool {
        let config = &self.config;
        (config.rule == "*" || config.rule == rule)
            && (config.sources.is_empty() || config.sources.iter().any(|name| name == source))
            && (config.paths.is_empty() || self.paths.is_match(path))
            && (config.records.is_empty() || config.records.iter().any(|record| record == path))
    }
}

impl Exceptions {
    /// Exceptions from checked entries, in config order.
    pub fn new(entries: Vec<Exception>) -> Exceptions {
        Exceptions { entries }
    }

    /// Compile the config's entries (checked when the config was read).
    pub fn from_config(config: &tillsyn_config::Config) -> Exceptions {
        let timezone = config.daemon.timezone.0;
        Exceptions::new(
            config
                .exceptions
                .iter()
                .filter_map(|entry| Exception::new(entry.clone(), timezone).ok())
                .collect(),
        )
    }

    /// The first exception, in config order, covering a finding of `rule` in
    /// `source` on the record at `path`.
    pub fn covering(&self, rule: &str, source: &str, path: &str) -> Option<&Exception> {
        self.entries
            .iter()
            .find(|exception| exception.covers(rule, source, path))
    }

    /// The exception named `id`.
    pub fn get(&self, id: &str) -> Option<&Exception> {
        self.entries
            .iter()
            .find(|exception| exception.config.id == id)
    }

    /// Every exception, in config order.
    pub fn iter(&self) -> impl Iterator<Item = &Exception> {
        self.entries.iter()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exception(toml_text: &str) -> Result<Exception, ExceptionError> {
        let config: ExceptionConfig = toml::from_str(toml_text).expect("toml");
        Exception::new(config, chrono_tz::Europe::Stockholm)
    }

    #[test]
    fn an_exception_covers_its_rule_sources_paths_and_records_until_the_day_ends() {
        let hold = exception(
            "id = \"tvist\"\nrule = \"stale\"\nsources = [\"share\"]\npaths = [\"Tvist/**\"]\n\
             reason = \"Tvist med kund\"\nuntil = \"2027-06-30\"",
        )
        .expect("valid");
        assert!(hold.covers("stale", "share", "Tvist/a.pdf"));
        assert!(!hold.covers("other", "share", "Tvist/a.pdf"));
        assert!(!hold.covers("stale", "mail", "Tvist/a.pdf"));
        assert!(!hold.covers("stale", "share", "Kunder/a.pdf"));
        // The last day is in force to its end, in Stockholm (UTC+2 in June).
        assert_eq!(
            hold.ends,
            "2027-06-30T22:00:00Z"
                .parse::<DateTime<Utc>>()
                .expect("time")
        );
        let one = exception(
            "id = \"one\"\nrule = \"*\"\nrecords = [\"anna/INBOX/7\"]\nreason = \"r\"\nuntil = \"2027-01-31\"",
        )
        .expect("valid");
        assert!(one.covers("any-rule", "mail", "anna/INBOX/7"));
        assert!(!one.covers("any-rule", "mail", "anna/INBOX/70"));
        let set = Exceptions::new(vec![hold, one]);
        assert_eq!(
            set.covering("stale", "share", "Tvist/x")
                .map(|e| e.config.id.as_str()),
            Some("tvist")
        );
        assert!(set.covering("stale", "share", "Kunder/x").is_none());
    }

    #[test]
    fn no_exception_without_a_reason_or_an_end() {
        assert_eq!(
            exception("id = \"x\"\nrule = \"*\"\nreason = \" \"\nuntil = \"2027-01-01\"").err(),
            Some(ExceptionError::NoReason)
        );
        assert_eq!(
            exception("id = \"x\"\nrule = \"*\"\nreason = \"r\"\nuntil = \"snart\"").err(),
            Some(ExceptionError::Until("snart".into()))
        );
        let missing: Result<ExceptionConfig, _> =
            toml::from_str("id = \"x\"\nrule = \"*\"\nreason = \"r\"");
        assert!(missing.is_err(), "until is required");
    }
}
