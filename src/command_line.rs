//! The command line: what it parses ([`Args`], one [`Command`] each run) and
//! [`run`], which runs a command to its exit status on a runtime of its own.
//!
//! Here in the library rather than in `main.rs`: the commands' futures are
//! driven (`block_on`) where they are defined, so the release build compiles
//! their code once, in this crate, and not a second time in the binary
//! (measured: the binary's own unit took 52 s of a build when it drove them).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tillsyn_app::output::Format;
use tillsyn_store::FindingFilter;

use crate::cli;

/// Where a command looks for its config unless told.
const DEFAULT_CONFIG: &str = "/etc/tillsyn/config.toml";

/// The arguments of one run of `tillsyn`.
#[derive(Parser)]
#[command(
    name = "tillsyn",
    version,
    about = "Checks whether an organisation keeps the promises of its privacy policy."
)]
pub struct Args {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The config and month a report or the digests are made from.
#[derive(clap::Args)]
pub struct MonthOf {
    /// Config file.
    #[arg(long, short, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// The month, YYYY-MM. Default: the month before this one.
    #[arg(long)]
    month: Option<tillsyn_app::report::Month>,
}

impl MonthOf {
    /// The command's arguments, with where to write and whether to send.
    fn with(self, out: Option<PathBuf>, send: bool) -> cli::ReportArgs {
        cli::ReportArgs {
            config: self.config,
            month: self.month,
            out,
            send,
        }
    }
}

/// One command and its arguments.
#[derive(Subcommand)]
pub enum Command {
    /// Build a small example organisation on disk, audit it and summarise.
    Demo {
        /// Folder to build it in (replaced on re-run). Default: a folder in $TMPDIR.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Scan sources once and print the findings.
    Scan {
        /// Run one pass and exit.
        #[arg(long)]
        once: bool,
        /// Config file.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Scan only this source.
        #[arg(long)]
        source: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Exit 1 when there are findings (2 still means a source failed).
        #[arg(long)]
        fail_on_findings: bool,
        /// Read and evaluate, print what was found, and write nothing to the
        /// store (no findings, no scans, no checkpoints).
        #[arg(long)]
        dry_run: bool,
        /// If another tillsyn process is scanning a source, wait for it rather
        /// than refuse (exit 2).
        #[arg(long)]
        wait: bool,
        /// PRINTS PERSONAL DATA: show accounts, names and paths in full, whatever
        /// `[privacy] name_people` says.
        #[arg(long)]
        reveal: bool,
    },
    /// List findings from the store.
    Findings {
        /// Config file.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Only open findings (the default).
        #[arg(long, conflicts_with_all = ["resolved", "all"])]
        open: bool,
        /// Only resolved findings.
        #[arg(long, conflicts_with = "all")]
        resolved: bool,
        /// Open and resolved findings.
        #[arg(long)]
        all: bool,
        /// Only this source.
        #[arg(long)]
        source: Option<String>,
        /// Only this rule.
        #[arg(long)]
        rule: Option<String>,
        /// Only findings first seen on or after this day (YYYY-MM-DD, in
        /// daemon.timezone) or time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Only this custodian, as the output shows it (a pseudonym `p-…`).
        #[arg(long)]
        custodian: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// PRINTS PERSONAL DATA: show accounts, names and paths in full, whatever
        /// `[privacy] name_people` says.
        #[arg(long)]
        reveal: bool,
    },
    /// Explain one finding: the rule, the promise, the timestamp used and where it
    /// came from, how the age and deadline were computed, first and last seen.
    Explain {
        /// The finding's id (the ID column of `tillsyn findings`).
        id: i64,
        /// Config file.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// PRINTS PERSONAL DATA: show the record's location and custodian in full, to
        /// act on the finding.
        #[arg(long)]
        reveal: bool,
    },
    /// PRINTS PERSONAL DATA: where the organisation holds data about one person
    /// (a registerutdrag), from the identity index; no store is read. Every
    /// lookup is logged in the store (kinds and keyed hashes, never the values).
    Subject {
        /// Config file.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// An e-mail address (any case).
        #[arg(long)]
        email: Vec<String>,
        /// A personnummer or samordningsnummer, in any written form.
        #[arg(long)]
        personnummer: Vec<String>,
        /// A Swedish phone number, in any written form.
        #[arg(long)]
        phone: Vec<String>,
        /// An account name (a mailbox or file custodian without an address).
        #[arg(long)]
        account: Vec<String>,
        /// KIND=VALUE, for a kind a source's `identifiers` names
        /// (employee_number=E-1007).
        #[arg(long = "id")]
        ids: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = tillsyn_app::subject::SubjectFormat::Text)]
        format: tillsyn_app::subject::SubjectFormat,
        /// Language of the HTML summary: sv or en.
        #[arg(long, default_value_t = tillsyn_core::language::Language::Sv)]
        lang: tillsyn_core::language::Language,
        /// Write the report to this file (created 0600) instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Re-read every store (read-only, into a private copy of the store:
        /// nothing is written) and say whether each place still holds the
        /// person. Takes as long as a scan.
        #[arg(long)]
        verify: bool,
        /// Where the index does not cover a kind in an IMAP source, ask the
        /// server too (UID SEARCH FROM/TO/CC, or TEXT for numbers).
        #[arg(long)]
        search: bool,
    },
    /// Read the erasure register into the store (keyed hashes only) and show
    /// each request's state in every store: erased, still there, overdue, or
    /// not verified.
    Erasure {
        /// Config file.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// One JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run as a service: scan each source on its schedule, serve /metrics,
    /// reload on SIGHUP, stop on SIGTERM.
    Run {
        /// Config file.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Serve /metrics on this address instead of `[daemon] listen`: for
        /// several instances of a fleet on one host, from one config.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Make the monthly compliance report: write it to files, send it, or both.
    Report {
        /// The config and the month.
        #[command(flatten)]
        of: MonthOf,
        /// Folder to write report.html, report.txt, trend.png and the CSV to.
        /// Default without --send: ./tillsyn-report-YYYY-MM.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Send it to the configured recipients (once per month: the outbox keeps
        /// it and never sends a month twice).
        #[arg(long)]
        send: bool,
    },
    /// Each custodian's personal digest of a month (`[digest]`): their own open
    /// findings, with what to do. Put in the outbox once per custodian and month.
    Digest {
        /// The config and the month.
        #[command(flatten)]
        of: MonthOf,
        /// Folder to write the unsent digests to (one .eml per custodian, named by
        /// pseudonym), to look at before sending.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Send what is due (each custodian once per month; failures are tried
        /// again later).
        #[arg(long)]
        send: bool,
    },
    /// Draft a policy pack from a privacy policy's text: one commented rule
    /// per promise, quoting it, with TODOs for the sources.
    DraftRules {
        /// The policy as plain UTF-8 text (HTML with the tags removed will do).
        policy: PathBuf,
        /// The policy's language, sv or en. Default: detected from the text.
        #[arg(long)]
        language: Option<tillsyn_core::language::Language>,
        /// Write the pack here. Default: standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check a config file and report every problem with its line.
    CheckConfig {
        /// Config file.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Also try every source, read-only: IMAP login and LIST, LDAP bind and a
        /// one-entry search of the base, the first HTTP page, share and Maildir
        /// roots readable. Exit 2 when any fails.
        #[arg(long)]
        connect: bool,
        /// Print the config rewritten with the keys renamed in this release
        /// under their new names, to stdout. The file is never written.
        #[arg(long, conflicts_with = "connect")]
        upgrade: bool,
    },
    /// Write a starting config from a few answers (flags, or questions in a
    /// terminal), say which secret files to create, then check it and connect
    /// to every source.
    Init(Box<cli::InitArgs>),
    /// Write man pages and shell completions made from this CLI (for
    /// packagers).
    #[command(name = "__generate", hide = true)]
    Generate {
        /// Folder for tillsyn.1 and one tillsyn-COMMAND.1 per command.
        #[arg(long)]
        man: Option<PathBuf>,
        /// Folder for the bash, zsh and fish completions.
        #[arg(long)]
        completions: Option<PathBuf>,
    },
}

/// Run `args`' command to its exit status (see [`cli`]), on a runtime made
/// for it.
pub fn run(args: Args) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr();
    let code = match args.command {
        Command::Demo { dir } => {
            let dir = dir.unwrap_or_else(crate::demo::default_dir);
            runtime.block_on(crate::demo::run(&dir, &mut stdout))?
        }
        Command::Scan {
            once,
            config,
            source,
            format,
            fail_on_findings,
            dry_run,
            wait,
            reveal,
        } => {
            if !once {
                return Err(cli::CliError::NeedsOnce.into());
            }
            let scan = cli::ScanArgs {
                config,
                source,
                format,
                fail_on_findings,
                dry_run,
                wait,
                reveal,
            };
            runtime.block_on(cli::scan(&scan, &mut stdout, &mut stderr))?
        }
        Command::Findings {
            config,
            open: _,
            resolved,
            all,
            source,
            rule,
            since,
            custodian,
            format,
            reveal,
        } => {
            let filter = if all {
                FindingFilter::All
            } else if resolved {
                FindingFilter::Resolved
            } else {
                FindingFilter::Open
            };
            let args = cli::FindingsArgs {
                query: tillsyn_store::FindingQuery {
                    filter,
                    source,
                    rule,
                    ..Default::default()
                },
                since,
                custodian,
                reveal,
            };
            cli::findings(&config, &args, format, &mut stdout)?
        }
        Command::Explain { id, config, reveal } => cli::explain(&config, id, reveal, &mut stdout)?,
        Command::Erasure { config, json } => cli::erasure(&config, json, &mut stdout)?,
        Command::Subject {
            config,
            email,
            personnummer,
            phone,
            account,
            ids,
            format,
            lang,
            out,
            verify,
            search,
        } => {
            let mut asked = Vec::new();
            for (kind, values) in [
                ("email", email),
                ("personnummer", personnummer),
                ("phone", phone),
                ("account", account),
            ] {
                asked.extend(values.into_iter().map(|value| tillsyn_app::subject::Asked {
                    kind: kind.to_owned(),
                    value,
                }));
            }
            for id in ids {
                let Some((kind, value)) = id.split_once('=') else {
                    return Err(cli::CliError::BadArgument(
                        "--id wants KIND=VALUE, such as employee_number=E-1007".into(),
                    )
                    .into());
                };
                asked.push(tillsyn_app::subject::Asked {
                    kind: kind.trim().to_owned(),
                    value: value.to_owned(),
                });
            }
            let request = tillsyn_app::subject::SubjectRequest {
                asked,
                format,
                language: lang,
                verify,
                search,
            };
            runtime.block_on(cli::subject(&config, &request, out.as_deref(), &mut stdout))?
        }
        Command::DraftRules {
            policy,
            language,
            out,
        } => {
            let args = tillsyn_draft::DraftArgs {
                policy,
                lang: language,
                out,
            };
            tillsyn_draft::run(&args, &mut stdout, &mut std::io::stderr())?;
            cli::EXIT_OK
        }
        Command::CheckConfig {
            config,
            connect: _,
            upgrade: true,
        } => cli::upgrade_config(&config, &mut stdout)?,
        Command::CheckConfig {
            config, connect, ..
        } => runtime.block_on(cli::check_config(&config, connect, &mut stdout))?,
        Command::Report { of, out, send } => {
            runtime.block_on(cli::report(&of.with(out, send), &mut stdout))?
        }
        Command::Digest { of, out, send } => {
            runtime.block_on(cli::digest(&of.with(out, send), &mut stdout))?
        }
        Command::Init(args) => {
            let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
            let mut input = std::io::stdin().lock();
            cli::init(*args, interactive, &mut input, &mut stdout)?
        }
        Command::Generate { man, completions } => {
            let command = <Args as clap::CommandFactory>::command();
            for path in cli::generate(command, man.as_deref(), completions.as_deref())? {
                std::io::Write::write_fmt(&mut stdout, format_args!("{path}\n"))?;
            }
            cli::EXIT_OK
        }
        Command::Run { config, listen } => {
            drop(stdout);
            let result = runtime.block_on(crate::daemon::run(config, listen));
            // Connector threads that did not notice the stop in time must not
            // hold the process open.
            runtime.shutdown_timeout(std::time::Duration::from_secs(2));
            result?;
            cli::EXIT_OK
        }
    };
    Ok(code)
}
