//! The planted Sent-mail corpus of promise P3 ("send personal data by mail as
//! little as possible"), shared by the Maildir and IMAP content tests so that
//! both connectors are held to the same answers: personnummer and
//! samordningsnummer in several charsets and transfer encodings, HTML-only and
//! alternative mail, attachments of every extracted kind (PDF, DOCX, XLSX, ODT,
//! ZIP) and a forwarded message; decoys that pass part of the checks; and
//! hostile attachments that must fail alone.

use tillsyn_extract::samples::{docx, pdf, pdf_page, zip_of};

/// One planted message.
pub struct Planted {
    /// The message as delivered.
    pub raw: Vec<u8>,
    /// Whether the P3 rule (personnummer, default confidence) must find it.
    pub hit: bool,
    /// The number it holds at that confidence, normalised (12 digits).
    pub number: Option<&'static str>,
}

/// The personnummer most messages hold, normalised.
pub const PERSONNUMMER: &str = "198112189876";
/// The samordningsnummer two hold, normalised.
pub const SAMORDNINGSNUMMER: &str = "197010632391";

/// What the hostile attachments of [`sent_mail`] must be counted as, with
/// `part_bytes` at [`PART_BYTES`]: (`unreadable_content`, `oversized_content`).
pub const HOSTILE_COUNTS: (u64, u64) = (5, 1);

/// The `[content] part_bytes` the corpus expects.
pub const PART_BYTES: u64 = 1 << 20;

/// Image parts in [`sent_mail`]: an IMAP scan never fetches them (they are in
/// messages over the size IMAP reads whole).
pub const IMAGE_PARTS: u64 = 2;

/// Messages in [`sent_mail`] over the size IMAP reads whole: their parts are
/// fetched one by one.
pub const LARGE_MESSAGES: u64 = 5;

/// A message from Anna with these extra header lines and this body.
pub fn message(headers: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Anna <anna@firma.se>\r\nTo: kund@example.org\r\nSubject: =?utf-8?q?=C3=84rende?=\r\n\
         Date: Mon, 2 Nov 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n{headers}\r\n{body}"
    )
    .into_bytes()
}

/// A multipart/mixed message: a plain-text body, then each attachment
/// `(content type, file name, bytes)` in base64.
pub fn with_attachments(body: &str, attachments: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut text = format!("--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n");
    for (content_type, name, bytes) in attachments {
        text.push_str(&format!(
            "--b1\r\nContent-Type: {content_type}; name=\"{name}\"\r\n\
             Content-Disposition: attachment; filename=\"{name}\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            base64(bytes)
        ));
    }
    text.push_str("--b1--\r\n");
    message("Content-Type: multipart/mixed; boundary=\"b1\"\r\n", &text)
}

/// The corpus, in delivery order.
pub fn sent_mail() -> Vec<Planted> {
    let hit = |raw: Vec<u8>| Planted {
        raw,
        hit: true,
        number: Some(PERSONNUMMER),
    };
    let coordination = |raw: Vec<u8>| Planted {
        raw,
        hit: true,
        number: Some(SAMORDNINGSNUMMER),
    };
    let clean = |raw: Vec<u8>| Planted {
        raw,
        hit: false,
        number: None,
    };
    let plain = "Content-Type: text/plain; charset=utf-8\r\n";
    let word =
        docx("<w:p><w:r><w:t>Personnummer: 811218-</w:t></w:r><w:r><w:t>9876</w:t></w:r></w:p>");
    let sheet = zip_of(&[(
        "xl/sharedStrings.xml",
        b"<sst><si><t>pnr</t></si><si><t>19811218-9876</t></si></sst>" as &[u8],
    )]);
    let odt = zip_of(&[(
        "content.xml",
        "<office:document-content xmlns:office=\"o\" xmlns:text=\"t\"><text:p>Född 701063-2391</text:p></office:document-content>"
            .as_bytes(),
    )]);
    let archive = zip_of(&[("inner/cv.docx", &word), ("readme.txt", b"ingenting")]);
    // A picture as large as photos are (over the size IMAP reads whole).
    let png = [
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" as &[u8],
        &(0..100_000u32)
            .map(|n| (n.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect::<Vec<u8>>(),
        b"tEXt Personnummer 19811218-9876",
    ]
    .concat();
    let mut corpus = vec![
        hit(message(
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n",
            "Hej! Annas personnummer är 19811218-9876, som du bad om.\r\n",
        )),
        hit(message(
            "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n",
            "S=F6kanden =E4r f=F6dd 811218-9876 i V=E4xj=F6.\r\n",
        )),
        coordination(message(
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n",
            // "Kollegan har samordningsnummer 701063-2391.\n"
            "S29sbGVnYW4gaGFyIHNhbW9yZG5pbmdzbnVtbWVyIDcwMTA2My0yMzkxLgo=\r\n",
        )),
        hit(message(
            "Content-Type: text/html; charset=windows-1252\r\nContent-Transfer-Encoding: quoted-printable\r\n",
            "<html><body><p>Personnummer: <b>811218-9876</b></p><p>H=E4lsningar</p></body></html>\r\n",
        )),
        // HTML only, quoted-printable, the number in a table cell of its own
        // between two words: the cells must not run together.
        hit(message(
            "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n",
            "<html><body><table><tr><td>Kontaktuppgifter</td><td>811218-9876</td></tr>=\r\n\
             <tr><td>Granskat</td><td>Ja</td></tr></table></body></html>\r\n",
        )),
        // A plain one-page PDF, each line one `Tj` followed by `T*`: the
        // number between a heading and a word, on a line of its own.
        hit(with_attachments(
            "Avtalet bifogas.",
            &[(
                "application/pdf",
                "avtal.pdf",
                &pdf_page(
                    "BT /F1 11 Tf 13 TL 72 760 Td (Avtal) Tj T* (Kontaktuppgifter) Tj T* (811218-9876) Tj T* (Granskat) Tj ET",
                ),
            )],
        )),
        hit(with_attachments(
            "Se bifogad lista.",
            &[(
                "text/plain",
                "lista.txt",
                b"Namn;Personnummer\nAnna;19811218-9876\n",
            )],
        )),
        hit(message(
            "Content-Type: multipart/alternative; boundary=\"alt\"\r\n",
            "--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPnr 811218-9876\r\n\
             --alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Pnr <i>811218-9876</i></p>\r\n--alt--\r\n",
        )),
        hit(with_attachments(
            "Intyget bifogas.",
            &[(
                "application/pdf",
                "intyg.pdf",
                &pdf("Personnummer 811218-9876"),
            )],
        )),
        hit(with_attachments(
            "CV bifogas.",
            &[(
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "=?utf-8?q?s=C3=B6kande.docx?=",
                &word,
            )],
        )),
        hit(with_attachments(
            "Listan.",
            &[("application/octet-stream", "lista.xlsx", &sheet)],
        )),
        coordination(with_attachments(
            "Brevet.",
            &[("application/vnd.oasis.opendocument.text", "brev.odt", &odt)],
        )),
        hit(with_attachments(
            "Ansökan.",
            &[("application/zip", "ansokan.zip", &archive)],
        )),
        hit(message(
            "Content-Type: multipart/mixed; boundary=\"fw\"\r\n",
            "--fw\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nVidarebefordrar.\r\n\
             --fw\r\nContent-Type: message/rfc822\r\n\r\n\
             From: Bertil <bertil@example.org>\r\nSubject: Uppgifter\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
             Mitt personnummer är 19811218-9876.\r\n--fw--\r\n",
        )),
    ];
    // Decoys: none of these is a person's number at medium confidence.
    for body in [
        "Personnummer 811218-9875 (fel kontrollsiffra).",
        "Personnummer 810230-9872 (30 februari finns inte).",
        "Vårt orgnr är 556677-8899.",
        "Ring mig på 070-123 45 67 eller 0701234567.",
        "Fakturanr 811218-9876, förfaller 2026-12-31.",
        "OCR 8112189876 ska anges vid betalning.",
        "Mötet flyttas till 2024-01-15 kl 10:30.",
        "Referens 8112189876 utan sammanhang.",
    ] {
        corpus.push(clean(message(plain, &format!("{body}\r\n"))));
    }
    corpus.push(clean(with_attachments(
        "Fakturan bifogas.",
        &[(
            "application/pdf",
            "faktura.pdf",
            &pdf("Fakturanr 811218-9876"),
        )],
    )));
    // Pictures are not read, whatever bytes they hold.
    corpus.push(clean(with_attachments(
        "Bilden.",
        &[("image/png", "bild.png", &png)],
    )));
    corpus.push(clean(message(
        "Content-Type: multipart/related; boundary=\"rel\"\r\n",
        &format!(
            "--rel\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Se bilden</p><img src=\"cid:logo\">\r\n\
             --rel\r\nContent-Type: image/png\r\nContent-ID: <logo>\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--rel--\r\n",
            base64(&png)
        ),
    )));
    // Hostile attachments: each fails alone, counted; a number in the same
    // message's body is still found.
    let mut nested = zip_of(&[("deep.txt", b"pnr 811218-9876" as &[u8])]);
    for level in 0..4 {
        nested = zip_of(&[(&format!("level{level}.zip"), &nested)]);
    }
    let whole = pdf("Personnummer 811218-9876");
    let noise: Vec<u8> = (0..8192u32)
        .map(|n| (n.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    corpus.push(hit(with_attachments(
        "Personnummer 19811218-9876, och en bomb.",
        &[(
            "application/zip",
            "bomb.zip",
            &zip_of(&[("zeros.txt", &vec![0u8; 60 << 20])]),
        )],
    )));
    corpus.push(clean(with_attachments(
        "Avklippt.",
        &[("application/pdf", "cut.pdf", &whole[..whole.len() / 3])],
    )));
    corpus.push(clean(with_attachments(
        "Djupt.",
        &[("application/zip", "nested.zip", &nested)],
    )));
    corpus.push(clean(with_attachments(
        "Brus.",
        &[("application/pdf", "scan.pdf", &noise)],
    )));
    corpus.push(clean(with_attachments(
        "Stor.",
        &[(
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "huge.docx",
            &docx(&format!("<w:p><w:t>{}</w:t></w:p>", "x".repeat(60 << 20))),
        )],
    )));
    let over = format!(
        "{}\n",
        "rad;utan;nummer\n".repeat((PART_BYTES as usize) / 16 + 1000)
    );
    corpus.push(hit(with_attachments(
        "Pnr 811218-9876, och en för stor lista.",
        &[("text/csv", "stor.csv", over.as_bytes())],
    )));
    corpus
}

/// Standard base64, in lines of 76.
pub fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for (index, chunk) in bytes.chunks(3).enumerate() {
        if index > 0 && index % 19 == 0 {
            out.push_str("\r\n");
        }
        let value = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for position in 0..4 {
            if position <= chunk.len() {
                out.push(char::from(
                    TABLE[(value >> (18 - 6 * position) & 63) as usize],
                ));
            } else {
                out.push('=');
            }
        }
    }
    out
}
