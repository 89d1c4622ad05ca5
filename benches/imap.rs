//! IMAP benchmark: tillsyn side by side with its peers, in one run, on one
//! Dovecot with a bulk-loaded INBOX. See BENCHMARKS.md for results and targets.
//!
//!     cargo bench --bench imap                      # 100k messages
//!     cargo bench --bench imap -- --messages 20000  # smaller
//!     cargo bench --bench imap -- --rss 1000000     # peak RSS on a 1M mailbox too
//!     cargo bench --bench imap -- --hold 600        # only load, then keep the server up
//!     cargo bench --bench imap -- --content         # content scan (contains rule) only
//!     cargo bench --bench imap -- --content --photos 50   # one message in 50 with a 200 KB photo
//!     cargo bench --bench imap -- --postgres        # the store in SQLite and in PostgreSQL
//!     cargo bench --bench imap -- --fleet           # 60 accounts, 1, 2 and 3 instances
//!     cargo bench --bench imap -- --fleet --per-account 2000
//!
//! Needs Dovecot (dovecot-imapd), imapfilter and python3. Runs as root (Dovecot
//! needs it to switch to the mail user).
//!
//! Mail is written straight into the Maildir, then indexed once by a read-write
//! session, as delivery and users' own clients leave a real mailbox. "cold":
//! Dovecot restarted and the kernel's page cache dropped before the run. "warm":
//! the median of 5 runs after. Every number is a whole process or a whole session
//! from connect to logout.

#[allow(unused_imports)]
#[path = "../tests/common/dovecot.rs"]
mod dovecot;
#[path = "../tests/common/postgres.rs"]
mod postgres;
#[allow(dead_code)]
#[path = "../tests/common/process.rs"]
mod process;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use dovecot::Dovecot;
use support::{arg, measure, median, scrape};

mod support;

const USER: &str = "bench";
const PASSWORD: &str = "bench-pw";
const WARM_RUNS: usize = 5;

/// Write `count` ~2 KB messages into `user`'s INBOX: every `stale_every`-th is
/// 60–400 days old (the rest under 30), every 50th has 5 external Cc.
/// What the bulk-loaded messages hold: headers and a text body only, or (for
/// content scans) a body, a CSV attachment and, one message in `photo_every`
/// (0: none), a 200 KB JPEG photo besides.
#[derive(Clone, Copy)]
enum Bodies {
    Text,
    Attachments { photo_every: u64 },
}

fn load(
    server: &Dovecot,
    (user, password): (&str, &str),
    count: u64,
    stale_every: u64,
    bodies: Bodies,
) -> Duration {
    let started = Instant::now();
    // One photo's bytes (noise, as a compressed picture is), in base64.
    let photo: String = {
        let bytes: Vec<u8> = (0..200_000u32)
            .map(|n| (n.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let table = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut text = String::new();
        for (index, chunk) in bytes.chunks(3).enumerate() {
            if index > 0 && index % 19 == 0 {
                text.push_str("\r\n");
            }
            let value = (u32::from(chunk[0]) << 16)
                | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
                | u32::from(*chunk.get(2).unwrap_or(&0));
            for position in 0..4 {
                if position <= chunk.len() {
                    text.push(char::from(
                        table[(value >> (18 - 6 * position) & 63) as usize],
                    ));
                } else {
                    text.push('=');
                }
            }
        }
        text
    };
    let photo = &photo;
    let cur = server.homes().join(user).join("Maildir/cur");
    std::fs::create_dir_all(&cur).expect("maildir");
    let now = SystemTime::now();
    let threads = 2;
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let cur = &cur;
            scope.spawn(move || {
                let mut n = thread;
                while n < count {
                    let days = if n % stale_every == 0 {
                        60 + n % 340
                    } else {
                        n % 29
                    };
                    let cc = if n % 50 == 0 {
                        "Cc: a@kund.se, b@kund.se, c@annan.se, d@tredje.se, e@fjarde.se\r\n"
                    } else {
                        ""
                    };
                    let mut text = format!(
                        "From: Sender {n} <sender{n}@example.org>\r\nTo: {user}@firma.se\r\n{cc}\
                         Subject: Message number {n}\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n\
                         Message-ID: <{n}@bench>\r\n"
                    );
                    if let Bodies::Attachments { photo_every } = bodies {
                        // A body, one in twenty with a personnummer, and a small
                        // CSV attachment, one in ten with one.
                        let number = if n % 20 == 0 { "Personnummer 811218-9876." } else { "Inget nummer." };
                        let csv = if n % 10 == 0 {
                            // "Namn;Pnr\nAnna;811218-9876\n"
                            "TmFtbjtQbnIKQW5uYTs4MTEyMTgtOTg3Ngo="
                        } else {
                            // "Namn;Belopp\nAnna;100\n"
                            "TmFtbjtCZWxvcHAKQW5uYTsxMDAK"
                        };
                        text.push_str(&format!(
                            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
                             --b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{number}\r\n"
                        ));
                        while text.len() < 2048 {
                            text.push_str(
                                "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n",
                            );
                        }
                        text.push_str(&format!(
                            "--b\r\nContent-Type: text/csv; name=\"lista.csv\"\r\n\
                             Content-Disposition: attachment; filename=\"lista.csv\"\r\n\
                             Content-Transfer-Encoding: base64\r\n\r\n{csv}\r\n"
                        ));
                        if photo_every > 0 && n % photo_every == 1 {
                            text.push_str(&format!(
                                "--b\r\nContent-Type: image/jpeg; name=\"foto.jpg\"\r\n\
                                 Content-Disposition: attachment; filename=\"foto.jpg\"\r\n\
                                 Content-Transfer-Encoding: base64\r\n\r\n{photo}\r\n"
                            ));
                        }
                        text.push_str("--b--\r\n");
                    } else {
                        text.push_str("Content-Type: text/plain\r\n\r\n");
                        while text.len() < 2048 {
                            text.push_str(
                                "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n",
                            );
                        }
                    }
                    let size = text.len();
                    let path = cur.join(format!(
                        "{}.M{n}P1.bench,S={size},W={size}:2,S",
                        1_700_000_000 + n
                    ));
                    std::fs::write(&path, &text).expect("write");
                    let file = std::fs::File::options()
                        .write(true)
                        .open(&path)
                        .expect("open");
                    file.set_modified(now - Duration::from_secs(days * 86_400 + n % 3600))
                        .expect("mtime");
                    n += threads;
                }
            });
        }
    });
    server.fix_ownership();
    server.client(user, password).command("SELECT INBOX");
    started.elapsed()
}

/// Make the next read cold: Dovecot restarted, its cache of fetched header
/// fields deleted (it rebuilds it on demand; the index stays), the page cache
/// dropped (where the kernel allows it; said in the output).
fn make_cold(server: &mut Dovecot) -> bool {
    server.kill();
    for user in [USER, "million"] {
        let _ = std::fs::remove_file(
            server
                .homes()
                .join(user)
                .join("Maildir/dovecot.index.cache"),
        );
    }
    // SAFETY: sync(2) has no preconditions.
    unsafe { libc::sync() };
    let dropped = std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok();
    server.restart();
    dropped
}

/// One raw IMAP session: login, EXAMINE INBOX, `command`, logout. Returns the
/// time and the bytes of the command's response.
fn raw_session(port: u16, command: &str) -> (Duration, usize) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut buffer = vec![0u8; 1 << 16];
    let mut wait_for = |stream: &mut TcpStream, tag: &str| -> usize {
        let needle = format!("\r\n{tag} OK");
        let mut tail: Vec<u8> = b"\r\n".to_vec();
        let mut total = 0;
        loop {
            let read = stream.read(&mut buffer).expect("read");
            assert!(read > 0, "closed");
            total += read;
            tail.extend_from_slice(&buffer[..read]);
            if tail.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                return total;
            }
            let keep = tail.len().saturating_sub(needle.len() + 64);
            tail.drain(..keep);
        }
    };
    let mut greeting = [0u8; 512];
    let _ = stream.read(&mut greeting).expect("greeting");
    stream
        .write_all(format!("T1 LOGIN {USER} {PASSWORD}\r\n").as_bytes())
        .expect("write");
    wait_for(&mut stream, "T1");
    stream.write_all(b"T2 EXAMINE INBOX\r\n").expect("write");
    wait_for(&mut stream, "T2");
    stream
        .write_all(format!("T3 {command}\r\n").as_bytes())
        .expect("write");
    let bytes = wait_for(&mut stream, "T3");
    stream.write_all(b"T4 LOGOUT\r\n").expect("write");
    (started.elapsed(), bytes)
}

/// (c) as the daemon sees it: `tillsyn run` with the Cc and age rules, scanning
/// every 3 seconds, and the scan durations it exports
/// (`tillsyn_scan_duration_seconds`). No process start, no output: only the scan.
/// Full: the first scan of a daemon on an empty store, the median of 3 after one
/// discarded warm-up (warm server cache, like the rescans). Unchanged rescan: the
/// median of 5 scans of a daemon on the store those left.
fn in_daemon(dir: &Path, port: u16) -> (f64, f64) {
    let listen = process::free_port();
    let config = tillsyn_config(dir, port, &format!("{CC_RULE}\n{STALE_RULE}"), "daemon");
    let text = std::fs::read_to_string(&config).expect("config").replacen(
        "[[sources]]\n",
        &format!("listen = \"127.0.0.1:{listen}\"\n[[sources]]\nschedule = \"*/3 * * * * *\"\n"),
        1,
    );
    std::fs::write(&config, text).expect("config");
    let mut fulls = Vec::new();
    for run in 0..4 {
        let _ = std::fs::remove_dir_all(dir.join("daemon"));
        let first = daemon_scans(&config, listen, 1).remove(0);
        if run > 0 {
            fulls.push(first);
        }
    }
    let rescans = daemon_scans(&config, listen, WARM_RUNS);
    (median(fulls).as_secs_f64(), median(rescans).as_secs_f64())
}

/// Run `tillsyn run` until it has finished `count` scans; their durations.
fn daemon_scans(config: &Path, listen: u16, count: usize) -> Vec<Duration> {
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_tillsyn"))
        .args(["run", "--config"])
        .arg(config)
        .env("TILLSYN_LOG", "warn")
        .spawn()
        .expect("tillsyn run");
    let scrape = |series: &str| support::scrape(listen, series);
    let mut durations = Vec::new();
    let mut seen = 0.0;
    let started = Instant::now();
    while durations.len() < count {
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "daemon scans stalled"
        );
        std::thread::sleep(Duration::from_millis(100));
        let scans = scrape("tillsyn_scans_total{source=\"mail\"}").unwrap_or(0.0);
        if scans > seen {
            seen = scans;
            let duration = scrape("tillsyn_scan_duration_seconds{source=\"mail\"}").unwrap_or(0.0);
            assert_eq!(
                scrape("tillsyn_scan_success{source=\"mail\"}"),
                Some(1.0),
                "a daemon scan failed"
            );
            durations.push(Duration::from_secs_f64(duration));
        }
    }
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(daemon.id() as i32, libc::SIGTERM);
    }
    let _ = daemon.wait();
    durations
}

struct Tool<'a> {
    name: &'a str,
    run: Box<dyn FnMut() -> (Duration, u64) + 'a>,
}

/// Cold sample, then warm median, for each tool in turn.
fn compare(
    server: &mut Dovecot,
    title: &str,
    tools: Vec<Tool<'_>>,
) -> Vec<(String, Duration, Duration, u64)> {
    println!(
        "\n### {title}\n\n| tool | cold | warm (median of {WARM_RUNS}) | peak RSS |\n|---|---|---|---|"
    );
    let mut rows = Vec::new();
    for mut tool in tools {
        make_cold(server);
        let (cold, _) = (tool.run)();
        let mut warm = Vec::new();
        let mut rss = 0;
        for _ in 0..WARM_RUNS {
            let (time, peak) = (tool.run)();
            warm.push(time);
            rss = rss.max(peak);
        }
        let warm = median(warm);
        let rss_text = if rss > 0 {
            format!("{:.1} MB", rss as f64 / 1024.0)
        } else {
            "-".into()
        };
        println!(
            "| {} | {:.3} s | {:.3} s | {rss_text} |",
            tool.name,
            cold.as_secs_f64(),
            warm.as_secs_f64()
        );
        rows.push((tool.name.to_owned(), cold, warm, rss));
    }
    rows
}

fn tillsyn_config(dir: &Path, port: u16, rule: &str, state: &str) -> PathBuf {
    std::fs::write(
        dir.join("accounts.toml"),
        format!("[[accounts]]\nuser = \"{USER}\"\npassword = \"{PASSWORD}\"\n"),
    )
    .expect("accounts");
    let path = dir.join(format!("{state}.toml"));
    std::fs::write(
        &path,
        format!(
            "[daemon]\nstate_dir = \"{state}\"\n[[sources]]\nname = \"mail\"\ntype = \"imap\"\n\
             host = \"127.0.0.1\"\nport = {port}\nsecurity = \"plain\"\nallow_plaintext = true\n\
             folders = [\"INBOX\"]\ntimeout_seconds = 600\n\
             auth = {{ method = \"password\", accounts_file = \"accounts.toml\" }}\n{rule}"
        ),
    )
    .expect("config");
    path
}

const STALE_RULE: &str = "[[rules]]\nid = \"stale\"\nkind = \"max_age\"\npolicy = \"p\"\nmax_age = \"30d\"\ntimestamp = \"received\"\n";
const CC_RULE: &str =
    "[[rules]]\nid = \"cc\"\nkind = \"max_recipients\"\npolicy = \"p\"\nmax = 3\n";

const CONTENT_RULE: &str =
    "[[rules]]\nid = \"p3\"\nkind = \"contains\"\npolicy = \"p\"\ndetectors = [\"personnummer\"]\n";

/// The same full scan (Cc and age rules: every header read, every finding
/// and identity row stored) with the store in SQLite and in a PostgreSQL on
/// the same machine, each from an empty store every run (the PostgreSQL one
/// emptied, its schema kept: a daemon migrates once).
fn store_comparison(server: &mut Dovecot, dir: &Path, messages: u64, loaded: Duration) {
    let port = server.port;
    println!(
        "## Store benchmark: {messages} messages of ~2 KB in one INBOX, SQLite and PostgreSQL\n\n\
         Loaded and indexed in {:.1} s.",
        loaded.as_secs_f64()
    );
    let database = postgres::Postgres::start();
    let rules = format!("{CC_RULE}\n{STALE_RULE}");
    let sqlite = tillsyn_config(dir, port, &rules, "sqlite");
    std::fs::copy(database.password_file(), dir.join("pg.pw")).expect("password");
    let on_postgres = tillsyn_config(
        dir,
        port,
        &format!(
            "{rules}\n[store]\nurl = \"postgres://{}@127.0.0.1:{}/bench\"\npassword_file = \"pg.pw\"\n",
            postgres::USER,
            database.port
        ),
        "postgres",
    );
    // Empty, as a fresh state_dir is, but migrated: a daemon migrates once,
    // not per scan. (The first run creates and migrates it.)
    database.psql("CREATE DATABASE bench");
    let fresh_database = || {
        database.psql_in(
            "bench",
            "DO $$ DECLARE t text; BEGIN
               FOR t IN SELECT tablename FROM pg_tables
                        WHERE schemaname = 'public' AND tablename <> 'schema_version' LOOP
                 EXECUTE format('TRUNCATE %I RESTART IDENTITY CASCADE', t);
               END LOOP; END $$",
        );
    };
    let rows = compare(
        server,
        "(e) full scan, the store in SQLite and in PostgreSQL",
        vec![
            Tool {
                name: "tillsyn scan --once, SQLite in state_dir",
                run: Box::new(|| measure(&mut tillsyn(&sqlite, true))),
            },
            Tool {
                name: "tillsyn scan --once, PostgreSQL (same machine)",
                run: Box::new(|| {
                    fresh_database();
                    measure(&mut tillsyn(&on_postgres, true))
                }),
            },
        ],
    );
    println!(
        "\n- PostgreSQL / SQLite = {:.2}× warm (target ≤ 1.2×)",
        rows[1].2.as_secs_f64() / rows[0].2.as_secs_f64()
    );
}

/// Accounts in the fleet benchmark, as in `tests/fleet_daemon.rs`.
const FLEET_ACCOUNTS: usize = 60;

/// CPU seconds used so far by the processes `included` picks (by pid, parent
/// and process group), counting their reaped children: from `/proc`.
fn cpu_seconds(included: impl Fn(u32, u32, u32) -> bool) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut total = 0u64;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the command name, which may hold spaces: state is 3.
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split(' ').collect();
        let number = |at: usize| fields.get(at - 3).and_then(|f| f.parse::<u64>().ok());
        let (Some(parent), Some(group)) = (number(4), number(5)) else {
            continue;
        };
        if included(pid, parent as u32, group as u32) {
            total += (14..=17).filter_map(number).sum::<u64>();
        }
    }
    total as f64 / ticks
}

/// The same 60-account world scanned by 1, 2 and 3 `tillsyn run` instances
/// sharing one PostgreSQL (`[fleet]`), each from an empty store: wall time
/// until every account is done for the tick, and CPU time of the servers
/// (Dovecot, PostgreSQL) and of the instances.
fn fleet_comparison(per_account: u64, stale_every: u64) {
    let users: Vec<(String, String)> = (0..FLEET_ACCOUNTS)
        .map(|n| (format!("fleet{n:02}"), format!("fleet{n:02}-pw")))
        .collect();
    let server = Dovecot::start_owned(&users);
    let started = Instant::now();
    for (user, password) in &users {
        load(
            &server,
            (user.as_str(), password.as_str()),
            per_account,
            stale_every,
            Bodies::Text,
        );
    }
    let loaded = started.elapsed();
    let dir = tempfile::tempdir().expect("tempdir");
    // TILLSYN_BENCH_PG_LOG=FILE: every statement's duration logged, and the
    // server's log copied to FILE at the end (a profile, not a benchmark).
    let statement_log = std::env::var_os("TILLSYN_BENCH_PG_LOG");
    let database = match statement_log {
        Some(_) => postgres::Postgres::start_with_settings(&["log_min_duration_statement=0"]),
        None => postgres::Postgres::start(),
    };
    std::fs::copy(database.password_file(), dir.path().join("pg.pw")).expect("password");
    let mut accounts = String::new();
    for (user, password) in &users {
        accounts.push_str(&format!(
            "[[accounts]]\nuser = \"{user}\"\npassword = \"{password}\"\n"
        ));
    }
    std::fs::write(dir.path().join("accounts.toml"), accounts).expect("accounts");
    let dovecot_pid = server.pid().expect("dovecot runs");
    let postmaster: u32 = std::fs::read_to_string(database.dir.path().join("data/postmaster.pid"))
        .ok()
        .and_then(|text| {
            text.lines()
                .next()
                .and_then(|line| line.trim().parse().ok())
        })
        .expect("postmaster.pid");
    let dovecot_cpu = || cpu_seconds(|_, _, group| group == dovecot_pid);
    let postgres_cpu = || cpu_seconds(|pid, parent, _| pid == postmaster || parent == postmaster);
    println!(
        "## Fleet benchmark: {FLEET_ACCOUNTS} accounts of {per_account} messages (~2 KB; 1 in \
         {stale_every} older than 30 days, 1 in 50 with 5 external Cc), one Dovecot, one PostgreSQL\n\n\
         Loaded and indexed in {:.1} s. Machine: {} cores. Each instance: `tillsyn run` with \
         `[fleet]` (units_at_once = max_connections = 4), all started together on an empty \
         store; timed until every account is done for the tick. Median of 3 runs.\n",
        loaded.as_secs_f64(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    );
    println!(
        "| instances | wall (s) | Dovecot CPU (s) | PostgreSQL CPU (s) | tillsyn CPU, all instances (s) | accounts per instance |\n|---|---|---|---|---|---|"
    );
    // The same world on one machine's default store: one `scan --once` with
    // SQLite in state_dir (a fresh one each run).
    let sqlite = dir.path().join("sqlite.toml");
    std::fs::write(
        &sqlite,
        format!(
            "[daemon]\nstate_dir = \"sqlite\"\n\n\
             [[sources]]\nname = \"mail\"\ntype = \"imap\"\n\
             host = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\nallow_plaintext = true\n\
             timeout_seconds = 600\nauth = {{ method = \"password\", accounts_file = \"accounts.toml\" }}\n\n\
             {CC_RULE}\n{STALE_RULE}",
            server.port
        ),
    )
    .expect("config");
    let dovecot_before = dovecot_cpu();
    let walls: Vec<Duration> = (0..3)
        .map(|_| measure(&mut tillsyn(&sqlite, true)).0)
        .collect();
    let sqlite_dovecot = (dovecot_cpu() - dovecot_before) / 3.0;
    let sqlite_wall = median(walls);
    let mut one_instance: Option<(f64, f64, f64, f64)> = None;
    for instances in 1..=3usize {
        let mut runs: Vec<(f64, f64, f64, f64, Vec<u64>)> = Vec::new();
        for run in 0..3 {
            let name = format!("fleet_{instances}_{run}");
            database.psql(&format!("CREATE DATABASE {name}"));
            let config = dir.path().join(format!("{name}.toml"));
            std::fs::write(
                &config,
                format!(
                    "[daemon]\nstate_dir = \"state\"\n\n[store]\nurl = \"postgres://{}@127.0.0.1:{}/{name}\"\n\
                     password_file = \"pg.pw\"\n\n[fleet]\nlease_seconds = 60\n\n\
                     [[sources]]\nname = \"mail\"\ntype = \"imap\"\nschedule = \"0 0 3 * * *\"\n\
                     host = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\nallow_plaintext = true\n\
                     timeout_seconds = 600\nauth = {{ method = \"password\", accounts_file = \"accounts.toml\" }}\n\n\
                     {CC_RULE}\n{STALE_RULE}",
                    postgres::USER,
                    database.port,
                    server.port
                ),
            )
            .expect("config");
            // Migrated before the clock starts, as a running fleet's store is.
            let migrated = Command::new(env!("CARGO_BIN_EXE_tillsyn"))
                .args(["findings", "--config"])
                .arg(&config)
                .stdout(std::process::Stdio::null())
                .status()
                .expect("migrate");
            assert!(migrated.success(), "migrating {name}");
            let (dovecot_before, postgres_before) = (dovecot_cpu(), postgres_cpu());
            let clock = Instant::now();
            let ports: Vec<u16> = (0..instances).map(|_| process::free_port()).collect();
            let mut children: Vec<std::process::Child> = ports
                .iter()
                .map(|port| {
                    Command::new(env!("CARGO_BIN_EXE_tillsyn"))
                        .args(["run", "--config"])
                        .arg(&config)
                        .args(["--listen", &format!("127.0.0.1:{port}")])
                        .env("TILLSYN_LOG", "warn")
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .spawn()
                        .expect("tillsyn run")
                })
                .collect();
            let done = "SELECT count(*) FROM fleet_units WHERE done_tick IS NOT NULL";
            // Watched through the instances' own metrics: asking PostgreSQL
            // would add its cost to what is measured.
            loop {
                let finished: f64 = ports
                    .iter()
                    .filter_map(|port| scrape(*port, "tillsyn_scans_total{source=\"mail\"}"))
                    .sum();
                if finished >= FLEET_ACCOUNTS as f64 {
                    break;
                }
                assert!(
                    clock.elapsed() < Duration::from_secs(3600),
                    "the fleet never finished"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            let wall = clock.elapsed().as_secs_f64();
            // The last unit is marked done just after its scan is counted.
            while database.psql_in(&name, done).trim() != FLEET_ACCOUNTS.to_string() {
                assert!(
                    clock.elapsed() < Duration::from_secs(3600),
                    "a scan was counted but its unit never done"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            let pids: Vec<u32> = children.iter().map(std::process::Child::id).collect();
            let tillsyn_cpu: f64 = pids
                .iter()
                .map(|pid| cpu_seconds(|candidate, _, _| candidate == *pid))
                .sum();
            for child in &mut children {
                // SAFETY: kill(2) on our own child.
                unsafe {
                    libc::kill(child.id() as i32, libc::SIGTERM);
                }
                let _ = child.wait();
            }
            // Their PostgreSQL backends are gone (and counted) once they end.
            std::thread::sleep(Duration::from_millis(500));
            let spread: Vec<u64> = database
                .psql_in(
                    &name,
                    "SELECT count(*) FROM scans WHERE status = 'complete' GROUP BY holder ORDER BY 1 DESC",
                )
                .lines()
                .filter_map(|line| line.trim().parse().ok())
                .collect();
            runs.push((
                wall,
                dovecot_cpu() - dovecot_before,
                postgres_cpu() - postgres_before,
                tillsyn_cpu,
                spread,
            ));
        }
        runs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (wall, dovecot, postgres_seconds, tillsyn_seconds, spread) = runs[1].clone();
        if instances == 1 {
            one_instance = Some((wall, dovecot, postgres_seconds, tillsyn_seconds));
        }
        println!(
            "| {instances} | {wall:.2} | {dovecot:.2} | {postgres_seconds:.2} | {tillsyn_seconds:.2} | {} |",
            spread
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" / ")
        );
    }
    println!(
        "| `scan --once`, SQLite (no fleet) | {:.2} | {sqlite_dovecot:.2} | – | – | 60 |",
        sqlite_wall.as_secs_f64()
    );
    if let Some(copy) = statement_log {
        std::fs::copy(database.dir.path().join("server.log"), copy).expect("copy the log");
    }
    if let Some((wall, dovecot, postgres_seconds, tillsyn_seconds)) = one_instance {
        let per = |seconds: f64| seconds / FLEET_ACCOUNTS as f64 * 1000.0;
        println!(
            "\nPer account of {per_account} messages, one instance: {:.1} ms wall, {:.1} ms Dovecot CPU, \
             {:.1} ms PostgreSQL CPU, {:.1} ms tillsyn CPU.",
            per(wall),
            per(dovecot),
            per(postgres_seconds),
            per(tillsyn_seconds)
        );
    }
}

/// The content scan: every message fetched whole (`BODY.PEEK[]`) by a raw
/// socket, and by tillsyn with a `contains` rule (fresh store: every message
/// read), which parses MIME, decodes the attachment and runs the detectors.
fn content_comparison(server: &mut Dovecot, dir: &Path, messages: u64, loaded: Duration) {
    let port = server.port;
    let photos = match arg("--photos").unwrap_or(0) {
        0 => String::new(),
        every => format!(", one in {every} with a 200 KB JPEG photo besides"),
    };
    println!(
        "## IMAP content benchmark: {messages} messages of ~2.3 KB with a CSV attachment{photos} in one INBOX\n\n\
         Loaded and indexed in {:.1} s.",
        loaded.as_secs_f64()
    );
    let config = tillsyn_config(dir, port, CONTENT_RULE, "content");
    let rows = compare(
        server,
        "(d) content scan",
        vec![
            Tool {
                name: "raw socket `UID FETCH 1:* BODY.PEEK[]`",
                run: Box::new(|| (raw_session(port, "UID FETCH 1:* BODY.PEEK[]").0, 0)),
            },
            Tool {
                name: "tillsyn scan --once (contains personnummer)",
                run: Box::new(|| measure(&mut tillsyn(&config, true))),
            },
        ],
    );
    let output = tillsyn(&config, true)
        .args(["--format", "json"])
        .output()
        .expect("tillsyn");
    let findings = String::from_utf8_lossy(&output.stdout).lines().count();
    println!(
        "\n- tillsyn throughput / raw socket = {:.2}× warm (target ≥ 0.7×); {findings} findings (expected {})",
        rows[0].2.as_secs_f64() / rows[1].2.as_secs_f64(),
        (0..messages).filter(|n| n % 10 == 0).count()
    );
    // Bytes the server sent: the raw FETCH's answer, and what tillsyn
    // counted over its session (its `bytes_received` work).
    let (_, raw_bytes) = raw_session(port, "UID FETCH 1:* BODY.PEEK[]");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let received: Option<u64> = stderr
        .split("bytes_received ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|number| number.parse().ok());
    let megabytes = |bytes: f64| bytes / 1_000_000.0;
    match received {
        Some(received) => println!(
            "- bytes fetched: raw FETCH {:.1} MB, tillsyn {:.1} MB ({:.2}× the raw)",
            megabytes(raw_bytes as f64),
            megabytes(received as f64),
            received as f64 / raw_bytes as f64
        ),
        None => println!("- bytes fetched: tillsyn reported none ({stderr})"),
    }
    let (again, _) = measure(&mut tillsyn(&config, false));
    let (_, first, _, _) = &rows[1];
    println!(
        "- unchanged rescan {:.3} s, {:.1}× faster than the cold first scan",
        again.as_secs_f64(),
        first.as_secs_f64() / again.as_secs_f64()
    );
}

fn tillsyn(config: &Path, fresh_state: bool) -> Command {
    if fresh_state {
        let state = config.with_extension("").to_string_lossy().into_owned();
        let state_dir = config
            .parent()
            .expect("dir")
            .join(Path::new(&state).file_name().expect("name"));
        let _ = std::fs::remove_dir_all(state_dir);
    }
    let mut command = Command::new(env!("CARGO_BIN_EXE_tillsyn"));
    command.args(["scan", "--once", "--config"]).arg(config);
    command
}

fn main() {
    let messages = arg("--messages").unwrap_or(100_000);
    let stale_every = arg("--stale-every").unwrap_or(20);
    let million = arg("--rss");
    let binary = env!("CARGO_BIN_EXE_tillsyn");
    assert!(Path::new(binary).exists(), "build tillsyn first");
    let mut server = Dovecot::start(&[(USER, PASSWORD), ("million", "million-pw")]);
    let content_only = std::env::args().any(|argument| argument == "--content");
    let bodies = if content_only {
        Bodies::Attachments {
            photo_every: arg("--photos").unwrap_or(0),
        }
    } else {
        Bodies::Text
    };
    if std::env::args().any(|argument| argument == "--fleet") {
        drop(server);
        fleet_comparison(arg("--per-account").unwrap_or(2_000), stale_every);
        return;
    }
    let loaded = load(&server, (USER, PASSWORD), messages, stale_every, bodies);
    let drops = make_cold(&mut server);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = server.port;
    // `--hold SECONDS`: keep the loaded server up for a profiler instead of
    // benchmarking; prints a config that reads every header.
    if let Some(seconds) = arg("--hold") {
        let config = tillsyn_config(dir.path(), port, CC_RULE, "hold");
        println!(
            "Holding Dovecot on port {port} for {seconds} s.\n{binary} scan --once --config {}",
            config.display()
        );
        std::thread::sleep(Duration::from_secs(seconds));
        return;
    }
    if content_only {
        content_comparison(&mut server, dir.path(), messages, loaded);
        return;
    }
    if std::env::args().any(|argument| argument == "--postgres") {
        store_comparison(&mut server, dir.path(), messages, loaded);
        return;
    }
    let cutoff = (chrono::Utc::now() - chrono::TimeDelta::days(30))
        .format("%d-%b-%Y")
        .to_string();
    println!(
        "## IMAP benchmark: {messages} messages of ~2 KB in one INBOX, 1 in {stale_every} older than 30 days\n\n\
         Loaded and indexed in {:.1} s. Machine: {} cores. Dovecot {}. Page cache dropped for cold runs: {}.",
        loaded.as_secs_f64(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        String::from_utf8_lossy(
            &Command::new("dovecot")
                .arg("--version")
                .output()
                .expect("dovecot")
                .stdout
        )
        .trim(),
        if drops { "yes" } else { "no (not permitted)" }
    );

    // (a) Stale-inbox audit.
    let lua = dir.path().join("stale.lua");
    std::fs::write(
        &lua,
        format!(
            "options.timeout = 600\noptions.subscribe = false\noptions.starttls = false\n\
             account = IMAP {{ server = '127.0.0.1', port = {port}, username = '{USER}', password = '{PASSWORD}' }}\n\
             results = account.INBOX:is_older(30)\nprint(#results)\n"
        ),
    )
    .expect("lua");
    let stale = tillsyn_config(dir.path(), port, STALE_RULE, "stale");
    let search = format!("UID SEARCH BEFORE {cutoff}");
    let a = compare(
        &mut server,
        "(a) stale-inbox audit (messages older than 30 days)",
        vec![
            Tool {
                name: "raw socket `UID SEARCH BEFORE`",
                run: Box::new(|| (raw_session(port, &search).0, 0)),
            },
            Tool {
                name: "tillsyn scan --once (age rule)",
                run: Box::new(|| measure(&mut tillsyn(&stale, true))),
            },
            Tool {
                name: "imapfilter `is_older(30)`",
                run: Box::new(|| measure(Command::new("imapfilter").arg("-c").arg(&lua))),
            },
        ],
    );

    // (b) Full header scan.
    let fetch =
        "UID FETCH 1:* (UID INTERNALDATE BODY.PEEK[HEADER.FIELDS (FROM TO CC DATE MESSAGE-ID)])";
    let python = dir.path().join("fetch.py");
    std::fs::write(
        &python,
        format!(
            "import imaplib\nm = imaplib.IMAP4('127.0.0.1', {port})\nm.login('{USER}', '{PASSWORD}')\n\
             m.select('INBOX', readonly=True)\n\
             typ, data = m.uid('FETCH', '1:*', '(UID INTERNALDATE BODY.PEEK[HEADER.FIELDS (FROM TO CC DATE MESSAGE-ID)])')\n\
             assert typ == 'OK'\nm.logout()\n"
        ),
    )
    .expect("python");
    let headers = tillsyn_config(dir.path(), port, CC_RULE, "headers");
    // With an age rule too, tillsyn fetches INTERNALDATE as the raw command does.
    let headers_dated = tillsyn_config(
        dir.path(),
        port,
        &format!("{CC_RULE}\n{STALE_RULE}"),
        "headers-dated",
    );
    // The same without the identity index (issue 12's budget: at most 15 %).
    let headers_unindexed = tillsyn_config(
        dir.path(),
        port,
        &format!("{CC_RULE}\n[identity]\nenabled = false\n"),
        "headers-unindexed",
    );
    let b = compare(
        &mut server,
        "(b) full header scan (From, To, Cc of every message)",
        vec![
            Tool {
                name: "raw socket `UID FETCH 1:* (… HEADER.FIELDS …)`",
                run: Box::new(|| (raw_session(port, fetch).0, 0)),
            },
            Tool {
                name: "tillsyn scan --once (Cc rule only: no INTERNALDATE asked)",
                run: Box::new(|| measure(&mut tillsyn(&headers, true))),
            },
            Tool {
                name: "Python imaplib, same FETCH",
                run: Box::new(|| measure(Command::new("/usr/bin/python3").arg(&python))),
            },
            Tool {
                name: "tillsyn scan --once (Cc and age rules: INTERNALDATE too)",
                run: Box::new(|| measure(&mut tillsyn(&headers_dated, true))),
            },
            Tool {
                name: "tillsyn scan --once (Cc rule only), identity index off",
                run: Box::new(|| measure(&mut tillsyn(&headers_unindexed, true))),
            },
        ],
    );

    // (c) Unchanged rescan.
    let rescan = tillsyn_config(
        dir.path(),
        port,
        &format!("{CC_RULE}\n{STALE_RULE}"),
        "rescan",
    );
    measure(&mut tillsyn(&rescan, true));
    let c = compare(
        &mut server,
        "(c) rescan of the unchanged mailbox (Cc and age rules, incremental)",
        vec![Tool {
            name: "tillsyn scan --once, rescan",
            run: Box::new(|| measure(&mut tillsyn(&rescan, false))),
        }],
    );
    // The rescan reads with the Cc and age rules: its full scan is the dated one.
    let full = b[3].2;

    println!("\n### Against the targets (warm)\n");
    let ratio = |x: Duration, y: Duration| x.as_secs_f64() / y.as_secs_f64();
    println!(
        "- (a) tillsyn / raw search = {:.2}× (target ≤ 1.5×); imapfilter / tillsyn = {:.1}× (target ≥ 5×)",
        ratio(a[1].2, a[0].2),
        ratio(a[2].2, a[1].2)
    );
    println!(
        "- (b) tillsyn throughput / raw socket = {:.2}× with the Cc rule only, {:.2}× with INTERNALDATE too (target ≥ 0.8×); Python imaplib / tillsyn time = {:.2}×",
        ratio(b[0].2, b[1].2),
        ratio(b[0].2, b[3].2),
        ratio(b[2].2, b[1].2)
    );
    println!(
        "- (b) the identity index (every From, To and Cc hashed and indexed) adds {:+.1} % to the Cc-rule header scan (target ≤ 15 %)",
        (ratio(b[1].2, b[4].2) - 1.0) * 100.0
    );
    println!(
        "- (c) full scan / unchanged rescan = {:.1}× (target ≥ 20×), whole `scan --once` processes",
        ratio(full, c[0].2)
    );
    let (daemon_full, daemon_rescan) = in_daemon(dir.path(), port);
    println!(
        "- (c) inside `tillsyn run`, warm: full scan {:.3} s (median of 3), unchanged rescan {:.4} s (median of {WARM_RUNS}) = {:.1}× (target ≥ 20×)",
        daemon_full,
        daemon_rescan,
        daemon_full / daemon_rescan
    );

    if let Some(count) = million {
        let loaded = load(
            &server,
            ("million", "million-pw"),
            count,
            stale_every,
            Bodies::Text,
        );
        let config = tillsyn_config(
            dir.path(),
            port,
            &format!("{CC_RULE}\n{STALE_RULE}"),
            "million",
        );
        // Same settings, the other account.
        std::fs::write(
            dir.path().join("accounts.toml"),
            "[[accounts]]\nuser = \"million\"\npassword = \"million-pw\"\n",
        )
        .expect("accounts");
        make_cold(&mut server);
        let (cold, cold_rss) = measure(&mut tillsyn(&config, true));
        let (rescan, rescan_rss) = measure(&mut tillsyn(&config, false));
        println!(
            "\n### (d) {count} messages (loaded in {:.0} s): full scan with headers cold {:.1} s, peak RSS {:.1} MB; \
             rescan {:.2} s, peak RSS {:.1} MB (target < 100 MB)",
            loaded.as_secs_f64(),
            cold.as_secs_f64(),
            cold_rss as f64 / 1024.0,
            rescan.as_secs_f64(),
            rescan_rss as f64 / 1024.0
        );
    }
}
