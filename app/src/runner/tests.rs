//! The runner's own tests: failures, deadlines, leases, contention and the
//! record cache, each over a real store.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tillsyn_connectors::{CancelFlag, ConnectorError, RecordSink, ScanContext, ScanReport};
use tillsyn_rules::RuleSet;
use tillsyn_store::{ScanStatus, Store, StoreError};

use super::*;

fn setup() -> (tempfile::TempDir, Arc<Mutex<Store>>, RuleSet) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Mutex::new(Store::open(dir.path()).expect("store")));
    let rules = RuleSet::new(&[], chrono_tz::UTC).expect("rules");
    (dir, store, rules)
}

/// A runner over `rules` and `store` that prunes nothing.
fn runner<'a>(rules: &'a RuleSet, store: &'a Arc<Mutex<Store>>, stop: &'a Stop) -> Runner<'a> {
    Runner {
        rules,
        retention: None,
        store,
        stop,
    }
}

fn quick_stop() -> Stop {
    Stop {
        flag: CancelFlag::default(),
        grace: Duration::from_millis(100),
    }
}

/// Scan source `s` with `read` under `timeout`, with a short grace.
async fn scan_reading<F>(
    store: &Arc<Mutex<Store>>,
    rules: &RuleSet,
    timeout: Duration,
    read: impl FnOnce(ScanContext, RecordSink) -> F,
) -> Result<ScanOutcome, RunError>
where
    F: std::future::Future<Output = Result<ScanReport, ConnectorError>> + Send + 'static,
{
    let stop = quick_stop();
    let runner = runner(rules, store, &stop);
    runner
        .scan_with(Job::whole("s", timeout, 0), read, Utc::now())
        .await
}

fn last_scan(store: &Arc<Mutex<Store>>) -> tillsyn_store::ScanRow {
    store
        .lock()
        .expect("lock")
        .last_scan("s")
        .expect("scan")
        .expect("a scan row")
}

#[tokio::test]
#[allow(clippy::panic)]
async fn a_panicking_reader_fails_its_scan_and_nothing_else() {
    let (_dir, store, rules) = setup();
    let read = |_context: ScanContext, _sink: RecordSink| async move {
        if std::hint::black_box(true) {
            panic!("a parser met something it did not expect");
        }
        Ok(ScanReport::default())
    };
    let outcome = scan_reading(&store, &rules, Duration::from_secs(60), read)
        .await
        .expect("the runner itself survives");
    assert_eq!(outcome.status, ScanStatus::Failed);
    let (kind, message) = outcome.error.expect("an error");
    assert_eq!(kind, "panic");
    assert!(message.contains("did not expect"), "{message}");
    let row = last_scan(&store);
    assert_eq!(row.status, ScanStatus::Failed);
    assert_eq!(row.error_kind.as_deref(), Some("panic"));
    // The lease is given back: the next scan runs.
    let outcome = scan_reading(
        &store,
        &rules,
        Duration::from_secs(60),
        |_c: ScanContext, _s: RecordSink| async { Ok(ScanReport::default()) },
    )
    .await
    .expect("scan");
    assert_eq!(outcome.status, ScanStatus::Complete);
}

#[tokio::test]
async fn the_deadline_stops_a_reader_that_polls_the_flag() {
    let (_dir, store, rules) = setup();
    let read = |context: ScanContext, _sink: RecordSink| async move {
        while !context.cancel.is_cancelled() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Err(ConnectorError::Cancelled)
    };
    let outcome = scan_reading(&store, &rules, Duration::from_millis(50), read)
        .await
        .expect("runner");
    assert_eq!(outcome.status, ScanStatus::Failed);
    assert_eq!(outcome.error.expect("error").0, "timeout");
    assert_eq!(last_scan(&store).error_kind.as_deref(), Some("timeout"));
}

#[tokio::test]
async fn the_deadline_cuts_off_a_reader_stuck_where_it_cannot_poll() {
    let (_dir, store, rules) = setup();
    // As a walker blocked in a hung NFS stat: it never looks at the flag.
    let read = |_context: ScanContext, _sink: RecordSink| async move {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(ScanReport::default())
    };
    let outcome = scan_reading(&store, &rules, Duration::from_millis(50), read)
        .await
        .expect("runner");
    assert_eq!(outcome.status, ScanStatus::Failed);
    assert_eq!(outcome.error.expect("error").0, "timeout");
}

#[tokio::test]
async fn a_source_leased_by_another_process_is_not_scanned() {
    let (dir, store, rules) = setup();
    let mut other = Store::open(dir.path()).expect("second process");
    other
        .take_lease("s", std::time::Duration::from_secs(60))
        .expect("lease");
    let result = scan_reading(
        &store,
        &rules,
        Duration::from_secs(60),
        |_c: ScanContext, _s: RecordSink| async { Ok(ScanReport::default()) },
    )
    .await;
    assert!(
        matches!(result, Err(RunError::Store(StoreError::Leased { .. }))),
        "{result:?}"
    );
    assert!(
        store
            .lock()
            .expect("lock")
            .last_scan("s")
            .expect("scan")
            .is_none(),
        "nothing was recorded"
    );
}

/// A share scanned at `now` with the config `toml` (its sources and
/// rules; the state in `dir`).
async fn scan_share_at(
    dir: &std::path::Path,
    toml: &str,
    store: &Arc<Mutex<Store>>,
    now: DateTime<Utc>,
) -> (ScanOutcome, std::collections::BTreeSet<String>) {
    let config = tillsyn_config::parse(toml, &dir.join("tillsyn.toml")).expect("config");
    let rules = RuleSet::for_config(&config)
        .expect("rules")
        .with_identity_key(tillsyn_core::identity::IdentityKey::new(
            tillsyn_core::secret::Secret::new(b"record cache test key".to_vec()),
        ));
    let source_config = &config.sources[0];
    let source = Source::build(&source_config.settings).expect("source");
    let job = Job::whole(
        &source_config.name,
        Duration::from_secs(60),
        source_config.fingerprint(),
    );
    let stop = quick_stop();
    let outcome = runner(&rules, store, &stop)
        .scan_source(job, &source, now)
        .await
        .expect("scan");
    assert_eq!(outcome.status, ScanStatus::Complete, "{outcome:?}");
    let open = store
        .lock()
        .expect("lock")
        .findings(tillsyn_store::FindingFilter::Open, None, None)
        .expect("findings")
        .into_iter()
        .map(|finding| format!("{}:{}", finding.rule, finding.record_path))
        .collect();
    (outcome, open)
}

fn file_at(path: &std::path::Path, text: &str, modified: DateTime<Utc>) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
    std::fs::write(path, text).expect("file");
    let file = std::fs::File::options()
        .append(true)
        .open(path)
        .expect("open");
    file.set_modified(modified.into()).expect("mtime");
}

/// Per rule of source `share`: records checked, custodians, complete.
fn checked(store: &Arc<Mutex<Store>>) -> Vec<(String, u64, usize, bool)> {
    store
        .lock()
        .expect("lock")
        .checked_counts()
        .expect("counts")
        .into_iter()
        .filter(|row| row.source == "share")
        .map(|row| (row.rule, row.records, row.custodians.len(), row.complete))
        .collect()
}

fn counts(stale: u64, applications: u64) -> Vec<(String, u64, usize, bool)> {
    vec![
        ("applications".to_owned(), applications, 1, true),
        ("stale".to_owned(), stale, 1, true),
    ]
}

fn set(items: &[&str]) -> std::collections::BTreeSet<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

/// The record cache leaves out exactly the records that cannot be judged
/// otherwise: not one whose age passes its limit between scans, nor one
/// whose marker date changed above it, nor one rewritten; and a record
/// that went is not carried. Found exactly at every step.
#[tokio::test]
async fn the_record_cache_leaves_out_only_what_cannot_have_changed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let share = dir.path().join("share");
    let start = Utc::now();
    let days = |n: i64| chrono::TimeDelta::days(n);
    file_at(&share.join("a/old.txt"), "x", start - days(40));
    file_at(&share.join("a/young.txt"), "x", start - days(20));
    file_at(&share.join("a/fresh.txt"), "x", start - days(1));
    file_at(&share.join("b/changed.txt"), "x", start - days(40));
    file_at(&share.join("gone.txt"), "x", start - days(40));
    let filled = |ago: i64| format!("tillsatt {}\n", (start - days(ago)).format("%Y-%m-%d"));
    file_at(&share.join("jobs/j1/TILLSATT.txt"), &filled(10), start);
    file_at(&share.join("jobs/j1/cv.pdf"), "x", start - days(1));
    let toml = format!(
        "[daemon]\nstate_dir = {state:?}\n\n\
         [[sources]]\nname = \"share\"\ntype = \"fileshare\"\nroot = {root:?}\n\
         markers = [{{ file = \"TILLSATT.txt\", date = \"position_filled\" }}]\n\n\
         [[rules]]\nid = \"stale\"\nkind = \"max_age\"\npolicy = \"p\"\nmax_age = \"30d\"\n\
         timestamp = \"modified\"\nwhen = {{ exclude_paths = [\"jobs/**\"] }}\n\n\
         [[rules]]\nid = \"applications\"\nkind = \"max_age\"\npolicy = \"p\"\nmax_age = \"60d\"\n\
         timestamp = \"date:position_filled\"\nwhen = {{ paths = [\"jobs/**\"] }}\n",
        state = dir.path().join("state").display().to_string(),
        root = share.display().to_string(),
    );
    let store = Arc::new(Mutex::new(
        Store::open(&dir.path().join("state")).expect("store"),
    ));
    let files = 6;

    let (first, open) = scan_share_at(dir.path(), &toml, &store, start).await;
    assert_eq!(first.records, files);
    assert_eq!(first.work.get("records_unchanged"), None);
    assert_eq!(
        open,
        set(&["stale:a/old.txt", "stale:b/changed.txt", "stale:gone.txt"])
    );
    // Records checked: five outside jobs/, one application.
    assert_eq!(checked(&store), counts(5, 1));

    // Nothing changed: every record is left out, and what was found stands.
    let (again, open) = scan_share_at(
        dir.path(),
        &toml,
        &store,
        start + chrono::TimeDelta::minutes(1),
    )
    .await;
    assert_eq!(again.records, 0);
    assert_eq!(again.work.get("records_unchanged"), Some(&files));
    assert_eq!(
        open,
        set(&["stale:a/old.txt", "stale:b/changed.txt", "stale:gone.txt"])
    );
    assert_eq!((again.tally.new, again.tally.resolved), (0, 0));
    // What was left out still counts as checked.
    assert_eq!(checked(&store), counts(5, 1));

    // Fifteen days on: young.txt passed 30 days; the position was filled
    // 100 days ago, not 10; changed.txt was rewritten; gone.txt went.
    file_at(&share.join("b/changed.txt"), "new", start);
    std::fs::remove_file(share.join("gone.txt")).expect("remove");
    file_at(&share.join("jobs/j1/TILLSATT.txt"), &filled(100), start);
    let (later, open) = scan_share_at(dir.path(), &toml, &store, start + days(15)).await;
    assert_eq!(
        open,
        set(&[
            "applications:jobs/j1/cv.pdf",
            "stale:a/old.txt",
            "stale:a/young.txt"
        ])
    );
    // old.txt (broken for good) and fresh.txt (due in 14 more days) were
    // left out; young.txt, cv.pdf and changed.txt were judged again.
    assert_eq!(later.work.get("records_unchanged"), Some(&2));
    assert_eq!(later.records, 3);
    assert_eq!((later.tally.new, later.tally.resolved), (2, 2));
    // gone.txt no longer counts; the two left out still do.
    assert_eq!(checked(&store), counts(4, 1));

    // Other rules: nothing judged under the old ones is left out.
    let stricter = toml.replace("max_age = \"30d\"", "max_age = \"10d\"");
    let (rules_changed, open) =
        scan_share_at(dir.path(), &stricter, &store, start + days(15)).await;
    assert_eq!(rules_changed.work.get("records_unchanged"), None);
    assert_eq!(rules_changed.records, 5);
    assert_eq!(checked(&store), counts(4, 1));
    let (again, same) = scan_share_at(dir.path(), &stricter, &store, start + days(15)).await;
    assert_eq!(again.work.get("records_unchanged"), Some(&5));
    assert_eq!(same, open);
    assert_eq!(checked(&store), counts(4, 1));
    // Another identity index: records are read again for it too.
    let unindexed = format!("{stricter}\n[identity]\nenabled = false\n");
    let (identity_changed, unchanged_open) =
        scan_share_at(dir.path(), &unindexed, &store, start + days(15)).await;
    assert_eq!(identity_changed.work.get("records_unchanged"), None);
    assert_eq!(unchanged_open, open);
    assert_eq!(
        open,
        set(&[
            "applications:jobs/j1/cv.pdf",
            "stale:a/fresh.txt",
            "stale:a/old.txt",
            "stale:a/young.txt",
            "stale:b/changed.txt"
        ])
    );
}

/// A lease held elsewhere whose every renewal answers `.0`: `false`, lost
/// at its first renewal; `true`, always kept.
struct FixedLease(bool);

impl Lease for FixedLease {
    fn duration(&self) -> Duration {
        Duration::from_millis(300)
    }

    fn renew(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + '_>> {
        let kept = self.0;
        Box::pin(async move { kept })
    }
}

/// A reader that runs until its scan is asked to stop.
async fn until_stopped(
    context: ScanContext,
    _sink: RecordSink,
) -> Result<ScanReport, ConnectorError> {
    context.cancel.cancelled().await;
    Err(ConnectorError::Cancelled)
}

#[tokio::test]
async fn a_held_lease_lost_stops_the_scan_and_the_store_lease_is_given_up() {
    let (dir, store, rules) = setup();
    let stop = quick_stop();
    let runner = runner(&rules, &store, &stop);
    let job = Job {
        held: Some(&FixedLease(false)),
        ..Job::whole("s", Duration::from_secs(3600), 0)
    };
    let outcome = runner
        .scan_with(job, until_stopped, Utc::now())
        .await
        .expect("runner");
    assert_eq!(outcome.status, ScanStatus::Failed);
    assert_eq!(outcome.error.as_ref().expect("error").0, "lease_lost");
    assert!(!outcome.finished(), "a lost lease is not a finished scan");
    // The store's lease went with the scan: another process may take it.
    Store::open(dir.path())
        .expect("second process")
        .take_lease("s", Duration::from_secs(60))
        .expect("the lease is free");

    // The same scan with a lease that is kept runs until something else
    // stops it: here, its deadline.
    let job = Job {
        held: Some(&FixedLease(true)),
        ..Job::whole("s", Duration::from_millis(700), 0)
    };
    let (_dir, store, rules) = setup();
    let runner = super::tests::runner(&rules, &store, &stop);
    let outcome = runner
        .scan_with(job, until_stopped, Utc::now())
        .await
        .expect("runner");
    assert_eq!(outcome.error.as_ref().expect("error").0, "timeout");
    assert!(outcome.finished(), "a timeout ends a scan");
}

/// A file share source over an empty folder, for the contention tests.
fn empty_share(dir: &std::path::Path) -> Source {
    let root = dir.join("share");
    std::fs::create_dir_all(&root).expect("share");
    let config = tillsyn_config::parse(
        &format!(
            "[[sources]]\nname = \"s\"\ntype = \"fileshare\"\nroot = {:?}\n",
            root.display().to_string()
        ),
        &dir.join("tillsyn.toml"),
    )
    .expect("config");
    Source::build(&config.sources[0].settings).expect("source")
}

#[tokio::test]
async fn skip_reports_busy_and_wait_scans_once_the_other_process_is_done() {
    let (dir, store, rules) = setup();
    let source = empty_share(dir.path());
    let stop = quick_stop();
    let runner = runner(&rules, &store, &stop);
    let job = Job::whole("s", Duration::from_secs(60), 0);
    let mut other = Store::open(dir.path()).expect("second process");
    other
        .take_lease("s", Duration::from_secs(60))
        .expect("lease");

    let skipped = runner
        .run(job, &source, Contention::Skip)
        .await
        .expect("runner");
    assert!(
        matches!(skipped, Ran::Busy(StoreError::Leased { .. })),
        "{skipped:?}"
    );
    assert!(
        store
            .lock()
            .expect("lock")
            .last_scan("s")
            .expect("scan")
            .is_none()
    );

    // The other process gives the source up while this one waits for it.
    let (waiting, released) = tokio::join!(
        runner.run(
            job,
            &source,
            Contention::Wait {
                poll: Duration::from_millis(20)
            }
        ),
        async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            other.release_lease("s").expect("release");
        }
    );
    let () = released;
    let waited = waiting.expect("runner");
    assert!(
        matches!(&waited, Ran::Scanned(outcome) if outcome.status == ScanStatus::Complete),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn hold_keeps_busy_work_a_while_unless_stopped() {
    let (dir, store, rules) = setup();
    let source = empty_share(dir.path());
    let job = Job::whole("s", Duration::from_secs(60), 0);
    Store::open(dir.path())
        .expect("second process")
        .take_lease("s", Duration::from_secs(600))
        .expect("lease");
    let hold = Duration::from_secs(30);

    let stop = quick_stop();
    let started = tokio::time::Instant::now();
    let held = runner(&rules, &store, &stop)
        .run(job, &source, Contention::Hold(hold))
        .await
        .expect("runner");
    assert!(matches!(held, Ran::Busy(_)), "{held:?}");
    // The clock is the test's own (paused): it moved by the hold, no less.
    assert!(started.elapsed() >= hold, "{:?}", started.elapsed());

    // Stopping does not wait for the hold.
    let stopping = quick_stop();
    stopping.flag.cancel();
    let started = tokio::time::Instant::now();
    let held = runner(&rules, &store, &stopping)
        .run(job, &source, Contention::Hold(hold))
        .await
        .expect("runner");
    assert!(matches!(held, Ran::Busy(_)), "{held:?}");
    assert!(started.elapsed() < hold, "{:?}", started.elapsed());
}
