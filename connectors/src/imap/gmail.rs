//! Gmail's labels: one message shown in several folders.
//!
//! Over IMAP, Gmail shows a message in the folder of every label it carries
//! (`INBOX`, `[Gmail]/Sent Mail`, `Kunder`, …). A scan of every folder would
//! count it once per label. Where the server offers Gmail's extension
//! (`X-GM-EXT-1`), each fetch also asks for the message's `X-GM-LABELS`, and
//! the message is read only in the first scanned folder among those its
//! labels name: counted once, in a folder chosen the same way at every scan,
//! whichever folder is read first and whichever scan is incremental. No
//! memory across folders or scans is needed, as it would be to match
//! `X-GM-MSGID`s: a label added later shows the message in one more folder,
//! whose fetch sees the labels and leaves it out there.

use std::collections::HashMap;

use super::folders::Folder;

/// Which scanned folder each label shows its messages in.
#[derive(Debug, Clone, Default)]
pub(crate) struct LabelFolders {
    /// Label as Gmail writes it (system labels lower-cased) → position of its
    /// folder among those scanned.
    by_label: HashMap<String, usize>,
}

/// The label Gmail gives the messages of a special-use folder.
fn system_label(special_use: &str) -> Option<&'static str> {
    Some(match special_use {
        "\\Inbox" => "\\inbox",
        "\\Sent" => "\\sent",
        "\\Drafts" => "\\draft",
        "\\Trash" => "\\trash",
        "\\Junk" => "\\spam",
        "\\Flagged" => "\\starred",
        "\\Important" => "\\important",
        _ => return None,
    })
}

/// A label as compared: Gmail's system labels (`\Inbox`) in any case, user
/// labels exactly (they are mailbox names, in modified UTF-7).
fn comparable(label: &str) -> String {
    if label.starts_with('\\') {
        label.to_ascii_lowercase()
    } else {
        label.to_owned()
    }
}

impl LabelFolders {
    /// The labels of `folders`, in the order they are scanned.
    pub(crate) fn new(folders: &[Folder]) -> LabelFolders {
        let mut by_label = HashMap::new();
        for (position, folder) in folders.iter().enumerate() {
            let label = folder
                .special_use
                .and_then(system_label)
                .map_or_else(|| comparable(&folder.raw), str::to_owned);
            by_label.entry(label).or_insert(position);
            // A user label is also the folder's own name.
            by_label.entry(folder.raw.clone()).or_insert(position);
        }
        LabelFolders { by_label }
    }

    /// Whether a message with `labels`, fetched in the folder at `position`,
    /// is shown in an earlier scanned folder too, and is read there instead.
    pub(crate) fn read_earlier<S: AsRef<str>>(&self, labels: &[S], position: usize) -> bool {
        labels
            .iter()
            .filter_map(|label| self.by_label.get(&comparable(label.as_ref())))
            .any(|first| *first < position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(raw: &str, special_use: Option<&'static str>) -> Folder {
        Folder {
            raw: raw.to_owned(),
            display: raw.to_owned(),
            special_use,
        }
    }

    /// The labels of a FETCH response as Gmail sends it, parsed as the
    /// connector's IMAP client parses it (none when it is no FETCH).
    fn labels_of(response: &str) -> Vec<String> {
        let (_, parsed) = imap_proto::Response::parse(response.as_bytes()).expect("parse");
        let imap_proto::Response::Fetch(_, attributes) = parsed else {
            return Vec::new();
        };
        attributes
            .iter()
            .find_map(|attribute| match attribute {
                imap_proto::AttributeValue::GmailLabels(labels) => {
                    Some(labels.iter().map(|label| label.to_string()).collect())
                }
                _ => None,
            })
            .unwrap_or_default()
    }

    #[test]
    fn a_message_under_several_labels_is_read_in_the_first_scanned_folder_only() {
        // As Gmail lists them (`[Gmail]/All Mail` is not scanned for "*").
        let folders = [
            folder("INBOX", Some("\\Inbox")),
            folder("Kunder", None),
            folder("Kunder/2024", None),
            folder("&AMQ-rende", None), // "Ärende", modified UTF-7
            folder("[Gmail]/Sent Mail", Some("\\Sent")),
            folder("[Gmail]/Starred", Some("\\Flagged")),
        ];
        let labels = LabelFolders::new(&folders);
        // Responses recorded in the shape Gmail's documentation gives.
        let inbox_and_customer = labels_of(
            "* 1 FETCH (X-GM-LABELS (\\Inbox Kunder) UID 302 INTERNALDATE \"01-Mar-2024 10:00:00 +0000\")\r\n",
        );
        let sent_and_nested =
            labels_of("* 2 FETCH (UID 77 X-GM-LABELS (\\Sent \"Kunder/2024\" \\Important))\r\n");
        let sent_only = labels_of("* 3 FETCH (X-GM-LABELS (\\Sent) UID 78)\r\n");
        let starred_and_matter =
            labels_of("* 4 FETCH (X-GM-LABELS (\\Starred &AMQ-rende) UID 9)\r\n");
        let archived = labels_of("* 5 FETCH (X-GM-LABELS () UID 10)\r\n");
        assert_eq!(inbox_and_customer, ["\\Inbox", "Kunder"]);
        assert_eq!(sent_and_nested, ["\\Sent", "Kunder/2024", "\\Important"]);
        assert!(archived.is_empty());

        // In INBOX: read there; in Kunder: left out, INBOX shows it.
        assert!(!labels.read_earlier(&inbox_and_customer, 0));
        assert!(labels.read_earlier(&inbox_and_customer, 1));
        // Sent and Kunder/2024: read in Kunder/2024 (scanned before Sent).
        assert!(!labels.read_earlier(&sent_and_nested, 2));
        assert!(labels.read_earlier(&sent_and_nested, 4));
        assert!(!labels.read_earlier(&sent_only, 4));
        // Starred and Ärende: read in Ärende.
        assert!(!labels.read_earlier(&starred_and_matter, 3));
        assert!(labels.read_earlier(&starred_and_matter, 5));
        // No label Gmail reports (only in All Mail): read wherever fetched.
        assert!(!labels.read_earlier(&archived, 5));
        // System labels in another case are the same label.
        assert!(labels.read_earlier(&["\\INBOX"], 1));
    }
}
