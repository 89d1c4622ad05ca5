//! Every backend behind one dispatch: a configured source's settings
//! ([`SourceSettings`], by `type`), the connector built from them
//! ([`Source`]), and what some backends can do besides scanning, as
//! capability traits:
//!
//! - [`Units`] (in [`crate::capability`], as the other two): the source splits into parts scanned on their own when
//!   instances share the work (an IMAP source's accounts);
//! - [`ServerSearch`]: the server finds the records that name a person
//!   (IMAP `SEARCH`, an LDAP filter), for `tillsyn subject`;
//! - [`PeopleLookup`]: a directory gives attributes of people by name (a
//!   custodian's address, language or department).
//!
//! A caller asks [`Source`] for a capability and gets `None` where the
//! backend has none; only this file matches on the kind of backend.

use std::collections::BTreeMap;

use crate::capability::{PeopleLookup, SearchTerms, ServerSearch, Units};
use crate::fileshare::{FileshareConfig, FileshareSource};
use crate::http::{HttpConfig, HttpSource};
use crate::imap::{ImapConfig, ImapSource};
use crate::ldap::{LdapConfig, LdapSource};
use crate::maildir::{MaildirConfig, MaildirSource};
use crate::{Connector, ConnectorError, RecordSink, ScanContext, ScanReport};

/// The kinds of store, by `type`, each with its connector's own settings.
#[derive(Debug, Clone)]
pub enum SourceSettings {
    /// `type = "fileshare"`.
    Fileshare(FileshareConfig),
    /// `type = "maildir"`.
    Maildir(MaildirConfig),
    /// `type = "imap"`.
    Imap(ImapConfig),
    /// `type = "ldap"`.
    Ldap(LdapConfig),
    /// `type = "http"`.
    Http(HttpConfig),
}

impl SourceSettings {
    /// The `type` spelling.
    pub fn type_name(&self) -> &'static str {
        match self {
            SourceSettings::Fileshare(_) => "fileshare",
            SourceSettings::Maildir(_) => "maildir",
            SourceSettings::Imap(_) => "imap",
            SourceSettings::Ldap(_) => "ldap",
            SourceSettings::Http(_) => "http",
        }
    }
}

/// A source built from its settings, ready to scan. One arm per backend.
#[derive(Debug, Clone)]
pub enum Source {
    /// A file share.
    Fileshare(Box<FileshareSource>),
    /// Local Maildirs.
    Maildir(MaildirSource),
    /// Mailboxes over IMAP.
    Imap(ImapSource),
    /// A directory over LDAP.
    Ldap(LdapSource),
    /// A CRM or register over HTTP.
    Http(HttpSource),
}

/// Why a source could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The file-share config is invalid.
    #[error(transparent)]
    Fileshare(#[from] crate::fileshare::FileshareConfigError),
    /// The IMAP credentials or TLS settings could not be read.
    #[error(transparent)]
    Imap(#[from] crate::imap::ImapBuildError),
    /// The LDAP or HTTP settings could not be used.
    #[error(transparent)]
    Network(#[from] crate::SourceSetupError),
}

impl Source {
    /// Build the connector for `settings`.
    pub fn build(settings: &SourceSettings) -> Result<Source, BuildError> {
        Ok(match settings {
            SourceSettings::Fileshare(settings) => {
                Source::Fileshare(Box::new(FileshareSource::build(settings.clone())?))
            }
            SourceSettings::Maildir(settings) => {
                Source::Maildir(MaildirSource::build(settings.clone()))
            }
            SourceSettings::Imap(settings) => Source::Imap(ImapSource::build(settings.clone())?),
            SourceSettings::Ldap(settings) => Source::Ldap(LdapSource::build(settings.clone())?),
            SourceSettings::Http(settings) => Source::Http(HttpSource::build(settings.clone())?),
        })
    }

    /// The parts the source splits into ([`Units`]); empty when it is
    /// scanned whole.
    pub fn parts(&self) -> Vec<String> {
        match self {
            Source::Imap(source) => source.parts(),
            Source::Fileshare(_) | Source::Maildir(_) | Source::Ldap(_) | Source::Http(_) => {
                Vec::new()
            }
        }
    }

    /// The source reading `parts` only; a source without parts reads all.
    pub fn only(&self, parts: &[String]) -> Source {
        match self {
            Source::Imap(source) => Source::Imap(source.only(parts)),
            other => other.clone(),
        }
    }

    /// Try the source read-only without scanning it (`check-config --connect`):
    /// IMAP login and LIST for every account, LDAP bind and a one-entry search of
    /// the base, the first HTTP page, share and Maildir roots listed.
    pub async fn probe(&self) -> Result<String, ConnectorError> {
        match self {
            Source::Fileshare(source) => source.probe(),
            Source::Maildir(source) => source.probe(),
            Source::Imap(source) => source.probe().await,
            Source::Ldap(source) => source.probe().await,
            Source::Http(source) => source.probe().await,
        }
    }

    /// Ask the server for the records `terms` match ([`ServerSearch`]);
    /// `None` when the backend cannot search.
    pub async fn search(&self, terms: &SearchTerms) -> Option<Result<Vec<String>, ConnectorError>> {
        match self {
            Source::Imap(source) => Some(source.search(terms).await),
            Source::Ldap(source) => Some(source.search(terms).await),
            Source::Fileshare(_) | Source::Maildir(_) | Source::Http(_) => None,
        }
    }

    /// Look people up ([`PeopleLookup`]); `None` when the backend is no
    /// directory.
    pub async fn lookup(
        &self,
        attribute: &str,
        values: &[String],
        wanted: &[&str],
    ) -> Option<Result<BTreeMap<String, BTreeMap<String, String>>, ConnectorError>> {
        match self {
            Source::Ldap(source) => Some(source.lookup(attribute, values, wanted).await),
            _ => None,
        }
    }
}

impl Connector for Source {
    async fn scan(
        &self,
        context: ScanContext,
        sink: RecordSink,
    ) -> Result<ScanReport, ConnectorError> {
        match self {
            Source::Fileshare(source) => source.scan(context, sink).await,
            Source::Maildir(source) => source.scan(context, sink).await,
            Source::Imap(source) => source.scan(context, sink).await,
            Source::Ldap(source) => source.scan(context, sink).await,
            Source::Http(source) => source.scan(context, sink).await,
        }
    }
}
