//! A share of mixed documents read for personnummer: tillsyn's `contains` rule
//! (text files in process, PDF/DOCX/XLSX/ZIP each through an isolated worker
//! process, every candidate validated) beside the pipeline a person would
//! write, `pdftotext` / `unzip -p` / `cat` per file into one `rg -c` (which
//! only finds candidates), on the same files. Then tillsyn's unchanged rescan,
//! which reads no file (the content cache), against its first scan.
//!
//! `cargo bench --bench content -- [--files 10000]` (needs pdftotext from
//! poppler-utils, unzip and rg)
//!
//! The share: 40 % text and CSV, 20 % DOCX, 20 % PDF, 10 % XLSX, 10 % ZIP
//! (holding a DOCX and a text file); a third of the files hold a valid
//! personnummer, the rest decoys or nothing. Warm page cache; one run each
//! after a discarded one for the pipeline, and the first and second scan of a
//! fresh store for tillsyn.

use std::path::Path;
use std::process::Command;

use support::measure;
use tillsyn_extract::samples::{docx, pdf, zip_of};

mod support;

const PATTERN: &str = r"(?-u:\b)(?:[0-9]{2})?[0-9]{6}[-+]?[0-9]{4}(?-u:\b)";

fn line(n: usize) -> String {
    match n % 3 {
        0 => "Personnummer 811218-9876 enligt ansökan.".to_owned(),
        1 => format!("Fakturanr {:010} förfaller snart.", n * 7919),
        _ => "Inget personligt här, bara text om ärendet.".to_owned(),
    }
}

fn write_share(root: &Path, files: usize) {
    for n in 0..files {
        let folder = root.join(format!("Kunder/k{:04}", n / 100));
        std::fs::create_dir_all(&folder).expect("folder");
        let text = line(n);
        let (name, bytes) = match n % 10 {
            0..=3 => (
                format!("anteckning{n}.txt"),
                format!("{text}\nmer text\n").into_bytes(),
            ),
            4 | 5 => (
                format!("brev{n}.docx"),
                docx(&format!("<w:p><w:r><w:t>{text}</w:t></w:r></w:p>")),
            ),
            6 | 7 => (format!("intyg{n}.pdf"), pdf(&text)),
            8 => (
                format!("lista{n}.xlsx"),
                zip_of(&[(
                    "xl/sharedStrings.xml",
                    format!("<sst><si><t>{text}</t></si></sst>").as_bytes(),
                )]),
            ),
            _ => (
                format!("arkiv{n}.zip"),
                zip_of(&[
                    (
                        "brev.docx",
                        &docx(&format!("<w:p><w:r><w:t>{text}</w:t></w:r></w:p>")),
                    ),
                    ("readme.txt", b"arkiverat"),
                ]),
            ),
        };
        std::fs::write(folder.join(name), bytes).expect("file");
    }
}

fn main() {
    for tool in ["pdftotext", "unzip", "rg"] {
        assert!(
            Command::new("which")
                .arg(tool)
                .output()
                .is_ok_and(|o| o.status.success()),
            "{tool} is needed (poppler-utils, unzip, ripgrep)"
        );
    }
    let files = support::arg("--files").unwrap_or(10_000) as usize;
    let dir = tempfile::tempdir().expect("tempdir");
    let share = dir.path().join("share");
    write_share(&share, files);
    let config = dir.path().join("tillsyn.toml");
    std::fs::write(
        &config,
        "[daemon]\nstate_dir = \"state\"\n\n[[sources]]\nname = \"share\"\ntype = \"fileshare\"\nroot = \"share\"\n\n\
         [[rules]]\nid = \"p3\"\nkind = \"contains\"\npolicy = \"p\"\ndetectors = [\"personnummer\"]\n",
    )
    .expect("config");
    let pipeline = format!(
        "find {share} -type f -print0 | while IFS= read -r -d '' f; do case \"$f\" in \
         *.pdf) pdftotext -q \"$f\" - ;; *.docx|*.xlsx|*.zip) unzip -p -qq \"$f\" ;; *) cat \"$f\" ;; esac; \
         done | rg -c '{PATTERN}'",
        share = share.display()
    );
    let mut peer = Command::new("bash");
    peer.args(["-c", &pipeline]);
    let _ = measure(&mut peer);
    let (peer_time, peer_rss) = measure(&mut peer);
    let tillsyn = env!("CARGO_BIN_EXE_tillsyn");
    let mut scan = Command::new(tillsyn);
    scan.args(["scan", "--once", "--config"]).arg(&config);
    let (first, first_rss) = measure(&mut scan);
    let (again, again_rss) = measure(&mut scan);
    let output = Command::new(tillsyn)
        .args(["findings", "--format", "json", "--config"])
        .arg(&config)
        .output()
        .expect("findings");
    let findings = String::from_utf8_lossy(&output.stdout).lines().count();
    println!(
        "**A share of {files} mixed documents (40 % text, 20 % DOCX, 20 % PDF, 10 % XLSX, 10 % ZIP)**\n"
    );
    println!("| tool | time | files/s | peak RSS |");
    println!("|---|---|---|---|");
    let rate = |time: std::time::Duration| files as f64 / time.as_secs_f64();
    println!(
        "| pdftotext / unzip -p / cat per file into rg -c | {:.2} s | {:.0} | {:.1} MB |",
        peer_time.as_secs_f64(),
        rate(peer_time),
        peer_rss as f64 / 1024.0
    );
    println!(
        "| tillsyn scan --once, first scan | {:.2} s | {:.0} | {:.1} MB |",
        first.as_secs_f64(),
        rate(first),
        first_rss as f64 / 1024.0
    );
    println!(
        "| tillsyn scan --once, unchanged rescan | {:.2} s | {:.0} | {:.1} MB |",
        again.as_secs_f64(),
        rate(again),
        again_rss as f64 / 1024.0
    );
    println!(
        "\ntillsyn / pipeline: {:.2}x faster; rescan {:.1}x faster than the first scan; {findings} findings (expected {})",
        peer_time.as_secs_f64() / first.as_secs_f64(),
        first.as_secs_f64() / again.as_secs_f64(),
        (0..files).filter(|n| n % 3 == 0).count()
    );
}
