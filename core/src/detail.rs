//! What a finding measured, as data: rendered in the language of whoever
//! reads it (the CLI in English, the report in its own language), never
//! stored only as English text.
//!
//! Each rule kind has its shape. The store keeps the data as JSON beside the
//! English text (which the CLI, logs and older findings use); the report
//! renders the data in its language when a finding has it. Dates are the
//! organisation's local dates; names from the config (a named date, a
//! detector, a field) are the config's own words and stay as written.

use serde::{Deserialize, Serialize};

use crate::language::Language;

/// What was measured, by rule kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Detail {
    /// `max_age`: kept past its limit.
    MaxAge {
        /// The timestamp counted from: `received`, `created`, `modified`,
        /// `last_activity` or `date:NAME`.
        field: String,
        /// Its local date.
        start: String,
        /// Days since.
        days: i64,
        /// The limit, as configured.
        limit: String,
        /// The grace, as configured, when there is one.
        grace: Option<String>,
        /// The clock starts at the end of the fiscal year.
        after_year_end: bool,
        /// The local date it became late.
        overdue_since: String,
    },
    /// `max_recipients`: copied to too many.
    Recipients {
        /// How many counted.
        count: usize,
        /// `Cc`, `To` or `To+Cc`.
        header: String,
        /// Own domains were left out of the count.
        outside_excluded: bool,
        /// In how many domains.
        domains: usize,
        /// The limit.
        limit: u32,
    },
    /// `max_interval`: the second event came late, or is still missing past
    /// the limit.
    Interval {
        /// The first event's timestamp field.
        from: String,
        /// The second's.
        to: String,
        /// The first event, local date and time.
        start: String,
        /// Hours from the first to the second, or, while it is missing, to
        /// the scan.
        hours: i64,
        /// The limit, as configured.
        limit: String,
        /// The second event happened (late); else it is missing.
        arrived: bool,
    },
    /// `contains`: personal data inside.
    Contains {
        /// Per detector: its name, and matches at low, medium and high
        /// confidence.
        found: Vec<(String, [u64; 3])>,
        /// Found in the body.
        body: bool,
        /// In how many attachments.
        attachments: u64,
        /// In the file.
        file: bool,
        /// In which fields (the config's names).
        fields: Vec<String>,
    },
    /// `conflict`: a record that must not exist for a person marked elsewhere.
    Conflict {
        /// The source where the person is marked (the config's name).
        marked_in: String,
    },
    /// `erased`: an erasure not carried out.
    Erased {
        /// When it was asked for (local date).
        requested: String,
        /// When it was due (local date).
        due: String,
        /// What is still held: identifier kind and field.
        held: Vec<(String, String)>,
    },
}

/// A timestamp field's name in `language` (a named date stays as written).
fn field(name: &str, language: Language) -> String {
    match (language, name) {
        (Language::En, _) => name.to_owned(),
        (Language::Sv, "received") => "mottaget".to_owned(),
        (Language::Sv, "created") => "skapat".to_owned(),
        (Language::Sv, "modified") => "ändrat".to_owned(),
        (Language::Sv, "last activity") => "senaste aktivitet".to_owned(),
        (Language::Sv, other) => other.to_owned(),
    }
}

impl Detail {
    /// The detail as a sentence in `language`. In English it reads exactly
    /// as findings have always read.
    pub fn render(&self, language: Language) -> String {
        let sv = language == Language::Sv;
        match self {
            Detail::MaxAge {
                field: name,
                start,
                days,
                limit,
                grace,
                after_year_end,
                overdue_since,
            } => {
                let limit = match grace {
                    None => limit.clone(),
                    Some(grace) if sv => format!("{limit} + {grace} respit"),
                    Some(grace) => format!("{limit} + {grace} grace"),
                };
                let field = field(name, language);
                match (sv, after_year_end) {
                    (false, after) => format!(
                        "{field} {start}, {days} days ago; limit {limit}{}, overdue since {overdue_since}",
                        if *after {
                            " after the fiscal year end"
                        } else {
                            ""
                        }
                    ),
                    (true, after) => format!(
                        "{field} {start}, för {days} dagar sedan; gräns {limit}{}, försenat sedan {overdue_since}",
                        if *after {
                            " efter räkenskapsårets slut"
                        } else {
                            ""
                        }
                    ),
                }
            }
            Detail::Recipients {
                count,
                header,
                outside_excluded,
                domains,
                limit,
            } => {
                if sv {
                    format!(
                        "{count} mottagare i {header}{} i {domains} {} (gräns {limit})",
                        if *outside_excluded {
                            " utanför de undantagna domänerna"
                        } else {
                            ""
                        },
                        if *domains == 1 { "domän" } else { "domäner" }
                    )
                } else {
                    format!(
                        "{count} {header} recipients{} in {domains} domain{} (limit {limit})",
                        if *outside_excluded {
                            " outside the excluded domains"
                        } else {
                            ""
                        },
                        if *domains == 1 { "" } else { "s" }
                    )
                }
            }
            Detail::Interval {
                from,
                to,
                start,
                hours,
                limit,
                arrived,
            } => {
                let (from, to) = (field(from, language), field(to, language));
                let measured = match (sv, arrived) {
                    (true, true) => format!("{to} {hours} h senare"),
                    (true, false) => format!("inget {to} efter {hours} h"),
                    (false, true) => format!("{to} {hours} h later"),
                    (false, false) => format!("no {to} after {hours} h"),
                };
                let limit_word = if sv { "gräns" } else { "limit" };
                format!("{from} {start}, {measured} ({limit_word} {limit})")
            }
            Detail::Contains {
                found,
                body,
                attachments,
                file,
                fields,
            } => {
                let levels = if sv {
                    ["låg", "medel", "hög"]
                } else {
                    ["low", "medium", "high"]
                };
                let found: Vec<String> = found
                    .iter()
                    .map(|(detector, counts)| {
                        let shown: Vec<String> = [2usize, 1, 0]
                            .iter()
                            .filter(|level| counts[**level] > 0)
                            .map(|level| format!("{} {}", counts[*level], levels[*level]))
                            .collect();
                        format!(
                            "{detector} {} ({})",
                            counts.iter().sum::<u64>(),
                            shown.join(", ")
                        )
                    })
                    .collect();
                let mut places = Vec::new();
                if *body {
                    places.push(if sv { "brödtexten" } else { "the body" }.to_owned());
                }
                if *attachments > 0 {
                    places.push(match (sv, *attachments == 1) {
                        (true, true) => "1 bilaga".to_owned(),
                        (true, false) => format!("{attachments} bilagor"),
                        (false, true) => "1 attachment".to_owned(),
                        (false, false) => format!("{attachments} attachments"),
                    });
                }
                if *file {
                    places.push(if sv { "filen" } else { "the file" }.to_owned());
                }
                if !fields.is_empty() {
                    places.push(format!(
                        "{} {}",
                        if sv { "fältet" } else { "field" },
                        fields.join(", ")
                    ));
                }
                let (within, and) = if sv {
                    (" i ", " och ")
                } else {
                    (" in ", " and ")
                };
                format!("{}{within}{}", found.join("; "), places.join(and))
            }
            Detail::Conflict { marked_in } => {
                if sv {
                    format!("finns kvar, fast samma person är markerad i {marked_in}")
                } else {
                    format!("still here, while the same person is marked in {marked_in}")
                }
            }
            Detail::Erased {
                requested,
                due,
                held,
            } => {
                let within = if sv { "i" } else { "in" };
                let held: Vec<String> = held
                    .iter()
                    .map(|(kind, field)| format!("{kind} {within} {field}"))
                    .collect();
                if sv {
                    format!(
                        "radering begärd {requested}, senast {due}, inte utförd: {}",
                        held.join(", ")
                    )
                } else {
                    format!(
                        "erasure requested {requested}, due {due}, not carried out: {}",
                        held.join(", ")
                    )
                }
            }
        }
    }

    /// As stored beside the English text.
    pub fn to_json(&self) -> Option<String> {
        serde_json::to_string(self).ok()
    }

    /// From what the store holds; `None` for anything else.
    pub fn from_json(text: &str) -> Option<Detail> {
        serde_json::from_str(text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_in_both_languages_and_round_trips() {
        let details = [
            Detail::MaxAge {
                field: "received".into(),
                start: "2024-12-28".into(),
                days: 701,
                limit: "31d".into(),
                grace: Some("7d".into()),
                after_year_end: true,
                overdue_since: "2025-02-05".into(),
            },
            Detail::Recipients {
                count: 6,
                header: "Cc".into(),
                outside_excluded: true,
                domains: 2,
                limit: 3,
            },
            Detail::Interval {
                from: "date:detected".into(),
                to: "date:reported".into(),
                start: "2026-01-02 10:00".into(),
                hours: 80,
                limit: "72h".into(),
                arrived: true,
            },
            Detail::Interval {
                from: "received".into(),
                to: "last activity".into(),
                start: "2026-01-02 10:00".into(),
                hours: 100,
                limit: "72h".into(),
                arrived: false,
            },
            Detail::Contains {
                found: vec![("personnummer".into(), [0, 1, 2])],
                body: true,
                attachments: 2,
                file: false,
                fields: vec![],
            },
            Detail::Erased {
                requested: "2026-01-01".into(),
                due: "2026-01-31".into(),
                held: vec![("email".into(), "from".into())],
            },
            Detail::Conflict {
                marked_in: "crm".into(),
            },
        ];
        let english = [
            "received 2024-12-28, 701 days ago; limit 31d + 7d grace after the fiscal year end, overdue since 2025-02-05",
            "6 Cc recipients outside the excluded domains in 2 domains (limit 3)",
            "date:detected 2026-01-02 10:00, date:reported 80 h later (limit 72h)",
            "received 2026-01-02 10:00, no last activity after 100 h (limit 72h)",
            "personnummer 3 (2 high, 1 medium) in the body and 2 attachments",
            "erasure requested 2026-01-01, due 2026-01-31, not carried out: email in from",
            "still here, while the same person is marked in crm",
        ];
        let swedish = [
            "mottaget 2024-12-28, för 701 dagar sedan; gräns 31d + 7d respit efter räkenskapsårets slut, försenat sedan 2025-02-05",
            "6 mottagare i Cc utanför de undantagna domänerna i 2 domäner (gräns 3)",
            "date:detected 2026-01-02 10:00, date:reported 80 h senare (gräns 72h)",
            "mottaget 2026-01-02 10:00, inget senaste aktivitet efter 100 h (gräns 72h)",
            "personnummer 3 (2 hög, 1 medel) i brödtexten och 2 bilagor",
            "radering begärd 2026-01-01, senast 2026-01-31, inte utförd: email i from",
            "finns kvar, fast samma person är markerad i crm",
        ];
        for ((detail, en), sv) in details.iter().zip(english).zip(swedish) {
            assert_eq!(detail.render(Language::En), en);
            assert_eq!(detail.render(Language::Sv), sv);
            let stored = detail.to_json().expect("json");
            assert_eq!(Detail::from_json(&stored).as_ref(), Some(detail));
        }
        assert_eq!(Detail::from_json("received 2024-12-28"), None);
    }
}
