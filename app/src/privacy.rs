//! How people appear in output: by name only where the config says so, otherwise as
//! a keyed pseudonym. Every output path (the CLI, the report, the mailed message,
//! logs of scan problems) goes through [`PersonDisplay`], so the one switch
//! `[privacy] name_people` decides for all of them.
//!
//! The pseudonym is HMAC-SHA-256 over a domain tag (`tillsyn pseudonym`) and the
//! custodian's name with a secret key, never a plain hash: account names and
//! identity numbers come from spaces small enough to hash in full and look up.
//! The tag keeps pseudonyms apart from the identity index's hashes under the
//! same key (`tillsyn identity`); it came in with release 0.3, and every
//! pseudonym changed once then. The key comes from `[privacy] key_file`/`key_env` or is
//! generated once into `STATE_DIR/pseudonym.key` (mode 0600), so a pseudonym stays
//! the same from scan to scan and report to report.
//!
//! Record locations keep the structure that names nobody and replace the parts that
//! name a person by the pseudonym of that part:
//! - mail (`account/folder/uid`): the account;
//! - directory entries (a DN): the values of the entry's own RDN
//!   (`cn=p-…,ou=people,dc=…`);
//! - any path segment equal to the record's custodian (home folders), any segment whose
//!   path matches one of the source's `personal_paths` globs (file names of
//!   applications, customer folders), keeping a file's extension;
//! - record ids that are mail addresses (a CRM keyed by e-mail), and every id of a
//!   source whose `personal_paths` holds `"*"`.
//!
//! Free text that may name a person (a connector's note "account anna@…: login
//! refused") carries those parts between the markers of
//! [`tillsyn_connectors::mark_personal`]; [`PersonDisplay::text`] pseudonymises or
//! unmarks them, and pseudonymises any mail address left in the text.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use globset::{GlobSet, GlobSetBuilder};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tillsyn_connectors::{PERSONAL_END, PERSONAL_START};

use tillsyn_config::{Config, PrivacyConfig, SourceSettings};
use tillsyn_core::secret::Secret;

/// Turns custodians, record locations and problem notes into what output may show.
#[derive(Debug, Clone)]
pub struct PersonDisplay {
    name_people: bool,
    key: Secret,
    shapes: HashMap<String, SourceShape>,
}

/// How the records of one source name people.
#[derive(Debug, Clone)]
struct SourceShape {
    kind: ShapeKind,
    personal_paths: GlobSet,
    every_id_personal: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ShapeKind {
    Mail,
    Directory,
    Api,
    Files,
}

/// Why the pseudonym key could not be had.
#[derive(Debug, thiserror::Error)]
#[error("pseudonym key {path}: {source}")]
pub struct KeyError {
    path: String,
    #[source]
    source: std::io::Error,
}

impl PersonDisplay {
    /// Set up from the privacy section alone, reading or creating the key in
    /// `state_dir`. Record locations are then shaped by their kind only; use
    /// [`PersonDisplay::for_config`] where the sources are known.
    pub fn new(privacy: &PrivacyConfig, state_dir: &Path) -> Result<PersonDisplay, KeyError> {
        Ok(PersonDisplay {
            name_people: privacy.name_people,
            key: pseudonym_key(privacy, state_dir)?,
            shapes: HashMap::new(),
        })
    }

    /// Set up for a whole config: the privacy switch and key, and how each
    /// source's records name people.
    pub fn for_config(config: &Config) -> Result<PersonDisplay, KeyError> {
        let mut display = PersonDisplay::new(&config.privacy, &config.daemon.state_dir)?;
        for source in &config.sources {
            let kind = match source.settings {
                SourceSettings::Imap(_) | SourceSettings::Maildir(_) => ShapeKind::Mail,
                SourceSettings::Ldap(_) => ShapeKind::Directory,
                SourceSettings::Http(_) => ShapeKind::Api,
                SourceSettings::Fileshare(_) => ShapeKind::Files,
            };
            let mut builder = GlobSetBuilder::new();
            let mut every_id_personal = false;
            for glob in &source.personal_paths {
                every_id_personal |= glob.text == "*" || glob.text == "**";
                builder.add(glob.glob.clone());
            }
            // Each glob compiled when the config was read; a set of them cannot
            // fail to build, but an empty set is the safe fallback.
            let personal_paths = builder.build().unwrap_or_else(|_| GlobSet::empty());
            display.shapes.insert(
                source.name.clone(),
                SourceShape {
                    kind,
                    personal_paths,
                    every_id_personal,
                },
            );
        }
        Ok(display)
    }

    /// The same, showing everything by name (`--reveal`).
    pub fn revealing(mut self) -> PersonDisplay {
        self.name_people = true;
        self
    }

    /// Whether people are shown by name.
    pub fn names_people(&self) -> bool {
        self.name_people
    }

    /// What to show for `custodian`.
    pub fn show(&self, custodian: Option<&str>) -> String {
        match custodian {
            None => "-".to_owned(),
            Some(custodian) if self.name_people => custodian.to_owned(),
            Some(custodian) => self.pseudonym(custodian),
        }
    }

    /// The keyed pseudonym: `p-` and 12 hex digits (48 bits).
    pub fn pseudonym(&self, custodian: &str) -> String {
        // HMAC accepts keys of any length; the error case cannot happen.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.key.expose()) else {
            return "p-unavailable".to_owned();
        };
        // Domain-separated from the identity index's hashes under the same
        // key (`tillsyn identity`): a pseudonym is never an index entry.
        mac.update(b"tillsyn pseudonym\0");
        mac.update(custodian.as_bytes());
        let digest = mac.finalize().into_bytes();
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut pseudonym = String::with_capacity(14);
        pseudonym.push_str("p-");
        for byte in &digest[..6] {
            pseudonym.push(HEX[usize::from(byte >> 4)] as char);
            pseudonym.push(HEX[usize::from(byte & 15)] as char);
        }
        pseudonym
    }

    /// A record's location (its id or path in `source`) as output may show it.
    pub fn record(&self, source: &str, kind: &str, path: &str, custodian: Option<&str>) -> String {
        if self.name_people {
            return path.to_owned();
        }
        let shape = self.shapes.get(source);
        let shape_kind = shape.map(|shape| shape.kind).unwrap_or(match kind {
            "message" => ShapeKind::Mail,
            "file" | "folder" => ShapeKind::Files,
            _ if looks_like_dn(path) => ShapeKind::Directory,
            _ => ShapeKind::Api,
        });
        match shape_kind {
            ShapeKind::Directory if looks_like_dn(path) => self.distinguished_name(path),
            ShapeKind::Api | ShapeKind::Directory => {
                if path.contains('@')
                    || shape.is_some_and(|shape| {
                        shape.every_id_personal || shape.personal_paths.is_match(path)
                    })
                {
                    self.pseudonym(path)
                } else {
                    path.to_owned()
                }
            }
            ShapeKind::Mail | ShapeKind::Files => {
                let mut shown = String::with_capacity(path.len());
                let mut prefix_end = 0;
                for (index, segment) in path.split('/').enumerate() {
                    prefix_end += segment.len();
                    let prefix = &path[..prefix_end.min(path.len())];
                    let personal = (shape_kind == ShapeKind::Mail && index == 0)
                        || custodian.is_some_and(|custodian| {
                            !custodian.is_empty() && segment.eq_ignore_ascii_case(custodian)
                        })
                        || segment.contains('@')
                        || shape.is_some_and(|shape| shape.personal_paths.is_match(prefix));
                    if index > 0 {
                        shown.push('/');
                    }
                    if personal {
                        shown.push_str(&self.segment(segment, shape_kind == ShapeKind::Files));
                    } else {
                        shown.push_str(segment);
                    }
                    prefix_end += 1;
                }
                shown
            }
        }
    }

    /// One path segment's pseudonym; a file keeps its extension.
    fn segment(&self, segment: &str, keep_extension: bool) -> String {
        match segment.rsplit_once('.') {
            Some((stem, extension))
                if keep_extension
                    && !stem.is_empty()
                    && (1..=5).contains(&extension.len())
                    && extension.bytes().all(|b| b.is_ascii_alphanumeric()) =>
            {
                format!("{}.{extension}", self.pseudonym(segment))
            }
            _ => self.pseudonym(segment),
        }
    }

    /// A DN with the values of its own (leftmost) RDN pseudonymised, and any
    /// value further up that is a mail address.
    fn distinguished_name(&self, dn: &str) -> String {
        let (leaf, parent) = split_first_rdn(dn);
        let mut shown = String::with_capacity(dn.len());
        for (index, part) in split_unescaped(leaf, '+').into_iter().enumerate() {
            if index > 0 {
                shown.push('+');
            }
            self.push_rdn_part(&mut shown, part, true);
        }
        // Further up, only a value that is a mail address names someone.
        let mut rest = parent;
        while let Some(dn) = rest {
            let (rdn, next) = split_first_rdn(dn);
            shown.push(',');
            self.push_rdn_part(&mut shown, rdn, rdn.contains('@'));
            rest = next;
        }
        shown
    }

    /// `attribute=value` with the value pseudonymised when `personal`; a part
    /// whose attribute is no attribute name is pseudonymised whole.
    fn push_rdn_part(&self, shown: &mut String, part: &str, personal: bool) {
        match part.split_once('=') {
            Some((attribute, value))
                if !attribute.is_empty()
                    && attribute
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b' ')) =>
            {
                shown.push_str(attribute);
                shown.push('=');
                if personal {
                    shown.push_str(&self.pseudonym(value.trim()));
                } else {
                    shown.push_str(value);
                }
            }
            _ if personal => shown.push_str(&self.pseudonym(part)),
            _ => shown.push_str(part),
        }
    }

    /// Free text from a connector or the store (a problem note, an error
    /// message): marked personal parts pseudonymised (or unmarked when people are
    /// named), and any mail address left in it pseudonymised.
    pub fn text(&self, text: &str) -> String {
        let mut shown = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find(PERSONAL_START) {
            shown.push_str(&rest[..start]);
            let after = &rest[start + PERSONAL_START.len_utf8()..];
            let (part, next) = match after.find(PERSONAL_END) {
                Some(end) => (&after[..end], &after[end + PERSONAL_END.len_utf8()..]),
                None => (after, ""),
            };
            if self.name_people {
                shown.push_str(part);
            } else {
                shown.push_str(&self.pseudonym(part));
            }
            rest = next;
        }
        shown.push_str(rest);
        if self.name_people {
            shown
        } else {
            self.addresses(&shown)
        }
    }

    /// Every `local@domain` token in `text` replaced by its pseudonym.
    fn addresses(&self, text: &str) -> String {
        let is_address_char =
            |c: char| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '@' | '%');
        let mut shown = String::with_capacity(text.len());
        let mut token = String::new();
        let flush = |token: &mut String, shown: &mut String| {
            let trimmed = token.trim_end_matches('.');
            let trailing = &token[trimmed.len()..];
            match trimmed.split_once('@') {
                Some((local, domain))
                    if !local.is_empty() && domain.contains('.') && !domain.contains('@') =>
                {
                    shown.push_str(&self.pseudonym(&trimmed.to_lowercase()));
                    shown.push_str(trailing);
                }
                _ => shown.push_str(token),
            }
            token.clear();
        };
        for c in text.chars() {
            if is_address_char(c) {
                token.push(c);
            } else {
                flush(&mut token, &mut shown);
                shown.push(c);
            }
        }
        flush(&mut token, &mut shown);
        shown
    }
}

fn looks_like_dn(path: &str) -> bool {
    path.split_once('=')
        .is_some_and(|(attribute, _)| !attribute.is_empty() && !attribute.contains('/'))
}

/// The first RDN and the rest of a DN, at the first comma not escaped by `\`.
fn split_first_rdn(dn: &str) -> (&str, Option<&str>) {
    let mut escaped = false;
    for (index, c) in dn.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            ',' if !escaped => return (&dn[..index], Some(&dn[index + 1..])),
            _ => escaped = false,
        }
    }
    (dn, None)
}

fn split_unescaped(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut escaped = false;
    let mut start = 0;
    for (index, c) in text.char_indices() {
        if c == '\\' && !escaped {
            escaped = true;
            continue;
        }
        if c == separator && !escaped {
            parts.push(&text[start..index]);
            start = index + c.len_utf8();
        }
        escaped = false;
    }
    parts.push(&text[start..]);
    parts
}

/// Create `dir` (and missing parents) owner-only (0700), whatever the umask; an
/// existing folder is made owner-only too, since what tillsyn writes there can
/// name people.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Write `bytes` to `path`, owner-only (0600) from its first byte, whatever the
/// umask; an existing file is replaced and made owner-only.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)
}

/// The pseudonym key: `[privacy] key_file`/`key_env`, or the one kept in the
/// state directory (made on first use).
fn pseudonym_key(privacy: &PrivacyConfig, state_dir: &Path) -> Result<Secret, KeyError> {
    match &privacy.key {
        Some(key) => Ok(key.clone()),
        None => state_key(&state_dir.join("pseudonym.key")),
    }
}

/// What hashes identifiers for the identity index: the pseudonym key, so an
/// identifier can be looked up only by whoever holds it.
pub fn identity_key(config: &Config) -> Result<tillsyn_core::identity::IdentityKey, KeyError> {
    Ok(tillsyn_core::identity::IdentityKey::new(pseudonym_key(
        &config.privacy,
        &config.daemon.state_dir,
    )?))
}

fn state_key(path: &Path) -> Result<Secret, KeyError> {
    let error = |source| KeyError {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() >= 32 => return Ok(Secret::new(bytes)),
        Ok(_) => {
            return Err(error(std::io::Error::other(
                "shorter than 32 bytes; remove it to have a new one made (pseudonyms change)",
            )));
        }
        Err(read_error) if read_error.kind() != std::io::ErrorKind::NotFound => {
            return Err(error(read_error));
        }
        Err(_) => {}
    }
    let key: [u8; 32] = rand::random();
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(error)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(error)?;
    file.write_all(&key).map_err(error)?;
    file.sync_all().map_err(error)?;
    Ok(Secret::new(key.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_keyed_and_stable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let privacy = PrivacyConfig::default();
        let first = PersonDisplay::new(&privacy, dir.path()).expect("key");
        let again = PersonDisplay::new(&privacy, dir.path()).expect("key");
        let alias = first.show(Some("anna.svensson"));
        assert!(alias.starts_with("p-") && alias.len() == 14, "{alias}");
        assert_eq!(alias, again.show(Some("anna.svensson")));
        assert_ne!(alias, first.show(Some("bertil.berg")));
        let other_dir = tempfile::tempdir().expect("tempdir");
        let other = PersonDisplay::new(&privacy, other_dir.path()).expect("key");
        assert_ne!(
            alias,
            other.show(Some("anna.svensson")),
            "different key, different pseudonym"
        );
        let named = PersonDisplay::new(
            &PrivacyConfig {
                name_people: true,
                key: None,
            },
            dir.path(),
        )
        .expect("key");
        assert_eq!(named.show(Some("anna.svensson")), "anna.svensson");
        assert_eq!(named.show(None), "-");
    }

    fn display_for(text: &str, dir: &Path) -> PersonDisplay {
        let config_text = format!(
            r#"
[daemon]
state_dir = "{}"
[[sources]]
name = "mail"
type = "maildir"
root = "/nonexistent"
[[sources]]
name = "share"
type = "fileshare"
root = "/nonexistent"
personal_paths = ["Rekrytering/*/*", "Kunder/*"]
[[sources]]
name = "crm"
type = "http"
url = "http://127.0.0.1:1/contacts"
allow_plaintext = true
id = "/id"
{text}
"#,
            dir.display()
        );
        let config =
            tillsyn_config::parse(&config_text, &dir.join("config.toml")).expect("config parses");
        PersonDisplay::for_config(&config).expect("display")
    }

    #[test]
    fn locations_keep_their_structure_and_lose_their_people() {
        let dir = tempfile::tempdir().expect("tempdir");
        let shown = display_for("", dir.path());
        let p = |text: &str| shown.pseudonym(text);
        let cases: &[(&str, &str, &str, Option<&str>, String)] = &[
            (
                "mail",
                "message",
                "anna@firma.se/INBOX/17",
                Some("anna@firma.se"),
                format!("{}/INBOX/17", p("anna@firma.se")),
            ),
            (
                "share",
                "file",
                "Rekrytering/2024-utvecklare/CV_Anna_Svensson.pdf",
                Some("hr"),
                format!(
                    "Rekrytering/2024-utvecklare/{}.pdf",
                    p("CV_Anna_Svensson.pdf")
                ),
            ),
            (
                "share",
                "folder",
                "Kunder/Bertil Berg AB",
                None,
                format!("Kunder/{}", p("Bertil Berg AB")),
            ),
            (
                "share",
                "file",
                "hem/anna/privat.txt",
                Some("anna"),
                format!("hem/{}/privat.txt", p("anna")),
            ),
            (
                "share",
                "file",
                "Ekonomi/Fakturor/2016/f-1001.pdf",
                Some("kalle"),
                "Ekonomi/Fakturor/2016/f-1001.pdf".to_owned(),
            ),
            (
                "ldap",
                "contact",
                "cn=anna andersson,ou=people,dc=firma,dc=se",
                None,
                format!("cn={},ou=people,dc=firma,dc=se", p("anna andersson")),
            ),
            (
                "ldap",
                "contact",
                "cn=svensson\\, anna+uid=as,ou=people,dc=se",
                None,
                format!(
                    "cn={}+uid={},ou=people,dc=se",
                    p("svensson\\, anna"),
                    p("as")
                ),
            ),
            ("crm", "contact", "anna@kund.se", None, p("anna@kund.se")),
            (
                "crm",
                "crm_object",
                "case-4711",
                None,
                "case-4711".to_owned(),
            ),
        ];
        for (source, kind, path, custodian, expected) in cases {
            assert_eq!(
                &shown.record(source, kind, path, *custodian),
                expected,
                "{source} {path}"
            );
        }
        // Revealed, everything is as stored.
        let revealed = shown.clone().revealing();
        for (source, kind, path, custodian, _) in cases {
            assert_eq!(&revealed.record(source, kind, path, *custodian), path);
        }
    }

    #[test]
    fn every_id_of_a_source_can_be_marked_personal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_text = format!(
            "[daemon]\nstate_dir = {:?}\n[[sources]]\nname = \"crm\"\ntype = \"http\"\nurl = \"http://127.0.0.1:1/x\"\nallow_plaintext = true\nid = \"/name\"\npersonal_paths = [\"*\"]\n",
            dir.path().display().to_string()
        );
        let config =
            tillsyn_config::parse(&config_text, &dir.path().join("c.toml")).expect("config");
        let shown = PersonDisplay::for_config(&config).expect("display");
        assert_eq!(
            shown.record("crm", "contact", "Anna Svensson", None),
            shown.pseudonym("Anna Svensson")
        );
    }

    #[test]
    fn notes_lose_marked_names_and_addresses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let shown = display_for("", dir.path());
        let note = format!(
            "account {}: login refused; sent by Bertil.Berg@Firma.se.",
            tillsyn_connectors::mark_personal("anna")
        );
        let text = shown.text(&note);
        assert_eq!(
            text,
            format!(
                "account {}: login refused; sent by {}.",
                shown.pseudonym("anna"),
                shown.pseudonym("bertil.berg@firma.se")
            )
        );
        assert!(!text.contains("anna") && !text.to_lowercase().contains("bertil"));
        let revealed = shown.clone().revealing();
        assert_eq!(
            revealed.text(&note),
            "account anna: login refused; sent by Bertil.Berg@Firma.se."
        );
        // No address, nothing changes; an unclosed marker still hides its part.
        assert_eq!(shown.text("root 12 ok @ 3"), "root 12 ok @ 3");
        let open = format!("x {}", tillsyn_connectors::PERSONAL_START);
        assert_eq!(
            shown.text(&format!("{open}anna")),
            format!("x {}", shown.pseudonym("anna"))
        );
    }
}
