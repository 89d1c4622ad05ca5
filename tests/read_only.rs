//! A scan changes nothing it reads: no file's content, size, mode, mtime or ctime,
//! and no access time where the kernel lets the auditor avoid it (it opens marker
//! files, mail headers, whole messages and documents read for content with
//! O_NOATIME, which works for the files' custodian and for root).

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

const CONFIG: &str = r#"
[daemon]
state_dir = "state"

[[sources]]
name = "share"
type = "fileshare"
root = "data/share"
markers = [{ file = "TILLSATT.txt", date = "filled" }]
folders = [{ glob = "kunder/*", class = "customer" }]

[[sources]]
name = "mail"
type = "maildir"
root = "data/mail"

[[rules]]
id = "filled"
kind = "max_age"
policy = "p"
max_age = "0d"
timestamp = "date:filled"

[[rules]]
id = "cc"
kind = "max_recipients"
policy = "p"
max = 1

[[rules]]
id = "content"
kind = "contains"
policy = "p"
detectors = ["personnummer"]

[[rules]]
id = "untouched"
kind = "max_age"
policy = "p"
max_age = "3y"
timestamp = "last_activity"
when = { kinds = ["folder"] }
"#;

type Snapshot = BTreeMap<PathBuf, (i64, i64, i64, u64, u32, u64)>;

fn snapshot(root: &Path) -> Snapshot {
    let mut out = Snapshot::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).expect("stat");
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read_dir") {
                stack.push(entry.expect("entry").path());
            }
        }
        // The snapshot itself must not touch atime: read with O_NOATIME (allowed
        // for the files' custodian, which the test is).
        let content_hash = if meta.is_file() {
            use std::io::Read;
            use std::os::unix::fs::OpenOptionsExt;
            let mut content = Vec::new();
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOATIME)
                .open(&path)
                .and_then(|mut file| file.read_to_end(&mut content))
                .expect("read");
            content
                .iter()
                .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(*b)))
        } else {
            0
        };
        // Directory atimes change with every listing; files' must not.
        let atime = if meta.is_dir() {
            0
        } else {
            meta.atime() * 1_000_000_000 + meta.atime_nsec()
        };
        out.insert(
            path,
            (
                atime,
                meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
                meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
                meta.size(),
                meta.mode(),
                content_hash,
            ),
        );
    }
    out
}

#[test]
fn a_scan_changes_nothing_it_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let share = data.join("share");
    file_at(
        &share.join("jobb/TILLSATT.txt"),
        b"2025-01-01\n",
        days_ago(300),
    );
    file_at(&share.join("jobb/cv.pdf"), b"cv", days_ago(400));
    file_at(
        &share.join("jobb/lista.txt"),
        b"personnummer 811218-9876",
        days_ago(400),
    );
    file_at(
        &share.join("kunder/acme/avtal.pdf"),
        b"avtal",
        days_ago(2000),
    );
    let mut mailbox = Mailbox::new(&data.join("mail"), "anna");
    mailbox.message(
        "anna",
        "INBOX",
        &["a@x.se"],
        &["b@x.se", "c@y.se"],
        40,
        "Mon, 1 Jan 2026 10:00:00 +0000",
    );
    mailbox.message(
        "anna",
        "Sent",
        &["a@x.se"],
        &["b@x.se", "c@y.se"],
        4,
        "Mon, 1 Jan 2026 10:00:00 +0000",
    );
    std::fs::write(dir.path().join("tillsyn.toml"), CONFIG).expect("config");

    // Access times older than modification times: a plain read on a relatime
    // mount would update them now.
    for path in snapshot(&data).keys() {
        if path.is_file() {
            let file = std::fs::File::options()
                .write(true)
                .open(path)
                .expect("open");
            let times = std::fs::FileTimes::new()
                .set_accessed(days_ago(500))
                .set_modified(
                    std::fs::metadata(path)
                        .expect("stat")
                        .modified()
                        .expect("mtime"),
                );
            file.set_times(times).expect("set times");
        }
    }
    // ctime moves with the set_times above; let it settle before the snapshot.
    std::thread::sleep(Duration::from_millis(20));
    let before = snapshot(&data);
    let output = tillsyn(&[
        "scan",
        "--once",
        "--config",
        dir.path().join("tillsyn.toml").to_str().expect("utf8"),
        "--format",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    let found = pairs(&json_lines(&output));
    assert_eq!(
        found.len(),
        6,
        "the scan did read markers, folders, headers and content: {found:?}"
    );
    assert!(
        found.contains("content:jobb/lista.txt"),
        "the text file was read inside: {found:?}"
    );
    let (_, stderr) = text(&output);
    assert!(
        work(&stderr, "files_content_read") >= 2 && work(&stderr, "messages_content_read") == 2,
        "documents and messages were read whole: {stderr}"
    );
    let after = snapshot(&data);
    assert_eq!(before.len(), after.len(), "entries added or removed");
    for (path, was) in &before {
        assert_eq!(
            after.get(path),
            Some(was),
            "{} changed (atime, mtime, ctime, size, mode, content)",
            path.display()
        );
    }
}
