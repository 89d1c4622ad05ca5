//! `tillsyn digest`: each custodian's digest of a month, written to look at
//! and/or sent through the outbox.

use std::io::Write;
use std::sync::{Arc, Mutex};

use chrono::Utc;

use tillsyn_app::engine::Engine;
use tillsyn_app::runner::RunError;
use tillsyn_config::{self as config};

use super::{CliError, EXIT_FAILED, EXIT_OK, ReportArgs};

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
