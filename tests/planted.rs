//! Planted violations of promises P1, P2, P5, P9, P11, P13 and P15 (see the policy
//! map) in a generated Maildir tree and file share, each next to near-misses that
//! must not be reported. The scan must find exactly the planted set; deleting one
//! violating file resolves exactly that finding; a failed scan resolves nothing.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use chrono::Datelike;
use common::*;

const CONFIG: &str = r#"
[daemon]
state_dir = "state"
timezone = "Europe/Stockholm"

[[sources]]
name = "mail"
type = "maildir"
root = "mail"

[[sources]]
name = "share"
type = "fileshare"
root = "share"
classify = [
  { glob = "rekrytering/tjanster/**/ansokningar/**", class = "application" },
  { glob = "rekrytering/spontan/**", class = "open_application" },
  { glob = "ekonomi/**", class = "invoice" },
  { glob = "loggar/**/access*", class = "access_log" },
]
folders = [{ glob = "kunder/*", class = "customer_folder" }]
path_dates = ["ekonomi/**"]
markers = [{ file = "TILLSATT.txt", date = "position_filled" }]

[[rules]]
id = "P1-stale-inbox"
kind = "max_age"
policy = "medarbetare i sin månadsrutin ska behandla och ta bort sina e-postmeddelanden från inkorgen"
max_age = "31d"
timestamp = "received"
when = { sources = ["mail"], folders = ["INBOX"] }

[[rules]]
id = "P2-wide-cc"
kind = "max_recipients"
policy = "Vi strävar efter att minimera de personer som blir kopierade (CC:)"
max = 3
exclude_domains = ["firma.se"]
when = { sources = ["mail"], folders = ["INBOX", "\\Sent"] }

[[rules]]
id = "P5-application-after-filled"
kind = "max_age"
policy = "Ansökan raderas i våra interna system efter aktuell tjänst är tillsatt"
max_age = "0d"
grace = "14d"
timestamp = "date:position_filled"
when = { attributes = { class = "application" } }

[[rules]]
id = "P9-invoice-retention"
kind = "max_age"
policy = "sparas fakturor och kvitton i 7 år"
max_age = "7y"
anchor = "end_of_year"
timestamp = ["date:path_date", "modified"]
when = { attributes = { class = "invoice" } }

[[rules]]
id = "P11-access-logs"
kind = "max_age"
policy = "Vi lagrar viss information av säkerhetsskäl i tre månader"
max_age = "90d"
timestamp = "modified"
when = { attributes = { class = "access_log" } }

[[rules]]
id = "P13-open-applications"
kind = "max_age"
policy = "När vi tar emot ansökningar sparas dessa för eventuella framtida arbetstillfällen"
max_age = "24 months"
timestamp = "modified"
when = { attributes = { class = "open_application" } }

[[rules]]
id = "P15-customer-folders"
kind = "max_age"
policy = "rutiner för regelbunden gallring för att inte sitta på 'bra att ha uppgifter'"
max_age = "3y"
timestamp = "last_activity"
when = { kinds = ["folder"], attributes = { class = "customer_folder" } }
"#;

/// Builds the organisation and returns the planted `rule:record` set.
fn plant(root: &Path) -> BTreeSet<String> {
    let mut planted = BTreeSet::new();
    let mut add = |rule: &str, record: String| {
        planted.insert(format!("{rule}:{record}"));
    };
    let mail = root.join("mail");
    let old_date = "Mon, 1 Jan 2015 10:00:00 +0000";
    let recent_date = "Mon, 1 Jan 2026 10:00:00 +0000";

    // P1 in two accounts, with near-misses.
    let mut anna = Mailbox::new(&mail, "anna");
    add(
        "P1-stale-inbox",
        anna.message("anna", "INBOX", &["anna@firma.se"], &[], 45, recent_date),
    );
    add(
        "P1-stale-inbox",
        anna.message("anna", "INBOX", &["anna@firma.se"], &[], 700, recent_date),
    );
    anna.message("anna", "INBOX", &["anna@firma.se"], &[], 25, recent_date);
    // Backdated only in its Date: header: received recently, so not stale.
    anna.message("anna", "INBOX", &["anna@firma.se"], &[], 2, old_date);
    // Old, but archived: the promise is about the inbox.
    anna.message("anna", "Arkiv", &["anna@firma.se"], &[], 900, old_date);
    let mut bo = Mailbox::new(&mail, "bo");
    add(
        "P1-stale-inbox",
        bo.message("bo", "INBOX", &["bo@firma.se"], &[], 33, recent_date),
    );
    bo.message("bo", "INBOX", &["bo@firma.se"], &[], 29, recent_date);

    // P2: wide CC in INBOX and Sent; at-limit, internal and out-of-scope misses.
    let four_external = ["a@kund.se", "b@kund.se", "c@annan.se", "d@tredje.se"];
    let three_external = ["a@kund.se", "b@kund.se", "c@annan.se"];
    let internal = ["x@firma.se", "y@firma.se", "z@sub.firma.se", "w@firma.se"];
    add(
        "P2-wide-cc",
        anna.message(
            "anna",
            "INBOX",
            &["anna@firma.se"],
            &four_external,
            3,
            recent_date,
        ),
    );
    add(
        "P2-wide-cc",
        bo.message(
            "bo",
            "Sent",
            &["kund@kund.se"],
            &four_external,
            5,
            recent_date,
        ),
    );
    anna.message(
        "anna",
        "INBOX",
        &["anna@firma.se"],
        &three_external,
        3,
        recent_date,
    );
    bo.message("bo", "Sent", &["kund@kund.se"], &internal, 5, recent_date);
    let mixed = [
        "a@kund.se",
        "b@kund.se",
        "x@firma.se",
        "y@firma.se",
        "c@annan.se",
    ];
    bo.message("bo", "Sent", &["kund@kund.se"], &mixed, 5, recent_date);
    anna.message(
        "anna",
        "Arkiv",
        &["anna@firma.se"],
        &four_external,
        3,
        recent_date,
    );

    let share = root.join("share");
    // P5: a filled position (60 days ago) and its applications; one filled within
    // the grace; one open. Applications sit below the marker's folder.
    let filled = chrono::Utc::now() - chrono::TimeDelta::days(60);
    let recently = chrono::Utc::now() - chrono::TimeDelta::days(5);
    let tjanster = share.join("rekrytering/tjanster");
    file_at(
        &tjanster.join("2026-utvecklare/TILLSATT.txt"),
        format!("Tillsatt {}\n", filled.format("%Y-%m-%d")).as_bytes(),
        days_ago(60),
    );
    for name in ["anna_cv.pdf", "brev/bo_personligt_brev.docx"] {
        file_at(
            &tjanster.join("2026-utvecklare/ansokningar").join(name),
            b"x",
            days_ago(100),
        );
        let record = format!("rekrytering/tjanster/2026-utvecklare/ansokningar/{name}");
        add("P5-application-after-filled", record);
    }
    file_at(
        &tjanster.join("2026-saljare/TILLSATT.txt"),
        format!("Tillsatt {}\n", recently.format("%Y-%m-%d")).as_bytes(),
        days_ago(5),
    );
    file_at(
        &tjanster.join("2026-saljare/ansokningar/cv.pdf"),
        b"x",
        days_ago(100),
    );
    file_at(
        &tjanster.join("2026-support/ansokningar/cv.pdf"),
        b"x",
        days_ago(400),
    );

    // P9: fiscal years; eight years back is over-retained, seven is not.
    let year = chrono::Utc::now().year();
    for (offset, violating) in [(8, true), (10, true), (7, false), (1, false)] {
        let path = format!("ekonomi/{}/faktura-{offset}.pdf", year - offset);
        file_at(&share.join(&path), b"x", days_ago(1));
        if violating {
            add("P9-invoice-retention", path);
        }
    }
    // No year in the path: the mtime decides.
    file_at(
        &share.join("ekonomi/losa/kvitto.pdf"),
        b"x",
        days_ago(365 * 9),
    );
    add("P9-invoice-retention", "ekonomi/losa/kvitto.pdf".into());

    // P11: access logs past 90 days; an error log is no access log.
    for (days, violating) in [(91, true), (200, true), (85, false)] {
        let path = format!("loggar/webb/access.log.{days}");
        file_at(&share.join(&path), b"203.0.113.1 GET /\n", days_ago(days));
        if violating {
            add("P11-access-logs", path);
        }
    }
    file_at(&share.join("loggar/webb/error.log"), b"x", days_ago(400));

    // P13: open applications kept for future positions, at most 24 months.
    file_at(
        &share.join("rekrytering/spontan/gammal.pdf"),
        b"x",
        days_ago(25 * 31),
    );
    add(
        "P13-open-applications",
        "rekrytering/spontan/gammal.pdf".into(),
    );
    file_at(
        &share.join("rekrytering/spontan/ny.pdf"),
        b"x",
        days_ago(23 * 30),
    );

    // P15: customer folders untouched for three years (one empty).
    file_at(
        &share.join("kunder/gamla-ab/avtal.pdf"),
        b"x",
        days_ago(4 * 365),
    );
    file_at(
        &share.join("kunder/gamla-ab/arkiv/offert.pdf"),
        b"x",
        days_ago(5 * 365),
    );
    add("P15-customer-folders", "kunder/gamla-ab".into());
    file_at(
        &share.join("kunder/aktiva-ab/avtal.pdf"),
        b"x",
        days_ago(6 * 365),
    );
    file_at(
        &share.join("kunder/aktiva-ab/nytt/mote.docx"),
        b"x",
        days_ago(30),
    );
    std::fs::create_dir_all(share.join("kunder/tomma-ab")).expect("dir");
    set_mtime(&share.join("kunder/tomma-ab"), days_ago(4 * 365));
    add("P15-customer-folders", "kunder/tomma-ab".into());
    planted
}

fn scan(config: &Path) -> (std::process::Output, BTreeSet<String>) {
    let output = tillsyn(&[
        "scan",
        "--once",
        "--config",
        config.to_str().expect("utf8"),
        "--format",
        "json",
    ]);
    let found = pairs(&json_lines(&output));
    (output, found)
}

fn listed(config: &Path, which: &str) -> BTreeSet<String> {
    let output = tillsyn(&[
        "findings",
        which,
        "--config",
        config.to_str().expect("utf8"),
        "--format",
        "json",
    ]);
    assert!(output.status.success(), "{:?}", text(&output));
    pairs(&json_lines(&output))
}

#[test]
fn finds_exactly_the_planted_violations_and_resolves_exactly_what_was_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let planted = plant(dir.path());
    assert_eq!(planted.len(), 15, "the plan itself");
    let config = dir.path().join("tillsyn.toml");
    std::fs::write(&config, CONFIG).expect("config");

    let (output, found) = scan(&config);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_exact(&found, &planted);

    // Every JSON line carries what the issue promises; by default (no
    // `--reveal`) custodians are pseudonyms.
    let private = tillsyn_as_configured(&[
        "findings",
        "--config",
        config.to_str().expect("utf8"),
        "--format",
        "json",
    ]);
    assert_eq!(json_lines(&private).len(), planted.len());
    for finding in json_lines(&private) {
        for key in [
            "rule",
            "source",
            "severity",
            "record",
            "custodian",
            "age_days",
            "policy",
        ] {
            assert!(finding.get(key).is_some(), "{key} missing in {finding}");
        }
        assert!(
            finding["custodian"]
                .as_str()
                .is_some_and(|o| o.starts_with("p-")),
            "pseudonymised: {finding}"
        );
    }

    // --fail-on-findings turns findings into exit 1.
    let strict = tillsyn(&[
        "scan",
        "--once",
        "--config",
        config.to_str().expect("utf8"),
        "--fail-on-findings",
    ]);
    assert_eq!(strict.status.code(), Some(1));

    // Remove one violating file: exactly its finding resolves.
    std::fs::remove_file(dir.path().join("share/loggar/webb/access.log.200")).expect("remove");
    let (output, found) = scan(&config);
    assert_eq!(output.status.code(), Some(0));
    let gone = "P11-access-logs:loggar/webb/access.log.200".to_owned();
    let mut expected = planted.clone();
    expected.remove(&gone);
    assert_exact(&found, &expected);
    assert_exact(
        &listed(&config, "--resolved"),
        &BTreeSet::from([gone.clone()]),
    );
    assert_exact(&listed(&config, "--open"), &expected);

    // The filled position's marker no longer gives a date ("filled in the
    // spring"): counted, the scan partial, and the applications under it
    // keep their findings, though no date dates them now (before, they
    // resolved).
    let marker = dir
        .path()
        .join("share/rekrytering/tjanster/2026-utvecklare/TILLSATT.txt");
    std::fs::write(&marker, "Tillsatt i våras\n").expect("marker");
    let (output, found) = scan(&config);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("PARTIAL") && stderr.contains("bad_marker 1"),
        "{stderr}"
    );
    assert_exact(&listed(&config, "--open"), &expected);
    assert_exact(&found, &expected);
    // Written as Swedish texts write dates ("5/3-2024"): read, and judged.
    let filled = chrono::Utc::now() - chrono::TimeDelta::days(60);
    std::fs::write(
        &marker,
        format!("Tillsatt {}\n", filled.format("%-d/%-m-%Y")),
    )
    .expect("marker");
    let (output, found) = scan(&config);
    let (_, stderr) = text(&output);
    assert!(!stderr.contains("bad_marker"), "{stderr}");
    assert_exact(&found, &expected);

    // The share disappears (unmounted): the scan fails, exit 2, nothing resolves.
    std::fs::rename(dir.path().join("share"), dir.path().join("share-away")).expect("unmount");
    let output = tillsyn(&[
        "scan",
        "--once",
        "--config",
        config.to_str().expect("utf8"),
        "--source",
        "share",
    ]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("FAILED"), "{stderr}");
    assert!(stderr.contains("root_unreadable"), "{stderr}");
    assert_exact(&listed(&config, "--open"), &expected);
    assert_exact(&listed(&config, "--resolved"), &BTreeSet::from([gone]));
}

#[test]
fn only_configured_paths_are_read_for_dates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let share = dir.path().join("share");
    let now = std::time::SystemTime::now();
    let years_ago = |years: u64| now - std::time::Duration::from_secs(years * 366 * 86_400);
    // (path, modified): an invoice filed under 2012 (dated by its folder,
    // though touched today); invoices in customer 2150's folder, which is no
    // year: one last changed ten years ago, one today.
    for (path, modified) in [
        ("ekonomi/arkiv/2012/faktura-1.pdf", now),
        ("ekonomi/kunder/2150/faktura-2.pdf", years_ago(10)),
        ("ekonomi/kunder/2150/faktura-3.pdf", now),
    ] {
        let file = share.join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("dir");
        std::fs::write(&file, b"%PDF-1.4").expect("file");
        set_mtime(&file, modified);
    }
    let config = dir.path().join("tillsyn.toml");
    std::fs::write(
        &config,
        r#"[daemon]
state_dir = "state"

[[sources]]
name = "share"
type = "fileshare"
root = "share"
classify = [{ glob = "ekonomi/**", class = "invoice" }]
path_dates = ["ekonomi/arkiv/**"]

[[rules]]
id = "invoices-kept-7-years"
kind = "max_age"
policy = "Fakturor sparas i sju år."
max_age = "7 years"
timestamp = ["date:path_date", "modified"]
when = { attributes = { class = "invoice" } }
"#,
    )
    .expect("config");
    let config = config.to_str().expect("utf8");
    let output = tillsyn(&["scan", "--once", "--config", config]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    let found = pairs(&json_lines(&tillsyn(&[
        "findings", "--open", "--config", config, "--format", "json",
    ])));
    assert_exact(
        &found,
        &BTreeSet::from([
            "invoices-kept-7-years:ekonomi/arkiv/2012/faktura-1.pdf".to_owned(),
            "invoices-kept-7-years:ekonomi/kunder/2150/faktura-2.pdf".to_owned(),
        ]),
    );
}

#[test]
fn home_folders_name_their_custodians_when_every_file_has_one_uid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let share = dir.path().join("share");
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 366 * 86_400);
    // Every file has this process's uid, as on a CIFS mount without cifsacl.
    for path in [
        "Hem/anna/cv.docx",
        "Hem/bo/gammalt/lista.xlsx",
        "Gemensamt/rutiner.pdf",
    ] {
        let file = share.join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("dir");
        std::fs::write(&file, b"x").expect("file");
        set_mtime(&file, old);
    }
    let write = |custodian_from: &str| {
        let config = dir.path().join("tillsyn.toml");
        std::fs::write(
            &config,
            format!(
                r#"[daemon]
state_dir = "state"

[privacy]
name_people = true

[[sources]]
name = "share"
type = "fileshare"
root = "share"
custodian_from = [{custodian_from}]

[[rules]]
id = "old-files"
kind = "max_age"
policy = "Filer rensas efter två år."
max_age = "2 years"
timestamp = "modified"
"#
            ),
        )
        .expect("config");
        config.to_str().expect("utf8").to_owned()
    };
    let config = write("\"Hem/{custodian}/**\"");
    let output = tillsyn(&["scan", "--once", "--config", &config]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    let findings = json_lines(&tillsyn(&[
        "findings", "--open", "--config", &config, "--format", "json",
    ]));
    let custodians: BTreeSet<(String, String)> = findings
        .iter()
        .map(|finding| {
            (
                finding["record"].as_str().unwrap_or("?").to_owned(),
                finding["custodian"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect();
    let uid_owner = custodians
        .iter()
        .find(|(record, _)| record == "Gemensamt/rutiner.pdf")
        .map(|(_, custodian)| custodian.clone())
        .expect("the shared file");
    assert_ne!(uid_owner, "anna");
    assert_eq!(
        custodians,
        BTreeSet::from([
            ("Hem/anna/cv.docx".to_owned(), "anna".to_owned()),
            ("Hem/bo/gammalt/lista.xlsx".to_owned(), "bo".to_owned()),
            ("Gemensamt/rutiner.pdf".to_owned(), uid_owner.clone()),
        ])
    );
    // A pattern that names no custodian is a config error, with its reason.
    for bad in [
        "\"Hem/**/{custodian}\"",
        "\"Hem/*\"",
        "\"Hem/{custodian}/{custodian}\"",
    ] {
        let config = write(bad);
        let output = tillsyn(&["check-config", "--config", &config]);
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(3), "{bad}: {stdout}{stderr}");
        assert!(
            format!("{stdout}{stderr}").contains("custodian_from"),
            "{bad}: {stdout}{stderr}"
        );
    }
}
