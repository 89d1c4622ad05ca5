//! `tillsyn explain ID`: one finding, the rule behind it and how it was
//! judged.

use std::io::Write;

use chrono::Utc;

use tillsyn_app::engine::Engine;
use tillsyn_config::{self as config};

use super::{CliError, EXIT_OK};

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
