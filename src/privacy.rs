//! How people appear in output: by name only where the config says so, otherwise as
//! a keyed pseudonym.
//!
//! The pseudonym is HMAC-SHA-256 over the owner's name with a secret key, never a
//! plain hash: account names and identity numbers come from spaces small enough to
//! hash in full and look up. The key comes from `[privacy] key_file`/`key_env` or is
//! generated once into `STATE_DIR/pseudonym.key` (mode 0600), so a pseudonym stays
//! the same from scan to scan and report to report.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::PrivacyConfig;
use crate::secret::Secret;

/// Turns owners into what output may show.
#[derive(Debug, Clone)]
pub struct OwnerDisplay {
    name_owners: bool,
    key: Secret,
}

/// Why the pseudonym key could not be had.
#[derive(Debug, thiserror::Error)]
#[error("pseudonym key {path}: {source}")]
pub struct KeyError {
    path: String,
    #[source]
    source: std::io::Error,
}

impl OwnerDisplay {
    /// Set up from the config, reading or creating the key in `state_dir`.
    pub fn new(privacy: &PrivacyConfig, state_dir: &Path) -> Result<OwnerDisplay, KeyError> {
        let key = match &privacy.key {
            Some(key) => key.clone(),
            None => state_key(&state_dir.join("pseudonym.key"))?,
        };
        Ok(OwnerDisplay {
            name_owners: privacy.name_owners,
            key,
        })
    }

    /// What to show for `owner`.
    pub fn show(&self, owner: Option<&str>) -> String {
        match owner {
            None => "-".to_owned(),
            Some(owner) if self.name_owners => owner.to_owned(),
            Some(owner) => self.pseudonym(owner),
        }
    }

    /// The keyed pseudonym: `p-` and 12 hex digits (48 bits).
    pub fn pseudonym(&self, owner: &str) -> String {
        // HMAC accepts keys of any length; the error case cannot happen.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.key.expose()) else {
            return "p-unavailable".to_owned();
        };
        mac.update(owner.as_bytes());
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
        let first = OwnerDisplay::new(&privacy, dir.path()).expect("key");
        let again = OwnerDisplay::new(&privacy, dir.path()).expect("key");
        let alias = first.show(Some("anna.svensson"));
        assert!(alias.starts_with("p-") && alias.len() == 14, "{alias}");
        assert_eq!(alias, again.show(Some("anna.svensson")));
        assert_ne!(alias, first.show(Some("bertil.berg")));
        let other_dir = tempfile::tempdir().expect("tempdir");
        let other = OwnerDisplay::new(&privacy, other_dir.path()).expect("key");
        assert_ne!(
            alias,
            other.show(Some("anna.svensson")),
            "different key, different pseudonym"
        );
        let named = OwnerDisplay::new(
            &PrivacyConfig {
                name_owners: true,
                key: None,
            },
            dir.path(),
        )
        .expect("key");
        assert_eq!(named.show(Some("anna.svensson")), "anna.svensson");
        assert_eq!(named.show(None), "-");
    }
}
