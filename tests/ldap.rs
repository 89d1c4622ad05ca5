//! The LDAP connector against a real slapd: 5,000 entries read by a non-admin bind
//! through paging (an unpaged search stops at 500), former customers kept past the
//! promise found exactly, and clear failures (wrong password, wrong CA, server
//! down) that resolve nothing.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::slapd::{Person, SERVICE_DN, SERVICE_PASSWORD, SUFFIX, Slapd};
use common::*;

const RULE: &str = r#"
[[rules]]
id = "P8-former-customers"
kind = "max_age"
policy = "Vi sparar dina Kunduppgifter så länge som du är kund hos oss."
max_age = "12 months"
timestamp = "date:customer_ended"
when = { attributes = { status = "former" } }
"#;

fn generalized(days_ago: i64) -> String {
    (chrono::Utc::now() - chrono::TimeDelta::days(days_ago))
        .format("%Y%m%d%H%M%SZ")
        .to_string()
}

/// 5,000 people: every 100th a former customer for two years (planted), every
/// 100th + 50 a former customer for six months, every 250th + 7 an active
/// customer with a stale end date (not former: not a breach).
fn people() -> (Vec<Person>, BTreeSet<String>) {
    let mut planted = BTreeSet::new();
    let people = (0..5000)
        .map(|n| {
            let (status, ended) = if n % 100 == 0 {
                ("former", Some(generalized(730)))
            } else if n % 100 == 50 {
                ("former", Some(generalized(180)))
            } else if n % 250 == 7 {
                ("active", Some(generalized(1500)))
            } else {
                ("active", None)
            };
            let person = Person {
                uid: format!("p{n}"),
                status,
                ended,
                opt_out: n % 3 == 0,
            };
            if n % 100 == 0 {
                planted.insert(format!("P8-former-customers:{}", person.dn()));
            }
            person
        })
        .collect();
    (people, planted)
}

fn write_config(dir: &Path, url: &str, ca: &Path, password: &str) -> String {
    std::fs::write(dir.join("ldap.pw"), format!("{password}\n")).expect("password");
    // ldap:// means StartTLS here: the password never crosses in the clear.
    let starttls = url.starts_with("ldap://");
    let text = format!(
        "[daemon]\nstate_dir = \"state\"\n\n[[sources]]\nname = \"directory\"\ntype = \"ldap\"\n\
         url = \"{url}\"\nstarttls = {starttls}\nca_file = \"{}\"\nbind_dn = \"{SERVICE_DN}\"\npassword_file = \"ldap.pw\"\n\
         base_dn = \"ou=people,{SUFFIX}\"\nfilter = \"(objectClass=inetOrgPerson)\"\ntimeout_seconds = 10\n\
         attributes = {{ status = \"customerStatus\", opt_out = \"marketingOptOut\" }}\n\
         dates = {{ customer_ended = \"customerEndDate\" }}\n{RULE}",
        ca.display()
    );
    let path = dir.join("tillsyn.toml");
    std::fs::write(&path, text).expect("config");
    path.to_str().expect("utf8").to_owned()
}

fn open_findings(config: &str) -> BTreeSet<String> {
    pairs(&json_lines(&tillsyn(&[
        "findings", "--open", "--config", config, "--format", "json",
    ])))
}

#[test]
fn reads_5000_entries_through_paging_and_finds_former_customers_exactly() {
    let (people, planted) = people();
    let server = Slapd::start(&people);

    // The control: the same bind without paging stops at the server's limit.
    let unpaged = std::process::Command::new("ldapsearch")
        .args([
            "-x",
            "-H",
            &format!("ldap://127.0.0.1:{}", server.port),
            "-D",
            SERVICE_DN,
            "-w",
            SERVICE_PASSWORD,
        ])
        .args([
            "-b",
            &format!("ou=people,{SUFFIX}"),
            "(objectClass=inetOrgPerson)",
            "1.1",
        ])
        .output()
        .expect("ldapsearch (Debian package ldap-utils)");
    assert_eq!(
        unpaged.status.code(),
        Some(4),
        "sizeLimitExceeded without paging"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("ldaps://localhost:{}", server.tls_port);
    let config = write_config(dir.path(), &url, &server.path("ca.pem"), SERVICE_PASSWORD);
    let output = tillsyn(&["scan", "--once", "--config", &config, "--format", "json"]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("5000 records"), "{stderr}");
    assert_exact(&pairs(&json_lines(&output)), &planted);
    assert!(!stderr.contains(SERVICE_PASSWORD));

    // The same over StartTLS on the plain port.
    let url = format!("ldap://localhost:{}", server.port);
    let config = write_config(dir.path(), &url, &server.path("ca.pem"), SERVICE_PASSWORD);
    let output = tillsyn(&["scan", "--once", "--config", &config, "--format", "json"]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    assert_exact(&pairs(&json_lines(&output)), &planted);

    // Plain ldap:// without StartTLS is refused unless allowed.
    let plain = std::fs::read_to_string(&config)
        .expect("config")
        .replace("starttls = true", "starttls = false");
    std::fs::write(&config, plain).expect("config");
    let check = tillsyn(&["check-config", "--config", &config]);
    assert_eq!(check.status.code(), Some(3));
    assert!(
        text(&check).0.contains("allow_plaintext"),
        "{:?}",
        text(&check)
    );
}

#[test]
fn wrong_password_wrong_ca_and_server_down_fail_clearly_and_resolve_nothing() {
    let (people, planted) = people();
    let mut server = Slapd::start(&people);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("ldaps://localhost:{}", server.tls_port);
    let config = write_config(dir.path(), &url, &server.path("ca.pem"), SERVICE_PASSWORD);
    let output = tillsyn(&["scan", "--once", "--config", &config]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));

    let cases = [
        (
            "wrong password",
            url.clone(),
            server.path("ca.pem"),
            "wrong-pw",
            "invalid credentials",
        ),
        (
            "wrong CA",
            url.clone(),
            server.path("other-ca.pem"),
            SERVICE_PASSWORD,
            "tls",
        ),
    ];
    for (case, url, ca, password, word) in cases {
        let config = write_config(dir.path(), &url, &ca, password);
        let output = tillsyn(&["scan", "--once", "--config", &config]);
        let (_, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(2), "{case}: {stderr}");
        assert!(
            stderr.contains("FAILED") && stderr.contains(word),
            "{case}: {stderr}"
        );
        assert!(
            !stderr.contains(password) || password == SERVICE_PASSWORD,
            "{case}: password shown"
        );
        assert_exact(&open_findings(&config), &planted);
    }

    // A directory that is not reachable at the first attempt but is a moment
    // later (a restart, a failover): the connection is tried again and the
    // scan completes. The log shows the retry, so this is not a first try
    // that happened to succeed.
    let late = late_forwarder(server.tls_port, std::time::Duration::from_millis(400));
    let late_url = format!("ldaps://localhost:{late}");
    let config = write_config(
        dir.path(),
        &late_url,
        &server.path("ca.pem"),
        SERVICE_PASSWORD,
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tillsyn"))
        .args(["scan", "--once", "--config", &config])
        .env("TILLSYN_LOG", "info")
        .output()
        .expect("run tillsyn");
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "late directory: {stderr}");
    assert!(stderr.contains("trying again"), "{stderr}");
    assert_exact(&open_findings(&config), &planted);

    server.kill();
    let config = write_config(dir.path(), &url, &server.path("ca.pem"), SERVICE_PASSWORD);
    let output = tillsyn(&["scan", "--once", "--config", &config]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "server down: {stderr}");
    assert!(stderr.contains("cannot connect"), "{stderr}");
    assert_exact(&open_findings(&config), &planted);
}

#[test]
fn incremental_rescans_read_only_changed_entries_and_a_full_read_resolves_deleted_ones() {
    let (people, mut planted) = people();
    let server = Slapd::start(&people);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("ldaps://localhost:{}", server.tls_port);
    let config = write_config(dir.path(), &url, &server.path("ca.pem"), SERVICE_PASSWORD);
    let text_with_incremental = std::fs::read_to_string(&config).expect("config").replace(
        "timeout_seconds = 10\n",
        "timeout_seconds = 10\nincremental_full_every_hours = 24\n",
    );
    std::fs::write(&config, text_with_incremental).expect("config");
    let scan = || scan_ok(&config);

    let first = scan();
    assert_eq!(work(&first, "entries_read"), 5000, "{first}");
    assert_eq!(work(&first, "incremental"), 0, "{first}");
    assert_exact(&open_findings(&config), &planted);

    // Nothing changed: the rescan reads nothing and keeps every finding.
    let unchanged = scan();
    assert_eq!(work(&unchanged, "entries_read"), 0, "{unchanged}");
    assert_eq!(work(&unchanged, "incremental"), 1, "{unchanged}");
    assert_exact(&open_findings(&config), &planted);

    // p0 becomes a customer again (its finding resolves), p1 leaves two years ago
    // (a new finding), and p200 is deleted (carried until a full read).
    let dn = |uid: &str| format!("uid={uid},ou=people,{SUFFIX}");
    server.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: customerStatus\ncustomerStatus: active\n\n\
         dn: {}\nchangetype: modify\nreplace: customerStatus\ncustomerStatus: former\n-\n\
         replace: customerEndDate\ncustomerEndDate: {}\n\n\
         dn: {}\nchangetype: delete\n",
        dn("p0"),
        dn("p1"),
        generalized(800),
        dn("p200"),
    ));
    let changed = scan();
    assert_eq!(
        work(&changed, "entries_read"),
        2,
        "only p0 and p1: {changed}"
    );
    planted.remove(&format!("P8-former-customers:{}", dn("p0")));
    planted.insert(format!("P8-former-customers:{}", dn("p1")));
    assert_exact(&open_findings(&config), &planted);

    // The last full read made "25 hours ago": this scan reads everything, and
    // the deleted entry's finding resolves.
    backdate_full_read(&dir.path().join("state"), "ldap");
    let full = scan();
    assert_eq!(work(&full, "entries_read"), 4999, "{full}");
    assert_eq!(work(&full, "incremental"), 0, "{full}");
    planted.remove(&format!("P8-former-customers:{}", dn("p200")));
    assert_exact(&open_findings(&config), &planted);
}

#[test]
fn group_members_carry_their_groups_and_a_group_change_is_seen_by_the_next_scan() {
    let people: Vec<Person> = (0..20)
        .map(|n| Person {
            uid: format!("p{n}"),
            status: "active",
            ended: None,
            // p1 and p4 as well: the list spells their DNs otherwise.
            opt_out: n % 3 == 0 || n == 1 || n == 4,
        })
        .collect();
    let dn = |uid: &str| format!("uid={uid},ou=people,{SUFFIX}");
    let stamp = "modifyTimestamp: 20250102030405Z\n";
    // p1 spelled as other tools write member DNs: type case, spaces around
    // separators; p4 with a hex escape.
    let spelled = format!("UID=p1 , OU=People, {}", SUFFIX.replace(',', ", "));
    let groups = format!(
        "dn: ou=lists,{SUFFIX}\nobjectClass: organizationalUnit\nou: lists\n{stamp}\n\
         dn: cn=marketing,ou=lists,{SUFFIX}\nobjectClass: groupOfNames\ncn: marketing\n\
         member: {}\nmember: {}\nmember: {}\nmember: {}\nmember: {}\nmember: {}\n{stamp}\n\
         dn: cn=staff,ou=lists,{SUFFIX}\nobjectClass: groupOfUniqueNames\ncn: staff\n\
         uniqueMember: {}#'0101'B\n{stamp}\n",
        dn("p0"),
        spelled,
        dn("p2"),
        dn("p3"),
        dn("p4").replace("uid=p4", "uid=p\\34"),
        dn("p5").replace("uid=p5", "UID=p5"),
        dn("p3"),
    );
    let server = Slapd::start_with(&people, &groups);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ldap.pw"), SERVICE_PASSWORD).expect("pw");
    let config = dir.path().join("tillsyn.toml");
    std::fs::write(
        &config,
        format!(
            r#"[daemon]
state_dir = "state"

[[sources]]
name = "directory"
type = "ldap"
url = "ldap://127.0.0.1:{port}"
allow_plaintext = true
bind_dn = "{SERVICE_DN}"
password_file = "ldap.pw"
base_dn = "ou=people,{SUFFIX}"
filter = "(objectClass=inetOrgPerson)"
attributes = {{ email = "mail", opt_out = "marketingOptOut" }}
group_base_dn = "ou=lists,{SUFFIX}"
incremental_full_every_hours = 24

[[rules]]
id = "P10-opted-out-on-marketing-list"
kind = "conflict"
policy = "om direktreklamspärr inte har begärts"
when = {{ sources = ["directory"], attributes = {{ groups = "CN=Market\\69ng, OU=Lists, {spaced}" }} }}
marked_by = {{ sources = ["directory"], attributes = {{ opt_out = "TRUE" }} }}
key = "email"
"#,
            port = server.port,
            spaced = SUFFIX.replace(',', ", "),
        ),
    )
    .expect("config");
    let config = config.to_str().expect("utf8").to_owned();
    let scan = || scan_ok(&config);
    let finding = |uid: &str| format!("P10-opted-out-on-marketing-list:{}", dn(uid).to_lowercase());

    let first = scan();
    assert_eq!(work(&first, "groups_read"), 2, "{first}");
    // Marketing members p0–p5 who opted out: p0, p1, p3 (staff too) and p4.
    let mut expected: BTreeSet<String> = ["p0", "p1", "p3", "p4"]
        .iter()
        .map(|uid| finding(uid))
        .collect();
    assert_exact(&open_findings(&config), &expected);

    // Unchanged: nothing read again.
    let unchanged = scan();
    assert_eq!(work(&unchanged, "entries_read"), 0, "{unchanged}");

    // p9 (opted out) joins the list; no person entry changes, the group does:
    // the next scan reads everyone and finds p9.
    server.modify(&format!(
        "dn: cn=marketing,ou=lists,{SUFFIX}\nchangetype: modify\nadd: member\nmember: {}\n",
        dn("p9")
    ));
    let after = scan();
    assert_eq!(work(&after, "entries_read"), 20, "{after}");
    expected.insert(finding("p9"));
    assert_exact(&open_findings(&config), &expected);
}

/// The TLS config against `server`, with `line` of it replaced by `with`.
fn edited_config(dir: &Path, server: &Slapd, line: &str, with: &str) -> String {
    let config = write_config(
        dir,
        &format!("ldaps://127.0.0.1:{}", server.tls_port),
        &server.path("ca.pem"),
        SERVICE_PASSWORD,
    );
    let text = std::fs::read_to_string(&config).expect("config");
    assert!(text.contains(line), "{line} not in the config");
    std::fs::write(&config, text.replace(line, with)).expect("config");
    config
}

const DATES_LINE: &str = "dates = { customer_ended = \"customerEndDate\" }";

/// Dates kept as free text (`customerEndText`), as directories do.
fn text_date_config(dir: &Path, server: &Slapd) -> String {
    edited_config(
        dir,
        server,
        DATES_LINE,
        "dates = { customer_ended = \"customerEndText\" }\nincremental_full_every_hours = 24",
    )
}

#[test]
fn a_date_it_cannot_read_keeps_the_finding_open_and_never_panics() {
    let people: Vec<Person> = ["kept", "garbled", "accented", "fixed"]
        .iter()
        .map(|uid| Person {
            uid: (*uid).to_owned(),
            status: "former",
            ended: None,
            opt_out: false,
        })
        .collect();
    let server = Slapd::start(&people);
    let long_ago = generalized(730);
    let mut ldif = String::new();
    for person in &people {
        ldif.push_str(&format!(
            "dn: {}\nchangetype: modify\nadd: customerEndText\ncustomerEndText: {long_ago}\n\n",
            person.dn()
        ));
    }
    server.modify(&ldif);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = text_date_config(dir.path(), &server);
    let planted: BTreeSet<String> = people
        .iter()
        .map(|person| format!("P8-former-customers:{}", person.dn()))
        .collect();
    let output = tillsyn(&["scan", "--once", "--config", &config]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    assert_exact(&open_findings(&config), &planted);

    // Two dates turn unreadable (one with a non-ASCII byte where the offset
    // goes, which once panicked the parser); one turns recent, so its finding
    // must resolve in the same scan.
    let recent = generalized(10);
    server.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: customerEndText\ncustomerEndText: 2024-13-45\n\n\
         dn: {}\nchangetype: modify\nreplace: customerEndText\ncustomerEndText: 20240115103000é1\n\n\
         dn: {}\nchangetype: modify\nreplace: customerEndText\ncustomerEndText: {recent}\n\n",
        people[1].dn(),
        people[2].dn(),
        people[3].dn(),
    ));
    let output = tillsyn(&["scan", "--once", "--config", &config]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("PARTIAL") && stderr.contains("bad_date 2"),
        "{stderr}"
    );
    let still: BTreeSet<String> = people[..3]
        .iter()
        .map(|person| format!("P8-former-customers:{}", person.dn()))
        .collect();
    assert_exact(&open_findings(&config), &still);

    // A full read (as the next periodic one) judges the same way.
    backdate_full_read(&dir.path().join("state"), "ldap");
    let output = tillsyn(&["scan", "--once", "--config", &config]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("PARTIAL"), "{stderr}");
    assert_exact(&open_findings(&config), &still);
}

#[test]
fn a_referral_it_does_not_follow_makes_the_scan_partial_and_resolves_nothing() {
    let people = vec![
        Person {
            uid: "gone".into(),
            status: "former",
            ended: Some(generalized(730)),
            opt_out: false,
        },
        Person {
            uid: "stays".into(),
            status: "former",
            ended: Some(generalized(730)),
            opt_out: false,
        },
    ];
    // Part of the tree lives on a partner's server: slapd answers with a
    // search reference there.
    let referral = format!(
        "dn: ou=partner,ou=people,{SUFFIX}\nobjectClass: referral\nobjectClass: extensibleObject\n\
         ou: partner\nref: ldap://partner.invalid/ou=people,dc=partner,dc=se\n\n"
    );
    let server = Slapd::start_with(&people, &referral);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!("ldaps://127.0.0.1:{}", server.tls_port),
        &server.path("ca.pem"),
        SERVICE_PASSWORD,
    );
    let planted: BTreeSet<String> = people
        .iter()
        .map(|person| format!("P8-former-customers:{}", person.dn()))
        .collect();
    let output = tillsyn(&["scan", "--once", "--config", &config]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("PARTIAL") && stderr.contains("referral 1"),
        "{stderr}"
    );
    assert!(stderr.contains("a referral was not followed"), "{stderr}");
    assert_exact(&open_findings(&config), &planted);
    // One person's entry goes; with part of the tree unread, nothing resolves.
    server.modify(&format!("dn: {}\nchangetype: delete\n\n", people[0].dn()));
    let output = tillsyn(&["scan", "--once", "--config", &config]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("0 resolved"), "{stderr}");
    assert_exact(&open_findings(&config), &planted);
    // Without the referral, the same scan resolves exactly the one gone.
    server.modify(&format!(
        "dn: ou=partner,ou=people,{SUFFIX}\nchangetype: delete\n\n"
    ));
    let output = tillsyn(&["scan", "--once", "--config", &config]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("PARTIAL"), "{stderr}");
    assert_exact(
        &open_findings(&config),
        &[format!("P8-former-customers:{}", people[1].dn())].into(),
    );
}

#[test]
fn personal_data_in_a_mapped_attribute_is_found() {
    let notes = format!(
        "dn: uid=noted,ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: noted\ncn: noted\nsn: noted\n\
         description: Kundens personnummer 811218-9876\n\n\
         dn: uid=decoy,ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: decoy\ncn: decoy\nsn: decoy\n\
         description: Orgnr 556677-8899, fakturanr 811218-9876\n\n"
    );
    let server = Slapd::start_with(&[], &notes);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = edited_config(
        dir.path(),
        &server,
        "attributes = { status = \"customerStatus\", opt_out = \"marketingOptOut\" }",
        "attributes = { status = \"customerStatus\", notes = \"description\" }",
    );
    let written = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        format!(
            "{written}\n[[rules]]\nid = \"notes\"\nkind = \"contains\"\npolicy = \"p\"\ndetectors = [\"personnummer\"]\n"
        ),
    )
    .expect("config");
    let output = tillsyn(&["scan", "--once", "--config", &config, "--format", "json"]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    assert_exact(
        &pairs(&json_lines(&output)),
        &[format!("notes:uid=noted,ou=people,{SUFFIX}")].into(),
    );
}

/// FILETIME (100 ns ticks since 1601) of `days_ago`.
fn filetime(days_ago: i64) -> String {
    let unix = (chrono::Utc::now() - chrono::TimeDelta::days(days_ago)).timestamp();
    ((unix + 11_644_473_600) * 10_000_000).to_string()
}

#[test]
fn dates_kept_in_free_text_and_as_filetime_are_read_where_they_are() {
    // Each person: (uid, description values, accountExpires).
    let day = |days_ago: i64| {
        (chrono::Utc::now() - chrono::TimeDelta::days(days_ago))
            .format("%Y-%m-%d")
            .to_string()
    };
    let cases: Vec<(&str, Vec<String>, Option<String>)> = vec![
        // The contract ended two years ago, written among other notes.
        (
            "ended",
            vec![
                "kund sedan 2015".into(),
                format!("slutdatum: {}", day(730)),
                "VIP".into(),
            ],
            None,
        ),
        // Ended last month: within the promise.
        ("recent", vec![format!("Slutdatum:   {}", day(30))], None),
        // No end date in the notes: nothing to judge, no error.
        ("open", vec!["kund sedan 2019".into()], None),
        // An end date that is no date: the entry is not judged, the scan partial.
        ("garbled", vec!["slutdatum: 2024-02-30".into()], None),
        // Accounts: expired 200 days ago (planted), never (0 and the maximum),
        // expired ten days ago.
        ("expired", Vec::new(), Some(filetime(200))),
        ("never", Vec::new(), Some("0".into())),
        ("never-max", Vec::new(), Some("9223372036854775807".into())),
        ("just-expired", Vec::new(), Some(filetime(10))),
    ];
    let people: Vec<Person> = cases
        .iter()
        .map(|(uid, _, _)| Person {
            uid: (*uid).to_owned(),
            status: "former",
            ended: None,
            opt_out: false,
        })
        .collect();
    let server = Slapd::start(&people);
    let mut ldif = String::new();
    for ((_, notes, expires), person) in cases.iter().zip(&people) {
        if !notes.is_empty() {
            ldif.push_str(&format!(
                "dn: {}\nchangetype: modify\nadd: description\n",
                person.dn()
            ));
            for note in notes {
                ldif.push_str(&format!("description: {note}\n"));
            }
            ldif.push('\n');
        }
        if let Some(expires) = expires {
            ldif.push_str(&format!(
                "dn: {}\nchangetype: modify\nadd: accountExpires\naccountExpires: {expires}\n\n",
                person.dn()
            ));
        }
    }
    server.modify(&ldif);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = edited_config(
        dir.path(),
        &server,
        DATES_LINE,
        concat!(
            "dates = { customer_ended = { attribute = \"description\", pattern = '(?i)slutdatum:\\s*(\\d{4}-\\d{2}-\\d{2})' }, \
         expires = { attribute = \"accountExpires\", format = \"filetime\" } }",
            r#"
[[rules]]
id = "expired-accounts"
kind = "max_age"
policy = "Konton för personer som slutat tas bort inom 90 dagar."
max_age = "90d"
timestamp = "date:expires"
"#
        ),
    );
    let output = tillsyn(&["scan", "--once", "--config", &config]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("PARTIAL") && stderr.contains("bad_date 1"),
        "{stderr}"
    );
    let dn = |uid: &str| {
        people
            .iter()
            .find(|person| person.uid == uid)
            .expect("person")
            .dn()
    };
    let planted = BTreeSet::from([
        format!("P8-former-customers:{}", dn("ended")),
        format!("expired-accounts:{}", dn("expired")),
    ]);
    assert_exact(&open_findings(&config), &planted);
}

/// A TCP forwarder to slapd's `server_port` that starts listening only
/// `after` this long: until then its port refuses connections. Returns the
/// port.
fn late_forwarder(server_port: u16, after: std::time::Duration) -> u16 {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("address").port()
    };
    std::thread::spawn(move || {
        std::thread::sleep(after);
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("rebind");
        relay(
            listener,
            server_port,
            |mut server_reader, mut client_writer| {
                let _ = std::io::copy(&mut server_reader, &mut client_writer);
            },
        );
    });
    port
}

/// Accept on `listener` for ever, connecting each client to `server_port`:
/// what the client sends is copied to the server as it is, and
/// `downstream(server, client)` runs on a thread of its own for what the
/// server sends back.
fn relay(
    listener: std::net::TcpListener,
    server_port: u16,
    downstream: impl Fn(std::net::TcpStream, std::net::TcpStream) + Clone + Send + 'static,
) {
    for client in listener.incoming().flatten() {
        let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", server_port)) else {
            continue;
        };
        let (mut client_reader, mut server_writer) = (
            client.try_clone().expect("clone"),
            server.try_clone().expect("clone"),
        );
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut client_reader, &mut server_writer);
        });
        let downstream = downstream.clone();
        std::thread::spawn(move || downstream(server, client));
    }
}

/// A TCP relay in front of slapd that replaces `from` by `to` (same length)
/// in what the server sends: an entry whose DN arrives as bytes that are no
/// UTF-8, as a broken or hostile directory could send it. (slapd itself
/// validates every DN, so it cannot be made to send one; the relay is the
/// fault, the directory behind it is real.) Returns its port.
fn corrupting_relay(server_port: u16, from: &'static [u8], to: &'static [u8]) -> u16 {
    use std::io::{Read, Write};
    assert_eq!(from.len(), to.len(), "the BER lengths must not change");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        relay(
            listener,
            server_port,
            move |mut server_reader, mut client_writer| {
                // Hold back the last bytes of each read until the next one,
                // or a quiet moment, so a DN split across reads is caught.
                let _ = server_reader.set_read_timeout(Some(std::time::Duration::from_millis(30)));
                let mut pending: Vec<u8> = Vec::new();
                let mut buffer = [0u8; 16384];
                loop {
                    match server_reader.read(&mut buffer) {
                        Ok(0) => break,
                        Ok(read) => pending.extend_from_slice(&buffer[..read]),
                        Err(error)
                            if matches!(
                                error.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) =>
                        {
                            if client_writer.write_all(&pending).is_err() {
                                break;
                            }
                            pending.clear();
                            continue;
                        }
                        Err(_) => break,
                    }
                    let mut at = 0;
                    while let Some(found) = pending[at..]
                        .windows(from.len())
                        .position(|window| window == from)
                    {
                        let start = at + found;
                        pending[start..start + to.len()].copy_from_slice(to);
                        at = start + to.len();
                    }
                    let keep = from.len().saturating_sub(1).min(pending.len());
                    let send = pending.len() - keep;
                    if client_writer.write_all(&pending[..send]).is_err() {
                        break;
                    }
                    pending.drain(..send);
                }
                let _ = client_writer.write_all(&pending);
            },
        );
    });
    port
}

/// An entry the directory sends that cannot be decoded (its DN is no
/// UTF-8): counted, the scan partial, and nothing of the source resolves,
/// since which entry it was cannot be told. Read again cleanly, the scan
/// completes and resolves what is gone.
#[test]
fn an_entry_that_cannot_be_decoded_makes_the_scan_partial_and_resolves_nothing() {
    let people: Vec<Person> = ["gone", "broken"]
        .iter()
        .map(|uid| Person {
            uid: (*uid).into(),
            status: "former",
            ended: Some(generalized(730)),
            opt_out: false,
        })
        .collect();
    let server = Slapd::start(&people);
    let relay = corrupting_relay(server.port, b"uid=broken", b"uid=br\xffken");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ldap.pw"), format!("{SERVICE_PASSWORD}\n")).expect("pw");
    let config = dir.path().join("tillsyn.toml");
    let write = |port: u16| {
        std::fs::write(
            &config,
            format!(
                "[daemon]\nstate_dir = \"state\"\n\n[[sources]]\nname = \"directory\"\ntype = \"ldap\"\n\
                 url = \"ldap://127.0.0.1:{port}\"\nallow_plaintext = true\nbind_dn = \"{SERVICE_DN}\"\n\
                 password_file = \"ldap.pw\"\nbase_dn = \"ou=people,{SUFFIX}\"\n\
                 filter = \"(objectClass=inetOrgPerson)\"\ntimeout_seconds = 10\n\
                 attributes = {{ status = \"customerStatus\" }}\n\
                 dates = {{ customer_ended = \"customerEndDate\" }}\n{RULE}"
            ),
        )
        .expect("config");
        config.to_str().expect("utf8").to_owned()
    };
    // Read cleanly: both found.
    let clean = write(server.port);
    let output = tillsyn(&["scan", "--once", "--config", &clean]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let both: BTreeSet<String> = people
        .iter()
        .map(|person| format!("P8-former-customers:{}", person.dn()))
        .collect();
    assert_exact(&open_findings(&clean), &both);
    // One entry goes; the other arrives undecodable: partial, nothing resolves.
    server.modify(&format!("dn: {}\nchangetype: delete\n\n", people[0].dn()));
    let relayed = write(relay);
    let output = tillsyn(&["scan", "--once", "--config", &relayed]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("PARTIAL") && stderr.contains("malformed_entry 1"),
        "{stderr}"
    );
    assert!(stderr.contains("0 resolved"), "{stderr}");
    assert!(
        !stderr.contains("FromUtf8Error")
            && !stderr.contains("broken")
            && !stderr.contains("98, 114"),
        "a decoding panic's message names the entry: {stderr}"
    );
    assert_exact(&open_findings(&relayed), &both);
    // Read cleanly again: complete, and exactly the one gone resolves.
    let clean = write(server.port);
    let output = tillsyn(&["scan", "--once", "--config", &clean]);
    let (_, stderr) = text(&output);
    assert!(!stderr.contains("PARTIAL"), "{stderr}");
    assert_exact(
        &open_findings(&clean),
        &[format!("P8-former-customers:{}", people[1].dn())].into(),
    );
}
