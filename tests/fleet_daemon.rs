//! Three `tillsyn run` instances from one config, sharing one real PostgreSQL
//! and the work of one real Dovecot with 60 accounts (issue 16).
//!
//! First, all three together: every account is scanned exactly once for the
//! tick (counted by Dovecot's own login log, so a scan run twice, at once or
//! one after the other, would show), the planted findings are exact per
//! account and rule, every instance exports the same open violations, and
//! the monthly report is mailed once. Then, in a fresh database, one
//! instance is killed with SIGKILL while it holds leases: the other two take
//! its accounts over once the leases run out, its scans left `running` are
//! failed, and no finding is resolved.
//!
//! The instances differ only in `--listen` (they run on one host here).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::daemon::{Daemon, wait_for};
use common::dovecot::{Dovecot, message};
use common::postgres::{Postgres, USER};
use common::process::free_port;
use common::smtp::SmtpSink;
use common::{Mailbox, days_ago, json_lines, tillsyn};

const ACCOUNTS: usize = 60;
/// Messages in every inbox that break no rule.
const QUIET: u32 = 150;
const LEASE_SECONDS: u64 = 4;
/// Logins in one scan of an account reading INBOX and \Sent: one to find
/// the folders, one to read them (see `connectors/src/imap/folder.rs`).
const LOGINS_PER_SCAN: usize = 2;
const RECENT: &str = "Mon, 2 Nov 2026 10:00:00 +0000";

fn account(n: usize) -> String {
    format!("u{n:02}")
}

/// Findings planted in account `n`: two stale messages in every fourth
/// account, one copied too widely in every fifth.
fn planted(n: usize) -> (usize, usize) {
    (
        if n.is_multiple_of(4) { 2 } else { 0 },
        usize::from(n.is_multiple_of(5)),
    )
}

/// The expected open findings, as (rule, account) → count.
fn expected() -> BTreeMap<(String, String), usize> {
    let mut expected = BTreeMap::new();
    for n in 0..ACCOUNTS {
        let (stale, wide) = planted(n);
        if stale > 0 {
            expected.insert(("stale-inbox".to_owned(), account(n)), stale);
        }
        if wide > 0 {
            expected.insert(("wide-cc".to_owned(), account(n)), wide);
        }
    }
    expected
}

fn plant(server: &Dovecot) {
    for n in 0..ACCOUNTS {
        let user = account(n);
        let mut mailbox = Mailbox::new(&server.homes(), &user);
        let to = format!("{user}@firma.se");
        let mut id = 0;
        let mut deliver = |cc: &[&str], days: u64| {
            id += 1;
            let text = message(&[&to], cc, RECENT, id);
            mailbox.raw((&user, "INBOX"), &text, days_ago(days));
        };
        for _ in 0..QUIET {
            deliver(&["k@kund.se"], 2);
        }
        let (stale, wide) = planted(n);
        for _ in 0..stale {
            deliver(&[], 90);
        }
        for _ in 0..wide {
            deliver(&["a@kund.se", "b@kund.se", "c@annan.se", "d@tredje.se"], 3);
        }
    }
    server.fix_ownership();
}

/// One config for every instance: the store and the fleet, the IMAP source,
/// two rules, and (with `smtp_port`) the monthly report.
fn write_config(
    dir: &Path,
    postgres: &Postgres,
    database: &str,
    imap_port: u16,
    smtp_port: Option<u16>,
) -> std::path::PathBuf {
    let mut accounts = String::new();
    for n in 0..ACCOUNTS {
        accounts.push_str(&format!(
            "[[accounts]]\nuser = \"{}\"\npassword = \"pw-{n}\"\n",
            account(n)
        ));
    }
    std::fs::write(dir.join("accounts.toml"), accounts).expect("accounts");
    let report = smtp_port.map_or_else(String::new, |port| {
        format!(
            r#"
[report]
language = "en"
organisation = "Exempel AB"
sender = "tillsyn@exempel.se"
recipients = ["ledningen@exempel.se"]
retry_seconds = 1

[report.smtp]
host = "127.0.0.1"
port = {port}
security = "plain"
allow_plaintext = true
"#
        )
    });
    let text = format!(
        r#"
[daemon]
state_dir = "state"

[store]
url = "postgres://{USER}@127.0.0.1:{pg_port}/{database}"
password_file = "{password_file}"

[fleet]
lease_seconds = {LEASE_SECONDS}
units_at_once = 2

[[sources]]
name = "mail"
type = "imap"
schedule = "0 0 3 * * *"
host = "127.0.0.1"
port = {imap_port}
security = "plain"
allow_plaintext = true
timeout_seconds = 10
auth = {{ method = "password", accounts_file = "accounts.toml" }}

[[rules]]
id = "stale-inbox"
kind = "max_age"
policy = "The inbox is emptied in the monthly routine."
max_age = "31d"
timestamp = "received"
when = {{ folders = ["INBOX"] }}

[[rules]]
id = "wide-cc"
kind = "max_recipients"
policy = "We minimise CC."
max = 3
exclude_domains = ["firma.se"]
when = {{ folders = ["INBOX"] }}
{report}"#,
        pg_port = postgres.port,
        password_file = postgres.password_file().display(),
    );
    let path = dir.join(format!("{database}.toml"));
    std::fs::write(&path, text).expect("config");
    path
}

fn start(config: &Path, dir: &Path) -> Daemon {
    let port = free_port();
    Daemon::start_with_args(
        config,
        port,
        dir,
        &[],
        &["--listen", &format!("127.0.0.1:{port}")],
    )
}

/// Open findings as (rule, account) → count, through `tillsyn findings`.
fn open_findings(config: &Path) -> BTreeMap<(String, String), usize> {
    let output = tillsyn(&[
        "findings",
        "--open",
        "--config",
        config.to_str().expect("utf8"),
        "--format",
        "json",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut found = BTreeMap::new();
    for finding in json_lines(&output) {
        let rule = finding["rule"].as_str().expect("rule").to_owned();
        let path = finding["record"].as_str().expect("record");
        let account = path.split('/').next().expect("account").to_owned();
        *found.entry((rule, account)).or_insert(0) += 1;
    }
    found
}

/// Successful IMAP logins per account in Dovecot's log.
fn logins(server: &Dovecot) -> BTreeMap<String, usize> {
    let mut logins = BTreeMap::new();
    for line in server.log().lines() {
        if let Some(rest) = line.split("Login: user=<").nth(1)
            && let Some(user) = rest.split('>').next()
        {
            *logins.entry(user.to_owned()).or_insert(0) += 1;
        }
    }
    logins
}

fn minus(
    after: &BTreeMap<String, usize>,
    before: &BTreeMap<String, usize>,
) -> BTreeMap<String, usize> {
    after
        .iter()
        .map(|(user, count)| (user.clone(), count - before.get(user).copied().unwrap_or(0)))
        .filter(|(_, count)| *count > 0)
        .collect()
}

/// Stop an instance as systemd would, and see it exit cleanly.
fn stop(instance: &mut Daemon) {
    instance.signal(libc::SIGTERM);
    assert_eq!(
        instance.wait_exit().code(),
        Some(0),
        "{}",
        instance.log_text()
    );
}

/// [`wait_for`], showing the instances' logs when it gives up.
fn waiting_on(instances: &[Daemon], what: &str, condition: impl FnMut() -> bool) {
    let waited =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| wait_for(what, condition)));
    if let Err(panic) = waited {
        for instance in instances {
            eprintln!("--- {}\n{}", instance.log.display(), instance.log_text());
        }
        std::panic::resume_unwind(panic);
    }
}

fn count(postgres: &Postgres, database: &str, sql: &str) -> i64 {
    postgres
        .psql_in(database, sql)
        .trim()
        .parse()
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
}

#[test]
fn three_instances_share_sixty_accounts_and_take_over_a_killed_ones() {
    let postgres = Postgres::start();
    let users: Vec<(String, String)> = (0..ACCOUNTS)
        .map(|n| (account(n), format!("pw-{n}")))
        .collect();
    let server = Dovecot::start_owned(&users);
    plant(&server);
    let dir = tempfile::tempdir().expect("tempdir");
    let every_account: BTreeMap<String, usize> = (0..ACCOUNTS)
        .map(|n| (account(n), LOGINS_PER_SCAN))
        .collect();

    // --- All three together, with the report due (last month ended).
    postgres.psql("CREATE DATABASE fleet_together");
    let smtp_port = free_port();
    let mut sink = SmtpSink::start(dir.path(), smtp_port);
    let config = write_config(
        dir.path(),
        &postgres,
        "fleet_together",
        server.port,
        Some(smtp_port),
    );
    let before = logins(&server);
    let mut instances: Vec<Daemon> = (0..3).map(|_| start(&config, dir.path())).collect();
    let done = "SELECT count(*) FROM fleet_units WHERE done_tick IS NOT NULL";
    waiting_on(&instances, "every account scanned for the tick", || {
        count(&postgres, "fleet_together", done) == ACCOUNTS as i64
    });
    wait_for("the report mailed", || !sink.messages().is_empty());
    // Long enough for every instance to look for work twice more (it polls
    // every half lease): a tick done is not scanned again.
    std::thread::sleep(std::time::Duration::from_secs(LEASE_SECONDS * 2));
    assert_eq!(
        minus(&logins(&server), &before),
        every_account,
        "every account scanned exactly once for the tick"
    );
    assert_eq!(
        count(
            &postgres,
            "fleet_together",
            "SELECT count(*) FROM scans WHERE status = 'complete'"
        ),
        ACCOUNTS as i64
    );
    assert_eq!(
        open_findings(&config),
        expected(),
        "planted findings, exactly"
    );
    let stale_total: usize = (0..ACCOUNTS).map(|n| planted(n).0).sum();
    let mut scans_run = 0.0;
    for instance in &instances {
        let metrics = instance.metrics();
        scans_run += metrics.get("tillsyn_scans_total", &[("source", "mail")]);
        // Every instance exports what the fleet found, whoever scanned it.
        let instance_ref = instance;
        wait_for("the open violations refreshed from the store", || {
            instance_ref.metrics().get(
                "tillsyn_open_violations",
                &[("rule", "stale-inbox"), ("source", "mail")],
            ) == stale_total as f64
        });
        assert!(
            metrics.names().contains("tillsyn_instance_units_leased"),
            "the units-leased gauge is exported"
        );
    }
    assert_eq!(
        scans_run, ACCOUNTS as f64,
        "each scan counted by the instance that ran it"
    );
    assert_eq!(sink.messages().len(), 1, "one report, not one per instance");
    assert_eq!(
        count(
            &postgres,
            "fleet_together",
            "SELECT count(*) FROM outbox WHERE kind = 'report' AND sent_at IS NOT NULL"
        ),
        1
    );
    for instance in &mut instances {
        stop(instance);
    }

    // --- Digests: three instances and `tillsyn digest --send`, started at
    // the same moment on the scanned store, make and send last month's
    // digests: each custodian gets exactly one, whoever sends it.
    let with_digests = dir.path().join("fleet_together-digest.toml");
    std::fs::write(
        &with_digests,
        std::fs::read_to_string(&config).expect("config")
            + "\n[digest]\ndomains = [\"firma.se\"]\naddress_template = \"{custodian}@firma.se\"\nrate_per_minute = 6000\n",
    )
    .expect("config");
    let reports = sink.messages().len();
    let month = chrono::Local::now().format("%Y-%m").to_string();
    let month = {
        let this: tillsyn_app::report::Month = month.parse().expect("month");
        this.previous().to_string()
    };
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_tillsyn"))
        .args(["digest", "--send", "--month", &month, "--config"])
        .arg(&with_digests)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tillsyn digest");
    let mut instances: Vec<Daemon> = (0..3).map(|_| start(&with_digests, dir.path())).collect();
    let custodians: Vec<String> = (0..ACCOUNTS)
        .filter(|n| planted(*n) != (0, 0))
        .map(|n| format!("{}@firma.se", account(n)))
        .collect();
    let digests = || {
        let mut to: BTreeMap<String, usize> = BTreeMap::new();
        for raw in &sink.messages()[reports..] {
            let parsed = mail_parser::MessageParser::default()
                .parse(raw)
                .expect("parses");
            let address = parsed
                .to()
                .and_then(|to| to.first())
                .and_then(|to| to.address())
                .unwrap_or_default()
                .to_owned();
            *to.entry(address).or_insert(0) += 1;
        }
        to
    };
    waiting_on(&instances, "every custodian's digest", || {
        digests().len() >= custodians.len()
    });
    let cli = cli.wait_with_output().expect("tillsyn digest");
    assert!(
        cli.status.code().is_some_and(|code| code <= 2),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    // Long enough for every instance to pass its delivery round again.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let sent = digests();
    let expected_digests: BTreeMap<String, usize> = custodians
        .iter()
        .map(|address| (address.clone(), 1))
        .collect();
    assert_eq!(sent, expected_digests, "exactly one digest per custodian");
    assert_eq!(
        count(
            &postgres,
            "fleet_together",
            "SELECT count(*) FROM outbox WHERE kind = 'digest' AND sent_at IS NOT NULL"
        ),
        custodians.len() as i64
    );
    for instance in &mut instances {
        stop(instance);
    }
    sink.stop();

    // --- One instance killed while it holds leases, in a fresh database.
    postgres.psql("CREATE DATABASE fleet_killed");
    let config = write_config(dir.path(), &postgres, "fleet_killed", server.port, None);
    let before = logins(&server);
    let mut doomed = start(&config, dir.path());
    // Mid-scan: a unit leased and its scan row running (a unit is also
    // leased for a moment before its scan starts and after it ends).
    let progress = "SELECT (SELECT count(*) FROM fleet_units WHERE done_tick IS NOT NULL) || ' ' || \
                    (SELECT count(*) FROM fleet_units WHERE leased_until > now()) || ' ' || \
                    (SELECT count(*) FROM scans WHERE status = 'running')";
    let mid_scan = || {
        let line = postgres.psql_in("fleet_killed", progress);
        let mut numbers = line
            .split_whitespace()
            .map(|n| n.parse::<i64>().unwrap_or(0));
        let (finished, leased, running) = (
            numbers.next().unwrap_or(0),
            numbers.next().unwrap_or(0),
            numbers.next().unwrap_or(0),
        );
        finished >= 3 && leased >= 1 && running >= 1
    };
    // Seen mid-scan, the instance is frozen and looked at again: a scan that
    // ended between the look and the freeze (a fast one does) lets it go on
    // to the next. Frozen, what it holds is what the kill leaves behind.
    loop {
        wait_for(
            "the doomed instance mid-scan with some accounts done",
            mid_scan,
        );
        doomed.signal(libc::SIGSTOP);
        // Statements it had already sent finish on the server.
        std::thread::sleep(std::time::Duration::from_millis(300));
        if mid_scan() {
            break;
        }
        doomed.signal(libc::SIGCONT);
    }
    doomed.signal(libc::SIGKILL);
    let _ = doomed.wait_exit();
    let killed_at = count(
        &postgres,
        "fleet_killed",
        "SELECT extract(epoch FROM now())::bigint",
    );
    let orphaned: Vec<String> = postgres
        .psql_in(
            "fleet_killed",
            "SELECT unit FROM fleet_units WHERE holder IS NOT NULL ORDER BY unit",
        )
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(!orphaned.is_empty(), "the killed instance held leases");
    let running_at_kill = count(
        &postgres,
        "fleet_killed",
        "SELECT count(*) FROM scans WHERE status = 'running'",
    );
    assert!(running_at_kill >= 1, "the killed instance was mid-scan");
    let finished_by_doomed = count(&postgres, "fleet_killed", done);
    let survivors: Vec<Daemon> = (0..2).map(|_| start(&config, dir.path())).collect();
    wait_for("every account scanned, the killed one's too", || {
        count(&postgres, "fleet_killed", done) == ACCOUNTS as i64
    });
    // The orphaned accounts were taken over only after their leases ran out.
    let taken_over_at = count(
        &postgres,
        "fleet_killed",
        &format!(
            "SELECT min(extract(epoch FROM done_at))::bigint FROM fleet_units WHERE unit IN ({})",
            orphaned
                .iter()
                .map(|unit| format!("'{}'", unit.replace('\'', "''")))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    assert!(
        taken_over_at >= killed_at,
        "taken over after the kill, not before"
    );
    assert_eq!(
        open_findings(&config),
        expected(),
        "planted findings, exactly"
    );
    assert_eq!(
        count(
            &postgres,
            "fleet_killed",
            "SELECT count(*) FROM findings WHERE resolved_at IS NOT NULL"
        ),
        0,
        "nothing resolved wrongly"
    );
    // The killed instance's scans are failed once their accounts are taken
    // over, not left running.
    wait_for("no scan left running", || {
        count(
            &postgres,
            "fleet_killed",
            "SELECT count(*) FROM scans WHERE status = 'running'",
        ) == 0
    });
    assert!(
        count(
            &postgres,
            "fleet_killed",
            "SELECT count(*) FROM scans WHERE error_kind = 'interrupted'"
        ) >= running_at_kill.min(orphaned.len() as i64)
    );
    // Every account was scanned to the end once: the orphaned ones may have
    // had a login from the killed instance too, no other account did.
    let scanned = minus(&logins(&server), &before);
    for n in 0..ACCOUNTS {
        let user = account(n);
        let seen = scanned.get(&user).copied().unwrap_or(0);
        let orphan = orphaned
            .iter()
            .any(|unit| unit.ends_with(&format!("\u{1f}{user}")));
        match orphan {
            true => assert!(
                (LOGINS_PER_SCAN..=2 * LOGINS_PER_SCAN).contains(&seen),
                "{user}: {seen} logins"
            ),
            false => assert_eq!(seen, LOGINS_PER_SCAN, "{user}: {seen} logins"),
        }
    }
    // Every account was scanned to the end at least once. An orphaned
    // account may have been finished twice: when the kill came after its
    // scan was stored complete but before its unit was marked done, the
    // others scan it again (at least once, never lost).
    let complete = count(
        &postgres,
        "fleet_killed",
        "SELECT count(*) FROM scans WHERE status = 'complete'",
    );
    assert!(
        (ACCOUNTS as i64..=(ACCOUNTS + orphaned.len()) as i64).contains(&complete),
        "{complete} complete scans; {finished_by_doomed} done by the killed instance, the rest by the others"
    );
    for mut instance in survivors {
        stop(&mut instance);
    }

    // --- One account's password revoked, in a fresh database: 59 accounts
    // read to the end and one refused. The source is not complete, by one
    // definition everywhere: every instance's tillsyn_scan_success, the
    // report's coverage, `tillsyn subject` and `tillsyn erasure`, however
    // the account that failed was scanned before or after the others.
    postgres.psql("CREATE DATABASE fleet_revoked");
    let config = write_config(dir.path(), &postgres, "fleet_revoked", server.port, None);
    let accounts = dir.path().join("accounts.toml");
    let revoked = std::fs::read_to_string(&accounts)
        .expect("accounts")
        .replace("password = \"pw-7\"", "password = \"revoked\"");
    std::fs::write(&accounts, revoked).expect("accounts");
    std::fs::write(
        dir.path().join("erasure.csv"),
        format!(
            "email,gone@kund.se,{}\n",
            (chrono::Utc::now() - chrono::TimeDelta::days(40)).format("%Y-%m-%d")
        ),
    )
    .expect("register");
    let text = std::fs::read_to_string(&config).expect("config").replace(
        "[[rules]]\nid = \"stale-inbox\"",
        "[erasure]\nregister = \"erasure.csv\"\n\n[[rules]]\nid = \"erased\"\nkind = \"erased\"\npolicy = \"Raderas på begäran.\"\n\n[[rules]]\nid = \"stale-inbox\"",
    );
    std::fs::write(&config, text).expect("config");
    let mut instances: Vec<Daemon> = (0..2).map(|_| start(&config, dir.path())).collect();
    waiting_on(&instances, "every account tried for the tick", || {
        count(&postgres, "fleet_revoked", done) == ACCOUNTS as i64
    });
    assert_eq!(
        count(
            &postgres,
            "fleet_revoked",
            "SELECT count(*) FROM scans WHERE status = 'complete'"
        ),
        ACCOUNTS as i64 - 1
    );
    for instance in &instances {
        wait_for("the source's success as every instance shows it", || {
            instance
                .metrics()
                .value("tillsyn_scan_success", &[("source", "mail")])
                == Some(0.0)
        });
    }
    for instance in &mut instances {
        stop(instance);
    }
    let config_arg = config.to_str().expect("utf8");
    let month = chrono::Local::now().format("%Y-%m").to_string();
    let out = dir.path().join("revoked-report");
    let report = tillsyn(&[
        "report",
        "--config",
        config_arg,
        "--month",
        &month,
        "--out",
        out.to_str().expect("utf8"),
    ]);
    assert!(report.status.success(), "{:?}", report);
    let text = std::fs::read_to_string(out.join("report.txt")).expect("report");
    assert!(
        text.contains("mail (imap): DELVIS kontrollerad"),
        "one account unread: {text}"
    );
    let subject = tillsyn(&[
        "subject",
        "--email",
        "u01@firma.se",
        "--format",
        "json",
        "--config",
        config_arg,
    ]);
    let found: serde_json::Value = serde_json::from_slice(&subject.stdout).expect("json");
    assert_eq!(found["stores"][0]["last_scan"], "partial", "{found}");
    let erasure = tillsyn(&["erasure", "--json", "--config", config_arg]);
    let listed = String::from_utf8_lossy(&erasure.stdout).into_owned();
    let requests: serde_json::Value = serde_json::from_str(
        &listed
            .split_once('[')
            .map(|(_, rest)| format!("[{rest}"))
            .expect("json"),
    )
    .expect("json");
    assert_eq!(
        requests[0]["stores"][0],
        serde_json::json!(["mail", "not_verified"]),
        "{requests}"
    );
}
