//! Active Directory over LDAP, against Samba's domain controller on loopback:
//! accounts disabled in `userAccountControl`, expiry in `accountExpires`
//! (FILETIME, with its two "never"s), lists read from `memberOf` and from a
//! group of 1,605 members, group conditions spelled as people write DNs, and
//! `objectGUID` as the id that follows an entry when it is renamed.

mod common;

use std::collections::BTreeSet;

use common::samba::{ADMIN_DN, ADMIN_PASSWORD, BASE, SambaAd};
use common::*;

/// FILETIME (100 ns ticks since 1601) of `days_ago`.
fn filetime(days_ago: i64) -> String {
    let unix = (chrono::Utc::now() - chrono::TimeDelta::days(days_ago)).timestamp();
    ((unix + 11_644_473_600) * 10_000_000).to_string()
}

fn person(cn: &str) -> String {
    format!("CN={cn},OU=People,{BASE}")
}

/// (cn, userAccountControl, accountExpires, on the big list)
fn people() -> Vec<(&'static str, u32, String, bool)> {
    vec![
        // Disabled, expired 200 days ago, on the list: both rules.
        ("u-left-long", 514, filetime(200), true),
        // Disabled, expired ten days ago: within the promise.
        ("u-left-recent", 514, filetime(10), true),
        // Expired long ago but still enabled: not "left".
        ("u-enabled-expired", 512, filetime(200), true),
        // Disabled, never expiring (0 and the maximum).
        ("u-never", 514, "0".into(), true),
        ("u-never-max", 514, "9223372036854775807".into(), true),
        // Disabled and expired, but on no list.
        ("u-off-list", 514, filetime(300), false),
    ]
}

fn directory() -> String {
    let mut ldif = format!(
        "dn: OU=People,{BASE}\nobjectClass: organizationalUnit\n\n\
         dn: OU=Lists,{BASE}\nobjectClass: organizationalUnit\n\n\
         dn: OU=Filler,{BASE}\nobjectClass: organizationalUnit\n\n"
    );
    let mut members = String::new();
    for n in 0..1600 {
        ldif.push_str(&format!(
            "dn: CN=c{n:04},OU=Filler,{BASE}\nobjectClass: contact\n\n"
        ));
        members.push_str(&format!("member: CN=c{n:04},OU=Filler,{BASE}\n"));
    }
    for (cn, control, expires, listed) in people() {
        ldif.push_str(&format!(
            "dn: {}\nobjectClass: user\nsAMAccountName: {cn}\nmail: {cn}@firma.se\n\
             userAccountControl: {control}\naccountExpires: {expires}\n\n",
            person(cn)
        ));
        if listed {
            members.push_str(&format!("member: {}\n", person(cn)));
        }
    }
    ldif.push_str(&format!(
        "dn: CN=Big-List,OU=Lists,{BASE}\nobjectClass: group\nsAMAccountName: big-list\n{members}\n"
    ));
    ldif
}

/// An LDAP source on the test DC, reading the people (after `type = "ldap"`
/// and the connection: `extra` lines of its own).
fn ad_source(name: &str, extra: &str) -> String {
    format!(
        r#"[[sources]]
name = "{name}"
type = "ldap"
url = "ldap://127.0.0.1:389"
allow_plaintext = true
bind_dn = "{ADMIN_DN}"
password_file = "ad.pw"
base_dn = "OU=People,{BASE}"
filter = "(objectClass=user)"
dates = {{ expires = {{ attribute = "accountExpires", format = "filetime" }} }}
{extra}
"#
    )
}

/// Accounts disabled (bit 2 of userAccountControl) whose expiry is more than
/// 90 days past, in the sources named, with `condition` (TOML) besides.
fn expired_rule(id: &str, sources: &str, condition: &str) -> String {
    format!(
        r#"[[rules]]
id = "{id}"
kind = "max_age"
policy = "Konton för personer som slutat tas bort inom 90 dagar."
max_age = "90d"
timestamp = "date:expires"
when = {{ {sources}attributes = {{ disabled = "true"{condition} }} }}
"#
    )
}

fn config(dir: &std::path::Path) -> String {
    std::fs::write(dir.join("ad.pw"), format!("{ADMIN_PASSWORD}\n")).expect("password");
    // The list spelled as people write it: another case, spaces after commas.
    let list = "cn=big-list, ou=lists, dc=TILLSYN, dc=test";
    let disabled = r#"disabled = { attribute = "userAccountControl", flag = 2 }"#;
    let text = [
        "[daemon]\nstate_dir = \"state\"\n".to_owned(),
        ad_source(
            "ad",
            &format!(
                "page_size = 1000\nid_attribute = \"objectGUID\"\nattributes = {{ {disabled}, lists = \"memberOf\" }}"
            ),
        ),
        ad_source(
            "ad-groups",
            &format!(
                "attributes = {{ {disabled} }}\ngroup_base_dn = \"OU=Lists,{BASE}\"\ngroup_filter = \"(objectClass=group)\""
            ),
        ),
        expired_rule("expired-accounts", "sources = [\"ad\"], ", ""),
        expired_rule("expired-on-list", "", &format!(", lists = \"{list}\"")),
        expired_rule("expired-in-group", "", &format!(", groups = \"{list}\"")),
    ]
    .join("\n");
    let path = dir.join("tillsyn.toml");
    std::fs::write(&path, text).expect("config");
    path.to_str().expect("utf8").to_owned()
}

fn open(config: &str) -> Vec<serde_json::Value> {
    json_lines(&tillsyn(&[
        "findings", "--open", "--config", config, "--format", "json",
    ]))
}

#[test]
fn active_directory_accounts_lists_and_ids_as_ad_keeps_them() {
    let server = SambaAd::start(&directory());
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path());
    let output = tillsyn(&["scan", "--once", "--config", &config]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("PARTIAL"), "{stderr}");
    assert_eq!(work(&stderr, "groups_read"), 1, "{stderr}");
    let dn = |cn: &str| person(cn).to_lowercase();
    let planted = BTreeSet::from([
        format!("expired-accounts:{}", dn("u-left-long")),
        format!("expired-accounts:{}", dn("u-off-list")),
        format!("expired-on-list:{}", dn("u-left-long")),
        format!("expired-in-group:{}", dn("u-left-long")),
    ]);
    let found = open(&config);
    assert_exact(&pairs(&found), &planted);

    // Renamed in the directory: the finding keyed by objectGUID stays the
    // same finding (first seen unchanged), now shown at the new DN.
    let before = found
        .iter()
        .find(|finding| {
            finding["rule"] == "expired-accounts" && finding["record"] == dn("u-left-long")
        })
        .cloned()
        .expect("finding");
    server.modify(&format!(
        "dn: {}\nchangetype: modrdn\nnewrdn: CN=u-left-long-renamed\ndeleteoldrdn: 1\n",
        person("u-left-long")
    ));
    let output = tillsyn(&["scan", "--once", "--config", &config]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    let after = open(&config);
    let renamed = after
        .iter()
        .find(|finding| {
            finding["rule"] == "expired-accounts" && finding["record"] == dn("u-left-long-renamed")
        })
        .expect("the renamed account's finding");
    assert_eq!(renamed["id"], before["id"], "{renamed}");
    assert_eq!(renamed["first_seen"], before["first_seen"]);
    assert!(
        !pairs(&after).contains(&format!("expired-accounts:{}", dn("u-left-long"))),
        "{after:?}"
    );
    // The group read by DN (no objectGUID on that source): its finding moves.
    assert!(pairs(&after).contains(&format!("expired-in-group:{}", dn("u-left-long-renamed"))));

    // Incremental rescans by uSNChanged against this controller.
    let incremental = dir.path().join("incremental");
    std::fs::create_dir_all(&incremental).expect("dir");
    std::fs::write(incremental.join("ad.pw"), format!("{ADMIN_PASSWORD}\n")).expect("password");
    let config = incremental.join("tillsyn.toml");
    std::fs::write(
        &config,
        [
            "[daemon]\nstate_dir = \"state\"\n".to_owned(),
            ad_source(
                "ad",
                "id_attribute = \"objectGUID\"\nincremental_full_every_hours = 24\n\
                 attributes = { disabled = { attribute = \"userAccountControl\", flag = 2 } }",
            ),
            expired_rule("expired-accounts", "", ""),
        ]
        .join("\n"),
    )
    .expect("config");
    let config = config.to_str().expect("utf8").to_owned();
    let scan = || scan_ok(&config);
    let expected = |cns: &[&str]| -> BTreeSet<String> {
        cns.iter()
            .map(|cn| format!("expired-accounts:{}", dn(cn)))
            .collect()
    };
    let full = scan();
    assert_eq!(work(&full, "entries_read"), 6, "{full}");
    assert_exact(
        &pairs(&open(&config)),
        &expected(&["u-left-long-renamed", "u-off-list"]),
    );
    let unchanged = scan();
    assert_eq!(work(&unchanged, "entries_read"), 0, "{unchanged}");
    assert_eq!(work(&unchanged, "incremental"), 1, "{unchanged}");
    // One account's expiry moves back 150 days: only it is read, and found.
    server.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: accountExpires\naccountExpires: {}\n",
        person("u-left-recent"),
        filetime(150)
    ));
    let changed = scan();
    assert_eq!(work(&changed, "entries_read"), 1, "{changed}");
    assert_exact(
        &pairs(&open(&config)),
        &expected(&["u-left-long-renamed", "u-off-list", "u-left-recent"]),
    );
    // Numbers from another controller are not this one's: a full read.
    open_store(&incremental.join("state"))
        .execute(
            "UPDATE checkpoints SET value = replace(value, '\"invocation\":\"', '\"invocation\":\"another-') WHERE key = 'ldap'",
            [],
        )
        .expect("checkpoint");
    let other = scan();
    assert_eq!(work(&other, "entries_read"), 6, "{other}");
    assert_eq!(work(&other, "incremental"), 0, "{other}");
}
