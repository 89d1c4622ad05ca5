//! The share's content cache: what the detectors found in a file, kept as
//! a checkpoint per file (under a keyed hash of its path, never the path)
//! and used again while the file keeps its size, modification time and
//! inode and the rules their plan, so an unchanged file is not read twice.

use std::collections::BTreeMap;

use tillsyn_core::fingerprint::Fingerprint;

use super::transport::FileStat;
use crate::ScanContext;
use crate::content::Content;

/// One file's entry: what it was when read, and what was found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct ContentCheckpoint {
    /// Bytes.
    size: u64,
    /// Modification time: seconds and nanoseconds.
    mtime: (i64, u32),
    /// Inode number.
    ino: u64,
    /// What the detectors found ([`Content::encode_summary`]).
    summary: String,
}

impl crate::checkpoint::Checkpoint for ContentCheckpoint {
    const VERSION: u32 = 1;
}

/// The key of a file's entry in the share's content cache: the record
/// cache's keyed hash of its path (without a record cache, the content
/// plan's), never the path: the store holds no file name for it.
pub(super) fn content_key(
    context: &crate::ScanContext,
    plan: &crate::content::ContentPlan,
    path: &str,
) -> String {
    match &context.records {
        Some(cache) => format!("content:{:032x}", cache.key(path)),
        None => format!(
            "content:{}",
            tillsyn_core::identity::to_hex(&plan.identity.hash("path", path))
        ),
    }
}

/// The plan content entries are kept under: what the rules, the index and
/// the detectors take from a file (`needs.plan`).
pub(super) fn plan(context: &ScanContext) -> String {
    Fingerprint::new("share content")
        .number(context.needs.plan)
        .hex()
}

/// The entry under `key` and what it found, when the file is as it was then
/// and the plan the same: the stored text (kept for the next scan) and the
/// content.
pub(super) fn cached(
    context: &ScanContext,
    key: &str,
    plan: &str,
    metadata: &FileStat,
) -> Option<(String, Content)> {
    let text = context.checkpoints.get(key)?;
    let entry: ContentCheckpoint = crate::checkpoint::decode(text, plan)?;
    let same =
        entry.size == metadata.size && entry.mtime == metadata.mtime && entry.ino == metadata.ino;
    let content = Content::decode_summary(&entry.summary).filter(|_| same)?;
    Some((text.clone(), content))
}

/// Keep what was found in a file just read.
pub(super) fn remember(
    checkpoints: &mut BTreeMap<String, String>,
    key: String,
    plan: &str,
    metadata: &FileStat,
    content: &Content,
) {
    crate::checkpoint::store(
        checkpoints,
        key,
        plan,
        &ContentCheckpoint {
            size: metadata.size,
            mtime: metadata.mtime,
            ino: metadata.ino,
            summary: content.encode_summary(),
        },
    );
}
