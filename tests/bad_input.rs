//! A tree full of what real shares and mail stores hold: a symlink loop, a
//! directory the auditor may not read, a name that is not UTF-8, empty and
//! malformed mail files, a huge header. The scan must finish, count each problem,
//! keep findings it could not re-check open, and still check everything else.

mod common;

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

const CONFIG: &str = r#"
[daemon]
state_dir = "state"

[[sources]]
name = "share"
type = "fileshare"
root = "share"
follow_symlinks = true

[[sources]]
name = "mail"
type = "maildir"
root = "mail"
max_header_bytes = 65536

[[rules]]
id = "old-files"
kind = "max_age"
policy = "p"
max_age = "365d"
timestamp = "modified"
when = { sources = ["share"] }

[[rules]]
id = "stale-inbox"
kind = "max_age"
policy = "p"
max_age = "31d"
timestamp = "received"
when = { sources = ["mail"], folders = ["INBOX"] }

[[rules]]
id = "wide-cc"
kind = "max_recipients"
policy = "p"
max = 2
when = { sources = ["mail"] }
"#;

fn make_world_readable(path: &Path) {
    for entry in walk(path) {
        let mode = if entry.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
}

fn walk(path: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![path.to_path_buf()];
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path).expect("read_dir") {
            out.extend(walk(&entry.expect("entry").path()));
        }
    }
    out
}

#[test]
fn odd_trees_are_scanned_with_problems_counted_and_nothing_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let share = root.join("share");
    file_at(&share.join("ok/old.pdf"), b"x", days_ago(800));
    file_at(&share.join("secret/old.pdf"), b"x", days_ago(800));
    file_at(&share.join("secret/new.pdf"), b"x", days_ago(1));
    // A loop: share/ok/loop -> share/ok
    std::os::unix::fs::symlink(share.join("ok"), share.join("ok/loop")).expect("symlink");
    // A name in Latin-1, as old Samba shares have them.
    let latin1 = std::ffi::OsStr::from_bytes(b"ans\xf6kan.pdf");
    file_at(&share.join("ok").join(latin1), b"x", days_ago(900));

    let mut mailbox = Mailbox::new(&root.join("mail"), "anna");
    let empty = mailbox.raw(("anna", "INBOX"), b"", days_ago(90));
    let garbage = mailbox.raw(
        ("anna", "INBOX"),
        b"\x00\x01\x02\xff\xfe binary junk without any header",
        days_ago(90),
    );
    let broken_words = mailbox.raw(
        ("anna", "INBOX"),
        "From: =?utf-8?B?!!!broken?= <a@x.se>\r\nTo: b@x.se\r\nCc: =?iso-8859-1?Q?J=F6rg?= <j@x.se>, \r\n  k@x.se, l@y.se\r\nSubject: =?utf-8?q?unterminated\r\n\r\nbody".as_bytes(),
        days_ago(90),
    );
    let mut huge = b"X-Filler: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 100 * 1024));
    huge.extend_from_slice(b"\r\nCc: a@x.se, b@x.se, c@x.se\r\n\r\nbody");
    let huge_header = mailbox.raw(("anna", "INBOX"), &huge, days_ago(90));
    let mbox_line = mailbox.raw(
        ("anna", "INBOX"),
        b"From sender@x.se Mon Jan  1 10:00:00 2026\nCc: a@x.se, b@x.se, c@x.se\n\nbody",
        days_ago(1),
    );
    let eight_bit = mailbox.raw(
        ("anna", "INBOX"),
        b"From: J\xf6rg <j@x.se>\r\nTo: \xe5\xe4\xf6@x.se\r\n\r\nbody",
        days_ago(2),
    );

    std::fs::write(root.join("tillsyn.toml"), CONFIG).expect("config");
    std::fs::create_dir_all(root.join("state")).expect("state");
    make_world_readable(root);
    if running_as_root() {
        std::os::unix::fs::chown(root.join("state"), Some(65534), Some(65534)).expect("chown");
    }
    let config = root.join("tillsyn.toml");
    let config = config.to_str().expect("utf8");

    // First pass: everything readable.
    let output = tillsyn_unprivileged(&["scan", "--once", "--config", config, "--format", "json"]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let found = pairs(&json_lines(&output));
    let mut expected: std::collections::BTreeSet<String> = [
        "old-files:ok/old.pdf".to_owned(),
        "old-files:secret/old.pdf".to_owned(),
        "old-files:ok/ans\\xF6kan.pdf".to_owned(),
    ]
    .into();
    for id in [&empty, &garbage, &broken_words, &huge_header] {
        expected.insert(format!("stale-inbox:{id}"));
    }
    // Cc: j, k, l survive the broken encoded-words: 3 > 2.
    expected.insert(format!("wide-cc:{broken_words}"));
    // An mbox "From " line on top hides nothing.
    expected.insert(format!("wide-cc:{mbox_line}"));
    assert!(!found.contains(&format!("stale-inbox:{eight_bit}")));
    assert_exact(&found, &expected);
    assert!(stderr.contains("symlink_loop 1"), "{stderr}");
    assert!(stderr.contains("non_utf8_name 1"), "{stderr}");
    assert!(stderr.contains("empty_mail 1"), "{stderr}");
    assert!(stderr.contains("malformed_mail 1"), "{stderr}");
    assert!(stderr.contains("oversized_header 1"), "{stderr}");

    // Second pass: `secret/` is unreadable. The scan is partial, its findings
    // there stay open, and everything else is still checked.
    std::fs::set_permissions(share.join("secret"), std::fs::Permissions::from_mode(0o000))
        .expect("chmod");
    let output = tillsyn_unprivileged(&[
        "scan", "--once", "--config", config, "--source", "share", "--format", "json",
    ]);
    std::fs::set_permissions(share.join("secret"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod back");
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("PARTIAL"), "{stderr}");
    assert!(stderr.contains("permission_denied 1"), "{stderr}");
    assert!(stderr.contains("0 resolved"), "{stderr}");
    let open =
        tillsyn_unprivileged(&["findings", "--open", "--config", config, "--format", "json"]);
    assert_exact(&pairs(&json_lines(&open)), &expected);

    // Third pass, readable again, the old file removed: now it resolves.
    std::fs::remove_file(share.join("secret/old.pdf")).expect("remove");
    let output = tillsyn_unprivileged(&["scan", "--once", "--config", config, "--source", "share"]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    expected.remove("old-files:secret/old.pdf");
    let open =
        tillsyn_unprivileged(&["findings", "--open", "--config", config, "--format", "json"]);
    assert_exact(&pairs(&json_lines(&open)), &expected);
}

/// A share holding a FIFO where a file is expected (one named like a text
/// file a content rule reads, one named like a marker), and symbolic links
/// out of the root (to a file and to a folder holding personnummer) beside
/// one that stays inside: the scan finishes, the FIFOs are skipped and
/// counted (never opened: nothing blocks), nothing outside the root is read
/// or reported, and the link inside is read where it leads. With links not
/// followed, none is.
#[test]
fn fifos_are_skipped_and_links_never_lead_out_of_the_share() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let share = root.join("share");
    let outside = root.join("outside");
    file_at(
        &outside.join("hemligt.txt"),
        b"Personnummer 811218-9876\n",
        days_ago(3),
    );
    file_at(
        &outside.join("mapp/mer.txt"),
        b"Personnummer 811218-9876\n",
        days_ago(3),
    );
    file_at(
        &share.join("Kunder/beta/inne.txt"),
        b"Personnummer 811218-9876\n",
        days_ago(3),
    );
    file_at(&share.join("Kunder/acme/ok.txt"), b"Inget.\n", days_ago(3));
    for fifo in ["Kunder/acme/ror.txt", "Rekrytering/2024/TILLSATT.txt"] {
        let path = share.join(fifo);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("folder");
        let name = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("name");
        // SAFETY: a NUL-terminated path and a mode.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o644) }, 0, "mkfifo");
    }
    file_at(
        &share.join("Rekrytering/2024/cv.txt"),
        b"Ansokan\n",
        days_ago(400),
    );
    std::os::unix::fs::symlink(
        outside.join("hemligt.txt"),
        share.join("Kunder/acme/ut.txt"),
    )
    .expect("symlink");
    std::os::unix::fs::symlink(outside.join("mapp"), share.join("Kunder/extern")).expect("symlink");
    std::os::unix::fs::symlink("../beta/inne.txt", share.join("Kunder/acme/lank.txt"))
        .expect("symlink");
    let write = |follow: bool| {
        std::fs::write(
            root.join("tillsyn.toml"),
            format!(
                "[daemon]\nstate_dir = \"state\"\n\n[[sources]]\nname = \"share\"\ntype = \"fileshare\"\n\
                 root = \"share\"\nfollow_symlinks = {follow}\nmarkers = [{{ file = \"TILLSATT.txt\", date = \"position_filled\" }}]\n\n\
                 [[rules]]\nid = \"pnr\"\nkind = \"contains\"\npolicy = \"p\"\ndetectors = [\"personnummer\"]\n"
            ),
        )
        .expect("config");
        root.join("tillsyn.toml").display().to_string()
    };
    let config = write(true);
    let output = tillsyn(&["scan", "--once", "--config", &config, "--format", "json"]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_exact(
        &pairs(&json_lines(&output)),
        &[
            "pnr:Kunder/beta/inne.txt".to_owned(),
            "pnr:Kunder/acme/lank.txt".to_owned(),
        ]
        .into(),
    );
    assert_eq!(
        work(&stderr, "special_file"),
        2,
        "the FIFO file and the FIFO marker: {stderr}"
    );
    assert_eq!(work(&stderr, "symlink_outside"), 2, "{stderr}");
    assert_eq!(work(&stderr, "bad_marker"), 1, "the FIFO marker: {stderr}");

    // Links not followed: none is read, none counted as leading out.
    let config = write(false);
    let output = tillsyn(&["scan", "--once", "--config", &config, "--format", "json"]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_exact(
        &pairs(&json_lines(&output)),
        &["pnr:Kunder/beta/inne.txt".to_owned()].into(),
    );
    assert_eq!(work(&stderr, "symlink_outside"), 0, "{stderr}");
}
