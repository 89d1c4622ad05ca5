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

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::engine::Engine;
use crate::runner::{BuildError, PassError};
use tillsyn_config::rules::Check;
use tillsyn_config::{Config, SourceConfig, SourceSettings};
use tillsyn_connectors::capability::SearchTerms;
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
        server_search(engine, &args.asked, &mut locator).await?;
    }
    if args.verify {
        verify(engine, &args.asked, &mut locator).await?;
    }
    let hits: u64 = locator
        .stores
        .iter()
        .map(|store| store.places.len() as u64)
        .sum();
    store.complete_subject_lookup(audit, hits, Utc::now())?;
    render(&locator, args.format, args.language, config)
}

/// Re-read every store into a private copy of the store (nothing is
/// written to the real one) and look the person up again there: each place
/// found is still there or gone, and places new since the last scan are
/// listed.
async fn verify(
    engine: &Engine,
    asked: &[Asked],
    locator: &mut Locator,
) -> Result<(), SubjectError> {
    let copy = engine.copy_store()?;
    let pass = crate::runner::scan_pass(
        engine,
        None,
        copy,
        crate::runner::PassStore::Copy,
        crate::runner::Contention::Wait {
            poll: crate::runner::WAIT_POLL,
        },
    )
    .await?;
    let statuses: BTreeMap<String, String> = pass
        .outcomes
        .iter()
        .map(|outcome| (outcome.source.clone(), outcome.status.as_str().to_owned()))
        .collect();
    let fresh = {
        let store = pass
            .store
            .lock()
            .map_err(|_| SubjectError::Invalid("store lock poisoned".into()))?;
        lookup(engine, &store, asked, locator.generated_at)?
    };
    for section in &mut locator.stores {
        let status = statuses
            .get(&section.source)
            .cloned()
            .unwrap_or_else(|| "failed".to_owned());
        let now_there: std::collections::BTreeSet<String> = fresh
            .stores
            .iter()
            .filter(|fresh| fresh.source == section.source)
            .flat_map(|fresh| fresh.places.iter().map(|place| place.record.clone()))
            .collect();
        let read_all = status == "complete";
        for place in &mut section.places {
            place.verified = Some(
                if now_there.contains(&place.record) {
                    "still there"
                } else if read_all {
                    "gone"
                } else {
                    "not verified"
                }
                .to_owned(),
            );
        }
        let known: std::collections::BTreeSet<&str> = section
            .places
            .iter()
            .map(|place| place.record.as_str())
            .collect();
        let new_places = now_there
            .iter()
            .filter(|record| !known.contains(record.as_str()))
            .cloned()
            .collect();
        section.verify = Some(Verification { status, new_places });
    }
    Ok(())
}

/// Ask each IMAP server for what the index does not cover there: an address
/// where no scan reads From/To/Cc (`UID SEARCH FROM/TO/CC`, a substring match
/// on the server), a personnummer or phone number where no `contains` rule
/// reads content (`UID SEARCH TEXT` for each usual written form: text parts the
/// server decodes, not documents). Messages found are added as places.
async fn server_search(
    engine: &Engine,
    asked: &[Asked],
    locator: &mut Locator,
) -> Result<(), SubjectError> {
    let config = engine.config();
    let today = tillsyn_rules::today(config.daemon.timezone.0, locator.generated_at);
    for source in &config.sources {
        let (terms, searched) = match &source.settings {
            SourceSettings::Imap(_) => {
                let (addresses, texts, searched) = imap_terms(config, source, asked, today);
                let terms = SearchTerms {
                    addresses,
                    texts,
                    ..SearchTerms::default()
                };
                (terms, searched)
            }
            SourceSettings::Ldap(_) => {
                let (attributes, searched) = ldap_terms(source, asked, today);
                let terms = SearchTerms {
                    attributes,
                    ..SearchTerms::default()
                };
                (terms, searched)
            }
            _ => continue,
        };
        if terms.is_empty() {
            continue;
        }
        let server = engine.source(source)?;
        let Some(found) = server.search(&terms).await else {
            continue;
        };
        let found = found
            .map_err(|error| SubjectError::Invalid(format!("source {:?}: {error}", source.name)))?;
        let record_kind = match source.settings {
            SourceSettings::Ldap(_) => "contact",
            _ => "message",
        };
        let source_rules = engine.rules().for_source(&source.name);
        let Some(section) = locator
            .stores
            .iter_mut()
            .find(|section| section.source == source.name)
        else {
            continue;
        };
        section.server_searches = searched;
        for id in found {
            if section.places.iter().any(|place| place.record == id) {
                continue;
            }
            let container = match &source.settings {
                SourceSettings::Ldap(ldap) => ldap.base_dn.clone(),
                _ => id.split('/').nth(1).unwrap_or_default().to_owned(),
            };
            let row = IdentityRow {
                source: source.name.clone(),
                kind: String::new(),
                field: String::new(),
                record_id: id.clone(),
                record_path: id.clone(),
                record_kind: record_kind.into(),
                container,
                record_time: None,
            };
            section.places.push(Place {
                record: id,
                record_kind: record_kind.into(),
                record_time: None,
                matched: vec!["found by the server's search".to_owned()],
                governed_by: source_rules.governing(&record_of(&row)),
                open_findings: Vec::new(),
                verified: None,
            });
        }
    }
    Ok(())
}

/// The written forms of a personnummer (12 canonical digits) as people
/// write them: `811218-9876`, `19811218-9876`, `8112189876`, `198112189876`.
fn personnummer_forms(canonical: &str) -> Vec<String> {
    let short = canonical.get(2..).unwrap_or(canonical);
    vec![
        format!(
            "{}-{}",
            short.get(..6).unwrap_or(short),
            short.get(6..).unwrap_or("")
        ),
        format!(
            "{}-{}",
            canonical.get(..8).unwrap_or(canonical),
            canonical.get(8..).unwrap_or("")
        ),
        short.to_owned(),
        canonical.to_owned(),
    ]
}

/// What to ask an IMAP server for: addresses where no scan reads From/To/Cc,
/// numbers where no `contains` rule reads mail; and the searches, in words.
fn imap_terms(
    config: &Config,
    source: &SourceConfig,
    asked: &[Asked],
    today: tillsyn_detectors::Today,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let headers_read = config.identity.read_mail_headers
        || config.rules.iter().any(|rule| {
            matches!(rule.check, Check::MaxRecipients(_)) && rule.when.names_source(&source.name)
        });
    let content_read = |kind: &str| {
        config.rules.iter().any(|rule| {
            matches!(&rule.check, Check::Contains(check) if check.detectors.iter().any(|d| d == kind))
                && rule.when.names_source(&source.name)
        })
    };
    let (mut addresses, mut texts, mut searched) = (Vec::new(), Vec::new(), Vec::new());
    for asked in asked {
        let Some(canonical) = tillsyn_rules::identity::normalise(&asked.kind, &asked.value, today)
        else {
            continue;
        };
        match asked.kind.as_str() {
            "email" if !headers_read => {
                addresses.push(canonical);
                searched.push("email: UID SEARCH FROM/TO/CC (substring match)".to_owned());
            }
            "personnummer" if !content_read("personnummer") => {
                texts.extend(personnummer_forms(&canonical));
                searched.push(
                    "personnummer: UID SEARCH TEXT, four written forms (text parts, not documents)"
                        .to_owned(),
                );
            }
            "phone" if !content_read("phone") => {
                let national = format!("0{}", canonical.trim_start_matches("+46"));
                texts.extend([canonical.clone(), national]);
                searched.push(
                    "phone: UID SEARCH TEXT, E.164 and national digits (text parts)".to_owned(),
                );
            }
            _ => {}
        }
    }
    searched.sort();
    searched.dedup();
    (addresses, texts, searched)
}

/// The directory attributes searched for a kind no `identifiers` maps:
/// e-mail in `mail`, `mailAlternateAddress` and (Active Directory)
/// `proxyAddresses` as `smtp:`; a personnummer in `employeeNumber` in each
/// written form; a phone number in `telephoneNumber`, `mobile` and `homePhone`
/// as E.164 and national digits. Equality matches, as the schema compares.
fn ldap_terms(
    source: &SourceConfig,
    asked: &[Asked],
    today: tillsyn_detectors::Today,
) -> (Vec<(String, String)>, Vec<String>) {
    let (mut terms, mut searched) = (Vec::new(), Vec::new());
    for asked in asked {
        if source.identifiers.values().any(|kind| *kind == asked.kind) {
            continue;
        }
        let Some(canonical) = tillsyn_rules::identity::normalise(&asked.kind, &asked.value, today)
        else {
            continue;
        };
        let mut add = |attributes: &[&str], values: &[String]| {
            for attribute in attributes {
                for value in values {
                    terms.push(((*attribute).to_owned(), value.clone()));
                }
            }
        };
        match asked.kind.as_str() {
            "email" => {
                add(
                    &["mail", "mailAlternateAddress"],
                    std::slice::from_ref(&canonical),
                );
                add(&["proxyAddresses"], &[format!("smtp:{canonical}")]);
                searched.push(
                    "email: filter on mail, mailAlternateAddress, proxyAddresses (equality)"
                        .to_owned(),
                );
            }
            "personnummer" => {
                add(&["employeeNumber"], &personnummer_forms(&canonical));
                searched
                    .push("personnummer: filter on employeeNumber, four written forms".to_owned());
            }
            "phone" => {
                let national = format!("0{}", canonical.trim_start_matches("+46"));
                add(
                    &["telephoneNumber", "mobile", "homePhone"],
                    &[canonical.clone(), national],
                );
                searched.push(
                    "phone: filter on telephoneNumber, mobile, homePhone (E.164, national)"
                        .to_owned(),
                );
            }
            _ => {}
        }
    }
    (terms, searched)
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

fn render(
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
