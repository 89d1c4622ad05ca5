//! The commands behind the `tillsyn` binary. `main.rs` parses arguments and calls
//! these; each returns the process exit status or a typed error.
//!
//! Exit statuses of `scan --once`: 0 every source scanned, 1 findings present and
//! `--fail-on-findings` given, 2 a source failed (or nothing could be scanned).
//! `check-config`: 0 valid, 1 invalid.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::Utc;

use crate::config::{self, Config, ConfigErrors};
use crate::output::{self, Format};
use crate::privacy::{KeyError, OwnerDisplay};
use crate::rules::{RuleError, RuleSet};
use crate::scan::{self, BuildError, RunError, ScanOutcome, Source};
use crate::store::{FindingFilter, ScanStatus, Store, StoreError};

/// Exit status: all good.
pub const EXIT_OK: u8 = 0;
/// Exit status: findings present and the caller asked to fail on them; or an
/// invalid config for `check-config`.
pub const EXIT_FINDINGS: u8 = 1;
/// Exit status: a scan failed or could not start.
pub const EXIT_FAILED: u8 = 2;

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
    /// `--source` named no configured source.
    #[error("no source named {name:?}; configured: {known}")]
    UnknownSource {
        /// The name given.
        name: String,
        /// The names configured.
        known: String,
    },
    /// Writing output failed.
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
    /// A report could not be built.
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    /// A report could not be mailed.
    #[error(transparent)]
    Mail(#[from] crate::report::mail::MailError),
    /// `scan` without `--once`.
    #[error(
        "`tillsyn scan` runs one pass and needs --once; scheduled scanning is the job of the daemon"
    )]
    NeedsOnce,
}

/// Arguments of `tillsyn scan`.
#[derive(Debug, Clone)]
pub struct ScanArgs {
    /// Config file.
    pub config: PathBuf,
    /// Only this source.
    pub source: Option<String>,
    /// Output format.
    pub format: Format,
    /// Exit 1 when findings are present.
    pub fail_on_findings: bool,
}

fn policies(config: &Config) -> BTreeMap<String, String> {
    config
        .rules
        .iter()
        .map(|rule| (rule.id.clone(), rule.policy.clone()))
        .collect()
}

/// Scan every source once (or the one named) and store what was found.
pub async fn scan_once(
    config: &Config,
    source_filter: Option<&str>,
) -> Result<(Vec<ScanOutcome>, Arc<Mutex<Store>>), CliError> {
    let rules = RuleSet::new(&config.rules, config.daemon.timezone.0)?;
    let selected: Vec<_> = config
        .sources
        .iter()
        .filter(|source| source_filter.is_none_or(|name| source.name == name))
        .collect();
    if let Some(name) = source_filter
        && selected.is_empty()
    {
        let known: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
        return Err(CliError::UnknownSource {
            name: name.to_owned(),
            known: known.join(", "),
        });
    }
    let store = Arc::new(Mutex::new(Store::open(&config.daemon.state_dir)?));
    let mut outcomes = Vec::new();
    for source_config in selected {
        let source = Source::build(source_config)?;
        tracing::info!(source = %source_config.name, "Scan started.");
        let outcome = scan::scan_source(
            &source_config.name,
            &source,
            &rules,
            &store,
            Utc::now(),
            &scan::Stop::default(),
        )
        .await?;
        match &outcome.error {
            None => tracing::info!(
                source = %outcome.source,
                status = outcome.status.as_str(),
                records = outcome.records,
                findings = outcome.findings,
                "Scan finished."
            ),
            // The message names accounts (often addresses): it goes to the
            // operator's output and the store, never to the log.
            Some((kind, _)) => tracing::warn!(
                source = %outcome.source,
                error_kind = %kind,
                "Scan failed."
            ),
        }
        outcomes.push(outcome);
    }
    Ok((outcomes, store))
}

/// `tillsyn scan --once`.
pub async fn scan(
    args: &ScanArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, CliError> {
    let config = config::load(&args.config)?;
    let (outcomes, store) = scan_once(&config, args.source.as_deref()).await?;
    let owners = OwnerDisplay::new(&config.privacy, &config.daemon.state_dir)?;
    let policies = policies(&config);
    let mut findings = Vec::new();
    {
        let store = store
            .lock()
            .map_err(|_| RunError::Worker("store lock poisoned".into()))?;
        // What is open for each scanned source now: seen in this scan, carried
        // by an incremental read, or kept where the scan could not read.
        for outcome in &outcomes {
            findings.extend(store.findings(FindingFilter::Open, Some(&outcome.source), None)?);
        }
    }
    output::write_findings(out, args.format, &findings, &policies, &owners)?;
    for outcome in &outcomes {
        writeln!(err, "{}", output::describe_outcome(outcome))?;
    }
    let failed = outcomes
        .iter()
        .any(|outcome| outcome.status == ScanStatus::Failed);
    Ok(if failed {
        EXIT_FAILED
    } else if args.fail_on_findings && !findings.is_empty() {
        EXIT_FINDINGS
    } else {
        EXIT_OK
    })
}

/// `tillsyn findings`: what the store holds.
pub fn findings(
    config_path: &std::path::Path,
    filter: FindingFilter,
    source: Option<&str>,
    format: Format,
    out: &mut dyn Write,
) -> Result<u8, CliError> {
    let config = config::load(config_path)?;
    let store = Store::open(&config.daemon.state_dir)?;
    let owners = OwnerDisplay::new(&config.privacy, &config.daemon.state_dir)?;
    let findings = store.findings(filter, source, None)?;
    output::write_findings(out, format, &findings, &policies(&config), &owners)?;
    Ok(EXIT_OK)
}

/// `tillsyn check-config`: validate and summarise.
pub fn check_config(config_path: &std::path::Path, out: &mut dyn Write) -> Result<u8, CliError> {
    let config = match config::load(config_path) {
        Ok(config) => config,
        Err(errors) => {
            write!(out, "{errors}")?;
            return Ok(EXIT_FINDINGS);
        }
    };
    let rules = RuleSet::new(&config.rules, config.daemon.timezone.0)?;
    writeln!(
        out,
        "{}: OK — {} sources, {} rules, state in {}",
        config_path.display(),
        config.sources.len(),
        config.rules.len(),
        config.daemon.state_dir.display()
    )?;
    for source in &config.sources {
        let applicable = rules.for_source(&source.name);
        writeln!(
            out,
            "  source {} ({}): {} rules{}",
            source.name,
            source.settings.type_name(),
            applicable.len(),
            if applicable.participants {
                ", reads mail headers"
            } else {
                ""
            }
        )?;
    }
    for rule in &config.rules {
        let reaches = config
            .sources
            .iter()
            .filter(|source| rule.when.names_source(&source.name))
            .count();
        if reaches == 0 {
            writeln!(
                out,
                "  warning: rule {} applies to no configured source",
                rule.id
            )?;
        }
    }
    Ok(EXIT_OK)
}

/// Arguments of `tillsyn report`.
#[derive(Debug, Clone)]
pub struct ReportArgs {
    /// Config file.
    pub config: PathBuf,
    /// The month; default the one before the current one.
    pub month: Option<crate::report::Month>,
    /// Where to write the files.
    pub out: Option<PathBuf>,
    /// Send it (through the outbox).
    pub send: bool,
}

/// `tillsyn report`: write a month's report to files and/or send it.
pub async fn report(args: &ReportArgs, out: &mut dyn Write) -> Result<u8, CliError> {
    use crate::report::{self, Month, mail};
    let config = Arc::new(config::load(&args.config)?);
    let zone = config.daemon.timezone.0;
    let month = args
        .month
        .unwrap_or_else(|| Month::of(Utc::now(), zone).previous());
    let store = Arc::new(Mutex::new(Store::open(&config.daemon.state_dir)?));
    let directory = match (&args.out, args.send) {
        (Some(dir), _) => Some(dir.clone()),
        (None, false) => Some(PathBuf::from(format!("tillsyn-report-{month}"))),
        (None, true) => None,
    };
    if let Some(dir) = directory {
        let rendered = {
            let config = config.clone();
            let store = store.clone();
            tokio::task::spawn_blocking(move || -> Result<report::render::Rendered, CliError> {
                let guard = store
                    .lock()
                    .map_err(|_| RunError::Worker("store lock poisoned".into()))?;
                let built = report::build(&config, &guard, month, Utc::now())?;
                let templates = config.report.as_ref().and_then(|r| r.templates_dir.clone());
                Ok(report::render::render(&built, templates.as_deref())
                    .map_err(report::ReportError::from)?)
            })
            .await
            .map_err(|error| RunError::Worker(error.to_string()))??
        };
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("report.html"), &rendered.html_file)?;
        std::fs::write(dir.join("report.txt"), &rendered.text)?;
        std::fs::write(dir.join("trend.png"), &rendered.png)?;
        std::fs::write(dir.join(format!("tillsyn-{month}.csv")), &rendered.csv)?;
        writeln!(out, "{}", rendered.subject)?;
        writeln!(
            out,
            "Written to {}: report.html, report.txt, trend.png, tillsyn-{month}.csv",
            dir.display()
        )?;
    }
    if !args.send {
        return Ok(EXIT_OK);
    }
    let mail_config = config
        .report
        .as_ref()
        .and_then(|report| report.mail.clone())
        .ok_or(mail::MailError::NotConfigured)?;
    let entry = mail::prepare(&config, &store, month, Utc::now()).await?;
    if let Some(sent) = entry.sent_at {
        writeln!(
            out,
            "The report for {month} was sent on {}; it is not sent twice.",
            sent.to_rfc3339()
        )?;
        return Ok(EXIT_OK);
    }
    match mail::deliver_entry(&mail_config, &store, &entry).await? {
        Ok(()) => {
            writeln!(out, "Sent the report for {month}: {}", entry.subject)?;
            Ok(EXIT_OK)
        }
        Err(error) => {
            writeln!(
                out,
                "Not sent: {error}\nThe report for {month} waits in the outbox; `tillsyn run` keeps trying, or run this again."
            )?;
            Ok(EXIT_FAILED)
        }
    }
}
