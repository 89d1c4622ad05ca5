//! Personal digests: each custodian with open findings gets one mail a month
//! listing their own findings, and what to do about them (`[digest]`,
//! opt-in).
//!
//! Only the recipient's own findings go into their mail: counts per promise,
//! the promise quoted, and the oldest items with enough to find them (the
//! folder, received date and UID of a message; a file's path). Findings kept
//! under an exception are left out, as they are not counted as broken.
//!
//! **From custodian to address**, in this order: the `addresses_file` (CSV lines
//! `custodian,address[,language]`), the custodian itself when it is a mail address
//! (IMAP accounts usually are), then `address_template` (`{custodian}@firma.se`)
//! for a custodian that is one plain word. A custodian with none of these is
//! counted, never guessed.
//!
//! **Delivery** has the report's outbox semantics, per custodian: each month's
//! message is stored before the first attempt, retried with a doubling wait,
//! and marked sent once the server took it, so no custodian gets a month twice,
//! across restarts too. Sending is paced (`rate_per_minute`). A sent digest's
//! body is dropped from the store: it was the custodian's to read, not ours to
//! keep. The management report shows coverage (sent, waiting, no address),
//! never content.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::Month;
use crate::privacy::PersonDisplay;
use tillsyn_config::report::MailConfig;
use tillsyn_config::{Config, DigestConfig, DirectoryLookup};
use tillsyn_core::language::Language;
use tillsyn_store::{
    DigestMonth, Finding, FindingFilter, NewOutboxEntry, OutboxKey, OutboxKind, Store, StoreError,
};

/// Why digests could not be made or sent.
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    /// `[digest]` is missing, or `[report]` has no mail settings to send with.
    #[error("{0}")]
    Config(String),
    /// The addresses file could not be read.
    #[error("digest addresses file {path}: {reason}")]
    Addresses {
        /// The file.
        path: String,
        /// Which line and why (no address is quoted).
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another thread panicked holding the store.
    #[error("store lock poisoned")]
    Poisoned,
    /// The directory could not be asked (addresses would be guessed without
    /// it, so nothing is made; the daemon tries again).
    #[error("digest addresses from the directory: {0}")]
    Directory(String),
    /// The pseudonym key.
    #[error(transparent)]
    Key(#[from] crate::privacy::KeyError),
    /// A message could not be built.
    #[error("building a digest: {0}")]
    Build(String),
}

/// Custodian → address, and language when given.
pub type Addresses = HashMap<String, (String, Option<Language>)>;

/// Where custodians' digests go.
#[derive(Debug, Default)]
pub struct Recipients {
    by_custodian: Addresses,
    template: Option<String>,
}

impl Recipients {
    /// From `[digest]`: its addresses file and template.
    pub fn load(digest: &DigestConfig) -> Result<Recipients, DigestError> {
        let by_custodian = match &digest.addresses_file {
            Some(path) => {
                let failed = |reason: String| DigestError::Addresses {
                    path: path.display().to_string(),
                    reason,
                };
                let text =
                    std::fs::read_to_string(path).map_err(|error| failed(error.to_string()))?;
                parse_addresses(&text)
                    .map_err(|(line, why)| failed(format!("line {line}: {why}")))?
            }
            None => HashMap::new(),
        };
        Ok(Recipients {
            by_custodian,
            template: digest.address_template.clone(),
        })
    }

    /// Ask the directory for the addresses and languages of `custodians`.
    pub async fn look_up(
        &mut self,
        config: &Config,
        directory: &DirectoryLookup,
        custodians: &[String],
    ) -> Result<(), DigestError> {
        if custodians.is_empty() {
            return Ok(());
        }
        let settings = config
            .sources
            .iter()
            .find(|source| source.name == directory.source)
            .map(|source| &source.settings);
        let no_directory = || {
            DigestError::Config(format!(
                "[digest.directory]: {:?} is no ldap source",
                directory.source
            ))
        };
        let settings = settings.ok_or_else(no_directory)?;
        let source = tillsyn_connectors::source::Source::build(settings)
            .map_err(|error| DigestError::Directory(error.to_string()))?;
        let found = source
            .lookup(
                &directory.custodian_attribute,
                custodians,
                &[&directory.mail_attribute, &directory.language_attribute],
            )
            .await
            .ok_or_else(no_directory)?
            .map_err(|error| DigestError::Directory(error.to_string()))?;
        for (custodian, attributes) in found {
            let Some(address) = attributes
                .get(&directory.mail_attribute)
                .filter(|address| address.parse::<lettre::Address>().is_ok())
            else {
                continue;
            };
            let language = attributes
                .get(&directory.language_attribute)
                .and_then(|language| language_of(language));
            self.by_custodian
                .insert(custodian, (address.clone(), language));
        }
        Ok(())
    }

    /// Where `custodian`'s digest goes, and in which language if the mapping
    /// says; `None` when nothing says.
    pub fn address_of(&self, custodian: &str) -> Option<(String, Option<Language>)> {
        if let Some(found) = self.by_custodian.get(custodian) {
            return Some(found.clone());
        }
        if custodian.contains('@') && custodian.parse::<lettre::Address>().is_ok() {
            return Some((custodian.to_owned(), None));
        }
        let plain_word = !custodian.is_empty()
            && custodian
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_'));
        let address = self.template.as_ref()?.replace("{custodian}", custodian);
        (plain_word && address.parse::<lettre::Address>().is_ok()).then_some((address, None))
    }
}

/// The addresses file: `custodian,address[,language]` lines, `#` comments and
/// blank lines. A line that is none of these is refused with its number and
/// why (never its content: it names a person).
pub fn parse_addresses(text: &str) -> Result<Addresses, (usize, &'static str)> {
    let mut by_custodian = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let (custodian, address) = match fields.as_slice() {
            [custodian, address, ..] if !custodian.is_empty() => (*custodian, *address),
            _ => return Err((index + 1, "expected custodian,address[,language]")),
        };
        if address.parse::<lettre::Address>().is_err() {
            return Err((index + 1, "not a mail address"));
        }
        let language = match fields.get(2).copied() {
            None | Some("") => None,
            Some("sv") => Some(Language::Sv),
            Some("en") => Some(Language::En),
            Some(_) => return Err((index + 1, "language is sv or en")),
        };
        by_custodian.insert(custodian.to_owned(), (address.to_owned(), language));
    }
    Ok(by_custodian)
}

/// A language as a directory writes it (`sv`, `sv-SE`, `en-GB`, `English`):
/// Swedish or English, else none.
fn language_of(text: &str) -> Option<Language> {
    let primary = text
        .split([',', ';'])
        .next()?
        .trim()
        .split(['-', '_'])
        .next()?
        .to_ascii_lowercase();
    match primary.as_str() {
        "sv" | "swedish" | "svenska" => Some(Language::Sv),
        "en" | "english" | "engelska" => Some(Language::En),
        _ => None,
    }
}

/// What preparing a month's digests found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prepared {
    /// How the month's digests were made: custodians, and why some could not
    /// get one.
    pub month: DigestMonth,
    /// Digests put in the outbox now (not there already).
    pub queued: u64,
}

/// What one delivery round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Accepted by the server.
    pub sent: u64,
    /// Refused or not reached: tried again later.
    pub failed: u64,
    /// Failed too often, and given up.
    pub gave_up: u64,
}

fn mail_settings(config: &Config) -> Result<(&DigestConfig, MailConfig), DigestError> {
    let digest = config
        .digest
        .as_ref()
        .ok_or_else(|| DigestError::Config("no [digest] in the config".into()))?;
    let mut mail = config
        .report
        .as_ref()
        .and_then(|report| report.mail.clone())
        .ok_or_else(|| {
            DigestError::Config("[digest] sends with [report]'s mail settings; set them".into())
        })?;
    if let Some(sender) = &digest.sender {
        mail.sender = sender.clone();
    }
    mail.recipients.clear();
    Ok((digest, mail))
}

/// One custodian's digest text, in `language`.
fn body(
    language: Language,
    month: Month,
    findings: &[&Finding],
    policies: &BTreeMap<String, String>,
    items: usize,
    (zone, now): (Tz, DateTime<Utc>),
) -> (String, String) {
    let sv = language == Language::Sv;
    let subject = if sv {
        format!("Dina uppgifter att se över, {}", month.name(language))
    } else {
        format!("Your items to review, {}", month.name(language))
    };
    let mut text = String::new();
    text.push_str(if sv {
        "Hej!\n\nDetta är din egen sammanställning från tillsyn: uppgifter i dina mappar och brevlådor\nsom enligt vår integritetspolicy inte borde finnas kvar. Bara du får den.\n\n"
    } else {
        "Hello,\n\nThis is your own summary from tillsyn: data in your folders and mailboxes that our\nprivacy policy says should no longer be kept. It is sent to you only.\n\n"
    });
    let mut by_rule: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for finding in findings {
        by_rule
            .entry(finding.rule.as_str())
            .or_default()
            .push(finding);
    }
    for (rule, mut listed) in by_rule {
        listed.sort_by_key(|finding| (finding.first_seen, finding.id));
        let policy = policies.get(rule).map_or("", String::as_str);
        text.push_str(&format!(
            "{} ({}: {})\n  ”{policy}”\n",
            rule,
            if sv { "att åtgärda" } else { "to act on" },
            listed.len()
        ));
        let mut oldest = listed.clone();
        oldest.sort_by_key(|finding| std::cmp::Reverse(finding.age_days.unwrap_or(0)));
        for finding in oldest.iter().take(items) {
            text.push_str(&format!("  - {}\n", location(finding, sv, zone, now)));
        }
        if listed.len() > items {
            text.push_str(&format!(
                "  {}\n",
                if sv {
                    format!("… och {} till.", listed.len() - items)
                } else {
                    format!("… and {} more.", listed.len() - items)
                }
            ));
        }
        text.push('\n');
    }
    text.push_str(if sv {
        "Vad du gör: radera det som inte behövs, flytta det som hör till ett ärende till\närendesystemet, eller, om något ska sparas med avsikt och din organisation tillåter\ndet, markera det som sparat (flagga meddelandet eller lägg det i mappen för sådant).\nFrågor besvaras av dataskyddsombudet.\n"
    } else {
        "What to do: delete what is not needed, move what belongs to a case into the case\nsystem, or, where something is kept on purpose and your organisation allows it, mark\nit as kept (flag the message or file it in the folder for that). The data protection\nofficer answers questions.\n"
    });
    (subject, text)
}

/// Where an item is, so that its custodian can find it: the folder, received
/// date and UID of a message; a file's path.
fn location(finding: &Finding, sv: bool, zone: Tz, now: DateTime<Utc>) -> String {
    // Its age was measured when a scan last read it (an incremental scan
    // may not have read it since): the date it counts from is that far back.
    let dated = finding
        .age_days
        .map(|days| finding.last_seen - chrono::TimeDelta::days(days));
    let days = dated
        .map(|dated| {
            let days = (now - dated).num_days();
            if sv {
                format!(", {days} dagar")
            } else {
                format!(", {days} days")
            }
        })
        .unwrap_or_default();
    if finding.record_kind == "message" {
        // account/folder/uid
        let mut parts = finding.record_path.splitn(2, '/');
        let _account = parts.next();
        let rest = parts.next().unwrap_or(&finding.record_path);
        let (folder, uid) = rest.rsplit_once('/').unwrap_or((rest, ""));
        let received = dated
            .map(|dated| dated.with_timezone(&zone).format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        if sv {
            format!("mapp {folder}, mottaget {received}, UID {uid}{days}")
        } else {
            format!("folder {folder}, received {received}, UID {uid}{days}")
        }
    } else {
        format!("{}{days}", finding.record_path)
    }
}

/// Whether `month`'s digests were made already (the daemon makes them once,
/// at the schedule's first tick after the month).
pub fn made(store: &Store, month: Month) -> Result<bool, DigestError> {
    Ok(store.digest_coverage(&month.to_string())?.is_some())
}

/// Whether every source of `config` has finished a scan since `since`: the
/// daemon makes a month's digests only then, so that a daemon started after
/// the month ended does not send what it found before catching up.
pub fn scanned_since(
    config: &Config,
    store: &Store,
    since: DateTime<Utc>,
) -> Result<bool, DigestError> {
    for source in &config.sources {
        // Every unit of it, in a fleet.
        let finished = store
            .source_state(&source.name)?
            .finished_at
            .is_some_and(|finished| finished >= since);
        if !finished {
            return Ok(false);
        }
    }
    Ok(true)
}

/// When the next digest waiting in the outbox is to be tried.
pub fn next_attempt(store: &Store) -> Result<Option<DateTime<Utc>>, DigestError> {
    Ok(store.outbox_next_attempt(OutboxKind::Digest)?)
}

/// Make `month`'s digests and put each custodian's in the outbox, unless it is
/// there already. Only custodians get one, and only at an address in the
/// organisation's own domains: findings without a custodian, or whose
/// custodian is a system account, are counted as having none; a custodian
/// without an address, or with one outside the domains, is counted and
/// never mailed. Nothing is ever addressed from what a record holds about
/// its subjects.
pub async fn prepare(
    config: &Config,
    store: &std::sync::Arc<std::sync::Mutex<Store>>,
    month: Month,
    now: DateTime<Utc>,
) -> Result<Prepared, DigestError> {
    let (digest, mail) = mail_settings(config)?;
    let mut recipients = Recipients::load(digest)?;
    let people = PersonDisplay::for_config(config)?;
    let zone = config.daemon.timezone.0;
    let default_language = digest
        .language
        .or(config.report.as_ref().map(|report| report.language))
        .unwrap_or_default();
    let open = {
        let mut guard = lock(store)?;
        guard.mark_exceptions(
            &tillsyn_rules::exceptions::Exceptions::from_config(config),
            None,
        )?;
        guard.findings(FindingFilter::Open, None, None)?
    };
    let mut made = DigestMonth::default();
    let mut by_custodian: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for finding in &open {
        if finding.excepted_at(now).is_some() {
            continue;
        }
        match finding.custodian.as_deref() {
            Some(custodian) if !digest.is_system_account(custodian) => {
                by_custodian.entry(custodian).or_default().push(finding);
            }
            _ => made.no_custodian += 1,
        }
    }
    made.custodians = by_custodian.len() as u64;
    if let Some(directory) = &digest.directory {
        let unmapped: Vec<String> = by_custodian
            .keys()
            .filter(|custodian| !recipients.by_custodian.contains_key(**custodian))
            .map(|custodian| (*custodian).to_owned())
            .collect();
        recipients.look_up(config, directory, &unmapped).await?;
    }
    let policies: BTreeMap<String, String> = config
        .rules
        .iter()
        .map(|rule| (rule.id.clone(), rule.policy.clone()))
        .collect();
    let mut messages = Vec::new();
    for (custodian, findings) in by_custodian {
        let Some((address, language)) = recipients.address_of(custodian) else {
            made.no_address += 1;
            continue;
        };
        if !digest.is_internal(&address) {
            made.outside_domains += 1;
            continue;
        }
        let language = language.unwrap_or(default_language);
        let (subject, text) = body(
            language,
            month,
            &findings,
            &policies,
            digest.items,
            (zone, now),
        );
        let message = message(&mail, &address, &subject, text, month, now)?;
        messages.push((people.pseudonym(custodian), address, subject, message));
    }
    let period = month.to_string();
    let mut guard = lock(store)?;
    let mut queued = 0;
    for (recipient, address, subject, message) in messages {
        let key = OutboxKey::digest(&period, &recipient);
        let put = guard.outbox_put(NewOutboxEntry {
            key: &key,
            address: Some(&address),
            subject: &subject,
            message: &message,
        })?;
        queued += u64::from(put);
    }
    guard.digest_month(&period, made)?;
    Ok(Prepared {
        month: made,
        queued,
    })
}

fn message(
    mail: &MailConfig,
    address: &str,
    subject: &str,
    text: String,
    month: Month,
    now: DateTime<Utc>,
) -> Result<Vec<u8>, DigestError> {
    let build = |error: &dyn std::fmt::Display| DigestError::Build(error.to_string());
    let from: lettre::message::Mailbox = mail.sender.parse().map_err(|e| build(&e))?;
    let to: lettre::message::Mailbox = address.parse().map_err(|e| build(&e))?;
    let domain = from.email.domain().to_owned();
    let message = lettre::Message::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .date(now.into())
        .message_id(Some(format!(
            "<tillsyn-digest-{month}-{}-{}@{domain}>",
            now.timestamp(),
            rand::random::<u32>()
        )))
        .singlepart(super::mail::text_part(
            lettre::message::header::ContentType::TEXT_PLAIN,
            &text,
        ))
        .map_err(|e| build(&e))?;
    let bytes = message.formatted();
    super::mail::check_wire(&bytes).map_err(|e| build(&e))?;
    Ok(bytes)
}

/// Send the digests due now through the outbox, paced by `rate_per_minute`;
/// failures wait and are tried again, up to the digest's number of attempts.
pub async fn deliver_due(
    config: &Config,
    store: &std::sync::Arc<std::sync::Mutex<Store>>,
) -> Result<Delivered, DigestError> {
    let (digest, mail) = mail_settings(config)?;
    let pause = Duration::from_millis(60_000 / u64::from(digest.rate_per_minute.max(1)));
    let round = super::outbox::deliver_due(&mail, store, OutboxKind::Digest, pause)
        .await
        .map_err(|error| DigestError::Build(error.to_string()))?;
    let gave_up = round
        .failed
        .iter()
        .filter(|(_, _, after)| *after == tillsyn_store::AfterFailure::GaveUp)
        .count() as u64;
    Ok(Delivered {
        sent: round.sent.len() as u64,
        failed: round.failed.len() as u64 - gave_up,
        gave_up,
    })
}

fn lock(
    store: &std::sync::Arc<std::sync::Mutex<Store>>,
) -> Result<std::sync::MutexGuard<'_, Store>, DigestError> {
    store.lock().map_err(|_| DigestError::Poisoned)
}

/// Write each queued digest of `month` to `dir` (0600 files, named by the
/// custodian's pseudonym), for a look before sending.
pub fn write_files(store: &Store, month: Month, dir: &Path) -> Result<u64, DigestError> {
    crate::privacy::create_private_dir(dir)
        .map_err(|error| DigestError::Build(error.to_string()))?;
    let mut written = 0;
    for (recipient, message) in store.outbox_messages(OutboxKind::Digest, &month.to_string())? {
        crate::privacy::write_private(&dir.join(format!("digest-{recipient}.eml")), &message)
            .map_err(|error| DigestError::Build(error.to_string()))?;
        written += 1;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_as_directories_write_them() {
        for (text, expected) in [
            ("sv", Some(Language::Sv)),
            ("sv-SE", Some(Language::Sv)),
            ("SV_se", Some(Language::Sv)),
            ("en-GB", Some(Language::En)),
            ("English", Some(Language::En)),
            ("en, sv", Some(Language::En)),
            ("de-DE", None),
            ("", None),
            ("svenglish", None),
        ] {
            assert_eq!(language_of(text), expected, "{text:?}");
        }
    }

    #[test]
    fn addresses_come_from_the_file_the_custodian_or_the_template_and_are_never_guessed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("addresses.csv");
        std::fs::write(
            &file,
            "# custodian,address,language\ncarl,carl@firma.se,en\n",
        )
        .expect("file");
        let recipients = Recipients::load(&DigestConfig {
            directory: None,
            schedule: None,
            language: None,
            sender: None,
            address_template: Some("{custodian}@firma.se".into()),
            addresses_file: Some(file.clone()),
            items: 10,
            rate_per_minute: 60,
            domains: vec!["firma.se".into()],
            ignore_custodians: Vec::new(),
        })
        .expect("load");
        assert_eq!(
            recipients.address_of("carl"),
            Some(("carl@firma.se".into(), Some(Language::En)))
        );
        assert_eq!(
            recipients.address_of("anna@kund.se"),
            Some(("anna@kund.se".into(), None))
        );
        assert_eq!(
            recipients.address_of("bo"),
            Some(("bo@firma.se".into(), None))
        );
        assert_eq!(recipients.address_of("extern konsult"), None);
        assert_eq!(recipients.address_of("uid:1234"), None);
        assert_eq!(recipients.address_of(""), None);
        std::fs::write(&file, "carl;carl@firma.se\n").expect("file");
        let broken = Recipients::load(&DigestConfig {
            directory: None,
            schedule: None,
            language: None,
            sender: None,
            address_template: None,
            addresses_file: Some(file),
            items: 10,
            rate_per_minute: 60,
            domains: vec!["firma.se".into()],
            ignore_custodians: Vec::new(),
        });
        assert!(
            matches!(&broken, Err(DigestError::Addresses { reason, .. }) if reason.starts_with("line 1")),
            "{broken:?}"
        );
    }
}
