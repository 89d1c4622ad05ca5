//! Reading the tree: one account per worker, each folder's `cur/` and
//! `new/`, each message a record dated by its file's mtime, with its
//! participants when a rule needs them.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use mail_parser::MessageParser;

use super::MaildirConfig;
use super::transport::{read_header, unique_name};
use crate::local_fs::{name_to_text, to_utc};
use crate::{
    ConnectorError, Participants, ProblemKind, Record, RecordKind, RecordSink, ScanContext,
    ScanReport,
};

/// Folder names (lower-cased) that hold sent mail by default.
const SENT_NAMES: [&str; 5] = [
    "sent",
    "sent items",
    "sent messages",
    "skickat",
    "skickade objekt",
];

pub(super) fn scan_blocking(
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
