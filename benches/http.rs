//! HTTP benchmark: tillsyn reading 100k CRM records over paginated HTTP/JSON,
//! beside `curl` fetching the same pages (the floor: it parses nothing), in one
//! run against the test CRM server on loopback. See BENCHMARKS.md.
//!
//!     cargo bench --bench http                       # 100k records
//!     cargo bench --bench http -- --records 20000

#[allow(unused_imports)]
#[path = "../tests/common/crm.rs"]
mod crm;
mod support;

use std::process::Command;

use crm::{Behaviour, CrmServer};
use support::{measure, median};

const TOKEN: &str = "bench-token";
const PER_PAGE: usize = 1000;
const WARM_RUNS: usize = 5;

fn main() {
    let records: usize = std::env::args()
        .collect::<Vec<_>>()
        .windows(2)
        .find(|pair| pair[0] == "--records")
        .and_then(|pair| pair[1].parse().ok())
        .unwrap_or(100_000);
    let old = (chrono::Utc::now() - chrono::TimeDelta::days(45)).to_rfc3339();
    let recent = (chrono::Utc::now() - chrono::TimeDelta::days(2)).to_rfc3339();
    let items = (0..records)
        .map(|n| {
            serde_json::json!({
                "id": format!("case-{n}"),
                "contact": { "email": format!("kund{n}@kund.se") },
                "status": "closed",
                "closed_at": if n % 100 == 0 { &old } else { &recent },
                "last_contact": recent,
                "subject": "Fråga om leverans och faktura",
            })
        })
        .collect();
    let server = CrmServer::start(Behaviour {
        items,
        token: TOKEN.into(),
        ..Behaviour::default()
    });
    let pages = records.div_ceil(PER_PAGE);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("token"), TOKEN).expect("token");
    let config = dir.path().join("tillsyn.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nstate_dir = \"state\"\n[[sources]]\nname = \"crm\"\ntype = \"http\"\nurl = \"{}\"\n\
             allow_plaintext = true\nauth = {{ bearer_file = \"token\" }}\n\
             pagination = {{ type = \"page\", size = {PER_PAGE}, total = \"/total\" }}\nid = \"/id\"\ncustodian = \"/contact/email\"\n\
             attributes = {{ status = \"/status\" }}\ndates = {{ closed = \"/closed_at\" }}\n\
             last_activity = \"/last_contact\"\n\
             [[rules]]\nid = \"closed\"\nkind = \"max_age\"\npolicy = \"p\"\nmax_age = \"30d\"\n\
             timestamp = \"date:closed\"\nwhen = {{ attributes = {{ status = \"closed\" }} }}\n",
            server.url()
        ),
    )
    .expect("config");
    let state = dir.path().join("state");
    let script = format!(
        "for p in $(seq 1 {pages}); do curl -sf -H 'Authorization: Bearer {TOKEN}' '{}?page='$p'&per_page={PER_PAGE}' > /dev/null || exit 1; done",
        server.url()
    );
    println!(
        "**HTTP benchmark: {records} records in {pages} pages of {PER_PAGE}, one request per page, on loopback**\n\n\
         | tool | warm (median of {WARM_RUNS}) | records/s | peak RSS |\n|---|---|---|---|"
    );
    for name in ["curl, one process per page", "tillsyn scan --once"] {
        let mut times = Vec::new();
        let mut rss = 0;
        for _ in 0..=WARM_RUNS {
            let (time, peak) = if name.starts_with("curl") {
                measure(Command::new("/bin/sh").args(["-c", &script]))
            } else {
                let _ = std::fs::remove_dir_all(&state);
                measure(
                    Command::new(env!("CARGO_BIN_EXE_tillsyn"))
                        .args(["scan", "--once", "--config"])
                        .arg(&config),
                )
            };
            times.push(time);
            rss = rss.max(peak);
        }
        times.remove(0); // the first run warms the server's page cache
        let warm = median(times);
        println!(
            "| {name} | {:.3} s | {:.0} | {:.1} MB |",
            warm.as_secs_f64(),
            records as f64 / warm.as_secs_f64(),
            rss as f64 / 1024.0
        );
    }
}
