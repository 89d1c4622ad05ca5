//! Property tests: the parsers of what an operator writes here (months, the
//! digest's addresses file) and of what the store hands to output (record
//! locations and notes from outside data) never panic, whatever they are given.
//! Each crate below has its own (durations and schedules in tillsyn-core, the
//! config in tillsyn-config, the erasure register in tillsyn-rules, drafts in
//! tillsyn-draft).
//! The runs and their counts are recorded in FUZZING.md; `PROPTEST_CASES=N`
//! raises the count.

use proptest::prelude::*;

use crate::privacy::PersonDisplay;

proptest! {
    #[test]
    fn months_never_panic(text in prop_oneof![
        "([0-9*/,-]{1,6} ){0,7}",
        "-?[0-9]{1,6}-[0-9]{0,3}\\PC{0,3}",
        "\\PC*",
    ]) {
        let _ = text.parse::<crate::report::Month>();
    }

    #[test]
    fn shown_locations_and_notes_never_panic(
        path in "\\PC{0,60}",
        custodian in proptest::option::of("\\PC{0,12}"),
        kind in prop_oneof![
            Just("message"), Just("file"), Just("folder"), Just("contact"), Just("crm_object")
        ],
    ) {
        let dir = std::env::temp_dir().join("tillsyn-proptest-key");
        let shown = PersonDisplay::new(&tillsyn_config::PrivacyConfig::default(), &dir)
            .or_else(|_| PersonDisplay::new(&tillsyn_config::PrivacyConfig::default(), &dir));
        let Ok(shown) = shown else { return Ok(()) };
        let record = shown.record("unknown", kind, &path, custodian.as_deref());
        // Whatever the shape, a mail address never survives into output.
        prop_assert!(!record.contains('@'), "{path:?} shown as {record:?}");
        let _ = shown.text(&path);
        let _ = crate::report::location(kind, &record);
    }

    #[test]
    fn digest_addresses_never_panic(
        text in prop_oneof![
            prop::collection::vec(
                "(#.*|[a-zåäö .]{0,10}, ?([a-z.]{1,8}@[a-z]{1,6}\\.se|\\PC{0,10})(, ?(sv|en|\\PC{0,4}))?)",
                0..8,
            )
            .prop_map(|lines| lines.join("\n")),
            "\\PC{0,200}",
        ]
    ) {
        match crate::report::digest::parse_addresses(&text) {
            // Every problem names a line that exists.
            Err((line, _)) => prop_assert!(line >= 1 && line <= text.lines().count()),
            Ok(found) => prop_assert!(found.len() <= text.lines().count()),
        }
    }
}
