//! What an incremental read of a folder starts from: its UIDVALIDITY, the
//! last UID and message count read, and when a message can next become due.
//! One checkpoint per folder, keyed by the folder's record-path prefix
//! (`account/folder`), so a unit of the work (an account) takes its own.

use tillsyn_core::fingerprint::Fingerprint;

/// What an incremental read starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct FolderCheckpoint {
    /// The folder's UIDVALIDITY: another means every UID changed.
    pub(super) uid_validity: u32,
    /// The highest UID read.
    pub(super) last_uid: u32,
    /// EXISTS at the last read: with `last_uid` unchanged, an equal count means
    /// nothing was expunged either.
    pub(super) exists: u32,
    /// The age cutoff of the last read (seconds).
    pub(super) cutoff: Option<i64>,
    /// No message that was younger than `cutoff` then was received before this
    /// (seconds): until the cutoff passes it, no message can have become due.
    pub(super) next_due: Option<i64>,
}

impl crate::checkpoint::Checkpoint for FolderCheckpoint {
    const VERSION: u32 = 3;
}

/// The plan a folder's checkpoint is kept under: what the rules, the index
/// and the detectors take from a message (`needs.plan`).
pub(super) fn plan(needs_plan: u64) -> String {
    Fingerprint::new("imap plan").number(needs_plan).hex()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn checkpoints_round_trip_under_their_plan_only() {
        let checkpoint = FolderCheckpoint {
            uid_validity: 1_700_000_000,
            last_uid: 42,
            exists: 40,
            cutoff: Some(1_790_000_000),
            next_due: Some(1_790_100_000),
        };
        let unknown = FolderCheckpoint {
            cutoff: None,
            next_due: None,
            ..checkpoint
        };
        let mut checkpoints = BTreeMap::new();
        for state in [checkpoint, unknown] {
            crate::checkpoint::store(&mut checkpoints, "anna/INBOX", &plan(7), &state);
            assert_eq!(
                crate::checkpoint::load(&checkpoints, "anna/INBOX", &plan(7)),
                Some(state)
            );
            // Another plan (the rules changed): read in full.
            assert_eq!(
                crate::checkpoint::load::<FolderCheckpoint>(&checkpoints, "anna/INBOX", &plan(8)),
                None
            );
        }
        // The untyped form of earlier releases is not read.
        checkpoints.insert("anna/INBOX".into(), "v2 1 2 3 - - 7".into());
        assert_eq!(
            crate::checkpoint::load::<FolderCheckpoint>(&checkpoints, "anna/INBOX", &plan(7)),
            None
        );
    }
}
