//! Property tests: durations and schedules, as an operator writes them, never
//! panic the parser, whatever they are. Runs are recorded in FUZZING.md.

use proptest::prelude::*;

proptest! {
    #[test]
    fn durations_never_panic(text in prop_oneof![
        "[0-9]{0,25} ?(s|min|h|d|w|months?|månader|y|år|\\PC{0,6})",
        "\\PC*",
    ]) {
        let _ = text.parse::<crate::period::Period>();
    }

    #[test]
    fn schedules_never_panic(text in prop_oneof![
        "([0-9*/,-]{1,6} ){0,7}",
        "-?[0-9]{1,6}-[0-9]{0,3}\\PC{0,3}",
        "\\PC*",
    ]) {
        let _ = crate::schedule::Schedule::parse(&text);
    }
}
