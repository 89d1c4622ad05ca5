//! `tillsyn check-config`: every problem of a config with its line, the
//! erasure register's lines, `--connect` to each source, `--upgrade`.

use std::io::Write;

use chrono::Utc;

use tillsyn_app::privacy::PersonDisplay;
use tillsyn_app::runner::{RunError, Source};
use tillsyn_config::{self as config};
use tillsyn_rules::RuleSet;
use tillsyn_store::Store;

use super::{CliError, EXIT_CONFIG, EXIT_FAILED, EXIT_OK, write_warnings};

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
