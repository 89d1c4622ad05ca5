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

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tillsyn_core::secret;

mod checkpoint;
mod config;
mod read;
mod transport;

pub use config::{HttpAuth, HttpBuildError, HttpConfig, HttpIncremental, Pagination};
#[cfg(test)]
pub(crate) use read::{next_link, parse_json_time, text_of};
use transport::{Credentials, redirect_policy};

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

#[cfg(test)]
mod tests {
    use super::transport::shown;
    use super::*;
    use serde_json::Value;

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
