//! What an incremental read starts from: when the last full read began,
//! and the directory's own position (the newest `modifyTimestamp` seen, or
//! an Active Directory controller's update number and identity).

use super::LdapSource;
use super::read::{binary_id, parse_directory_time};
use crate::ScanContext;
use ldap3::{Scope, SearchEntry};
use std::time::Duration;

/// The checkpoint's key among the source's.
pub(super) const KEY: &str = "ldap";

/// What the last read left for the next: when the last full read began,
/// and where the directory was.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct LdapCheckpoint {
    /// When the last full read started (Unix seconds).
    pub(super) full_at: i64,
    /// Where the directory was.
    pub(super) position: Position,
}

/// Where the directory was at the last read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Position {
    /// The newest `modifyTimestamp` seen, as the server wrote it, and
    /// whether it was settled then (see the module docs).
    Modified {
        /// The GeneralizedTime.
        since: String,
        /// More than [`SETTLE_SECONDS`] before the scan.
        settled: bool,
    },
    /// An Active Directory controller's `highestCommittedUSN` when the last
    /// read began, and which controller (its NTDS `invocationId`).
    Usn(DcPosition),
}

impl crate::checkpoint::Checkpoint for LdapCheckpoint {
    const VERSION: u32 = 1;
}

/// Where an Active Directory domain controller is in its own count of
/// changes: update sequence numbers are per controller, so a rescan may ask
/// one for changes past a number only if it is the same one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct DcPosition {
    /// The NTDS settings' `invocationId`.
    invocation: String,
    /// `highestCommittedUSN` from the rootDSE.
    highest: u64,
}

/// How far behind our clock a `modifyTimestamp` must be to count as settled:
/// covers clock skew between this host and the directory.
pub const SETTLE_SECONDS: i64 = 600;

impl LdapSource {
    /// The controller's position, when the server is an Active Directory
    /// domain controller (its rootDSE has `highestCommittedUSN`).
    pub(super) async fn dc_position(
        &self,
        ldap: &mut ldap3::Ldap,
        timeout: Duration,
    ) -> Option<DcPosition> {
        let first = |found: Result<ldap3::SearchResult, ldap3::LdapError>| {
            let (entries, _) = found.ok()?.success().ok()?;
            entries.into_iter().next().map(SearchEntry::construct)
        };
        let value = |entry: &SearchEntry, name: &str| {
            entry
                .attrs
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .and_then(|(_, values)| values.first().cloned())
        };
        let root = first(
            ldap.with_timeout(timeout)
                .search(
                    "",
                    Scope::Base,
                    "(objectClass=*)",
                    vec!["highestCommittedUSN", "dsServiceName"],
                )
                .await,
        )?;
        let highest = value(&root, "highestCommittedUSN")?.trim().parse().ok()?;
        let service = value(&root, "dsServiceName")?;
        let settings = first(
            ldap.with_timeout(timeout)
                .search(
                    &service,
                    Scope::Base,
                    "(objectClass=*)",
                    vec!["invocationId"],
                )
                .await,
        )?;
        let invocation = settings
            .bin_attrs
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case("invocationId"))
            .and_then(|(_, values)| values.first())
            .map(|bytes| binary_id(bytes))
            .or_else(|| value(&settings, "invocationId"))?;
        Some(DcPosition {
            invocation,
            highest,
        })
    }

    /// The last read's checkpoint, when this scan may be incremental: made
    /// under the same plan, by a full read recent enough.
    pub(super) fn previous(
        &self,
        context: &ScanContext,
        plan: &str,
        now: i64,
    ) -> Option<LdapCheckpoint> {
        let hours = self.config.incremental_full_every_hours?;
        let previous: LdapCheckpoint = crate::checkpoint::load(&context.checkpoints, KEY, plan)?;
        let fresh = now.saturating_sub(previous.full_at)
            < i64::try_from(hours.saturating_mul(3600)).ok()?;
        fresh.then_some(previous)
    }
}

impl LdapCheckpoint {
    /// The update number to read changes after, when the last read was of
    /// the same controller.
    pub(super) fn usn(&self, dc: &DcPosition) -> Option<u64> {
        match &self.position {
            Position::Usn(last) if last.invocation == dc.invocation => Some(last.highest),
            _ => None,
        }
    }

    /// The `modifyTimestamp` to read changes from, and whether it was
    /// settled; only a well-formed GeneralizedTime goes into a filter.
    pub(super) fn since(&self, zone: chrono_tz::Tz) -> Option<(&str, bool)> {
        let Position::Modified { since, settled } = &self.position else {
            return None;
        };
        let well_formed = parse_directory_time(since, zone).is_some()
            && since
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, 'Z' | 'z' | '.' | ',' | '+' | '-'));
        well_formed.then_some((since.as_str(), *settled))
    }
}
