//! Checking the index against the stores themselves (`--verify`): every
//! store read again into a private copy of the store, and, where a server can
//! search (IMAP, LDAP), the server asked for the person by its own search.

use std::collections::BTreeMap;

use super::{Asked, Locator, Place, SubjectError, Verification, lookup, record_of};
use crate::engine::Engine;
use tillsyn_config::rules::Check;
use tillsyn_config::{Config, SourceConfig, SourceSettings};
use tillsyn_connectors::capability::SearchTerms;
use tillsyn_store::IdentityRow;

/// Re-read every store into a private copy of the store (nothing is
/// written to the real one) and look the person up again there: each place
/// found is still there or gone, and places new since the last scan are
/// listed.
pub(super) async fn verify(
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
pub(super) async fn server_search(
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
