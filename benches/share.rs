//! A big file share, scanned in full and then rescanned unchanged, beside
//! `find -printf` listing the same tree with the same metadata (path, size,
//! modification time, inode): what any scan of a share has to read.
//!
//! `cargo bench --bench share -- [--files 1000000]`
//!
//! The share: 40 departments of 250 folders of files (`Avd07/Kund0123/…`), one
//! file in ten last modified five years ago, every fifth one a PDF classified
//! as an invoice. Two rules: customer files go after three years (modified),
//! invoices after seven (they do not break it). Warm page cache; `find` runs
//! once discarded, then once measured; tillsyn runs its first scan of a fresh
//! store, an unchanged rescan, and a rescan after one file in a hundred was
//! touched.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use support::measure;

mod support;

const DEPARTMENTS: u64 = 40;
const FOLDERS: u64 = 250;

/// The share's file `n`: its path below the root.
fn file_path(root: &Path, files: u64, n: u64) -> std::path::PathBuf {
    let per_folder = files.div_ceil(DEPARTMENTS * FOLDERS).max(1);
    let folder = n / per_folder;
    let extension = if n.is_multiple_of(5) { "pdf" } else { "docx" };
    root.join(format!("Avd{:02}", folder / FOLDERS))
        .join(format!("Kund{:04}", folder % FOLDERS))
        .join(format!("dokument-{n}.{extension}"))
}

/// Whether file `n` was last modified five years ago.
fn is_old(n: u64) -> bool {
    n % 10 == 3
}

fn write_share(root: &Path, files: u64) -> u64 {
    let old = SystemTime::now() - Duration::from_secs(5 * 365 * 86_400);
    let mut expected = 0;
    for n in 0..files {
        let path = file_path(root, files, n);
        if let Some(folder) = path.parent()
            && !folder.exists()
        {
            std::fs::create_dir_all(folder).expect("folder");
        }
        let file = std::fs::File::create(&path).expect("file");
        if is_old(n) {
            file.set_modified(old).expect("mtime");
            // PDFs are invoices, kept seven years: five-year-old ones are fine.
            if !n.is_multiple_of(5) {
                expected += 1;
            }
        }
    }
    expected
}

fn main() {
    let files = support::arg("--files").unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let share = dir.path().join("share");
    eprintln!("writing {files} files …");
    let expected = write_share(&share, files);
    let config = dir.path().join("tillsyn.toml");
    std::fs::write(
        &config,
        "[daemon]\nstate_dir = \"state\"\n\n\
         [[sources]]\nname = \"share\"\ntype = \"fileshare\"\nroot = \"share\"\n\
         classify = [{ glob = \"**/*.pdf\", class = \"invoice\" }]\n\n\
         [[rules]]\nid = \"customer-files\"\nkind = \"max_age\"\npolicy = \"Customer files go after three years.\"\n\
         max_age = \"3y\"\ntimestamp = \"modified\"\nwhen = { exclude_paths = [\"**/*.pdf\"] }\n\n\
         [[rules]]\nid = \"invoices\"\nkind = \"max_age\"\npolicy = \"Invoices are kept seven years.\"\n\
         max_age = \"7y\"\ntimestamp = \"modified\"\nwhen = { attributes = { class = \"invoice\" } }\n",
    )
    .expect("config");

    let mut find = Command::new("find");
    find.arg(&share)
        .args(["-type", "f", "-printf", "%P\\t%s\\t%T@\\t%i\\n"]);
    let _ = measure(&mut find);
    let (find_time, find_rss) = measure(&mut find);

    let tillsyn = env!("CARGO_BIN_EXE_tillsyn");
    let mut scan = Command::new(tillsyn);
    scan.current_dir(dir.path())
        .args(["scan", "--once", "--config"])
        .arg(&config);
    let (first, first_rss) = measure(&mut scan);
    let found = |what: &str| {
        let output = Command::new(tillsyn)
            .current_dir(dir.path())
            .args(["findings", "--format", "json", "--config"])
            .arg(&config)
            .output()
            .expect("findings");
        let count = String::from_utf8_lossy(&output.stdout).lines().count() as u64;
        assert_eq!(count, expected, "open findings after the {what}");
    };
    found("first scan");
    let (again, again_rss) = measure(&mut scan);
    found("unchanged rescan");
    // One file in a hundred touched: those are read and judged again.
    let now = SystemTime::now();
    let mut touched = 0u64;
    for n in (0..files).step_by(100) {
        let file = std::fs::File::options()
            .append(true)
            .open(file_path(&share, files, n))
            .expect("open");
        file.set_modified(now).expect("touch");
        touched += 1;
    }
    let (changed, changed_rss) = measure(&mut scan);
    found("rescan after touching");

    println!(
        "**A share of {files} files in {DEPARTMENTS}×{FOLDERS} folders** ({expected} findings)\n"
    );
    println!("| run | time | files/s | peak RSS |");
    println!("|---|---|---|---|");
    let row = |what: &str, time: Duration, rss: u64| {
        println!(
            "| {what} | {:.2} s | {:.0} | {:.1} MB |",
            time.as_secs_f64(),
            files as f64 / time.as_secs_f64(),
            rss as f64 / 1024.0
        );
    };
    row(
        "find -printf '%P %s %T@ %i' (list and stat)",
        find_time,
        find_rss,
    );
    row("tillsyn scan --once, first scan", first, first_rss);
    row("tillsyn scan --once, unchanged rescan", again, again_rss);
    row(
        &format!("tillsyn scan --once, rescan with {touched} files touched"),
        changed,
        changed_rss,
    );
    println!(
        "\nunchanged rescan {:.1}x faster than the first scan, {:.2}x the time of find",
        first.as_secs_f64() / again.as_secs_f64(),
        again.as_secs_f64() / find_time.as_secs_f64()
    );
}
