//! The checked config as plain data: one type per section. Built only by the
//! reader ([`crate::parse`]); read by every layer above.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Deserialize;
use tillsyn_core::period::Period;
use tillsyn_core::schedule::Schedule;
use tillsyn_core::secret::Secret;

use crate::report::ReportConfig;
use crate::rules::RuleConfig;
use crate::*;

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
    pub exceptions: Vec<crate::ExceptionConfig>,
    /// `[digest]`: personal monthly digests to custodians, when present.
    pub digest: Option<crate::DigestConfig>,
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
pub(crate) fn identifier_kinds(
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

/// `[fleet]`: this instance is one of several with the same config and the
/// same `[store]`, sharing the work by leases in the database (see
/// the fleet).
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

pub(crate) fn default_lease_seconds() -> u64 {
    60
}

/// `[store]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoreFile {
    pub(crate) url: String,
    #[serde(default)]
    pub(crate) password_file: Option<PathBuf>,
    #[serde(default)]
    pub(crate) password_env: Option<String>,
    #[serde(default)]
    pub(crate) ca_file: Option<PathBuf>,
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

pub(crate) fn default_true() -> bool {
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

pub(crate) fn default_message_bytes() -> u64 {
    25 << 20
}
pub(crate) fn default_part_bytes() -> u64 {
    10 << 20
}
pub(crate) fn default_file_bytes() -> u64 {
    20 << 20
}
pub(crate) fn default_member_bytes() -> u64 {
    50 << 20
}
pub(crate) fn default_archive_total_bytes() -> u64 {
    200 << 20
}
pub(crate) fn default_archive_depth() -> u32 {
    3
}
pub(crate) fn default_document_seconds() -> u64 {
    30
}
pub(crate) fn default_document_memory_bytes() -> u64 {
    1 << 30
}

/// One `[[detectors]]` entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DetectorFile {
    pub(crate) name: String,
    pub(crate) pattern: String,
    #[serde(default)]
    pub(crate) checksum: Option<ChecksumFile>,
    #[serde(default)]
    pub(crate) keywords: Vec<String>,
    #[serde(default = "default_detector_window")]
    pub(crate) window: usize,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ChecksumFile {
    Luhn,
    Mod97,
}

pub(crate) fn default_detector_window() -> usize {
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

pub(crate) fn default_retention() -> Period {
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

pub(crate) fn default_listen() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 9436))
}

pub(crate) fn default_shutdown_grace_seconds() -> u64 {
    5
}

/// How long a scan may run if its source sets no `scan_timeout`.
pub const DEFAULT_SCAN_TIMEOUT: &str = "6h";

/// When a source is scanned if its entry sets no `schedule`: 02:00 every day.
pub const DEFAULT_SCHEDULE: &str = "0 0 2 * * *";

pub(crate) fn default_state_dir() -> PathBuf {
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
pub(crate) struct PrivacyFile {
    #[serde(default)]
    pub(crate) name_people: bool,
    #[serde(default)]
    pub(crate) key_file: Option<PathBuf>,
    #[serde(default)]
    pub(crate) key_env: Option<String>,
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
    pub personal_paths: Vec<crate::rules::PathGlob>,
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

pub use tillsyn_connectors::source::SourceSettings;
