//! The locator report as the privacy officer reads it: text, JSON, CSV, or
//! a short HTML summary in Swedish or English.

use chrono::{DateTime, Utc};
use tillsyn_config::Config;

use super::{CoverageState, Locator, SubjectError, SubjectFormat};
use tillsyn_core::language::Language;

pub(super) fn render(
    locator: &Locator,
    format: SubjectFormat,
    language: Language,
    config: &Config,
) -> Result<String, SubjectError> {
    let zone = config.daemon.timezone.0;
    let day = |time: DateTime<Utc>| time.with_timezone(&zone).format("%Y-%m-%d").to_string();
    let when = |time: DateTime<Utc>| {
        time.with_timezone(&zone)
            .format("%Y-%m-%d %H:%M %Z")
            .to_string()
    };
    match format {
        SubjectFormat::Json => serde_json::to_string_pretty(locator)
            .map(|text| text + "\n")
            .map_err(|error| SubjectError::Invalid(format!("JSON: {error}"))),
        SubjectFormat::Csv => {
            let mut rows: Vec<Vec<String>> = vec![
                [
                    "source",
                    "store_type",
                    "record",
                    "record_kind",
                    "record_date",
                    "matched",
                    "governed_by",
                    "gone_by",
                    "open_findings",
                ]
                .map(str::to_owned)
                .to_vec(),
            ];
            for store in &locator.stores {
                for place in &store.places {
                    let gone_by: Vec<String> = place
                        .governed_by
                        .iter()
                        .filter_map(|governing| governing.gone_by.map(day))
                        .collect();
                    let governed: Vec<&str> = place
                        .governed_by
                        .iter()
                        .map(|governing| governing.rule.as_str())
                        .collect();
                    rows.push(vec![
                        store.source.clone(),
                        store.store_type.clone(),
                        place.record.clone(),
                        place.record_kind.clone(),
                        place.record_time.map(day).unwrap_or_default(),
                        place.matched.join("; "),
                        governed.join("; "),
                        gone_by.join("; "),
                        place.open_findings.join("; "),
                    ]);
                }
            }
            let bytes = crate::output::spreadsheet_csv(rows)
                .map_err(|error| SubjectError::Invalid(format!("CSV: {error}")))?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        }
        SubjectFormat::Text => {
            let mut text = String::new();
            let asked: Vec<String> = locator
                .asked
                .iter()
                .map(|asked| format!("{} {}", asked.kind, asked.value))
                .collect();
            text.push_str(&format!(
                "Subject lookup, {}: {}\n",
                when(locator.generated_at),
                asked.join(", ")
            ));
            let total: usize = locator.stores.iter().map(|store| store.places.len()).sum();
            text.push_str(&format!(
                "{total} place(s) in {} store(s).\n",
                locator.stores.len()
            ));
            for store in &locator.stores {
                text.push_str(&format!(
                    "\n{} ({}): last scan {}, indexed {}\n",
                    store.source,
                    store.store_type,
                    store.last_scan,
                    store.indexed_at.map_or("never".to_owned(), when)
                ));
                for coverage in &store.coverage {
                    match coverage.state {
                        CoverageState::NotCovered => {
                            text.push_str(&format!("  {}: NOT COVERED here\n", coverage.kind))
                        }
                        CoverageState::Covered => text.push_str(&format!(
                            "  {}: covered by {}\n",
                            coverage.kind,
                            coverage.means.join("; ")
                        )),
                        CoverageState::CoveredIncomplete => text.push_str(&format!(
                            "  {}: covered by {}, but the last scan was INCOMPLETE\n",
                            coverage.kind,
                            coverage.means.join("; ")
                        )),
                    }
                }
                for search in &store.server_searches {
                    text.push_str(&format!("  searched on the server: {search}\n"));
                }
                if let Some(verify) = &store.verify {
                    text.push_str(&format!("  verified by a fresh read: {}\n", verify.status));
                    for record in &verify.new_places {
                        text.push_str(&format!("  - {record}: NEW since the last scan\n"));
                    }
                }
                if store.places.is_empty() {
                    text.push_str("  found: nothing\n");
                }
                for place in &store.places {
                    text.push_str(&format!(
                        "  - {} ({}{}): {}{}\n",
                        place.record,
                        place.record_kind,
                        place
                            .record_time
                            .map(|time| format!(", {}", day(time)))
                            .unwrap_or_default(),
                        place.matched.join(", "),
                        place
                            .verified
                            .as_ref()
                            .map(|verified| format!(" [{verified}]"))
                            .unwrap_or_default()
                    ));
                    for governing in &place.governed_by {
                        text.push_str(&format!(
                            "      promise {}: \"{}\"{}{}\n",
                            governing.rule,
                            governing.policy,
                            governing
                                .gone_by
                                .map(|time| format!(", to be gone by {}", day(time)))
                                .unwrap_or_default(),
                            if governing.conditional {
                                " (if its conditions hold)"
                            } else {
                                ""
                            }
                        ));
                    }
                    if !place.open_findings.is_empty() {
                        text.push_str(&format!(
                            "      open findings: {}\n",
                            place.open_findings.join(", ")
                        ));
                    }
                }
            }
            Ok(text)
        }
        SubjectFormat::Html => Ok(html(locator, language, &day, &when)),
    }
}

/// HTML with every outside value escaped.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

fn html(
    locator: &Locator,
    language: Language,
    day: &dyn Fn(DateTime<Utc>) -> String,
    when: &dyn Fn(DateTime<Utc>) -> String,
) -> String {
    let sv = language == Language::Sv;
    let words = |swedish: &'static str, english: &'static str| if sv { swedish } else { english };
    let mut page = format!(
        "<!DOCTYPE html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\"><title>{}</title></head><body>\n",
        language.as_str(),
        words(
            "Registerutdrag: var uppgifterna finns",
            "Where the data is held"
        )
    );
    page.push_str(&format!(
        "<h1>{}</h1>\n<p>{} {}. {}: {}</p>\n",
        words(
            "Var finns uppgifter om personen?",
            "Where is data about this person held?"
        ),
        words("Sökt", "Looked up"),
        escape(&when(locator.generated_at)),
        words("Uppgifter", "Identifiers"),
        escape(
            &locator
                .asked
                .iter()
                .map(|asked| format!("{} {}", asked.kind, asked.value))
                .collect::<Vec<_>>()
                .join(", ")
        )
    ));
    for store in &locator.stores {
        page.push_str(&format!(
            "<h2>{} ({})</h2>\n<p>{} {}; {} {}.</p>\n",
            escape(&store.source),
            escape(&store.store_type),
            words("Senaste genomsökning:", "Last scan:"),
            escape(&store.last_scan),
            words("indexet från", "index as of"),
            escape(
                &store
                    .indexed_at
                    .map_or(words("aldrig", "never").to_owned(), when)
            )
        ));
        let uncovered: Vec<&str> = store
            .coverage
            .iter()
            .filter(|coverage| coverage.means.is_empty())
            .map(|coverage| coverage.kind.as_str())
            .collect();
        if !uncovered.is_empty() {
            page.push_str(&format!(
                "<p><strong>{}</strong> {}</p>\n",
                words("Ej täckt här:", "Not covered here:"),
                escape(&uncovered.join(", "))
            ));
        }
        if store.places.is_empty() {
            page.push_str(&format!(
                "<p>{}</p>\n",
                words("Inget hittat.", "Nothing found.")
            ));
            continue;
        }
        page.push_str(&format!(
            "<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>\n",
            words("Post", "Record"),
            words("Datum", "Date"),
            words("Träff", "Matched"),
            words("Löfte", "Promise"),
            words("Ska vara borta", "To be gone by")
        ));
        for place in &store.places {
            let promises: Vec<String> = place
                .governed_by
                .iter()
                .map(|governing| format!("{} \u{201c}{}\u{201d}", governing.rule, governing.policy))
                .collect();
            let gone_by: Vec<String> = place
                .governed_by
                .iter()
                .filter_map(|governing| governing.gone_by.map(day))
                .collect();
            page.push_str(&format!(
                "<tr><td>{} ({})</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                escape(&place.record),
                escape(&place.record_kind),
                escape(&place.record_time.map(day).unwrap_or_default()),
                escape(&place.matched.join(", ")),
                escape(&promises.join("; ")),
                escape(&gone_by.join("; "))
            ));
        }
        page.push_str("</table>\n");
    }
    page.push_str("</body></html>\n");
    page
}
