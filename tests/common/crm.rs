//! A CRM-like HTTP server on loopback for the HTTP connector's tests: JSON pages of
//! `{"items": [...], "total": N}` by `?page=&per_page=`, a bearer token required,
//! and faults on demand (429 with Retry-After, a 500, a page that is not JSON, an
//! item without its id). One request per connection, answered and closed.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// What the server does; shared with the test, which can change it between scans.
#[derive(Default)]
pub struct Behaviour {
    pub items: Vec<serde_json::Value>,
    pub token: String,
    /// (page, status) answered once, at that page's first request.
    pub faults: Vec<(u64, u16)>,
    /// Pages answered with a body that is not JSON.
    pub malformed_pages: Vec<u64>,
    /// (page, seconds): that page's first request waits this long before its
    /// answer (a slow server).
    pub slow_pages: Vec<(u64, u64)>,
    /// Milliseconds every request waits before its answer (a slow server).
    pub delay_ms: u64,
    /// Every request's page, in order.
    pub requested: Vec<u64>,
    /// Every Authorization header seen.
    pub authorizations: Vec<String>,
    /// At most this many items per page, whatever the client asks (servers cap
    /// page sizes silently); pages are numbered by this size then.
    pub cap_per_page: Option<usize>,
    /// Added to the `total` the body announces (a server that loses an item
    /// between its count and its pages).
    pub total_bias: i64,
    /// Give the next page as a URL: in the body's `next` (`Next::Body`), or in
    /// a `Link` header pointing at this base URL (`Next::Link`), e.g. another
    /// server's.
    pub next: Next,
}

/// How the server points at the next page, besides `?page=`.
#[derive(Default, Clone)]
pub enum Next {
    #[default]
    None,
    /// `"next": "/api/cases?page=N&per_page=M"` in the body, relative.
    Body,
    /// `Link: <BASE?page=N&per_page=M>; rel="next"`.
    Link(String),
}

pub struct CrmServer {
    pub port: u16,
    pub behaviour: Arc<Mutex<Behaviour>>,
}

impl CrmServer {
    pub fn start(behaviour: Behaviour) -> CrmServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let behaviour = Arc::new(Mutex::new(behaviour));
        let shared = behaviour.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let shared = shared.clone();
                std::thread::spawn(move || answer(stream, &shared));
            }
        });
        CrmServer { port, behaviour }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/api/cases", self.port)
    }
}

fn answer(stream: TcpStream, shared: &Mutex<Behaviour>) {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut authorization = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line == "\r\n" || line.is_empty() {
            break;
        }
        if line.to_ascii_lowercase().starts_with("authorization:") {
            authorization = line["authorization:".len()..].trim().to_owned();
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("/");
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let param = |name: &str| -> Option<u64> {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| *key == name)
            .and_then(|(_, value)| value.parse().ok())
    };
    // `updated_since=T`: only items whose `updated_at` is T or later (RFC 3339
    // in UTC, so text order is time order).
    let updated_since: Option<String> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "updated_since")
        .map(|(_, value)| value.replace("%3A", ":").replace("%2B", "+"));
    let page = param("page").unwrap_or(1);
    let per_page = param("per_page").unwrap_or(100) as usize;
    let delay = {
        let Ok(mut behaviour) = shared.lock() else {
            return;
        };
        let slow = behaviour
            .slow_pages
            .iter()
            .position(|(p, _)| *p == page)
            .map(|index| behaviour.slow_pages.remove(index).1);
        std::time::Duration::from_secs(slow.unwrap_or(0))
            + std::time::Duration::from_millis(behaviour.delay_ms)
    };
    std::thread::sleep(delay);
    let (status, extra, body) = {
        let Ok(mut behaviour) = shared.lock() else {
            return;
        };
        behaviour.requested.push(page);
        behaviour.authorizations.push(authorization.clone());
        if authorization != format!("Bearer {}", behaviour.token) {
            (
                401,
                String::new(),
                "{\"error\":\"unauthorized\"}".to_owned(),
            )
        } else if let Some(index) = behaviour.faults.iter().position(|(p, _)| *p == page) {
            let (_, status) = behaviour.faults.remove(index);
            let extra = if status == 429 {
                "Retry-After: 1\r\n".to_owned()
            } else {
                String::new()
            };
            (status, extra, "{\"error\":\"try again\"}".to_owned())
        } else if behaviour.malformed_pages.contains(&page) {
            (
                200,
                String::new(),
                "{\"items\": [ {\"id\": \"x\"".to_owned(),
            )
        } else {
            let per_page = behaviour
                .cap_per_page
                .map_or(per_page, |cap| per_page.min(cap));
            let start = ((page - 1) as usize) * per_page;
            let matching: Vec<&serde_json::Value> = behaviour
                .items
                .iter()
                .filter(|item| {
                    updated_since.as_ref().is_none_or(|since| {
                        item["updated_at"]
                            .as_str()
                            .is_some_and(|at| at >= since.as_str())
                    })
                })
                .collect();
            let total = matching.len();
            let items: Vec<serde_json::Value> = matching
                .into_iter()
                .skip(start)
                .take(per_page)
                .cloned()
                .collect();
            let more = start + items.len() < total;
            let next_query = format!("page={}&per_page={per_page}", page + 1);
            let mut body = serde_json::json!({
                "items": items,
                "total": total as i64 + behaviour.total_bias,
            });
            let mut extra = String::new();
            match &behaviour.next {
                Next::None => {}
                Next::Body if more => {
                    body["next"] = serde_json::json!(format!("/api/cases?{next_query}"));
                }
                Next::Body => {}
                Next::Link(base) if more => {
                    extra = format!("Link: <{base}?{next_query}>; rel=\"next\"\r\n");
                }
                Next::Link(_) => {}
            }
            (200, extra, body.to_string())
        }
    };
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        429 => "Too Many Requests",
        _ => "Internal Server Error",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = reader.into_inner();
    let _ = stream.write_all(response.as_bytes());
}
