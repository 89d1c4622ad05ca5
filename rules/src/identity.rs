//! The identity index's inputs: which identifiers one record holds, each
//! normalised and hashed under the pseudonym key, so that `tillsyn subject`
//! and erasure checks can find a person without the store ever holding who.
//!
//! What a record gives:
//! - a mailbox's account and a file's owner (its custodian, who is also whom
//!   it is about): kind `email` when it is an address, else `account`. A
//!   mailbox's account is one row per folder (record kind `folder`, the
//!   folder's path), not one per message. The custodian of a directory entry
//!   or an API item (a manager, a case handler) is not indexed: it is who
//!   acts on the record, not whom it is about;
//! - mail: every From, To and Cc address (`email`) but the mailbox account's
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

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};

use tillsyn_connectors::{Record, RecordKind};
use tillsyn_core::identity::{IdentityHash, IdentityKey};
use tillsyn_detectors::{Builtin, Today};

/// One identifier found in a record, as the identity index keeps it,
/// borrowed from the record (the store keeps rows until
/// written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewIdentity<'a> {
    /// The keyed hash ([`tillsyn_core::identity`]).
    pub hash: tillsyn_core::identity::IdentityHash,
    /// What kind of identifier: a detector's name (`personnummer`, `email`, …).
    pub kind: &'a str,
    /// Where in the record: `body`, `attachment`, `file`, or a field's name.
    pub field: &'a str,
    /// Record id.
    pub record_id: &'a str,
    /// Record path.
    pub record_path: &'a str,
    /// Record kind.
    pub record_kind: &'static str,
    /// The container it lives in (a mail folder, a directory, a base DN).
    pub container: &'a str,
    /// When the record was received or last modified (seconds).
    pub record_time: Option<i64>,
}

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

/// The kinds a cached hash can be of.
#[derive(Debug, Clone, Copy)]
enum CustodianKind {
    Email,
    Account,
}

/// How one source's records become identity rows.
#[derive(Debug, Clone)]
pub struct IdentityPlan {
    key: IdentityKey,
    /// Record attribute → identifier kind.
    identifiers: BTreeMap<String, String>,
    today: Today,
    /// What a scan remembers between records.
    memory: RefCell<Memory>,
}

/// What a scan remembers between records: hashes of addresses (and
/// accounts) as written, since one correspondent is in many messages, and the
/// mail folders whose account row this scan has written.
#[derive(Debug, Clone, Default)]
struct Memory {
    addresses: HashCache,
    accounts: HashCache,
    folders: HashSet<String>,
    /// The kinds the custodians indexed this scan were of (`email` for an
    /// account that is an address, `account` for one that is not).
    custodian_kinds: std::collections::BTreeSet<&'static str>,
    /// The last custodian seen, its kind and hash: a mailbox's messages share one.
    custodian: Option<(String, &'static str, Option<IdentityHash>)>,
    /// The last folder seen (its messages come together).
    last_folder: String,
}

/// A direct-mapped cache of hashes by the value as written: a slot per
/// value's FNV-1a hash, overwritten on collision, its string's room reused.
#[derive(Debug, Clone)]
struct HashCache {
    slots: Vec<Option<(String, Option<IdentityHash>)>>,
}

/// Slots in a [`HashCache`].
const CACHE_SLOTS: usize = 1 << 9;

impl Default for HashCache {
    fn default() -> HashCache {
        HashCache {
            slots: vec![None; CACHE_SLOTS],
        }
    }
}

impl HashCache {
    fn slot(value: &str) -> usize {
        let hash = tillsyn_core::fingerprint::quick(value.as_bytes());
        (hash as usize) & (CACHE_SLOTS - 1)
    }

    /// The remembered hash of `value`, or `make`'s, remembered.
    fn get_or(
        &mut self,
        value: &str,
        make: impl FnOnce() -> Option<IdentityHash>,
    ) -> Option<IdentityHash> {
        let slot = &mut self.slots[Self::slot(value)];
        match slot {
            Some((held, hash)) if held == value => *hash,
            Some((held, hash)) => {
                let made = make();
                held.clear();
                held.push_str(value);
                *hash = made;
                made
            }
            None => {
                let made = make();
                *slot = Some((value.to_owned(), made));
                made
            }
        }
    }
}

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
            memory: RefCell::default(),
        }
    }

    /// The keyed hash of an identifier as a person gives it; `None` when it is
    /// not one of `kind`.
    pub fn hash(&self, kind: &str, value: &str) -> Option<IdentityHash> {
        normalise(kind, value, self.today).map(|canonical| self.key.hash(kind, &canonical))
    }

    /// The custodian's kind and hash: `email` when it is an address, else
    /// `account`.
    pub fn custodian_hash(&self, custodian: &str) -> Option<(&'static str, IdentityHash)> {
        self.hash("email", custodian)
            .map(|hash| ("email", hash))
            .or_else(|| {
                self.hash("account", custodian)
                    .map(|hash| ("account", hash))
            })
    }

    /// [`IdentityPlan::hash`] of an `email` or `account`, remembered for the
    /// rest of the scan.
    fn cached_hash(&self, kind: CustodianKind, value: &str) -> Option<IdentityHash> {
        let mut memory = self.memory.borrow_mut();
        let (cache, kind) = match kind {
            CustodianKind::Email => (&mut memory.addresses, "email"),
            CustodianKind::Account => (&mut memory.accounts, "account"),
        };
        cache.get_or(value, || self.hash(kind, value))
    }

    /// The kind and hash of `custodian` (see [`IdentityPlan::custodian_hash`]),
    /// remembered.
    fn cached_custodian(&self, custodian: &str) -> Option<(&'static str, IdentityHash)> {
        if let Some((held, kind, hash)) = &self.memory.borrow().custodian
            && held == custodian
        {
            return hash.map(|hash| (*kind, hash));
        }
        let (kind, hash) = match self.cached_hash(CustodianKind::Email, custodian) {
            Some(hash) => ("email", Some(hash)),
            None => (
                "account",
                self.cached_hash(CustodianKind::Account, custodian),
            ),
        };
        let mut memory = self.memory.borrow_mut();
        memory.custodian = Some((custodian.to_owned(), kind, hash));
        if hash.is_some() {
            memory.custodian_kinds.insert(kind);
        }
        hash.map(|hash| (kind, hash))
    }

    /// The kinds the mailbox accounts and file owners indexed by this scan
    /// were of: what their coverage is judged by ([`crate::subject::coverage`]).
    pub fn custodian_kinds(&self) -> Vec<&'static str> {
        self.memory
            .borrow()
            .custodian_kinds
            .iter()
            .copied()
            .collect()
    }

    /// Whether this scan has not yet written `folder`'s account row (and now
    /// has).
    fn first_in_folder(&self, folder: &str) -> bool {
        let mut memory = self.memory.borrow_mut();
        if memory.last_folder == folder {
            return false;
        }
        memory.last_folder.clear();
        memory.last_folder.push_str(folder);
        !memory.folders.contains(folder) && memory.folders.insert(folder.to_owned())
    }

    /// Every identifier `record` holds, once per kind and field, as rows
    /// appended to `rows`.
    pub fn rows<'r>(&'r self, record: &'r Record, rows: &mut Vec<NewIdentity<'r>>) {
        let time = record
            .timestamps
            .received
            .or(record.timestamps.modified)
            .map(|time| time.timestamp());
        let row = |hash, kind, field| NewIdentity {
            hash,
            kind,
            field,
            record_id: &record.id,
            record_path: &record.path,
            record_kind: record.kind.as_str(),
            container: &record.container,
            record_time: time,
        };
        let mut mailbox_custodian = None;
        // A mailbox's account and a file's owner hold what is theirs: they
        // are its subjects too. A directory entry's or CRM item's custodian
        // (a manager, a case handler) is only who acts on it.
        let custodian_is_subject = matches!(
            record.kind,
            RecordKind::Message | RecordKind::File | RecordKind::Folder
        );
        if custodian_is_subject
            && let Some(custodian) = &record.custodian
            && let Some((custodian_kind, hash)) = self.cached_custodian(custodian)
        {
            if record.kind == tillsyn_connectors::RecordKind::Message {
                mailbox_custodian = Some(hash);
                // The mailbox's account: one row for its folder.
                let folder = record
                    .path
                    .rsplit_once('/')
                    .map_or(record.path.as_str(), |(folder, _)| folder);
                if self.first_in_folder(folder) {
                    rows.push(NewIdentity {
                        hash,
                        kind: custodian_kind,
                        field: "custodian",
                        record_id: folder,
                        record_path: folder,
                        record_kind: tillsyn_connectors::RecordKind::Folder.as_str(),
                        container: &record.container,
                        record_time: None,
                    });
                }
            } else {
                rows.push(row(hash, custodian_kind, "custodian"));
            }
        }
        // The record's own rows, deduplicated below.
        let start = rows.len();
        if let Some(participants) = &record.participants {
            for (field, addresses) in [
                ("from", &participants.from),
                ("to", &participants.to),
                ("cc", &participants.cc),
            ] {
                for address in addresses {
                    // The mailbox custodian's own address is in most of its
                    // messages; the folder's row already says they are theirs.
                    if let Some(hash) = self.cached_hash(CustodianKind::Email, &address.address)
                        && mailbox_custodian != Some(hash)
                    {
                        rows.push(row(hash, "email", field));
                    }
                }
            }
        }
        for (attribute, kind) in &self.identifiers {
            let Some((attribute, values)) = record.attributes.get_key_value(attribute) else {
                continue;
            };
            for value in values.split(';') {
                if let Some(hash) = self.hash(kind, value) {
                    rows.push(row(hash, kind, attribute));
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
                    rows.push(row(matched.hash, &matched.detector, field));
                }
            }
        }
        let own = &mut rows[start..];
        own.sort_unstable_by(|a, b| (a.hash, a.kind, a.field).cmp(&(b.hash, b.kind, b.field)));
        let mut kept = start;
        for index in start..rows.len() {
            let is_new = kept == start || {
                let (last, this) = (&rows[kept - 1], &rows[index]);
                (last.hash, last.kind, last.field) != (this.hash, this.kind, this.field)
            };
            if is_new {
                rows.swap(kept, index);
                kept += 1;
            }
        }
        rows.truncate(kept);
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
    fn a_record_gives_its_custodian_addresses_mapped_attributes_and_content() {
        use tillsyn_connectors::{Address, Participants, RecordKind};
        let key = IdentityKey::new(tillsyn_core::secret::Secret::new(vec![3; 32]));
        let plan = IdentityPlan::new(
            key,
            BTreeMap::from([
                ("pnr".to_owned(), "personnummer".to_owned()),
                ("phones".to_owned(), "phone".to_owned()),
            ]),
            TODAY,
        );
        let mut record = Record::new(RecordKind::Message, "mail".into(), "anna/INBOX/1".into());
        record.custodian = Some("anna@firma.se".into());
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
            .map(|row| (row.kind.to_owned(), row.field.to_owned()))
            .collect();
        assert_eq!(
            described,
            BTreeSet::from([
                ("email".to_owned(), "custodian".to_owned()),
                ("email".to_owned(), "from".to_owned()),
                ("email".to_owned(), "cc".to_owned()),
                ("personnummer".to_owned(), "pnr".to_owned()),
                ("phone".to_owned(), "phones".to_owned()),
            ])
        );
        // The mailbox custodian is one row for the folder, not one per message
        // (nor again for being in To).
        let anna = plan.hash("email", "Anna@Firma.se").expect("hash");
        let custodian_rows: Vec<&NewIdentity> =
            rows.iter().filter(|row| row.hash == anna).collect();
        assert_eq!(custodian_rows.len(), 1);
        assert_eq!(custodian_rows[0].record_id, "anna/INBOX");
        assert_eq!(custodian_rows[0].record_kind, "folder");
        let mut second = Record::new(RecordKind::Message, "mail".into(), "anna/INBOX/2".into());
        second.custodian = Some("anna@firma.se".into());
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
