//! The IMAP connector against a real Dovecot: planted stale and wide-CC mail found
//! exactly, nothing changed on the server, TLS and STARTTLS with a test CA, clear
//! failures (wrong CA, wrong password, server down, server killed mid-scan), the
//! master-user login, incremental rescans and malformed mail.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::dovecot::{Dovecot, LineFilterProxy, Proxy, message};
use common::*;

const RECENT: &str = "Mon, 2 Nov 2026 10:00:00 +0000";
const ANCIENT: &str = "Mon, 1 Jan 2001 10:00:00 +0000";

/// The header of a plain-text UTF-8 body.
const PLAIN_TEXT: &str = "Content-Type: text/plain; charset=utf-8\r\n";

const RULES: &str = r#"
[[rules]]
id = "stale-inbox"
kind = "max_age"
policy = "medarbetare i sin månadsrutin ska behandla och ta bort sina e-postmeddelanden från inkorgen"
max_age = "31d"
timestamp = "received"
when = { folders = ["INBOX"] }

[[rules]]
id = "wide-cc"
kind = "max_recipients"
policy = "Vi strävar efter att minimera de personer som blir kopierade (CC:)"
max = 3
exclude_domains = ["firma.se"]
when = { folders = ["INBOX", "\\Sent"] }
"#;

/// Write a config for an IMAP source; `source` is the `[[sources]]` body after
/// `type = "imap"`.
fn write_config(dir: &Path, source: &str, rules: &str) -> String {
    let text = format!(
        "[daemon]\nstate_dir = \"state\"\n\n[[sources]]\nname = \"mail\"\ntype = \"imap\"\n{source}\n{rules}"
    );
    let path = dir.join("tillsyn.toml");
    std::fs::write(&path, text).expect("config");
    path.to_str().expect("utf8").to_owned()
}

fn accounts_file(dir: &Path, accounts: &[(&str, &str)]) -> String {
    let mut text = String::new();
    for (user, password) in accounts {
        text.push_str(&format!(
            "[[accounts]]\nuser = \"{user}\"\npassword = \"{password}\"\n"
        ));
    }
    let path = dir.join("accounts.toml");
    std::fs::write(&path, text).expect("accounts");
    path.to_str().expect("utf8").to_owned()
}

fn tls_source(server: &Dovecot, accounts: &str, ca: &str) -> String {
    format!(
        "host = \"localhost\"\nport = {}\nsecurity = \"tls\"\nca_file = \"{}\"\ntimeout_seconds = 10\nattempts = 1\n\
         auth = {{ method = \"password\", accounts_file = \"{accounts}\" }}\n",
        server.tls_port,
        server.path(ca).display()
    )
}

fn scan(config: &str) -> (std::process::Output, BTreeSet<String>) {
    let output = tillsyn(&["scan", "--once", "--config", config, "--format", "json"]);
    let found = pairs(&json_lines(&output));
    (output, found)
}

fn open_findings(config: &str) -> BTreeSet<String> {
    pairs(&json_lines(&tillsyn(&[
        "findings", "--open", "--config", config, "--format", "json",
    ])))
}

#[test]
fn finds_planted_mail_exactly_over_tls_and_changes_nothing() {
    let server = Dovecot::start(&[("anna", "anna-pw"), ("bo", "bo-pw")]);
    let mut planted = BTreeSet::new();
    let four_external = ["a@kund.se", "b@kund.se", "c@annan.se", "d@tredje.se"];
    let three_external = ["a@kund.se", "b@kund.se", "c@annan.se"];
    let mixed = [
        "a@kund.se",
        "x@firma.se",
        "y@sub.firma.se",
        "b@kund.se",
        "c@annan.se",
    ];
    {
        let mut anna = server.client("anna", "anna-pw");
        let uid = anna.append("INBOX", &message(&["anna@firma.se"], &[], RECENT, 1), 45);
        planted.insert(format!("stale-inbox:anna/INBOX/{uid}"));
        let uid = anna.append("INBOX", &message(&["anna@firma.se"], &[], RECENT, 2), 800);
        planted.insert(format!("stale-inbox:anna/INBOX/{uid}"));
        anna.append("INBOX", &message(&["anna@firma.se"], &[], RECENT, 3), 20);
        // Backdated only in its Date: header: received two days ago.
        anna.append("INBOX", &message(&["anna@firma.se"], &[], ANCIENT, 4), 2);
        // Stale and wide, in one message: two findings.
        let uid = anna.append(
            "INBOX",
            &message(&["anna@firma.se"], &four_external, RECENT, 5),
            60,
        );
        planted.insert(format!("stale-inbox:anna/INBOX/{uid}"));
        planted.insert(format!("wide-cc:anna/INBOX/{uid}"));
        anna.append(
            "INBOX",
            &message(&["anna@firma.se"], &three_external, RECENT, 6),
            1,
        );
        let uid = anna.append(
            "Sent",
            &message(&["kund@kund.se"], &four_external, RECENT, 7),
            300,
        );
        planted.insert(format!("wide-cc:anna/Sent/{uid}"));
        // Old mail outside the inbox is not stale; wide mail in Trash is out of scope.
        anna.append(
            "Trash",
            &message(&["anna@firma.se"], &four_external, ANCIENT, 8),
            900,
        );
    }
    {
        let mut bo = server.client("bo", "bo-pw");
        let uid = bo.append("INBOX", &message(&["bo@firma.se"], &[], RECENT, 9), 33);
        planted.insert(format!("stale-inbox:bo/INBOX/{uid}"));
        bo.append("INBOX", &message(&["bo@firma.se"], &[], RECENT, 10), 29);
        bo.append("Sent", &message(&["kund@kund.se"], &mixed, RECENT, 11), 3);
        let uid = bo.append(
            "Sent",
            &message(&["kund@kund.se"], &mixed[..4], RECENT, 12),
            3,
        );
        // Internal addresses are not counted: 2 external of 4; not wide.
        let _ = uid;
    }
    let mut anna_client = server.client("anna", "anna-pw");
    let mut bo_client = server.client("bo", "bo-pw");
    let mut snapshot = || -> Vec<Vec<String>> {
        let anna = ["INBOX", "Sent", "Trash"].map(|folder| anna_client.snapshot(folder));
        let bo = ["INBOX", "Sent"].map(|folder| bo_client.snapshot(folder));
        anna.into_iter().chain(bo).collect()
    };
    let before = snapshot();

    let dir = tempfile::tempdir().expect("tempdir");
    let accounts = accounts_file(dir.path(), &[("anna", "anna-pw"), ("bo", "bo-pw")]);
    let config = write_config(dir.path(), &tls_source(&server, &accounts, "ca.pem"), RULES);
    let (output, found) = scan(&config);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}\n{}", server.log());
    assert_exact(&found, &planted);
    assert!(
        !stderr.contains("anna-pw") && !stderr.contains("bo-pw"),
        "{stderr}"
    );

    // With only the Cc rule no date is asked for; the same mail breaks it.
    let cc_only = RULES
        .split("[[rules]]")
        .find(|rule| rule.contains("wide-cc"))
        .map(|rule| format!("[[rules]]{rule}"))
        .expect("the wide-cc rule");
    let cc_dir = tempfile::tempdir().expect("tempdir");
    let cc_accounts = accounts_file(cc_dir.path(), &[("anna", "anna-pw"), ("bo", "bo-pw")]);
    let cc_config = write_config(
        cc_dir.path(),
        &tls_source(&server, &cc_accounts, "ca.pem"),
        &cc_only,
    );
    let (output, found) = scan(&cc_config);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    let wide: BTreeSet<String> = planted
        .iter()
        .filter(|pair| pair.starts_with("wide-cc:"))
        .cloned()
        .collect();
    assert_exact(&found, &wide);

    let after = snapshot();
    assert_eq!(
        before, after,
        "the scan changed flags, UIDs or HIGHESTMODSEQ"
    );
    assert!(
        before.iter().flatten().all(|line| !line.contains("\\Seen")),
        "planted mail is unread, and stays so"
    );
}

#[test]
fn tls_starttls_master_user_and_clear_failures() {
    let server = Dovecot::start(&[("anna", "anna-pw"), ("bo", "bo-pw")]);
    {
        let mut anna = server.client("anna", "anna-pw");
        anna.append("INBOX", &message(&["anna@firma.se"], &[], RECENT, 1), 90);
        let mut bo = server.client("bo", "bo-pw");
        bo.append("INBOX", &message(&["bo@firma.se"], &[], RECENT, 2), 90);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let good = accounts_file(dir.path(), &[("anna", "anna-pw"), ("bo", "bo-pw")]);
    let expected: BTreeSet<String> = [
        "stale-inbox:anna/INBOX/1".to_owned(),
        "stale-inbox:bo/INBOX/1".to_owned(),
    ]
    .into();

    // STARTTLS on the plain port, verified against the test CA.
    let starttls = format!(
        "host = \"127.0.0.1\"\nport = {}\nsecurity = \"starttls\"\nca_file = \"{}\"\nattempts = 1\n\
         auth = {{ method = \"password\", accounts_file = \"{good}\" }}\n",
        server.port,
        server.path("ca.pem").display()
    );
    let config = write_config(dir.path(), &starttls, RULES);
    let (output, found) = scan(&config);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    assert_exact(&found, &expected);

    // The Dovecot master user reads both mailboxes with one secret.
    std::fs::write(dir.path().join("master.pw"), "master-secret\n").expect("pw");
    let master = format!(
        "host = \"localhost\"\nport = {}\nca_file = \"{}\"\nattempts = 1\n\
         auth = {{ method = \"master\", master_user = \"tillsyn-master\", password_file = \"master.pw\", users = [\"anna\", \"bo\"] }}\n",
        server.tls_port,
        server.path("ca.pem").display()
    );
    let config = write_config(dir.path(), &master, RULES);
    let (output, found) = scan(&config);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    assert_exact(&found, &expected);

    // Plain IMAP is refused unless allowed, at config time.
    let plain = format!(
        "host = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\n\
         auth = {{ method = \"password\", accounts_file = \"{good}\" }}\n",
        server.port
    );
    let config = write_config(dir.path(), &plain, RULES);
    let check = tillsyn(&["check-config", "--config", &config]);
    assert_eq!(check.status.code(), Some(3));
    assert!(
        text(&check).0.contains("allow_plaintext"),
        "{:?}",
        text(&check)
    );

    // From here on the store holds the two findings; failures must keep them.
    let config = write_config(dir.path(), &tls_source(&server, &good, "ca.pem"), RULES);
    let (output, _) = scan(&config);
    assert_eq!(output.status.code(), Some(0));
    let failures: [(&str, String, &[&str]); 3] = [
        (
            "wrong CA",
            tls_source(&server, &good, "other-ca.pem"),
            &["account anna", "account bo", "certificate"],
        ),
        (
            "wrong password",
            tls_source(
                &server,
                &accounts_file(dir.path(), &[("anna", "nope"), ("bo", "nope")]),
                "ca.pem",
            ),
            &["account anna", "account bo", "login refused"],
        ),
        (
            "server down",
            tls_source(&server, &good, "ca.pem").replace(&server.tls_port.to_string(), "1"),
            &["account anna", "cannot connect"],
        ),
    ];
    for (case, source, words) in failures {
        let config = write_config(dir.path(), &source, RULES);
        let started = std::time::Instant::now();
        let output = tillsyn(&["scan", "--once", "--config", &config]);
        let (_, stderr) = text(&output);
        eprintln!("{case} ({:?}): {stderr}", started.elapsed());
        assert_eq!(output.status.code(), Some(2), "{case}: {stderr}");
        assert!(stderr.contains("FAILED"), "{case}: {stderr}");
        for word in words {
            assert!(
                stderr.contains(word),
                "{case}: {word:?} missing in {stderr}"
            );
        }
        assert!(
            !stderr.contains("nope") && !stderr.contains("anna-pw"),
            "{case}: secret in {stderr}"
        );
        // The operator's output names the accounts; the log line does not.
        let log: Vec<&str> = stderr
            .lines()
            .filter(|line| line.contains("Scan failed."))
            .collect();
        assert_eq!(log.len(), 1, "{case}: {stderr}");
        assert!(
            !log[0].contains("anna") && !log[0].contains("bo:"),
            "{case}: account in log {log:?}"
        );
        assert_exact(&open_findings(&config), &expected);
    }

    // One account failing: the other is read, the failed one keeps its findings.
    let half = accounts_file(dir.path(), &[("anna", "anna-pw"), ("bo", "wrong")]);
    let config = write_config(dir.path(), &tls_source(&server, &half, "ca.pem"), RULES);
    {
        let mut anna = server.client("anna", "anna-pw");
        anna.expunge("INBOX", 1);
    }
    let output = tillsyn(&["scan", "--once", "--config", &config]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("PARTIAL") && stderr.contains("account bo: login refused"),
        "{stderr}"
    );
    assert_exact(
        &open_findings(&config),
        &BTreeSet::from(["stale-inbox:bo/INBOX/1".to_owned()]),
    );
}

/// `count` messages written straight into `user`'s Maildir (Dovecot's
/// INTERNALDATE is the file's mtime): message `n` is `age(n)` days old and has
/// `cc(n)` Cc addresses outside firma.se.
fn bulk_mail(
    server: &Dovecot,
    user: &str,
    count: u32,
    age: impl Fn(u32) -> u64,
    cc: impl Fn(u32) -> usize,
) {
    let mut mailbox = Mailbox::new(&server.homes(), user);
    let external: Vec<String> = (0..8).map(|n| format!("k{n}@kund{n}.se")).collect();
    for n in 0..count {
        let cc: Vec<&str> = external.iter().take(cc(n)).map(String::as_str).collect();
        let text = message(&[&format!("{user}@firma.se")], &cc, RECENT, n);
        mailbox.raw((user, "INBOX"), &text, days_ago(age(n)));
    }
    server.fix_ownership();
}

/// Anna's Sent folder over plain IMAP on loopback (`anna` / `anna-pw`).
fn anna_sent_source(dir: &Path, port: u16) -> String {
    let accounts = accounts_file(dir, &[("anna", "anna-pw")]);
    format!(
        "{}folders = [\"\\\\Sent\"]\n",
        plain_source(port, &accounts)
    )
}

fn plain_source(port: u16, accounts: &str) -> String {
    format!(
        "host = \"127.0.0.1\"\nport = {port}\nsecurity = \"plain\"\nallow_plaintext = true\n\
         timeout_seconds = 5\nattempts = 2\nfetch_batch = 200\n\
         auth = {{ method = \"password\", accounts_file = \"{accounts}\" }}\n"
    )
}

#[test]
fn a_server_killed_mid_scan_fails_the_scan_and_the_next_scan_completes() {
    let mut server = Dovecot::start(&[("anna", "anna-pw")]);
    bulk_mail(
        &server,
        "anna",
        3000,
        |n| if n % 10 == 0 { 90 } else { 2 },
        |n| if n % 100 == 0 { 5 } else { 1 },
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let accounts = accounts_file(dir.path(), &[("anna", "anna-pw")]);
    let proxy = Proxy::start(server.port, 100_000);
    let config = write_config(dir.path(), &plain_source(proxy.port, &accounts), RULES);

    let child = std::process::Command::new(env!("CARGO_BIN_EXE_tillsyn"))
        .args(["scan", "--once", "--config", &config])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !proxy.tripped.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(std::time::Instant::now() < deadline, "scan never got going");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    server.kill();
    let output = child.wait_with_output().expect("wait");
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("FAILED") && stderr.contains("account p-"),
        "{stderr}"
    );

    server.restart();
    let config = write_config(dir.path(), &plain_source(server.port, &accounts), RULES);
    let (output, found) = scan(&config);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        found
            .iter()
            .filter(|f| f.starts_with("stale-inbox:"))
            .count(),
        300,
        "{stderr}"
    );
    assert_eq!(
        found.iter().filter(|f| f.starts_with("wide-cc:")).count(),
        30,
        "{stderr}"
    );
}

#[test]
fn rescans_fetch_only_what_changed_and_expunged_mail_resolves() {
    let server = Dovecot::start(&[("anna", "anna-pw")]);
    // 10,000 messages: every 50th is stale, every 500th is copied widely.
    bulk_mail(
        &server,
        "anna",
        10_000,
        |n| if n % 50 == 0 { 40 } else { 3 },
        |n| if n % 500 == 0 { 4 } else { 0 },
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let accounts = accounts_file(dir.path(), &[("anna", "anna-pw")]);
    let config = write_config(dir.path(), &plain_source(server.port, &accounts), RULES);

    let (output, first) = scan(&config);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(work(&stderr, "headers_fetched"), 10_000, "{stderr}");
    assert_eq!(
        first
            .iter()
            .filter(|f| f.starts_with("stale-inbox:"))
            .count(),
        200
    );
    assert_eq!(
        first.iter().filter(|f| f.starts_with("wide-cc:")).count(),
        20
    );

    // Ten new messages, one of them wide; one old violating message expunged.
    let mut client = server.client("anna", "anna-pw");
    let mut expected = first.clone();
    for n in 0..10 {
        let cc: &[&str] = if n == 0 {
            &["a@x.se", "b@x.se", "c@y.se", "d@z.se"]
        } else {
            &[]
        };
        let uid = client.append(
            "INBOX",
            &message(&["anna@firma.se"], cc, RECENT, 20_000 + n),
            1,
        );
        if n == 0 {
            expected.insert(format!("wide-cc:anna/INBOX/{uid}"));
        }
    }
    let victim = first
        .iter()
        .find(|f| f.starts_with("wide-cc:"))
        .and_then(|f| f.rsplit('/').next())
        .and_then(|uid| uid.parse::<u32>().ok())
        .expect("a wide-cc finding");
    client.expunge("INBOX", victim);
    let gone: BTreeSet<String> = first
        .iter()
        .filter(|f| f.ends_with(&format!("/INBOX/{victim}")))
        .cloned()
        .collect();
    // Every 500th message is also stale: both of its findings go.
    assert_eq!(gone.len(), 2, "{gone:?}");
    expected.retain(|f| !gone.contains(f));

    let output = tillsyn(&["scan", "--once", "--config", &config]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        work(&stderr, "headers_fetched"),
        10,
        "only the new mail: {stderr}"
    );
    assert_exact(&open_findings(&config), &expected);
    let resolved = pairs(&json_lines(&tillsyn(&[
        "findings",
        "--resolved",
        "--config",
        &config,
        "--format",
        "json",
    ])));
    assert_exact(&resolved, &gone);

    // Nothing changed: nothing fetched, nothing resolved.
    let output = tillsyn(&["scan", "--once", "--config", &config]);
    let (_, stderr) = text(&output);
    assert_eq!(work(&stderr, "headers_fetched"), 0, "{stderr}");
    assert!(stderr.contains("0 new, 0 resolved"), "{stderr}");
    assert_exact(&open_findings(&config), &expected);

    // A new UIDVALIDITY (the server rebuilt its UID list): a full read again.
    let maildir = server.homes().join("anna/Maildir");
    for entry in std::fs::read_dir(&maildir).expect("maildir").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("dovecot") {
            let _ = std::fs::remove_file(entry.path())
                .or_else(|_| std::fs::remove_dir_all(entry.path()));
        }
    }
    let output = tillsyn(&["scan", "--once", "--config", &config]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(work(&stderr, "headers_fetched"), 10_009, "{stderr}");
}

#[test]
fn malformed_mail_is_scanned_without_harm() {
    let server = Dovecot::start(&[("anna", "anna-pw")]);
    let mut client = server.client("anna", "anna-pw");
    let mut huge = b"X-Filler: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 100 * 1024));
    huge.extend_from_slice(b"\r\nCc: a@x.se, b@x.se, c@y.se, d@z.se\r\n\r\nbody");
    let corpus: Vec<Vec<u8>> = vec![
        b"From: J\xf6rg <j@x.se>\r\nTo: \xe5\xe4\xf6@x.se\r\nCc: =?utf-8?B?!!!?= <a@x.se>, =?iso-8859-1?Q?J=F6rg?= <b@x.se>,\r\n c@y.se, d@z.se\r\n\r\nbody".to_vec(),
        b"Subject: no addresses at all\r\n\r\nbody".to_vec(),
        b"\x00\x01\x02 binary junk with no header".to_vec(),
        huge,
        b"Cc: undisclosed-recipients:;\r\n\r\n".to_vec(),
        b"Cc: \"unterminated <a@x.se\r\n\r\n".to_vec(),
    ];
    let mut wide = BTreeSet::new();
    for (n, raw) in corpus.iter().enumerate() {
        let uid = client.append("INBOX", raw, 1);
        if n == 0 || n == 3 {
            wide.insert(format!("wide-cc:anna/INBOX/{uid}"));
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let accounts = accounts_file(dir.path(), &[("anna", "anna-pw")]);
    let config = write_config(dir.path(), &plain_source(server.port, &accounts), RULES);
    let (output, found) = scan(&config);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("{} records", corpus.len())),
        "every message scanned: {stderr}"
    );
    assert_exact(&found, &wide);
}

#[test]
fn xoauth2_with_a_token_file_or_a_token_command() {
    let server = Dovecot::start(&[("anna", "anna-pw"), ("bo", "bo-pw")]);
    {
        let mut anna = server.client("anna", "anna-pw");
        anna.append("INBOX", &message(&["anna@firma.se"], &[], RECENT, 1), 90);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let expected = BTreeSet::from(["stale-inbox:anna/INBOX/1".to_owned()]);
    let source = |auth: &str| {
        format!(
            "host = \"localhost\"\nport = {}\nca_file = \"{}\"\nattempts = 1\nauth = {auth}\n",
            server.tls_port,
            server.path("ca.pem").display()
        )
    };

    std::fs::write(dir.path().join("token"), server.token("anna")).expect("token");
    let config = write_config(
        dir.path(),
        &source(r#"{ method = "xoauth2", users = ["anna"], token_file = "token" }"#),
        RULES,
    );
    let (output, found) = scan(&config);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{:?}\n{}",
        text(&output),
        server.log()
    );
    assert_exact(&found, &expected);

    // A command prints a fresh token per user; bo's has bo's name.
    let tokens = dir.path().join("tokens");
    std::fs::create_dir_all(&tokens).expect("dir");
    for user in ["anna", "bo"] {
        std::fs::write(tokens.join(user), server.token(user)).expect("token");
    }
    let auth = format!(
        r#"{{ method = "xoauth2", users = ["anna", "bo"], token_command = ["cat", "{}/{{user}}"] }}"#,
        tokens.display()
    );
    let config = write_config(dir.path(), &source(&auth), RULES);
    let (output, found) = scan(&config);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    assert_exact(&found, &expected);

    // A token for someone else is refused, and the token never shows.
    let wrong = server.token("bo");
    std::fs::write(dir.path().join("token"), &wrong).expect("token");
    let config = write_config(
        dir.path(),
        &source(r#"{ method = "xoauth2", users = ["anna"], token_file = "token" }"#),
        RULES,
    );
    let output = tillsyn(&["scan", "--once", "--config", &config]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("account anna: login refused"), "{stderr}");
    assert!(!stderr.contains(&wrong) && !stdout.contains(&wrong));
}

#[test]
fn a_message_that_becomes_due_between_two_incremental_scans_is_found() {
    let server = Dovecot::start(&[("anna", "anna-pw")]);
    let mut client = server.client("anna", "anna-pw");
    client.append("INBOX", &message(&["anna@firma.se"], &[], RECENT, 1), 40);
    // Received just now: not due under a 3-second rule yet.
    let young = client.append("INBOX", &message(&["anna@firma.se"], &[], RECENT, 2), 0);
    let dir = tempfile::tempdir().expect("tempdir");
    let accounts = accounts_file(dir.path(), &[("anna", "anna-pw")]);
    let rules = RULES.replace("max_age = \"31d\"", "max_age = \"3s\"");
    let config = write_config(dir.path(), &plain_source(server.port, &accounts), &rules);
    let (output, first) = scan(&config);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    assert_eq!(
        first,
        BTreeSet::from(["stale-inbox:anna/INBOX/1".to_owned()])
    );

    // Time passes; nothing in the mailbox changes. The rescan is incremental
    // (no headers fetched) and still finds the message that became due.
    std::thread::sleep(std::time::Duration::from_secs(4));
    let output = tillsyn(&["scan", "--once", "--config", &config]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(work(&stderr, "headers_fetched"), 0, "{stderr}");
    assert_exact(
        &open_findings(&config),
        &BTreeSet::from([
            "stale-inbox:anna/INBOX/1".to_owned(),
            format!("stale-inbox:anna/INBOX/{young}"),
        ]),
    );
}

#[test]
fn a_folder_without_uidvalidity_is_read_in_full_every_time() {
    let server = Dovecot::start(&[("anna", "anna-pw")]);
    let mut anna = server.client("anna", "anna-pw");
    anna.command("CREATE Arkiv");
    anna.append("Arkiv", &message(&["anna@firma.se"], &[], RECENT, 1), 90);
    anna.append("Arkiv", &message(&["anna@firma.se"], &[], RECENT, 2), 90);
    // A server that never says UIDVALIDITY or UIDNEXT.
    let proxy = LineFilterProxy::start(server.port, &["[UIDVALIDITY ", "[UIDNEXT "]);
    let dir = tempfile::tempdir().expect("tempdir");
    let accounts = accounts_file(dir.path(), &[("anna", "anna-pw")]);
    let rules = RULES.replace("folders = [\"INBOX\"]", "folders = [\"Arkiv\"]");
    let source = format!(
        "{}folders = [\"Arkiv\"]\n",
        plain_source(proxy.port, &accounts)
    );
    let config = write_config(dir.path(), &source, &rules);
    let (output, found) = scan(&config);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(work(&stderr, "folders_without_uidvalidity"), 1, "{stderr}");
    let first: BTreeSet<String> = [
        "stale-inbox:anna/Arkiv/1".to_owned(),
        "stale-inbox:anna/Arkiv/2".to_owned(),
    ]
    .into();
    assert_exact(&found, &first);

    // The folder is deleted and made anew: UIDs start again from 1, and no
    // UIDVALIDITY says so. Message 1 is old again, message 2 is new.
    anna.command("DELETE Arkiv");
    anna.command("CREATE Arkiv");
    anna.append("Arkiv", &message(&["anna@firma.se"], &[], RECENT, 3), 90);
    anna.append("Arkiv", &message(&["anna@firma.se"], &[], RECENT, 4), 1);
    let (output, found) = scan(&config);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("incremental"), "{stderr}");
    assert_exact(&found, &["stale-inbox:anna/Arkiv/1".to_owned()].into());
}

const CONTENT_RULE: &str = r#"
[[rules]]
id = "P3-personnummer-in-mail"
kind = "contains"
policy = "i så liten utsträckning som möjligt skicka personuppgifter per mail"
detectors = ["personnummer"]
when = { folders = ["\\Sent"] }
"#;

fn with_body(id: u32, content_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Anna <anna@firma.se>\r\nTo: kund@example.org\r\nSubject: ärende {id}\r\n\
         Date: Mon, 2 Nov 2026 10:00:00 +0100\r\nMessage-ID: <c{id}@test>\r\nMIME-Version: 1.0\r\n\
         {content_headers}\r\n{body}"
    )
    .into_bytes()
}

#[test]
fn content_is_read_with_peek_and_only_for_new_mail() {
    let server = Dovecot::start(&[("anna", "anna-pw")]);
    let mut anna = server.client("anna", "anna-pw");
    let mut planted = BTreeSet::new();
    let plant = |anna: &mut common::dovecot::RawImap,
                 planted: &mut BTreeSet<String>,
                 id: u32,
                 headers: &str,
                 body: &str,
                 hit: bool| {
        let message = with_body(id, headers, body);
        let uid = anna.append("Sent", &message, 3);
        if hit {
            planted.insert(format!("P3-personnummer-in-mail:anna/Sent/{uid}"));
        }
        message.len() as u64
    };
    let plain = PLAIN_TEXT;
    let mut sent_bytes = plant(
        &mut anna,
        &mut planted,
        1,
        plain,
        "Personnummer 19811218-9876.\r\n",
        true,
    );
    sent_bytes += plant(
        &mut anna,
        &mut planted,
        2,
        "Content-Type: multipart/mixed; boundary=\"b\"\r\n",
        "--b\r\nContent-Type: text/plain\r\n\r\nSe bilagan.\r\n--b\r\n\
         Content-Type: text/csv; name=\"lista.csv\"\r\nContent-Disposition: attachment; filename=\"lista.csv\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\nTmFtbjtQTlIKQW5uYTs4MTEyMTgtOTg3Ngo=\r\n--b--\r\n",
        true,
    );
    sent_bytes += plant(
        &mut anna,
        &mut planted,
        3,
        plain,
        "Orgnr 556677-8899, fakturanr 811218-9876.\r\n",
        false,
    );
    sent_bytes += plant(
        &mut anna,
        &mut planted,
        4,
        plain,
        "Ring 070-123 45 67.\r\n",
        false,
    );
    // The inbox is not the rule's.
    anna.append(
        "INBOX",
        &with_body(5, plain, "Personnummer 19811218-9876.\r\n"),
        3,
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let accounts = accounts_file(dir.path(), &[("anna", "anna-pw")]);
    let source = format!(
        "{}folders = [\"INBOX\", \"\\\\Sent\"]\n",
        plain_source(server.port, &accounts)
    );
    let config = write_config(dir.path(), &source, CONTENT_RULE);
    let before = anna.snapshot("Sent");
    let (output, found) = scan(&config);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_exact(&found, &planted);
    // The four in Sent; the inbox is no content rule's, so it is not read.
    assert_eq!(work(&stderr, "messages_content_read"), 4, "{stderr}");
    // What the server sent is counted: at least the four messages whole.
    let first_bytes = work(&stderr, "bytes_received");
    assert!(
        first_bytes >= sent_bytes,
        "{first_bytes} < {sent_bytes}: {stderr}"
    );
    // BODY.PEEK only: no flag, no MODSEQ moved.
    assert_eq!(
        before,
        anna.snapshot("Sent"),
        "the scan changed the mailbox"
    );
    assert!(
        before.iter().all(|line| !line.contains("\\Seen")),
        "planted mail is unread, and stays so"
    );

    // Three new messages, one of them with a number: only they are read.
    plant(
        &mut anna,
        &mut planted,
        6,
        plain,
        "Här är mitt pnr 811218-9876.\r\n",
        true,
    );
    plant(&mut anna, &mut planted, 7, plain, "Inget här.\r\n", false);
    plant(
        &mut anna,
        &mut planted,
        8,
        plain,
        "Datum 2026-11-30.\r\n",
        false,
    );
    let (output, _) = scan(&config);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(work(&stderr, "messages_content_read"), 3, "{stderr}");
    assert_exact(&open_findings(&config), &planted);
    // Unchanged: nothing is read again, and the traffic shows it: the
    // session's answers only, the first scan's less at least the messages.
    let (output, _) = scan(&config);
    let (_, stderr) = text(&output);
    assert_eq!(work(&stderr, "messages_content_read"), 0, "{stderr}");
    let unchanged_bytes = work(&stderr, "bytes_received");
    assert!(
        unchanged_bytes > 0 && unchanged_bytes + sent_bytes <= first_bytes,
        "unchanged {unchanged_bytes}, messages {sent_bytes}, first {first_bytes}: {stderr}"
    );
    assert_exact(&open_findings(&config), &planted);
}

#[test]
fn a_content_rule_on_message_attributes_still_reads_its_folder() {
    let server = Dovecot::start(&[("anna", "anna-pw")]);
    let mut anna = server.client("anna", "anna-pw");
    let plain = PLAIN_TEXT;
    let uid = anna.append(
        "Sent",
        &with_body(1, plain, "Personnummer 19811218-9876.\r\n"),
        3,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let source = anna_sent_source(dir.path(), server.port);
    // `present` names a per-message attribute, unknown before the fetch: the
    // folder is read all the same, and the message judged on what it has.
    let rule = CONTENT_RULE.replace(
        "when = { folders = [\"\\\\Sent\"] }",
        "when = { folders = [\"\\\\Sent\"], present = [\"size_bytes\"] }",
    );
    assert_ne!(rule, CONTENT_RULE);
    let config = write_config(dir.path(), &source, &rule);
    let (output, found) = scan(&config);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    assert_exact(
        &found,
        &[format!("P3-personnummer-in-mail:anna/Sent/{uid}")].into(),
    );
}

#[test]
fn mail_dated_again_is_not_read_again_and_its_content_findings_stay() {
    let server = Dovecot::start(&[("anna", "anna-pw")]);
    let mut anna = server.client("anna", "anna-pw");
    let plain = PLAIN_TEXT;
    // Received now: young under a 3-second rule, and holding a number.
    let young = anna.append(
        "Sent",
        &with_body(1, plain, "Personnummer 19811218-9876.\r\n"),
        0,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let source = anna_sent_source(dir.path(), server.port);
    let rules = format!(
        "{CONTENT_RULE}\n[[rules]]\nid = \"stale-sent\"\nkind = \"max_age\"\npolicy = \"p\"\n\
         max_age = \"3s\"\ntimestamp = \"received\"\n"
    );
    let config = write_config(dir.path(), &source, &rules);
    let (output, first) = scan(&config);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(work(&stderr, "messages_content_read"), 1, "{stderr}");
    let p3 = format!("P3-personnummer-in-mail:anna/Sent/{young}");
    assert_exact(&first, &BTreeSet::from([p3.clone()]));

    // The message's age crosses the cutoff: it is dated again, its content is
    // not fetched again, and its P3 finding stays open beside the new one.
    std::thread::sleep(std::time::Duration::from_secs(4));
    let (output, _) = scan(&config);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(work(&stderr, "dates_fetched"), 1, "{stderr}");
    assert_eq!(work(&stderr, "messages_content_read"), 0, "{stderr}");
    assert_exact(
        &open_findings(&config),
        &BTreeSet::from([p3, format!("stale-sent:anna/Sent/{young}")]),
    );
}

#[test]
fn a_courier_style_layout_gives_the_same_paths_and_finds_sent_mail_by_its_name() {
    let server = Dovecot::start_courier_style(&[("anna", "pw-anna")]);
    let wide: Vec<String> = (0..5).map(|n| format!("k{n}@kund.se")).collect();
    let wide: Vec<&str> = wide.iter().map(String::as_str).collect();
    let mut client = server.client("anna", "pw-anna");
    for folder in ["INBOX.Skickat", "INBOX.Arkiv", "INBOX.Arkiv.2024"] {
        client.command(&format!("CREATE \"{folder}\""));
    }
    // Planted: an old message in the inbox (P1), a wide Cc in sent mail (P2).
    let stale = client.append("INBOX", &message(&["anna@firma.se"], &[], ANCIENT, 1), 90);
    client.append("INBOX", &message(&["anna@firma.se"], &[], ANCIENT, 2), 1);
    let sent = client.append(
        "INBOX.Skickat",
        &message(&["x@kund.se"], &wide, ANCIENT, 3),
        1,
    );
    client.append(
        "INBOX.Skickat",
        &message(&["x@kund.se"], &["y@kund.se"], ANCIENT, 4),
        1,
    );
    // Not read: an archive the config does not name, however old and wide.
    client.append(
        "INBOX.Arkiv.2024",
        &message(&["x@kund.se"], &wide, ANCIENT, 5),
        400,
    );
    drop(client);
    server.fix_ownership();
    let dir = tempfile::tempdir().expect("tempdir");
    let accounts = accounts_file(dir.path(), &[("anna", "pw-anna")]);
    let config = write_config(
        dir.path(),
        &format!(
            "{}folders = [\"INBOX\", \"\\\\Sent\"]\n",
            plain_source(server.port, &accounts)
        ),
        RULES,
    );
    let (output, found) = scan(&config);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_exact(
        &found,
        &BTreeSet::from([
            format!("stale-inbox:anna/INBOX/{stale}"),
            // `.` is written `/`, as on every other server.
            format!("wide-cc:anna/INBOX/Skickat/{sent}"),
        ]),
    );
    // A folder named as records show it, or as the server names it.
    for named in ["INBOX/Arkiv/2024", "INBOX.Arkiv.2024"] {
        let config = write_config(
            dir.path(),
            &format!(
                "{}folders = [\"{named}\"]\n",
                plain_source(server.port, &accounts)
            ),
            RULES
                .replace("[\"INBOX\", \"\\\\Sent\"]", "[\"INBOX/Arkiv/2024\"]")
                .as_str(),
        );
        let (output, _) = scan(&config);
        let (_, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(0), "{named}: {stderr}");
        assert!(
            open_findings(&config).contains("wide-cc:anna/INBOX/Arkiv/2024/1"),
            "{named}: {:?}",
            open_findings(&config)
        );
    }
}

#[test]
fn all_folders_of_a_gmail_style_layout_skip_all_mail_unless_it_is_named() {
    let server = Dovecot::start_gmail_style(&[("anna", "pw-anna")]);
    let wide: Vec<String> = (0..5).map(|n| format!("k{n}@kund.se")).collect();
    let wide: Vec<&str> = wide.iter().map(String::as_str).collect();
    let mut client = server.client("anna", "pw-anna");
    client.command("CREATE \"Kunder\"");
    // Each message under its label, and again in All Mail, as Gmail keeps it.
    let stale = client.append("INBOX", &message(&["anna@firma.se"], &[], ANCIENT, 1), 90);
    let labelled = client.append("Kunder", &message(&["x@kund.se"], &wide, ANCIENT, 2), 1);
    for id in [1, 2] {
        let copy = if id == 1 {
            message(&["anna@firma.se"], &[], ANCIENT, 1)
        } else {
            message(&["x@kund.se"], &wide, ANCIENT, 2)
        };
        client.append("[Gmail]/All Mail", &copy, if id == 1 { 90 } else { 1 });
    }
    drop(client);
    server.fix_ownership();
    let dir = tempfile::tempdir().expect("tempdir");
    let accounts = accounts_file(dir.path(), &[("anna", "pw-anna")]);
    let rules = RULES.replace(
        "when = { folders = [\"INBOX\", \"\\\\Sent\"] }",
        "when = { sources = [\"mail\"] }",
    );
    let scan_folders = |folders: &str| {
        let config = write_config(
            dir.path(),
            &format!(
                "{}folders = [{folders}]\n",
                plain_source(server.port, &accounts)
            ),
            &rules,
        );
        let (output, found) = scan(&config);
        let (_, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(0), "{folders}: {stderr}");
        found
    };
    assert_exact(
        &scan_folders("\"*\""),
        &BTreeSet::from([
            format!("stale-inbox:anna/INBOX/{stale}"),
            format!("wide-cc:anna/Kunder/{labelled}"),
        ]),
    );
    // Named, All Mail is read.
    let found = scan_folders("\"\\\\All\"");
    assert!(
        found.contains("wide-cc:anna/[Gmail]/All Mail/2"),
        "{found:?}"
    );
}

/// Custodian marks: with them allowed, a flagged message and one in the "keep"
/// folder are excepted ("marked by custodian") and not counted as broken; taking
/// the flag away makes the finding count again at the next scan; with marks
/// not allowed the same mailbox counts every one. The mailbox is unchanged by
/// the scans.
#[test]
fn messages_their_custodian_marked_as_kept_are_excepted_only_where_allowed() {
    let server = Dovecot::start(&[("anna", "anna-pw")]);
    let mut anna = server.client("anna", "anna-pw");
    anna.command("CREATE Beh&AOU-lls");
    let flagged = anna.append("INBOX", &message(&["anna@firma.se"], &[], RECENT, 1), 90);
    let plain = anna.append("INBOX", &message(&["anna@firma.se"], &[], RECENT, 2), 90);
    anna.command("SELECT INBOX");
    anna.command(&format!("UID STORE {flagged} +FLAGS.SILENT (\\Flagged)"));
    anna.command("UNSELECT");
    let kept = anna.append(
        "Beh&AOU-lls",
        &message(&["anna@firma.se"], &[], RECENT, 3),
        90,
    );
    let before = anna.snapshot("INBOX");
    let dir = tempfile::tempdir().expect("tempdir");
    let accounts = accounts_file(dir.path(), &[("anna", "anna-pw")]);
    let rules = RULES.replace(
        "when = { folders = [\"INBOX\"] }",
        "when = { folders = [\"INBOX\", \"Behålls\"] }",
    );
    let source = |marks: &str| {
        format!(
            "{}folders = [\"INBOX\", \"Behålls\"]\n{marks}",
            plain_source(server.port, &accounts)
        )
    };
    let excepted = |config: &str| -> BTreeMap<String, String> {
        json_lines(&tillsyn(&[
            "findings", "--config", config, "--format", "json",
        ]))
        .iter()
        .map(|line| {
            (
                line["record"].as_str().expect("record").to_owned(),
                line["excepted"]["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
    };
    let all_three = |marked: &[u32], kept_marked: bool| -> BTreeMap<String, String> {
        let reason = |yes: bool| if yes { "marked by custodian" } else { "" }.to_owned();
        BTreeMap::from([
            (
                format!("anna/INBOX/{flagged}"),
                reason(marked.contains(&flagged)),
            ),
            (format!("anna/INBOX/{plain}"), reason(false)),
            (format!("anna/Behålls/{kept}"), reason(kept_marked)),
        ])
    };

    // Allowed: the flagged one and the kept folder's are excepted.
    let allowed = write_config(
        dir.path(),
        &source("custodian_marks = { flagged = true, folders = [\"Behålls\"] }\n"),
        &rules,
    );
    let output = tillsyn(&["scan", "--once", "--config", &allowed]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("3 findings (3 new, 0 resolved, 1 open)"),
        "{stderr}"
    );
    assert_eq!(excepted(&allowed), all_three(&[flagged], true));
    assert_eq!(anna.snapshot("INBOX"), before, "the scan changed nothing");

    // The custodian takes the flag away: the next scan counts it again.
    anna.command("SELECT INBOX");
    anna.command(&format!("UID STORE {flagged} -FLAGS.SILENT (\\Flagged)"));
    anna.command("UNSELECT");
    let unflagged = anna.snapshot("INBOX");
    let output = tillsyn(&["scan", "--once", "--config", &allowed]);
    let (_, stderr) = text(&output);
    assert!(stderr.contains("0 resolved, 2 open)"), "{stderr}");
    assert_eq!(excepted(&allowed), all_three(&[], true));
    assert_eq!(
        anna.snapshot("INBOX"),
        unflagged,
        "the scan changed nothing"
    );

    // Not allowed: a fresh store counts all three, marks or not.
    std::fs::remove_dir_all(dir.path().join("state")).expect("state");
    anna.command("SELECT INBOX");
    anna.command(&format!("UID STORE {flagged} +FLAGS.SILENT (\\Flagged)"));
    anna.command("UNSELECT");
    let flagged_again = anna.snapshot("INBOX");
    let not_allowed = write_config(dir.path(), &source(""), &rules);
    let output = tillsyn(&["scan", "--once", "--config", &not_allowed]);
    let (_, stderr) = text(&output);
    assert!(
        stderr.contains("3 findings (3 new, 0 resolved, 3 open)"),
        "{stderr}"
    );
    assert_eq!(excepted(&not_allowed), all_three(&[], false));
    assert_eq!(
        anna.snapshot("INBOX"),
        flagged_again,
        "the scan changed nothing"
    );
}

/// The records checked per rule, as the last finished scans counted them.
fn checked(dir: &Path) -> BTreeMap<String, (u64, usize, bool)> {
    let store = tillsyn_store::Store::open(&dir.join("state")).expect("store");
    store
        .checked_counts()
        .expect("counts")
        .into_iter()
        .map(|row| (row.rule, (row.records, row.custodians.len(), row.complete)))
        .collect()
}

/// The rate the report states for `rule`: its "In breach" line.
fn report_rate(dir: &Path, config: &str, rule: &str) -> String {
    let out = dir.join("report");
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let output = tillsyn(&[
        "report",
        "--config",
        config,
        "--month",
        &month,
        "--out",
        &out.display().to_string(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    let report = std::fs::read_to_string(out.join("report.txt")).expect("report");
    let section = report
        .split(&format!("\n{rule}: "))
        .nth(1)
        .unwrap_or_else(|| panic!("no {rule} in {report}"));
    section
        .lines()
        .find_map(|line| line.trim().strip_prefix("In breach: "))
        .unwrap_or_else(|| panic!("no rate for {rule} in {report}"))
        .to_owned()
}

/// Every inbox message counts as checked by the inbox rule, also those the
/// server's search never handed over (only the old ones are fetched) and
/// those an incremental rescan carries; the report states the share.
#[test]
fn every_message_in_a_checked_folder_counts_toward_the_rate() {
    let server = Dovecot::start(&[("anna", "anna-pw"), ("bo", "bo-pw")]);
    // Anna: 30 inbox messages, every 10th stale. Bo: 20, none stale.
    bulk_mail(
        &server,
        "anna",
        30,
        |n| if n % 10 == 0 { 90 } else { 2 },
        |_| 0,
    );
    bulk_mail(&server, "bo", 20, |_| 2, |_| 0);
    let dir = tempfile::tempdir().expect("tempdir");
    let accounts = accounts_file(dir.path(), &[("anna", "anna-pw"), ("bo", "bo-pw")]);
    // The inbox rule alone (no CC rule: then only dates are asked for).
    let inbox_rule = RULES.split("[[rules]]").nth(1).expect("the inbox rule");
    let rules = format!("[[rules]]{inbox_rule}\n[report]\nlanguage = \"en\"\n");
    let config = write_config(dir.path(), &plain_source(server.port, &accounts), &rules);
    let (output, found) = scan(&config);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(found.len(), 3, "{found:?}");
    // Only the candidates the server's search picked were sent.
    assert_eq!(
        work(&stderr, "headers_fetched") + work(&stderr, "dates_fetched"),
        3,
        "{stderr}"
    );
    assert_eq!(
        checked(dir.path()),
        BTreeMap::from([("stale-inbox".to_owned(), (50, 2, true))])
    );
    assert_eq!(
        report_rate(dir.path(), &config, "stale-inbox"),
        "3 of 50 messages (6 %) in 1 of 2 mailboxes."
    );

    // An incremental rescan carries everything: the count stands. A new
    // message in Bo's inbox counts too.
    let output = tillsyn(&["scan", "--once", "--config", &config]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    assert_eq!(checked(dir.path())["stale-inbox"], (50, 2, true));
    let mut client = server.client("bo", "bo-pw");
    client.append("INBOX", &message(&["bo@firma.se"], &[], RECENT, 99), 1);
    let output = tillsyn(&["scan", "--once", "--config", &config]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    assert_eq!(checked(dir.path())["stale-inbox"], (51, 2, true));
}
