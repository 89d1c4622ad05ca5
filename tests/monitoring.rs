//! The monitoring side against a real running daemon: its scrape passes
//! `promtool check metrics`, the alerting rules pass `promtool check rules`,
//! every tillsyn metric the rules and the dashboard use is one the daemon
//! exports, and no label value (nor log line) carries anything that identifies
//! a person whose mail or files were scanned. And the first alert end to end:
//! a real Prometheus with `monitoring/alerts.yml` fires `TillsynPromiseBroken`
//! for exactly the broken promises and resolves it once the fix is scanned.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::daemon::{Daemon, wait_for};
use common::process::free_port;
use common::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn promtool(args: &[&str], input: Option<&str>) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; ./scripts/test installs it)");
    if let Some(input) = input {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write to promtool");
    }
    drop(child.stdin.take());
    let output = child.wait_with_output().expect("promtool output");
    let (stdout, stderr) = text(&output);
    (output.status.success(), format!("{stdout}{stderr}"))
}

fn rule_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("monitoring"))
        .expect("monitoring/")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yml"))
        .collect();
    files.sort();
    files
}

#[test]
fn alerting_rules_pass_promtool() {
    let files = rule_files();
    assert!(!files.is_empty(), "no rule files in monitoring/");
    for file in files {
        let (ok, output) = promtool(&["check", "rules", file.to_str().expect("utf8")], None);
        assert!(ok, "{}: {output}", file.display());
    }
}

/// The people in the planted data: mailbox custodians, correspondents, names in
/// folder names.
const PEOPLE: &[&str] = &[
    "anna.andersson@exempel.se",
    "bertil.berg@exempel.se",
    "cecilia@kund.se",
    "Cecilia Carlsson",
    "david@kund.se",
    "erik@kund.se",
    "fia@kund.se",
    "gustav@kund.se",
    "Anna Andersson",
    "Bertil Berg",
];

fn plant(root: &Path) {
    let mail = root.join("mail");
    for account in ["anna.andersson@exempel.se", "bertil.berg@exempel.se"] {
        let mut mailbox = Mailbox::new(&mail, account);
        let raw = "From: Cecilia Carlsson <cecilia@kund.se>\r\n\
                   To: Anna Andersson <anna.andersson@exempel.se>\r\n\
                   Cc: david@kund.se, erik@kund.se, fia@kund.se, gustav@kund.se\r\n\
                   Subject: Offert till Bertil Berg\r\n\
                   Date: Mon, 1 Jun 2026 10:00:00 +0200\r\n\r\nHej\r\n";
        mailbox.raw((account, "INBOX"), raw.as_bytes(), days_ago(90));
    }
    let share = root.join("share");
    file_at(
        &share.join("HR/Anna Andersson/CV.pdf"),
        b"cv",
        days_ago(400),
    );
    file_at(
        &share.join("HR/Bertil Berg/betyg.pdf"),
        b"betyg",
        days_ago(400),
    );
    if running_as_root() {
        // Files owned by someone else than the auditor, so custodians are real.
        for path in ["HR/Anna Andersson/CV.pdf", "HR/Bertil Berg/betyg.pdf"] {
            std::os::unix::fs::chown(share.join(path), Some(65534), Some(65534)).expect("chown");
        }
    }
}

fn config(root: &Path, port: u16) -> PathBuf {
    let path = root.join("tillsyn.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[daemon]
state_dir = "state"
listen = "127.0.0.1:{port}"

[privacy]
name_people = true

[[sources]]
name = "mail"
type = "maildir"
root = "mail"
schedule = "* * * * * *"

[[sources]]
name = "share"
type = "fileshare"
root = "share"
schedule = "* * * * * *"

[[rules]]
id = "stale-inbox"
kind = "max_age"
policy = "The inbox is emptied in the monthly routine."
max_age = "31d"
timestamp = "received"
when = {{ sources = ["mail"], folders = ["INBOX"] }}

[[rules]]
id = "wide-cc"
kind = "max_recipients"
policy = "We minimise CC."
max = 3
when = {{ sources = ["mail"] }}

[[rules]]
id = "old-files"
kind = "max_age"
policy = "Applications are deleted after a year."
max_age = "365d"
timestamp = "modified"
when = {{ sources = ["share"] }}
"#
        ),
    )
    .expect("config");
    path
}

/// `tillsyn_*` metric names used in `text` (PromQL in rules or a dashboard).
fn referenced(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut start = 0;
    while let Some(found) = text[start..].find("tillsyn_") {
        let begin = start + found;
        let preceded =
            begin > 0 && (bytes[begin - 1].is_ascii_alphanumeric() || bytes[begin - 1] == b'_');
        let mut end = begin;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        // `tillsyn_*` in prose is no metric.
        if !preceded && end > begin + "tillsyn_".len() {
            names.insert(text[begin..end].to_owned());
        }
        start = end;
    }
    names
}

#[test]
fn a_real_scrape_passes_promtool_covers_the_rules_and_dashboard_and_names_nobody() {
    let dir = tempfile::tempdir().expect("tempdir");
    plant(dir.path());
    let port = free_port();
    let config = config(dir.path(), port);
    let daemon = Daemon::start(&config, port, dir.path(), &[]);
    wait_for("both sources scanned twice", || {
        let metrics = daemon.metrics();
        metrics.get("tillsyn_scans_total", &[("source", "mail")]) >= 2.0
            && metrics.get("tillsyn_scans_total", &[("source", "share")]) >= 2.0
    });
    let metrics = daemon.metrics();
    // The planted violations are there, so the scan did read these people.
    assert_eq!(
        metrics.value("tillsyn_open_violations", &[("rule", "stale-inbox")]),
        Some(2.0)
    );
    assert_eq!(
        metrics.value("tillsyn_open_violations", &[("rule", "wide-cc")]),
        Some(2.0)
    );
    assert_eq!(
        metrics.value("tillsyn_open_violations", &[("rule", "old-files")]),
        Some(2.0)
    );
    // What each rule checked: two inbox messages, two messages, two files.
    for (rule, source) in [
        ("stale-inbox", "mail"),
        ("wide-cc", "mail"),
        ("old-files", "share"),
    ] {
        assert_eq!(
            metrics.value(
                "tillsyn_checked_records",
                &[("rule", rule), ("source", source)]
            ),
            Some(2.0),
            "{rule}"
        );
    }

    // Who the store says the findings belong to, by name.
    let findings = json_lines(&tillsyn(&[
        "findings",
        "--config",
        config.to_str().expect("utf8"),
        "--format",
        "json",
    ]));
    assert_eq!(findings.len(), 6);
    let mut identities: BTreeSet<String> = PEOPLE.iter().map(|p| p.to_lowercase()).collect();
    for finding in &findings {
        for key in ["custodian", "record"] {
            if let Some(value) = finding[key].as_str()
                && !value.is_empty()
            {
                identities.insert(value.to_lowercase());
            }
        }
    }
    for value in metrics.label_values() {
        let value = value.to_lowercase();
        for identity in &identities {
            assert!(
                !value.contains(identity.as_str()),
                "label value {value:?} reveals {identity:?}"
            );
        }
    }
    let log = daemon.log_text().to_lowercase();
    for identity in &identities {
        assert!(
            !log.contains(identity.as_str()),
            "the log names {identity:?}"
        );
    }

    let (ok, output) = promtool(&["check", "metrics"], Some(&metrics.text));
    assert!(
        ok && output.trim().is_empty(),
        "promtool check metrics: {output}"
    );

    let exported = metrics.names();
    let mut used = BTreeSet::new();
    for file in rule_files()
        .into_iter()
        .chain([repo().join("monitoring/dashboard.json")])
    {
        let text = std::fs::read_to_string(&file).expect("read monitoring file");
        used.extend(referenced(&text));
    }
    assert!(
        used.len() >= 10,
        "too few metric references found: {used:?}"
    );
    let missing: Vec<&String> = used.difference(&exported).collect();
    assert!(missing.is_empty(), "used but not exported: {missing:?}");
}

/// A Prometheus server (Debian's `prometheus`) on a loopback port, with
/// `monitoring/alerts.yml` as its rules, scraping `target` every second and
/// evaluating every second. Killed on drop.
struct Prometheus {
    child: Option<std::process::Child>,
    port: u16,
}

impl Prometheus {
    fn start(dir: &Path, target: u16) -> Prometheus {
        let port = free_port();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {rules:?}\n\
                 scrape_configs:\n  - job_name: tillsyn\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n",
                rules = repo().join("monitoring/alerts.yml").display().to_string()
            ),
        )
        .expect("prometheus.yml");
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus (Debian package prometheus)");
        let mut server = Prometheus {
            child: Some(child),
            port,
        };
        wait_for("Prometheus to be ready", || {
            if let Some(Ok(Some(status))) = server.child.as_mut().map(|child| child.try_wait()) {
                panic!(
                    "prometheus exited with {status}:\n{}",
                    std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
                );
            }
            server
                .get("/-/ready")
                .is_some_and(|body| body.contains("Ready"))
        });
        server
    }

    /// The body of a GET of `path`, when the server answers.
    fn get(&self, path: &str) -> Option<String> {
        use std::io::Read;
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .ok()?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
    }

    /// The rules of `alertname` alerts that are firing, as Prometheus's own
    /// `/api/v1/alerts` lists them.
    fn firing(&self, alertname: &str) -> Option<BTreeSet<String>> {
        let body = self.get("/api/v1/alerts")?;
        let answer: serde_json::Value = serde_json::from_str(&body).ok()?;
        let alerts = answer.pointer("/data/alerts")?.as_array()?;
        Some(
            alerts
                .iter()
                .filter(|alert| {
                    alert.pointer("/labels/alertname").and_then(|v| v.as_str()) == Some(alertname)
                        && alert.get("state").and_then(|v| v.as_str()) == Some("firing")
                })
                .filter_map(|alert| alert.pointer("/labels/rule")?.as_str().map(str::to_owned))
                .collect(),
        )
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The first alert, end to end: Prometheus scrapes a daemon watching a world
/// with broken promises and one kept; `TillsynPromiseBroken` fires for
/// exactly the broken ones (read from Prometheus's own API). Once the old
/// files are deleted and the share rescanned, the alert for that promise
/// resolves and the others keep firing.
#[test]
fn the_promise_broken_alert_fires_in_prometheus_and_resolves_when_fixed() {
    let dir = tempfile::tempdir().expect("tempdir");
    plant(dir.path());
    let port = free_port();
    let config = config(dir.path(), port);
    // A promise that is kept: it must not alert.
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(
        "\n[[rules]]\nid = \"kept-files\"\nkind = \"max_age\"\n\
         policy = \"Files are kept at most ten years.\"\nmax_age = \"3650d\"\n\
         timestamp = \"modified\"\nwhen = { sources = [\"share\"] }\n",
    );
    std::fs::write(&config, text).expect("config");
    let daemon = Daemon::start(&config, port, dir.path(), &[]);
    let prometheus = Prometheus::start(dir.path(), port);

    let broken: BTreeSet<String> = ["old-files", "stale-inbox", "wide-cc"]
        .map(str::to_owned)
        .into();
    wait_for(
        "TillsynPromiseBroken to fire for the broken promises",
        || prometheus.firing("TillsynPromiseBroken").as_ref() == Some(&broken),
    );
    // Firing for the three, and for nothing else, a few evaluations on.
    let scans = daemon
        .metrics()
        .get("tillsyn_scans_total", &[("source", "share")]);
    wait_for("more scans and evaluations", || {
        daemon
            .metrics()
            .get("tillsyn_scans_total", &[("source", "share")])
            >= scans + 2.0
    });
    assert_eq!(prometheus.firing("TillsynPromiseBroken"), Some(broken));

    // The fix: the old files go; the share's next scan resolves them.
    std::fs::remove_dir_all(dir.path().join("share/HR")).expect("delete the old files");
    let still: BTreeSet<String> = ["stale-inbox", "wide-cc"].map(str::to_owned).into();
    wait_for("the old-files alert to resolve", || {
        prometheus.firing("TillsynPromiseBroken").as_ref() == Some(&still)
    });
    assert_eq!(
        daemon
            .metrics()
            .value("tillsyn_open_violations", &[("rule", "old-files")]),
        Some(0.0)
    );
}
