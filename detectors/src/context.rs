//! Context words: words that name what a number is ("personnummer", "född",
//! "IBAN", a custom detector's own keywords), and words that speak against a
//! personnummer, phone or card number ("faktura", "OCR", "orgnr", "bankgiro":
//! invoice, order and reference numbers that happen to pass the checks).
//!
//! A keyword stands wherever a word begins with it: at a byte after one that
//! is no ASCII letter or digit and no part of a UTF-8 sequence, ASCII letters
//! in either case, other bytes as written; where several begin a word, the
//! first in list order counts. Each word start is judged on its own, so one
//! keyword never hides another ("personal identity number" holds "identity
//! number", a word start too).
//!
//! Keywords matter only in the window of a candidate that validated and
//! whose confidence a keyword can move, so `Keywords` looks at the word
//! starts of those windows only, each once, through a table of the byte
//! pairs keywords begin with. Measured on the detector benchmark, searching
//! for the keywords cost more than finding the candidates wherever it was a
//! pass of its own: over every byte (Aho-Corasick, 40 % of the
//! instructions), and with a DFA over the windows alone (about half the
//! time).

use crate::swar::{alphanumeric_bits, fold_ascii};
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

/// The keywords of a detector set and what each says.
#[derive(Debug)]
pub(crate) struct Context {
    /// Every keyword, built-ins first, in list order.
    words: Vec<Vec<u8>>,
    /// Each keyword's first eight bytes as [`folded_eight`] reads them, and
    /// the mask of those it has: most words that begin like a keyword
    /// differ from it there.
    prefixes: Vec<(u64, u64)>,
    meanings: Vec<Meaning>,
    /// The detectors some keyword names, each once.
    named: Vec<DetectorId>,
    /// Where the keywords are looked up by their beginnings.
    beginnings: Beginnings,
    /// The longest keyword's length.
    longest: usize,
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

/// Whether words that speak against a number (see [`NEGATIVE`]) apply to
/// `detector`.
pub(crate) fn negatives_apply(detector: DetectorId) -> bool {
    matches!(
        detector,
        DetectorId::Builtin(Builtin::Personnummer | Builtin::Phone | Builtin::PaymentCard)
    )
}

/// Whether a word can begin after `byte`: it is no ASCII letter or digit and
/// no byte of a UTF-8 sequence.
fn ends_no_word(byte: u8) -> bool {
    !(byte.is_ascii_alphanumeric() || byte >= 0x80)
}

/// The top bit of each byte of `word` after which a word can begin
/// ([`ends_no_word`]), others clear.
fn no_word_bits(word: u64) -> u64 {
    !alphanumeric_bits(word) & !word & crate::swar::TOPS
}

/// The first four bytes of `text` from `at`, ASCII letters in lower case,
/// little-endian (zero past the end of the text).
#[inline]
fn folded_four(text: &[u8], at: usize) -> u64 {
    match text.get(at..).and_then(|rest| rest.first_chunk::<4>()) {
        Some(four) => fold_ascii(u64::from(u32::from_le_bytes(*four))),
        None => folded_eight(text, at) & 0xffff_ffff,
    }
}

/// The first eight bytes of `text` from `at`, ASCII letters in lower case,
/// little-endian (zero past the end of the text).
fn folded_eight(text: &[u8], at: usize) -> u64 {
    match text.get(at..).and_then(|rest| rest.first_chunk::<8>()) {
        Some(eight) => fold_ascii(u64::from_le_bytes(*eight)),
        None => {
            let mut value = 0u64;
            for (shift, byte) in text.get(at..).unwrap_or_default().iter().enumerate() {
                value |= u64::from(*byte) << (8 * shift);
            }
            fold_ascii(value)
        }
    }
}

/// A 16-bit hash of four folded bytes.
#[inline]
fn bucket(four: u64) -> usize {
    ((four as u32).wrapping_mul(0x9e37_79b1) >> 16) as usize
}

/// The keywords a word start may begin, found by its first four bytes
/// (ASCII letters in lower case) without going through the list: a bit set
/// of their hashes, then the group of keywords whose first four bytes hash
/// alike (a keyword of three bytes stands under every fourth byte). The few
/// keywords of one or two bytes (custom ones) are looked for by their first
/// byte. Each group is in list order.
struct Beginnings {
    /// Bit `bucket` set when some keyword's first four bytes hash there.
    four: Vec<u64>,
    /// The group of each bucket (0: none).
    group_of: Vec<u16>,
    /// Keyword indices of each group, in list order; group 0 is empty.
    groups: Vec<Vec<usize>>,
    /// Keyword indices of the keywords of one or two bytes, by first byte.
    short: Vec<Vec<usize>>,
    /// Whether there are any such.
    any_short: bool,
}

impl std::fmt::Debug for Beginnings {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Beginnings")
    }
}

impl Beginnings {
    /// The beginnings of `words` (in list order).
    fn new(words: &[Vec<u8>]) -> Beginnings {
        let mut beginnings = Beginnings {
            four: vec![0; (1 << 16) / 64],
            group_of: vec![0; 1 << 16],
            groups: vec![Vec::new()],
            short: vec![Vec::new(); 256],
            any_short: false,
        };
        for (index, word) in words.iter().enumerate() {
            let four = folded_four(word, 0);
            match word.len() {
                0 => {}
                1 | 2 => {
                    beginnings.short[(four & 0xff) as usize].push(index);
                    beginnings.any_short = true;
                }
                3 => {
                    for fourth in 0..=255u64 {
                        beginnings.add(bucket(four | (fourth << 24)), index);
                    }
                }
                _ => beginnings.add(bucket(four), index),
            }
        }
        beginnings
    }

    fn add(&mut self, bucket: usize, index: usize) {
        self.four[bucket / 64] |= 1 << (bucket % 64);
        let group = match self.group_of[bucket] {
            0 => {
                self.groups.push(Vec::new());
                let group = self.groups.len() - 1;
                // At most one group per bucket: fewer than 65,536.
                self.group_of[bucket] = u16::try_from(group).unwrap_or(0);
                group
            }
            group => usize::from(group),
        };
        if let Some(list) = self.groups.get_mut(group)
            && !list.contains(&index)
        {
            list.push(index);
        }
    }

    /// Whether some keyword may begin with `four` (the first four bytes at
    /// a word start, as [`folded_four`] reads them): asked of every word
    /// start, so kept to a bit test where no keyword is short.
    #[inline]
    fn may_begin(&self, four: u64) -> bool {
        let bucket = bucket(four);
        self.four[bucket / 64] & (1 << (bucket % 64)) != 0
            || (self.any_short && !self.short[(four & 0xff) as usize].is_empty())
    }

    /// The keywords that may begin with `four`, in list order: those of
    /// four bytes or more whose first four hash alike, then the short ones
    /// with its first byte.
    fn candidates(&self, four: u64) -> (&[usize], &[usize]) {
        let bucket = bucket(four);
        let long: &[usize] = if self.four[bucket / 64] & (1 << (bucket % 64)) == 0 {
            &[]
        } else {
            &self.groups[usize::from(self.group_of[bucket])]
        };
        (long, &self.short[(four & 0xff) as usize])
    }
}

impl Context {
    /// The built-in keywords and those of `customs`.
    pub(crate) fn new(customs: &[CustomDetector]) -> Context {
        let mut words: Vec<Vec<u8>> = Vec::new();
        let mut meanings = Vec::new();
        let mut add = |list: &[&str], meaning: Meaning| {
            for word in list {
                words.push(word.as_bytes().to_vec());
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
                    words.push(word.as_bytes().to_vec());
                    meanings.push(Meaning::Names(DetectorId::Custom(index)));
                }
            }
        }
        let beginnings = Beginnings::new(&words);
        let mut named = Vec::new();
        for meaning in &meanings {
            if let Meaning::Names(detector) = meaning
                && !named.contains(detector)
            {
                named.push(*detector);
            }
        }
        let prefixes = words
            .iter()
            .map(|word| {
                let held = word.len().min(8);
                let mask = if held == 8 {
                    u64::MAX
                } else {
                    (1u64 << (8 * held)) - 1
                };
                (folded_eight(word, 0) & mask, mask)
            })
            .collect();
        Context {
            longest: words.iter().map(Vec::len).max().unwrap_or(0),
            prefixes,
            words,
            meanings,
            named,
            beginnings,
        }
    }

    /// Whether some keyword can move `detector`'s confidence: a word names
    /// it, or words against a number apply to it. The others' matches need
    /// no window looked at.
    pub(crate) fn moves(&self, detector: DetectorId) -> bool {
        negatives_apply(detector) || self.named.contains(&detector)
    }

    /// Collects the keyword hits of one text; `widest` is the largest window
    /// any detector of the set uses.
    fn collector(&self, widest: usize) -> Found {
        Found {
            hits: Vec::new(),
            longest: self.longest,
            widest,
            cursor: std::cell::Cell::new(0),
        }
    }

    /// The first keyword in list order that `text` holds at `at` (whose
    /// first four bytes are `four`), whatever comes before.
    #[inline(never)]
    fn keyword_at(&self, text: &[u8], at: usize, four: u64) -> Option<usize> {
        let eight = folded_eight(text, at);
        let holds = |index: &usize| {
            let (word, (prefix, mask)) = (&self.words[*index], self.prefixes[*index]);
            eight & mask == prefix
                && text.len().saturating_sub(at) >= word.len()
                && (word.len() <= 8
                    || text
                        .get(at + 8..at + word.len())
                        .is_some_and(|rest| rest.eq_ignore_ascii_case(&word[8..])))
        };
        let (long, short) = self.beginnings.candidates(four);
        let long = long.iter().copied().find(holds);
        if short.is_empty() {
            return long;
        }
        let short = short.iter().copied().find(holds);
        long.into_iter().chain(short).min()
    }
}

/// The context keywords of one text, looked for only where a candidate
/// asks: every keyword standing in the candidates' windows, each word start
/// looked at once.
pub(crate) struct Keywords<'set, 'text> {
    context: &'set Context,
    text: &'text [u8],
    /// Word starts before this index have been looked at.
    looked: usize,
    /// The hits so far, in text order, for the window checks.
    pub(crate) found: Found,
}

impl<'set, 'text> Keywords<'set, 'text> {
    /// Keywords of `text`; `widest` is the largest window any detector of
    /// the set uses.
    pub(crate) fn new(
        context: &'set Context,
        text: &'text [u8],
        widest: usize,
    ) -> Keywords<'set, 'text> {
        Keywords {
            context,
            text,
            looked: 0,
            found: context.collector(widest),
        }
    }

    /// Record every keyword that overlaps `from .. to`: those starting before
    /// `to` and ending after `from`. Calls come with `from` and `to` in text
    /// order.
    pub(crate) fn cover(&mut self, from: usize, to: usize) {
        let text = self.text;
        let to = to.min(text.len());
        // A keyword ending after `from` starts after `from - longest`.
        let at = self
            .looked
            .max(from.saturating_sub(self.context.longest.saturating_sub(1)));
        if at >= to {
            return;
        }
        // Each word start: `at` itself if one, then the place after each
        // byte that ends no word, found eight bytes at a time.
        let context = self.context;
        let hits = &mut self.found.hits;
        let mut look_at = |start: usize| {
            let four = folded_four(text, start);
            if context.beginnings.may_begin(four)
                && let Some(index) = context.keyword_at(text, start, four)
            {
                let length = context.words[index].len();
                hits.push((start, start + length, context.meanings[index]));
            }
        };
        if at == 0 || ends_no_word(text[at - 1]) {
            look_at(at);
        }
        let mut byte_at = at;
        while byte_at + 1 < to {
            let (mut bits, step) =
                match text.get(byte_at..).and_then(|rest| rest.first_chunk::<8>()) {
                    Some(chunk) => (no_word_bits(u64::from_le_bytes(*chunk)), 8),
                    None => (u64::from(ends_no_word(text[byte_at])) << 7, 1),
                };
            while bits != 0 {
                let start = byte_at + (bits.trailing_zeros() / 8) as usize + 1;
                if start >= to {
                    break;
                }
                look_at(start);
                bits &= bits - 1;
            }
            byte_at += step;
        }
        self.looked = to;
    }
}

impl Found {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every keyword of `text` by the definition, word start by word start:
    /// the first keyword in list order that the text holds there.
    fn by_definition(context: &Context, text: &[u8]) -> Vec<(usize, usize, Meaning)> {
        (0..text.len())
            .filter(|at| *at == 0 || ends_no_word(text[at - 1]))
            .filter_map(|at| {
                let index = context.words.iter().position(|word| {
                    text.len() >= at + word.len()
                        && text[at..at + word.len()].eq_ignore_ascii_case(word)
                })?;
                Some((at, at + context.words[index].len(), context.meanings[index]))
            })
            .collect()
    }

    #[test]
    fn no_word_bits_is_exact_for_every_byte_in_every_lane() {
        crate::swar::assert_exact(
            no_word_bits,
            ends_no_word,
            &[b'a', b'Z', b'5', b' ', 0xff, 0x00, b'@', b'`', 0xc3],
        );
    }

    #[test]
    fn one_keyword_never_hides_another() {
        let context = Context::new(&[]);
        let text = b"xpersonal identity number, Personal identity number; ORGNR";
        let hits: Vec<(usize, usize)> = by_definition(&context, text)
            .into_iter()
            .map(|(start, end, _)| (start, end))
            .collect();
        // "identity number" inside the first; the whole at a word start,
        // with the one inside it; an upper-case "orgnr".
        assert_eq!(hits, [(10, 25), (27, 51), (36, 51), (53, 58)]);
        let mut lazy = Keywords::new(&context, text, 64);
        lazy.cover(0, text.len());
        let lazy: Vec<(usize, usize)> = lazy.found.hits.iter().map(|hit| (hit.0, hit.1)).collect();
        assert_eq!(lazy, hits);
    }

    /// Prose with keywords of every meaning, written in either case, inside
    /// words and after them, keywords that hold spaces, dots and dashes,
    /// one inside another, custom one-byte and non-ASCII keywords, digits
    /// and UTF-8.
    fn text_with_keywords() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop_oneof![
                Just("personnummer ".to_owned()),
                Just("Pnr: ".to_owned()),
                Just("pers nr".to_owned()),
                Just("FÖDD ".to_owned()),
                Just("född".to_owned()),
                Just("fakturanr ".to_owned()),
                Just("org.nr".to_owned()),
                Just("p-nr".to_owned()),
                Just(" OCR ".to_owned()),
                Just("xpersonal identity number ".to_owned()),
                Just("personal id-nummer ".to_owned()),
                Just("telefon ".to_owned()),
                Just("IBAN".to_owned()),
                Just("q".to_owned()),
                Just("ärende".to_owned()),
                "[0-9]{1,12}",
                "[a-z ]{1,80}",
                "[ .,:\\-\n]{1,2}",
                "[A-Za-zåäö]{1,6}",
                "\\PC{1,3}",
            ],
            0..50,
        )
        .prop_map(|parts| parts.concat().into_bytes())
    }

    static CONTEXT: std::sync::LazyLock<Context> = std::sync::LazyLock::new(|| {
        Context::new(&[CustomDetector {
            name: "case".into(),
            pattern: "X[0-9]+".into(),
            checksum: None,
            keywords: vec!["q".into(), "ärende".into(), "Ärendenr".into()],
            window: 100,
        }])
    });

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Looked for in windows only, the keywords are the definition's:
        /// every keyword that overlaps a window is found, and nothing else
        /// but keywords the definition finds.
        #[test]
        fn windows_find_what_the_definition_finds(
            text in prop_oneof![
                4 => text_with_keywords(),
                1 => prop::collection::vec(any::<u8>(), 0..256),
            ],
            places in prop::collection::vec(0usize..4000, 0..12),
            width in 0usize..100,
        ) {
            let whole = by_definition(&CONTEXT, &text);
            let mut places: Vec<usize> = places.into_iter().map(|at| at % (text.len() + 1)).collect();
            places.sort_unstable();
            let mut lazy = Keywords::new(&CONTEXT, &text, width);
            let mut windows = Vec::new();
            for at in places {
                let window = (at.saturating_sub(width), at + 1 + width);
                lazy.cover(window.0, window.1);
                windows.push(window);
            }
            for hit in &lazy.found.hits {
                prop_assert!(whole.contains(hit), "{:?} is no keyword", hit);
            }
            for hit in &whole {
                if windows.iter().any(|(from, to)| hit.1 > *from && hit.0 < *to) {
                    prop_assert!(lazy.found.hits.contains(hit), "{:?} missed", hit);
                }
            }
        }
    }
}
