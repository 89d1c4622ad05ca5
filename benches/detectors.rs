//! The detectors over at least 1 GB of plain text, beside ripgrep counting the
//! candidates of the same patterns (`rg -c`): rg only finds candidates, tillsyn
//! finds them and validates each (date and Luhn, context keywords, mod 97, …).
//!
//! `cargo bench --bench detectors -- [--megabytes 1024]` (needs `rg`, Debian
//! package ripgrep)
//!
//! The text is Swedish-looking prose (å, ä and ö throughout), first dense (a
//! number on two lines of three), then sparse as mail is (a number on one
//! line in twenty): valid personnummer in every written form, decoys (bad
//! check digits, organisationsnummer, invoice and OCR numbers beside their
//! words, phone numbers, dates, amounts), addresses and IPs. A 64 MB block is
//! generated and written as many times as it takes. Both tools read the file
//! from the page cache on one thread (rg searches a single file on one
//! thread); warm times are the median of 3 runs after one discarded run. The
//! tillsyn side is this bench binary run again with `--scan FILE`, so that its
//! peak RSS is that of the scan alone.

use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use support::{measure, median};
use tillsyn_detectors::{Builtin, Confidence, DetectorSet, Today};

mod support;

const BLOCK: usize = 64 << 20;
/// Bytes read and scanned at a time, cut at the last newline: what a
/// stream reader holds (rg's own reader uses 64 KB), small enough to stay in
/// the CPU's cache between the copy and the scan.
const CHUNK: usize = 256 << 10;

struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const WORDS: &[&str] = &[
    "och",
    "att",
    "det",
    "som",
    "på",
    "är",
    "för",
    "med",
    "har",
    "inte",
    "vi",
    "av",
    "till",
    "ärendet",
    "kunden",
    "återkommer",
    "möte",
    "förfrågan",
    "anställd",
    "sökande",
    "önskar",
    "uppgifter",
    "behandling",
    "personuppgifter",
    "avtal",
    "leverans",
    "företaget",
    "hälsningar",
    "tack",
    "för",
    "svar",
    "vänliga",
    "gärna",
    "också",
    "därför",
    "närmare",
    "måndag",
];

fn luhn_digit(nine: &str) -> u8 {
    (0..10u8)
        .find(|check| {
            let digits = format!("{nine}{check}");
            tillsyn_detectors::checksum::luhn(digits.as_bytes())
        })
        .unwrap_or(0)
}

/// One number, of a kind drawn at random.
fn number(rng: &mut Xorshift) -> String {
    let yy = 40 + rng.below(60);
    let mm = 1 + rng.below(12);
    let dd = 1 + rng.below(28);
    let serial = rng.below(1000);
    let nine = format!("{yy:02}{mm:02}{dd:02}{serial:03}");
    let check = luhn_digit(&nine);
    let ten = format!("{nine}{check}");
    match rng.below(12) {
        0 => format!("personnummer {}-{}", &ten[..6], &ten[6..]),
        1 => format!("pnr 19{}-{}", &ten[..6], &ten[6..]),
        2 => format!("{}-{}", &ten[..6], &ten[6..]),
        3 => format!("19{ten}"),
        4 => ten.clone(),
        5 => format!("{}-{}{}", &ten[..6], &nine[6..], (check + 1) % 10),
        6 => format!("orgnr 55{:04}-{:04}", rng.below(10000), rng.below(10000)),
        7 => format!("fakturanr {}", ten),
        8 => format!(
            "070-{:03} {:02} {:02}",
            rng.below(1000),
            rng.below(100),
            rng.below(100)
        ),
        9 => format!("2026-{mm:02}-{dd:02} kl 10:{:02}", rng.below(60)),
        10 => format!("anna.{}@exempel.se", rng.below(100000)),
        _ => format!(
            "10.{}.{}.{}",
            rng.below(256),
            rng.below(256),
            rng.below(256)
        ),
    }
}

/// A block of prose with a number on `numbered` lines in `lines`.
fn block(seed: u64, numbered: u64, lines: u64) -> Vec<u8> {
    let mut rng = Xorshift(seed);
    let mut text = Vec::with_capacity(BLOCK + 256);
    while text.len() < BLOCK {
        let words = 6 + rng.below(10);
        for index in 0..words {
            if index > 0 {
                text.push(b' ');
            }
            text.extend_from_slice(WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes());
        }
        if rng.below(lines) < numbered {
            text.push(b' ');
            text.extend_from_slice(number(&mut rng).as_bytes());
        }
        text.extend_from_slice(b".\n");
    }
    text
}

/// `--scan FILE`: the tillsyn side, run as its own process.
fn scan(path: &Path, only: Option<&str>, general: bool, custom: bool) {
    let builtins: Vec<Builtin> = match only {
        Some(name) => Builtin::named(name).into_iter().collect(),
        None => Builtin::ALL.to_vec(),
    };
    // An organisation's own customer number beside the built-ins: the
    // general regex path's case before the built-ins had their scanners.
    let customs = if custom {
        vec![tillsyn_detectors::CustomDetector {
            name: "kundnummer".into(),
            pattern: r"(?-u:\b)KUND-[0-9]{6}(?-u:\b)".into(),
            checksum: None,
            keywords: vec!["kund".into()],
            window: tillsyn_detectors::DEFAULT_WINDOW,
        }]
    } else {
        Vec::new()
    };
    let set = if general {
        DetectorSet::general(&builtins, customs)
    } else {
        DetectorSet::with(&builtins, customs)
    }
    .expect("detectors");
    let today = Today {
        year: 2026,
        month: 11,
        day: 30,
    };
    let mut file = std::fs::File::open(path).expect("open");
    let mut buffer = vec![0u8; CHUNK];
    let mut kept = 0;
    let mut counts = [0u64; 7];
    let mut bytes = 0u64;
    loop {
        let read = file.read(&mut buffer[kept..]).expect("read");
        let filled = kept + read;
        if filled == 0 {
            break;
        }
        let end = if read == 0 {
            filled
        } else {
            buffer[..filled]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(filled, |at| at + 1)
        };
        set.scan_each(&buffer[..end], today, Confidence::Medium, |found| {
            if let tillsyn_detectors::DetectorId::Builtin(builtin) = found.detector {
                let index = Builtin::ALL.iter().position(|b| *b == builtin).unwrap_or(0);
                counts[index] += 1;
            }
        });
        bytes += end as u64;
        buffer.copy_within(end..filled, 0);
        kept = filled - end;
        if read == 0 && kept == 0 {
            break;
        }
    }
    let list: Vec<String> = Builtin::ALL
        .iter()
        .zip(counts)
        .map(|(builtin, count)| format!("{} {count}", builtin.as_str()))
        .collect();
    eprintln!("tillsyn-scan {bytes} bytes: {}", list.join(", "));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--scan") {
        let only = args
            .iter()
            .position(|a| a == "--only")
            .and_then(|at| args.get(at + 1));
        let general = args.iter().any(|a| a == "--general");
        let custom = args.iter().any(|a| a == "--custom");
        scan(
            Path::new(&args[at + 1]),
            only.map(String::as_str),
            general,
            custom,
        );
        return;
    }
    assert!(
        Command::new("rg").arg("--version").output().is_ok(),
        "rg is needed (Debian package ripgrep)"
    );
    let megabytes = support::arg("--megabytes").unwrap_or(1024) as usize;
    let dir = tempfile::tempdir().expect("tempdir");
    // `--keep PATH` writes the text there and stops: for profiling one side.
    let keep = args
        .iter()
        .position(|a| a == "--keep")
        .and_then(|at| args.get(at + 1));
    let path = keep.map_or_else(|| dir.path().join("text.txt"), std::path::PathBuf::from);
    let started = Instant::now();
    // Dense: a number on two lines of three, every kind of decoy among
    // them; the context of each number is looked at.
    write_text(&path, megabytes, block(0x5eed, 2, 3));
    let size = std::fs::metadata(&path).expect("size").len();
    if keep.is_some() {
        return;
    }
    eprintln!(
        "Text: {:.2} GB written in {:.1} s",
        size as f64 / 1e9,
        started.elapsed().as_secs_f64()
    );
    let path_text = path.to_str().expect("utf8");
    let all: Vec<&str> = Builtin::ALL.iter().map(|b| b.pattern()).collect();
    let all = all.join("|");
    let pnr = Builtin::Personnummer.pattern();
    let exe = std::env::current_exe().expect("exe");
    let rg = |pattern: &str| {
        let mut c = Command::new("rg");
        c.args(["-c", "--no-config", "-j1", pattern, path_text]);
        c
    };
    let tillsyn = |extra: &[&str]| {
        let mut c = Command::new(&exe);
        c.args(["--scan", path_text]).args(extra);
        c
    };
    // The rows both texts have, first: rg with the personnummer's pattern
    // and with every pattern, tillsyn with every detector and with the
    // personnummer alone.
    let rows = |more: Vec<(&'static str, Command)>| {
        let mut rows = vec![
            ("rg -c, the personnummer candidate pattern", rg(pnr)),
            ("rg -c, every detector's candidate pattern", rg(&all)),
            (
                "tillsyn detectors (find + validate + context)",
                tillsyn(&[]),
            ),
            (
                "tillsyn personnummer alone (digit-run scanner)",
                tillsyn(&["--only", "personnummer"]),
            ),
        ];
        rows.extend(more);
        rows
    };
    let throughputs = table(
        &format!(
            "**Detectors over {:.2} GB of Swedish-looking text, a number on two lines of \
             three, one thread, warm page cache**",
            size as f64 / 1e9
        ),
        size,
        rows(vec![
            (
                "tillsyn personnummer alone, general regex path",
                tillsyn(&["--only", "personnummer", "--general"]),
            ),
            (
                "tillsyn every detector and a custom one (spans and its own regex)",
                tillsyn(&["--custom"]),
            ),
            (
                "tillsyn every detector and a custom one, general regex path",
                tillsyn(&["--custom", "--general"]),
            ),
        ]),
    );
    println!(
        "\nEvery detector / rg (every pattern): {:.2}x; the personnummer alone / rg \
         (personnummer pattern): {:.2}x (general path: {:.2}x); every detector and a \
         custom one / rg (every pattern): {:.2}x (general path: {:.2}x)",
        throughputs[2] / throughputs[1],
        throughputs[3] / throughputs[0],
        throughputs[4] / throughputs[0],
        throughputs[5] / throughputs[1],
        throughputs[6] / throughputs[1]
    );
    counts(&exe, path_text, &[&[], &["--custom"]]);

    // Sparse: a number on one line in twenty, as in mail, where most of a
    // text is prose that holds nothing.
    write_text(&path, megabytes, block(0x5eed, 1, 20));
    let size = std::fs::metadata(&path).expect("size").len();
    let throughputs = table(
        &format!(
            "**The same over {:.2} GB with a number on one line in twenty**",
            size as f64 / 1e9
        ),
        size,
        rows(vec![(
            "tillsyn every detector, general regex path",
            tillsyn(&["--general"]),
        )]),
    );
    println!(
        "\nEvery detector / rg (every pattern): {:.2}x (general path: {:.2}x); the \
         personnummer alone / rg (personnummer pattern): {:.2}x",
        throughputs[2] / throughputs[1],
        throughputs[4] / throughputs[1],
        throughputs[3] / throughputs[0],
    );
    counts(&exe, path_text, &[&[], &["--general"]]);
}

/// `megabytes` of `block` repeated, written to `path`.
fn write_text(path: &Path, megabytes: usize, block: Vec<u8>) {
    let mut out = BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut written = 0;
    while written < megabytes << 20 {
        out.write_all(&block).expect("write");
        written += block.len();
    }
    out.flush().expect("flush");
}

/// Each command timed warm (one run discarded, the median of 3), printed as
/// a table under `title`; the throughputs in MB/s, in order.
fn table(title: &str, size: u64, runs: Vec<(&str, Command)>) -> Vec<f64> {
    println!("{title}\n");
    println!("| tool | warm (median of 3) | throughput | peak RSS |");
    println!("|---|---|---|---|");
    let mut throughputs = Vec::new();
    for (name, mut command) in runs {
        let _ = measure(&mut command);
        let mut times = Vec::new();
        let mut rss = 0;
        for _ in 0..3 {
            let (time, peak) = measure(&mut command);
            times.push(time);
            rss = rss.max(peak);
        }
        let time = median(times);
        let throughput = size as f64 / 1e6 / time.as_secs_f64();
        throughputs.push(throughput);
        println!(
            "| {name} | {:.2} s | {throughput:.0} MB/s | {:.1} MB |",
            time.as_secs_f64(),
            rss as f64 / 1024.0
        );
    }
    throughputs
}

/// The counts each `--scan` with `extras` finds, as it prints them.
fn counts(exe: &Path, path_text: &str, extras: &[&[&str]]) {
    for extra in extras {
        let output = Command::new(exe)
            .args(["--scan", path_text])
            .args(*extra)
            .output()
            .expect("scan for counts");
        print!("{}", String::from_utf8_lossy(&output.stderr));
    }
}
