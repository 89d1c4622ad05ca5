//! Property tests: the erasure register's parser never panics, and every
//! problem it reports names a line that exists. Runs are recorded in FUZZING.md.

use proptest::prelude::*;

proptest! {
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
        let plan = crate::identity::IdentityPlan::new(
            tillsyn_core::identity::IdentityKey::new(tillsyn_core::secret::Secret::new(vec![1; 32])),
            Default::default(),
            tillsyn_detectors::Today { year: 2026, month: 11, day: 30 },
        );
        let kinds = ["email", "personnummer", "phone", "account"].map(str::to_owned).into();
        if let Err(problems) = crate::register::parse_register(&text, &plan, chrono_tz::UTC, &kinds) {
            // Every problem names a line that exists.
            let lines = text.lines().count();
            prop_assert!(problems.iter().all(|(line, _)| *line >= 1 && *line <= lines));
        }
    }
}
