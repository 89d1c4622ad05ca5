//! The personnummer's own scanner, for a set that holds that detector alone
//! (a `contains personnummer` rule, the most common content promise).
//!
//! The regex engine's prefilter finds no literal in the personnummer pattern
//! (it is all digit classes), so a whole-text search walks the lazy DFA over
//! every byte. Here the text is read eight bytes at a time for an ASCII digit
//! ([`next_digit`]), and each maximal digit run is shaped as the pattern
//! shapes it ([`Candidates`]: the same matches, leftmost-first, as
//! [`crate::Builtin::pattern`]). The property test in `tests.rs` runs this
//! and the whole-text search over random text and compares every match.

use crate::swar::digit_bits;

/// A word byte for ASCII `\b`: `[0-9A-Za-z_]`. Bytes of UTF-8 sequences are
/// not (the set's patterns use ASCII word boundaries).
fn is_word(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// The index of the first ASCII digit at or after `from`.
pub(crate) fn next_digit(text: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(pair) = text.get(at..).and_then(|rest| rest.first_chunk::<16>()) {
        let (first, second) = pair.split_at(8);
        let first = u64::from_le_bytes(first.try_into().unwrap_or([0; 8]));
        let second = u64::from_le_bytes(second.try_into().unwrap_or([0; 8]));
        let bits = digit_bits(first);
        if bits != 0 {
            return Some(at + (bits.trailing_zeros() / 8) as usize);
        }
        let bits = digit_bits(second);
        if bits != 0 {
            return Some(at + 8 + (bits.trailing_zeros() / 8) as usize);
        }
        at += 16;
    }
    let rest = text.get(at..)?;
    rest.iter()
        .position(u8::is_ascii_digit)
        .map(|at_rest| at + at_rest)
}

/// The end of the digit run starting at `start` (the first non-digit index).
fn run_end(text: &[u8], start: usize) -> usize {
    let rest = text.get(start..).unwrap_or_default();
    start
        + rest
            .iter()
            .position(|byte| !byte.is_ascii_digit())
            .unwrap_or(rest.len())
}

/// Personnummer-shaped candidates, `(start, end)` in text order: exactly what
/// `(?-u:\b)(?:[0-9]{2})?[0-9]{6}[-+]?[0-9]{4}(?-u:\b)` finds, leftmost-first
/// and without overlap. A candidate starts a digit run that no word byte
/// precedes, and is 12 or 10 digits, or 8 or 6 digits, one `-` or `+` and 4
/// digits, with no word byte after it. Nothing else can match: inside a run
/// there is no word boundary, so a run that is not a candidate is skipped
/// whole, and the run after its separator is tried on its own.
pub(crate) struct Candidates<'text> {
    text: &'text [u8],
    at: usize,
}

impl<'text> Candidates<'text> {
    /// The candidates of `text`.
    pub(crate) fn new(text: &'text [u8]) -> Candidates<'text> {
        Candidates { text, at: 0 }
    }

    /// No word byte at `end` (or the text ends there).
    fn bounded(&self, end: usize) -> bool {
        self.text.get(end).is_none_or(|byte| !is_word(*byte))
    }
}

impl Iterator for Candidates<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        let text = self.text;
        loop {
            let start = next_digit(text, self.at)?;
            let end = run_end(text, start);
            self.at = end;
            if start > 0 && text.get(start - 1).copied().is_some_and(is_word) {
                continue;
            }
            let length = end - start;
            if (length == 12 || length == 10) && self.bounded(end) {
                return Some((start, end));
            }
            if (length == 8 || length == 6) && matches!(text.get(end), Some(b'-' | b'+')) {
                let tail = end + 1;
                let tail_end = run_end(text, tail);
                if tail_end - tail == 4 && self.bounded(tail_end) {
                    self.at = tail_end;
                    return Some((start, tail_end));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_digit_finds_the_first_at_every_offset_and_length() {
        for length in 0..40 {
            for digit_at in 0..=length {
                let mut text = vec![b'x'; length];
                if digit_at < length {
                    text[digit_at] = b'7';
                }
                let expected = (digit_at < length).then_some(digit_at);
                assert_eq!(next_digit(&text, 0), expected, "{length} {digit_at}");
                for from in 0..=length + 1 {
                    let expected = text
                        .iter()
                        .enumerate()
                        .skip(from)
                        .find(|(_, b)| b.is_ascii_digit())
                        .map(|(i, _)| i);
                    assert_eq!(next_digit(&text, from), expected);
                }
            }
        }
    }

    #[test]
    fn candidates_take_each_written_form_and_skip_the_rest() {
        let text = b"a 811218-9876 b 198112189876, 8112189876; 19811218+9876 \
            x811218-9876 811218-98765 12345678901 811218-987 811218_9876 \
            19811218-9876-1 8112189876\xc3\xa5";
        let found: Vec<&[u8]> = Candidates::new(text)
            .map(|(start, end)| &text[start..end])
            .collect();
        let expected: Vec<&[u8]> = vec![
            b"811218-9876",
            b"198112189876",
            b"8112189876",
            b"19811218+9876",
            b"19811218-9876",
            b"8112189876",
        ];
        assert_eq!(found, expected);
    }
}
