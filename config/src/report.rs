//! `[report]`: when the monthly compliance report is made, in which language, who
//! gets it, and the mail server that carries it.

use std::path::PathBuf;

use serde::Deserialize;
use tillsyn_core::language::Language;

use tillsyn_core::schedule::Schedule;
use tillsyn_core::secret::Secret;

/// When the report for the month just ended is made if `schedule` is not set:
/// 06:00 on the 1st, in `daemon.timezone`.
pub const DEFAULT_REPORT_SCHEDULE: &str = "0 0 6 1 * *";

/// The checked `[report]` section.
#[derive(Debug, Clone)]
pub struct ReportConfig {
    /// When the daemon makes and sends the report of the month just ended.
    pub schedule: Schedule,
    /// `sv` or `en`.
    pub language: Language,
    /// The organisation's name, for the title.
    pub organisation: Option<String>,
    /// A folder with templates that replace the built-in ones, file by file.
    pub templates_dir: Option<PathBuf>,
    /// Mail: who sends, who gets it, through which server. `None`: the report is
    /// only written to files (`tillsyn report --out`).
    pub mail: Option<MailConfig>,
    /// The CSV lists every open finding, rather than open counts per promise
    /// and custodian.
    pub attach_findings: bool,
    /// Custodians' departments, for the report's "who". `None`: not shown.
    pub departments: Option<DepartmentLookup>,
}

/// Where the report goes.
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// `From:`.
    pub sender: String,
    /// `To:`.
    pub recipients: Vec<String>,
    /// The SMTP server.
    pub smtp: SmtpConfig,
    /// First wait before trying a refused or failed delivery again; it doubles
    /// up to an hour.
    pub retry_seconds: u64,
}

/// How the SMTP server is reached.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// Host name (also the name its certificate must carry).
    pub host: String,
    /// Port; by `security` when unset: 465, 587 or 25.
    pub port: u16,
    /// Transport security.
    pub security: SmtpSecurity,
    /// Login, when the server wants one.
    pub username: Option<String>,
    /// Password for `username`.
    pub password: Option<Secret>,
    /// Extra CA certificate (PEM) for an internal CA.
    pub ca_file: Option<PathBuf>,
    /// Seconds per SMTP command.
    pub timeout_seconds: u64,
}

/// Transport security to the SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// TLS from the first byte (port 465).
    Tls,
    /// Plain, then STARTTLS, which must succeed (port 587).
    Starttls,
    /// No TLS at all: only with `allow_plaintext = true` (a loopback relay).
    Plain,
}

/// `[report]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportFile {
    #[serde(default)]
    pub schedule: Option<Schedule>,
    #[serde(default)]
    pub language: Language,
    /// Replaced by `[privacy] name_people`; kept only to say so.
    #[serde(default)]
    pub name_owners: Option<bool>,
    #[serde(default)]
    pub organisation: Option<String>,
    #[serde(default)]
    pub templates_dir: Option<PathBuf>,
    #[serde(default)]
    pub sender: Option<String>,
    #[serde(default)]
    pub recipients: Vec<String>,
    #[serde(default = "default_retry_seconds")]
    pub retry_seconds: u64,
    #[serde(default)]
    pub smtp: Option<SmtpFile>,
    #[serde(default)]
    pub attach_findings: bool,
    /// `[report.departments]`: custodians' departments, from a directory.
    #[serde(default)]
    pub departments: Option<DepartmentLookup>,
}

/// `[report.departments]`: where a directory keeps custodians' departments, for
/// the report's "who".
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DepartmentLookup {
    /// An `ldap` source of the config, whose connection, base and filter are
    /// used. Required.
    pub source: String,
    /// The attribute whose value is the custodian's name as findings have it
    /// (`uid`, `sAMAccountName`, `mail`). Default: `uid`.
    #[serde(default = "default_custodian_attribute")]
    pub custodian_attribute: String,
    /// The attribute naming the department (`department` in Active
    /// Directory, `ou` or `departmentNumber` in OpenLDAP). Default:
    /// `department`.
    #[serde(default = "default_department_attribute")]
    pub attribute: String,
}

fn default_custodian_attribute() -> String {
    "uid".into()
}

fn default_department_attribute() -> String {
    "department".into()
}

fn default_retry_seconds() -> u64 {
    60
}

/// `[report.smtp]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SmtpFile {
    pub host: String,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default = "default_security")]
    pub security: SmtpSecurity,
    #[serde(default)]
    pub allow_plaintext: bool,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
}

fn default_security() -> SmtpSecurity {
    SmtpSecurity::Starttls
}

fn default_timeout_seconds() -> u64 {
    30
}
