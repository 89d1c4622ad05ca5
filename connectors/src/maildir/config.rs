//! `type = "maildir"`: a Maildir tree's settings as the config writes them:
//! the root, where each account's Maildir is, sent folders, header limits
//! and custodian marks.

use std::path::PathBuf;

use serde::Deserialize;

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
