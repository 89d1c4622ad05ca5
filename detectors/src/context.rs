//! Context words, found in one Aho-Corasick pass over the text: words that
//! name what a number is ("personnummer", "född", "IBAN", a custom detector's
//! own keywords), and words that speak against a personnummer or phone number
//! ("faktura", "OCR", "orgnr", "bankgiro": invoice, order and reference
//! numbers that happen to pass the checks). ASCII letters match in any case; a
//! keyword counts only where a word starts.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use crate::{BuildError, Builtin, CustomDetector, DetectorId};

/// Words that name a Swedish identity number.
const PERSONNUMMER: &[&str] = &[
    "personnummer",
    "personnumret",
    "personnumren",
    "personnr",
    "pers.nr",
    "pers nr",
    "pnr",
    "p-nr",
    "född",
    "FÖDD",
    "födelsenummer",
    "FÖDELSENUMMER",
    "samordningsnummer",
    "samordningsnumret",
    "samordningsnr",
    "personal identity number",
    "personal id",
    "civic registration",
    "identity number",
    "id-nummer",
    "idnummer",
];

const PHONE: &[&str] = &[
    "tel", "telefon", "mobil", "mobile", "phone", "ring", "sms", "fax", "växel",
];
const CARD: &[&str] = &["kort", "card", "visa", "mastercard", "amex", "kreditkort"];
const IBAN: &[&str] = &["iban", "konto", "account", "bic", "swift"];

/// Words near which a number is more likely an invoice, order, organisation or
/// payment reference than a person's: they demote a personnummer, phone or
/// card match one level.
const NEGATIVE: &[&str] = &[
    "faktura",
    "fakturanr",
    "fakturanummer",
    "invoice",
    "ordernr",
    "ordernummer",
    "order no",
    "orgnr",
    "org.nr",
    "org nr",
    "org-nr",
    "organisationsnummer",
    "organisationsnr",
    "kundnr",
    "kundnummer",
    "customer no",
    "ocr",
    "bankgiro",
    "plusgiro",
    "bg-nr",
    "pg-nr",
    "referensnummer",
    "ref.nr",
    "artikelnr",
    "artikelnummer",
    "serienummer",
];

/// What a keyword says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meaning {
    /// Names what this detector finds.
    Names(DetectorId),
    /// Speaks against an identity number.
    Against,
}

/// The compiled keyword sets.
#[derive(Debug)]
pub(crate) struct Context {
    automaton: AhoCorasick,
    meanings: Vec<Meaning>,
    lengths: Vec<usize>,
}

/// Keywords found in one text: (start, end, meaning), by start.
#[derive(Debug, Default)]
pub(crate) struct Found {
    hits: Vec<(usize, usize, Meaning)>,
    /// The longest keyword's length: no hit ends further after its start.
    longest: usize,
}

impl Context {
    pub(crate) fn new(customs: &[CustomDetector]) -> Result<Context, BuildError> {
        let mut words: Vec<String> = Vec::new();
        let mut meanings = Vec::new();
        let mut add = |list: &[&str], meaning: Meaning| {
            for word in list {
                words.push((*word).to_owned());
                meanings.push(meaning);
            }
        };
        add(
            PERSONNUMMER,
            Meaning::Names(DetectorId::Builtin(Builtin::Personnummer)),
        );
        add(PHONE, Meaning::Names(DetectorId::Builtin(Builtin::Phone)));
        add(
            CARD,
            Meaning::Names(DetectorId::Builtin(Builtin::PaymentCard)),
        );
        add(IBAN, Meaning::Names(DetectorId::Builtin(Builtin::Iban)));
        add(NEGATIVE, Meaning::Against);
        for (index, custom) in customs.iter().enumerate() {
            for word in &custom.keywords {
                if !word.is_empty() {
                    words.push(word.clone());
                    meanings.push(Meaning::Names(DetectorId::Custom(index)));
                }
            }
        }
        let lengths = words.iter().map(String::len).collect();
        let automaton = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(&words)
            .map_err(|error| BuildError::Keywords(error.to_string()))?;
        Ok(Context {
            automaton,
            meanings,
            lengths,
        })
    }

    /// Every keyword in `text` that starts a word.
    pub(crate) fn find(&self, text: &[u8]) -> Found {
        let mut hits = Vec::new();
        for found in self.automaton.find_iter(text) {
            let start = found.start();
            let starts_word = start == 0 || {
                let before = text[start - 1];
                !(before.is_ascii_alphanumeric() || before >= 0x80)
            };
            if !starts_word {
                continue;
            }
            let index = found.pattern().as_usize();
            if let (Some(meaning), Some(length)) =
                (self.meanings.get(index), self.lengths.get(index))
            {
                hits.push((start, start + length, *meaning));
            }
        }
        let longest = self.lengths.iter().copied().max().unwrap_or(0);
        Found { hits, longest }
    }
}

impl Found {
    /// Keywords overlapping `start - window .. end + window`.
    fn near(
        &self,
        start: usize,
        end: usize,
        window: usize,
    ) -> impl Iterator<Item = &(usize, usize, Meaning)> {
        let from = start.saturating_sub(window);
        let to = end.saturating_add(window);
        // Hits are in text order; skip those ending before the window.
        let first = self.hits.partition_point(|hit| hit.0 + self.longest < from);
        self.hits[first..]
            .iter()
            .take_while(move |hit| hit.0 < to)
            .filter(move |hit| hit.1 > from)
    }

    /// Whether a word naming `detector` stands within `window` bytes.
    pub(crate) fn naming_near(
        &self,
        detector: DetectorId,
        start: usize,
        end: usize,
        window: usize,
    ) -> bool {
        self.near(start, end, window)
            .any(|hit| hit.2 == Meaning::Names(detector))
    }

    /// Whether a word that speaks against an identity number stands within
    /// `window` bytes.
    pub(crate) fn negative_near(&self, start: usize, end: usize, window: usize) -> bool {
        self.near(start, end, window)
            .any(|hit| hit.2 == Meaning::Against)
    }
}
