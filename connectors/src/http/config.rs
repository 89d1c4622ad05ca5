//! `type = "http"`: a CRM's or register's settings as the config writes
//! them: where, what each item maps to, how to authenticate and page.

use crate::RecordKind;
use crate::values::ValueMapping;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

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

pub(super) fn default_since_param() -> String {
    "updated_since".into()
}

pub(super) fn default_items() -> String {
    "/items".into()
}

pub(super) fn default_kind() -> RecordKind {
    RecordKind::CrmObject
}

pub(super) fn default_timeout_seconds() -> u64 {
    60
}

pub(super) fn default_attempts() -> u32 {
    4
}

pub(super) fn default_max_retry_after() -> u64 {
    120
}

pub(super) fn default_max_pages() -> u64 {
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

pub(super) fn default_next_url() -> String {
    "/next".into()
}

pub(super) fn default_page_param() -> String {
    "page".into()
}

pub(super) fn default_page_start() -> u64 {
    1
}

pub(super) fn default_size_param() -> String {
    "per_page".into()
}

pub(super) fn default_size() -> u64 {
    100
}

pub(super) fn default_offset_param() -> String {
    "offset".into()
}

pub(super) fn default_limit_param() -> String {
    "limit".into()
}

pub(super) fn default_cursor_param() -> String {
    "cursor".into()
}

pub(super) fn default_next() -> String {
    "/next_cursor".into()
}

/// Why this source could not be built (shared with the other network sources).
pub type HttpBuildError = crate::SourceSetupError;

impl Pagination {
    /// Add the query parameters that ask for page number `page` (counted from
    /// 1) or the items from `offset`, for the kinds that take them.
    pub(super) fn ask_for(&self, url: &mut reqwest::Url, page: u64, offset: u64) {
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
