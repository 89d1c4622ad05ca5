//! Documents built here, and hostile ones: each format's text comes out whole
//! (a number split over Word runs included), and every hostile input fails
//! alone with the right error, within its limits.

use super::samples::{docx, pdf, zip_of};
use super::*;

fn small() -> Limits {
    Limits {
        member_bytes: 1 << 20,
        total_bytes: 3 << 20,
        depth: 3,
        text_bytes: 1 << 20,
    }
}

#[test]
fn each_format_gives_its_text() {
    let word = docx(
        r#"<w:p><w:r><w:t>Personnummer: 811218-</w:t></w:r><w:r><w:t>9876</w:t></w:r></w:p><w:p><w:r><w:t>Nästa</w:t></w:r><w:r><w:tab/></w:r><w:r><w:t>rad</w:t></w:r></w:p>"#,
    );
    let text = extract("cv.docx", &word, &small()).expect("docx").text;
    assert!(text.contains("Personnummer: 811218-9876\n"), "{text:?}");
    assert!(text.contains("Nästa\trad"), "{text:?}");

    let sheet = zip_of(&[
        (
            "xl/sharedStrings.xml",
            br#"<sst><si><t>pnr</t></si><si><t>19811218-9876</t></si></sst>"#,
        ),
        (
            "xl/worksheets/sheet1.xml",
            br#"<worksheet><sheetData><row><c t="s"><v>0</v></c><c><v>198112189876</v></c></row></sheetData></worksheet>"#,
        ),
    ]);
    let text = extract("lista.xlsx", &sheet, &small()).expect("xlsx").text;
    assert!(
        text.contains("19811218-9876") && text.contains("198112189876"),
        "{text:?}"
    );

    let odt = zip_of(&[(
        "content.xml",
        r#"<office:document-content xmlns:office="o" xmlns:text="t"><office:body><text:p>Född <text:span>811218-9876</text:span></text:p></office:body></office:document-content>"#
            .as_bytes(),
    )]);
    let text = extract("brev.odt", &odt, &small()).expect("odt").text;
    assert!(text.contains("Född 811218-9876"), "{text:?}");

    let text = extract("intyg.pdf", &pdf("Personnummer 811218-9876"), &small())
        .expect("pdf")
        .text;
    assert!(text.contains("811218-9876"), "{text:?}");

    let archive = zip_of(&[
        ("readme.txt", b"pnr 701063-2391"),
        ("inner/cv.docx", &word),
        ("bild.png", b"\x89PNG not text"),
    ]);
    let text = extract("ansokan.zip", &archive, &small())
        .expect("zip")
        .text;
    assert!(
        text.contains("701063-2391") && text.contains("811218-9876"),
        "{text:?}"
    );
    assert!(!text.contains("PNG"), "{text:?}");
}

#[test]
fn hostile_documents_fail_alone_and_say_why() {
    let limits = small();
    // A zip bomb: 2 MB of zeros compress to a few KB; the member limit is 1 MB.
    let bomb = zip_of(&[("zeros.txt", &vec![0u8; 2 << 20])]);
    assert!(bomb.len() < 64 << 10);
    assert!(matches!(
        extract("bomb.zip", &bomb, &limits),
        Err(ExtractError::TooLarge(_))
    ));
    // Many members that together pass the total (with room for their text,
    // else reading stops early, when the text is full).
    let roomy = Limits {
        text_bytes: 16 << 20,
        ..limits
    };
    let half = vec![b'a'; (1 << 20) - 16];
    let many = zip_of(&[
        ("1.txt", &half),
        ("2.txt", &half),
        ("3.txt", &half),
        ("4.txt", &half),
    ]);
    assert!(matches!(
        extract("many.zip", &many, &roomy),
        Err(ExtractError::TooLarge(_))
    ));
    // Nested beyond the depth.
    let mut nested = zip_of(&[("deep.txt", b"pnr 811218-9876")]);
    for level in 0..4 {
        nested = zip_of(&[(&format!("level{level}.zip"), &nested)]);
    }
    assert!(matches!(
        extract("nested.zip", &nested, &limits),
        Err(ExtractError::TooDeep(3))
    ));
    // A truncated PDF, and random bytes named .pdf.
    let whole = pdf("Personnummer 811218-9876");
    assert!(matches!(
        extract("cut.pdf", &whole[..whole.len() / 3], &limits),
        Err(ExtractError::Malformed { .. })
    ));
    let noise: Vec<u8> = (0..4096u32)
        .map(|n| (n.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert!(matches!(
        extract("scan.pdf", &noise, &limits),
        Err(ExtractError::Malformed { .. })
    ));
    // A DOCX whose document.xml is larger than a member may be.
    let huge = format!("<w:p><w:t>{}</w:t></w:p>", "x".repeat(2 << 20));
    assert!(matches!(
        extract("huge.docx", &docx(&huge), &limits),
        Err(ExtractError::TooLarge(_))
    ));
    // Not a ZIP at all, named .docx.
    assert!(matches!(
        extract("fake.docx", b"hello", &limits),
        Err(ExtractError::Malformed { .. })
    ));
    assert_eq!(
        extract("bild.png", b"\x89PNG", &limits),
        Err(ExtractError::Unsupported)
    );
}

#[test]
fn the_text_kept_is_capped() {
    let limits = Limits {
        text_bytes: 100,
        ..small()
    };
    let long = format!("<w:p><w:t>{}</w:t></w:p>", "å".repeat(1000));
    let text = extract("long.docx", &docx(&long), &limits)
        .expect("docx")
        .text;
    assert!(text.len() <= 101, "{}", text.len());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn no_input_panics_the_extractor(
            bytes in prop::collection::vec(any::<u8>(), 0..2048),
            name in prop_oneof![
                Just("a.pdf"), Just("a.docx"), Just("a.xlsx"), Just("a.odt"), Just("a.zip"), Just("a.bin")
            ],
        ) {
            let _ = extract(name, &bytes, &small());
        }

        #[test]
        fn damaged_archives_never_panic_the_extractor(
            cut in 0usize..2000,
            flip in 0usize..2000,
        ) {
            let mut word = docx("<w:p><w:r><w:t>Personnummer 811218-9876</w:t></w:r></w:p>");
            if flip < word.len() {
                word[flip] ^= 0x5a;
            }
            word.truncate(cut.max(1).min(word.len()));
            let _ = extract("cv.docx", &word, &small());
        }
    }
}

/// How a generator may lay out lines on a PDF page: each operator that
/// starts a new line, or a new text object per line.
const LAYOUTS: [&str; 7] = ["T*", "'", "\"", "Td", "TD", "Tm", "BT"];

/// A content stream showing `lines`, one under the other, by `layout`.
fn laid_out(lines: &[String], layout: &str) -> String {
    let mut stream = String::from("BT /F1 12 Tf 14 TL 72 720 Td ");
    for (index, line) in lines.iter().enumerate() {
        let y = 720 - 14 * index;
        if index == 0 {
            stream.push_str(&format!("({line}) Tj "));
            continue;
        }
        stream.push_str(&match layout {
            "T*" => format!("T* ({line}) Tj "),
            "'" => format!("({line}) ' "),
            "\"" => format!("0 0 ({line}) \" "),
            "Td" => format!("0 -14 Td ({line}) Tj "),
            "TD" => format!("0 -14 TD ({line}) Tj "),
            "Tm" => format!("1 0 0 1 72 {y} Tm ({line}) Tj "),
            _ => format!("ET BT /F1 12 Tf 72 {y} Td ({line}) Tj "),
        });
    }
    stream.push_str("ET");
    stream
}

fn lines_of(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

proptest::proptest! {
    /// Random lines laid out by each operator come out one per line: no two
    /// lines run together, whatever the words (digits included).
    #[test]
    fn lines_laid_out_by_any_operator_stay_apart(
        lines in proptest::collection::vec("[A-Za-z0-9][A-Za-z0-9-]{0,9}( [A-Za-z0-9-]{1,8}){0,3}", 2..8)
    ) {
        for layout in LAYOUTS {
            let bytes = super::samples::pdf_page(&laid_out(&lines, layout));
            let text = extract("page.pdf", &bytes, &small()).expect("pdf").text;
            proptest::prop_assert_eq!(lines_of(&text), lines.clone(), "{}: {:?}", layout, text);
        }
        for (open, close) in [("<p>", "</p>"), ("<div>", "</div>"), ("", "<br>"), ("<li>", "</li>"), ("<td>", "</td>"), ("<tr><th>", "</th></tr>"), ("<h2>", "</h2>")] {
            let html: String = lines.iter().map(|line| format!("{open}{line}{close}")).collect();
            let text = html::text(&format!("<table><tr>{html}</tr></table>"));
            proptest::prop_assert_eq!(lines_of(&text), lines.clone(), "{}: {:?}", open, text);
        }
    }
}

/// Inside a line, a wide `TJ` gap is a space and kerning is not; a move
/// along the line is a space. The issue's page: a heading and a number on
/// lines of their own (`Tj` then `T*`).
#[test]
fn gaps_in_a_line_are_spaces_and_kerning_joins() {
    let stream = "BT /F1 12 Tf 14 TL 72 720 Td (Kontaktuppgifter) Tj T* (430815-4725) Tj T* \
                  [(Personnummer) -333 (81) -20 (1218-98) -12 (76)] TJ T* (Namn:) Tj 40 0 Td (Anna) Tj ET";
    let text = extract("kontrakt.pdf", &super::samples::pdf_page(stream), &small())
        .expect("pdf")
        .text;
    assert_eq!(
        lines_of(&text),
        [
            "Kontaktuppgifter",
            "430815-4725",
            "Personnummer 811218-9876",
            "Namn: Anna"
        ]
    );
}

/// A document's text cut at the text limit says so: what stood after the
/// cut was not read.
#[test]
fn text_cut_at_the_limit_is_marked_truncated() {
    let long = "ord ".repeat(2000);
    let limits = Limits {
        text_bytes: 1000,
        ..small()
    };
    let cut = extract("lang.pdf", &pdf(&long), &limits).expect("pdf");
    assert!(
        cut.truncated && cut.text.len() <= 1001,
        "{}",
        cut.text.len()
    );
    let whole = extract("kort.pdf", &pdf("ord ord"), &limits).expect("pdf");
    assert!(!whole.truncated);
    let sheet = docx(&format!("<w:p><w:r><w:t>{long}</w:t></w:r></w:p>"));
    assert!(
        extract("lang.docx", &sheet, &limits)
            .expect("docx")
            .truncated
    );
}
