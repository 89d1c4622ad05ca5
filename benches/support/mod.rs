//! What the benchmarks share: their `--name N` arguments, running a command and
//! measuring its wall time and peak RSS, medians, and reading one series from a
//! running daemon's `/metrics`.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Run a command; returns its wall time and peak RSS (KiB).
///
/// The RSS comes from GNU time (`/usr/bin/time -f %M`), not from our own wait4: a
/// child's maximum RSS on Linux includes the moment between fork and exec when it
/// is still a copy of this process, so a bench holding test data would report its
/// own size. GNU time is small. Without it, wait4's number is used (an upper
/// bound).
// Not every bench measures a command (the PDF layout bench counts matches).
#[allow(dead_code)]
// The child is reaped by wait4 below, which clippy cannot see.
#[allow(clippy::zombie_processes)]
pub fn measure(command: &mut Command) -> (Duration, u64) {
    let gnu_time = std::path::Path::new("/usr/bin/time").exists();
    let mut wrapped = if gnu_time {
        let mut wrapped = Command::new("/usr/bin/time");
        wrapped
            .args(["-f", "tillsyn-bench-rss %M"])
            .arg(command.get_program())
            .args(command.get_args());
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => wrapped.env(key, value),
                None => wrapped.env_remove(key),
            };
        }
        if let Some(dir) = command.get_current_dir() {
            wrapped.current_dir(dir);
        }
        wrapped
    } else {
        std::mem::replace(command, Command::new("true"))
    };
    let started = Instant::now();
    let child = wrapped
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{wrapped:?}: {e}"));
    let pid = child.id() as libc::pid_t;
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr {
        let _ = pipe.read_to_string(&mut stderr);
    }
    let mut status = 0;
    // SAFETY: waiting for our own child; rusage is plain data written by wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe {
        libc::wait4(pid, &mut status, 0, &mut usage);
    }
    let elapsed = started.elapsed();
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{wrapped:?} failed: {stderr}"
    );
    let rss = stderr
        .lines()
        .filter_map(|line| line.strip_prefix("tillsyn-bench-rss "))
        .filter_map(|kib| kib.trim().parse().ok())
        .next_back()
        .unwrap_or(usage.ru_maxrss as u64);
    (elapsed, rss)
}

/// The median of some durations.
// Not every bench repeats its runs.
#[allow(dead_code)]
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The number after `name` on the command line (`--messages 20000`).
// Not every bench takes arguments.
#[allow(dead_code)]
pub fn arg(name: &str) -> Option<u64> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

/// The value of the series `series` (name and labels exactly as exported) in the
/// daemon's `/metrics` on loopback `port`; `None` when it does not answer.
// Not every bench runs the daemon.
#[allow(dead_code)]
pub fn scrape(port: u16, series: &str) -> Option<f64> {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response
        .lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}
