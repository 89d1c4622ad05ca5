//! `tillsyn run` as a service: scans on per-second schedules, `/metrics`,
//! `/healthz` and `/readyz`, no overlap of a slow scan (the late ticks skipped and
//! counted), SIGHUP reloads (a valid and an invalid config), a failing source that
//! keeps its violations and last-success time, SIGTERM in the middle of a stuck
//! scan (clean exit, consistent store, the scan recorded as failed), systemd
//! notifications, and runs missed while the daemon was down made up once at start.

mod common;

use std::path::Path;

use common::crm::{Behaviour, CrmServer};
use common::daemon::{Daemon, NotifySocket, wait_for};
use common::process::free_port;
use common::*;

const TOKEN: &str = "crm-token-daemon-4411";

fn days_ago_rfc3339(days: i64) -> String {
    (chrono::Utc::now() - chrono::TimeDelta::days(days)).to_rfc3339()
}

/// 250 cases over three pages; every tenth closed 45 days ago (25 violations).
fn cases() -> Vec<serde_json::Value> {
    (0..250)
        .map(|n| {
            let closed = if n % 10 == 0 { 45 } else { 3 };
            serde_json::json!({
                "id": format!("case-{n}"),
                "contact": { "email": format!("kund{n}@kund.se") },
                "status": "closed",
                "closed_at": days_ago_rfc3339(closed),
            })
        })
        .collect()
}

fn config_text(port: u16, crm_url: &str, extra_rules: &str) -> String {
    format!(
        r#"
[daemon]
state_dir = "state"
listen = "127.0.0.1:{port}"
shutdown_grace_seconds = 1

[[sources]]
name = "files"
type = "fileshare"
root = "share"
schedule = "*/2 * * * * *"

[[sources]]
name = "crm"
type = "http"
schedule = "* * * * * *"
url = "{crm_url}"
allow_plaintext = true
auth = {{ bearer_file = "crm.token" }}
items = "/items"
pagination = {{ type = "page", size = 100 }}
id = "/id"
custodian = "/contact/email"
attributes = {{ status = "/status" }}
dates = {{ closed = "/closed_at" }}
timeout_seconds = 600
attempts = 1

[[rules]]
id = "old-files"
kind = "max_age"
policy = "Files are deleted after 30 days."
severity = "high"
alert_after = "7d"
max_age = "30d"
timestamp = "modified"
when = {{ sources = ["files"] }}

[[rules]]
id = "closed-cases"
kind = "max_age"
policy = "När ett ärende är avklarat ska personinformationen raderas"
max_age = "30d"
timestamp = "date:closed"
when = {{ sources = ["crm"], attributes = {{ status = "closed" }} }}
{extra_rules}
"#
    )
}

struct Scan {
    started: i64,
    finished: Option<i64>,
    status: String,
    error_kind: Option<String>,
}

fn scans(state: &Path, source: &str) -> Vec<Scan> {
    let connection = open_store(state);
    let mut query = connection
        .prepare(
            "SELECT started_at, finished_at, status, error_kind FROM scans
             WHERE source = ?1 ORDER BY id",
        )
        .expect("query");
    query
        .query_map([source], |row| {
            Ok(Scan {
                started: row.get(0)?,
                finished: row.get(1)?,
                status: row.get(2)?,
                error_kind: row.get(3)?,
            })
        })
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("scans")
}

#[test]
fn runs_on_schedule_reloads_keeps_failed_sources_and_stops_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    old_and_new_files(&dir.path().join("share"));
    std::fs::write(dir.path().join("crm.token"), TOKEN).expect("token");
    let server = CrmServer::start(Behaviour {
        items: cases(),
        token: TOKEN.into(),
        // Three pages of 700 ms: a scan outlasts two one-second ticks.
        delay_ms: 700,
        ..Behaviour::default()
    });
    let port = free_port();
    let config = dir.path().join("tillsyn.toml");
    std::fs::write(&config, config_text(port, &server.url(), "")).expect("config");
    let notify = NotifySocket::bind(dir.path());
    let notify_path = notify.path.to_str().expect("utf8").to_owned();
    let mut daemon = Daemon::start(
        &config,
        port,
        dir.path(),
        &[
            ("NOTIFY_SOCKET", notify_path.as_str()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let state = dir.path().join("state");

    wait_for("READY=1", || notify.has("READY=1"));
    wait_for("WATCHDOG=1", || notify.has("WATCHDOG=1"));
    let (status, body) = daemon.get("/readyz").expect("readyz");
    assert_eq!(status, 200, "{body}");

    // Scans run, again and again, and the slow one never overlaps itself.
    wait_for("three scans of each source and a skipped tick", || {
        let metrics = daemon.metrics();
        metrics.get("tillsyn_scans_total", &[("source", "files")]) >= 3.0
            && metrics.get("tillsyn_scans_total", &[("source", "crm")]) >= 3.0
            && metrics.get("tillsyn_scans_skipped_total", &[("source", "crm")]) >= 1.0
    });
    let metrics = daemon.metrics();
    let open = |metrics: &common::daemon::Metrics, rule: &str, source: &str| {
        metrics.value(
            "tillsyn_open_violations",
            &[("rule", rule), ("source", source)],
        )
    };
    assert_eq!(open(&metrics, "old-files", "files"), Some(3.0));
    assert_eq!(open(&metrics, "closed-cases", "crm"), Some(25.0));
    assert_eq!(
        metrics.value(
            "tillsyn_open_violations",
            &[("rule", "old-files"), ("severity", "high")]
        ),
        Some(3.0)
    );
    assert_eq!(
        metrics.value("tillsyn_rule_alert_after_seconds", &[("rule", "old-files")]),
        Some(7.0 * 86_400.0)
    );
    assert_eq!(
        metrics.value("tillsyn_findings_new_total", &[("rule", "closed-cases")]),
        Some(25.0)
    );
    assert_eq!(
        metrics.value("tillsyn_scan_success", &[("source", "crm")]),
        Some(1.0)
    );
    assert_eq!(
        metrics.value(
            "tillsyn_scan_errors_total",
            &[("source", "crm"), ("kind", "timeout")]
        ),
        Some(0.0),
        "known error kinds are exported as 0"
    );
    assert_eq!(
        metrics.value("tillsyn_config_last_reload_successful", &[]),
        Some(1.0)
    );

    let crm_scans = scans(&state, "crm");
    for pair in crm_scans.windows(2) {
        let previous_end = pair[0].finished.expect("an earlier scan finished");
        assert!(
            pair[1].started >= previous_end,
            "a crm scan started at {} before the previous one finished at {previous_end}",
            pair[1].started
        );
    }
    // On time: after the catch-up scan at start, `files` scans start on even
    // seconds only.
    let files_scans = scans(&state, "files");
    assert!(files_scans.len() >= 3);
    for scan in &files_scans[1..] {
        assert_eq!(
            scan.started % 2,
            0,
            "a scan of files started off its schedule"
        );
    }

    // A valid reload adds a rule.
    let extra = r#"
[[rules]]
id = "very-old-files"
kind = "max_age"
policy = "Nothing is kept a year."
max_age = "365d"
timestamp = "modified"
when = { sources = ["files"] }
"#;
    std::fs::write(&config, config_text(port, &server.url(), extra)).expect("config");
    daemon.signal(libc::SIGHUP);
    wait_for("the new rule's violation after a reload", || {
        open(&daemon.metrics(), "very-old-files", "files") == Some(1.0)
    });
    assert!(notify.has("RELOADING=1"));
    assert_eq!(
        daemon
            .metrics()
            .value("tillsyn_config_last_reload_successful", &[]),
        Some(1.0)
    );

    // An invalid reload keeps the running config.
    std::fs::write(&config, "[daemon]\nstate_dir = 42\n").expect("config");
    daemon.signal(libc::SIGHUP);
    wait_for("the refused reload", || {
        daemon
            .metrics()
            .value("tillsyn_config_last_reload_successful", &[])
            == Some(0.0)
    });
    let before = daemon
        .metrics()
        .get("tillsyn_scans_total", &[("source", "files")]);
    wait_for("scans to go on under the previous config", || {
        daemon
            .metrics()
            .get("tillsyn_scans_total", &[("source", "files")])
            >= before + 2.0
    });
    assert_eq!(
        open(&daemon.metrics(), "very-old-files", "files"),
        Some(1.0)
    );
    assert!(daemon.log_text().contains("Config reload refused"));

    // A source that fails keeps its violations and its last success.
    std::fs::rename(dir.path().join("share"), dir.path().join("share-gone")).expect("rename");
    wait_for("files to fail", || {
        daemon
            .metrics()
            .value("tillsyn_scan_success", &[("source", "files")])
            == Some(0.0)
    });
    let failed = daemon.metrics();
    let last_success = failed.value(
        "tillsyn_scan_last_success_timestamp_seconds",
        &[("source", "files")],
    );
    assert!(last_success.is_some_and(|at| at > 0.0));
    let errors = failed.get(
        "tillsyn_scan_errors_total",
        &[("source", "files"), ("kind", "root_unreadable")],
    );
    assert!(errors >= 1.0);
    wait_for("files to fail again", || {
        daemon.metrics().get(
            "tillsyn_scan_errors_total",
            &[("source", "files"), ("kind", "root_unreadable")],
        ) >= errors + 1.0
    });
    let metrics = daemon.metrics();
    assert_eq!(
        metrics.value("tillsyn_scan_success", &[("source", "files")]),
        Some(0.0)
    );
    assert_eq!(
        metrics.value(
            "tillsyn_scan_last_success_timestamp_seconds",
            &[("source", "files")]
        ),
        last_success
    );
    assert_eq!(open(&metrics, "old-files", "files"), Some(3.0));
    assert_eq!(open(&metrics, "very-old-files", "files"), Some(1.0));

    // SIGTERM while a scan is stuck on the server.
    server.behaviour.lock().expect("lock").slow_pages = vec![(1, 600)];
    wait_for("a crm scan to hang on its first page", || {
        server.behaviour.lock().expect("lock").slow_pages.is_empty()
    });
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", daemon.log_text());
    assert!(notify.has("STOPPING=1"));

    let crm_scans = scans(&state, "crm");
    let last = crm_scans.last().expect("crm scans");
    assert_eq!(last.status, "failed");
    assert_eq!(last.error_kind.as_deref(), Some("cancelled"));
    assert!(
        crm_scans
            .iter()
            .chain(scans(&state, "files").iter())
            .all(|scan| scan.status != "running"),
        "a scan was left running"
    );
    let connection = open_store(&state);
    let integrity: String = connection
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("integrity");
    assert_eq!(integrity, "ok");
    let open_cases: i64 = connection
        .query_row(
            "SELECT count(*) FROM findings WHERE rule = 'closed-cases' AND resolved_at IS NULL",
            [],
            |row| row.get(0),
        )
        .expect("count");
    assert_eq!(open_cases, 25, "the cut-off scan resolved something");

    let log = daemon.log_text();
    assert!(log.contains("Stopped."), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in a log file");
    assert!(!log.contains(TOKEN) && !log.contains("kund1@kund.se"));
}

#[test]
fn a_run_missed_while_down_runs_once_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    old_and_new_files(&dir.path().join("share"));
    let port = free_port();
    let config = dir.path().join("tillsyn.toml");
    // Daily at 03:00: during the test it never comes round by itself.
    std::fs::write(
        &config,
        format!(
            "[daemon]\nstate_dir = \"state\"\nlisten = \"127.0.0.1:{port}\"\n\n\
             [[sources]]\nname = \"files\"\ntype = \"fileshare\"\nroot = \"share\"\n\
             schedule = \"0 0 3 * * *\"\n"
        ),
    )
    .expect("config");
    let state = dir.path().join("state");
    let scans_total = |daemon: &Daemon| {
        daemon
            .metrics()
            .get("tillsyn_scans_total", &[("source", "files")])
    };

    // Never scanned: scans at start.
    let mut daemon = Daemon::start(&config, port, dir.path(), &[]);
    wait_for("the first scan", || scans_total(&daemon) == 1.0);
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit().code(), Some(0));

    // Scanned just now: a restart does not scan again.
    let mut daemon = Daemon::start(&config, port, dir.path(), &[]);
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(scans_total(&daemon), 0.0);
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit().code(), Some(0));
    assert_eq!(scans(&state, "files").len(), 1);

    // The last scan two days back: 03:00 passed while down, so one scan at start.
    let connection = open_store(&state);
    connection
        .execute(
            "UPDATE scans SET started_at = started_at - 172800, finished_at = finished_at - 172800",
            [],
        )
        .expect("backdate");
    drop(connection);
    let mut daemon = Daemon::start(&config, port, dir.path(), &[]);
    wait_for("the catch-up scan", || scans_total(&daemon) == 1.0);
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(scans_total(&daemon), 1.0, "caught up more than once");
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit().code(), Some(0));
    assert_eq!(scans(&state, "files").len(), 2);
}
