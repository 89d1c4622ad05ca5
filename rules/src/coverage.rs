//! Coverage by means, never by assumption: by which means the identity
//! index holds a kind of identifier in a source, as the config decides it.
//! `tillsyn subject` says per store and kind covered or not, and an erasure
//! reads "erased" only where the index covers the request's kind.

use tillsyn_config::rules::Check;
use tillsyn_config::{Config, SourceConfig, SourceSettings};

/// How the index covers `kind` in `source`, in words; empty when it does
/// not. By means, never by assumption: a mailbox's accounts or a share's
/// file owners cover `email` only when the scans indexed every one of them
/// as an address, and `account` when they indexed any as a plain account
/// name (`account_kinds`, as the store notes them per source).
pub fn coverage(
    config: &Config,
    source: &SourceConfig,
    kind: &str,
    account_kinds: &std::collections::BTreeSet<String>,
) -> Vec<String> {
    let mut means = Vec::new();
    if !config.identity.enabled {
        return means;
    }
    let mail = matches!(
        source.settings,
        SourceSettings::Imap(_) | SourceSettings::Maildir(_)
    );
    let headers_read = config.identity.read_mail_headers
        || config.rules.iter().any(|rule| {
            matches!(rule.check, Check::MaxRecipients(_)) && rule.when.names_source(&source.name)
        });
    if mail && kind == "email" && headers_read {
        means.push("From, To and Cc of every message".to_owned());
    }
    // A mailbox's account and a file's owner are subjects of what they
    // hold; a directory entry's or API item's custodian is only who acts on
    // it, and is not indexed.
    let custodian = match &source.settings {
        SourceSettings::Imap(_) | SourceSettings::Maildir(_) => Some("the mailbox's account"),
        SourceSettings::Fileshare(_) => Some("each file's owner"),
        _ => None,
    };
    let covers = match kind {
        "email" => account_kinds.len() == 1 && account_kinds.contains("email"),
        "account" => account_kinds.contains("account"),
        _ => false,
    };
    if let Some(custodian) = custodian
        && covers
    {
        means.push(custodian.to_owned());
    }
    for (attribute, identifier) in &source.identifiers {
        if identifier == kind {
            means.push(format!("attribute {attribute}"));
        }
    }
    for rule in &config.rules {
        if let Check::Contains(check) = &rule.check
            && rule.when.names_source(&source.name)
            && check.detectors.iter().any(|detector| detector == kind)
        {
            let place = match source.settings {
                SourceSettings::Imap(_) | SourceSettings::Maildir(_) => {
                    "mail bodies and attachments"
                }
                SourceSettings::Fileshare(_) => "file content",
                _ => "mapped fields",
            };
            means.push(format!(
                "{place} where rule {} reads (from {} confidence)",
                rule.id,
                check.min_confidence.level().as_str()
            ));
        }
    }
    means
}
