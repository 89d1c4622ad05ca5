//! Two tillsyn processes never do the same work twice: the daemon and a
//! `scan --once` on one source take turns (a lease in the store), and the daemon
//! and several `report --send` racing on one pending month send exactly one mail
//! (a claim on the outbox entry), against a real SMTP server.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::crm::{Behaviour, CrmServer};
use common::daemon::{Daemon, wait_for};
use common::process::free_port;
use common::smtp::SmtpSink;
use common::*;

/// Every scan of `source` in the store: (started, finished, status).
fn scans(state: &Path, source: &str) -> Vec<(i64, Option<i64>, String)> {
    let connection = open_store(state);
    let mut query = connection
        .prepare("SELECT started_at, finished_at, status FROM scans WHERE source = ?1 ORDER BY id")
        .expect("query");
    query
        .query_map([source], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("scans")
}

#[test]
fn the_daemon_and_a_one_off_scan_never_scan_one_source_at_once() {
    // 60 cases, 10 a page, every request 250 ms: a scan takes about 2 s.
    let items = (0..60)
        .map(|n| serde_json::json!({ "id": format!("case-{n}"), "status": "open" }))
        .collect();
    let server = CrmServer::start(Behaviour {
        items,
        token: "t".into(),
        delay_ms: 250,
        ..Behaviour::default()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("crm.token"), "t\n").expect("token");
    let listen = free_port();
    let config = dir.path().join("tillsyn.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nstate_dir = \"state\"\nlisten = \"127.0.0.1:{listen}\"\n\n[[sources]]\nname = \"crm\"\ntype = \"http\"\n\
             schedule = \"*/3 * * * * *\"\nurl = \"{}\"\nallow_plaintext = true\nauth = {{ bearer_file = \"crm.token\" }}\n\
             items = \"/items\"\nid = \"/id\"\npagination = {{ type = \"page\", size = 10 }}\ntimeout_seconds = 10\n",
            server.url()
        ),
    )
    .expect("config");
    let state = dir.path().join("state");
    let daemon = Daemon::start(&config, listen, dir.path(), &[]);
    let config = config.to_str().expect("utf8");
    wait_for("the daemon's scan to be under way", || {
        state.join("findings.sqlite").exists()
            && scans(&state, "crm")
                .last()
                .is_some_and(|(_, _, status)| status == "running")
    });
    // Beside it, a one-off scan of the same source is refused, by name.
    let refused = tillsyn(&["scan", "--once", "--source", "crm", "--config", config]);
    let (_, stderr) = text(&refused);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("\"crm\" is being scanned by another tillsyn process")
            && stderr.contains("--wait"),
        "{stderr}"
    );
    // With --wait it waits its turn, twice, while the daemon keeps ticking.
    for _ in 0..2 {
        let waited = tillsyn(&[
            "scan", "--once", "--wait", "--source", "crm", "--config", config,
        ]);
        let (_, stderr) = text(&waited);
        assert_eq!(waited.status.code(), Some(0), "{stderr}");
        assert!(stderr.contains("crm: scanned, 60 records"), "{stderr}");
    }
    wait_for("the daemon's next scan to finish", || {
        scans(&state, "crm").len() >= 4
            && scans(&state, "crm")
                .last()
                .is_some_and(|(_, _, status)| status != "running")
    });
    drop(daemon);
    let all = scans(&state, "crm");
    // Never two at once: each scan started when the one before had finished.
    for pair in all.windows(2) {
        let (_, finished, _) = &pair[0];
        let (started, _, _) = &pair[1];
        let finished = finished.expect("finished");
        assert!(*started >= finished, "overlapping scans: {all:?}");
    }
    assert!(
        all.iter().all(|(_, _, status)| status == "complete"),
        "{all:?}"
    );
    // The refused attempt recorded nothing; the two waits did.
    assert!(all.len() >= 4, "{all:?}");
}

fn report_config(dir: &Path, smtp_port: u16, listen: u16) -> std::path::PathBuf {
    old_and_new_files(&dir.join("share"));
    let path = dir.join("tillsyn.toml");
    std::fs::write(
        &path,
        format!(
            r#"[daemon]
state_dir = "state"
listen = "127.0.0.1:{listen}"

[[sources]]
name = "files"
type = "fileshare"
root = "share"

[[rules]]
id = "old-files"
kind = "max_age"
policy = "Files are deleted after 30 days."
max_age = "30d"
timestamp = "modified"

[report]
language = "en"
sender = "tillsyn@exempel.se"
recipients = ["ledningen@exempel.se"]
retry_seconds = 1

[report.smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "plain"
allow_plaintext = true
timeout_seconds = 10
"#
        ),
    )
    .expect("config");
    path
}

#[test]
fn the_daemon_and_report_send_racing_on_one_month_send_one_mail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (smtp_port, listen) = (free_port(), free_port());
    let config = report_config(dir.path(), smtp_port, listen);
    let config_text = config.to_str().expect("utf8");
    let month = {
        let now = chrono::Utc::now();
        tillsyn_app::report::Month::of(now, chrono_tz::UTC)
            .previous()
            .to_string()
    };
    assert_eq!(
        tillsyn(&["scan", "--once", "--config", config_text])
            .status
            .code(),
        Some(0)
    );
    // The month's report is made while the server is down: it waits in the
    // outbox, due again a second later.
    let first = tillsyn(&[
        "report",
        "--send",
        "--month",
        &month,
        "--config",
        config_text,
    ]);
    assert_eq!(first.status.code(), Some(2), "{:?}", text(&first));
    std::thread::sleep(std::time::Duration::from_millis(1100));

    // The server is up; the daemon and three `report --send` start together,
    // each finding the same pending entry due.
    let mut sink = SmtpSink::start(dir.path(), smtp_port);
    let senders: Vec<std::process::Child> = (0..3)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_tillsyn"))
                .args([
                    "report",
                    "--send",
                    "--month",
                    &month,
                    "--config",
                    config_text,
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("report --send")
        })
        .collect();
    let daemon = Daemon::start(&config, listen, dir.path(), &[]);
    let mut said = String::new();
    for sender in senders {
        let output = sender.wait_with_output().expect("wait");
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
        said.push_str(&stdout);
    }
    wait_for("one delivery", || !sink.messages().is_empty());
    // Give every racer time to have sent a second copy, were it going to.
    std::thread::sleep(std::time::Duration::from_secs(3));
    drop(daemon);
    assert_eq!(sink.messages().len(), 1, "{said}");
    sink.stop();
}
