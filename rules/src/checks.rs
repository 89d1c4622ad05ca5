//! One function per rule kind: whether a record breaks it, and what was
//! measured. Pure: the record, the rule and the time in, a finding out.

use crate::CompiledRule;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use globset::GlobSet;
use tillsyn_config::rules::{
    Anchor, Conditions, MaxAgeCheck, MaxIntervalCheck, MaxRecipientsCheck, MonthDay,
    RecipientField, TimestampField,
};
use tillsyn_connectors::{Address, Record};
use tillsyn_core::detail;

pub(crate) fn selects(rule: &CompiledRule, record: &Record) -> bool {
    matches(&rule.config.when, &rule.paths, &rule.exclude, record)
}

/// Whether `record` meets `when` (its path globs compiled as `paths`/`exclude`).
/// Sources are checked by the caller.
pub(crate) fn matches(
    when: &Conditions,
    paths: &GlobSet,
    exclude: &GlobSet,
    record: &Record,
) -> bool {
    matches_place(when, paths, exclude, record) && {
        let attributes_match = when.attributes.iter().all(|(name, wanted)| {
            record
                .attributes
                .get(name)
                .is_some_and(|value| attribute_matches(value, wanted))
        });
        let present = when
            .present
            .iter()
            .all(|name| record.attributes.contains_key(name) || record.dates.contains_key(name));
        attributes_match && present
    }
}

/// The conditions of `when` that a place decides (kind, folder, path), not
/// those of one record's attributes: whether a record there could meet it.
pub(crate) fn matches_place(
    when: &Conditions,
    paths: &GlobSet,
    exclude: &GlobSet,
    record: &Record,
) -> bool {
    if !when.kinds.is_empty() && !when.kinds.contains(&record.kind) {
        return false;
    }
    if !when.folders.is_empty() && !when.folders.iter().any(|folder| in_folder(record, folder)) {
        return false;
    }
    if !when.paths.is_empty() && !paths.is_match(&record.path) {
        return false;
    }
    !exclude.is_match(&record.path)
}

/// Whether an attribute `value` satisfies a condition `wanted`: equal ignoring
/// ASCII case (directories and CRMs are loose about case: `Closed`), DNs equal
/// as directories compare them ([`tillsyn_connectors::dn`]: case, spaces and
/// escapes), or, for a list (several values joined with `;`, as group
/// memberships are), one of its items so.
pub(crate) fn attribute_matches(value: &str, wanted: &str) -> bool {
    use tillsyn_connectors::dn::same;
    same(value, wanted) || (value.contains(';') && value.split(';').any(|item| same(item, wanted)))
}

pub(crate) fn in_folder(record: &Record, folder: &str) -> bool {
    if folder.starts_with('\\') {
        return record
            .attributes
            .get("special_use")
            .is_some_and(|special| special.eq_ignore_ascii_case(folder));
    }
    if folder.eq_ignore_ascii_case("INBOX") {
        return record.container.eq_ignore_ascii_case("INBOX");
    }
    record.container == folder
}

pub(crate) fn timestamp(record: &Record, field: &TimestampField) -> Option<DateTime<Utc>> {
    let times = &record.timestamps;
    match field {
        TimestampField::Received => times.received,
        TimestampField::Created => times.created,
        TimestampField::Modified => times.modified,
        TimestampField::LastActivity => times.last_activity,
        TimestampField::Date(name) => record.dates.get(name).copied(),
    }
}

/// The first instant after the fiscal year that `start` falls in, in `timezone`.
pub(crate) fn after_fiscal_year(
    start: DateTime<Utc>,
    year_end: MonthDay,
    timezone: chrono_tz::Tz,
) -> Option<DateTime<Utc>> {
    let local = start.with_timezone(&timezone).date_naive();
    let this_year = NaiveDate::from_ymd_opt(local.year(), year_end.month, year_end.day)?;
    let end = if local <= this_year {
        this_year
    } else {
        NaiveDate::from_ymd_opt(local.year() + 1, year_end.month, year_end.day)?
    };
    tillsyn_core::dates::midnight(end.succ_opt()?, timezone)
}

pub(crate) fn days_between(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_days()
}

pub(crate) fn max_age(
    check: &MaxAgeCheck,
    record: &Record,
    now: DateTime<Utc>,
    timezone: chrono_tz::Tz,
) -> Option<(Option<i64>, detail::Detail)> {
    let (field, start, deadline) = max_age_deadline(check, record, timezone)?;
    if now <= deadline {
        return None;
    }
    let age = days_between(start, now);
    // Dates in the organisation's own time zone: a year end is its year end.
    let local = |time: DateTime<Utc>| time.with_timezone(&timezone).format("%Y-%m-%d").to_string();
    let detail = detail::Detail::MaxAge {
        field: field.to_string(),
        start: local(start),
        days: age,
        limit: check.max_age.to_string(),
        grace: (!check.grace.is_zero()).then(|| check.grace.to_string()),
        after_year_end: check.anchor == Anchor::EndOfYear,
        overdue_since: local(deadline),
    };
    Some((Some(age), detail))
}

/// When a max_age rule says `record` must be gone: the timestamp it counts
/// from (and which), and the deadline (max_age and grace after it, or after
/// its fiscal year).
pub(crate) fn max_age_deadline<'a>(
    check: &'a MaxAgeCheck,
    record: &Record,
    timezone: chrono_tz::Tz,
) -> Option<(&'a TimestampField, DateTime<Utc>, DateTime<Utc>)> {
    let (field, start) = check
        .timestamp
        .0
        .iter()
        .find_map(|field| timestamp(record, field).map(|time| (field, time)))?;
    let clock_start = match check.anchor {
        Anchor::None => start,
        Anchor::EndOfYear => after_fiscal_year(
            start,
            check
                .fiscal_year_end
                .unwrap_or(MonthDay { month: 12, day: 31 }),
            timezone,
        )?,
    };
    let due = check.max_age.after(clock_start)?;
    Some((field, start, check.grace.after(due)?))
}

pub(crate) fn max_interval(
    check: &MaxIntervalCheck,
    record: &Record,
    now: DateTime<Utc>,
    timezone: chrono_tz::Tz,
) -> Option<(Option<i64>, detail::Detail)> {
    let start = timestamp(record, &check.from)?;
    let deadline = check.max.after(start)?;
    let local = |time: DateTime<Utc>| {
        time.with_timezone(&timezone)
            .format("%Y-%m-%d %H:%M")
            .to_string()
    };
    let hours = |from: DateTime<Utc>, to: DateTime<Utc>| (to - from).num_hours();
    let measured = match timestamp(record, &check.to) {
        Some(end) if end > deadline => (hours(start, end), true),
        Some(_) => return None,
        None if now > deadline => (hours(start, now), false),
        None => return None,
    };
    let (hours, arrived) = measured;
    let detail = detail::Detail::Interval {
        from: check.from.to_string(),
        to: check.to.to_string(),
        start: local(start),
        hours,
        limit: check.max.to_string(),
        arrived,
    };
    Some((Some(days_between(start, now)), detail))
}

pub(crate) fn contains(
    check: &tillsyn_config::rules::ContainsCheck,
    record: &Record,
    now: DateTime<Utc>,
) -> Option<(Option<i64>, detail::Detail)> {
    let content = record.content.as_ref()?;
    let min = check.min_confidence.level();
    // Which detectors, how many at each confidence, in which kinds of part;
    // never the values, nor attachment names (they may name a person).
    let mut by_detector: std::collections::BTreeMap<&str, [u64; 3]> = Default::default();
    let (mut bodies, mut attachments, mut files) = (0, 0, 0);
    let mut fields: Vec<&str> = Vec::new();
    for part in &content.parts {
        let mut counted = false;
        for found in &part.matches {
            if found.confidence >= min && check.detectors.contains(&found.detector) {
                let levels = by_detector.entry(found.detector.as_str()).or_default();
                levels[found.confidence as usize] += 1;
                counted = true;
            }
        }
        if counted {
            match part.part {
                tillsyn_connectors::content::Part::Body => bodies += 1,
                tillsyn_connectors::content::Part::Attachment(_) => attachments += 1,
                tillsyn_connectors::content::Part::File => files += 1,
                tillsyn_connectors::content::Part::Field(ref name) => fields.push(name),
            }
        }
    }
    let count: u64 = by_detector.values().flatten().sum();
    if count == 0 || count < check.min_count {
        return None;
    }
    let detail = detail::Detail::Contains {
        found: by_detector
            .iter()
            .map(|(detector, levels)| ((*detector).to_owned(), *levels))
            .collect(),
        body: bodies > 0,
        attachments,
        file: files > 0,
        // Field names are the config's own words.
        fields: fields.iter().map(|field| (*field).to_owned()).collect(),
    };
    let age = record
        .timestamps
        .received
        .or(record.timestamps.modified)
        .map(|time| days_between(time, now));
    Some((age, detail))
}

pub(crate) fn excluded(address: &Address, domains: &[String]) -> bool {
    let domain = address.domain();
    domains.iter().any(|excluded| {
        let excluded = excluded.trim_start_matches('@');
        domain.eq_ignore_ascii_case(excluded)
            || (domain.len() > excluded.len()
                && domain.as_bytes()[domain.len() - excluded.len() - 1] == b'.'
                && domain[domain.len() - excluded.len()..].eq_ignore_ascii_case(excluded))
    })
}

pub(crate) fn max_recipients(
    check: &MaxRecipientsCheck,
    record: &Record,
    now: DateTime<Utc>,
) -> Option<(Option<i64>, detail::Detail)> {
    let participants = record.participants.as_ref()?;
    let (label, lists): (&str, Vec<&Vec<Address>>) = match check.count {
        RecipientField::Cc => ("Cc", vec![&participants.cc]),
        RecipientField::To => ("To", vec![&participants.to]),
        RecipientField::Total => ("To+Cc", vec![&participants.to, &participants.cc]),
    };
    let mut counted: Vec<&Address> = lists
        .into_iter()
        .flatten()
        .filter(|address| !excluded(address, &check.exclude_domains))
        .collect();
    counted.sort_by(|a, b| a.address.cmp(&b.address));
    counted.dedup_by(|a, b| a.address == b.address);
    let count = counted.len();
    if count <= check.max as usize {
        return None;
    }
    let mut domains: Vec<&str> = counted.iter().map(|address| address.domain()).collect();
    domains.sort_unstable();
    domains.dedup();
    let detail = detail::Detail::Recipients {
        count,
        header: label.to_owned(),
        outside_excluded: !check.exclude_domains.is_empty(),
        domains: domains.len(),
        limit: check.max,
    };
    let age = record
        .timestamps
        .received
        .map(|received| days_between(received, now));
    Some((age, detail))
}
