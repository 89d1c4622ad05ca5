//! Exceptions ("dispens"): findings kept on purpose, with a reason and an end
//! date, through the CLI on a real share and store: excepted findings are
//! shown as such and not counted as broken, an ended exception counts again,
//! the report lists what is in force and what ends next month, and
//! `check-config` points at exceptions that cover nothing or are wrong.

mod common;

use std::collections::BTreeMap;

use chrono::{Local, TimeDelta};
use common::*;

fn day(offset: i64) -> String {
    (Local::now() + TimeDelta::days(offset))
        .format("%Y-%m-%d")
        .to_string()
}

/// A share of three old files and one young one; `exceptions` appended.
fn setup(exceptions: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let share = dir.path().join("share");
    file_at(&share.join("Tvist/avtal.pdf"), b"x", days_ago(400));
    file_at(&share.join("Tvist/mejl.txt"), b"x", days_ago(400));
    file_at(&share.join("Kunder/gammal.txt"), b"x", days_ago(400));
    file_at(&share.join("Kunder/ny.txt"), b"x", days_ago(3));
    let config = dir.path().join("tillsyn.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nstate_dir = \"state\"\ntimezone = \"Europe/Stockholm\"\n\n\
             [[sources]]\nname = \"share\"\ntype = \"fileshare\"\nroot = \"share\"\n\n\
             [[rules]]\nid = \"stale\"\nkind = \"max_age\"\npolicy = \"Filer gallras efter ett år.\"\n\
             max_age = \"365d\"\ntimestamp = \"modified\"\n\n{exceptions}"
        ),
    )
    .expect("config");
    let config = config.to_str().expect("utf8").to_owned();
    (dir, config)
}

/// record → the exception it is shown under (empty when none).
fn shown(lines: &[serde_json::Value]) -> BTreeMap<String, String> {
    lines
        .iter()
        .map(|line| {
            (
                line["record"].as_str().expect("record").to_owned(),
                line["excepted"]["id"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn excepted_findings_are_shown_with_their_reason_and_not_counted_until_they_end() {
    let exceptions = format!(
        "[[exceptions]]\nid = \"tvist-2024\"\nrule = \"stale\"\npaths = [\"Tvist/**\"]\n\
         reason = \"Tvist med kund, bevaras tills den är avgjord\"\nuntil = \"{soon}\"\n\n\
         [[exceptions]]\nid = \"slut\"\nrule = \"*\"\nsources = [\"share\"]\npaths = [\"Kunder/**\"]\n\
         reason = \"Granskning\"\nuntil = \"{ended}\"\n\n\
         [[exceptions]]\nid = \"stavfel\"\nrule = \"stale\"\npaths = [\"Tvsit/**\"]\n\
         reason = \"Felskrivet\"\nuntil = \"{later}\"\n",
        soon = day(20),
        ended = day(-1),
        later = day(200),
    );
    let (_dir, config) = setup(&exceptions);
    let scan = tillsyn(&["scan", "--once", "--config", &config, "--format", "json"]);
    let (_, stderr) = text(&scan);
    assert_eq!(scan.status.code(), Some(0), "{stderr}");
    let lines = json_lines(&scan);
    let expected: BTreeMap<String, String> = [
        ("Kunder/gammal.txt", ""),
        ("Tvist/avtal.pdf", "tvist-2024"),
        ("Tvist/mejl.txt", "tvist-2024"),
    ]
    .into_iter()
    .map(|(record, id)| (record.to_owned(), id.to_owned()))
    .collect();
    assert_eq!(shown(&lines), expected);
    let excepted = lines
        .iter()
        .find(|line| line["record"] == "Tvist/avtal.pdf")
        .expect("line");
    assert_eq!(
        excepted["excepted"]["reason"],
        "Tvist med kund, bevaras tills den är avgjord"
    );
    assert_eq!(excepted["excepted"]["until"], day(20).as_str());
    // Three findings, one counted as broken: the ended exception covers
    // nothing any more.
    assert!(
        stderr.contains("3 findings (3 new, 0 resolved, 1 open)"),
        "{stderr}"
    );

    // `findings` shows the same, and so does the table.
    let listed = json_lines(&tillsyn(&[
        "findings", "--config", &config, "--format", "json",
    ]));
    assert_eq!(shown(&listed), expected);
    let table = tillsyn(&["findings", "--config", &config]);
    let (table, _) = text(&table);
    assert!(
        table.contains("Tvist/avtal.pdf  [excepted: tvist-2024 until")
            && !table.contains("gammal.txt  [excepted"),
        "{table}"
    );

    // The report: not broken, and the exception listed as ending next month.
    let out = _dir.path().join("out");
    let month = Local::now().format("%Y-%m").to_string();
    let report = tillsyn(&[
        "report",
        "--config",
        &config,
        "--month",
        &month,
        "--out",
        out.to_str().expect("utf8"),
    ]);
    let (stdout, stderr) = text(&report);
    assert_eq!(report.status.code(), Some(0), "{stdout}{stderr}");
    let report_text = std::fs::read_to_string(out.join("report.txt")).expect("report.txt");
    assert!(
        report_text.contains(&format!(
            "tvist-2024 (stale): 2 öppna, till och med {}, UPPHÖR NÄSTA MÅNAD",
            day(20)
        )),
        "{report_text}"
    );
    assert!(
        report_text.contains(&format!(
            "stavfel (stale): 0 öppna, till och med {}. Skäl",
            day(200)
        )),
        "{report_text}"
    );
    assert!(
        !report_text.contains("slut (alla"),
        "an ended exception is not in force: {report_text}"
    );
    let csv = std::fs::read_to_string(
        std::fs::read_dir(&out)
            .expect("out")
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .find(|path| path.extension().is_some_and(|ext| ext == "csv"))
            .expect("a CSV"),
    )
    .expect("csv");
    // By default the CSV counts per promise and custodian; only what is broken.
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "rule,severity,custodian,open", "{csv}");
    assert_eq!(rows.len(), 2, "one promise, one custodian: {csv}");
    assert!(
        rows[1].starts_with("stale,medium,") && rows[1].ends_with(",1"),
        "{csv}"
    );
    assert!(
        !csv.contains("avtal.pdf") && !csv.contains("gammal.txt"),
        "{csv}"
    );

    // check-config: the ended one and the one that covers nothing.
    let check = tillsyn(&["check-config", "--config", &config]);
    let (stdout, _) = text(&check);
    assert_eq!(check.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(&format!("warning: exception slut ended on {}", day(-1))),
        "{stdout}"
    );
    assert!(
        stdout.contains("warning: exception stavfel covers no open finding"),
        "{stdout}"
    );
    assert!(!stdout.contains("exception tvist-2024"), "{stdout}");
}

#[test]
fn without_exceptions_every_finding_counts() {
    let (_dir, config) = setup("");
    let scan = tillsyn(&["scan", "--once", "--config", &config, "--format", "json"]);
    let (_, stderr) = text(&scan);
    assert!(
        stderr.contains("3 findings (3 new, 0 resolved, 3 open)"),
        "{stderr}"
    );
    assert!(shown(&json_lines(&scan)).values().all(String::is_empty));
}

#[test]
fn an_exception_needs_a_reason_an_end_and_names_that_exist() {
    for (exception, expected) in [
        (
            "[[exceptions]]\nid = \"x\"\nrule = \"stale\"\nreason = \"\"\nuntil = \"2030-01-01\"\n",
            "`reason` is empty",
        ),
        (
            "[[exceptions]]\nid = \"x\"\nrule = \"stale\"\nreason = \"r\"\n",
            "missing field `until`",
        ),
        (
            "[[exceptions]]\nid = \"x\"\nrule = \"stale\"\nreason = \"r\"\nuntil = \"i morgon\"\n",
            "is not a date",
        ),
        (
            "[[exceptions]]\nid = \"x\"\nrule = \"stael\"\nreason = \"r\"\nuntil = \"2030-01-01\"\n",
            "unknown rule \"stael\"",
        ),
        (
            "[[exceptions]]\nid = \"x\"\nrule = \"*\"\nsources = [\"sahre\"]\nreason = \"r\"\nuntil = \"2030-01-01\"\n",
            "unknown source \"sahre\"",
        ),
    ] {
        let (_dir, config) = setup(exception);
        let check = tillsyn(&["check-config", "--config", &config]);
        let (stdout, stderr) = text(&check);
        assert_eq!(
            check.status.code(),
            Some(3),
            "{exception}: {stdout}{stderr}"
        );
        assert!(
            stdout.contains(expected) || stderr.contains(expected),
            "{exception}: {stdout}{stderr}"
        );
    }
}

/// Custodian marks on a Maildir: with `flagged` allowed, a message with the `F`
/// flag is excepted as marked by its custodian; without, it counts. Nothing on
/// disk changes.
#[test]
fn a_flagged_maildir_message_is_excepted_only_where_marks_are_allowed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cur = dir.path().join("mail/anna/Maildir/cur");
    std::fs::create_dir_all(&cur).expect("maildir");
    for name in ["1.M1P1.host:2,FS", "2.M2P1.host:2,S"] {
        file_at(&cur.join(name), b"Subject: x\r\n\r\nbody\r\n", days_ago(90));
    }
    let before: Vec<String> = std::fs::read_dir(&cur)
        .expect("cur")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let scan_with = |marks: &str| {
        let config = dir.path().join("tillsyn.toml");
        std::fs::write(
            &config,
            format!(
                "[daemon]\nstate_dir = \"state-{}\"\n\n\
                 [[sources]]\nname = \"mail\"\ntype = \"maildir\"\nroot = \"mail\"\n{marks}\n\n\
                 [[rules]]\nid = \"stale-inbox\"\nkind = \"max_age\"\npolicy = \"p\"\n\
                 max_age = \"31d\"\ntimestamp = \"received\"\n",
                marks.len()
            ),
        )
        .expect("config");
        let output = tillsyn(&[
            "scan",
            "--once",
            "--config",
            config.to_str().expect("utf8"),
            "--format",
            "json",
        ]);
        let (_, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        let reasons: BTreeMap<String, String> = json_lines(&output)
            .iter()
            .map(|line| {
                (
                    line["record"].as_str().expect("record").to_owned(),
                    line["excepted"]["reason"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        (reasons, stderr)
    };
    let (allowed, stderr) = scan_with("custodian_marks = { flagged = true }");
    assert_eq!(
        allowed.values().cloned().collect::<Vec<_>>(),
        ["marked by custodian", ""],
        "{allowed:?}"
    );
    assert!(
        stderr.contains("2 findings (2 new, 0 resolved, 1 open)"),
        "{stderr}"
    );
    let (not_allowed, stderr) = scan_with("");
    assert!(
        not_allowed.values().all(String::is_empty),
        "{not_allowed:?}"
    );
    assert!(
        stderr.contains("2 findings (2 new, 0 resolved, 2 open)"),
        "{stderr}"
    );
    let after: Vec<String> = std::fs::read_dir(&cur)
        .expect("cur")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(before, after);
}
