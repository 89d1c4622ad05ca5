//! The server searched for a person (`tillsyn subject`), read-only: EXAMINE
//! and UID SEARCH in the folders a scan reads.

use super::ImapSource;
use super::config::{Account, ImapConfig};
use super::folders::choose_folders;
use super::transport::to_uids;
use super::transport::{self, ImapError, from_imap, timed};
use crate::ConnectorError;
use crate::ScanReport;
use std::collections::HashSet;
use std::sync::Arc;

/// Search one account's chosen folders on the server (read-only: EXAMINE and
/// UID SEARCH), each of `criteria` (IMAP search keys) in turn; the record ids
/// (`account/folder/uid`) of every message any of them matches.
pub(crate) async fn search_account(
    config: &ImapConfig,
    tls: &Arc<rustls::ClientConfig>,
    account: &Account,
    criteria: &[String],
) -> Result<Vec<String>, ImapError> {
    let seconds = config.timeout_seconds;
    let mut notes = ScanReport::default();
    // A search's traffic is not a scan's: counted, and not reported.
    let received = transport::Received::default();
    let folders = {
        let mut lister = transport::login(config, tls, account, &received).await?;
        let folders = choose_folders(config, &mut lister, &mut notes, &account.name).await?;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), lister.logout()).await;
        folders
    };
    let mut session = transport::login(config, tls, account, &received).await?;
    let mut ids = Vec::new();
    for folder in &folders {
        timed(seconds, async {
            session.examine(&folder.raw).await.map_err(from_imap)
        })
        .await?;
        let mut uids = HashSet::new();
        for criterion in criteria {
            let found = timed(seconds, async {
                session.uid_search(criterion).await.map_err(from_imap)
            })
            .await?;
            uids.extend(found);
        }
        ids.extend(
            to_uids(uids)
                .into_iter()
                .map(|uid| format!("{}/{}/{uid}", account.name, folder.display)),
        );
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), session.logout()).await;
    Ok(ids)
}

impl ImapSource {
    /// Ask the server, account by account, for the messages that name a person
    /// (read-only: EXAMINE and UID SEARCH in the folders the source reads):
    /// `addresses` in From, To or Cc, and `texts` anywhere in a message (IMAP
    /// `TEXT`, the server's own substring search). Returns record ids. Used by
    /// `tillsyn subject` where the identity index does not cover a kind.
    pub(super) async fn search_messages(
        &self,
        addresses: &[String],
        texts: &[String],
    ) -> Result<Vec<String>, ConnectorError> {
        let mut criteria = Vec::new();
        for address in addresses {
            let quoted = search_string(address);
            criteria.push(format!("OR OR FROM {quoted} TO {quoted} CC {quoted}"));
        }
        for text in texts {
            criteria.push(format!("TEXT {}", search_string(text)));
        }
        if criteria.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids = Vec::new();
        for account in self.accounts.iter() {
            let found = search_account(&self.config, &self.tls, account, &criteria)
                .await
                .map_err(|error| ConnectorError::Unavailable {
                    kind: error.kind(),
                    message: format!("account {}: {error}", crate::mark_personal(&account.name)),
                })?;
            ids.extend(found);
        }
        Ok(ids)
    }
}

/// An IMAP quoted string: `"` and `\` escaped, line breaks and other control
/// characters dropped (they cannot be in a quoted string).
fn search_string(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

impl crate::capability::ServerSearch for ImapSource {
    async fn search(
        &self,
        terms: &crate::capability::SearchTerms,
    ) -> Result<Vec<String>, ConnectorError> {
        self.search_messages(&terms.addresses, &terms.texts).await
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn search_strings_are_quoted_and_cannot_break_the_command() {
        assert_eq!(super::search_string("anna@kund.se"), "\"anna@kund.se\"");
        assert_eq!(super::search_string("a\"b\\c\r\nX"), "\"a\\\"b\\\\cX\"");
    }
}
