//! `tillsyn findings`: what the store holds, filtered; reads no connector
//! secret.

use std::io::Write;

use tillsyn_app::engine::Engine;
use tillsyn_app::output::{self, Format};
use tillsyn_config::{self as config};

use super::{CliError, EXIT_OK, parse_since, policies};

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
