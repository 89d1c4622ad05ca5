//! The report's own unit tests: months, places and signs.

use super::text::signed;
use super::*;
use chrono_tz::Tz;
use tillsyn_core::language::Language;

#[test]
fn months_parse_and_step() {
    let october: Month = "2026-10".parse().unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(october.to_string(), "2026-10");
    assert_eq!(october.next().next().next().to_string(), "2027-01");
    assert_eq!(
        "2026-01"
            .parse::<Month>()
            .map(Month::previous)
            .map(|m| m.to_string()),
        Ok("2025-12".into())
    );
    for bad in ["2026-13", "2026-0", "26-10", "2026/10", "2026-10-01", ""] {
        assert!(bad.parse::<Month>().is_err(), "{bad:?} accepted");
    }
}

#[test]
fn month_bounds_follow_the_time_zone() {
    let zone: Tz = chrono_tz::Europe::Stockholm;
    let october: Month = "2026-10".parse().unwrap_or_else(|e| unreachable!("{e}"));
    // 1 October 00:00 CEST is 30 September 22:00 UTC; 1 November 00:00 CET is
    // 31 October 23:00 UTC.
    assert_eq!(
        october.start(zone).to_rfc3339(),
        "2026-09-30T22:00:00+00:00"
    );
    assert_eq!(october.end(zone).to_rfc3339(), "2026-10-31T23:00:00+00:00");
    assert_eq!(october.name(Language::Sv), "oktober 2026");
    assert_eq!(october.name(Language::En), "October 2026");
}

#[test]
fn locations_name_places_not_people() {
    assert_eq!(location("message", "anna@firma.se/INBOX/123"), "INBOX");
    assert_eq!(
        location("message", "anna@firma.se/Arkiv/2024/9"),
        "Arkiv/2024"
    );
    assert_eq!(location("file", "HR/Anna Andersson/cv.pdf"), "HR");
    assert_eq!(location("file", "a.txt"), "");
    assert_eq!(
        location("contact", "cn=Anna Andersson,ou=people,dc=firma,dc=se"),
        "ou=people,dc=firma,dc=se"
    );
    assert_eq!(location("crm_object", "case-17"), "");
}

#[test]
fn changes_are_signed() {
    assert_eq!(signed(0), "±0");
    assert_eq!(signed(4), "+4");
    assert_eq!(signed(-2), "−2");
}
