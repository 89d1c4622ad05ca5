//! `tillsyn scan --once`: one pass over the sources, its findings and how
//! each scan ended.

use std::borrow::Cow;
use std::io::Write;
use std::path::PathBuf;

use tillsyn_app::engine::Engine;
use tillsyn_app::output::{self, Format};
use tillsyn_app::runner::{self, RunError};
use tillsyn_config::{self as config};
use tillsyn_store::{Finding, ScanStatus};

use super::{CliError, EXIT_FAILED, EXIT_FINDINGS, EXIT_OK, policies};

/// Open findings read from the store at a time for the listing.
const LISTING_PAGE: usize = 2_000;

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
    let kind = match args.dry_run {
        true => runner::PassStore::Copy,
        false => runner::PassStore::Configured,
    };
    let contention = match args.wait {
        true => runner::Contention::Wait {
            poll: runner::WAIT_POLL,
        },
        false => runner::Contention::Skip,
    };
    let pass = runner::scan_pass(&engine, args.source.as_deref(), store, kind, contention).await?;
    let custodians = engine.display(args.reveal)?;
    let policies = policies(config);
    let exceptions = engine.rules().exceptions();
    let mut any_open = false;
    {
        let store = pass
            .store
            .lock()
            .map_err(|_| RunError::Worker("store lock poisoned".into()))?;
        // What is open for each scanned source now: seen in this scan, carried
        // by an incremental read, or kept where the scan could not read. Read
        // a page at a time: a large first scan has tens of thousands.
        let sources: Vec<&str> = pass
            .outcomes
            .iter()
            .map(|outcome| outcome.source.as_str())
            .collect();
        let mut pages = |after: Option<&Finding>| -> std::io::Result<Cow<'_, [Finding]>> {
            let mut index = match after {
                None => 0,
                Some(last) => sources
                    .iter()
                    .position(|source| *source == last.source)
                    .unwrap_or(sources.len()),
            };
            let mut after = after;
            while let Some(source) = sources.get(index) {
                let page = store
                    .open_findings_page(source, after, LISTING_PAGE)
                    .map_err(std::io::Error::other)?;
                if !page.is_empty() {
                    any_open = true;
                    return Ok(Cow::Owned(page));
                }
                index += 1;
                after = None;
            }
            Ok(Cow::Owned(Vec::new()))
        };
        output::write_findings_paged(
            out,
            args.format,
            &mut pages,
            &policies,
            &custodians,
            exceptions,
        )?;
    }
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
    } else if args.fail_on_findings && any_open {
        EXIT_FINDINGS
    } else {
        EXIT_OK
    })
}
