//! Load on the daemon's `/metrics` while large scans run, and the daemon's idle
//! cost between scans.
//!
//! `cargo bench --bench daemon -- [--files N] [--rate R] [--seconds S]`
//!
//! 1. Builds a share of N files (default 200,000), every one a violation of a
//!    30-day rule, and starts `tillsyn run` on it with a per-second schedule, so
//!    scans run back to back (each writes N findings to the store).
//! 2. Scrapes `/metrics` at R requests per second (default 200) for S seconds
//!    (default 30), each request on its own task, and reports the latency
//!    percentiles and how many scans ran meanwhile.
//! 3. Reloads the config with a daily schedule, waits for the running scan to end,
//!    and measures the idle daemon: CPU over 30 s and RSS.
//! 4. Scrapes again at the same rate with no scan running, for comparison.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

#[allow(dead_code)]
#[path = "../tests/common/process.rs"]
mod process;
#[allow(dead_code)]
mod support;

fn arg(name: &str, default: u64) -> u64 {
    support::arg(name).unwrap_or(default)
}

fn build_share(root: &Path, files: u64) {
    let old = SystemTime::now() - Duration::from_secs(400 * 86_400);
    for n in 0..files {
        let dir = root.join(format!("d{:04}", n / 1000));
        if n % 1000 == 0 {
            std::fs::create_dir_all(&dir).expect("dir");
        }
        let path = dir.join(format!("f{n}.txt"));
        let file = std::fs::File::create(&path).expect("file");
        file.set_modified(old).expect("mtime");
    }
}

fn config(port: u16, schedule: &str) -> String {
    format!(
        "[daemon]\nstate_dir = \"state\"\nlisten = \"127.0.0.1:{port}\"\n\n\
         [[sources]]\nname = \"share\"\ntype = \"fileshare\"\nroot = \"share\"\nschedule = \"{schedule}\"\n\n\
         [[rules]]\nid = \"old-files\"\nkind = \"max_age\"\npolicy = \"Files go after 30 days.\"\n\
         max_age = \"30d\"\ntimestamp = \"modified\"\n"
    )
}

fn metric(port: u16, series: &str) -> f64 {
    support::scrape(port, series).unwrap_or(0.0)
}

fn wait(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < Duration::from_secs(900),
            "gave up waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Load {
    latencies: Vec<Duration>,
    errors: u64,
}

/// `rate` GET /metrics per second for `seconds`, each on its own task over a
/// shared keep-alive client, as a fleet of scrapers would.
fn load(port: u16, rate: u64, seconds: u64) -> Load {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let client = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}/metrics");
        let mut ticks = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..rate * seconds {
            ticks.tick().await;
            let client = client.clone();
            let url = url.clone();
            tasks.spawn(async move {
                let started = Instant::now();
                let ok = match client.get(&url).send().await {
                    Ok(response) if response.status().is_success() => {
                        response.bytes().await.is_ok()
                    }
                    _ => false,
                };
                (started.elapsed(), ok)
            });
        }
        let mut result = Load {
            latencies: Vec::new(),
            errors: 0,
        };
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok((latency, true)) => result.latencies.push(latency),
                _ => result.errors += 1,
            }
        }
        result
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn report(name: &str, mut load: Load) {
    load.latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "| {name} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
        load.latencies.len(),
        load.errors,
        ms(percentile(&load.latencies, 0.50)),
        ms(percentile(&load.latencies, 0.90)),
        ms(percentile(&load.latencies, 0.99)),
        ms(*load.latencies.last().unwrap_or(&Duration::ZERO)),
    );
}

fn proc_field(pid: u32, file: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with(key))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|value| value.parse().ok())
        })
        .unwrap_or(0)
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after ')'.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| {
        fields
            .get(n)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat: 12 and 13 after ')'.
    field(11) + field(12)
}

fn main() {
    let files = arg("--files", 200_000);
    let rate = arg("--rate", 200);
    let seconds = arg("--seconds", 30);
    let dir = tempfile::tempdir().expect("tempdir");
    let built = Instant::now();
    build_share(&dir.path().join("share"), files);
    println!(
        "Share of {files} files, all violations, built in {:.1} s.",
        built.elapsed().as_secs_f64()
    );
    let port = process::free_port();
    let config_path = dir.path().join("tillsyn.toml");
    std::fs::write(&config_path, config(port, "* * * * * *")).expect("config");
    let mut daemon: Child = Command::new(env!("CARGO_BIN_EXE_tillsyn"))
        .args(["run", "--config"])
        .arg(&config_path)
        .env("TILLSYN_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("tillsyn run");
    let pid = daemon.id();
    wait("the first scan to start", || {
        metric(port, "tillsyn_scan_running{source=\"share\"}") == 1.0
    });

    let scans_before = metric(port, "tillsyn_scans_total{source=\"share\"}");
    println!("\n| phase | scrapes | errors | p50 ms | p90 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|---|");
    let busy = load(port, rate, seconds);
    let scans_during = metric(port, "tillsyn_scans_total{source=\"share\"}") - scans_before;
    report(
        &format!("{rate}/s for {seconds} s during scans of {files} files"),
        busy,
    );

    std::fs::write(&config_path, config(port, "0 0 3 * * *")).expect("config");
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(pid as i32, libc::SIGHUP);
    }
    wait("the running scan to end", || {
        metric(port, "tillsyn_scan_running{source=\"share\"}") == 0.0
    });
    let last_duration = metric(port, "tillsyn_scan_duration_seconds{source=\"share\"}");
    std::thread::sleep(Duration::from_secs(2));
    let idle_seconds = 30;
    let ticks_before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(idle_seconds));
    let ticks = cpu_ticks(pid) - ticks_before;
    // SAFETY: sysconf has no preconditions.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let idle_cpu = ticks as f64 / ticks_per_second / idle_seconds as f64 * 100.0;
    let rss = proc_field(pid, "status", "VmRSS:");
    let peak = proc_field(pid, "status", "VmHWM:");

    let idle = load(port, rate, seconds.min(10));
    report(
        &format!("{rate}/s for {} s, no scan running", seconds.min(10)),
        idle,
    );

    println!(
        "\nScans completed during the busy phase: {scans_during:.0} (last one {last_duration:.2} s).\n\
         Idle between scans, over {idle_seconds} s: CPU {idle_cpu:.2} % of one core, RSS {:.1} MB \
         (peak over the whole run {:.1} MB).",
        rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let _ = daemon.wait();
}
