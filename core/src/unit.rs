//! Names of sources and their units. A source may be scanned in parts (an
//! IMAP account at a time, when instances share the work); a part's lease,
//! its memory of records checked and its row in the fleet go by the source's
//! name, [`UNIT_SEPARATOR`], and the part's name. The store, the runner and
//! the fleet all read and write these names, so the format lives here once.

/// Separates a source's name from a unit's (`mail` + separator + `anna`).
/// A control character, so no source name holds it (the config refuses them).
pub const UNIT_SEPARATOR: char = '\u{1f}';

/// The name of `part` of `source`.
pub fn unit_name(source: &str, part: &str) -> String {
    format!("{source}{UNIT_SEPARATOR}{part}")
}

/// The prefix every unit name of `source` starts with.
pub fn units_prefix(source: &str) -> String {
    format!("{source}{UNIT_SEPARATOR}")
}

/// The source a lease, memory or unit name belongs to.
pub fn whole_source(name: &str) -> &str {
    name.split_once(UNIT_SEPARATOR)
        .map_or(name, |(source, _)| source)
}

/// The source and the part of a unit name; `None` for a whole source.
pub fn split_unit(name: &str) -> Option<(&str, &str)> {
    name.split_once(UNIT_SEPARATOR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_back() {
        let name = unit_name("mail", "anna@example.org");
        assert_eq!(whole_source(&name), "mail");
        assert_eq!(split_unit(&name), Some(("mail", "anna@example.org")));
        assert!(name.starts_with(&units_prefix("mail")));
        assert_eq!(whole_source("mail"), "mail");
        assert_eq!(split_unit("mail"), None);
    }
}
