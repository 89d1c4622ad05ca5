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
}
