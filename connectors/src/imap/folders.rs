//! Which folders of an account are read: the account's LIST, with
//! SPECIAL-USE or the names clients give sent mail, filtered by the
//! source's folder settings.

use super::config::ImapConfig;
use super::transport::{ImapError, ImapSession, from_imap, timed};
use crate::ScanReport;
use async_imap::types::NameAttribute;
use futures::StreamExt;

/// Names (the last level, lower-cased) that hold sent mail on servers
/// without SPECIAL-USE, as clients in several languages name it.
pub(super) const SENT_NAMES: [&str; 16] = [
    "sent",
    "sent items",
    "sent messages",
    "sent mail",
    "skickat",
    "skickade objekt",
    "skickade",
    "sendt",
    "sendte elementer",
    "sendte",
    "gesendet",
    "gesendete elemente",
    "gesendete objekte",
    "éléments envoyés",
    "lähetetyt",
    "verzonden items",
];

/// A folder's name as records show it: decoded from modified UTF-7, with the
/// server's hierarchy separator (`.` on Courier and Cyrus layouts) written as
/// `/`, so record paths read the same whatever the server.
pub(crate) fn display_name(raw: &str, delimiter: Option<&str>) -> String {
    let decoded = crate::mutf7::decode(raw);
    match delimiter {
        Some(delimiter) if !delimiter.is_empty() && delimiter != "/" => {
            decoded.replace(delimiter, "/")
        }
        _ => decoded,
    }
}

/// A folder chosen for reading.
#[derive(Debug, Clone)]
pub(crate) struct Folder {
    /// The name as the server spells it (modified UTF-7), for commands.
    pub(crate) raw: String,
    /// The name for people and record ids.
    pub(crate) display: String,
    /// `\Inbox`, `\Sent`, … when known.
    pub(crate) special_use: Option<&'static str>,
}

pub(super) async fn choose_folders(
    config: &ImapConfig,
    session: &mut ImapSession,
    report: &mut ScanReport,
    account: &str,
) -> Result<Vec<Folder>, ImapError> {
    let seconds = config.timeout_seconds;
    let mut listed: Vec<(String, Option<String>, Vec<NameAttribute<'static>>)> = Vec::new();
    {
        let mut names = timed(seconds, async {
            session.list(Some(""), Some("*")).await.map_err(from_imap)
        })
        .await?;
        while let Some(name) = timed(seconds, async { Ok(names.next().await) }).await? {
            let name = name.map_err(from_imap)?;
            let attributes = name
                .attributes()
                .iter()
                .map(|attribute| match attribute {
                    NameAttribute::Sent => NameAttribute::Sent,
                    NameAttribute::Archive => NameAttribute::Archive,
                    NameAttribute::Drafts => NameAttribute::Drafts,
                    NameAttribute::Junk => NameAttribute::Junk,
                    NameAttribute::Trash => NameAttribute::Trash,
                    NameAttribute::All => NameAttribute::All,
                    NameAttribute::Flagged => NameAttribute::Flagged,
                    NameAttribute::NoSelect => NameAttribute::NoSelect,
                    _ => NameAttribute::Marked,
                })
                .collect();
            listed.push((
                name.name().to_owned(),
                name.delimiter().map(str::to_owned),
                attributes,
            ));
        }
    }
    let special = |attributes: &[NameAttribute<'_>]| -> Option<&'static str> {
        attributes.iter().find_map(|attribute| match attribute {
            NameAttribute::Sent => Some("\\Sent"),
            NameAttribute::Archive => Some("\\Archive"),
            NameAttribute::Drafts => Some("\\Drafts"),
            NameAttribute::Junk => Some("\\Junk"),
            NameAttribute::Trash => Some("\\Trash"),
            NameAttribute::All => Some("\\All"),
            NameAttribute::Flagged => Some("\\Flagged"),
            _ => None,
        })
    };
    let has_sent = listed
        .iter()
        .any(|(_, _, attributes)| special(attributes) == Some("\\Sent"));
    let folders: Vec<Folder> = listed
        .iter()
        .filter(|(_, _, attributes)| !attributes.contains(&NameAttribute::NoSelect))
        .map(|(raw, delimiter, attributes)| {
            let display = display_name(raw, delimiter.as_deref());
            let last = display
                .rsplit('/')
                .next()
                .unwrap_or(&display)
                .to_lowercase();
            let special_use = if raw.eq_ignore_ascii_case("INBOX") {
                Some("\\Inbox")
            } else if !has_sent && SENT_NAMES.contains(&last.as_str()) {
                Some("\\Sent")
            } else {
                special(attributes)
            };
            Folder {
                raw: raw.clone(),
                display,
                special_use,
            }
        })
        .collect();
    let mut chosen: Vec<Folder> = Vec::new();
    for wanted in &config.folders {
        let matches: Vec<&Folder> = folders
            .iter()
            .filter(|folder| {
                if wanted == "*" {
                    // Gmail's All Mail holds every message again, under every
                    // label: read only when named.
                    folder.special_use != Some("\\All")
                } else if wanted.starts_with('\\') {
                    folder
                        .special_use
                        .is_some_and(|special| special.eq_ignore_ascii_case(wanted))
                } else if wanted.eq_ignore_ascii_case("INBOX") {
                    folder.raw.eq_ignore_ascii_case("INBOX")
                } else {
                    // As records show it, or as the server names it.
                    folder.display == *wanted || crate::mutf7::decode(&folder.raw) == *wanted
                }
            })
            .collect();
        if matches.is_empty() && wanted != "*" {
            report.notes.push(format!(
                "account {}: no folder {wanted}",
                crate::mark_personal(account)
            ));
        }
        for folder in matches {
            if !chosen.iter().any(|seen| seen.raw == folder.raw) {
                chosen.push(folder.clone());
            }
        }
    }
    Ok(chosen)
}
