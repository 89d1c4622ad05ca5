//! The directory searched for a person (`tillsyn subject`) and people
//! looked up by name (digests, departments), read-only.

use super::LdapSource;
use super::read::canonical_dn;
use super::transport::{classify, result_name, unavailable};
use crate::ConnectorError;
use ldap3::{Scope, SearchEntry};
use std::collections::BTreeMap;
use std::time::Duration;

impl LdapSource {
    /// Ask the directory for the entries (under the base, within the
    /// source's filter) where any `(attribute, value)` of `terms` holds: an
    /// equality match, as the directory's schema compares. Read-only; returns
    /// record ids (DNs, lower-cased). Used by `tillsyn subject` where the
    /// identity index does not cover a kind.
    pub(super) async fn search_entries(
        &self,
        terms: &[(String, String)],
    ) -> Result<Vec<String>, ConnectorError> {
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let config = &self.config;
        let timeout = Duration::from_secs(config.timeout_seconds);
        let any: String = terms
            .iter()
            .filter(|(attribute, _)| {
                !attribute.is_empty()
                    && attribute
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ';')
            })
            .map(|(attribute, value)| {
                format!("({attribute}={})", ldap3::ldap_escape(value.as_str()))
            })
            .collect();
        let filter = format!("(&{}(|{any}))", config.filter);
        let mut ldap = self.bind().await?;
        let found = ldap
            .with_timeout(timeout)
            .search(&config.base_dn, Scope::Subtree, &filter, vec!["1.1"])
            .await
            .map_err(|error| unavailable(classify(&error), format!("search failed: {error}")))?;
        let _ = ldap.unbind().await;
        let (entries, result) = (found.0, found.1);
        if result.rc != 0 {
            return Err(unavailable(
                "protocol",
                format!("search failed: {} ({})", result_name(result.rc), result.rc),
            ));
        }
        Ok(entries
            .into_iter()
            .map(|entry| canonical_dn(&SearchEntry::construct(entry).dn))
            .collect())
    }

    /// Look up entries by `attribute` (under the base, within the source's
    /// filter): for each of `values` that an entry holds, the first value of
    /// each of `wanted` it has. Read-only; asks only for those attributes, in
    /// searches of up to 100 values each. An attribute name that is not a
    /// plain name is refused.
    pub(super) async fn lookup_entries(
        &self,
        attribute: &str,
        values: &[String],
        wanted: &[&str],
    ) -> Result<BTreeMap<String, BTreeMap<String, String>>, ConnectorError> {
        let plain = |name: &str| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if !plain(attribute) || !wanted.iter().all(|name| plain(name)) {
            return Err(unavailable(
                "protocol",
                "lookup attributes must be plain attribute names".into(),
            ));
        }
        let mut found = BTreeMap::new();
        if values.is_empty() {
            return Ok(found);
        }
        let config = &self.config;
        let timeout = Duration::from_secs(config.timeout_seconds);
        let mut asked: Vec<String> = wanted.iter().map(|name| (*name).to_owned()).collect();
        asked.push(attribute.to_owned());
        let mut ldap = self.bind().await?;
        for chunk in values.chunks(100) {
            let any: String = chunk
                .iter()
                .map(|value| format!("({attribute}={})", ldap3::ldap_escape(value.as_str())))
                .collect();
            let filter = format!("(&{}(|{any}))", config.filter);
            let searched = ldap
                .with_timeout(timeout)
                .search(&config.base_dn, Scope::Subtree, &filter, asked.clone())
                .await
                .map_err(|error| {
                    unavailable(classify(&error), format!("lookup failed: {error}"))
                })?;
            let (entries, result) = (searched.0, searched.1);
            if result.rc != 0 {
                return Err(unavailable(
                    "protocol",
                    format!("lookup failed: {} ({})", result_name(result.rc), result.rc),
                ));
            }
            for entry in entries {
                let entry = SearchEntry::construct(entry);
                let attribute_of = |name: &str| {
                    entry
                        .attrs
                        .iter()
                        .find(|(key, _)| key.eq_ignore_ascii_case(name))
                        .and_then(|(_, values)| values.first().cloned())
                };
                let Some(key) = attribute_of(attribute) else {
                    continue;
                };
                // The value as asked for (the directory may answer in another case).
                let Some(asked_as) = chunk.iter().find(|value| value.eq_ignore_ascii_case(&key))
                else {
                    continue;
                };
                let mut attributes = BTreeMap::new();
                for name in wanted {
                    if let Some(value) = attribute_of(name) {
                        attributes.insert((*name).to_owned(), value);
                    }
                }
                found.entry(asked_as.clone()).or_insert(attributes);
            }
        }
        let _ = ldap.unbind().await;
        Ok(found)
    }
}

impl crate::capability::ServerSearch for LdapSource {
    async fn search(
        &self,
        terms: &crate::capability::SearchTerms,
    ) -> Result<Vec<String>, ConnectorError> {
        self.search_entries(&terms.attributes).await
    }
}

impl crate::capability::PeopleLookup for LdapSource {
    async fn lookup(
        &self,
        attribute: &str,
        values: &[String],
        wanted: &[&str],
    ) -> Result<BTreeMap<String, BTreeMap<String, String>>, ConnectorError> {
        self.lookup_entries(attribute, values, wanted).await
    }
}
