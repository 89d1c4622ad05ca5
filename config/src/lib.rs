//! The config file: reading it, checking it, and saying everything wrong with it at
//! once, each problem with its line.
//!
//! Sections: `[daemon]`, `[privacy]`, `[[sources]]` (tagged by `type`), and
//! `[[rules]]` (tagged by `kind`). Unknown keys are refused. The document is parsed
//! once with spans; each section and each array entry is then read on its own, so
//! a mistake in one source does not hide a mistake in a rule. Checks that span
//! entries (duplicate names, rules naming unknown sources, unreadable secret files)
//! run after that and add to the same list.
//!
//! Relative paths in the file are relative to the file's own folder.
//!
//! This crate is the config layer: the schema (sections as plain data) and
//! the reader. It knows the connectors' own config types, since a source's
//! settings are its connector's; it builds nothing and opens nothing.

mod digest;
mod exceptions;
#[cfg(test)]
mod properties;
mod reader;
pub mod report;
pub mod rules;
mod schema;

pub use digest::{DigestConfig, DirectoryLookup};
pub use exceptions::{CUSTODIAN_MARK_EXCEPTION, ExceptionConfig, ExceptionError};
pub use schema::*;

use std::fmt;
use std::path::{Path, PathBuf};

use reader::Reader;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// Everything wrong with a config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    /// The file.
    pub path: PathBuf,
    /// Each problem, in file order.
    pub issues: Vec<ConfigIssue>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.issues.len();
        writeln!(
            f,
            "{}: {count} problem{}",
            self.path.display(),
            if count == 1 { "" } else { "s" }
        )?;
        for issue in &self.issues {
            match issue.line {
                Some(line) => writeln!(f, "  {}:{line}: {}", self.path.display(), issue.message)?,
                None => writeln!(f, "  {}: {}", self.path.display(), issue.message)?,
            }
        }
        Ok(())
    }
}

/// Which secrets a command needs read while its config is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secrets {
    /// The connectors' credentials and TLS settings (scanning commands).
    pub connectors: bool,
    /// The SMTP password of `[report.smtp]` (sending the report).
    pub mail: bool,
}

impl Secrets {
    /// Everything: the daemon, `scan`, `check-config`.
    pub const ALL: Secrets = Secrets {
        connectors: true,
        mail: true,
    };
    /// Nothing: commands that only read the store (`findings`, `explain`,
    /// `report` without `--send`) run from a shell without the secrets.
    pub const NONE: Secrets = Secrets {
        connectors: false,
        mail: false,
    };
    /// Only the mail password (`report --send`).
    pub const MAIL: Secrets = Secrets {
        connectors: false,
        mail: true,
    };
}

/// `text` with every key the reader found under a renamed name (`upgrades`,
/// from [`Config::upgrades`]) written under its new one, and `{owner}` in
/// `custodian_from` and `address_template` values written `{custodian}`.
/// Comments, order and everything else stay as they were.
pub fn upgraded(text: &str, upgrades: &[(std::ops::Range<usize>, String)]) -> String {
    let mut sorted: Vec<&(std::ops::Range<usize>, String)> = upgrades.iter().collect();
    sorted.sort_by_key(|(range, _)| range.start);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (range, new) in sorted {
        if range.start < at || range.end > text.len() {
            continue;
        }
        out.push_str(&text[at..range.start]);
        out.push_str(new);
        at = range.end;
    }
    out.push_str(&text[at..]);
    out.split_inclusive('\n')
        .map(|line| {
            let key = line.trim_start();
            if key.starts_with("custodian_from") || key.starts_with("address_template") {
                line.replace("{owner}", "{custodian}")
            } else {
                line.to_owned()
            }
        })
        .collect()
}

/// Read and check a config file, reading every secret it names.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_with(path, Secrets::ALL)
}

/// Read and check a config file for a command that does not scan: no connector
/// credential is read and no TLS is built. The pseudonym key is still read.
pub fn load_offline(path: &Path) -> Result<Config, ConfigErrors> {
    load_with(path, Secrets::NONE)
}

/// Read and check a config file, reading only the `secrets` asked for.
pub fn load_with(path: &Path, secrets: Secrets) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigErrors {
        path: path.to_path_buf(),
        issues: vec![ConfigIssue {
            line: None,
            message: format!("cannot read the config file: {error}"),
        }],
    })?;
    parse_with(&text, path, secrets)
}

/// Check a config given as text; `path` names it in messages and anchors relative
/// paths.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    parse_with(text, path, Secrets::ALL)
}

/// [`parse`], reading only the `secrets` asked for.
pub fn parse_with(text: &str, path: &Path, secrets: Secrets) -> Result<Config, ConfigErrors> {
    let base = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut reader = Reader {
        text,
        base,
        secrets,
        issues: Vec::new(),
        warnings: Vec::new(),
        upgrades: Vec::new(),
        source_names: Vec::new(),
        rule_refs: Vec::new(),
        detector_names: Vec::new(),
    };
    let config = reader.read(path);
    let mut issues = reader.issues;
    issues.sort_by_key(|issue| issue.line.unwrap_or(0));
    let mut warnings = reader.warnings;
    warnings.sort_by_key(|warning| warning.line.unwrap_or(0));
    match config {
        Some(mut config) if issues.is_empty() => {
            config.warnings = warnings;
            config.upgrades = reader.upgrades;
            Ok(config)
        }
        _ => Err(ConfigErrors {
            path: path.to_path_buf(),
            issues,
        }),
    }
}
