//! Context words: words that name what a number is ("personnummer", "född",
//! "IBAN", a custom detector's own keywords), and words that speak against a
//! personnummer, phone or card number ("faktura", "OCR", "orgnr", "bankgiro":
//! invoice, order and reference numbers that happen to pass the checks). ASCII
//! letters match in either case; a keyword counts only where a word starts.
//!
//! The keywords are extra patterns of the set's one regex rather than a second
//! (Aho-Corasick) pass: the lazy DFA moves through text at the same cost per
//! byte whatever the number of literals it holds, so the keywords come at no
//! extra pass. Measured on the detector benchmark: the separate Aho-Corasick
//! pass was 40 % of the instructions (callgrind) of a personnummer scan.
//! A set of the personnummer alone has no regex pass to ride along: it looks
//! for keywords only around numbers that validated (`digit_runs`), with the
//! same hits.

use crate::{Builtin, CustomDetector, DetectorId};

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
    "tel", "telefon", "mobil", "mobile", "phone", "ring", "sms", "fax", "växel", "VÄXEL",
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

/// The keywords, as extra patterns of the detector set's one regex: a keyword
/// hit and a candidate are found in the same pass over the text.
#[derive(Debug)]
pub(crate) struct Context {
    meanings: Vec<Meaning>,
    lengths: Vec<usize>,
    /// The bytes some keyword holds, ASCII letters in both cases (the
    /// patterns match them either way): where none stands, no hit can lie
    /// across.
    keyword_bytes: [bool; 256],
    /// Each beginning of a keyword that ends in a byte other than an ASCII
    /// letter ("pers ", "org.", "p-", the first byte of "ö"), in lower case:
    /// after such a byte, a hit can lie across only where one of these ends.
    /// Indexed by their last byte.
    inner_prefixes: Vec<Vec<Vec<u8>>>,
}

/// Keywords found in one text: (start, end, meaning), by start.
#[derive(Debug, Default)]
pub(crate) struct Found {
    hits: Vec<(usize, usize, Meaning)>,
    /// The longest keyword's length: no hit ends further after its start.
    longest: usize,
    /// The widest window of any detector in the set.
    widest: usize,
    /// Hits before this index end before any window still to be asked about:
    /// candidates are asked about in text order, so it only moves forward.
    cursor: std::cell::Cell<usize>,
}

impl Context {
    /// The keyword list and, for each keyword, its pattern (ASCII letters in
    /// either case; other bytes as written).
    pub(crate) fn new(customs: &[CustomDetector]) -> (Context, Vec<String>) {
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
        let mut keyword_bytes = [false; 256];
        for byte in words.iter().flat_map(|word| word.bytes()) {
            for case in [byte, byte.to_ascii_lowercase(), byte.to_ascii_uppercase()] {
                keyword_bytes[usize::from(case)] = true;
            }
        }
        let patterns: Vec<String> = words
            .iter()
            .map(|word| format!("(?i-u:{})", escape(word)))
            .collect();
        let mut inner_prefixes: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 256];
        for word in &words {
            let word = word.to_ascii_lowercase().into_bytes();
            for end in 1..word.len() {
                let (prefix, last) = (&word[..end], word[end - 1]);
                let list = &mut inner_prefixes[usize::from(last)];
                if !last.is_ascii_alphabetic() && !list.iter().any(|known| known == prefix) {
                    list.push(prefix.to_vec());
                }
            }
        }
        (
            Context {
                inner_prefixes,
                meanings,
                lengths,
                keyword_bytes,
            },
            patterns,
        )
    }

    /// Collects the keyword hits of one text, as the set's regex reports them;
    /// `widest` is the largest window any detector of the set uses.
    pub(crate) fn collector(&self, widest: usize) -> Found {
        Found {
            hits: Vec::new(),
            longest: self.lengths.iter().copied().max().unwrap_or(0),
            widest,
            cursor: std::cell::Cell::new(0),
        }
    }

    /// The length in bytes of keyword `index` (0 for none).
    pub(crate) fn length(&self, index: usize) -> usize {
        self.lengths.get(index).copied().unwrap_or(0)
    }

    /// Whether no keyword hit can lie across `at` (begin before it and end
    /// after): no beginning of a keyword ends there. Where the byte before is
    /// an ASCII letter this is not looked into and the answer is no.
    pub(crate) fn no_hit_across(&self, text: &[u8], at: usize) -> bool {
        let Some(before) = at.checked_sub(1).and_then(|last| text.get(last)) else {
            return true;
        };
        if !self.keyword_bytes[usize::from(*before)] {
            return true;
        }
        if before.is_ascii_alphabetic() {
            return false;
        }
        let Some(ending_here) = self.inner_prefixes.get(usize::from(*before)) else {
            return true;
        };
        !ending_here.iter().any(|prefix| {
            at.checked_sub(prefix.len())
                .and_then(|start| text.get(start..at))
                .is_some_and(|written| written.eq_ignore_ascii_case(prefix))
        })
    }

    /// Record keyword `index` found at `start` in `text`, if it starts a word.
    pub(crate) fn record(&self, found: &mut Found, text: &[u8], index: usize, start: usize) {
        let starts_word = start == 0 || {
            let before = text[start - 1];
            !(before.is_ascii_alphanumeric() || before >= 0x80)
        };
        if !starts_word {
            return;
        }
        if let (Some(meaning), Some(length)) = (self.meanings.get(index), self.lengths.get(index)) {
            found.hits.push((start, start + length, *meaning));
        }
    }
}

/// `word` as a regex matching itself.
fn escape(word: &str) -> String {
    let mut escaped = String::with_capacity(word.len() * 2);
    for c in word.chars() {
        if c.is_ascii_punctuation() || c == ' ' {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

impl Found {
    /// The longest keyword's length.
    pub(crate) fn longest(&self) -> usize {
        self.longest
    }

    /// Keywords overlapping `start - window .. end + window`. Asked in text
    /// order of `start` (see `cursor`).
    fn near(
        &self,
        start: usize,
        end: usize,
        window: usize,
    ) -> impl Iterator<Item = &(usize, usize, Meaning)> {
        let from = start.saturating_sub(window);
        let to = end.saturating_add(window);
        // Hits are in text order; skip those that end before the widest
        // window of this or any later candidate can reach.
        let earliest = start.saturating_sub(self.widest);
        let mut first = self.cursor.get();
        while self
            .hits
            .get(first)
            .is_some_and(|hit| hit.0 + self.longest < earliest)
        {
            first += 1;
        }
        self.cursor.set(first);
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
