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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use tillsyn_connectors::fileshare::{FileshareConfig, FileshareSource};
use tillsyn_connectors::http::{HttpConfig, HttpSource};
use tillsyn_connectors::imap::{ImapConfig, ImapSource};
use tillsyn_connectors::ldap::{LdapConfig, LdapSource};
use tillsyn_connectors::maildir::MaildirConfig;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::report::config::{
    DEFAULT_REPORT_SCHEDULE, MailConfig, ReportConfig, ReportFile, SmtpConfig, SmtpSecurity,
};
use crate::rules::config::{
    Check, Conditions, ConflictCheck, MaxAgeCheck, MaxIntervalCheck, MaxRecipientsCheck,
    RuleConfig, Severity,
};
use tillsyn_core::period::Period;
use tillsyn_core::schedule::Schedule;
use tillsyn_core::secret::{self, Secret};

/// A whole, checked config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// `[daemon]`.
    pub daemon: DaemonConfig,
    /// `[privacy]`.
    pub privacy: PrivacyConfig,
    /// `[[sources]]`, in file order.
    pub sources: Vec<SourceConfig>,
    /// `[[rules]]`, in file order.
    pub rules: Vec<RuleConfig>,
    /// `[report]`, when present.
    pub report: Option<ReportConfig>,
    /// `[[detectors]]`: the organisation's own detectors for `contains` rules.
    pub detectors: Vec<tillsyn_detectors::CustomDetector>,
    /// `[content]`: how much `contains` rules read, at most.
    pub content: ContentConfig,
    /// `[identity]`: what the identity index takes in.
    pub identity: IdentityConfig,
    /// `[erasure]`: the erasure register, when there is one.
    pub erasure: ErasureConfig,
    /// `[[exceptions]]`: findings kept on purpose, with a reason and an end.
    pub exceptions: Vec<crate::exceptions::ExceptionConfig>,
    /// `[digest]`: personal monthly digests to custodians, when present.
    pub digest: Option<crate::report::digest::DigestConfig>,
    /// `[store]`: a shared PostgreSQL instead of SQLite in `state_dir`.
    pub store: Option<StoreConfig>,
    /// `[fleet]`: several instances sharing the work through `[store]`.
    pub fleet: Option<FleetSettings>,
    /// What was read but should be written otherwise: a key renamed in a
    /// release, read under its new name for one more release. `check-config`
    /// prints these and the daemon logs them; they refuse nothing.
    pub warnings: Vec<ConfigIssue>,
    /// Where the file spells a key by a name renamed in a release: the byte
    /// range of the old name, and the new one (`check-config --upgrade`).
    pub upgrades: Vec<(std::ops::Range<usize>, String)>,
}

impl Config {
    /// Every kind of identifier this config can hold in its identity index:
    /// `email`, `personnummer`, `phone` and `account`, every built-in and
    /// `[[detectors]]` detector's name, and every kind a source's
    /// `identifiers` names. An erasure request of any other kind is refused.
    pub fn identifier_kinds(&self) -> BTreeSet<String> {
        identifier_kinds(&self.sources, &self.detectors)
    }
}

/// [`Config::identifier_kinds`] of these sources and detectors.
fn identifier_kinds(
    sources: &[SourceConfig],
    detectors: &[tillsyn_detectors::CustomDetector],
) -> BTreeSet<String> {
    let mut kinds: BTreeSet<String> = IDENTIFIER_KINDS
        .iter()
        .chain(&["account"])
        .map(|kind| (*kind).to_owned())
        .collect();
    kinds.extend(
        tillsyn_detectors::Builtin::ALL
            .iter()
            .map(|builtin| builtin.as_str().to_owned()),
    );
    kinds.extend(detectors.iter().map(|detector| detector.name.clone()));
    for source in sources {
        kinds.extend(source.identifiers.values().cloned());
    }
    kinds
}

/// `[store]`: the findings store in a shared PostgreSQL, for several
/// instances on one database. Without it the store is SQLite in `state_dir`.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `postgres://user@host:port/database`, without the password.
    pub url: String,
    /// The password, from `password_file` or `password_env`.
    pub password: Option<tillsyn_core::secret::Secret>,
    /// Extra CA certificates for the server's TLS certificate.
    pub ca_file: Option<PathBuf>,
}

impl StoreConfig {
    /// Where the store is, for its connections and the fleet's.
    pub fn target(&self) -> crate::store::db::PostgresTarget {
        crate::store::db::PostgresTarget {
            url: self.url.clone(),
            password: self
                .password
                .as_ref()
                .map(|password| password.expose().to_vec()),
            ca_file: self.ca_file.clone(),
        }
    }
}

/// `[fleet]`: this instance is one of several with the same config and the
/// same `[store]`, sharing the work by leases in the database (see
/// [`crate::fleet`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSettings {
    /// How long a unit's lease lasts without renewal, in seconds: a crashed
    /// instance's work is taken over this long after it stopped renewing.
    /// Renewed every third of it. Default: 60.
    #[serde(default = "default_lease_seconds")]
    pub lease_seconds: u64,
    /// Units this instance scans at once, per source. Default: the IMAP
    /// source's `max_connections`, 1 for other sources.
    #[serde(default)]
    pub units_at_once: Option<usize>,
}

fn default_lease_seconds() -> u64 {
    60
}

/// `[store]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    url: String,
    #[serde(default)]
    password_file: Option<PathBuf>,
    #[serde(default)]
    password_env: Option<String>,
    #[serde(default)]
    ca_file: Option<PathBuf>,
}

/// `[erasure]`: where the erasure register is.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErasureConfig {
    /// A CSV file of erasure requests, one per line: `kind,identifier,date`
    /// (`personnummer,19811218-9876,2026-10-01`). Read at each scan and by
    /// `tillsyn erasure`; only keyed hashes are kept, so the file may be
    /// removed once read. Default: none.
    pub register: Option<PathBuf>,
    /// A source whose records are erasure requests (a register kept in a CRM
    /// or case system, read over HTTP). Default: none.
    pub source: Option<ErasureSource>,
}

/// `[erasure.source]`: which records of which source are erasure requests.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ErasureSource {
    /// The source's `name`. Its records are read as requests, and are neither
    /// indexed nor judged by `erased` rules themselves. Required.
    pub name: String,
    /// The record attribute (as the source maps it) holding the identifier.
    /// Required.
    pub identifier: String,
    /// The identifiers' kind (`personnummer`, `email`, …), for every record;
    /// or use `kind_attribute`. One of the two is required.
    #[serde(default)]
    pub kind: Option<String>,
    /// The record attribute holding each identifier's kind.
    #[serde(default)]
    pub kind_attribute: Option<String>,
    /// The record date (as the source maps `dates`) of the request. Required.
    pub date: String,
}

/// `[identity]`: the identity index behind `tillsyn subject` and erasure
/// checks. It holds keyed hashes of identifiers (never the identifiers) and
/// where each was found.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// Keep the index at all. Default: true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Mail's From, To and Cc addresses are indexed wherever a scan reads
    /// them (a rule counts recipients). `true` reads them for the index in
    /// every mail source, also where no rule needs them: one header fetch per
    /// new message (see BENCHMARKS.md for the cost). Default: false.
    #[serde(default)]
    pub read_mail_headers: bool,
}

impl Default for IdentityConfig {
    fn default() -> IdentityConfig {
        IdentityConfig {
            enabled: true,
            read_mail_headers: false,
        }
    }
}

fn default_true() -> bool {
    true
}

/// The kinds of identifier the index normalises itself; any other kind named
/// in a source's `identifiers` (an employee or customer number) is kept as
/// written, trimmed.
pub const IDENTIFIER_KINDS: [&str; 3] = ["email", "personnummer", "phone"];

/// `[content]`: the limits of reading inside records. Every key has a default;
/// a record over a limit is not read, is counted (`oversized_content` or
/// `unreadable_content`), and keeps its findings open.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentConfig {
    /// What is read of one mail message: the file (Maildir), or the parts
    /// chosen from its structure (IMAP). Default: 25 MB.
    #[serde(default = "default_message_bytes")]
    pub message_bytes: u64,
    /// One body part or attachment, decoded. Default: 10 MB.
    #[serde(default = "default_part_bytes")]
    pub part_bytes: u64,
    /// One file on a share. Default: 20 MB.
    #[serde(default = "default_file_bytes")]
    pub file_bytes: u64,
    /// One member of an archive or document (ZIP, DOCX, …), decompressed.
    /// Default: 50 MB.
    #[serde(default = "default_member_bytes")]
    pub member_bytes: u64,
    /// Everything decompressed out of one document. Default: 200 MB.
    #[serde(default = "default_archive_total_bytes")]
    pub archive_total_bytes: u64,
    /// Archives inside archives, the document itself counting 1. Default: 3.
    #[serde(default = "default_archive_depth")]
    pub archive_depth: u32,
    /// Seconds a document may take to extract. Default: 30.
    #[serde(default = "default_document_seconds")]
    pub document_seconds: u64,
    /// Memory (address space) of a document's extraction worker. Default: 1 GB.
    #[serde(default = "default_document_memory_bytes")]
    pub document_memory_bytes: u64,
}

impl Default for ContentConfig {
    fn default() -> ContentConfig {
        ContentConfig {
            message_bytes: default_message_bytes(),
            part_bytes: default_part_bytes(),
            file_bytes: default_file_bytes(),
            member_bytes: default_member_bytes(),
            archive_total_bytes: default_archive_total_bytes(),
            archive_depth: default_archive_depth(),
            document_seconds: default_document_seconds(),
            document_memory_bytes: default_document_memory_bytes(),
        }
    }
}

fn default_message_bytes() -> u64 {
    25 << 20
}
fn default_part_bytes() -> u64 {
    10 << 20
}
fn default_file_bytes() -> u64 {
    20 << 20
}
fn default_member_bytes() -> u64 {
    50 << 20
}
fn default_archive_total_bytes() -> u64 {
    200 << 20
}
fn default_archive_depth() -> u32 {
    3
}
fn default_document_seconds() -> u64 {
    30
}
fn default_document_memory_bytes() -> u64 {
    1 << 30
}

/// One `[[detectors]]` entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DetectorFile {
    name: String,
    pattern: String,
    #[serde(default)]
    checksum: Option<ChecksumFile>,
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default = "default_detector_window")]
    window: usize,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum ChecksumFile {
    Luhn,
    Mod97,
}

fn default_detector_window() -> usize {
    tillsyn_detectors::DEFAULT_WINDOW
}

/// `[daemon]`: where tillsyn keeps its state and which clock it reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// Folder for the findings database and the pseudonym key. Created (mode 0700)
    /// when missing. Default: `/var/lib/tillsyn` (systemd's `StateDirectory=`).
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// IANA time zone for calendar rules (fiscal year ends) and schedules, e.g.
    /// `Europe/Stockholm`. Default: `UTC`.
    #[serde(default)]
    pub timezone: Timezone,
    /// Address `tillsyn run` serves `/metrics`, `/healthz` and `/readyz` on.
    /// Default: `127.0.0.1:9436` (loopback only). Read at start; a reload keeps
    /// the old one.
    #[serde(default = "default_listen")]
    pub listen: std::net::SocketAddr,
    /// Seconds in-flight scans get to stop on shutdown before they are cut off
    /// and recorded as failed. Default: 5.
    #[serde(default = "default_shutdown_grace_seconds")]
    pub shutdown_grace_seconds: u64,
    /// How long the store keeps what is over: resolved findings, finished scans,
    /// conflict keys and sent reports older than this are deleted (open findings
    /// stay). Default: `"13 months"`, one more than the report's 12-month trend.
    #[serde(default = "default_retention")]
    pub retention: Period,
}

fn default_retention() -> Period {
    // A constant that parses.
    "13 months".parse().unwrap_or_else(|_| Period::days(396))
}

impl Default for DaemonConfig {
    fn default() -> DaemonConfig {
        DaemonConfig {
            state_dir: default_state_dir(),
            timezone: Timezone::default(),
            listen: default_listen(),
            shutdown_grace_seconds: default_shutdown_grace_seconds(),
            retention: default_retention(),
        }
    }
}

fn default_listen() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 9436))
}

fn default_shutdown_grace_seconds() -> u64 {
    5
}

/// How long a scan may run if its source sets no `scan_timeout`.
pub const DEFAULT_SCAN_TIMEOUT: &str = "6h";

/// When a source is scanned if its entry sets no `schedule`: 02:00 every day.
pub const DEFAULT_SCHEDULE: &str = "0 0 2 * * *";

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/tillsyn")
}

/// An IANA time zone name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timezone(pub chrono_tz::Tz);

impl<'de> Deserialize<'de> for Timezone {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Timezone, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse::<chrono_tz::Tz>().map(Timezone).map_err(|_| {
            serde::de::Error::custom(format!(
                "unknown time zone {name:?}; use an IANA name such as \"Europe/Stockholm\" or \"UTC\""
            ))
        })
    }
}

/// `[privacy]`: how people are shown in output.
#[derive(Debug, Clone, Default)]
pub struct PrivacyConfig {
    /// Show custodians (mailbox accounts, file custodians) by name. When false they are
    /// shown as keyed pseudonyms (HMAC-SHA-256), stable across runs. Default: false.
    pub name_people: bool,
    /// The pseudonym key, from `key_file` or `key_env`; when neither is set, a key
    /// generated once in the state dir (`pseudonym.key`) is used.
    pub key: Option<Secret>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrivacyFile {
    #[serde(default)]
    name_people: bool,
    #[serde(default)]
    key_file: Option<PathBuf>,
    #[serde(default)]
    key_env: Option<String>,
}

/// One `[[sources]]` entry.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Unique name, used in findings, metrics and `--source`.
    pub name: String,
    /// When `tillsyn run` scans it: six-field cron, seconds first, in
    /// `daemon.timezone`. Default: [`DEFAULT_SCHEDULE`].
    pub schedule: Schedule,
    /// How long one scan may run before it is stopped and recorded as failed
    /// (`timeout`); the deadline also stops the file walkers. Default: 6 hours
    /// ([`DEFAULT_SCAN_TIMEOUT`]).
    pub scan_timeout: std::time::Duration,
    /// Globs over record paths (as in rule `paths`) whose last segment names a
    /// person: a file name (`"Rekrytering/**"`), a home or customer folder
    /// (`"*"`, `"Kunder/*"`). Output shows those segments as pseudonyms unless
    /// `[privacy] name_people` is set; `"*"` on an HTTP source marks every id.
    /// Default: none (accounts, custodians' own folders, DN values and mail-address
    /// ids are pseudonymised anyway).
    pub personal_paths: Vec<crate::rules::config::PathGlob>,
    /// Record attribute (as the source maps it) → identifier kind, for the
    /// identity index: `{ mail = "email", pnr = "personnummer" }`. Kinds:
    /// `email`, `personnummer`, `phone`, or a word of the organisation's own
    /// (`employee_number`). Default: none (custodians, mail addresses and what
    /// detectors find are indexed anyway).
    pub identifiers: BTreeMap<String, String>,
    /// The store and its settings, from `type`.
    pub settings: SourceSettings,
}

impl SourceConfig {
    /// A fingerprint of what decides the records the source yields (its
    /// settings and `identifiers`): a record cache made under another is not
    /// used.
    pub fn fingerprint(&self) -> u64 {
        tillsyn_core::fingerprint::Fingerprint::new("source settings")
            .debug(&self.settings)
            .debug(&self.identifiers)
            .value()
    }
}

/// The kinds of store, by `type`.
#[derive(Debug, Clone)]
pub enum SourceSettings {
    /// `type = "fileshare"`.
    Fileshare(FileshareConfig),
    /// `type = "maildir"`.
    Maildir(MaildirConfig),
    /// `type = "imap"`.
    Imap(ImapConfig),
    /// `type = "ldap"`.
    Ldap(LdapConfig),
    /// `type = "http"`.
    Http(HttpConfig),
}

impl SourceSettings {
    /// The `type` spelling.
    pub fn type_name(&self) -> &'static str {
        match self {
            SourceSettings::Fileshare(_) => "fileshare",
            SourceSettings::Maildir(_) => "maildir",
            SourceSettings::Imap(_) => "imap",
            SourceSettings::Ldap(_) => "ldap",
            SourceSettings::Http(_) => "http",
        }
    }
}

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

type Spanned<'i> = toml::Spanned<DeValue<'i>>;

struct Reader<'t> {
    text: &'t str,
    base: &'t Path,
    secrets: Secrets,
    issues: Vec<ConfigIssue>,
    warnings: Vec<ConfigIssue>,
    upgrades: Vec<(std::ops::Range<usize>, String)>,
    /// Every source name read, with its entry's span, even when the entry has
    /// other errors: cross-checks still see it.
    source_names: Vec<(String, std::ops::Range<usize>)>,
    /// Every rule id and its `when.sources`, likewise.
    rule_refs: Vec<(String, std::ops::Range<usize>, Vec<String>)>,
    /// Every `[[detectors]]` name read, valid or not.
    detector_names: Vec<String>,
}

impl<'t> Reader<'t> {
    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|byte| **byte == b'\n')
            .count()
            + 1
    }

    fn issue(&mut self, offset: Option<usize>, message: impl Into<String>) {
        let line = offset.map(|offset| self.line_of(offset));
        self.issues.push(ConfigIssue {
            line,
            message: message.into(),
        });
    }

    fn warning(&mut self, offset: usize, message: impl Into<String>) {
        let line = Some(self.line_of(offset));
        self.warnings.push(ConfigIssue {
            line,
            message: message.into(),
        });
    }

    /// `value` (a table) with keys renamed in a release under their new
    /// names: each `(path, old, new)` renames `old` to `new` in the table
    /// at `path` (empty: `value` itself; `["directory"]`: its `directory`
    /// table), with a warning naming the new key. The old name is read for
    /// one more release. A key that is there under both names is refused.
    fn renamed<'i>(
        &mut self,
        value: Spanned<'i>,
        what: &str,
        renames: &[(&[&str], &str, &str)],
    ) -> Spanned<'i> {
        let span = value.span();
        let table = match value.into_inner() {
            DeValue::Table(table) => table,
            other => return toml::Spanned::new(span, other),
        };
        let mut renamed = DeTable::new();
        let both: Vec<&str> = renames
            .iter()
            .filter(|(path, old, new)| {
                path.is_empty()
                    && table.iter().any(|(key, _)| key.get_ref() == old)
                    && table.iter().any(|(key, _)| key.get_ref() == new)
            })
            .map(|(_, old, _)| *old)
            .collect();
        for (key, inner) in table {
            let name = key.get_ref().to_string();
            let nested: Vec<(&[&str], &str, &str)> = renames
                .iter()
                .filter(|(path, _, _)| path.first() == Some(&name.as_str()))
                .map(|(path, old, new)| (&path[1..], *old, *new))
                .collect();
            let inner = if nested.is_empty() {
                inner
            } else {
                self.renamed(inner, &format!("{what}.{name}"), &nested)
            };
            match renames
                .iter()
                .find(|(path, old, _)| path.is_empty() && *old == name)
            {
                Some((_, old, new)) if both.contains(old) => {
                    self.issue(
                        Some(key.span().start),
                        format!("{what}: `{old}` is the old name of `{new}`; keep only `{new}`"),
                    );
                }
                Some((_, old, new)) => {
                    self.upgrades.push((key.span(), (*new).to_owned()));
                    self.warning(
                        key.span().start,
                        format!(
                            "{what}: `{old}` is now called `{new}`; it is read as `{new}` in this release only (`tillsyn check-config --upgrade` prints the config with the new names)"
                        ),
                    );
                    renamed.insert(
                        toml::Spanned::new(key.span(), std::borrow::Cow::Owned((*new).to_owned())),
                        inner,
                    );
                }
                None => {
                    renamed.insert(key, inner);
                }
            }
        }
        toml::Spanned::new(span, DeValue::Table(renamed))
    }

    /// Refuse `key` in `value` (a table) with `why`: a key whose old meaning
    /// was ambiguous, which no new key takes on alone. True when it was there.
    fn refused(&mut self, value: &Spanned<'_>, key: &str, why: &str) -> bool {
        let DeValue::Table(table) = value.get_ref() else {
            return false;
        };
        let found = table
            .iter()
            .find(|(name, _)| name.get_ref() == key)
            .map(|(name, _)| name.span().start);
        if let Some(offset) = found {
            self.issue(Some(offset), why.to_owned());
        }
        found.is_some()
    }

    /// The offset of `needle` inside the entry that starts at `span` (up to the
    /// next `[[…]]`, `[daemon]` or `[privacy]` header), else the entry's start:
    /// points an error found after parsing (a bad glob, an unknown source) at its
    /// line. Spans of tables cover only their header, hence the search.
    fn locate(&self, span: &std::ops::Range<usize>, needle: &str) -> usize {
        let start = span.start.min(self.text.len());
        let entry_end = self.entry_end(start);
        self.text[start..entry_end]
            .find(needle)
            .map(|found| start + found)
            .unwrap_or(start)
    }

    fn entry_end(&self, start: usize) -> usize {
        let mut offset = start;
        for line in self.text[start..].split_inclusive('\n') {
            let trimmed = line.trim_start();
            let top_level = trimmed.starts_with("[[")
                || (trimmed.starts_with('[')
                    && !trimmed.starts_with("[sources.")
                    && !trimmed.starts_with("[rules.")
                    && !trimmed.starts_with("[report."));
            if offset > start && top_level {
                return offset;
            }
            offset += line.len();
        }
        self.text.len()
    }

    fn resolve(&self, path: &Path) -> PathBuf {
        let text = path.to_string_lossy();
        if path.is_absolute()
            || text.starts_with("$CREDENTIALS_DIRECTORY")
            || text.starts_with("${")
        {
            path.to_path_buf()
        } else {
            self.base.join(path)
        }
    }

    fn deserialize<T: DeserializeOwned>(&mut self, value: Spanned<'_>, what: &str) -> Option<T> {
        let span = value.span();
        match T::deserialize(ValueDeserializer::from(value)) {
            Ok(parsed) => Some(parsed),
            Err(error) => {
                let offset = error.span().unwrap_or(span).start;
                self.issue(Some(offset), format!("{what}: {}", error.message()));
                None
            }
        }
    }

    fn read(&mut self, path: &Path) -> Option<Config> {
        let (document, syntax) = DeTable::parse_recoverable(self.text);
        if !syntax.is_empty() {
            for error in syntax {
                let offset = error.span().map(|span| span.start);
                self.issue(offset, error.message().to_owned());
            }
            return None;
        }
        let mut daemon = Some(DaemonConfig::default());
        let mut privacy = Some(PrivacyConfig::default());
        let mut privacy_span = 0..0;
        let mut sources = Vec::new();
        let mut rules = Vec::new();
        let mut report = Some(None);
        let mut detectors = Vec::new();
        let mut content = Some(ContentConfig::default());
        let mut identity = Some(IdentityConfig::default());
        let mut erasure = Some(ErasureConfig::default());
        let mut exceptions = Vec::new();
        let mut digest = Some(None);
        let mut digest_span = 0..0;
        let mut store = Some(None);
        let mut fleet = Some(None);
        let mut fleet_span = 0..0;
        for (key, value) in document.into_inner() {
            let key_span = key.span();
            match key.get_ref().as_ref() {
                "daemon" => daemon = self.deserialize(value, "[daemon]"),
                "privacy" => {
                    privacy_span = value.span();
                    let value =
                        self.renamed(value, "[privacy]", &[(&[], "name_owners", "name_people")]);
                    privacy = self
                        .deserialize::<PrivacyFile>(value, "[privacy]")
                        .and_then(|file| self.privacy(file, &privacy_span));
                }
                "report" => {
                    let value = self.renamed(
                        value,
                        "[report]",
                        &[(&["departments"], "owner_attribute", "custodian_attribute")],
                    );
                    report = self.report(value).map(Some)
                }
                "sources" => {
                    for entry in self.array(value, "sources") {
                        if let Some(source) = self.source(entry) {
                            sources.push(source);
                        }
                    }
                }
                "rules" => {
                    for entry in self.array(value, "rules") {
                        if let Some(rule) = self.rule(entry) {
                            rules.push(rule);
                        }
                    }
                }
                "content" => content = self.deserialize(value, "[content]"),
                "identity" => identity = self.deserialize(value, "[identity]"),
                "erasure" => {
                    erasure = self
                        .deserialize::<ErasureConfig>(value, "[erasure]")
                        .map(|mut erasure| {
                            erasure.register = erasure.register.map(|path| self.resolve(&path));
                            erasure
                        })
                }
                "store" => {
                    let span = value.span();
                    store = self
                        .deserialize::<StoreFile>(value, "[store]")
                        .and_then(|file| self.store(file, &span))
                        .map(Some);
                }
                "fleet" => {
                    fleet_span = value.span();
                    fleet = self
                        .deserialize::<FleetSettings>(value, "[fleet]")
                        .map(Some);
                }
                "digest" => {
                    digest_span = value.span();
                    let template_at = self.locate(&digest_span, "{owner}");
                    let value = self.renamed(
                        value,
                        "[digest]",
                        &[(&["directory"], "owner_attribute", "custodian_attribute")],
                    );
                    digest = self
                        .deserialize::<crate::report::digest::DigestConfig>(value, "[digest]")
                        .map(|mut digest| {
                            digest.addresses_file =
                                digest.addresses_file.map(|path| self.resolve(&path));
                            if let Some(template) = &mut digest.address_template
                                && template.contains("{owner}")
                            {
                                *template = template.replace("{owner}", "{custodian}");
                                self.warning(
                                    template_at,
                                    "[digest]: `{owner}` in `address_template` is now `{custodian}`; read as such in this release only",
                                );
                            }
                            Some(digest)
                        });
                }
                "exceptions" => {
                    for entry in self.array(value, "exceptions") {
                        let span = entry.span();
                        if let Some(exception) = self
                            .deserialize::<crate::exceptions::ExceptionConfig>(entry, "[[exceptions]]")
                        {
                            exceptions.push((exception, span));
                        }
                    }
                }
                "detectors" => {
                    for entry in self.array(value, "detectors") {
                        if let Some(detector) = self.detector(entry) {
                            detectors.push(detector);
                        }
                    }
                }
                other => self.issue(
                    Some(key_span.start),
                    format!(
                        "unknown section `{other}`; expected `daemon`, `privacy`, `sources`, `rules`, `detectors`, `content`, `identity`, `erasure`, `exceptions`, `digest`, `store` or `report`"
                    ),
                ),
            }
        }
        self.check_detector_names(&rules);
        let timezone = daemon
            .as_ref()
            .map_or(chrono_tz::UTC, |daemon| daemon.timezone.0);
        let exceptions = self.exceptions(exceptions, timezone);
        self.cross_checks();
        if let Some(Some(source)) = erasure.as_ref().map(|erasure| &erasure.source) {
            if !sources
                .iter()
                .any(|configured| configured.name == source.name)
            {
                self.issue(
                    None,
                    format!("[erasure.source]: no source named {:?}", source.name),
                );
            }
            if source.kind.is_some() == source.kind_attribute.is_some() {
                self.issue(
                    None,
                    "[erasure.source]: give one of `kind` and `kind_attribute`",
                );
            }
            let kinds = identifier_kinds(&sources, &detectors);
            if let Some(kind) = &source.kind
                && !kinds.contains(kind)
            {
                self.issue(
                    None,
                    format!(
                        "[erasure.source]: `kind` must be one this config knows ({})",
                        kinds.into_iter().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
        }
        if let Some(identity) = &identity
            && !identity.enabled
        {
            for rule in &rules {
                if matches!(rule.check, Check::Erased(_)) {
                    self.issue(
                        None,
                        format!(
                            "rule {:?}: kind \"erased\" needs the identity index ([identity] enabled = true)",
                            rule.id
                        ),
                    );
                }
            }
        }
        if let (Some(Some(digest)), Some(report)) = (&digest, &report) {
            let mails = report.as_ref().is_some_and(|report| report.mail.is_some());
            if !mails {
                self.issue(
                    Some(digest_span.start),
                    "[digest] sends with [report]'s mail settings (sender and [report.smtp]); set them",
                );
            }
            if let Some(sender) = &digest.sender
                && sender.parse::<lettre::message::Mailbox>().is_err()
            {
                self.issue(
                    Some(self.locate(&digest_span, "sender")),
                    format!("[digest]: {sender:?} is not a mail address"),
                );
            }
            if let Some(directory) = &digest.directory
                && !sources.iter().any(|source| {
                    source.name == directory.source
                        && matches!(source.settings, SourceSettings::Ldap(_))
                })
            {
                self.issue(
                    Some(self.locate(&digest_span, &format!("\"{}\"", directory.source))),
                    format!(
                        "[digest.directory]: {:?} is not an ldap source of this config",
                        directory.source
                    ),
                );
            }
            let bad_domain = |domain: &String| {
                let domain = domain.trim().trim_start_matches('@');
                domain.is_empty() || !domain.contains('.') || domain.contains(['@', '/', ' ', '*'])
            };
            if digest.domains.is_empty() || digest.domains.iter().any(bad_domain) {
                self.issue(
                    Some(self.locate(&digest_span, "domains")),
                    "[digest]: `domains` names the organisation's own mail domains (`domains = [\"firma.se\"]`); a digest goes only to an address in one of them",
                );
            }
            if let Some(template) = &digest.address_template
                && !template.contains("{custodian}")
            {
                self.issue(
                    Some(self.locate(&digest_span, "address_template")),
                    "[digest]: `address_template` needs {custodian} where the custodian's name goes",
                );
            }
        }
        if let Some(Some(report)) = &report
            && let Some(departments) = &report.departments
            && !sources.iter().any(|source| {
                source.name == departments.source
                    && matches!(source.settings, SourceSettings::Ldap(_))
            })
        {
            self.issue(
                None,
                format!(
                    "[report.departments]: {:?} is not an ldap source of this config",
                    departments.source
                ),
            );
        }
        if let (Some(Some(settings)), Some(store)) = (&fleet, &store) {
            if store.is_none() {
                self.issue(
                    Some(self.locate(&fleet_span, "")),
                    "[fleet]: instances share their work through the database: set [store] url too",
                );
            }
            if settings.lease_seconds < 3 {
                self.issue(
                    Some(self.locate(&fleet_span, "lease_seconds")),
                    "[fleet]: lease_seconds must be at least 3 (it is renewed every third of it)",
                );
            }
            if settings.units_at_once == Some(0) {
                self.issue(
                    Some(self.locate(&fleet_span, "units_at_once")),
                    "[fleet]: units_at_once must be at least 1",
                );
            }
        }
        let mut daemon = daemon?;
        daemon.state_dir = self.resolve(&daemon.state_dir);
        Some(Config {
            path: path.to_path_buf(),
            daemon,
            privacy: privacy?,
            sources,
            rules,
            report: report?,
            detectors,
            content: content?,
            identity: identity?,
            erasure: erasure?,
            exceptions,
            digest: digest?,
            store: store?,
            fleet: fleet?,
            warnings: Vec::new(),
            upgrades: Vec::new(),
        })
    }

    /// Check `[[exceptions]]` entries: each valid on its own (a reason, an
    /// end date, globs), an id used once, and naming rules and sources that
    /// exist.
    fn exceptions(
        &mut self,
        entries: Vec<(crate::exceptions::ExceptionConfig, std::ops::Range<usize>)>,
        timezone: chrono_tz::Tz,
    ) -> Vec<crate::exceptions::ExceptionConfig> {
        let mut kept = Vec::new();
        let mut ids = BTreeSet::new();
        for (entry, span) in entries {
            let id = entry.id.clone();
            if let Err(error) = crate::exceptions::Exception::new(entry.clone(), timezone) {
                let at = self.locate(&span, "id");
                self.issue(Some(at), format!("[[exceptions]] {id:?}: {error}"));
                continue;
            }
            if !ids.insert(id.clone()) {
                let at = self.locate(&span, &format!("\"{id}\""));
                self.issue(Some(at), format!("exception id {id:?} is used twice"));
            }
            if entry.rule != "*"
                && !self
                    .rule_refs
                    .iter()
                    .any(|(rule, _, _)| *rule == entry.rule)
            {
                let at = self.locate(&span, &format!("\"{}\"", entry.rule));
                self.issue(
                    Some(at),
                    format!(
                        "[[exceptions]] {id:?}: unknown rule {:?} (a rule id, or \"*\" for every rule)",
                        entry.rule
                    ),
                );
            }
            for source in &entry.sources {
                if !self.source_names.iter().any(|(name, _)| name == source) {
                    let at = self.locate(&span, &format!("\"{source}\""));
                    self.issue(
                        Some(at),
                        format!("[[exceptions]] {id:?}: unknown source {source:?}"),
                    );
                }
            }
            kept.push(entry);
        }
        kept
    }

    fn detector(&mut self, entry: Spanned<'_>) -> Option<tillsyn_detectors::CustomDetector> {
        let span = entry.span();
        let file: DetectorFile = self.deserialize(entry, "[[detectors]]")?;
        // Named even if broken below: rules that name it are not wrong too.
        self.detector_names.push(file.name.clone());
        let detector = tillsyn_detectors::CustomDetector {
            name: file.name,
            pattern: file.pattern,
            checksum: file.checksum.map(|checksum| match checksum {
                ChecksumFile::Luhn => tillsyn_detectors::Checksum::Luhn,
                ChecksumFile::Mod97 => tillsyn_detectors::Checksum::Mod97,
            }),
            keywords: file.keywords,
            window: file.window,
        };
        if tillsyn_detectors::Builtin::named(&detector.name).is_some() {
            self.issue(
                Some(self.locate(&span, "name")),
                format!(
                    "[[detectors]] {:?}: that name is a built-in detector's; choose another",
                    detector.name
                ),
            );
            return None;
        }
        if let Err(error) = tillsyn_detectors::DetectorSet::with(&[], vec![detector.clone()]) {
            self.issue(
                Some(self.locate(&span, "pattern")),
                format!("[[detectors]]: {error}"),
            );
            return None;
        }
        Some(detector)
    }

    /// Every detector a `contains` rule names is a built-in or a `[[detectors]]`.
    fn check_detector_names(&mut self, rules: &[RuleConfig]) {
        let spans: Vec<(String, std::ops::Range<usize>)> = self
            .rule_refs
            .iter()
            .map(|(id, span, _)| (id.clone(), span.clone()))
            .collect();
        for rule in rules {
            let Check::Contains(check) = &rule.check else {
                continue;
            };
            let span = spans
                .iter()
                .find(|(id, _)| *id == rule.id)
                .map(|(_, span)| span.clone())
                .unwrap_or(0..0);
            if check.detectors.is_empty() {
                self.issue(
                    Some(span.start),
                    format!("rule {:?}: `detectors` names none", rule.id),
                );
            }
            for name in &check.detectors {
                let known = tillsyn_detectors::Builtin::named(name).is_some()
                    || self.detector_names.contains(name);
                if !known {
                    let builtins: Vec<&str> = tillsyn_detectors::Builtin::ALL
                        .iter()
                        .map(|builtin| builtin.as_str())
                        .collect();
                    self.issue(
                        Some(self.locate(&span, &format!("\"{name}\""))),
                        format!(
                            "rule {:?}: unknown detector {name:?}; built-in: {}, or a [[detectors]] name",
                            rule.id,
                            builtins.join(", ")
                        ),
                    );
                }
            }
        }
    }

    fn report(&mut self, value: Spanned<'_>) -> Option<ReportConfig> {
        let span = value.span();
        let file: ReportFile = self.deserialize(value, "[report]")?;
        if file.name_owners.is_some() {
            self.issue(
                Some(self.locate(&span, "name_owners")),
                "[report]: `name_owners` has moved to `[privacy] name_people`, which decides for every output (CLI, report, mail, logs); remove it here",
            );
            return None;
        }
        let schedule = match file.schedule {
            Some(schedule) => schedule,
            None => Schedule::parse(DEFAULT_REPORT_SCHEDULE).ok()?,
        };
        let templates_dir = file.templates_dir.as_deref().map(|path| self.resolve(path));
        let mail = match (file.sender, file.recipients.is_empty(), file.smtp) {
            (None, true, None) => None,
            (Some(sender), false, Some(smtp)) => {
                let mut valid = true;
                for address in std::iter::once(&sender).chain(&file.recipients) {
                    if let Err(error) = address.parse::<lettre::message::Mailbox>() {
                        let at = self.locate(&span, address);
                        self.issue(
                            Some(at),
                            format!("[report]: {address:?} is not a mail address: {error}"),
                        );
                        valid = false;
                    }
                }
                let smtp = self.smtp(smtp, &span);
                if !valid {
                    return None;
                }
                Some(MailConfig {
                    sender,
                    recipients: file.recipients,
                    smtp: smtp?,
                    retry_seconds: file.retry_seconds.max(1),
                })
            }
            _ => {
                self.issue(
                    Some(span.start),
                    "[report]: to mail the report, set `sender`, `recipients` and [report.smtp] together (or none of them to only write files)",
                );
                return None;
            }
        };
        Some(ReportConfig {
            schedule,
            language: file.language,
            organisation: file.organisation,
            templates_dir,
            mail,
            attach_findings: file.attach_findings,
            departments: file.departments,
        })
    }

    /// A secret of `section` from a file or an environment variable (the
    /// keys named `names`), or none when neither is set. `None` when both are
    /// set or the one set cannot be read: the problem is reported.
    fn file_or_env(
        &mut self,
        section: &str,
        names: (&str, &str),
        (file, env): (Option<&Path>, Option<&str>),
        span: &std::ops::Range<usize>,
    ) -> Option<Option<secret::Secret>> {
        let (file_key, env_key) = names;
        let (read, key) = match (file, env) {
            (Some(_), Some(_)) => {
                self.issue(
                    Some(self.locate(span, env_key)),
                    format!("{section}: set `{file_key}` or `{env_key}`, not both"),
                );
                return None;
            }
            (Some(path), None) => (secret::read_file(&self.resolve(path)), file_key),
            (None, Some(name)) => (secret::read_env(name), env_key),
            (None, None) => return Some(None),
        };
        match read {
            Ok(secret) => Some(Some(secret)),
            Err(error) => {
                self.issue(Some(self.locate(span, key)), format!("{section}: {error}"));
                None
            }
        }
    }

    /// `[store]`: a PostgreSQL URL that parses and holds no password; the
    /// password from a file or the environment (read whatever the command,
    /// since every command opens the store).
    fn store(&mut self, file: StoreFile, span: &std::ops::Range<usize>) -> Option<StoreConfig> {
        match file.url.parse::<tokio_postgres::Config>() {
            Ok(parsed) if parsed.get_password().is_some() => {
                self.issue(
                    Some(self.locate(span, "url")),
                    "[store]: the url holds a password; put it in `password_file` or `password_env`",
                );
                return None;
            }
            Ok(_) => {}
            Err(error) => {
                self.issue(
                    Some(self.locate(span, "url")),
                    format!("[store]: url: {error} (expected postgres://user@host:port/database)"),
                );
                return None;
            }
        }
        let password = self.file_or_env(
            "[store]",
            ("password_file", "password_env"),
            (file.password_file.as_deref(), file.password_env.as_deref()),
            span,
        )?;
        Some(StoreConfig {
            url: file.url,
            password,
            ca_file: file.ca_file.map(|path| self.resolve(&path)),
        })
    }

    fn smtp(
        &mut self,
        file: crate::report::config::SmtpFile,
        span: &std::ops::Range<usize>,
    ) -> Option<SmtpConfig> {
        if file.security == SmtpSecurity::Plain && !file.allow_plaintext {
            self.issue(
                Some(self.locate(span, "security")),
                "[report.smtp]: security = \"plain\" sends the report and any password unencrypted; set allow_plaintext = true only for a relay on loopback",
            );
            return None;
        }
        // Read only by the commands that send mail.
        let password = if self.secrets.mail {
            self.file_or_env(
                "[report.smtp]",
                ("password_file", "password_env"),
                (file.password_file.as_deref(), file.password_env.as_deref()),
                span,
            )?
        } else if file.password_file.is_some() && file.password_env.is_some() {
            self.issue(
                Some(self.locate(span, "password_env")),
                "[report.smtp]: set `password_file` or `password_env`, not both",
            );
            return None;
        } else {
            None
        };
        let named_password = file.password_file.is_some() || file.password_env.is_some();
        if named_password != file.username.is_some() {
            self.issue(
                Some(self.locate(span, "username")),
                "[report.smtp]: `username` and a password go together",
            );
            return None;
        }
        let port = file.port.unwrap_or(match file.security {
            SmtpSecurity::Tls => 465,
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Plain => 25,
        });
        Some(SmtpConfig {
            host: file.host,
            port,
            security: file.security,
            username: file.username,
            password,
            ca_file: file.ca_file.as_deref().map(|path| self.resolve(path)),
            timeout_seconds: file.timeout_seconds.max(1),
        })
    }

    fn array<'i>(&mut self, value: Spanned<'i>, name: &str) -> Vec<Spanned<'i>> {
        let span = value.span();
        match value.into_inner() {
            DeValue::Array(array) => array.into_iter().collect(),
            _ => {
                self.issue(
                    Some(span.start),
                    format!("`{name}` must be an array of tables: write [[{name}]]"),
                );
                Vec::new()
            }
        }
    }

    /// Split an entry into its common keys (taken out, as raw values) and the rest.
    fn split<'i>(
        &mut self,
        entry: Spanned<'i>,
        section: &str,
        common: &[&str],
    ) -> Option<(Vec<Option<Spanned<'i>>>, Spanned<'i>)> {
        let span = entry.span();
        let DeValue::Table(table) = entry.into_inner() else {
            self.issue(
                Some(span.start),
                format!("each [[{section}]] entry must be a table"),
            );
            return None;
        };
        let mut taken: Vec<Option<Spanned<'i>>> = common.iter().map(|_| None).collect();
        let mut rest = DeTable::new();
        for (key, value) in table {
            match common
                .iter()
                .position(|name| *name == key.get_ref().as_ref())
            {
                Some(index) => taken[index] = Some(value),
                None => {
                    rest.insert(key, value);
                }
            }
        }
        Some((taken, toml::Spanned::new(span, DeValue::Table(rest))))
    }

    fn string(&mut self, value: Option<Spanned<'_>>, what: &str, at: usize) -> Option<String> {
        match value {
            None => {
                self.issue(Some(at), format!("{what} is missing"));
                None
            }
            Some(value) => self.deserialize::<String>(value, what),
        }
    }

    fn source(&mut self, entry: Spanned<'_>) -> Option<SourceConfig> {
        let span = entry.span();
        let (mut common, rest) = self.split(
            entry,
            "sources",
            &[
                "name",
                "type",
                "schedule",
                "personal_paths",
                "scan_timeout",
                "identifiers",
            ],
        )?;
        let identifiers_value = common[5].take();
        let kind_value = common[1].take();
        let name = self.string(common[0].take(), "[[sources]] `name`", span.start)?;
        self.source_names.push((name.clone(), span.clone()));
        let what = format!("source {name:?}");
        let schedule = match common[2].take() {
            Some(value) => self.deserialize::<Schedule>(value, &what),
            None => Schedule::parse(DEFAULT_SCHEDULE).ok(),
        };
        let personal_paths = match common[3].take() {
            Some(value) => self.deserialize::<Vec<crate::rules::config::PathGlob>>(
                value,
                &format!("{what}: `personal_paths`"),
            ),
            None => Some(Vec::new()),
        };
        let scan_timeout = match common[4].take() {
            Some(value) => {
                let at = value.span().start;
                self.deserialize::<Period>(value, &format!("{what}: `scan_timeout`"))
                    .and_then(|period| match period.fixed() {
                        Some(duration) if !duration.is_zero() => Some(duration),
                        _ => {
                            self.issue(
                                Some(at),
                                format!("{what}: `scan_timeout` must be a fixed, non-zero time such as \"45min\" or \"6h\" (not months or years)"),
                            );
                            None
                        }
                    })
            }
            None => DEFAULT_SCAN_TIMEOUT
                .parse::<Period>()
                .ok()
                .and_then(|p| p.fixed()),
        };
        let kind_span = kind_value.as_ref().map(|value| value.span());
        let kind = self.string(kind_value, &format!("{what}: `type`"), span.start)?;
        let rest = match kind.as_str() {
            "fileshare" => self.renamed(rest, &what, &[(&[], "owner_from", "custodian_from")]),
            "imap" | "maildir" => {
                self.renamed(rest, &what, &[(&[], "owner_marks", "custodian_marks")])
            }
            "ldap" if self.refused(
                &rest,
                "owner_attribute",
                &format!(
                    "{what}: `owner_attribute` is gone: it meant both whom an entry is about and who must act on it. Name whom it is about in `identifiers` (`identifiers = {{ mail = \"email\" }}`, the attribute mapped in `attributes`): the identity index, `tillsyn subject` and erasure read those. Name who must act on it, if anyone, with `custodian_attribute` (`custodian_attribute = \"manager\"`): digests and the report's \"who\" go to custodians. Neither is guessed."
                ),
            ) =>
            {
                return None;
            }
            "http" if self.refused(
                &rest,
                "owner",
                &format!(
                    "{what}: `owner` is gone: it meant both whom an item is about and who must act on it. Name whom it is about in `identifiers` (`identifiers = {{ email = \"email\" }}`, the field mapped in `attributes`): the identity index, `tillsyn subject` and erasure read those. Name who must act on it, if anyone, with `custodian` (a JSON pointer to a case handler or account manager): digests and the report's \"who\" go to custodians. Neither is guessed."
                ),
            ) =>
            {
                return None;
            }
            _ => rest,
        };
        let settings = match kind.as_str() {
            "fileshare" => {
                let mut config: FileshareConfig = self.deserialize(rest, &what)?;
                config.root = self.resolve(&config.root);
                for pattern in &mut config.custodian_from {
                    if pattern.contains("{owner}") {
                        let at = self.locate(&span, "{owner}");
                        self.warning(
                            at,
                            format!("{what}: `{{owner}}` in `custodian_from` is now `{{custodian}}`; read as such in this release only"),
                        );
                        *pattern = pattern.replace("{owner}", "{custodian}");
                    }
                }
                if let Err(error) = FileshareSource::build(config.clone()) {
                    use tillsyn_connectors::fileshare::FileshareConfigError;
                    let glob = match &error {
                        FileshareConfigError::Glob { glob, .. } => glob.clone(),
                        FileshareConfigError::CustodianPattern { pattern, .. } => pattern.clone(),
                    };
                    let at = self.locate(&span, &glob);
                    self.issue(Some(at), format!("{what}: {error}"));
                    return None;
                }
                SourceSettings::Fileshare(config)
            }
            "maildir" => {
                let mut config: MaildirConfig = self.deserialize(rest, &what)?;
                config.root = self.resolve(&config.root);
                SourceSettings::Maildir(config)
            }
            "imap" => {
                let mut config: ImapConfig = self.deserialize(rest, &what)?;
                config.resolve_paths(|path| self.resolve(path));
                // Reads the credentials now, so a missing secret file is a config
                // error with its line, not a failed scan at night.
                if self.secrets.connectors
                    && let Err(error) = ImapSource::build(config.clone())
                {
                    let key = match &error {
                        tillsyn_connectors::imap::ImapBuildError::Tls(_) => "ca_file",
                        tillsyn_connectors::imap::ImapBuildError::Accounts(_) => "auth",
                    };
                    let at = self.locate(&span, key);
                    self.issue(Some(at), format!("{what}: {error}"));
                    return None;
                }
                SourceSettings::Imap(config)
            }
            "ldap" => {
                let mut config: LdapConfig = self.deserialize(rest, &what)?;
                LdapSource::resolve_paths(&mut config, |path| self.resolve(path));
                if self.secrets.connectors
                    && let Err(error) = LdapSource::build(config.clone())
                {
                    let key = match &error {
                        tillsyn_connectors::ldap::LdapBuildError::Secret(_) => "password_file",
                        tillsyn_connectors::ldap::LdapBuildError::Tls(_) => "ca_file",
                        tillsyn_connectors::ldap::LdapBuildError::Invalid(_) => "url",
                    };
                    let at = self.locate(&span, key);
                    self.issue(Some(at), format!("{what}: {error}"));
                    return None;
                }
                SourceSettings::Ldap(config)
            }
            "http" => {
                let mut config: HttpConfig = self.deserialize(rest, &what)?;
                HttpSource::resolve_paths(&mut config, |path| self.resolve(path));
                if self.secrets.connectors
                    && let Err(error) = HttpSource::build(config.clone())
                {
                    let key = match &error {
                        tillsyn_connectors::http::HttpBuildError::Secret(_) => "auth",
                        tillsyn_connectors::http::HttpBuildError::Tls(_) => "ca_file",
                        tillsyn_connectors::http::HttpBuildError::Invalid(_) => "url",
                    };
                    let at = self.locate(&span, key);
                    self.issue(Some(at), format!("{what}: {error}"));
                    return None;
                }
                SourceSettings::Http(config)
            }
            other => {
                self.issue(
                    kind_span.map(|span| span.start),
                    format!(
                        "{what}: unknown type {other:?}; expected \"fileshare\", \"maildir\", \"imap\", \"ldap\" or \"http\""
                    ),
                );
                return None;
            }
        };
        let identifiers = match identifiers_value {
            Some(value) => {
                let at = value.span().start;
                let identifiers = self.deserialize::<BTreeMap<String, String>>(
                    value,
                    &format!("{what}: `identifiers`"),
                )?;
                let mapped: Option<&BTreeMap<String, tillsyn_connectors::values::ValueMapping>> =
                    match &settings {
                        SourceSettings::Ldap(config) => Some(&config.attributes),
                        SourceSettings::Http(config) => Some(&config.attributes),
                        _ => None,
                    };
                for (attribute, kind) in &identifiers {
                    let known_kind = !kind.is_empty()
                        && kind
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                    if !known_kind {
                        self.issue(
                            Some(at),
                            format!(
                                "{what}: `identifiers`: kind {kind:?} of {attribute:?} must be \"email\", \"personnummer\", \"phone\" or a word in a-z, 0-9 and _"
                            ),
                        );
                    }
                    match mapped {
                        Some(mapped) if mapped.contains_key(attribute) => {}
                        Some(_) => self.issue(
                            Some(at),
                            format!(
                                "{what}: `identifiers` names {attribute:?}, which is not in its `attributes`"
                            ),
                        ),
                        None => self.issue(
                            Some(at),
                            format!(
                                "{what}: `identifiers` is for sources that map attributes (ldap, http)"
                            ),
                        ),
                    }
                }
                identifiers
            }
            None => BTreeMap::new(),
        };
        Some(SourceConfig {
            name,
            schedule: schedule?,
            scan_timeout: scan_timeout?,
            personal_paths: personal_paths?,
            identifiers,
            settings,
        })
    }

    fn rule(&mut self, entry: Spanned<'_>) -> Option<RuleConfig> {
        let span = entry.span();
        let common = [
            "id",
            "kind",
            "policy",
            "severity",
            "description",
            "when",
            "alert_after",
        ];
        let (mut values, rest) = self.split(entry, "rules", &common)?;
        let id = self.string(values[0].take(), "[[rules]] `id`", span.start)?;
        let what = format!("rule {id:?}");
        let kind_value = values[1].take();
        let kind_span = kind_value.as_ref().map(|value| value.span());
        let kind = self.string(kind_value, &format!("{what}: `kind`"), span.start);
        let policy = self.string(
            values[2].take(),
            &format!("{what}: `policy` (the promise it checks, quoted)"),
            span.start,
        );
        let severity = match values[3].take() {
            Some(value) => self.deserialize::<Severity>(value, &what),
            None => Some(Severity::default()),
        };
        let description = match values[4].take() {
            Some(value) => self.deserialize::<String>(value, &what).map(Some),
            None => Some(None),
        };
        let when = match values[5].take() {
            Some(value) => self.deserialize::<Conditions>(value, &format!("{what}: [rules.when]")),
            None => Some(Conditions::default()),
        };
        let alert_after = match values[6].take() {
            Some(value) => self.deserialize::<Period>(value, &what),
            None => Some(Period::zero()),
        };
        let referenced = when
            .as_ref()
            .map(|when| when.sources.clone())
            .unwrap_or_default();
        self.rule_refs.push((id.clone(), span.clone(), referenced));
        let check = match kind.as_deref() {
            Some("max_age") => self
                .deserialize::<MaxAgeCheck>(rest, &what)
                .map(Check::MaxAge),
            Some("max_recipients") => self
                .deserialize::<MaxRecipientsCheck>(rest, &what)
                .map(Check::MaxRecipients),
            Some("max_interval") => self
                .deserialize::<MaxIntervalCheck>(rest, &what)
                .map(Check::MaxInterval),
            Some("conflict") => self
                .deserialize::<ConflictCheck>(rest, &what)
                .map(Check::Conflict),
            Some("contains") => self
                .deserialize::<crate::rules::config::ContainsCheck>(rest, &what)
                .map(Check::Contains),
            Some("erased") => self
                .deserialize::<crate::rules::config::ErasedCheck>(rest, &what)
                .map(Check::Erased),
            Some(other) => {
                self.issue(
                    kind_span.map(|span| span.start),
                    format!(
                        "{what}: unknown kind {other:?}; expected \"max_age\", \"max_recipients\", \"max_interval\", \"conflict\", \"contains\" or \"erased\""
                    ),
                );
                None
            }
            None => None,
        };
        if let Some(Check::Conflict(conflict)) = &check {
            if matches!(conflict.key.as_str(), "owner" | "custodian") {
                self.issue(
                    Some(self.locate(&span, "key")),
                    format!(
                        "{what}: `key = \"{}\"` would join on who acts on a record, not whom it is about; name the attribute that holds the person's address on both sides (`key = \"email\"`, mapped in each source's `attributes`)",
                        conflict.key
                    ),
                );
            }
            if let Some(last) = self.rule_refs.last_mut() {
                last.2.extend(conflict.marked_by.sources.iter().cloned());
            }
        }
        Some(RuleConfig {
            id,
            policy: policy?,
            severity: severity?,
            description: description?,
            when: when?,
            check: check?,
            alert_after: alert_after?,
        })
    }

    fn privacy(
        &mut self,
        file: PrivacyFile,
        span: &std::ops::Range<usize>,
    ) -> Option<PrivacyConfig> {
        let key = self.file_or_env(
            "[privacy]",
            ("key_file", "key_env"),
            (file.key_file.as_deref(), file.key_env.as_deref()),
            span,
        )?;
        if let Some(key) = &key
            && key.expose().len() < 16
        {
            self.issue(
                Some(span.start),
                "[privacy]: the pseudonym key must be at least 16 bytes",
            );
            return None;
        }
        Some(PrivacyConfig {
            name_people: file.name_people,
            key,
        })
    }

    fn cross_checks(&mut self) {
        let source_names = std::mem::take(&mut self.source_names);
        let rule_refs = std::mem::take(&mut self.rule_refs);
        let mut names = BTreeSet::new();
        for (name, span) in &source_names {
            if name.is_empty() || name.chars().any(char::is_control) {
                let at = self.locate(span, "name");
                self.issue(
                    Some(at),
                    format!("source name {name:?} must not be empty or hold control characters"),
                );
            }
            if !names.insert(name.as_str()) {
                let at = self.locate(span, &format!("\"{name}\""));
                self.issue(Some(at), format!("source name {name:?} is used twice"));
            }
        }
        let mut ids = BTreeSet::new();
        for (id, span, sources) in &rule_refs {
            if !ids.insert(id.as_str()) {
                let at = self.locate(span, &format!("\"{id}\""));
                self.issue(Some(at), format!("rule id {id:?} is used twice"));
            }
            for source in sources {
                if !names.contains(source.as_str()) {
                    let at = self.locate(span, &format!("\"{source}\""));
                    self.issue(
                        Some(at),
                        format!("rule {id:?}: unknown source {source:?} in `when.sources`"),
                    );
                }
            }
        }
    }
}
