//! The languages tillsyn writes in: the report, digests and finding details
//! are rendered in the reader's language, so the language is a model type
//! every layer may name (the store renders English details for the CLI).

use serde::Deserialize;

/// A language output is written in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Swedish.
    #[default]
    Sv,
    /// English.
    En,
}

impl Language {
    /// Every language, in the order help texts list them.
    pub const ALL: [Language; 2] = [Language::Sv, Language::En];

    /// The config spelling, also the templates' folder name.
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Sv => "sv",
            Language::En => "en",
        }
    }
}

impl std::str::FromStr for Language {
    type Err = String;

    fn from_str(text: &str) -> Result<Language, String> {
        Language::ALL
            .into_iter()
            .find(|language| language.as_str().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| format!("unknown language {text:?}: expected sv or en"))
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for language in Language::ALL {
            assert_eq!(language.as_str().parse(), Ok(language));
            assert_eq!(language.to_string(), language.as_str());
        }
        assert_eq!(" EN ".parse(), Ok(Language::En));
        assert!("de".parse::<Language>().is_err());
    }
}
