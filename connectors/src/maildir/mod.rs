//! Maildir++ trees as Dovecot keeps them, read on the mail host itself.
//!
//! Layout read: `ROOT/<account>/<mailbox_dir>/` is one account's Maildir (INBOX in
//! its `cur/` and `new/`, other folders in `.Name/` and `.Parent.Child/`, names in
//! modified UTF-7). With `account` set, `ROOT` itself is that one account's Maildir.
//!
//! A message's received time is its file's mtime, which is what Dovecot reports as
//! IMAP INTERNALDATE; the sender-controlled `Date:` header is never used for age.
//! Headers are read (up to `max_header_bytes`, read-only, atime untouched) only when
//! a rule needs participants; a stale-inbox rule needs one `stat` per message.
//! Malformed, empty or oversized headers are counted and the message is still a
//! record, so it is still checked by its dates.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use mail_parser::MessageParser;
use serde::Deserialize;

use crate::local_fs::{name_to_text, open_read_only, to_utc};
use crate::{
    Connector, ConnectorError, Participants, ProblemKind, Record, RecordKind, RecordSink,
    ScanContext, ScanReport,
};

/// `type = "maildir"`: local Maildir++ mailboxes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaildirConfig {
    /// Folder holding one folder per account, e.g. `/var/vmail/example.se`; or,
    /// with `account` set, one account's Maildir.
    pub root: PathBuf,
    /// Path of the Maildir inside each account's folder. Default: `Maildir`. Use
    /// `""` when the account folder is the Maildir.
    #[serde(default = "default_mailbox_dir")]
    pub mailbox_dir: String,
    /// Read `root` as the Maildir of this single account. Default: unset (one
    /// account per folder under `root`).
    #[serde(default)]
    pub account: Option<String>,
    /// Folder names (decoded, case-insensitive) that hold sent mail, besides the
    /// usual `Sent`, `Sent Items`, `Sent Messages`, `Skickat`, `Skickade objekt`.
    #[serde(default)]
    pub sent_folders: Vec<String>,
    /// Most header bytes read per message. Default: 262144 (256 KiB).
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// Accounts read in parallel. Default: 4.
    #[serde(default = "default_parallel_accounts")]
    pub parallel_accounts: usize,
    /// Marks by which a mailbox custodian keeps a message on purpose, as for IMAP
    /// (`flagged`: the Maildir `F` flag; `folders`: by name as records show
    /// it). Every scan reads every file name, so a mark set or taken away
    /// counts at the next scan. Default: off.
    #[serde(default)]
    pub custodian_marks: crate::imap::CustodianMarks,
}

fn default_mailbox_dir() -> String {
    "Maildir".into()
}
fn default_max_header_bytes() -> usize {
    256 * 1024
}
fn default_parallel_accounts() -> usize {
    4
}

const SENT_NAMES: [&str; 5] = [
    "sent",
    "sent items",
    "sent messages",
    "skickat",
    "skickade objekt",
];

/// A built Maildir source.
#[derive(Debug, Clone)]
pub struct MaildirSource {
    config: MaildirConfig,
}

impl MaildirSource {
    /// Build the source from its config.
    pub fn build(config: MaildirConfig) -> MaildirSource {
        MaildirSource { config }
    }
}

impl MaildirSource {
    /// Whether the root can be listed, read-only: what `check-config
    /// --connect` runs.
    pub fn probe(&self) -> Result<String, ConnectorError> {
        crate::local_fs::probe_root(&self.config.root)
    }
}

impl Connector for MaildirSource {
    async fn scan(
        &self,
        context: ScanContext,
        sink: RecordSink,
    ) -> Result<ScanReport, ConnectorError> {
        let config = self.config.clone();
        tokio::task::spawn_blocking(move || scan_blocking(&config, &context, &sink))
            .await
            .map_err(|error| ConnectorError::Worker(error.to_string()))?
    }
}

fn scan_blocking(
    config: &MaildirConfig,
    context: &ScanContext,
    sink: &RecordSink,
) -> Result<ScanReport, ConnectorError> {
    let root = &config.root;
    let unreadable = |source: std::io::Error| ConnectorError::RootUnreadable {
        path: root.display().to_string(),
        source,
    };
    let accounts: Vec<(String, PathBuf)> = match &config.account {
        Some(account) => {
            std::fs::read_dir(root).map_err(unreadable)?;
            vec![(account.clone(), root.clone())]
        }
        None => {
            let mut accounts = Vec::new();
            for entry in std::fs::read_dir(root).map_err(unreadable)? {
                let entry = entry.map_err(unreadable)?;
                let (name, _) = name_to_text(&entry.file_name());
                if name.starts_with('.') || !entry.path().is_dir() {
                    continue;
                }
                let maildir = if config.mailbox_dir.is_empty() {
                    entry.path()
                } else {
                    entry.path().join(&config.mailbox_dir)
                };
                accounts.push((name, maildir));
            }
            accounts.sort();
            accounts
        }
    };

    let queue = Mutex::new(accounts.into_iter());
    let total = Mutex::new(ScanReport::default());
    let failure = Mutex::new(None);
    let workers = config.parallel_accounts.max(1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                let mut reader = AccountReader {
                    config,
                    context,
                    sink: sink.clone(),
                    report: ScanReport::default(),
                    parser: MessageParser::new(),
                };
                loop {
                    let next = queue.lock().ok().and_then(|mut queue| queue.next());
                    let Some((account, maildir)) = next else {
                        break;
                    };
                    if let Err(error) = reader.account(&account, &maildir) {
                        if let Ok(mut failure) = failure.lock() {
                            failure.get_or_insert(error);
                        }
                        break;
                    }
                }
                if let Err(error) = reader.sink.flush_blocking()
                    && let Ok(mut failure) = failure.lock()
                {
                    failure.get_or_insert(error);
                }
                if let Ok(mut total) = total.lock() {
                    total.merge(std::mem::take(&mut reader.report));
                }
            });
        }
    });
    if let Some(error) = failure.into_inner().ok().flatten() {
        return Err(error);
    }
    total
        .into_inner()
        .map_err(|_| ConnectorError::Worker("a maildir worker panicked".into()))
}

struct AccountReader<'a> {
    config: &'a MaildirConfig,
    context: &'a ScanContext,
    sink: RecordSink,
    report: ScanReport,
    parser: MessageParser,
}

impl AccountReader<'_> {
    fn account(&mut self, account: &str, maildir: &Path) -> Result<(), ConnectorError> {
        let entries = match std::fs::read_dir(maildir) {
            Ok(entries) => entries,
            // An account that never received mail has no Maildir yet.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(error) => {
                self.unreadable(&error, account.to_owned());
                return Ok(());
            }
        };
        self.folder(account, "INBOX", maildir)?;
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(error) => {
                    self.unreadable(&error, account.to_owned());
                    continue;
                }
            };
            let (raw, escaped) = name_to_text(&entry.file_name());
            let Some(stored) = raw.strip_prefix('.') else {
                continue;
            };
            if stored.is_empty() || stored == "." || !entry.path().join("cur").is_dir() {
                continue;
            }
            if escaped {
                self.report.count(ProblemKind::NonUtf8Name);
            }
            let folder: Vec<String> = stored.split('.').map(crate::mutf7::decode).collect();
            self.folder(account, &folder.join("/"), &entry.path())?;
        }
        Ok(())
    }

    fn unreadable(&mut self, error: &std::io::Error, prefix: String) {
        self.report.count(match error.kind() {
            std::io::ErrorKind::PermissionDenied => ProblemKind::PermissionDenied,
            _ => ProblemKind::Io,
        });
        self.report.unread_prefixes.push(prefix);
    }

    fn special_use(&self, folder: &str) -> Option<&'static str> {
        if folder.eq_ignore_ascii_case("INBOX") {
            return Some("\\Inbox");
        }
        let lower = folder.to_lowercase();
        let sent = SENT_NAMES.contains(&lower.as_str())
            || self
                .config
                .sent_folders
                .iter()
                .any(|name| name.to_lowercase() == lower);
        sent.then_some("\\Sent")
    }

    fn folder(&mut self, account: &str, folder: &str, dir: &Path) -> Result<(), ConnectorError> {
        let prefix = format!("{account}/{folder}");
        for sub in ["new", "cur"] {
            let entries = match std::fs::read_dir(dir.join(sub)) {
                Ok(entries) => entries,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => {
                    self.unreadable(&error, prefix.clone());
                    continue;
                }
            };
            for entry in entries {
                if self.context.cancel.is_cancelled() {
                    return Err(ConnectorError::Cancelled);
                }
                match entry {
                    Ok(entry) => self.message(account, folder, &prefix, &entry)?,
                    Err(error) => self.unreadable(&error, prefix.clone()),
                }
            }
        }
        Ok(())
    }

    fn message(
        &mut self,
        account: &str,
        folder: &str,
        prefix: &str,
        entry: &std::fs::DirEntry,
    ) -> Result<(), ConnectorError> {
        let (file_name, escaped) = name_to_text(&entry.file_name());
        if file_name.starts_with('.') {
            return Ok(());
        }
        if escaped {
            self.report.count(ProblemKind::NonUtf8Name);
        }
        let path = entry.path();
        let metadata = match std::fs::metadata(&path) {
            Ok(metadata) if metadata.is_file() => metadata,
            Ok(_) => return Ok(()),
            Err(error) => {
                // Usually a client moved it (new/ → cur/, flags changed) while we
                // listed: it may be missed, so nothing in this folder resolves.
                let kind = if error.kind() == std::io::ErrorKind::NotFound {
                    ProblemKind::Vanished
                } else {
                    ProblemKind::Io
                };
                self.report.count(kind);
                self.report.unread_prefixes.push(prefix.to_owned());
                return Ok(());
            }
        };
        let (unique, flags) = unique_name(&file_name);
        let id = format!("{prefix}/{unique}");
        let mut record = Record::new(RecordKind::Message, self.context.source.clone(), id);
        record.container = folder.to_owned();
        record.custodian = Some(account.to_owned());
        record.timestamps.received = metadata.modified().ok().and_then(to_utc);
        record
            .attributes
            .insert("size_bytes".into(), metadata.len().to_string());
        record.attributes.insert("flags".into(), flags.to_owned());
        // The custodian's own "kept on purpose", where the organisation allows it.
        let marks = &self.config.custodian_marks;
        let mark = if marks.folders.iter().any(|kept| kept == folder) {
            Some("folder")
        } else if marks.flagged && flags.contains('F') {
            Some("flagged")
        } else {
            None
        };
        if let Some(mark) = mark {
            record
                .attributes
                .insert(crate::CUSTODIAN_MARK.into(), mark.to_owned());
        }
        if let Some(special_use) = self.special_use(folder) {
            record
                .attributes
                .insert("special_use".into(), special_use.to_owned());
        }
        if self.context.needs.participants {
            record.participants = Some(self.participants(&path, metadata.len()));
        }
        if let Some(plan) = &self.context.content
            && (plan.wants)(&record)
        {
            record.content = self.content(plan, &path, metadata.len(), &record.path);
        }
        self.sink.send_blocking(record)?;
        self.report.records += 1;
        Ok(())
    }

    /// The message read whole (within the limit) and its bodies and text
    /// attachments run through the detectors. Too large, unreadable or not
    /// MIME: counted, and the record's findings stay open (`None`).
    fn content(
        &mut self,
        plan: &crate::content::ContentPlan,
        path: &Path,
        size: u64,
        record_path: &str,
    ) -> Option<crate::content::Content> {
        let unread = |report: &mut ScanReport, kind: ProblemKind| {
            report.count(kind);
            report.unread_prefixes.push(record_path.to_owned());
        };
        if size > plan.limits.message_bytes {
            unread(&mut self.report, ProblemKind::OversizedContent);
            return None;
        }
        let limit = usize::try_from(plan.limits.message_bytes).unwrap_or(usize::MAX);
        let raw = match crate::local_fs::read_prefix(path, limit) {
            Ok(raw) => raw,
            Err(error) => {
                let kind = if error.kind() == std::io::ErrorKind::NotFound {
                    ProblemKind::Vanished
                } else {
                    ProblemKind::Io
                };
                unread(&mut self.report, kind);
                return None;
            }
        };
        self.report.add_work("messages_content_read", 1);
        match plan.mail(&self.parser, &raw) {
            Some(content) => {
                for _ in 0..content.unreadable {
                    unread(&mut self.report, ProblemKind::UnreadableContent);
                }
                for _ in 0..content.oversized {
                    unread(&mut self.report, ProblemKind::OversizedContent);
                }
                Some(content)
            }
            None => {
                unread(&mut self.report, ProblemKind::MalformedMail);
                None
            }
        }
    }

    fn participants(&mut self, path: &Path, size: u64) -> Participants {
        if size == 0 {
            self.report.count(ProblemKind::EmptyMail);
            return Participants::default();
        }
        let header = match read_header(path, self.config.max_header_bytes) {
            Ok((header, complete)) => {
                if !complete && header.len() >= self.config.max_header_bytes {
                    self.report.count(ProblemKind::OversizedHeader);
                }
                header
            }
            Err(error) => {
                self.report
                    .count(if error.kind() == std::io::ErrorKind::NotFound {
                        ProblemKind::Vanished
                    } else {
                        ProblemKind::Io
                    });
                return Participants::default();
            }
        };
        match crate::mail_headers::participants(&self.parser, &header) {
            Ok(participants) => participants,
            Err(crate::mail_headers::HeaderProblem::Malformed) => {
                self.report.count(ProblemKind::MalformedMail);
                Participants::default()
            }
        }
    }
}

/// A Maildir file name's unique part and its flags. The unique part stays when a
/// client changes flags (`unique:2,FLAGS`); Dovecot's size fields (`,S=123`,
/// `,W=130`) are dropped too, they only repeat what the file says.
fn unique_name(file_name: &str) -> (&str, &str) {
    let (base, flags) = match file_name.split_once(':') {
        Some((base, info)) => (base, info.strip_prefix("2,").unwrap_or("")),
        None => (file_name, ""),
    };
    let unique = [",S=", ",W="]
        .iter()
        .filter_map(|field| base.find(field))
        .min()
        .map_or(base, |end| &base[..end]);
    (unique, flags)
}

/// Read a message's header block: up to the first empty line, at most `limit`
/// bytes. Returns the bytes and whether the end of the header was found.
fn read_header(path: &Path, limit: usize) -> std::io::Result<(Vec<u8>, bool)> {
    use std::io::Read;
    let mut file = open_read_only(path)?;
    let mut header = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    let mut searched: usize = 0;
    while header.len() < limit {
        let wanted = chunk.len().min(limit - header.len());
        let read = file.read(&mut chunk[..wanted])?;
        if read == 0 {
            return Ok((header, true));
        }
        header.extend_from_slice(&chunk[..read]);
        if let Some(end) = header_end(&header[searched.saturating_sub(3)..]) {
            let end = searched.saturating_sub(3) + end;
            header.truncate(end);
            return Ok((header, true));
        }
        searched = header.len();
    }
    Ok((header, false))
}

/// Offset just past the blank line that ends a header block.
fn header_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).enumerate().find_map(|(index, pair)| {
        if pair == b"\n\n" {
            Some(index + 2)
        } else if pair == b"\n\r" && bytes.get(index + 2) == Some(&b'\n') {
            Some(index + 3)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_ignore_flags_and_sizes() {
        let cases = [
            ("1700.M1P2.host,S=120,W=124:2,RS", ("1700.M1P2.host", "RS")),
            ("1700.M1P2.host,W=124,S=120:2,", ("1700.M1P2.host", "")),
            ("1700.M1P2.host", ("1700.M1P2.host", "")),
            ("1700.M1P2.host:1,experimental", ("1700.M1P2.host", "")),
        ];
        for (name, expected) in cases {
            assert_eq!(unique_name(name), expected, "{name}");
        }
    }

    #[test]
    fn finds_the_end_of_headers() {
        assert_eq!(header_end(b"A: b\n\nbody"), Some(6));
        assert_eq!(header_end(b"A: b\r\n\r\nbody"), Some(8));
        assert_eq!(header_end(b"A: b\r\nC: d\r\n"), None);
    }

    #[test]
    fn reads_headers_across_chunks_and_stops_at_the_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m");
        let long = format!("X-Long: {}\r\nCc: a@b.se\r\n\r\nbody", "y".repeat(20_000));
        std::fs::write(&path, &long).expect("write");
        let (header, complete) = read_header(&path, 1 << 20).expect("read");
        assert!(complete);
        assert!(header.ends_with(b"a@b.se\r\n\r\n"));
        let (header, complete) = read_header(&path, 10_000).expect("read");
        assert!(!complete);
        assert_eq!(header.len(), 10_000);
    }
}

#[cfg(test)]
mod cancel_tests {
    use super::*;

    /// As for the file share: the deadline's flag stops the Maildir walk.
    #[tokio::test]
    async fn the_walk_stops_when_its_flag_is_set() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cur = dir.path().join("anna/Maildir/cur");
        std::fs::create_dir_all(&cur).expect("dir");
        std::fs::create_dir_all(dir.path().join("anna/Maildir/new")).expect("dir");
        for n in 0..20 {
            std::fs::write(cur.join(format!("{n}.M1P1.host:2,S")), b"Subject: x\n\nb")
                .expect("mail");
        }
        let config: MaildirConfig =
            toml::from_str(&format!("root = {:?}", dir.path().display().to_string()))
                .expect("config");
        let source = MaildirSource::build(config);
        let context = ScanContext {
            source: std::sync::Arc::from("mail"),
            needs: crate::Needs::default(),
            cancel: crate::CancelFlag::default(),
            checkpoints: Default::default(),
            content: None,
            timezone: chrono_tz::UTC,
            records: None,
        };
        context.cancel.cancel();
        let (sink, mut receiver) = RecordSink::channel(1024);
        let drain = tokio::spawn(async move { while receiver.recv().await.is_some() {} });
        let cancelled = source.scan(context, sink).await;
        assert!(
            matches!(cancelled, Err(ConnectorError::Cancelled)),
            "{cancelled:?}"
        );
        drain.await.expect("drain");
    }
}
