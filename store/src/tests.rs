//! The store's promises: resolution only by finished scans, partial scans protect
//! what they could not read, interrupted scans become failed.

use std::collections::BTreeMap;

use chrono::{TimeDelta, Utc};
use tillsyn_connectors::CarriedScope;

use super::*;
use rusqlite::Connection;
use std::os::unix::fs::PermissionsExt;
use tillsyn_rules::identity::NewIdentity;

/// A lease as the scan runner takes it.
const LEASE: std::time::Duration = std::time::Duration::from_secs(60);
/// A claim as the outbox takes it.
const HOLD: std::time::Duration = std::time::Duration::from_secs(120);

// The real-server harness of the integration tests, shared here so that
// these tests run on PostgreSQL too.
#[allow(dead_code)]
#[path = "../../tests/common/process.rs"]
mod process;

#[allow(clippy::panic)]
#[path = "../../tests/common/postgres.rs"]
mod postgres;

/// Run `test` on SQLite in a temporary directory, then on a database of its
/// own in the PostgreSQL these tests share. `test` gets the way to open a
/// store, and may open a second one (another process, on SQLite; another
/// connection, on PostgreSQL). Tests of what only one engine has (SQLite's
/// files, its lock, its `--dry-run` copy) open SQLite themselves.
fn on_both_engines(name: &str, test: impl Fn(&dyn Fn() -> Store)) {
    static SERVER: std::sync::OnceLock<postgres::Postgres> = std::sync::OnceLock::new();
    let dir = tempfile::tempdir().expect("tempdir");
    eprintln!("{name}: on SQLite");
    test(&|| Store::open(dir.path()).expect("open on SQLite"));
    let server = SERVER.get_or_init(postgres::Postgres::start);
    let database: String = name.chars().take(40).collect();
    server.psql(&format!("CREATE DATABASE {database}"));
    let url = format!(
        "postgres://{}@127.0.0.1:{}/{database}",
        postgres::USER,
        server.port
    );
    eprintln!("{name}: on PostgreSQL");
    test(&|| {
        Store::open_postgres(&url, Some(postgres::PASSWORD.as_bytes())).expect("open on PostgreSQL")
    });
}

/// A conflict key of rule `c` at `path`.
fn key(path: &str) -> NewConflictKey {
    NewConflictKey {
        rule: "c".into(),
        side: "forbidden",
        key: path.into(),
        record_id: path.into(),
        record_path: path.into(),
        record_kind: "message",
        custodian: None,
    }
}

/// Finish scan `id` at `now` as complete, with these carried scopes.
fn finish_carried(
    store: &mut Store,
    id: i64,
    carried: &[CarriedScope],
    now: chrono::DateTime<Utc>,
) -> ScanTally {
    let end = ScanEnd {
        carried,
        ..ScanEnd::complete(0, now)
    };
    store.finish_scan(id, &end).expect("finish")
}

fn finding(rule: &str, path: &str) -> NewFinding {
    NewFinding {
        rule: rule.into(),
        record_id: path.into(),
        record_path: path.into(),
        record_kind: "file",
        custodian: Some("anna".into()),
        severity: "medium",
        detail: "d".into(),
        age_days: Some(40),
        custodian_marked: false,
        detail_data: None,
    }
}

fn identity(hash: [u8; 16], path: &str) -> NewIdentity<'_> {
    NewIdentity {
        hash,
        kind: "personnummer",
        field: "body",
        record_id: path,
        record_path: path,
        record_kind: "message",
        container: "INBOX",
        record_time: Some(1_790_000_000),
    }
}

/// Stage rows as a scan does, in one batch.
trait StageRows {
    fn record_rows(
        &mut self,
        scan_id: i64,
        source: &str,
        rows: &[NewIdentity<'_>],
    ) -> Result<(), StoreError>;
}

impl StageRows for Store {
    fn record_rows(
        &mut self,
        scan_id: i64,
        _source: &str,
        rows: &[NewIdentity<'_>],
    ) -> Result<(), StoreError> {
        let mut batch = IdentityBatch::default();
        for row in rows {
            batch.push(row);
        }
        self.record_identities(scan_id, &mut batch)?;
        assert!(batch.is_empty(), "the batch is taken");
        Ok(())
    }
}

/// Where the index holds `hash`, as record paths.
fn holding(store: &Store, hash: [u8; 16]) -> Vec<String> {
    store
        .identities(&[hash])
        .expect("lookup")
        .into_iter()
        .map(|row| row.record_path)
        .collect()
}

#[test]
fn identity_rows_follow_their_records() {
    on_both_engines("identity_rows_follow_their_records", |open| {
        let mut store = open();
        let now = Utc::now();
        let person = [1; 16];
        let other = [2; 16];
        // Scan 1 reads three messages; the person is in two.
        let first = store.begin_scan("mail", now).expect("begin");
        store
            .record_rows(
                first,
                "mail",
                &[
                    identity(person, "anna/INBOX/1"),
                    identity(person, "anna/INBOX/2"),
                    identity(other, "anna/INBOX/3"),
                ],
            )
            .expect("identities");
        finish_carried(&mut store, first, &[], now);
        assert_eq!(holding(&store, person), ["anna/INBOX/1", "anna/INBOX/2"]);
        let rows = store.identities(&[person]).expect("lookup");
        assert_eq!(rows[0].kind, "personnummer");
        assert_eq!(rows[0].field, "body");
        assert_eq!(
            rows[0].record_time.map(|t| t.timestamp()),
            Some(1_790_000_000)
        );
        // Scan 2 is incremental: it reads message 4 (the person again) and
        // learns that 2 is gone and 1 and 3 are still there. Message 1 is read
        // again (its row renewed, not doubled).
        let second = store.begin_scan("mail", now).expect("begin");
        store
            .record_rows(
                second,
                "mail",
                &[
                    identity(person, "anna/INBOX/1"),
                    identity(person, "anna/INBOX/4"),
                ],
            )
            .expect("identities");
        let carried = [CarriedScope {
            prefix: "anna/INBOX".into(),
            gone: Vec::new(),
            present: Some(std::sync::Arc::new(vec![1, 3, 4])),
            left_out: None,
        }];
        finish_carried(&mut store, second, &carried, now);
        assert_eq!(holding(&store, person), ["anna/INBOX/1", "anna/INBOX/4"]);
        assert_eq!(holding(&store, other), ["anna/INBOX/3"]);
        // Scan 3 reads everything again and the person is in none: all gone,
        // except where the scan could not read (`anna/Sent` unread).
        let third = store.begin_scan("mail", now).expect("begin");
        store
            .record_rows(third, "mail", &[identity(other, "anna/INBOX/3")])
            .expect("identities");
        let end = ScanEnd {
            status: ScanStatus::Partial,
            unread_prefixes: &["anna/INBOX/4".to_owned()],
            ..ScanEnd::complete(3, now)
        };
        store.finish_scan(third, &end).expect("finish");
        assert_eq!(holding(&store, person), ["anna/INBOX/4"]);
        assert_eq!(holding(&store, other), ["anna/INBOX/3"]);
        // A failed scan changes nothing.
        let failed = store.begin_scan("mail", now).expect("begin");
        store.fail_scan(failed, 0, "io", "down", now).expect("fail");
        assert_eq!(holding(&store, person), ["anna/INBOX/4"]);
    });
}

#[test]
fn places_where_nothing_went_are_not_read_again() {
    on_both_engines("places_where_nothing_went_are_not_read_again", |open| {
        let mut store = open();
        let now = Utc::now();
        let places = |store: &Store| {
            let mut places = identity_index::places(store.db(), "mail").expect("places");
            places.sort();
            places
        };
        let first = store.begin_scan("mail", now).expect("begin");
        store
            .record_rows(
                first,
                "mail",
                &[
                    identity([1; 16], "anna/INBOX/1"),
                    identity([2; 16], "anna/INBOX/2"),
                    identity([3; 16], "anna/Sent/5"),
                ],
            )
            .expect("stage");
        finish_carried(&mut store, first, &[], now);
        assert_eq!(places(&store), ["anna/INBOX", "anna/Sent"]);
        // INBOX read incrementally, nothing gone there; Sent not read at all, so
        // its entry goes (and its place with it).
        let keep_inbox = [CarriedScope {
            prefix: "anna/INBOX".into(),
            gone: Vec::new(),
            present: None,
            left_out: None,
        }];
        let second = store.begin_scan("mail", now).expect("begin");
        finish_carried(&mut store, second, &keep_inbox, now);
        assert_eq!(holding(&store, [1; 16]), ["anna/INBOX/1"]);
        assert!(holding(&store, [3; 16]).is_empty());
        assert_eq!(places(&store), ["anna/INBOX"]);
        // Now every place is kept whole: the older entries stay unread.
        let third = store.begin_scan("mail", now).expect("begin");
        store
            .record_rows(third, "mail", &[identity([4; 16], "anna/INBOX/7")])
            .expect("stage");
        finish_carried(&mut store, third, &keep_inbox, now);
        for (hash, path) in [
            ([1; 16], "anna/INBOX/1"),
            ([2; 16], "anna/INBOX/2"),
            ([4; 16], "anna/INBOX/7"),
        ] {
            assert_eq!(holding(&store, hash), [path]);
        }
        assert_eq!(places(&store), ["anna/INBOX"]);
        // A message gone from it: read again, and it goes.
        let fourth = store.begin_scan("mail", now).expect("begin");
        let gone = [CarriedScope {
            prefix: "anna/INBOX".into(),
            gone: vec!["anna/INBOX/2".into()],
            present: None,
            left_out: None,
        }];
        finish_carried(&mut store, fourth, &gone, now);
        assert!(holding(&store, [2; 16]).is_empty());
        assert_eq!(holding(&store, [1; 16]), ["anna/INBOX/1"]);
    });
}

/// Hashes spread over every bucket, one per message number.
fn spread(number: u32) -> [u8; 16] {
    let mut hash = [0u8; 16];
    hash[..4].copy_from_slice(&number.wrapping_mul(2_654_435_761).to_be_bytes());
    hash[12..].copy_from_slice(&number.to_be_bytes());
    hash
}

/// Stage messages `numbers` of anna's INBOX for scan `id`, `per_batch` at a
/// time, each message's rows made by `rows` from its number and path.
fn stage_messages(
    store: &mut Store,
    id: i64,
    numbers: &[u32],
    per_batch: usize,
    rows: impl for<'p> Fn(u32, &'p str) -> Vec<NewIdentity<'p>>,
) {
    for part in numbers.chunks(per_batch) {
        let paths: Vec<String> = part.iter().map(|n| format!("anna/INBOX/{n}")).collect();
        let batch: Vec<NewIdentity<'_>> = part
            .iter()
            .zip(&paths)
            .flat_map(|(&n, path)| rows(n, path))
            .collect();
        store.record_rows(id, "mail", &batch).expect("stage");
    }
}

/// Finish scan `id` as an incremental read of anna's INBOX in which the
/// messages `present` are there.
fn finish_with_present(store: &mut Store, id: i64, present: &[u32], now: chrono::DateTime<Utc>) {
    let carried = [CarriedScope {
        prefix: "anna/INBOX".into(),
        gone: Vec::new(),
        present: Some(std::sync::Arc::new(present.to_vec())),
        left_out: None,
    }];
    finish_carried(store, id, &carried, now);
}

#[test]
fn many_incremental_scans_are_merged_and_spilled_rows_count_like_held_ones() {
    on_both_engines(
        "many_incremental_scans_are_merged_and_spilled_rows_count_like_held_ones",
        |open| {
            let mut store = open();
            // Spill to the temporary table at every batch.
            store.staging = identity_index::Staging::spilling_at(1);
            let now = Utc::now();
            let mut present: Vec<u32> = Vec::new();
            // Ten incremental scans, each reading 300 new messages (two batches) and
            // learning that every seventh older one is gone.
            for scan in 0..10u32 {
                let id = store.begin_scan("mail", now).expect("begin");
                let new: Vec<u32> = (scan * 300..scan * 300 + 300).collect();
                stage_messages(&mut store, id, &new, 150, |n, path| {
                    vec![identity(spread(n), path)]
                });
                present.retain(|n| n % 7 != scan % 7 || *n == 0);
                present.extend(&new);
                finish_with_present(&mut store, id, &present, now);
                let runs = count(
                    &store,
                    "SELECT count(DISTINCT run) FROM identity_segments WHERE source = 'mail'",
                );
                assert!(runs <= identity_index::MAX_RUNS, "{runs}");
            }
            // Every message present is found under its own hash, and nothing else.
            for n in 0..3000u32 {
                let found = holding(&store, spread(n));
                if present.contains(&n) {
                    assert_eq!(found, [format!("anna/INBOX/{n}")], "{n}");
                } else {
                    assert!(found.is_empty(), "{n} is gone: {found:?}");
                }
            }
            let held = count(&store, "SELECT sum(entries) FROM identity_segments");
            assert_eq!(held as usize, present.len());
            // A failed scan's spilled rows never reach the index.
            let failed = store.begin_scan("mail", now).expect("begin");
            store
                .record_rows(failed, "mail", &[identity([0xee; 16], "anna/INBOX/9999")])
                .expect("stage");
            store.fail_scan(failed, 0, "io", "down", now).expect("fail");
            assert!(holding(&store, [0xee; 16]).is_empty());
            let spilled = count(&store, "SELECT count(*) FROM staged_identity_segments");
            assert_eq!(spilled, 0);
        },
    );
}

#[test]
fn an_address_in_every_message_takes_bounded_segments_and_stays_whole() {
    on_both_engines(
        "an_address_in_every_message_takes_bounded_segments_and_stays_whole",
        |open| {
            let mut store = open();
            let now = Utc::now();
            // The mailbox's own address (or a list's) in every message, beside
            // a sender of its own per message; three incremental scans with a
            // spill at every batch, then six more read whole, so that runs
            // are spilled, written and merged.
            let everyone = [0x42; 16];
            let mut present: Vec<u32> = Vec::new();
            for scan in 0..9u32 {
                store.staging =
                    identity_index::Staging::spilling_at(if scan < 3 { 1 } else { usize::MAX });
                let id = store.begin_scan("mail", now).expect("begin");
                let new: Vec<u32> = (scan * 2_500..scan * 2_500 + 2_500).collect();
                stage_messages(&mut store, id, &new, 1_000, |n, path| {
                    vec![identity(spread(n), path), identity(everyone, path)]
                });
                present.extend(&new);
                finish_with_present(&mut store, id, &present, now);
            }
            // No segment holds more than the most, the shared address's
            // entries take several, and every one of them is found.
            let largest = count(&store, "SELECT max(entries) FROM identity_segments");
            assert!(largest <= identity_index::MAX_SEGMENT_ENTRIES, "{largest}");
            let found = holding(&store, everyone);
            assert_eq!(found.len(), present.len());
            let mut expected: Vec<String> =
                present.iter().map(|n| format!("anna/INBOX/{n}")).collect();
            let mut found_sorted = found.clone();
            found_sorted.sort();
            expected.sort();
            assert_eq!(found_sorted, expected);
            for n in [0u32, 7_499, 22_499] {
                assert_eq!(holding(&store, spread(n)), [format!("anna/INBOX/{n}")]);
            }
            let held = count(&store, "SELECT sum(entries) FROM identity_segments");
            assert_eq!(held as usize, 2 * present.len());
        },
    );
}

#[test]
fn open_findings_read_a_page_at_a_time_are_all_of_them_in_order() {
    on_both_engines(
        "open_findings_read_a_page_at_a_time_are_all_of_them_in_order",
        |open| {
            let mut store = open();
            let now = Utc::now();
            let id = store.begin_scan("share", now).expect("begin");
            let seen: Vec<NewFinding> = ["b", "a"]
                .iter()
                .flat_map(|rule| {
                    ["z", "x/1", "x/10", "x/2", "é", "y"].map(|path| finding(rule, path))
                })
                .collect();
            store
                .record_findings(id, "share", now, &seen)
                .expect("record");
            let other = store.begin_scan("other", now).expect("begin");
            store
                .record_findings(other, "other", now, &[finding("a", "x/1")])
                .expect("record");
            let whole: Vec<(String, String)> = store
                .findings(FindingFilter::Open, Some("share"), None)
                .expect("findings")
                .into_iter()
                .map(|f| (f.rule, f.record_id))
                .collect();
            assert_eq!(whole.len(), 12);
            for per_page in [1, 5, 12, 50] {
                let mut paged = Vec::new();
                let mut last: Option<Finding> = None;
                loop {
                    let page = store
                        .open_findings_page("share", last.as_ref(), per_page)
                        .expect("page");
                    assert!(page.len() <= per_page);
                    let Some(end) = page.last().cloned() else {
                        break;
                    };
                    paged.extend(page.into_iter().map(|f| (f.rule, f.record_id)));
                    last = Some(end);
                }
                assert_eq!(paged, whole, "{per_page} a page");
            }
        },
    );
}

#[test]
fn findings_open_at_a_moment_read_in_pages_are_all_of_them_by_rule_and_age() {
    on_both_engines(
        "findings_open_at_a_moment_read_in_pages_are_all_of_them_by_rule_and_age",
        |open| {
            let mut store = open();
            // Whole seconds, as the store keeps times.
            let start =
                chrono::DateTime::from_timestamp(Utc::now().timestamp() - 3600, 0).expect("a time");
            let id = store.begin_scan("share", start).expect("begin");
            // Rule b's findings first and newest first, so that neither the
            // table's order nor the time's is the answer's.
            let mut expected = Vec::new();
            for (minute, rule, path) in [
                (9, "b", "z"),
                (8, "b", "y"),
                (7, "a", "x/2"),
                (1, "b", "w"),
                (5, "a", "x/1"),
                (5, "a", "x/10"),
                (3, "a", "é"),
            ] {
                let at = start + TimeDelta::minutes(minute);
                store
                    .record_findings(id, "share", at, &[finding(rule, path)])
                    .expect("record");
                expected.push((rule.to_owned(), minute, path.to_owned()));
            }
            // By rule, then oldest first; seen at the same minute: as found.
            expected.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
            let moment = start + TimeDelta::minutes(30);
            let whole = store.open_at(moment).expect("open at");
            let listed: Vec<(String, i64, String)> = whole
                .iter()
                .map(|f| {
                    let minute = (f.first_seen - start).num_minutes();
                    (f.rule.clone(), minute, f.record_path.clone())
                })
                .collect();
            assert_eq!(listed, expected);
            for page in [1, 2, 6, 7, 100] {
                assert_eq!(
                    store.open_at_in_pages(moment, page).expect("paged"),
                    whole,
                    "{page} a page"
                );
            }
            // Before the fourth minute only the two seen by then were open.
            let early = store
                .open_at(start + TimeDelta::minutes(4))
                .expect("open at");
            assert_eq!(early.len(), 2, "{early:?}");
            let mut counted = BTreeMap::new();
            for finding in &whole {
                *counted
                    .entry((finding.rule.clone(), finding.custodian.clone()))
                    .or_insert(0u64) += 1;
            }
            assert_eq!(store.open_counts_at(moment).expect("counts"), counted);
        },
    );
}

/// The one number `sql` selects.
/// Run `sql` on the store's database, as if time had passed (leases and
/// claims are set by the database's clock, which a test cannot move).
fn execute(store: &Store, sql: &str) {
    store.db().execute(sql, &[]).expect("execute");
}

/// Every lease and claim runs out, as `seconds` passing would make them.
fn pass_time(store: &Store, seconds: i64) {
    execute(
        store,
        &format!("UPDATE scan_leases SET expires_at = expires_at - {seconds}"),
    );
    execute(
        store,
        &format!(
            "UPDATE outbox SET claimed_until = claimed_until - {seconds},
                 next_attempt_at = next_attempt_at - {seconds}"
        ),
    );
}

fn count(store: &Store, sql: &str) -> i64 {
    store.db().query(sql, &[]).expect("query")[0]
        .int(0)
        .expect("a number")
}

fn open_ids(store: &Store) -> Vec<String> {
    store
        .findings(FindingFilter::Open, Some("share"), None)
        .expect("findings")
        .into_iter()
        .map(|f| format!("{}:{}", f.rule, f.record_id))
        .collect()
}

fn scan(store: &mut Store, seen: &[NewFinding], status: ScanStatus, unread: &[&str]) -> ScanTally {
    let now = Utc::now();
    let id = store.begin_scan("share", now).expect("begin");
    store
        .record_findings(id, "share", now, seen)
        .expect("record");
    if status == ScanStatus::Failed {
        store
            .fail_scan(id, 0, "root_unreadable", "gone", now)
            .expect("fail");
        return ScanTally::default();
    }
    let unread: Vec<String> = unread.iter().map(|p| p.to_string()).collect();
    let end = ScanEnd {
        status,
        problems: &[("permission_denied", 1)],
        unread_prefixes: &unread,
        ..ScanEnd::complete(seen.len() as u64, now)
    };
    store.finish_scan(id, &end).expect("finish")
}

#[test]
fn findings_resolve_only_when_a_finished_scan_no_longer_sees_them() {
    on_both_engines(
        "findings_resolve_only_when_a_finished_scan_no_longer_sees_them",
        |open| {
            let mut store = open();
            let a = finding("r", "hr/a.pdf");
            let b = finding("r", "hr/b.pdf");
            let c = finding("r", "logs/c.log");
            let tally = scan(
                &mut store,
                &[a.clone(), b.clone(), c.clone()],
                ScanStatus::Complete,
                &[],
            );
            assert_eq!(
                tally,
                ScanTally {
                    new: 3,
                    resolved: 0,
                    open: 3
                }
            );

            // A failed scan that saw nothing resolves nothing.
            scan(&mut store, &[], ScanStatus::Failed, &[]);
            assert_eq!(
                open_ids(&store),
                ["r:hr/a.pdf", "r:hr/b.pdf", "r:logs/c.log"]
            );

            // A partial scan that could not read hr/ keeps hr/ findings; c is gone.
            let tally = scan(&mut store, &[], ScanStatus::Partial, &["hr"]);
            assert_eq!(tally.resolved, 1);
            assert_eq!(open_ids(&store), ["r:hr/a.pdf", "r:hr/b.pdf"]);

            // "hr" protects "hr/…" but not "hrx/…".
            let d = finding("r", "hrx/d.pdf");
            scan(
                &mut store,
                &[a.clone(), b.clone(), d],
                ScanStatus::Complete,
                &[],
            );
            let tally = scan(&mut store, &[], ScanStatus::Partial, &["hr"]);
            assert_eq!(tally.resolved, 1);
            assert_eq!(open_ids(&store), ["r:hr/a.pdf", "r:hr/b.pdf"]);

            // An empty prefix protects everything.
            let tally = scan(&mut store, &[], ScanStatus::Partial, &[""]);
            assert_eq!(tally.resolved, 0);

            // A complete scan that sees only a resolves b, exactly.
            let tally = scan(
                &mut store,
                std::slice::from_ref(&a),
                ScanStatus::Complete,
                &[],
            );
            assert_eq!(
                tally,
                ScanTally {
                    new: 0,
                    resolved: 1,
                    open: 1
                }
            );
            assert_eq!(open_ids(&store), ["r:hr/a.pdf"]);

            // b coming back is a new finding; history keeps the resolved one.
            let tally = scan(&mut store, &[a, b], ScanStatus::Complete, &[]);
            assert_eq!(tally.new, 1);
            let resolved = store
                .findings(FindingFilter::Resolved, Some("share"), None)
                .expect("resolved");
            assert_eq!(
                resolved
                    .iter()
                    .filter(|f| f.record_id == "hr/b.pdf")
                    .count(),
                1
            );
        },
    );
}

#[test]
fn first_seen_stays_and_last_seen_moves() {
    on_both_engines("first_seen_stays_and_last_seen_moves", |open| {
        let mut store = open();
        let earlier = Utc::now() - TimeDelta::days(3);
        let id = store.begin_scan("share", earlier).expect("begin");
        store
            .record_findings(id, "share", earlier, &[finding("r", "a")])
            .expect("record");
        let end = ScanEnd::complete(1, earlier);
        store.finish_scan(id, &end).expect("finish");
        scan(&mut store, &[finding("r", "a")], ScanStatus::Complete, &[]);
        let found = store
            .findings(FindingFilter::Open, None, None)
            .expect("findings");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].first_seen.timestamp(), earlier.timestamp());
        assert!(found[0].last_seen > found[0].first_seen);
    });
}

#[test]
fn a_scan_running_in_another_process_is_not_taken_for_a_crashed_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The daemon's store, with a scan in progress.
    let mut daemon = Store::open(dir.path()).expect("open");
    let scan = daemon.begin_scan("share", Utc::now()).expect("begin");
    // `tillsyn findings` beside it: the scan stays running.
    let beside = Store::open(dir.path()).expect("open beside");
    let last = beside.last_scan("share").expect("query").expect("a scan");
    assert_eq!((last.id, last.status), (scan, ScanStatus::Running));
    drop(beside);
    // The daemon is gone (crashed): the next opener marks it interrupted.
    drop(daemon);
    let after = Store::open(dir.path()).expect("reopen");
    let last = after.last_scan("share").expect("query").expect("a scan");
    assert_eq!(last.status, ScanStatus::Failed);
}

#[test]
fn an_index_of_rows_from_before_segments_is_rebuilt_by_reading_everything_once() {
    for (with_rows, checkpoints_left) in [(true, 0), (false, 1)] {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            // A store as migration 9 left it.
            let connection = Connection::open(dir.path().join("findings.sqlite")).expect("sqlite");
            for sql in &migrations::MIGRATIONS[..9] {
                connection.execute_batch(sql).expect("migrate");
            }
            connection
                .pragma_update(None, "user_version", 9)
                .expect("version");
            connection
                .execute(
                    "INSERT INTO checkpoints (source, key, value, updated_at)
                     VALUES ('mail', 'uidvalidity', '42', 0)",
                    [],
                )
                .expect("checkpoint");
            if with_rows {
                connection
                    .execute(
                        "INSERT INTO identities VALUES (x'01', 'mail', 'INBOX/1', 'from',
                             'email', 'INBOX/1', 'message', 'INBOX', NULL, 1)",
                        [],
                    )
                    .expect("row");
            }
        }
        let store = Store::open(dir.path()).expect("open");
        let left = count(&store, "SELECT count(*) FROM checkpoints");
        assert_eq!(left, checkpoints_left, "rows before: {with_rows}");
        assert!(holding(&store, [1; 16]).is_empty());
    }
}

#[test]
fn interrupted_scans_are_failed_on_reopen_and_migrations_are_idempotent() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut store = Store::open(dir.path()).expect("open");
        store.begin_scan("share", Utc::now()).expect("begin");
        store
            .set_checkpoint("share", "uidvalidity", "42", Utc::now())
            .expect("checkpoint");
    }
    let store = Store::open(dir.path()).expect("reopen");
    let last = store.last_scan("share").expect("query").expect("a scan");
    assert_eq!(last.status, ScanStatus::Failed);
    assert_eq!(last.error_kind.as_deref(), Some("interrupted"));
    assert_eq!(
        store.schema_version().expect("version"),
        migrations::MIGRATIONS.len()
    );
    assert_eq!(
        store
            .checkpoint("share", "uidvalidity")
            .expect("checkpoint")
            .as_deref(),
        Some("42")
    );
    let mode = std::fs::metadata(dir.path().join("findings.sqlite"))
        .expect("db")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn refuses_a_newer_schema() {
    on_both_engines("newer_schema", |open| {
        let store = open();
        // What a newer tillsyn would have left.
        let bump = match store.db().engine() {
            db::Engine::Sqlite => "PRAGMA user_version = 99",
            db::Engine::Postgres => "UPDATE schema_version SET version = 99",
        };
        store.db().batch(bump).expect("bump");
        drop(store);
        // The opener panics with the error it got.
        let refused = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(open)) {
            Ok(_) => unreachable!("a newer schema was opened"),
            Err(payload) => payload
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_default(),
        };
        assert!(
            refused.contains("TooNew") && refused.contains("found: 99"),
            "{refused}"
        );
    });
}

#[test]
fn carried_scopes_keep_unchanged_records_and_resolve_the_gone_and_checkpoints_follow_finished_scans()
 {
    on_both_engines("carried_scopes", |open| {
        let mut store = open();
        let a = finding("cc", "anna/INBOX/1");
        let b = finding("cc", "anna/INBOX/2");
        let c = finding("cc", "bo/INBOX/3");
        scan(&mut store, &[a, b, c], ScanStatus::Complete, &[]);
        let now = Utc::now();
        let id = store.begin_scan("share", now).expect("begin");
        let carried = [CarriedScope {
            prefix: "anna/INBOX".into(),
            gone: vec!["anna/INBOX/2".into()],
            present: None,
            left_out: None,
        }];
        let checkpoints = BTreeMap::from([("anna/INBOX".to_owned(), "7:3".to_owned())]);
        let end = ScanEnd {
            carried: &carried,
            checkpoints: &checkpoints,
            ..ScanEnd::complete(0, now)
        };
        let tally = store.finish_scan(id, &end).expect("finish");
        // 1 carried (unchanged), 2 gone (resolved), 3 not seen and not carried (resolved).
        assert_eq!(
            tally,
            ScanTally {
                new: 0,
                resolved: 2,
                open: 1
            }
        );
        assert_eq!(open_ids(&store), ["cc:anna/INBOX/1"]);
        assert_eq!(
            store.checkpoints("share").expect("checkpoints"),
            checkpoints
        );
        // A failed scan keeps the old checkpoints.
        scan(&mut store, &[], ScanStatus::Failed, &[]);
        assert_eq!(
            store.checkpoints("share").expect("checkpoints"),
            checkpoints
        );
    });
}

#[test]
fn a_units_scan_decides_only_within_its_accounts() {
    on_both_engines("unit_scan_within", |open| {
        let mut store = open();
        // `anna.b` sorts among `anna/…` bytewise: a unit is its prefix, not
        // a range.
        let seen = [
            finding("cc", "anna/INBOX/1"),
            finding("cc", "anna/INBOX/2"),
            finding("cc", "bo/INBOX/3"),
            finding("cc", "anna.b/INBOX/9"),
        ];
        let anna_keys = [key("anna/INBOX/1"), key("anna/INBOX/2")];
        let bo_keys = [key("bo/INBOX/3")];
        let now = Utc::now();
        let first = store.begin_scan("share", now).expect("begin");
        store
            .record_findings(first, "share", now, &seen)
            .expect("findings");
        store
            .record_conflict_keys(
                first,
                "share",
                &[anna_keys.as_slice(), bo_keys.as_slice()].concat(),
            )
            .expect("keys");
        let checkpoints = BTreeMap::from([
            ("anna/INBOX".to_owned(), "1:2".to_owned()),
            ("bo/INBOX".to_owned(), "1:3".to_owned()),
            ("anna.b/INBOX".to_owned(), "1:9".to_owned()),
        ]);
        let whole = ScanEnd {
            checkpoints: &checkpoints,
            ..ScanEnd::complete(3, now)
        };
        store.finish_scan(first, &whole).expect("finish");

        // Anna's account alone, read again: message 2 went. Bo's finding,
        // keys and checkpoint are none of this scan's business.
        let later = now + TimeDelta::seconds(10);
        let unit = store.begin_scan("share", later).expect("begin");
        store
            .record_findings(unit, "share", later, &seen[..1])
            .expect("findings");
        store
            .record_conflict_keys(unit, "share", &anna_keys[..1])
            .expect("keys");
        let anna_checkpoint = BTreeMap::from([("anna/INBOX".to_owned(), "1:9".to_owned())]);
        let within = ["anna".to_owned()];
        let tally = store
            .finish_scan(
                unit,
                &ScanEnd {
                    within: &within,
                    checkpoints: &anna_checkpoint,
                    finished_at: later,
                    record_cache: RecordCacheUpdate::Keep,
                    ..whole
                },
            )
            .expect("finish");
        assert_eq!(tally.resolved, 1, "only anna/INBOX/2");
        assert_eq!(
            open_ids(&store),
            ["cc:anna.b/INBOX/9", "cc:anna/INBOX/1", "cc:bo/INBOX/3"]
        );
        assert_eq!(
            store
                .checkpoints_within("share", &within)
                .expect("checkpoints"),
            anna_checkpoint
        );
        assert_eq!(
            count(
                &store,
                "SELECT count(*) FROM conflict_keys WHERE record_path = 'bo/INBOX/3'"
            ),
            1
        );
        assert_eq!(
            count(
                &store,
                "SELECT count(*) FROM conflict_keys WHERE record_path = 'anna/INBOX/2'"
            ),
            0
        );
        assert_eq!(
            store.checkpoints("share").expect("checkpoints"),
            BTreeMap::from([
                ("anna/INBOX".to_owned(), "1:9".to_owned()),
                ("bo/INBOX".to_owned(), "1:3".to_owned()),
                ("anna.b/INBOX".to_owned(), "1:9".to_owned()),
            ])
        );
        // The same scan over the whole source resolves Bo's too: the
        // scope is what kept it.
        let last = later + TimeDelta::seconds(10);
        let whole_again = store.begin_scan("share", last).expect("begin");
        store
            .record_findings(whole_again, "share", last, &seen[..1])
            .expect("findings");
        let tally = store
            .finish_scan(
                whole_again,
                &ScanEnd {
                    finished_at: last,
                    record_cache: RecordCacheUpdate::Keep,
                    ..whole
                },
            )
            .expect("finish");
        assert_eq!(tally.resolved, 2, "bo/INBOX/3 and anna.b/INBOX/9");
        assert_eq!(open_ids(&store), ["cc:anna/INBOX/1"]);
    });
}

#[test]
fn a_scan_left_running_by_a_process_without_a_lease_is_failed_by_the_next_scan() {
    on_both_engines("dead_holders_scans", |open| {
        let mut alive = open();
        let mut dead = open();
        let mut next = open();
        let now = Utc::now();
        let status = |store: &Store, id: i64| {
            count(
                store,
                &format!("SELECT count(*) FROM scans WHERE id = {id} AND status = 'running'"),
            )
        };
        // One process holds its lease; the other's ran out (it died).
        dead.take_lease("files", LEASE).expect("lease");
        let orphan = dead.begin_scan("files", now).expect("begin");
        pass_time(&dead, 120);
        alive.take_lease("mail", LEASE).expect("lease");
        let running = alive.begin_scan("mail", now).expect("begin");
        // A scan of another source touches neither.
        next.begin_scan("ldap", now).expect("begin");
        assert_eq!((status(&next, running), status(&next, orphan)), (1, 1));
        // The next scan of the dead one's source fails its scan; the live
        // process's scan stays running.
        next.begin_scan("files", now).expect("begin");
        next.begin_scan("mail", now).expect("begin");
        assert_eq!((status(&next, running), status(&next, orphan)), (1, 0));
        assert_eq!(
            count(
                &next,
                &format!(
                    "SELECT count(*) FROM scans WHERE id = {orphan} AND error_kind = 'interrupted'"
                )
            ),
            1
        );
    });
}

#[test]
fn a_units_lease_and_its_sources_exclude_each_other() {
    on_both_engines("unit_leases", |open| {
        let mut one = open();
        let mut other = open();
        let unit = |account: &str| tillsyn_core::unit::unit_name("mail", account);
        one.take_lease(&unit("anna"), LEASE).expect("anna");
        // Another account of the same source is free; the whole source is not.
        other.take_lease(&unit("bo"), LEASE).expect("bo");
        assert!(matches!(
            other.take_lease("mail", LEASE),
            Err(StoreError::Leased { .. })
        ));
        assert!(matches!(
            other.take_lease(&unit("anna"), LEASE),
            Err(StoreError::Leased { .. })
        ));
        // Another source is free.
        other.take_lease("files", LEASE).expect("files");
        one.release_lease(&unit("anna")).expect("release");
        other.release_lease(&unit("bo")).expect("release");
        // The whole source taken keeps every account out.
        one.take_lease("mail", LEASE).expect("whole");
        assert!(matches!(
            other.take_lease(&unit("carl"), LEASE),
            Err(StoreError::Leased { .. })
        ));
        // Run out, it is free again.
        pass_time(&one, 61);
        other
            .take_lease(&unit("carl"), LEASE)
            .expect("after the lease ran out");
    });
}

#[test]
fn numbered_scopes_resolve_what_is_no_longer_present() {
    on_both_engines(
        "numbered_scopes_resolve_what_is_no_longer_present",
        |open| {
            let mut store = open();
            let seen: Vec<NewFinding> = [1, 5, 9, 12]
                .iter()
                .map(|uid| finding("cc", &format!("anna/INBOX/{uid}")))
                .collect();
            scan(&mut store, &seen, ScanStatus::Complete, &[]);
            let now = Utc::now();
            let id = store.begin_scan("share", now).expect("begin");
            // New mail read in this scan: numbered beyond what `present` covers.
            store
                .record_findings(id, "share", now, &[finding("cc", "anna/INBOX/20")])
                .expect("record");
            let carried = [CarriedScope {
                prefix: "anna/INBOX".into(),
                gone: Vec::new(),
                present: Some(std::sync::Arc::new(vec![1, 2, 3, 9, 10])),
                left_out: None,
            }];
            let tally = finish_carried(&mut store, id, &carried, now);
            assert_eq!(tally.resolved, 2);
            assert_eq!(
                open_ids(&store),
                ["cc:anna/INBOX/1", "cc:anna/INBOX/20", "cc:anna/INBOX/9"]
            );
        },
    );
}

#[test]
fn nested_folders_are_judged_by_their_own_scope() {
    on_both_engines("nested_folders_are_judged_by_their_own_scope", |open| {
        let mut store = open();
        let seen = [
            finding("cc", "anna/Arkiv/7"),
            finding("cc", "anna/Arkiv/2024/7"),
        ];
        scan(&mut store, &seen, ScanStatus::Complete, &[]);
        let now = Utc::now();
        let id = store.begin_scan("share", now).expect("begin");
        // UID 7 is still in Arkiv but gone from Arkiv/2024.
        let carried = [
            CarriedScope {
                prefix: "anna/Arkiv".into(),
                gone: Vec::new(),
                present: Some(std::sync::Arc::new(vec![7])),
                left_out: None,
            },
            CarriedScope {
                prefix: "anna/Arkiv/2024".into(),
                gone: Vec::new(),
                present: Some(std::sync::Arc::new(vec![8])),
                left_out: None,
            },
        ];
        let tally = finish_carried(&mut store, id, &carried, now);
        assert_eq!(tally.resolved, 1);
        assert_eq!(open_ids(&store), ["cc:anna/Arkiv/7"]);
    });
}

#[test]
fn a_lease_keeps_a_second_process_out_until_it_is_released_or_runs_out() {
    on_both_engines(
        "a_lease_keeps_a_second_process_out_until_it_is_released_or_runs_out",
        |open| {
            let mut daemon = open();
            let mut once = open();
            assert_ne!(daemon.holder(), once.holder());
            daemon.take_lease("share", LEASE).expect("first lease");
            // Taking it again is the holder's renewal, not a conflict.
            daemon.take_lease("share", LEASE).expect("same holder");
            let refused = once.take_lease("share", LEASE);
            assert!(
                matches!(&refused, Err(StoreError::Leased { name, holder, .. })
            if name == "share" && holder == daemon.holder()),
                "expected Leased, got {refused:?}"
            );
            // Another source is free.
            once.take_lease("ldap", LEASE).expect("other source");
            // Renewal works only for the holder.
            assert!(daemon.renew_lease("share", LEASE).expect("renew"));
            assert!(!once.renew_lease("share", LEASE).expect("renew"));
            // Released, the other process gets it.
            daemon.release_lease("share").expect("release");
            once.take_lease("share", LEASE).expect("after release");
            // A crashed holder's lease runs out: past its expiry anyone takes it.
            pass_time(&once, 61);
            daemon
                .take_lease("share", LEASE)
                .expect("expired lease taken over");
        },
    );
}

fn put(store: &mut Store, key: &OutboxKey, address: Option<&str>) {
    assert!(
        store
            .outbox_put(NewOutboxEntry {
                key,
                address,
                subject: "subject",
                message: b"message",
            })
            .expect("put")
    );
}

#[test]
fn of_two_processes_claiming_one_message_exactly_one_wins() {
    on_both_engines(
        "of_two_processes_claiming_one_message_exactly_one_wins",
        |open| {
            let mut daemon = open();
            let mut cli = open();
            for key in [
                OutboxKey::report("2026-10"),
                OutboxKey::digest("2026-10", "p-1"),
            ] {
                let address = (key.kind == OutboxKind::Digest).then_some("a@firma.se");
                put(&mut daemon, &key, address);
                // A second put keeps the first.
                assert!(
                    !cli.outbox_put(NewOutboxEntry {
                        key: &key,
                        address,
                        subject: "another",
                        message: b"another",
                    })
                    .expect("put")
                );
                assert_eq!(cli.outbox_waiting(key.kind, true).expect("due").len(), 1);
                assert!(daemon.outbox_claim(&key, HOLD).expect("claim"));
                assert!(!cli.outbox_claim(&key, HOLD).expect("claim"));
                // A failed delivery gives the claim up; then the other may try.
                assert!(matches!(
                    daemon.outbox_failed(&key, "down", HOLD).expect("failed"),
                    AfterFailure::Retry(_)
                ));
                assert!(
                    cli.outbox_waiting(key.kind, true).expect("due").is_empty(),
                    "it waits"
                );
                assert!(cli.outbox_claim(&key, HOLD).expect("claim"));
                cli.outbox_sent(&key).expect("sent");
                // Sent is final: nobody claims it again, even once the claim
                // would have run out.
                pass_time(&daemon, 300);
                assert!(!daemon.outbox_claim(&key, HOLD).expect("claim"));
                let entry = daemon.outbox_entry(&key).expect("entry").expect("there");
                assert!(entry.sent_at.is_some());
                assert_eq!(entry.attempts, 2);
                // A digest's body is dropped once sent; the report's is kept.
                assert_eq!(entry.message.is_empty(), key.kind == OutboxKind::Digest);
            }
        },
    );
}

#[test]
fn a_stale_claim_of_a_crashed_sender_runs_out() {
    on_both_engines("a_stale_claim_of_a_crashed_sender_runs_out", |open| {
        let mut crashed = open();
        let mut next = open();
        let key = OutboxKey::report("2026-09");
        put(&mut crashed, &key, None);
        assert!(crashed.outbox_claim(&key, HOLD).expect("claim"));
        assert!(!next.outbox_claim(&key, HOLD).expect("claim"));
        pass_time(&next, 121);
        assert!(next.outbox_claim(&key, HOLD).expect("claim"));
    });
}

/// A digest that keeps failing is given up after its kind's number of
/// attempts: counted, never tried again.
#[test]
fn a_message_that_keeps_failing_is_given_up_and_counted() {
    on_both_engines("a_message_that_keeps_failing_is_given_up", |open| {
        let mut store = open();
        let key = OutboxKey::digest("2026-08", "p-2");
        put(&mut store, &key, Some("b@firma.se"));
        for attempt in 1..=OutboxKind::Digest.max_attempts() {
            assert!(store.outbox_claim(&key, HOLD).expect("claim"), "{attempt}");
            let after = store
                .outbox_failed(&key, "451 try later", std::time::Duration::from_secs(1))
                .expect("failed");
            let last = attempt == OutboxKind::Digest.max_attempts();
            assert_eq!(after == AfterFailure::GaveUp, last, "attempt {attempt}");
            pass_time(&store, 2);
        }
        assert!(!store.outbox_claim(&key, HOLD).expect("claim"));
        assert!(
            store
                .outbox_waiting(OutboxKind::Digest, false)
                .expect("waiting")
                .is_empty()
        );
        assert_eq!(
            store.outbox_next_attempt(OutboxKind::Digest).expect("next"),
            None
        );
        assert_eq!(
            store
                .outbox_counts(OutboxKind::Digest, "2026-08")
                .expect("counts"),
            OutboxCounts {
                sent: 0,
                waiting: 0,
                gave_up: 1
            }
        );
    });
}

/// A complete scan of "share" at `at` that saw `seen`; returns its id.
fn share_scan(store: &mut Store, at: chrono::DateTime<Utc>, seen: &[NewFinding]) -> i64 {
    let id = store.begin_scan("share", at).expect("begin");
    store
        .record_findings(id, "share", at, seen)
        .expect("record");
    finish_carried(store, id, &[], at);
    id
}

#[test]
fn pruning_forgets_what_is_older_than_the_retention_and_keeps_the_rest() {
    on_both_engines(
        "pruning_forgets_what_is_older_than_the_retention_and_keeps_the_rest",
        |open| {
            let mut store = open();
            let now = Utc::now();
            let long_ago = now - TimeDelta::days(500);
            let months_ago = now - TimeDelta::days(200);
            // Scan 1, 500 days ago: sees old.pdf and still.pdf.
            share_scan(
                &mut store,
                long_ago,
                &[finding("r", "old.pdf"), finding("r", "still.pdf")],
            );
            // A list source last read 500 days ago: its people are forgotten with it.
            let list = store.begin_scan("list", long_ago).expect("begin");
            store
                .record_conflict_keys(
                    list,
                    "list",
                    &[NewConflictKey {
                        rule: "c".into(),
                        side: "marked",
                        key: "k".into(),
                        record_id: "member-1".into(),
                        record_path: "member-1".into(),
                        record_kind: "contact",
                        custodian: None,
                    }],
                )
                .expect("keys");
            store
                .record_rows(list, "list", &[identity([9; 16], "member-1")])
                .expect("identities");
            let end = ScanEnd::complete(1, long_ago);
            store.finish_scan(list, &end).expect("finish");
            // Scan 2, 499 days ago: old.pdf gone (resolved then), still.pdf open.
            let second_at = long_ago + TimeDelta::days(1);
            share_scan(&mut store, second_at, &[finding("r", "still.pdf")]);
            // Scan 3, 200 days ago: inside the retention; sees still.pdf and mid.pdf.
            share_scan(
                &mut store,
                months_ago,
                &[finding("r", "still.pdf"), finding("r", "mid.pdf")],
            );
            // Scan 4 now: mid.pdf resolved now (recently: kept).
            let fourth = store.begin_scan("share", now).expect("begin");
            store
                .record_findings(fourth, "share", now, &[finding("r", "still.pdf")])
                .expect("record");
            store
                .record_rows(fourth, "share", &[identity([7; 16], "still.pdf")])
                .expect("identities");
            finish_carried(&mut store, fourth, &[], now);
            let old_report = OutboxKey::report("2025-05");
            let new_report = OutboxKey::report("2026-10");
            let unsent_report = OutboxKey::report("2025-06");
            let old_digest = OutboxKey::digest("2025-05", "p-1");
            let given_up_digest = OutboxKey::digest("2025-05", "p-2");
            let unsent_digest = OutboxKey::digest("2025-05", "p-3");
            for key in [&old_report, &new_report, &unsent_report] {
                put(&mut store, key, None);
            }
            for key in [&old_digest, &given_up_digest, &unsent_digest] {
                put(&mut store, key, Some("a@firma.se"));
            }
            for key in [&old_report, &new_report, &old_digest] {
                store.outbox_sent(key).expect("sent");
            }
            for _ in 0..OutboxKind::Digest.max_attempts() {
                store
                    .outbox_failed(&given_up_digest, "550 no", HOLD)
                    .expect("failed");
            }
            // What was sent or given up long ago, sent or given up then.
            let ago = (now - long_ago).num_seconds();
            execute(
                &store,
                &format!(
                    "UPDATE outbox SET sent_at = sent_at - {ago}, gave_up_at = gave_up_at - {ago}
                     WHERE period = '2025-05'"
                ),
            );

            let cutoff = now - TimeDelta::days(396);
            let pruned = store.prune(cutoff).expect("prune");
            assert_eq!(
                pruned,
                PruneCounts {
                    findings: 1,
                    scans: 2,
                    conflict_keys: 1,
                    identities: 1,
                    reports: 3,
                }
            );
            assert_eq!(store.identities(&[[9; 16]]).expect("lookup").len(), 0);
            assert_eq!(store.identities(&[[7; 16]]).expect("lookup").len(), 1);
            let all: Vec<String> = store
                .findings(FindingFilter::All, None, None)
                .expect("findings")
                .into_iter()
                .map(|f| {
                    format!(
                        "{}:{}",
                        f.record_id,
                        if f.resolved_at.is_some() {
                            "resolved"
                        } else {
                            "open"
                        }
                    )
                })
                .collect();
            // The 500-day-old open finding stays; the recently resolved one stays.
            assert_eq!(all, ["mid.pdf:resolved", "still.pdf:open"]);
            let kept = |key: &OutboxKey| store.outbox_entry(key).expect("outbox").is_some();
            assert!(!kept(&old_report) && !kept(&old_digest) && !kept(&given_up_digest));
            assert!(kept(&new_report));
            assert!(kept(&unsent_report), "an unsent report is never pruned");
            assert!(kept(&unsent_digest), "an unsent digest is never pruned");
            // The trend's months are intact: the latest scan and those inside it stay,
            // and so does a source's only (old) scan, which the daemon's catch-up reads.
            assert_eq!(
                store.last_scan("share").expect("last").map(|s| s.id),
                Some(fourth)
            );
            assert_eq!(
                store.last_scan("list").expect("last").map(|s| s.id),
                Some(list)
            );
            let kept = store
                .scans_between(months_ago - TimeDelta::days(1), now + TimeDelta::days(1))
                .expect("scans");
            assert_eq!(kept.len(), 2);
            // A second prune has nothing left to do.
            assert_eq!(store.prune(cutoff).expect("prune"), PruneCounts::default());
        },
    );
}

#[test]
fn a_dry_run_copy_sees_the_store_and_never_writes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut store = Store::open(dir.path()).expect("open");
        scan(
            &mut store,
            &[finding("r", "a.pdf")],
            ScanStatus::Complete,
            &[],
        );
    }
    let path = dir.path().join("findings.sqlite");
    let before = std::fs::read(&path).expect("read");
    let mut copy = Store::open_copy(dir.path()).expect("copy");
    assert_eq!(open_ids(&copy), ["r:a.pdf"]);
    // A scan in the copy resolves a.pdf there only.
    scan(&mut copy, &[], ScanStatus::Complete, &[]);
    assert!(open_ids(&copy).is_empty());
    drop(copy);
    assert_eq!(std::fs::read(&path).expect("read"), before);
    let store = Store::open(dir.path()).expect("open");
    assert_eq!(open_ids(&store), ["r:a.pdf"]);
    // Without a store yet, the copy starts empty and creates no file.
    let empty = tempfile::tempdir().expect("tempdir");
    let copy = Store::open_copy(empty.path()).expect("copy");
    assert!(open_ids(&copy).is_empty());
    assert!(!empty.path().join("findings.sqlite").exists());
}

#[test]
fn the_store_files_are_owner_only_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    // SAFETY: umask only changes this process's file-creation mask.
    let old = unsafe { libc::umask(0o000) };
    let store = Store::open(&state);
    unsafe { libc::umask(old) };
    let mut store = store.expect("open");
    scan(
        &mut store,
        &[finding("r", "a.pdf")],
        ScanStatus::Complete,
        &[],
    );
    let mode = |name: &str| {
        std::fs::metadata(state.join(name))
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(""), 0o700);
    assert_eq!(mode("findings.sqlite"), 0o600);
    assert_eq!(mode("store.lock"), 0o600);
    assert_eq!(mode("findings.sqlite-wal"), 0o600);
}

/// An exception in force takes its findings out of what counts as broken
/// (open counts, the metrics' summary, the report's open set) until it ends;
/// the mark follows the config when it is applied again.
#[test]
fn excepted_findings_count_apart_until_their_exception_ends() {
    on_both_engines(
        "excepted_findings_count_apart_until_their_exception_ends",
        |open| {
            let mut store = open();
            let held = finding("r", "Tvist/a.pdf");
            let other = finding("r", "Kunder/b.pdf");
            scan(
                &mut store,
                &[held.clone(), other.clone()],
                ScanStatus::Complete,
                &[],
            );
            let now = Utc::now();
            let ends = now + TimeDelta::days(10);
            let covered = store
                .apply_exceptions(None, |_, _, path| {
                    path.starts_with("Tvist/")
                        .then(|| ("tvist".to_owned(), ends))
                })
                .expect("apply");
            assert_eq!(covered, BTreeMap::from([("tvist".to_owned(), 1)]));
            let summary = |store: &Store, at| {
                let groups = store.open_summary(at).expect("summary");
                assert_eq!(groups.len(), 1);
                (groups[0].count, groups[0].excepted)
            };
            assert_eq!(summary(&store, now), (1, 1));
            assert_eq!(store.open_count("share").expect("count"), 1);
            let open_paths = |store: &Store, at| -> Vec<String> {
                store
                    .open_at(at)
                    .expect("open at")
                    .into_iter()
                    .map(|open| open.record_path)
                    .collect()
            };
            // (Open "at" a moment means first seen before it.)
            assert_eq!(
                open_paths(&store, now + TimeDelta::seconds(2)),
                ["Kunder/b.pdf"]
            );
            // Once it ends, both count again, without anything being applied.
            let after = ends + TimeDelta::seconds(1);
            assert_eq!(summary(&store, after), (2, 0));
            assert_eq!(open_paths(&store, after).len(), 2);
            // The config no longer has it: the mark goes, whether applied finding by
            // finding or cleared at once (no exceptions configured), and a custodian's
            // mark stays either way.
            store.apply_exceptions(None, |_, _, _| None).expect("apply");
            assert_eq!(summary(&store, now), (2, 0));
            store
                .apply_exceptions(None, |_, _, path| {
                    path.starts_with("Tvist/")
                        .then(|| ("tvist".to_owned(), ends))
                })
                .expect("apply");
            let marked = NewFinding {
                custodian_marked: true,
                ..finding("r", "Kunder/c.pdf")
            };
            scan(
                &mut store,
                &[held.clone(), other.clone(), marked],
                ScanStatus::Complete,
                &[],
            );
            store
                .apply_exceptions(None, |_, _, path| {
                    path.starts_with("Tvist/")
                        .then(|| ("tvist".to_owned(), ends))
                })
                .expect("apply");
            assert_eq!(summary(&store, now), (1, 2));
            store.clear_exceptions(None).expect("clear");
            assert_eq!(summary(&store, now), (2, 1), "the custodian's mark stays");
            store.apply_exceptions(None, |_, _, _| None).expect("apply");
            assert_eq!(summary(&store, now), (2, 1), "the custodian's mark stays");
            let listed = store
                .findings(FindingFilter::Open, None, None)
                .expect("findings");
            let marks: Vec<(&str, Option<&str>)> = listed
                .iter()
                .map(|finding| {
                    (
                        finding.record_path.as_str(),
                        finding.exception.as_ref().map(|(id, _)| id.as_str()),
                    )
                })
                .collect();
            assert_eq!(
                marks,
                [
                    ("Kunder/b.pdf", None),
                    ("Kunder/c.pdf", Some(CUSTODIAN_MARK_EXCEPTION)),
                    ("Tvist/a.pdf", None)
                ]
            );
        },
    );
}
