//! The store's promises: resolution only by finished scans, partial scans protect
//! what they could not read, interrupted scans become failed.

use std::collections::BTreeMap;

use chrono::{TimeDelta, Utc};
use tillsyn_connectors::CarriedScope;

use super::*;

/// Finish scan `id` at `now` as complete, with these carried scopes.
fn finish_carried(
    store: &mut Store,
    id: i64,
    carried: &[CarriedScope],
    now: chrono::DateTime<Utc>,
) -> ScanTally {
    let end = ScanEnd {
        status: ScanStatus::Complete,
        records: 0,
        problems: &[],
        unread_prefixes: &[],
        carried,
        checkpoints: &BTreeMap::new(),
        conflict_rules: &[],
        finished_at: now,
    };
    store.finish_scan(id, &end).expect("finish")
}

fn finding(rule: &str, path: &str) -> NewFinding {
    NewFinding {
        rule: rule.into(),
        record_id: path.into(),
        record_path: path.into(),
        record_kind: "file",
        owner: Some("anna".into()),
        severity: "medium",
        detail: "d".into(),
        age_days: Some(40),
    }
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
        records: seen.len() as u64,
        problems: &[("permission_denied", 1)],
        unread_prefixes: &unread,
        carried: &[],
        checkpoints: &BTreeMap::new(),
        conflict_rules: &[],
        finished_at: now,
    };
    store.finish_scan(id, &end).expect("finish")
}

#[test]
fn findings_resolve_only_when_a_finished_scan_no_longer_sees_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(dir.path()).expect("open");
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
}

#[test]
fn first_seen_stays_and_last_seen_moves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(dir.path()).expect("open");
    let earlier = Utc::now() - TimeDelta::days(3);
    let id = store.begin_scan("share", earlier).expect("begin");
    store
        .record_findings(id, "share", earlier, &[finding("r", "a")])
        .expect("record");
    let end = ScanEnd {
        status: ScanStatus::Complete,
        records: 1,
        problems: &[],
        unread_prefixes: &[],
        carried: &[],
        checkpoints: &BTreeMap::new(),
        conflict_rules: &[],
        finished_at: earlier,
    };
    store.finish_scan(id, &end).expect("finish");
    scan(&mut store, &[finding("r", "a")], ScanStatus::Complete, &[]);
    let found = store
        .findings(FindingFilter::Open, None, None)
        .expect("findings");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].first_seen.timestamp(), earlier.timestamp());
    assert!(found[0].last_seen > found[0].first_seen);
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
    let dir = tempfile::tempdir().expect("tempdir");
    drop(Store::open(dir.path()).expect("open"));
    let connection = Connection::open(dir.path().join("findings.sqlite")).expect("raw");
    connection
        .pragma_update(None, "user_version", 99i64)
        .expect("bump");
    drop(connection);
    assert!(matches!(
        Store::open(dir.path()),
        Err(StoreError::TooNew { found: 99, .. })
    ));
}

#[test]
fn carried_scopes_keep_unchanged_records_and_resolve_the_gone_and_checkpoints_follow_finished_scans()
 {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(dir.path()).expect("open");
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
    }];
    let checkpoints = BTreeMap::from([("anna/INBOX".to_owned(), "7:3".to_owned())]);
    let end = ScanEnd {
        status: ScanStatus::Complete,
        records: 0,
        problems: &[],
        unread_prefixes: &[],
        carried: &carried,
        checkpoints: &checkpoints,
        conflict_rules: &[],
        finished_at: now,
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
}

#[test]
fn numbered_scopes_resolve_what_is_no_longer_present() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(dir.path()).expect("open");
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
    }];
    let tally = finish_carried(&mut store, id, &carried, now);
    assert_eq!(tally.resolved, 2);
    assert_eq!(
        open_ids(&store),
        ["cc:anna/INBOX/1", "cc:anna/INBOX/20", "cc:anna/INBOX/9"]
    );
}

#[test]
fn nested_folders_are_judged_by_their_own_scope() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(dir.path()).expect("open");
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
        },
        CarriedScope {
            prefix: "anna/Arkiv/2024".into(),
            gone: Vec::new(),
            present: Some(std::sync::Arc::new(vec![8])),
        },
    ];
    let tally = finish_carried(&mut store, id, &carried, now);
    assert_eq!(tally.resolved, 1);
    assert_eq!(open_ids(&store), ["cc:anna/Arkiv/7"]);
}
