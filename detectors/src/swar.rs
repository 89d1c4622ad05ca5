//! Byte tests eight at a time in a `u64` ("SIMD within a register"), for
//! the scanners that skip text the regex need not see: each returns the top
//! bit of every byte that passes, the others clear, exact for every byte in
//! every lane (tested below on all 256 values among neighbours of every
//! kind).

/// Every byte of `0x01` repeated: the multiplier that spreads a byte.
pub(crate) const ONES: u64 = 0x0101_0101_0101_0101;
/// The top bit of every byte.
pub(crate) const TOPS: u64 = 0x8080_8080_8080_8080;

/// ASCII bytes (below 0x80) in `low..=high`. No byte's sum or difference
/// carries into its neighbour: the low seven bits plus `0x80 - low` stay
/// below 0x100, `0x80 + high` minus them stays above zero; bytes from 0x80
/// up are masked by `!word`.
pub(crate) fn ascii_range_bits(word: u64, low: u8, high: u8) -> u64 {
    let seven = word & (ONES * 0x7f);
    (ONES * (0x80 + u64::from(high)) - seven)
        & (seven + ONES * (0x80 - u64::from(low)))
        & !word
        & TOPS
}

/// ASCII digits.
pub(crate) fn digit_bits(word: u64) -> u64 {
    ascii_range_bits(word, b'0', b'9')
}

/// Bytes equal to `byte`. Nothing carries: `(x & 0x7f) + 0x7f` stays within
/// its byte.
pub(crate) fn equal_bits(word: u64, byte: u8) -> u64 {
    let x = word ^ (ONES * u64::from(byte));
    let low = ONES * 0x7f;
    !(((x & low) + low) | x) & TOPS
}

/// ASCII letters and digits: bit 0x20 set makes every ASCII letter lower
/// case and leaves the top bit as it was.
pub(crate) fn alphanumeric_bits(word: u64) -> u64 {
    ascii_range_bits(word | (ONES * 0x20), b'a', b'z') | digit_bits(word)
}

/// `word` with its ASCII upper-case letters in lower case, other bytes as
/// they were.
pub(crate) fn fold_ascii(word: u64) -> u64 {
    word | (ascii_range_bits(word, b'A', b'Z') >> 2)
}

/// Asserts that `bits` marks exactly the bytes `is` holds for, for every
/// byte value in every lane among each of `fillers`.
#[cfg(test)]
pub(crate) fn assert_exact(bits: impl Fn(u64) -> u64, is: impl Fn(u8) -> bool, fillers: &[u8]) {
    for byte in 0..=255u8 {
        for lane in 0..8 {
            for filler in fillers {
                let mut word = [*filler; 8];
                word[lane] = byte;
                let expected = word
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| is(**b))
                    .fold(0u64, |acc, (i, _)| acc | (0x80 << (8 * i)));
                let found = bits(u64::from_le_bytes(word));
                assert_eq!(
                    found, expected,
                    "byte {byte:#x} lane {lane} filler {filler}"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Neighbours of every kind: letters either case, digits, the bytes
    /// either side of each range, and bytes from 0x80 up.
    const FILLERS: &[u8] = &[
        b'a', b'Z', b'5', b'/', b':', b'@', b'[', b'`', b'{', b' ', 0x00, 0x7f, 0x80, 0xc3, 0xff,
    ];

    #[test]
    fn digits_letters_and_equal_bytes_are_exact() {
        assert_exact(digit_bits, |b| b.is_ascii_digit(), FILLERS);
        assert_exact(alphanumeric_bits, |b| b.is_ascii_alphanumeric(), FILLERS);
        for byte in [b'@', b':', 0x00, 0x80, 0xff] {
            assert_exact(|word| equal_bits(word, byte), |b| b == byte, FILLERS);
        }
    }

    #[test]
    fn folding_lowers_ascii_capitals_only() {
        for byte in 0..=255u8 {
            for lane in 0..8 {
                for filler in FILLERS {
                    let mut word = [*filler; 8];
                    word[lane] = byte;
                    let folded = fold_ascii(u64::from_le_bytes(word)).to_le_bytes();
                    let expected = word.map(|b| b.to_ascii_lowercase());
                    assert_eq!(folded, expected, "byte {byte:#x} lane {lane}");
                }
            }
        }
    }
}
