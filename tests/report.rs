//! The monthly report: mailed through a real SMTP server (aiosmtpd) with text,
//! HTML, the chart and the CSV, counts that match the store, a failing source
//! shown as not verified; the outbox delivering exactly once when the server comes
//! back, across daemon restarts; the text report against golden files; and the
//! HTML rendered by headless Chromium.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use common::daemon::{Daemon, wait_for};
use common::process::free_port;
use common::smtp::SmtpSink;
use common::*;
use mail_parser::{MessageParser, MimeHeaders};
use tillsyn_app::report::{self, Month};
use tillsyn_store::{NewFinding, ScanEnd, Store};

fn config_text(smtp_port: u16, extra_daemon: &str) -> String {
    format!(
        r#"
[daemon]
state_dir = "state"
{extra_daemon}

[[sources]]
name = "files"
type = "fileshare"
root = "share"

[[sources]]
name = "archive"
type = "fileshare"
root = "archive-that-is-gone"

[[rules]]
id = "old-files"
kind = "max_age"
policy = "Files are deleted after 30 days."
max_age = "30d"
timestamp = "modified"
when = {{ sources = ["files"] }}

[[rules]]
id = "old-archive"
kind = "max_age"
policy = "The archive is weeded yearly."
max_age = "365d"
timestamp = "modified"
when = {{ sources = ["archive"] }}

[report]
language = "en"
organisation = "Åkesson & Öberg AB"
attach_findings = true
sender = "tillsyn@exempel.se"
recipients = ["ledningen@exempel.se", "dataskydd@exempel.se"]
retry_seconds = 1

[report.smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "plain"
allow_plaintext = true
timeout_seconds = 10
"#
    )
}

fn this_month() -> Month {
    Month::of(Utc::now(), chrono_tz::UTC)
}

/// The number after `label` on the line that starts with it.
fn figure(text: &str, label: &str) -> u64 {
    text.lines()
        .find_map(|line| line.trim_start().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} figure in:\n{text}"))
}

#[test]
fn the_mailed_report_has_every_part_counts_from_the_store_and_shows_a_failing_source_unverified() {
    let dir = tempfile::tempdir().expect("tempdir");
    old_and_new_files(&dir.path().join("share"));
    let port = free_port();
    let config = dir.path().join("tillsyn.toml");
    std::fs::write(&config, config_text(port, "")).expect("config");
    let config = config.to_str().expect("utf8").to_owned();
    for _ in 0..2 {
        // The archive fails every scan: exit 2.
        assert_eq!(
            tillsyn(&["scan", "--once", "--config", &config])
                .status
                .code(),
            Some(2)
        );
    }
    let open = json_lines(&tillsyn(&[
        "findings", "--config", &config, "--format", "json",
    ]));
    assert_eq!(open.len(), 3, "the planted files");

    let mut sink = SmtpSink::start(dir.path(), port);
    let month = this_month();
    let out = dir.path().join("out");
    let output = tillsyn(&[
        "report",
        "--config",
        &config,
        "--month",
        &month.to_string(),
        "--send",
        "--out",
        out.to_str().expect("utf8"),
    ]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    let message = MessageParser::default()
        .parse(&messages[0])
        .expect("the report parses as mail");

    let subject = message.subject().expect("subject");
    assert!(
        subject.contains(&month.name(tillsyn_core::language::Language::En)),
        "{subject}"
    );
    assert!(
        subject.starts_with("Åkesson & Öberg AB"),
        "UTF-8 subject: {subject}"
    );
    assert!(message.date().is_some(), "Date header");
    assert!(
        message
            .message_id()
            .is_some_and(|id| id.contains(&month.to_string())),
        "Message-ID"
    );
    let to: Vec<String> = message
        .to()
        .map(|to| {
            to.iter()
                .filter_map(|a| a.address().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(to, ["ledningen@exempel.se", "dataskydd@exempel.se"]);

    let text_body = message.body_text(0).expect("text part").into_owned();
    let html_body = message.body_html(0).expect("html part").into_owned();
    assert_eq!(figure(&text_body, "Open violations"), open.len() as u64);
    assert_eq!(figure(&text_body, "Broken"), 1);
    assert_eq!(figure(&text_body, "Not verified"), 1);
    assert_eq!(figure(&text_body, "Kept"), 0);
    assert!(
        text_body.contains("archive (fileshare): NOT VERIFIED"),
        "{text_body}"
    );
    assert!(
        text_body.contains("files (fileshare): verified"),
        "{text_body}"
    );
    assert!(
        text_body.contains("old-archive: NOT VERIFIED"),
        "{text_body}"
    );
    assert!(html_body.contains("id=\"summary\""));
    assert!(html_body.contains("cid:trend-chart"));
    assert!(
        html_body.contains("Åkesson &amp; Öberg AB"),
        "HTML is escaped"
    );
    assert!(
        text_body.contains("Åkesson & Öberg AB"),
        "text is not escaped"
    );

    let mut png = None;
    let mut csv = None;
    for part in message.attachments() {
        let content_type = part
            .content_type()
            .map(|t| format!("{}/{}", t.ctype(), t.subtype().unwrap_or_default()));
        match content_type.as_deref() {
            Some("image/png") => {
                assert_eq!(part.content_id(), Some("trend-chart"));
                png = Some(part.contents().to_vec());
            }
            Some("text/csv") => {
                assert_eq!(
                    part.attachment_name(),
                    Some(format!("tillsyn-{month}.csv").as_str())
                );
                csv = Some(String::from_utf8_lossy(part.contents()).into_owned());
            }
            other => panic!("unexpected attachment {other:?}"),
        }
    }
    let png = png.expect("inline chart");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    let csv = csv.expect("CSV attachment");
    let rows: Vec<&str> = csv.lines().collect();
    assert!(rows[0].starts_with("rule,severity,source,location,record"));
    assert_eq!(rows.len() - 1, open.len(), "{csv}");
    let records: std::collections::BTreeSet<String> = open
        .iter()
        .map(|finding| finding["record"].as_str().unwrap_or("").to_owned())
        .collect();
    for row in &rows[1..] {
        assert!(
            records.iter().any(|record| row.contains(record.as_str())),
            "{row}"
        );
    }

    // The files written beside it are the same report.
    let written = std::fs::read_to_string(out.join("report.txt")).expect("report.txt");
    assert_eq!(figure(&written, "Open violations"), open.len() as u64);
    assert!(out.join("trend.png").exists() && out.join("report.html").exists());

    // Never twice.
    let again = tillsyn(&[
        "report",
        "--config",
        &config,
        "--month",
        &month.to_string(),
        "--send",
    ]);
    assert_eq!(again.status.code(), Some(0));
    assert!(text(&again).0.contains("not sent twice"));
    assert_eq!(sink.messages().len(), 1);
    sink.stop();
}

#[test]
fn starttls_with_the_internal_ca_delivers_and_a_wrong_ca_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    old_and_new_files(&dir.path().join("share"));
    common::dovecot::make_ca(dir.path(), "ca");
    common::dovecot::make_ca(dir.path(), "other-ca");
    common::dovecot::make_server_cert(dir.path(), "ca");
    let port = free_port();
    let mut sink = SmtpSink::start_with_starttls(
        dir.path(),
        port,
        &dir.path().join("server.pem"),
        &dir.path().join("server.key"),
    );
    let write = |ca: &str| {
        let text = config_text(port, "")
            .replace("host = \"127.0.0.1\"", "host = \"localhost\"")
            .replace(
                "security = \"plain\"\nallow_plaintext = true",
                &format!("security = \"starttls\"\nca_file = \"{ca}.pem\""),
            );
        let path = dir.path().join("tillsyn.toml");
        std::fs::write(&path, text).expect("config");
        path.to_str().expect("utf8").to_owned()
    };
    let month = this_month().to_string();

    // Signed by another CA: refused, naming the server, and left in the outbox.
    let config = write("other-ca");
    let refused = tillsyn(&["report", "--config", &config, "--month", &month, "--send"]);
    let (stdout, stderr) = text(&refused);
    assert_eq!(refused.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stdout.contains(&format!("localhost:{port}")), "{stdout}");
    assert!(stdout.contains("waits in the outbox"), "{stdout}");
    assert!(sink.messages().is_empty());

    // The right CA: the waiting report goes out over STARTTLS.
    let config = write("ca");
    let sent = tillsyn(&["report", "--config", &config, "--month", &month, "--send"]);
    let (stdout, stderr) = text(&sent);
    assert_eq!(sent.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(sink.messages().len(), 1);
    sink.stop();
}

/// Files with violations and a config for `tillsyn run` that mails the report;
/// returns the config's path, the SMTP port it names and the metrics port.
fn daemon_with_report(dir: &Path) -> (PathBuf, u16, u16) {
    old_and_new_files(&dir.join("share"));
    let (smtp_port, listen) = (free_port(), free_port());
    let config = dir.join("tillsyn.toml");
    std::fs::write(
        &config,
        config_text(smtp_port, &format!("listen = \"127.0.0.1:{listen}\"")),
    )
    .expect("config");
    (config, smtp_port, listen)
}

fn outbox(state: &Path) -> Vec<(String, Option<i64>, i64)> {
    let connection = open_store(state);
    let mut query = connection
        .prepare(
            "SELECT period, sent_at, attempts FROM outbox WHERE kind = 'report' ORDER BY period",
        )
        .expect("query");
    query
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("outbox")
}

#[test]
fn with_the_mail_server_down_the_report_waits_and_is_delivered_once_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, smtp_port, listen) = daemon_with_report(dir.path());
    let state = dir.path().join("state");
    let previous = this_month().previous().to_string();

    // The month before this one ended, so its report is due at start; the
    // server is down.
    let mut daemon = Daemon::start(&config, listen, dir.path(), &[]);
    wait_for("a failed delivery", || {
        state.join("findings.sqlite").exists()
            && outbox(&state)
                .first()
                .is_some_and(|(_, _, attempts)| *attempts >= 1)
    });
    assert_eq!(
        daemon.metrics().value("tillsyn_report_enabled", &[]),
        Some(1.0)
    );
    wait_for("the failure counted", || {
        daemon
            .metrics()
            .value("tillsyn_report_delivery_failures_total", &[])
            .is_some_and(|failures| failures >= 1.0)
    });
    // The log names why: the server (here, none listening) and its reply.
    let log = daemon.log_text();
    assert!(
        log.contains("Monthly report not delivered")
            && log.contains(&format!("sending the report to 127.0.0.1:{smtp_port}")),
        "{log}"
    );
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit().code(), Some(0));
    let before = outbox(&state);
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].0, previous);
    assert_eq!(before[0].1, None, "not sent");

    // Restarted, still down: the same entry is tried again, no second one.
    let mut daemon = Daemon::start(&config, listen, dir.path(), &[]);
    wait_for("another failed delivery", || {
        outbox(&state)
            .first()
            .is_some_and(|(_, _, attempts)| *attempts > before[0].2)
    });
    assert_eq!(outbox(&state).len(), 1);

    // The server comes back: delivered once.
    let mut sink = SmtpSink::start(dir.path(), smtp_port);
    wait_for("the delivery", || sink.messages().len() == 1);
    wait_for("the outbox to mark it sent", || {
        outbox(&state)
            .first()
            .is_some_and(|(_, sent, _)| sent.is_some())
    });
    wait_for("the last-sent metric", || {
        daemon
            .metrics()
            .value("tillsyn_report_last_sent_timestamp_seconds", &[])
            .is_some_and(|at| at > 0.0)
    });
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit().code(), Some(0));

    // Restarted once more with the server up: nothing is sent again.
    let mut daemon = Daemon::start(&config, listen, dir.path(), &[]);
    wait_for("the daemon to read the outbox", || {
        daemon
            .metrics()
            .value("tillsyn_report_last_sent_timestamp_seconds", &[])
            .is_some_and(|at| at > 0.0)
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit().code(), Some(0));
    assert_eq!(sink.messages().len(), 1, "sent more than once");
    let received = sink.messages();
    let message = MessageParser::default()
        .parse(&received[0])
        .expect("parses");
    let subject = message.subject().unwrap_or_default().to_owned();
    let month: Month = previous.parse().expect("month");
    assert!(
        subject.contains(&month.name(tillsyn_core::language::Language::En)),
        "{subject}"
    );
    let log = daemon.log_text();
    assert!(
        !log.contains("ledningen@exempel.se"),
        "the log names a recipient"
    );
    sink.stop();
}

/// A server that refuses a recipient: `tillsyn report --send` says what the
/// server replied (the address in it pseudonymised), exits 2, and the report
/// waits in the outbox.
#[test]
fn a_refused_delivery_names_the_servers_reply() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = dir.path().join("tillsyn.toml");
    std::fs::write(
        &config,
        config_text(port, "").replace("\"ledningen@exempel.se\"", "\"refused@exempel.se\""),
    )
    .expect("config");
    std::fs::create_dir_all(dir.path().join("share")).expect("share");
    let config = config.to_str().expect("utf8").to_owned();
    let sink = SmtpSink::start(dir.path(), port);
    let output = tillsyn(&[
        "report",
        "--config",
        &config,
        "--month",
        &this_month().previous().to_string(),
        "--send",
    ]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stdout.contains("(550): 5.1.1") && stdout.contains("Recipient address rejected"),
        "{stdout}"
    );
    assert!(!stdout.contains("refused@exempel.se"), "{stdout}");
    assert!(stdout.contains("waits in the outbox"), "{stdout}");
    assert!(sink.messages().is_empty());
}

#[test]
fn a_daemon_down_over_several_month_ends_makes_each_missed_report_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, smtp_port, listen) = daemon_with_report(dir.path());
    let config_path = config.to_str().expect("utf8").to_owned();
    // The store as an earlier install left it: the report of three months ago
    // was the last one sent.
    assert_eq!(
        tillsyn(&["scan", "--once", "--config", &config_path])
            .status
            .code(),
        Some(2),
        "the archive source fails"
    );
    let last_sent = this_month().previous().previous().previous();
    open_store(&dir.path().join("state"))
        .execute(
            "INSERT INTO outbox (kind, period, recipient, created_at, subject, message, sent_at, attempts, next_attempt_at)
             VALUES ('report', ?1, '', 0, 'earlier', x'00', 1, 1, 0)",
            [last_sent.to_string()],
        )
        .expect("earlier report");

    let mut sink = SmtpSink::start(dir.path(), smtp_port);
    let mut daemon = Daemon::start(&config, listen, dir.path(), &[]);
    wait_for("the two missed reports", || sink.messages().len() == 2);
    std::thread::sleep(std::time::Duration::from_secs(2));
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit().code(), Some(0));
    let received = sink.messages();
    assert_eq!(received.len(), 2, "each missed month once");
    let mut subjects: Vec<String> = received
        .iter()
        .map(|raw| {
            MessageParser::default()
                .parse(raw)
                .and_then(|message| message.subject().map(str::to_owned))
                .expect("subject")
        })
        .collect();
    subjects.sort();
    let expected = [last_sent.next(), last_sent.next().next()];
    for month in expected {
        let name = month.name(tillsyn_core::language::Language::En);
        assert!(
            subjects.iter().any(|subject| subject.contains(&name)),
            "{name} missing in {subjects:?}"
        );
    }
    sink.stop();
}

// ---------------------------------------------------------------------------
// A store with a known history, for the golden text and the rendered HTML.

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .expect("time")
}

fn finding(
    rule: &str,
    path: &str,
    kind: &'static str,
    custodian: &str,
    detail: &str,
) -> NewFinding {
    NewFinding {
        rule: rule.into(),
        record_id: path.into(),
        record_path: path.into(),
        record_kind: kind,
        custodian: Some(custodian.into()),
        severity: "medium",
        detail: detail.into(),
        age_days: None,
        custodian_marked: false,
        detail_data: None,
    }
}

fn scan(store: &mut Store, source: &str, when: &str, findings: &[NewFinding], failed: bool) {
    let time = at(when);
    let id = store.begin_scan(source, time).expect("begin");
    store
        .record_findings(id, source, time, findings)
        .expect("findings");
    if failed {
        store
            .fail_scan(id, 0, "auth", "login refused", time)
            .expect("fail");
    } else {
        store
            .finish_scan(
                id,
                &ScanEnd::complete(
                    findings.len() as u64 + 10,
                    time + chrono::TimeDelta::minutes(3),
                ),
            )
            .expect("finish");
    }
}

const GOLDEN_CONFIG: &str = r#"
[daemon]
state_dir = "state"
timezone = "Europe/Stockholm"

[privacy]
key_file = "pseudonym.key"

[[sources]]
name = "mail"
type = "maildir"
root = "mail"

[[sources]]
name = "crm"
type = "http"
url = "http://127.0.0.1:9/api/cases"
allow_plaintext = true
items = "/items"
id = "/id"

[[rules]]
id = "stale-inbox"
kind = "max_age"
policy = "medarbetare i sin månadsrutin ska behandla och ta bort sina e-postmeddelanden från inkorgen"
description = "Mail left in an inbox longer than the monthly routine allows."
max_age = "31d"
timestamp = "received"
when = { sources = ["mail"], folders = ["INBOX"] }

[[rules]]
id = "wide-cc"
kind = "max_recipients"
policy = "Vi strävar efter att minimera de personer som blir kopierade (CC:)"
severity = "low"
max = 3
when = { sources = ["mail"] }

[[rules]]
id = "closed-cases"
kind = "max_age"
policy = "När ett ärende är avklarat ska personinformationen raderas eller anonymiseras"
severity = "high"
max_age = "30d"
timestamp = "date:closed"
when = { sources = ["crm"] }
"#;

/// Three months of scans: stale mail comes and goes, one wide-CC mail stays, and
/// the CRM's only scan in March fails.
fn golden_store(dir: &Path, language: &str) -> tillsyn_config::Config {
    std::fs::write(dir.join("pseudonym.key"), "golden-test-key-0123456789").expect("key");
    let text = format!(
        "{GOLDEN_CONFIG}\n[report]\nlanguage = \"{language}\"\norganisation = \"Exempel AB\"\n"
    );
    let path = dir.join("tillsyn.toml");
    std::fs::write(&path, &text).expect("config");
    let config = tillsyn_config::load(&path).expect("golden config");
    let mut store = Store::open(&config.daemon.state_dir).expect("store");
    let a = finding(
        "stale-inbox",
        "anna@exempel.se/INBOX/1",
        "message",
        "anna@exempel.se",
        "received 2025-11-02; limit 31d",
    );
    let b = finding(
        "stale-inbox",
        "bo@exempel.se/INBOX/7",
        "message",
        "bo@exempel.se",
        "received 2025-12-20; limit 31d",
    );
    let c = finding(
        "stale-inbox",
        "anna@exempel.se/INBOX/2",
        "message",
        "anna@exempel.se",
        "received 2025-12-28; limit 31d",
    );
    let d = finding(
        "wide-cc",
        "bo@exempel.se/Sent/3",
        "message",
        "bo@exempel.se",
        "6 Cc recipients outside the excluded domains (limit 3)",
    );
    let e = finding(
        "stale-inbox",
        "cia@exempel.se/INBOX/4",
        "message",
        "cia@exempel.se",
        "received 2026-01-30; limit 31d",
    );
    let crm = finding(
        "closed-cases",
        "case-17",
        "crm_object",
        "kund@kund.se",
        "closed 2025-12-01; limit 30d",
    );
    scan(
        &mut store,
        "mail",
        "2026-01-10T02:00:00Z",
        &[a.clone(), b.clone(), c.clone(), d.clone()],
        false,
    );
    scan(
        &mut store,
        "crm",
        "2026-01-10T02:10:00Z",
        std::slice::from_ref(&crm),
        false,
    );
    scan(
        &mut store,
        "mail",
        "2026-02-10T02:00:00Z",
        &[a.clone(), b.clone(), d.clone()],
        false,
    );
    scan(
        &mut store,
        "crm",
        "2026-02-10T02:10:00Z",
        std::slice::from_ref(&crm),
        false,
    );
    scan(
        &mut store,
        "mail",
        "2026-03-10T02:00:00Z",
        &[a.clone(), d.clone(), e.clone()],
        false,
    );
    scan(&mut store, "crm", "2026-03-10T02:10:00Z", &[], true);
    // What the mail scans checked: every inbox message of three mailboxes;
    // the Cc rule's count is only a lower bound (an incremental read carried
    // messages no memory held).
    let counts = [
        tillsyn_rules::checked::RuleCount {
            rule: "stale-inbox".into(),
            records: 1234,
            custodians: vec![11, 12, 13],
            complete: true,
        },
        tillsyn_rules::checked::RuleCount {
            rule: "wide-cc".into(),
            records: 56,
            custodians: vec![11, 12, 13],
            complete: false,
        },
    ];
    store
        .save_checked("mail", 1, &[], &counts)
        .expect("checked counts");
    config
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// A rate is a lower bound while a source of its rule has not been counted:
/// the stale-inbox rule extended to the CRM, which no scan has counted.
#[test]
fn a_rate_over_an_uncounted_source_is_a_lower_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = golden_store(dir.path(), "en");
    let rate = |config: &tillsyn_config::Config| {
        let mut store = Store::open(&config.daemon.state_dir).expect("store");
        let built = report::build(
            config,
            &mut store,
            "2026-03".parse().expect("month"),
            at("2026-04-05T08:00:00Z"),
        )
        .expect("build");
        built
            .data
            .promises
            .iter()
            .find(|promise| promise.id == "stale-inbox")
            .and_then(|promise| promise.rate.clone())
    };
    assert_eq!(
        rate(&config).as_deref(),
        Some("2 of 1,234 messages (<1 %) in 2 of 3 mailboxes")
    );
    let path = dir.path().join("tillsyn.toml");
    let text = std::fs::read_to_string(&path).expect("config").replace(
        "when = { sources = [\"mail\"], folders = [\"INBOX\"] }",
        "when = { sources = [\"mail\", \"crm\"], folders = [\"INBOX\"] }",
    );
    std::fs::write(&path, text).expect("config");
    let wider = tillsyn_config::load(&path).expect("config");
    assert_eq!(
        rate(&wider).as_deref(),
        Some("2 of at least 1,234 records (<1 %) in 2 of 3 custodians")
    );
}

#[test]
fn the_text_report_matches_its_golden_file_in_both_languages() {
    for language in ["en", "sv"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = golden_store(dir.path(), language);
        let mut store = Store::open(&config.daemon.state_dir).expect("store");
        let month: Month = "2026-03".parse().expect("month");
        let now = at("2026-04-05T08:00:00Z");
        let built = report::build(&config, &mut store, month, now).expect("build");
        let rendered = report::render::render(&built, None).expect("render");
        let golden = golden_path(&format!("report-2026-03.{language}.txt"));
        let actual = format!("Subject: {}\n\n{}", rendered.subject, rendered.text);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(golden.parent().expect("dir")).expect("golden dir");
            std::fs::write(&golden, &actual).expect("write golden");
        }
        let expected = std::fs::read_to_string(&golden)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", golden.display()));
        assert_eq!(
            actual, expected,
            "{language}: the text report changed (UPDATE_GOLDEN=1 to accept)"
        );
        // What the golden file shows follows from the history above.
        assert_eq!(
            built.data.summary.open, 4,
            "a, d, e and the CRM case at the end of March"
        );
        assert_eq!(built.data.summary.new, 1, "e");
        assert_eq!(built.data.summary.resolved, 1, "b");
        assert_eq!(
            built.data.summary.open_previous, 4,
            "a, b, d and the CRM case"
        );
        let crm = built
            .data
            .coverage
            .iter()
            .find(|s| s.name == "crm")
            .expect("crm");
        assert_eq!(crm.status, "not_verified");
        let closed = built
            .data
            .promises
            .iter()
            .find(|p| p.id == "closed-cases")
            .expect("rule");
        // The CRM case was open at the end of February and the failed March scan
        // resolved nothing: still open, and the source unverified.
        assert_eq!((closed.status, closed.open), ("broken", 1));
        assert!(!actual.contains("anna@exempel.se"), "a custodian is named");
    }
}

#[test]
fn headless_chromium_renders_the_html_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = golden_store(dir.path(), "sv");
    let mut store = Store::open(&config.daemon.state_dir).expect("store");
    let built = report::build(
        &config,
        &mut store,
        "2026-03".parse().expect("month"),
        at("2026-04-05T08:00:00Z"),
    )
    .expect("build");
    let rendered = report::render::render(&built, None).expect("render");
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/report-render");
    std::fs::create_dir_all(&out).expect("out dir");
    std::fs::write(out.join("report.html"), &rendered.html_file).expect("html");
    std::fs::write(out.join("trend.png"), &rendered.png).expect("png");
    let screenshot = out.join("report-screenshot.png");
    let _ = std::fs::remove_file(&screenshot);
    let url = format!("file://{}", out.join("report.html").display());
    let chromium = |args: &[&str]| {
        std::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
            ])
            .args(args)
            .arg(&url)
            .output()
            .expect("chromium (Debian package chromium; ./scripts/test installs it)")
    };
    let dom = chromium(&["--dump-dom"]);
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    assert!(dom_text.contains("<table id=\"summary\">"), "{dom_text}");
    let shot = chromium(&[
        &format!("--screenshot={}", screenshot.display()),
        "--window-size=1000,2200",
    ]);
    assert!(screenshot.exists(), "no screenshot: {}", text(&shot).1);
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&screenshot).expect("screenshot"),
    ));
    let mut reader = decoder.read_info().expect("PNG header");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).expect("PNG data");
    let channels = info.color_type.samples();
    let total = (info.width * info.height) as usize;
    let inked = pixels[..info.buffer_size()]
        .chunks(channels)
        .filter(|pixel| pixel.iter().take(3).any(|value| *value < 200))
        .count();
    // Text, tables and the chart: well above an empty page, well below a dark one.
    assert!(
        inked * 100 > total && inked * 2 < total,
        "{inked} of {total} pixels inked: blank or broken rendering"
    );
}

/// What changed and who: from a history where one promise becomes broken,
/// one becomes kept and one grows, the report names each, ranks custodians with
/// their change, and finds the oldest open violation.
#[test]
fn the_report_says_what_changed_and_who_holds_the_open_violations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = golden_store(dir.path(), "en");
    let mut store = Store::open(&config.daemon.state_dir).expect("store");
    let mail = |rule: &str, n: u32, custodian: &str| {
        finding(
            rule,
            &format!("{custodian}@exempel.se/INBOX/{n}"),
            "message",
            custodian,
            "d",
        )
    };
    // April: the mail scan sees four stale messages (three of bo's, one of
    // anna's) and no wide Cc any more; the CRM still has a closed case.
    let mut april: Vec<NewFinding> = (10..13).map(|n| mail("stale-inbox", n, "bo")).collect();
    april.push(mail("stale-inbox", 2, "anna"));
    scan(&mut store, "mail", "2026-04-20T10:00:00Z", &april, false);
    scan(
        &mut store,
        "crm",
        "2026-04-21T10:00:00Z",
        &[finding(
            "closed-cases",
            "cases/9",
            "crm_object",
            "carl",
            "d",
        )],
        false,
    );
    let month: Month = "2026-04".parse().expect("month");
    let built =
        report::build(&config, &mut store, month, at("2026-05-05T08:00:00Z")).expect("build");
    let changes = &built.data.changes;
    let open: BTreeMap<&str, (u64, u64)> = built
        .data
        .promises
        .iter()
        .map(|promise| (promise.id.as_str(), (promise.open_previous, promise.open)))
        .collect();
    // March's end: stale-inbox 2, wide-cc 1, closed-cases 1 (the golden
    // history); April's end as scanned above.
    assert_eq!(
        open,
        BTreeMap::from([
            ("stale-inbox", (2, 4)),
            ("wide-cc", (1, 0)),
            ("closed-cases", (1, 1)),
        ])
    );
    assert!(changes.newly_broken.is_empty(), "{changes:?}");
    assert_eq!(changes.newly_kept, ["wide-cc"]);
    assert_eq!(
        changes.movers,
        [
            ("stale-inbox".to_owned(), "+2".to_owned()),
            ("wide-cc".to_owned(), "−1".to_owned())
        ]
    );
    let stale = &built.data.promises[0];
    let custodians: Vec<(u64, &str)> = stale
        .custodians
        .iter()
        .map(|custodian| (custodian.open, custodian.change.as_str()))
        .collect();
    // Both are new custodians of this promise (the March ones were others).
    assert_eq!(custodians, [(3, "+3"), (1, "+1")], "bo first, then anna");
    assert!(
        stale
            .custodians
            .iter()
            .all(|custodian| custodian.custodian.starts_with("p-")),
        "pseudonyms, not names"
    );
    // The oldest open one, as the store has it.
    let oldest = store
        .findings(tillsyn_store::FindingFilter::Open, None, None)
        .expect("findings")
        .into_iter()
        .min_by_key(|finding| finding.first_seen)
        .expect("open findings");
    let (rule, since, _) = changes.oldest.clone().expect("an oldest");
    assert_eq!(rule, oldest.rule);
    assert_eq!(
        since,
        oldest
            .first_seen
            .with_timezone(&chrono_tz::Europe::Stockholm)
            .format("%Y-%m-%d")
            .to_string()
    );
}

/// The chart stays readable when one promise has a thousand times another's
/// violations: each promise has its own panel and scale, so the small one's
/// line rises as high in its panel as the big one's does in its own.
#[test]
fn the_chart_gives_each_promise_its_own_scale() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = golden_store(dir.path(), "en");
    let mut store = Store::open(&config.daemon.state_dir).expect("store");
    let mut april: Vec<NewFinding> = (0..3000)
        .map(|n| {
            finding(
                "stale-inbox",
                &format!("bo@exempel.se/INBOX/{n}"),
                "message",
                "bo",
                "d",
            )
        })
        .collect();
    april.extend((0..3).map(|n| {
        finding(
            "wide-cc",
            &format!("bo@exempel.se/Sent/{n}"),
            "message",
            "bo",
            "d",
        )
    }));
    scan(&mut store, "mail", "2026-04-20T10:00:00Z", &april, false);
    let month: Month = "2026-04".parse().expect("month");
    let built =
        report::build(&config, &mut store, month, at("2026-05-05T08:00:00Z")).expect("build");
    let trends: Vec<u64> = built
        .data
        .promises
        .iter()
        .map(|promise| *promise.trend.last().expect("trend"))
        .collect();
    assert_eq!(trends[..2], [3000, 3], "one a thousand times the other");
    let rendered = report::render::render(&built, None).expect("render");
    let decoder = png::Decoder::new(std::io::Cursor::new(rendered.png));
    let mut reader = decoder.read_info().expect("png");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).expect("frame");
    let (width, height) = (info.width as usize, info.height as usize);
    assert_eq!(height, built.data.chart_height as usize);
    let colours = [(31u8, 119u8, 180u8), (214, 39, 40)];
    let panel_width = width / 3;
    for (index, colour) in colours.iter().enumerate() {
        // Below the panel's title, the highest pixel of the promise's line.
        let top = (28..height)
            .find(|y| {
                (index * panel_width..(index + 1) * panel_width).any(|x| {
                    let at = (y * width + x) * 3;
                    (pixels[at], pixels[at + 1], pixels[at + 2]) == *colour
                })
            })
            .expect("the line is drawn");
        assert!(
            top < height / 2,
            "promise {index}: its line peaks at y = {top} of {height}: flat, not on its own scale"
        );
    }
}

/// Every line of `raw` ends in CRLF and holds at most 998 octets.
fn assert_wire_safe(raw: &[u8]) {
    assert!(raw.ends_with(b"\r\n"), "the message ends without CRLF");
    for (line, piece) in raw[..raw.len() - 1]
        .split(|byte| *byte == b'\n')
        .enumerate()
    {
        assert!(
            piece.ends_with(b"\r"),
            "line {line} ends in a bare LF: {:?}",
            String::from_utf8_lossy(&piece[..piece.len().min(80)])
        );
        let content = &piece[..piece.len() - 1];
        assert!(!content.contains(&b'\r'), "a bare CR on line {line}");
        assert!(
            content.len() <= 998,
            "line {line} is {} octets",
            content.len()
        );
    }
}

/// A month's report of 20 promises and 20,000 open findings, every one in the
/// CSV (`attach_findings`), mailed through aiosmtpd with its default limits,
/// which refuse a line over 1,000 octets: the mail arrives, every line of it
/// is CRLF and short, and its parts decode to exactly the files `report
/// --out` wrote. Record paths that begin with `=`, `+`, `-` or `@` cannot
/// start a formula in the CSV.
#[test]
fn a_large_report_with_every_finding_passes_a_strict_server_and_decodes_to_the_written_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let smtp_port = free_port();
    let mut config_text = String::from(
        "[daemon]\nstate_dir = \"state\"\n\n[[sources]]\nname = \"files\"\ntype = \"fileshare\"\nroot = \"share\"\n",
    );
    for rule in 0..20 {
        config_text.push_str(&format!(
            "\n[[rules]]\nid = \"promise-{rule:02}\"\nkind = \"max_age\"\npolicy = \"Löfte {rule}: handlingar gallras efter {rule} månader, även i arkivet på filservern.\"\nmax_age = \"{}d\"\ntimestamp = \"modified\"\nwhen = {{ sources = [\"files\"] }}\n",
            rule + 1
        ));
    }
    config_text.push_str(&format!(
        r#"
[report]
language = "sv"
organisation = "Åkesson & Öberg AB"
attach_findings = true
sender = "tillsyn@exempel.se"
recipients = ["ledningen@exempel.se"]
retry_seconds = 1

[report.smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "plain"
allow_plaintext = true
timeout_seconds = 30
"#
    ));
    let config_path = dir.path().join("tillsyn.toml");
    std::fs::write(&config_path, &config_text).expect("config");
    let config = tillsyn_config::load(&config_path).expect("config");
    let month = Month::of(Utc::now(), chrono_tz::UTC).previous();
    let scanned = month.start(chrono_tz::UTC) + chrono::TimeDelta::days(10);
    // Paths people named; `@` is left to the detail, since a path segment
    // holding `@` is pseudonymised as an address would be.
    let hostile = ["=HYPERLINK(\"x\")", "+46 sum", "-2+3"];
    let findings: Vec<NewFinding> = (0..20_000)
        .map(|index| {
            let rule = format!("promise-{:02}", index % 20);
            let path = match index % 1000 {
                0..=2 => format!("{}/{index}.txt", hostile[index % 1000]),
                4 => format!("Kunder/\"Citat\", komma/{index}.pdf"),
                _ => format!("Arkiv/år {}/Översikt-{index:05}.docx", 2000 + index % 20),
            };
            let detail = if index % 1000 == 3 {
                "@SUM(A1)"
            } else {
                "modified 2020-01-01; limit 30d"
            };
            let mut found = finding(&rule, &path, "file", &format!("user{}", index % 37), detail);
            found.age_days = Some(300 + (index % 50) as i64);
            found
        })
        .collect();
    {
        let mut store = Store::open(&config.daemon.state_dir).expect("store");
        let id = store.begin_scan("files", scanned).expect("begin");
        store
            .record_findings(id, "files", scanned, &findings)
            .expect("findings");
        store
            .finish_scan(id, &ScanEnd::complete(25_000, scanned))
            .expect("finish");
    }

    let sink = SmtpSink::start(dir.path(), smtp_port);
    let out = dir.path().join("out");
    let config_arg = config_path.to_str().expect("utf8");
    let output = tillsyn(&[
        "report",
        "--config",
        config_arg,
        "--month",
        &month.to_string(),
        "--send",
        "--out",
        out.to_str().expect("utf8"),
    ]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    let messages = sink.messages();
    assert_eq!(messages.len(), 1, "{stdout}");
    assert_wire_safe(&messages[0]);

    let message = MessageParser::default()
        .parse(&messages[0])
        .expect("the report parses as mail");
    let read = |name: &str| std::fs::read(out.join(name)).expect(name);
    let as_lf = |text: &str| text.replace("\r\n", "\n");
    assert_eq!(
        as_lf(&message.body_text(0).expect("text part")).into_bytes(),
        read("report.txt"),
        "the text part is report.txt"
    );
    assert_eq!(
        as_lf(&message.body_html(0).expect("html part"))
            .replace("cid:trend-chart", "trend.png")
            .into_bytes(),
        read("report.html"),
        "the HTML part is report.html"
    );
    let csv_name = format!("tillsyn-{month}.csv");
    let mut attached = BTreeMap::new();
    for part in message.attachments() {
        let encoding = part
            .content_transfer_encoding()
            .map(|encoding| encoding.to_ascii_lowercase());
        assert_eq!(
            encoding.as_deref(),
            Some("base64"),
            "attachments are base64"
        );
        attached.insert(
            part.attachment_name()
                .map_or_else(|| "inline".to_owned(), str::to_owned),
            part.contents().to_vec(),
        );
    }
    assert_eq!(attached.get(&csv_name), Some(&read(&csv_name)), "the CSV");
    assert_eq!(
        attached.get("inline"),
        Some(&read("trend.png")),
        "the chart"
    );

    // The CSV itself: CRLF rows, a header and one row per finding, and no
    // cell that starts a formula.
    let csv = read(&csv_name);
    assert_wire_safe(&csv);
    let mut reader = csv::ReaderBuilder::new().from_reader(csv.as_slice());
    let headers = reader.headers().expect("header").clone();
    let record_column = headers
        .iter()
        .position(|header| header == "record")
        .expect("record column");
    let rows: Vec<csv::StringRecord> = reader.records().map(|row| row.expect("row")).collect();
    assert_eq!(rows.len(), findings.len());
    let detail_column = headers
        .iter()
        .position(|header| header == "detail")
        .expect("detail column");
    let (mut neutralised, mut neutralised_details) = (0, 0);
    for row in &rows {
        for cell in row {
            assert!(
                !cell.starts_with(['=', '+', '-', '@']),
                "a cell starts a formula: {cell:?}"
            );
        }
        let record = &row[record_column];
        if hostile
            .iter()
            .any(|start| record.starts_with(&format!("'{start}")))
        {
            neutralised += 1;
        }
        if &row[detail_column] == "'@SUM(A1)" {
            neutralised_details += 1;
        }
    }
    assert_eq!(neutralised, 60, "each hostile path kept, behind a quote");
    assert_eq!(neutralised_details, 20);
}
