//! A real SMTP server for the report tests: Debian's aiosmtpd, started from a temp
//! dir on a loopback port, storing each message it accepts as one file.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::process::kill_group;

pub struct SmtpSink {
    child: Option<Child>,
    pub port: u16,
    pub maildir: PathBuf,
}

impl SmtpSink {
    /// Start on `port`, keeping messages under `dir/maildir`.
    pub fn start(dir: &Path, port: u16) -> SmtpSink {
        SmtpSink::start_with(dir, port, None)
    }

    /// Start offering STARTTLS with `cert` and `key` (PEM files).
    pub fn start_with_starttls(dir: &Path, port: u16, cert: &Path, key: &Path) -> SmtpSink {
        SmtpSink::start_with(dir, port, Some((cert, key)))
    }

    fn start_with(dir: &Path, port: u16, tls: Option<(&Path, &Path)>) -> SmtpSink {
        let maildir = dir.join("maildir");
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).expect("maildir");
        }
        let mut command = Command::new("/usr/bin/python3");
        command
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((cert, key)) = tls {
            command
                .arg("--tlscert")
                .arg(cert)
                .arg("--tlskey")
                .arg(key)
                .arg("--no-requiretls");
        }
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .spawn()
            .expect("aiosmtpd (Debian package python3-aiosmtpd; ./scripts/test installs it)");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "aiosmtpd did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        SmtpSink {
            child: Some(child),
            port,
            maildir,
        }
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut files: Vec<(std::time::SystemTime, PathBuf)> =
            std::fs::read_dir(self.maildir.join("new"))
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .map(|entry| {
                            let modified = entry
                                .metadata()
                                .and_then(|m| m.modified())
                                .unwrap_or(std::time::UNIX_EPOCH);
                            (modified, entry.path())
                        })
                        .collect()
                })
                .unwrap_or_default();
        files.sort();
        files
            .into_iter()
            .map(|(_, path)| std::fs::read(path).expect("read message"))
            .collect()
    }

    pub fn stop(&mut self) {
        kill_group(&mut self.child);
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}
