//! Property tests: the parsers of what an operator writes (durations, schedules,
//! months, the config itself) and of what the store hands to output (record
//! locations and notes from outside data) never panic, whatever they are given.
//! The runs and their counts are recorded in FUZZING.md; `PROPTEST_CASES=N`
//! raises the count.

use proptest::prelude::*;

use crate::privacy::PersonDisplay;

/// TOML-ish text: the config's own keys and sections with arbitrary values, so
/// the generator reaches the config reader's checks, not only the TOML parser.
fn config_like() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        Just("[daemon]".to_owned()),
        Just("[privacy]".to_owned()),
        Just("[[sources]]".to_owned()),
        Just("[[rules]]".to_owned()),
        Just("[report]".to_owned()),
        Just("[report.smtp]".to_owned()),
        Just("type = \"fileshare\"".to_owned()),
        Just("type = \"http\"".to_owned()),
        Just("kind = \"max_age\"".to_owned()),
        Just("kind = \"conflict\"".to_owned()),
        "(name|id|policy|root|url|max_age|grace|schedule|timestamp|scan_timeout|retention|timezone|listen|name_people|personal_paths) = \"\\PC{0,12}\"",
        "(max|threads|port|shutdown_grace_seconds) = -?[0-9]{1,22}",
        "when = \\{ (sources|folders|paths) = \\[\"\\PC{0,8}\"\\] \\}",
        "\\PC{0,30}",
    ];
    prop::collection::vec(line, 0..24).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #[test]
    fn durations_never_panic(text in prop_oneof![
        "[0-9]{0,25} ?(s|min|h|d|w|months?|månader|y|år|\\PC{0,6})",
        "\\PC*",
    ]) {
        let _ = text.parse::<tillsyn_core::period::Period>();
    }

    #[test]
    fn schedules_and_months_never_panic(text in prop_oneof![
        "([0-9*/,-]{1,6} ){0,7}",
        "-?[0-9]{1,6}-[0-9]{0,3}\\PC{0,3}",
        "\\PC*",
    ]) {
        let _ = tillsyn_core::schedule::Schedule::parse(&text);
        let _ = text.parse::<crate::report::Month>();
    }

    #[test]
    fn the_config_reader_never_panics(text in prop_oneof![config_like(), "\\PC*"]) {
        let _ = tillsyn_config::parse_with(
            &text,
            std::path::Path::new("/nonexistent/tillsyn.toml"),
            tillsyn_config::Secrets::NONE,
        );
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
    fn erasure_registers_never_panic(
        text in prop_oneof![
            prop::collection::vec(
                "(kind|personnummer|email|phone|account|\\PC{0,6}), ?[0-9a-z@.+ \\-]{0,16}, ?([0-9]{4}-[0-9]{2}-[0-9]{2}|\\PC{0,10})",
                0..8,
            )
            .prop_map(|lines| lines.join("\n")),
            "\\PC{0,200}",
        ]
    ) {
        let plan = tillsyn_rules::identity::IdentityPlan::new(
            tillsyn_core::identity::IdentityKey::new(tillsyn_core::secret::Secret::new(vec![1; 32])),
            Default::default(),
            tillsyn_detectors::Today { year: 2026, month: 11, day: 30 },
        );
        let kinds = ["email", "personnummer", "phone", "account"].map(str::to_owned).into();
        if let Err(problems) = tillsyn_rules::register::parse_register(&text, &plan, chrono_tz::UTC, &kinds) {
            // Every problem names a line that exists.
            let lines = text.lines().count();
            prop_assert!(problems.iter().all(|(line, _)| *line >= 1 && *line <= lines));
        }
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

    #[test]
    fn policy_drafts_never_panic_and_are_toml_quoting_their_policy(
        text in prop_oneof![
            prop::collection::vec(
                "(\\PC{0,20} )?(sparas|raderas|tas bort|lagras|kept|deleted|rapporterar|inom|within|minimera|CC:|så länge det behövs|tillsatt|från kontakten) ?(i|efter|maximalt|högst|minst|at least)? ?([0-9]{1,4}|tre|sju|tjugofyra|twenty-four|12–36|ett) ?(år|månader|timmar|dagar|months|years|hours)?(\\PC{0,12})?[.;:]?( - |\\t|\\n|\\n• )?",
                0..10,
            )
            .prop_map(|parts| parts.concat()),
            "\\PC{0,300}",
        ],
        english in any::<bool>(),
    ) {
        let lang = english.then_some(crate::draft::grammar::Lang::En);
        let draft = crate::draft::draft(&text, lang);
        let pack = crate::draft::render(&draft, "policy.txt");
        let table: toml::Table = pack.parse().map_err(|error| TestCaseError::fail(format!("{error}\n{pack}")))?;
        let rules = table.get("rules").and_then(|rules| rules.as_array()).map_or(0, Vec::len);
        prop_assert_eq!(rules, draft.rules.len());
        for rule in &draft.rules {
            // Every quote is the policy's own text.
            prop_assert!(text.contains(rule.policy.as_str()));
        }
    }
}
