//! Personal digests against real servers: mailbox custodians on Dovecot, file
//! custodians on a share (named by path), delivered through a real SMTP server
//! (aiosmtpd). Each custodian with findings gets exactly one mail holding their
//! own findings and nothing of anyone else's; a custodian without an address is
//! counted; a second run sends nothing again; a mail server that is down
//! delays the digests and loses none. (LDAP lookups of addresses and
//! languages are not built: addresses come from a file, the custodian or a
//! template.)

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use chrono::Local;
use common::dovecot::{Dovecot, message};
use common::process::free_port;
use common::smtp::SmtpSink;
use common::*;
use mail_parser::MessageParser;

const RECENT: &str = "Mon, 1 Jan 2024 10:00:00 +0000";

fn config(dir: &Path, imap_port: u16, smtp_port: u16) -> String {
    std::fs::write(
        dir.join("accounts.toml"),
        "[[accounts]]\nuser = \"anna\"\npassword = \"anna-pw\"\n\n[[accounts]]\nuser = \"bo\"\npassword = \"bo-pw\"\n",
    )
    .expect("accounts");
    std::fs::write(
        dir.join("addresses.csv"),
        "# custodian,address,language\nanna,anna.andersson@firma.se\ncarl,carl@firma.se,en\n",
    )
    .expect("addresses");
    let text = format!(
        r#"[daemon]
state_dir = "state"

[[sources]]
name = "mail"
type = "imap"
host = "127.0.0.1"
port = {imap_port}
security = "plain"
allow_plaintext = true
timeout_seconds = 5
attempts = 1
auth = {{ method = "password", accounts_file = "accounts.toml" }}

[[sources]]
name = "share"
type = "fileshare"
root = "share"
custodian_from = ["Hem/{{custodian}}/**"]

[[rules]]
id = "stale-inbox"
kind = "max_age"
policy = "Inkorgen töms i månadsrutinen."
max_age = "31d"
timestamp = "received"
when = {{ sources = ["mail"], folders = ["INBOX"] }}

[[rules]]
id = "old-files"
kind = "max_age"
policy = "Filer i hemkatalogerna gallras efter ett år."
max_age = "365d"
timestamp = "modified"
when = {{ sources = ["share"] }}

{mail}
language = "sv"

[digest]
domains = ["firma.se"]
address_template = "{{custodian}}@firma.se"
addresses_file = "addresses.csv"
items = 5
rate_per_minute = 6000
"#,
        mail = mail_settings(smtp_port)
    );
    let path = dir.join("tillsyn.toml");
    std::fs::write(&path, text).expect("config");
    path.to_str().expect("utf8").to_owned()
}

/// `[report.smtp]` on the loopback sink at `port`, then `[report]` with the
/// sender and recipients, open for more keys.
fn mail_settings(port: u16) -> String {
    format!(
        "[report.smtp]\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"plain\"\n\
         allow_plaintext = true\ntimeout_seconds = 5\n\n\
         [report]\nsender = \"tillsyn@firma.se\"\nrecipients = [\"ledningen@firma.se\"]\nretry_seconds = 1"
    )
}

/// `tillsyn digest --month MONTH --send`: exit status, stdout and stderr.
fn send_digests(config: &str, month: &str) -> (Option<i32>, String, String) {
    let output = tillsyn(&["digest", "--config", config, "--month", month, "--send"]);
    let (stdout, stderr) = text(&output);
    (output.status.code(), stdout, stderr)
}

/// To-address → (subject, body) of each mail the sink holds.
fn received(sink: &SmtpSink) -> Vec<(String, String, String)> {
    sink.messages()
        .iter()
        .map(|raw| {
            let parsed = MessageParser::default().parse(raw).expect("mail parses");
            let to = parsed
                .to()
                .and_then(|to| to.first())
                .and_then(|address| address.address())
                .expect("to")
                .to_owned();
            (
                to,
                parsed.subject().unwrap_or_default().to_owned(),
                parsed.body_text(0).unwrap_or_default().into_owned(),
            )
        })
        .collect()
}

#[test]
fn each_custodian_gets_their_own_findings_once_and_nothing_is_lost_when_mail_is_down() {
    let server = Dovecot::start(&[("anna", "anna-pw"), ("bo", "bo-pw")]);
    let mut anna = server.client("anna", "anna-pw");
    let anna_old = anna.append("INBOX", &message(&["anna@firma.se"], &[], RECENT, 1), 90);
    anna.append("INBOX", &message(&["anna@firma.se"], &[], RECENT, 2), 2);
    let mut bo = server.client("bo", "bo-pw");
    let bo_old = bo.append("INBOX", &message(&["bo@firma.se"], &[], RECENT, 3), 60);
    let dir = tempfile::tempdir().expect("tempdir");
    let share = dir.path().join("share");
    file_at(
        &share.join("Hem/carl/budget-2019.xlsx"),
        b"x",
        days_ago(800),
    );
    file_at(&share.join("Hem/carl/ny.txt"), b"x", days_ago(3));
    file_at(
        &share.join("Hem/extern konsult/rapport.pdf"),
        b"x",
        days_ago(900),
    );
    let smtp_port = free_port();
    let config = config(dir.path(), server.port, smtp_port);
    let scan = tillsyn(&["scan", "--once", "--config", &config]);
    assert_eq!(scan.status.code(), Some(0), "{:?}", text(&scan));
    let month = Local::now().format("%Y-%m").to_string();

    // The mail server is down: nothing is delivered, everything waits.
    let (status, stdout, stderr) = send_digests(&config, &month);
    assert_eq!(status, Some(2), "{stdout}{stderr}");
    assert!(
        stdout.contains("4 custodians with findings, 3 new in the outbox, 1 without an address"),
        "{stdout}"
    );
    assert!(stdout.contains("sent 0, failed 3"), "{stdout}");

    // Up again, after the retry wait: each custodian exactly one mail.
    let sink = SmtpSink::start(dir.path(), smtp_port);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (status, stdout, stderr) = send_digests(&config, &month);
    assert_eq!(status, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("0 new in the outbox"), "{stdout}");
    assert!(stdout.contains("sent 3, failed 0"), "{stdout}");
    let mails: BTreeMap<String, (String, String)> = received(&sink)
        .into_iter()
        .map(|(to, subject, body)| (to, (subject, body)))
        .collect();
    assert_eq!(sink.messages().len(), 3, "one mail per custodian");
    assert_eq!(
        mails.keys().cloned().collect::<Vec<_>>(),
        ["anna.andersson@firma.se", "bo@firma.se", "carl@firma.se"]
    );

    // Each holds its custodian's findings, and nobody else's.
    let own: BTreeMap<&str, Vec<String>> = BTreeMap::from([
        (
            "anna.andersson@firma.se",
            vec![format!("mapp INBOX, mottaget"), format!("UID {anna_old}")],
        ),
        ("bo@firma.se", vec![format!("UID {bo_old}")]),
        (
            "carl@firma.se",
            vec!["Hem/carl/budget-2019.xlsx".to_owned()],
        ),
    ]);
    let foreign = [
        "Hem/carl",
        "extern konsult",
        "rapport.pdf",
        "anna",
        "bo@",
        "carl",
    ];
    for (to, (subject, body)) in &mails {
        for expected in &own[to.as_str()] {
            assert!(body.contains(expected.as_str()), "{to}: {expected}\n{body}");
        }
        let name = to.split(['@', '.']).next().expect("name");
        for other in foreign.iter().filter(|other| !other.contains(name)) {
            assert!(!body.contains(other), "{to} sees {other}:\n{body}");
            assert!(!subject.contains(other), "{to}: {subject}");
        }
    }
    // Carl's mapping says English; the others get the configured Swedish.
    assert!(mails["carl@firma.se"].0.starts_with("Your items to review"));
    assert!(
        mails["bo@firma.se"]
            .0
            .starts_with("Dina uppgifter att se över")
    );
    assert!(
        mails["anna.andersson@firma.se"]
            .1
            .contains("Inkorgen töms i månadsrutinen."),
        "the promise quoted"
    );
    // The young message and the young file are nobody's business.
    assert!(!mails["carl@firma.se"].1.contains("ny.txt"));

    // Again: nothing is sent twice.
    let (_, stdout, _) = send_digests(&config, &month);
    assert!(stdout.contains("0 new in the outbox"), "{stdout}");
    assert!(stdout.contains("sent 0, failed 0"), "{stdout}");
    assert_eq!(sink.messages().len(), 3);

    // The management report shows coverage, never content.
    let out = dir.path().join("report");
    let report = tillsyn(&[
        "report",
        "--config",
        &config,
        "--month",
        &month,
        "--out",
        out.to_str().expect("utf8"),
    ]);
    assert_eq!(report.status.code(), Some(0), "{:?}", text(&report));
    let report_text = std::fs::read_to_string(out.join("report.txt")).expect("report");
    assert!(
        report_text.contains("PERSONLIGA SAMMANSTÄLLNINGAR: 4 ansvariga med avvikelser, 3 skickade, 0 väntar, 0 uppgivna, 1 utan adress, 0 utan intern adress (skickas inte); 0 avvikelser utan ansvarig"),
        "{report_text}"
    );
    assert!(!report_text.contains("anna.andersson@firma.se"));
}

/// The daemon makes last month's digests once its first scans are done,
/// sends each custodian one, and after a restart sends none again.
#[test]
fn the_daemon_sends_each_custodian_one_digest_a_month_across_restarts() {
    use common::daemon::{Daemon, wait_for};
    let dir = tempfile::tempdir().expect("tempdir");
    let share = dir.path().join("share");
    file_at(&share.join("Hem/dana/gammal.docx"), b"x", days_ago(800));
    file_at(&share.join("Hem/erik/gammal.pdf"), b"x", days_ago(800));
    file_at(&share.join("Hem/erik/ny.pdf"), b"x", days_ago(1));
    let (smtp_port, listen) = (free_port(), free_port());
    let config = dir.path().join("tillsyn.toml");
    std::fs::write(
        &config,
        format!(
            r#"[daemon]
state_dir = "state"
listen = "127.0.0.1:{listen}"

[[sources]]
name = "share"
type = "fileshare"
root = "share"
custodian_from = ["Hem/{{custodian}}/**"]

[[rules]]
id = "old-files"
kind = "max_age"
policy = "Filer gallras efter ett år."
max_age = "365d"
timestamp = "modified"

{mail}

[digest]
domains = ["firma.se"]
address_template = "{{custodian}}@firma.se"
"#,
            mail = mail_settings(smtp_port)
        ),
    )
    .expect("config");
    let sink = SmtpSink::start(dir.path(), smtp_port);
    let digests = || -> Vec<String> {
        let mut to: Vec<String> = received(&sink)
            .into_iter()
            .map(|(to, _, _)| to)
            .filter(|to| to != "ledningen@firma.se")
            .collect();
        to.sort();
        to
    };
    let mut daemon = Daemon::start(&config, listen, dir.path(), &[]);
    wait_for("two digests", || digests().len() == 2);
    assert_eq!(digests(), ["dana@firma.se", "erik@firma.se"]);
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit().code(), Some(0));

    let mut daemon = Daemon::start(&config, listen, dir.path(), &[]);
    wait_for("the restarted daemon's first metrics", || {
        daemon.metrics().value("tillsyn_report_enabled", &[]) == Some(1.0)
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(digests().len(), 2, "nothing sent twice");
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit().code(), Some(0));
}

/// Addresses and languages from the directory: a file custodian's `uid` looked up
/// in slapd gives their `mail` and `preferredLanguage`; an entry without a
/// mail address leaves its custodian counted, not guessed (there is no template).
#[test]
fn custodians_addresses_and_languages_come_from_the_directory() {
    use common::slapd::{SERVICE_DN, SERVICE_PASSWORD, SUFFIX, Slapd};
    let directory = Slapd::start_with(
        &[],
        &format!(
            "dn: uid=dana,ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: dana\ncn: Dana\nsn: Dahl\n\
             mail: dana.dahl@firma.se\npreferredLanguage: en-GB\ndepartmentNumber: Ekonomi\n\n\
             dn: uid=erik,ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: erik\ncn: Erik\nsn: Ek\n\n"
        ),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ldap.pw"), SERVICE_PASSWORD).expect("password");
    let share = dir.path().join("share");
    file_at(&share.join("Hem/dana/gammal.docx"), b"x", days_ago(800));
    file_at(&share.join("Hem/erik/gammal.pdf"), b"x", days_ago(800));
    let smtp_port = free_port();
    let config = dir.path().join("tillsyn.toml");
    std::fs::write(
        &config,
        format!(
            r#"[daemon]
state_dir = "state"

[[sources]]
name = "share"
type = "fileshare"
root = "share"
custodian_from = ["Hem/{{custodian}}/**"]

[[sources]]
name = "directory"
type = "ldap"
url = "ldap://127.0.0.1:{port}"
allow_plaintext = true
bind_dn = "{SERVICE_DN}"
password_file = "ldap.pw"
base_dn = "ou=people,{SUFFIX}"
filter = "(objectClass=inetOrgPerson)"

[[rules]]
id = "old-files"
kind = "max_age"
policy = "Filer gallras efter ett år."
max_age = "365d"
timestamp = "modified"
when = {{ sources = ["share"] }}

{mail}

[report.departments]
source = "directory"
attribute = "departmentNumber"

[digest]
domains = ["firma.se"]
directory = {{ source = "directory" }}
"#,
            port = directory.port,
            mail = mail_settings(smtp_port)
        ),
    )
    .expect("config");
    let config = config.to_str().expect("utf8").to_owned();
    let scan = tillsyn(&["scan", "--once", "--source", "share", "--config", &config]);
    assert_eq!(scan.status.code(), Some(0), "{:?}", text(&scan));
    let sink = SmtpSink::start(dir.path(), smtp_port);
    let month = Local::now().format("%Y-%m").to_string();
    let (status, stdout, stderr) = send_digests(&config, &month);
    assert_eq!(status, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("2 custodians with findings, 1 new in the outbox, 1 without an address"),
        "{stdout}"
    );
    let mails = received(&sink);
    assert_eq!(mails.len(), 1);
    let (to, subject, body) = &mails[0];
    assert_eq!(to, "dana.dahl@firma.se");
    assert!(
        subject.starts_with("Your items to review"),
        "en-GB: {subject}"
    );
    assert!(
        body.contains("Hem/dana/gammal.docx") && !body.contains("erik"),
        "{body}"
    );

    // The report's "who" gives Dana's department beside her pseudonym;
    // Erik's entry has none.
    let who = |out: &str| {
        let output = tillsyn(&[
            "report", "--config", &config, "--month", &month, "--out", out,
        ]);
        assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
        std::fs::read_to_string(Path::new(out).join("report.txt")).expect("report")
    };
    let report = who(&dir.path().join("with").display().to_string());
    let lines: Vec<&str> = report
        .lines()
        .filter(|line| line.trim_start().starts_with("- p-"))
        .collect();
    assert_eq!(lines.len(), 2, "{report}");
    assert_eq!(
        lines
            .iter()
            .filter(|line| line.contains("(Ekonomi)"))
            .count(),
        1,
        "{report}"
    );
    assert!(
        !report.contains("dana") && !report.contains("erik"),
        "{report}"
    );

    // The directory down: nothing is made (addresses would be guessed).
    drop(directory);
    let down = tillsyn(&["digest", "--config", &config, "--month", "2026-01"]);
    let (stdout, stderr) = text(&down);
    assert_eq!(down.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("digest addresses from the directory"),
        "{stderr}"
    );
    // The report is still made, without departments.
    let report = who(&dir.path().join("without").display().to_string());
    assert!(
        report.contains("old-files") && !report.contains("(Ekonomi)"),
        "{report}"
    );
}

/// An organisation whose CRM contacts, CRM cases and directory entries carry
/// its customers' own addresses (gmail.com, yahoo.se, kund.se), and whose
/// share holds files owned by root: only employees get digests, exactly one
/// each, at their own addresses. Every customer address is a subject, never a
/// custodian; an account manager outside the organisation's domains is
/// counted and never mailed; root's files count as having no custodian.
/// Misses and strays are both counted.
#[test]
fn only_employees_get_digests_exactly_one_each_never_customers_or_system_accounts() {
    use common::crm::{Behaviour, CrmServer};
    use common::slapd::{Person, SERVICE_DN, SERVICE_PASSWORD, SUFFIX, Slapd};
    let server = Dovecot::start(&[("anna@firma.se", "anna-pw"), ("bo@firma.se", "bo-pw")]);
    for (account, password, id) in [("anna@firma.se", "anna-pw", 1), ("bo@firma.se", "bo-pw", 2)] {
        server
            .client(account, password)
            .append("INBOX", &message(&[account], &[], RECENT, id), 90);
    }
    // Former customers in the directory, ended long ago: each a finding, no
    // custodian (the directory names none), every address a customer's.
    let ended = (chrono::Utc::now() - chrono::TimeDelta::days(800))
        .format("%Y%m%d%H%M%SZ")
        .to_string();
    let customers: Vec<Person> = ["kalle", "lisa", "nils"]
        .iter()
        .map(|uid| Person {
            uid: (*uid).into(),
            status: "former",
            ended: Some(ended.clone()),
            opt_out: false,
        })
        .collect();
    let directory = Slapd::start(&customers);
    let old = (chrono::Utc::now() - chrono::TimeDelta::days(200)).to_rfc3339();
    // CRM cases: the handler acts, the contact is whom the case is about.
    let cases = CrmServer::start(Behaviour {
        items: vec![
            serde_json::json!({"id": "c-1", "status": "closed", "closed_at": old, "handler": "carl",
                               "contact": {"email": "maja.svensson@gmail.com"}}),
            serde_json::json!({"id": "c-2", "status": "closed", "closed_at": old, "handler": "carl",
                               "contact": {"email": "olle.berg@yahoo.se"}}),
            serde_json::json!({"id": "c-3", "status": "closed", "closed_at": old,
                               "contact": {"email": "pia@telia.com"}}),
        ],
        token: "crm-token".into(),
        ..Behaviour::default()
    });
    // CRM contacts: the account manager acts; one is an outside consultant.
    let contacts = CrmServer::start(Behaviour {
        items: vec![
            serde_json::json!({"id": "k-1", "email": "rut@gmail.com", "status": "former",
                               "ended_at": old, "account_manager": "dana@firma.se"}),
            serde_json::json!({"id": "k-2", "email": "sven@hotmail.com", "status": "former",
                               "ended_at": old, "account_manager": "dana@firma.se"}),
            serde_json::json!({"id": "k-3", "email": "tove@yahoo.se", "status": "former",
                               "ended_at": old, "account_manager": "konsult@partner.com"}),
        ],
        token: "crm-token".into(),
        ..Behaviour::default()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let share = root.join("share");
    file_at(&share.join("Hem/erik/gammal.pdf"), b"x", days_ago(800));
    // The test runs as root: these files are root's, with no home folder.
    file_at(&share.join("System/backup.tar"), b"x", days_ago(800));
    file_at(&share.join("System/gammal.log"), b"x", days_ago(800));
    std::fs::write(
        root.join("accounts.toml"),
        "[[accounts]]\nuser = \"anna@firma.se\"\npassword = \"anna-pw\"\n\n[[accounts]]\nuser = \"bo@firma.se\"\npassword = \"bo-pw\"\n",
    )
    .expect("accounts");
    std::fs::write(root.join("ldap.pw"), SERVICE_PASSWORD).expect("ldap password");
    std::fs::write(root.join("crm.token"), "crm-token\n").expect("token");
    let smtp_port = free_port();
    let config = root.join("tillsyn.toml");
    std::fs::write(
        &config,
        format!(
            r#"[daemon]
state_dir = "state"

[[sources]]
name = "mail"
type = "imap"
host = "127.0.0.1"
port = {imap_port}
security = "plain"
allow_plaintext = true
timeout_seconds = 5
attempts = 1
auth = {{ method = "password", accounts_file = "accounts.toml" }}

[[sources]]
name = "directory"
type = "ldap"
url = "ldap://127.0.0.1:{ldap_port}"
allow_plaintext = true
bind_dn = "{SERVICE_DN}"
password_file = "ldap.pw"
base_dn = "ou=people,{SUFFIX}"
filter = "(objectClass=inetOrgPerson)"
attributes = {{ email = "mail", status = "customerStatus" }}
identifiers = {{ email = "email" }}
dates = {{ customer_ended = "customerEndDate" }}

[[sources]]
name = "cases"
type = "http"
url = "{cases}"
allow_plaintext = true
auth = {{ bearer_file = "crm.token" }}
id = "/id"
custodian = "/handler"
attributes = {{ status = "/status", email = "/contact/email" }}
identifiers = {{ email = "email" }}
dates = {{ closed = "/closed_at" }}

[[sources]]
name = "contacts"
type = "http"
url = "{contacts}"
allow_plaintext = true
auth = {{ bearer_file = "crm.token" }}
kind = "contact"
id = "/id"
custodian = "/account_manager"
attributes = {{ status = "/status", email = "/email" }}
identifiers = {{ email = "email" }}
dates = {{ ended = "/ended_at" }}

[[sources]]
name = "share"
type = "fileshare"
root = "share"
custodian_from = ["Hem/{{custodian}}/**"]

[[rules]]
id = "stale-inbox"
kind = "max_age"
policy = "Inkorgen töms i månadsrutinen."
max_age = "31d"
timestamp = "received"
when = {{ sources = ["mail"], folders = ["INBOX"] }}

[[rules]]
id = "former-customers"
kind = "max_age"
policy = "Vi sparar dina kunduppgifter så länge som du är kund hos oss."
max_age = "12 months"
timestamp = "date:customer_ended"
when = {{ sources = ["directory"], attributes = {{ status = "former" }} }}

[[rules]]
id = "closed-cases"
kind = "max_age"
policy = "När ett ärende är avklarat ska personinformationen raderas."
max_age = "30d"
timestamp = "date:closed"
when = {{ sources = ["cases"], attributes = {{ status = "closed" }} }}

[[rules]]
id = "former-contacts"
kind = "max_age"
policy = "Kontaktuppgifter till före detta kunder gallras efter 90 dagar."
max_age = "90d"
timestamp = "date:ended"
when = {{ sources = ["contacts"], attributes = {{ status = "former" }} }}

[[rules]]
id = "old-files"
kind = "max_age"
policy = "Filer gallras efter ett år."
max_age = "365d"
timestamp = "modified"
when = {{ sources = ["share"] }}

{mail}
language = "sv"

[digest]
domains = ["firma.se"]
address_template = "{{custodian}}@firma.se"
rate_per_minute = 6000
"#,
            imap_port = server.port,
            ldap_port = directory.port,
            cases = cases.url(),
            contacts = contacts.url(),
            mail = mail_settings(smtp_port)
        ),
    )
    .expect("config");
    let config = config.to_str().expect("utf8").to_owned();
    let scan = tillsyn(&["scan", "--once", "--config", &config]);
    assert_eq!(scan.status.code(), Some(0), "{:?}", text(&scan));
    let findings = json_lines(&tillsyn(&[
        "findings", "--config", &config, "--format", "json",
    ]));
    assert_eq!(findings.len(), 2 + 3 + 3 + 3 + 3, "the planted findings");

    let sink = SmtpSink::start(root, smtp_port);
    let month = Local::now().format("%Y-%m").to_string();
    let (status, stdout, stderr) = send_digests(&config, &month);
    assert_eq!(status, Some(0), "{stdout}{stderr}");
    // Six custodians (the outside consultant among them); the directory's
    // three, case c-3's and root's two files have none.
    assert!(
        stdout.contains("6 custodians with findings, 5 new in the outbox, 0 without an address, 1 with no internal address (outside [digest] domains; not mailed), 6 findings with no custodian"),
        "{stdout}"
    );
    let mails = received(&sink);
    let to: std::collections::BTreeSet<String> =
        mails.iter().map(|(to, _, _)| to.clone()).collect();
    let expected: std::collections::BTreeSet<String> = [
        "anna@firma.se",
        "bo@firma.se",
        "carl@firma.se",
        "dana@firma.se",
        "erik@firma.se",
    ]
    .map(str::to_owned)
    .into();
    let missed: Vec<&String> = expected.difference(&to).collect();
    let strays: Vec<&String> = to.difference(&expected).collect();
    assert!(
        missed.is_empty() && strays.is_empty(),
        "missed {missed:?}, strays {strays:?}"
    );
    assert_eq!(mails.len(), expected.len(), "exactly one each");
    for (to, _, body) in &mails {
        for customer in [
            "gmail",
            "yahoo",
            "telia",
            "hotmail",
            "kund.se",
            "partner.com",
        ] {
            assert!(!to.contains(customer), "{to}");
            assert!(
                !body.contains(customer),
                "{to}'s digest names a customer: {body}"
            );
        }
    }
    let dana = &mails
        .iter()
        .find(|(to, _, _)| to == "dana@firma.se")
        .expect("dana")
        .2;
    assert!(
        dana.contains("k-1") && dana.contains("k-2") && !dana.contains("k-3"),
        "{dana}"
    );

    // Nothing twice; the report counts what could not go.
    let (_, again, _) = send_digests(&config, &month);
    assert!(
        again.contains("0 new in the outbox") && again.contains("sent 0,"),
        "{again}"
    );
    assert_eq!(sink.messages().len(), expected.len());
    let out = root.join("report");
    let report = tillsyn(&[
        "report",
        "--config",
        &config,
        "--month",
        &month,
        "--out",
        out.to_str().expect("utf8"),
    ]);
    assert_eq!(report.status.code(), Some(0), "{:?}", text(&report));
    let report_text = std::fs::read_to_string(out.join("report.txt")).expect("report");
    assert!(
        report_text.contains("PERSONLIGA SAMMANSTÄLLNINGAR: 6 ansvariga med avvikelser, 5 skickade, 0 väntar, 0 uppgivna, 0 utan adress, 1 utan intern adress (skickas inte); 6 avvikelser utan ansvarig"),
        "{report_text}"
    );

    // Where the consultant's domain is the organisation's too, they get
    // theirs: the domain check is what kept them out.
    let text_now = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text_now.replace(
            "domains = [\"firma.se\"]",
            "domains = [\"firma.se\", \"partner.com\"]",
        ),
    )
    .expect("config");
    let (_, widened, _) = send_digests(&config, &month);
    assert!(widened.contains("1 new in the outbox"), "{widened}");
    assert_eq!(
        received(&sink)
            .iter()
            .filter(|(to, _, _)| to == "konsult@partner.com")
            .count(),
        1
    );

    // The same world with no [digest] domains is refused, not guessed.
    std::fs::write(&config, text_now.replace("domains = [\"firma.se\"]\n", "")).expect("config");
    let refused = tillsyn(&["check-config", "--config", &config]);
    assert_eq!(refused.status.code(), Some(3));
    assert!(
        text(&refused)
            .0
            .contains("`domains` names the organisation's own mail domains")
    );
}
