//! Erasure verification (GDPR art. 17): the register of people whose data
//! must be gone, kept as keyed hashes, and where each one still is.
//!
//! The register is a CSV file (`[erasure] register`), one request per line:
//!
//! ```text
//! kind,identifier,date
//! personnummer,19811218-9876,2026-10-01
//! email,anna@kund.se,2026-10-20
//! ```
//!
//! Or `[erasure.source]` names a source (a CRM or case system over HTTP)
//! whose records are requests: an attribute with the identifier, its kind, and
//! a date. That source's records are read as requests only: they are neither
//! indexed nor judged themselves.
//!
//! A header row is optional and, when there, names the columns in any order
//! (`identifier_type;identifier;requested_at` as a spreadsheet exports it,
//! `;` or `,`, with a BOM and CRLF); blank lines and lines starting with `#`
//! are skipped. Kinds are those of the identity index (`email`,
//! `personnummer`, `phone`, `account`, a detector's, or a kind a source's
//! `identifiers` names); any other is refused, never echoed. The date is
//! when the erasure was requested or granted (`YYYY-MM-DD`, midnight in
//! `daemon.timezone`, or RFC 3339). Each identifier is normalised and hashed under the pseudonym
//! key, and only the hash, the kind and the date are stored: once read, the
//! file may be removed. A file with a bad line is refused whole, with every
//! bad line's number (never its content), and nothing already stored is lost.
//!
//! Rule kind `erased` then makes a finding of every record that still holds an
//! identifier on the register once its deadline (default 30 days) has passed;
//! [`status`] says, per request and store, whether the data is gone, still
//! there, or cannot be told (the store was not completely scanned since).

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::identity::IdentityPlan;
use crate::store::{ErasureRequest, Store, StoreError};
use tillsyn_config::Config;
use tillsyn_config::rules::Check;

/// Why the register could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The file could not be read.
    #[error("erasure register {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Lines that are not requests; nothing was imported.
    #[error("erasure register {path}: nothing imported; {}", problems.iter().map(|(line, problem)| format!("line {line}: {problem}")).collect::<Vec<_>>().join("; "))]
    Lines {
        /// The file.
        path: String,
        /// Each bad line's number and what is wrong (never its content).
        problems: Vec<(usize, String)>,
    },
}

/// Read the register at `path`, hashing each identifier with `plan`; `kinds`
/// are the identifier kinds the config knows. A missing file is an empty
/// register (it may be removed once imported).
pub fn read_register(
    path: &Path,
    plan: &IdentityPlan,
    zone: chrono_tz::Tz,
    kinds: &std::collections::BTreeSet<String>,
) -> Result<Vec<ErasureRequest>, RegisterError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(RegisterError::Io {
                path: path.display().to_string(),
                source,
            });
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    parse_register(&text, plan, zone, kinds).map_err(|problems| RegisterError::Lines {
        path: path.display().to_string(),
        problems,
    })
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
) -> Result<Vec<ErasureRequest>, Vec<(usize, String)>> {
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

/// Import the configured register into the store (keyed hashes only).
/// Returns how many requests were new; `Ok(0)` without a register.
pub fn import(
    config: &Config,
    plan: &IdentityPlan,
    store: &mut Store,
    now: DateTime<Utc>,
) -> Result<u64, ImportError> {
    let Some(path) = &config.erasure.register else {
        return Ok(0);
    };
    let requests = read_register(
        path,
        plan,
        config.daemon.timezone.0,
        &config.identifier_kinds(),
    )?;
    Ok(store.import_erasures(&requests, now)?)
}

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The register is unreadable or has bad lines.
    #[error(transparent)]
    Register(#[from] RegisterError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One request's state in one store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreState {
    /// Not held, by a complete scan that finished after the deadline: verified
    /// erased.
    Erased,
    /// Not held by the last complete scan, and the deadline is still ahead.
    NotFound,
    /// Still held, and the deadline has not passed.
    Pending,
    /// Still held after the deadline: erasure not carried out.
    Overdue,
    /// No complete scan of the store since the request's deadline (or since
    /// the request), or the index does not cover the kind there: cannot be
    /// told. Never shown as erased.
    NotVerified,
}

/// One request's state, store by store.
#[derive(Debug, Clone, Serialize)]
pub struct RequestStatus {
    /// The first 8 hex digits of the keyed hash: names the request without
    /// naming the person.
    pub reference: String,
    /// The identifier's kind.
    pub kind: String,
    /// When it was requested.
    pub requested_at: DateTime<Utc>,
    /// When the data must be gone (the first `erased` rule's deadline).
    pub due: Option<DateTime<Utc>>,
    /// Per store in the config: its name and the state.
    pub stores: Vec<(String, StoreState)>,
}

impl RequestStatus {
    /// The request overall: overdue anywhere is overdue; else not verified
    /// anywhere is not verified; else erased only when every store says so.
    pub fn overall(&self) -> StoreState {
        let states: Vec<StoreState> = self.stores.iter().map(|(_, state)| *state).collect();
        if states.contains(&StoreState::Overdue) {
            StoreState::Overdue
        } else if states.contains(&StoreState::NotVerified) {
            StoreState::NotVerified
        } else if states.contains(&StoreState::Pending) {
            StoreState::Pending
        } else if states.iter().all(|state| *state == StoreState::Erased) {
            StoreState::Erased
        } else {
            StoreState::NotFound
        }
    }
}

/// Every request's state at `now`, from the index and the scans.
pub fn status(
    config: &Config,
    store: &Store,
    now: DateTime<Utc>,
) -> Result<Vec<RequestStatus>, StoreError> {
    let deadline = config.rules.iter().find_map(|rule| match &rule.check {
        Check::Erased(check) => Some(check.deadline.clone()),
        _ => None,
    });
    let mut statuses = Vec::new();
    for request in store.erasure_requests()? {
        let due = deadline
            .as_ref()
            .and_then(|deadline| deadline.after(request.requested_at));
        let mut stores = Vec::new();
        for source in &config.sources {
            // The register itself is where people are listed to be erased.
            if config
                .erasure
                .source
                .as_ref()
                .is_some_and(|register| register.name == source.name)
            {
                continue;
            }
            let account_kinds = store.account_kinds(&source.name)?;
            if crate::subject::coverage(config, source, &request.kind, &account_kinds).is_empty() {
                stores.push((source.name.clone(), StoreState::NotVerified));
                continue;
            }
            let held = store.holds(&source.name, &request.hash)?;
            // Read completely, every unit of it, as of when.
            let last_complete = store.source_state(&source.name)?.complete_at;
            let past_due = due.is_some_and(|due| now > due);
            let state = match (held, last_complete) {
                (true, _) if past_due => StoreState::Overdue,
                (true, _) => StoreState::Pending,
                (false, Some(finished)) if finished >= request.requested_at => match due {
                    Some(due) if finished > due => StoreState::Erased,
                    _ => StoreState::NotFound,
                },
                (false, _) => StoreState::NotVerified,
            };
            stores.push((source.name.clone(), state));
        }
        statuses.push(RequestStatus {
            reference: tillsyn_core::identity::to_hex(&request.hash)[..8].to_owned(),
            kind: request.kind,
            requested_at: request.requested_at,
            due,
            stores,
        });
    }
    Ok(statuses)
}

/// `tillsyn erasure`: read the register into the store, then print every
/// request's state per store (`json`: one document; otherwise a table).
/// Requests are named by the first 8 hex digits of their keyed hash, never by
/// the identifier. A register with bad lines: every bad line's number, nothing
/// imported, exit 3.
pub fn run(
    config_path: &Path,
    json: bool,
    out: &mut dyn std::io::Write,
) -> Result<u8, crate::cli::CliError> {
    use crate::cli::{CliError, EXIT_CONFIG, EXIT_OK};
    let config = tillsyn_config::load_offline(config_path)?;
    let rules = crate::rules::RuleSet::for_config(&config)?
        .with_identity_key(crate::privacy::identity_key(&config)?);
    let mut store = Store::for_config(&config)?;
    let now = Utc::now();
    match rules.import_erasures(&mut store, now) {
        Some(Err(ImportError::Register(error))) => {
            writeln!(out, "{error}")?;
            return Ok(EXIT_CONFIG);
        }
        Some(Err(ImportError::Store(error))) => return Err(CliError::Store(error)),
        Some(Ok(new)) => writeln!(out, "erasure register read: {new} new request(s)")?,
        None => {}
    }
    let statuses = status(&config, &store, now)?;
    let zone = config.daemon.timezone.0;
    let day = |time: DateTime<Utc>| time.with_timezone(&zone).format("%Y-%m-%d").to_string();
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

/// A state in words.
pub fn state_text(state: StoreState) -> &'static str {
    match state {
        StoreState::Erased => "erased",
        StoreState::NotFound => "not found (deadline ahead)",
        StoreState::Pending => "still there (deadline ahead)",
        StoreState::Overdue => "OVERDUE: erasure not carried out",
        StoreState::NotVerified => "NOT VERIFIED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
