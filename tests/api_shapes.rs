//! The shipped example sources (`examples/sources/`) against loopback servers of
//! their shape: Microsoft Graph (OAuth 2 client credentials, `@odata.nextLink`,
//! 429 with `Retry-After`, a token refused once), a HubSpot-style CRM (an API
//! key as a query parameter, a cursor in `paging.next.after`) and a
//! Stripe-style list (`has_more` and `starting_after`, a key in a header).
//! Each finds exactly what was planted, and is complete only when everything
//! was read.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::api::{ApiServer, Request, Response};
use common::*;
use serde_json::json;

fn iso(days_ago: i64) -> String {
    (chrono::Utc::now() - chrono::TimeDelta::days(days_ago)).to_rfc3339()
}

/// The example at `examples/sources/NAME.toml`, pointed at `server` (its
/// hosts replaced, plaintext allowed on loopback, secrets in `dir`), with a
/// state dir: a config file to scan with.
fn example_config(dir: &Path, name: &str, server: &ApiServer, hosts: &[&str]) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut text =
        std::fs::read_to_string(format!("{root}/examples/sources/{name}.toml")).expect("example");
    for host in hosts {
        text = text.replace(host, &server.base());
    }
    for secret in ["graph-client-secret", "crm-api-key", "stripe-secret-key"] {
        std::fs::write(dir.join(secret), format!("{secret}-value\n")).expect("secret");
        text = text.replace(
            &format!("/etc/tillsyn/{secret}"),
            &dir.join(secret).display().to_string(),
        );
    }
    text = text.replace(
        "type = \"http\"\n",
        "type = \"http\"\nallow_plaintext = true\n",
    );
    let path = dir.join("tillsyn.toml");
    std::fs::write(&path, format!("[daemon]\nstate_dir = \"state\"\n\n{text}")).expect("config");
    path.to_str().expect("utf8").to_owned()
}

fn scan(config: &str) -> (Option<i32>, String) {
    let output = tillsyn(&["scan", "--once", "--config", config]);
    let (_, stderr) = text(&output);
    (output.status.code(), stderr)
}

fn open_findings(config: &str) -> BTreeSet<String> {
    pairs(&json_lines(&tillsyn(&[
        "findings", "--open", "--config", config, "--format", "json",
    ])))
}

#[test]
fn microsoft_graph_users_with_client_credentials_next_links_and_throttling() {
    let tokens = Arc::new(AtomicUsize::new(0));
    let throttled = Arc::new(AtomicUsize::new(0));
    let issued = tokens.clone();
    let once = throttled.clone();
    let server_base = Arc::new(std::sync::OnceLock::<String>::new());
    let base = server_base.clone();
    let server = ApiServer::start(move |request: &Request| {
        if request.method == "POST" && request.path == "/YOUR-TENANT-ID/oauth2/v2.0/token" {
            let form = request.form();
            let valid = form.get("grant_type").map(String::as_str) == Some("client_credentials")
                && form.get("client_id").map(String::as_str) == Some("YOUR-APPLICATION-ID")
                && form.get("client_secret").map(String::as_str)
                    == Some("graph-client-secret-value")
                // (The example's Graph host is this server here.)
                && form.get("scope").is_some_and(|scope| scope.ends_with("/.default"));
            if !valid {
                return Response::status(401);
            }
            let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
            return Response::json(json!({
                "token_type": "Bearer", "expires_in": 3599, "access_token": format!("tok-{n}")
            }));
        }
        if request.path != "/v1.0/users" {
            return Response::status(404);
        }
        // The first token is refused (revoked, say): a new one is asked for.
        match request.header("authorization") {
            Some("Bearer tok-2") => {}
            _ => return Response::status(401),
        }
        let select = request.query.get("$select").cloned().unwrap_or_default();
        if !select.contains("employeeLeaveDateTime") {
            return Response::status(400);
        }
        let base = base.get().cloned().unwrap_or_default();
        match request.query.get("$skiptoken").map(String::as_str) {
            None => Response::json(json!({
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users",
                "value": [
                    {"id": "u-left-long", "mail": "anna@firma.se", "accountEnabled": false,
                     "employeeLeaveDateTime": iso(200)},
                    {"id": "u-left-recent", "mail": "bo@firma.se", "accountEnabled": false,
                     "employeeLeaveDateTime": iso(10)},
                    {"id": "u-active", "mail": "cia@firma.se", "accountEnabled": true,
                     "employeeLeaveDateTime": null},
                ],
                "@odata.nextLink": format!(
                    "{base}/v1.0/users?$select=id,mail,accountEnabled,employeeLeaveDateTime&$top=999&$skiptoken=p2"
                ),
            })),
            Some("p2") => {
                if once.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Response::status(429).with_header("Retry-After", "1");
                }
                Response::json(json!({
                    "value": [
                        {"id": "u-left-older", "mail": "dan@firma.se", "accountEnabled": true,
                         "employeeLeaveDateTime": iso(400)},
                    ],
                }))
            }
            Some(_) => Response::status(400),
        }
    });
    server_base.set(server.base()).expect("base");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = example_config(
        dir.path(),
        "microsoft-graph-users",
        &server,
        &[
            "https://graph.microsoft.com",
            "https://login.microsoftonline.com",
        ],
    );
    let (code, stderr) = scan(&config);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        !stderr.contains("PARTIAL") && !stderr.contains("FAILED"),
        "{stderr}"
    );
    assert_exact(
        &open_findings(&config),
        &BTreeSet::from([
            "former-employees-accounts:u-left-long".to_owned(),
            "former-employees-accounts:u-left-older".to_owned(),
        ]),
    );
    assert_eq!(
        tokens.load(Ordering::SeqCst),
        2,
        "one token, renewed once after a 401"
    );
    assert_eq!(
        throttled.load(Ordering::SeqCst),
        2,
        "page 2 throttled once, then read"
    );
    // The secret went only to the token endpoint, in its body.
    for request in server.requests() {
        let seen = format!("{} {:?}", request.target, request.headers);
        assert!(!seen.contains("graph-client-secret-value"), "{seen}");
    }
    assert!(!stderr.contains("graph-client-secret-value") && !stderr.contains("tok-"));

    // Token endpoint refuses: the scan fails by name and resolves nothing.
    std::fs::write(dir.path().join("graph-client-secret"), "wrong\n").expect("secret");
    let (code, stderr) = scan(&config);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(stderr.contains("auth"), "{stderr}");
    assert_eq!(open_findings(&config).len(), 2);
}

#[test]
fn a_crm_with_an_api_key_in_the_query_and_a_cursor_never_shows_the_key() {
    let key = "crm-api-key-value";
    let fail_page_two = Arc::new(AtomicUsize::new(0));
    let failing = fail_page_two.clone();
    let server = ApiServer::start(move |request: &Request| {
        if request.query.get("hapikey").map(String::as_str) != Some(key) {
            return Response::status(401);
        }
        let properties = request.query.get("properties").cloned().unwrap_or_default();
        if !properties.contains("hs_lastactivitydate") {
            return Response::status(400);
        }
        let contact = |id: &str, email: &str, days: i64| {
            json!({"id": id, "properties": {
                "email": email, "lifecyclestage": "customer",
                "hs_lastactivitydate": (chrono::Utc::now() - chrono::TimeDelta::days(days))
                    .format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
            }})
        };
        match request.query.get("after").map(String::as_str) {
            None => Response::json(json!({
                "results": [contact("101", "a@kund.se", 900), contact("102", "b@kund.se", 30)],
                "paging": {"next": {"after": "MTAy", "link": "ignored"}}
            })),
            Some("MTAy") => {
                if failing.load(Ordering::SeqCst) > 0 {
                    return Response::status(500);
                }
                Response::json(json!({
                    "results": [contact("103", "c@kund.se", 1000), contact("104", "d@kund.se", 800)]
                }))
            }
            Some(_) => Response::status(400),
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let config = example_config(
        dir.path(),
        "hubspot-contacts",
        &server,
        &["https://api.hubapi.com"],
    );
    let (code, stderr) = scan(&config);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("PARTIAL"), "{stderr}");
    let planted = BTreeSet::from([
        "inactive-crm-contacts:101".to_owned(),
        "inactive-crm-contacts:103".to_owned(),
        "inactive-crm-contacts:104".to_owned(),
    ]);
    assert_exact(&open_findings(&config), &planted);
    // The key went as the query parameter (the server checked it)...
    assert!(
        server
            .requests()
            .iter()
            .all(|request| request.target.contains(key))
    );
    // ...and is in no message: page 2 now fails, and its error names the page.
    fail_page_two.store(1, Ordering::SeqCst);
    let output = tillsyn(&["scan", "--once", "--config", &config]);
    let (stdout, stderr) = text(&output);
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("page 2"), "{stderr}");
    assert!(!stderr.contains(key) && !stdout.contains(key), "{stderr}");
    assert_exact(&open_findings(&config), &planted);
    // Nor in what the store keeps of the failed scan.
    let store = std::fs::read(dir.path().join("state/findings.sqlite")).expect("store");
    assert!(!String::from_utf8_lossy(&store).contains(key));
}

#[test]
fn a_list_paged_by_has_more_and_the_last_id_is_read_to_the_end() {
    let customers: Vec<serde_json::Value> = (0..7)
        .map(|n| {
            let (status, ended) = match n % 3 {
                0 => (
                    "former",
                    Some(
                        (chrono::Utc::now() - chrono::TimeDelta::days(500))
                            .format("%Y-%m-%d")
                            .to_string(),
                    ),
                ),
                1 => (
                    "former",
                    Some(
                        (chrono::Utc::now() - chrono::TimeDelta::days(60))
                            .format("%Y-%m-%d")
                            .to_string(),
                    ),
                ),
                _ => ("active", None),
            };
            json!({"id": format!("cus_{n}"), "object": "customer", "email": format!("k{n}@kund.se"),
                   "metadata": {"status": status, "relationship_ended": ended}})
        })
        .collect();
    let list = customers.clone();
    let server = ApiServer::start(move |request: &Request| {
        match request.header("authorization") {
            Some("Bearer stripe-secret-key-value") => {}
            _ => match request.header("x-api-key") {
                Some("stripe-secret-key-value") => {}
                _ => return Response::status(401),
            },
        }
        let start = match request.query.get("starting_after") {
            None => 0,
            Some(id) => match list
                .iter()
                .position(|customer| customer["id"] == id.as_str())
            {
                Some(index) => index + 1,
                None => return Response::status(400),
            },
        };
        // Three per page, whatever is asked.
        let page: Vec<_> = list.iter().skip(start).take(3).cloned().collect();
        Response::json(json!({
            "object": "list", "url": "/v1/customers",
            "has_more": start + 3 < list.len(), "data": page
        }))
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let config = example_config(
        dir.path(),
        "stripe-customers",
        &server,
        &["https://api.stripe.com"],
    );
    let planted: BTreeSet<String> = (0..7)
        .filter(|n| n % 3 == 0)
        .map(|n| format!("former-customers-payments:cus_{n}"))
        .collect();
    let (code, stderr) = scan(&config);
    assert_eq!(code, Some(0), "{stderr}");
    assert_exact(&open_findings(&config), &planted);
    assert_eq!(work(&stderr, "pages"), 3, "{stderr}");
    // The same with the key in a header of its own.
    let text = std::fs::read_to_string(&config).expect("config").replace(
        "auth = { bearer_file = ",
        "auth = { header = \"X-Api-Key\", api_key_file = ",
    );
    std::fs::write(&config, text).expect("config");
    let (code, stderr) = scan(&config);
    assert_eq!(code, Some(0), "{stderr}");
    assert_exact(&open_findings(&config), &planted);
}
