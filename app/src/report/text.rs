//! How the report writes things: record places without people, rates,
//! numbers grouped as the language writes them, signed changes, dates.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tillsyn_core::language::Language;
use tillsyn_store::OpenAt;

/// The place of a record within its source, without naming anyone: the mail
/// folder (not the account), a file's top folder, a directory entry's parent;
/// nothing for a CRM item.
pub fn location(kind: &str, path: &str) -> String {
    match kind {
        "message" => {
            let parts: Vec<&str> = path.split('/').collect();
            if parts.len() >= 3 {
                parts[1..parts.len() - 1].join("/")
            } else {
                String::new()
            }
        }
        "file" | "folder" => match path.split_once('/') {
            Some((top, _)) => top.to_owned(),
            None => String::new(),
        },
        "contact" => path
            .split_once(',')
            .map(|(_, parent)| parent.trim().to_owned())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// What is in breach of one promise: records, and the custodians holding them.
#[derive(Debug, Clone, Copy)]
pub(super) struct Breach {
    pub(super) records: u64,
    pub(super) custodians: u64,
}

/// "19,613 of 21,224 messages (92 %) in 6 of 9 mailboxes", in `language`,
/// naming what the sources of `kinds` hold. `None` when nothing was counted,
/// or the counts cannot stand together (more in breach than checked).
pub(super) fn rate_text(
    language: Language,
    breach: Breach,
    checked: &tillsyn_rules::checked::Checked,
    kinds: &BTreeSet<&str>,
) -> Option<String> {
    if checked.records == 0 || breach.records > checked.records {
        return None;
    }
    let mail = !kinds.is_empty() && kinds.iter().all(|kind| matches!(*kind, "imap" | "maildir"));
    let only = |kind: &str| kinds.len() == 1 && kinds.contains(kind);
    let (records, custodians) = match language {
        Language::En => (
            if mail {
                "messages"
            } else if only("fileshare") {
                "files"
            } else if only("ldap") {
                "directory entries"
            } else if only("http") {
                "items"
            } else {
                "records"
            },
            if mail { "mailboxes" } else { "custodians" },
        ),
        Language::Sv => (
            if mail {
                "meddelanden"
            } else if only("fileshare") {
                "filer"
            } else if only("ldap") {
                "katalogposter"
            } else {
                "poster"
            },
            if mail { "brevlådor" } else { "ansvariga" },
        ),
    };
    let share = breach.records as f64 * 100.0 / checked.records as f64;
    let percent = match share {
        share if share > 0.0 && share < 1.0 => "<1".to_owned(),
        share if share > 99.0 && share < 100.0 => ">99".to_owned(),
        share => format!("{share:.0}"),
    };
    let number = |value: u64| thousands(value, language);
    let (of, at_least, among) = match language {
        Language::En => ("of", "at least ", "in"),
        Language::Sv => ("av", "minst ", "hos"),
    };
    let at_least = if checked.complete { "" } else { at_least };
    let mut text = format!(
        "{} {of} {at_least}{} {records} ({percent} %)",
        number(breach.records),
        number(checked.records)
    );
    if checked.custodians > 0 && breach.custodians <= checked.custodians {
        text.push_str(&format!(
            " {among} {} {of} {} {custodians}",
            number(breach.custodians),
            number(checked.custodians)
        ));
    }
    Some(text)
}

/// `value` with its thousands grouped as `language` writes them: 21,224 or
/// 21 224.
pub(super) fn thousands(value: u64, language: Language) -> String {
    let separator = match language {
        Language::En => ',',
        Language::Sv => '\u{a0}',
    };
    let digits = value.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(separator);
        }
        grouped.push(digit);
    }
    grouped
}

pub(super) fn signed(change: i64) -> String {
    match change {
        0 => "±0".to_owned(),
        change if change > 0 => format!("+{change}"),
        change => format!("−{}", change.unsigned_abs()),
    }
}

/// What a finding measured, in `language` when it has it as data (older
/// findings have only the English text).
pub(super) fn detail_in(finding: &OpenAt, language: Language) -> String {
    finding
        .detail_data
        .as_deref()
        .and_then(tillsyn_core::detail::Detail::from_json)
        .map_or_else(|| finding.detail.clone(), |data| data.render(language))
}

pub(super) fn local_date(time: DateTime<Utc>, zone: Tz) -> String {
    time.with_timezone(&zone).format("%Y-%m-%d").to_string()
}
