//! Building one month's report from the store: coverage per source, each
//! promise with its cases, custodians and rate, the month's changes, the
//! summary and the CSV.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::erasure::erasure_section;
use super::text::{Breach, detail_in, local_date, location, rate_text, signed};
use super::{
    Case, Changes, CountRow, CsvRow, CustodianCount, ExceptionLine, LOCATIONS, Location, MOVERS,
    Month, OLDEST_CASES, Promise, Report, ReportData, ReportError, SourceCoverage, Summary,
    TOP_CUSTODIANS, TREND_MONTHS, chart, departments,
};
use crate::privacy::PersonDisplay;
use tillsyn_config::Config;
use tillsyn_config::rules::RuleConfig;
use tillsyn_core::language::Language;
use tillsyn_rules::exceptions::Exceptions;
use tillsyn_store::{CheckedRow, OpenAt, RuleHistory, ScanSummary, Store};

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
    let exceptions = Exceptions::from_config(config);
    let covered = store.mark_exceptions(&exceptions, None)?;
    let store: &Store = store;
    let zone = config.daemon.timezone.0;
    let report_config = config.report.clone();
    let language = report_config
        .as_ref()
        .map_or(Language::default(), |report| report.language);
    let display = PersonDisplay::for_config(config)?;
    let mut shown = Shown {
        display: &display,
        custodians: BTreeMap::new(),
    };

    let start = month.start(zone);
    let end = report_end(month, zone, now);
    let mut months = vec![month];
    while months.len() < TREND_MONTHS {
        let earliest = months[0].previous();
        months.insert(0, earliest);
    }
    let moments: Vec<DateTime<Utc>> = months.iter().map(|m| m.end(zone).min(end)).collect();
    let open = store.open_at(end)?;
    // Open a month before, per promise and custodian, for who moved.
    let previous_end = moments
        .len()
        .checked_sub(2)
        .map_or(start, |index| moments[index]);
    let custodians_before = store.open_counts_at(previous_end)?;
    let coverage = coverage(config, &store.scans_between(start, end)?, zone);
    let month_view = MonthView {
        config,
        zone,
        end,
        language,
        history: store.rule_history(&moments)?,
        checked_rows: store.checked_counts()?,
        custodians_before,
        verified: coverage
            .iter()
            .filter(|source| source.status == "verified")
            .map(|source| source.name.clone())
            .collect(),
        departments,
    };

    let mut by_rule: BTreeMap<&str, Vec<&OpenAt>> = BTreeMap::new();
    for finding in &open {
        by_rule
            .entry(finding.rule.as_str())
            .or_default()
            .push(finding);
    }
    let promises: Vec<Promise> = config
        .rules
        .iter()
        .map(|rule| {
            let findings = by_rule.get(rule.id.as_str()).cloned().unwrap_or_default();
            month_view.promise(rule, &findings, &mut shown)
        })
        .collect();
    drop(by_rule);
    let changes = changes(config, &promises, &open, zone, end);
    let full_csv = config
        .report
        .as_ref()
        .is_some_and(|report| report.attach_findings);
    let (counts, rows) = month_view.csv(open, full_csv, &mut shown);
    let summary = summary(&promises, &coverage);
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
        people_named: display.names_people(),
        chart_src: String::new(),
        chart_height: chart::height(config.rules.len()),
        trend_months: months.iter().map(|m| m.short_name(language)).collect(),
        erasure: erasure_section(config, store, start, end, now)?,
        digest: store.digest_coverage(&month.to_string())?,
        changes,
        full_csv,
        exceptions: exception_lines(&exceptions, &covered, now, zone),
    };
    Ok(Report {
        month,
        language,
        data,
        rows,
        counts,
    })
}

/// Custodians and record places as the report may show them: pseudonyms
/// unless people may be named, each custodian worked out once.
struct Shown<'a> {
    display: &'a PersonDisplay,
    custodians: BTreeMap<Option<String>, String>,
}

impl Shown<'_> {
    /// A custodian as shown.
    fn custodian(&mut self, custodian: &Option<String>) -> String {
        let display = self.display;
        self.custodians
            .entry(custodian.clone())
            .or_insert_with(|| display.show(custodian.as_deref()))
            .clone()
    }

    /// A finding's record path as shown.
    fn record(&self, finding: &OpenAt) -> String {
        self.display.record(
            &finding.source,
            &finding.record_kind,
            &finding.record_path,
            finding.custodian.as_deref(),
        )
    }

    /// Where a finding is, as output may show it.
    fn location(&self, finding: &OpenAt) -> String {
        location(&finding.record_kind, &self.record(finding))
    }
}

/// What every promise of one month's report is judged against.
struct MonthView<'a> {
    config: &'a Config,
    zone: Tz,
    /// The moment the report is as of.
    end: DateTime<Utc>,
    language: Language,
    /// Open counts per rule at each month's end, new and resolved.
    history: BTreeMap<String, RuleHistory>,
    /// Records checked per rule and source.
    checked_rows: Vec<CheckedRow>,
    /// Open a month before, per promise and custodian.
    custodians_before: BTreeMap<(String, Option<String>), u64>,
    /// Sources verified in the month.
    verified: BTreeSet<String>,
    departments: &'a departments::Departments,
}

impl MonthView<'_> {
    /// One promise: its status, trend, oldest cases, places, custodians and
    /// rate, from its open `findings` (oldest first).
    fn promise(&self, rule: &RuleConfig, findings: &[&OpenAt], shown: &mut Shown<'_>) -> Promise {
        let (config, zone, end, language) = (self.config, self.zone, self.end, self.language);
        let sources: Vec<String> = config
            .sources
            .iter()
            .filter(|source| rule.when.names_source(&source.name))
            .map(|source| source.name.clone())
            .collect();
        let unverified_sources: Vec<String> = sources
            .iter()
            .filter(|source| !self.verified.contains(source.as_str()))
            .cloned()
            .collect();
        let rule_history = self.history.get(&rule.id).cloned().unwrap_or_default();
        let mut trend = rule_history.open_at.clone();
        trend.resize(TREND_MONTHS, 0);
        let open_now = findings.len() as u64;
        let open_previous = trend.get(TREND_MONTHS - 2).copied().unwrap_or(0);
        // Oldest first: `open_at` is ordered by rule, then first seen.
        let oldest = findings
            .iter()
            .take(OLDEST_CASES)
            .map(|finding| Case {
                source: finding.source.clone(),
                location: shown.location(finding),
                custodian: shown.custodian(&finding.custodian),
                since: local_date(finding.first_seen, zone),
                open_days: (end - finding.first_seen).num_days(),
                detail: detail_in(finding, language),
            })
            .collect();
        let locations = locations(findings, shown);
        let custodians = self.custodian_counts(&rule.id, findings, shown);
        let status = if open_now > 0 {
            "broken"
        } else if unverified_sources.is_empty() {
            "kept"
        } else {
            "not_verified"
        };
        let rate = self.rate(&rule.id, &sources, findings);
        Promise {
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
            custodians,
            rate,
        }
    }

    /// The custodians with most open findings of `rule`, and how that moved
    /// since a month before.
    fn custodian_counts(
        &self,
        rule: &str,
        findings: &[&OpenAt],
        shown: &mut Shown<'_>,
    ) -> Vec<CustodianCount> {
        let mut by_custodian: BTreeMap<&Option<String>, u64> = BTreeMap::new();
        for finding in findings {
            *by_custodian.entry(&finding.custodian).or_insert(0) += 1;
        }
        let mut ranked: Vec<(&Option<String>, u64)> = by_custodian.into_iter().collect();
        ranked.sort_by_key(|(_, open)| std::cmp::Reverse(*open));
        ranked
            .into_iter()
            .take(TOP_CUSTODIANS)
            .map(|(custodian, open)| {
                let before = self
                    .custodians_before
                    .get(&(rule.to_owned(), custodian.clone()))
                    .copied()
                    .unwrap_or(0);
                CustodianCount {
                    custodian: shown.custodian(custodian),
                    open,
                    change: signed(open as i64 - before as i64),
                    department: custodian
                        .as_deref()
                        .and_then(|custodian| self.departments.get(custodian))
                        .cloned(),
                }
            })
            .collect()
    }

    /// "19,613 of 21,224 messages (92 %) in 6 of 9 mailboxes": what is in
    /// breach of `rule` against what its `sources` checked.
    fn rate(&self, rule: &str, sources: &[String], findings: &[&OpenAt]) -> Option<String> {
        let rows: Vec<&CheckedRow> = self
            .checked_rows
            .iter()
            .filter(|row| row.rule == rule && sources.contains(&row.source))
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
        if uncounted && let Some(counted) = checked.get_mut(rule) {
            counted.complete = false;
        }
        let custodians_breached = findings
            .iter()
            .filter_map(|finding| finding.custodian.as_deref())
            .collect::<BTreeSet<_>>()
            .len() as u64;
        let kinds: BTreeSet<&str> = self
            .config
            .sources
            .iter()
            .filter(|source| sources.contains(&source.name))
            .map(|source| source.settings.type_name())
            .collect();
        checked.get(rule).and_then(|checked| {
            rate_text(
                self.language,
                Breach {
                    records: findings.len() as u64,
                    custodians: custodians_breached,
                },
                checked,
                &kinds,
            )
        })
    }

    /// The CSV: open counts per promise, severity and custodian (for
    /// management), and with `full_csv` every open finding of a configured
    /// rule as a row. The findings are moved rather than copied: a large
    /// history can hold hundreds of thousands.
    fn csv(
        &self,
        open: Vec<OpenAt>,
        full_csv: bool,
        shown: &mut Shown<'_>,
    ) -> (Vec<CountRow>, Vec<CsvRow>) {
        let (zone, end, language) = (self.zone, self.end, self.language);
        let configured: BTreeSet<&str> = self
            .config
            .rules
            .iter()
            .map(|rule| rule.id.as_str())
            .collect();
        let mut counted: BTreeMap<(String, String, String), u64> = BTreeMap::new();
        for finding in open
            .iter()
            .filter(|finding| configured.contains(finding.rule.as_str()))
        {
            *counted
                .entry((
                    finding.rule.clone(),
                    finding.severity.clone(),
                    shown.custodian(&finding.custodian),
                ))
                .or_insert(0) += 1;
        }
        let counts = counted
            .into_iter()
            .map(|((rule, severity, custodian), open)| CountRow {
                rule,
                severity,
                custodian,
                open,
            })
            .collect();
        let rows = open
            .into_iter()
            .filter(|_| full_csv)
            .filter(|finding| configured.contains(finding.rule.as_str()))
            .map(|finding| {
                let custodian = shown.custodian(&finding.custodian);
                let record = shown.record(&finding);
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
        (counts, rows)
    }
}

/// Coverage per configured source, from the month's `scans`.
fn coverage(config: &Config, scans: &[ScanSummary], zone: Tz) -> Vec<SourceCoverage> {
    config
        .sources
        .iter()
        .map(|source| {
            let mine: Vec<_> = scans
                .iter()
                .filter(|scan| scan.source == source.name)
                .collect();
            let count = |status: &str| mine.iter().filter(|scan| scan.status == status).count();
            let (complete, partial, failed) =
                (count("complete"), count("partial"), count("failed"));
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
            SourceCoverage {
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
            }
        })
        .collect()
}

/// The places with most open findings of one promise.
fn locations(findings: &[&OpenAt], shown: &Shown<'_>) -> Vec<Location> {
    let mut places: BTreeMap<(String, String), u64> = BTreeMap::new();
    for finding in findings {
        *places
            .entry((finding.source.clone(), shown.location(finding)))
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
    locations
}

/// What changed in the month: promises newly broken and newly kept, the
/// biggest movers, and the oldest open case.
fn changes(
    config: &Config,
    promises: &[Promise],
    open: &[OpenAt],
    zone: Tz,
    end: DateTime<Utc>,
) -> Changes {
    let mut movers: Vec<(i64, &Promise)> = promises
        .iter()
        .map(|promise| (promise.open as i64 - promise.open_previous as i64, promise))
        .filter(|(change, _)| *change != 0)
        .collect();
    movers.sort_by(|a, b| b.0.abs().cmp(&a.0.abs()).then(a.1.id.cmp(&b.1.id)));
    let oldest = open
        .iter()
        .filter(|finding| config.rules.iter().any(|rule| rule.id == finding.rule))
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
}

/// The report's first lines: promises by status, open findings and how
/// they moved, sources not verified.
fn summary(promises: &[Promise], coverage: &[SourceCoverage]) -> Summary {
    let open_total: u64 = promises.iter().map(|p| p.open).sum();
    let open_previous: u64 = promises.iter().map(|p| p.open_previous).sum();
    let count = |status: &str| promises.iter().filter(|p| p.status == status).count();
    Summary {
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
    }
}

/// The exceptions in force at `now`, with the findings each covers and
/// whether it ends before next month's report.
fn exception_lines(
    exceptions: &Exceptions,
    covered: &BTreeMap<String, u64>,
    now: DateTime<Utc>,
    zone: Tz,
) -> Vec<ExceptionLine> {
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
