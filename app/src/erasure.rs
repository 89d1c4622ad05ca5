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

use chrono::{DateTime, Utc};
use serde::Serialize;

use tillsyn_config::Config;
use tillsyn_config::rules::Check;
use tillsyn_rules::RuleSet;
use tillsyn_rules::register::ErasureRequest;
use tillsyn_store::{Store, StoreError};

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

/// Read `[erasure] register`, each identifier hashed under `rules`' identity
/// key; `None` without a register or a key. A missing file is an empty
/// register (it may be removed once imported).
pub fn read_register(
    rules: &RuleSet,
    now: DateTime<Utc>,
) -> Option<Result<Vec<ErasureRequest>, RegisterError>> {
    let path = rules.erasure_register()?;
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Some(Ok(Vec::new())),
        Err(source) => {
            return Some(Err(RegisterError::Io {
                path: path.display().to_string(),
                source,
            }));
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    Some(
        rules
            .register_requests(&text, now)?
            .map_err(|problems| RegisterError::Lines {
                path: path.display().to_string(),
                problems,
            }),
    )
}

/// Import the erasure register into the store (keyed hashes only): the one
/// import, run by the daemon once per tick and by `tillsyn erasure`.
/// Returns how many requests were new; `None` without a register or a key.
pub fn import(
    rules: &RuleSet,
    store: &mut Store,
    now: DateTime<Utc>,
) -> Option<Result<u64, ImportError>> {
    Some(
        read_register(rules, now)?
            .map_err(ImportError::from)
            .and_then(|requests| {
                store
                    .import_erasures(&requests, now)
                    .map_err(ImportError::from)
            }),
    )
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
            if tillsyn_rules::coverage::coverage(config, source, &request.kind, &account_kinds)
                .is_empty()
            {
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
