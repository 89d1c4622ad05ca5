//! A promise that spans two stores: "unsubscribe, and your address leaves our
//! lists" (P7). The newsletter service (HTTP) says who unsubscribed; the directory
//! (LDAP) still lists them as active customers on the mailing list. Joined by
//! address, whichever source is scanned; a re-subscription resolves exactly its
//! finding; a failed scan changes nothing.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::crm::{Behaviour, CrmServer};
use common::slapd::{Person, SERVICE_DN, SERVICE_PASSWORD, SUFFIX, Slapd};
use common::*;

const TOKEN: &str = "newsletter-token";

fn config(dir: &Path, ldap_port: u16, newsletter: &str, token: &str) -> String {
    std::fs::write(dir.join("ldap.pw"), SERVICE_PASSWORD).expect("pw");
    std::fs::write(dir.join("token"), token).expect("token");
    let text = format!(
        r#"[daemon]
state_dir = "state"

[[sources]]
name = "directory"
type = "ldap"
url = "ldap://127.0.0.1:{ldap_port}"
allow_plaintext = true
bind_dn = "{SERVICE_DN}"
password_file = "ldap.pw"
base_dn = "ou=people,{SUFFIX}"
filter = "(objectClass=inetOrgPerson)"
attributes = {{ email = "mail", status = "customerStatus" }}
identifiers = {{ email = "email" }}

[[sources]]
name = "newsletter"
type = "http"
url = "{newsletter}"
allow_plaintext = true
auth = {{ bearer_file = "token" }}
pagination = {{ type = "page", size = 50 }}
kind = "contact"
id = "/id"
attributes = {{ email = "/email", status = "/status" }}
identifiers = {{ email = "email" }}
attempts = 1

[[rules]]
id = "P7-unsubscribed-still-listed"
kind = "conflict"
policy = "Du kan när som helst avprenumerera från nyhetsbrevet, och din e-post försvinner då från våra listor"
when = {{ sources = ["directory"], attributes = {{ status = "active" }} }}
marked_by = {{ sources = ["newsletter"], attributes = {{ status = "unsubscribed" }} }}
key = "email"
"#
    );
    let path = dir.join("tillsyn.toml");
    std::fs::write(&path, text).expect("config");
    path.to_str().expect("utf8").to_owned()
}

fn scan(config: &str, source: &str) -> std::process::Output {
    tillsyn(&["scan", "--once", "--config", config, "--source", source])
}

fn open(config: &str) -> BTreeSet<String> {
    pairs(&json_lines(&tillsyn(&[
        "findings", "--open", "--config", config, "--format", "json",
    ])))
}

#[test]
fn unsubscribed_people_still_on_the_list_are_found_across_sources() {
    // 300 people; every 100th is a former customer (not on the list).
    let people: Vec<Person> = (0..300)
        .map(|n| Person {
            uid: format!("p{n}"),
            status: if n % 100 == 0 { "former" } else { "active" },
            ended: None,
            opt_out: false,
        })
        .collect();
    let directory = Slapd::start(&people);
    // The newsletter writes addresses its own way; every 20th unsubscribed, plus
    // two unsubscribed addresses the directory does not know.
    let mut members: Vec<serde_json::Value> = (0..300)
        .map(|n| {
            serde_json::json!({
                "id": format!("m{n}"),
                "email": format!(" P{n}@Kund.SE "),
                "status": if n % 20 == 0 { "unsubscribed" } else { "subscribed" },
            })
        })
        .collect();
    for ghost in ["ghost1@kund.se", "ghost2@kund.se"] {
        members.push(serde_json::json!({ "id": ghost, "email": ghost, "status": "unsubscribed" }));
    }
    let newsletter = CrmServer::start(Behaviour {
        items: members,
        token: TOKEN.into(),
        ..Behaviour::default()
    });
    let planted: BTreeSet<String> = (0..300)
        .filter(|n| n % 20 == 0 && n % 100 != 0)
        .map(|n| format!("P7-unsubscribed-still-listed:uid=p{n},ou=people,{SUFFIX}"))
        .collect();
    assert_eq!(planted.len(), 12);

    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path(), directory.port, &newsletter.url(), TOKEN);
    let check = tillsyn(&["check-config", "--config", &config]);
    assert_eq!(check.status.code(), Some(0), "{:?}", text(&check));

    // The directory alone: nobody is marked yet.
    assert_eq!(scan(&config, "directory").status.code(), Some(0));
    assert!(open(&config).is_empty());
    // The newsletter: the join finds exactly the planted people.
    let output = scan(&config, "newsletter");
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    assert_exact(&open(&config), &planted);
    // Scanning the directory again keeps them (its side is judged again too).
    assert_eq!(scan(&config, "directory").status.code(), Some(0));
    assert_exact(&open(&config), &planted);

    // p40 subscribes again: exactly that finding resolves.
    {
        let mut behaviour = newsletter.behaviour.lock().expect("lock");
        behaviour.items[40]["status"] = serde_json::json!("subscribed");
    }
    let output = scan(&config, "newsletter");
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    let mut expected = planted.clone();
    expected.remove(&format!(
        "P7-unsubscribed-still-listed:uid=p40,ou=people,{SUFFIX}"
    ));
    assert_exact(&open(&config), &expected);

    // A failed newsletter scan changes nothing, on either side.
    let broken = config_with_token(dir.path(), directory.port, &newsletter.url());
    assert_eq!(scan(&broken, "newsletter").status.code(), Some(2));
    assert_exact(&open(&broken), &expected);
    assert_eq!(scan(&broken, "directory").status.code(), Some(0));
    assert_exact(&open(&broken), &expected);
}

fn config_with_token(dir: &Path, port: u16, url: &str) -> String {
    config(dir, port, url, "wrong-token")
}
