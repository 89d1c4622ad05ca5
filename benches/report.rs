//! The monthly report over a large history: time and peak RSS of
//! `tillsyn report --month M --out DIR` on a store holding 1,000,000 findings.
//!
//! `cargo bench --bench report -- [--findings N]`
//!
//! The store is made by tillsyn (`Store::open`, so the schema is the real one) and
//! filled in one transaction: N findings of six rules in three sources, first seen
//! over the 13 months up to the end of the reported month, most resolved 1 to 90
//! days later (the rest still open), and four scans per source per month, one in
//! ten failed. Cold: the first run after the store is written (page cache warm
//! from writing it, the process cold); warm: the median of 3 runs after.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use support::{measure, median};
use tillsyn_app::report::Month;

mod support;

const RULES: [&str; 6] = [
    "stale-inbox",
    "wide-cc",
    "support-history",
    "closed-cases",
    "old-files",
    "invoices",
];
const SOURCES: [&str; 3] = ["mail", "crm", "share"];

fn arg(name: &str, default: u64) -> u64 {
    support::arg(name).unwrap_or(default)
}

/// A small deterministic generator (the numbers only need to be spread).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below.max(1)
    }
}

fn config(dir: &Path) -> std::path::PathBuf {
    let mut text =
        String::from("[daemon]\nstate_dir = \"state\"\ntimezone = \"Europe/Stockholm\"\n");
    for source in SOURCES {
        text.push_str(&format!(
            "\n[[sources]]\nname = \"{source}\"\ntype = \"maildir\"\nroot = \"{source}\"\n"
        ));
    }
    for (index, rule) in RULES.iter().enumerate() {
        let source = SOURCES[index % SOURCES.len()];
        text.push_str(&format!(
            "\n[[rules]]\nid = \"{rule}\"\nkind = \"max_age\"\npolicy = \"Promise number {index}: kept for a while, then deleted.\"\n\
             max_age = \"30d\"\nwhen = {{ sources = [\"{source}\"] }}\n"
        ));
    }
    text.push_str("\n[report]\nlanguage = \"sv\"\norganisation = \"Exempel AB\"\n");
    let path = dir.join("tillsyn.toml");
    std::fs::write(&path, text).expect("config");
    path
}

fn fill(dir: &Path, findings: u64, month: Month) -> u64 {
    let zone = chrono_tz::Europe::Stockholm;
    let end = month.end(zone).timestamp();
    let mut first_month = month;
    for _ in 0..12 {
        first_month = first_month.previous();
    }
    let start = first_month.start(zone).timestamp();
    drop(tillsyn_store::Store::open(&dir.join("state")).expect("store"));
    let mut connection =
        rusqlite::Connection::open(dir.join("state/findings.sqlite")).expect("open");
    let transaction = connection.transaction().expect("transaction");
    let mut random = Lcg(7);
    let mut open_at_end = 0;
    {
        let mut scan = transaction
            .prepare(
                "INSERT INTO scans (source, started_at, finished_at, status, records, error_kind)
                 VALUES (?1, ?2, ?3, ?4, 1000, ?5)",
            )
            .expect("scan insert");
        let mut scan_month = first_month;
        let mut scan_ids = Vec::new();
        for _ in 0..13 {
            let base = scan_month.start(zone).timestamp();
            for source in SOURCES {
                for week in 0..4 {
                    let at = base + week * 7 * 86_400 + 7200;
                    let failed = random.next(10) == 0;
                    scan.execute(rusqlite::params![
                        source,
                        at,
                        at + 600,
                        if failed { "failed" } else { "complete" },
                        if failed { Some("timeout") } else { None }
                    ])
                    .expect("scan");
                    scan_ids.push(transaction.last_insert_rowid());
                }
            }
            scan_month = scan_month.next();
        }
        let mut insert = transaction
            .prepare(
                "INSERT INTO findings (rule, source, record_id, record_path, record_kind, custodian,
                     severity, detail, age_days, first_seen, first_seen_scan, last_seen,
                     last_seen_scan, resolved_at, resolved_scan)
                 VALUES (?1, ?2, ?3, ?3, 'message', ?4, 'medium', ?5, ?6, ?7, ?8, ?7, ?8, ?9, ?10)",
            )
            .expect("finding insert");
        for n in 0..findings {
            let rule_index = random.next(RULES.len() as u64) as usize;
            let source = SOURCES[rule_index % SOURCES.len()];
            let first_seen = start + random.next((end - start) as u64) as i64;
            // Nine in ten are resolved 1 to 90 days later (if that is past yet).
            let resolved = (random.next(10) != 0)
                .then(|| first_seen + 86_400 * (1 + random.next(90) as i64))
                .filter(|at| *at < Utc::now().timestamp());
            if first_seen < end && resolved.is_none_or(|at| at >= end) {
                open_at_end += 1;
            }
            let account = format!("user{}@exempel.se", random.next(500));
            let scan_id = scan_ids[random.next(scan_ids.len() as u64) as usize];
            insert
                .execute(rusqlite::params![
                    RULES[rule_index],
                    source,
                    format!("{account}/INBOX/{n}"),
                    account,
                    format!("received {} days before; limit 30d", 31 + random.next(700)),
                    31 + random.next(700) as i64,
                    first_seen,
                    scan_id,
                    resolved,
                    resolved.map(|_| scan_id),
                ])
                .expect("finding");
        }
    }
    transaction.commit().expect("commit");
    open_at_end
}

fn main() {
    let findings = arg("--findings", 1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let month = Month::of(
        Utc::now() - TimeDelta::days(40),
        chrono_tz::Europe::Stockholm,
    );
    let config = config(dir.path());
    let started = std::time::Instant::now();
    let open = fill(dir.path(), findings, month);
    let size = std::fs::metadata(dir.path().join("state/findings.sqlite"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "Store: {findings} findings over 13 months ({open} open at the end of {month}), {:.0} MB, written in {:.1} s.",
        size as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    let out = dir.path().join("out");
    let run = || {
        measure(
            Command::new(env!("CARGO_BIN_EXE_tillsyn"))
                .args(["report", "--config"])
                .arg(&config)
                .args(["--month", &month.to_string(), "--out"])
                .arg(&out),
        )
    };
    let (cold, cold_rss) = run();
    let mut warm = Vec::new();
    let mut rss = cold_rss;
    for _ in 0..3 {
        let (time, peak) = run();
        warm.push(time);
        rss = rss.max(peak);
    }
    let warm: Duration = median(warm);

    let csv = std::fs::metadata(out.join(format!("tillsyn-{month}.csv")))
        .map(|m| m.len())
        .unwrap_or(0);
    println!("\n| run | time | peak RSS |\n|---|---|---|");
    println!(
        "| cold | {:.2} s | {:.1} MB |",
        cold.as_secs_f64(),
        cold_rss as f64 / 1024.0
    );
    println!(
        "| warm (median of 3) | {:.2} s | {:.1} MB (max) |",
        warm.as_secs_f64(),
        rss as f64 / 1024.0
    );
    println!(
        "\nOutput: report.html, report.txt, trend.png and the CSV of open counts per promise and custodian ({:.1} MB) for {open} open findings. Targets: under 5 s and under 200 MB.",
        csv as f64 / 1e6
    );
    // `--keep` leaves the store, config and output for a look by hand.
    if std::env::args().any(|argument| argument == "--keep") {
        println!("Kept: {}", dir.keep().display());
    }
}
