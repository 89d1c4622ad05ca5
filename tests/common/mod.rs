//! Helpers shared by the integration tests: building trees with planted
//! violations (files with chosen mtimes, Maildir messages with chosen received
//! times), running the real `tillsyn` binary, and reading its JSON output.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

/// Seconds in a day.
pub const DAY: u64 = 86_400;

/// `days` days before now.
pub fn days_ago(days: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(days * DAY)
}

/// Write `content` to `path` (parents created) and set its mtime.
pub fn file_at(path: &Path, content: &[u8], modified: SystemTime) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create parent");
    }
    std::fs::write(path, content).expect("write file");
    set_mtime(path, modified);
}

/// Set a file's or folder's mtime.
pub fn set_mtime(path: &Path, modified: SystemTime) {
    let file = std::fs::File::open(path).expect("open for mtime");
    file.set_modified(modified).expect("set mtime");
}

/// A Maildir++ mailbox for one account under `root/<account>/Maildir`.
pub struct Mailbox {
    pub dir: PathBuf,
    counter: u32,
}

impl Mailbox {
    pub fn new(root: &Path, account: &str) -> Mailbox {
        let dir = root.join(account).join("Maildir");
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).expect("maildir");
        }
        Mailbox { dir, counter: 0 }
    }

    fn folder_dir(&self, folder: &str) -> PathBuf {
        if folder == "INBOX" {
            self.dir.clone()
        } else {
            let dir = self.dir.join(format!(".{folder}"));
            for sub in ["cur", "new", "tmp"] {
                std::fs::create_dir_all(dir.join(sub)).expect("folder");
            }
            dir
        }
    }

    /// Deliver a raw message into `folder` (INBOX or a Maildir++ folder name as
    /// stored on disk) received `days` days ago. Returns the record id tillsyn
    /// gives it: `account/folder/unique`.
    pub fn raw(
        &mut self,
        account_folder: (&str, &str),
        raw: &[u8],
        received: SystemTime,
    ) -> String {
        let (account, folder) = account_folder;
        self.counter += 1;
        let unique = format!("{}.M{}P7.test", 1_700_000_000 + self.counter, self.counter);
        let name = format!("{unique},S={}:2,S", raw.len());
        file_at(
            &self.folder_dir(folder).join("cur").join(name),
            raw,
            received,
        );
        format!("{account}/{}/{unique}", decode_folder(folder))
    }

    /// Deliver a well-formed message with the given recipients.
    pub fn message(
        &mut self,
        account: &str,
        folder: &str,
        to: &[&str],
        cc: &[&str],
        received_days_ago: u64,
        date_header: &str,
    ) -> String {
        let mut text = format!(
            "From: Someone <sender@example.org>\r\nTo: {}\r\n",
            to.join(", ")
        );
        if !cc.is_empty() {
            text.push_str(&format!("Cc: {}\r\n", cc.join(", ")));
        }
        text.push_str(&format!(
            "Subject: test\r\nDate: {date_header}\r\nMessage-ID: <{}@test>\r\n\r\nbody\r\n",
            self.counter
        ));
        self.raw(
            (account, folder),
            text.as_bytes(),
            days_ago(received_days_ago),
        )
    }
}

fn decode_folder(folder: &str) -> String {
    folder.replace('.', "/")
}

/// Run the tillsyn binary with `args`.
///
/// `scan` and `findings` get `--reveal`: the detection tests compare the record
/// paths they planted, as an admin acting on findings would see them. What the
/// default output hides is tested in `tests/privacy.rs` through
/// [`tillsyn_as_configured`].
pub fn tillsyn(args: &[&str]) -> Output {
    tillsyn_as_configured(&revealing(args))
}

/// Run tillsyn with exactly these arguments (no `--reveal` added).
pub fn tillsyn_as_configured(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tillsyn"))
        .args(args)
        .env("TILLSYN_LOG", "warn")
        .output()
        .expect("run tillsyn")
}

/// `args`, with `--reveal` after `scan` and `findings`.
fn revealing<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut args = args.to_vec();
    if matches!(args.first(), Some(&"scan") | Some(&"findings")) && !args.contains(&"--reveal") {
        args.insert(1, "--reveal");
    }
    args
}

/// Run tillsyn as an unprivileged user when the tests run as root, so that
/// permission bits apply (root reads everything). Uses util-linux `setpriv`.
pub fn tillsyn_unprivileged(args: &[&str]) -> Output {
    if !running_as_root() {
        return tillsyn(args);
    }
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(world_executable_binary())
        .args(revealing(args))
        .env("TILLSYN_LOG", "warn")
        .output()
        .expect("run tillsyn through setpriv")
}

/// A link to (or, across file systems, a copy of) the binary that an
/// unprivileged user can run wherever the checkout lives (its parents may be
/// closed to others). One per checkout and test binary, replaced at each run,
/// so repeated runs do not fill the temporary directory with copies of a large
/// binary.
fn world_executable_binary() -> PathBuf {
    static COPY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    COPY.get_or_init(|| {
        use std::hash::{Hash, Hasher};
        use std::os::unix::fs::PermissionsExt;
        let built = PathBuf::from(env!("CARGO_BIN_EXE_tillsyn"));
        let mut place = std::collections::hash_map::DefaultHasher::new();
        (&built, std::env::current_exe().ok()).hash(&mut place);
        let dir = std::env::temp_dir().join(format!("tillsyn-test-bin-{:016x}", place.finish()));
        std::fs::create_dir_all(&dir).expect("bin dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
        let runnable = dir.join("tillsyn");
        let _ = std::fs::remove_file(&runnable);
        if std::fs::hard_link(&built, &runnable).is_err() {
            std::fs::copy(&built, &runnable).expect("copy binary");
        }
        std::fs::set_permissions(&runnable, std::fs::Permissions::from_mode(0o755))
            .expect("chmod bin");
        runnable
    })
    .clone()
}

pub use process::running_as_root;

/// Text of stdout and stderr.
pub fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Parse JSON Lines output into values.
pub fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON {line:?}: {e}")))
        .collect()
}

/// `rule:record` pairs from JSON findings.
pub fn pairs(findings: &[serde_json::Value]) -> BTreeSet<String> {
    findings
        .iter()
        .map(|f| {
            format!(
                "{}:{}",
                f["rule"].as_str().unwrap_or("?"),
                f["record"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

/// The findings store in `state` (a state dir), opened beside a running tillsyn.
pub fn open_store(state: &Path) -> rusqlite::Connection {
    let connection =
        rusqlite::Connection::open(state.join("findings.sqlite")).expect("open the store");
    connection
        .busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    connection
}

/// Move a source's checkpoint `key` (Unix seconds) 25 hours into the past, as
/// if the last full read were that old.
pub fn backdate_full_read(state: &Path, key: &str) {
    // A typed checkpoint is stored as `v{version} {plan} {json}`, its last
    // full read in the JSON's `full_at`.
    let store = open_store(state);
    let value: String = store
        .query_row(
            "SELECT value FROM checkpoints WHERE key = ?1",
            [key],
            |row| row.get(0),
        )
        .unwrap_or_else(|error| panic!("no checkpoint {key}: {error}"));
    let mut parts = value.splitn(3, ' ');
    let (version, plan, json) = (
        parts.next().expect("version"),
        parts.next().expect("plan"),
        parts.next().expect("json"),
    );
    let mut state: serde_json::Value = serde_json::from_str(json).expect("checkpoint JSON");
    let full_at = state["full_at"].as_i64().expect("full_at");
    state["full_at"] = serde_json::Value::from(full_at - 90_000);
    let changed = store
        .execute(
            "UPDATE checkpoints SET value = ?1 WHERE key = ?2",
            [format!("{version} {plan} {state}"), key.to_owned()],
        )
        .expect("backdate");
    assert_eq!(changed, 1, "no checkpoint {key}");
}

/// Five files under `root`: modified 40, 100 and 400 days ago (three older than
/// 30 days, one older than a year) and 2 and 10 days ago.
pub fn old_and_new_files(root: &Path) {
    for (name, days) in [
        ("a.txt", 40),
        ("b.txt", 100),
        ("c/d.txt", 400),
        ("e.txt", 2),
        ("f.txt", 10),
    ] {
        file_at(&root.join(name), b"x", days_ago(days));
    }
}

/// Run `tillsyn scan --once` on `config`, expect it to succeed, and return
/// its summary (stderr).
pub fn scan_ok(config: &str) -> String {
    let output = tillsyn(&["scan", "--once", "--config", config]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    stderr
}

/// A connector's work count (`work: name N`) from a scan's summary on stderr;
/// 0 when not reported.
pub fn work(stderr: &str, name: &str) -> u64 {
    stderr
        .split(&format!("{name} "))
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|number| number.parse().ok())
        .unwrap_or(0)
}

/// Assert two sets are equal, listing misses and false alarms separately.
pub fn assert_exact(found: &BTreeSet<String>, planted: &BTreeSet<String>) {
    let missed: Vec<&String> = planted.difference(found).collect();
    let false_alarms: Vec<&String> = found.difference(planted).collect();
    assert!(
        missed.is_empty() && false_alarms.is_empty(),
        "missed {} planted violations: {missed:#?}\nfalse alarms {}: {false_alarms:#?}",
        missed.len(),
        false_alarms.len()
    );
}

pub mod api;
pub mod crm;
pub mod daemon;
pub mod dovecot;
pub mod mail_corpus;
pub mod postgres;
pub mod process;
pub mod samba;
pub mod slapd;
pub mod smtp;

/// Run tillsyn with `args` (as [`tillsyn`] does) and these environment
/// variables set.
pub fn tillsyn_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tillsyn"));
    command.args(revealing(args)).env("TILLSYN_LOG", "warn");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run tillsyn")
}
