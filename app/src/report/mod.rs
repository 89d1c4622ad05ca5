//! The monthly compliance report: what management reads once a month, promise by
//! promise, all taken from the findings store's history.
//!
//! - [`build`] reads the store for one month (in the configured time zone): what
//!   was open at the month's end, what was new and resolved during it, a 12-month
//!   trend per promise, and which sources were verified. A source with no complete
//!   scan in the month is *not verified*, and a promise that has no open violation
//!   but a source that was not verified is shown as *not verified*, never as kept.
//! - [`render`] turns that into a subject, a plain-text and an HTML body
//!   (handlebars templates in `reports/`, overridable), a trend chart as PNG and a
//!   CSV of the open findings.
//! - [`mail`] wraps it as one MIME message, keeps it in the store's outbox and
//!   delivers it exactly once per month.
//!
//! Everything is computed relative to the month's end, not to today, so a report
//! for a past month reads the same whenever it is made. Custodians and the parts of
//! record locations that name people are keyed pseudonyms unless
//! `[privacy] name_people` is set (see [`crate::privacy`]).

pub mod chart;
pub mod departments;
pub mod digest;
pub mod mail;
pub mod outbox;
pub mod render;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::privacy::PersonDisplay;
use tillsyn_config::Config;
use tillsyn_core::language::Language;
use tillsyn_store::{OpenAt, Store, StoreError};

/// Months in the trend, the report's own included.
pub const TREND_MONTHS: usize = 12;
/// Longest-open cases listed per promise.
pub const OLDEST_CASES: usize = 5;
/// Custodians listed per promise, most open first.
pub const TOP_CUSTODIANS: usize = 5;
/// Promises listed as the month's biggest movers.
pub const MOVERS: usize = 3;
/// Locations listed per promise.
pub const LOCATIONS: usize = 8;

/// A calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Month {
    /// Year.
    pub year: i32,
    /// 1–12.
    pub month: u32,
}

/// Why a month could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid month {0:?}; write YYYY-MM, e.g. 2026-10")]
pub struct MonthError(pub String);

impl std::str::FromStr for Month {
    type Err = MonthError;
    fn from_str(text: &str) -> Result<Month, MonthError> {
        let error = || MonthError(text.to_owned());
        let (year, month) = text.split_once('-').ok_or_else(error)?;
        let year: i32 = year.parse().map_err(|_| error())?;
        let month: u32 = month.parse().map_err(|_| error())?;
        if !(1..=12).contains(&month) || !(1970..=9999).contains(&year) || text.len() != 7 {
            return Err(error());
        }
        Ok(Month { year, month })
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl Month {
    /// The month `time` falls in, in `zone`.
    pub fn of(time: DateTime<Utc>, zone: Tz) -> Month {
        let local = time.with_timezone(&zone);
        Month {
            year: local.year(),
            month: local.month(),
        }
    }

    /// The month before.
    pub fn previous(self) -> Month {
        if self.month == 1 {
            Month {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Month {
                year: self.year,
                month: self.month - 1,
            }
        }
    }

    /// The month after.
    pub fn next(self) -> Month {
        if self.month == 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// Midnight at the start of the month in `zone`, as UTC.
    pub fn start(self, zone: Tz) -> DateTime<Utc> {
        let date = NaiveDate::from_ymd_opt(self.year, self.month, 1).unwrap_or_default();
        tillsyn_core::dates::midnight(date, zone).unwrap_or_else(|| {
            Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).unwrap_or_default())
        })
    }

    /// The start of the next month: the end of this one.
    pub fn end(self, zone: Tz) -> DateTime<Utc> {
        self.next().start(zone)
    }

    /// "oktober 2026" / "October 2026".
    pub fn name(self, language: Language) -> String {
        const SV: [&str; 12] = [
            "januari",
            "februari",
            "mars",
            "april",
            "maj",
            "juni",
            "juli",
            "augusti",
            "september",
            "oktober",
            "november",
            "december",
        ];
        const EN: [&str; 12] = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ];
        let index = (self.month as usize).saturating_sub(1).min(11);
        match language {
            Language::Sv => format!("{} {}", SV[index], self.year),
            Language::En => format!("{} {}", EN[index], self.year),
        }
    }

    /// "okt" / "Oct", for chart axes.
    pub fn short_name(self, language: Language) -> String {
        self.name(language).chars().take(3).collect()
    }
}

/// Everything the templates see.
#[derive(Debug, Clone, Serialize)]
pub struct ReportData {
    /// `YYYY-MM`.
    pub month: String,
    /// The month in words.
    pub month_name: String,
    /// The month before, in words.
    pub previous_month_name: String,
    /// The organisation, when configured.
    pub organisation: Option<String>,
    /// The day the figures are of: the month's last day, or today for a month
    /// not yet over, `YYYY-MM-DD`.
    pub month_end: String,
    /// The first month of the trend, in words.
    pub trend_from: String,
    /// The time zone dates are in.
    pub timezone: String,
    /// The one-screen summary.
    pub summary: Summary,
    /// One section per promise (rule), in config order.
    pub promises: Vec<Promise>,
    /// Per source: was it verified this month.
    pub coverage: Vec<SourceCoverage>,
    /// Whether custodians are shown by name.
    pub people_named: bool,
    /// The trend chart's `src` in the HTML (set when rendering).
    pub chart_src: String,
    /// Its height in pixels (one row of panels per three promises).
    pub chart_height: u32,
    /// Month labels of the trend, oldest first.
    pub trend_months: Vec<String>,
    /// Erasure requests, when the config has an `erased` rule or the store
    /// holds requests.
    pub erasure: Option<ErasureSection>,
    /// Exceptions ("dispens") in force when the report is made, in config
    /// order.
    pub exceptions: Vec<ExceptionLine>,
    /// The month's personal digests, counted, when any were made.
    pub digest: Option<tillsyn_store::DigestCoverage>,
    /// What changed since the month before.
    pub changes: Changes,
    /// The CSV lists every open finding (else counts per promise and custodian).
    pub full_csv: bool,
}

/// One exception in force, as the report lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ExceptionLine {
    /// Its id.
    pub id: String,
    /// The rule it covers (`*`: every rule).
    pub rule: String,
    /// Why the data is kept.
    pub reason: String,
    /// Its last day.
    pub until: String,
    /// Open findings it covers now (not counted as broken).
    pub findings: u64,
    /// It ends before the next month is over: its findings count again then.
    pub ends_next_month: bool,
}

/// The erasure requests, as of when the report is made (the index holds the
/// present, not each past day).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ErasureSection {
    /// Requests received (dated) in the month.
    pub received: u64,
    /// Requests on the register in all.
    pub total: u64,
    /// Past their deadline and verified erased in every store.
    pub erased: u64,
    /// Past their deadline and still held somewhere.
    pub overdue: u64,
    /// Past their deadline, held nowhere known, but some store could not be
    /// verified (failed, incomplete, or not covered for the kind).
    pub not_verified: u64,
    /// Deadline still ahead.
    pub pending: u64,
}

/// The summary at the top.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Promises checked.
    pub promises: usize,
    /// With no open violation and every source verified.
    pub kept: usize,
    /// With open violations at the month's end.
    pub broken: usize,
    /// With no open violation known, but a source not verified.
    pub not_verified: usize,
    /// Open violations at the month's end.
    pub open: u64,
    /// Open at the end of the month before.
    pub open_previous: u64,
    /// `open - open_previous`, signed: "+4", "−2", "±0".
    pub change: String,
    /// First seen during the month.
    pub new: u64,
    /// Resolved during the month.
    pub resolved: u64,
    /// Sources configured.
    pub sources: usize,
    /// Sources not verified this month.
    pub sources_not_verified: usize,
}

/// One promise's section.
#[derive(Debug, Clone, Serialize)]
pub struct Promise {
    /// Rule id.
    pub id: String,
    /// The promise, quoted.
    pub policy: String,
    /// What the rule checks.
    pub description: Option<String>,
    /// Severity.
    pub severity: String,
    /// `broken`, `kept` or `not_verified`.
    pub status: &'static str,
    /// Open at the month's end.
    pub open: u64,
    /// Open at the end of the month before.
    pub open_previous: u64,
    /// Signed change.
    pub change: String,
    /// First seen during the month.
    pub new: u64,
    /// Resolved during the month.
    pub resolved: u64,
    /// The longest-open cases.
    pub oldest: Vec<Case>,
    /// Where the open ones are, most first.
    pub locations: Vec<Location>,
    /// Open at each month's end, oldest first.
    pub trend: Vec<u64>,
    /// Sources it checks.
    pub sources: Vec<String>,
    /// Of those, the ones not verified this month.
    pub unverified_sources: Vec<String>,
    /// Who holds the open ones: custodians with the most, with the change since
    /// the month before (named or pseudonymised).
    pub custodians: Vec<CustodianCount>,
    /// The share of the records checked that is in breach, in the report's
    /// language ("19,613 of 21,224 messages (92 %) in 6 of 9 mailboxes");
    /// `None` before a scan counted what the rule checks.
    pub rate: Option<String>,
}

/// A custodian's open violations of one promise.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CustodianCount {
    /// Named or pseudonymised.
    pub custodian: String,
    /// Open at the month's end.
    pub open: u64,
    /// Since the month before, signed.
    pub change: String,
    /// The custodian's department, where `[report.departments]` finds one.
    pub department: Option<String>,
}

/// What changed since the month before, promise by promise.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Changes {
    /// Promises with no open violation a month ago and some now.
    pub newly_broken: Vec<String>,
    /// Promises with open violations a month ago and none now.
    pub newly_kept: Vec<String>,
    /// The promises whose open count moved most, with the change.
    pub movers: Vec<(String, String)>,
    /// The oldest violation still open: its promise, since when, days open.
    pub oldest: Option<(String, String, i64)>,
}

/// One open violation, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct Case {
    /// Source.
    pub source: String,
    /// Folder or part of the source.
    pub location: String,
    /// Custodian, named or pseudonymised.
    pub custodian: String,
    /// First seen, `YYYY-MM-DD`.
    pub since: String,
    /// Days open at the month's end.
    pub open_days: i64,
    /// What was measured.
    pub detail: String,
}

/// A count of open violations in one place.
#[derive(Debug, Clone, Serialize)]
pub struct Location {
    /// Source.
    pub source: String,
    /// Folder or part of the source ("" for the source as a whole).
    pub location: String,
    /// Open violations there.
    pub count: u64,
}

/// A source's coverage in the month.
#[derive(Debug, Clone, Serialize)]
pub struct SourceCoverage {
    /// Source name.
    pub name: String,
    /// Its `type`.
    pub kind: String,
    /// `verified` (a complete scan), `partial` (read, but not all of it) or
    /// `not_verified` (no scan read it to the end).
    pub status: &'static str,
    /// Scans started in the month.
    pub scans: usize,
    /// Of them complete.
    pub complete: usize,
    /// Partial.
    pub partial: usize,
    /// Failed.
    pub failed: usize,
    /// Last complete or partial scan's end in the month, `YYYY-MM-DD HH:MM`.
    pub last_success: Option<String>,
    /// Kinds of the failures.
    pub error_kinds: Vec<String>,
}

/// The open findings at the month's end, one row each, for the CSV.
#[derive(Debug, Clone, Serialize)]
pub struct CsvRow {
    /// Rule id.
    pub rule: String,
    /// Severity.
    pub severity: String,
    /// Source.
    pub source: String,
    /// Folder or part.
    pub location: String,
    /// Record, with the custodian pseudonymised where it appears in it.
    pub record: String,
    /// Record kind.
    pub kind: String,
    /// Custodian.
    pub custodian: String,
    /// First seen, `YYYY-MM-DD`.
    pub first_seen: String,
    /// Days open at the month's end.
    pub open_days: i64,
    /// What was measured.
    pub detail: String,
}

/// Open findings of one promise held by one custodian, a row of the default CSV.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CountRow {
    /// Rule id.
    pub rule: String,
    /// Severity.
    pub severity: String,
    /// Custodian, named or pseudonymised.
    pub custodian: String,
    /// Open at the month's end, counted as broken.
    pub open: u64,
}

/// A built report: the template data and the CSV rows.
#[derive(Debug, Clone)]
pub struct Report {
    /// The month.
    pub month: Month,
    /// The language.
    pub language: Language,
    /// What the templates see.
    pub data: ReportData,
    /// The open findings, for the CSV with `attach_findings`.
    pub rows: Vec<CsvRow>,
    /// Open findings per promise and custodian, the CSV without it.
    pub counts: Vec<CountRow>,
}

/// Errors building a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The pseudonym key is unusable.
    #[error(transparent)]
    Key(#[from] crate::privacy::KeyError),
    /// A template failed.
    #[error(transparent)]
    Render(#[from] render::RenderError),
}

/// The place of a record within its source, without naming anyone: the mail
/// folder (not the account), a file's top folder, a directory entry's parent;
/// nothing for a CRM item.
pub fn location(kind: &str, path: &str) -> String {
    match kind {
        "message" => {
            let parts: Vec<&str> = path.split('/').collect();
            if parts.len() >= 3 {
                parts[1..parts.len() - 1].join("/")
            } else {
                String::new()
            }
        }
        "file" | "folder" => match path.split_once('/') {
            Some((top, _)) => top.to_owned(),
            None => String::new(),
        },
        "contact" => path
            .split_once(',')
            .map(|(_, parent)| parent.trim().to_owned())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// What is in breach of one promise: records, and the custodians holding them.
#[derive(Debug, Clone, Copy)]
struct Breach {
    records: u64,
    custodians: u64,
}

/// "19,613 of 21,224 messages (92 %) in 6 of 9 mailboxes", in `language`,
/// naming what the sources of `kinds` hold. `None` when nothing was counted,
/// or the counts cannot stand together (more in breach than checked).
fn rate_text(
    language: Language,
    breach: Breach,
    checked: &tillsyn_rules::checked::Checked,
    kinds: &BTreeSet<&str>,
) -> Option<String> {
    if checked.records == 0 || breach.records > checked.records {
        return None;
    }
    let mail = !kinds.is_empty() && kinds.iter().all(|kind| matches!(*kind, "imap" | "maildir"));
    let only = |kind: &str| kinds.len() == 1 && kinds.contains(kind);
    let (records, custodians) = match language {
        Language::En => (
            if mail {
                "messages"
            } else if only("fileshare") {
                "files"
            } else if only("ldap") {
                "directory entries"
            } else if only("http") {
                "items"
            } else {
                "records"
            },
            if mail { "mailboxes" } else { "custodians" },
        ),
        Language::Sv => (
            if mail {
                "meddelanden"
            } else if only("fileshare") {
                "filer"
            } else if only("ldap") {
                "katalogposter"
            } else {
                "poster"
            },
            if mail { "brevlådor" } else { "ansvariga" },
        ),
    };
    let share = breach.records as f64 * 100.0 / checked.records as f64;
    let percent = match share {
        share if share > 0.0 && share < 1.0 => "<1".to_owned(),
        share if share > 99.0 && share < 100.0 => ">99".to_owned(),
        share => format!("{share:.0}"),
    };
    let number = |value: u64| thousands(value, language);
    let (of, at_least, among) = match language {
        Language::En => ("of", "at least ", "in"),
        Language::Sv => ("av", "minst ", "hos"),
    };
    let at_least = if checked.complete { "" } else { at_least };
    let mut text = format!(
        "{} {of} {at_least}{} {records} ({percent} %)",
        number(breach.records),
        number(checked.records)
    );
    if checked.custodians > 0 && breach.custodians <= checked.custodians {
        text.push_str(&format!(
            " {among} {} {of} {} {custodians}",
            number(breach.custodians),
            number(checked.custodians)
        ));
    }
    Some(text)
}

/// `value` with its thousands grouped as `language` writes them: 21,224 or
/// 21 224.
fn thousands(value: u64, language: Language) -> String {
    let separator = match language {
        Language::En => ',',
        Language::Sv => '\u{a0}',
    };
    let digits = value.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(separator);
        }
        grouped.push(digit);
    }
    grouped
}

fn signed(change: i64) -> String {
    match change {
        0 => "±0".to_owned(),
        change if change > 0 => format!("+{change}"),
        change => format!("−{}", change.unsigned_abs()),
    }
}

/// What a finding measured, in `language` when it has it as data (older
/// findings have only the English text).
fn detail_in(finding: &OpenAt, language: Language) -> String {
    finding
        .detail_data
        .as_deref()
        .and_then(tillsyn_core::detail::Detail::from_json)
        .map_or_else(|| finding.detail.clone(), |data| data.render(language))
}

fn configured_rule(config: &Config, rule: &str) -> bool {
    config.rules.iter().any(|configured| configured.id == rule)
}

fn local_date(time: DateTime<Utc>, zone: Tz) -> String {
    time.with_timezone(&zone).format("%Y-%m-%d").to_string()
}

/// Read the store and build `month`'s report under `config`, as of the month's
/// end, or of `now` for a month not yet over.
pub fn build(
    config: &Config,
    store: &mut Store,
    month: Month,
    now: DateTime<Utc>,
) -> Result<Report, ReportError> {
    build_with(config, store, month, now, &departments::Departments::new())
}

/// The moment `month`'s report is as of: the month's end, or just after `now`
/// for a month not yet over (stored times are whole seconds).
pub fn report_end(month: Month, zone: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
    let start = month.start(zone);
    month
        .end(zone)
        .min(now.max(start) + chrono::TimeDelta::seconds(1))
}

/// [`build`], with custodians' departments (custodian as stored → department) to
/// show in "who".
pub fn build_with(
    config: &Config,
    store: &mut Store,
    month: Month,
    now: DateTime<Utc>,
    departments: &departments::Departments,
) -> Result<Report, ReportError> {
    // The exceptions as configured now: what they cover is not counted as
    // broken, at the month's end or in the trend.
    let exceptions = tillsyn_rules::exceptions::Exceptions::from_config(config);
    let covered = store.mark_exceptions(&exceptions, None)?;
    let store: &Store = store;
    let zone = config.daemon.timezone.0;
    let report_config = config.report.clone();
    let language = report_config
        .as_ref()
        .map_or(Language::default(), |report| report.language);
    let custodians = PersonDisplay::for_config(config)?;
    let people_named = custodians.names_people();

    let start = month.start(zone);
    let end = report_end(month, zone, now);
    let mut months = vec![month];
    while months.len() < TREND_MONTHS {
        let earliest = months[0].previous();
        months.insert(0, earliest);
    }
    let moments: Vec<DateTime<Utc>> = months.iter().map(|m| m.end(zone).min(end)).collect();
    let history = store.rule_history(&moments)?;
    let open = store.open_at(end)?;
    let checked_rows = store.checked_counts()?;
    // Open a month before, per promise and custodian, for who moved.
    let previous_end = moments
        .len()
        .checked_sub(2)
        .map_or(start, |index| moments[index]);
    let mut custodians_before: BTreeMap<(String, Option<String>), u64> = BTreeMap::new();
    for finding in store.open_at(previous_end)? {
        *custodians_before
            .entry((finding.rule, finding.custodian))
            .or_insert(0) += 1;
    }
    let scans = store.scans_between(start, end)?;

    // Coverage per configured source.
    let mut coverage = Vec::new();
    for source in &config.sources {
        let mine: Vec<_> = scans
            .iter()
            .filter(|scan| scan.source == source.name)
            .collect();
        let count = |status: &str| mine.iter().filter(|scan| scan.status == status).count();
        let (complete, partial, failed) = (count("complete"), count("partial"), count("failed"));
        let last_success = mine
            .iter()
            .filter(|scan| scan.status == "complete" || scan.status == "partial")
            .filter_map(|scan| scan.finished_at)
            .max()
            .map(|at| at.with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string());
        let error_kinds: BTreeSet<String> = mine
            .iter()
            .filter(|scan| scan.status == "failed")
            .filter_map(|scan| scan.error_kind.clone())
            .collect();
        coverage.push(SourceCoverage {
            name: source.name.clone(),
            kind: source.settings.type_name().to_owned(),
            status: if verified_in(&mine) {
                "verified"
            } else if complete + partial > 0 {
                "partial"
            } else {
                "not_verified"
            },
            scans: mine.len(),
            complete,
            partial,
            failed,
            last_success,
            error_kinds: error_kinds.into_iter().collect(),
        });
    }
    let verified: BTreeSet<&str> = coverage
        .iter()
        .filter(|source| source.status == "verified")
        .map(|source| source.name.as_str())
        .collect();

    // Where a finding is, as output may show it.
    let shown_location = |finding: &OpenAt| {
        location(
            &finding.record_kind,
            &custodians.record(
                &finding.source,
                &finding.record_kind,
                &finding.record_path,
                finding.custodian.as_deref(),
            ),
        )
    };
    // Custodians shown once each.
    let mut shown: BTreeMap<Option<String>, String> = BTreeMap::new();
    let mut show = |custodian: &Option<String>| -> String {
        shown
            .entry(custodian.clone())
            .or_insert_with(|| custodians.show(custodian.as_deref()))
            .clone()
    };

    let mut by_rule: BTreeMap<&str, Vec<&OpenAt>> = BTreeMap::new();
    for finding in &open {
        by_rule
            .entry(finding.rule.as_str())
            .or_default()
            .push(finding);
    }
    let mut promises = Vec::new();
    for rule in &config.rules {
        let sources: Vec<String> = config
            .sources
            .iter()
            .filter(|source| rule.when.names_source(&source.name))
            .map(|source| source.name.clone())
            .collect();
        let unverified_sources: Vec<String> = sources
            .iter()
            .filter(|source| !verified.contains(source.as_str()))
            .cloned()
            .collect();
        let rule_history = history.get(&rule.id).cloned().unwrap_or_default();
        let mut trend = rule_history.open_at.clone();
        trend.resize(TREND_MONTHS, 0);
        let findings = by_rule.get(rule.id.as_str()).cloned().unwrap_or_default();
        let open_now = findings.len() as u64;
        let open_previous = trend.get(TREND_MONTHS - 2).copied().unwrap_or(0);
        // Oldest first: `open_at` is ordered by rule, then first seen.
        let oldest = findings
            .iter()
            .take(OLDEST_CASES)
            .map(|finding| Case {
                source: finding.source.clone(),
                location: shown_location(finding),
                custodian: show(&finding.custodian),
                since: local_date(finding.first_seen, zone),
                open_days: (end - finding.first_seen).num_days(),
                detail: detail_in(finding, language),
            })
            .collect();
        let mut places: BTreeMap<(String, String), u64> = BTreeMap::new();
        for finding in &findings {
            *places
                .entry((finding.source.clone(), shown_location(finding)))
                .or_insert(0) += 1;
        }
        let mut locations: Vec<Location> = places
            .into_iter()
            .map(|((source, location), count)| Location {
                source,
                location,
                count,
            })
            .collect();
        locations.sort_by(|a, b| b.count.cmp(&a.count).then(a.source.cmp(&b.source)));
        locations.truncate(LOCATIONS);
        let mut by_custodian: BTreeMap<&Option<String>, u64> = BTreeMap::new();
        for finding in &findings {
            *by_custodian.entry(&finding.custodian).or_insert(0) += 1;
        }
        let mut ranked: Vec<(&Option<String>, u64)> = by_custodian.into_iter().collect();
        ranked.sort_by_key(|(_, open)| std::cmp::Reverse(*open));
        let custodian_counts: Vec<CustodianCount> = ranked
            .into_iter()
            .take(TOP_CUSTODIANS)
            .map(|(custodian, open)| {
                let before = custodians_before
                    .get(&(rule.id.clone(), custodian.clone()))
                    .copied()
                    .unwrap_or(0);
                CustodianCount {
                    custodian: show(custodian),
                    open,
                    change: signed(open as i64 - before as i64),
                    department: custodian
                        .as_deref()
                        .and_then(|custodian| departments.get(custodian))
                        .cloned(),
                }
            })
            .collect();
        let rows: Vec<&tillsyn_store::CheckedRow> = checked_rows
            .iter()
            .filter(|row| row.rule == rule.id && sources.contains(&row.source))
            .collect();
        // A source of the rule that no finished scan has counted yet leaves
        // the count a lower bound.
        let uncounted = sources
            .iter()
            .any(|source| !rows.iter().any(|row| &row.source == source));
        let mut checked = tillsyn_rules::checked::by_rule(rows.iter().map(|row| {
            (
                row.rule.as_str(),
                row.records,
                row.custodians.as_slice(),
                row.complete,
            )
        }));
        if uncounted && let Some(counted) = checked.get_mut(&rule.id) {
            counted.complete = false;
        }
        let custodians_breached = findings
            .iter()
            .filter_map(|finding| finding.custodian.as_deref())
            .collect::<BTreeSet<_>>()
            .len() as u64;
        let kinds: BTreeSet<&str> = config
            .sources
            .iter()
            .filter(|source| sources.contains(&source.name))
            .map(|source| source.settings.type_name())
            .collect();
        let rate = checked.get(&rule.id).and_then(|checked| {
            rate_text(
                language,
                Breach {
                    records: open_now,
                    custodians: custodians_breached,
                },
                checked,
                &kinds,
            )
        });
        let status = if open_now > 0 {
            "broken"
        } else if unverified_sources.is_empty() {
            "kept"
        } else {
            "not_verified"
        };
        promises.push(Promise {
            id: rule.id.clone(),
            policy: rule.policy.clone(),
            description: rule.description.clone(),
            severity: rule.severity.as_str().to_owned(),
            status,
            open: open_now,
            open_previous,
            change: signed(open_now as i64 - open_previous as i64),
            new: rule_history.new,
            resolved: rule_history.resolved,
            oldest,
            locations,
            trend,
            sources,
            unverified_sources,
            custodians: custodian_counts,
            rate,
        });
    }
    let changes = {
        let mut movers: Vec<(i64, &Promise)> = promises
            .iter()
            .map(|promise| (promise.open as i64 - promise.open_previous as i64, promise))
            .filter(|(change, _)| *change != 0)
            .collect();
        movers.sort_by(|a, b| b.0.abs().cmp(&a.0.abs()).then(a.1.id.cmp(&b.1.id)));
        let oldest = open
            .iter()
            .filter(|finding| configured_rule(config, &finding.rule))
            .min_by_key(|finding| finding.first_seen)
            .map(|finding| {
                (
                    finding.rule.clone(),
                    local_date(finding.first_seen, zone),
                    (end - finding.first_seen).num_days(),
                )
            });
        Changes {
            newly_broken: promises
                .iter()
                .filter(|promise| promise.open_previous == 0 && promise.open > 0)
                .map(|promise| promise.id.clone())
                .collect(),
            newly_kept: promises
                .iter()
                .filter(|promise| promise.open_previous > 0 && promise.open == 0)
                .map(|promise| promise.id.clone())
                .collect(),
            movers: movers
                .into_iter()
                .take(MOVERS)
                .map(|(change, promise)| (promise.id.clone(), signed(change)))
                .collect(),
            oldest,
        }
    };

    let configured: BTreeSet<&str> = config.rules.iter().map(|rule| rule.id.as_str()).collect();
    drop(by_rule);
    let full_csv = config
        .report
        .as_ref()
        .is_some_and(|report| report.attach_findings);
    // The default CSV: open counts per promise and custodian, for management.
    let mut counted: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for finding in open
        .iter()
        .filter(|finding| configured.contains(finding.rule.as_str()))
    {
        *counted
            .entry((
                finding.rule.clone(),
                finding.severity.clone(),
                show(&finding.custodian),
            ))
            .or_insert(0) += 1;
    }
    let counts: Vec<CountRow> = counted
        .into_iter()
        .map(|((rule, severity, custodian), open)| CountRow {
            rule,
            severity,
            custodian,
            open,
        })
        .collect();
    // The open findings become the CSV's rows, moved rather than copied: a large
    // history can hold hundreds of thousands. Only when asked for.
    let rows: Vec<CsvRow> = open
        .into_iter()
        .filter(|_| full_csv)
        .filter(|finding| configured.contains(finding.rule.as_str()))
        .map(|finding| {
            let custodian = show(&finding.custodian);
            let record = custodians.record(
                &finding.source,
                &finding.record_kind,
                &finding.record_path,
                finding.custodian.as_deref(),
            );
            let location = location(&finding.record_kind, &record);
            let detail = detail_in(&finding, language);
            CsvRow {
                rule: finding.rule,
                severity: finding.severity,
                source: finding.source,
                location,
                record,
                kind: finding.record_kind,
                custodian,
                first_seen: local_date(finding.first_seen, zone),
                open_days: (end - finding.first_seen).num_days(),
                detail,
            }
        })
        .collect();

    let open_total: u64 = promises.iter().map(|p| p.open).sum();
    let open_previous: u64 = promises.iter().map(|p| p.open_previous).sum();
    let count = |status: &str| promises.iter().filter(|p| p.status == status).count();
    let summary = Summary {
        promises: promises.len(),
        kept: count("kept"),
        broken: count("broken"),
        not_verified: count("not_verified"),
        open: open_total,
        open_previous,
        change: signed(open_total as i64 - open_previous as i64),
        new: promises.iter().map(|p| p.new).sum(),
        resolved: promises.iter().map(|p| p.resolved).sum(),
        sources: coverage.len(),
        sources_not_verified: coverage.iter().filter(|s| s.status != "verified").count(),
    };
    let last_day = end - chrono::TimeDelta::seconds(1);
    let data = ReportData {
        month: month.to_string(),
        month_name: month.name(language),
        previous_month_name: month.previous().name(language),
        organisation: report_config.and_then(|report| report.organisation),
        month_end: local_date(last_day, zone),
        trend_from: months[0].name(language),
        timezone: zone.name().to_owned(),
        summary,
        promises,
        coverage,
        people_named,
        chart_src: String::new(),
        chart_height: chart::height(config.rules.len()),
        trend_months: months.iter().map(|m| m.short_name(language)).collect(),
        erasure: erasure_section(config, store, start, end, now)?,
        digest: store.digest_coverage(&month.to_string())?,
        changes,
        full_csv,
        exceptions: {
            let next_month_end = Month::of(now, zone).next().end(zone);
            exceptions
                .iter()
                .filter(|exception| exception.ends > now)
                .map(|exception| ExceptionLine {
                    id: exception.config.id.clone(),
                    rule: exception.config.rule.clone(),
                    reason: exception.config.reason.clone(),
                    until: exception.config.until.clone(),
                    findings: covered.get(&exception.config.id).copied().unwrap_or(0),
                    ends_next_month: exception.ends <= next_month_end,
                })
                .collect()
        },
    };
    Ok(Report {
        month,
        language,
        data,
        rows,
        counts,
    })
}

/// The erasure section: requests received in `[start, end)`, and every
/// request's state at `now`.
fn erasure_section(
    config: &Config,
    store: &Store,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<ErasureSection>, StoreError> {
    use crate::erasure::StoreState;
    let judged = config
        .rules
        .iter()
        .any(|rule| matches!(rule.check, tillsyn_config::rules::Check::Erased(_)));
    let statuses = crate::erasure::status(config, store, now)?;
    if !judged && statuses.is_empty() {
        return Ok(None);
    }
    let mut section = ErasureSection {
        total: statuses.len() as u64,
        ..ErasureSection::default()
    };
    for request in &statuses {
        if request.requested_at >= start && request.requested_at < end {
            section.received += 1;
        }
        let due = request.due.is_some_and(|due| now > due);
        match request.overall() {
            StoreState::Overdue => section.overdue += 1,
            _ if !due => section.pending += 1,
            StoreState::Erased => section.erased += 1,
            _ => section.not_verified += 1,
        }
    }
    Ok(Some(section))
}

/// Whether `scans` (one source's, in one month) read it completely: a
/// complete scan of the whole, or of every unit it was scanned by (a
/// fleet's accounts), the one definition of complete
/// ([`tillsyn_store::SourceState`]). One account read to the end never
/// speaks for the rest.
fn verified_in(scans: &[&tillsyn_store::ScanSummary]) -> bool {
    let whole = scans
        .iter()
        .any(|scan| scan.unit.is_none() && scan.status == "complete");
    let mut units: BTreeMap<&str, bool> = BTreeMap::new();
    for scan in scans {
        if let Some(unit) = &scan.unit {
            *units.entry(unit).or_default() |= scan.status == "complete";
        }
    }
    whole || (!units.is_empty() && units.values().all(|complete| *complete))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_and_step() {
        let october: Month = "2026-10".parse().unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(october.to_string(), "2026-10");
        assert_eq!(october.next().next().next().to_string(), "2027-01");
        assert_eq!(
            "2026-01"
                .parse::<Month>()
                .map(Month::previous)
                .map(|m| m.to_string()),
            Ok("2025-12".into())
        );
        for bad in ["2026-13", "2026-0", "26-10", "2026/10", "2026-10-01", ""] {
            assert!(bad.parse::<Month>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn month_bounds_follow_the_time_zone() {
        let zone: Tz = chrono_tz::Europe::Stockholm;
        let october: Month = "2026-10".parse().unwrap_or_else(|e| unreachable!("{e}"));
        // 1 October 00:00 CEST is 30 September 22:00 UTC; 1 November 00:00 CET is
        // 31 October 23:00 UTC.
        assert_eq!(
            october.start(zone).to_rfc3339(),
            "2026-09-30T22:00:00+00:00"
        );
        assert_eq!(october.end(zone).to_rfc3339(), "2026-10-31T23:00:00+00:00");
        assert_eq!(october.name(Language::Sv), "oktober 2026");
        assert_eq!(october.name(Language::En), "October 2026");
    }

    #[test]
    fn locations_name_places_not_people() {
        assert_eq!(location("message", "anna@firma.se/INBOX/123"), "INBOX");
        assert_eq!(
            location("message", "anna@firma.se/Arkiv/2024/9"),
            "Arkiv/2024"
        );
        assert_eq!(location("file", "HR/Anna Andersson/cv.pdf"), "HR");
        assert_eq!(location("file", "a.txt"), "");
        assert_eq!(
            location("contact", "cn=Anna Andersson,ou=people,dc=firma,dc=se"),
            "ou=people,dc=firma,dc=se"
        );
        assert_eq!(location("crm_object", "case-17"), "");
    }

    #[test]
    fn changes_are_signed() {
        assert_eq!(signed(0), "±0");
        assert_eq!(signed(4), "+4");
        assert_eq!(signed(-2), "−2");
    }
}
