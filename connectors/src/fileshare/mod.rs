//! File shares: a mounted SMB/NFS share or a local directory tree.
//!
//! Reads metadata only (one `stat` per entry); the only files it opens are the
//! marker files named in the config, read-only and without touching their atime.
//! Each file becomes a [`RecordKind::File`] record whose path is relative to the
//! root, classified by path globs; each folder matched by a `folders` glob also
//! becomes one [`RecordKind::Folder`] record whose `last_activity` is the newest
//! modification inside it (for "customer folders untouched for three years").
//!
//! Event dates come from marker files: a position folder holding `TILLSATT.txt`
//! with the date the position was filled gives every application below it the date
//! `position_filled`, so a rule can count "days since the position was filled".
//!
//! The walk is parallel ([`ignore::WalkParallel`]); per-entry problems (permission
//! denied, symlink loops, names that are not UTF-8, files that vanish mid-walk) are
//! counted and the walk goes on.

mod owners;
mod stat;
mod walk;

pub use owners::service_user;

use std::path::PathBuf;

use serde::Deserialize;

use crate::{Connector, ConnectorError, RecordSink, ScanContext, ScanReport};

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

/// A built file-share source, ready to scan.
#[derive(Debug, Clone)]
pub struct FileshareSource {
    config: FileshareConfig,
    plan: walk::WalkPlan,
}

impl FileshareSource {
    /// Check the config (globs compile) and build the source.
    pub fn build(config: FileshareConfig) -> Result<FileshareSource, FileshareConfigError> {
        let plan = walk::WalkPlan::new(&config)?;
        Ok(FileshareSource { config, plan })
    }
}

impl FileshareSource {
    /// Whether the root can be listed, read-only: what `check-config
    /// --connect` runs.
    pub fn probe(&self) -> Result<String, ConnectorError> {
        crate::local_fs::probe_root(&self.config.root)
    }
}

impl Connector for FileshareSource {
    async fn scan(
        &self,
        context: ScanContext,
        sink: RecordSink,
    ) -> Result<ScanReport, ConnectorError> {
        let config = self.config.clone();
        let plan = self.plan.clone();
        tokio::task::spawn_blocking(move || walk::walk(&config, &plan, &context, &sink))
            .await
            .map_err(|error| ConnectorError::Worker(error.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-thread share at `root` with nothing configured but the root.
    fn share_at(root: &std::path::Path) -> FileshareConfig {
        FileshareConfig {
            root: root.to_path_buf(),
            exclude: Vec::new(),
            follow_symlinks: false,
            threads: 1,
            classify: Vec::new(),
            markers: Vec::new(),
            folders: Vec::new(),
            path_dates: Vec::new(),
            custodian_from: Vec::new(),
        }
    }

    /// A scan of source `share` with no rule needs.
    fn share_context() -> ScanContext {
        ScanContext {
            source: std::sync::Arc::from("share"),
            needs: crate::Needs::default(),
            cancel: crate::CancelFlag::default(),
            checkpoints: Default::default(),
            content: None,
            timezone: chrono_tz::UTC,
            records: None,
        }
    }

    /// More folders than the walker remembers (8 in tests): what each file
    /// inherits from the marker files above it is read again, and right.
    #[tokio::test]
    async fn marker_dates_are_right_after_the_folder_memory_fills() {
        let dir = tempfile::tempdir().expect("tempdir");
        // tjanst-N/TILLSATT.txt dated 2020-01-(N+1); its files two levels down.
        let mut expected = std::collections::BTreeMap::new();
        for n in 0..30u32 {
            let job = dir.path().join(format!("tjanst-{n}"));
            let deep = job.join("ansokningar").join(format!("sokande-{n}"));
            std::fs::create_dir_all(&deep).expect("dir");
            let day = format!("2020-01-{:02}", n + 1);
            std::fs::write(job.join("TILLSATT.txt"), format!("tillsatt {day}\n")).expect("marker");
            std::fs::write(deep.join("cv.pdf"), b"x").expect("file");
            std::fs::write(job.join("annons.txt"), b"x").expect("file");
            expected.insert(
                format!("tjanst-{n}/ansokningar/sokande-{n}/cv.pdf"),
                day.clone(),
            );
            expected.insert(format!("tjanst-{n}/annons.txt"), day);
        }
        let source = FileshareSource::build(FileshareConfig {
            threads: 2,
            markers: vec![MarkerConfig {
                file: "TILLSATT.txt".into(),
                date: "position_filled".into(),
                date_from: MarkerDateFrom::Content,
            }],
            ..share_at(dir.path())
        })
        .expect("source");
        let context = share_context();
        let (sink, mut receiver) = RecordSink::channel(1024);
        let collect = tokio::spawn(async move {
            let mut dated = std::collections::BTreeMap::new();
            while let Some(batch) = receiver.recv().await {
                for record in batch {
                    let date = record
                        .dates
                        .get("position_filled")
                        .map(|date| date.format("%Y-%m-%d").to_string())
                        .unwrap_or_default();
                    dated.insert(record.path.clone(), date);
                }
            }
            dated
        });
        source.scan(context, sink).await.expect("scan");
        assert_eq!(collect.await.expect("records"), expected);
    }

    /// The scan runner's deadline sets the scan's flag; the walker, on its
    /// blocking threads, stops at the next entry rather than finish the share.
    #[tokio::test]
    async fn the_walk_stops_when_its_flag_is_set() {
        let dir = tempfile::tempdir().expect("tempdir");
        for n in 0..50 {
            let folder = dir.path().join(format!("d{n}"));
            std::fs::create_dir_all(&folder).expect("dir");
            std::fs::write(folder.join("f.txt"), b"x").expect("file");
        }
        let source = FileshareSource::build(share_at(dir.path())).expect("source");
        let context = share_context();
        let (sink, mut receiver) = RecordSink::channel(1024);
        let drain = tokio::spawn(async move { while receiver.recv().await.is_some() {} });
        let uncancelled = source.scan(context.clone(), sink).await;
        assert!(uncancelled.is_ok(), "{uncancelled:?}");
        let context = ScanContext {
            cancel: crate::CancelFlag::default(),
            ..context
        };
        context.cancel.cancel();
        let (sink, mut receiver) = RecordSink::channel(1024);
        let drain2 = tokio::spawn(async move { while receiver.recv().await.is_some() {} });
        let cancelled = source.scan(context, sink).await;
        assert!(
            matches!(cancelled, Err(ConnectorError::Cancelled)),
            "{cancelled:?}"
        );
        drain.await.expect("drain");
        drain2.await.expect("drain");
    }
}
