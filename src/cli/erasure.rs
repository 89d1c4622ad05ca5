//! `tillsyn erasure`: the register imported, and each request's state per
//! store.

use chrono::Utc;

use super::{CliError, EXIT_CONFIG, EXIT_OK};

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
