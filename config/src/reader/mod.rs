//! The span-checking reader: walks the parsed document once, reads each
//! section and array entry on its own so a mistake in one does not hide a
//! mistake in another, and collects every problem with its line.
//!
//! The walk over the document is in [`document`]; sources, rules and the
//! other sections have a file each; this file holds the reader's state and
//! the helpers they share (lines, renamed and refused keys, deserialising a
//! spanned value, secrets from a file or the environment).

mod document;
mod rules;
mod sections;
mod sources;

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use tillsyn_core::secret::{self};
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::*;

pub(crate) type Spanned<'i> = toml::Spanned<DeValue<'i>>;

pub(crate) struct Reader<'t> {
    pub(crate) text: &'t str,
    pub(crate) base: &'t Path,
    pub(crate) secrets: Secrets,
    pub(crate) issues: Vec<ConfigIssue>,
    pub(crate) warnings: Vec<ConfigIssue>,
    pub(crate) upgrades: Vec<(std::ops::Range<usize>, String)>,
    /// Every source name read, with its entry's span, even when the entry has
    /// other errors: cross-checks still see it.
    pub(crate) source_names: Vec<(String, std::ops::Range<usize>)>,
    /// Every rule id and its `when.sources`, likewise.
    pub(crate) rule_refs: Vec<(String, std::ops::Range<usize>, Vec<String>)>,
    /// Every `[[detectors]]` name read, valid or not.
    pub(crate) detector_names: Vec<String>,
}

impl<'t> Reader<'t> {
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|byte| **byte == b'\n')
            .count()
            + 1
    }

    pub(crate) fn issue(&mut self, offset: Option<usize>, message: impl Into<String>) {
        let line = offset.map(|offset| self.line_of(offset));
        self.issues.push(ConfigIssue {
            line,
            message: message.into(),
        });
    }

    pub(crate) fn warning(&mut self, offset: usize, message: impl Into<String>) {
        let line = Some(self.line_of(offset));
        self.warnings.push(ConfigIssue {
            line,
            message: message.into(),
        });
    }

    /// `value` (a table) with keys renamed in a release under their new
    /// names: each `(path, old, new)` renames `old` to `new` in the table
    /// at `path` (empty: `value` itself; `["directory"]`: its `directory`
    /// table), with a warning naming the new key. The old name is read for
    /// one more release. A key that is there under both names is refused.
    pub(crate) fn renamed<'i>(
        &mut self,
        value: Spanned<'i>,
        what: &str,
        renames: &[(&[&str], &str, &str)],
    ) -> Spanned<'i> {
        let span = value.span();
        let table = match value.into_inner() {
            DeValue::Table(table) => table,
            other => return toml::Spanned::new(span, other),
        };
        let mut renamed = DeTable::new();
        let both: Vec<&str> = renames
            .iter()
            .filter(|(path, old, new)| {
                path.is_empty()
                    && table.iter().any(|(key, _)| key.get_ref() == old)
                    && table.iter().any(|(key, _)| key.get_ref() == new)
            })
            .map(|(_, old, _)| *old)
            .collect();
        for (key, inner) in table {
            let name = key.get_ref().to_string();
            let nested: Vec<(&[&str], &str, &str)> = renames
                .iter()
                .filter(|(path, _, _)| path.first() == Some(&name.as_str()))
                .map(|(path, old, new)| (&path[1..], *old, *new))
                .collect();
            let inner = if nested.is_empty() {
                inner
            } else {
                self.renamed(inner, &format!("{what}.{name}"), &nested)
            };
            match renames
                .iter()
                .find(|(path, old, _)| path.is_empty() && *old == name)
            {
                Some((_, old, new)) if both.contains(old) => {
                    self.issue(
                        Some(key.span().start),
                        format!("{what}: `{old}` is the old name of `{new}`; keep only `{new}`"),
                    );
                }
                Some((_, old, new)) => {
                    self.upgrades.push((key.span(), (*new).to_owned()));
                    self.warning(
                        key.span().start,
                        format!(
                            "{what}: `{old}` is now called `{new}`; it is read as `{new}` in this release only (`tillsyn check-config --upgrade` prints the config with the new names)"
                        ),
                    );
                    renamed.insert(
                        toml::Spanned::new(key.span(), std::borrow::Cow::Owned((*new).to_owned())),
                        inner,
                    );
                }
                None => {
                    renamed.insert(key, inner);
                }
            }
        }
        toml::Spanned::new(span, DeValue::Table(renamed))
    }

    /// Refuse `key` in `value` (a table) with `why`: a key whose old meaning
    /// was ambiguous, which no new key takes on alone. True when it was there.
    pub(crate) fn refused(&mut self, value: &Spanned<'_>, key: &str, why: &str) -> bool {
        let DeValue::Table(table) = value.get_ref() else {
            return false;
        };
        let found = table
            .iter()
            .find(|(name, _)| name.get_ref() == key)
            .map(|(name, _)| name.span().start);
        if let Some(offset) = found {
            self.issue(Some(offset), why.to_owned());
        }
        found.is_some()
    }

    /// The offset of `needle` inside the entry that starts at `span` (up to the
    /// next `[[…]]`, `[daemon]` or `[privacy]` header), else the entry's start:
    /// points an error found after parsing (a bad glob, an unknown source) at its
    /// line. Spans of tables cover only their header, hence the search.
    pub(crate) fn locate(&self, span: &std::ops::Range<usize>, needle: &str) -> usize {
        let start = span.start.min(self.text.len());
        let entry_end = self.entry_end(start);
        self.text[start..entry_end]
            .find(needle)
            .map(|found| start + found)
            .unwrap_or(start)
    }

    pub(crate) fn entry_end(&self, start: usize) -> usize {
        let mut offset = start;
        for line in self.text[start..].split_inclusive('\n') {
            let trimmed = line.trim_start();
            let top_level = trimmed.starts_with("[[")
                || (trimmed.starts_with('[')
                    && !trimmed.starts_with("[sources.")
                    && !trimmed.starts_with("[rules.")
                    && !trimmed.starts_with("[report."));
            if offset > start && top_level {
                return offset;
            }
            offset += line.len();
        }
        self.text.len()
    }

    pub(crate) fn resolve(&self, path: &Path) -> PathBuf {
        let text = path.to_string_lossy();
        if path.is_absolute()
            || text.starts_with("$CREDENTIALS_DIRECTORY")
            || text.starts_with("${")
        {
            path.to_path_buf()
        } else {
            self.base.join(path)
        }
    }

    pub(crate) fn deserialize<T: DeserializeOwned>(
        &mut self,
        value: Spanned<'_>,
        what: &str,
    ) -> Option<T> {
        let span = value.span();
        match T::deserialize(ValueDeserializer::from(value)) {
            Ok(parsed) => Some(parsed),
            Err(error) => {
                let offset = error.span().unwrap_or(span).start;
                self.issue(Some(offset), format!("{what}: {}", error.message()));
                None
            }
        }
    }

    /// A secret of `section` from a file or an environment variable (the
    /// keys named `names`), or none when neither is set. `None` when both are
    /// set or the one set cannot be read: the problem is reported.
    pub(crate) fn file_or_env(
        &mut self,
        section: &str,
        names: (&str, &str),
        (file, env): (Option<&Path>, Option<&str>),
        span: &std::ops::Range<usize>,
    ) -> Option<Option<secret::Secret>> {
        let (file_key, env_key) = names;
        let (read, key) = match (file, env) {
            (Some(_), Some(_)) => {
                self.issue(
                    Some(self.locate(span, env_key)),
                    format!("{section}: set `{file_key}` or `{env_key}`, not both"),
                );
                return None;
            }
            (Some(path), None) => (secret::read_file(&self.resolve(path)), file_key),
            (None, Some(name)) => (secret::read_env(name), env_key),
            (None, None) => return Some(None),
        };
        match read {
            Ok(secret) => Some(Some(secret)),
            Err(error) => {
                self.issue(Some(self.locate(span, key)), format!("{section}: {error}"));
                None
            }
        }
    }

    pub(crate) fn array<'i>(&mut self, value: Spanned<'i>, name: &str) -> Vec<Spanned<'i>> {
        let span = value.span();
        match value.into_inner() {
            DeValue::Array(array) => array.into_iter().collect(),
            _ => {
                self.issue(
                    Some(span.start),
                    format!("`{name}` must be an array of tables: write [[{name}]]"),
                );
                Vec::new()
            }
        }
    }

    /// Split an entry into its common keys (taken out, as raw values) and the rest.
    pub(crate) fn split<'i>(
        &mut self,
        entry: Spanned<'i>,
        section: &str,
        common: &[&str],
    ) -> Option<(Vec<Option<Spanned<'i>>>, Spanned<'i>)> {
        let span = entry.span();
        let DeValue::Table(table) = entry.into_inner() else {
            self.issue(
                Some(span.start),
                format!("each [[{section}]] entry must be a table"),
            );
            return None;
        };
        let mut taken: Vec<Option<Spanned<'i>>> = common.iter().map(|_| None).collect();
        let mut rest = DeTable::new();
        for (key, value) in table {
            match common
                .iter()
                .position(|name| *name == key.get_ref().as_ref())
            {
                Some(index) => taken[index] = Some(value),
                None => {
                    rest.insert(key, value);
                }
            }
        }
        Some((taken, toml::Spanned::new(span, DeValue::Table(rest))))
    }

    pub(crate) fn string(
        &mut self,
        value: Option<Spanned<'_>>,
        what: &str,
        at: usize,
    ) -> Option<String> {
        match value {
            None => {
                self.issue(Some(at), format!("{what} is missing"));
                None
            }
            Some(value) => self.deserialize::<String>(value, what),
        }
    }
}
