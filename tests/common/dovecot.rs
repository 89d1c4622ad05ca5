//! A real Dovecot for the IMAP tests: its own temp dir, config, test CA and server
//! certificate, passwd-file users (and a master user), loopback ports, its own
//! process group; plus a small raw IMAP client the tests use to plant mail with
//! APPEND (past INTERNALDATEs), to expunge, and to snapshot folders for the
//! read-only proof. The auditor under test never uses this client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use super::process::{free_port, kill_group};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Mail is owned by this user (Dovecot refuses root for mail).
pub const MAIL_UID: u32 = 65534;

pub struct Dovecot {
    pub dir: tempfile::TempDir,
    /// Plain IMAP port (STARTTLS offered).
    pub port: u16,
    /// Implicit TLS port.
    pub tls_port: u16,
    child: Option<Child>,
}

fn run(command: &mut Command) {
    let output = command.output().expect("run command");
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA (`NAME.pem`, `NAME.key`) in `dir`.
pub fn make_ca(dir: &Path, name: &str) {
    run(Command::new("openssl").current_dir(dir).args([
        "req",
        "-x509",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &format!("{name}.key"),
        "-out",
        &format!("{name}.pem"),
        "-days",
        "3",
        "-subj",
        &format!("/CN=tillsyn test {name}"),
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]));
}

/// A server certificate for localhost and 127.0.0.1, signed by CA `ca`.
pub fn make_server_cert(dir: &Path, ca: &str) {
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    run(Command::new("openssl").current_dir(dir).args([
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]));
    run(Command::new("openssl").current_dir(dir).args([
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        &format!("{ca}.pem"),
        "-CAkey",
        &format!("{ca}.key"),
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "3",
        "-extfile",
        "server.ext",
    ]));
}

/// The namespace the tests use unless they ask for another: `/`-separated,
/// with SPECIAL-USE Sent and Trash.
const DEFAULT_NAMESPACE: &str = r"namespace inbox {
  inbox = yes
  separator = /
  mailbox Sent {
    special_use = \Sent
    auto = subscribe
  }
  mailbox Trash {
    special_use = \Trash
    auto = subscribe
  }
}
";

impl Dovecot {
    /// Start Dovecot with `users` (name, password) and a master user
    /// `tillsyn-master` / `master-secret`.
    pub fn start(users: &[(&str, &str)]) -> Dovecot {
        Dovecot::start_with_namespace(users, DEFAULT_NAMESPACE)
    }

    /// [`Dovecot::start`] with users made at run time (name, password).
    pub fn start_owned(users: &[(String, String)]) -> Dovecot {
        let users: Vec<(&str, &str)> = users
            .iter()
            .map(|(user, password)| (user.as_str(), password.as_str()))
            .collect();
        Dovecot::start(&users)
    }

    /// Start Dovecot as Courier and Cyrus lay mail out: `.` separates levels,
    /// every folder is under `INBOX.`, and no folder has a SPECIAL-USE.
    pub fn start_courier_style(users: &[(&str, &str)]) -> Dovecot {
        Dovecot::start_with_namespace(
            users,
            "namespace inbox {\n  inbox = yes\n  separator = .\n  prefix = INBOX.\n}\n",
        )
    }

    /// Start Dovecot as Gmail lays mail out: every message is also in
    /// `[Gmail]/All Mail`, whose SPECIAL-USE is `\All`.
    pub fn start_gmail_style(users: &[(&str, &str)]) -> Dovecot {
        Dovecot::start_with_namespace(
            users,
            "namespace inbox {\n  inbox = yes\n  separator = /\n  mailbox \"[Gmail]/All Mail\" {\n    special_use = \\All\n    auto = create\n  }\n  mailbox \"[Gmail]/Sent Mail\" {\n    special_use = \\Sent\n    auto = create\n  }\n}\n",
        )
    }

    fn start_with_namespace(users: &[(&str, &str)], namespace: &str) -> Dovecot {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        make_ca(path, "ca");
        make_ca(path, "other-ca");
        make_server_cert(path, "ca");
        let mut passwd = String::new();
        for (user, password) in users {
            let home = path.join("home").join(user);
            std::fs::create_dir_all(home.join("Maildir")).expect("home");
            passwd.push_str(&format!(
                "{user}:{{PLAIN}}{password}:{MAIL_UID}:{MAIL_UID}::{}::\n",
                home.display()
            ));
        }
        std::fs::write(path.join("users"), passwd).expect("users");
        std::fs::write(
            path.join("masters"),
            "tillsyn-master:{PLAIN}master-secret\n",
        )
        .expect("masters");
        let port = free_port();
        let tls_port = free_port();
        let config = format!(
            r#"
base_dir = {dir}/run
state_dir = {dir}/state
instance_name = tillsyn-test-{port}
log_path = {dir}/dovecot.log
listen = 127.0.0.1
protocols = imap
ssl = yes
ssl_cert = <{dir}/server.pem
ssl_key = <{dir}/server.key
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer
auth_failure_delay = 0
login_trusted_networks = 127.0.0.0/8
auth_master_user_separator = *
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 1
mail_location = maildir:~/Maildir
mail_fsync = never
# XOAUTH2 with JWTs checked locally against keys/default/HS256/default.
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {dir}/oauth2.conf
}}
passdb {{
  driver = passwd-file
  master = yes
  args = scheme=PLAIN {dir}/masters
  pass = yes
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {dir}/users
}}
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = {tls_port}
    ssl = yes
  }}
}}
service imap {{
  vsz_limit = 2G
}}
# Tests log in with wrong passwords on purpose: no growing penalty per IP.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
{namespace}"#,
            dir = path.display()
        );
        std::fs::write(path.join("dovecot.conf"), config).expect("config");
        std::fs::write(
            path.join("oauth2.conf"),
            format!(
                "introspection_mode = local\nlocal_validation_key_dict = fs:posix:prefix={}/keys/\n\
                 username_attribute = sub\n",
                path.display()
            ),
        )
        .expect("oauth2 config");
        let key_dir = path.join("keys/default/HS256");
        std::fs::create_dir_all(&key_dir).expect("keys");
        std::fs::write(key_dir.join("default"), base64(OAUTH_KEY, false)).expect("key");
        chown_tree(&path.join("home"));
        let mut dovecot = Dovecot {
            dir,
            port,
            tls_port,
            child: None,
        };
        dovecot.launch();
        dovecot
    }

    fn launch(&mut self) {
        // Debian installs it in /usr/sbin, not always on a test's PATH.
        let binary = ["/usr/sbin/dovecot", "/usr/local/sbin/dovecot"]
            .into_iter()
            .find(|path| Path::new(path).exists())
            .unwrap_or("dovecot");
        let child = Command::new(binary)
            .args(["-F", "-c"])
            .arg(self.dir.path().join("dovecot.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start dovecot (Debian package dovecot-imapd)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let mut line = String::new();
                if BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("* OK") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "dovecot did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The master process's id (its process group's too), while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kill the whole process group at once (what a crash looks like).
    pub fn kill(&mut self) {
        kill_group(&mut self.child);
    }

    /// Start again after `kill`.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Root of the users' homes: `home/<user>/Maildir`.
    pub fn homes(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// Give mail files written directly to the mail user.
    pub fn fix_ownership(&self) {
        chown_tree(&self.homes());
    }

    /// A bearer token (an HS256 JWT) Dovecot accepts for `user`.
    pub fn token(&self, user: &str) -> String {
        use hmac::{Hmac, Mac};
        let now = chrono::Utc::now().timestamp();
        let header = base64(br#"{"alg":"HS256","typ":"JWT"}"#, true);
        let claims = format!(
            r#"{{"sub":"{user}","iat":{now},"nbf":{now},"exp":{}}}"#,
            now + 3600
        );
        let signed = format!("{header}.{}", base64(claims.as_bytes(), true));
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(OAUTH_KEY).expect("key");
        mac.update(signed.as_bytes());
        format!("{signed}.{}", base64(&mac.finalize().into_bytes(), true))
    }

    /// A raw client logged in as `user`.
    pub fn client(&self, user: &str, password: &str) -> RawImap {
        RawImap::login(self.port, user, password)
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The key the test server checks bearer tokens with.
const OAUTH_KEY: &[u8] = b"tillsyn-test-oauth-key-32-bytes!";

/// Base64, standard or URL-safe without padding (for JWTs).
fn base64(bytes: &[u8], url: bool) -> String {
    let alphabet: &[u8; 64] = if url {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
        if !url {
            out.push_str(&"=".repeat(3 - chunk.len()));
        }
    }
    out
}

fn chown_tree(path: &Path) {
    let _ = std::os::unix::fs::chown(path, Some(MAIL_UID), Some(MAIL_UID));
    if path.is_dir()
        && let Ok(entries) = std::fs::read_dir(path)
    {
        for entry in entries.flatten() {
            chown_tree(&entry.path());
        }
    }
}

/// A minimal blocking IMAP client for planting and inspecting mail.
pub struct RawImap {
    reader: BufReader<TcpStream>,
    tag: u32,
}

impl RawImap {
    pub fn login(port: u16, user: &str, password: &str) -> RawImap {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut client = RawImap {
            reader: BufReader::new(stream),
            tag: 0,
        };
        let mut greeting = String::new();
        client.reader.read_line(&mut greeting).expect("greeting");
        client.command(&format!("LOGIN \"{user}\" \"{password}\""));
        client.command("ENABLE CONDSTORE");
        client
    }

    fn write(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).expect("write");
    }

    /// Run a command; returns the untagged lines (literals inlined). Panics on NO/BAD.
    pub fn command(&mut self, command: &str) -> Vec<String> {
        self.tag += 1;
        let tag = format!("R{}", self.tag);
        self.write(format!("{tag} {command}\r\n").as_bytes());
        self.read_until(&tag)
    }

    fn read_until(&mut self, tag: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let read = self.reader.read_line(&mut line).expect("read");
            assert!(read > 0, "server closed the connection");
            // Inline a literal {n}.
            while let Some(size) = line
                .trim_end()
                .strip_suffix('}')
                .and_then(|rest| rest.rsplit_once('{'))
                .and_then(|(_, n)| n.parse::<usize>().ok())
            {
                let mut literal = vec![0u8; size];
                self.reader.read_exact(&mut literal).expect("literal");
                line.push_str(&String::from_utf8_lossy(&literal));
                let mut rest = String::new();
                self.reader.read_line(&mut rest).expect("rest");
                line.push_str(&rest);
            }
            if let Some(status) = line.strip_prefix(&format!("{tag} ")) {
                assert!(status.starts_with("OK"), "{tag} failed: {status}");
                lines.push(line);
                return lines;
            }
            lines.push(line);
        }
    }

    /// APPEND a message with an INTERNALDATE `days_ago` days back and no flags.
    /// Returns its UID (from APPENDUID).
    pub fn append(&mut self, folder: &str, message: &[u8], days_ago: u64) -> u32 {
        let when = chrono::Utc::now() - chrono::TimeDelta::days(days_ago as i64);
        self.tag += 1;
        let tag = format!("R{}", self.tag);
        self.write(
            format!(
                "{tag} APPEND \"{folder}\" () \"{}\" {{{}}}\r\n",
                when.format("%d-%b-%Y %H:%M:%S +0000"),
                message.len()
            )
            .as_bytes(),
        );
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("continuation");
        assert!(line.starts_with('+'), "APPEND refused: {line}");
        self.write(message);
        self.write(b"\r\n");
        let lines = self.read_until(&tag);
        let done = lines.last().expect("tagged");
        done.split("APPENDUID ")
            .nth(1)
            .and_then(|rest| rest.split([' ', ']']).nth(1))
            .and_then(|uid| uid.parse().ok())
            .expect("APPENDUID")
    }

    /// Everything a scan must not change in a folder: UIDVALIDITY, HIGHESTMODSEQ,
    /// and every message's UID, flags and modseq.
    pub fn snapshot(&mut self, folder: &str) -> Vec<String> {
        let mut lines: Vec<String> = self
            .command(&format!("EXAMINE \"{folder}\""))
            .into_iter()
            .filter(|line| {
                line.contains("UIDVALIDITY")
                    || line.contains("HIGHESTMODSEQ")
                    || line.contains("EXISTS")
            })
            .collect();
        lines.extend(self.command("UID FETCH 1:* (UID FLAGS MODSEQ)"));
        lines.pop(); // the tagged OK
        lines.sort();
        lines
    }

    /// Delete and expunge one message (as a user would; never the auditor).
    pub fn expunge(&mut self, folder: &str, uid: u32) {
        self.command(&format!("SELECT \"{folder}\""));
        self.command(&format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"));
        self.command("EXPUNGE");
        self.command("UNSELECT");
    }
}

/// A message with the given recipients and Date: header.
pub fn message(to: &[&str], cc: &[&str], date_header: &str, id: u32) -> Vec<u8> {
    let mut text = format!(
        "From: Sender <sender@example.org>\r\nTo: {}\r\n",
        to.join(", ")
    );
    if !cc.is_empty() {
        text.push_str(&format!("Cc: {}\r\n", cc.join(", ")));
    }
    text.push_str(&format!(
        "Subject: test {id}\r\nDate: {date_header}\r\nMessage-ID: <{id}@test>\r\n\r\nbody {id}\r\n"
    ));
    text.into_bytes()
}

/// A TCP proxy in front of a server that counts the bytes the server sends and
/// raises a flag once `threshold` have passed: lets a test act mid-transfer.
pub struct Proxy {
    pub port: u16,
    pub tripped: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Proxy {
    pub fn start(target_port: u16, threshold: usize) -> Proxy {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("address").port();
        let tripped = Arc::new(AtomicBool::new(false));
        let passed = Arc::new(AtomicUsize::new(0));
        let flag = tripped.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
                    continue; // server gone: the client sees the connection drop
                };
                let (mut client_read, mut server_write) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut client_read, &mut server_write);
                });
                let (mut server_read, mut client_write) = (server, client);
                let passed = passed.clone();
                let flag = flag.clone();
                std::thread::spawn(move || {
                    let mut buffer = [0u8; 16384];
                    while let Ok(read) = server_read.read(&mut buffer) {
                        if read == 0 || client_write.write_all(&buffer[..read]).is_err() {
                            break;
                        }
                        if passed.fetch_add(read, Ordering::SeqCst) + read >= threshold {
                            flag.store(true, Ordering::SeqCst);
                        }
                    }
                    let _ = client_write.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        Proxy { port, tripped }
    }
}

/// A TCP proxy that passes the client's bytes on as they are and drops the
/// server's lines that contain any of `dropped`: a server that leaves out
/// parts of its answers (UIDVALIDITY, UIDNEXT), as some do.
pub struct LineFilterProxy {
    pub port: u16,
}

impl LineFilterProxy {
    pub fn start(target_port: u16, dropped: &'static [&'static str]) -> LineFilterProxy {
        use std::io::BufRead;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("address").port();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
                    continue;
                };
                let (mut client_read, mut server_write) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut client_read, &mut server_write);
                });
                let mut client_write = client;
                std::thread::spawn(move || {
                    let mut reader = std::io::BufReader::new(server);
                    let mut line = Vec::new();
                    loop {
                        line.clear();
                        match reader.read_until(b'\n', &mut line) {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        }
                        let text = String::from_utf8_lossy(&line);
                        if dropped.iter().any(|word| text.contains(word)) {
                            continue;
                        }
                        if client_write.write_all(&line).is_err() {
                            break;
                        }
                    }
                    let _ = client_write.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        LineFilterProxy { port }
    }
}
