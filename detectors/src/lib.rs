//! Personal data in text, found and judged with checksums and context: the
//! detectors behind tillsyn's `contains` rule (promise P3, "send personal
//! data by mail as little as possible") and, through the keyed hashes of
//! what they match, the identity index of data-subject lookups.
//!
//! Pure functions over bytes: no I/O, no clock (today's date is a parameter),
//! no allocation per byte. Candidates are the matches of one multi-pattern
//! regex of every detector's pattern (`regex-automata`'s meta engine,
//! leftmost-first), whatever the number of detectors. Patterns use ASCII
//! classes and ASCII word boundaries (`(?-u:\b)`): a Unicode `\b` makes the
//! fast engine give up at the first å, ä or ö, about 15× slower on Swedish
//! text. The built-ins find the same matches without walking the regex over
//! every byte: `digit_runs` for the personnummer alone, `spans` for any
//! other set (custom detectors then have a regex of their own over the
//! whole text, merged in). Context keywords (personnummer, född, …; and
//! words that speak against a match: faktura, OCR, orgnr, …) are looked for
//! only around candidates that validated ([`context`]).
//!
//! Each candidate is then validated by its kind (date and Luhn, mod 97, card
//! prefixes, octets) and given a [`Confidence`]. What leaves this crate is the
//! detector, the confidence, the place, and a *normalised* value for the caller
//! to hash with its key (lower-case e-mail, 12-digit personnummer, E.164
//! phone); tillsyn never stores or prints the value itself.
//!
//! Layout: [`personnummer`] (the Swedish identity number rules), [`checksum`]
//! (Luhn, mod 97), [`validate`] (every other kind), [`context`] (keyword
//! windows), `digit_runs` and `spans` (the built-ins' own scanners), `swar`
//! (their byte tests eight at a time). The set, its configuration and the
//! scan are here.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::panic)]

pub mod checksum;
pub mod context;
mod digit_runs;
pub mod personnummer;
mod spans;
mod swar;
pub mod validate;

use regex_automata::meta::Regex;

pub use personnummer::Today;

/// An identifier as someone gave it (a privacy officer's request, a line of an
/// erasure register, a directory attribute) in the canonical form the
/// detectors give the same identifier found in text, so that both hash alike:
/// a personnummer or samordningsnummer as 12 digits (an organisationsnummer is
/// refused), a phone number in E.164, an e-mail address in lower case, IBAN
/// and card digits without spaces. `None` when it is not one.
pub fn canonical(kind: Builtin, text: &str, today: Today) -> Option<String> {
    let text = text.trim();
    let text = if kind == Builtin::Email {
        text.strip_prefix("mailto:").unwrap_or(text)
    } else {
        text
    };
    match kind {
        Builtin::Personnummer => {
            let compact: Vec<u8> = text.bytes().filter(|byte| *byte != b' ').collect();
            match personnummer::judge(&compact, today) {
                personnummer::Verdict::Person { canonical, .. } => {
                    Some(canonical.iter().map(|digit| char::from(*digit)).collect())
                }
                _ => None,
            }
        }
        _ => validate::builtin(kind, text.as_bytes()).map(|(_, value)| value),
    }
}

/// How sure a match is. Ordered: `Low < Medium < High`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Confidence {
    /// Valid, with nothing around it that says what it is (a bare 10-digit
    /// personnummer: about 0.7 % of random 10-digit numbers pass).
    Low,
    /// Valid and written as such a number is written.
    Medium,
    /// Valid, written as such, and named nearby ("personnummer: …").
    High,
}

impl Confidence {
    /// Config and output spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }

    /// One level down; `None` below low.
    fn demoted(self) -> Option<Confidence> {
        match self {
            Confidence::High => Some(Confidence::Medium),
            Confidence::Medium => Some(Confidence::Low),
            Confidence::Low => None,
        }
    }

    /// One level up.
    fn promoted(self) -> Confidence {
        match self {
            Confidence::Low => Confidence::Medium,
            Confidence::Medium | Confidence::High => Confidence::High,
        }
    }
}

/// The built-in kinds of personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Builtin {
    /// Swedish personnummer and samordningsnummer.
    Personnummer,
    /// International bank account numbers.
    Iban,
    /// Payment card numbers.
    PaymentCard,
    /// Swedish phone numbers.
    Phone,
    /// E-mail addresses.
    Email,
    /// IPv4 addresses.
    Ipv4,
    /// IPv6 addresses.
    Ipv6,
}

impl Builtin {
    /// Every built-in detector.
    pub const ALL: &'static [Builtin] = &[
        Builtin::Personnummer,
        Builtin::Iban,
        Builtin::PaymentCard,
        Builtin::Phone,
        Builtin::Email,
        Builtin::Ipv4,
        Builtin::Ipv6,
    ];

    /// Config and output spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Builtin::Personnummer => "personnummer",
            Builtin::Iban => "iban",
            Builtin::PaymentCard => "payment_card",
            Builtin::Phone => "phone",
            Builtin::Email => "email",
            Builtin::Ipv4 => "ipv4",
            Builtin::Ipv6 => "ipv6",
        }
    }

    /// The built-in named `name`.
    pub fn named(name: &str) -> Option<Builtin> {
        Builtin::ALL
            .iter()
            .copied()
            .find(|builtin| builtin.as_str() == name)
    }

    /// The candidate pattern: ASCII classes and ASCII word boundaries only.
    /// Public so that benchmarks can give a peer tool the same candidates.
    pub fn pattern(self) -> &'static str {
        match self {
            // 10 or 12 digits, at most one - or + before the last four.
            Builtin::Personnummer => r"(?-u:\b)(?:[0-9]{2})?[0-9]{6}[-+]?[0-9]{4}(?-u:\b)",
            // Two letters, two check digits, then 11–30 letters and digits,
            // in groups of four (spaces allowed between groups).
            Builtin::Iban => {
                r"(?-u:\b)[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?-u:\b)"
            }
            // 12–19 digits, in groups split by single spaces or dashes.
            Builtin::PaymentCard => r"(?-u:\b)[0-9]{4}(?:[ -]?[0-9]{2,4}){2,4}(?-u:\b)",
            // +46 / 0046 / 0, an area or mobile prefix, then 5–8 more digits with
            // single spaces or dashes between groups.
            Builtin::Phone => {
                r"(?:\+46|(?-u:\b)0046|(?-u:\b)0)[ -]?(?:\(0\)[ -]?)?[1-9][0-9]{0,2}[ -]?[0-9](?:[ -]?[0-9]){4,7}(?-u:\b)"
            }
            // Unbounded parts (lengths are checked after): counted repetitions
            // multiply the automaton's states and slow the whole set down.
            Builtin::Email => {
                r"(?-u:\b)[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}(?-u:\b)"
            }
            Builtin::Ipv4 => r"(?-u:\b)[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?-u:\b)",
            // Colon-separated hex groups, validated by the standard parser.
            Builtin::Ipv6 => r"[0-9A-Fa-f]*(?::[0-9A-Fa-f]*){2,}",
        }
    }
}

/// A detector an organisation defines in its config: its own customer or
/// patient numbers, without code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomDetector {
    /// Its name, as rules and findings name it.
    pub name: String,
    /// The candidate pattern (regex syntax; write ASCII classes and
    /// `(?-u:\b)` for speed).
    pub pattern: String,
    /// A check the whole match (its digits, or letters and digits for mod 97)
    /// must pass.
    pub checksum: Option<Checksum>,
    /// Words that, within `window` bytes, make a match high confidence.
    pub keywords: Vec<String>,
    /// Bytes either side a keyword may stand. Default [`DEFAULT_WINDOW`].
    pub window: usize,
}

/// A custom detector's checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// Luhn over the match's digits.
    Luhn,
    /// ISO 7064 mod 97-10 over the match's letters and digits (as IBAN).
    Mod97,
}

/// Bytes either side of a match in which context words count: about ten words
/// of running text. A documented default; a custom detector sets its own.
pub const DEFAULT_WINDOW: usize = 64;

/// Why a detector set could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A custom pattern does not compile.
    #[error("detector {name:?}: invalid pattern: {message}")]
    Pattern {
        /// The detector.
        name: String,
        /// Why.
        message: String,
    },
}

/// Which detector a match came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DetectorId {
    /// A built-in one.
    Builtin(Builtin),
    /// The custom detector at this index of the set's list.
    Custom(usize),
}

/// One match: which detector, how sure, where, and the normalised value for the
/// caller to hash (never to store or print).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// The detector.
    pub detector: DetectorId,
    /// How sure.
    pub confidence: Confidence,
    /// Byte range in the text.
    pub start: usize,
    /// End of the byte range (exclusive).
    pub end: usize,
    /// The value in its canonical form: 12-digit personnummer, E.164 phone,
    /// lower-case e-mail, IBAN and card digits without spaces, the address as
    /// parsed.
    pub normalised: String,
}

/// One match as [`DetectorSet::scan_each`] hands it over: the normalised value
/// is borrowed and lives until the next match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found<'a> {
    /// The detector.
    pub detector: DetectorId,
    /// How sure.
    pub confidence: Confidence,
    /// Byte range in the text.
    pub start: usize,
    /// End of the byte range (exclusive).
    pub end: usize,
    /// The value in its canonical form (see [`Match::normalised`]).
    pub normalised: &'a str,
}

/// A compiled set of detectors, shared by every scan (cheap to share: build
/// once, use from many threads).
#[derive(Debug)]
pub struct DetectorSet {
    /// Pattern index → detector.
    detectors: Vec<DetectorId>,
    customs: Vec<CustomDetector>,
    context: context::Context,
    /// The widest window of any detector in the set.
    widest: usize,
    finder: Finder,
}

/// How a set finds the matches of its regex: each way finds the same.
#[derive(Debug)]
enum Finder {
    /// The personnummer alone: [`digit_runs`].
    DigitRuns,
    /// Built-ins without custom detectors: their regex over the spans
    /// around trigger bytes (`spans`).
    Spans(Regex),
    /// Built-ins and custom detectors: the built-ins' regex over its spans,
    /// and a regex of the customs' patterns (which may hold anything) over
    /// the whole text, merged ([`spans::WithCustoms`]).
    WithCustoms {
        /// The built-in patterns.
        builtins: Regex,
        /// The custom patterns.
        customs: Regex,
    },
    /// The one regex of every pattern over the whole text: what the others
    /// stand in for.
    Whole(Regex),
}

impl DetectorSet {
    /// Every built-in detector and `customs`.
    pub fn new(customs: Vec<CustomDetector>) -> Result<DetectorSet, BuildError> {
        DetectorSet::with(Builtin::ALL, customs)
    }

    /// The built-ins named and `customs`.
    ///
    /// The built-ins are scanned by their own scanners, with the same
    /// matches as the one regex over the whole text (see
    /// [`DetectorSet::general`]): the personnummer alone (a `contains
    /// personnummer` rule) by its digit runs, any other set by the spans
    /// around digits, `@` and `:`; custom detectors by a regex of their own
    /// over the whole text, merged with the built-ins' matches.
    pub fn with(
        builtins: &[Builtin],
        customs: Vec<CustomDetector>,
    ) -> Result<DetectorSet, BuildError> {
        DetectorSet::build(builtins, customs, true)
    }

    /// The built-ins named and `customs`, always scanned by the one regex of
    /// every candidate pattern over the whole text: what the scanners of
    /// [`DetectorSet::with`] stand in for. Public for the property tests and
    /// the benchmark that compare them.
    pub fn general(
        builtins: &[Builtin],
        customs: Vec<CustomDetector>,
    ) -> Result<DetectorSet, BuildError> {
        DetectorSet::build(builtins, customs, false)
    }

    /// [`DetectorSet::with`] (`scanners`) or [`DetectorSet::general`]: only
    /// the regexes the chosen finder searches with are built.
    fn build(
        builtins: &[Builtin],
        customs: Vec<CustomDetector>,
        scanners: bool,
    ) -> Result<DetectorSet, BuildError> {
        let mut detectors: Vec<DetectorId> = builtins
            .iter()
            .map(|builtin| DetectorId::Builtin(*builtin))
            .collect();
        for (index, custom) in customs.iter().enumerate() {
            if let Err(error) = Regex::new(&custom.pattern) {
                // The syntax error says where and why; the build error alone
                // only says which pattern.
                let message = error
                    .syntax_error()
                    .map_or_else(|| error.to_string(), ToString::to_string);
                return Err(BuildError::Pattern {
                    name: custom.name.clone(),
                    message,
                });
            }
            // A candidate holds something; an empty one would be a match
            // at every place the pattern allows.
            let empty = regex_automata::util::syntax::parse(&custom.pattern)
                .is_ok_and(|hir| hir.properties().minimum_len() == Some(0));
            if empty {
                return Err(BuildError::Pattern {
                    name: custom.name.clone(),
                    message: "it matches the empty string; a candidate must hold at least one \
                              character"
                        .into(),
                });
            }
            detectors.push(DetectorId::Custom(index));
        }
        // Pattern index → detector: the built-ins' first, then the customs'.
        let builtin_patterns: Vec<String> = builtins
            .iter()
            .map(|builtin| builtin.pattern().to_owned())
            .collect();
        let custom_patterns: Vec<String> = customs
            .iter()
            .map(|custom| custom.pattern.clone())
            .collect();
        let finder = if !scanners {
            Finder::Whole(build_regex(
                &[builtin_patterns.as_slice(), custom_patterns.as_slice()].concat(),
            )?)
        } else if !customs.is_empty() {
            Finder::WithCustoms {
                builtins: build_regex(&builtin_patterns)?,
                customs: build_regex(&custom_patterns)?,
            }
        } else if builtins == [Builtin::Personnummer] {
            Finder::DigitRuns
        } else {
            Finder::Spans(build_regex(&builtin_patterns)?)
        };
        let context = context::Context::new(&customs);
        let widest = customs
            .iter()
            .map(|custom| custom.window)
            .fold(DEFAULT_WINDOW, usize::max);
        Ok(DetectorSet {
            detectors,
            customs,
            context,
            widest,
            finder,
        })
    }

    /// A detector's name.
    pub fn name(&self, detector: DetectorId) -> &str {
        match detector {
            DetectorId::Builtin(builtin) => builtin.as_str(),
            DetectorId::Custom(index) => self
                .customs
                .get(index)
                .map(|custom| custom.name.as_str())
                .unwrap_or("custom"),
        }
    }

    /// Every match in `text` at `min` confidence or above.
    pub fn scan(&self, text: &[u8], today: Today, min: Confidence) -> Vec<Match> {
        let mut matches = Vec::new();
        self.scan_each(text, today, min, |found| {
            matches.push(Match {
                detector: found.detector,
                confidence: found.confidence,
                start: found.start,
                end: found.end,
                normalised: found.normalised.to_owned(),
            });
        });
        matches
    }

    /// [`DetectorSet::scan`], handing each match to `visit` with its
    /// normalised value borrowed: nothing is allocated per match for the
    /// common kinds, so a caller that only counts or hashes pays for neither.
    pub fn scan_each(
        &self,
        text: &[u8],
        today: Today,
        min: Confidence,
        mut visit: impl FnMut(Found<'_>),
    ) {
        // Candidates come in text order, so each is judged as it comes and
        // the keywords are searched for in its window when it validated.
        let mut keywords = context::Keywords::new(&self.context, text, self.widest);
        let mut values = [String::new(), String::new()];
        let mut candidate = |detector: DetectorId, start: usize, end: usize| {
            let judged = self.judge(detector, &text[start..end], today, &mut values);
            let moved = judged
                .iter()
                .flatten()
                .any(|(_, detector)| self.context.moves(*detector));
            if moved {
                keywords.cover(
                    start.saturating_sub(self.widest),
                    end.saturating_add(self.widest),
                );
            }
            self.visit_judged(
                judged,
                start,
                end,
                &keywords.found,
                min,
                &values,
                &mut visit,
            );
        };
        match &self.finder {
            Finder::DigitRuns => {
                let detector = DetectorId::Builtin(Builtin::Personnummer);
                for (start, end) in digit_runs::Candidates::new(text) {
                    candidate(detector, start, end);
                }
            }
            Finder::Spans(regex) => {
                for (pattern, start, end) in spans::Spans::new(regex, text) {
                    if let Some(detector) = self.detectors.get(pattern) {
                        candidate(*detector, start, end);
                    }
                }
            }
            Finder::WithCustoms { builtins, customs } => {
                let count = self.detectors.len() - self.customs.len();
                for (pattern, start, end) in spans::WithCustoms::new(builtins, count, customs, text)
                {
                    if let Some(detector) = self.detectors.get(pattern) {
                        candidate(*detector, start, end);
                    }
                }
            }
            Finder::Whole(regex) => {
                for found in regex.find_iter(text) {
                    if let Some(detector) = self.detectors.get(found.pattern().as_usize()) {
                        candidate(*detector, found.start(), found.end());
                    }
                }
            }
        }
    }

    /// Each of `judged` (from [`DetectorSet::judge`], values in `values`)
    /// moved by its context and handed to `visit` if at `min` or above.
    #[allow(clippy::too_many_arguments)]
    fn visit_judged(
        &self,
        judged: [Option<(Confidence, DetectorId)>; 2],
        start: usize,
        end: usize,
        keywords: &context::Found,
        min: Confidence,
        values: &[String; 2],
        visit: &mut impl FnMut(Found<'_>),
    ) {
        for (slot, judged) in judged.into_iter().enumerate() {
            let Some((confidence, detector)) = judged else {
                continue;
            };
            let confidence = match self.apply_context(detector, confidence, keywords, start, end) {
                Some(confidence) if confidence >= min => confidence,
                _ => continue,
            };
            visit(Found {
                detector,
                confidence,
                start,
                end,
                normalised: &values[slot],
            });
        }
    }

    /// The candidate judged as what its pattern says, and (for a digit run)
    /// as a phone number too: up to two (confidence before context, detector),
    /// each with its normalised value written into the same slot of `values`.
    fn judge(
        &self,
        detector: DetectorId,
        candidate: &[u8],
        today: Today,
        values: &mut [String; 2],
    ) -> [Option<(Confidence, DetectorId)>; 2] {
        match detector {
            DetectorId::Builtin(Builtin::Personnummer) => {
                let person = match personnummer::judge(candidate, today) {
                    personnummer::Verdict::Person {
                        canonical,
                        formatted,
                        ..
                    } => {
                        values[0].clear();
                        // ASCII digits only.
                        values[0].extend(canonical.iter().map(|digit| char::from(*digit)));
                        Some((
                            if formatted {
                                Confidence::Medium
                            } else {
                                Confidence::Low
                            },
                            detector,
                        ))
                    }
                    _ => None,
                };
                // A bare 07x… run is a mobile number as well (the phone
                // pattern comes later in the set and never sees it).
                let phone = validate::phone_into(candidate, &mut values[1])
                    .then_some((Confidence::Medium, DetectorId::Builtin(Builtin::Phone)));
                [person, phone]
            }
            DetectorId::Builtin(builtin) => {
                let judged = validate::builtin(builtin, candidate).map(|(confidence, value)| {
                    values[0] = value;
                    (confidence, detector)
                });
                [judged, None]
            }
            DetectorId::Custom(index) => {
                let judged = self
                    .customs
                    .get(index)
                    .filter(|custom| validate::custom(custom, candidate))
                    .map(|_| {
                        values[0].clear();
                        values[0].push_str(&String::from_utf8_lossy(candidate));
                        (Confidence::Medium, detector)
                    });
                [judged, None]
            }
        }
    }

    /// Context moves a confidence: a naming keyword nearby lifts it a level
    /// (a bare personnummer to medium; a formatted one to high); a word that
    /// speaks against it (faktura, OCR, orgnr, …) drops it a level, below low
    /// to nothing.
    fn apply_context(
        &self,
        detector: DetectorId,
        confidence: Confidence,
        keywords: &context::Found,
        start: usize,
        end: usize,
    ) -> Option<Confidence> {
        let window = match detector {
            DetectorId::Custom(index) => self
                .customs
                .get(index)
                .map_or(DEFAULT_WINDOW, |custom| custom.window),
            DetectorId::Builtin(_) => DEFAULT_WINDOW,
        };
        if !self.context.moves(detector) {
            return Some(confidence);
        }
        let mut confidence = confidence;
        if keywords.naming_near(detector, start, end, window) {
            confidence = confidence.promoted();
        }
        if context::negatives_apply(detector) && keywords.negative_near(start, end, window) {
            return confidence.demoted();
        }
        Some(confidence)
    }
}

/// One regex of `patterns`, leftmost-first, with a larger cache for the lazy
/// DFA than the default 2 MB: the set has many states, and a cache that
/// fills is cleared and rebuilt mid-text.
fn build_regex(patterns: &[String]) -> Result<Regex, BuildError> {
    Regex::builder()
        .configure(Regex::config().hybrid_cache_capacity(16 << 20))
        .build_many(patterns)
        .map_err(|error| BuildError::Pattern {
            name: "(the set)".into(),
            message: error.to_string(),
        })
}

#[cfg(test)]
mod tests;
