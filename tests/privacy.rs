//! The auditor does not become a leak, tested both ways. People are planted in
//! every kind of store: mail accounts and From/To/Cc on a real Dovecot, file names
//! and a home folder on a share, cn and mail in a real slapd, e-mail and name
//! fields in a CRM over HTTP. Every output path is run: the scan table and JSON,
//! `findings`, `explain`, `check-config --connect`, the report's HTML, text and
//! CSV, the mail a real SMTP server receives, the daemon's `/metrics` and the
//! logs at debug level. With `[privacy] name_people = false` no planted string
//! appears in any of it; with `true` they appear where expected, so the test can
//! fail.

mod common;

use std::process::{Command, Output};

use common::crm::{Behaviour, CrmServer};
use common::daemon::{Daemon, wait_for};
use common::dovecot::Dovecot;
use common::process::free_port;
use common::slapd::{Person, SERVICE_DN, SERVICE_PASSWORD, SUFFIX, Slapd};
use common::smtp::SmtpSink;
use common::*;
use mail_parser::{MessageParser, MimeHeaders};

const ANNA: &str = "anna.andersson@exempel.se";
const BERTIL: &str = "bertil.berg@exempel.se";

/// Every string that names a planted person, lower-cased (compared so).
const PLANTED: &[&str] = &[
    "anna.andersson",
    "bertil.berg",
    "cecilia.carlsson",
    "cecilia carlsson",
    "david.dahl",
    "erik.ek",
    "fia.falk",
    "gustav.gran",
    "hanna.holm",
    "ivar_isaksson",
    "johan.jonsson",
    "karin.karlsson",
    "karin karlsson",
    "lisa.lind",
];

/// Those that name the custodian or location of a finding, so that with
/// `name_people = true` each shows in the scan, findings, explain, report and
/// mail. (Mail correspondents are never stored, so they never show.)
const LOCATED: &[&str] = &[
    "anna.andersson",
    "hanna.holm",
    "ivar_isaksson",
    "johan.jonsson",
    "karin.karlsson",
    "lisa.lind",
];

fn days_ago_rfc3339(days: i64) -> String {
    (chrono::Utc::now() - chrono::TimeDelta::days(days)).to_rfc3339()
}

struct World {
    dir: tempfile::TempDir,
    _dovecot: Dovecot,
    _slapd: Slapd,
    _crm: CrmServer,
    sink: SmtpSink,
    listen: u16,
}

fn world() -> World {
    let dovecot = Dovecot::start(&[(ANNA, "anna-pw"), (BERTIL, "bertil-pw")]);
    {
        let mut anna = dovecot.client(ANNA, "anna-pw");
        let raw = format!(
            "From: Cecilia Carlsson <cecilia.carlsson@kund.se>\r\nTo: Anna <{ANNA}>\r\n\
             Cc: david.dahl@kund.se, erik.ek@kund.se, fia.falk@kund.se, gustav.gran@kund.se\r\n\
             Subject: Offert\r\nDate: Mon, 1 Jun 2026 10:00:00 +0200\r\nMessage-ID: <p1@kund.se>\r\n\r\nHej\r\n"
        );
        anna.append("INBOX", raw.as_bytes(), 90);
    }
    let ended = (chrono::Utc::now() - chrono::TimeDelta::days(800))
        .format("%Y%m%d%H%M%SZ")
        .to_string();
    let slapd = Slapd::start(&[Person {
        uid: "johan.jonsson".into(),
        status: "former",
        ended: Some(ended),
        opt_out: false,
    }]);
    let crm = CrmServer::start(Behaviour {
        items: vec![serde_json::json!({
            "id": "karin.karlsson@kund.se",
            "name": "Karin Karlsson",
            "email": "karin.karlsson@kund.se",
            "handler": "lisa.lind@exempel.se",
            "status": "closed",
            "closed_at": days_ago_rfc3339(45),
        })],
        token: "crm-token".into(),
        ..Behaviour::default()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    file_at(
        &root.join("share/hem/hanna.holm/anteckningar.txt"),
        b"x",
        days_ago(400),
    );
    file_at(
        &root.join("share/Rekrytering/2024-utvecklare/CV_Ivar_Isaksson.pdf"),
        b"x",
        days_ago(400),
    );
    std::fs::write(
        root.join("accounts.toml"),
        format!(
            "[[accounts]]\nuser = \"{ANNA}\"\npassword = \"anna-pw\"\n[[accounts]]\nuser = \"{BERTIL}\"\npassword = \"bertil-pw\"\n"
        ),
    )
    .expect("accounts");
    std::fs::write(root.join("ldap.pw"), format!("{SERVICE_PASSWORD}\n")).expect("pw");
    std::fs::write(root.join("crm.token"), "crm-token\n").expect("token");
    let smtp_port = free_port();
    let sink = SmtpSink::start(root, smtp_port);
    let listen = free_port();
    let world = World {
        dir,
        _dovecot: dovecot,
        _slapd: slapd,
        _crm: crm,
        sink,
        listen,
    };
    write_config(&world, smtp_port, false);
    world
}

fn write_config(world: &World, smtp_port: u16, name_people: bool) {
    let root = world.dir.path();
    let dovecot = &world._dovecot;
    let slapd = &world._slapd;
    let text = format!(
        r#"[daemon]
state_dir = "state"
listen = "127.0.0.1:{listen}"

[privacy]
name_people = {name_people}

[[sources]]
name = "mail"
type = "imap"
schedule = "0 0 0 1 1 *"
host = "localhost"
port = {imap_port}
security = "tls"
ca_file = "{imap_ca}"
attempts = 1
auth = {{ method = "password", accounts_file = "accounts.toml" }}

[[sources]]
name = "share"
type = "fileshare"
schedule = "0 0 0 1 1 *"
root = "share"
personal_paths = ["hem/*", "Rekrytering/*/*"]

[[sources]]
name = "directory"
type = "ldap"
schedule = "0 0 0 1 1 *"
url = "ldaps://127.0.0.1:{ldap_port}"
ca_file = "{ldap_ca}"
bind_dn = "{SERVICE_DN}"
password_file = "ldap.pw"
base_dn = "ou=people,{SUFFIX}"
filter = "(objectClass=inetOrgPerson)"
attributes = {{ status = "customerStatus" }}
dates = {{ customer_ended = "customerEndDate" }}

[[sources]]
name = "crm"
type = "http"
schedule = "0 0 0 1 1 *"
url = "{crm_url}"
allow_plaintext = true
auth = {{ bearer_file = "crm.token" }}
items = "/items"
id = "/id"
custodian = "/handler"
attributes = {{ status = "/status", name = "/name", email = "/email" }}
identifiers = {{ email = "email" }}
dates = {{ closed = "/closed_at" }}

[[rules]]
id = "P1-stale-inbox"
kind = "max_age"
policy = "medarbetare i sin månadsrutin ska behandla och ta bort sina e-postmeddelanden från inkorgen"
max_age = "31d"
timestamp = "received"
when = {{ sources = ["mail"], folders = ["INBOX"] }}

[[rules]]
id = "P2-wide-cc"
kind = "max_recipients"
policy = "Vi strävar efter att minimera de personer som blir kopierade (CC:)"
max = 3
when = {{ sources = ["mail"] }}

[[rules]]
id = "P13-old-files"
kind = "max_age"
policy = "När vi tar emot ansökningar sparas dessa för eventuella framtida arbetstillfällen"
max_age = "12 months"
timestamp = "modified"
when = {{ sources = ["share"] }}

[[rules]]
id = "P8-former-customers"
kind = "max_age"
policy = "Vi sparar dina Kunduppgifter så länge som du är kund hos oss."
max_age = "12 months"
timestamp = "date:customer_ended"
when = {{ sources = ["directory"], attributes = {{ status = "former" }} }}

[[rules]]
id = "P4-closed-cases"
kind = "max_age"
policy = "När ett ärende är avklarat ska personinformationen raderas eller anonymiseras"
max_age = "30d"
timestamp = "date:closed"
when = {{ sources = ["crm"], attributes = {{ status = "closed" }} }}

[report]
language = "sv"
sender = "tillsyn@exempel.se"
recipients = ["ledningen@exempel.se"]
attach_findings = true

[report.smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "plain"
allow_plaintext = true
timeout_seconds = 10
"#,
        listen = world.listen,
        imap_port = dovecot.tls_port,
        imap_ca = dovecot.path("ca.pem").display(),
        ldap_port = slapd.tls_port,
        ldap_ca = slapd.path("ca.pem").display(),
        crm_url = world._crm.url(),
    );
    std::fs::write(root.join("tillsyn.toml"), text).expect("config");
}

/// Run tillsyn with exactly `args` (no `--reveal`), logging at debug level.
fn run(world: &World, args: &[&str]) -> Output {
    let config = world.dir.path().join("tillsyn.toml");
    Command::new(env!("CARGO_BIN_EXE_tillsyn"))
        .args(args)
        .arg("--config")
        .arg(&config)
        .env("TILLSYN_LOG", "debug")
        .current_dir(world.dir.path())
        .output()
        .expect("run tillsyn")
}

/// What every output path shows, one text per path, named.
fn every_output(world: &World, month: &str) -> Vec<(String, String)> {
    let mut outputs = Vec::new();
    let mut keep = |name: &str, output: &Output| {
        let (stdout, stderr) = text(output);
        assert!(
            output.status.code().is_some_and(|code| code <= 1),
            "{name}: {stdout}{stderr}"
        );
        outputs.push((format!("{name} (stdout)"), stdout));
        outputs.push((format!("{name} (stderr, debug log)"), stderr));
    };
    keep("scan table", &run(world, &["scan", "--once"]));
    let json = run(world, &["scan", "--once", "--format", "json"]);
    keep("scan json", &json);
    let findings = json_lines(&json);
    assert_eq!(findings.len(), 6, "the planted findings: {findings:#?}");
    keep("findings table", &run(world, &["findings"]));
    keep(
        "findings json",
        &run(world, &["findings", "--all", "--format", "json"]),
    );
    for finding in &findings {
        let id = finding["id"].as_i64().expect("id").to_string();
        keep(&format!("explain {id}"), &run(world, &["explain", &id]));
    }
    keep(
        "check-config --connect",
        &run(world, &["check-config", "--connect"]),
    );
    let out = world.dir.path().join(format!("report-{month}"));
    let before = world.sink.messages().len();
    let report = run(
        world,
        &[
            "report",
            "--month",
            month,
            "--send",
            "--out",
            out.to_str().expect("utf8"),
        ],
    );
    keep("report", &report);
    for file in ["report.html", "report.txt", &format!("tillsyn-{month}.csv")] {
        let body = std::fs::read_to_string(out.join(file)).expect("report file");
        outputs.push((format!("report file {file}"), body));
    }
    let messages = world.sink.messages();
    assert_eq!(messages.len(), before + 1, "one report mailed");
    let raw = messages.last().expect("mail");
    let message = MessageParser::default().parse(raw).expect("mail parses");
    let mut mail = String::from_utf8_lossy(raw).into_owned();
    mail.push_str(&message.body_text(0).unwrap_or_default());
    mail.push_str(&message.body_html(0).unwrap_or_default());
    for part in message.attachments() {
        mail.push_str(part.attachment_name().unwrap_or_default());
        mail.push_str(&String::from_utf8_lossy(part.contents()));
    }
    outputs.push(("the received mail, decoded".into(), mail));
    outputs
}

fn planted_in(text: &str) -> Vec<&'static str> {
    let lower = text.to_lowercase();
    PLANTED
        .iter()
        .copied()
        .filter(|name| lower.contains(name))
        .collect()
}

#[test]
fn no_output_names_a_person_unless_the_config_says_so() {
    let mut world = world();
    let month = tillsyn_app::report::Month::of(chrono::Utc::now(), chrono_tz::UTC).to_string();

    // The daemon, logging at debug level, scans every source once at start.
    let config = world.dir.path().join("tillsyn.toml");
    let state = world.dir.path().join("state");
    let daemon = Daemon::start(
        &config,
        world.listen,
        world.dir.path(),
        &[("TILLSYN_LOG", "debug")],
    );
    wait_for("every source scanned", || {
        let metrics = daemon.metrics();
        ["mail", "share", "directory", "crm"].iter().all(|source| {
            metrics
                .value("tillsyn_scan_success", &[("source", source)])
                .is_some_and(|value| value == 1.0)
        })
    });
    let (status, metrics) = daemon.get("/metrics").expect("metrics");
    assert_eq!(status, 200);
    let log = daemon.log_text();
    drop(daemon);
    assert!(state.join("findings.sqlite").exists());
    assert!(
        log.contains("DEBUG") || log.contains("Scan finished"),
        "the log is at debug level: {log}"
    );

    let mut outputs = every_output(&world, &month);
    outputs.push(("/metrics".into(), metrics));
    outputs.push(("daemon log (debug)".into(), log));
    let leaks: Vec<String> = outputs
        .iter()
        .filter_map(|(name, text)| {
            let found = planted_in(text);
            (!found.is_empty()).then(|| format!("{name}: {found:?}\n{text}"))
        })
        .collect();
    assert!(
        leaks.is_empty(),
        "with name_people = false, planted names leaked:\n{}",
        leaks.join("\n---\n")
    );

    // The same with the switch on: people are named where they are expected.
    let smtp_port = {
        let text = std::fs::read_to_string(&config).expect("config");
        text.split("port = ")
            .last()
            .and_then(|rest| rest.lines().next())
            .and_then(|port| port.trim().parse::<u16>().ok())
            .expect("smtp port")
    };
    write_config(&world, smtp_port, true);
    // The report of a month is sent once: a second send needs another month's
    // entry gone, so clear the outbox the first run filled.
    open_store(&state)
        .execute("DELETE FROM outbox WHERE kind = 'report'", [])
        .expect("clear outbox");
    let outputs = every_output(&world, &month);
    // The report's sections name custodians and top folders; its CSV (and so the
    // mail that carries it) has every record's full location.
    let custodians = &["anna.andersson", "lisa.lind"][..];
    for (path, expected_names) in [
        ("scan json (stdout)".to_owned(), LOCATED),
        ("findings json (stdout)".to_owned(), LOCATED),
        ("report file report.html".to_owned(), custodians),
        ("report file report.txt".to_owned(), custodians),
        (format!("report file tillsyn-{month}.csv"), LOCATED),
        ("the received mail, decoded".to_owned(), LOCATED),
    ] {
        let (_, text) = outputs
            .iter()
            .find(|(name, _)| *name == path)
            .expect("output path");
        let found = planted_in(text);
        for expected in expected_names {
            assert!(
                found.contains(expected),
                "{path}: with name_people = true, {expected} should show:\n{text}"
            );
        }
    }
    let explained: String = outputs
        .iter()
        .filter(|(name, _)| name.starts_with("explain"))
        .map(|(_, text)| text.as_str())
        .collect();
    for expected in LOCATED {
        assert!(
            planted_in(&explained).contains(expected),
            "explain names {expected}"
        );
    }
    // Correspondents are never stored, so never shown, even then.
    let everything: String = outputs.iter().map(|(_, text)| text.as_str()).collect();
    assert!(!everything.to_lowercase().contains("gustav.gran"));
    world.sink.stop();
}

/// Nothing read is kept in plain: after two scans (the second from the
/// caches) neither the store nor its write-ahead log holds an address or a
/// personnummer from inside a record, nor a conflict rule's join key; the
/// share's content cache is keyed by keyed hashes of paths. (Record paths
/// themselves are kept: findings and the identity index say where things
/// are.) The same addresses do show in the CRM the scan read, so the test
/// can fail.
#[test]
fn nothing_read_is_kept_in_plain_at_rest() {
    use common::crm::{Behaviour, CrmServer};
    let contacts = |status: &str| {
        vec![
            serde_json::json!({"id": "k-1", "email": "vera.vinter@kund.se", "status": status}),
            serde_json::json!({"id": "k-2", "email": "olof.oberg@kund.se", "status": "active"}),
        ]
    };
    let crm = CrmServer::start(Behaviour {
        items: contacts("opted_out"),
        token: "t".into(),
        ..Behaviour::default()
    });
    let list = CrmServer::start(Behaviour {
        items: contacts("member"),
        token: "t".into(),
        ..Behaviour::default()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::write(root.join("token"), "t\n").expect("token");
    file_at(
        &root.join("share/Kunder/acme/kontakt.txt"),
        "Kontakt vera.vinter@kund.se, personnummer 811218-9876\n".as_bytes(),
        days_ago(3),
    );
    file_at(
        &root.join("share/Kunder/acme/Hemlig-Plan-Zeta.txt"),
        b"Inget personligt alls.\n",
        days_ago(3),
    );
    let config = root.join("tillsyn.toml");
    let source = |name: &str, url: String| {
        format!(
            "[[sources]]\nname = \"{name}\"\ntype = \"http\"\nurl = \"{url}\"\nallow_plaintext = true\n\
             auth = {{ bearer_file = \"token\" }}\nkind = \"contact\"\nid = \"/id\"\n\
             attributes = {{ email = \"/email\", status = \"/status\" }}\n\n"
        )
    };
    std::fs::write(
        &config,
        format!(
            "[daemon]\nstate_dir = \"state\"\n\n{}{}\
             [[sources]]\nname = \"share\"\ntype = \"fileshare\"\nroot = \"share\"\n\n\
             [[rules]]\nid = \"pnr\"\nkind = \"contains\"\npolicy = \"p\"\n\
             detectors = [\"personnummer\", \"email\"]\nwhen = {{ sources = [\"share\"] }}\n\n\
             [[rules]]\nid = \"opted-out\"\nkind = \"conflict\"\npolicy = \"p\"\n\
             when = {{ sources = [\"list\"] }}\n\
             marked_by = {{ sources = [\"crm\"], attributes = {{ status = \"opted_out\" }} }}\nkey = \"email\"\n",
            source("crm", crm.url()),
            source("list", list.url()),
        ),
    )
    .expect("config");
    let config = config.to_str().expect("utf8");
    for _ in 0..2 {
        let output = tillsyn(&["scan", "--once", "--config", config]);
        assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    }
    let findings = pairs(&json_lines(&tillsyn(&[
        "findings", "--config", config, "--format", "json",
    ])));
    assert_eq!(
        findings,
        ["opted-out:k-1", "pnr:Kunder/acme/kontakt.txt"]
            .map(String::from)
            .into_iter()
            .collect(),
        "the conflict and the content were judged"
    );
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(root.join("state")).expect("state") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            stored.extend(std::fs::read(&path).expect("read"));
        }
    }
    let stored = String::from_utf8_lossy(&stored).to_lowercase();
    for plain in [
        "vera.vinter",
        "olof.oberg",
        "kund.se",
        "811218-9876",
        "8112189876",
    ] {
        assert!(!stored.contains(plain), "{plain} kept in plain at rest");
    }
    let keys: Vec<String> = {
        let store = open_store(&root.join("state"));
        let mut query = store
            .prepare("SELECT key FROM checkpoints WHERE key LIKE 'content:%'")
            .expect("query");
        query
            .query_map([], |row| row.get(0))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("keys")
    };
    assert_eq!(keys.len(), 2, "{keys:?}");
    for key in &keys {
        let hash = key.strip_prefix("content:").expect("prefix");
        assert!(
            hash.len() == 32 && hash.chars().all(|c| c.is_ascii_hexdigit()),
            "{key}"
        );
    }
    // What the CRM served holds them: the scan read them.
    let served = crm.behaviour.lock().expect("lock").items[0].to_string();
    assert!(served.contains("vera.vinter"));
}
