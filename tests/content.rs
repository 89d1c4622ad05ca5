//! Promise P3, "send personal data by mail as little as possible", checked by a
//! `contains` rule: personnummer and samordningsnummer planted in Sent mail in
//! several charsets and transfer encodings, HTML-only mail and a text
//! attachment, and in text files on a share; beside decoys that pass part of the
//! checks (a bad check digit, an impossible date, an organisationsnummer, a
//! phone number, invoice and OCR numbers next to their words, a date, a bare
//! number). Found exactly at the default confidence: misses and false alarms
//! both fail. No finding, output or store row holds a planted number.
//!
//! The mail corpus (`common::mail_corpus`) is read from a Maildir and from
//! Dovecot over IMAP, with the same answers required of both; over IMAP only
//! the parts worth reading are fetched. Documents on the share, hostile ones
//! among them, are read by the isolated extractor.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::mail_corpus::{self, sent_mail};
use common::*;

const CONFIG: &str = r#"
[daemon]
state_dir = "state"
timezone = "Europe/Stockholm"

[[sources]]
name = "mail"
type = "maildir"
root = "mail"

[[sources]]
name = "share"
type = "fileshare"
root = "share"

[[rules]]
id = "P3-personnummer-in-mail"
kind = "contains"
policy = "i så liten utsträckning som möjligt skicka personuppgifter per mail"
detectors = ["personnummer"]
when = { sources = ["mail"], folders = ["\\Sent"] }

[[rules]]
id = "id-numbers-outside-hr"
kind = "contains"
policy = "Personnummer förvaras bara i personalakten."
detectors = ["personnummer", "kundnummer"]
when = { sources = ["share"], paths = ["Kunder/**"] }

[[detectors]]
name = "kundnummer"
pattern = '(?-u:\b)K-[0-9]{6}(?-u:\b)'
checksum = "luhn"
keywords = ["kund"]

[content]
part_bytes = 1048576
"#;

/// The planted findings, and which mail records hold each number.
type Planted = (BTreeSet<String>, BTreeMap<&'static str, BTreeSet<String>>);

fn plant(root: &Path) -> Planted {
    let mut planted = BTreeSet::new();
    let mut holders: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    let rule = "P3-personnummer-in-mail";
    let mut mailbox = Mailbox::new(&root.join("mail"), "anna");
    for message in sent_mail() {
        let id = mailbox.raw(("anna", "Sent"), &message.raw, days_ago(5));
        if message.hit {
            planted.insert(format!("{rule}:{id}"));
        }
        if let Some(number) = message.number {
            holders.entry(number).or_default().insert(id);
        }
    }
    // The same number in the inbox is not this rule's business (Sent only).
    mailbox.raw(
        ("anna", "INBOX"),
        b"From: x@example.org\r\nSubject: x\r\n\r\nPersonnummer 19811218-9876\r\n",
        days_ago(5),
    );

    let share = root.join("share");
    let rule = "id-numbers-outside-hr";
    file_at(
        &share.join("Kunder/acme/anteckningar.txt"),
        "Kontakt: Bertil, personnummer 811218-9876.\n".as_bytes(),
        days_ago(3),
    );
    planted.insert(format!("{rule}:Kunder/acme/anteckningar.txt"));
    file_at(
        &share.join("Kunder/acme/export.csv"),
        b"kund;belopp\nK-123456;100\nK-123457;200\n",
        days_ago(3),
    );
    file_at(
        &share.join("Kunder/beta/kontakt.csv"),
        b"namn;kundnr\nBeta AB;K-123456\n",
        days_ago(3),
    );
    file_at(
        &share.join("Kunder/beta/priser.csv"),
        "artikel;pris\nFakturanr 811218-9876;100\nOrgnr 556677-8899;5\n".as_bytes(),
        days_ago(3),
    );
    // Outside the rule's paths, and never read.
    file_at(
        &share.join("HR/personal.txt"),
        b"Personnummer 19811218-9876\n",
        days_ago(3),
    );
    (planted, holders)
}

#[test]
fn personal_data_in_mail_and_files_is_found_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    // K-123456 and K-123457 fail Luhn: no kundnummer in the csv files.
    let (planted, holders) = plant(dir.path());
    let config = dir.path().join("tillsyn.toml");
    std::fs::write(&config, CONFIG).expect("config");
    let config = config.to_str().expect("utf8");
    let output = tillsyn(&["scan", "--once", "--config", config, "--format", "json"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let findings = json_lines(&output);
    assert_exact(&pairs(&findings), &planted);
    // Only what a content rule looks at is read: the messages in Sent (not
    // the inbox), and the four files under Kunder/ (not HR/).
    assert_eq!(
        work(&stderr, "messages_content_read"),
        sent_mail().len() as u64,
        "{stderr}"
    );
    assert_eq!(work(&stderr, "files_content_read"), 4, "{stderr}");
    // The hostile attachments failed alone, counted; the scan says partial.
    let (unreadable, oversized) = mail_corpus::HOSTILE_COUNTS;
    assert_eq!(work(&stderr, "unreadable_content"), unreadable, "{stderr}");
    assert_eq!(work(&stderr, "oversized_content"), oversized, "{stderr}");
    assert!(stderr.contains("PARTIAL"), "{stderr}");
    // Findings say what and where, never the value.
    let attachments: BTreeSet<&str> = findings
        .iter()
        .filter_map(|finding| finding["detail"].as_str())
        .filter(|detail| detail.contains("attachment"))
        .collect();
    // The list's number stands beside its word ("Personnummer"); the PDF's
    // on a line of its own, under a heading.
    assert_eq!(
        attachments,
        BTreeSet::from([
            "personnummer 1 (1 high) in 1 attachment",
            "personnummer 1 (1 medium) in 1 attachment"
        ])
    );
    for number in ["9876", "2391", "8112189876", "701063"] {
        assert!(!stdout.contains(number), "{number} in the output");
    }
    // The identity index holds each number where it was planted, as a keyed
    // hash; the store holds no number in any written form.
    let state = dir.path().join("state");
    for (number, records) in &holders {
        assert_eq!(&indexed(&state, "mail", number), records, "{number}");
    }
    assert_eq!(
        indexed(&state, "share", mail_corpus::PERSONNUMMER),
        BTreeSet::from(["Kunder/acme/anteckningar.txt".to_owned()])
    );
    let dump = store_text(&state);
    // The search sees inside the index's segments: the record's file name is
    // there (paths are front-coded, so not always whole).
    assert!(dump.contains("anteckningar.txt"));
    for number in [
        "811218-9876",
        "8112189876",
        "198112189876",
        "701063-2391",
        "7010632391",
    ] {
        assert!(!dump.contains(number), "{number} in the store");
    }
}

#[test]
fn a_custom_detector_with_its_checksum_and_keywords() {
    let dir = tempfile::tempdir().expect("tempdir");
    let share = dir.path().join("share");
    // One K-12345x that passes Luhn and one that does not.
    let valid = (0..10)
        .map(|last| format!("K-12345{last}"))
        .find(|candidate| luhn(&candidate[2..]))
        .expect("a Luhn-valid number");
    let invalid = (0..10)
        .map(|last| format!("K-12345{last}"))
        .find(|candidate| !luhn(&candidate[2..]))
        .expect("an invalid number");
    file_at(
        &share.join("Kunder/a.txt"),
        format!("kund {valid}\n").as_bytes(),
        days_ago(3),
    );
    file_at(
        &share.join("Kunder/b.txt"),
        format!("kund {invalid}\n").as_bytes(),
        days_ago(3),
    );
    let config = dir.path().join("tillsyn.toml");
    std::fs::write(
        &config,
        CONFIG.replace(
            "detectors = [\"personnummer\", \"kundnummer\"]",
            "detectors = [\"kundnummer\"]\nmin_confidence = \"high\"",
        ),
    )
    .expect("config");
    let output = tillsyn(&[
        "scan",
        "--once",
        "--source",
        "share",
        "--config",
        config.to_str().expect("utf8"),
        "--format",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    assert_exact(
        &pairs(&json_lines(&output)),
        &["id-numbers-outside-hr:Kunder/a.txt".to_owned()].into(),
    );
}

#[test]
fn an_unknown_detector_or_a_bad_pattern_is_a_config_error_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("tillsyn.toml");
    std::fs::write(
        &config,
        CONFIG
            .replace(
                "detectors = [\"personnummer\"]",
                "detectors = [\"personnumer\"]",
            )
            .replace(
                "pattern = '(?-u:\\b)K-[0-9]{6}(?-u:\\b)'",
                "pattern = '(K-['",
            ),
    )
    .expect("config");
    let output = tillsyn(&["check-config", "--config", config.to_str().expect("utf8")]);
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains(":20: rule \"P3-personnummer-in-mail\": unknown detector \"personnumer\""),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            ":32: [[detectors]]: detector \"kundnummer\": invalid pattern: regex parse error"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("2 problems"),
        "a broken detector's name is still known: {stdout}"
    );
}

fn luhn(digits: &str) -> bool {
    tillsyn_detectors::checksum::luhn(digits.as_bytes())
}

/// The records of `source` the identity index holds `number` (a normalised
/// personnummer) in, found by its keyed hash as `tillsyn subject` would.
fn indexed(state: &Path, source: &str, number: &str) -> BTreeSet<String> {
    use tillsyn_core::identity::IdentityKey;
    use tillsyn_core::secret::Secret;
    let key = std::fs::read(state.join("pseudonym.key")).expect("key");
    let hash = IdentityKey::new(Secret::new(key)).hash("personnummer", number);
    tillsyn_store::Store::open(state)
        .expect("store")
        .identities(&[hash])
        .expect("lookup")
        .into_iter()
        .filter(|row| row.source == source)
        .map(|row| row.record_id)
        .collect()
}

/// Every text value in the store, for searching.
fn store_text(state: &Path) -> String {
    let connection = open_store(state);
    let mut text = String::new();
    for table in [
        "findings",
        "scans",
        "checkpoints",
        "conflict_keys",
        "identity_segments",
    ] {
        let mut statement = connection
            .prepare(&format!("SELECT * FROM {table}"))
            .expect("select");
        let columns = statement.column_count();
        let mut rows = statement.query([]).expect("rows");
        while let Some(row) = rows.next().expect("row") {
            for index in 0..columns {
                match row.get_ref(index).expect("value") {
                    // Segments are binary, with text inside.
                    rusqlite::types::ValueRef::Blob(bytes) => {
                        text.push_str(&String::from_utf8_lossy(bytes));
                        text.push(' ');
                    }
                    value => text.push_str(&format!("{value:?} ")),
                }
            }
        }
    }
    text
}

#[test]
fn documents_are_read_by_a_worker_and_hostile_ones_fail_alone() {
    use tillsyn_extract::samples::{docx, pdf, zip_of};
    let dir = tempfile::tempdir().expect("tempdir");
    let share = dir.path().join("share");
    let rule = "id-numbers-outside-hr";
    let mut planted = BTreeSet::new();
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
    for (name, bytes, hit) in [
        ("Kunder/a/cv.docx", word.clone(), true),
        ("Kunder/a/lista.xlsx", sheet, true),
        ("Kunder/a/brev.odt", odt, true),
        ("Kunder/a/intyg.pdf", pdf("Personnummer 811218-9876"), true),
        ("Kunder/a/ansokan.zip", archive, true),
        (
            "Kunder/a/ren.docx",
            docx("<w:p><w:r><w:t>Inget att se</w:t></w:r></w:p>"),
            false,
        ),
        ("Kunder/a/faktura.pdf", pdf("Fakturanr 811218-9876"), false),
    ] {
        file_at(&share.join(name), &bytes, days_ago(3));
        if hit {
            planted.insert(format!("{rule}:{name}"));
        }
    }
    // Hostile documents, each failing only its own record.
    let mut nested = zip_of(&[("deep.txt", b"pnr 811218-9876" as &[u8])]);
    for level in 0..4 {
        nested = zip_of(&[(&format!("level{level}.zip"), &nested)]);
    }
    let bomb = zip_of(&[("zeros.txt", &vec![0u8; 60 << 20])]);
    let whole = pdf("Personnummer 811218-9876");
    let noise: Vec<u8> = (0..8192u32)
        .map(|n| (n.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let huge = docx(&format!("<w:p><w:t>{}</w:t></w:p>", "x".repeat(60 << 20)));
    for (name, bytes) in [
        ("Kunder/b/nested.zip", nested),
        ("Kunder/b/bomb.zip", bomb),
        ("Kunder/b/cut.pdf", whole[..whole.len() / 3].to_vec()),
        ("Kunder/b/scan.pdf", noise),
        ("Kunder/b/huge.docx", huge),
    ] {
        file_at(&share.join(name), &bytes, days_ago(3));
    }
    // A hostile document that was a finding before keeps it open.
    let config = dir.path().join("tillsyn.toml");
    std::fs::write(&config, CONFIG).expect("config");
    let config = config.to_str().expect("utf8");
    let output = tillsyn(&[
        "scan", "--once", "--source", "share", "--config", config, "--format", "json",
    ]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_exact(&pairs(&json_lines(&output)), &planted);
    assert!(stderr.contains("PARTIAL"), "{stderr}");
    assert!(stderr.contains("unreadable_content 5"), "{stderr}");
    assert_eq!(work(&stderr, "files_content_read"), 12, "{stderr}");
}

#[test]
fn content_limits_come_from_the_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let share = dir.path().join("share");
    file_at(
        &share.join("Kunder/a.txt"),
        b"personnummer 811218-9876 and more text to pass forty bytes",
        days_ago(3),
    );
    file_at(&share.join("Kunder/b.txt"), b"pnr 811218-9876", days_ago(3));
    let config = dir.path().join("tillsyn.toml");
    std::fs::write(
        &config,
        CONFIG.replace("[content]\n", "[content]\nfile_bytes = 40\n"),
    )
    .expect("config");
    let output = tillsyn(&[
        "scan",
        "--once",
        "--source",
        "share",
        "--config",
        config.to_str().expect("utf8"),
        "--format",
        "json",
    ]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("oversized_content 1"), "{stderr}");
    assert_exact(
        &pairs(&json_lines(&output)),
        &["id-numbers-outside-hr:Kunder/b.txt".to_owned()].into(),
    );
}

#[test]
fn an_unchanged_share_is_not_read_again() {
    use tillsyn_extract::samples::docx;
    let dir = tempfile::tempdir().expect("tempdir");
    let share = dir.path().join("share");
    file_at(&share.join("Kunder/a.txt"), b"pnr 811218-9876", days_ago(3));
    file_at(&share.join("Kunder/b.txt"), b"inget", days_ago(3));
    file_at(
        &share.join("Kunder/c.docx"),
        &docx("<w:p><w:r><w:t>Personnummer 701063-2391</w:t></w:r></w:p>"),
        days_ago(3),
    );
    file_at(
        &share.join("Kunder/d.pdf"),
        b"not a pdf at all",
        days_ago(3),
    );
    let config = dir.path().join("tillsyn.toml");
    std::fs::write(&config, CONFIG).expect("config");
    let config = config.to_str().expect("utf8");
    let scan = || {
        let output = tillsyn(&[
            "scan", "--once", "--source", "share", "--config", config, "--format", "json",
        ]);
        let (_, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        (pairs(&json_lines(&output)), stderr)
    };
    let expected: BTreeSet<String> = [
        "id-numbers-outside-hr:Kunder/a.txt".to_owned(),
        "id-numbers-outside-hr:Kunder/c.docx".to_owned(),
    ]
    .into();
    let (first, stderr) = scan();
    assert_exact(&first, &expected);
    assert_eq!(work(&stderr, "files_content_read"), 4, "{stderr}");
    // Unchanged: nothing is read, the findings stand, and the unreadable one
    // is still unreadable (partial, its findings kept): the three read whole
    // are left out, the fourth is tried again, from the content cache.
    let (again, stderr) = scan();
    assert_exact(&again, &expected);
    assert_eq!(work(&stderr, "files_content_read"), 0, "{stderr}");
    assert_eq!(work(&stderr, "records_unchanged"), 3, "{stderr}");
    assert_eq!(work(&stderr, "files_content_cached"), 1, "{stderr}");
    assert!(stderr.contains("unreadable_content 1"), "{stderr}");
    // The identity index is kept from the cache (which holds keyed hashes).
    let state = dir.path().join("state");
    let holds = |number: &str| indexed(&state, "share", number);
    assert_eq!(
        holds(mail_corpus::PERSONNUMMER),
        ["Kunder/a.txt".to_owned()].into()
    );
    assert_eq!(
        holds(mail_corpus::SAMORDNINGSNUMMER),
        ["Kunder/c.docx".to_owned()].into()
    );
    // One file changes: it alone is read, and its finding and its identity
    // row go.
    file_at(&share.join("Kunder/a.txt"), b"inget nu", days_ago(1));
    let (changed, stderr) = scan();
    assert_eq!(work(&stderr, "files_content_read"), 1, "{stderr}");
    assert_exact(
        &changed,
        &["id-numbers-outside-hr:Kunder/c.docx".to_owned()].into(),
    );
    assert!(holds(mail_corpus::PERSONNUMMER).is_empty());
    assert_eq!(
        holds(mail_corpus::SAMORDNINGSNUMMER),
        ["Kunder/c.docx".to_owned()].into()
    );
}

/// The Maildir corpus again, from Dovecot over IMAP: the same findings and
/// the same counts, only the parts worth reading fetched (no picture), nothing
/// on the server changed, and a rescan after ten new messages reads those ten.
#[test]
fn the_mail_corpus_over_imap_fetches_only_the_parts_worth_reading() {
    use common::dovecot::Dovecot;
    let server = Dovecot::start(&[("anna", "anna-pw")]);
    let mut anna = server.client("anna", "anna-pw");
    let rule = "P3-personnummer-in-mail";
    let mut planted = BTreeSet::new();
    let corpus = sent_mail();
    for message in &corpus {
        let uid = anna.append("Sent", &message.raw, 5);
        if message.hit {
            planted.insert(format!("{rule}:anna/Sent/{uid}"));
        }
    }
    anna.append(
        "INBOX",
        b"From: x@example.org\r\nSubject: x\r\n\r\nPersonnummer 19811218-9876\r\n",
        5,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let accounts = dir.path().join("accounts.toml");
    std::fs::write(
        &accounts,
        "[[accounts]]\nuser = \"anna\"\npassword = \"anna-pw\"\n",
    )
    .expect("accounts");
    let config = dir.path().join("tillsyn.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nstate_dir = \"state\"\ntimezone = \"Europe/Stockholm\"\n\n\
             [[sources]]\nname = \"mail\"\ntype = \"imap\"\nhost = \"127.0.0.1\"\nport = {}\n\
             security = \"plain\"\nallow_plaintext = true\nfolders = [\"INBOX\", \"\\\\Sent\"]\n\
             auth = {{ method = \"password\", accounts_file = \"{}\" }}\n\n\
             [[rules]]\nid = \"{rule}\"\nkind = \"contains\"\npolicy = \"P3\"\n\
             detectors = [\"personnummer\"]\nwhen = {{ sources = [\"mail\"], folders = [\"\\\\Sent\"] }}\n\n\
             [content]\npart_bytes = {}\n",
            server.port,
            accounts.display(),
            mail_corpus::PART_BYTES
        ),
    )
    .expect("config");
    let config = config.to_str().expect("utf8");
    let before = anna.snapshot("Sent");
    let output = tillsyn(&["scan", "--once", "--config", config, "--format", "json"]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_exact(&pairs(&json_lines(&output)), &planted);
    assert_eq!(
        work(&stderr, "messages_content_read"),
        corpus.len() as u64,
        "{stderr}"
    );
    let (unreadable, oversized) = mail_corpus::HOSTILE_COUNTS;
    assert_eq!(work(&stderr, "unreadable_content"), unreadable, "{stderr}");
    assert_eq!(work(&stderr, "oversized_content"), oversized, "{stderr}");
    assert!(stderr.contains("PARTIAL"), "{stderr}");
    // Pictures were never fetched; the rest part by part.
    assert_eq!(
        work(&stderr, "message_parts_skipped"),
        mail_corpus::IMAGE_PARTS,
        "{stderr}"
    );
    assert!(
        work(&stderr, "message_parts_read") >= mail_corpus::LARGE_MESSAGES,
        "{stderr}"
    );
    // BODY.PEEK only: no flag and no MODSEQ moved, `\Seen` included.
    assert_eq!(
        before,
        anna.snapshot("Sent"),
        "the scan changed the mailbox"
    );
    assert!(before.iter().all(|line| !line.contains("\\Seen")));

    // Ten new messages, every other one with a number: only they are read.
    for index in 0..10 {
        let body = if index % 2 == 0 {
            "Personnummer 19811218-9876.\r\n"
        } else {
            "Inget här.\r\n"
        };
        let uid = anna.append(
            "Sent",
            &mail_corpus::message("Content-Type: text/plain; charset=utf-8\r\n", body),
            1,
        );
        if index % 2 == 0 {
            planted.insert(format!("{rule}:anna/Sent/{uid}"));
        }
    }
    let output = tillsyn(&["scan", "--once", "--config", config, "--format", "json"]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(work(&stderr, "messages_content_read"), 10, "{stderr}");
    let open = pairs(&json_lines(&tillsyn(&[
        "findings", "--open", "--config", config, "--format", "json",
    ])));
    assert_exact(&open, &planted);
}

/// A mail body cut at `part_bytes` is not read whole: counted as
/// `oversized_content`, the scan partial, and the finding a whole read made
/// on it stays open (the number stands after the cut). Before, the cut text
/// read clean and the finding resolved.
#[test]
fn text_cut_at_the_limit_keeps_its_findings_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let mut mailbox = Mailbox::new(&root.join("mail"), "anna");
    let body = format!(
        "{}\r\nPersonnummer 811218-9876\r\n",
        "Lång rad text. ".repeat(400)
    );
    let id = mailbox.raw(
        ("anna", "Sent"),
        &common::mail_corpus::message("Content-Type: text/plain; charset=utf-8\r\n", &body),
        days_ago(5),
    );
    let config = root.join("tillsyn.toml");
    let scan = |part_bytes: u64| {
        std::fs::write(
            &config,
            CONFIG.replace(
                "part_bytes = 1048576",
                &format!("part_bytes = {part_bytes}"),
            ),
        )
        .expect("config");
        let output = tillsyn(&[
            "scan",
            "--once",
            "--source",
            "mail",
            "--config",
            config.to_str().expect("utf8"),
        ]);
        let (_, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        stderr
    };
    let open = || {
        pairs(&json_lines(&tillsyn(&[
            "findings",
            "--open",
            "--config",
            config.to_str().expect("utf8"),
            "--format",
            "json",
        ])))
    };
    let expected: std::collections::BTreeSet<String> =
        [format!("P3-personnummer-in-mail:{id}")].into();
    let stderr = scan(1 << 20);
    assert!(!stderr.contains("PARTIAL"), "{stderr}");
    assert_exact(&open(), &expected);
    let stderr = scan(1000);
    assert!(
        stderr.contains("PARTIAL") && stderr.contains("oversized_content 1"),
        "{stderr}"
    );
    assert!(stderr.contains("0 resolved"), "{stderr}");
    assert_exact(&open(), &expected);
}
