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

mod checkpoint;
mod config;
mod owners;
mod read;
mod transport;

pub use config::{
    ClassifyConfig, FileshareConfig, FileshareConfigError, MarkerConfig, MarkerDateFrom,
};
pub use owners::service_user;

use crate::{Connector, ConnectorError, RecordSink, ScanContext, ScanReport};

/// A built file-share source, ready to scan.
#[derive(Debug, Clone)]
pub struct FileshareSource {
    config: FileshareConfig,
    plan: read::WalkPlan,
}

impl FileshareSource {
    /// Check the config (globs compile) and build the source.
    pub fn build(config: FileshareConfig) -> Result<FileshareSource, FileshareConfigError> {
        let plan = read::WalkPlan::new(&config)?;
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
        tokio::task::spawn_blocking(move || read::walk(&config, &plan, &context, &sink))
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
