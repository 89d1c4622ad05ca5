//! The commands behind the `tillsyn` binary. `main.rs` parses arguments and calls
//! these; each returns the process exit status or a typed error.
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

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::Utc;

use tillsyn_app::engine::Engine;
use tillsyn_app::output::{self, Format};
use tillsyn_app::privacy::{KeyError, PersonDisplay};
use tillsyn_app::runner::{self, BuildError, RunError, Source};
use tillsyn_config::{self as config, Config, ConfigErrors};
use tillsyn_rules::{RuleError, RuleSet};
use tillsyn_store::{FindingFilter, ScanStatus, Store, StoreError};

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
    /// Scan against a private copy of the store: nothing is written.
    pub dry_run: bool,
    /// Wait for a source another process is scanning, rather than refuse it.
    pub wait: bool,
    /// Show people by name.
    pub reveal: bool,
}

fn policies(config: &Config) -> BTreeMap<String, String> {
    config
        .rules
        .iter()
        .map(|rule| (rule.id.clone(), rule.policy.clone()))
        .collect()
}

/// `tillsyn scan --once`.
pub async fn scan(
    args: &ScanArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, CliError> {
    let engine = Engine::new(config::load(&args.config)?)?;
    let config = engine.config();
    let store = if args.dry_run {
        engine.copy_store()?
    } else {
        engine.open_store()?
    };
    let pass = runner::scan_pass(&engine, args.source.as_deref(), store, args.wait).await?;
    let custodians = engine.display(args.reveal)?;
    let policies = policies(config);
    let mut findings = Vec::new();
    {
        let mut store = pass
            .store
            .lock()
            .map_err(|_| RunError::Worker("store lock poisoned".into()))?;
        // What is open for each scanned source now: seen in this scan, carried
        // by an incremental read, or kept where the scan could not read.
        for outcome in &pass.outcomes {
            findings.extend(store.findings(FindingFilter::Open, Some(&outcome.source), None)?);
        }
        if !args.dry_run
            && let Some(cutoff) = config.daemon.retention.before(Utc::now())
        {
            store.prune(cutoff)?;
        }
    }
    let exceptions = engine.rules().exceptions();
    output::write_findings(
        out,
        args.format,
        &findings,
        &policies,
        &custodians,
        exceptions,
    )?;
    for outcome in &pass.outcomes {
        writeln!(err, "{}", output::describe_outcome(outcome, &custodians))?;
    }
    for busy in &pass.busy {
        writeln!(
            err,
            "{busy}. Run again when it is done, or with --wait to wait for it."
        )?;
    }
    if args.dry_run {
        writeln!(err, "Dry run: nothing was written to the store.")?;
    }
    let failed = pass
        .outcomes
        .iter()
        .any(|outcome| outcome.status == ScanStatus::Failed);
    Ok(if failed || !pass.busy.is_empty() {
        EXIT_FAILED
    } else if args.fail_on_findings && !findings.is_empty() {
        EXIT_FINDINGS
    } else {
        EXIT_OK
    })
}

/// Arguments of `tillsyn findings`.
#[derive(Debug, Clone, Default)]
pub struct FindingsArgs {
    /// Open, resolved or all, and the store-side filters.
    pub query: tillsyn_store::FindingQuery,
    /// Only findings first seen on or after this day (`YYYY-MM-DD`, in
    /// `daemon.timezone`) or instant (RFC 3339).
    pub since: Option<String>,
    /// Only findings whose custodian shows as this (a pseudonym, or a name with
    /// `--reveal` or `name_people`).
    pub custodian: Option<String>,
    /// Show people by name, whatever the config says.
    pub reveal: bool,
}

/// `tillsyn findings`: what the store holds. Reads no connector secret.
pub fn findings(
    config_path: &std::path::Path,
    args: &FindingsArgs,
    format: Format,
    out: &mut dyn Write,
) -> Result<u8, CliError> {
    let engine = Engine::new(config::load_offline(config_path)?)?;
    let config = engine.config();
    let mut store = engine.open_store()?;
    // The exceptions as the config has them now, edits included.
    let exceptions = engine.rules().exceptions().clone();
    store.mark_exceptions(&exceptions, None)?;
    let custodians = engine.display(args.reveal)?;
    let mut query = args.query.clone();
    if let Some(since) = &args.since {
        query.since = Some(parse_since(since, config.daemon.timezone.0)?);
    }
    let mut findings = store.query(&query)?;
    if let Some(wanted) = &args.custodian {
        findings.retain(|finding| custodians.show(finding.custodian.as_deref()) == *wanted);
    }
    output::write_findings(
        out,
        format,
        &findings,
        &policies(config),
        &custodians,
        &exceptions,
    )?;
    Ok(EXIT_OK)
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

/// `tillsyn explain ID`: one finding, the rule behind it and how it was judged.
pub fn explain(
    config_path: &std::path::Path,
    id: i64,
    reveal: bool,
    out: &mut dyn Write,
) -> Result<u8, CliError> {
    use tillsyn_config::rules::Check;
    let engine = Engine::new(config::load_offline(config_path)?)?;
    let config = engine.config();
    let store = engine.open_store()?;
    let custodians = engine.display(reveal)?;
    let finding = store.finding(id)?.ok_or(CliError::NoFinding(id))?;
    let zone = config.daemon.timezone.0;
    let local = |time: chrono::DateTime<Utc>| {
        time.with_timezone(&zone)
            .format("%Y-%m-%d %H:%M %Z")
            .to_string()
    };
    writeln!(out, "Finding {}", finding.id)?;
    writeln!(
        out,
        "  record:     {} ({}) in source {}",
        custodians.record(
            &finding.source,
            &finding.record_kind,
            &finding.record_path,
            finding.custodian.as_deref()
        ),
        finding.record_kind,
        finding.source
    )?;
    writeln!(
        out,
        "  custodian:  {}",
        custodians.show(finding.custodian.as_deref())
    )?;
    writeln!(out, "  rule:       {} [{}]", finding.rule, finding.severity)?;
    let rule = config.rules.iter().find(|rule| rule.id == finding.rule);
    match rule {
        None => writeln!(out, "  promise:    (the rule is no longer in the config)")?,
        Some(rule) => {
            writeln!(out, "  promise:    \"{}\"", rule.policy)?;
            match &rule.check {
                Check::MaxAge(check) => {
                    let fields: Vec<String> = check
                        .timestamp
                        .0
                        .iter()
                        .map(|field| format!("{field} ({})", timestamp_origin(&field.to_string())))
                        .collect();
                    writeln!(
                        out,
                        "  clock:      from the first of: {}",
                        fields.join(", ")
                    )?;
                    let anchor = match check.anchor {
                        tillsyn_config::rules::Anchor::None => "the timestamp itself".to_owned(),
                        tillsyn_config::rules::Anchor::EndOfYear => {
                            "the end of the fiscal year the timestamp falls in".to_owned()
                        }
                    };
                    writeln!(
                        out,
                        "  deadline:   {anchor} + max_age {} + grace {}; broken once now is past it",
                        check.max_age, check.grace
                    )?;
                }
                Check::MaxRecipients(check) => writeln!(
                    out,
                    "  limit:      at most {} {:?} recipients outside {:?}; age counts from received",
                    check.max, check.count, check.exclude_domains
                )?,
                Check::MaxInterval(check) => writeln!(
                    out,
                    "  deadline:   {} must follow {} within {}",
                    check.to, check.from, check.max
                )?,
                Check::Conflict(_) => writeln!(
                    out,
                    "  conflict:   the record is on a list its person was marked off (joined by keyed address)"
                )?,
                Check::Contains(check) => writeln!(
                    out,
                    "  content:    at least {} match(es) of {} at {} confidence or above, in mail bodies, text attachments or file text (values are never kept)",
                    check.min_count,
                    check.detectors.join(", "),
                    check.min_confidence.level().as_str()
                )?,
                Check::Erased(check) => writeln!(
                    out,
                    "  erasure:    the record holds an identifier on the erasure register (matched by keyed hash) more than {} after the request",
                    check.deadline
                )?,
            }
        }
    }
    writeln!(out, "  measured:   {}", custodians.text(&finding.detail))?;
    if let Some(days) = finding.age_days {
        writeln!(out, "  age:        {days} days when last seen")?;
    }
    writeln!(
        out,
        "  first seen: {} (scan {})",
        local(finding.first_seen),
        finding.first_seen_scan
    )?;
    writeln!(
        out,
        "  last seen:  {} (scan {})",
        local(finding.last_seen),
        finding.last_seen_scan
    )?;
    match (finding.resolved_at, finding.resolved_scan) {
        (Some(at), Some(scan)) => writeln!(
            out,
            "  resolved:   {} (scan {scan} no longer saw it)",
            local(at)
        )?,
        (Some(at), None) => writeln!(out, "  resolved:   {}", local(at))?,
        _ => writeln!(out, "  resolved:   no, still open")?,
    }
    Ok(EXIT_OK)
}

/// Where a record's named timestamp comes from, in words.
fn timestamp_origin(field: &str) -> &'static str {
    match field {
        "received" => "IMAP INTERNALDATE or the Maildir file's mtime; never the sender's Date:",
        "modified" => "the file's modification time, or the entry's modify timestamp",
        "created" => "the file's birth time where the file system keeps one",
        "last_activity" => "the newest change inside a folder, or the last contact in the CRM",
        _ => "a named date: a marker file, a mapped attribute or field, or a path date",
    }
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

/// `tillsyn check-config --upgrade`: the config, checked, printed with every
/// key renamed in this release under its new name. Never writes the file.
pub fn upgrade_config(config_path: &std::path::Path, out: &mut dyn Write) -> Result<u8, CliError> {
    let config = match config::load_offline(config_path) {
        Ok(config) => config,
        Err(errors) => {
            write!(out, "{errors}")?;
            return Ok(EXIT_CONFIG);
        }
    };
    let text = std::fs::read_to_string(config_path)?;
    write!(out, "{}", config::upgraded(&text, &config.upgrades))?;
    Ok(EXIT_OK)
}

/// `tillsyn check-config [--connect]`: validate and summarise; with `connect`,
/// try every source read-only too.
pub async fn check_config(
    config_path: &std::path::Path,
    connect: bool,
    out: &mut dyn Write,
) -> Result<u8, CliError> {
    let config = match config::load(config_path) {
        Ok(config) => config,
        Err(errors) => {
            write!(out, "{errors}")?;
            return Ok(EXIT_CONFIG);
        }
    };
    let rules = RuleSet::for_config(&config)?;
    write_warnings(&config, out)?;
    // The erasure register's lines are checked with a throwaway key: nothing
    // is hashed for keeps, nothing is stored.
    let throwaway = rules
        .clone()
        .with_identity_key(tillsyn_core::identity::IdentityKey::new(
            tillsyn_core::secret::Secret::new(vec![0; 32]),
        ));
    if let Some(Err(error)) = tillsyn_app::erasure::read_register(&throwaway, Utc::now()) {
        writeln!(out, "{}: 1 problem\n  {error}", config_path.display())?;
        return Ok(EXIT_CONFIG);
    }
    let store_place = match &config.store {
        Some(store) => format!("store in PostgreSQL at {}", store.url),
        None => format!("state in {}", config.daemon.state_dir.display()),
    };
    writeln!(
        out,
        "{}: OK — {} sources, {} rules, {store_place}",
        config_path.display(),
        config.sources.len(),
        config.rules.len(),
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
    // Exceptions: one that ended, or that covers none of the findings the
    // store holds, is most likely a mistake (a typo in a path or an id).
    let exceptions = tillsyn_rules::exceptions::Exceptions::from_config(&config);
    if !exceptions.is_empty() {
        let now = Utc::now();
        let covered = if config.daemon.state_dir.join("findings.sqlite").exists() {
            let mut copy = Store::copy_for_config(&config)?;
            Some(copy.mark_exceptions(&exceptions, None)?)
        } else {
            None
        };
        for exception in exceptions.iter() {
            let id = &exception.config.id;
            if exception.ends <= now {
                writeln!(
                    out,
                    "  warning: exception {id} ended on {}: its findings count again",
                    exception.config.until
                )?;
            } else if let Some(covered) = &covered
                && !covered.contains_key(id)
            {
                writeln!(
                    out,
                    "  warning: exception {id} covers no open finding (a typo in its rule, sources, paths or records?)"
                )?;
            }
        }
    }
    if !connect {
        return Ok(EXIT_OK);
    }
    let custodians = PersonDisplay::for_config(&config)?;
    let mut failed = 0;
    writeln!(out, "Connecting (read-only):")?;
    if let Some(store) = &config.store {
        // Reached and logged in; nothing is written.
        let store = store.clone();
        let reached = tokio::task::spawn_blocking(move || {
            let database = tillsyn_store::db::Postgres::connect(&store)?;
            tillsyn_store::db::Database::query(&database, "SHOW server_version", &[])?
                .first()
                .map(|row| row.text(0))
                .transpose()
        })
        .await
        .map_err(|error| RunError::Worker(error.to_string()))?;
        match reached {
            Ok(version) => writeln!(
                out,
                "  store: OK — PostgreSQL {}",
                version.unwrap_or_default()
            )?,
            Err(error) => {
                failed += 1;
                writeln!(out, "  store: FAILED — {error}")?;
            }
        }
    }
    for source_config in &config.sources {
        let result = match Source::build(&source_config.settings) {
            Ok(source) => source.probe().await.map_err(|error| error.to_string()),
            Err(error) => Err(error.to_string()),
        };
        match result {
            Ok(seen) => writeln!(
                out,
                "  {}: OK — {}",
                source_config.name,
                custodians.text(&seen)
            )?,
            Err(reason) => {
                failed += 1;
                writeln!(
                    out,
                    "  {}: FAILED — {}",
                    source_config.name,
                    custodians.text(&reason)
                )?;
            }
        }
    }
    Ok(if failed > 0 { EXIT_FAILED } else { EXIT_OK })
}

/// Arguments of `tillsyn report`.
#[derive(Debug, Clone)]
pub struct ReportArgs {
    /// Config file.
    pub config: PathBuf,
    /// The month; default the one before the current one.
    pub month: Option<tillsyn_app::report::Month>,
    /// Where to write the files.
    pub out: Option<PathBuf>,
    /// Send it (through the outbox).
    pub send: bool,
}

/// `tillsyn digest`: make each custodian's digest of a month, write them to files
/// to look at, and/or send them through the outbox.
pub async fn digest(args: &ReportArgs, out: &mut dyn Write) -> Result<u8, CliError> {
    use tillsyn_app::report::{Month, digest};
    let secrets = if args.send {
        config::Secrets::MAIL
    } else {
        config::Secrets::NONE
    };
    let config = config::load_with(&args.config, secrets)?;
    let zone = config.daemon.timezone.0;
    let month = args
        .month
        .unwrap_or_else(|| Month::of(Utc::now(), zone).previous());
    let store = Arc::new(Mutex::new(Engine::new(config.clone())?.open_store()?));
    let prepared = digest::prepare(&config, &store, month, Utc::now()).await?;
    let made = prepared.month;
    writeln!(
        out,
        "digests {month}: {} custodians with findings, {} new in the outbox, {} without an address, {} with no internal address (outside [digest] domains; not mailed), {} findings with no custodian",
        made.custodians, prepared.queued, made.no_address, made.outside_domains, made.no_custodian
    )?;
    if let Some(dir) = &args.out {
        let written = {
            let guard = store
                .lock()
                .map_err(|_| RunError::Worker("store lock poisoned".into()))?;
            digest::write_files(&guard, month, dir)?
        };
        writeln!(out, "{written} unsent digests written to {}", dir.display())?;
    }
    if !args.send {
        return Ok(EXIT_OK);
    }
    let delivered = digest::deliver_due(&config, &store).await?;
    writeln!(
        out,
        "sent {}, failed {} (tried again later, by the next `tillsyn digest --send` or the daemon), given up {}",
        delivered.sent, delivered.failed, delivered.gave_up
    )?;
    Ok(if delivered.failed + delivered.gave_up > 0 {
        EXIT_FAILED
    } else {
        EXIT_OK
    })
}

/// `tillsyn report`: write a month's report to files and/or send it.
pub async fn report(args: &ReportArgs, out: &mut dyn Write) -> Result<u8, CliError> {
    use tillsyn_app::report::outbox::Delivery;
    use tillsyn_app::report::{self, Month, mail};
    use tillsyn_store::AfterFailure;
    // Writing files needs no secret; sending needs the SMTP password only.
    let secrets = if args.send {
        config::Secrets::MAIL
    } else {
        config::Secrets::NONE
    };
    let config = Arc::new(config::load_with(&args.config, secrets)?);
    let zone = config.daemon.timezone.0;
    let month = args
        .month
        .unwrap_or_else(|| Month::of(Utc::now(), zone).previous());
    let store = Arc::new(Mutex::new(Engine::new((*config).clone())?.open_store()?));
    let directory = match (&args.out, args.send) {
        (Some(dir), _) => Some(dir.clone()),
        (None, false) => Some(PathBuf::from(format!("tillsyn-report-{month}"))),
        (None, true) => None,
    };
    if let Some(dir) = directory {
        let now = Utc::now();
        let departments = report::departments::or_none(&config, &store, month, now).await;
        let rendered = {
            let config = config.clone();
            let store = store.clone();
            tokio::task::spawn_blocking(move || -> Result<report::render::Rendered, CliError> {
                let mut guard = store
                    .lock()
                    .map_err(|_| RunError::Worker("store lock poisoned".into()))?;
                let built = report::build_with(&config, &mut guard, month, now, &departments)?;
                let templates = config.report.as_ref().and_then(|r| r.templates_dir.clone());
                Ok(report::render::render(&built, templates.as_deref())
                    .map_err(report::ReportError::from)?)
            })
            .await
            .map_err(|error| RunError::Worker(error.to_string()))??
        };
        let names = report::render::write_files(&rendered, month, &dir)?;
        writeln!(out, "{}", rendered.subject)?;
        writeln!(out, "Written to {}: {}", dir.display(), names.join(", "))?;
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
    match tillsyn_app::report::outbox::deliver_entry(&mail_config, &store, &entry).await? {
        Delivery::Sent => {
            writeln!(out, "Sent the report for {month}: {}", entry.subject)?;
            Ok(EXIT_OK)
        }
        Delivery::Claimed => {
            writeln!(
                out,
                "The report for {month} is being sent by another tillsyn process (the daemon); it is not sent twice."
            )?;
            Ok(EXIT_OK)
        }
        Delivery::Failed(error, after) => {
            // The server's reply, with any address in it pseudonymised unless
            // the config names people.
            let reply = PersonDisplay::for_config(&config)?.text(&error.to_string());
            match after {
                AfterFailure::Retry(_) => writeln!(
                    out,
                    "Not sent: {reply}\nThe report for {month} waits in the outbox; `tillsyn run` keeps trying, or run this again."
                )?,
                AfterFailure::GaveUp => writeln!(
                    out,
                    "Not sent: {reply}\nThe report for {month} failed {} times and is given up.",
                    tillsyn_store::OutboxKind::Report.max_attempts()
                )?,
            }
            Ok(EXIT_FAILED)
        }
    }
}

/// `tillsyn subject`: where the index (and, asked, the servers) hold a
/// person, written to `out` (created 0600) or `stdout`. Verifying and
/// searching read the stores, and need their credentials; a lookup does not.
pub async fn subject(
    config_path: &std::path::Path,
    request: &tillsyn_app::subject::SubjectRequest,
    out: Option<&std::path::Path>,
    stdout: &mut dyn Write,
) -> Result<u8, CliError> {
    let config = if request.verify || request.search {
        config::load(config_path)?
    } else {
        config::load_offline(config_path)?
    };
    let engine = Engine::new(config)?;
    let rendered = tillsyn_app::subject::answer(&engine, request).await?;
    match out {
        Some(path) => tillsyn_app::privacy::write_private(path, rendered.as_bytes())?,
        None => stdout.write_all(rendered.as_bytes())?,
    }
    Ok(EXIT_OK)
}

/// `tillsyn erasure`: read the register into the store, then print every
/// request's state per store (`json`: one document; otherwise a table).
/// Requests are named by the first 8 hex digits of their keyed hash, never by
/// the identifier. A register with bad lines: every bad line's number, nothing
/// imported, exit 3.
pub fn erasure(
    config_path: &std::path::Path,
    json: bool,
    out: &mut dyn std::io::Write,
) -> Result<u8, CliError> {
    use tillsyn_app::erasure::{ImportError, import, state_text, status};
    let engine = tillsyn_app::engine::Engine::new(tillsyn_config::load_offline(config_path)?)?;
    let config = engine.config();
    let rules = engine.rules();
    let mut store = engine.open_store()?;
    let now = Utc::now();
    match import(rules, &mut store, now) {
        Some(Err(ImportError::Register(error))) => {
            writeln!(out, "{error}")?;
            return Ok(EXIT_CONFIG);
        }
        Some(Err(ImportError::Store(error))) => return Err(CliError::Store(error)),
        Some(Ok(new)) => writeln!(out, "erasure register read: {new} new request(s)")?,
        None => {}
    }
    let statuses = status(config, &store, now)?;
    let zone = config.daemon.timezone.0;
    let day =
        |time: chrono::DateTime<Utc>| time.with_timezone(&zone).format("%Y-%m-%d").to_string();
    if json {
        let text = serde_json::to_string_pretty(&statuses)
            .map_err(|error| CliError::BadArgument(format!("JSON: {error}")))?;
        writeln!(out, "{text}")?;
        return Ok(EXIT_OK);
    }
    writeln!(out, "{} erasure request(s)", statuses.len())?;
    for request in &statuses {
        let stores: Vec<String> = request
            .stores
            .iter()
            .map(|(name, state)| format!("{name} {}", state_text(*state)))
            .collect();
        writeln!(
            out,
            "{} {} requested {} due {}: {} ({})",
            request.reference,
            request.kind,
            day(request.requested_at),
            request.due.map_or("-".to_owned(), day),
            state_text(request.overall()),
            stores.join(", ")
        )?;
    }
    Ok(EXIT_OK)
}
