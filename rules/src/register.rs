//! The erasure register (GDPR art. 17) as text: the requests it holds,
//! each identifier normalised and hashed at once. Reading the file and
//! storing the requests are the application's; this is the parsing, pure.

use chrono::{DateTime, Utc};

use crate::identity::IdentityPlan;

/// One erasure request, as the store keeps it: the keyed hash, never the identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureRequest {
    /// The keyed hash of the identifier.
    pub hash: tillsyn_core::identity::IdentityHash,
    /// Its kind.
    pub kind: String,
    /// When the erasure was requested or granted.
    pub requested_at: DateTime<Utc>,
}

/// The columns of a register, by name: what a header cell may say for each
/// (as spreadsheets and case systems export it, in English or Swedish).
const KIND_NAMES: &[&str] = &["kind", "identifier_type", "type", "id_type", "typ", "slag"];
const IDENTIFIER_NAMES: &[&str] = &[
    "identifier",
    "id",
    "value",
    "identifierare",
    "identitet",
    "värde",
    "varde",
];
const DATE_NAMES: &[&str] = &[
    "date",
    "requested_at",
    "requested",
    "requested_on",
    "granted_at",
    "datum",
    "begärd",
    "begard",
];

/// Where each column is: kind, identifier, date.
type Columns = [usize; 3];

/// The columns a header row names, if the row is one: every cell a column
/// name, and all three there. `Err` with why when it looks like a header but
/// lacks a column.
fn header(cells: &[String]) -> Option<Result<Columns, String>> {
    let find = |names: &[&str]| {
        cells
            .iter()
            .position(|cell| names.contains(&cell.trim().to_lowercase().as_str()))
    };
    let known = cells.iter().all(|cell| {
        let cell = cell.trim().to_lowercase();
        [KIND_NAMES, IDENTIFIER_NAMES, DATE_NAMES]
            .iter()
            .any(|names| names.contains(&cell.as_str()))
    });
    if !known {
        return None;
    }
    Some(
        match (find(KIND_NAMES), find(IDENTIFIER_NAMES), find(DATE_NAMES)) {
            (Some(kind), Some(identifier), Some(date)) => Ok([kind, identifier, date]),
            _ => Err("the header row needs a kind, an identifier and a date column".to_owned()),
        },
    )
}

/// Every bad line of a register: its number and what is wrong (never its
/// content).
pub type LineProblems = Vec<(usize, String)>;

/// The requests in `text`, or every bad line's number and problem (never
/// its content).
///
/// Forgiving in form: an optional header row whose column names put the
/// columns in any order (`identifier_type,identifier,requested_at`), `,` or
/// `;` as separator (the Swedish spreadsheet default), quoted cells, a UTF-8
/// BOM, CRLF line ends, blank lines and `#` comments. Without a header the
/// columns are `kind,identifier,date`. Strict in meaning: a kind must be one
/// the config knows (`kinds`), an identifier valid for its kind, a date
/// `YYYY-MM-DD` (midnight in `zone`) or RFC 3339; any other line is refused
/// by its number, and a refused value is never echoed.
pub fn parse_register(
    text: &str,
    plan: &IdentityPlan,
    zone: chrono_tz::Tz,
    kinds: &std::collections::BTreeSet<String>,
) -> Result<Vec<ErasureRequest>, LineProblems> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // The separator is the first data line's: `;` when it has one and no `,`.
    let first = text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('#'))
        .unwrap_or("");
    let separator = if first.contains(';') && !first.contains(',') {
        b';'
    } else {
        b','
    };
    let reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(separator)
        .flexible(true)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let mut requests = Vec::new();
    let mut problems = Vec::new();
    let mut columns: Option<Columns> = None;
    let mut first_row = true;
    for record in reader.into_records() {
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                let line = error
                    .position()
                    .map_or(0, |position| position.line() as usize);
                problems.push((line.max(1), "not a CSV line".to_owned()));
                continue;
            }
        };
        let number = record
            .position()
            .map_or(0, |position| position.line() as usize);
        let cells: Vec<String> = record.iter().map(|cell| cell.trim().to_owned()).collect();
        if cells.iter().all(String::is_empty) {
            continue;
        }
        if std::mem::take(&mut first_row) {
            match header(&cells) {
                Some(Ok(found)) => {
                    columns = Some(found);
                    continue;
                }
                Some(Err(why)) => {
                    problems.push((number, why));
                    continue;
                }
                None => {}
            }
        }
        let [kind_at, identifier_at, date_at] = columns.unwrap_or([0, 1, 2]);
        let wanted = 1 + kind_at.max(identifier_at).max(date_at);
        if cells.len() < wanted || (columns.is_none() && cells.len() != 3) {
            problems.push((
                number,
                format!(
                    "{} fields; expected {}",
                    cells.len(),
                    if columns.is_some() {
                        "one per header column".to_owned()
                    } else {
                        "kind,identifier,date (or a header row naming the columns)".to_owned()
                    }
                ),
            ));
            continue;
        }
        let kind = cells[kind_at].to_lowercase();
        if !kinds.contains(&kind) {
            problems.push((
                number,
                format!(
                    "the kind is not one this config knows ({})",
                    kinds.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
            continue;
        }
        let Some(hash) = plan.hash(&kind, &cells[identifier_at]) else {
            problems.push((number, format!("not a valid {kind}")));
            continue;
        };
        let Some(requested_at) = tillsyn_core::dates::instant(&cells[date_at], zone) else {
            problems.push((
                number,
                "the date must be YYYY-MM-DD or an RFC 3339 time".to_owned(),
            ));
            continue;
        };
        requests.push(ErasureRequest {
            hash,
            kind,
            requested_at,
        });
    }
    if problems.is_empty() {
        Ok(requests)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use std::collections::BTreeMap;
    use tillsyn_core::identity::IdentityKey;
    use tillsyn_core::secret::Secret;

    fn plan() -> IdentityPlan {
        IdentityPlan::new(
            IdentityKey::new(Secret::new(vec![5; 32])),
            BTreeMap::new(),
            tillsyn_detectors::Today {
                year: 2026,
                month: 11,
                day: 30,
            },
        )
    }

    fn kinds() -> std::collections::BTreeSet<String> {
        [
            "email",
            "personnummer",
            "phone",
            "account",
            "employee_number",
        ]
        .map(str::to_owned)
        .into()
    }

    #[test]
    fn a_register_is_read_whole_or_refused_with_line_numbers() {
        let zone = chrono_tz::Europe::Stockholm;
        let text = "kind,identifier,date\n# comment\n\npersonnummer, 19811218-9876 ,2026-10-01\n\
                    email,Anna@Kund.se,2026-10-20T12:00:00+02:00\n";
        let requests = parse_register(text, &plan(), zone, &kinds()).expect("valid");
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].kind, "personnummer");
        assert_eq!(
            requests[0].hash,
            plan().hash("personnummer", "811218-9876").expect("hash")
        );
        assert_eq!(
            requests[0].requested_at,
            chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 9, 30, 22, 0, 0)
                .single()
                .expect("time")
        );
        assert_eq!(
            requests[1].hash,
            plan().hash("email", "anna@kund.se").expect("hash")
        );
        let bad = "personnummer,811218-9875,2026-10-01\nemail,anna@kund.se\n\
                   198112189876,personnummer,2026-10-01\nphone,070-123 45 67,yesterday\n\
                   email,bertil@kund.se,2026-10-01\ncustomer_no,K-1,2026-10-01\n";
        let problems = parse_register(bad, &plan(), zone, &kinds()).expect_err("bad lines");
        let lines: Vec<usize> = problems.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, [1, 2, 3, 4, 6]);
        // Problems never quote the identifier, wherever it stood.
        for (_, problem) in &problems {
            assert!(
                !problem.contains("811218")
                    && !problem.contains("anna")
                    && !problem.contains("K-1"),
                "{problem}"
            );
        }
    }

    /// A register as a spreadsheet exports it: a header row naming the
    /// columns in its own order, `;`, a BOM, CRLF, quoted cells and a kind
    /// in capitals; each read as the plain form is.
    #[test]
    fn a_register_from_a_spreadsheet_is_read_by_its_header() {
        let zone = chrono_tz::Europe::Stockholm;
        let plain = parse_register(
            "personnummer,19811218-9876,2026-10-01\nemail,anna@kund.se,2026-10-20\n",
            &plan(),
            zone,
            &kinds(),
        )
        .expect("plain");
        for text in [
            "identifier_type,identifier,requested_at\npersonnummer,19811218-9876,2026-10-01\nemail,anna@kund.se,2026-10-20\n",
            "\u{feff}identifier_type;identifier;requested_at\r\nPersonnummer;811218-9876;2026-10-01\r\nEMAIL;\"anna@kund.se\";2026-10-20\r\n",
            "requested_at;Identifier;Kind\r\n2026-10-01;198112189876;personnummer\r\n2026-10-20;anna@kund.se;email\r\n",
            "Datum;Typ;Värde\n2026-10-01;personnummer;19811218-9876\n\n# kommentar\n2026-10-20;email;anna@kund.se\n",
        ] {
            let read = parse_register(text, &plan(), zone, &kinds()).expect(text);
            assert_eq!(read, plain, "{text:?}");
        }
        // A header that misses a column is said so, by its line.
        let problems = parse_register("identifier,date\nx,2026-10-01\n", &plan(), zone, &kinds())
            .expect_err("no kind column");
        assert_eq!(problems[0].0, 1, "{problems:?}");
    }
}
