//! The extraction worker: the tillsyn binary run again as `tillsyn __extract`,
//! one document per process, under an address-space limit (RLIMIT_AS), a CPU
//! limit (RLIMIT_CPU) and a wall-clock deadline. The document goes in on stdin
//! (its name on the first line), the text comes back on stdout, and nothing is
//! written to disk. A parser that panics, loops or allocates without end takes
//! only its own process down; the caller gets [`ExtractError::Worker`] and the
//! document counts as unreadable.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{ExtractError, Limits};

/// The argument that makes the tillsyn binary an extraction worker.
pub const WORKER_ARGUMENT: &str = "__extract";

/// Exit status of a worker whose document gave an [`ExtractError`] (its kind
/// and message on stderr).
const EXIT_DOCUMENT: i32 = 3;
/// The worker's exit status when it read the document but cut its text at
/// the limit (the text it wrote is what there was room for).
const EXIT_TRUNCATED: i32 = 4;

/// Extraction in a worker process.
#[derive(Debug, Clone)]
pub struct Isolated {
    /// The tillsyn binary.
    pub program: PathBuf,
    /// Limits inside the worker.
    pub limits: Limits,
    /// Wall-clock time per document.
    pub deadline: Duration,
    /// Address space of the worker.
    pub memory_bytes: u64,
}

impl Isolated {
    /// A worker of the running binary with default limits: 30 s and 1 GiB per
    /// document.
    pub fn of_this_binary() -> Result<Isolated, ExtractError> {
        let program = std::env::current_exe()
            .map_err(|error| ExtractError::Worker(format!("cannot find this binary: {error}")))?;
        Ok(Isolated {
            program,
            limits: Limits::default(),
            deadline: Duration::from_secs(30),
            memory_bytes: 1 << 30,
        })
    }

    /// The text of document `name`, extracted by a worker.
    pub fn extract(&self, name: &str, bytes: &[u8]) -> Result<crate::Extracted, ExtractError> {
        let limits = self.limits;
        let memory = self.memory_bytes;
        let cpu_seconds = self.deadline.as_secs().max(1) + 1;
        let mut command = Command::new(&self.program);
        command
            .arg(WORKER_ARGUMENT)
            .arg(limits.member_bytes.to_string())
            .arg(limits.total_bytes.to_string())
            .arg(limits.depth.to_string())
            .arg(limits.text_bytes.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_clear();
        // SAFETY: only async-signal-safe calls (setrlimit) between fork and exec.
        unsafe {
            command.pre_exec(move || {
                let set = |resource, value: u64| {
                    let limit = libc::rlimit {
                        rlim_cur: value as libc::rlim_t,
                        rlim_max: value as libc::rlim_t,
                    };
                    if libc::setrlimit(resource, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                };
                set(libc::RLIMIT_AS, memory)?;
                set(libc::RLIMIT_CPU, cpu_seconds)?;
                set(libc::RLIMIT_CORE, 0)?;
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .map_err(|error| ExtractError::Worker(format!("cannot start: {error}")))?;
        let mut stdin = child.stdin.take();
        let input = [name.replace('\n', " ").as_bytes(), b"\n", bytes].concat();
        let writer = std::thread::spawn(move || {
            if let Some(stdin) = stdin.as_mut() {
                // A worker that stopped reading (it died) is judged by its exit.
                let _ = stdin.write_all(&input);
            }
        });
        let stdout = child.stdout.take();
        // The most a worker writes: the text limit and a line's end.
        let text_cap = limits.text_bytes as u64 + 1;
        let reader = std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(stdout) = stdout {
                let _ = stdout.take(text_cap + 1).read_to_end(&mut text);
            }
            text
        });
        let stderr = child.stderr.take();
        let errors = std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(stderr) = stderr {
                let _ = stderr.take(4096).read_to_string(&mut text);
            }
            text
        });
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if started.elapsed() >= self.deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(error) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(ExtractError::Worker(error.to_string()));
                }
            }
        };
        let _ = writer.join();
        let text = reader.join().unwrap_or_default();
        let errors = errors.join().unwrap_or_default();
        let Some(status) = status else {
            return Err(ExtractError::Worker(format!(
                "no answer within {} s; stopped",
                self.deadline.as_secs()
            )));
        };
        if status.success() || status.code() == Some(EXIT_TRUNCATED) {
            // More than the limit on the pipe is cut too.
            let over = text.len() as u64 > text_cap;
            return Ok(crate::Extracted {
                text: String::from_utf8_lossy(&text).into_owned(),
                truncated: over || status.code() == Some(EXIT_TRUNCATED),
            });
        }
        if status.code() == Some(EXIT_DOCUMENT) {
            return Err(document_error(errors.trim()));
        }
        Err(ExtractError::Worker(match status.signal() {
            Some(signal) => format!("ended by signal {signal} (a limit, or a crash)"),
            None => format!("ended with {status}: {}", errors.trim()),
        }))
    }
}

/// The error a worker reported, by its first word.
fn document_error(line: &str) -> ExtractError {
    let (kind, reason) = line.split_once(": ").unwrap_or((line, ""));
    match kind {
        "unsupported" => ExtractError::Unsupported,
        "too_large" => ExtractError::TooLarge("a limit inside the document"),
        "too_deep" => ExtractError::TooDeep(0),
        _ => ExtractError::Malformed {
            kind: "document",
            reason: reason.chars().take(200).collect(),
        },
    }
}

/// The worker's side: `tillsyn __extract MEMBER TOTAL DEPTH TEXT`, the document
/// on stdin after its name's line. Returns the process's exit status.
pub fn worker_main(arguments: &[String]) -> i32 {
    let number = |index: usize, default: u64| -> u64 {
        arguments
            .get(index)
            .and_then(|value| value.parse().ok())
            .unwrap_or(default)
    };
    let defaults = Limits::default();
    let limits = Limits {
        member_bytes: number(0, defaults.member_bytes),
        total_bytes: number(1, defaults.total_bytes),
        depth: u32::try_from(number(2, u64::from(defaults.depth))).unwrap_or(defaults.depth),
        text_bytes: usize::try_from(number(3, defaults.text_bytes as u64))
            .unwrap_or(defaults.text_bytes),
    };
    let mut input = Vec::new();
    if std::io::stdin().lock().read_to_end(&mut input).is_err() {
        return EXIT_DOCUMENT;
    }
    let (name, bytes) = match input.iter().position(|byte| *byte == b'\n') {
        Some(at) => (
            String::from_utf8_lossy(&input[..at]).into_owned(),
            &input[at + 1..],
        ),
        None => (String::new(), &input[..]),
    };
    match crate::extract(&name, bytes, &limits) {
        Ok(extracted) => {
            let mut stdout = std::io::stdout().lock();
            if stdout.write_all(extracted.text.as_bytes()).is_err() || stdout.flush().is_err() {
                return EXIT_DOCUMENT;
            }
            if extracted.truncated {
                EXIT_TRUNCATED
            } else {
                0
            }
        }
        Err(error) => {
            eprintln!("{}: {error}", error.kind());
            EXIT_DOCUMENT
        }
    }
}
