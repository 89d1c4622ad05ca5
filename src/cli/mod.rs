//! The commands behind the `tillsyn` binary. [`crate::command_line::run`]
//! takes the parsed arguments and calls one of these; each returns the
//! process exit status or a typed error.
//!
//! Exit statuses, the same for every command:
//! - 0 ([`EXIT_OK`]): done; every source asked for was read.
//! - 1 ([`EXIT_FINDINGS`]): findings present, and the caller asked to fail on them
//!   (`--fail-on-findings`).
//! - 2 ([`EXIT_FAILED`]): a source failed or could not be reached
//!   (`check-config --connect`), the store or the mail server failed, or a
//!   source is being scanned by another process.
//! - 3 ([`EXIT_CONFIG`]): the config is invalid (every problem is printed with
//!   its line).

mod check_config;
mod digest;
mod erasure;
mod explain;
mod findings;
mod generate;
mod init;
mod report;
mod scan;
mod subject;

pub use check_config::{check_config, upgrade_config};
pub use digest::digest;
pub use erasure::erasure;
pub use explain::explain;
pub use findings::{FindingsArgs, findings};
pub use generate::generate;
pub use init::{InitArgs, LoginMethod, init};
pub use report::{ReportArgs, report};
pub use scan::{ScanArgs, scan};
pub use subject::subject;

use std::collections::BTreeMap;
use std::io::Write;

use chrono::Utc;

use tillsyn_app::privacy::KeyError;
use tillsyn_app::runner::{self, BuildError, RunError};
use tillsyn_config::{Config, ConfigErrors};
use tillsyn_rules::RuleError;
use tillsyn_store::StoreError;

/// Exit status: all good.
pub const EXIT_OK: u8 = 0;
/// Exit status: findings present and the caller asked to fail on them.
pub const EXIT_FINDINGS: u8 = 1;
/// Exit status: a source failed, could not be reached or is busy; or the store
/// or mail server failed.
pub const EXIT_FAILED: u8 = 2;
/// Exit status: the config is invalid.
pub const EXIT_CONFIG: u8 = 3;

/// Errors a command reports before exiting.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The config is invalid.
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// Rules did not compile.
    #[error(transparent)]
    Rules(#[from] RuleError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The pseudonym key is unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A source could not be built.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The scan runner failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// A person could not be looked up.
    #[error(transparent)]
    Subject(#[from] tillsyn_app::subject::SubjectError),
    /// A pass over the sources could not be run.
    #[error(transparent)]
    Pass(#[from] runner::PassError),
    /// Writing output failed.
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
    /// A report could not be built.
    #[error(transparent)]
    Report(#[from] tillsyn_app::report::ReportError),
    /// A report could not be mailed.
    #[error(transparent)]
    Mail(#[from] tillsyn_app::report::mail::MailError),
    /// Digests could not be made or sent.
    #[error(transparent)]
    Digest(#[from] tillsyn_app::report::digest::DigestError),
    /// A command-line argument is unusable.
    #[error("{0}")]
    BadArgument(String),
    /// `explain` named no finding in the store.
    #[error("no finding with id {0} in the store; `tillsyn findings --all` lists them")]
    NoFinding(i64),
    /// `scan` without `--once`.
    #[error(
        "`tillsyn scan` runs one pass and needs --once; scheduled scanning is the job of the daemon"
    )]
    NeedsOnce,
}

impl From<tillsyn_app::engine::EngineError> for CliError {
    fn from(error: tillsyn_app::engine::EngineError) -> CliError {
        match error {
            tillsyn_app::engine::EngineError::Key(error) => CliError::Key(error),
            tillsyn_app::engine::EngineError::Rules(error) => CliError::Rules(error),
        }
    }
}

impl CliError {
    /// The exit status this error ends the process with.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_)
            | CliError::Rules(_)
            | CliError::Build(_)
            | CliError::Pass(runner::PassError::Build(_))
            | CliError::Subject(tillsyn_app::subject::SubjectError::Build(_)) => EXIT_CONFIG,
            _ => EXIT_FAILED,
        }
    }
}

fn policies(config: &Config) -> BTreeMap<String, String> {
    config
        .rules
        .iter()
        .map(|rule| (rule.id.clone(), rule.policy.clone()))
        .collect()
}

/// `--since`: a local day or an RFC 3339 instant.
fn parse_since(text: &str, zone: chrono_tz::Tz) -> Result<chrono::DateTime<Utc>, CliError> {
    tillsyn_core::dates::instant(text, zone).ok_or_else(|| {
        CliError::BadArgument(format!(
            "--since {text:?}: give YYYY-MM-DD or an RFC 3339 time"
        ))
    })
}

/// tillsyn's own crates, whose logs `TILLSYN_LOG` sets (every layer of
/// the workspace: a crate left out would log warnings only).
const TILLSYN_CRATES: [&str; 10] = [
    "tillsyn",
    "tillsyn_app",
    "tillsyn_draft",
    "tillsyn_store",
    "tillsyn_rules",
    "tillsyn_config",
    "tillsyn_connectors",
    "tillsyn_extract",
    "tillsyn_detectors",
    "tillsyn_core",
];

/// The log filter: `TILLSYN_LOG` (or `default_level`) applies to tillsyn's own
/// crates; other crates log warnings and errors only unless named in it
/// (`TILLSYN_LOG=debug,ldap3=debug`), since protocol crates may log what they
/// carry (addresses, DNs) at debug level.
pub fn log_filter(setting: Option<&str>, default_level: &str) -> tracing_subscriber::EnvFilter {
    let setting = setting.unwrap_or(default_level);
    let mut directives = vec!["warn".to_owned()];
    for directive in setting.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if directive.contains('=') || directive.contains('[') {
            directives.push(directive.to_owned());
        } else {
            directives.extend(TILLSYN_CRATES.map(|name| format!("{name}={directive}")));
        }
    }
    tracing_subscriber::EnvFilter::try_new(directives.join(",")).unwrap_or_else(|_| {
        let own: Vec<String> = TILLSYN_CRATES
            .map(|name| format!("{name}={default_level}"))
            .to_vec();
        tracing_subscriber::EnvFilter::new(format!("warn,{}", own.join(",")))
    })
}

/// The config's warnings (keys renamed in a release), each with its line.
fn write_warnings(config: &Config, out: &mut dyn Write) -> std::io::Result<()> {
    for warning in &config.warnings {
        match warning.line {
            Some(line) => writeln!(
                out,
                "  {}:{line}: warning: {}",
                config.path.display(),
                warning.message
            )?,
            None => writeln!(
                out,
                "  {}: warning: {}",
                config.path.display(),
                warning.message
            )?,
        }
    }
    Ok(())
}
