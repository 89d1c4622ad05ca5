//! Reaching the API: credentials (a key, a bearer token, OAuth 2 client
//! credentials), redirects kept to the configured origin, and one page
//! fetched with retries after 429, 5xx and broken connections.

use super::HttpSource;
use crate::{ConnectorError, ScanReport};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tillsyn_core::secret::Secret;

#[derive(Debug, Clone)]
pub(super) enum Credentials {
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

/// Why a redirect was not followed: it led to another origin while
/// credentials travel with the requests.
#[derive(Debug)]
pub(super) struct ForeignRedirect(String);

impl std::fmt::Display for ForeignRedirect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a redirect to another origin ({})", self.0)
    }
}

impl std::error::Error for ForeignRedirect {}

/// Redirects as credentials allow: with any credential configured, only to
/// the origin (scheme, host and port) the request went to, at most 10;
/// without, like a browser (10 at most).
pub(super) fn redirect_policy(guarded: bool) -> reqwest::redirect::Policy {
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
pub(super) fn refused_redirect(error: &reqwest::Error) -> Option<String> {
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

/// A URL fit for a message: no query string (it may carry keys), no userinfo.
pub(super) fn shown(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

/// A next-page link, resolved against the page it came from, if it stays at
/// the configured URL's origin (scheme, host and port): credentials go nowhere
/// else, and a link elsewhere fails the scan.
pub(super) fn same_origin(
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

pub(super) fn failed(kind: &'static str, message: String) -> ConnectorError {
    ConnectorError::Unavailable { kind, message }
}

impl HttpSource {
    /// GET one page, trying again after 429, 5xx and broken connections.
    /// The OAuth 2 access token: the one kept, unless it runs out within a
    /// minute or `renew` asks for a new one.
    pub(super) async fn oauth_token(&self, renew: bool) -> Result<Secret, ConnectorError> {
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

    pub(super) async fn get(
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
}
