//! Property tests: the config reader never panics, on TOML-ish text that
//! reaches its checks or on any text at all. Runs are recorded in FUZZING.md.

use proptest::prelude::*;

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
    fn the_config_reader_never_panics(text in prop_oneof![config_like(), "\\PC*"]) {
        let _ = crate::parse_with(
            &text,
            std::path::Path::new("/nonexistent/tillsyn.toml"),
            crate::Secrets::NONE,
        );
    }
}
