//! `tillsyn demo`: a small, made-up organisation on disk, audited end to end.
//!
//! It builds "Exempel AB" in a folder: five employees' Maildirs (stale inbox mail,
//! mail copied to too many people), a file share (applications for filled and open
//! positions, ten years of invoices, web access logs, customer folders), a config
//! whose rules quote the seed policies' promises, and then scans it with the same
//! code a real deployment runs. All dates are relative to today, so the demo always
//! shows the same picture. Re-running replaces the folder, but only a folder an
//! earlier demo made (it carries a marker file).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Datelike, TimeDelta, Utc};

use crate::cli::CliError;
use tillsyn_config as config;
use tillsyn_store::{Finding, FindingFilter, ScanStatus};

const MARKER: &str = ".tillsyn-demo";
const DOMAIN: &str = "exempel.se";

/// Where the demo goes when no `--dir` is given.
pub fn default_dir() -> PathBuf {
    std::env::temp_dir().join("tillsyn-demo")
}

/// Demo errors.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The folder exists and is not an earlier demo's.
    #[error("{0} exists and was not made by `tillsyn demo`; choose another folder with --dir")]
    NotADemoDir(PathBuf),
    /// Writing the organisation failed.
    #[error("building the demo in {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A small deterministic generator, so every run builds the same organisation.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

struct Builder {
    now: DateTime<Utc>,
    dice: Dice,
    messages: u64,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DemoError + '_ {
    move |source| DemoError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_file(path: &Path, content: &[u8], modified: DateTime<Utc>) -> Result<(), DemoError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    std::fs::write(path, content).map_err(io_error(path))?;
    let file = std::fs::File::options()
        .write(true)
        .open(path)
        .map_err(io_error(path))?;
    let seconds = u64::try_from(modified.timestamp()).unwrap_or(0);
    file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
        .map_err(io_error(path))?;
    Ok(())
}

const PEOPLE: [(&str, &str); 5] = [
    ("anna.lind", "Anna Lind"),
    ("bertil.ek", "Bertil Ek"),
    ("cecilia.holm", "Cecilia Holm"),
    ("david.sjo", "David Sjö"),
    ("erik.berg", "Erik Berg"),
];

const SUBJECTS: [&str; 6] = [
    "Offert på supportavtal",
    "Ansökan: systemutvecklare",
    "Faktura 2291 — påminnelse",
    "Mötesanteckningar kundmöte",
    "Frågor om leveransen",
    "Uppföljning av ärende",
];

impl Builder {
    fn days_ago(&self, days: i64) -> DateTime<Utc> {
        self.now - TimeDelta::days(days)
    }

    /// `base` days ago plus up to `spread` more, chosen by the dice.
    fn some_days_ago(&mut self, base: i64, spread: u64) -> DateTime<Utc> {
        let extra = self.dice.below(spread) as i64;
        self.days_ago(base + extra)
    }

    fn message(
        &mut self,
        maildir: &Path,
        from: &str,
        to: &[String],
        cc: &[String],
        received: DateTime<Utc>,
    ) -> Result<(), DemoError> {
        self.messages += 1;
        let subject = SUBJECTS[self.dice.below(SUBJECTS.len() as u64) as usize];
        let mut text = format!(
            "Return-Path: <{from}>\r\nFrom: <{from}>\r\nTo: {}\r\n",
            to.join(", ")
        );
        if !cc.is_empty() {
            text.push_str(&format!("Cc: {}\r\n", cc.join(", ")));
        }
        text.push_str(&format!(
            "Subject: {subject}\r\nDate: {}\r\nMessage-ID: <demo-{}@{DOMAIN}>\r\n\
             MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
             Hej,\r\n\r\nSe nedan.\r\n\r\nMed vänlig hälsning\r\n",
            received.to_rfc2822(),
            self.messages
        ));
        let size = text.len();
        let name = format!(
            "{}.M{}P1.demo,S={size},W={size}:2,S",
            received.timestamp(),
            self.messages
        );
        write_file(&maildir.join("cur").join(name), text.as_bytes(), received)
    }

    fn mail(&mut self, root: &Path) -> Result<(), DemoError> {
        let externals: Vec<String> = (1..=8)
            .map(|n| format!("kontakt{n}@kund{}.se", n % 3 + 1))
            .collect();
        for (index, (account, _)) in PEOPLE.iter().enumerate() {
            let maildir = root.join(account).join("Maildir");
            for sub in ["cur", "new", "tmp", ".Sent/cur", ".Sent/new", ".Sent/tmp"] {
                let dir = maildir.join(sub);
                std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
            }
            let me = format!("{account}@{DOMAIN}");
            let colleague = format!("{}@{DOMAIN}", PEOPLE[(index + 1) % PEOPLE.len()].0);
            // Recent mail: the monthly routine allows it.
            for _ in 0..6 {
                let received = self.some_days_ago(0, 25);
                let from = externals[self.dice.below(8) as usize].clone();
                self.message(&maildir, &from, std::slice::from_ref(&me), &[], received)?;
            }
            // Mail left in the inbox past the routine: one more per person.
            for _ in 0..=index {
                let received = self.some_days_ago(40, 400);
                let from = externals[self.dice.below(8) as usize].clone();
                self.message(&maildir, &from, std::slice::from_ref(&me), &[], received)?;
            }
            // Copied to colleagues only: internal, not counted.
            let internal: Vec<String> = PEOPLE
                .iter()
                .map(|(a, _)| format!("{a}@{DOMAIN}"))
                .collect();
            let received = self.days_ago(3);
            self.message(
                &maildir,
                &colleague,
                std::slice::from_ref(&me),
                &internal,
                received,
            )?;
            // Sent mail: every other person copies customers widely.
            let sent = maildir.join(".Sent");
            let received = self.days_ago(2 + index as i64);
            self.message(&sent, &me, &externals[..1], &externals[1..3], received)?;
            if index % 2 == 0 {
                let received = self.days_ago(10 + index as i64);
                self.message(&sent, &me, &externals[..1], &externals[1..7], received)?;
            }
        }
        Ok(())
    }

    fn share(&mut self, root: &Path) -> Result<(), DemoError> {
        // Recruitment: one position filled long ago, one just filled, one open.
        let positions = [
            ("2026-utvecklare", Some(98), 4),
            ("2026-saljare", Some(5), 3),
            ("2026-supporttekniker", None, 3),
        ];
        for (position, filled_days_ago, applicants) in positions {
            let folder = root.join("rekrytering").join(position);
            if let Some(days) = filled_days_ago {
                let filled = self.days_ago(days);
                let text = format!("Tjänsten tillsatt {}\n", filled.format("%Y-%m-%d"));
                write_file(&folder.join("TILLSATT.txt"), text.as_bytes(), filled)?;
            }
            for n in 1..=applicants {
                let received = self.some_days_ago(120, 30);
                let cv = folder
                    .join("ansokningar")
                    .join(format!("sokande-{n:02}-cv.pdf"));
                write_file(&cv, b"%PDF-1.4 demo\n", received)?;
            }
        }
        // Invoices: three a year for eleven fiscal years.
        let this_year = self.now.year();
        for year in this_year - 10..=this_year {
            for n in 1..=3 {
                let day = chrono::NaiveDate::from_ymd_opt(year, (n * 3) as u32, 15)
                    .and_then(|date| date.and_hms_opt(9, 0, 0))
                    .map(|time| time.and_utc())
                    .unwrap_or(self.now);
                if day > self.now {
                    continue;
                }
                let path = root
                    .join("ekonomi/fakturor")
                    .join(year.to_string())
                    .join(format!("faktura-{year}-{n:03}.pdf"));
                write_file(&path, b"%PDF-1.4 demo\n", day)?;
            }
        }
        // Web access logs, rotated weekly, half a year back.
        for week in 0..26 {
            let day = self.days_ago(week * 7);
            let name = format!("access.log-{}", day.format("%Y%m%d"));
            let line = "203.0.113.7 - - [demo] \"GET / HTTP/1.1\" 200 512\n";
            write_file(&root.join("loggar/webb").join(name), line.as_bytes(), day)?;
        }
        // Customer folders: two untouched for years.
        let customers = [
            ("kund-alfa", 20),
            ("kund-beta", 200),
            ("kund-gamma", 1500),
            ("kund-delta", 400),
            ("kund-epsilon", 1900),
        ];
        for (customer, days) in customers {
            for document in ["avtal.pdf", "offert.docx", "kontaktlista.xlsx"] {
                let touched = self.some_days_ago(days, 30);
                let path = root.join("kunder").join(customer).join(document);
                write_file(&path, b"demo\n", touched)?;
            }
        }
        Ok(())
    }
}

/// The demo's config: six promises from the seed policies, two sources.
pub const DEMO_CONFIG: &str = r#"# tillsyn demo: Exempel AB. Paths are relative to this file.
[daemon]
state_dir = "state"
timezone = "Europe/Stockholm"

[privacy]
name_people = false

[[sources]]
name = "mail"
type = "maildir"
root = "mail"

[[sources]]
name = "share"
type = "fileshare"
root = "share"
# Applicants' and customers' names are in these file and folder names.
personal_paths = ["rekrytering/*/ansokningar/*", "kunder/*"]
classify = [
  { glob = "rekrytering/**/ansokningar/**", class = "application" },
  { glob = "ekonomi/fakturor/**", class = "invoice" },
  { glob = "loggar/**/access.log*", class = "access_log" },
]
folders = [{ glob = "kunder/*", class = "customer_folder" }]
# Invoices are filed by year: their folder dates them.
path_dates = ["ekonomi/fakturor/**"]
markers = [{ file = "TILLSATT.txt", date = "position_filled" }]

[[rules]]
id = "stale-inbox"
kind = "max_age"
policy = "medarbetare i sin månadsrutin ska behandla och ta bort sina e-postmeddelanden från inkorgen"
description = "Mail left in an inbox longer than the monthly routine allows."
severity = "medium"
max_age = "31d"
timestamp = "received"
when = { sources = ["mail"], folders = ["INBOX"] }

[[rules]]
id = "wide-cc"
kind = "max_recipients"
policy = "Vi strävar efter att minimera de personer som blir kopierade (CC:)"
description = "Mail copied to more than three people outside the company."
severity = "low"
count = "cc"
max = 3
exclude_domains = ["exempel.se"]
when = { sources = ["mail"], folders = ["INBOX", "\\Sent"] }

[[rules]]
id = "application-after-filled"
kind = "max_age"
policy = "Ansökan raderas i våra interna system efter aktuell tjänst är tillsatt"
description = "Applications still kept two weeks after their position was filled."
severity = "high"
max_age = "0d"
grace = "14d"
timestamp = "date:position_filled"
when = { sources = ["share"], attributes = { class = "application" } }

[[rules]]
id = "invoice-retention"
kind = "max_age"
policy = "sparas fakturor och kvitton i 7 år"
description = "Invoices kept past seven years after the end of their fiscal year."
severity = "medium"
max_age = "7y"
anchor = "end_of_year"
timestamp = ["date:path_date", "modified"]
when = { sources = ["share"], attributes = { class = "invoice" } }

[[rules]]
id = "access-log-retention"
kind = "max_age"
policy = "Vi lagrar viss information av säkerhetsskäl i tre månader"
description = "Access logs with IP addresses kept longer than three months."
severity = "medium"
max_age = "90d"
timestamp = "modified"
when = { sources = ["share"], attributes = { class = "access_log" } }

[[rules]]
id = "customer-folder-untouched"
kind = "max_age"
policy = "rutiner för regelbunden gallring för att inte sitta på 'bra att ha uppgifter'"
description = "Customer folders nobody has touched for three years."
severity = "low"
max_age = "3y"
timestamp = "last_activity"
when = { sources = ["share"], kinds = ["folder"], attributes = { class = "customer_folder" } }
"#;

/// Build the organisation in `dir` (replacing an earlier demo there) and write its
/// config. Returns the config path.
pub fn build(dir: &Path, now: DateTime<Utc>) -> Result<PathBuf, DemoError> {
    if dir.exists() {
        if !dir.join(MARKER).exists() {
            let empty = std::fs::read_dir(dir)
                .map(|mut entries| entries.next().is_none())
                .unwrap_or(false);
            if !empty {
                return Err(DemoError::NotADemoDir(dir.to_path_buf()));
            }
        }
        std::fs::remove_dir_all(dir).map_err(io_error(dir))?;
    }
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    std::fs::write(dir.join(MARKER), "made by `tillsyn demo`; safe to delete\n")
        .map_err(io_error(dir))?;
    let mut builder = Builder {
        now,
        dice: Dice(0x7111_5a9e),
        messages: 0,
    };
    builder.mail(&dir.join("mail"))?;
    builder.share(&dir.join("share"))?;
    let config = dir.join("tillsyn.toml");
    std::fs::write(&config, DEMO_CONFIG).map_err(io_error(&config))?;
    Ok(config)
}

/// `tillsyn demo`: build, scan, summarise by promise.
pub async fn run(dir: &Path, out: &mut dyn Write) -> Result<u8, CliError> {
    let config_path = build(dir, Utc::now())
        .map_err(|error| CliError::Output(std::io::Error::other(error.to_string())))?;
    let engine = tillsyn_app::engine::Engine::new(config::load(&config_path)?)?;
    let config = engine.config();
    let (outcomes, store) = tillsyn_app::runner::scan_once(&engine, None).await?;
    let custodians = engine.display(false)?;
    let findings = store
        .lock()
        .map_err(|_| CliError::Output(std::io::Error::other("store lock poisoned")))?
        .findings(FindingFilter::Open, None, None)?;

    writeln!(out, "tillsyn demo — Exempel AB, built in {}", dir.display())?;
    writeln!(out)?;
    for outcome in &outcomes {
        writeln!(
            out,
            "  {}",
            tillsyn_app::output::describe_outcome(outcome, &custodians)
        )?;
    }
    writeln!(out)?;
    let mut by_rule: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for finding in &findings {
        by_rule
            .entry(finding.rule.as_str())
            .or_default()
            .push(finding);
    }
    let broken = config
        .rules
        .iter()
        .filter(|rule| by_rule.contains_key(rule.id.as_str()))
        .count();
    writeln!(
        out,
        "{broken} of {} promises are broken, {} findings in all:",
        config.rules.len(),
        findings.len()
    )?;
    for rule in &config.rules {
        writeln!(out)?;
        let Some(list) = by_rule.get(rule.id.as_str()) else {
            writeln!(out, "✓ {} — kept", rule.id)?;
            writeln!(out, "    \"{}\"", rule.policy)?;
            continue;
        };
        let oldest = list.iter().filter_map(|f| f.age_days).max();
        writeln!(
            out,
            "✗ {} — {} finding{}{} [{}]",
            rule.id,
            list.len(),
            if list.len() == 1 { "" } else { "s" },
            oldest
                .map(|days| format!(", oldest {days} days"))
                .unwrap_or_default(),
            rule.severity.as_str()
        )?;
        writeln!(out, "    \"{}\"", rule.policy)?;
        if let Some(description) = &rule.description {
            writeln!(out, "    {description}")?;
        }
        let mut examples: Vec<&&Finding> = list.iter().collect();
        examples.sort_by_key(|finding| std::cmp::Reverse(finding.age_days));
        for finding in examples.iter().take(3) {
            writeln!(
                out,
                "      {}:{}  custodian {}  — {}",
                finding.source,
                custodians.record(
                    &finding.source,
                    &finding.record_kind,
                    &finding.record_path,
                    finding.custodian.as_deref()
                ),
                custodians.show(finding.custodian.as_deref()),
                finding.detail
            )?;
        }
        if list.len() > 3 {
            writeln!(out, "      … and {} more", list.len() - 3)?;
        }
    }
    // The month so far as management would read it.
    let month = tillsyn_app::report::Month::of(Utc::now(), config.daemon.timezone.0);
    let report_dir = dir.join(format!("report-{month}"));
    let rendered = {
        let mut guard = store
            .lock()
            .map_err(|_| CliError::Output(std::io::Error::other("store lock poisoned")))?;
        let built = tillsyn_app::report::build(config, &mut guard, month, Utc::now())?;
        let templates = config.report.as_ref().and_then(|r| r.templates_dir.clone());
        tillsyn_app::report::render::render(&built, templates.as_deref())
            .map_err(tillsyn_app::report::ReportError::from)?
    };
    tillsyn_app::report::render::write_files(&rendered, month, &report_dir)?;
    writeln!(out)?;
    writeln!(
        out,
        "Monthly report so far: {}",
        report_dir.join("report.html").display()
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "People are shown as keyed pseudonyms ([privacy] name_people = false; --reveal shows them)."
    )?;
    writeln!(
        out,
        "See every finding:  tillsyn findings --config {}",
        config_path.display()
    )?;
    writeln!(
        out,
        "Scan again:         tillsyn scan --once --config {}",
        config_path.display()
    )?;
    writeln!(
        out,
        "Monthly report:     tillsyn report --config {} --month {month} --out DIR",
        config_path.display(),
    )?;
    let failed = outcomes.iter().any(|o| o.status == ScanStatus::Failed);
    Ok(if failed {
        crate::cli::EXIT_FAILED
    } else {
        crate::cli::EXIT_OK
    })
}
