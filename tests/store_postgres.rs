//! The findings store on PostgreSQL against the same store on SQLite: one
//! life of two sources (leases, findings, conflict keys, identity rows, a
//! finished and an incremental scan, a failed one, exceptions, the report's
//! queries, the outboxes, records checked, erasure requests, pruning) played
//! on both, and every answer compared. One PostgreSQL for the file.

mod common;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use common::postgres::{PASSWORD, Postgres as Server, USER};
use tillsyn_connectors::CarriedScope;
use tillsyn_rules::identity::NewIdentity;
use tillsyn_rules::register::ErasureRequest;
use tillsyn_store::{
    FindingFilter, IdentityBatch, NewConflictKey, NewFinding, RecordCacheUpdate, ScanEnd,
    ScanStatus, Store, StoreError,
};

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(Server::start)
}

fn postgres_store(name: &str) -> Store {
    let server = server();
    server.psql(&format!("CREATE DATABASE {name}"));
    let url = format!("postgres://{USER}@127.0.0.1:{}/{name}", server.port);
    Store::open_postgres(&url, Some(PASSWORD.as_bytes())).expect("open on PostgreSQL")
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_780_000_000 + seconds, 0).expect("time")
}

fn finding(rule: &str, path: &str, custodian: &str, marked: bool) -> NewFinding {
    NewFinding {
        rule: rule.into(),
        record_id: path.into(),
        record_path: path.into(),
        record_kind: "message",
        custodian: Some(custodian.into()),
        severity: "medium",
        detail: "received long ago".into(),
        detail_data: None,
        age_days: Some(40),
        custodian_marked: marked,
    }
}

fn key(rule: &str, side: &'static str, person: &str, path: &str) -> NewConflictKey {
    NewConflictKey {
        rule: rule.into(),
        side,
        key: person.into(),
        record_id: path.into(),
        record_path: path.into(),
        record_kind: "contact",
        custodian: None,
    }
}

fn end<'a>(
    carried: &'a [CarriedScope],
    checkpoints: &'a BTreeMap<String, String>,
    conflict_rules: &'a [(String, &'static str)],
    finished_at: DateTime<Utc>,
) -> ScanEnd<'a> {
    ScanEnd {
        status: ScanStatus::Complete,
        records: 10,
        problems: &[("unreadable", 1)],
        unread_prefixes: &[],
        within: &[],
        carried,
        checkpoints,
        conflict_rules,
        finished_at,
        record_cache: RecordCacheUpdate::Replace {
            plan: 7,
            complete: true,
            entries: 1,
            data: vec![1, 2, 3],
        },
    }
}

/// Everything the store answers, as text, after one life of two sources.
fn life(store: &mut Store) -> Vec<String> {
    let mut seen = Vec::new();
    let mut note = |what: &str, value: String| seen.push(format!("{what}: {value}"));

    // A lease: taken, held against another process's store (checked by the
    // races tests), renewed and given up.
    let lease = std::time::Duration::from_secs(60);
    store.take_lease("mail", lease).expect("lease");
    note(
        "renew",
        store.renew_lease("mail", lease).expect("renew").to_string(),
    );

    // The mail source's first scan.
    let scan = store.begin_scan("mail", at(0)).expect("begin");
    store
        .record_findings(
            scan,
            "mail",
            at(1),
            &[
                finding("stale", "anna/INBOX/1", "anna", false),
                finding("stale", "anna/INBOX/2", "anna", true),
                finding("stale", "bo/INBOX/7", "bo", false),
            ],
        )
        .expect("findings");
    store
        .record_conflict_keys(
            scan,
            "mail",
            &[
                key("unsubscribed", "forbidden", "x@kund.se", "list/x"),
                key("unsubscribed", "marked", "x@kund.se", "optout/x"),
                key("unsubscribed", "forbidden", "y@kund.se", "list/y"),
            ],
        )
        .expect("keys");
    let mut batch = IdentityBatch::default();
    for (n, path) in ["anna/INBOX/1", "anna/INBOX/2", "bo/INBOX/7"]
        .iter()
        .enumerate()
    {
        batch.push(&NewIdentity {
            hash: [n as u8 + 1; 16],
            kind: "email",
            field: "from",
            record_id: path,
            record_path: path,
            record_kind: "message",
            container: "INBOX",
            record_time: Some(1_700_000_000),
        });
    }
    store
        .record_identities(scan, &mut batch)
        .expect("identities");
    let checkpoints = BTreeMap::from([("anna/INBOX".to_owned(), "uid 3".to_owned())]);
    let conflict_rules = [("unsubscribed".to_owned(), "high")];
    let tally = store
        .finish_scan(scan, &end(&[], &checkpoints, &conflict_rules, at(2)))
        .expect("finish");
    note("first tally", format!("{tally:?}"));

    // An incremental scan: anna/INBOX/1 was expunged, the rest carried.
    let second = store.begin_scan("mail", at(100)).expect("begin");
    let carried = [CarriedScope {
        prefix: "anna/INBOX".into(),
        gone: vec!["anna/INBOX/1".into()],
        present: None,
        left_out: None,
    }];
    let tally = store
        .finish_scan(
            second,
            &end(&carried, &checkpoints, &conflict_rules, at(101)),
        )
        .expect("finish");
    note("second tally", format!("{tally:?}"));

    // A failed scan resolves nothing.
    let failed = store.begin_scan("mail", at(200)).expect("begin");
    store
        .fail_scan(failed, 3, "timeout", "too slow", at(201))
        .expect("fail");
    store.release_lease("mail").expect("release");

    // Exceptions: bo's finding kept on purpose.
    let covered = store
        .apply_exceptions(None, |_, _, path| {
            path.starts_with("bo/")
                .then(|| ("dispens-1".to_owned(), at(10_000)))
        })
        .expect("exceptions");
    note("covered", format!("{covered:?}"));

    // What every reader sees.
    let findings = store
        .findings(FindingFilter::All, None, None)
        .expect("findings");
    for finding in &findings {
        note(
            "finding",
            format!(
                "{} {} {} seen {}..{} resolved {:?} excepted {:?}",
                finding.rule,
                finding.record_path,
                finding.custodian.clone().unwrap_or_default(),
                finding.first_seen.timestamp(),
                finding.last_seen.timestamp(),
                finding.resolved_at.map(|t| t.timestamp()),
                finding.exception
            ),
        );
    }
    note(
        "open summary",
        format!("{:?}", store.open_summary(at(300)).expect("summary")),
    );
    note(
        "open count",
        store.open_count("mail").expect("count").to_string(),
    );
    note(
        "changes",
        format!("{:?}", store.scan_changes(second).expect("changes")),
    );
    note(
        "last scan",
        format!(
            "{:?}",
            store
                .last_scan("mail")
                .expect("last")
                .map(|s| (s.status, s.records, s.error_kind))
        ),
    );
    note(
        "last success",
        format!("{:?}", store.last_success("mail").expect("success")),
    );
    note(
        "problems",
        format!("{:?}", store.scan_problems(scan).expect("problems")),
    );
    note(
        "checkpoints",
        format!("{:?}", store.checkpoints("mail").expect("checkpoints")),
    );
    note(
        "record cache",
        format!("{:?}", store.record_cache("mail").expect("cache")),
    );
    let rows = store
        .identities(&[[1; 16], [2; 16], [3; 16]])
        .expect("identities");
    let mut places: Vec<String> = rows.iter().map(|row| row.record_path.clone()).collect();
    places.sort();
    note("identities", format!("{places:?}"));
    note(
        "holds",
        store.holds("mail", &[2; 16]).expect("holds").to_string(),
    );
    note(
        "open at",
        format!(
            "{:?}",
            store
                .open_at(at(150))
                .expect("open at")
                .iter()
                .map(|f| f.record_path.clone())
                .collect::<Vec<_>>()
        ),
    );
    note(
        "history",
        format!(
            "{:?}",
            store.rule_history(&[at(50), at(150)]).expect("history")
        ),
    );

    // The outbox, a report and a digest each claimed once. Its times are
    // the database's clock, so only whether they are set is noted.
    use tillsyn_store::{NewOutboxEntry, OutboxKey, OutboxKind};
    let hold = std::time::Duration::from_secs(60);
    let report = OutboxKey::report("2026-11");
    let digest = OutboxKey::digest("2026-11", "p-1");
    for (key, address) in [(&report, None), (&digest, Some("anna@firma.se"))] {
        for again in ["put", "put again"] {
            note(
                again,
                store
                    .outbox_put(NewOutboxEntry {
                        key,
                        address,
                        subject: "Rapport",
                        message: b"mail",
                    })
                    .expect("put")
                    .to_string(),
            );
        }
        note(
            "due",
            format!(
                "{:?}",
                store
                    .outbox_waiting(key.kind, true)
                    .expect("due")
                    .iter()
                    .map(|entry| (entry.key.recipient.clone(), entry.address.clone()))
                    .collect::<Vec<_>>()
            ),
        );
        note(
            "claim",
            store.outbox_claim(key, hold).expect("claim").to_string(),
        );
        store.outbox_sent(key).expect("sent");
        note(
            "claim after",
            store.outbox_claim(key, hold).expect("claim").to_string(),
        );
        let entry = store.outbox_entry(key).expect("entry").expect("there");
        note(
            "sent",
            format!(
                "{} {} {}",
                entry.sent_at.is_some(),
                entry.attempts,
                entry.message.len()
            ),
        );
    }
    note(
        "last sent",
        format!(
            "{:?}",
            store
                .outbox_last_sent(OutboxKind::Report)
                .expect("last")
                .is_some()
        ),
    );
    store
        .digest_month(
            "2026-11",
            tillsyn_store::DigestMonth {
                custodians: 2,
                no_address: 1,
                outside_domains: 3,
                no_custodian: 4,
            },
        )
        .expect("month");
    note(
        "coverage",
        format!("{:?}", store.digest_coverage("2026-11").expect("coverage")),
    );

    // Records checked, erasure requests, the subject audit log.
    store
        .save_checked(
            "mail",
            9,
            &[4, 5],
            &[tillsyn_rules::checked::RuleCount {
                rule: "stale".into(),
                records: 50,
                custodians: vec![1, 2],
                complete: true,
            }],
        )
        .expect("checked");
    note(
        "checked",
        format!(
            "{:?} {:?}",
            store.checked_counts().expect("counts"),
            store.checked_memory("mail").expect("memory")
        ),
    );
    let requests = [ErasureRequest {
        hash: [9; 16],
        kind: "email".into(),
        requested_at: at(600),
    }];
    note(
        "erasures",
        store
            .import_erasures(&requests, at(600))
            .expect("import")
            .to_string(),
    );
    let earlier = [ErasureRequest {
        requested_at: at(550),
        ..requests[0].clone()
    }];
    note(
        "erasures again",
        store
            .import_erasures(&earlier, at(601))
            .expect("import")
            .to_string(),
    );
    note(
        "requests",
        format!("{:?}", store.erasure_requests().expect("requests")),
    );

    // Pruning what is over.
    note(
        "pruned",
        format!("{:?}", store.prune(at(100_000)).expect("prune")),
    );
    note(
        "after prune",
        format!(
            "{:?}",
            store
                .findings(FindingFilter::All, None, None)
                .expect("findings")
                .len()
        ),
    );
    note(
        "schema",
        store.schema_version().expect("version").to_string(),
    );
    seen
}

#[test]
fn the_store_answers_the_same_on_postgresql_as_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sqlite = Store::open(dir.path()).expect("sqlite store");
    let mut postgres = postgres_store("store_life");
    let on_sqlite = life(&mut sqlite);
    let on_postgres = life(&mut postgres);
    for (sqlite, postgres) in on_sqlite.iter().zip(&on_postgres) {
        assert_eq!(postgres, sqlite);
    }
    assert_eq!(on_postgres.len(), on_sqlite.len());
    // The life did what it says: the expunged message resolved, the custodian's
    // mark and the dispens kept, the conflict found once.
    let text = on_sqlite.join("\n");
    assert!(text.contains("stale anna/INBOX/1 anna seen"), "{text}");
    assert!(text.contains("unsubscribed list/x"), "{text}");
    assert!(!text.contains("unsubscribed list/y"), "{text}");
}

#[test]
fn a_lease_held_in_postgresql_keeps_another_instance_out() {
    let server = server();
    server.psql("CREATE DATABASE store_lease");
    let url = format!("postgres://{USER}@127.0.0.1:{}/store_lease", server.port);
    let mut first = Store::open_postgres(&url, Some(PASSWORD.as_bytes())).expect("open");
    let mut second = Store::open_postgres(&url, Some(PASSWORD.as_bytes())).expect("open");
    let lease = std::time::Duration::from_secs(60);
    first.take_lease("mail", lease).expect("lease");
    match second.take_lease("mail", lease) {
        Err(StoreError::Leased { holder, .. }) => assert_eq!(holder, first.holder()),
        other => panic!("a second instance took a held lease: {other:?}"),
    }
    // Run out (a minute on the database's clock), it can be taken.
    server.psql_in(
        "store_lease",
        "UPDATE scan_leases SET expires_at = expires_at - 61",
    );
    second
        .take_lease("mail", lease)
        .expect("an expired lease is taken");
    assert!(!first.renew_lease("mail", lease).expect("renew"));
    // A wrong password is a clear error.
    let refused = match Store::open_postgres(&url, Some(b"wrong")) {
        Ok(_) => panic!("a wrong password opened the store"),
        Err(error) => error.to_string(),
    };
    assert!(
        refused.contains("password authentication failed"),
        "{refused}"
    );
}

/// `[store] url` puts a whole run in PostgreSQL: check-config reaches it, a
/// scan's findings are stored there (none in `state_dir`), `findings` reads
/// them back; a wrong password or a url holding one is a clear error.
#[test]
fn a_config_with_a_store_url_scans_into_postgresql() {
    let server = server();
    server.psql("CREATE DATABASE store_config");
    let dir = tempfile::tempdir().expect("tempdir");
    let share = dir.path().join("share");
    for (name, age) in [("old-1.txt", 400), ("old-2.txt", 500), ("new.txt", 3)] {
        common::file_at(&share.join(name), b"x", common::days_ago(age));
    }
    std::fs::write(dir.path().join("pg.pw"), PASSWORD).expect("password");
    let write = |password_file: &str, url_extra: &str| {
        let config = dir.path().join("tillsyn.toml");
        std::fs::write(
            &config,
            format!(
                "[daemon]\nstate_dir = \"state\"\n\n\
                 [store]\nurl = \"postgres://{USER}{url_extra}@127.0.0.1:{}/store_config\"\n\
                 password_file = \"{password_file}\"\n\n\
                 [[sources]]\nname = \"share\"\ntype = \"fileshare\"\nroot = \"share\"\n\n\
                 [[rules]]\nid = \"old-files\"\nkind = \"max_age\"\npolicy = \"Filer gallras efter ett år.\"\n\
                 max_age = \"365d\"\ntimestamp = \"modified\"\n",
                server.port
            ),
        )
        .expect("config");
        config.display().to_string()
    };
    let config = write("pg.pw", "");
    let output = common::tillsyn(&["check-config", "--connect", "--config", &config]);
    let (stdout, stderr) = common::text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("store in PostgreSQL at postgres://"),
        "{stdout}"
    );
    assert!(stdout.contains("store: OK — PostgreSQL"), "{stdout}");
    assert!(!stdout.contains(PASSWORD), "{stdout}");

    let output = common::tillsyn(&["scan", "--once", "--config", &config]);
    let (stdout, stderr) = common::text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    let found = common::pairs(&common::json_lines(&common::tillsyn(&[
        "findings", "--config", &config, "--format", "json",
    ])));
    assert_eq!(
        found,
        ["old-files:old-1.txt", "old-files:old-2.txt"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    assert_eq!(
        server
            .psql_in(
                "store_config",
                "SELECT count(*) FROM findings WHERE resolved_at IS NULL"
            )
            .trim(),
        "2"
    );
    assert!(
        !dir.path().join("state/findings.sqlite").exists(),
        "nothing in state_dir's SQLite"
    );

    // A dry run works on a private copy of the shared store: it sees what
    // is stored and what is new, and writes nothing to PostgreSQL.
    common::file_at(&share.join("old-3.txt"), b"x", common::days_ago(600));
    let scans_before = server.psql_in("store_config", "SELECT count(*) FROM scans");
    let output = common::tillsyn(&[
        "scan",
        "--once",
        "--dry-run",
        "--config",
        &config,
        "--format",
        "json",
    ]);
    let (stdout, stderr) = common::text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(
        common::pairs(&common::json_lines(&output)),
        [
            "old-files:old-1.txt",
            "old-files:old-2.txt",
            "old-files:old-3.txt"
        ]
        .map(String::from)
        .into_iter()
        .collect()
    );
    assert_eq!(
        server.psql_in("store_config", "SELECT count(*) FROM scans"),
        scans_before,
        "the dry run wrote no scan"
    );
    assert_eq!(
        server
            .psql_in(
                "store_config",
                "SELECT count(*) FROM findings WHERE resolved_at IS NULL"
            )
            .trim(),
        "2",
        "nor any finding"
    );

    // Another instance with another pseudonym key (here: another state_dir,
    // where a key of its own is made) is refused, and told why.
    let other_key = std::fs::read_to_string(&config)
        .expect("config")
        .replace("state_dir = \"state\"", "state_dir = \"other-state\"");
    let other_config = dir.path().join("other.toml");
    std::fs::write(&other_config, other_key).expect("config");
    let output = common::tillsyn(&["findings", "--config", other_config.to_str().expect("utf8")]);
    let (stdout, stderr) = common::text(&output);
    assert_ne!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains("pseudonym key") && stderr.contains("same key file"),
        "{stderr}"
    );

    // A wrong password: the scan fails, saying so, and check-config says so.
    std::fs::write(dir.path().join("wrong.pw"), "not-it").expect("password");
    let config = write("wrong.pw", "");
    let output = common::tillsyn(&["scan", "--once", "--config", &config]);
    let (stdout, stderr) = common::text(&output);
    assert_ne!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains("password authentication failed") && !stderr.contains("not-it"),
        "{stderr}"
    );
    let output = common::tillsyn(&["check-config", "--connect", "--config", &config]);
    let (stdout, _) = common::text(&output);
    assert!(stdout.contains("store: FAILED"), "{stdout}");
    // A password in the url is refused: it would be printed.
    let config = write("pg.pw", ":inline-secret");
    let output = common::tillsyn(&["check-config", "--config", &config]);
    let (stdout, _) = common::text(&output);
    assert_eq!(output.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains("[store]: the url holds a password"),
        "{stdout}"
    );
    assert!(!stdout.contains("inline-secret"), "{stdout}");
}

/// TLS to the store: verified against the configured CA, refused with
/// another CA or none, and the connection really encrypted.
#[test]
fn tls_to_the_store_is_verified_against_the_configured_ca() {
    let certificates = tempfile::tempdir().expect("tempdir");
    common::dovecot::make_ca(certificates.path(), "ca");
    common::dovecot::make_ca(certificates.path(), "other-ca");
    common::dovecot::make_server_cert(certificates.path(), "ca");
    let server = Server::start_with_tls(
        &certificates.path().join("server.pem"),
        &certificates.path().join("server.key"),
    );
    let target = |mode: &str, ca: Option<&str>| tillsyn_config::StoreConfig {
        url: format!(
            "postgres://{USER}@127.0.0.1:{}/{}{mode}",
            server.port,
            common::postgres::DATABASE
        ),
        password: Some(tillsyn_core::secret::Secret::new(
            PASSWORD.as_bytes().to_vec(),
        )),
        ca_file: ca.map(|name| certificates.path().join(format!("{name}.pem"))),
    };
    let encrypted = |target: &tillsyn_config::StoreConfig| {
        let connection = tillsyn_store::db::Postgres::connect(target)?;
        tillsyn_store::db::Database::query(
            &connection,
            "SELECT CAST(ssl AS TEXT) FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )?
        .first()
        .map(|row| row.text(0))
        .transpose()
    };
    // With the CA: TLS, whether asked for or taken by default on loopback.
    for mode in ["?sslmode=require", ""] {
        assert_eq!(
            encrypted(&target(mode, Some("ca"))).expect("connect"),
            Some("true".to_owned()),
            "{mode}"
        );
    }
    // The store itself opens over it.
    Store::open_postgres_at(&target("?sslmode=require", Some("ca"))).expect("open over TLS");
    // Another CA, or none (the system's roots only): refused, and said why.
    for ca in [Some("other-ca"), None] {
        let error = match encrypted(&target("?sslmode=require", ca)) {
            Ok(_) => panic!("an unverified server was accepted with {ca:?}"),
            Err(error) => error.to_string(),
        };
        assert!(
            error.contains("certificate") || error.contains("UnknownIssuer"),
            "{error}"
        );
    }
    // Asked not to, no TLS: the server allows both here.
    assert_eq!(
        encrypted(&target("?sslmode=disable", None)).expect("connect"),
        Some("false".to_owned())
    );
}

/// A host whose clock runs ahead takes nothing another process holds: leases
/// and claims are set and judged by the database's clock. Run under Debian's
/// libfaketime (`faketime`), 90 seconds and then 10 minutes ahead of the
/// process that holds them; with the host's own clock either would have
/// looked run out.
#[test]
fn a_host_whose_clock_runs_ahead_takes_no_lease_or_claim_another_holds() {
    use tillsyn_store::{NewOutboxEntry, OutboxKey};
    let server = server();
    server.psql("CREATE DATABASE store_skew");
    let dir = tempfile::tempdir().expect("tempdir");
    common::file_at(
        &dir.path().join("share/old.txt"),
        b"x",
        common::days_ago(400),
    );
    std::fs::write(dir.path().join("pg.pw"), PASSWORD).expect("password");
    let smtp_port = common::process::free_port();
    let config = dir.path().join("tillsyn.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nstate_dir = \"state\"\n\n\
             [store]\nurl = \"postgres://{USER}@127.0.0.1:{}/store_skew\"\npassword_file = \"pg.pw\"\n\n\
             [[sources]]\nname = \"share\"\ntype = \"fileshare\"\nroot = \"share\"\n\n\
             [[rules]]\nid = \"old-files\"\nkind = \"max_age\"\npolicy = \"Filer gallras efter ett år.\"\n\
             max_age = \"365d\"\ntimestamp = \"modified\"\n\n\
             [report]\nsender = \"tillsyn@firma.se\"\nrecipients = [\"ledningen@firma.se\"]\n\n\
             [report.smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\nsecurity = \"plain\"\nallow_plaintext = true\n",
            server.port
        ),
    )
    .expect("config");
    let config = config.to_str().expect("utf8").to_owned();
    let ahead = |offset: &str, args: &[&str]| {
        let output = std::process::Command::new("faketime")
            .args(["-f", offset, env!("CARGO_BIN_EXE_tillsyn")])
            .args(args)
            .args(["--config", &config])
            // Timers keep the real monotonic clock; the wall clock runs ahead.
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .output()
            .expect("faketime (Debian package faketime; ./scripts/test installs it)");
        let (stdout, stderr) = common::text(&output);
        (output.status.code(), format!("{stdout}{stderr}"))
    };
    // The host's clock really runs ahead under faketime.
    let (_, shown) = {
        let output = std::process::Command::new("faketime")
            .args(["-f", "+10m", "date", "+%s"])
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .output()
            .expect("faketime");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let skew = shown.trim().parse::<i64>().expect("seconds") - Utc::now().timestamp();
    assert!((590..=610).contains(&skew), "faketime is {skew} s ahead");
    let (code, output) = ahead("+0s", &["scan", "--once"]);
    assert_eq!(code, Some(0), "{output}");

    // Another process holds the source's lease for a minute.
    let url = format!("postgres://{USER}@127.0.0.1:{}/store_skew", server.port);
    let mut holder = Store::open_postgres(&url, Some(PASSWORD.as_bytes())).expect("open");
    holder
        .take_lease("share", std::time::Duration::from_secs(60))
        .expect("lease");
    let (code, output) = ahead("+90s", &["scan", "--once"]);
    assert_eq!(code, Some(2), "{output}");
    assert!(
        output.contains("being scanned by another tillsyn process"),
        "{output}"
    );
    holder.release_lease("share").expect("release");
    let (code, output) = ahead("+90s", &["scan", "--once"]);
    assert_eq!(code, Some(0), "free, the host ahead scans it: {output}");

    // Another process has claimed a report for two minutes.
    let sink = common::smtp::SmtpSink::start(dir.path(), smtp_port);
    let key = OutboxKey::report("2026-10");
    holder
        .outbox_put(NewOutboxEntry {
            key: &key,
            address: None,
            subject: "Rapport",
            message: b"Subject: Rapport\r\n\r\nx\r\n",
        })
        .expect("put");
    assert!(
        holder
            .outbox_claim(&key, std::time::Duration::from_secs(120))
            .expect("claim")
    );
    let (code, output) = ahead("+10m", &["report", "--send", "--month", "2026-10"]);
    assert_eq!(code, Some(0), "{output}");
    assert!(
        output.contains("is being sent by another tillsyn process"),
        "{output}"
    );
    assert!(sink.messages().is_empty(), "sent despite another's claim");
}
