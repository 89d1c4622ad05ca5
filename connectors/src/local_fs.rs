//! What the connectors that read a local file system (fileshare, maildir) share:
//! read-only opens that leave atime alone, file names that are not UTF-8, times as
//! UTC, and dates written in paths or marker files.

use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::SystemTime;

use chrono::{DateTime, NaiveDate, Utc};

/// Open `path` for reading only, asking the kernel not to update its access time.
/// `O_NOATIME` is refused (EPERM) for files the process does not own; then the file
/// is opened plainly, which on `relatime` mounts rarely writes atime either.
pub(crate) fn open_read_only(path: &Path) -> std::io::Result<File> {
    let no_atime = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME)
        .open(path);
    match no_atime {
        Err(error) if error.raw_os_error() == Some(libc::EPERM) => {
            std::fs::OpenOptions::new().read(true).open(path)
        }
        other => other,
    }
}

/// Read at most `limit` bytes from the start of `path`.
pub(crate) fn read_prefix(path: &Path, limit: usize) -> std::io::Result<Vec<u8>> {
    let file = open_read_only(path)?;
    let mut buffer = Vec::new();
    file.take(limit as u64).read_to_end(&mut buffer)?;
    Ok(buffer)
}

/// A file name or relative path as text. Valid UTF-8 is kept as is; every byte of
/// an invalid sequence becomes `\xNN`, so distinct names stay distinct (a lossy
/// conversion would map them all to U+FFFD). The flag tells whether escaping was
/// needed.
pub(crate) fn name_to_text(name: &std::ffi::OsStr) -> (String, bool) {
    if let Some(text) = name.to_str() {
        return (text.to_owned(), false);
    }
    let mut text = String::new();
    for chunk in name.as_bytes().utf8_chunks() {
        text.push_str(chunk.valid());
        for byte in chunk.invalid() {
            text.push_str(&format!("\\x{byte:02X}"));
        }
    }
    (text, true)
}

/// A `SystemTime` as UTC; `None` for times chrono cannot represent.
pub(crate) fn to_utc(time: SystemTime) -> Option<DateTime<Utc>> {
    Some(DateTime::<Utc>::from(time))
}

/// The first ISO date (`YYYY-MM-DD`) in `text`, as midnight UTC.
pub(crate) fn first_iso_date(text: &str) -> Option<DateTime<Utc>> {
    let bytes = text.as_bytes();
    if bytes.len() < 10 {
        return None;
    }
    (0..=bytes.len() - 10).find_map(|start| {
        let window = &bytes[start..start + 10];
        let shape_ok = window.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        });
        let bounded = start == 0 || !bytes[start - 1].is_ascii_digit();
        if !shape_ok || !bounded {
            return None;
        }
        let candidate = std::str::from_utf8(window).ok()?;
        NaiveDate::parse_from_str(candidate, "%Y-%m-%d")
            .ok()
            .and_then(|date| date.and_hms_opt(0, 0, 0))
            .map(|naive| naive.and_utc())
    })
}

/// A date read from a path: the first `YYYY-MM-DD` anywhere in it, else the first
/// component that is a plausible year on its own (`2016`), as 1 January of it.
pub(crate) fn date_from_path(path: &str) -> Option<DateTime<Utc>> {
    if let Some(date) = first_iso_date(path) {
        return Some(date);
    }
    path.split('/').find_map(|component| {
        let year: i32 = component.parse().ok()?;
        if component.len() != 4 || !(1900..=2200).contains(&year) {
            return None;
        }
        NaiveDate::from_ymd_opt(year, 1, 1)
            .and_then(|date| date.and_hms_opt(0, 0, 0))
            .map(|naive| naive.and_utc())
    })
}

/// List `root`'s first entries without reading any file: Ok with what was seen,
/// or why the root cannot be read.
pub(crate) fn probe_root(root: &std::path::Path) -> Result<String, crate::ConnectorError> {
    let unreadable = |source| crate::ConnectorError::RootUnreadable {
        path: root.display().to_string(),
        source,
    };
    let mut entries = std::fs::read_dir(root).map_err(unreadable)?;
    match entries.next() {
        Some(Err(error)) => Err(unreadable(error)),
        Some(Ok(_)) => Ok(format!("{} is readable", root.display())),
        None => Ok(format!("{} is readable (and empty)", root.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_names_that_are_not_utf8() {
        use std::os::unix::ffi::OsStrExt;
        let latin1 = std::ffi::OsStr::from_bytes(b"ans\xf6kan.pdf");
        assert_eq!(name_to_text(latin1), ("ans\\xF6kan.pdf".to_owned(), true));
        let fine = std::ffi::OsStr::new("ansökan.pdf");
        assert_eq!(name_to_text(fine), ("ansökan.pdf".to_owned(), false));
    }

    #[test]
    fn finds_iso_dates_and_years() {
        let cases: &[(&str, Option<&str>)] = &[
            ("tillsatt 2024-05-12\n", Some("2024-05-12")),
            ("2024-13-01 is no date", None),
            ("x12024-05-12", None),
            ("filled: 2023-02-28, noted 2023-03-01", Some("2023-02-28")),
            ("", None),
        ];
        for (text, expected) in cases {
            let got = first_iso_date(text).map(|d| d.format("%Y-%m-%d").to_string());
            assert_eq!(got.as_deref(), *expected, "{text:?}");
        }
        let paths: &[(&str, Option<&str>)] = &[
            ("ekonomi/fakturor/2016/f-1001.pdf", Some("2016-01-01")),
            ("ekonomi/2016/kvitto-2016-03-04.pdf", Some("2016-03-04")),
            ("ekonomi/fakturor/12345/f.pdf", None),
            ("kunder/acme/offert.docx", None),
        ];
        for (path, expected) in paths {
            let got = date_from_path(path).map(|d| d.format("%Y-%m-%d").to_string());
            assert_eq!(got.as_deref(), *expected, "{path:?}");
        }
    }
}
