//! The identity index's inputs: which identifiers one record holds, each
//! normalised and hashed under the pseudonym key, so that `tillsyn subject`
//! and erasure checks can find a person without the store ever holding who.
//!
//! What a record gives:
//! - its owner (a file's owner, an entry's owner attribute, a CRM item's owner
//!   pointer): kind `email` when it is an address, else `account`. A mailbox's
//!   account is one row per folder (record kind `folder`, the folder's path),
//!   not one per message;
//! - mail: every From, To and Cc address (`email`) but the mailbox owner's
//!   own (the folder's row stands for those), where the scan reads them: a
//!   rule counts recipients, or `[identity] read_mail_headers` is set;
//! - directory entries and API items: the attributes a source's `identifiers`
//!   names, each with its kind (several values split on `;`);
//! - content: what the detectors matched, already hashed where it was read.
//!
//! Normalisation is the detectors' own ([`tillsyn_detectors::canonical`]), so
//! `19811218-9876` in a register, `811218-9876` in a mail and `198112189876`
//! in a directory are one person. Kinds of the organisation's own (an
//! employee number) are kept as written, trimmed.

use std::collections::{BTreeMap, HashMap, HashSet};

use tillsyn_connectors::Record;
use tillsyn_connectors::identity::{IdentityHash, IdentityKey};
use tillsyn_detectors::{Builtin, Today};

use crate::store::NewIdentity;

/// An identifier in canonical form, or `None` when `value` is not one of
/// `kind`. `account` is lower-cased and trimmed.
pub fn normalise(kind: &str, value: &str, today: Today) -> Option<String> {
    match Builtin::named(kind) {
        Some(builtin) => tillsyn_detectors::canonical(builtin, value, today),
        None if kind == "account" => {
            let account = value.trim().to_lowercase();
            (!account.is_empty()).then_some(account)
        }
        None => {
            let trimmed = value.trim();
            (!trimmed.is_empty()).then(|| trimmed.to_owned())
        }
    }
}

/// How one source's records become identity rows.
#[derive(Debug, Clone)]
pub struct IdentityPlan {
    key: IdentityKey,
    /// Record attribute → identifier kind.
    identifiers: BTreeMap<String, String>,
    today: Today,
    /// Hashes made this scan, by kind and value as written: one correspondent
    /// is in many messages. Emptied when full.
    cache: HashMap<(String, String), Option<IdentityHash>>,
    /// Mail folders whose account row this scan has written.
    folders: HashSet<String>,
}

/// Hashes remembered at most, per scan.
const CACHE_ENTRIES: usize = 1 << 16;

impl IdentityPlan {
    /// A plan hashing under `key`, reading the attributes `identifiers` names,
    /// with `today` for personnummer centuries.
    pub fn new(
        key: IdentityKey,
        identifiers: BTreeMap<String, String>,
        today: Today,
    ) -> IdentityPlan {
        IdentityPlan {
            key,
            identifiers,
            today,
            cache: HashMap::new(),
            folders: HashSet::new(),
        }
    }

    /// The keyed hash of an identifier as a person gives it; `None` when it is
    /// not one of `kind`.
    pub fn hash(&self, kind: &str, value: &str) -> Option<IdentityHash> {
        normalise(kind, value, self.today).map(|canonical| self.key.hash(kind, &canonical))
    }

    /// The owner's kind and hash: `email` when it is an address, else
    /// `account`.
    pub fn owner_hash(&self, owner: &str) -> Option<(&'static str, IdentityHash)> {
        self.hash("email", owner)
            .map(|hash| ("email", hash))
            .or_else(|| self.hash("account", owner).map(|hash| ("account", hash)))
    }

    /// [`IdentityPlan::hash`], remembered for the rest of the scan.
    fn cached_hash(&mut self, kind: &str, value: &str) -> Option<IdentityHash> {
        if let Some(hash) = self.cache.get(&(kind.to_owned(), value.to_owned())) {
            return *hash;
        }
        if self.cache.len() >= CACHE_ENTRIES {
            self.cache.clear();
        }
        let hash = self.hash(kind, value);
        self.cache.insert((kind.to_owned(), value.to_owned()), hash);
        hash
    }

    /// Every identifier `record` holds, once per kind and field, as rows.
    pub fn rows(&mut self, record: &Record, rows: &mut Vec<NewIdentity>) {
        let time = record
            .timestamps
            .received
            .or(record.timestamps.modified)
            .map(|time| time.timestamp());
        let mut found: Vec<(IdentityHash, String, String)> = Vec::new();
        let mut mailbox_owner = None;
        if let Some(owner) = &record.owner {
            let owner_kind = if self.cached_hash("email", owner).is_some() {
                "email"
            } else {
                "account"
            };
            if let Some(hash) = self.cached_hash(owner_kind, owner) {
                if record.kind == tillsyn_connectors::RecordKind::Message {
                    mailbox_owner = Some(hash);
                    // The mailbox's account: one row for its folder.
                    let folder = record
                        .path
                        .rsplit_once('/')
                        .map_or(record.path.as_str(), |(folder, _)| folder);
                    if self.folders.insert(folder.to_owned()) {
                        rows.push(NewIdentity {
                            hash,
                            kind: owner_kind.to_owned(),
                            field: "owner".to_owned(),
                            record_id: folder.to_owned(),
                            record_path: folder.to_owned(),
                            record_kind: tillsyn_connectors::RecordKind::Folder.as_str(),
                            container: record.container.clone(),
                            record_time: None,
                        });
                    }
                } else {
                    found.push((hash, owner_kind.to_owned(), "owner".to_owned()));
                }
            }
        }
        if let Some(participants) = &record.participants {
            for (field, addresses) in [
                ("from", &participants.from),
                ("to", &participants.to),
                ("cc", &participants.cc),
            ] {
                for address in addresses {
                    // The mailbox owner's own address is in most of its
                    // messages; the folder's row already says they are theirs.
                    if let Some(hash) = self.cached_hash("email", &address.address)
                        && mailbox_owner != Some(hash)
                    {
                        found.push((hash, "email".to_owned(), field.to_owned()));
                    }
                }
            }
        }
        for (attribute, kind) in &self.identifiers {
            let Some(values) = record.attributes.get(attribute) else {
                continue;
            };
            for value in values.split(';') {
                if let Some(hash) = self.hash(kind, value) {
                    found.push((hash, kind.clone(), attribute.clone()));
                }
            }
        }
        if let Some(content) = &record.content {
            use tillsyn_connectors::content::Part;
            for part in &content.parts {
                let field = match &part.part {
                    Part::Body => "body",
                    Part::Attachment(_) => "attachment",
                    Part::File => "file",
                    Part::Field(name) => name.as_str(),
                };
                for matched in &part.matches {
                    found.push((matched.hash, matched.detector.clone(), field.to_owned()));
                }
            }
        }
        found.sort_unstable();
        found.dedup();
        for (hash, kind, field) in found {
            rows.push(NewIdentity {
                hash,
                kind,
                field,
                record_id: record.id.clone(),
                record_path: record.path.clone(),
                record_kind: record.kind.as_str(),
                container: record.container.clone(),
                record_time: time,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const TODAY: Today = Today {
        year: 2026,
        month: 11,
        day: 30,
    };

    #[test]
    fn identifiers_in_every_written_form_normalise_alike() {
        for written in [
            "19811218-9876",
            "811218-9876",
            "198112189876",
            " 8112189876 ",
        ] {
            assert_eq!(
                normalise("personnummer", written, TODAY).as_deref(),
                Some("198112189876"),
                "{written}"
            );
        }
        // A check digit off, an organisation: no person.
        assert_eq!(normalise("personnummer", "811218-9875", TODAY), None);
        assert_eq!(normalise("personnummer", "556677-8899", TODAY), None);
        assert_eq!(
            normalise("email", " mailto:Anna.Andersson@Firma.SE ", TODAY).as_deref(),
            Some("anna.andersson@firma.se")
        );
        assert_eq!(normalise("email", "not an address", TODAY), None);
        for written in ["070-123 45 67", "+46701234567", "0046 70 123 45 67"] {
            assert_eq!(
                normalise("phone", written, TODAY).as_deref(),
                Some("+46701234567"),
                "{written}"
            );
        }
        assert_eq!(
            normalise("account", " Anna ", TODAY).as_deref(),
            Some("anna")
        );
        assert_eq!(
            normalise("employee_number", " E-1007 ", TODAY).as_deref(),
            Some("E-1007")
        );
        assert_eq!(normalise("employee_number", "  ", TODAY), None);
    }

    #[test]
    fn a_record_gives_its_owner_addresses_mapped_attributes_and_content() {
        use tillsyn_connectors::{Address, Participants, RecordKind};
        let key = IdentityKey::new(tillsyn_connectors::secret::Secret::new(vec![3; 32]));
        let mut plan = IdentityPlan::new(
            key,
            BTreeMap::from([
                ("pnr".to_owned(), "personnummer".to_owned()),
                ("phones".to_owned(), "phone".to_owned()),
            ]),
            TODAY,
        );
        let mut record = Record::new(RecordKind::Message, "mail".into(), "anna/INBOX/1".into());
        record.owner = Some("anna@firma.se".into());
        record.participants = Some(Participants {
            from: vec![Address {
                address: "bertil@example.org".into(),
            }],
            to: vec![Address {
                address: "anna@firma.se".into(),
            }],
            cc: vec![Address {
                address: "cecilia@example.org".into(),
            }],
        });
        record
            .attributes
            .insert("pnr".into(), "19811218-9876".into());
        record
            .attributes
            .insert("phones".into(), "070-123 45 67;not a phone".into());
        let mut rows = Vec::new();
        plan.rows(&record, &mut rows);
        let described: BTreeSet<(String, String)> = rows
            .iter()
            .map(|row| (row.kind.clone(), row.field.clone()))
            .collect();
        assert_eq!(
            described,
            BTreeSet::from([
                ("email".to_owned(), "owner".to_owned()),
                ("email".to_owned(), "from".to_owned()),
                ("email".to_owned(), "cc".to_owned()),
                ("personnummer".to_owned(), "pnr".to_owned()),
                ("phone".to_owned(), "phones".to_owned()),
            ])
        );
        // The mailbox owner is one row for the folder, not one per message
        // (nor again for being in To).
        let anna = plan.hash("email", "Anna@Firma.se").expect("hash");
        let owner_rows: Vec<&NewIdentity> = rows.iter().filter(|row| row.hash == anna).collect();
        assert_eq!(owner_rows.len(), 1);
        assert_eq!(owner_rows[0].record_id, "anna/INBOX");
        assert_eq!(owner_rows[0].record_kind, "folder");
        let mut second = Record::new(RecordKind::Message, "mail".into(), "anna/INBOX/2".into());
        second.owner = Some("anna@firma.se".into());
        let mut more = Vec::new();
        plan.rows(&second, &mut more);
        assert!(more.is_empty(), "{more:?}");
        assert_eq!(
            plan.hash("personnummer", "811218-9876"),
            rows.iter()
                .find(|row| row.kind == "personnummer")
                .map(|row| row.hash)
        );
    }
}
