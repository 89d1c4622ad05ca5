//! A real PostgreSQL for the store and fleet tests: `initdb` on a temporary
//! data directory and the server on a loopback port, run as an unprivileged
//! user (PostgreSQL refuses to run as root), with password (SCRAM) login over
//! TCP for the user `tillsyn`. The server is a child of a thread of its own
//! with a parent-death signal, so it goes with the test process even when a
//! test file shares it from a static that is never dropped; dropping it stops
//! it at once.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::process::{free_port, running_as_root};

pub const USER: &str = "tillsyn";
pub const PASSWORD: &str = "tillsyn-pg-pw";
pub const DATABASE: &str = "tillsyn";

pub struct Postgres {
    pub dir: tempfile::TempDir,
    pub port: u16,
    bin: PathBuf,
    /// The running server's process id.
    pid: std::sync::Mutex<Option<u32>>,
    /// More `-c name=value` settings for the server.
    settings: Vec<String>,
}

/// The directory of `initdb` and `pg_ctl` (Debian keeps them per version).
fn bin_dir() -> PathBuf {
    let versions = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            let mut found: Vec<PathBuf> = entries
                .flatten()
                .map(|entry| entry.path().join("bin"))
                .filter(|bin| bin.join("initdb").exists())
                .collect();
            found.sort();
            found
        })
        .unwrap_or_default();
    versions
        .last()
        .cloned()
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
}

/// `program` with `args`, as `nobody` when we are root.
fn unprivileged(program: &Path, args: &[&str]) -> Output {
    let mut command = if running_as_root() {
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(program);
        command
    } else {
        Command::new(program)
    };
    command
        .args(args)
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap_or_else(|error| panic!("run {}: {error}", program.display()))
}

impl Postgres {
    pub fn start() -> Postgres {
        Postgres::start_with(Vec::new(), |_| {})
    }

    /// A server that offers TLS with `cert` and `key` (PEM), copied into its
    /// directory and owned by the server's user, as PostgreSQL demands.
    pub fn start_with_tls(cert: &Path, key: &Path) -> Postgres {
        let (cert, key) = (cert.to_path_buf(), key.to_path_buf());
        Postgres::start_with(
            vec![
                "ssl=on".into(),
                "ssl_cert_file=../server.pem".into(),
                "ssl_key_file=../server.key".into(),
            ],
            move |dir| {
                for (from, name) in [(&cert, "server.pem"), (&key, "server.key")] {
                    let to = dir.join(name);
                    std::fs::copy(from, &to).expect("copy TLS file");
                    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600))
                        .expect("chmod");
                    if running_as_root() {
                        let status = Command::new("chown")
                            .arg("nobody:nogroup")
                            .arg(&to)
                            .status()
                            .expect("chown");
                        assert!(status.success(), "chown {}", to.display());
                    }
                }
            },
        )
    }

    /// A server with more `name=value` settings (e.g. statement logging for
    /// a benchmark's profile).
    pub fn start_with_settings(settings: &[&str]) -> Postgres {
        Postgres::start_with(settings.iter().map(|s| (*s).to_owned()).collect(), |_| {})
    }

    /// Start with more server settings, after `prepare` has had the
    /// directory.
    fn start_with(settings: Vec<String>, prepare: impl FnOnce(&Path)) -> Postgres {
        let dir = tempfile::tempdir().expect("tempdir");
        // The server's user must own its data directory; the socket and log
        // go beside it.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        let bin = bin_dir();
        let data = dir.path().join("data");
        let password_file = dir.path().join("pw");
        std::fs::write(&password_file, PASSWORD).expect("password");
        std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        let data_text = data.display().to_string();
        let initdb = unprivileged(
            &bin.join("initdb"),
            &[
                "-D",
                &data_text,
                "-U",
                USER,
                "--pwfile",
                &password_file.display().to_string(),
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        assert!(
            initdb.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        prepare(dir.path());
        let server = Postgres {
            dir,
            port: free_port(),
            bin,
            pid: std::sync::Mutex::new(None),
            settings,
        };
        server.start_server();
        let created = unprivileged(
            &server.bin.join("createdb"),
            &[
                "-h",
                &server.dir.path().display().to_string(),
                "-p",
                &server.port.to_string(),
                "-U",
                USER,
                DATABASE,
            ],
        );
        assert!(
            created.status.success(),
            "createdb: {}",
            String::from_utf8_lossy(&created.stderr)
        );
        server
    }

    fn start_server(&self) {
        let data = self.dir.path().join("data").display().to_string();
        let socket = self.dir.path().display().to_string();
        let port = self.port.to_string();
        let log = std::fs::File::create(self.dir.path().join("server.log")).expect("log");
        let mut command = if running_as_root() {
            let mut command = Command::new("setpriv");
            command
                .args([
                    "--reuid=nobody",
                    "--regid=nogroup",
                    "--clear-groups",
                    "--pdeathsig",
                    "KILL",
                    "--",
                ])
                .arg(self.bin.join("postgres"));
            command
        } else {
            Command::new(self.bin.join("postgres"))
        };
        command
            .args(["-D", &data, "-k", &socket, "-p", &port, "-h", "127.0.0.1"])
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ])
            .args(
                self.settings
                    .iter()
                    .flat_map(|setting| ["-c", setting.as_str()]),
            )
            .env("LC_ALL", "C.UTF-8")
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        // The parent of the server is a thread that lives as long as the
        // server runs: when the test process ends, the server gets SIGKILL.
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut child = match command.spawn() {
                Ok(child) => child,
                Err(error) => {
                    let _ = sender.send(Err(error.to_string()));
                    return;
                }
            };
            let _ = sender.send(Ok(child.id()));
            let _ = child.wait();
        });
        let pid = receiver
            .recv()
            .expect("server thread")
            .unwrap_or_else(|error| panic!("start postgres: {error}"));
        *self.pid.lock().expect("pid") = Some(pid);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "postgres never listened: {}",
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Listening is not accepting: until recovery or start-up is done the
        // server answers "the database system is starting up".
        let socket = self.dir.path().display().to_string();
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-h", &socket, "-p", &port, "-U", USER, "-q"])
                .status()
                .is_ok_and(|status| status.success());
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "postgres never accepted connections: {}",
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The connection URL, without the password (that comes from a file or
    /// the environment).
    pub fn url(&self) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{DATABASE}", self.port)
    }

    /// A password file for the config.
    pub fn password_file(&self) -> PathBuf {
        self.dir.path().join("pw")
    }

    /// Run SQL through psql as the superuser, over the socket.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in(DATABASE, sql)
    }

    /// Run SQL in `database` through psql as the superuser.
    pub fn psql_in(&self, database: &str, sql: &str) -> String {
        let output = unprivileged(
            Path::new("/usr/bin/psql"),
            &[
                "-h",
                &self.dir.path().display().to_string(),
                "-p",
                &self.port.to_string(),
                "-U",
                USER,
                "-d",
                database,
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
        );
        assert!(
            output.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Stop it now (as a crash would), keeping its data.
    pub fn kill(&self) {
        if let Some(pid) = self.pid.lock().expect("pid").take() {
            // SIGQUIT: the immediate shutdown, children and all.
            let _ = Command::new("kill")
                .args(["-QUIT", &pid.to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Start it again on the same port and data.
    pub fn restart(&self) {
        self.start_server();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.kill();
    }
}
