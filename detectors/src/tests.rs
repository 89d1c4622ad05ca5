//! The detector set over planted text: every written form of a personnummer,
//! samordningsnummer, and the other kinds, beside decoys that pass part of the
//! checks (a bad check digit, an impossible date, an organisationsnummer, phone
//! numbers, invoice and OCR numbers next to their words, dates). Found exactly:
//! misses and false alarms both fail.

use super::*;

const TODAY: Today = Today {
    year: 2026,
    month: 11,
    day: 30,
};

/// (detector, confidence, normalised value) of one match.
type Seen = (String, Confidence, String);

/// (detector, confidence, normalised) of every match at `min` or above.
fn found(text: &str, min: Confidence) -> Vec<Seen> {
    let set = DetectorSet::new(Vec::new()).expect("set");
    set.scan(text.as_bytes(), TODAY, min)
        .into_iter()
        .map(|m| (set.name(m.detector).to_owned(), m.confidence, m.normalised))
        .collect()
}

fn one(detector: &str, confidence: Confidence, normalised: &str) -> Vec<Seen> {
    vec![(detector.to_owned(), confidence, normalised.to_owned())]
}

#[test]
fn personnummer_in_every_written_form_with_its_confidence() {
    use Confidence::*;
    let cases: &[(&str, Vec<Seen>)] = &[
        (
            "Personnummer: 19811218-9876.",
            one("personnummer", High, "198112189876"),
        ),
        (
            "Anna, pnr 811218-9876, ringde.",
            one("personnummer", High, "198112189876"),
        ),
        (
            "född 198112189876 i Växjö",
            one("personnummer", High, "198112189876"),
        ),
        (
            "Sökande 811218-9876 har skickat in",
            one("personnummer", Medium, "198112189876"),
        ),
        (
            "Sökande 19811218-9876",
            one("personnummer", Medium, "198112189876"),
        ),
        (
            "Äldre sökande 141231+2389 är över hundra",
            one("personnummer", Medium, "191412312389"),
        ),
        (
            "Personnumret är 8112189876",
            one("personnummer", Medium, "198112189876"),
        ),
        (
            "samordningsnummer 701063-2391",
            one("personnummer", High, "197010632391"),
        ),
        (
            "Ärendet rör 701063-2391 och inget mer",
            one("personnummer", Medium, "197010632391"),
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(&found(text, Medium), expected, "{text}");
    }
    // A bare number with nothing around it is only low.
    assert!(found("Nummer 8112189876 här", Medium).is_empty());
    assert_eq!(
        found("Nummer 8112189876 här", Low),
        one("personnummer", Low, "198112189876")
    );
}

#[test]
fn decoys_are_not_people() {
    use Confidence::*;
    for text in [
        "personnummer 811218-9875",     // check digit wrong
        "personnummer 811318-9875",     // month 13
        "personnummer 810230-9872",     // 30 February
        "Orgnr 556677-8899 Exempel AB", // organisationsnummer
        "Vårt organisationsnummer är 5566778899",
        "Fakturanr 811218-9876 förfaller", // an invoice number, demoted below medium
        "OCR: 8112189876",                 // low, demoted to nothing
        "Bankgiro 8112189876",
        "Mötet är 2024-01-15 kl 10:30:00", // dates and times
        "Version 1.02.3.4 av programmet",  // not an address
        "Order 20241115-0001 skickad",     // a date-shaped order number
    ] {
        let matches = found(text, Medium);
        assert!(matches.is_empty(), "{text}: {matches:?}");
    }
    // The invoice-numbered one is still there at low confidence.
    assert_eq!(
        found("Fakturanr 811218-9876 förfaller", Low),
        one("personnummer", Low, "198112189876")
    );
}

#[test]
fn phone_numbers_are_phones_not_people() {
    use Confidence::*;
    assert_eq!(
        found("Ring mig på 070-123 45 67 i kväll", Medium),
        one("phone", High, "+46701234567")
    );
    assert_eq!(
        found("Nås på 0701234567", Medium),
        one("phone", Medium, "+46701234567")
    );
    assert_eq!(
        found("växel +46 8 123 456 78", Medium),
        one("phone", High, "+46812345678")
    );
}

#[test]
fn the_other_kinds() {
    use Confidence::*;
    assert_eq!(
        found("IBAN: SE45 5000 0000 0583 9825 7466", Medium),
        one("iban", High, "SE4550000000058398257466")
    );
    assert_eq!(
        found("kortnummer 4111 1111 1111 1111 exp 12/27", Medium),
        one("payment_card", High, "4111111111111111")
    );
    assert_eq!(
        found("Skriv till Anna.Svensson@Firma.se, tack", Medium),
        one("email", High, "anna.svensson@firma.se")
    );
    assert_eq!(
        found(
            "10.20.30.40 - - [12/Nov/2026:10:00:00 +0100] \"GET /\"",
            Medium
        ),
        one("ipv4", Medium, "10.20.30.40")
    );
    assert_eq!(
        found("klient 2001:db8::7 loggade in", Medium),
        one("ipv6", Medium, "2001:db8::7")
    );
    assert!(found("kort 4111 1111 1111 1112", Low).is_empty(), "Luhn");
}

#[test]
fn custom_detectors_from_config() {
    let custom = CustomDetector {
        name: "patient".into(),
        pattern: r"(?-u:\b)P-[0-9]{6}-[0-9](?-u:\b)".into(),
        checksum: Some(Checksum::Luhn),
        keywords: vec!["journal".into(), "patient".into()],
        window: 32,
    };
    let set = DetectorSet::with(&[], vec![custom]).expect("set");
    let scan = |text: &str| -> Vec<(String, Confidence)> {
        set.scan(text.as_bytes(), TODAY, Confidence::Medium)
            .into_iter()
            .map(|m| (m.normalised, m.confidence))
            .collect()
    };
    // 1234566: Luhn-valid; 1234567 is not.
    assert_eq!(
        scan("Id P-123456-6 här"),
        [("P-123456-6".to_owned(), Confidence::Medium)]
    );
    assert_eq!(
        scan("Journal för P-123456-6"),
        [("P-123456-6".to_owned(), Confidence::High)]
    );
    assert!(scan("Id P-123456-7").is_empty());
    let bad = DetectorSet::with(
        &[],
        vec![CustomDetector {
            name: "broken".into(),
            pattern: "(".into(),
            checksum: None,
            keywords: Vec::new(),
            window: DEFAULT_WINDOW,
        }],
    );
    assert!(matches!(bad, Err(BuildError::Pattern { name, .. }) if name == "broken"));
}

#[test]
fn a_custom_pattern_that_matches_the_empty_string_is_refused() {
    for pattern in ["[0-9]*", "(?:KUND)?", r"(?-u:\b)"] {
        let custom = CustomDetector {
            name: "tom".into(),
            pattern: pattern.into(),
            checksum: None,
            keywords: Vec::new(),
            window: DEFAULT_WINDOW,
        };
        let error = DetectorSet::new(vec![custom]).expect_err(pattern);
        assert!(error.to_string().contains("empty string"), "{error}");
    }
    // The same with something to hold is fine.
    let custom = CustomDetector {
        name: "kund".into(),
        pattern: "KUND-[0-9]+".into(),
        checksum: None,
        keywords: Vec::new(),
        window: DEFAULT_WINDOW,
    };
    assert!(DetectorSet::new(vec![custom]).is_ok());
}

#[test]
fn many_matches_in_one_swedish_text() {
    let text = "Hej! Här är uppgifterna om sökanden Åsa Öberg, personnummer 19811218-9876, \
                tel 070-123 45 67, e-post asa.oberg@example.se. Hennes kollega har \
                samordningsnummer 701063-2391. Fakturanr 5566778899 gäller firman.";
    let names: Vec<String> = found(text, Confidence::Medium)
        .into_iter()
        .map(|(name, _, value)| format!("{name}:{value}"))
        .collect();
    assert_eq!(
        names,
        [
            "personnummer:198112189876",
            "phone:+46701234567",
            "email:asa.oberg@example.se",
            "personnummer:197010632391",
        ]
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Text shaped like what the detectors look for: digits with separators,
    /// plus signs, at-signs, dots, colons, letters, Swedish letters and
    /// keywords, so the generator reaches every validator.
    fn text_like() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop_oneof![
                "[0-9]{1,14}",
                Just("-".to_owned()),
                Just("+".to_owned()),
                Just(" ".to_owned()),
                Just("@".to_owned()),
                Just(".".to_owned()),
                Just(":".to_owned()),
                Just("personnummer ".to_owned()),
                Just("faktura ".to_owned()),
                Just("åäö".to_owned()),
                "[A-Za-z]{1,6}",
                "\\PC{1,3}",
            ],
            0..40,
        )
        .prop_map(|parts| parts.concat().into_bytes())
    }

    proptest! {
        #[test]
        fn scanning_never_panics_and_matches_lie_inside_the_text(
            text in prop_oneof![text_like(), prop::collection::vec(any::<u8>(), 0..256)],
            min in prop_oneof![Just(Confidence::Low), Just(Confidence::Medium), Just(Confidence::High)],
        ) {
            let set = DetectorSet::new(Vec::new()).expect("set");
            for found in set.scan(&text, TODAY, min) {
                prop_assert!(found.start < found.end && found.end <= text.len());
                prop_assert!(found.confidence >= min);
                prop_assert!(!found.normalised.is_empty());
            }
        }
    }

    /// A valid personnummer (or samordningsnummer) written in one of its
    /// forms: 10 digits, 6-4 with `-` or `+`, 12 digits, 8-4.
    fn personnummer_written() -> impl Strategy<Value = String> {
        (
            0u32..100,
            1u32..13,
            1u32..29,
            any::<bool>(),
            0u32..1000,
            0usize..5,
            any::<bool>(),
        )
            .prop_map(|(yy, mm, dd, coordination, serial, form, old)| {
                let day = if coordination { dd + 60 } else { dd };
                let nine = format!("{yy:02}{mm:02}{day:02}{serial:03}");
                let check = (0..10u8)
                    .find(|digit| {
                        let mut ten = nine.clone().into_bytes();
                        ten.push(b'0' + digit);
                        crate::checksum::luhn(&ten)
                    })
                    .unwrap_or(0);
                let ten = format!("{nine}{check}");
                let century = if old { "19" } else { "20" };
                match form {
                    0 => ten,
                    1 => format!("{}-{}", &ten[..6], &ten[6..]),
                    2 => format!("{}+{}", &ten[..6], &ten[6..]),
                    3 => format!("{century}{ten}"),
                    _ => format!("{century}{}-{}", &ten[..6], &ten[6..]),
                }
            })
    }

    /// Text around personnummer: valid numbers in every form, mobile
    /// numbers, digit runs of every length, separators, word bytes before
    /// and after, every kind of keyword (and one that hides another inside
    /// a longer non-word-start match), long prose with no byte to resume the
    /// keyword search after, and UTF-8.
    fn text_around_personnummer() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop_oneof![
                4 => personnummer_written(),
                1 => "07[0-9]{8}",
                1 => "[0-9]{1,14}",
                1 => Just("-".to_owned()),
                1 => Just("+".to_owned()),
                1 => Just(" ".to_owned()),
                1 => Just("\n".to_owned()),
                1 => Just(", ".to_owned()),
                1 => Just("_".to_owned()),
                1 => Just("personnummer ".to_owned()),
                1 => Just("Pnr: ".to_owned()),
                1 => Just("FÖDD ".to_owned()),
                1 => Just("fakturanr ".to_owned()),
                1 => Just(" OCR ".to_owned()),
                1 => Just("xpersonal identity number ".to_owned()),
                1 => Just("personal id-nummer ".to_owned()),
                1 => Just("telefon ".to_owned()),
                1 => Just("åäö".to_owned()),
                1 => "[A-Za-z]{1,6}",
                1 => "[a-z ]{60,400}",
                1 => "\\PC{1,3}",
            ],
            0..60,
        )
        .prop_map(|parts| parts.concat().into_bytes())
    }

    static DIGIT_RUNS: std::sync::LazyLock<DetectorSet> = std::sync::LazyLock::new(|| {
        DetectorSet::with(&[Builtin::Personnummer], Vec::new()).expect("set")
    });
    static GENERAL: std::sync::LazyLock<DetectorSet> = std::sync::LazyLock::new(|| {
        DetectorSet::general(&[Builtin::Personnummer], Vec::new()).expect("set")
    });

    static SPANS: std::sync::LazyLock<DetectorSet> =
        std::sync::LazyLock::new(|| DetectorSet::new(Vec::new()).expect("set"));
    static WHOLE: std::sync::LazyLock<DetectorSet> =
        std::sync::LazyLock::new(|| DetectorSet::general(Builtin::ALL, Vec::new()).expect("set"));

    /// Custom detectors whose patterns and keywords overlap the built-ins'.
    fn overlapping_customs() -> Vec<CustomDetector> {
        vec![
            CustomDetector {
                name: "kundnummer".into(),
                pattern: r"(?-u:\b)[0-9]{3}-[0-9]{3}(?-u:\b)".into(),
                checksum: None,
                keywords: vec!["kund".into(), "q".into()],
                window: 100,
            },
            CustomDetector {
                name: "ärende".into(),
                pattern: r"(?i)pnr ?[0-9]{2}".into(),
                checksum: Some(Checksum::Luhn),
                keywords: vec!["ärende".into()],
                window: 20,
            },
        ]
    }

    static WITH_CUSTOMS: std::sync::LazyLock<DetectorSet> = std::sync::LazyLock::new(|| {
        DetectorSet::with(Builtin::ALL, overlapping_customs()).expect("set")
    });
    static WHOLE_WITH_CUSTOMS: std::sync::LazyLock<DetectorSet> = std::sync::LazyLock::new(|| {
        DetectorSet::general(Builtin::ALL, overlapping_customs()).expect("set")
    });

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Built-ins and custom detectors: the merged scanners and the one
        /// regex over the whole text find the same matches.
        #[test]
        fn with_customs_the_scan_finds_what_the_whole_text_scan_finds(
            text in prop_oneof![
                2 => text_around_personnummer(),
                2 => text_like(),
                1 => prop::collection::vec(any::<u8>(), 0..256),
            ],
        ) {
            let merged = WITH_CUSTOMS.scan(&text, TODAY, Confidence::Low);
            let whole = WHOLE_WITH_CUSTOMS.scan(&text, TODAY, Confidence::Low);
            prop_assert_eq!(merged, whole);
        }

        /// A set of every built-in scanned by its spans and by the regex
        /// over the whole text: the same matches, place, confidence and
        /// value, in the same order (the spans' candidates themselves are
        /// compared in `spans.rs`).
        #[test]
        fn the_spans_scan_finds_what_the_whole_text_scan_finds(
            text in prop_oneof![
                2 => text_around_personnummer(),
                2 => text_like(),
                1 => prop::collection::vec(any::<u8>(), 0..256),
            ],
        ) {
            let spans = SPANS.scan(&text, TODAY, Confidence::Low);
            let whole = WHOLE.scan(&text, TODAY, Confidence::Low);
            prop_assert_eq!(spans, whole);
        }

        /// The personnummer's digit-run scanner and the general regex path
        /// find the same matches, place, confidence and value, in the same
        /// order.
        #[test]
        fn the_digit_run_scanner_finds_what_the_regex_finds(
            text in prop_oneof![
                4 => text_around_personnummer(),
                1 => text_like(),
                1 => prop::collection::vec(any::<u8>(), 0..256),
            ],
        ) {
            let fast = DIGIT_RUNS.scan(&text, TODAY, Confidence::Low);
            let general = GENERAL.scan(&text, TODAY, Confidence::Low);
            prop_assert_eq!(fast, general);
        }
    }

    /// A keyword counts at every word start, inside a longer one too:
    /// "identity number" in "xpersonal identity number" names the bare
    /// number when it ends within the window (64 bytes) before it, on every
    /// path alike.
    #[test]
    fn a_keyword_inside_another_counts_within_the_window() {
        for padding in 1..120 {
            for before in ["", "ab ", "12 "] {
                let text = format!(
                    "{before}xpersonal identity number{}8112189876 slut",
                    " ".repeat(padding)
                );
                let expected = if padding < DEFAULT_WINDOW {
                    Confidence::Medium
                } else {
                    Confidence::Low
                };
                for set in [&*DIGIT_RUNS, &*GENERAL, &*SPANS, &*WHOLE] {
                    let found = set.scan(text.as_bytes(), TODAY, Confidence::Low);
                    let confidences: Vec<Confidence> =
                        found.iter().map(|found| found.confidence).collect();
                    assert_eq!(confidences, [expected], "{text:?}");
                }
            }
        }
    }
}
