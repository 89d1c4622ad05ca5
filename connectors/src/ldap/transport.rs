//! Reaching the directory: the bind (TLS by `ldaps://` or StartTLS, the
//! password), the next entry of a paged search with referrals counted, and
//! the server's errors in words and kinds.

use super::LdapSource;
use crate::{ConnectorError, ProblemKind, ScanContext, ScanReport};
use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use std::time::Duration;

/// The next entry of a search, `None` at its end. Referrals and entries ldap3
/// cannot decode are counted and skipped; a broken-off search fails the scan.
pub(super) async fn next_entry(
    stream: &mut ldap3::SearchStream<'_, String, Vec<String>>,
    context: &ScanContext,
    report: &mut ScanReport,
    what: &str,
) -> Result<Option<SearchEntry>, ConnectorError> {
    let mut entries = 0u64;
    loop {
        if context.cancel.is_cancelled() {
            return Err(ConnectorError::Cancelled);
        }
        let entry = match stream.next().await {
            Ok(Some(entry)) => entry,
            Ok(None) => return Ok(None),
            Err(error) => {
                return Err(unavailable(
                    "connection_lost",
                    format!(
                        "{what} broke off after {} entries: {error}",
                        report.records + entries
                    ),
                ));
            }
        };
        // Intermediate responses carry no entry (EntriesOnly would drop them,
        // and the references below with them).
        if entry.is_intermediate() {
            continue;
        }
        entries += 1;
        if entry.is_ref() {
            // What the referral points at is not read, and which entries it
            // holds is unknown: nothing of this source resolves this time.
            report.count(ProblemKind::Referral);
            if !report.unread_prefixes.iter().any(String::is_empty) {
                report.unread_prefixes.push(String::new());
                report.notes.push(format!(
                    "{what}: a referral was not followed; the scan is partial and no finding of this source resolves"
                ));
            }
            continue;
        }
        // ldap3 panics on entries it cannot decode: one bad entry is counted, it
        // does not end the daemon.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            SearchEntry::construct(entry)
        })) {
            Ok(entry) => return Ok(Some(entry)),
            Err(_) => {
                // Which entry it was is unknown (its DN is what could not be
                // read): nothing of this source resolves this time.
                report.count(ProblemKind::MalformedEntry);
                if !report.unread_prefixes.iter().any(String::is_empty) {
                    report.unread_prefixes.push(String::new());
                    report.notes.push(format!(
                        "{what}: an entry could not be decoded; the scan is partial and no finding of this source resolves"
                    ));
                }
            }
        }
    }
}

/// What an LDAP result code means, for messages (RFC 4511 §A.2).
pub(super) fn result_name(rc: u32) -> &'static str {
    match rc {
        0 => "success",
        3 => "time limit exceeded",
        4 => "size limit exceeded (is paging allowed for this bind?)",
        10 => "referral",
        11 => "admin limit exceeded (page_size above the server's limit?)",
        32 => "no such object (check base_dn)",
        34 => "invalid DN syntax",
        48 => "inappropriate authentication",
        49 => "invalid credentials (wrong bind DN or password)",
        50 => "insufficient access rights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwilling to perform",
        _ => "error",
    }
}

/// The kind of failure, by where it happened.
pub(super) fn unavailable(kind: &'static str, message: String) -> ConnectorError {
    ConnectorError::Unavailable { kind, message }
}

pub(super) fn classify(error: &ldap3::LdapError) -> &'static str {
    let text = error.to_string().to_lowercase();
    if text.contains("certificate") || text.contains("tls") || text.contains("handshake") {
        "tls"
    } else if matches!(error, ldap3::LdapError::Timeout { .. }) {
        "timeout"
    } else {
        "connect"
    }
}

/// Connections tried per scan or probe before the directory counts as
/// unreachable.
pub(super) const CONNECT_ATTEMPTS: u32 = 3;

impl LdapSource {
    /// Connect and bind read-only. A connection that cannot be made or
    /// times out is tried again ([`CONNECT_ATTEMPTS`] in all, waiting by the
    /// connectors' one [`crate::READ_RETRY`] backoff); a refused bind or a
    /// TLS failure is not, as trying again cannot change it.
    pub(super) async fn bind(&self) -> Result<ldap3::Ldap, ConnectorError> {
        let mut attempt = 1;
        loop {
            match self.bind_once().await {
                Err(ConnectorError::Unavailable { kind, .. })
                    if matches!(kind, "connect" | "timeout") && attempt < CONNECT_ATTEMPTS =>
                {
                    tracing::info!(
                        error_kind = kind,
                        attempt,
                        "LDAP connection failed; trying again."
                    );
                    tokio::time::sleep(crate::READ_RETRY.after(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// One attempt at [`LdapSource::bind`].
    async fn bind_once(&self) -> Result<ldap3::Ldap, ConnectorError> {
        let config = &self.config;
        let timeout = Duration::from_secs(config.timeout_seconds);
        let settings = LdapConnSettings::new()
            .set_conn_timeout(timeout)
            .set_starttls(config.starttls)
            .set_config(self.tls.clone());
        let (connection, mut ldap) = LdapConnAsync::with_settings(settings, &config.url)
            .await
            .map_err(|error| {
                unavailable(
                    classify(&error),
                    format!("cannot connect to {}: {error}", config.url),
                )
            })?;
        ldap3::drive!(connection);
        let password = std::str::from_utf8(self.password.expose())
            .map_err(|_| unavailable("auth", "the bind password is not UTF-8".into()))?;
        let bound = ldap
            .with_timeout(timeout)
            .simple_bind(&config.bind_dn, password)
            .await
            .map_err(|error| unavailable(classify(&error), format!("bind failed: {error}")))?;
        if bound.rc != 0 {
            return Err(unavailable(
                "auth",
                format!(
                    "bind as {} refused: {} ({}) {}",
                    config.bind_dn,
                    result_name(bound.rc),
                    bound.rc,
                    bound.text.trim()
                )
                .trim_end()
                .to_owned(),
            ));
        }
        Ok(ldap)
    }

    /// Bind and read the base entry alone (scope base, size limit 1),
    /// read-only: what `check-config --connect` runs.
    pub async fn probe(&self) -> Result<String, ConnectorError> {
        let config = &self.config;
        let timeout = Duration::from_secs(config.timeout_seconds);
        let mut ldap = self.bind().await?;
        let found = ldap
            .with_timeout(timeout)
            .with_search_options(ldap3::SearchOptions::new().sizelimit(1))
            .search(&config.base_dn, Scope::Base, "(objectClass=*)", vec!["1.1"])
            .await
            .map_err(|error| {
                unavailable(
                    classify(&error),
                    format!("search of the base failed: {error}"),
                )
            })?;
        let (entries, result) = (found.0, found.1);
        let _ = ldap.unbind().await;
        if result.rc != 0 || entries.is_empty() {
            return Err(unavailable(
                "protocol",
                format!(
                    "the base {} could not be read: {} ({})",
                    config.base_dn,
                    result_name(result.rc),
                    result.rc
                ),
            ));
        }
        Ok(format!("bound and read the base {}", config.base_dn))
    }
}
