//! What an admin runs before trusting tillsyn: `check-config --connect` against
//! real Dovecot, slapd and an HTTP server (OK and failing: wrong password, wrong
//! CA, unreachable, missing root); `findings`, `explain` and `report` from a shell
//! without the connectors' secrets; `scan --dry-run` leaving the store byte for
//! byte as it was; the `findings` filters; and the exit codes.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::crm::{Behaviour, CrmServer};
use common::dovecot::{Dovecot, message};
use common::process::free_port;
use common::slapd::{Person, SERVICE_DN, SERVICE_PASSWORD, SUFFIX, Slapd};
use common::*;

const TOKEN: &str = "admin-test-token";

const RULES: &str = r#"
[[rules]]
id = "stale-inbox"
kind = "max_age"
policy = "medarbetare i sin månadsrutin ska behandla och ta bort sina e-postmeddelanden från inkorgen"
max_age = "31d"
timestamp = "received"
when = { sources = ["mail"], folders = ["INBOX"] }

[[rules]]
id = "old-logs"
kind = "max_age"
policy = "Vi lagrar viss information av säkerhetsskäl i tre månader"
max_age = "90d"
timestamp = "modified"
when = { sources = ["share"], paths = ["loggar/**"] }

[[rules]]
id = "old-files"
kind = "max_age"
policy = "Kundmaterial gallras efter tre år"
max_age = "3y"
timestamp = "modified"
when = { sources = ["share"], paths = ["kunder/**"] }
"#;

struct Servers {
    dovecot: Dovecot,
    slapd: Slapd,
    crm: CrmServer,
}

fn servers() -> Servers {
    let dovecot = Dovecot::start(&[("anna", "anna-pw"), ("bo", "bo-pw")]);
    {
        let mut anna = dovecot.client("anna", "anna-pw");
        anna.append(
            "INBOX",
            &message(&["anna@firma.se"], &[], "Mon, 1 Jun 2026 10:00:00 +0000", 1),
            90,
        );
    }
    let slapd = Slapd::start(&[Person {
        uid: "p1".into(),
        status: "active",
        ended: None,
        opt_out: false,
    }]);
    let crm = CrmServer::start(Behaviour {
        items: vec![serde_json::json!({ "id": "case-1", "status": "open" })],
        token: TOKEN.into(),
        ..Behaviour::default()
    });
    Servers {
        dovecot,
        slapd,
        crm,
    }
}

/// Knobs that break one source each.
#[derive(Default)]
struct Breakage {
    imap_password: Option<&'static str>,
    imap_ca: Option<&'static str>,
    imap_port: Option<u16>,
    ldap_password: Option<&'static str>,
    ldap_ca: Option<&'static str>,
    ldap_port: Option<u16>,
    http_token: Option<&'static str>,
    http_port: Option<u16>,
    share_root: Option<&'static str>,
}

fn write_config(dir: &Path, servers: &Servers, broken: &Breakage) -> String {
    std::fs::create_dir_all(dir.join("share")).expect("share");
    std::fs::create_dir_all(dir.join("maildirs")).expect("maildirs");
    std::fs::write(
        dir.join("accounts.toml"),
        format!(
            "[[accounts]]\nuser = \"anna\"\npassword = \"{}\"\n[[accounts]]\nuser = \"bo\"\npassword = \"bo-pw\"\n",
            broken.imap_password.unwrap_or("anna-pw")
        ),
    )
    .expect("accounts");
    std::fs::write(
        dir.join("ldap.pw"),
        format!("{}\n", broken.ldap_password.unwrap_or(SERVICE_PASSWORD)),
    )
    .expect("pw");
    std::fs::write(
        dir.join("crm.token"),
        format!("{}\n", broken.http_token.unwrap_or(TOKEN)),
    )
    .expect("token");
    let crm_url = match broken.http_port {
        Some(port) => format!("http://127.0.0.1:{port}/api/cases"),
        None => servers.crm.url(),
    };
    let text = format!(
        r#"[daemon]
state_dir = "state"

[[sources]]
name = "mail"
type = "imap"
host = "localhost"
port = {imap_port}
security = "tls"
ca_file = "{imap_ca}"
timeout_seconds = 10
attempts = 1
auth = {{ method = "password", accounts_file = "accounts.toml" }}

[[sources]]
name = "directory"
type = "ldap"
url = "ldaps://127.0.0.1:{ldap_port}"
ca_file = "{ldap_ca}"
bind_dn = "{SERVICE_DN}"
password_file = "ldap.pw"
base_dn = "ou=people,{SUFFIX}"
timeout_seconds = 10

[[sources]]
name = "crm"
type = "http"
url = "{crm_url}"
allow_plaintext = true
auth = {{ bearer_file = "crm.token" }}
items = "/items"
id = "/id"
timeout_seconds = 5
attempts = 1

[[sources]]
name = "share"
type = "fileshare"
root = "{share}"

[[sources]]
name = "maildirs"
type = "maildir"
root = "maildirs"
{RULES}"#,
        imap_port = broken.imap_port.unwrap_or(servers.dovecot.tls_port),
        imap_ca = servers
            .dovecot
            .path(broken.imap_ca.unwrap_or("ca.pem"))
            .display(),
        ldap_port = broken.ldap_port.unwrap_or(servers.slapd.tls_port),
        ldap_ca = servers
            .slapd
            .path(broken.ldap_ca.unwrap_or("ca.pem"))
            .display(),
        share = broken.share_root.unwrap_or("share"),
    );
    let path = dir.join("tillsyn.toml");
    std::fs::write(&path, text).expect("config");
    path.to_str().expect("utf8").to_owned()
}

/// `name: OK` or `name: FAILED — …` lines of a `--connect` run, by source.
fn verdicts(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .skip_while(|line| !line.starts_with("Connecting"))
        .filter_map(|line| {
            let (name, rest) = line.trim().split_once(": ")?;
            (rest.starts_with("OK") || rest.starts_with("FAILED"))
                .then(|| (name.to_owned(), rest.to_owned()))
        })
        .collect()
}

#[test]
fn check_config_connect_says_per_source_ok_or_why_not() {
    let servers = servers();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &servers, &Breakage::default());
    let before = servers.dovecot.client("anna", "anna-pw").snapshot("INBOX");
    let output = tillsyn(&["check-config", "--connect", "--config", &config]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    let seen = verdicts(&stdout);
    let names: Vec<&str> = seen.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["mail", "directory", "crm", "share", "maildirs"]);
    for (name, verdict) in &seen {
        assert!(verdict.starts_with("OK"), "{name}: {verdict}");
    }
    assert!(stdout.contains("2 accounts logged in"), "{stdout}");
    assert!(stdout.contains("first page read: 1 items"), "{stdout}");
    // Read-only: the mailbox is as it was (flags, UIDs, MODSEQ).
    let after = servers.dovecot.client("anna", "anna-pw").snapshot("INBOX");
    assert_eq!(before, after);

    // Each source broken its own way, three times over (a wrong password, a
    // wrong CA, nothing listening): each says why, the untouched stay OK.
    let check = |broken: &Breakage, expected: &[(&str, &[&str])]| {
        let config = write_config(dir.path(), &servers, broken);
        let output = tillsyn(&["check-config", "--connect", "--config", &config]);
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(2), "{stdout}{stderr}");
        let seen: std::collections::BTreeMap<String, String> =
            verdicts(&stdout).into_iter().collect();
        assert_eq!(seen.len(), 5, "{stdout}");
        for (name, verdict) in &seen {
            match expected.iter().find(|(broken, _)| broken == name) {
                None => assert!(verdict.starts_with("OK"), "{name}: {verdict}"),
                Some((_, words)) => {
                    assert!(verdict.starts_with("FAILED"), "{name}: {verdict}");
                    for word in *words {
                        assert!(verdict.contains(word), "{name}: {verdict} lacks {word:?}");
                    }
                }
            }
        }
        // Account names are pseudonyms: the privacy switch holds here too.
        assert!(!stdout.contains("account anna"), "{stdout}");
    };
    check(
        &Breakage {
            imap_password: Some("wrong-pw"),
            ldap_password: Some("wrong-pw"),
            http_token: Some("wrong-token"),
            ..Breakage::default()
        },
        &[
            (
                "mail",
                &["1 of 2 accounts failed", "login refused", "account p-"],
            ),
            (
                "directory",
                &["bind as cn=tillsyn,ou=services", "invalid credentials"],
            ),
            ("crm", &["401", "refused the credentials"]),
        ],
    );
    check(
        &Breakage {
            imap_ca: Some("other-ca.pem"),
            ldap_ca: Some("other-ca.pem"),
            ..Breakage::default()
        },
        &[
            ("mail", &["2 of 2 accounts failed", "TLS"]),
            ("directory", &["cannot connect"]),
        ],
    );
    check(
        &Breakage {
            imap_port: Some(free_port()),
            ldap_port: Some(free_port()),
            http_port: Some(free_port()),
            share_root: Some("no-such-share"),
            ..Breakage::default()
        },
        &[
            ("mail", &["cannot connect"]),
            ("directory", &["cannot connect"]),
            ("crm", &["page 1", "after 1 tries"]),
            ("share", &["no-such-share"]),
        ],
    );
}

#[test]
fn findings_explain_and_report_need_no_connector_secret() {
    let servers = servers();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &servers, &Breakage::default());
    file_at(
        &dir.path().join("share/loggar/access.log"),
        b"x",
        days_ago(200),
    );
    let output = tillsyn(&["scan", "--once", "--config", &config]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    let found = pairs(&json_lines(&tillsyn(&[
        "findings", "--config", &config, "--format", "json",
    ])));
    let expected: BTreeSet<String> = [
        "stale-inbox:anna/INBOX/1".to_owned(),
        "old-logs:loggar/access.log".to_owned(),
    ]
    .into();
    assert_exact(&found, &expected);

    // The shell of someone who reads results: no accounts file, no passwords,
    // no token, no CA.
    for secret in ["accounts.toml", "ldap.pw", "crm.token"] {
        std::fs::remove_file(dir.path().join(secret)).expect("remove");
    }
    let scan = tillsyn(&["scan", "--once", "--config", &config]);
    assert_eq!(scan.status.code(), Some(3), "scanning needs the secrets");
    let findings = tillsyn(&["findings", "--config", &config, "--format", "json"]);
    assert_eq!(findings.status.code(), Some(0), "{:?}", text(&findings));
    assert_exact(&pairs(&json_lines(&findings)), &expected);
    let id = json_lines(&findings)[0]["id"].as_i64().expect("id");
    let explain = tillsyn(&["explain", &id.to_string(), "--config", &config]);
    assert_eq!(explain.status.code(), Some(0), "{:?}", text(&explain));
    let report = tillsyn(&[
        "report",
        "--config",
        &config,
        "--out",
        dir.path().join("report").to_str().expect("utf8"),
    ]);
    assert_eq!(report.status.code(), Some(0), "{:?}", text(&report));
    // What the report holds is private: owner-only, whatever the umask.
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&dir.path().join("report")), 0o700);
    for file in std::fs::read_dir(dir.path().join("report")).expect("report dir") {
        let path = file.expect("entry").path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    assert_eq!(mode(&dir.path().join("state/pseudonym.key")), 0o600);
}

#[test]
fn findings_filter_and_explain_says_how_it_was_judged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let share = dir.path().join("share");
    file_at(&share.join("loggar/a.log"), b"x", days_ago(200));
    file_at(&share.join("loggar/b.log"), b"x", days_ago(100));
    file_at(&share.join("loggar/c.log"), b"x", days_ago(10));
    file_at(&share.join("kunder/acme/avtal.pdf"), b"x", days_ago(1500));
    let config = dir.path().join("tillsyn.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nstate_dir = \"state\"\ntimezone = \"Europe/Stockholm\"\n\n[[sources]]\nname = \"share\"\ntype = \"fileshare\"\nroot = \"share\"\n{}",
            RULES
                .split("[[rules]]")
                .filter(|rule| !rule.contains("\"mail\""))
                .collect::<Vec<_>>()
                .join("[[rules]]")
        ),
    )
    .expect("config");
    let config = config.to_str().expect("utf8");
    let output = tillsyn(&["scan", "--once", "--config", config]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    let listed = |extra: &[&str]| -> BTreeSet<String> {
        let mut args = vec!["findings", "--config", config, "--format", "json"];
        args.extend_from_slice(extra);
        let output = tillsyn_as_configured(&args);
        assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
        pairs(&json_lines(&output))
    };
    let everything: BTreeSet<String> = [
        "old-logs:loggar/a.log",
        "old-logs:loggar/b.log",
        "old-files:kunder/acme/avtal.pdf",
    ]
    .map(str::to_owned)
    .into();
    assert_exact(&listed(&[]), &everything);
    assert_exact(
        &listed(&["--rule", "old-files"]),
        &["old-files:kunder/acme/avtal.pdf".to_owned()].into(),
    );
    assert!(listed(&["--source", "nosuch"]).is_empty());
    assert_exact(&listed(&["--since", "2000-01-01"]), &everything);
    assert!(listed(&["--since", "2999-01-01"]).is_empty());
    let bad = tillsyn(&["findings", "--config", config, "--since", "yesterday"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).1.contains("--since"), "{:?}", text(&bad));
    // --custodian takes the pseudonym the output shows.
    let all = json_lines(&tillsyn_as_configured(&[
        "findings", "--config", config, "--format", "json",
    ]));
    let custodian = all[0]["custodian"].as_str().expect("custodian").to_owned();
    assert!(custodian.starts_with("p-"), "{custodian}");
    assert_exact(&listed(&["--custodian", &custodian]), &everything);
    assert!(listed(&["--custodian", "p-000000000000"]).is_empty());

    // The table prints ids; explain takes one.
    let table = tillsyn_as_configured(&["findings", "--config", config]);
    let (stdout, _) = text(&table);
    assert!(stdout.starts_with("ID"), "{stdout}");
    let log = all
        .iter()
        .find(|finding| finding["record"] == "loggar/a.log")
        .expect("a.log");
    let id = log["id"].as_i64().expect("id").to_string();
    let explain = tillsyn_as_configured(&["explain", &id, "--config", config]);
    let (stdout, stderr) = text(&explain);
    assert_eq!(explain.status.code(), Some(0), "{stderr}");
    for expected in [
        "rule:       old-logs",
        "\"Vi lagrar viss information av säkerhetsskäl i tre månader\"",
        "clock:      from the first of: modified (the file's modification time",
        "max_age 90d",
        "measured:   modified ",
        "200 days ago",
        "first seen:",
        "last seen:",
        "resolved:   no, still open",
    ] {
        assert!(stdout.contains(expected), "{expected:?} not in:\n{stdout}");
    }
    let missing = tillsyn(&["explain", "999999", "--config", config]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing).1.contains("no finding with id 999999"));
}

/// Every row of every table, and the database files' bytes.
fn store_state(state: &Path) -> (Vec<String>, Vec<Vec<u8>>) {
    let connection = open_store(state);
    let tables: Vec<String> = connection
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .expect("tables")
        .query_map([], |row| row.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("names");
    let mut rows = Vec::new();
    for table in tables {
        let mut statement = connection
            .prepare(&format!("SELECT * FROM {table}"))
            .expect("select");
        let columns = statement.column_count();
        let mut query = statement.query([]).expect("query");
        while let Some(row) = query.next().expect("row") {
            let values: Vec<String> = (0..columns)
                .map(|index| format!("{:?}", row.get_ref(index).expect("value")))
                .collect();
            rows.push(format!("{table}: {}", values.join(" | ")));
        }
    }
    drop(connection);
    let files = ["findings.sqlite", "findings.sqlite-wal"]
        .iter()
        .map(|name| std::fs::read(state.join(name)).unwrap_or_default())
        .collect();
    (rows, files)
}

#[test]
fn a_dry_run_reads_and_evaluates_and_leaves_the_store_as_it_was() {
    let dir = tempfile::tempdir().expect("tempdir");
    let share = dir.path().join("share");
    file_at(&share.join("loggar/a.log"), b"x", days_ago(200));
    file_at(&share.join("loggar/b.log"), b"x", days_ago(10));
    let config = dir.path().join("tillsyn.toml");
    std::fs::write(
        &config,
        "[daemon]\nstate_dir = \"state\"\n\n[[sources]]\nname = \"share\"\ntype = \"fileshare\"\nroot = \"share\"\n\n\
         [[rules]]\nid = \"old-logs\"\nkind = \"max_age\"\npolicy = \"tre månader\"\nmax_age = \"90d\"\ntimestamp = \"modified\"\n",
    )
    .expect("config");
    let config = config.to_str().expect("utf8");
    assert_eq!(
        tillsyn(&["scan", "--once", "--config", config])
            .status
            .code(),
        Some(0)
    );
    // The share changes: a.log goes, b.log grows old.
    std::fs::remove_file(share.join("loggar/a.log")).expect("remove");
    set_mtime(&share.join("loggar/b.log"), days_ago(300));
    let state = dir.path().join("state");
    let before = store_state(&state);
    let dry = tillsyn(&[
        "scan",
        "--once",
        "--dry-run",
        "--config",
        config,
        "--format",
        "json",
    ]);
    let (_, stderr) = text(&dry);
    assert_eq!(dry.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("Dry run: nothing was written"), "{stderr}");
    // It evaluated the share as it is now…
    assert_exact(
        &pairs(&json_lines(&dry)),
        &["old-logs:loggar/b.log".to_owned()].into(),
    );
    assert!(stderr.contains("1 new, 1 resolved"), "{stderr}");
    // …and the store is byte for byte what it was.
    let after = store_state(&state);
    assert_eq!(before.0, after.0, "rows changed");
    assert!(before.1 == after.1, "database files changed");
    // A real scan then does what the dry run showed.
    let real = tillsyn(&["scan", "--once", "--config", config, "--format", "json"]);
    assert_exact(
        &pairs(&json_lines(&real)),
        &["old-logs:loggar/b.log".to_owned()].into(),
    );
    assert_ne!(store_state(&state).0, before.0);
}
