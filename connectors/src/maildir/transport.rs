//! Reaching the messages: a Maildir file's unique name and flags, and its
//! header block read read-only up to a limit, never the body.

use std::path::Path;

use crate::local_fs::open_read_only;

/// A Maildir file name's unique part and its flags. The unique part stays when a
/// client changes flags (`unique:2,FLAGS`); Dovecot's size fields (`,S=123`,
/// `,W=130`) are dropped too, they only repeat what the file says.
pub(super) fn unique_name(file_name: &str) -> (&str, &str) {
    let (base, flags) = match file_name.split_once(':') {
        Some((base, info)) => (base, info.strip_prefix("2,").unwrap_or("")),
        None => (file_name, ""),
    };
    let unique = [",S=", ",W="]
        .iter()
        .filter_map(|field| base.find(field))
        .min()
        .map_or(base, |end| &base[..end]);
    (unique, flags)
}

/// Read a message's header block: up to the first empty line, at most `limit`
/// bytes. Returns the bytes and whether the end of the header was found.
pub(super) fn read_header(path: &Path, limit: usize) -> std::io::Result<(Vec<u8>, bool)> {
    use std::io::Read;
    let mut file = open_read_only(path)?;
    let mut header = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    let mut searched: usize = 0;
    while header.len() < limit {
        let wanted = chunk.len().min(limit - header.len());
        let read = file.read(&mut chunk[..wanted])?;
        if read == 0 {
            return Ok((header, true));
        }
        header.extend_from_slice(&chunk[..read]);
        if let Some(end) = header_end(&header[searched.saturating_sub(3)..]) {
            let end = searched.saturating_sub(3) + end;
            header.truncate(end);
            return Ok((header, true));
        }
        searched = header.len();
    }
    Ok((header, false))
}

/// Offset just past the blank line that ends a header block.
pub(super) fn header_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).enumerate().find_map(|(index, pair)| {
        if pair == b"\n\n" {
            Some(index + 2)
        } else if pair == b"\n\r" && bytes.get(index + 2) == Some(&b'\n') {
            Some(index + 3)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_ignore_flags_and_sizes() {
        let cases = [
            ("1700.M1P2.host,S=120,W=124:2,RS", ("1700.M1P2.host", "RS")),
            ("1700.M1P2.host,W=124,S=120:2,", ("1700.M1P2.host", "")),
            ("1700.M1P2.host", ("1700.M1P2.host", "")),
            ("1700.M1P2.host:1,experimental", ("1700.M1P2.host", "")),
        ];
        for (name, expected) in cases {
            assert_eq!(unique_name(name), expected, "{name}");
        }
    }

    #[test]
    fn finds_the_end_of_headers() {
        assert_eq!(header_end(b"A: b\n\nbody"), Some(6));
        assert_eq!(header_end(b"A: b\r\n\r\nbody"), Some(8));
        assert_eq!(header_end(b"A: b\r\nC: d\r\n"), None);
    }

    #[test]
    fn reads_headers_across_chunks_and_stops_at_the_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m");
        let long = format!("X-Long: {}\r\nCc: a@b.se\r\n\r\nbody", "y".repeat(20_000));
        std::fs::write(&path, &long).expect("write");
        let (header, complete) = read_header(&path, 1 << 20).expect("read");
        assert!(complete);
        assert!(header.ends_with(b"a@b.se\r\n\r\n"));
        let (header, complete) = read_header(&path, 10_000).expect("read");
        assert!(!complete);
        assert_eq!(header.len(), 10_000);
    }
}
