//! `[[sources]]`: one entry per store, tagged by `type`, each read into its
//! connector's own config.

use std::collections::BTreeMap;

use tillsyn_connectors::fileshare::{FileshareConfig, FileshareSource};
use tillsyn_connectors::http::{HttpConfig, HttpSource};
use tillsyn_connectors::imap::{ImapConfig, ImapSource};
use tillsyn_connectors::ldap::{LdapConfig, LdapSource};
use tillsyn_connectors::maildir::MaildirConfig;
use tillsyn_core::period::Period;
use tillsyn_core::schedule::Schedule;

use super::{Reader, Spanned};
use crate::*;

impl<'t> Reader<'t> {
    pub(super) fn source(&mut self, entry: Spanned<'_>) -> Option<SourceConfig> {
        let span = entry.span();
        let (mut common, rest) = self.split(
            entry,
            "sources",
            &[
                "name",
                "type",
                "schedule",
                "personal_paths",
                "scan_timeout",
                "identifiers",
            ],
        )?;
        let identifiers_value = common[5].take();
        let kind_value = common[1].take();
        let name = self.string(common[0].take(), "[[sources]] `name`", span.start)?;
        self.source_names.push((name.clone(), span.clone()));
        let what = format!("source {name:?}");
        let schedule = match common[2].take() {
            Some(value) => self.deserialize::<Schedule>(value, &what),
            None => Schedule::parse(DEFAULT_SCHEDULE).ok(),
        };
        let personal_paths = match common[3].take() {
            Some(value) => self.deserialize::<Vec<crate::rules::PathGlob>>(
                value,
                &format!("{what}: `personal_paths`"),
            ),
            None => Some(Vec::new()),
        };
        let scan_timeout = match common[4].take() {
            Some(value) => {
                let at = value.span().start;
                self.deserialize::<Period>(value, &format!("{what}: `scan_timeout`"))
                    .and_then(|period| match period.fixed() {
                        Some(duration) if !duration.is_zero() => Some(duration),
                        _ => {
                            self.issue(
                                Some(at),
                                format!("{what}: `scan_timeout` must be a fixed, non-zero time such as \"45min\" or \"6h\" (not months or years)"),
                            );
                            None
                        }
                    })
            }
            None => DEFAULT_SCAN_TIMEOUT
                .parse::<Period>()
                .ok()
                .and_then(|p| p.fixed()),
        };
        let kind_span = kind_value.as_ref().map(|value| value.span());
        let kind = self.string(kind_value, &format!("{what}: `type`"), span.start)?;
        let rest = match kind.as_str() {
            "fileshare" => self.renamed(rest, &what, &[(&[], "owner_from", "custodian_from")]),
            "imap" | "maildir" => {
                self.renamed(rest, &what, &[(&[], "owner_marks", "custodian_marks")])
            }
            "ldap" if self.refused(
                &rest,
                "owner_attribute",
                &format!(
                    "{what}: `owner_attribute` is gone: it meant both whom an entry is about and who must act on it. Name whom it is about in `identifiers` (`identifiers = {{ mail = \"email\" }}`, the attribute mapped in `attributes`): the identity index, `tillsyn subject` and erasure read those. Name who must act on it, if anyone, with `custodian_attribute` (`custodian_attribute = \"manager\"`): digests and the report's \"who\" go to custodians. Neither is guessed."
                ),
            ) =>
            {
                return None;
            }
            "http" if self.refused(
                &rest,
                "owner",
                &format!(
                    "{what}: `owner` is gone: it meant both whom an item is about and who must act on it. Name whom it is about in `identifiers` (`identifiers = {{ email = \"email\" }}`, the field mapped in `attributes`): the identity index, `tillsyn subject` and erasure read those. Name who must act on it, if anyone, with `custodian` (a JSON pointer to a case handler or account manager): digests and the report's \"who\" go to custodians. Neither is guessed."
                ),
            ) =>
            {
                return None;
            }
            _ => rest,
        };
        let settings = match kind.as_str() {
            "fileshare" => {
                let mut config: FileshareConfig = self.deserialize(rest, &what)?;
                config.root = self.resolve(&config.root);
                for pattern in &mut config.custodian_from {
                    if pattern.contains("{owner}") {
                        let at = self.locate(&span, "{owner}");
                        self.warning(
                            at,
                            format!("{what}: `{{owner}}` in `custodian_from` is now `{{custodian}}`; read as such in this release only"),
                        );
                        *pattern = pattern.replace("{owner}", "{custodian}");
                    }
                }
                if let Err(error) = FileshareSource::build(config.clone()) {
                    use tillsyn_connectors::fileshare::FileshareConfigError;
                    let glob = match &error {
                        FileshareConfigError::Glob { glob, .. } => glob.clone(),
                        FileshareConfigError::CustodianPattern { pattern, .. } => pattern.clone(),
                    };
                    let at = self.locate(&span, &glob);
                    self.issue(Some(at), format!("{what}: {error}"));
                    return None;
                }
                SourceSettings::Fileshare(config)
            }
            "maildir" => {
                let mut config: MaildirConfig = self.deserialize(rest, &what)?;
                config.root = self.resolve(&config.root);
                SourceSettings::Maildir(config)
            }
            "imap" => {
                let mut config: ImapConfig = self.deserialize(rest, &what)?;
                config.resolve_paths(|path| self.resolve(path));
                // Reads the credentials now, so a missing secret file is a config
                // error with its line, not a failed scan at night.
                if self.secrets.connectors
                    && let Err(error) = ImapSource::build(config.clone())
                {
                    let key = match &error {
                        tillsyn_connectors::imap::ImapBuildError::Tls(_) => "ca_file",
                        tillsyn_connectors::imap::ImapBuildError::Accounts(_) => "auth",
                    };
                    let at = self.locate(&span, key);
                    self.issue(Some(at), format!("{what}: {error}"));
                    return None;
                }
                SourceSettings::Imap(config)
            }
            "ldap" => {
                let mut config: LdapConfig = self.deserialize(rest, &what)?;
                LdapSource::resolve_paths(&mut config, |path| self.resolve(path));
                if self.secrets.connectors
                    && let Err(error) = LdapSource::build(config.clone())
                {
                    let key = match &error {
                        tillsyn_connectors::ldap::LdapBuildError::Secret(_) => "password_file",
                        tillsyn_connectors::ldap::LdapBuildError::Tls(_) => "ca_file",
                        tillsyn_connectors::ldap::LdapBuildError::Invalid(_) => "url",
                    };
                    let at = self.locate(&span, key);
                    self.issue(Some(at), format!("{what}: {error}"));
                    return None;
                }
                SourceSettings::Ldap(config)
            }
            "http" => {
                let mut config: HttpConfig = self.deserialize(rest, &what)?;
                HttpSource::resolve_paths(&mut config, |path| self.resolve(path));
                if self.secrets.connectors
                    && let Err(error) = HttpSource::build(config.clone())
                {
                    let key = match &error {
                        tillsyn_connectors::http::HttpBuildError::Secret(_) => "auth",
                        tillsyn_connectors::http::HttpBuildError::Tls(_) => "ca_file",
                        tillsyn_connectors::http::HttpBuildError::Invalid(_) => "url",
                    };
                    let at = self.locate(&span, key);
                    self.issue(Some(at), format!("{what}: {error}"));
                    return None;
                }
                SourceSettings::Http(config)
            }
            other => {
                self.issue(
                    kind_span.map(|span| span.start),
                    format!(
                        "{what}: unknown type {other:?}; expected \"fileshare\", \"maildir\", \"imap\", \"ldap\" or \"http\""
                    ),
                );
                return None;
            }
        };
        let identifiers = match identifiers_value {
            Some(value) => {
                let at = value.span().start;
                let identifiers = self.deserialize::<BTreeMap<String, String>>(
                    value,
                    &format!("{what}: `identifiers`"),
                )?;
                let mapped: Option<&BTreeMap<String, tillsyn_connectors::values::ValueMapping>> =
                    match &settings {
                        SourceSettings::Ldap(config) => Some(&config.attributes),
                        SourceSettings::Http(config) => Some(&config.attributes),
                        _ => None,
                    };
                for (attribute, kind) in &identifiers {
                    let known_kind = !kind.is_empty()
                        && kind
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                    if !known_kind {
                        self.issue(
                            Some(at),
                            format!(
                                "{what}: `identifiers`: kind {kind:?} of {attribute:?} must be \"email\", \"personnummer\", \"phone\" or a word in a-z, 0-9 and _"
                            ),
                        );
                    }
                    match mapped {
                        Some(mapped) if mapped.contains_key(attribute) => {}
                        Some(_) => self.issue(
                            Some(at),
                            format!(
                                "{what}: `identifiers` names {attribute:?}, which is not in its `attributes`"
                            ),
                        ),
                        None => self.issue(
                            Some(at),
                            format!(
                                "{what}: `identifiers` is for sources that map attributes (ldap, http)"
                            ),
                        ),
                    }
                }
                identifiers
            }
            None => BTreeMap::new(),
        };
        Some(SourceConfig {
            name,
            schedule: schedule?,
            scan_timeout: scan_timeout?,
            personal_paths: personal_paths?,
            identifiers,
            settings,
        })
    }
}
