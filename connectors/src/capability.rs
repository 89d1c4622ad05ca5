//! What some backends can do besides scanning, as traits a backend
//! implements where it can: split into units, search its server for a
//! person, look people up. [`crate::source::Source`] offers them over every
//! backend, `None` where one has none.

use std::collections::BTreeMap;

use crate::ConnectorError;

/// A source that splits into parts scanned on their own.
pub trait Units: Sized {
    /// The parts' names (an IMAP source's accounts); a part's record paths
    /// begin with its name.
    fn parts(&self) -> Vec<String>;

    /// The source reading `parts` only.
    fn only(&self, parts: &[String]) -> Self;
}

/// What a server is asked to find: addresses in a message's From, To or
/// Cc, texts anywhere in it, and `(attribute, value)` equalities of a
/// directory entry. A backend uses the terms it understands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchTerms {
    /// Mail addresses.
    pub addresses: Vec<String>,
    /// Free texts.
    pub texts: Vec<String>,
    /// Attribute equalities.
    pub attributes: Vec<(String, String)>,
}

impl SearchTerms {
    /// Whether there is nothing to ask.
    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty() && self.texts.is_empty() && self.attributes.is_empty()
    }
}

/// A server that finds the records naming a person, read-only.
pub trait ServerSearch {
    /// The ids of the records `terms` match.
    fn search(
        &self,
        terms: &SearchTerms,
    ) -> impl std::future::Future<Output = Result<Vec<String>, ConnectorError>> + Send;
}

/// A directory that gives attributes of people by name, read-only.
pub trait PeopleLookup {
    /// For each of `values` held in `attribute` by an entry, the first
    /// value of each of `wanted` the entry has.
    fn lookup(
        &self,
        attribute: &str,
        values: &[String],
        wanted: &[&str],
    ) -> impl std::future::Future<
        Output = Result<BTreeMap<String, BTreeMap<String, String>>, ConnectorError>,
    > + Send;
}
