//! Table tests for rule selection, each rule kind and the scan plan.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use tillsyn_connectors::{Address, Participants, Record, RecordKind};

use super::*;
use crate::checks::after_fiscal_year;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0)
        .single()
        .expect("valid")
}

fn rules(toml_rules: &str) -> RuleSet {
    let text = format!(
        "[[sources]]\nname = \"mail\"\ntype = \"maildir\"\nroot = \"/nonexistent\"\n\
         [[sources]]\nname = \"share\"\ntype = \"fileshare\"\nroot = \"/nonexistent\"\n{toml_rules}"
    );
    let config = tillsyn_config::parse(&text, std::path::Path::new("/etc/t.toml"))
        .unwrap_or_else(|errors| unreachable_config(&errors));
    RuleSet::new(&config.rules, "Europe/Stockholm".parse().expect("tz")).expect("rules")
}

fn unreachable_config(errors: &tillsyn_config::ConfigErrors) -> tillsyn_config::Config {
    assert!(errors.issues.is_empty(), "test config invalid: {errors}");
    unreachable!()
}

fn message(folder: &str, days_old: i64) -> Record {
    let mut record = Record::new(
        RecordKind::Message,
        Arc::from("mail"),
        format!("anna/{folder}/1"),
    );
    record.container = folder.to_owned();
    record.timestamps.received = Some(now() - TimeDelta::days(days_old));
    if folder == "INBOX" {
        record
            .attributes
            .insert("special_use".into(), "\\Inbox".into());
    }
    if folder == "Skickat" {
        record
            .attributes
            .insert("special_use".into(), "\\Sent".into());
    }
    record
}

fn file(path: &str, modified_days_old: i64) -> Record {
    let mut record = Record::new(RecordKind::File, Arc::from("share"), path.to_owned());
    record.container = path
        .rsplit_once('/')
        .map(|(p, _)| p)
        .unwrap_or("")
        .to_owned();
    record.timestamps.modified = Some(now() - TimeDelta::days(modified_days_old));
    record
}

fn broken(set: &RuleSet, record: &Record) -> Vec<String> {
    let mut ids: Vec<String> = set
        .for_source(&record.source)
        .evaluate(record, now())
        .into_iter()
        .map(|violation| violation.rule.config.id.clone())
        .collect();
    ids.sort();
    ids
}

const STALE_INBOX: &str = r#"
[[rules]]
id = "stale"
kind = "max_age"
policy = "p"
max_age = "31d"
timestamp = "received"
when = { sources = ["mail"], folders = ["inbox"] }
"#;

#[test]
fn max_age_counts_from_received_and_only_in_the_selected_folder() {
    let set = rules(STALE_INBOX);
    let cases: &[(&str, i64, bool)] = &[
        ("INBOX", 30, false),
        ("INBOX", 31, false),
        ("INBOX", 32, true),
        ("INBOX", 400, true),
        ("Archive", 400, false),
        ("Skickat", 400, false),
    ];
    for (folder, days, expected) in cases {
        let record = message(folder, *days);
        assert_eq!(
            !broken(&set, &record).is_empty(),
            *expected,
            "{folder} {days}d"
        );
    }
    let mut undated = message("INBOX", 0);
    undated.timestamps.received = None;
    assert!(
        broken(&set, &undated).is_empty(),
        "no timestamp, no finding"
    );
}

#[test]
fn special_use_folders_and_recipient_counting() {
    let set = rules(
        r#"
[[rules]]
id = "cc"
kind = "max_recipients"
policy = "p"
max = 3
exclude_domains = ["exempel.se"]
when = { folders = ["INBOX", "\\Sent"] }

[[rules]]
id = "total"
kind = "max_recipients"
policy = "p"
count = "total"
max = 5
"#,
    );
    let addresses = |list: &[&str]| -> Vec<Address> {
        list.iter()
            .map(|a| Address {
                address: a.to_string(),
            })
            .collect()
    };
    /// folder, To, Cc, rules broken
    type Case<'a> = (&'a str, &'a [&'a str], &'a [&'a str], &'a [&'a str]);
    let cases: &[Case] = &[
        // folder, to, cc, rules broken
        (
            "INBOX",
            &["me@exempel.se"],
            &["a@x.se", "b@x.se", "c@y.se"],
            &[],
        ),
        (
            "INBOX",
            &["me@exempel.se"],
            &["a@x.se", "b@x.se", "c@y.se", "d@z.se"],
            &["cc"],
        ),
        // own domain and its subdomains are not counted; look-alike domains are
        (
            "Skickat",
            &["me@exempel.se"],
            &[
                "a@exempel.se",
                "b@sub.exempel.se",
                "c@x.se",
                "d@x.se",
                "e@y.se",
            ],
            // the `total` rule excludes no domain: 1 To + 5 Cc > 5
            &["total"],
        ),
        (
            "Skickat",
            &["me@exempel.se"],
            &["a@notexempel.se", "c@x.se", "d@x.se", "e@y.se"],
            &["cc"],
        ),
        // the same address twice counts once
        ("INBOX", &[], &["a@x.se", "a@x.se", "b@x.se", "c@x.se"], &[]),
        (
            "Archive",
            &[],
            &["a@x.se", "b@x.se", "c@x.se", "d@x.se"],
            &[],
        ),
        (
            "Archive",
            &["t1@x.se", "t2@x.se", "t3@x.se"],
            &["a@x.se", "b@x.se", "c@x.se"],
            &["total"],
        ),
    ];
    for (folder, to, cc, expected) in cases {
        let mut record = message(folder, 1);
        record.participants = Some(Participants {
            from: addresses(&["me@exempel.se"]),
            to: addresses(to),
            cc: addresses(cc),
        });
        assert_eq!(broken(&set, &record), *expected, "{folder} {cc:?}");
    }
    let headerless = message("INBOX", 1);
    assert!(
        broken(&set, &headerless).is_empty(),
        "no participants read, nothing to count"
    );
    assert!(set.for_source("mail").participants);
    assert_eq!(set.for_source("mail").needs(now()).received_before(), None);
}

#[test]
fn event_clock_counts_from_a_named_date_plus_grace() {
    let set = rules(
        r#"
[[rules]]
id = "filled"
kind = "max_age"
policy = "p"
max_age = "0d"
grace = "14d"
timestamp = "date:position_filled"
when = { paths = ["hr/*/applications/**"] }
"#,
    );
    let mut open_position = file("hr/dev/applications/cv.pdf", 500);
    assert!(
        broken(&set, &open_position).is_empty(),
        "not filled: no clock"
    );
    for (filled_days_ago, expected) in [(5, false), (14, false), (15, true), (300, true)] {
        open_position.dates.insert(
            "position_filled".into(),
            now() - TimeDelta::days(filled_days_ago),
        );
        assert_eq!(
            !broken(&set, &open_position).is_empty(),
            expected,
            "{filled_days_ago}"
        );
    }
    let mut elsewhere = file("hr/dev/notes/cv.pdf", 500);
    elsewhere
        .dates
        .insert("position_filled".into(), now() - TimeDelta::days(300));
    assert!(
        broken(&set, &elsewhere).is_empty(),
        "path glob does not match"
    );
    let mut too_deep = file("hr/a/b/applications/cv.pdf", 500);
    too_deep
        .dates
        .insert("position_filled".into(), now() - TimeDelta::days(300));
    assert!(
        broken(&set, &too_deep).is_empty(),
        "`*` stays within one folder"
    );
}

#[test]
fn fiscal_year_anchor_and_timestamp_fallback() {
    let set = rules(
        r#"
[[rules]]
id = "invoices"
kind = "max_age"
policy = "p"
max_age = "7y"
anchor = "end_of_year"
timestamp = ["date:path_date", "modified"]
when = { attributes = { class = "invoice" } }

[[rules]]
id = "broken-year"
kind = "max_age"
policy = "p"
max_age = "7y"
anchor = "end_of_year"
fiscal_year_end = "06-30"
timestamp = "modified"
when = { attributes = { class = "receipt" } }
"#,
    );
    let dated = |year: i32, month: u32, class: &str| {
        let mut record = file("ekonomi/x.pdf", 0);
        record.attributes.insert("class".into(), class.into());
        let date = Utc
            .with_ymd_and_hms(year, month, 15, 0, 0, 0)
            .single()
            .expect("valid");
        record.dates.insert("path_date".into(), date);
        record.timestamps.modified = Some(date);
        record
    };
    // Calendar year: 2018's year ends 2018-12-31, +7y = 2026-01-01 (past at 2026-11-21).
    assert_eq!(broken(&set, &dated(2018, 12, "invoice")), ["invoices"]);
    assert!(broken(&set, &dated(2019, 1, "invoice")).is_empty());
    // Fiscal year ending 30 June: Jan 2019 belongs to the year ending 2019-06-30,
    // due 2026-07-01 (past); Aug 2019 to the year ending 2020-06-30 (not yet).
    assert_eq!(broken(&set, &dated(2019, 1, "receipt")), ["broken-year"]);
    assert!(broken(&set, &dated(2019, 8, "receipt")).is_empty());
    // Without a path date the file's mtime is used.
    let mut undated = dated(2010, 1, "invoice");
    undated.dates.clear();
    assert_eq!(broken(&set, &undated), ["invoices"]);
    undated.timestamps.modified = Some(now());
    assert!(broken(&set, &undated).is_empty());
}

#[test]
fn year_end_follows_the_configured_time_zone() {
    let stockholm: chrono_tz::Tz = "Europe/Stockholm".parse().expect("tz");
    let december = tillsyn_config::rules::MonthDay { month: 12, day: 31 };
    // 23:30 UTC on 31 Dec is already 1 Jan in Stockholm: the next fiscal year.
    let late = Utc
        .with_ymd_and_hms(2019, 12, 31, 23, 30, 0)
        .single()
        .expect("valid");
    let end = after_fiscal_year(late, december, stockholm).expect("end");
    assert_eq!(
        end,
        Utc.with_ymd_and_hms(2020, 12, 31, 23, 0, 0)
            .single()
            .expect("valid")
    );
    let end_utc = after_fiscal_year(late, december, chrono_tz::UTC).expect("end");
    assert_eq!(
        end_utc,
        Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0)
            .single()
            .expect("valid")
    );
}

#[test]
fn conditions_on_kind_attributes_presence_and_exclusions() {
    let set = rules(
        r#"
[[rules]]
id = "folders"
kind = "max_age"
policy = "p"
max_age = "3y"
timestamp = "last_activity"
when = { kinds = ["folder"], exclude_paths = ["kunder/arkiv-*"], present = ["class"] }
"#,
    );
    let folder = |path: &str, class: Option<&str>| {
        let mut record = Record::new(RecordKind::Folder, Arc::from("share"), path.to_owned());
        record.timestamps.last_activity = Some(now() - TimeDelta::days(2000));
        if let Some(class) = class {
            record.attributes.insert("class".into(), class.into());
        }
        record
    };
    assert_eq!(
        broken(&set, &folder("kunder/acme", Some("customer"))),
        ["folders"]
    );
    assert!(broken(&set, &folder("kunder/acme", None)).is_empty());
    assert!(broken(&set, &folder("kunder/arkiv-2019", Some("customer"))).is_empty());
    let mut as_file = file("kunder/acme.pdf", 2000);
    as_file.timestamps.last_activity = Some(now() - TimeDelta::days(2000));
    as_file.attributes.insert("class".into(), "customer".into());
    assert!(broken(&set, &as_file).is_empty(), "kind filter");
}

#[test]
fn the_plan_pushes_an_age_cutoff_down_only_when_every_rule_allows_it() {
    let two = rules(&format!(
        "{STALE_INBOX}\n[[rules]]\nid = \"old\"\nkind = \"max_age\"\npolicy = \"p\"\n\
         max_age = \"1y\"\ngrace = \"10d\"\ntimestamp = \"received\"\n"
    ));
    // The shortest clock (31 days) decides: anything younger breaks neither rule.
    let needs = two.for_source("mail").needs(now());
    assert_eq!(needs.received_before(), Some(now() - TimeDelta::days(31)));
    assert!(needs.windowed_ages);
    assert_ne!(
        needs.plan,
        rules(STALE_INBOX).for_source("mail").needs(now()).plan
    );
    assert_eq!(
        needs.plan,
        two.for_source("mail")
            .needs(now() + TimeDelta::days(1))
            .plan
    );
    let with_modified = rules(&format!(
        "{STALE_INBOX}\n[[rules]]\nid = \"m\"\nkind = \"max_age\"\npolicy = \"p\"\n\
         max_age = \"1y\"\ntimestamp = \"modified\"\n"
    ));
    // A rule that reads another timestamp turns the pushdown off.
    let needs = with_modified.for_source("mail").needs(now());
    assert_eq!(needs.received_before(), None);
    assert_eq!(needs.age_cutoff, Some(now() - TimeDelta::days(31)));
}

#[test]
fn interval_rules_catch_late_and_missing_second_events() {
    let set = rules(
        r#"
[[rules]]
id = "incident-72h"
kind = "max_interval"
policy = "Incidenter ... rapporterar vi till Datainspektionen inom 72 timmar efter upptäckt"
from = "date:detected"
to = "date:reported"
max = "72h"
"#,
    );
    let hours = |h: i64| now() - TimeDelta::hours(h);
    let incident = |detected: Option<i64>, reported: Option<i64>| {
        let mut record = Record::new(
            RecordKind::CrmObject,
            Arc::from("share"),
            "incident/1".into(),
        );
        if let Some(h) = detected {
            record.dates.insert("detected".into(), hours(h));
        }
        if let Some(h) = reported {
            record.dates.insert("reported".into(), hours(h));
        }
        record
    };
    // (hours ago detected, hours ago reported, broken)
    let cases: &[(Option<i64>, Option<i64>, bool)] = &[
        (Some(100), Some(50), false), // reported after 50 h
        (Some(100), Some(28), false), // exactly 72 h later: on time
        (Some(100), Some(27), true),  // 73 h later
        (Some(100), None, true),      // never reported, 100 h on
        (Some(70), None, false),      // not reported yet, still within 72 h
        (None, Some(1), false),       // nothing detected: no clock
    ];
    for (detected, reported, expected) in cases {
        let broken = !broken(&set, &incident(*detected, *reported)).is_empty();
        assert_eq!(
            broken, *expected,
            "detected {detected:?} reported {reported:?}"
        );
    }
    let detail = set
        .for_source("share")
        .evaluate(&incident(Some(100), None), now())
        .pop()
        .expect("violation")
        .detail;
    assert!(
        detail.contains("no reported after 100 h (limit 72h)"),
        "{detail}"
    );
}

#[test]
fn an_attribute_condition_matches_one_item_of_a_list() {
    use crate::checks::attribute_matches;
    assert!(attribute_matches("closed", "closed"));
    assert!(attribute_matches("Closed", "closed"));
    assert!(!attribute_matches("closed", "close"));
    let groups = "cn=staff,ou=lists,dc=example,dc=se;cn=Marketing,ou=lists,dc=example,dc=se";
    assert!(attribute_matches(
        groups,
        "cn=marketing,ou=lists,dc=example,dc=se"
    ));
    assert!(!attribute_matches(
        groups,
        "cn=market,ou=lists,dc=example,dc=se"
    ));
    assert!(!attribute_matches("a;b", "a;"));
}
