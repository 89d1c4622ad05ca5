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

/// Open the regular file at `path` for reading only, asking the kernel not to
/// update its access time.
///
/// Safely, whatever a share holds: `O_NOFOLLOW` refuses a symbolic link as
/// the last component (the walker resolves the links it may follow itself,
/// inside the root), and `O_NONBLOCK` makes opening a FIFO return at once
/// rather than wait for a writer; anything that is not a regular file once
/// open (a FIFO, socket or device) is refused with [`NOT_A_REGULAR_FILE`].
/// `O_NOATIME` is refused (EPERM) for files the process does not own; then
/// the file is opened without it, which on `relatime` mounts rarely writes
/// atime either.
pub(crate) fn open_read_only(path: &Path) -> std::io::Result<File> {
    let open = |flags: libc::c_int| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags | libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
    };
    let file = match open(libc::O_NOATIME) {
        Err(error) if error.raw_os_error() == Some(libc::EPERM) => open(0)?,
        other => other?,
    };
    if !file.metadata()?.file_type().is_file() {
        return Err(std::io::Error::other(NOT_A_REGULAR_FILE));
    }
    Ok(file)
}

/// The message of the error [`open_read_only`] gives for a FIFO, socket or
/// device.
pub(crate) const NOT_A_REGULAR_FILE: &str = "not a regular file (a FIFO, socket or device)";

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

/// The first ISO date (`YYYY-MM-DD`) in `text`, as midnight in `zone`.
pub(crate) fn first_iso_date(text: &str, zone: chrono_tz::Tz) -> Option<DateTime<Utc>> {
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
        tillsyn_core::dates::day(std::str::from_utf8(window).ok()?, zone)
    })
}

/// Month names as Swedish and English texts write them, full or cut.
const MONTHS: [(&str, u32); 24] = [
    ("januari", 1),
    ("februari", 2),
    ("mars", 3),
    ("april", 4),
    ("maj", 5),
    ("juni", 6),
    ("juli", 7),
    ("augusti", 8),
    ("september", 9),
    ("oktober", 10),
    ("november", 11),
    ("december", 12),
    ("january", 1),
    ("february", 2),
    ("march", 3),
    ("may", 5),
    ("june", 6),
    ("july", 7),
    ("august", 8),
    ("october", 10),
    ("jan", 1),
    ("feb", 2),
    ("okt", 10),
    ("oct", 10),
];

fn month_named(word: &str) -> Option<u32> {
    let word = word.trim_end_matches('.').to_lowercase();
    MONTHS
        .iter()
        .find(|(name, _)| *name == word)
        .map(|(_, month)| *month)
        .or_else(|| {
            // The first three letters, as texts cut them (`aug`, `dec`).
            (word.len() == 3)
                .then(|| {
                    MONTHS
                        .iter()
                        .find(|(name, _)| name.len() > 3 && name.starts_with(word.as_str()))
                        .map(|(_, month)| *month)
                })
                .flatten()
        })
}

/// The first date a marker file's text gives, as midnight in `zone`: ISO
/// `YYYY-MM-DD` anywhere in it, else a date as Swedish texts write one: `5/3-2024`
/// (day/month-year), `5 mars 2024` or `5:e mars 2024`, or in English `5 March
/// 2024`. A form that can be read two ways (`03/05/2024`) is not read: the
/// marker then counts as unreadable rather than dating a folder wrongly.
pub(crate) fn marker_date(text: &str, zone: chrono_tz::Tz) -> Option<DateTime<Utc>> {
    if let Some(date) = first_iso_date(text, zone) {
        return Some(date);
    }
    let date = |day: u32, month: u32, year: i32| {
        NaiveDate::from_ymd_opt(year, month, day)
            .and_then(|date| tillsyn_core::dates::midnight(date, zone))
    };
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|word| !word.is_empty())
        .collect();
    for (index, word) in words.iter().enumerate() {
        // 5/3-2024
        if let Some((day_month, year)) = word.split_once('-')
            && let Some((day, month)) = day_month.split_once('/')
            && let (Ok(day), Ok(month), Ok(year)) = (
                day.parse::<u32>(),
                month.parse::<u32>(),
                year.trim_end_matches('.').parse::<i32>(),
            )
            && year >= 1000
            && let Some(found) = date(day, month, year)
        {
            return Some(found);
        }
        // 5 mars 2024, 5:e mars 2024, 5. März is not read.
        let day = word
            .trim_end_matches(['.'])
            .trim_end_matches(":e")
            .trim_end_matches(":a")
            .parse::<u32>();
        if let (Ok(day), Some(month), Some(year)) = (
            day,
            words.get(index + 1).and_then(|word| month_named(word)),
            words
                .get(index + 2)
                .and_then(|year| year.trim_end_matches('.').parse::<i32>().ok()),
        ) && year >= 1000
            && let Some(found) = date(day, month, year)
        {
            return Some(found);
        }
    }
    None
}

/// A date read from a path: the first `YYYY-MM-DD` anywhere in it, else the first
/// component that is a plausible year on its own (`2016`), as 1 January of it;
/// midnight in `zone` either way.
pub(crate) fn date_from_path(path: &str, zone: chrono_tz::Tz) -> Option<DateTime<Utc>> {
    if let Some(date) = first_iso_date(path, zone) {
        return Some(date);
    }
    path.split('/').find_map(|component| {
        let year: i32 = component.parse().ok()?;
        if component.len() != 4 || !(1900..=2200).contains(&year) {
            return None;
        }
        NaiveDate::from_ymd_opt(year, 1, 1)
            .and_then(|date| tillsyn_core::dates::midnight(date, zone))
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
            let got =
                first_iso_date(text, chrono_tz::UTC).map(|d| d.format("%Y-%m-%d").to_string());
            assert_eq!(got.as_deref(), *expected, "{text:?}");
        }
        let paths: &[(&str, Option<&str>)] = &[
            ("ekonomi/fakturor/2016/f-1001.pdf", Some("2016-01-01")),
            ("ekonomi/2016/kvitto-2016-03-04.pdf", Some("2016-03-04")),
            ("ekonomi/fakturor/12345/f.pdf", None),
            ("kunder/acme/offert.docx", None),
        ];
        for (path, expected) in paths {
            let got =
                date_from_path(path, chrono_tz::UTC).map(|d| d.format("%Y-%m-%d").to_string());
            assert_eq!(got.as_deref(), *expected, "{path:?}");
        }
    }

    #[test]
    fn marker_dates_as_swedish_and_english_texts_write_them() {
        let zone = chrono_tz::Europe::Stockholm;
        let cases: &[(&str, Option<&str>)] = &[
            ("tillsatt 2024-03-05\n", Some("2024-03-05")),
            ("tillsatt 5/3-2024", Some("2024-03-05")),
            ("Tjänsten tillsattes den 5 mars 2024.", Some("2024-03-05")),
            ("tillsatt 5:e mars 2024", Some("2024-03-05")),
            ("filled on 12 Sept. 2023", None),
            ("filled on 12 Sep 2023", Some("2023-09-12")),
            ("Filled 5 March 2024", Some("2024-03-05")),
            ("tillsatt 31/2-2024", None),
            ("tillsatt 03/05/2024", None),
            ("tillsatt i våras", None),
            ("", None),
        ];
        for (text, expected) in cases {
            let got = marker_date(text, zone)
                .map(|d| d.with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string());
            let want = expected.map(|day| format!("{day} 00:00"));
            assert_eq!(got, want, "{text:?}");
        }
    }
}
