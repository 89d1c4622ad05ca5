//! The identity index at scale (issue 12): `tillsyn subject` on an index of
//! 10 million identifier occurrences, beside what the same lookup costs
//! without an index (reading the stores again).
//!
//!     cargo bench --bench subject                    # 10,000,000 occurrences
//!     cargo bench --bench subject -- --rows 1000000  # smaller
//!
//! The index is filled through the store's own API, as a scan fills it: one
//! million people, ten occurrences each (From, To or Cc of a message in one of
//! 1,000 mailboxes), staged and merged at the scan's end. Then lookups of
//! people chosen across the range are timed in process (the store query) and
//! as whole `tillsyn subject` processes (start, config, key, store, lookup,
//! report, audit log), the median of 21 each.

#[allow(dead_code)]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{arg, measure, median};
use tillsyn_rules::identity::NewIdentity;
use tillsyn_store::{IdentityBatch, ScanEnd, Store};

fn main() {
    let rows = arg("--rows").unwrap_or(10_000_000);
    let people = (rows / 10).max(1);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("mail")).expect("mail root");
    let config_path = dir.path().join("tillsyn.toml");
    std::fs::write(
        &config_path,
        "[daemon]\nstate_dir = \"state\"\ntimezone = \"Europe/Stockholm\"\n\n\
         [identity]\nread_mail_headers = true\n\n\
         [[sources]]\nname = \"mail\"\ntype = \"maildir\"\nroot = \"mail\"\n",
    )
    .expect("config");
    let config = tillsyn_config::load(&config_path).expect("config");
    let key = tillsyn_app::privacy::identity_key(&config).expect("key");
    let address = |person: u64| format!("person{person}@kund.se");

    println!("## Identity index: {rows} occurrences of {people} people\n");
    let started = Instant::now();
    let now = chrono::Utc::now();
    {
        let mut store = Store::open(&config.daemon.state_dir).expect("store");
        let scan = store.begin_scan("mail", now).expect("scan");
        let fields = ["from", "to", "cc"];
        let mut batch = IdentityBatch::default();
        for n in 0..rows {
            let person = n % people;
            let mailbox = n % 1000;
            let path = format!("acct{mailbox}@firma.se/INBOX/{n}");
            batch.push(&NewIdentity {
                hash: key.hash("email", &address(person)),
                kind: "email",
                field: fields[(n % 3) as usize],
                record_id: &path,
                record_path: &path,
                record_kind: "message",
                container: "INBOX",
                record_time: Some(now.timestamp() - (n % 1000) as i64 * 86_400),
            });
            if batch.len() == 100_000 {
                store.record_identities(scan, &mut batch).expect("stage");
            }
        }
        store.record_identities(scan, &mut batch).expect("stage");
        let end = ScanEnd {
            record_cache: tillsyn_store::RecordCacheUpdate::Keep,
            ..ScanEnd::complete(rows, chrono::Utc::now())
        };
        store.finish_scan(scan, &end).expect("finish");
    }
    let built = started.elapsed();
    let size: u64 = std::fs::read_dir(&config.daemon.state_dir)
        .expect("state")
        .filter_map(|entry| entry.ok()?.metadata().ok())
        .map(|metadata| metadata.len())
        .sum();
    println!(
        "Built through the store's API in {:.1} s ({:.2} µs per occurrence); state dir {:.0} MB.\n",
        built.as_secs_f64(),
        built.as_secs_f64() * 1e6 / rows as f64,
        size as f64 / 1e6
    );

    // Lookups of people spread over the range.
    let chosen: Vec<u64> = (0..21).map(|i| (i * 7_919 + 13) % people).collect();
    let store = Store::open(&config.daemon.state_dir).expect("store");
    let mut in_process = Vec::new();
    let mut found = 0;
    for person in &chosen {
        let hash = key.hash("email", &address(*person));
        let started = Instant::now();
        let rows = store.identities(&[hash]).expect("lookup");
        in_process.push(started.elapsed());
        found += rows.len();
    }
    drop(store);
    let mut whole = Vec::new();
    let mut peak = 0;
    for person in &chosen {
        let (time, rss) = measure(
            Command::new(env!("CARGO_BIN_EXE_tillsyn"))
                .args(["subject", "--format", "json", "--email"])
                .arg(address(*person))
                .arg("--config")
                .arg(&config_path),
        );
        whole.push(time);
        peak = peak.max(rss);
    }
    println!("| lookup of one person | median of 21 | occurrences found per person |");
    println!("|---|---|---|");
    println!(
        "| store query (in process) | {:.3} ms | {} |",
        ms(median(in_process)),
        found / chosen.len()
    );
    println!(
        "| `tillsyn subject --format json` (whole process, peak RSS {:.1} MB) | {:.3} ms | |",
        peak as f64 / 1024.0,
        ms(median(whole))
    );
    println!("\n- Target: under 50 ms on at least 10 million occurrences.");
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
