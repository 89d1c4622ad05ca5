//! `[digest]`: personal monthly digests to custodians, and the rules for
//! whom they may go to (the organisation's own domains, never a system
//! account). The digests themselves are made in the application layer.

use std::path::PathBuf;

use serde::Deserialize;
use tillsyn_core::language::Language;

/// `[digest]`: personal monthly digests to custodians (off unless present).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestConfig {
    /// When `tillsyn run` makes and sends the digests of the month just
    /// ended: six-field cron in `daemon.timezone`. Default: the report's
    /// schedule.
    #[serde(default)]
    pub schedule: Option<tillsyn_core::schedule::Schedule>,
    /// Language of a digest whose custodian the addresses file gives none.
    /// Default: the report's.
    #[serde(default)]
    pub language: Option<Language>,
    /// `From:`. Default: the report's sender.
    #[serde(default)]
    pub sender: Option<String>,
    /// A custodian's address made from their name, `{custodian}` standing for it
    /// (`"{custodian}@firma.se"`); used only for a custodian that is one plain word.
    /// Default: none.
    #[serde(default)]
    pub address_template: Option<String>,
    /// A CSV file of `custodian,address[,language]` lines (file custodians, accounts
    /// named otherwise than their address). Default: none.
    #[serde(default)]
    pub addresses_file: Option<PathBuf>,
    /// Oldest items listed per custodian. Default: 10.
    #[serde(default = "default_items")]
    pub items: usize,
    /// Mails sent per minute at most. Default: 60.
    #[serde(default = "default_rate")]
    pub rate_per_minute: u32,
    /// Custodians' addresses and languages looked up in a directory, for custodians
    /// the addresses file does not list. Default: none.
    #[serde(default)]
    pub directory: Option<DirectoryLookup>,
    /// The organisation's own mail domains (`["firma.se"]`; a subdomain of
    /// one counts). A digest goes only to an address in one of them: any
    /// other is never mailed, and is counted as "outside the organisation's
    /// domains". Required.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Custodians that are system accounts of the organisation's own
    /// (`"backup"`, `"svc-scanner"`): they never get a digest, and their
    /// findings count as having no custodian. `root`, `nobody`, uid 0 and
    /// the user tillsyn runs as always are. Default: none.
    #[serde(default)]
    pub ignore_custodians: Vec<String>,
}

impl DigestConfig {
    /// Whether `address` is in one of the organisation's own domains (or a
    /// subdomain of one), compared without case.
    pub fn is_internal(&self, address: &str) -> bool {
        let Some((_, domain)) = address.rsplit_once('@') else {
            return false;
        };
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        self.domains.iter().any(|own| {
            let own = own
                .trim()
                .trim_start_matches('@')
                .trim_end_matches('.')
                .to_ascii_lowercase();
            !own.is_empty()
                && (domain == own
                    || domain
                        .strip_suffix(own.as_str())
                        .is_some_and(|rest| rest.ends_with('.')))
        })
    }

    /// Whether `custodian` is a system account that never gets a digest:
    /// `root`, `nobody`, uid 0 (`uid:0`), the user this process runs as,
    /// or one of `ignore_custodians`; for an address, its local part.
    pub fn is_system_account(&self, custodian: &str) -> bool {
        let name = custodian.trim().to_lowercase();
        let local = name
            .split_once('@')
            .map_or(name.as_str(), |(local, _)| local);
        let service = tillsyn_connectors::fileshare::service_user().map(|user| user.to_lowercase());
        ["root", "nobody", "uid:0", "uid:65534"].contains(&local)
            || service.as_deref().is_some_and(|service| local == service)
            || self.ignore_custodians.iter().any(|ignored| {
                let ignored = ignored.trim().to_lowercase();
                ignored == name || ignored == local
            })
    }
}

/// `[digest.directory]`: where a directory keeps custodians' addresses.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DirectoryLookup {
    /// An `ldap` source of the config, whose connection, base and filter are
    /// used. Required.
    pub source: String,
    /// The attribute whose value is the custodian's name as findings have it
    /// (`uid`, `sAMAccountName`). Default: `uid`.
    #[serde(default = "default_match")]
    pub custodian_attribute: String,
    /// The attribute holding the address. Default: `mail`.
    #[serde(default = "default_mail")]
    pub mail_attribute: String,
    /// The attribute holding the language (`sv`, `en`, `sv-SE`, …). Default:
    /// `preferredLanguage`.
    #[serde(default = "default_language_attribute")]
    pub language_attribute: String,
}

fn default_match() -> String {
    "uid".into()
}

fn default_mail() -> String {
    "mail".into()
}

fn default_language_attribute() -> String {
    "preferredLanguage".into()
}

fn default_items() -> usize {
    10
}

fn default_rate() -> u32 {
    60
}
