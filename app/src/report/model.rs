//! What a report holds: the month, the summary, each promise with its
//! cases and custodians, coverage, erasures, changes and the CSV's rows, as
//! the templates see them.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use tillsyn_core::language::Language;

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
