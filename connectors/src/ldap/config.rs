//! `type = "ldap"`: a directory's settings as the config writes them.

use crate::values::ValueMapping;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `type = "ldap"`: a directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldap://host:389` or `ldaps://host:636`. Required.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS. Default: false.
    #[serde(default)]
    pub starttls: bool,
    /// Allow `ldap://` without StartTLS (the password crosses unencrypted; for
    /// loopback tests). Default: false.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// PEM file of an internal CA, trusted besides the system's. Default: none.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// DN to bind as, e.g. `cn=tillsyn,ou=services,dc=example,dc=se`. Required.
    pub bind_dn: String,
    /// File holding the bind password. Required.
    pub password_file: PathBuf,
    /// Where to search, e.g. `ou=people,dc=example,dc=se`. Required.
    pub base_dn: String,
    /// Search filter. Default: `(objectClass=*)`.
    #[serde(default = "default_filter")]
    pub filter: String,
    /// Entries per page (1–1000). Default: 500.
    #[serde(default = "default_page_size")]
    pub page_size: i32,
    /// Attribute naming who must act on an entry, its custodian (a manager,
    /// an account manager: `manager`, `seeAlso`), as digests and the report's
    /// "who" name them (pseudonymised in output). Whom an entry is about (its
    /// `mail`, an employee number) goes in the source's `identifiers`
    /// instead. Default: none (entries have no custodian).
    #[serde(default)]
    pub custodian_attribute: Option<String>,
    /// Attribute holding an entry's stable id, which stays when the entry is
    /// renamed or moved: `objectGUID` (Active Directory, shown in its usual
    /// `xxxxxxxx-xxxx-…` form) or `entryUUID` (OpenLDAP). Findings follow the
    /// entry by it. An entry without it keeps its DN as id. Default: none (the
    /// DN).
    #[serde(default)]
    pub id_attribute: Option<String>,
    /// Record attribute name → LDAP attribute, e.g.
    /// `{ status = "customerStatus", opt_out = "marketingOptOut" }`, or a
    /// table `{ attribute, pattern }` whose pattern picks the value out of
    /// each (see [`crate::values`]). Several values are joined with `;`.
    /// Default: none.
    #[serde(default)]
    pub attributes: BTreeMap<String, ValueMapping>,
    /// Record date name → LDAP attribute holding a date in any format
    /// [`tillsyn_core::dates::parse_date`] reads, e.g.
    /// `{ customer_ended = "customerEndDate" }`, or a table `{ attribute,
    /// pattern, format }`. Of several values, the first (that the pattern
    /// matches) counts. Default: none.
    #[serde(default)]
    pub dates: BTreeMap<String, ValueMapping>,
    /// Longest wait for any server response, in seconds. Default: 60.
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    /// Where group entries are, e.g. `ou=lists,dc=example,dc=se`: each record
    /// then gets the (lower-cased) DNs of the groups listing it as `member` or
    /// `uniqueMember`. Default: none.
    #[serde(default)]
    pub group_base_dn: Option<String>,
    /// Which entries under `group_base_dn` are groups. Default:
    /// `(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))`.
    #[serde(default = "default_group_filter")]
    pub group_filter: String,
    /// Record attribute that receives the group DNs. Default: `groups`.
    #[serde(default = "default_groups_attribute")]
    pub groups_attribute: String,
    /// Read only entries changed since the last scan (by `modifyTimestamp`),
    /// with a full read when the last one is older than this many hours: that
    /// read also resolves deleted entries and finds entries whose dates came due
    /// without a change. Default: none (every scan reads everything).
    #[serde(default)]
    pub incremental_full_every_hours: Option<u64>,
}

pub(super) fn default_filter() -> String {
    "(objectClass=*)".into()
}

pub(super) fn default_page_size() -> i32 {
    500
}

pub(super) fn default_timeout_seconds() -> u64 {
    60
}

pub(super) fn default_group_filter() -> String {
    "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))".into()
}

pub(super) fn default_groups_attribute() -> String {
    "groups".into()
}

/// Why this source could not be built (shared with the other network sources).
pub type LdapBuildError = crate::SourceSetupError;
