//! The README's first command: `tillsyn demo` builds its organisation, finds what
//! it planted (counted per promise), and can be run again.

mod common;

use std::collections::BTreeMap;

use common::*;

#[test]
fn demo_finds_its_planted_violations_and_reruns_safely() {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo_dir = dir.path().join("demo");
    let demo = demo_dir.to_str().expect("utf8");
    for run in 0..2 {
        let output = tillsyn(&["demo", "--dir", demo]);
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(0), "run {run}: {stdout}{stderr}");
        assert!(
            stdout.contains("6 of 6 promises are broken, 46 findings in all"),
            "{stdout}"
        );
        assert!(stdout.contains(
            "\"Ansökan raderas i våra interna system efter aktuell tjänst är tillsatt\""
        ));
        let config = demo_dir.join("tillsyn.toml");
        let listed = tillsyn(&[
            "findings",
            "--config",
            config.to_str().expect("utf8"),
            "--format",
            "json",
        ]);
        let mut per_rule: BTreeMap<String, usize> = BTreeMap::new();
        for finding in json_lines(&listed) {
            *per_rule
                .entry(finding["rule"].as_str().expect("rule").to_owned())
                .or_default() += 1;
        }
        let expected: BTreeMap<String, usize> = [
            ("stale-inbox", 15),
            ("wide-cc", 3),
            ("application-after-filled", 4),
            ("invoice-retention", 9),
            ("access-log-retention", 13),
            ("customer-folder-untouched", 2),
        ]
        .into_iter()
        .map(|(rule, count)| (rule.to_owned(), count))
        .collect();
        assert_eq!(per_rule, expected, "run {run}");
    }
    // It never replaces a folder it did not make.
    let foreign = dir.path().join("foreign");
    std::fs::create_dir_all(&foreign).expect("dir");
    std::fs::write(foreign.join("important.txt"), "keep").expect("write");
    let output = tillsyn(&["demo", "--dir", foreign.to_str().expect("utf8")]);
    assert_ne!(output.status.code(), Some(0));
    assert!(text(&output).1.contains("was not made by `tillsyn demo`"));
    assert_eq!(
        std::fs::read_to_string(foreign.join("important.txt")).expect("kept"),
        "keep"
    );
}
