//! A real SMTP server for the report tests: Debian's aiosmtpd, started from a temp
//! dir on a loopback port, storing each message it accepts as one file.
//!
//! aiosmtpd keeps its default limits, so it refuses a line over 1,000 octets
//! (`500 Line too long`) as strict servers do. Its handler here is as strict
//! as Exchange Online and Postfix's `smtpd_forbid_bare_newline`: a message
//! with a bare LF or CR, or a line over 998 octets, is refused (aiosmtpd
//! alone splits lines on LF and would take it). Each message is stored as the
//! bytes that came over the wire (`envelope.original_content`), CRLF and all:
//! aiosmtpd's own Maildir handler rewrites line endings, which would hide a
//! bare LF. A recipient whose address begins with `refused` is refused, as
//! an unknown user is.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::process::kill_group;

/// An aiosmtpd handler keeping each message as received on the wire.
const RAW_MAILDIR: &str = r#"
import itertools, os, time

class RawMaildir:
    def __init__(self, path):
        self.path = path
        self.counter = itertools.count()

    @classmethod
    def from_cli(cls, parser, *args):
        return cls(args[0])

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("refused"):
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        content = envelope.original_content
        for line in content.split(b"\r\n"):
            if b"\n" in line or b"\r" in line:
                return "550 5.6.11 Bare LF or CR not allowed: lines end in CRLF"
            if len(line) > 998:
                return "500 5.5.2 Line too long (RFC 5321 4.5.3.1.6)"
        name = "%d.%d.%d" % (time.time_ns(), next(self.counter), os.getpid())
        temporary = os.path.join(self.path, "tmp", name)
        with open(temporary, "wb") as stored:
            stored.write(envelope.original_content)
        os.rename(temporary, os.path.join(self.path, "new", name))
        return "250 OK"
"#;

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
        std::fs::write(dir.join("raw_maildir.py"), RAW_MAILDIR).expect("handler");
        let mut command = Command::new("/usr/bin/python3");
        command
            .env("PYTHONPATH", dir)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "raw_maildir.RawMaildir"])
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
