//! The HTTP connector against a CRM-like server on loopback: closed cases kept past
//! 30 days (P4) and support history past 36 months (P6) found exactly through
//! paging, 429 and 500 tried again, and a malformed page, an item without its id or
//! a refused token failing the scan by name without resolving anything or showing
//! the token.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::crm::{Behaviour, CrmServer, Next};
use common::*;

const TOKEN: &str = "crm-token-7f3a9";

const RULES: &str = r#"
[[rules]]
id = "P4-closed-cases"
kind = "max_age"
policy = "När ett ärende är avklarat ska personinformationen raderas eller anonymiseras"
max_age = "30d"
timestamp = "date:closed"
when = { sources = ["crm"], attributes = { status = "closed" } }

[[rules]]
id = "P6-support-history"
kind = "max_age"
policy = "Ärendehistorik från sälj- och supportärenden raderas efter maximalt 36 månader från kontakten."
max_age = "36 months"
timestamp = "last_activity"
when = { sources = ["crm"] }
"#;

fn days_ago(days: i64) -> String {
    (chrono::Utc::now() - chrono::TimeDelta::days(days)).to_rfc3339()
}

/// 250 cases over three pages of 100.
fn cases() -> (Vec<serde_json::Value>, BTreeSet<String>) {
    let mut planted = BTreeSet::new();
    let items = (0..250)
        .map(|n| {
            let id = format!("case-{n}");
            let (status, closed) = match n % 10 {
                0 => ("closed", Some(days_ago(45))),
                5 => ("closed", Some(days_ago(20))),
                7 => ("open", None),
                _ => ("closed", Some(days_ago(3))),
            };
            if n % 10 == 0 {
                planted.insert(format!("P4-closed-cases:{id}"));
            }
            let last_contact = match n % 25 {
                3 => days_ago(40 * 31),
                4 => days_ago(35 * 30),
                _ => days_ago(10),
            };
            if n % 25 == 3 {
                planted.insert(format!("P6-support-history:{id}"));
            }
            serde_json::json!({
                "id": id,
                "contact": { "email": format!("kund{n}@kund.se") },
                "status": status,
                "closed_at": closed,
                "last_contact": last_contact,
            })
        })
        .collect();
    (items, planted)
}

fn write_config(dir: &Path, url: &str, token: &str) -> String {
    std::fs::write(dir.join("crm.token"), format!("{token}\n")).expect("token");
    let text = format!(
        "[daemon]\nstate_dir = \"state\"\n\n[[sources]]\nname = \"crm\"\ntype = \"http\"\nurl = \"{url}\"\n\
         allow_plaintext = true\nauth = {{ bearer_file = \"crm.token\" }}\nitems = \"/items\"\n\
         pagination = {{ type = \"page\", size = 100 }}\nid = \"/id\"\ncustodian = \"/contact/email\"\n\
         attributes = {{ status = \"/status\" }}\ndates = {{ closed = \"/closed_at\" }}\n\
         last_activity = \"/last_contact\"\ntimeout_seconds = 5\nattempts = 3\n{RULES}"
    );
    let path = dir.join("tillsyn.toml");
    std::fs::write(&path, text).expect("config");
    path.to_str().expect("utf8").to_owned()
}

fn open_findings(config: &str) -> BTreeSet<String> {
    pairs(&json_lines(&tillsyn(&[
        "findings", "--open", "--config", config, "--format", "json",
    ])))
}

#[test]
fn pages_through_retries_and_finds_exactly_the_planted_cases() {
    let (items, planted) = cases();
    let server = CrmServer::start(Behaviour {
        items,
        token: TOKEN.into(),
        faults: vec![(2, 429), (3, 500)],
        ..Behaviour::default()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &server.url(), TOKEN);
    let output = tillsyn(&["scan", "--once", "--config", &config, "--format", "json"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("250 records") && stderr.contains("retries 2"),
        "{stderr}"
    );
    assert_exact(&pairs(&json_lines(&output)), &planted);
    assert!(!stdout.contains(TOKEN) && !stderr.contains(TOKEN));
    let behaviour = server.behaviour.lock().expect("lock");
    // Page 3 is short, yet only the empty page 4 ends the read: a short page is
    // no end signal (servers cap page sizes).
    assert_eq!(behaviour.requested, [1, 2, 2, 3, 3, 4]);
    assert!(
        behaviour
            .authorizations
            .iter()
            .all(|a| a == &format!("Bearer {TOKEN}"))
    );
}

#[test]
fn a_bad_page_a_missing_id_or_a_refused_token_fails_by_name_and_resolves_nothing() {
    let (items, planted) = cases();
    let server = CrmServer::start(Behaviour {
        items,
        token: TOKEN.into(),
        ..Behaviour::default()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &server.url(), TOKEN);
    assert_eq!(
        tillsyn(&["scan", "--once", "--config", &config])
            .status
            .code(),
        Some(0)
    );

    let check = |config: &str, words: &[&str], case: &str| {
        let output = tillsyn(&["scan", "--once", "--config", config]);
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(2), "{case}: {stderr}");
        for word in words {
            assert!(
                stderr.contains(word),
                "{case}: {word:?} missing in {stderr}"
            );
        }
        assert!(
            !stdout.contains(TOKEN) && !stderr.contains(TOKEN),
            "{case}: token shown"
        );
        assert!(!stderr.contains("wrong-token"), "{case}: token shown");
        assert_exact(&open_findings(config), &planted);
    };

    server.behaviour.lock().expect("lock").malformed_pages = vec![2];
    check(
        &config,
        &["FAILED", "page 2", "not JSON", "/api/cases"],
        "malformed page",
    );

    {
        let mut behaviour = server.behaviour.lock().expect("lock");
        behaviour.malformed_pages.clear();
        if let Some(item) = behaviour.items.get_mut(230) {
            item.as_object_mut().expect("object").remove("id");
        }
    }
    check(&config, &["page 3", "item 30 has no /id"], "missing id");

    let wrong = write_config(dir.path(), &server.url(), "wrong-token");
    check(
        &wrong,
        &["page 1", "refused the credentials"],
        "wrong token",
    );
}

#[test]
fn a_slow_page_times_out_is_tried_again_and_a_stuck_one_fails_the_scan() {
    let (items, planted) = cases();
    let server = CrmServer::start(Behaviour {
        items,
        token: TOKEN.into(),
        slow_pages: vec![(2, 3)],
        ..Behaviour::default()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &server.url(), TOKEN);
    let config_text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        config_text.replace("timeout_seconds = 5", "timeout_seconds = 1"),
    )
    .expect("config");
    let output = tillsyn(&["scan", "--once", "--config", &config, "--format", "json"]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("retries 1"), "{stderr}");
    assert_exact(&pairs(&json_lines(&output)), &planted);

    // Slow at every try: the scan fails by name and resolves nothing.
    server.behaviour.lock().expect("lock").slow_pages = vec![(3, 3), (3, 3), (3, 3)];
    let output = tillsyn(&["scan", "--once", "--config", &config]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("page 3") && stderr.contains("after 3 tries"),
        "{stderr}"
    );
    assert_exact(&open_findings(&config), &planted);
}

#[test]
fn incremental_rescans_ask_only_for_changes_and_a_full_read_resolves_deleted_items() {
    let (mut items, mut planted) = cases();
    // Each case last changed at its own second, ten days ago.
    let base = chrono::Utc::now() - chrono::TimeDelta::days(10);
    for (n, item) in items.iter_mut().enumerate() {
        let changed = base + chrono::TimeDelta::seconds(n as i64);
        item["updated_at"] = changed.to_rfc3339().into();
    }
    let server = CrmServer::start(Behaviour {
        items,
        token: TOKEN.into(),
        ..Behaviour::default()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &server.url(), TOKEN);
    let text_incremental = std::fs::read_to_string(&config).expect("config").replace(
        "attempts = 3\n",
        "attempts = 3\nincremental = { field = \"/updated_at\", full_every_hours = 24 }\n",
    );
    std::fs::write(&config, text_incremental).expect("config");
    let scan = |records: u64| {
        server.behaviour.lock().expect("lock").requested.clear();
        let output = tillsyn(&["scan", "--once", "--config", &config]);
        let (_, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        assert!(stderr.contains(&format!(", {records} records")), "{stderr}");
        stderr
    };

    let first = scan(250);
    assert!(!first.contains("incremental"), "{first}");
    assert_exact(&open_findings(&config), &planted);

    // Nothing changed: one page with the newest case only (the API's
    // `updated_since` includes its bound); every finding stays.
    let unchanged = scan(1);
    assert!(unchanged.contains("incremental 1"), "{unchanged}");
    assert_eq!(server.behaviour.lock().expect("lock").requested, [1, 2]);
    assert_exact(&open_findings(&config), &planted);

    // case-0 is reopened (its finding resolves), case-3 turns out closed 60 days
    // ago (a new finding), case-10 is deleted (carried until a full read).
    let now = chrono::Utc::now().to_rfc3339();
    {
        let mut behaviour = server.behaviour.lock().expect("lock");
        behaviour.items[0]["status"] = "open".into();
        behaviour.items[0]["closed_at"] = serde_json::Value::Null;
        behaviour.items[0]["updated_at"] = now.clone().into();
        behaviour.items[3]["closed_at"] = days_ago(60).into();
        behaviour.items[3]["updated_at"] = now.into();
        behaviour.items.remove(10);
    }
    scan(3);
    planted.remove("P4-closed-cases:case-0");
    planted.insert("P4-closed-cases:case-3".into());
    assert_exact(&open_findings(&config), &planted);

    // The last full read "25 hours ago": everything is read, case-10 resolves.
    backdate_full_read(&dir.path().join("state"), "http");
    let full = scan(249);
    assert!(!full.contains("incremental"), "{full}");
    planted.remove("P4-closed-cases:case-10");
    assert_exact(&open_findings(&config), &planted);
}

/// `config` with its pagination line replaced by `pagination`.
fn with_pagination(config: &str, pagination: &str) {
    let text = std::fs::read_to_string(config).expect("config").replace(
        "pagination = { type = \"page\", size = 100 }",
        &format!("pagination = {pagination}"),
    );
    std::fs::write(config, text).expect("config");
}

/// The planted cases on a CRM server behaving as `behaviour` says (its items
/// and token filled in), a folder and a config reading it.
fn planted_crm(behaviour: Behaviour) -> (CrmServer, tempfile::TempDir, String, BTreeSet<String>) {
    let (items, planted) = cases();
    let server = CrmServer::start(Behaviour {
        items,
        token: TOKEN.into(),
        ..behaviour
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &server.url(), TOKEN);
    (server, dir, config, planted)
}

#[test]
fn a_server_that_caps_its_page_size_is_read_to_the_end() {
    let (server, _dir, config, planted) = planted_crm(Behaviour {
        cap_per_page: Some(40),
        ..Behaviour::default()
    });
    // Asked for 100 a page, given 40: the first page is short, yet not the end.
    let output = tillsyn(&["scan", "--once", "--config", &config, "--format", "json"]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("crm: scanned, 250 records"), "{stderr}");
    assert_exact(&pairs(&json_lines(&output)), &planted);
    assert_eq!(
        server.behaviour.lock().expect("lock").requested,
        [1, 2, 3, 4, 5, 6, 7, 8],
        "seven pages of 40, then the empty page that ends it"
    );

    // With the total the body announces, the read stops once it is reached.
    server.behaviour.lock().expect("lock").requested.clear();
    with_pagination(
        &config,
        "{ type = \"page\", size = 100, total = \"/total\" }",
    );
    let output = tillsyn(&["scan", "--once", "--config", &config]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        server.behaviour.lock().expect("lock").requested,
        [1, 2, 3, 4, 5, 6, 7]
    );
    assert_exact(&open_findings(&config), &planted);
}

#[test]
fn a_total_that_is_not_reached_fails_the_scan_and_resolves_nothing() {
    let (server, _dir, config, planted) = planted_crm(Behaviour {
        ..Behaviour::default()
    });
    with_pagination(
        &config,
        "{ type = \"page\", size = 100, total = \"/total\" }",
    );
    assert_eq!(
        tillsyn(&["scan", "--once", "--config", &config])
            .status
            .code(),
        Some(0)
    );
    assert_exact(&open_findings(&config), &planted);
    // Every planted case closes, but the server now counts one item it never
    // gives: the read is not complete, so nothing may resolve.
    {
        let mut behaviour = server.behaviour.lock().expect("lock");
        for item in &mut behaviour.items {
            item["status"] = serde_json::json!("open");
            item["last_contact"] = serde_json::json!(days_ago(1));
        }
        behaviour.total_bias = 1;
    }
    let output = tillsyn(&["scan", "--once", "--config", &config]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("[incomplete]") && stderr.contains("holds 251 items but gave 250"),
        "{stderr}"
    );
    assert_exact(&open_findings(&config), &planted);
    // Counted right again, the same read resolves every one.
    server.behaviour.lock().expect("lock").total_bias = 0;
    assert_eq!(
        tillsyn(&["scan", "--once", "--config", &config])
            .status
            .code(),
        Some(0)
    );
    assert!(open_findings(&config).is_empty());
}

#[test]
fn next_urls_in_the_body_are_followed_to_the_end() {
    let (server, _dir, config, planted) = planted_crm(Behaviour {
        cap_per_page: Some(60),
        next: Next::Body,
        ..Behaviour::default()
    });
    with_pagination(&config, "{ type = \"next_url\", next = \"/next\" }");
    let output = tillsyn(&["scan", "--once", "--config", &config, "--format", "json"]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("250 records"), "{stderr}");
    assert_exact(&pairs(&json_lines(&output)), &planted);
    // The first URL has no page parameter (page 1); then 2 to 5 from the body.
    assert_eq!(
        server.behaviour.lock().expect("lock").requested,
        [1, 2, 3, 4, 5]
    );
}

#[test]
fn a_next_link_to_another_origin_is_refused_and_gets_no_credentials() {
    let (items, planted) = cases();
    let elsewhere = CrmServer::start(Behaviour {
        items: items.clone(),
        token: TOKEN.into(),
        ..Behaviour::default()
    });
    let server = CrmServer::start(Behaviour {
        items,
        token: TOKEN.into(),
        next: Next::Link(elsewhere.url()),
        ..Behaviour::default()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &server.url(), TOKEN);
    with_pagination(&config, "{ type = \"link\" }");
    // Same-origin links first: the whole read works.
    server.behaviour.lock().expect("lock").next = Next::Link(server.url());
    let output = tillsyn(&["scan", "--once", "--config", &config]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    assert_exact(&open_findings(&config), &planted);

    // Then a link to another port: not followed, the scan fails by name.
    server.behaviour.lock().expect("lock").next = Next::Link(elsewhere.url());
    let output = tillsyn(&["scan", "--once", "--config", &config]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("[foreign_link]")
            && stderr.contains(&format!("http://127.0.0.1:{}", elsewhere.port)),
        "{stderr}"
    );
    let other = elsewhere.behaviour.lock().expect("lock");
    assert!(
        other.requested.is_empty() && other.authorizations.is_empty(),
        "the other origin was contacted: {:?}",
        other.authorizations
    );
    assert_exact(&open_findings(&config), &planted);
}

#[test]
fn personal_data_in_a_mapped_text_field_is_found() {
    let items = (0..30)
        .map(|n| {
            let notes = match n % 10 {
                0 => "Kunden lämnade sitt personnummer 811218-9876 i telefon.".to_owned(),
                5 => "Fakturanr 811218-9876 betald.".to_owned(),
                _ => format!("Ärende {n} löst."),
            };
            serde_json::json!({ "id": format!("case-{n}"), "status": "open", "notes": notes })
        })
        .collect();
    let server = CrmServer::start(Behaviour {
        items,
        token: TOKEN.into(),
        ..Behaviour::default()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &server.url(), TOKEN);
    let written = std::fs::read_to_string(&config).expect("config").replace(
        "attributes = { status = \"/status\" }",
        "attributes = { status = \"/status\", notes = \"/notes\" }",
    );
    std::fs::write(
        &config,
        format!(
            "{written}\n[[rules]]\nid = \"P4-notes\"\nkind = \"contains\"\npolicy = \"p\"\ndetectors = [\"personnummer\"]\nwhen = {{ sources = [\"crm\"] }}\n"
        ),
    )
    .expect("config");
    let output = tillsyn(&["scan", "--once", "--config", &config, "--format", "json"]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let found: BTreeSet<String> = pairs(&json_lines(&output))
        .into_iter()
        .filter(|pair| pair.starts_with("P4-notes:"))
        .collect();
    let planted: BTreeSet<String> = ["case-0", "case-10", "case-20"]
        .iter()
        .map(|id| format!("P4-notes:{id}"))
        .collect();
    assert_exact(&found, &planted);
    let detail = json_lines(&output)
        .into_iter()
        .find(|finding| finding["rule"] == "P4-notes")
        .expect("a finding")["detail"]
        .clone();
    assert_eq!(detail, "personnummer 1 (1 high) in field notes");
}

/// A redirect never carries credentials to another origin: with a bearer
/// token, a basic password, an API key in a header or OAuth 2 client
/// credentials, a page that redirects (302 or 307) to a second server on
/// another port fails the scan by name and the second server hears
/// nothing; a token endpoint that answers 307 or 308 is not posted to again
/// anywhere. The same redirect within the origin is followed, and without
/// credentials a redirect elsewhere is followed too (nothing travels).
#[test]
fn redirects_to_another_origin_carry_no_credentials() {
    use common::api::{ApiServer, Response};
    let page = serde_json::json!({"items": [{"id": "c-1", "status": "closed"}], "total": 1});
    let elsewhere = {
        let page = page.clone();
        ApiServer::start(move |_| Response::json(page.clone()))
    };
    let target = format!("{}/stolen", elsewhere.base());
    let redirect_status = std::sync::Arc::new(std::sync::Mutex::new(302u16));
    let origin = {
        let target = target.clone();
        let status = redirect_status.clone();
        let page = page.clone();
        ApiServer::start(move |request| match request.path.as_str() {
            "/here" => Response::json(page.clone()),
            "/moved-here" => Response::status(301).with_header("Location", "/here"),
            "/token" => Response::status(307).with_header("Location", &format!("{target}-token")),
            _ => Response::status(*status.lock().expect("lock")).with_header("Location", &target),
        })
    };
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("secret"), "s3cret-value\n").expect("secret");
    let config = dir.path().join("tillsyn.toml");
    let scan = |path: &str, auth: &str| {
        std::fs::write(
            &config,
            format!(
                "[daemon]\nstate_dir = \"state\"\n\n[[sources]]\nname = \"crm\"\ntype = \"http\"\n\
                 url = \"{}{path}\"\nallow_plaintext = true\n{auth}id = \"/id\"\nattempts = 1\n\n\
                 [[rules]]\nid = \"r\"\nkind = \"max_age\"\npolicy = \"p\"\nmax_age = \"1d\"\ntimestamp = \"modified\"\n",
                origin.base()
            ),
        )
        .expect("config");
        let output = tillsyn(&["scan", "--once", "--config", config.to_str().expect("utf8")]);
        let (stdout, stderr) = text(&output);
        (output.status.code(), format!("{stdout}{stderr}"))
    };
    let credentials = [
        "auth = { bearer_file = \"secret\" }\n",
        "auth = { username = \"svc\", password_file = \"secret\" }\n",
        "auth = { api_key_file = \"secret\", header = \"X-Api-Key\" }\n",
    ];
    for status in [302, 307] {
        *redirect_status.lock().expect("lock") = status;
        for auth in credentials {
            let (code, output) = scan("/cases", auth);
            assert_eq!(code, Some(2), "{status} {auth}: {output}");
            assert!(
                output.contains("[foreign_redirect]")
                    && output.contains(&format!("127.0.0.1:{}", elsewhere.port))
                    && !output.contains("s3cret"),
                "{status} {auth}: {output}"
            );
        }
    }
    assert!(
        elsewhere.requests().is_empty(),
        "the other origin was contacted: {:?}",
        elsewhere.requests()
    );
    // Within the origin a redirect is followed, credentials and all.
    let (code, output) = scan("/moved-here", credentials[0]);
    assert_eq!(code, Some(0), "{output}");
    // OAuth 2: the token endpoint's 307 is not re-posted anywhere.
    let (code, output) = scan(
        "/cases",
        &format!(
            "auth = {{ token_url = \"{}/token\", client_id = \"tillsyn\", client_secret_file = \"secret\" }}\n",
            origin.base()
        ),
    );
    assert_eq!(code, Some(2), "{output}");
    assert!(
        output.contains("[foreign_redirect]") && output.contains("307"),
        "{output}"
    );
    assert!(
        elsewhere.requests().is_empty(),
        "{:?}",
        elsewhere.requests()
    );
    // Without credentials nothing travels: the redirect is followed.
    let (code, output) = scan("/cases", "");
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(elsewhere.requests().len(), 1);
    assert!(elsewhere.requests()[0].header("authorization").is_none());
}
