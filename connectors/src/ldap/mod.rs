//! Directories over LDAP (OpenLDAP, Active Directory): people and contacts as
//! records, for promises about former customers, opt-outs and list membership.
//!
//! - **Read-only.** One simple bind, then searches; nothing else is sent.
//! - **Paged.** RFC 2696 paged results (`page_size`, at most 1000, Active
//!   Directory's cap), so a non-admin bind reads past the server's size limit.
//! - **Only what rules need.** The search asks for the mapped attributes and
//!   dates, the custodian attribute and `modifyTimestamp`, nothing else.
//! - **TLS.** `ldaps://` or StartTLS with an explicit root store (the system's
//!   and `ca_file`): ldap3 would otherwise fall back silently to an empty one.
//! - **Referrals** are not followed: counted and skipped.
//!
//! Each entry becomes a [`RecordKind::Contact`] record: id = its DN, normalised
//! as directories compare DNs ([`crate::dn`]), or the `id_attribute`
//! (`objectGUID`, `entryUUID`) so a renamed entry keeps its findings; path =
//! the DN; custodian = the `custodian_attribute`, when one is named (whom an
//! entry is about goes by its mapped identifiers); attributes and dates as
//! mapped in the config ([`crate::values`]: patterns, date formats, flags).
//!
//! **Groups** (`group_base_dn`): for directories without `memberOf`, the group
//! entries under that base are read first and each person's record gets the
//! DNs of the groups that list it as `member` or `uniqueMember`, joined with
//! `;`, as the attribute `groups_attribute`. Members a server sends in ranges
//! (`member;range=0-1499`, as Active Directory does past 1500) are asked for
//! range by range to the end.
//!
//! **Incremental** (`incremental_full_every_hours`): where the server keeps
//! `modifyTimestamp`, a rescan asks only for entries changed since the newest
//! `modifyTimestamp` the last scan saw (the server's clock, not ours): strictly
//! newer when that time lies more than [`SETTLE_SECONDS`] before the scan (no
//! entry can still be stamped with it), else that time included (entries stamped
//! in the same second are read again rather than missed). Their
//! findings are judged again; everyone else's are carried. Entries deleted since,
//! and entries whose dates came due without the entry changing, are only seen by
//! a full read: one runs when the last is older than the set number of hours, when
//! the rules or the search change, and whenever the server gave no
//! `modifyTimestamp`.
//!
//! **Active Directory** (its rootDSE has `highestCommittedUSN`): rescans ask
//! for `uSNChanged` past the controller's `highestCommittedUSN` when the last
//! read began, never by `modifyTimestamp` (built from `whenChanged`, which is
//! not replicated). Update numbers are the controller's own, so its NTDS
//! `invocationId` is kept with them, and another controller (or a restored
//! one) means a full read.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tillsyn_core::secret::{self, Secret};

mod checkpoint;
mod config;
mod read;
mod search;
mod transport;

pub use checkpoint::SETTLE_SECONDS;
pub use config::{LdapBuildError, LdapConfig};
#[cfg(test)]
pub(crate) use read::parse_directory_time;

/// A built LDAP source.
#[derive(Debug, Clone)]
pub struct LdapSource {
    config: Arc<LdapConfig>,
    password: Secret,
    tls: Arc<rustls::ClientConfig>,
}

impl LdapSource {
    /// Check the settings and read the password; nothing is contacted yet.
    pub fn build(config: LdapConfig) -> Result<LdapSource, LdapBuildError> {
        if !(1..=1000).contains(&config.page_size) {
            return Err(LdapBuildError::Invalid(format!(
                "page_size {} is outside 1–1000",
                config.page_size
            )));
        }
        let encrypted = config.url.starts_with("ldaps://") || config.starttls;
        if !encrypted && !config.allow_plaintext {
            return Err(LdapBuildError::Invalid(
                "ldap:// without starttls sends the password unencrypted; use ldaps://, \
                 starttls = true, or allow_plaintext = true (loopback tests only)"
                    .into(),
            ));
        }
        let password = secret::read_file(&config.password_file)?;
        let tls = crate::tls::tls_config(config.ca_file.as_deref(), encrypted)?;
        Ok(LdapSource {
            config: Arc::new(config),
            password,
            tls,
        })
    }

    /// Make relative paths relative to the config file's folder.
    pub fn resolve_paths(config: &mut LdapConfig, resolve: impl Fn(&Path) -> PathBuf) {
        config.password_file = resolve(&config.password_file);
        if let Some(ca) = &mut config.ca_file {
            *ca = resolve(ca);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::read::{binary_id, member_range, parse_directory_time};

    #[test]
    fn object_guids_read_as_windows_writes_them() {
        // ryG0p73oPk6KZNtzpUqCLg== as Samba sent it.
        let bytes = [
            0xaf, 0x21, 0xb4, 0xa7, 0xbd, 0xe8, 0x3e, 0x4e, 0x8a, 0x64, 0xdb, 0x73, 0xa5, 0x4a,
            0x82, 0x2e,
        ];
        assert_eq!(binary_id(&bytes), "a7b421af-e8bd-4e3e-8a64-db73a54a822e");
        assert_eq!(binary_id(&[1, 2]), "0102");
    }

    #[test]
    fn reads_the_ranges_active_directory_sends_members_in() {
        assert_eq!(member_range("member"), ("member", None));
        assert_eq!(
            member_range("member;range=0-1499"),
            ("member", Some((0, Some(1499))))
        );
        assert_eq!(
            member_range("member;range=1500-*"),
            ("member", Some((1500, None)))
        );
        assert_eq!(
            member_range("member;Range=3000-4499"),
            ("member", Some((3000, Some(4499))))
        );
        assert_eq!(member_range("member;binary"), ("member", None));
        assert_eq!(member_range("member;range=x-1"), ("member", None));
    }

    #[test]
    fn reads_directory_times() {
        let cases: &[(&str, Option<&str>)] = &[
            ("20240115103000Z", Some("2024-01-15T10:30:00+00:00")),
            ("20240115103000.5Z", Some("2024-01-15T10:30:00+00:00")),
            ("20240115103000+0200", Some("2024-01-15T08:30:00+00:00")),
            ("202401151030Z", Some("2024-01-15T10:30:00+00:00")),
            ("2024-01-15", Some("2024-01-15T00:00:00+00:00")),
            ("20241315103000Z", None),
            ("20240115103000", None),
            ("yesterday", None),
            ("", None),
        ];
        for (text, expected) in cases {
            let got = parse_directory_time(text, chrono_tz::UTC).map(|time| time.to_rfc3339());
            assert_eq!(got.as_deref(), *expected, "{text:?}");
        }
    }
}
