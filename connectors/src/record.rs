//! The normalised record: the only thing connectors and rules share.
//!
//! A connector turns whatever its store holds (a file, a mail, a directory entry, a
//! CRM object) into a [`Record`]. The rules engine sees nothing else, so a rule
//! written for "files under this path older than seven years" never learns whether
//! the file came from an SMB mount or a local disk, and a connector never learns
//! which rule asked for it.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

/// What kind of thing a record stands for. Rules can select on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// One mail message in one folder.
    Message,
    /// A person or organisation in a directory or CRM.
    Contact,
    /// One file on a share.
    File,
    /// A folder summarised as a whole (e.g. one customer's material).
    Folder,
    /// Any other object from a CRM or register (a case, an incident, a list member).
    CrmObject,
}

impl RecordKind {
    /// The config and output spelling of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Message => "message",
            RecordKind::Contact => "contact",
            RecordKind::File => "file",
            RecordKind::Folder => "folder",
            RecordKind::CrmObject => "crm_object",
        }
    }
}

/// The standard timestamps a record can carry; each is optional because not every
/// store knows every one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timestamps {
    /// When the store received it (IMAP INTERNALDATE, Maildir file mtime).
    pub received: Option<DateTime<Utc>>,
    /// When it was created (file birth time where the filesystem keeps one).
    pub created: Option<DateTime<Utc>>,
    /// When its content last changed (file mtime).
    pub modified: Option<DateTime<Utc>>,
    /// Last contact or activity (newest file in a folder, last CRM contact).
    pub last_activity: Option<DateTime<Utc>>,
}

/// One mail address as written in a header. Only the address is kept; display names
/// are personal data that no rule needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The address, lower-cased.
    pub address: String,
}

impl Address {
    /// The domain part, lower-cased, or "" when the address has none.
    pub fn domain(&self) -> &str {
        self.address
            .rsplit_once('@')
            .map(|(_, domain)| domain)
            .unwrap_or("")
    }
}

/// The people a message went between.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Participants {
    /// From: addresses.
    pub from: Vec<Address>,
    /// To: addresses.
    pub to: Vec<Address>,
    /// Cc: addresses.
    pub cc: Vec<Address>,
}

/// One normalised item from a store.
#[derive(Debug, Clone)]
pub struct Record {
    /// What the record stands for.
    pub kind: RecordKind,
    /// The source (config `name`) it came from.
    pub source: Arc<str>,
    /// Identity inside the source that stays the same across scans as long as the
    /// item itself does (a relative path; `account/folder/unique-name` for mail).
    /// Findings are keyed by it.
    pub id: String,
    /// The container it lives in: a mail folder, a directory relative to the share
    /// root, a base DN.
    pub container: String,
    /// Path relative to the source root, with `/` separators, for path globs. Mail
    /// records use `account/folder/name` too so one glob syntax fits all.
    pub path: String,
    /// Whose data or mailbox it is, as the store knows it (account, file custodian).
    /// Never logged; pseudonymised in output unless the config names custodians.
    pub custodian: Option<String>,
    /// The standard timestamps.
    pub timestamps: Timestamps,
    /// Named dates: from the record itself (`path_date`) or from its container (a
    /// position folder's filled date). Event clocks count from these.
    pub dates: BTreeMap<String, DateTime<Utc>>,
    /// Mail participants, present only when a rule asked for them.
    pub participants: Option<Participants>,
    /// Other attributes (classification, mail special-use, status fields).
    pub attributes: BTreeMap<String, String>,
    /// What the detectors found inside it, when a rule asked.
    pub content: Option<crate::content::Content>,
    /// A fingerprint of everything the connector read for it, from connectors
    /// that can leave out unchanged records (see [`crate::record_cache`]);
    /// `None` from the others.
    pub stamp: Option<u64>,
}

impl Record {
    /// A record with only its identity filled in.
    pub fn new(kind: RecordKind, source: Arc<str>, id: String) -> Record {
        Record {
            kind,
            source,
            path: id.clone(),
            id,
            container: String::new(),
            custodian: None,
            timestamps: Timestamps::default(),
            dates: BTreeMap::new(),
            participants: None,
            attributes: BTreeMap::new(),
            content: None,
            stamp: None,
        }
    }
}

/// Opens a part of a note or error message that may name a person (an account, a
/// DN): output pseudonymises what stands between this and [`PERSONAL_END`] unless
/// the config names people.
pub const PERSONAL_START: char = '\u{2039}';
/// Closes a part opened by [`PERSONAL_START`].
pub const PERSONAL_END: char = '\u{203A}';

/// `text` marked as naming a person, for notes and error messages (see
/// [`PERSONAL_START`]). Marker characters inside it are dropped.
pub fn mark_personal(text: &str) -> String {
    let mut marked = String::with_capacity(text.len() + 6);
    marked.push(PERSONAL_START);
    marked.extend(
        text.chars()
            .filter(|c| *c != PERSONAL_START && *c != PERSONAL_END),
    );
    marked.push(PERSONAL_END);
    marked
}
