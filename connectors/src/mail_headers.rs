//! Mail headers to participants, shared by every mail connector (Maildir, IMAP).
//!
//! Only addresses are kept, lower-cased; display names are personal data no rule
//! needs. Broken encodings, 8-bit bytes and missing fields never fail: a header
//! block that is not one at all (binary junk) is reported as malformed and yields
//! no participants, and the message is still checked by its dates.

use mail_parser::MessageParser;

use crate::{Address, Participants};

/// Why a header block gave no participants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderProblem {
    /// Not a header block.
    Malformed,
}

/// Parse the From, To and Cc addresses of a header block.
pub(crate) fn participants(
    parser: &MessageParser,
    header: &[u8],
) -> Result<Participants, HeaderProblem> {
    // Some delivery agents keep mbox's "From sender date" line on top.
    let header = match header.strip_prefix(b"From ") {
        Some(_) => header
            .iter()
            .position(|byte| *byte == b'\n')
            .map_or(&header[..0], |end| &header[end + 1..]),
        None => header,
    };
    let Some(message) = parser
        .parse_headers(header)
        .filter(|message| !message.headers().is_empty() && starts_with_field(header))
    else {
        return Err(HeaderProblem::Malformed);
    };
    let collect = |address: Option<&mail_parser::Address<'_>>| -> Vec<Address> {
        address
            .map(|list| {
                list.iter()
                    .filter_map(|addr| addr.address())
                    .map(|address| Address {
                        address: address.trim().to_lowercase(),
                    })
                    .filter(|address| !address.address.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(Participants {
        from: collect(message.from()),
        to: collect(message.to()),
        cc: collect(message.cc()),
    })
}

/// Whether a header block starts like one: a field name of printable ASCII other
/// than `:` (RFC 5322 §2.2), then `:`. mail-parser accepts nearly anything; this
/// tells a message from binary junk in a mail folder.
fn starts_with_field(header: &[u8]) -> bool {
    let name_len = header
        .iter()
        .take_while(|byte| (33..=126).contains(*byte) && **byte != b':')
        .count();
    name_len > 0 && header.get(name_len) == Some(&b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(header: &[u8]) -> Result<Vec<String>, HeaderProblem> {
        participants(&MessageParser::new(), header)
            .map(|p| p.cc.into_iter().map(|a| a.address).collect())
    }

    #[test]
    fn reads_what_real_mail_holds() {
        /// A header block and the Cc addresses read from it.
        type Case<'a> = (&'a [u8], Result<&'a [&'a str], HeaderProblem>);
        let cases: &[Case] = &[
            (
                b"From: a@b.se\r\nCc: X <X@Y.se>, z@y.se\r\n\r\n",
                Ok(&["x@y.se", "z@y.se"]),
            ),
            (b"From a@b Mon Jan 1\nCc: c@d.se\n\n", Ok(&["c@d.se"])),
            (
                b"Cc: =?iso-8859-1?Q?J=F6rg?= <j@x.se>,\r\n  k@x.se\r\n\r\n",
                Ok(&["j@x.se", "k@x.se"]),
            ),
            (b"Cc: undisclosed-recipients:;\r\n\r\n", Ok(&[])),
            (b"Subject: no recipients\r\n\r\n", Ok(&[])),
            (b"To: \xe5\xe4\xf6@x.se\r\n\r\n", Ok(&[])),
            (b"\x00\x01junk: x", Err(HeaderProblem::Malformed)),
            (b"no colon here\n", Err(HeaderProblem::Malformed)),
            (b"", Err(HeaderProblem::Malformed)),
        ];
        for (header, expected) in cases {
            let expected =
                expected.map(|list| list.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(
                cc(header),
                expected,
                "{:?}",
                String::from_utf8_lossy(header)
            );
        }
    }
}
