//! What an incremental read starts from: when the last full read began and
//! the newest change time the API gave.

use super::HttpSource;
use crate::ScanContext;

/// The checkpoint's key among the source's.
pub(super) const KEY: &str = "http";

/// What the last read left for the next.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct HttpCheckpoint {
    /// When the last full read started (Unix seconds).
    pub(super) full_at: i64,
    /// The newest change time seen, as the API wrote it.
    pub(super) since: String,
}

impl crate::checkpoint::Checkpoint for HttpCheckpoint {
    const VERSION: u32 = 1;
}

impl HttpSource {
    /// The last read's checkpoint, when this scan may be incremental: made
    /// under the same plan, by a full read recent enough.
    pub(super) fn previous(
        &self,
        context: &ScanContext,
        plan: &str,
        now: i64,
    ) -> Option<HttpCheckpoint> {
        let incremental = self.config.incremental.as_ref()?;
        let previous: HttpCheckpoint = crate::checkpoint::load(&context.checkpoints, KEY, plan)?;
        let limit = i64::try_from(incremental.full_every_hours.saturating_mul(3600)).ok()?;
        (now.saturating_sub(previous.full_at) < limit).then_some(previous)
    }
}
