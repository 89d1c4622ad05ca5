//! Promise P12, erasure: people on the erasure register must be in no store
//! once the deadline (30 days, GDPR art. 12(3)) has passed. A person erased 40
//! days ago who is still in two stores gives exactly two findings; removing the
//! data and scanning again resolves both; a person erased 10 days ago gives no
//! finding yet; a store that failed, or whose index does not cover the kind,
//! is "not verified", never "erased". A register with a bad line is refused
//! with its line number and nothing stored is lost; the identifiers never
//! reach the store in plain.

mod common;

use std::collections::BTreeSet;

use common::*;
use tillsyn_extract::samples::docx;

const ANNA: &str = "anna.andersson@exempel.se";

fn date(days: i64) -> String {
    (chrono::Utc::now() - chrono::TimeDelta::days(days))
        .format("%Y-%m-%d")
        .to_string()
}

fn config(root: &std::path::Path) -> String {
    let path = root.join("tillsyn.toml");
    std::fs::write(
        &path,
        r#"[daemon]
state_dir = "state"
timezone = "Europe/Stockholm"

[identity]
read_mail_headers = true

[erasure]
register = "erasure.csv"

[[sources]]
name = "files"
type = "fileshare"
root = "share"

[[sources]]
name = "mail"
type = "maildir"
root = "mail"

[[sources]]
name = "archive"
type = "fileshare"
root = "missing-archive"

[[rules]]
id = "id-numbers"
kind = "contains"
policy = "Personnummer förvaras bara i personalakten."
detectors = ["personnummer"]
when = { sources = ["files"] }

[[rules]]
id = "P12-erased"
kind = "erased"
policy = "Kunden kan när som helst begära att få sina personuppgifter ändrade eller raderade"
"#,
    )
    .expect("config");
    path.to_str().expect("utf8").to_owned()
}

fn open_erased(config: &str) -> BTreeSet<String> {
    pairs(&json_lines(&tillsyn(&[
        "findings",
        "--open",
        "--rule",
        "P12-erased",
        "--config",
        config,
        "--format",
        "json",
    ])))
}

fn states(config: &str) -> serde_json::Value {
    let output = tillsyn(&["erasure", "--json", "--config", config]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    let (stdout, _) = text(&output);
    let json = stdout
        .split_once('[')
        .map(|(_, rest)| format!("[{rest}"))
        .expect("a JSON array");
    serde_json::from_str(&json).expect("json")
}

/// The state of the request of `kind` requested `days` ago, in `store`.
fn state(states: &serde_json::Value, kind: &str, days: i64, store: &str) -> String {
    let requested = date(days);
    states
        .as_array()
        .expect("requests")
        .iter()
        .find(|request| {
            request["kind"] == kind
                && request["requested_at"]
                    .as_str()
                    .is_some_and(|at| at.starts_with(&requested[..7]))
        })
        .and_then(|request| {
            request["stores"]
                .as_array()?
                .iter()
                .find(|pair| pair[0] == store)
                .map(|pair| pair[1].as_str().unwrap_or("").to_owned())
        })
        .unwrap_or_else(|| panic!("no {kind} request of {days} days in {store}: {states}"))
}

#[test]
fn an_erased_person_still_in_two_stores_gives_two_findings_until_the_data_is_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let config = config(root);
    std::fs::write(
        root.join("erasure.csv"),
        format!(
            "kind,identifier,date\npersonnummer,19811218-9876,{}\nemail,{ANNA},{}\npersonnummer,701063-2391,{}\n",
            date(40),
            date(40),
            date(10)
        ),
    )
    .expect("register");
    let document = root.join("share/Kunder/a/intyg.docx");
    file_at(
        &document,
        &docx("<w:p><w:r><w:t>Personnummer 811218-9876</w:t></w:r></w:p>"),
        days_ago(3),
    );
    // The one erased 10 days ago is still here: not due yet.
    file_at(
        &root.join("share/Kunder/b/brev.txt"),
        "Samordningsnummer 701063-2391\n".as_bytes(),
        days_ago(3),
    );
    file_at(
        &root.join("share/Kunder/c/ok.txt"),
        b"Inget personnummer.\n",
        days_ago(3),
    );
    let mut mailbox = Mailbox::new(&root.join("mail"), "bertil");
    let message = mailbox.raw(
        ("bertil", "INBOX"),
        format!("From: Anna <{ANNA}>\r\nTo: bertil@exempel.se\r\nSubject: Hej\r\n\r\nHej\r\n")
            .as_bytes(),
        days_ago(50),
    );
    mailbox.raw(
        ("bertil", "INBOX"),
        b"From: anna.anderson@exempel.se\r\nTo: bertil@exempel.se\r\nSubject: Hej\r\n\r\nHej\r\n",
        days_ago(50),
    );

    let output = tillsyn(&["scan", "--once", "--config", &config, "--format", "json"]);
    let (_, stderr) = text(&output);
    // The archive's root is missing: that source fails, the others complete.
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_exact(
        &open_erased(&config),
        &[
            "P12-erased:Kunder/a/intyg.docx".to_owned(),
            format!("P12-erased:{message}"),
        ]
        .into(),
    );
    // The monthly report counts them: two overdue, one within its deadline.
    let month = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Stockholm)
        .format("%Y-%m")
        .to_string();
    let out = root.join("report");
    let output = tillsyn(&[
        "report",
        "--config",
        &config,
        "--month",
        &month,
        "--out",
        out.to_str().expect("utf8"),
    ]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    let report = std::fs::read_to_string(out.join("report.txt")).expect("report");
    let received = [40, 40, 10]
        .iter()
        .filter(|days| date(**days).starts_with(&month))
        .count();
    assert!(
        report.contains(&format!("Mottagna under månaden    {received} (totalt 3)")),
        "{report}"
    );
    assert!(report.contains("Försenade                 2"), "{report}");
    assert!(report.contains("Inom tidsfristen          1"), "{report}");
    assert!(report.contains("Raderade i tid            0"), "{report}");
    let found = states(&config);
    assert_eq!(state(&found, "personnummer", 40, "files"), "overdue");
    assert_eq!(state(&found, "email", 40, "mail"), "overdue");
    assert_eq!(state(&found, "personnummer", 10, "files"), "pending");
    // The failed store, and one whose index has no personnummer: not verified.
    assert_eq!(state(&found, "personnummer", 40, "archive"), "not_verified");
    assert_eq!(state(&found, "personnummer", 40, "mail"), "not_verified");

    // The data goes; a scan later, both findings resolve, and the stores that
    // were read completely say erased.
    std::fs::remove_file(&document).expect("remove");
    let message_file = std::fs::read_dir(mailbox.dir.join("cur"))
        .expect("cur")
        .map(|entry| entry.expect("entry").path())
        .find(|path| std::fs::read_to_string(path).is_ok_and(|text| text.contains(ANNA)))
        .expect("the message");
    std::fs::remove_file(message_file).expect("remove");
    let output = tillsyn(&["scan", "--once", "--config", &config]);
    assert_eq!(output.status.code(), Some(2), "{:?}", text(&output));
    assert!(open_erased(&config).is_empty());
    let found = states(&config);
    assert_eq!(state(&found, "personnummer", 40, "files"), "erased");
    assert_eq!(state(&found, "email", 40, "mail"), "erased");
    assert_eq!(state(&found, "personnummer", 40, "archive"), "not_verified");

    // A register with a bad line: refused with its number, nothing lost.
    std::fs::write(
        root.join("erasure.csv"),
        format!("personnummer,811218-9875,{}\nemail,{ANNA}\n", date(1)),
    )
    .expect("register");
    let output = tillsyn(&["erasure", "--config", &config]);
    assert_eq!(output.status.code(), Some(3));
    let (stdout, _) = text(&output);
    assert!(
        stdout.contains("line 1: not a valid personnummer"),
        "{stdout}"
    );
    assert!(stdout.contains("line 2: 2 fields"), "{stdout}");
    assert!(
        !stdout.contains("811218") && !stdout.contains("anna"),
        "{stdout}"
    );
    let output = tillsyn(&["check-config", "--config", &config]);
    assert_eq!(output.status.code(), Some(3));
    assert!(text(&output).0.contains("line 1"), "{:?}", text(&output));
    // Columns swapped: the number where the kind belongs is refused by its
    // line, and never shown, stored or logged.
    std::fs::write(
        root.join("erasure.csv"),
        format!("198112189876,personnummer,{}\n", date(1)),
    )
    .expect("register");
    for args in [
        &["erasure", "--config", &config][..],
        &["check-config", "--config", &config],
        &["scan", "--once", "--config", &config],
    ] {
        let output = tillsyn(args);
        let (stdout, stderr) = text(&output);
        assert_ne!(output.status.code(), Some(0), "{args:?}: {stdout}{stderr}");
        assert!(
            format!("{stdout}{stderr}").contains("line 1: the kind is not one this config knows"),
            "{args:?}: {stdout}{stderr}"
        );
        assert!(
            !stdout.contains("8112189876") && !stderr.contains("8112189876"),
            "{args:?}: {stdout}{stderr}"
        );
    }
    // The plain file can go: what was read stays, as hashes.
    std::fs::remove_file(root.join("erasure.csv")).expect("remove");
    let found = states(&config);
    assert_eq!(found.as_array().expect("requests").len(), 3);
    // A register as a spreadsheet saves it (a header naming the columns in
    // its own order, `;`, a BOM, CRLF): read like the plain one, one more
    // request.
    std::fs::write(
        root.join("erasure.csv"),
        format!(
            "\u{feff}requested_at;identifier_type;identifier\r\n{};Personnummer;19811218-9876\r\n{};phone;070-123 45 67\r\n",
            date(40),
            date(2)
        ),
    )
    .expect("register");
    let found = states(&config);
    assert_eq!(found.as_array().expect("requests").len(), 4, "{found}");
    assert_eq!(state(&found, "phone", 2, "files"), "not_verified");

    // The identifiers are nowhere in the store in plain.
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(root.join("state")).expect("state") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            stored.extend(std::fs::read(&path).expect("read"));
        }
    }
    let stored = String::from_utf8_lossy(&stored).to_lowercase();
    for plain in [
        ANNA,
        "811218-9876",
        "198112189876",
        "701063-2391",
        "197010632391",
    ] {
        assert!(!stored.contains(plain), "{plain} stored in plain");
    }
}

/// The register kept in a case system over HTTP: its items are read as
/// requests (an item without a valid identifier is not), the register itself
/// is neither indexed nor judged, and the store is judged against it.
#[test]
fn a_register_served_over_http_is_read_as_requests() {
    use common::crm::{Behaviour, CrmServer};
    let crm = CrmServer::start(Behaviour {
        items: vec![
            serde_json::json!({"id": "r1", "kind": "personnummer", "pnr": "19811218-9876", "requested": date(40)}),
            serde_json::json!({"id": "r2", "kind": "personnummer", "pnr": "811218-9875", "requested": date(40)}),
            // Columns swapped in the case system: the number where the kind
            // belongs is no request, and is never kept or shown.
            serde_json::json!({"id": "r3", "kind": "198112189876", "pnr": "personnummer", "requested": date(40)}),
        ],
        token: "token".into(),
        ..Behaviour::default()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::write(root.join("crm.token"), "token\n").expect("token");
    file_at(
        &root.join("share/Kunder/a/intyg.docx"),
        &docx("<w:p><w:r><w:t>Personnummer 811218-9876</w:t></w:r></w:p>"),
        days_ago(3),
    );
    let config = root.join("tillsyn.toml");
    std::fs::write(
        &config,
        format!(
            r#"[daemon]
state_dir = "state"

[erasure.source]
name = "erasures"
identifier = "pnr"
kind_attribute = "kind"
date = "requested"

[[sources]]
name = "erasures"
type = "http"
url = "{}"
allow_plaintext = true
auth = {{ bearer_file = "crm.token" }}
items = "/items"
id = "/id"
attributes = {{ pnr = "/pnr", kind = "/kind" }}
dates = {{ requested = "/requested" }}

[[sources]]
name = "files"
type = "fileshare"
root = "share"

[[rules]]
id = "id-numbers"
kind = "contains"
policy = "p"
detectors = ["personnummer"]
when = {{ sources = ["files"] }}

[[rules]]
id = "P12-erased"
kind = "erased"
policy = "Kunden kan när som helst begära att få sina personuppgifter raderade"
"#,
            crm.url()
        ),
    )
    .expect("config");
    let config = config.to_str().expect("utf8");
    let output = tillsyn(&["scan", "--once", "--config", config]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        !stderr.contains("19811218")
            && !stderr.contains("811218-9875")
            && !stderr.contains("8112189876"),
        "{stderr}"
    );
    assert_exact(
        &open_erased(config),
        &["P12-erased:Kunder/a/intyg.docx".to_owned()].into(),
    );
    let found = states(config);
    assert_eq!(found.as_array().expect("requests").len(), 1, "{found}");
    assert_eq!(state(&found, "personnummer", 40, "files"), "overdue");
    assert!(
        found[0]["stores"]
            .as_array()
            .expect("stores")
            .iter()
            .all(|pair| pair[0] != "erasures"),
        "{found}"
    );
    assert!(
        stderr.contains("items=2"),
        "the bad items are counted: {stderr}"
    );
    let indexed: i64 = open_store(&root.join("state"))
        .query_row(
            "SELECT count(*) FROM identity_segments WHERE source = 'erasures'",
            [],
            |row| row.get(0),
        )
        .expect("count");
    assert_eq!(indexed, 0, "the register is not indexed");
}
