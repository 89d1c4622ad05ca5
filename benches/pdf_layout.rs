//! Does tillsyn find in PDFs what `pdftotext` plus the same detector finds?
//!
//! A generated corpus of one-page PDFs from three generators: tillsyn's own
//! test writer laying lines out by each text operator (`T*`, `'`, `"`, `Td`,
//! `TD`, `Tm`, a text object per line, and `TJ` arrays with kerning and word
//! gaps), and two real PDF libraries from PyPI, ReportLab (lines, and tables
//! of cells) and fpdf2 (cells, and multi-line cells). Each page holds lines of
//! Swedish business text; some hold valid personnummer standing alone on a
//! line between a heading and a word (the layout that glued lines together),
//! in a table cell, or after their word. Each PDF is read twice: by tillsyn's
//! extractor, and by `pdftotext -layout`; both texts go through the same
//! personnummer detector (at its lowest confidence, so that only the text
//! decides). Reported: the planted numbers each finds, and those `pdftotext`
//! finds that tillsyn does not (the figure that must be 0).
//!
//! `cargo bench --bench pdf_layout -- [--pages 300]` (needs `pdftotext` from
//! Debian's poppler-utils, and `pip install reportlab fpdf2`; a generator
//! whose library is missing is left out and said so)

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use tillsyn_detectors::{Builtin, Confidence, DetectorSet, Today};
use tillsyn_extract::{Limits, extract, samples::pdf_page};

mod support;

const TODAY: Today = Today {
    year: 2026,
    month: 12,
    day: 7,
};

const WORDS: &[&str] = &[
    "Avtal",
    "Kontaktuppgifter",
    "Granskat",
    "Ärende",
    "Belopp",
    "Faktura",
    "Ort",
    "Datum",
    "Handläggare",
    "Kund",
    "Status",
    "Öppet",
];

/// A small deterministic generator (xorshift), so the corpus is the same run
/// to run.
struct Random(u64);

impl Random {
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

/// A valid personnummer `YYMMDD-NNNC` (Luhn over the ten digits).
fn personnummer(random: &mut Random) -> String {
    let year = 40 + random.below(60);
    let month = 1 + random.below(12);
    let day = 1 + random.below(28);
    let serial = random.below(1000);
    let nine = format!("{year:02}{month:02}{day:02}{serial:03}");
    let sum: u32 = nine
        .bytes()
        .enumerate()
        .map(|(index, digit)| {
            let value = u32::from(digit - b'0') * if index % 2 == 0 { 2 } else { 1 };
            value / 10 + value % 10
        })
        .sum();
    let check = (10 - sum % 10) % 10;
    format!("{}-{}{check}", &nine[..6], &nine[6..])
}

/// One page: its lines (a line is cells, shown side by side), and the
/// planted numbers, normalised as the detector gives them.
struct Page {
    lines: Vec<Vec<String>>,
    planted: BTreeSet<String>,
}

fn page(random: &mut Random) -> Page {
    let mut lines = Vec::new();
    let mut planted = BTreeSet::new();
    for _ in 0..(4 + random.below(8)) {
        let word = WORDS[random.below(WORDS.len() as u64) as usize].to_owned();
        let line = match random.below(6) {
            0 | 1 => {
                let number = personnummer(random);
                planted.insert(number.clone());
                match random.below(3) {
                    0 => vec![number],
                    1 => vec![word, number],
                    _ => vec![format!("Personnummer {number}")],
                }
            }
            2 => vec![word, format!("{} kr", random.below(100_000))],
            3 => vec![format!(
                "2026-{:02}-{:02}",
                1 + random.below(12),
                1 + random.below(28)
            )],
            _ => vec![word],
        };
        lines.push(line);
    }
    Page { lines, planted }
}

/// tillsyn's writer: each line by `layout`, cells apart by a move along the
/// line (`TJ`: a word gap inside one array, kerning inside numbers).
fn own_pdf(page: &Page, layout: &str) -> Vec<u8> {
    let mut stream = String::from("BT /F1 11 Tf 13 TL 72 760 Td ");
    for (index, cells) in page.lines.iter().enumerate() {
        let y = 760 - 13 * index;
        let text = cells.join(" ");
        let show = if layout == "TJ" {
            let parts: Vec<String> = cells
                .iter()
                .map(|cell| {
                    // Kerning inside a number's digits.
                    let mut middle = cell.len() / 2;
                    while !cell.is_char_boundary(middle) {
                        middle += 1;
                    }
                    let (head, tail) = cell.split_at(middle);
                    format!("({head}) -15 ({tail})")
                })
                .collect();
            format!("[{}] TJ ", parts.join(" -350 "))
        } else {
            format!("({text}) Tj ")
        };
        if index == 0 {
            stream.push_str(&show);
            continue;
        }
        stream.push_str(&match layout {
            "T*" | "TJ" => format!("T* {show}"),
            "'" => format!("({text}) ' "),
            "\"" => format!("0 0 ({text}) \" "),
            "Td" => format!("0 -13 Td {show}"),
            "TD" => format!("0 -13 TD {show}"),
            "Tm" => format!("1 0 0 1 72 {y} Tm {show}"),
            _ => format!("ET BT /F1 11 Tf 72 {y} Td {show}"),
        });
    }
    stream.push_str("ET");
    pdf_page(&stream)
}

/// The Python that writes one PDF per page with ReportLab and fpdf2, from a
/// JSON list of pages (each a list of lines of cells).
const PYTHON: &str = r#"
import json, sys
pages = json.load(open(sys.argv[1]))
out = sys.argv[2]
wrote = []
try:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas
    from reportlab.platypus import SimpleDocTemplate, Table
    for n, lines in enumerate(pages):
        if n % 2 == 0:
            c = canvas.Canvas(f"{out}/reportlab-lines-{n}.pdf", pagesize=A4)
            y = 800
            for cells in lines:
                x = 72
                for cell in cells:
                    c.drawString(x, y, cell)
                    x += 160
                y -= 14
            c.save()
        else:
            doc = SimpleDocTemplate(f"{out}/reportlab-table-{n}.pdf", pagesize=A4)
            doc.build([Table([cells + [""] * (2 - len(cells)) for cells in lines])])
    wrote.append("reportlab")
except ImportError:
    pass
except Exception as error:
    print("reportlab:", error, file=sys.stderr)
try:
    from fpdf import FPDF
    for n, lines in enumerate(pages):
        pdf = FPDF()
        pdf.add_page()
        pdf.set_font("helvetica", size=11)
        for cells in lines:
            if n % 2 == 0:
                for cell in cells:
                    pdf.cell(60, 8, cell)
                pdf.ln(8)
            else:
                pdf.multi_cell(0, 8, "\n".join(cells), new_x="LMARGIN", new_y="NEXT")
        pdf.output(f"{out}/fpdf2-{'cells' if n % 2 == 0 else 'multi'}-{n}.pdf")
    wrote.append("fpdf2")
except ImportError:
    pass
except Exception as error:
    print("fpdf2:", error, file=sys.stderr)
print(" ".join(wrote))
"#;

fn found(detectors: &DetectorSet, text: &str) -> BTreeSet<String> {
    let mut numbers = BTreeSet::new();
    detectors.scan_each(text.as_bytes(), TODAY, Confidence::Low, |found| {
        numbers.insert(found.normalised.to_owned());
    });
    numbers
}

fn normalised(number: &str) -> String {
    tillsyn_detectors::canonical(Builtin::Personnummer, number, TODAY).expect("valid")
}

fn main() {
    let pages = support::arg("--pages").unwrap_or(300) as usize;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut random = Random(0x5eed_cafe_f00d_1234);
    let corpus: Vec<Page> = (0..pages).map(|_| page(&mut random)).collect();
    let mut files: Vec<(String, PathBuf, usize)> = Vec::new();
    let layouts = ["T*", "'", "\"", "Td", "TD", "Tm", "BT", "TJ"];
    for (n, page) in corpus.iter().enumerate() {
        let layout = layouts[n % layouts.len()];
        let path = dir.path().join(format!("own-{n}.pdf"));
        std::fs::write(&path, own_pdf(page, layout)).expect("pdf");
        files.push((format!("tillsyn writer, {layout}"), path, n));
    }
    let spec = dir.path().join("pages.json");
    let lines: Vec<&Vec<Vec<String>>> = corpus.iter().map(|page| &page.lines).collect();
    std::fs::write(&spec, serde_json::to_vec(&lines).expect("json")).expect("spec");
    std::fs::write(dir.path().join("make.py"), PYTHON).expect("script");
    let made = Command::new("python3")
        .arg(dir.path().join("make.py"))
        .arg(&spec)
        .arg(dir.path())
        .output()
        .expect("python3");
    let generators = String::from_utf8_lossy(&made.stdout).trim().to_owned();
    eprint!("{}", String::from_utf8_lossy(&made.stderr));
    for entry in std::fs::read_dir(dir.path()).expect("dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_owned();
        let Some(stem) = name.strip_suffix(".pdf") else {
            continue;
        };
        if stem.starts_with("own-") {
            continue;
        }
        let (generator, n) = stem.rsplit_once('-').expect("numbered");
        files.push((
            generator.to_owned(),
            path.clone(),
            n.parse().expect("number"),
        ));
    }
    let detectors = DetectorSet::with(&[Builtin::Personnummer], Vec::new()).expect("detectors");
    let limits = Limits::default();
    let mut rows: std::collections::BTreeMap<String, [usize; 6]> = Default::default();
    for (generator, path, n) in &files {
        let planted: BTreeSet<String> = corpus[*n].planted.iter().map(|p| normalised(p)).collect();
        let bytes = std::fs::read(path).expect("read");
        let ours = extract("page.pdf", &bytes, &limits)
            .map(|extracted| found(&detectors, &extracted.text))
            .unwrap_or_default();
        let output = Command::new("pdftotext")
            .args(["-layout", "-q"])
            .arg(path)
            .arg("-")
            .output()
            .expect("pdftotext (Debian package poppler-utils)");
        let theirs = found(&detectors, &String::from_utf8_lossy(&output.stdout));
        // What tillsyn read before its own PDF text walk: lopdf's
        // `extract_text`, which joins a `Tj`'s text to the next line's.
        let before = lopdf::Document::load_mem(&bytes)
            .ok()
            .map(|document| {
                let pages: Vec<u32> = document.get_pages().keys().copied().collect();
                found(
                    &detectors,
                    &document.extract_text(&pages).unwrap_or_default(),
                )
            })
            .unwrap_or_default();
        let row = rows.entry(generator.clone()).or_default();
        row[0] += 1;
        row[1] += planted.len();
        row[2] += planted.intersection(&theirs).count();
        row[3] += planted.intersection(&ours).count();
        row[4] += planted
            .iter()
            .filter(|number| theirs.contains(*number) && !ours.contains(*number))
            .count();
        row[5] += planted.intersection(&before).count();
    }
    println!(
        "PDF layouts: {} pages, generators: tillsyn writer{}",
        files.len(),
        if generators.is_empty() {
            " (reportlab and fpdf2 not installed: pip install reportlab fpdf2)".to_owned()
        } else {
            format!(", {generators}")
        }
    );
    println!(
        "| generator, layout | PDFs | planted | pdftotext + detector | tillsyn | found by pdftotext, missed by tillsyn | lopdf extract_text (before) |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut total = [0usize; 6];
    for (generator, row) in &rows {
        println!(
            "| {generator} | {} | {} | {} | {} | {} | {} |",
            row[0], row[1], row[2], row[3], row[4], row[5]
        );
        for (sum, value) in total.iter_mut().zip(row) {
            *sum += value;
        }
    }
    println!(
        "| all | {} | {} | {} | {} | {} | {} |",
        total[0], total[1], total[2], total[3], total[4], total[5]
    );
}
