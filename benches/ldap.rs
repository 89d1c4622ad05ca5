//! LDAP benchmark: tillsyn reading a directory side by side with `ldapsearch`
//! asking for the same attributes with the same page size, in one run on one slapd.
//! See BENCHMARKS.md.
//!
//!     cargo bench --bench ldap                       # 100k entries
//!     cargo bench --bench ldap -- --entries 20000    # smaller
//!
//! Needs slapd and ldap-utils; runs as root. Both tools bind as the same
//! non-admin account over plain ldap:// on loopback (no TLS cost on either side)
//! and page by 1000. "cold": slapd restarted and the page cache dropped;
//! "warm": the median of 5 runs after.

#[allow(unused_imports)]
#[path = "../tests/common/dovecot.rs"]
mod dovecot;
#[allow(dead_code)]
#[path = "../tests/common/process.rs"]
mod process;
#[allow(unused_imports)]
#[path = "../tests/common/slapd.rs"]
mod slapd;
mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use slapd::{Person, SERVICE_DN, SERVICE_PASSWORD, SUFFIX, Slapd};
use support::{arg, measure, median};

const WARM_RUNS: usize = 5;
const ATTRIBUTES: [&str; 5] = [
    "customerStatus",
    "customerEndDate",
    "marketingOptOut",
    "mail",
    "modifyTimestamp",
];

fn make_cold(server: &mut Slapd) {
    server.restart();
    // SAFETY: sync(2) has no preconditions.
    unsafe { libc::sync() };
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
}

fn main() {
    let entries = arg("--entries").unwrap_or(100_000);
    let ended = (chrono::Utc::now() - chrono::TimeDelta::days(800))
        .format("%Y%m%d%H%M%SZ")
        .to_string();
    let people: Vec<Person> = (0..entries)
        .map(|n| Person {
            uid: format!("p{n}"),
            status: if n % 100 == 0 { "former" } else { "active" },
            ended: (n % 100 == 0).then(|| ended.clone()),
            opt_out: n % 3 == 0,
        })
        .collect();
    let started = std::time::Instant::now();
    let mut server = Slapd::start(&people);
    let loaded = started.elapsed();
    drop(people);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ldap.pw"), SERVICE_PASSWORD).expect("password");
    let config = dir.path().join("tillsyn.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nstate_dir = \"state\"\n[[sources]]\nname = \"directory\"\ntype = \"ldap\"\n\
             url = \"ldap://127.0.0.1:{}\"\nallow_plaintext = true\nbind_dn = \"{SERVICE_DN}\"\n\
             password_file = \"ldap.pw\"\nbase_dn = \"ou=people,{SUFFIX}\"\n\
             filter = \"(objectClass=inetOrgPerson)\"\npage_size = 1000\ntimeout_seconds = 600\n\
             attributes = {{ status = \"customerStatus\", opt_out = \"marketingOptOut\" }}\n\
             dates = {{ customer_ended = \"customerEndDate\" }}\n\
             [[rules]]\nid = \"former\"\nkind = \"max_age\"\npolicy = \"p\"\nmax_age = \"12 months\"\n\
             timestamp = \"date:customer_ended\"\nwhen = {{ attributes = {{ status = \"former\" }} }}\n",
            server.port
        ),
    )
    .expect("config");
    let state = dir.path().join("state");
    let tillsyn = |state: &Path| {
        let _ = std::fs::remove_dir_all(state);
        let mut command = Command::new(env!("CARGO_BIN_EXE_tillsyn"));
        command.args(["scan", "--once", "--config"]).arg(&config);
        command
    };
    let ldapsearch = |port: u16| {
        let mut command = Command::new("ldapsearch");
        command
            .args([
                "-x",
                "-LLL",
                "-H",
                &format!("ldap://127.0.0.1:{port}"),
                "-D",
                SERVICE_DN,
            ])
            .args(["-w", SERVICE_PASSWORD, "-E", "pr=1000/noprompt"])
            .args([
                "-b",
                &format!("ou=people,{SUFFIX}"),
                "(objectClass=inetOrgPerson)",
            ])
            .args(ATTRIBUTES);
        command
    };

    println!(
        "**LDAP benchmark: {entries} entries, read by a non-admin bind, 1000 per page, attributes {}**\n\n\
         Loaded with slapadd and started in {:.1} s. Machine: {} cores.\n\n\
         | tool | cold | warm (median of {WARM_RUNS}) | entries/s (warm) | peak RSS |\n|---|---|---|---|---|",
        ATTRIBUTES.join(", "),
        loaded.as_secs_f64(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let mut warm_times = Vec::new();
    for name in ["ldapsearch -E pr=1000/noprompt", "tillsyn scan --once"] {
        let run = |server: &Slapd| -> (Duration, u64) {
            if name.starts_with("ldapsearch") {
                measure(&mut ldapsearch(server.port))
            } else {
                measure(&mut tillsyn(&state))
            }
        };
        make_cold(&mut server);
        let (cold, _) = run(&server);
        let mut warm = Vec::new();
        let mut rss = 0;
        for _ in 0..WARM_RUNS {
            let (time, peak) = run(&server);
            warm.push(time);
            rss = rss.max(peak);
        }
        let warm = median(warm);
        println!(
            "| {name} | {:.3} s | {:.3} s | {:.0} | {:.1} MB |",
            cold.as_secs_f64(),
            warm.as_secs_f64(),
            entries as f64 / warm.as_secs_f64(),
            rss as f64 / 1024.0
        );
        warm_times.push(warm);
    }
    println!(
        "\n- tillsyn throughput ÷ ldapsearch throughput = {:.2}× (target ≥ 0.8×)",
        warm_times[0].as_secs_f64() / warm_times[1].as_secs_f64()
    );
}
