//! One date policy: a date without a time means midnight in
//! `daemon.timezone`, the same in every connector and every command. The
//! same bare `YYYY-MM-DD` is given to a CRM over HTTP, a directory over LDAP
//! (slapd, a free-text attribute), the erasure register and `findings
//! --since`, in a time zone far from UTC, with "now" between what the two
//! readings (local midnight, UTC midnight) would decide: every one must
//! decide as local midnight does.
//!
//! The zone is chosen from the hour the test runs at, so that now always
//! lies at least half an hour inside the window the two readings disagree
//! on: Pago Pago (UTC−11) before 10:30 UTC, Kiritimati (UTC+14) after.

mod common;

use chrono::{NaiveDate, TimeDelta, Timelike, Utc};
use common::crm::{Behaviour, CrmServer};
use common::slapd::{SERVICE_DN, SERVICE_PASSWORD, SUFFIX, Slapd};
use common::*;

/// The zone, and a date `max_age` days before which a record is over the
/// limit by local midnight and within it by UTC midnight (`over_locally`),
/// or the other way round.
struct Setting {
    zone: &'static str,
    tz: chrono_tz::Tz,
    /// The date written in every store.
    date: NaiveDate,
    /// Whether a 10-day age rule is broken by local midnight.
    over_locally: bool,
}

const MAX_AGE_DAYS: i64 = 10;

fn setting() -> Setting {
    let now = Utc::now();
    let today = now.date_naive();
    if now.hour() * 60 + now.minute() < 10 * 60 + 30 {
        // UTC−11: local midnight of D is D 11:00Z, later than D 00:00Z. With
        // D + 10 days = today, the UTC reading's deadline (today 00:00Z) has
        // passed, the local one's (today 11:00Z) has not.
        Setting {
            zone: "Pacific/Pago_Pago",
            tz: chrono_tz::Pacific::Pago_Pago,
            date: today - TimeDelta::days(MAX_AGE_DAYS),
            over_locally: false,
        }
    } else {
        // UTC+14: local midnight of D is D−1 10:00Z. With D + 10 days =
        // tomorrow, the local deadline (today 10:00Z) has passed, the UTC
        // one (tomorrow 00:00Z) has not.
        Setting {
            zone: "Pacific/Kiritimati",
            tz: chrono_tz::Pacific::Kiritimati,
            date: today + TimeDelta::days(1 - MAX_AGE_DAYS),
            over_locally: true,
        }
    }
}

#[test]
fn a_bare_date_is_midnight_in_the_daemons_time_zone_everywhere() {
    let setting = setting();
    let date = setting.date.format("%Y-%m-%d").to_string();
    let crm = CrmServer::start(Behaviour {
        items: vec![
            serde_json::json!({"id": "c-1", "closed": date, "contact": date}),
            // Long over the limit whatever the reading: a finding for --since.
            serde_json::json!({"id": "c-0", "closed": "2020-01-01"}),
        ],
        token: "t".into(),
        ..Behaviour::default()
    });
    let directory = Slapd::start_with(
        &[],
        &format!(
            "dn: uid=kund,ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nobjectClass: tillsynContact\n\
             uid: kund\ncn: Kund\nsn: Kund\ncustomerEndText: {date}\n\n"
        ),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::write(root.join("token"), "t\n").expect("token");
    file_at(
        &root.join(format!("share/Arkiv/{date}/avtal.pdf")),
        b"x",
        days_ago(1),
    );
    file_at(
        &root.join("share/Tjanster/utvecklare/TILLSATT.txt"),
        format!("Tillsatt {date}\n").as_bytes(),
        days_ago(1),
    );
    file_at(
        &root.join("share/Tjanster/utvecklare/cv.pdf"),
        b"x",
        days_ago(1),
    );
    std::fs::write(root.join("ldap.pw"), SERVICE_PASSWORD).expect("password");
    std::fs::write(
        root.join("erasure.csv"),
        format!("kind,identifier,date\nemail,kund@kund.se,{date}\n"),
    )
    .expect("register");
    let config = root.join("tillsyn.toml");
    std::fs::write(
        &config,
        format!(
            r#"[daemon]
state_dir = "state"
timezone = "{zone}"

[erasure]
register = "erasure.csv"

[[sources]]
name = "crm"
type = "http"
url = "{crm}"
allow_plaintext = true
auth = {{ bearer_file = "token" }}
id = "/id"
dates = {{ closed = "/closed" }}
last_activity = "/contact"

[[sources]]
name = "share"
type = "fileshare"
root = "share"
path_dates = ["Arkiv/**"]
markers = [{{ file = "TILLSATT.txt", date = "filled" }}]

[[sources]]
name = "directory"
type = "ldap"
url = "ldap://127.0.0.1:{ldap}"
allow_plaintext = true
bind_dn = "{SERVICE_DN}"
password_file = "ldap.pw"
base_dn = "ou=people,{SUFFIX}"
filter = "(objectClass=inetOrgPerson)"
dates = {{ ended = "customerEndText" }}

[[rules]]
id = "closed"
kind = "max_age"
policy = "p"
max_age = "{MAX_AGE_DAYS}d"
timestamp = "date:closed"
when = {{ sources = ["crm"] }}

[[rules]]
id = "contact"
kind = "max_age"
policy = "p"
max_age = "{MAX_AGE_DAYS}d"
timestamp = "last_activity"
when = {{ sources = ["crm"] }}

[[rules]]
id = "archived"
kind = "max_age"
policy = "p"
max_age = "{MAX_AGE_DAYS}d"
timestamp = "date:path_date"
when = {{ sources = ["share"] }}

[[rules]]
id = "filled"
kind = "max_age"
policy = "p"
max_age = "{MAX_AGE_DAYS}d"
timestamp = "date:filled"
when = {{ sources = ["share"] }}

[[rules]]
id = "ended"
kind = "max_age"
policy = "p"
max_age = "{MAX_AGE_DAYS}d"
timestamp = "date:ended"
when = {{ sources = ["directory"] }}
"#,
            zone = setting.zone,
            crm = crm.url(),
            ldap = directory.port,
        ),
    )
    .expect("config");
    let config = config.to_str().expect("utf8");
    let output = tillsyn(&["scan", "--once", "--config", config, "--format", "json"]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    let found = pairs(&json_lines(&output));
    let mut expected = std::collections::BTreeSet::from(["closed:c-0".to_owned()]);
    if setting.over_locally {
        for finding in [
            "closed:c-1".to_owned(),
            "contact:c-1".to_owned(),
            "ended:uid=kund,ou=people,dc=example,dc=se".to_owned(),
            format!("archived:Arkiv/{date}/avtal.pdf"),
            "filled:Tjanster/utvecklare/cv.pdf".to_owned(),
        ] {
            expected.insert(finding);
        }
    }
    assert_exact(&found, &expected);

    // The register: the request is dated local midnight.
    let local_midnight = tillsyn_core::dates::midnight(setting.date, setting.tz).expect("midnight");
    let output = tillsyn(&["erasure", "--json", "--config", config]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    let json: serde_json::Value = serde_json::from_str(
        &stdout
            .split_once('[')
            .map(|(_, rest)| format!("[{rest}"))
            .expect("json"),
    )
    .expect("json");
    let requested = json[0]["requested_at"].as_str().expect("requested_at");
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(requested)
            .expect("time")
            .with_timezone(&Utc),
        local_midnight,
        "{setting_zone}",
        setting_zone = setting.zone
    );

    // `--since`: a day that the scan (just now) falls after by local midnight
    // and before by UTC midnight, or the other way round.
    let local_today = Utc::now().with_timezone(&setting.tz).date_naive();
    let since = if setting.over_locally {
        local_today
    } else {
        local_today + TimeDelta::days(1)
    };
    let since_midnight = tillsyn_core::dates::midnight(since, setting.tz).expect("since");
    let utc_midnight = since.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let now = Utc::now();
    assert_ne!(
        since_midnight <= now,
        utc_midnight <= now,
        "the two readings of --since disagree here"
    );
    let listed = pairs(&json_lines(&tillsyn(&[
        "findings",
        "--all",
        "--since",
        &since.format("%Y-%m-%d").to_string(),
        "--config",
        config,
        "--format",
        "json",
    ])));
    let by_local = if since_midnight <= now {
        expected.clone()
    } else {
        Default::default()
    };
    assert_eq!(listed, by_local, "--since {since} in {}", setting.zone);
}
