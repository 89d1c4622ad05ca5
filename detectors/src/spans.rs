//! The built-in kinds' own scanner, for a set of built-ins without custom
//! detectors (a `contains` rule over several kinds, or every kind).
//!
//! The one regex of the built-in patterns has no literal its prefilter can
//! use (digit classes, letters, `@` in the middle), so a search of the whole
//! text walks the lazy DFA over every byte of prose. Yet every built-in
//! candidate holds a *trigger*: an ASCII digit, an `@` (e-mail) or a `:`
//! (IPv6). Here the text is read eight bytes at a time for the next trigger,
//! and the same regex searches only the span where a candidate holding it
//! could lie:
//!
//! - **back** from the trigger over the bytes a candidate may hold before
//!   its first trigger ([`may_lead`]: letters, digits and `._%+-`: an
//!   e-mail's local part, an IBAN's country, IPv6 hex, the `+` of `+46`),
//!   no further than where the last search ended;
//! - **on** to the first place no candidate can hold ([`hard_stop`]): a byte
//!   no built-in pattern has, or a space before a byte that no group after a
//!   space begins with (card, phone and IBAN groups begin with a digit, an
//!   upper-case letter or the `(` of `(0)`).
//!
//! The matches are exactly those of the regex over the whole text,
//! leftmost-first: a match starting before the span's start would hold its
//! first trigger after bytes [`may_lead`] refuses, and none crosses the
//! span's end. Look-around (`\b`) sees the bytes beyond the span. The
//! property test in `tests.rs` runs this and the whole-text search over
//! random text and compares every match.

use regex_automata::Input;
use regex_automata::meta::Regex;

use crate::swar::{digit_bits, equal_bits};

/// The top bit of each trigger byte of `word`: an ASCII digit, `@` or `:`.
fn trigger_bits(word: u64) -> u64 {
    digit_bits(word) | equal_bits(word, b'@') | equal_bits(word, b':')
}

/// Whether `byte` is a trigger (see [`trigger_bits`]).
fn is_trigger(byte: u8) -> bool {
    byte.is_ascii_digit() || byte == b'@' || byte == b':'
}

/// The index of the first trigger at or after `from`.
fn next_trigger(text: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(chunk) = text.get(at..).and_then(|rest| rest.first_chunk::<8>()) {
        let bits = trigger_bits(u64::from_le_bytes(*chunk));
        if bits != 0 {
            return Some(at + (bits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let rest = text.get(at..)?;
    rest.iter()
        .position(|byte| is_trigger(*byte))
        .map(|at_rest| at + at_rest)
}

/// A byte a built-in candidate may hold before its first trigger.
fn may_lead(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'%' | b'+' | b'-')
}

/// What a byte is to the end of a span.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Held {
    /// No built-in pattern holds it.
    Never,
    /// Some pattern holds it.
    Yes,
    /// A space: held only before a byte a group begins with.
    Space,
}

/// [`Held`] of every byte: letters, digits and `._%+-@:()` are held.
const HELD: [Held; 256] = {
    let mut table = [Held::Never; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        if b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'.' | b'_' | b'%' | b'+' | b'-' | b'@' | b':' | b'(' | b')'
            )
        {
            table[byte] = Held::Yes;
        }
        byte += 1;
    }
    table[b' ' as usize] = Held::Space;
    table
};

/// The first index at or after `from` that no built-in candidate can hold,
/// or the text's length.
fn hard_stop(text: &[u8], from: usize) -> usize {
    let mut at = from;
    while let Some(byte) = text.get(at) {
        match HELD[usize::from(*byte)] {
            Held::Never => return at,
            Held::Space => {
                let next = text.get(at + 1).copied();
                if !next.is_some_and(|next| {
                    next.is_ascii_digit() || next.is_ascii_uppercase() || next == b'('
                }) {
                    return at;
                }
            }
            Held::Yes => {}
        }
        at += 1;
    }
    text.len()
}

/// The built-in set's regex matches in `text`, `(pattern, start, end)` in
/// text order: the same as its `find_iter` over the whole text.
pub(crate) struct Spans<'set, 'text> {
    regex: &'set Regex,
    text: &'text [u8],
    /// Where the whole-text search would resume: no match starts before.
    at: usize,
    /// The first hard stop at or after the last trigger (kept while later
    /// triggers lie before it).
    stop: usize,
}

impl<'set, 'text> Spans<'set, 'text> {
    /// The matches of `regex` (built-in patterns only) in `text`.
    pub(crate) fn new(regex: &'set Regex, text: &'text [u8]) -> Spans<'set, 'text> {
        Spans {
            regex,
            text,
            at: 0,
            stop: 0,
        }
    }
}

impl Spans<'_, '_> {
    /// Go on from `at`, where a search over the whole text of more patterns
    /// than this regex holds resumes after a match of another (which may lie
    /// before the end of this regex's last match, overlapped by it).
    fn resume(&mut self, at: usize) {
        self.at = at;
        // The kept stop is still a place no candidate crosses, but perhaps
        // one further than the next trigger's first: find that one.
        self.stop = 0;
    }
}

impl Iterator for Spans<'_, '_> {
    type Item = (usize, usize, usize);

    fn next(&mut self) -> Option<(usize, usize, usize)> {
        let text = self.text;
        loop {
            let trigger = next_trigger(text, self.at)?;
            let mut start = trigger;
            while start > self.at && text.get(start - 1).copied().is_some_and(may_lead) {
                start -= 1;
            }
            if self.stop <= trigger {
                self.stop = hard_stop(text, trigger);
            }
            let input = Input::new(text).span(start..self.stop);
            match self.regex.search(&input) {
                Some(found) => {
                    // No built-in pattern matches the empty string; were one
                    // to, step past it rather than search the same place.
                    self.at = found.end().max(found.start() + 1);
                    return Some((found.pattern().as_usize(), found.start(), found.end()));
                }
                None => self.at = self.stop,
            }
        }
    }
}

/// The matches of a set of built-ins and custom detectors, `(pattern,
/// start, end)` in text order, the customs' patterns numbered after the
/// built-ins': the same as the one regex of both over the whole text,
/// leftmost-first. The built-ins come from their [`Spans`]; the customs
/// (whose patterns may hold anything) from a regex of their own over the
/// whole text. Of the two next matches the one that starts first wins, the
/// built-in's where both start alike (its pattern comes first), and a match
/// the winner overlaps is looked for again after it.
pub(crate) struct WithCustoms<'set, 'text> {
    builtins: Spans<'set, 'text>,
    builtin_count: usize,
    customs: &'set Regex,
    text: &'text [u8],
    at: usize,
    /// The next match of each, once looked for (`Some(None)`: none left).
    next_builtin: Option<Option<(usize, usize, usize)>>,
    next_custom: Option<Option<(usize, usize, usize)>>,
}

impl<'set, 'text> WithCustoms<'set, 'text> {
    /// The matches of `builtins` (`builtin_count` built-in patterns) and
    /// `customs` (custom patterns, none matching the empty string) in `text`.
    pub(crate) fn new(
        builtins: &'set Regex,
        builtin_count: usize,
        customs: &'set Regex,
        text: &'text [u8],
    ) -> WithCustoms<'set, 'text> {
        WithCustoms {
            builtins: Spans::new(builtins, text),
            builtin_count,
            customs,
            text,
            at: 0,
            next_builtin: None,
            next_custom: None,
        }
    }
}

impl Iterator for WithCustoms<'_, '_> {
    type Item = (usize, usize, usize);

    fn next(&mut self) -> Option<(usize, usize, usize)> {
        let at = self.at;
        // A match found before the last winner's end is overlapped: look
        // again from there.
        if self
            .next_builtin
            .flatten()
            .is_some_and(|found| found.1 < at)
        {
            self.next_builtin = None;
        }
        if self.next_custom.flatten().is_some_and(|found| found.1 < at) {
            self.next_custom = None;
        }
        let builtin = *self.next_builtin.get_or_insert_with(|| {
            self.builtins.resume(at);
            self.builtins.next()
        });
        let custom = *self.next_custom.get_or_insert_with(|| {
            let input = Input::new(self.text).range(at..);
            self.customs.search(&input).map(|found| {
                (
                    self.builtin_count + found.pattern().as_usize(),
                    found.start(),
                    found.end(),
                )
            })
        });
        let winner = match (builtin, custom) {
            (Some(builtin), Some(custom)) if custom.1 < builtin.1 => {
                self.next_custom = None;
                custom
            }
            (Some(builtin), _) => {
                self.next_builtin = None;
                builtin
            }
            (None, Some(custom)) => {
                self.next_custom = None;
                custom
            }
            (None, None) => return None,
        };
        self.at = winner.2.max(winner.1 + 1);
        Some(winner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_bits_is_exact_for_every_byte_in_every_lane() {
        crate::swar::assert_exact(
            trigger_bits,
            is_trigger,
            &[b'a', b'5', b'@', b':', 0xff, 0x00, b'?', b'A', 0xc0],
        );
    }

    #[test]
    fn next_trigger_finds_the_first_at_every_offset_and_length() {
        for trigger in [b'3', b'@', b':'] {
            for length in 0..30 {
                for trigger_at in 0..=length {
                    let mut text = vec![b'x'; length];
                    if trigger_at < length {
                        text[trigger_at] = trigger;
                    }
                    for from in 0..=length + 1 {
                        let expected =
                            (trigger_at < length && from <= trigger_at).then_some(trigger_at);
                        assert_eq!(next_trigger(&text, from), expected, "{length} {trigger_at}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_span_ends_where_no_candidate_can_reach() {
        let cases: &[(&str, usize, usize)] = &[
            ("070 123 45 67 ring", 0, 13),
            ("SE45 5000 0000 0583 9825 7466, tack", 0, 29),
            ("tel (0)8-123 45 67\nnästa", 4, 18),
            ("anna@example.se är", 0, 15),
            ("10:30 Möte", 0, 7),
            ("12 A", 0, 4),
            ("12 ", 0, 2),
        ];
        for (text, from, stop) in cases {
            assert_eq!(hard_stop(text.as_bytes(), *from), *stop, "{text:?}");
        }
    }

    mod properties {
        use super::*;
        use crate::Builtin;
        use proptest::prelude::*;

        /// The regex of every built-in pattern, as a set of them builds it.
        static REGEX: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
            let patterns: Vec<String> = Builtin::ALL
                .iter()
                .map(|builtin| builtin.pattern().to_owned())
                .collect();
            crate::build_regex(&patterns).expect("regex")
        });

        /// Text made of every kind's shapes and their near misses: numbers
        /// grouped by spaces and dashes, IBANs, cards, phone numbers with
        /// `+46` and `(0)`, e-mail addresses, IPv4 and IPv6 (and times),
        /// upper-case and hex words after spaces, every byte a candidate may
        /// hold before its trigger, bytes none holds, and UTF-8.
        fn text_of_every_kind() -> impl Strategy<Value = Vec<u8>> {
            prop::collection::vec(
                prop_oneof![
                    "[0-9]{1,14}",
                    "[0-9]{2,4}( [0-9]{2,4}){1,4}",
                    "[0-9]{4}(-[0-9]{4}){2,3}",
                    "SE[0-9]{2}( ?[0-9]{4}){5}",
                    "[A-Z]{2}[0-9]{2}[A-Z0-9 ]{4,12}",
                    "(\\+46|0046|0)[ -]?(\\(0\\)[ -]?)?[1-9][0-9]{1,2}[ -]?[0-9]{3}[ -]?[0-9]{2} ?[0-9]{2}",
                    "[a-z0-9._%+-]{1,10}@[a-z0-9-]{1,8}(\\.[a-z]{2,4}){1,2}",
                    "[0-9]{1,3}(\\.[0-9]{1,3}){2,4}",
                    "[0-9a-fA-F]{0,4}(:[0-9a-fA-F]{0,4}){1,8}",
                    "[0-9a-fA-F]{1,5}",
                    "[A-Z]{1,5}",
                    "[A-Za-z]{1,6}",
                    "[ .,;:@()_%+\\-\n]{1,3}",
                    Just("åäö".to_owned()),
                    "\\PC{1,3}",
                ],
                0..40,
            )
            .prop_map(|parts| parts.concat().into_bytes())
        }

        /// Custom patterns that overlap the built-ins' every way: digits in
        /// groups, upper-case letters before digits, a colon, an at-sign,
        /// words, and one that starts anywhere.
        const CUSTOMS: &[&str] = &[
            r"KUND-[0-9]{4,8}",
            r"(?-u:\b)[A-Z]{3}[0-9]{3,5}(?-u:\b)",
            r"[0-9]{3}-[0-9]{3}",
            r"[a-z]+@",
            r"(?i)pnr:? ?[0-9]{2}",
            r":[0-9]+",
            r"[0-9]{2} [0-9]{2}(?-u:\b)",
        ];

        /// The regex of every built-in pattern and the customs after.
        static BOTH: std::sync::LazyLock<(Regex, Regex, Regex)> = std::sync::LazyLock::new(|| {
            let builtins: Vec<String> = Builtin::ALL
                .iter()
                .map(|builtin| builtin.pattern().to_owned())
                .collect();
            let customs: Vec<String> = CUSTOMS.iter().map(|c| (*c).to_owned()).collect();
            let all: Vec<String> = builtins.iter().chain(&customs).cloned().collect();
            (
                crate::build_regex(&builtins).expect("regex"),
                crate::build_regex(&customs).expect("regex"),
                crate::build_regex(&all).expect("regex"),
            )
        });

        /// [`text_of_every_kind`] with the customs' shapes among it.
        fn text_with_customs() -> impl Strategy<Value = Vec<u8>> {
            prop::collection::vec(
                prop_oneof![
                    3 => text_of_every_kind(),
                    1 => "KUND-[0-9]{2,9}".prop_map(String::into_bytes),
                    1 => "[A-Z]{2,4}[0-9]{2,6}".prop_map(String::into_bytes),
                    1 => "(pnr|PNR|Pnr)(: | |:)?[0-9]{1,12}".prop_map(String::into_bytes),
                    1 => ":[0-9]{1,4}".prop_map(String::into_bytes),
                ],
                0..8,
            )
            .prop_map(|parts| parts.concat())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]

            /// Built-ins by their spans and customs by their own regex,
            /// merged: every match of the one regex of both over the whole
            /// text, pattern, start and end, in order, and nothing else.
            #[test]
            fn with_customs_the_merge_finds_what_the_whole_text_search_finds(
                text in prop_oneof![
                    4 => text_with_customs(),
                    1 => prop::collection::vec(any::<u8>(), 0..256),
                ],
            ) {
                let (builtins, customs, all) = &*BOTH;
                let whole: Vec<(usize, usize, usize)> = all
                    .find_iter(&text)
                    .map(|found| (found.pattern().as_usize(), found.start(), found.end()))
                    .collect();
                let merged: Vec<(usize, usize, usize)> =
                    WithCustoms::new(builtins, Builtin::ALL.len(), customs, &text).collect();
                prop_assert_eq!(merged, whole);
            }

            /// The spans find every match of the regex over the whole text,
            /// pattern, start and end, in order, and nothing else.
            #[test]
            fn the_spans_find_what_the_whole_text_search_finds(
                text in prop_oneof![
                    4 => text_of_every_kind(),
                    1 => prop::collection::vec(any::<u8>(), 0..256),
                ],
            ) {
                let whole: Vec<(usize, usize, usize)> = REGEX
                    .find_iter(&text)
                    .map(|found| (found.pattern().as_usize(), found.start(), found.end()))
                    .collect();
                let spans: Vec<(usize, usize, usize)> = Spans::new(&REGEX, &text).collect();
                prop_assert_eq!(spans, whole);
            }
        }
    }
}
