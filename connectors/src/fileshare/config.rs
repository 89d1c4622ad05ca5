//! `type = "fileshare"`: a share's settings as the config writes them: the
//! root, classification and folder globs, marker files, path dates.

use serde::Deserialize;
use std::path::PathBuf;

/// `type = "fileshare"`: a directory tree read through the local file system.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileshareConfig {
    /// Root of the share, e.g. `/mnt/share`. Record paths are relative to it.
    pub root: PathBuf,
    /// Globs (relative to the root) of paths to skip entirely, e.g.
    /// `["**/.snapshot", "**/~$*"]`. Default: none.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Follow symbolic links (loops are detected and counted). Default: false.
    #[serde(default)]
    pub follow_symlinks: bool,
    /// Walker threads; 0 picks the number of cores. Default: 0.
    #[serde(default)]
    pub threads: usize,
    /// Path globs that classify files; the first match sets the record attribute
    /// `class`, which rules can select on.
    #[serde(default)]
    pub classify: Vec<ClassifyConfig>,
    /// Marker files that give every record below their folder a named date.
    #[serde(default)]
    pub markers: Vec<MarkerConfig>,
    /// Folders summarised as one record each (kind `folder`).
    #[serde(default)]
    pub folders: Vec<ClassifyConfig>,
    /// Path globs of files whose path holds their date (`Bokföring/**`): the
    /// first `YYYY-MM-DD` in the path, else a folder named as a year
    /// (`2016`, read as 1 January), becomes the record date `path_date`.
    /// Elsewhere a path is never read for dates, so a customer folder named
    /// `2150` is no year. Default: none.
    #[serde(default)]
    pub path_dates: Vec<String>,
    /// Where a path names its custodian, as globs with `{custodian}` for one whole
    /// folder name: `["Hem/{custodian}/**"]`. A file or folder matching one gets
    /// that name as its custodian instead of its uid's, for mounts where every
    /// file has one uid (CIFS without `cifsacl`, NFSv4 without id mapping).
    /// Default: none.
    #[serde(default)]
    pub custodian_from: Vec<String>,
}

/// One path glob and the class it gives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifyConfig {
    /// Glob relative to the root, `/`-separated; `**` crosses folders,
    /// e.g. `ekonomi/fakturor/**`.
    pub glob: String,
    /// The class, e.g. `invoice`.
    pub class: String,
}

/// A marker file that dates the folder it is in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkerConfig {
    /// File name to look for in every folder, e.g. `TILLSATT.txt`.
    pub file: String,
    /// The date's name on records below, e.g. `position_filled`.
    pub date: String,
    /// Where the date is read: `content` (the first `YYYY-MM-DD` in the file) or
    /// `mtime` (the marker's modification time). Default: `content`.
    #[serde(default)]
    pub date_from: MarkerDateFrom,
}

/// Where a marker's date comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkerDateFrom {
    /// The first ISO date in the file's first 4 KiB.
    #[default]
    Content,
    /// The marker file's modification time.
    Mtime,
}

/// Config errors found when building the connector.
#[derive(Debug, thiserror::Error)]
pub enum FileshareConfigError {
    /// A glob does not parse.
    #[error("invalid glob {glob:?}: {source}")]
    Glob {
        /// The glob as written.
        glob: String,
        /// Why it is invalid.
        #[source]
        source: globset::Error,
    },
    /// An `custodian_from` pattern that cannot name a custodian.
    #[error("custodian_from {pattern:?}: {why}")]
    CustodianPattern {
        /// The pattern as written.
        pattern: String,
        /// What is wrong with it.
        why: &'static str,
    },
}
