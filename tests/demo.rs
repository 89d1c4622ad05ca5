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
        // The month's report so far, written where it says, with the same
        // promises broken.
        let html = stdout
            .lines()
            .find_map(|line| line.strip_prefix("Monthly report so far: "))
            .unwrap_or_else(|| panic!("no report path in {stdout}"));
        let html = std::fs::read_to_string(html).expect("report.html");
        assert!(
            html.contains("Ansökan raderas i våra interna system efter aktuell tjänst är tillsatt"),
            "the report quotes the promises"
        );
        let text_report = std::fs::read_to_string(
            std::path::Path::new(html_path(&stdout)).with_file_name("report.txt"),
        )
        .expect("report.txt");
        let figure = |label: &str| {
            text_report
                .lines()
                .find_map(|line| line.trim_start().strip_prefix(label))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|number| number.parse::<u64>().ok())
        };
        assert_eq!(figure("Brutna"), Some(6), "{text_report}");
        assert_eq!(figure("Öppna avvikelser"), Some(46), "{text_report}");
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

/// The report path the demo printed.
fn html_path(stdout: &str) -> &str {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("Monthly report so far: "))
        .unwrap_or_default()
}

/// One language per report: what tillsyn writes itself (details, severities,
/// labels) is Swedish in the Swedish report and English in the English one.
/// The config's own words (rule ids, descriptions, the quoted policy, folder
/// names) stay as written, so only tillsyn's words are looked for.
#[test]
fn each_report_speaks_one_language() {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo_dir = dir.path().join("demo");
    let output = tillsyn(&["demo", "--dir", demo_dir.to_str().expect("utf8")]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    let swedish_report = std::fs::read_to_string(
        std::path::Path::new(html_path(&text(&output).0)).with_file_name("report.txt"),
    )
    .expect("the demo's Swedish report");
    let config = std::fs::read_to_string(demo_dir.join("tillsyn.toml")).expect("config");
    let english_config = demo_dir.join("english.toml");
    std::fs::write(
        &english_config,
        format!("{config}\n[report]\nlanguage = \"en\"\n"),
    )
    .expect("config");
    let out = dir.path().join("en");
    let month = chrono::Local::now().format("%Y-%m").to_string();
    let english = tillsyn(&[
        "report",
        "--config",
        english_config.to_str().expect("utf8"),
        "--month",
        &month,
        "--out",
        out.to_str().expect("utf8"),
    ]);
    assert_eq!(english.status.code(), Some(0), "{:?}", text(&english));
    let english_report = std::fs::read_to_string(out.join("report.txt")).expect("report.txt");
    // tillsyn's own words, in the other language.
    let english_words = [
        "received",
        "days ago",
        "limit ",
        "overdue since",
        "recipients",
        "domains",
        "severity",
        "medium)",
        "grace",
        "open since",
        "Where:",
        "Who:",
    ];
    let swedish_words = [
        "mottaget",
        "dagar sedan",
        "gräns ",
        "försenat sedan",
        "mottagare",
        "domäner",
        "allvarlighet",
        "medel)",
        "respit",
        "öppen sedan",
        "Var:",
        "Vem:",
    ];
    for word in english_words {
        assert!(
            !swedish_report.contains(word),
            "English {word:?} in the Swedish report:\n{swedish_report}"
        );
    }
    for word in swedish_words {
        assert!(
            !english_report.contains(word),
            "Swedish {word:?} in the English report:\n{english_report}"
        );
    }
    // And each has its own words: the test looks where they are.
    assert!(swedish_report.contains("dagar sedan") && swedish_report.contains("mottagare"));
    assert!(english_report.contains("days ago") && english_report.contains("recipients"));
}
