//! `tillsyn report`: a month's report written to files and/or sent through
//! the outbox.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::Utc;

use tillsyn_app::engine::Engine;
use tillsyn_app::privacy::PersonDisplay;
use tillsyn_app::runner::RunError;
use tillsyn_config::{self as config};

use super::{CliError, EXIT_FAILED, EXIT_OK};

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
