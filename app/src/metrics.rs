//! The daemon's Prometheus metrics: one registry of its own, every series the
//! daemon knows of exported from the start (as 0 until there is a value), and the
//! updates a scan or a reload makes.
//!
//! Labels are `rule`, `source`, `severity` and `kind` (a bounded error or problem
//! kind) and nothing else: rule ids and source names come from the config, never
//! from what was read, so no address, name or path can reach a label. Names
//! follow the Prometheus conventions: `tillsyn_` prefix, base units, `_total` only
//! on counters, times of day as `_timestamp_seconds`.
//!
//! Open-violation gauges are recomputed from the store after every scan, failed or
//! not. A failed scan resolves nothing, so its source's gauges keep their values
//! rather than dropping to 0, and `tillsyn_scan_last_success_timestamp_seconds`
//! stays where the last good scan left it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use prometheus::{
    Encoder, Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use tillsyn_connectors::ProblemKind;

use crate::runner::ScanOutcome;
use tillsyn_config::Config;
use tillsyn_store::{OpenGroup, RuleChanges};

/// Error kinds a scan can fail with, as they appear in the `kind` label of
/// `tillsyn_scan_errors_total`: every one is exported as 0 from the start.
pub const SCAN_ERROR_KINDS: &[&str] = &[
    "auth",
    "cancelled",
    "connect",
    "connection_lost",
    "foreign_link",
    "foreign_redirect",
    "incomplete",
    "panic",
    "protocol",
    "root_unreadable",
    "sink_closed",
    "store",
    "timeout",
    "tls",
    "token",
    "worker",
];

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Why the metrics could not be set up or written.
#[derive(Debug, thiserror::Error)]
#[error("metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// Every metric the daemon exports.
pub struct Metrics {
    registry: Registry,
    open_violations: IntGaugeVec,
    excepted_findings: IntGaugeVec,
    checked_records: IntGaugeVec,
    oldest_violation_age: GaugeVec,
    rule_alert_after: GaugeVec,
    findings_new: IntCounterVec,
    findings_resolved: IntCounterVec,
    records_scanned: IntCounterVec,
    scans: IntCounterVec,
    scan_errors: IntCounterVec,
    scans_skipped: IntCounterVec,
    scan_success: IntGaugeVec,
    scan_running: IntGaugeVec,
    scan_duration: GaugeVec,
    scan_last_success: GaugeVec,
    scan_interval: GaugeVec,
    scan_problems: IntGaugeVec,
    reload_success: IntGauge,
    reload_timestamp: Gauge,
    report_last_sent: Gauge,
    report_enabled: IntGauge,
    report_delivery_failures: IntCounter,
    units_leased: IntGauge,
    /// When the longest-open violation of each rule was first seen: the age
    /// gauge is worked out from it at every scrape, so it grows between scans.
    oldest_first_seen: Mutex<BTreeMap<String, Option<DateTime<Utc>>>>,
}

/// The series the config defines: which rules and sources exist, and how they
/// pair. Kept by the metrics so an update after a scan knows what to export as 0.
#[derive(Debug, Clone, Default)]
pub struct KnownSeries {
    /// Rule id to severity and alert delay in seconds.
    pub rules: BTreeMap<String, (&'static str, f64)>,
    /// Source name to the seconds between two of its scheduled scans.
    pub sources: BTreeMap<String, f64>,
    /// (rule, source) pairs a rule can report findings on.
    pub pairs: BTreeSet<(String, String)>,
}

impl KnownSeries {
    /// What `config` defines, at `now` (month-long periods and schedule gaps
    /// depend on the date).
    pub fn from_config(config: &Config, now: DateTime<Utc>) -> KnownSeries {
        let zone = config.daemon.timezone.0;
        let rules = config
            .rules
            .iter()
            .map(|rule| {
                let delay = rule
                    .alert_after
                    .after(now)
                    .map(|until| (until - now).num_seconds() as f64)
                    .unwrap_or(f64::MAX);
                (rule.id.clone(), (rule.severity.as_str(), delay))
            })
            .collect();
        let sources = config
            .sources
            .iter()
            .map(|source| {
                let first = source.schedule.next_after(now, zone);
                let second = first.and_then(|first| source.schedule.next_after(first, zone));
                let interval = match (first, second) {
                    (Some(first), Some(second)) => (second - first).num_seconds() as f64,
                    _ => 0.0,
                };
                (source.name.clone(), interval)
            })
            .collect();
        let mut pairs = BTreeSet::new();
        for rule in &config.rules {
            for source in &config.sources {
                if rule.when.names_source(&source.name) {
                    pairs.insert((rule.id.clone(), source.name.clone()));
                }
            }
        }
        KnownSeries {
            rules,
            sources,
            pairs,
        }
    }
}

fn gauge_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<GaugeVec, MetricsError> {
    let metric = GaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn int_gauge_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntGaugeVec, MetricsError> {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, MetricsError> {
    let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

impl Metrics {
    /// A registry with every metric registered, the process metrics included.
    pub fn new() -> Result<Metrics, MetricsError> {
        let registry = Registry::new();
        let build_info = int_gauge_vec(
            &registry,
            "tillsyn_build_info",
            "Always 1; the version of tillsyn running.",
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let reload_success = IntGauge::new(
            "tillsyn_config_last_reload_successful",
            "1 when the last config load or reload succeeded, 0 when the last reload was refused (the previous config keeps running).",
        )?;
        registry.register(Box::new(reload_success.clone()))?;
        let reload_timestamp = Gauge::new(
            "tillsyn_config_last_reload_success_timestamp_seconds",
            "When the running config was loaded (Unix time).",
        )?;
        registry.register(Box::new(reload_timestamp.clone()))?;
        let report_last_sent = Gauge::new(
            "tillsyn_report_last_sent_timestamp_seconds",
            "When the monthly report was last accepted by the mail server (Unix time); 0 when never.",
        )?;
        registry.register(Box::new(report_last_sent.clone()))?;
        // The alert on a report not sent is gated on this.
        let report_enabled = IntGauge::new(
            "tillsyn_report_enabled",
            "1 when the monthly report is configured to be mailed, so TillsynReportNotSent applies.",
        )?;
        registry.register(Box::new(report_enabled.clone()))?;
        let report_delivery_failures = IntCounter::new(
            "tillsyn_report_delivery_failures_total",
            "Deliveries of the monthly report the mail server refused or that could not reach it; each is tried again later.",
        )?;
        registry.register(Box::new(report_delivery_failures.clone()))?;
        let units_leased = IntGauge::new(
            "tillsyn_instance_units_leased",
            "Units of work (sources, IMAP accounts) this instance holds a lease on now: how a fleet sharing one PostgreSQL spreads the work. 0 outside a fleet.",
        )?;
        registry.register(Box::new(units_leased.clone()))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(crate::process_metrics::ProcessMetrics::new()?))?;
        Ok(Metrics {
            open_violations: int_gauge_vec(
                &registry,
                "tillsyn_open_violations",
                "Open violations (findings not yet resolved) per rule and source.",
                &["rule", "source", "severity"],
            )?,
            excepted_findings: int_gauge_vec(
                &registry,
                "tillsyn_excepted_findings",
                "Open findings kept on purpose under an exception in force ([[exceptions]], \"dispens\"), per rule and source: not counted in tillsyn_open_violations.",
                &["rule", "source"],
            )?,
            checked_records: int_gauge_vec(
                &registry,
                "tillsyn_checked_records",
                "Records a rule checked in a source at its last finished scan: the denominator of the share in breach (tillsyn_open_violations / tillsyn_checked_records). Absent until a scan counted them.",
                &["rule", "source"],
            )?,
            oldest_violation_age: gauge_vec(
                &registry,
                "tillsyn_oldest_open_violation_age_seconds",
                "How long the longest-open violation of a rule has been open; 0 when none is.",
                &["rule"],
            )?,
            rule_alert_after: gauge_vec(
                &registry,
                "tillsyn_rule_alert_after_seconds",
                "How long a violation of a rule may stay open before alerting (the rule's alert_after).",
                &["rule"],
            )?,
            findings_new: counter_vec(
                &registry,
                "tillsyn_findings_new_total",
                "Violations found for the first time.",
                &["rule"],
            )?,
            findings_resolved: counter_vec(
                &registry,
                "tillsyn_findings_resolved_total",
                "Violations resolved (no longer seen by a finished scan).",
                &["rule"],
            )?,
            records_scanned: counter_vec(
                &registry,
                "tillsyn_records_scanned_total",
                "Records (messages, files, entries, items) read from a source.",
                &["source"],
            )?,
            scans: counter_vec(
                &registry,
                "tillsyn_scans_total",
                "Scans run, whatever their outcome.",
                &["source"],
            )?,
            scan_errors: counter_vec(
                &registry,
                "tillsyn_scan_errors_total",
                "Scans that failed, by error kind.",
                &["source", "kind"],
            )?,
            scans_skipped: counter_vec(
                &registry,
                "tillsyn_scans_skipped_total",
                "Scheduled scans skipped because the previous scan of the source was still running.",
                &["source"],
            )?,
            scan_success: int_gauge_vec(
                &registry,
                "tillsyn_scan_success",
                "1 when the last scan of a source read it to the end (complete or partial), 0 when it failed or none ran yet.",
                &["source"],
            )?,
            scan_running: int_gauge_vec(
                &registry,
                "tillsyn_scan_running",
                "1 while a scan of the source is running.",
                &["source"],
            )?,
            scan_duration: gauge_vec(
                &registry,
                "tillsyn_scan_duration_seconds",
                "How long the last scan of a source took.",
                &["source"],
            )?,
            scan_last_success: gauge_vec(
                &registry,
                "tillsyn_scan_last_success_timestamp_seconds",
                "When the last scan of a source that read it to the end finished (Unix time); 0 when never.",
                &["source"],
            )?,
            scan_interval: gauge_vec(
                &registry,
                "tillsyn_scan_interval_seconds",
                "Seconds between two scheduled scans of a source.",
                &["source"],
            )?,
            scan_problems: int_gauge_vec(
                &registry,
                "tillsyn_scan_problems",
                "Places the last finished scan of a source could not read, by kind (a partial scan).",
                &["source", "kind"],
            )?,
            registry,
            reload_success,
            reload_timestamp,
            report_last_sent,
            report_enabled,
            report_delivery_failures,
            units_leased,
            oldest_first_seen: Mutex::new(BTreeMap::new()),
        })
    }

    /// Take on a (re)loaded config: export every series it defines, drop gauges of
    /// rules and sources it no longer has, and set the open violations from
    /// `open`. Counters are kept across reloads (only a restart resets them).
    pub fn configure(&self, known: &KnownSeries, open: &[OpenGroup], at: DateTime<Utc>) {
        self.reload_success.set(1);
        self.reload_timestamp.set(at.timestamp() as f64);
        self.rule_alert_after.reset();
        for (rule, (_, delay)) in &known.rules {
            self.rule_alert_after.with_label_values(&[rule]).set(*delay);
            self.findings_new.with_label_values(&[rule]);
            self.findings_resolved.with_label_values(&[rule]);
        }
        for (source, interval) in &known.sources {
            self.records_scanned.with_label_values(&[source]);
            self.scans.with_label_values(&[source]);
            self.scans_skipped.with_label_values(&[source]);
            for kind in SCAN_ERROR_KINDS {
                self.scan_errors.with_label_values(&[source.as_str(), kind]);
            }
            self.scan_interval
                .with_label_values(&[source])
                .set(*interval);
        }
        for gauge in [&self.scan_success, &self.scan_running, &self.scan_problems] {
            retain_sources(gauge, &known.sources);
        }
        for gauge in [
            &self.scan_duration,
            &self.scan_last_success,
            &self.scan_interval,
        ] {
            retain_sources(gauge, &known.sources);
        }
        for source in known.sources.keys() {
            self.scan_success.with_label_values(&[source]);
            self.scan_running.with_label_values(&[source]);
            self.scan_duration.with_label_values(&[source]);
            self.scan_last_success.with_label_values(&[source]);
            for kind in ProblemKind::ALL {
                self.scan_problems
                    .with_label_values(&[source.as_str(), kind.as_str()]);
            }
        }
        self.set_open(known, open);
    }

    /// Record that a reload was refused: the old config keeps running.
    pub fn reload_failed(&self) {
        self.reload_success.set(0);
    }

    /// Set a source's scan state from the store (see
    /// [`tillsyn_store::SourceState`]): whether every part of it last read to
    /// its end, and when it last did. At start, and after each unit scan of
    /// a fleet, so that one account read never speaks for the source.
    pub fn restore_source(&self, source: &str, state: &tillsyn_store::SourceState) {
        self.scan_success
            .with_label_values(&[source])
            .set(i64::from(state.succeeded()));
        if let Some(at) = state.succeeded_at {
            self.scan_last_success
                .with_label_values(&[source])
                .set(at.timestamp() as f64);
        }
    }

    /// Set the units this instance holds a lease on.
    pub fn units_leased(&self, count: usize) {
        self.units_leased
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Set the open violations (and what rides with them: exceptions,
    /// records checked, the oldest violation's age) from the store, as a
    /// fleet's instances do on their own between their scans.
    pub fn refresh_open(&self, known: &KnownSeries, open: &[OpenGroup]) {
        self.set_open(known, open);
    }

    /// Mark a scan of `source` started or ended.
    pub fn scan_running(&self, source: &str, running: bool) {
        self.scan_running
            .with_label_values(&[source])
            .set(i64::from(running));
    }

    /// Count scheduled scans of `source` skipped while one was running.
    pub fn scans_skipped(&self, source: &str, count: u64) {
        self.scans_skipped
            .with_label_values(&[source])
            .inc_by(count);
    }

    /// Take on a finished scan: its outcome, what it changed per rule, and the
    /// open violations as the store now has them.
    pub fn scan_finished(
        &self,
        outcome: &ScanOutcome,
        duration_seconds: f64,
        finished_at: DateTime<Utc>,
        changes: &[RuleChanges],
        known: &KnownSeries,
        open: Option<&[OpenGroup]>,
    ) {
        let source = outcome.source.as_str();
        self.scans.with_label_values(&[source]).inc();
        self.records_scanned
            .with_label_values(&[source])
            .inc_by(outcome.records);
        self.scan_duration
            .with_label_values(&[source])
            .set(duration_seconds);
        match &outcome.error {
            None => {
                self.scan_success.with_label_values(&[source]).set(1);
                self.scan_last_success
                    .with_label_values(&[source])
                    .set(finished_at.timestamp() as f64);
                for kind in ProblemKind::ALL {
                    let count = outcome
                        .problems
                        .iter()
                        .find(|(problem, _)| problem == kind)
                        .map_or(0, |(_, count)| *count);
                    self.scan_problems
                        .with_label_values(&[source, kind.as_str()])
                        .set(i64::try_from(count).unwrap_or(i64::MAX));
                }
            }
            Some((kind, _)) => {
                self.scan_success.with_label_values(&[source]).set(0);
                self.scan_error(source, kind);
            }
        }
        for change in changes {
            // Only configured rules: a rule removed from the config may still
            // resolve findings, but has no series any more.
            if known.rules.contains_key(&change.rule) {
                self.findings_new
                    .with_label_values(&[&change.rule])
                    .inc_by(change.new);
                self.findings_resolved
                    .with_label_values(&[&change.rule])
                    .inc_by(change.resolved);
            }
        }
        if let Some(open) = open {
            self.set_open(known, open);
        }
    }

    /// Count a failed scan of `source` of error kind `kind` (bounded: unknown
    /// kinds are counted as `worker`, so a label value never comes from a
    /// message).
    pub fn scan_error(&self, source: &str, kind: &str) {
        let kind = SCAN_ERROR_KINDS
            .iter()
            .find(|known| **known == kind)
            .copied()
            .unwrap_or("worker");
        self.scan_errors.with_label_values(&[source, kind]).inc();
    }

    /// Whether the monthly report is mailed under the running config.
    pub fn report_enabled(&self, enabled: bool) {
        self.report_enabled.set(i64::from(enabled));
    }

    /// A delivery of the monthly report failed.
    pub fn report_delivery_failed(&self) {
        self.report_delivery_failures.inc();
    }

    /// Set the time the monthly report was last sent.
    pub fn report_sent(&self, at: DateTime<Utc>) {
        self.report_last_sent.set(at.timestamp() as f64);
    }

    fn set_open(&self, known: &KnownSeries, open: &[OpenGroup]) {
        let mut counts: BTreeMap<(&str, &str), i64> = known
            .pairs
            .iter()
            .map(|(rule, source)| ((rule.as_str(), source.as_str()), 0))
            .collect();
        let mut excepted = counts.clone();
        let mut checked: BTreeMap<(&str, &str), i64> = BTreeMap::new();
        let mut oldest: BTreeMap<String, Option<DateTime<Utc>>> = known
            .rules
            .keys()
            .map(|rule| (rule.clone(), None))
            .collect();
        for group in open {
            if !known.rules.contains_key(&group.rule) || !known.sources.contains_key(&group.source)
            {
                continue;
            }
            *counts
                .entry((group.rule.as_str(), group.source.as_str()))
                .or_insert(0) += i64::try_from(group.count).unwrap_or(i64::MAX);
            *excepted
                .entry((group.rule.as_str(), group.source.as_str()))
                .or_insert(0) += i64::try_from(group.excepted).unwrap_or(i64::MAX);
            if let Some(records) = group.checked {
                checked.insert(
                    (group.rule.as_str(), group.source.as_str()),
                    i64::try_from(records).unwrap_or(i64::MAX),
                );
            }
            if let (Some(first), Some(seen)) =
                (oldest.get_mut(&group.rule), group.oldest_first_seen)
            {
                *first = Some(first.map_or(seen, |current: DateTime<Utc>| current.min(seen)));
            }
        }
        self.checked_records.reset();
        for ((rule, source), count) in checked {
            self.checked_records
                .with_label_values(&[rule, source])
                .set(count);
        }
        self.excepted_findings.reset();
        for ((rule, source), count) in excepted {
            self.excepted_findings
                .with_label_values(&[rule, source])
                .set(count);
        }
        self.open_violations.reset();
        for ((rule, source), count) in counts {
            let severity = known
                .rules
                .get(rule)
                .map_or("medium", |(severity, _)| severity);
            self.open_violations
                .with_label_values(&[rule, source, severity])
                .set(count);
        }
        if let Ok(mut guard) = self.oldest_first_seen.lock() {
            *guard = oldest;
        }
    }

    /// The text exposition of every metric, with the violation ages worked out
    /// for `now`.
    pub fn render(&self, now: DateTime<Utc>) -> Result<String, MetricsError> {
        if let Ok(oldest) = self.oldest_first_seen.lock() {
            self.oldest_violation_age.reset();
            for (rule, first_seen) in oldest.iter() {
                let age = first_seen.map_or(0.0, |first| {
                    (now - first).num_milliseconds().max(0) as f64 / 1000.0
                });
                self.oldest_violation_age
                    .with_label_values(&[rule])
                    .set(age);
            }
        }
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        Ok(String::from_utf8_lossy(&buffer).into_owned())
    }
}

/// Drop the series of sources no longer configured.
fn retain_sources<T: prometheus::core::MetricVecBuilder>(
    vec: &prometheus::core::MetricVec<T>,
    sources: &BTreeMap<String, f64>,
) {
    use prometheus::core::Collector;
    for family in vec.collect() {
        for metric in family.get_metric() {
            let labels: std::collections::HashMap<&str, &str> = metric
                .get_label()
                .iter()
                .map(|label| (label.name(), label.value()))
                .collect();
            if labels
                .get("source")
                .is_some_and(|source| !sources.contains_key(*source))
            {
                // Absent already is fine: the aim is that it is gone.
                let _ = vec.remove(&labels);
            }
        }
    }
}
