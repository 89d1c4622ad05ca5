//! `tillsyn subject`: where the organisation holds data about one person, the
//! basis of a registerutdrag (GDPR art. 15) or of an erasure (art. 17).
//!
//! The lookup reads the identity index only (keyed hashes and where each was
//! found, see [`crate::identity`]): no mailbox, directory or share is read, so
//! it answers at once. Each identifier given is normalised as the scans
//! normalise what they find, hashed under the pseudonym key, and looked up.
//!
//! The locator report lists, per configured store:
//! - what the index covers there, by which means (mail headers, the account, a
//!   mapped attribute, a `contains` rule's detectors), and how current it is
//!   (the last scan, and whether it read everything);
//! - each place found: the record (named in full: this command exists to name
//!   the person), its kind and date, which identifier matched in which field,
//!   the promises that govern it and when they say it must be gone, and the
//!   findings open on it.
//!
//! Formats: text, JSON, CSV, and a short HTML summary in Swedish or English.
//! The report goes to stdout or to a file created 0600; never to a log. Every
//! lookup is written to the store's audit log (`subject_lookups`) before
//! anything is looked up or any server asked: when, the kinds asked for and
//! their keyed hashes (never the identifiers), whether servers were asked;
//! once it completes, how many places were found. A lookup that fails or is
//! killed leaves its row, not completed.

mod render;
mod verify;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::engine::Engine;
use crate::runner::{BuildError, PassError};
use tillsyn_core::language::Language;
use tillsyn_rules::Governing;
use tillsyn_rules::identity::IdentityPlan;
use tillsyn_store::{FindingFilter, IdentityRow, Store, StoreError, SubjectLookup};

/// One identifier as the privacy officer gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    /// `email`, `personnummer`, `phone`, `account`, or a kind of a source's
    /// `identifiers`.
    pub kind: String,
    /// As given.
    pub value: String,
}

/// The formats of the locator report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SubjectFormat {
    /// Plain text, per store.
    Text,
    /// One JSON document.
    Json,
    /// One row per place found.
    Csv,
    /// A short HTML summary a person can read.
    Html,
}

/// Arguments of `tillsyn subject`.
#[derive(Debug, Clone)]
pub struct SubjectRequest {
    /// The identifiers to look up (at least one).
    pub asked: Vec<Asked>,
    /// Output format.
    pub format: SubjectFormat,
    /// Language of the HTML summary.
    pub language: Language,
    /// Re-read every store (read-only, into a private copy of the store) and
    /// say of each place found whether it still holds the person.
    pub verify: bool,
    /// Where the index does not cover a kind asked for in an IMAP source,
    /// ask the server (UID SEARCH FROM/TO/CC for an address, TEXT for a
    /// number).
    pub search: bool,
}

/// The locator report.
#[derive(Debug, Clone, Serialize)]
pub struct Locator {
    /// When the lookup ran.
    pub generated_at: DateTime<Utc>,
    /// What was looked up.
    pub asked: Vec<AskedShown>,
    /// Every configured store, found in or not.
    pub stores: Vec<StoreSection>,
}

/// An identifier looked up, as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AskedShown {
    /// Its kind.
    pub kind: String,
    /// As given.
    pub value: String,
}

/// One store in the report.
#[derive(Debug, Clone, Serialize)]
pub struct StoreSection {
    /// Source name.
    pub source: String,
    /// `imap`, `ldap`, …
    pub store_type: String,
    /// How current the index is for it: `complete`, `partial` (some places
    /// could not be read), `failed` or `never` (the latest scan).
    pub last_scan: String,
    /// When its latest complete or partial scan finished.
    pub indexed_at: Option<DateTime<Utc>>,
    /// What the index covers there, per kind asked.
    pub coverage: Vec<Coverage>,
    /// The places found.
    pub places: Vec<Place>,
    /// With `--verify`: whether the fresh read of this store completed, and
    /// places it found that the index did not hold yet.
    pub verify: Option<Verification>,
    /// With `--search`: the server searches run here, in words.
    pub server_searches: Vec<String>,
}

/// What `--verify` found in one store.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// How the fresh read ended: `complete`, `partial` or `failed`.
    pub status: String,
    /// Records the fresh read found the person in that the index did not
    /// hold (new since the last scan).
    pub new_places: Vec<String>,
}

/// Whether and how the index covers one kind of identifier in one store.
#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    /// The kind.
    pub kind: String,
    /// By which means, in words; empty when not covered.
    pub means: Vec<String>,
    /// Covered, not covered, or covered but the store's last scan was not
    /// complete (so what the index says may be out of date).
    pub state: CoverageState,
}

/// Whether the index can answer for a kind in a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CoverageState {
    /// The index holds this kind there, as of a complete scan.
    Covered,
    /// Nothing tillsyn reads there indexes this kind.
    NotCovered,
    /// Covered, but the last scan (of some unit) was not complete.
    CoveredIncomplete,
}

/// Why a person could not be looked up.
#[derive(Debug, thiserror::Error)]
pub enum SubjectError {
    /// What was asked, or how it is to be shown, cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A source could not be built for a server search.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The stores could not be read again (`--verify`).
    #[error(transparent)]
    Pass(#[from] PassError),
}

/// One place a person was found.
#[derive(Debug, Clone, Serialize)]
pub struct Place {
    /// The record, in full.
    pub record: String,
    /// Its kind (`message`, `file`, `contact`, …).
    pub record_kind: String,
    /// Received or last modified.
    pub record_time: Option<DateTime<Utc>>,
    /// Which identifiers matched, each `kind in field`.
    pub matched: Vec<String>,
    /// The promises that govern it.
    pub governed_by: Vec<Governing>,
    /// Rules with a finding open on it.
    pub open_findings: Vec<String>,
    /// With `--verify`: `still there` or `gone`, as a fresh read found it.
    pub verified: Option<String>,
}

/// Run `tillsyn subject`: look up, verify when asked, write the report, log
/// the lookup.
pub async fn answer(engine: &Engine, args: &SubjectRequest) -> Result<String, SubjectError> {
    if args.asked.is_empty() {
        return Err(SubjectError::Invalid(
            "name at least one identifier: --email, --personnummer, --phone, --account or --id KIND=VALUE".into(),
        ));
    }
    let config = engine.config();
    let mut store = engine.open_store()?;
    let now = Utc::now();
    // The audit log first: the lookup is processing of personal data even
    // if it then fails, or is stopped while it asks the servers.
    let mut hashes: Vec<String> = hash_asked(engine, &args.asked, now)?
        .iter()
        .map(tillsyn_core::identity::to_hex)
        .collect();
    hashes.sort();
    let audit = store.begin_subject_lookup(&SubjectLookup {
        at: now,
        kinds: asked_kinds(&args.asked),
        hashes,
        hits: 0,
        asked_servers: args.search || args.verify,
        completed_at: None,
    })?;
    let mut locator = lookup(engine, &store, &args.asked, now)?;
    if args.search {
        verify::server_search(engine, &args.asked, &mut locator).await?;
    }
    if args.verify {
        verify::verify(engine, &args.asked, &mut locator).await?;
    }
    let hits: u64 = locator
        .stores
        .iter()
        .map(|store| store.places.len() as u64)
        .sum();
    store.complete_subject_lookup(audit, hits, Utc::now())?;
    render::render(&locator, args.format, args.language, config)
}

fn identity_plan(engine: &Engine, now: DateTime<Utc>) -> Result<IdentityPlan, SubjectError> {
    let config = engine.config();
    let key = engine.key().clone();
    let local = now.with_timezone(&config.daemon.timezone.0);
    use chrono::Datelike;
    Ok(IdentityPlan::new(
        key,
        BTreeMap::new(),
        tillsyn_detectors::Today {
            year: u32::try_from(local.year()).unwrap_or(2026),
            month: local.month(),
            day: local.day(),
        },
    ))
}

/// Look `asked` up in the index and build the report. An identifier that is
/// not one of its kind (a personnummer with a wrong check digit) is an error:
/// a lookup that cannot match must not read as "not found".
pub fn lookup(
    engine: &Engine,
    store: &Store,
    asked: &[Asked],
    now: DateTime<Utc>,
) -> Result<Locator, SubjectError> {
    let config = engine.config();
    let hashes = hash_asked(engine, asked, now)?;
    let rows = store.identities(&hashes)?;
    let rules = engine.rules();
    let mut by_source: BTreeMap<&str, Vec<&IdentityRow>> = BTreeMap::new();
    for row in &rows {
        by_source.entry(row.source.as_str()).or_default().push(row);
    }
    let mut stores = Vec::new();
    for source in &config.sources {
        // The one definition of complete: every unit of a source scanned
        // unit by unit, not the last one that ran.
        let state = store.source_state(&source.name)?;
        let account_kinds = store.account_kinds(&source.name)?;
        let last_scan = match state.status {
            None => "never".to_owned(),
            Some(status) => status.as_str().to_owned(),
        };
        let indexed_at = state.finished_at;
        let source_rules = rules.for_source(&source.name);
        let found = by_source.remove(source.name.as_str()).unwrap_or_default();
        // One place per record, with every identifier that matched it.
        let mut places: BTreeMap<&str, Vec<&IdentityRow>> = BTreeMap::new();
        for row in found {
            places.entry(row.record_id.as_str()).or_default().push(row);
        }
        let open = store.query(&tillsyn_store::FindingQuery {
            filter: FindingFilter::Open,
            source: Some(source.name.clone()),
            ..Default::default()
        })?;
        let places = places
            .into_values()
            .filter_map(|rows| {
                let first = rows.first()?;
                let record = record_of(first);
                let mut matched: Vec<String> = rows
                    .iter()
                    .map(|row| format!("{} in {}", row.kind, row.field))
                    .collect();
                matched.sort();
                matched.dedup();
                Some(Place {
                    record: first.record_path.clone(),
                    record_kind: first.record_kind.clone(),
                    record_time: first.record_time,
                    matched,
                    governed_by: source_rules.governing(&record),
                    open_findings: open
                        .iter()
                        .filter(|finding| finding.record_id == first.record_id)
                        .map(|finding| finding.rule.clone())
                        .collect(),
                    verified: None,
                })
            })
            .collect();
        stores.push(StoreSection {
            source: source.name.clone(),
            store_type: source.settings.type_name().to_owned(),
            last_scan,
            indexed_at,
            coverage: asked_kinds(asked)
                .into_iter()
                .map(|kind| {
                    let means =
                        tillsyn_rules::coverage::coverage(config, source, &kind, &account_kinds);
                    Coverage {
                        state: match (means.is_empty(), state.status) {
                            (true, _) => CoverageState::NotCovered,
                            (false, Some(tillsyn_store::ScanStatus::Complete)) => {
                                CoverageState::Covered
                            }
                            (false, _) => CoverageState::CoveredIncomplete,
                        },
                        means,
                        kind,
                    }
                })
                .collect(),
            places,
            verify: None,
            server_searches: Vec::new(),
        });
    }
    Ok(Locator {
        generated_at: now,
        asked: asked
            .iter()
            .map(|asked| AskedShown {
                kind: asked.kind.clone(),
                value: asked.value.clone(),
            })
            .collect(),
        stores,
    })
}

/// The keyed hash of each identifier asked for; an error for one that is not
/// valid for its kind.
fn hash_asked(
    engine: &Engine,
    asked: &[Asked],
    now: DateTime<Utc>,
) -> Result<Vec<tillsyn_core::identity::IdentityHash>, SubjectError> {
    let plan = identity_plan(engine, now)?;
    asked
        .iter()
        .map(|asked| {
            plan.hash(&asked.kind, &asked.value).ok_or_else(|| {
                SubjectError::Invalid(format!(
                    "the {} given is not a valid {}; nothing was looked up",
                    asked.kind, asked.kind
                ))
            })
        })
        .collect()
}

fn asked_kinds(asked: &[Asked]) -> Vec<String> {
    let mut kinds: Vec<String> = asked.iter().map(|asked| asked.kind.clone()).collect();
    kinds.sort();
    kinds.dedup();
    kinds
}

/// A record standing for an index row, for the rules' place conditions.
fn record_of(row: &IdentityRow) -> tillsyn_connectors::Record {
    use tillsyn_connectors::RecordKind;
    let kind = match row.record_kind.as_str() {
        "message" => RecordKind::Message,
        "folder" => RecordKind::Folder,
        "contact" => RecordKind::Contact,
        "crm_object" => RecordKind::CrmObject,
        _ => RecordKind::File,
    };
    let mut record =
        tillsyn_connectors::Record::new(kind, row.source.as_str().into(), row.record_id.clone());
    record.path = row.record_path.clone();
    record.container = row.container.clone();
    match kind {
        RecordKind::Message => record.timestamps.received = row.record_time,
        _ => record.timestamps.modified = row.record_time,
    }
    record
}
