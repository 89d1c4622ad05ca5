//! Property tests: drafting never panics on any text, and what it writes is
//! TOML whose every rule quotes the policy. Runs are recorded in FUZZING.md.

use proptest::prelude::*;

proptest! {
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
        let lang = english.then_some(crate::grammar::Language::En);
        let draft = crate::draft(&text, lang);
        let pack = crate::render(&draft, "policy.txt");
        let table: toml::Table = pack.parse().map_err(|error| TestCaseError::fail(format!("{error}\n{pack}")))?;
        let rules = table.get("rules").and_then(|rules| rules.as_array()).map_or(0, Vec::len);
        prop_assert_eq!(rules, draft.rules.len());
        for rule in &draft.rules {
            // Every quote is the policy's own text.
            prop_assert!(text.contains(rule.policy.as_str()));
        }
    }
}
