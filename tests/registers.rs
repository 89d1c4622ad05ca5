//! Promises checked in CRMs and registers over HTTP: a marketing block ignored by
//! the marketing list (P10, joined across two endpoints) and incidents not reported
//! within 72 hours of detection (P14), each found exactly.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::crm::{Behaviour, CrmServer};
use common::*;

const TOKEN: &str = "register-token";

fn http_source(name: &str, url: &str, extra: &str) -> String {
    format!(
        "[[sources]]\nname = \"{name}\"\ntype = \"http\"\nurl = \"{url}\"\nallow_plaintext = true\n\
         auth = {{ bearer_file = \"token\" }}\npagination = {{ type = \"page\", size = 40 }}\nid = \"/id\"\n\
         attempts = 1\n{extra}\n"
    )
}

fn write(dir: &Path, body: &str) -> String {
    std::fs::write(dir.join("token"), TOKEN).expect("token");
    let path = dir.join("tillsyn.toml");
    std::fs::write(&path, format!("[daemon]\nstate_dir = \"state\"\n\n{body}")).expect("config");
    path.to_str().expect("utf8").to_owned()
}

fn open(config: &str) -> BTreeSet<String> {
    pairs(&json_lines(&tillsyn(&[
        "findings", "--open", "--config", config, "--format", "json",
    ])))
}

#[test]
fn marketing_to_people_who_asked_for_a_block_is_found() {
    // The CRM: every 7th contact asked for a direct-marketing block.
    let contacts: Vec<serde_json::Value> = (0..120)
        .map(|n| {
            serde_json::json!({
                "id": format!("c{n}"),
                "email": format!("kontakt{n}@kund.se"),
                "direct_marketing_block": n % 7 == 0,
            })
        })
        .collect();
    // The marketing list: the even-numbered contacts, written in capitals.
    let members: Vec<serde_json::Value> = (0..120)
        .filter(|n| n % 2 == 0)
        .map(|n| serde_json::json!({ "id": format!("m{n}"), "email": format!("KONTAKT{n}@KUND.SE") }))
        .collect();
    let planted: BTreeSet<String> = (0..120)
        .filter(|n| n % 2 == 0 && n % 7 == 0)
        .map(|n| format!("P10-marketing-despite-block:m{n}"))
        .collect();
    let crm = CrmServer::start(Behaviour {
        items: contacts,
        token: TOKEN.into(),
        ..Behaviour::default()
    });
    let list = CrmServer::start(Behaviour {
        items: members,
        token: TOKEN.into(),
        ..Behaviour::default()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write(
        dir.path(),
        &format!(
            "{}{}{}",
            http_source(
                "crm",
                &crm.url(),
                "kind = \"contact\"\nattributes = { email = \"/email\", marketing_block = \"/direct_marketing_block\" }"
            ),
            http_source(
                "marketing",
                &list.url(),
                "kind = \"contact\"\nattributes = { email = \"/email\" }"
            ),
            r#"[[rules]]
id = "P10-marketing-despite-block"
kind = "conflict"
policy = "om direktreklamspärr inte har begärts"
when = { sources = ["marketing"] }
marked_by = { sources = ["crm"], attributes = { marketing_block = "true" } }
key = "email"
"#
        ),
    );
    let output = tillsyn(&["scan", "--once", "--config", &config]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    assert_eq!(planted.len(), 9);
    assert_exact(&open(&config), &planted);
}

#[test]
fn incidents_not_reported_within_72_hours_are_found() {
    let hours_ago = |h: i64| (chrono::Utc::now() - chrono::TimeDelta::hours(h)).to_rfc3339();
    let mut planted = BTreeSet::new();
    let incidents: Vec<serde_json::Value> = (0..60)
        .map(|n| {
            let id = format!("inc-{n}");
            let (detected, reported): (i64, Option<i64>) = match n % 6 {
                0 => (200, Some(100)), // reported after 100 h: late
                1 => (200, Some(130)), // after 70 h: on time
                2 => (100, None),      // not reported, 100 h on: late
                3 => (50, None),       // not reported yet, within 72 h
                4 => (500, Some(429)), // after 71 h: on time
                _ => (500, Some(420)), // after 80 h: late
            };
            if matches!(n % 6, 0 | 2 | 5) {
                planted.insert(format!("P14-incident-reported:{id}"));
            }
            serde_json::json!({
                "id": id,
                "detected_at": hours_ago(detected),
                "reported_at": reported.map(hours_ago),
            })
        })
        .collect();
    let register = CrmServer::start(Behaviour {
        items: incidents,
        token: TOKEN.into(),
        ..Behaviour::default()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write(
        dir.path(),
        &format!(
            "{}{}",
            http_source(
                "incidents",
                &register.url(),
                "dates = { detected = \"/detected_at\", reported = \"/reported_at\" }"
            ),
            r#"[[rules]]
id = "P14-incident-reported"
kind = "max_interval"
policy = "Incidenter gällande personuppgifter hos Invex AB rapporterar vi till Datainspektionen inom 72 timmar efter upptäckt."
from = "date:detected"
to = "date:reported"
max = "72h"
"#
        ),
    );
    let output = tillsyn(&["scan", "--once", "--config", &config, "--format", "json"]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    assert_exact(&pairs(&json_lines(&output)), &planted);
}
