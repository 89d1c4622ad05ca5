//! CRMs, ticket systems, incident registers and list services over HTTP/JSON:
//! cases, contacts, incidents and list members as records.
//!
//! One source is one endpoint, read page by page (`page`/`offset` parameters, a
//! cursor field in the body, or a `Link: rel="next"` header). Items are mapped to
//! records with JSON pointers (`/id`, `/contact/email`). Only GET is ever sent.
//! Every request has a timeout; 429 waits as long as `Retry-After` says (bounded)
//! and 5xx and broken connections are tried again with doubling pauses. A page
//! that is not JSON, or an item without the mapped id, fails the scan with a
//! message naming the page: a half-read endpoint must not resolve findings.
//! Credentials travel in headers, are read from files, and never appear in a
//! message (URLs in messages have their query strings removed).
//!
//! **Incremental** (`incremental`): when the API can list only what changed since
//! a time (`?updated_since=…`), a rescan asks for items changed since the newest
//! `field` value the last scan saw, as the API wrote it (the server's clock); their
//! findings are judged again and everyone else's are carried. Deleted items, and
//! items whose dates came due without a change, are only seen by a full read: one
//! runs when the last is older than `full_every_hours`, and when the rules change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::values::{NotADate, ValueMapping};
use crate::{
    Connector, ConnectorError, ProblemKind, Record, RecordKind, RecordSink, ScanContext, ScanReport,
};
use tillsyn_core::dates::{DateFormat, DateValue};
use tillsyn_core::secret::{self, Secret};

/// `type = "http"`: one JSON endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// The first page's URL. Required.
    pub url: String,
    /// Allow `http://` (unencrypted; loopback tests only). Default: false.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// PEM file of an internal CA, trusted besides the system's. Default: none.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// `{ bearer_file = "FILE" }` or `{ username = "u", password_file = "FILE" }`.
    /// Default: none.
    #[serde(default)]
    pub auth: Option<HttpAuth>,
    /// JSON pointer to the array of items in a page; `""` when the page is the
    /// array. Default: `/items`.
    #[serde(default = "default_items")]
    pub items: String,
    /// How pages follow each other. Default: `{ type = "none" }` (one page).
    #[serde(default)]
    pub pagination: Pagination,
    /// Record kind: `crm_object` or `contact`. Default: `crm_object`.
    #[serde(default = "default_kind")]
    pub kind: RecordKind,
    /// JSON pointer to each item's stable id. Required.
    pub id: String,
    /// JSON pointer to who must act on an item, its custodian (a case
    /// handler, an account manager), as digests and the report's "who" name
    /// them (pseudonymised in output). Whom an item is about (a contact's
    /// address) goes in the source's `identifiers` instead. Default: none.
    #[serde(default)]
    pub custodian: Option<String>,
    /// Record attribute name → JSON pointer, or a table `{ pointer, pattern }`
    /// whose pattern picks the value out of each (see [`crate::values`]).
    /// Arrays are joined with `;`. Default: none.
    #[serde(default)]
    pub attributes: BTreeMap<String, ValueMapping>,
    /// Record date name → JSON pointer to a date in any format
    /// [`tillsyn_core::dates::parse_date`] reads (a JSON number is Unix seconds, or
    /// milliseconds past 10^11), or a table `{ pointer, pattern, format }`.
    /// Of an array, the first value (that the pattern matches) counts.
    /// Default: none.
    #[serde(default)]
    pub dates: BTreeMap<String, ValueMapping>,
    /// JSON pointer to the last contact or activity. Default: none.
    #[serde(default)]
    pub last_activity: Option<String>,
    /// Longest wait for one response, in seconds. Default: 60.
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    /// Tries per page after 429, 5xx or a broken connection. Default: 4.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Longest `Retry-After` honoured, in seconds; a longer one fails the scan
    /// rather than stalling it. Default: 120.
    #[serde(default = "default_max_retry_after")]
    pub max_retry_after_seconds: u64,
    /// Safety stop for endpoints that never end. Default: 1,000,000 pages.
    #[serde(default = "default_max_pages")]
    pub max_pages: u64,
    /// Read only what changed since the last scan, when the API offers that.
    /// Default: none (every scan reads everything).
    #[serde(default)]
    pub incremental: Option<HttpIncremental>,
}

/// `incremental = { param = "updated_since", field = "/updated_at", full_every_hours = 24 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpIncremental {
    /// Query parameter that limits a listing to items changed at or after a
    /// time. Default: `updated_since`.
    #[serde(default = "default_since_param")]
    pub param: String,
    /// JSON pointer to each item's last-change time (RFC 3339 or Unix seconds).
    /// Required.
    pub field: String,
    /// Hours after which a scan reads everything again (resolving deleted items
    /// and finding items that came due without a change). Required.
    pub full_every_hours: u64,
}

fn default_since_param() -> String {
    "updated_since".into()
}

/// Checkpoint: when the last full read started (Unix seconds).
const FULL_AT: &str = "http.full_at";
/// Checkpoint: the newest change time seen, as the API wrote it.
const SINCE: &str = "http.since";
/// Checkpoint: the rules and mapping the reads served; a change means a full read.
const PLAN: &str = "http.plan";

fn default_items() -> String {
    "/items".into()
}
fn default_kind() -> RecordKind {
    RecordKind::CrmObject
}
fn default_timeout_seconds() -> u64 {
    60
}
fn default_attempts() -> u32 {
    4
}
fn default_max_retry_after() -> u64 {
    120
}
fn default_max_pages() -> u64 {
    1_000_000
}

/// Credentials for an endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum HttpAuth {
    /// `Authorization: Bearer …` from a file.
    Bearer {
        /// The token file.
        bearer_file: PathBuf,
    },
    /// HTTP basic auth with the password from a file.
    Basic {
        /// The user name.
        username: String,
        /// The password file.
        password_file: PathBuf,
    },
    /// An API key from a file, sent in a header (`header = "X-Api-Key"`) or as
    /// a query parameter (`query = "api_key"`; never shown in messages).
    ApiKey {
        /// The key file.
        api_key_file: PathBuf,
        /// Header to send it in.
        #[serde(default)]
        header: Option<String>,
        /// Query parameter to send it as.
        #[serde(default)]
        query: Option<String>,
    },
    /// OAuth 2 client credentials (RFC 6749 §4.4), as Microsoft Graph takes
    /// them: the token is asked for at `token_url` with the client id and the
    /// secret from a file, kept, and asked for again a minute before it runs
    /// out (or once after a 401).
    OAuth2 {
        /// The token endpoint, e.g.
        /// `https://login.microsoftonline.com/TENANT/oauth2/v2.0/token`.
        token_url: String,
        /// The client (application) id.
        client_id: String,
        /// The client secret file.
        client_secret_file: PathBuf,
        /// The scope asked for, e.g. `https://graph.microsoft.com/.default`.
        /// Default: none.
        #[serde(default)]
        scope: Option<String>,
    },
}

/// How pages follow each other.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Pagination {
    /// A single page.
    #[default]
    None,
    /// `?page=N` (from `start`), with `?per_page=size`. Ends at an empty page,
    /// or when a total the server gives (`total`, `total_pages`, or the
    /// `X-Total-Count` header) is reached; never at a merely short page, since
    /// servers cap page sizes silently.
    Page {
        /// Page parameter. Default: `page`.
        #[serde(default = "default_page_param")]
        param: String,
        /// First page number. Default: 1.
        #[serde(default = "default_page_start")]
        start: u64,
        /// Page-size parameter. Default: `per_page`.
        #[serde(default = "default_size_param")]
        size_param: String,
        /// Items per page. Default: 100.
        #[serde(default = "default_size")]
        size: u64,
        /// JSON pointer to the total number of items, e.g. `/total`. Default: none.
        #[serde(default)]
        total: Option<String>,
        /// JSON pointer to the number of pages, e.g. `/total_pages`. Default: none.
        #[serde(default)]
        total_pages: Option<String>,
    },
    /// `?offset=N&limit=size`. Ends at an empty page or at a total the server
    /// gives (`total` or `X-Total-Count`), never at a merely short page.
    Offset {
        /// Offset parameter. Default: `offset`.
        #[serde(default = "default_offset_param")]
        param: String,
        /// Limit parameter. Default: `limit`.
        #[serde(default = "default_limit_param")]
        size_param: String,
        /// Items per page. Default: 100.
        #[serde(default = "default_size")]
        size: u64,
        /// JSON pointer to the total number of items, e.g. `/total`. Default: none.
        #[serde(default)]
        total: Option<String>,
    },
    /// A cursor in the body (JSON pointer `next`), sent back as `?param=…`;
    /// ends when it is missing, null or empty. With `last_item`, the cursor is
    /// that pointer into the page's last item instead (`starting_after` the
    /// last id, as Stripe pages); with `has_more`, the pages end when that
    /// flag is false.
    Cursor {
        /// Cursor parameter. Default: `cursor`.
        #[serde(default = "default_cursor_param")]
        param: String,
        /// JSON pointer to the next cursor. Default: `/next_cursor`.
        #[serde(default = "default_next")]
        next: String,
        /// JSON pointer into the last item that gives the cursor, e.g. `/id`.
        /// Default: none.
        #[serde(default)]
        last_item: Option<String>,
        /// JSON pointer to a flag saying whether more pages follow, e.g.
        /// `/has_more`. Default: none.
        #[serde(default)]
        has_more: Option<String>,
    },
    /// The `Link: <url>; rel="next"` response header (RFC 8288); ends when there
    /// is none. Followed only to the configured URL's origin.
    Link,
    /// A next-page URL in the body (JSON pointer `next`, e.g.
    /// `/@odata.nextLink` or `/links/next`); ends when it is missing, null or
    /// empty. Followed only to the configured URL's origin.
    #[serde(rename = "next_url")]
    NextUrl {
        /// JSON pointer to the next page's URL. Default: `/next`.
        #[serde(default = "default_next_url")]
        next: String,
    },
}

impl Pagination {
    /// Add the query parameters that ask for page number `page` (counted from
    /// 1) or the items from `offset`, for the kinds that take them.
    fn ask_for(&self, url: &mut reqwest::Url, page: u64, offset: u64) {
        match self {
            Pagination::Page {
                param,
                start,
                size_param,
                size,
                ..
            } => {
                url.query_pairs_mut()
                    .append_pair(param, &(start + page - 1).to_string())
                    .append_pair(size_param, &size.to_string());
            }
            Pagination::Offset {
                param,
                size_param,
                size,
                ..
            } => {
                url.query_pairs_mut()
                    .append_pair(param, &offset.to_string())
                    .append_pair(size_param, &size.to_string());
            }
            Pagination::None
            | Pagination::Cursor { .. }
            | Pagination::Link
            | Pagination::NextUrl { .. } => {}
        }
    }
}

fn default_next_url() -> String {
    "/next".into()
}

fn default_page_param() -> String {
    "page".into()
}
fn default_page_start() -> u64 {
    1
}
fn default_size_param() -> String {
    "per_page".into()
}
fn default_size() -> u64 {
    100
}
fn default_offset_param() -> String {
    "offset".into()
}
fn default_limit_param() -> String {
    "limit".into()
}
fn default_cursor_param() -> String {
    "cursor".into()
}
fn default_next() -> String {
    "/next_cursor".into()
}

/// Why this source could not be built (shared with the other network sources).
pub type HttpBuildError = crate::SourceSetupError;

#[derive(Debug, Clone)]
enum Credentials {
    None,
    Bearer(Secret),
    Basic(String, Secret),
    ApiKey {
        key: Secret,
        header: Option<reqwest::header::HeaderName>,
        query: Option<String>,
    },
    OAuth2 {
        token_url: reqwest::Url,
        client_id: String,
        secret: Secret,
        scope: Option<String>,
        /// The token and when it runs out, once asked for.
        token: Arc<tokio::sync::Mutex<Option<(Secret, std::time::Instant)>>>,
    },
}

/// A built HTTP source.
#[derive(Debug, Clone)]
pub struct HttpSource {
    config: Arc<HttpConfig>,
    credentials: Credentials,
    client: reqwest::Client,
    /// For the OAuth 2 token endpoint: follows no redirect at all, so a
    /// client secret is never posted anywhere but `token_url`.
    token_client: reqwest::Client,
}

/// Why a redirect was not followed: it led to another origin while
/// credentials travel with the requests.
#[derive(Debug)]
struct ForeignRedirect(String);

impl std::fmt::Display for ForeignRedirect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a redirect to another origin ({})", self.0)
    }
}

impl std::error::Error for ForeignRedirect {}

/// Redirects as credentials allow: with any credential configured, only to
/// the origin (scheme, host and port) the request went to, at most 10;
/// without, like a browser (10 at most).
fn redirect_policy(guarded: bool) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        let foreign = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() != attempt.url().origin());
        if guarded && foreign {
            let origin = attempt.url().origin().ascii_serialization();
            attempt.error(ForeignRedirect(origin))
        } else if attempt.previous().len() >= 10 {
            attempt.error(ForeignRedirect("too many redirects".to_owned()))
        } else {
            attempt.follow()
        }
    })
}

/// The message of a request that failed at a refused redirect, if it did.
fn refused_redirect(error: &reqwest::Error) -> Option<String> {
    use std::error::Error as _;
    let mut cause = error.source();
    while let Some(inner) = cause {
        if let Some(ForeignRedirect(origin)) = inner.downcast_ref::<ForeignRedirect>() {
            return Some(origin.clone());
        }
        cause = inner.source();
    }
    None
}

impl HttpSource {
    /// Check the settings, read the credentials, build the client.
    pub fn build(config: HttpConfig) -> Result<HttpSource, HttpBuildError> {
        let url = reqwest::Url::parse(&config.url)
            .map_err(|error| HttpBuildError::Invalid(format!("url: {error}")))?;
        match url.scheme() {
            "https" => {}
            "http" if config.allow_plaintext => {}
            "http" => {
                return Err(HttpBuildError::Invalid(
                    "http:// sends credentials unencrypted; use https://, or allow_plaintext = true \
                     (loopback tests only)"
                        .into(),
                ));
            }
            other => {
                return Err(HttpBuildError::Invalid(format!(
                    "unsupported scheme {other:?}"
                )));
            }
        }
        let credentials = match &config.auth {
            None => Credentials::None,
            Some(HttpAuth::Bearer { bearer_file }) => {
                Credentials::Bearer(secret::read_file(bearer_file)?)
            }
            Some(HttpAuth::Basic {
                username,
                password_file,
            }) => Credentials::Basic(username.clone(), secret::read_file(password_file)?),
            Some(HttpAuth::ApiKey {
                api_key_file,
                header,
                query,
            }) => {
                let header = match (header, query) {
                    (Some(header), None) => Some(
                        reqwest::header::HeaderName::from_bytes(header.as_bytes()).map_err(
                            |_| {
                                HttpBuildError::Invalid(format!(
                                    "auth: {header:?} is no header name"
                                ))
                            },
                        )?,
                    ),
                    (None, Some(_)) => None,
                    _ => {
                        return Err(HttpBuildError::Invalid(
                            "auth: an API key goes in a `header` or a `query` parameter: name exactly one"
                                .into(),
                        ));
                    }
                };
                Credentials::ApiKey {
                    key: secret::read_file(api_key_file)?,
                    header,
                    query: query.clone(),
                }
            }
            Some(HttpAuth::OAuth2 {
                token_url,
                client_id,
                client_secret_file,
                scope,
            }) => {
                let token_url = reqwest::Url::parse(token_url).map_err(|error| {
                    HttpBuildError::Invalid(format!("auth: token_url: {error}"))
                })?;
                if token_url.scheme() != "https" && !config.allow_plaintext {
                    return Err(HttpBuildError::Invalid(
                        "auth: token_url must be https:// (allow_plaintext is for loopback tests)"
                            .into(),
                    ));
                }
                Credentials::OAuth2 {
                    token_url,
                    client_id: client_id.clone(),
                    secret: secret::read_file(client_secret_file)?,
                    scope: scope.clone(),
                    token: Arc::default(),
                }
            }
        };
        let tls = crate::tls::tls_config(config.ca_file.as_deref(), true)?;
        let client_with = |policy: reqwest::redirect::Policy| {
            reqwest::Client::builder()
                .tls_backend_preconfigured((*tls).clone())
                .timeout(Duration::from_secs(config.timeout_seconds))
                .user_agent(concat!("tillsyn/", env!("CARGO_PKG_VERSION")))
                .redirect(policy)
                .build()
                .map_err(|error| HttpBuildError::Invalid(format!("HTTP client: {error}")))
        };
        let guarded = !matches!(credentials, Credentials::None);
        let client = client_with(redirect_policy(guarded))?;
        let token_client = client_with(reqwest::redirect::Policy::none())?;
        Ok(HttpSource {
            config: Arc::new(config),
            credentials,
            client,
            token_client,
        })
    }

    /// Make relative paths relative to the config file's folder.
    pub fn resolve_paths(config: &mut HttpConfig, resolve: impl Fn(&Path) -> PathBuf) {
        if let Some(ca) = &mut config.ca_file {
            *ca = resolve(ca);
        }
        match &mut config.auth {
            Some(HttpAuth::Bearer { bearer_file }) => *bearer_file = resolve(bearer_file),
            Some(HttpAuth::Basic { password_file, .. }) => *password_file = resolve(password_file),
            Some(HttpAuth::ApiKey { api_key_file, .. }) => *api_key_file = resolve(api_key_file),
            Some(HttpAuth::OAuth2 {
                client_secret_file, ..
            }) => *client_secret_file = resolve(client_secret_file),
            None => {}
        }
    }
}

/// A URL fit for a message: no query string (it may carry keys), no userinfo.
fn shown(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

/// A next-page link, resolved against the page it came from, if it stays at
/// the configured URL's origin (scheme, host and port): credentials go nowhere
/// else, and a link elsewhere fails the scan.
fn same_origin(
    page: &reqwest::Url,
    configured: &reqwest::Url,
    link: &str,
    where_: &str,
) -> Result<reqwest::Url, ConnectorError> {
    let next = page
        .join(link)
        .map_err(|error| failed("protocol", format!("{where_}: bad next link ({error})")))?;
    if next.origin() != configured.origin() {
        return Err(failed(
            "foreign_link",
            format!(
                "{where_}: the next page is at another origin ({}), not {}; not followed, and no credentials were sent there",
                next.origin().ascii_serialization(),
                configured.origin().ascii_serialization()
            ),
        ));
    }
    Ok(next)
}

fn failed(kind: &'static str, message: String) -> ConnectorError {
    ConnectorError::Unavailable { kind, message }
}

/// `Link: <https://…?page=2>; rel="next", <…>; rel="last"` → the next URL.
pub(crate) fn next_link(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get_all(reqwest::header::LINK)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|part| {
            let (target, params) = part.split_once(';')?;
            let rel_next = params.split(';').any(|param| {
                let param = param.trim().to_lowercase();
                param == "rel=\"next\"" || param == "rel=next"
            });
            let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
            rel_next.then(|| target.to_owned())
        })
}

/// A JSON value as attribute text: strings as they are, arrays joined with `;`.
pub(crate) fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        Value::Array(values) => Some(
            values
                .iter()
                .filter_map(text_of)
                .collect::<Vec<_>>()
                .join(";"),
        ),
        other => Some(other.to_string()),
    }
}

/// Every text in a JSON value: a string, each of an array's, or a number or
/// flag as written.
fn texts_of(value: &Value) -> Vec<String> {
    match value {
        Value::Null => Vec::new(),
        Value::String(text) => vec![text.clone()],
        Value::Array(values) => values.iter().flat_map(texts_of).collect(),
        other => vec![other.to_string()],
    }
}

/// The date a JSON value holds as `mapping` reads it: a number with an
/// automatic format is Unix seconds (milliseconds past 10^11).
fn json_date(
    value: &Value,
    mapping: &ValueMapping,
    zone: chrono_tz::Tz,
) -> Result<Option<DateValue>, NotADate> {
    if let (Value::Number(number), None, DateFormat::Auto) =
        (value, &mapping.pattern, mapping.format)
    {
        let number = number.as_i64().ok_or(NotADate)?;
        let (seconds, millis) = if number.abs() > 100_000_000_000 {
            (number.div_euclid(1000), number.rem_euclid(1000))
        } else {
            (number, 0)
        };
        return DateTime::from_timestamp(seconds, (millis * 1_000_000) as u32)
            .map(|time| Some(DateValue::At(time)))
            .ok_or(NotADate);
    }
    let texts = texts_of(value);
    mapping.date(texts.iter().map(String::as_str), zone)
}

/// RFC 3339, `YYYY-MM-DD` (midnight in `zone`, the one date policy), or
/// Unix seconds (number or digits).
pub(crate) fn parse_json_time(value: &Value, zone: chrono_tz::Tz) -> Option<DateTime<Utc>> {
    match value {
        Value::Number(number) => DateTime::from_timestamp(number.as_i64()?, 0),
        Value::String(text) => {
            let text = text.trim();
            if let Some(time) = tillsyn_core::dates::instant(text, zone) {
                return Some(time);
            }
            text.parse::<i64>()
                .ok()
                .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
        }
        _ => None,
    }
}

impl HttpSource {
    /// GET one page, trying again after 429, 5xx and broken connections.
    /// The OAuth 2 access token: the one kept, unless it runs out within a
    /// minute or `renew` asks for a new one.
    async fn oauth_token(&self, renew: bool) -> Result<Secret, ConnectorError> {
        let Credentials::OAuth2 {
            token_url,
            client_id,
            secret,
            scope,
            token,
        } = &self.credentials
        else {
            return Err(failed(
                "auth",
                "no OAuth 2 credentials configured".to_owned(),
            ));
        };
        let mut kept = token.lock().await;
        if !renew
            && let Some((token, until)) = kept.as_ref()
            && std::time::Instant::now() + Duration::from_secs(60) < *until
        {
            return Ok(token.clone());
        }
        let where_ = format!("token endpoint ({})", shown(token_url));
        let mut form = reqwest::Url::parse("form:")
            .map_err(|error| failed("protocol", format!("{where_}: {error}")))?;
        form.query_pairs_mut()
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", client_id)
            .append_pair("client_secret", &String::from_utf8_lossy(secret.expose()));
        if let Some(scope) = scope {
            form.query_pairs_mut().append_pair("scope", scope);
        }
        let response = self
            .token_client
            .post(token_url.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form.query().unwrap_or_default().to_owned())
            .send()
            .await
            .map_err(|error| failed("unreachable", format!("{where_}: {}", error.without_url())))?;
        let status = response.status();
        if status.is_redirection() {
            let to = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|location| location.to_str().ok())
                .and_then(|location| token_url.join(location).ok())
                .map_or_else(
                    || "somewhere unnamed".to_owned(),
                    |location| location.origin().ascii_serialization(),
                );
            return Err(failed(
                "foreign_redirect",
                format!(
                    "{where_}: {status}, a redirect to {to}; not followed: the client secret is posted to token_url only"
                ),
            ));
        }
        if !status.is_success() {
            // The endpoint's answer may echo what was sent: not shown.
            return Err(failed(
                "auth",
                format!("{where_}: {status}: no token for these client credentials"),
            ));
        }
        let body = response.bytes().await.map_err(|error| {
            failed(
                "connection_lost",
                format!("{where_}: {}", error.without_url()),
            )
        })?;
        let answer: Value = serde_json::from_slice(&body)
            .map_err(|_| failed("auth", format!("{where_}: the answer is not JSON")))?;
        let Some(access) = answer.get("access_token").and_then(Value::as_str) else {
            return Err(failed(
                "auth",
                format!("{where_}: the answer holds no access_token"),
            ));
        };
        let lifetime = answer
            .get("expires_in")
            .and_then(|value| value.as_u64().or_else(|| value.as_str()?.parse().ok()))
            .unwrap_or(3600);
        let fresh = Secret::new(access.as_bytes().to_vec());
        *kept = Some((
            fresh.clone(),
            std::time::Instant::now() + Duration::from_secs(lifetime),
        ));
        Ok(fresh)
    }

    async fn get(
        &self,
        url: &reqwest::Url,
        page: u64,
        report: &mut ScanReport,
    ) -> Result<(reqwest::header::HeaderMap, Vec<u8>), ConnectorError> {
        let config = &self.config;
        let mut attempt = 1;
        // An OAuth 2 token refused is asked for anew, once.
        let mut renew_token = false;
        loop {
            let mut target = url.clone();
            if let Credentials::ApiKey {
                key,
                header: None,
                query: Some(query),
            } = &self.credentials
            {
                // Added to the request only: `url`, which messages show,
                // never holds it.
                target
                    .query_pairs_mut()
                    .append_pair(query, &String::from_utf8_lossy(key.expose()));
            }
            let mut request = self.client.get(target);
            request = match &self.credentials {
                Credentials::None => request,
                Credentials::Bearer(token) => {
                    let token = String::from_utf8_lossy(token.expose()).into_owned();
                    request.bearer_auth(token)
                }
                Credentials::Basic(user, password) => {
                    let password = String::from_utf8_lossy(password.expose()).into_owned();
                    request.basic_auth(user, Some(password))
                }
                Credentials::ApiKey {
                    key,
                    header: Some(header),
                    ..
                } => request.header(
                    header.clone(),
                    String::from_utf8_lossy(key.expose()).into_owned(),
                ),
                Credentials::ApiKey { .. } => request,
                Credentials::OAuth2 { .. } => {
                    let token = self.oauth_token(renew_token).await?;
                    request.bearer_auth(String::from_utf8_lossy(token.expose()).into_owned())
                }
            };
            let where_ = format!("page {page} ({})", shown(url));
            let outcome = request.send().await;
            let retry_after = match outcome {
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() {
                        let headers = response.headers().clone();
                        let body = response.bytes().await.map_err(|error| {
                            failed(
                                "connection_lost",
                                format!("{where_}: body broke off: {}", error.without_url()),
                            )
                        })?;
                        return Ok((headers, body.to_vec()));
                    }
                    if status == reqwest::StatusCode::UNAUTHORIZED
                        && matches!(self.credentials, Credentials::OAuth2 { .. })
                        && !renew_token
                    {
                        renew_token = true;
                        report.add_work("token_renewals", 1);
                        continue;
                    }
                    if status == reqwest::StatusCode::UNAUTHORIZED
                        || status == reqwest::StatusCode::FORBIDDEN
                    {
                        return Err(failed(
                            "auth",
                            format!("{where_}: {status}: the server refused the credentials"),
                        ));
                    }
                    if status != reqwest::StatusCode::TOO_MANY_REQUESTS && !status.is_server_error()
                    {
                        return Err(failed("protocol", format!("{where_}: {status}")));
                    }
                    if attempt >= config.attempts.max(1) {
                        return Err(failed(
                            "protocol",
                            format!("{where_}: {status} after {attempt} tries"),
                        ));
                    }
                    report.add_work("retries", 1);
                    response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|value| value.to_str().ok())
                        .and_then(|value| value.trim().parse::<u64>().ok())
                }
                Err(error) => {
                    if let Some(origin) = refused_redirect(&error) {
                        return Err(failed(
                            "foreign_redirect",
                            format!(
                                "{where_}: the server redirected to {origin}; not followed, and no credentials were sent there"
                            ),
                        ));
                    }
                    if attempt >= config.attempts.max(1) {
                        let kind = if error.is_timeout() {
                            "timeout"
                        } else {
                            "connect"
                        };
                        return Err(failed(
                            kind,
                            format!("{where_}: {} after {attempt} tries", error.without_url()),
                        ));
                    }
                    report.add_work("retries", 1);
                    None
                }
            };
            let wait = match retry_after {
                Some(seconds) if seconds > config.max_retry_after_seconds => {
                    return Err(failed(
                        "protocol",
                        format!(
                            "{where_}: the server asks to wait {seconds} s, more than max_retry_after_seconds"
                        ),
                    ));
                }
                Some(seconds) => Duration::from_secs(seconds),
                None => crate::READ_RETRY.after(attempt),
            };
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    fn record(
        &self,
        context: &ScanContext,
        item: &Value,
        where_: &str,
        index: usize,
        report: &mut ScanReport,
    ) -> Result<Record, ConnectorError> {
        let config = &self.config;
        let id = item
            .pointer(&config.id)
            .and_then(text_of)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                failed(
                    "protocol",
                    format!(
                        "{where_}: item {index} has no {} (the mapped id)",
                        config.id
                    ),
                )
            })?;
        let mut record = Record::new(config.kind, context.source.clone(), id);
        record.custodian = config
            .custodian
            .as_ref()
            .and_then(|pointer| item.pointer(pointer))
            .and_then(text_of);
        for (name, mapping) in &config.attributes {
            let Some(value) = item.pointer(&mapping.from) else {
                continue;
            };
            let text = match (&mapping.pattern, mapping.flag) {
                (None, None) => text_of(value),
                _ => {
                    let values = texts_of(value);
                    let picked = mapping.all(values.iter().map(String::as_str));
                    (!picked.is_empty()).then(|| picked.join(";"))
                }
            };
            if let Some(text) = text {
                record.attributes.insert(name.clone(), text);
            }
        }
        for (name, mapping) in &config.dates {
            let date = match item.pointer(&mapping.from) {
                None | Some(Value::Null) => Ok(None),
                Some(value) => json_date(value, mapping, context.timezone),
            };
            match date {
                Ok(None | Some(DateValue::Never)) => {}
                Ok(Some(DateValue::At(time))) => {
                    record.dates.insert(name.clone(), time);
                }
                // Without the date no rule can judge the record: its
                // findings stay open (the scan is partial for it).
                Err(NotADate) => {
                    report.count(ProblemKind::BadDate);
                    report.unread_prefixes.push(record.path.clone());
                }
            }
        }
        record.timestamps.last_activity = config
            .last_activity
            .as_ref()
            .and_then(|pointer| item.pointer(pointer))
            .and_then(|value| parse_json_time(value, context.timezone));
        if let Some(plan) = &context.content {
            record.content = plan.fields(&record);
        }
        Ok(record)
    }
}

impl Connector for HttpSource {
    async fn scan(
        &self,
        context: ScanContext,
        mut sink: RecordSink,
    ) -> Result<ScanReport, ConnectorError> {
        let config = &self.config;
        let first = reqwest::Url::parse(&config.url)
            .map_err(|error| failed("protocol", format!("url: {error}")))?;
        let mut first = first;
        let plan = self.plan_fingerprint(&context);
        let now = Utc::now().timestamp();
        let since = self.incremental_since(&context, &plan, now);
        if let (Some(since), Some(incremental)) = (&since, &config.incremental) {
            first
                .query_pairs_mut()
                .append_pair(&incremental.param, since);
        }
        // The newest change time seen (parsed, and as the API wrote it), and the
        // ids read, which an incremental read judges again.
        let mut newest: Option<(DateTime<Utc>, String)> = since.as_ref().and_then(|text| {
            parse_json_time(&Value::String(text.clone()), context.timezone)
                .map(|t| (t, text.clone()))
        });
        let mut every_item_dated = true;
        let mut read: Vec<String> = Vec::new();
        let mut report = ScanReport::default();
        let mut next = Some(first.clone());
        let mut page: u64 = 0;
        let mut offset: u64 = 0;
        let mut items_read: u64 = 0;
        // The item count the server announced, once it has.
        let mut expected: Option<u64> = None;
        while let Some(url) = next.take() {
            if context.cancel.is_cancelled() {
                return Err(ConnectorError::Cancelled);
            }
            page += 1;
            if page > config.max_pages {
                return Err(failed(
                    "protocol",
                    format!("more than max_pages = {} pages", config.max_pages),
                ));
            }
            let mut url = url;
            config.pagination.ask_for(&mut url, page, offset);
            let (headers, body) = self.get(&url, page, &mut report).await?;
            let where_ = format!("page {page} ({})", shown(&url));
            let document: Value = serde_json::from_slice(&body)
                .map_err(|error| failed("protocol", format!("{where_}: not JSON ({error})")))?;
            let items = if config.items.is_empty() {
                Some(&document)
            } else {
                document.pointer(&config.items)
            };
            let Some(Value::Array(items)) = items else {
                return Err(failed(
                    "protocol",
                    format!(
                        "{where_}: no array at {:?} (the mapped items)",
                        config.items
                    ),
                ));
            };
            for (index, item) in items.iter().enumerate() {
                let record = self.record(&context, item, &where_, index, &mut report)?;
                if let Some(incremental) = &config.incremental {
                    let changed = item.pointer(&incremental.field);
                    match changed.and_then(|value| {
                        parse_json_time(value, context.timezone).zip(text_of(value))
                    }) {
                        Some((time, text)) => {
                            if newest.as_ref().is_none_or(|(newest, _)| time > *newest) {
                                newest = Some((time, text));
                            }
                        }
                        None => every_item_dated = false,
                    }
                }
                if since.is_some() {
                    read.push(record.path.clone());
                }
                sink.send(record).await?;
                report.records += 1;
            }
            report.add_work("pages", 1);
            let count = items.len() as u64;
            items_read += count;
            let header_total = headers
                .get("x-total-count")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<u64>().ok());
            let total_items = |pointer: &Option<String>| {
                pointer
                    .as_deref()
                    .and_then(|pointer| document.pointer(pointer))
                    .and_then(Value::as_u64)
                    .or(header_total)
            };
            next = match &config.pagination {
                Pagination::None => None,
                Pagination::Page {
                    total, total_pages, ..
                } => {
                    let pages = total_pages
                        .as_deref()
                        .and_then(|pointer| document.pointer(pointer))
                        .and_then(Value::as_u64);
                    expected = total_items(total).or(expected);
                    let more = match (expected, pages) {
                        _ if count == 0 => false,
                        (Some(total), _) => items_read < total,
                        (None, Some(pages)) => page < pages,
                        (None, None) => true,
                    };
                    more.then(|| first.clone())
                }
                Pagination::Offset { total, .. } => {
                    offset += count;
                    expected = total_items(total).or(expected);
                    let more = match expected {
                        _ if count == 0 => false,
                        Some(total) => items_read < total,
                        None => true,
                    };
                    more.then(|| first.clone())
                }
                Pagination::Cursor {
                    param,
                    next,
                    last_item,
                    has_more,
                } => {
                    let more = has_more.as_deref().is_none_or(|pointer| {
                        document.pointer(pointer).and_then(Value::as_bool) == Some(true)
                    });
                    let cursor = match last_item {
                        Some(pointer) => items.last().and_then(|item| item.pointer(pointer)),
                        None => document.pointer(next),
                    };
                    match cursor.and_then(text_of).filter(|cursor| !cursor.is_empty()) {
                        Some(cursor) if more => {
                            let mut url = first.clone();
                            url.query_pairs_mut().append_pair(param, &cursor);
                            Some(url)
                        }
                        // More promised, but nothing to ask for it by.
                        None if more && has_more.is_some() => {
                            return Err(failed(
                                "protocol",
                                format!("{where_}: `has_more` is true but no cursor to go on from"),
                            ));
                        }
                        _ => None,
                    }
                }
                Pagination::Link => match next_link(&headers) {
                    None => None,
                    Some(link) => Some(same_origin(&url, &first, &link, &where_)?),
                },
                Pagination::NextUrl { next } => match document
                    .pointer(next)
                    .and_then(text_of)
                    .filter(|link| !link.is_empty())
                {
                    None => None,
                    Some(link) => Some(same_origin(&url, &first, &link, &where_)?),
                },
            };
        }
        if let Some(total) = expected
            && items_read < total
        {
            return Err(failed(
                "incomplete",
                format!(
                    "the API said it holds {total} items but gave {items_read} before its last page; the read is not complete"
                ),
            ));
        }
        sink.flush().await?;
        if config.incremental.is_some() && every_item_dated {
            let full_at = match &since {
                Some(_) => context.checkpoints.get(FULL_AT).cloned(),
                None => Some(now.to_string()),
            };
            if let (Some(full_at), Some((_, newest))) = (full_at, newest) {
                report.checkpoints.insert(FULL_AT.into(), full_at);
                report.checkpoints.insert(SINCE.into(), newest);
                report.checkpoints.insert(PLAN.into(), plan);
            }
        }
        if since.is_some() {
            read.sort();
            read.dedup();
            report.add_work("incremental", 1);
            report.carried.push(crate::CarriedScope {
                prefix: String::new(),
                gone: read,
                present: None,
                left_out: None,
            });
        }
        Ok(report)
    }
}

impl HttpSource {
    /// Fetch the first page, read-only, and check it is JSON with the mapped
    /// items: what `check-config --connect` runs.
    pub async fn probe(&self) -> Result<String, ConnectorError> {
        let config = &self.config;
        let mut url = reqwest::Url::parse(&config.url)
            .map_err(|error| failed("protocol", format!("url: {error}")))?;
        config.pagination.ask_for(&mut url, 1, 0);
        let mut report = ScanReport::default();
        let (_, body) = self.get(&url, 1, &mut report).await?;
        let document: Value = serde_json::from_slice(&body)
            .map_err(|error| failed("protocol", format!("page 1: not JSON ({error})")))?;
        let items = if config.items.is_empty() {
            Some(&document)
        } else {
            document.pointer(&config.items)
        };
        match items {
            Some(Value::Array(items)) => Ok(format!(
                "first page read: {} items at {:?}",
                items.len(),
                config.items
            )),
            _ => Err(failed(
                "protocol",
                format!("page 1: no array at {:?} (the mapped items)", config.items),
            )),
        }
    }

    /// What the reads serve: the rules and the mapping.
    fn plan_fingerprint(&self, context: &ScanContext) -> String {
        let config = &self.config;
        tillsyn_core::fingerprint::Fingerprint::new("http plan")
            .number(context.needs.plan)
            .text(&config.url)
            .text(&config.items)
            .text(&config.id)
            .optional(config.custodian.as_deref())
            .debug(&config.attributes)
            .debug(&config.dates)
            .optional(config.last_activity.as_deref())
            .hex()
    }

    /// The change time to read from, when this scan may be incremental.
    fn incremental_since(&self, context: &ScanContext, plan: &str, now: i64) -> Option<String> {
        let incremental = self.config.incremental.as_ref()?;
        let checkpoints = &context.checkpoints;
        let full_at: i64 = checkpoints.get(FULL_AT)?.parse().ok()?;
        let limit = i64::try_from(incremental.full_every_hours.saturating_mul(3600)).ok()?;
        let fresh = now.saturating_sub(full_at) < limit;
        (fresh && checkpoints.get(PLAN).map(String::as_str) == Some(plan))
            .then(|| checkpoints.get(SINCE).cloned())
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_link_headers_times_and_values() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::LINK,
            "<https://x.se/a?page=3>; rel=\"next\", <https://x.se/a?page=9>; rel=\"last\""
                .parse()
                .expect("header"),
        );
        assert_eq!(
            next_link(&headers).as_deref(),
            Some("https://x.se/a?page=3")
        );
        assert_eq!(next_link(&reqwest::header::HeaderMap::new()), None);
        let times = [
            (
                serde_json::json!("2024-01-15T10:30:00+02:00"),
                Some("2024-01-15T08:30:00+00:00"),
            ),
            (
                serde_json::json!("2024-01-15"),
                Some("2024-01-15T00:00:00+00:00"),
            ),
            (
                serde_json::json!(1_705_314_600),
                Some("2024-01-15T10:30:00+00:00"),
            ),
            (serde_json::json!("soon"), None),
            (serde_json::json!(true), None),
        ];
        for (value, expected) in times {
            let got = parse_json_time(&value, chrono_tz::UTC).map(|time| time.to_rfc3339());
            assert_eq!(got.as_deref(), expected, "{value}");
        }
        assert_eq!(
            text_of(&serde_json::json!(["a", "b"])).as_deref(),
            Some("a;b")
        );
        assert_eq!(text_of(&serde_json::json!(42)).as_deref(), Some("42"));
        assert_eq!(text_of(&Value::Null), None);
        let url = reqwest::Url::parse("https://user:pw@crm.se/api/cases?api_key=SECRET&page=2")
            .expect("url");
        assert_eq!(shown(&url), "https://crm.se/api/cases");
    }
}
