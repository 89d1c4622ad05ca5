//! Reading the directory into records: the search (whole, or changes only),
//! groups and their members in ranges, and each entry as a record.

use super::LdapSource;
use super::checkpoint::{KEY, LdapCheckpoint, Position, SETTLE_SECONDS};
use super::transport::{next_entry, result_name, unavailable};
use crate::values::NotADate;
use crate::{
    Connector, ConnectorError, ProblemKind, Record, RecordKind, RecordSink, ScanContext, ScanReport,
};
use chrono::{DateTime, Utc};
use ldap3::adapters::{Adapter, PagedResults};
use ldap3::{Scope, SearchEntry};
use std::time::Duration;
use tillsyn_core::dates::DateValue;

/// Member DN (lower-cased) → the DNs of the groups listing it.
pub(super) type Memberships = std::collections::HashMap<String, Vec<String>>;

impl LdapSource {
    pub(super) fn requested_attributes(&self) -> Vec<String> {
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

/// A filter in parentheses, as `(&…)` needs its parts.
pub(super) fn parenthesised(filter: &str) -> String {
    let filter = filter.trim();
    if filter.starts_with('(') {
        filter.to_owned()
    } else {
        format!("({filter})")
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
        let previous = self.previous(&context, &plan, now);
        let (mut since, settled) = match previous
            .as_ref()
            .and_then(|last| last.since(context.timezone))
        {
            Some((since, settled)) => (Some(since.to_owned()), settled),
            None => (None, false),
        };
        // Active Directory: changes by uSNChanged against one controller, never
        // by modifyTimestamp (from whenChanged, which is not replicated).
        let dc = match config.incremental_full_every_hours {
            Some(_) => self.dc_position(&mut ldap, timeout).await,
            None => None,
        };
        let mut since_usn = dc
            .as_ref()
            .and_then(|dc| previous.as_ref().and_then(|last| last.usn(dc)));
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
        // A full read starts the clock; an incremental one keeps the last
        // full read's.
        let full_at = match (&previous, since.is_some() || since_usn.is_some()) {
            (Some(last), true) => last.full_at,
            _ => now,
        };
        let position = match (&dc, newest) {
            (Some(dc), _) => Some(Position::Usn(dc.clone())),
            (None, Some(newest))
                if config.incremental_full_every_hours.is_some() && every_entry_dated =>
            {
                let settled = parse_directory_time(&newest, context.timezone)
                    .is_some_and(|time| time.timestamp() < now - SETTLE_SECONDS);
                Some(Position::Modified {
                    since: newest,
                    settled,
                })
            }
            _ => None,
        };
        if let Some(position) = position {
            crate::checkpoint::store(
                &mut report.checkpoints,
                KEY,
                &plan,
                &LdapCheckpoint { full_at, position },
            );
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
    pub(super) fn plan_fingerprint(&self, context: &ScanContext) -> String {
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
    pub(super) async fn read_groups(
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

    pub(super) fn record(
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
pub(super) fn binary_id(bytes: &[u8]) -> String {
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
pub(super) fn add_members(memberships: &mut Memberships, group: &str, values: &[String]) {
    for member in values {
        // uniqueMember may end in an optional UID: `…#'0101'B`.
        let dn = canonical_dn(member.split('#').next().unwrap_or(member));
        memberships.entry(dn).or_default().push(group.to_owned());
    }
}

/// An attribute name and the range of values it holds, when the server sent
/// part of them (`member;range=0-1499`: from 0 to 1499; `member;range=1500-*`:
/// from 1500 to the end, `None`).
pub(super) fn member_range(name: &str) -> (&str, Option<(u64, Option<u64>)>) {
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
pub(super) fn canonical_dn(dn: &str) -> String {
    crate::dn::normalise(dn).unwrap_or_else(|| dn.trim().to_lowercase())
}

/// A GeneralizedTime (`20240115103000Z`, with optional fraction and offset) or a
/// plain `YYYY-MM-DD` (midnight in `zone`, the one date policy): the
/// server's own times (`modifyTimestamp`).
pub(crate) fn parse_directory_time(text: &str, zone: chrono_tz::Tz) -> Option<DateTime<Utc>> {
    tillsyn_core::dates::day(text, zone)
        .or_else(|| tillsyn_core::dates::generalized_time(text.trim()))
}
