//! Reaching the files: their metadata as the share walker needs it, read
//! relative to the folder the file is in.
//!
//! A `stat` by full path makes the kernel walk every component of the path
//! again for every file; on a deep tree of a million files that walk is a
//! large part of a scan that reads nothing else. The walker keeps the folder
//! it is listing open and asks `statx` for the name inside it. Where that is
//! not possible (the folder cannot be opened), it falls back to the path.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

/// What the walker reads of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStat {
    /// Bytes.
    pub size: u64,
    /// Owner uid.
    pub uid: u32,
    /// Inode number.
    pub ino: u64,
    /// Device.
    pub dev: u64,
    /// Last modification: seconds and nanoseconds since the epoch.
    pub mtime: (i64, u32),
    /// Last status change.
    pub ctime: (i64, u32),
    /// Creation, where the file system keeps it.
    pub btime: Option<(i64, u32)>,
}

impl FileStat {
    /// The modification time.
    pub fn modified(&self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(self.mtime.0, self.mtime.1)
    }

    /// The creation time, where known.
    pub fn created(&self) -> Option<DateTime<Utc>> {
        self.btime
            .and_then(|(seconds, nanos)| DateTime::from_timestamp(seconds, nanos))
    }

    fn from_metadata(metadata: &std::fs::Metadata) -> FileStat {
        let nanos = |value: i64| u32::try_from(value).unwrap_or(0);
        let btime = metadata.created().ok().and_then(|created| {
            let since = created.duration_since(std::time::UNIX_EPOCH).ok()?;
            Some((i64::try_from(since.as_secs()).ok()?, since.subsec_nanos()))
        });
        FileStat {
            size: metadata.len(),
            uid: metadata.uid(),
            ino: metadata.ino(),
            dev: metadata.dev(),
            mtime: (metadata.mtime(), nanos(metadata.mtime_nsec())),
            ctime: (metadata.ctime(), nanos(metadata.ctime_nsec())),
            btime,
        }
    }
}

/// The folder a walker thread is listing, open, so that its files are read
/// by name inside it.
#[derive(Debug, Default)]
pub(crate) struct OpenFolder {
    open: Option<(PathBuf, OwnedFd)>,
}

impl OpenFolder {
    /// The metadata of the file at `path` (following a symbolic link when
    /// `follow`).
    pub fn stat(&mut self, path: &Path, follow: bool) -> std::io::Result<FileStat> {
        let by_path = || {
            if follow {
                std::fs::metadata(path)
            } else {
                std::fs::symlink_metadata(path)
            }
            .map(|metadata| FileStat::from_metadata(&metadata))
        };
        // Split at the last `/` by bytes: `Path::parent` parses components.
        let bytes = path.as_os_str().as_bytes();
        let Some(slash) = bytes.iter().rposition(|byte| *byte == b'/') else {
            return by_path();
        };
        let (parent, name) = (&bytes[..slash], &bytes[slash + 1..]);
        if parent.is_empty() || name.is_empty() || name == b"." || name == b".." {
            return by_path();
        }
        let Ok(name) = CString::new(name) else {
            return by_path();
        };
        let Some(folder) = self.folder(Path::new(std::ffi::OsStr::from_bytes(parent))) else {
            return by_path();
        };
        statx_at(folder, &name, follow)
    }

    /// The open descriptor of `folder`, opening it (and closing the last one)
    /// when it is another; `None` when it cannot be opened.
    fn folder(&mut self, folder: &Path) -> Option<&OwnedFd> {
        // Bytes, not `Path` equality, which compares component by component.
        if self
            .open
            .as_ref()
            .is_none_or(|(open, _)| open.as_os_str() != folder.as_os_str())
        {
            self.open = None;
            let path = CString::new(folder.as_os_str().as_bytes()).ok()?;
            // SAFETY: `path` is a NUL-terminated string that outlives the call;
            // the returned descriptor is owned by the OwnedFd below and by
            // nothing else.
            let fd = unsafe {
                libc::open(
                    path.as_ptr(),
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
                )
            };
            if fd < 0 {
                return None;
            }
            // SAFETY: `fd` was just opened and is not owned elsewhere.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            self.open = Some((folder.to_path_buf(), owned));
        }
        self.open.as_ref().map(|(_, fd)| fd)
    }
}

/// `statx` of `name` inside the open folder `folder`.
fn statx_at(folder: &OwnedFd, name: &CString, follow: bool) -> std::io::Result<FileStat> {
    // SAFETY: statx is plain data, written by the kernel.
    let mut buffer: libc::statx = unsafe { std::mem::zeroed() };
    let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
    // SAFETY: the descriptor is open for the duration of the call, `name` is
    // NUL-terminated, and `buffer` is a valid statx to write into.
    let status = unsafe {
        libc::statx(
            folder.as_raw_fd(),
            name.as_ptr(),
            flags,
            libc::STATX_BASIC_STATS | libc::STATX_BTIME,
            &mut buffer,
        )
    };
    if status != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let time = |time: libc::statx_timestamp| (time.tv_sec, time.tv_nsec);
    Ok(FileStat {
        size: buffer.stx_size,
        uid: buffer.stx_uid,
        ino: buffer.stx_ino,
        dev: libc::makedev(buffer.stx_dev_major, buffer.stx_dev_minor),
        mtime: time(buffer.stx_mtime),
        ctime: time(buffer.stx_ctime),
        btime: (buffer.stx_mask & libc::STATX_BTIME != 0).then(|| time(buffer.stx_btime)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read by name inside the open folder, the metadata is the path's own.
    #[test]
    fn metadata_by_name_in_the_folder_is_the_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut open = OpenFolder::default();
        for (folder, name, bytes) in [
            ("a", "one.txt", 3usize),
            ("a", "two.txt", 5),
            ("b", "ö ü.txt", 7),
        ] {
            let path = dir.path().join(folder).join(name);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
            std::fs::write(&path, vec![b'x'; bytes]).expect("file");
            let stat = open.stat(&path, false).expect("stat");
            let metadata = std::fs::symlink_metadata(&path).expect("metadata");
            assert_eq!(stat, FileStat::from_metadata(&metadata), "{path:?}");
            assert_eq!(stat.size, bytes as u64);
        }
        let missing = open.stat(&dir.path().join("a/missing.txt"), false);
        assert_eq!(
            missing.map_err(|error| error.kind()),
            Err(std::io::ErrorKind::NotFound)
        );
    }
}
