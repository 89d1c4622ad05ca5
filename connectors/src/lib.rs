//! The read side of tillsyn: one module per kind of store, all behind [`Connector`],
//! all producing [`Record`]s.
//!
//! Layout:
//! - [`record`]: the normalised record, the only type rules and connectors share.
//! - [`content`]: text inside records (mail bodies, text files), run through
//!   the detectors where it is read; only what they matched travels on.
//! - [`identity`]: keyed hashes of identifiers, the only form they are kept in.
//! - [`record_cache`]: what earlier scans judged, so that unchanged records
//!   are left out.
//! - [`fileshare`]: a mounted share or local directory tree, metadata only.
//! - [`maildir`]: Maildir++ trees as Dovecot keeps them, headers only.
//! - [`imap`]: mailboxes over IMAP (EXAMINE and BODY.PEEK only), incremental.
//! - [`ldap`]: directories over LDAP, paged, only the attributes rules need.
//! - [`http`]: CRMs and registers over HTTP/JSON, paginated, JSON pointers.
//! - [`secret`]: passwords, tokens and keys, read from files or the environment
//!   and redacted in every `Debug` and `Display`.
//! - [`tls`]: the TLS client settings the network connectors share.
//!
//! Every connector reads and never writes. Records stream through a bounded
//! channel ([`RecordSink`], in batches) so no connector holds a whole store in
//! memory. Problems
//! with single items (an unreadable directory, a malformed mail) are counted in the
//! [`ScanReport`] and the scan goes on; only problems that make the whole scan
//! meaningless (the root is missing) end it with a [`ConnectorError`].
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::panic)]

pub mod capability;
pub mod checkpoint;
pub mod content;
pub mod dn;
pub mod fileshare;
pub mod http;
pub mod imap;
pub mod ldap;
mod local_fs;
mod mail_headers;
pub mod maildir;
mod mutf7;
#[cfg(test)]
mod parser_properties;
pub mod record;
pub mod record_cache;
pub mod source;
pub mod tls;
pub mod values;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub use record::{
    Address, PERSONAL_END, PERSONAL_START, Participants, Record, RecordKind, Timestamps,
    mark_personal,
};

/// The wait before a read that broke off is tried again (an IMAP account, an
/// HTTP page): one second, doubling, at most a minute.
pub const READ_RETRY: tillsyn_core::backoff::Backoff = tillsyn_core::backoff::Backoff::new(
    std::time::Duration::from_secs(1),
    std::time::Duration::from_secs(60),
);

/// The record attribute a connector sets when the custodian marked the record as
/// kept on purpose (a flag, a folder; see the IMAP source's `custodian_marks`).
pub const CUSTODIAN_MARK: &str = "custodian_mark";

/// What the rules that apply to a source need from it (the scan plan); the
/// connector skips work nobody asked for (a stale-inbox rule needs no headers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// Mail From/To/Cc.
    pub participants: bool,
    /// The latest instant before which a record's `received` time can break an
    /// age rule (`now` − age − grace of the shortest such rule); `None` when no age
    /// rule counts from `received`.
    pub age_cutoff: Option<chrono::DateTime<chrono::Utc>>,
    /// Only age rules apply, so records received at or after `age_cutoff` cannot
    /// break anything and may be left out (an IMAP `UID SEARCH BEFORE` rather than
    /// a download).
    pub only_age: bool,
    /// An unchanged record can start breaking an age rule only by its `received`
    /// time passing `age_cutoff` (no rule anchors at a fiscal year end), so an
    /// incremental scan may re-check just the records that crossed it.
    pub windowed_ages: bool,
    /// Fingerprint of the applicable rules and of what the identity index and
    /// the detectors take from a record: an incremental connector rescans in
    /// full when it changes.
    pub plan: u64,
    /// A rule reads inside records ([`ScanContext::content`] says how).
    pub content: bool,
}

impl Needs {
    /// The cutoff below which records must be sent, when younger ones may be left
    /// out.
    pub fn received_before(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        if self.only_age { self.age_cutoff } else { None }
    }
}

/// A flag a scan polls to stop early (shutdown, timeout), and can await. Cheap
/// to clone; every clone sees the same flag.
#[derive(Debug, Clone)]
pub struct CancelFlag {
    /// Polled by connectors per record or batch: a load, no lock.
    flag: Arc<AtomicBool>,
    /// Wakes those that await the stop (the runner's cut-off, the daemon's
    /// waits); set together with `flag`.
    wake: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for CancelFlag {
    fn default() -> CancelFlag {
        CancelFlag {
            flag: Arc::new(AtomicBool::new(false)),
            wake: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }
}

impl CancelFlag {
    /// Ask the scan to stop.
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::Relaxed);
        self.wake.send_replace(true);
    }
    /// Whether stopping was asked for.
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }
    /// Wait until stopping is asked for (at once if it already was).
    pub async fn cancelled(&self) {
        let mut receiver = self.wake.subscribe();
        // The sender lives in `self`, so waiting cannot fail.
        let _ = receiver.wait_for(|cancelled| *cancelled).await;
    }
}

/// What a connector gets for one scan.
#[derive(Debug, Clone)]
pub struct ScanContext {
    /// The source's name, stamped on every record.
    pub source: Arc<str>,
    /// What the rules need.
    pub needs: Needs,
    /// Set when the scan should stop; the connector then returns
    /// [`ConnectorError::Cancelled`].
    pub cancel: CancelFlag,
    /// What the connector saved after its last finished scan of this source
    /// (see [`ScanReport::checkpoints`]); empty on the first scan.
    pub checkpoints: BTreeMap<String, String>,
    /// The detectors and limits, when a rule reads inside records.
    pub content: Option<Arc<content::ContentPlan>>,
    /// The organisation's time zone (`daemon.timezone`): a date without a
    /// time is midnight there, a time without an offset its wall clock.
    pub timezone: chrono_tz::Tz,
    /// What earlier scans judged, for a connector that stamps its records
    /// ([`Record::stamp`]): a record it finds [`unchanged`] is left out.
    ///
    /// [`unchanged`]: record_cache::RecordCache::unchanged
    pub records: Option<Arc<record_cache::RecordCache>>,
}

/// Where a connector sends its records. Bounded: a slow consumer slows the walk
/// rather than filling memory. Records travel in batches, so the consumer wakes
/// once per batch rather than once per record; each clone has its own batch,
/// sent when full, on `flush`, and at the latest when the clone is dropped.
#[derive(Debug)]
pub struct RecordSink {
    sender: tokio::sync::mpsc::Sender<Vec<Record>>,
    batch: Vec<Record>,
}

/// Records per batch.
const SINK_BATCH: usize = 256;

impl Clone for RecordSink {
    fn clone(&self) -> RecordSink {
        RecordSink {
            sender: self.sender.clone(),
            batch: Vec::new(),
        }
    }
}

impl RecordSink {
    /// A sink and the receiver the scan runner reads batches from; `capacity` is
    /// in records.
    pub fn channel(capacity: usize) -> (RecordSink, tokio::sync::mpsc::Receiver<Vec<Record>>) {
        let (sender, receiver) = tokio::sync::mpsc::channel((capacity / SINK_BATCH).max(1));
        (
            RecordSink {
                sender,
                batch: Vec::new(),
            },
            receiver,
        )
    }

    /// Send from a blocking thread (file walks).
    pub fn send_blocking(&mut self, record: Record) -> Result<(), ConnectorError> {
        self.batch.push(record);
        if self.batch.len() >= SINK_BATCH {
            self.flush_blocking()?;
        }
        Ok(())
    }

    /// Send what is batched, from a blocking thread.
    pub fn flush_blocking(&mut self) -> Result<(), ConnectorError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(SINK_BATCH));
        self.sender
            .blocking_send(batch)
            .map_err(|_| ConnectorError::SinkClosed)
    }

    /// Send from async code (network connectors).
    pub async fn send(&mut self, record: Record) -> Result<(), ConnectorError> {
        self.batch.push(record);
        if self.batch.len() >= SINK_BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    /// Send what is batched, from async code.
    pub async fn flush(&mut self) -> Result<(), ConnectorError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(SINK_BATCH));
        self.sender
            .send(batch)
            .await
            .map_err(|_| ConnectorError::SinkClosed)
    }
}

impl Drop for RecordSink {
    /// A batch a connector did not flush is still delivered: at once when there
    /// is room, else from a short-lived thread that may wait (never blocking an
    /// async worker).
    fn drop(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        match self.sender.try_send(batch) {
            Ok(()) => {}
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {}
            Err(tokio::sync::mpsc::error::TrySendError::Full(batch)) => {
                let sender = self.sender.clone();
                std::thread::spawn(move || {
                    let _ = sender.blocking_send(batch);
                });
            }
        }
    }
}

/// A problem with one item that the scan counted and went past. The set is closed
/// so it can be a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProblemKind {
    /// A directory or file the auditor may not read.
    PermissionDenied,
    /// A symbolic link that leads back into its own ancestry.
    SymlinkLoop,
    /// An item that disappeared between listing and reading.
    Vanished,
    /// A file name that is not valid UTF-8 (still scanned, under an escaped name).
    NonUtf8Name,
    /// A mail whose header could not be parsed (still scanned by its dates).
    MalformedMail,
    /// A mail file of zero bytes.
    EmptyMail,
    /// A mail header larger than the read limit (parsed as far as read).
    OversizedHeader,
    /// A marker file without a readable date.
    BadMarker,
    /// Content over its read limit (a message, part or file): not read, and
    /// the record's findings stay open.
    OversizedContent,
    /// A document that could not be read (malformed, hostile, over a limit
    /// inside it, too slow): the record's findings stay open.
    UnreadableContent,
    /// A whole account could not be read (login refused, connection lost).
    AccountFailed,
    /// A directory referral, not followed.
    Referral,
    /// A directory entry that could not be decoded.
    MalformedEntry,
    /// A date attribute that could not be read as a date.
    BadDate,
    /// A server asked to be left alone for now (`NO [UNAVAILABLE]`, Exchange
    /// Online's throttling) or hung up mid-read (`BYE`): the read was tried
    /// again after a pause, and completed.
    Throttled,
    /// A FIFO, socket or device where a file was expected: skipped, nothing
    /// opened (it could block a walker, or never end).
    SpecialFile,
    /// A symbolic link that leads out of the share's root: not followed.
    SymlinkOutside,
    /// Any other I/O error on one item.
    Io,
}

impl ProblemKind {
    /// Every kind, so counters of each can be exported before any occurs.
    pub const ALL: &'static [ProblemKind] = &[
        ProblemKind::PermissionDenied,
        ProblemKind::SymlinkLoop,
        ProblemKind::Vanished,
        ProblemKind::NonUtf8Name,
        ProblemKind::MalformedMail,
        ProblemKind::EmptyMail,
        ProblemKind::OversizedHeader,
        ProblemKind::BadMarker,
        ProblemKind::OversizedContent,
        ProblemKind::UnreadableContent,
        ProblemKind::AccountFailed,
        ProblemKind::Referral,
        ProblemKind::MalformedEntry,
        ProblemKind::BadDate,
        ProblemKind::Throttled,
        ProblemKind::SpecialFile,
        ProblemKind::SymlinkOutside,
        ProblemKind::Io,
    ];

    /// Stable snake_case name, for metrics, the store and output.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::PermissionDenied => "permission_denied",
            ProblemKind::SymlinkLoop => "symlink_loop",
            ProblemKind::Vanished => "vanished",
            ProblemKind::NonUtf8Name => "non_utf8_name",
            ProblemKind::MalformedMail => "malformed_mail",
            ProblemKind::EmptyMail => "empty_mail",
            ProblemKind::OversizedHeader => "oversized_header",
            ProblemKind::BadMarker => "bad_marker",
            ProblemKind::OversizedContent => "oversized_content",
            ProblemKind::UnreadableContent => "unreadable_content",
            ProblemKind::AccountFailed => "account_failed",
            ProblemKind::Referral => "referral",
            ProblemKind::MalformedEntry => "malformed_entry",
            ProblemKind::BadDate => "bad_date",
            ProblemKind::Throttled => "throttled",
            ProblemKind::SpecialFile => "special_file",
            ProblemKind::SymlinkOutside => "symlink_outside",
            ProblemKind::Io => "io",
        }
    }

    /// Whether items were left unread because of it, so earlier findings under the
    /// affected place must not be resolved. A non-UTF-8 name or a malformed header
    /// still yields a record; an unreadable directory does not. A symlink loop
    /// hides nothing: its target is an ancestor that is walked anyway.
    pub fn hides_content(self) -> bool {
        matches!(
            self,
            ProblemKind::PermissionDenied | ProblemKind::Io | ProblemKind::AccountFailed
        )
    }
}

/// What a finished scan reports besides its records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Records sent.
    pub records: u64,
    /// Problems counted, by kind.
    pub problems: BTreeMap<ProblemKind, u64>,
    /// Record-path prefixes (as in [`Record::path`]) whose content could not be
    /// read; findings under them are kept open rather than resolved. An empty
    /// string means the whole source.
    pub unread_prefixes: Vec<String>,
    /// Places read incrementally: records there that did not change since the
    /// last scan were not sent again, so their open findings are kept, unless the
    /// record is listed as gone.
    pub carried: Vec<CarriedScope>,
    /// State to hand back in [`ScanContext::checkpoints`] next time; saved only
    /// when the scan finishes. Keys not returned are forgotten.
    pub checkpoints: BTreeMap<String, String>,
    /// What went wrong with parts of the store, one line each, for the operator
    /// (e.g. which account refused the login). No record content.
    pub notes: Vec<String>,
    /// Work done, by name (e.g. `headers_fetched`), to show and to test that
    /// incremental scans fetch only what changed.
    pub work: BTreeMap<&'static str, u64>,
    /// Places whose records the connector counted without sending them all
    /// (a server-side search picked the candidates): how many records each
    /// holds now. The records checked there are counted from these.
    pub place_totals: Vec<PlaceTotal>,
}

/// How many records one place holds (see [`ScanReport::place_totals`]).
#[derive(Debug, Clone)]
pub struct PlaceTotal {
    /// Record-path prefix, e.g. `anna/INBOX`.
    pub prefix: String,
    /// A record standing for any record there: its kind, container, custodian
    /// and the place's attributes (a folder's special use), no content.
    pub place: Record,
    /// How many records it holds.
    pub records: u64,
}

/// A place whose unchanged records were not sent again (see
/// [`ScanReport::carried`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarriedScope {
    /// Record-path prefix, e.g. `anna/INBOX`.
    pub prefix: String,
    /// Record paths under the prefix whose findings this scan decides anew,
    /// sorted: those it did not see again resolve (the record is gone, or was
    /// read again and no longer breaks a rule).
    pub gone: Vec<String>,
    /// When set, the records under the prefix are numbered (`…/N`, as IMAP UIDs)
    /// and these numbers, sorted, are the ones still there: any other is gone.
    pub present: Option<std::sync::Arc<Vec<u32>>>,
    /// When set, the records still there and carried are those the scan left
    /// out as unchanged: any other was read again (and decided anew) or went.
    pub left_out: Option<LeftOut>,
}

impl PartialEq for PlaceTotal {
    fn eq(&self, other: &PlaceTotal) -> bool {
        self.prefix == other.prefix
            && self.records == other.records
            && self.place.path == other.place.path
            && self.place.kind == other.place.kind
            && self.place.container == other.place.container
            && self.place.custodian == other.place.custodian
            && self.place.attributes == other.place.attributes
    }
}

impl Eq for PlaceTotal {}

/// The records a scan left out as unchanged (see [`CarriedScope::left_out`]).
#[derive(Debug, Clone)]
pub struct LeftOut(pub Arc<record_cache::RecordCache>);

impl PartialEq for LeftOut {
    fn eq(&self, other: &LeftOut) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for LeftOut {}

impl CarriedScope {
    /// Whether the record at `path` (under the prefix) is still there.
    pub fn still_there(&self, path: &str) -> bool {
        if self
            .gone
            .binary_search_by(|gone| gone.as_str().cmp(path))
            .is_ok()
        {
            return false;
        }
        if let Some(LeftOut(cache)) = &self.left_out
            && !cache.was_left_out(cache.key(path))
        {
            return false;
        }
        match &self.present {
            None => true,
            Some(present) => path
                .rsplit_once('/')
                .and_then(|(_, number)| number.parse::<u32>().ok())
                .is_some_and(|number| present.binary_search(&number).is_ok()),
        }
    }
}

impl ScanReport {
    /// Count one problem.
    pub fn count(&mut self, kind: ProblemKind) {
        *self.problems.entry(kind).or_insert(0) += 1;
    }

    /// All problems counted.
    pub fn problem_total(&self) -> u64 {
        self.problems.values().sum()
    }

    /// Fold another report (from a worker thread) into this one.
    pub fn merge(&mut self, other: ScanReport) {
        self.records += other.records;
        for (kind, count) in other.problems {
            *self.problems.entry(kind).or_insert(0) += count;
        }
        self.unread_prefixes.extend(other.unread_prefixes);
        self.carried.extend(other.carried);
        self.checkpoints.extend(other.checkpoints);
        self.notes.extend(other.notes);
        for (name, count) in other.work {
            *self.work.entry(name).or_insert(0) += count;
        }
        self.place_totals.extend(other.place_totals);
    }

    /// Count work done.
    pub fn add_work(&mut self, name: &'static str, count: u64) {
        *self.work.entry(name).or_insert(0) += count;
    }
}

/// A problem that ends a whole scan.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The configured root cannot be read at all.
    #[error("cannot read {path}: {source}")]
    RootUnreadable {
        /// The configured root.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The scan was asked to stop before it finished.
    #[error("scan cancelled before it finished")]
    Cancelled,
    /// The consumer of records went away (the runner ended the scan).
    #[error("record consumer stopped")]
    SinkClosed,
    /// The store could not be read at all (every account refused, server down).
    #[error("{message}")]
    Unavailable {
        /// Bounded kind: connect, tls, auth, timeout, connection_lost, protocol.
        kind: &'static str,
        /// What happened, naming accounts, never record content or secrets.
        message: String,
    },
    /// A worker thread ended abnormally.
    #[error("scan worker failed: {0}")]
    Worker(String),
    /// Code under the scan panicked (a bug, met on data it did not expect): the
    /// scan fails, the daemon goes on.
    #[error("{0} panicked; the scan is failed and nothing is resolved")]
    Panicked(String),
}

impl ConnectorError {
    /// Bounded error kind for metrics and the store.
    pub fn kind(&self) -> &'static str {
        match self {
            ConnectorError::RootUnreadable { .. } => "root_unreadable",
            ConnectorError::Cancelled => "cancelled",
            ConnectorError::SinkClosed => "sink_closed",
            ConnectorError::Worker(_) => "worker",
            ConnectorError::Panicked(_) => "panic",
            ConnectorError::Unavailable { kind, .. } => kind,
        }
    }
}

/// Why a network source (LDAP, HTTP) could not be built from its settings.
#[derive(Debug, thiserror::Error)]
pub enum SourceSetupError {
    /// A credential file could not be read.
    #[error(transparent)]
    Secret(#[from] tillsyn_core::secret::SecretError),
    /// TLS settings could not be made.
    #[error(transparent)]
    Tls(#[from] tls::TlsSetupError),
    /// A setting is out of range, unusable or unsafe.
    #[error("{0}")]
    Invalid(String),
}

/// One kind of store. Each source in the config becomes one value of a type that
/// implements this; the scan runner drives it.
pub trait Connector {
    /// Read the store and send one record per item to `sink`. Returns the counted
    /// problems; returns an error when the scan as a whole failed.
    fn scan(
        &self,
        context: ScanContext,
        sink: RecordSink,
    ) -> impl std::future::Future<Output = Result<ScanReport, ConnectorError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: usize) -> Record {
        Record::new(RecordKind::File, Arc::from("s"), n.to_string())
    }

    #[test]
    fn a_dropped_sink_delivers_what_it_batched_even_when_the_channel_is_full() {
        let (mut sink, mut receiver) = RecordSink::channel(SINK_BATCH);
        // Fill the one-batch channel, then leave a partial batch unflushed.
        for n in 0..SINK_BATCH + 10 {
            sink.send_blocking(record(n)).expect("send");
        }
        drop(sink);
        let mut ids = Vec::new();
        while let Some(batch) = receiver.blocking_recv() {
            ids.extend(batch.into_iter().map(|r| r.id));
        }
        let expected: Vec<String> = (0..SINK_BATCH + 10).map(|n| n.to_string()).collect();
        assert_eq!(ids, expected);
    }
}
