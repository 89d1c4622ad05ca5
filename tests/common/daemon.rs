//! Running `tillsyn run` as a child process: start it, read its endpoints, send
//! it signals, listen on a systemd notify socket, and read its metrics.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a test waits for something that should happen within seconds before
/// it gives up: a guard against hanging, not a performance limit.
pub const HANG_GUARD: Duration = Duration::from_secs(90);

/// Wait until `condition` holds, checking every 50 ms; panics with `what` when
/// [`HANG_GUARD`] passes first.
pub fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < HANG_GUARD, "gave up waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running daemon.
pub struct Daemon {
    child: Option<Child>,
    pub port: u16,
    pub log: PathBuf,
}

/// A systemd-style notify socket the daemon writes `READY=1` and friends to,
/// read all the time by a thread, as systemd would.
pub struct NotifySocket {
    pub path: PathBuf,
    received: Arc<Mutex<Vec<String>>>,
}

impl NotifySocket {
    pub fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind notify socket");
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(length) = socket.recv(&mut buffer) {
                let message = String::from_utf8_lossy(&buffer[..length]).into_owned();
                match sink.lock() {
                    Ok(mut messages) => messages.push(message),
                    Err(_) => return,
                }
            }
        });
        NotifySocket { path, received }
    }

    /// Whether any message so far has the line `line`.
    pub fn has(&self, line: &str) -> bool {
        self.received
            .lock()
            .expect("lock")
            .iter()
            .any(|message| message.lines().any(|l| l == line))
    }
}

impl Daemon {
    /// Start `tillsyn run --config config`, logging to `dir/daemon.log`, with
    /// extra environment `env`; returns once `/healthz` answers.
    pub fn start(config: &Path, port: u16, dir: &Path, env: &[(&str, &str)]) -> Daemon {
        Daemon::start_with_args(config, port, dir, env, &[])
    }

    /// [`Daemon::start`] with more arguments to `tillsyn run`.
    pub fn start_with_args(
        config: &Path,
        port: u16,
        dir: &Path,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Daemon {
        let log = unique(dir.join("daemon.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_tillsyn"));
        command
            .args(["run", "--config"])
            .arg(config)
            .args(args)
            .env("TILLSYN_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("start tillsyn run");
        let mut daemon = Daemon {
            child: Some(child),
            port,
            log,
        };
        wait_for("the daemon to answer /healthz", || {
            if let Some(status) = daemon.exited() {
                panic!("tillsyn run exited with {status}:\n{}", daemon.log_text());
            }
            daemon
                .get("/healthz")
                .is_some_and(|(status, _)| status == 200)
        });
        daemon
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |child| child.id() as i32)
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.pid(), signal);
        }
    }

    /// The exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }

    /// Wait for the process to end.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut status = None;
        wait_for("the daemon to exit", || {
            status = self.exited();
            status.is_some()
        });
        self.child = None;
        status.expect("exit status")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET `path`: status and body, or `None` when nothing answers.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let status = response.split_whitespace().nth(1)?.parse().ok()?;
        let body = response.split_once("\r\n\r\n").map(|(_, body)| body)?;
        // The body may come chunked; for text it is enough to drop the
        // chunk-size lines, which are bare hex numbers.
        let body = if response
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_owned()
        };
        Some((status, body))
    }

    /// A scrape of `/metrics`.
    pub fn metrics(&self) -> Metrics {
        let (status, body) = self.get("/metrics").expect("scrape /metrics");
        assert_eq!(status, 200, "{body}");
        Metrics::parse(&body)
    }
}

fn unique(path: PathBuf) -> PathBuf {
    let mut candidate = path.clone();
    let mut n = 0;
    while candidate.exists() {
        n += 1;
        candidate = path.with_extension(format!("{n}.log"));
    }
    candidate
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size_line, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size_line.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A parsed text exposition: samples by name, each with its labels.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub text: String,
    pub samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            let value: f64 = value.parse().expect("sample value");
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, parse_labels(labels.trim_end_matches('}'))),
                None => (series, BTreeMap::new()),
            };
            samples.push((name.to_owned(), labels, value));
        }
        Metrics {
            text: text.to_owned(),
            samples,
        }
    }

    /// The value of `name` whose labels include `labels`, if exactly one has.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<f64> = self
            .samples
            .iter()
            .filter(|(sample, sample_labels, _)| {
                sample == name
                    && labels.iter().all(|(key, value)| {
                        sample_labels.get(*key).map(String::as_str) == Some(value)
                    })
            })
            .map(|(_, _, value)| *value)
            .collect();
        match matching.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    /// Like [`Metrics::value`], 0 when absent (for counters that just started).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or(0.0)
    }

    /// Every metric name.
    pub fn names(&self) -> std::collections::BTreeSet<String> {
        self.samples
            .iter()
            .map(|(name, _, _)| name.clone())
            .collect()
    }

    /// Every label value.
    pub fn label_values(&self) -> Vec<String> {
        self.samples
            .iter()
            .flat_map(|(_, labels, _)| labels.values().cloned())
            .collect()
    }
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((index, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(match escaped {
                            'n' => '\n',
                            other => other,
                        });
                    }
                }
                '"' => {
                    end = index + 1;
                    break;
                }
                other => value.push(other),
            }
        }
        labels.insert(key.trim_start_matches(',').trim().to_owned(), value);
        rest = &after[end..];
    }
    labels
}
