//! Directories over LDAP (OpenLDAP, Active Directory): people and contacts as
//! records, for promises about former customers, opt-outs and list membership.
//!
//! - **Read-only.** One simple bind, then searches; nothing else is sent.
//! - **Paged.** RFC 2696 paged results (`page_size`, at most 1000, Active
//!   Directory's cap), so a non-admin bind reads past the server's size limit.
//! - **Only what rules need.** The search asks for the mapped attributes and
//!   dates, the custodian attribute and `modifyTimestamp`, nothing else.
//! - **TLS.** `ldaps://` or StartTLS with an explicit root store (the system's
//!   and `ca_file`): ldap3 would otherwise fall back silently to an empty one.
//! - **Referrals** are not followed: counted and skipped.
//!
//! Each entry becomes a [`RecordKind::Contact`] record: id = its DN, normalised
//! as directories compare DNs ([`crate::dn`]), or the `id_attribute`
//! (`objectGUID`, `entryUUID`) so a renamed entry keeps its findings; path =
//! the DN; custodian = the `custodian_attribute`, when one is named (whom an
//! entry is about goes by its mapped identifiers); attributes and dates as
//! mapped in the config ([`crate::values`]: patterns, date formats, flags).
//!
//! **Groups** (`group_base_dn`): for directories without `memberOf`, the group
//! entries under that base are read first and each person's record gets the
//! DNs of the groups that list it as `member` or `uniqueMember`, joined with
//! `;`, as the attribute `groups_attribute`. Members a server sends in ranges
//! (`member;range=0-1499`, as Active Directory does past 1500) are asked for
//! range by range to the end.
//!
//! **Incremental** (`incremental_full_every_hours`): where the server keeps
//! `modifyTimestamp`, a rescan asks only for entries changed since the newest
//! `modifyTimestamp` the last scan saw (the server's clock, not ours): strictly
//! newer when that time lies more than [`SETTLE_SECONDS`] before the scan (no
//! entry can still be stamped with it), else that time included (entries stamped
//! in the same second are read again rather than missed). Their
//! findings are judged again; everyone else's are carried. Entries deleted since,
//! and entries whose dates came due without the entry changing, are only seen by
//! a full read: one runs when the last is older than the set number of hours, when
//! the rules or the search change, and whenever the server gave no
//! `modifyTimestamp`.
//!
//! **Active Directory** (its rootDSE has `highestCommittedUSN`): rescans ask
//! for `uSNChanged` past the controller's `highestCommittedUSN` when the last
//! read began, never by `modifyTimestamp` (built from `whenChanged`, which is
//! not replicated). Update numbers are the controller's own, so its NTDS
//! `invocationId` is kept with them, and another controller (or a restored
//! one) means a full read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ldap3::adapters::{Adapter, PagedResults};
use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use serde::Deserialize;

use crate::values::{NotADate, ValueMapping};
use crate::{
    Connector, ConnectorError, ProblemKind, Record, RecordKind, RecordSink, ScanContext, ScanReport,
};
use tillsyn_core::dates::DateValue;
use tillsyn_core::secret::{self, Secret};

/// `type = "ldap"`: a directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldap://host:389` or `ldaps://host:636`. Required.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS. Default: false.
    #[serde(default)]
    pub starttls: bool,
    /// Allow `ldap://` without StartTLS (the password crosses unencrypted; for
    /// loopback tests). Default: false.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// PEM file of an internal CA, trusted besides the system's. Default: none.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// DN to bind as, e.g. `cn=tillsyn,ou=services,dc=example,dc=se`. Required.
    pub bind_dn: String,
    /// File holding the bind password. Required.
    pub password_file: PathBuf,
    /// Where to search, e.g. `ou=people,dc=example,dc=se`. Required.
    pub base_dn: String,
    /// Search filter. Default: `(objectClass=*)`.
    #[serde(default = "default_filter")]
    pub filter: String,
    /// Entries per page (1–1000). Default: 500.
    #[serde(default = "default_page_size")]
    pub page_size: i32,
    /// Attribute naming who must act on an entry, its custodian (a manager,
    /// an account manager: `manager`, `seeAlso`), as digests and the report's
    /// "who" name them (pseudonymised in output). Whom an entry is about (its
    /// `mail`, an employee number) goes in the source's `identifiers`
    /// instead. Default: none (entries have no custodian).
    #[serde(default)]
    pub custodian_attribute: Option<String>,
    /// Attribute holding an entry's stable id, which stays when the entry is
    /// renamed or moved: `objectGUID` (Active Directory, shown in its usual
    /// `xxxxxxxx-xxxx-…` form) or `entryUUID` (OpenLDAP). Findings follow the
    /// entry by it. An entry without it keeps its DN as id. Default: none (the
    /// DN).
    #[serde(default)]
    pub id_attribute: Option<String>,
    /// Record attribute name → LDAP attribute, e.g.
    /// `{ status = "customerStatus", opt_out = "marketingOptOut" }`, or a
    /// table `{ attribute, pattern }` whose pattern picks the value out of
    /// each (see [`crate::values`]). Several values are joined with `;`.
    /// Default: none.
    #[serde(default)]
    pub attributes: BTreeMap<String, ValueMapping>,
    /// Record date name → LDAP attribute holding a date in any format
    /// [`tillsyn_core::dates::parse_date`] reads, e.g.
    /// `{ customer_ended = "customerEndDate" }`, or a table `{ attribute,
    /// pattern, format }`. Of several values, the first (that the pattern
    /// matches) counts. Default: none.
    #[serde(default)]
    pub dates: BTreeMap<String, ValueMapping>,
    /// Longest wait for any server response, in seconds. Default: 60.
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    /// Where group entries are, e.g. `ou=lists,dc=example,dc=se`: each record
    /// then gets the (lower-cased) DNs of the groups listing it as `member` or
    /// `uniqueMember`. Default: none.
    #[serde(default)]
    pub group_base_dn: Option<String>,
    /// Which entries under `group_base_dn` are groups. Default:
    /// `(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))`.
    #[serde(default = "default_group_filter")]
    pub group_filter: String,
    /// Record attribute that receives the group DNs. Default: `groups`.
    #[serde(default = "default_groups_attribute")]
    pub groups_attribute: String,
    /// Read only entries changed since the last scan (by `modifyTimestamp`),
    /// with a full read when the last one is older than this many hours: that
    /// read also resolves deleted entries and finds entries whose dates came due
    /// without a change. Default: none (every scan reads everything).
    #[serde(default)]
    pub incremental_full_every_hours: Option<u64>,
}

/// Checkpoint: when the last full read started (Unix seconds).
const FULL_AT: &str = "ldap.full_at";
/// Checkpoint: the newest `modifyTimestamp` seen, as the server wrote it.
const SINCE: &str = "ldap.since";
/// Checkpoint: what the reads asked for (rules, filter, attributes); a change
/// means a full read.
const PLAN: &str = "ldap.plan";
/// Checkpoint: "1" when [`SINCE`] was settled at the scan (see the module docs).
const SETTLED: &str = "ldap.since_settled";
/// Checkpoint (Active Directory): the domain controller's `highestCommittedUSN`
/// when the last read began.
const USN: &str = "ldap.usn";
/// Checkpoint (Active Directory): which domain controller (its NTDS
/// `invocationId`) those numbers are of; another one means a full read.
const DC: &str = "ldap.dc";

/// Where an Active Directory domain controller is in its own count of
/// changes: update sequence numbers are per controller, so a rescan may ask
/// one for changes past a number only if it is the same one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DcPosition {
    /// The NTDS settings' `invocationId`.
    invocation: String,
    /// `highestCommittedUSN` from the rootDSE.
    highest: u64,
}
/// How far behind our clock a `modifyTimestamp` must be to count as settled:
/// covers clock skew between this host and the directory.
pub const SETTLE_SECONDS: i64 = 600;

fn default_filter() -> String {
    "(objectClass=*)".into()
}
fn default_page_size() -> i32 {
    500
}
fn default_timeout_seconds() -> u64 {
    60
}
fn default_group_filter() -> String {
    "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))".into()
}
fn default_groups_attribute() -> String {
    "groups".into()
}

/// Member DN (lower-cased) → the DNs of the groups listing it.
type Memberships = std::collections::HashMap<String, Vec<String>>;

/// Why this source could not be built (shared with the other network sources).
pub type LdapBuildError = crate::SourceSetupError;

/// A built LDAP source.
#[derive(Debug, Clone)]
pub struct LdapSource {
    config: Arc<LdapConfig>,
    password: Secret,
    tls: Arc<rustls::ClientConfig>,
}

impl LdapSource {
    /// Check the settings and read the password; nothing is contacted yet.
    pub fn build(config: LdapConfig) -> Result<LdapSource, LdapBuildError> {
        if !(1..=1000).contains(&config.page_size) {
            return Err(LdapBuildError::Invalid(format!(
                "page_size {} is outside 1–1000",
                config.page_size
            )));
        }
        let encrypted = config.url.starts_with("ldaps://") || config.starttls;
        if !encrypted && !config.allow_plaintext {
            return Err(LdapBuildError::Invalid(
                "ldap:// without starttls sends the password unencrypted; use ldaps://, \
                 starttls = true, or allow_plaintext = true (loopback tests only)"
                    .into(),
            ));
        }
        let password = secret::read_file(&config.password_file)?;
        let tls = crate::tls::tls_config(config.ca_file.as_deref(), encrypted)?;
        Ok(LdapSource {
            config: Arc::new(config),
            password,
            tls,
        })
    }

    /// Make relative paths relative to the config file's folder.
    pub fn resolve_paths(config: &mut LdapConfig, resolve: impl Fn(&Path) -> PathBuf) {
        config.password_file = resolve(&config.password_file);
        if let Some(ca) = &mut config.ca_file {
            *ca = resolve(ca);
        }
    }

    fn requested_attributes(&self) -> Vec<String> {
        let config = &self.config;
        let mut wanted: Vec<String> = config
            .attributes
            .values()
            .chain(config.dates.values())
            .map(|mapping| mapping.from.clone())
            .collect();
        wanted.extend(config.custodian_attribute.clone());
        wanted.extend(config.id_attribute.clone());
        wanted.push("modifyTimestamp".into());
        wanted.sort_by_key(|name| name.to_lowercase());
        wanted.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        wanted
    }
}

/// The next entry of a search, `None` at its end. Referrals and entries ldap3
/// cannot decode are counted and skipped; a broken-off search fails the scan.
async fn next_entry(
    stream: &mut ldap3::SearchStream<'_, String, Vec<String>>,
    context: &ScanContext,
    report: &mut ScanReport,
    what: &str,
) -> Result<Option<SearchEntry>, ConnectorError> {
    let mut entries = 0u64;
    loop {
        if context.cancel.is_cancelled() {
            return Err(ConnectorError::Cancelled);
        }
        let entry = match stream.next().await {
            Ok(Some(entry)) => entry,
            Ok(None) => return Ok(None),
            Err(error) => {
                return Err(unavailable(
                    "connection_lost",
                    format!(
                        "{what} broke off after {} entries: {error}",
                        report.records + entries
                    ),
                ));
            }
        };
        // Intermediate responses carry no entry (EntriesOnly would drop them,
        // and the references below with them).
        if entry.is_intermediate() {
            continue;
        }
        entries += 1;
        if entry.is_ref() {
            // What the referral points at is not read, and which entries it
            // holds is unknown: nothing of this source resolves this time.
            report.count(ProblemKind::Referral);
            if !report.unread_prefixes.iter().any(String::is_empty) {
                report.unread_prefixes.push(String::new());
                report.notes.push(format!(
                    "{what}: a referral was not followed; the scan is partial and no finding of this source resolves"
                ));
            }
            continue;
        }
        // ldap3 panics on entries it cannot decode: one bad entry is counted, it
        // does not end the daemon.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            SearchEntry::construct(entry)
        })) {
            Ok(entry) => return Ok(Some(entry)),
            Err(_) => {
                // Which entry it was is unknown (its DN is what could not be
                // read): nothing of this source resolves this time.
                report.count(ProblemKind::MalformedEntry);
                if !report.unread_prefixes.iter().any(String::is_empty) {
                    report.unread_prefixes.push(String::new());
                    report.notes.push(format!(
                        "{what}: an entry could not be decoded; the scan is partial and no finding of this source resolves"
                    ));
                }
            }
        }
    }
}

/// A filter in parentheses, as `(&…)` needs its parts.
fn parenthesised(filter: &str) -> String {
    let filter = filter.trim();
    if filter.starts_with('(') {
        filter.to_owned()
    } else {
        format!("({filter})")
    }
}

/// What an LDAP result code means, for messages (RFC 4511 §A.2).
fn result_name(rc: u32) -> &'static str {
    match rc {
        0 => "success",
        3 => "time limit exceeded",
        4 => "size limit exceeded (is paging allowed for this bind?)",
        10 => "referral",
        11 => "admin limit exceeded (page_size above the server's limit?)",
        32 => "no such object (check base_dn)",
        34 => "invalid DN syntax",
        48 => "inappropriate authentication",
        49 => "invalid credentials (wrong bind DN or password)",
        50 => "insufficient access rights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwilling to perform",
        _ => "error",
    }
}

/// The kind of failure, by where it happened.
fn unavailable(kind: &'static str, message: String) -> ConnectorError {
    ConnectorError::Unavailable { kind, message }
}

fn classify(error: &ldap3::LdapError) -> &'static str {
    let text = error.to_string().to_lowercase();
    if text.contains("certificate") || text.contains("tls") || text.contains("handshake") {
        "tls"
    } else if matches!(error, ldap3::LdapError::Timeout { .. }) {
        "timeout"
    } else {
        "connect"
    }
}

impl LdapSource {
    /// Connect and bind read-only.
    async fn bind(&self) -> Result<ldap3::Ldap, ConnectorError> {
        let config = &self.config;
        let timeout = Duration::from_secs(config.timeout_seconds);
        let settings = LdapConnSettings::new()
            .set_conn_timeout(timeout)
            .set_starttls(config.starttls)
            .set_config(self.tls.clone());
        let (connection, mut ldap) = LdapConnAsync::with_settings(settings, &config.url)
            .await
            .map_err(|error| {
                unavailable(
                    classify(&error),
                    format!("cannot connect to {}: {error}", config.url),
                )
            })?;
        ldap3::drive!(connection);
        let password = std::str::from_utf8(self.password.expose())
            .map_err(|_| unavailable("auth", "the bind password is not UTF-8".into()))?;
        let bound = ldap
            .with_timeout(timeout)
            .simple_bind(&config.bind_dn, password)
            .await
            .map_err(|error| unavailable(classify(&error), format!("bind failed: {error}")))?;
        if bound.rc != 0 {
            return Err(unavailable(
                "auth",
                format!(
                    "bind as {} refused: {} ({}) {}",
                    config.bind_dn,
                    result_name(bound.rc),
                    bound.rc,
                    bound.text.trim()
                )
                .trim_end()
                .to_owned(),
            ));
        }
        Ok(ldap)
    }

    /// Ask the directory for the entries (under the base, within the
    /// source's filter) where any `(attribute, value)` of `terms` holds: an
    /// equality match, as the directory's schema compares. Read-only; returns
    /// record ids (DNs, lower-cased). Used by `tillsyn subject` where the
    /// identity index does not cover a kind.
    async fn search_entries(
        &self,
        terms: &[(String, String)],
    ) -> Result<Vec<String>, ConnectorError> {
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let config = &self.config;
        let timeout = Duration::from_secs(config.timeout_seconds);
        let any: String = terms
            .iter()
            .filter(|(attribute, _)| {
                !attribute.is_empty()
                    && attribute
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ';')
            })
            .map(|(attribute, value)| {
                format!("({attribute}={})", ldap3::ldap_escape(value.as_str()))
            })
            .collect();
        let filter = format!("(&{}(|{any}))", config.filter);
        let mut ldap = self.bind().await?;
        let found = ldap
            .with_timeout(timeout)
            .search(&config.base_dn, Scope::Subtree, &filter, vec!["1.1"])
            .await
            .map_err(|error| unavailable(classify(&error), format!("search failed: {error}")))?;
        let _ = ldap.unbind().await;
        let (entries, result) = (found.0, found.1);
        if result.rc != 0 {
            return Err(unavailable(
                "protocol",
                format!("search failed: {} ({})", result_name(result.rc), result.rc),
            ));
        }
        Ok(entries
            .into_iter()
            .map(|entry| canonical_dn(&SearchEntry::construct(entry).dn))
            .collect())
    }

    /// Look up entries by `attribute` (under the base, within the source's
    /// filter): for each of `values` that an entry holds, the first value of
    /// each of `wanted` it has. Read-only; asks only for those attributes, in
    /// searches of up to 100 values each. An attribute name that is not a
    /// plain name is refused.
    async fn lookup_entries(
        &self,
        attribute: &str,
        values: &[String],
        wanted: &[&str],
    ) -> Result<BTreeMap<String, BTreeMap<String, String>>, ConnectorError> {
        let plain = |name: &str| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if !plain(attribute) || !wanted.iter().all(|name| plain(name)) {
            return Err(unavailable(
                "protocol",
                "lookup attributes must be plain attribute names".into(),
            ));
        }
        let mut found = BTreeMap::new();
        if values.is_empty() {
            return Ok(found);
        }
        let config = &self.config;
        let timeout = Duration::from_secs(config.timeout_seconds);
        let mut asked: Vec<String> = wanted.iter().map(|name| (*name).to_owned()).collect();
        asked.push(attribute.to_owned());
        let mut ldap = self.bind().await?;
        for chunk in values.chunks(100) {
            let any: String = chunk
                .iter()
                .map(|value| format!("({attribute}={})", ldap3::ldap_escape(value.as_str())))
                .collect();
            let filter = format!("(&{}(|{any}))", config.filter);
            let searched = ldap
                .with_timeout(timeout)
                .search(&config.base_dn, Scope::Subtree, &filter, asked.clone())
                .await
                .map_err(|error| {
                    unavailable(classify(&error), format!("lookup failed: {error}"))
                })?;
            let (entries, result) = (searched.0, searched.1);
            if result.rc != 0 {
                return Err(unavailable(
                    "protocol",
                    format!("lookup failed: {} ({})", result_name(result.rc), result.rc),
                ));
            }
            for entry in entries {
                let entry = SearchEntry::construct(entry);
                let attribute_of = |name: &str| {
                    entry
                        .attrs
                        .iter()
                        .find(|(key, _)| key.eq_ignore_ascii_case(name))
                        .and_then(|(_, values)| values.first().cloned())
                };
                let Some(key) = attribute_of(attribute) else {
                    continue;
                };
                // The value as asked for (the directory may answer in another case).
                let Some(asked_as) = chunk.iter().find(|value| value.eq_ignore_ascii_case(&key))
                else {
                    continue;
                };
                let mut attributes = BTreeMap::new();
                for name in wanted {
                    if let Some(value) = attribute_of(name) {
                        attributes.insert((*name).to_owned(), value);
                    }
                }
                found.entry(asked_as.clone()).or_insert(attributes);
            }
        }
        let _ = ldap.unbind().await;
        Ok(found)
    }

    /// Bind and read the base entry alone (scope base, size limit 1),
    /// read-only: what `check-config --connect` runs.
    pub async fn probe(&self) -> Result<String, ConnectorError> {
        let config = &self.config;
        let timeout = Duration::from_secs(config.timeout_seconds);
        let mut ldap = self.bind().await?;
        let found = ldap
            .with_timeout(timeout)
            .with_search_options(ldap3::SearchOptions::new().sizelimit(1))
            .search(&config.base_dn, Scope::Base, "(objectClass=*)", vec!["1.1"])
            .await
            .map_err(|error| {
                unavailable(
                    classify(&error),
                    format!("search of the base failed: {error}"),
                )
            })?;
        let (entries, result) = (found.0, found.1);
        let _ = ldap.unbind().await;
        if result.rc != 0 || entries.is_empty() {
            return Err(unavailable(
                "protocol",
                format!(
                    "the base {} could not be read: {} ({})",
                    config.base_dn,
                    result_name(result.rc),
                    result.rc
                ),
            ));
        }
        Ok(format!("bound and read the base {}", config.base_dn))
    }
}

impl Connector for LdapSource {
    async fn scan(
        &self,
        context: ScanContext,
        mut sink: RecordSink,
    ) -> Result<ScanReport, ConnectorError> {
        let config = &self.config;
        let timeout = Duration::from_secs(config.timeout_seconds);
        let mut ldap = self.bind().await?;
        let plan = self.plan_fingerprint(&context);
        let now = Utc::now().timestamp();
        let mut since = self.incremental_since(&context, &plan, now);
        let settled = context.checkpoints.get(SETTLED).map(String::as_str) == Some("1");
        // Active Directory: changes by uSNChanged against one controller, never
        // by modifyTimestamp (from whenChanged, which is not replicated).
        let dc = match config.incremental_full_every_hours {
            Some(_) => self.dc_position(&mut ldap, timeout).await,
            None => None,
        };
        let mut since_usn = dc
            .as_ref()
            .and_then(|dc| self.incremental_usn(&context, &plan, now, dc));
        if dc.is_some() {
            since = None;
        }
        let mut report = ScanReport::default();
        let mut group_stamp: Option<String> = None;
        let groups = match &config.group_base_dn {
            None => None,
            Some(base) => {
                let (groups, newest, newest_usn) = self
                    .read_groups(&mut ldap, base, timeout, &context, &mut report)
                    .await?;
                if let (Some(group), Some(since)) = (newest_usn, since_usn)
                    && group > since
                {
                    since_usn = None;
                }
                // A group changed since the last scan: who is in it may have
                // changed for people whose own entries did not; read everyone.
                if let (Some(group), Some(since_text)) = (&newest, &since) {
                    let changed = if settled {
                        group.as_str() > since_text.as_str()
                    } else {
                        group.as_str() >= since_text.as_str()
                    };
                    if changed {
                        since = None;
                    }
                }
                group_stamp = newest;
                Some(groups)
            }
        };
        let filter = match &since {
            _ if since_usn.is_some() => format!(
                "(&{}(uSNChanged>={}))",
                parenthesised(&config.filter),
                since_usn.unwrap_or(0).saturating_add(1)
            ),
            Some(since) if settled => format!(
                "(&{}(modifyTimestamp>={since})(!(modifyTimestamp={since})))",
                parenthesised(&config.filter)
            ),
            Some(since) => format!(
                "(&{}(modifyTimestamp>={since}))",
                parenthesised(&config.filter)
            ),
            None => config.filter.clone(),
        };
        let adapters: Vec<Box<dyn Adapter<'_, String, Vec<String>>>> =
            vec![Box::new(PagedResults::new(config.page_size))];
        let mut stream = ldap
            .with_timeout(timeout)
            .streaming_search_with(
                adapters,
                &config.base_dn,
                Scope::Subtree,
                &filter,
                self.requested_attributes(),
            )
            .await
            .map_err(|error| unavailable("protocol", format!("search failed: {error}")))?;
        // The newest modifyTimestamp seen (groups' included), and the DNs read
        // (an incremental read judges exactly these again).
        let mut newest: Option<String> = since.clone().max(group_stamp);
        let mut every_entry_dated = true;
        let mut read: Vec<String> = Vec::new();
        while let Some(entry) = next_entry(&mut stream, &context, &mut report, "search").await? {
            match entry
                .attrs
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case("modifyTimestamp"))
                .and_then(|(_, values)| values.first())
            {
                Some(stamp) => {
                    if newest
                        .as_deref()
                        .is_none_or(|newest| stamp.as_str() > newest)
                    {
                        newest = Some(stamp.clone());
                    }
                }
                None => every_entry_dated = false,
            }
            let record = self.record(&context, entry, groups.as_ref(), &mut report);
            if since.is_some() || since_usn.is_some() {
                read.push(record.path.clone());
            }
            sink.send(record).await?;
            report.records += 1;
        }
        let result = stream.finish().await;
        // 0 success; 4 sizeLimitExceeded would mean paging was ignored.
        if result.rc != 0 {
            return Err(unavailable(
                "protocol",
                format!(
                    "search ended with {} ({}) {} after {} entries",
                    result_name(result.rc),
                    result.rc,
                    result.text.trim(),
                    report.records
                ),
            ));
        }
        sink.flush().await?;
        let _ = ldap.unbind().await;
        report.add_work("entries_read", report.records);
        if let Some(dc) = &dc {
            let full_at = match since_usn {
                Some(_) => context.checkpoints.get(FULL_AT).cloned(),
                None => Some(now.to_string()),
            };
            if let Some(full_at) = full_at {
                report.checkpoints.insert(FULL_AT.into(), full_at);
                report
                    .checkpoints
                    .insert(USN.into(), dc.highest.to_string());
                report.checkpoints.insert(DC.into(), dc.invocation.clone());
                report.checkpoints.insert(PLAN.into(), plan.clone());
            }
        } else if config.incremental_full_every_hours.is_some() && every_entry_dated {
            let full_at = match &since {
                Some(_) => context.checkpoints.get(FULL_AT).cloned(),
                None => Some(now.to_string()),
            };
            if let (Some(full_at), Some(newest)) = (full_at, newest) {
                let settled = parse_directory_time(&newest, context.timezone)
                    .is_some_and(|time| time.timestamp() < now - SETTLE_SECONDS);
                report.checkpoints.insert(FULL_AT.into(), full_at);
                report.checkpoints.insert(SINCE.into(), newest);
                report
                    .checkpoints
                    .insert(SETTLED.into(), if settled { "1" } else { "0" }.into());
                report.checkpoints.insert(PLAN.into(), plan);
            }
        }
        if since.is_some() || since_usn.is_some() {
            read.sort();
            report.add_work("incremental", 1);
            report.carried.push(crate::CarriedScope {
                prefix: String::new(),
                gone: read,
                present: None,
                left_out: None,
            });
        }
        Ok(report)
    }
}

impl LdapSource {
    /// What the reads ask for: rules, base, filter and attributes.
    fn plan_fingerprint(&self, context: &ScanContext) -> String {
        let config = &self.config;
        tillsyn_core::fingerprint::Fingerprint::new("ldap plan")
            .number(context.needs.plan)
            .text(&config.base_dn)
            .text(&config.filter)
            .texts(self.requested_attributes().iter().map(String::as_str))
            .optional(config.group_base_dn.as_deref())
            .text(&config.group_filter)
            .text(&config.groups_attribute)
            .hex()
    }

    /// Read every group under `base`: who is in which, and the newest
    /// `modifyTimestamp` and `uSNChanged` (Active Directory) among them.
    async fn read_groups(
        &self,
        ldap: &mut ldap3::Ldap,
        base: &str,
        timeout: Duration,
        context: &ScanContext,
        report: &mut ScanReport,
    ) -> Result<(Memberships, Option<String>, Option<u64>), ConnectorError> {
        let adapters: Vec<Box<dyn Adapter<'_, String, Vec<String>>>> =
            vec![Box::new(PagedResults::new(self.config.page_size))];
        let mut stream = ldap
            .with_timeout(timeout)
            .streaming_search_with(
                adapters,
                base,
                Scope::Subtree,
                &self.config.group_filter,
                vec![
                    "member".to_owned(),
                    "uniqueMember".to_owned(),
                    "modifyTimestamp".to_owned(),
                    "uSNChanged".to_owned(),
                ],
            )
            .await
            .map_err(|error| unavailable("protocol", format!("group search failed: {error}")))?;
        let mut memberships = Memberships::new();
        let mut newest: Option<String> = None;
        let mut newest_usn: Option<u64> = None;
        let mut groups = 0u64;
        // Groups whose members came in part (Active Directory sends at most
        // MaxValRange, 1500, at a time): (group DN as sent, as kept, the
        // attribute, where the rest starts).
        let mut ranged: Vec<(String, String, String, u64)> = Vec::new();
        while let Some(entry) = next_entry(&mut stream, context, report, "group search").await? {
            groups += 1;
            let group = canonical_dn(&entry.dn);
            for (name, values) in &entry.attrs {
                if name.eq_ignore_ascii_case("uSNChanged") {
                    if let Some(usn) = values
                        .first()
                        .and_then(|usn| usn.trim().parse::<u64>().ok())
                    {
                        newest_usn = newest_usn.max(Some(usn));
                    }
                    continue;
                }
                if name.eq_ignore_ascii_case("modifyTimestamp") {
                    if let Some(stamp) = values.first()
                        && newest
                            .as_deref()
                            .is_none_or(|newest| stamp.as_str() > newest)
                    {
                        newest = Some(stamp.clone());
                    }
                    continue;
                }
                add_members(&mut memberships, &group, values);
                if let (attribute, Some((_, Some(end)))) = member_range(name) {
                    ranged.push((
                        entry.dn.clone(),
                        group.clone(),
                        attribute.to_owned(),
                        end + 1,
                    ));
                }
            }
        }
        let result = stream.finish().await;
        if result.rc != 0 {
            return Err(unavailable(
                "protocol",
                format!(
                    "group search ended with {} ({}) {}",
                    result_name(result.rc),
                    result.rc,
                    result.text.trim()
                ),
            ));
        }
        report.add_work("groups_read", groups);
        for (dn, group, attribute, mut start) in ranged {
            loop {
                if context.cancel.is_cancelled() {
                    return Err(ConnectorError::Cancelled);
                }
                let wanted = format!("{attribute};range={start}-*");
                let (entries, _) = ldap
                    .with_timeout(timeout)
                    .search(&dn, Scope::Base, "(objectClass=*)", vec![wanted])
                    .await
                    .map_err(|error| {
                        unavailable("protocol", format!("member range search failed: {error}"))
                    })?
                    .success()
                    .map_err(|error| {
                        unavailable("protocol", format!("member range search failed: {error}"))
                    })?;
                report.add_work("member_ranges_read", 1);
                let mut next = None;
                for entry in entries {
                    let entry = SearchEntry::construct(entry);
                    for (name, values) in &entry.attrs {
                        let (base, range) = member_range(name);
                        if !base.eq_ignore_ascii_case(&attribute) {
                            continue;
                        }
                        add_members(&mut memberships, &group, values);
                        if let Some((_, Some(end))) = range {
                            next = Some(end + 1);
                        }
                    }
                }
                match next {
                    Some(next) if next > start => start = next,
                    _ => break,
                }
            }
        }
        Ok((memberships, newest, newest_usn))
    }

    /// The controller's position, when the server is an Active Directory
    /// domain controller (its rootDSE has `highestCommittedUSN`).
    async fn dc_position(&self, ldap: &mut ldap3::Ldap, timeout: Duration) -> Option<DcPosition> {
        let first = |found: Result<ldap3::SearchResult, ldap3::LdapError>| {
            let (entries, _) = found.ok()?.success().ok()?;
            entries.into_iter().next().map(SearchEntry::construct)
        };
        let value = |entry: &SearchEntry, name: &str| {
            entry
                .attrs
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .and_then(|(_, values)| values.first().cloned())
        };
        let root = first(
            ldap.with_timeout(timeout)
                .search(
                    "",
                    Scope::Base,
                    "(objectClass=*)",
                    vec!["highestCommittedUSN", "dsServiceName"],
                )
                .await,
        )?;
        let highest = value(&root, "highestCommittedUSN")?.trim().parse().ok()?;
        let service = value(&root, "dsServiceName")?;
        let settings = first(
            ldap.with_timeout(timeout)
                .search(
                    &service,
                    Scope::Base,
                    "(objectClass=*)",
                    vec!["invocationId"],
                )
                .await,
        )?;
        let invocation = settings
            .bin_attrs
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case("invocationId"))
            .and_then(|(_, values)| values.first())
            .map(|bytes| binary_id(bytes))
            .or_else(|| value(&settings, "invocationId"))?;
        Some(DcPosition {
            invocation,
            highest,
        })
    }

    /// The USN to read changes after, when this scan of an Active Directory
    /// may be incremental: the same plan, a full read recent enough, and the
    /// same controller.
    fn incremental_usn(
        &self,
        context: &ScanContext,
        plan: &str,
        now: i64,
        dc: &DcPosition,
    ) -> Option<u64> {
        let hours = self.config.incremental_full_every_hours?;
        let checkpoints = &context.checkpoints;
        let full_at: i64 = checkpoints.get(FULL_AT)?.parse().ok()?;
        let fresh = now.saturating_sub(full_at) < i64::try_from(hours.saturating_mul(3600)).ok()?;
        let same_dc = checkpoints.get(DC) == Some(&dc.invocation);
        let usn: u64 = checkpoints.get(USN)?.parse().ok()?;
        (fresh && same_dc && checkpoints.get(PLAN).map(String::as_str) == Some(plan)).then_some(usn)
    }

    /// The `modifyTimestamp` to read changes from, when this scan may be
    /// incremental.
    fn incremental_since(&self, context: &ScanContext, plan: &str, now: i64) -> Option<String> {
        let hours = self.config.incremental_full_every_hours?;
        let checkpoints = &context.checkpoints;
        let full_at: i64 = checkpoints.get(FULL_AT)?.parse().ok()?;
        let fresh = now.saturating_sub(full_at) < i64::try_from(hours.saturating_mul(3600)).ok()?;
        let since = checkpoints.get(SINCE)?;
        // Only a GeneralizedTime goes into the filter.
        let well_formed = parse_directory_time(since, context.timezone).is_some()
            && since
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, 'Z' | 'z' | '.' | ',' | '+' | '-'));
        (fresh && checkpoints.get(PLAN).map(String::as_str) == Some(plan) && well_formed)
            .then(|| since.clone())
    }

    fn record(
        &self,
        context: &ScanContext,
        entry: SearchEntry,
        groups: Option<&Memberships>,
        report: &mut ScanReport,
    ) -> Record {
        let config = &self.config;
        let get = |name: &str| -> Option<&Vec<String>> {
            entry
                .attrs
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, values)| values)
        };
        let dn = canonical_dn(&entry.dn);
        let stable_id = config.id_attribute.as_deref().and_then(|name| {
            get(name)
                .and_then(|values| values.first().cloned())
                .or_else(|| {
                    entry
                        .bin_attrs
                        .iter()
                        .find(|(key, _)| key.eq_ignore_ascii_case(name))
                        .and_then(|(_, values)| values.first())
                        .map(|bytes| binary_id(bytes))
                })
        });
        let mut record = Record::new(
            RecordKind::Contact,
            context.source.clone(),
            stable_id.unwrap_or_else(|| dn.clone()),
        );
        record.path = dn;
        record.container = config.base_dn.clone();
        record.custodian = config
            .custodian_attribute
            .as_deref()
            .and_then(get)
            .and_then(|values| values.first().cloned());
        for (name, mapping) in &config.attributes {
            if let Some(values) = get(&mapping.from) {
                let picked = mapping.all(values.iter().map(String::as_str));
                if !picked.is_empty() {
                    record.attributes.insert(name.clone(), picked.join(";"));
                }
            }
        }
        for (name, mapping) in &config.dates {
            let values = get(&mapping.from).map(|values| values.iter().map(String::as_str));
            match values.map(|values| mapping.date(values, context.timezone)) {
                None | Some(Ok(None | Some(DateValue::Never))) => {}
                Some(Ok(Some(DateValue::At(time)))) => {
                    record.dates.insert(name.clone(), time);
                }
                // Without the date a rule cannot judge the entry: its
                // findings stay open (the scan is partial for it).
                Some(Err(NotADate)) => {
                    report.count(ProblemKind::BadDate);
                    report.unread_prefixes.push(record.path.clone());
                }
            }
        }
        record.timestamps.modified = get("modifyTimestamp")
            .and_then(|values| values.first())
            .and_then(|value| parse_directory_time(value, context.timezone));
        if let Some(mut listed) = groups.and_then(|groups| groups.get(&record.path)).cloned() {
            listed.sort();
            listed.dedup();
            record
                .attributes
                .insert(config.groups_attribute.clone(), listed.join(";"));
        }
        if let Some(plan) = &context.content {
            record.content = plan.fields(&record);
        }
        record
    }
}

/// A binary id as text: a 16-byte GUID in its usual form (the first three
/// fields little-endian, as Windows writes `objectGUID`), anything else as
/// hex.
fn binary_id(bytes: &[u8]) -> String {
    let hex = |bytes: &[u8]| {
        bytes
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect::<String>()
    };
    match bytes {
        [a0, a1, a2, a3, b0, b1, c0, c1, rest @ ..] if rest.len() == 8 => format!(
            "{}-{}-{}-{}-{}",
            hex(&[*a3, *a2, *a1, *a0]),
            hex(&[*b1, *b0]),
            hex(&[*c1, *c0]),
            hex(&rest[..2]),
            hex(&rest[2..])
        ),
        _ => hex(bytes),
    }
}

/// Add `group` to the memberships of each member DN in `values`.
fn add_members(memberships: &mut Memberships, group: &str, values: &[String]) {
    for member in values {
        // uniqueMember may end in an optional UID: `…#'0101'B`.
        let dn = canonical_dn(member.split('#').next().unwrap_or(member));
        memberships.entry(dn).or_default().push(group.to_owned());
    }
}

/// An attribute name and the range of values it holds, when the server sent
/// part of them (`member;range=0-1499`: from 0 to 1499; `member;range=1500-*`:
/// from 1500 to the end, `None`).
fn member_range(name: &str) -> (&str, Option<(u64, Option<u64>)>) {
    let Some((base, options)) = name.split_once(';') else {
        return (name, None);
    };
    let range = options.split(';').find_map(|option| {
        let bounds = option
            .strip_prefix("range=")
            .or_else(|| option.strip_prefix("Range="))?;
        let (low, high) = bounds.split_once('-')?;
        let low = low.parse().ok()?;
        let high = if high == "*" {
            None
        } else {
            Some(high.parse().ok()?)
        };
        Some((low, high))
    });
    (base, range)
}

/// A DN as records, groups and members carry it: normalised as directories
/// compare DNs ([`crate::dn`]), or lower-cased when it does not parse.
fn canonical_dn(dn: &str) -> String {
    crate::dn::normalise(dn).unwrap_or_else(|| dn.trim().to_lowercase())
}

/// A GeneralizedTime (`20240115103000Z`, with optional fraction and offset) or a
/// plain `YYYY-MM-DD` (midnight in `zone`, the one date policy): the
/// server's own times (`modifyTimestamp`).
pub(crate) fn parse_directory_time(text: &str, zone: chrono_tz::Tz) -> Option<DateTime<Utc>> {
    tillsyn_core::dates::day(text, zone)
        .or_else(|| tillsyn_core::dates::generalized_time(text.trim()))
}

impl crate::capability::ServerSearch for LdapSource {
    async fn search(
        &self,
        terms: &crate::capability::SearchTerms,
    ) -> Result<Vec<String>, ConnectorError> {
        self.search_entries(&terms.attributes).await
    }
}

impl crate::capability::PeopleLookup for LdapSource {
    async fn lookup(
        &self,
        attribute: &str,
        values: &[String],
        wanted: &[&str],
    ) -> Result<BTreeMap<String, BTreeMap<String, String>>, ConnectorError> {
        self.lookup_entries(attribute, values, wanted).await
    }
}

#[cfg(test)]
mod tests {
    use super::{member_range, parse_directory_time};

    #[test]
    fn object_guids_read_as_windows_writes_them() {
        // ryG0p73oPk6KZNtzpUqCLg== as Samba sent it.
        let bytes = [
            0xaf, 0x21, 0xb4, 0xa7, 0xbd, 0xe8, 0x3e, 0x4e, 0x8a, 0x64, 0xdb, 0x73, 0xa5, 0x4a,
            0x82, 0x2e,
        ];
        assert_eq!(
            super::binary_id(&bytes),
            "a7b421af-e8bd-4e3e-8a64-db73a54a822e"
        );
        assert_eq!(super::binary_id(&[1, 2]), "0102");
    }

    #[test]
    fn reads_the_ranges_active_directory_sends_members_in() {
        assert_eq!(member_range("member"), ("member", None));
        assert_eq!(
            member_range("member;range=0-1499"),
            ("member", Some((0, Some(1499))))
        );
        assert_eq!(
            member_range("member;range=1500-*"),
            ("member", Some((1500, None)))
        );
        assert_eq!(
            member_range("member;Range=3000-4499"),
            ("member", Some((3000, Some(4499))))
        );
        assert_eq!(member_range("member;binary"), ("member", None));
        assert_eq!(member_range("member;range=x-1"), ("member", None));
    }

    #[test]
    fn reads_directory_times() {
        let cases: &[(&str, Option<&str>)] = &[
            ("20240115103000Z", Some("2024-01-15T10:30:00+00:00")),
            ("20240115103000.5Z", Some("2024-01-15T10:30:00+00:00")),
            ("20240115103000+0200", Some("2024-01-15T08:30:00+00:00")),
            ("202401151030Z", Some("2024-01-15T10:30:00+00:00")),
            ("2024-01-15", Some("2024-01-15T00:00:00+00:00")),
            ("20241315103000Z", None),
            ("20240115103000", None),
            ("yesterday", None),
            ("", None),
        ];
        for (text, expected) in cases {
            let got = parse_directory_time(text, chrono_tz::UTC).map(|time| time.to_rfc3339());
            assert_eq!(got.as_deref(), *expected, "{text:?}");
        }
    }
}
