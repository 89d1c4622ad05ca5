//! Promise P16, the right of access: `tillsyn subject` finds one person in
//! every store from the identity index. The person is planted in a real
//! Dovecot (as sender, in Cc, in a body and in an attachment), a real slapd (a
//! mail and a personnummer attribute), a CRM over HTTP (mapped fields) and a
//! document on a share; beside them a near-identical address and another
//! person's number. The lookup finds exactly the planted places, no more; the
//! near-identical address finds exactly its own; an invalid number is refused
//! rather than "not found"; every lookup is in the audit log; and no planted
//! identifier is anywhere in the store, its WAL or the logs.

mod common;

use std::collections::BTreeSet;

use common::crm::{Behaviour, CrmServer};
use common::dovecot::Dovecot;
use common::mail_corpus::{message, with_attachments};
use common::slapd::{SERVICE_DN, SERVICE_PASSWORD, SUFFIX, Slapd};
use common::*;
use tillsyn_extract::samples::docx;

const ANNA: &str = "anna.andersson@exempel.se";
const NEAR: &str = "anna.anderson@exempel.se";
const MAILBOX: &str = "bertil@exempel.se";

/// Every written form of Anna's number, and her address: none may be stored.
const PLAIN: &[&str] = &[
    ANNA,
    "19811218-9876",
    "811218-9876",
    "198112189876",
    "8112189876",
];

struct World {
    dir: tempfile::TempDir,
    _dovecot: Dovecot,
    _slapd: Slapd,
    _crm: CrmServer,
    config: String,
    /// `source:record` of Anna's places, and of the near address's.
    anna: BTreeSet<String>,
    near: BTreeSet<String>,
}

fn world() -> World {
    let dovecot = Dovecot::start(&[(MAILBOX, "bertil-pw")]);
    let mut anna = BTreeSet::new();
    let mut near = BTreeSet::new();
    {
        let mut client = dovecot.client(MAILBOX, "bertil-pw");
        let mut deliver = |raw: Vec<u8>| client.append("INBOX", &raw, 3);
        let from_anna =
            format!("From: Anna <{ANNA}>\r\nTo: {MAILBOX}\r\nSubject: Hej\r\n\r\nHej\r\n");
        let uid = deliver(from_anna.into_bytes());
        anna.insert(format!("mail:{MAILBOX}/INBOX/{uid}"));
        let cc_anna = format!(
            "From: x@kund.se\r\nTo: {MAILBOX}\r\nCc: y@kund.se, {}\r\nSubject: Hej\r\n\r\nHej\r\n",
            ANNA.to_uppercase()
        );
        let uid = deliver(cc_anna.into_bytes());
        anna.insert(format!("mail:{MAILBOX}/INBOX/{uid}"));
        let uid = deliver(message(
            "Content-Type: text/plain; charset=utf-8\r\n",
            "Hennes personnummer är 19811218-9876.\r\n",
        ));
        anna.insert(format!("mail:{MAILBOX}/INBOX/{uid}"));
        let word = docx("<w:p><w:r><w:t>Personnummer 811218-9876</w:t></w:r></w:p>");
        let uid = deliver(with_attachments(
            "CV.",
            &[(
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "cv.docx",
                &word,
            )],
        ));
        anna.insert(format!("mail:{MAILBOX}/INBOX/{uid}"));
        // Decoys: a near-identical address, another person's number, and
        // Anna's number with a wrong check digit.
        let from_near = format!("From: {NEAR}\r\nTo: {MAILBOX}\r\nSubject: Hej\r\n\r\nHej\r\n");
        let uid = deliver(from_near.into_bytes());
        near.insert(format!("mail:{MAILBOX}/INBOX/{uid}"));
        deliver(message(
            "Content-Type: text/plain; charset=utf-8\r\n",
            "Personnummer 19701063-2391 och 811218-9875.\r\n",
        ));
    }
    let people = format!(
        "dn: uid=kund-1,ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: kund-1\ncn: kund-1\nsn: kund-1\n\
         mail: {ANNA}\nemployeeNumber: 19811218-9876\n\n\
         dn: uid=kund-2,ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: kund-2\ncn: kund-2\nsn: kund-2\n\
         mail: {NEAR}\nemployeeNumber: 197010632391\n\n"
    );
    let slapd = Slapd::start_with(&[], &people);
    anna.insert(format!("directory:uid=kund-1,ou=people,{SUFFIX}"));
    near.insert(format!("directory:uid=kund-2,ou=people,{SUFFIX}"));
    let crm = CrmServer::start(Behaviour {
        items: vec![
            serde_json::json!({"id": "c1", "email": ANNA, "pnr": "811218-9876", "status": "open"}),
            serde_json::json!({"id": "c2", "email": NEAR, "pnr": "", "status": "open"}),
        ],
        token: "crm-token".into(),
        ..Behaviour::default()
    });
    anna.insert("crm:c1".to_owned());
    near.insert("crm:c2".to_owned());
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    file_at(
        &root.join("share/Kunder/a/intyg.docx"),
        &docx("<w:p><w:r><w:t>Född 19811218-9876</w:t></w:r></w:p>"),
        days_ago(3),
    );
    anna.insert("share:Kunder/a/intyg.docx".to_owned());
    file_at(
        &root.join("share/Kunder/b/intyg.docx"),
        &docx("<w:p><w:r><w:t>Född 19701063-2391</w:t></w:r></w:p>"),
        days_ago(3),
    );
    std::fs::write(
        root.join("accounts.toml"),
        format!("[[accounts]]\nuser = \"{MAILBOX}\"\npassword = \"bertil-pw\"\n"),
    )
    .expect("accounts");
    std::fs::write(root.join("ldap.pw"), format!("{SERVICE_PASSWORD}\n")).expect("pw");
    std::fs::write(root.join("crm.token"), "crm-token\n").expect("token");
    let config = root.join("tillsyn.toml");
    std::fs::write(
        &config,
        format!(
            r#"[daemon]
state_dir = "state"
timezone = "Europe/Stockholm"

[[sources]]
name = "mail"
type = "imap"
host = "127.0.0.1"
port = {imap_port}
security = "plain"
allow_plaintext = true
auth = {{ method = "password", accounts_file = "accounts.toml" }}

[identity]
read_mail_headers = true

[[sources]]
name = "directory"
type = "ldap"
url = "ldaps://127.0.0.1:{ldap_port}"
ca_file = "{ldap_ca}"
bind_dn = "{SERVICE_DN}"
password_file = "ldap.pw"
base_dn = "ou=people,{SUFFIX}"
filter = "(objectClass=inetOrgPerson)"
custodian_attribute = "uid"
attributes = {{ mail = "mail", pnr = "employeeNumber" }}
identifiers = {{ mail = "email", pnr = "personnummer" }}

[[sources]]
name = "crm"
type = "http"
url = "{crm_url}"
allow_plaintext = true
auth = {{ bearer_file = "crm.token" }}
items = "/items"
id = "/id"
attributes = {{ email = "/email", pnr = "/pnr", status = "/status" }}
identifiers = {{ email = "email", pnr = "personnummer" }}

[[sources]]
name = "share"
type = "fileshare"
root = "share"

[[rules]]
id = "P3-personnummer-in-mail"
kind = "contains"
policy = "i så liten utsträckning som möjligt skicka personuppgifter per mail"
detectors = ["personnummer"]
when = {{ sources = ["mail"] }}

[[rules]]
id = "P1-stale-inbox"
kind = "max_age"
policy = "medarbetare i sin månadsrutin ska ta bort sina e-postmeddelanden från inkorgen"
max_age = "31d"
timestamp = "received"
when = {{ sources = ["mail"], folders = ["INBOX"] }}

[[rules]]
id = "id-numbers-in-documents"
kind = "contains"
policy = "Personnummer förvaras bara i personalakten."
detectors = ["personnummer"]
when = {{ sources = ["share"] }}
"#,
            imap_port = dovecot.port,
            ldap_port = slapd.tls_port,
            ldap_ca = slapd.path("ca.pem").display(),
            crm_url = crm.url(),
        ),
    )
    .expect("config");
    World {
        config: config.to_str().expect("utf8").to_owned(),
        dir,
        _dovecot: dovecot,
        _slapd: slapd,
        _crm: crm,
        anna,
        near,
    }
}

/// `source:record` of every place a JSON locator report names.
fn places(report: &serde_json::Value) -> BTreeSet<String> {
    report["stores"]
        .as_array()
        .expect("stores")
        .iter()
        .flat_map(|store| {
            let source = store["source"].as_str().expect("source").to_owned();
            store["places"]
                .as_array()
                .expect("places")
                .iter()
                .map(move |place| format!("{source}:{}", place["record"].as_str().expect("record")))
        })
        .collect()
}

fn subject(config: &str, identifiers: &[&str], format: &str) -> std::process::Output {
    let mut args = vec!["subject", "--config", config, "--format", format];
    args.extend_from_slice(identifiers);
    tillsyn(&args)
}

#[test]
fn one_person_is_found_exactly_in_every_store_and_nowhere_stored_in_plain() {
    let world = world();
    let output = tillsyn(&[
        "scan",
        "--once",
        "--config",
        &world.config,
        "--format",
        "json",
    ]);
    let (_, scan_log) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{scan_log}");

    // By address and number together: every planted place, nothing else.
    let output = subject(
        &world.config,
        &["--email", ANNA, "--personnummer", "19811218-9876"],
        "json",
    );
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_exact(&places(&report), &world.anna);
    // What matched where, and which promise governs it.
    let mail = report["stores"]
        .as_array()
        .expect("stores")
        .iter()
        .find(|store| store["source"] == "mail")
        .expect("mail");
    let matched: BTreeSet<String> = mail["places"]
        .as_array()
        .expect("places")
        .iter()
        .flat_map(|place| place["matched"].as_array().expect("matched").clone())
        .map(|value| value.as_str().expect("text").to_owned())
        .collect();
    assert_eq!(
        matched,
        BTreeSet::from([
            "email in from".to_owned(),
            "email in cc".to_owned(),
            "personnummer in body".to_owned(),
            "personnummer in attachment".to_owned(),
        ])
    );
    let governing = &mail["places"][0]["governed_by"];
    assert!(
        governing
            .as_array()
            .expect("governing")
            .iter()
            .any(|rule| rule["rule"] == "P1-stale-inbox" && rule["gone_by"].is_string()),
        "{governing}"
    );
    assert!(
        mail["coverage"]
            .as_array()
            .expect("coverage")
            .iter()
            .all(|coverage| !coverage["means"].as_array().expect("means").is_empty()),
        "{mail}"
    );

    // The near-identical address finds its own places only; the number alone
    // finds the number's places (the address's are not among them).
    let output = subject(&world.config, &["--email", NEAR], "json");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_exact(&places(&report), &world.near);
    let output = subject(&world.config, &["--personnummer", "811218-9876"], "json");
    let by_number = places(&serde_json::from_slice(&output.stdout).expect("json"));
    assert!(
        by_number.is_subset(&world.anna) && by_number.len() == 5,
        "{by_number:?}"
    );

    // A number with a wrong check digit cannot match anyone: refused, not
    // "not found".
    let output = subject(&world.config, &["--personnummer", "811218-9875"], "text");
    assert_eq!(output.status.code(), Some(2));
    let (stdout, stderr) = text(&output);
    assert!(stderr.contains("not a valid personnummer"), "{stderr}");
    assert!(stdout.is_empty());

    // Text, CSV and HTML name the same places; the file is 0600.
    let output = subject(&world.config, &["--email", ANNA], "text");
    let (stdout, _) = text(&output);
    assert!(
        stdout.contains("crm:") || stdout.contains("crm ("),
        "{stdout}"
    );
    assert!(stdout.contains("c1") && !stdout.contains("c2"), "{stdout}");
    let output = subject(&world.config, &["--email", ANNA], "csv");
    let rows = String::from_utf8_lossy(&output.stdout).lines().count();
    assert_eq!(rows, 1 + 4, "header and the four places the address is in");
    let html = world.dir.path().join("utdrag.html");
    let output = tillsyn(&[
        "subject",
        "--config",
        &world.config,
        "--email",
        ANNA,
        "--format",
        "html",
        "--lang",
        "sv",
        "--out",
        html.to_str().expect("utf8"),
    ]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    assert!(output.stdout.is_empty());
    let page = std::fs::read_to_string(&html).expect("html");
    assert!(page.contains("Var finns uppgifter om personen?"), "{page}");
    assert!(page.contains("uid=kund-1"), "{page}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&html).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // --verify reads every store again, into a private copy: the document
    // removed since the scan is gone, the rest still there, and the store
    // itself is not changed (a plain lookup still lists the document).
    std::fs::remove_file(world.dir.path().join("share/Kunder/a/intyg.docx")).expect("remove");
    let output = subject(
        &world.config,
        &[
            "--email",
            ANNA,
            "--personnummer",
            "19811218-9876",
            "--verify",
        ],
        "json",
    );
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let verified: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let mut gone = BTreeSet::new();
    let mut there = BTreeSet::new();
    for store in verified["stores"].as_array().expect("stores") {
        assert_eq!(store["verify"]["status"], "complete", "{store}");
        for place in store["places"].as_array().expect("places") {
            let name = format!(
                "{}:{}",
                store["source"].as_str().expect("source"),
                place["record"].as_str().expect("record")
            );
            match place["verified"].as_str() {
                Some("gone") => gone.insert(name),
                Some("still there") => there.insert(name),
                other => panic!("{name}: {other:?}"),
            };
        }
    }
    assert_eq!(
        gone,
        BTreeSet::from(["share:Kunder/a/intyg.docx".to_owned()])
    );
    assert_eq!(there.len(), world.anna.len() - 1);
    let output = subject(
        &world.config,
        &["--email", ANNA, "--personnummer", "19811218-9876"],
        "json",
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_exact(&places(&report), &world.anna);

    // Every lookup is in the audit log, by kind and keyed hash, with its hits.
    let state = world.dir.path().join("state");
    let connection = open_store(&state);
    let logged: Vec<(String, i64)> = connection
        .prepare("SELECT kinds, hits FROM subject_lookups ORDER BY id")
        .expect("select")
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("log");
    assert_eq!(logged.len(), 8, "{logged:?}");
    assert_eq!(logged[0], ("email,personnummer".to_owned(), 7));
    assert_eq!(logged[1], ("email".to_owned(), 3));

    // No planted identifier in any written form, in the store, its WAL or
    // the logs (a scan at debug level included).
    drop(connection);
    let output = common::tillsyn_with_env(
        &["scan", "--once", "--config", &world.config],
        &[("TILLSYN_LOG", "debug")],
    );
    let (debug_out, debug_log) = text(&output);
    let mut haystack = Vec::new();
    for entry in std::fs::read_dir(&state).expect("state") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            haystack.extend(std::fs::read(&path).expect("read"));
        }
    }
    haystack.extend(scan_log.bytes());
    haystack.extend(debug_out.bytes());
    haystack.extend(debug_log.bytes());
    let haystack = String::from_utf8_lossy(&haystack).to_lowercase();
    for plain in PLAIN {
        assert!(
            !haystack.contains(&plain.to_lowercase()),
            "{plain} is stored or logged in plain"
        );
    }
    // The search can fail: the report the officer asked for names her, and
    // the same search finds her there.
    let page = String::from_utf8_lossy(&std::fs::read(&html).expect("html")).to_lowercase();
    assert!(
        page.contains(ANNA),
        "the search would not see a stored address"
    );
}

/// Where the index does not cover a kind (no rule reads mail headers or
/// content, no `identifiers` maps the directory's attributes), `--search` asks
/// the IMAP server and the directory: the messages from Anna and the one with
/// her number in its text are found, and her entries; the near-identical
/// address is not; without `--search` the index alone finds none of them.
#[test]
fn the_server_searches_what_the_index_does_not_cover() {
    let dovecot = Dovecot::start(&[(MAILBOX, "bertil-pw")]);
    let mut expected = BTreeSet::new();
    {
        let mut client = dovecot.client(MAILBOX, "bertil-pw");
        let uid = client.append(
            "INBOX",
            format!("From: Anna <{ANNA}>\r\nTo: {MAILBOX}\r\nSubject: Hej\r\n\r\nHej\r\n")
                .as_bytes(),
            3,
        );
        expected.insert(format!("mail:{MAILBOX}/INBOX/{uid}"));
        let uid = client.append(
            "INBOX",
            &message(
                "Content-Type: text/plain; charset=utf-8\r\n",
                "Hennes personnummer är 811218-9876.\r\n",
            ),
            3,
        );
        expected.insert(format!("mail:{MAILBOX}/INBOX/{uid}"));
        client.append(
            "INBOX",
            format!("From: {NEAR}\r\nTo: {MAILBOX}\r\nSubject: Hej\r\n\r\nPnr 701063-2391\r\n")
                .as_bytes(),
            3,
        );
    }
    let people = format!(
        "dn: uid=kund-1,ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: kund-1\ncn: kund-1\nsn: kund-1\n\
         mail: {}\n\n\
         dn: uid=kund-2,ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: kund-2\ncn: kund-2\nsn: kund-2\n\
         employeeNumber: 811218-9876\n\n\
         dn: uid=kund-3,ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: kund-3\ncn: kund-3\nsn: kund-3\n\
         mail: {NEAR}\nemployeeNumber: 19701063-2391\n\n",
        ANNA.to_uppercase()
    );
    let mut slapd = Slapd::start_with(&[], &people);
    expected.insert(format!("directory:uid=kund-1,ou=people,{SUFFIX}"));
    expected.insert(format!("directory:uid=kund-2,ou=people,{SUFFIX}"));
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("accounts.toml"),
        format!("[[accounts]]\nuser = \"{MAILBOX}\"\npassword = \"bertil-pw\"\n"),
    )
    .expect("accounts");
    std::fs::write(dir.path().join("ldap.pw"), format!("{SERVICE_PASSWORD}\n")).expect("pw");
    let config = dir.path().join("tillsyn.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nstate_dir = \"state\"\n\n[[sources]]\nname = \"mail\"\ntype = \"imap\"\n\
             host = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\nallow_plaintext = true\n\
             auth = {{ method = \"password\", accounts_file = \"accounts.toml\" }}\n\n\
             [[sources]]\nname = \"directory\"\ntype = \"ldap\"\nurl = \"ldaps://127.0.0.1:{}\"\n\
             ca_file = \"{}\"\nbind_dn = \"{SERVICE_DN}\"\npassword_file = \"ldap.pw\"\n\
             base_dn = \"ou=people,{SUFFIX}\"\nfilter = \"(objectClass=inetOrgPerson)\"\n\
             custodian_attribute = \"uid\"\n\n\
             [[rules]]\nid = \"stale\"\nkind = \"max_age\"\npolicy = \"p\"\nmax_age = \"31d\"\n\
             timestamp = \"received\"\n",
            dovecot.port,
            slapd.tls_port,
            slapd.path("ca.pem").display()
        ),
    )
    .expect("config");
    let config = config.to_str().expect("utf8");
    let output = tillsyn(&["scan", "--once", "--config", config]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    let asked = ["--email", ANNA, "--personnummer", "19811218-9876"];
    let output = subject(config, &asked, "json");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert!(places(&report).is_empty(), "{report}");
    let mut searching = asked.to_vec();
    searching.push("--search");
    let output = subject(config, &searching, "json");
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_exact(&places(&report), &expected);
    for store in report["stores"].as_array().expect("stores") {
        let searches = &store["server_searches"];
        assert_eq!(searches.as_array().map(Vec::len), Some(2), "{searches}");
    }

    // The audit row is written before any server is asked: a search that
    // fails (the directory is down) still leaves it, never completed.
    slapd.kill();
    let output = subject(config, &searching, "json");
    assert_eq!(output.status.code(), Some(2), "{:?}", text(&output));
    let logged: Vec<(i64, Option<i64>, i64)> = open_store(&dir.path().join("state"))
        .prepare("SELECT asked_servers, completed_at, hits FROM subject_lookups ORDER BY id")
        .expect("select")
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("log");
    assert_eq!(logged.len(), 3, "{logged:?}");
    assert!(logged[0].0 == 0 && logged[0].1.is_some(), "{logged:?}");
    assert!(
        logged[1].0 == 1 && logged[1].1.is_some() && logged[1].2 == expected.len() as i64,
        "{logged:?}"
    );
    assert!(
        logged[2].0 == 1 && logged[2].1.is_none(),
        "the failed search: {logged:?}"
    );
}

/// Coverage by means, never by assumption: a mailbox whose account is a
/// plain name ("anna") does not cover her address, so her erasure can never
/// read "erased" there while her mailbox exists; the same mailbox with its
/// headers read covers it (and finds her, overdue); a mailbox whose account
/// is her address covers it by the account alone.
#[test]
fn accounts_cover_addresses_only_when_they_are_addresses() {
    let dovecot = Dovecot::start(&[("anna", "anna-pw"), ("bo@exempel.se", "bo-pw")]);
    for (account, password) in [("anna", "anna-pw"), ("bo@exempel.se", "bo-pw")] {
        dovecot.client(account, password).append(
            "INBOX",
            format!("From: kund@kund.se\r\nTo: {ANNA}\r\nSubject: Hej\r\n\r\nHej\r\n").as_bytes(),
            3,
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::write(
        root.join("accounts.toml"),
        "[[accounts]]\nuser = \"anna\"\npassword = \"anna-pw\"\n\n[[accounts]]\nuser = \"bo@exempel.se\"\npassword = \"bo-pw\"\n",
    )
    .expect("accounts");
    let requested = (chrono::Utc::now() - chrono::TimeDelta::days(40)).format("%Y-%m-%d");
    std::fs::write(
        root.join("erasure.csv"),
        format!("email,{ANNA},{requested}\nemail,gone@exempel.se,{requested}\n"),
    )
    .expect("register");
    let config = root.join("tillsyn.toml");
    let write = |headers: bool| {
        std::fs::write(
            &config,
            format!(
                "[daemon]\nstate_dir = \"state\"\n\n[identity]\nread_mail_headers = {headers}\n\n\
                 [erasure]\nregister = \"erasure.csv\"\n\n\
                 [[sources]]\nname = \"mail\"\ntype = \"imap\"\nhost = \"127.0.0.1\"\nport = {}\n\
                 security = \"plain\"\nallow_plaintext = true\n\
                 auth = {{ method = \"password\", accounts_file = \"accounts.toml\" }}\n\n\
                 [[rules]]\nid = \"erased\"\nkind = \"erased\"\npolicy = \"p\"\n",
                dovecot.port
            ),
        )
        .expect("config");
        config.to_str().expect("utf8").to_owned()
    };
    let coverage = |config: &str, email: &str| -> String {
        let output = subject(config, &["--email", email], "json");
        assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
        report["stores"][0]["coverage"][0]["state"]
            .as_str()
            .expect("state")
            .to_owned()
    };
    let erasure = |config: &str| -> Vec<String> {
        let output = tillsyn(&["erasure", "--json", "--config", config]);
        let (stdout, _) = text(&output);
        let requests: serde_json::Value = serde_json::from_str(
            &stdout
                .split_once('[')
                .map(|(_, rest)| format!("[{rest}"))
                .expect("json"),
        )
        .expect("json");
        requests
            .as_array()
            .expect("requests")
            .iter()
            .map(|request| request["stores"][0][1].as_str().expect("state").to_owned())
            .collect()
    };
    // Without headers: "anna" is no address, so the mailbox does not cover
    // addresses (one account is); neither request can be told.
    let config = write(false);
    let output = tillsyn(&["scan", "--once", "--config", &config]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    assert_eq!(coverage(&config, ANNA), "not_covered");
    assert_eq!(erasure(&config), ["not_verified", "not_verified"]);

    // With the headers read: covered, Anna found (overdue), the other erased.
    let config = write(true);
    let output = tillsyn(&["scan", "--once", "--config", &config]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    assert_eq!(coverage(&config, ANNA), "covered");
    let mut states = erasure(&config);
    states.sort();
    assert_eq!(states, ["erased", "overdue"]);

    // Every account an address, no headers: the accounts cover addresses.
    std::fs::write(
        root.join("accounts.toml"),
        "[[accounts]]\nuser = \"bo@exempel.se\"\npassword = \"bo-pw\"\n",
    )
    .expect("accounts");
    let config = write(false);
    let output = tillsyn(&["scan", "--once", "--config", &config]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    assert_eq!(coverage(&config, "bo@exempel.se"), "covered");
}
