//! Secrets (keys, passwords, tokens): read from a file or an environment variable,
//! never written inline in the config, and never printed. `Debug` and `Display`
//! show `**REDACTED**`.
//!
//! A path may start with `$CREDENTIALS_DIRECTORY/` (or `${CREDENTIALS_DIRECTORY}/`):
//! systemd's `LoadCredential=` puts secrets there and sets that variable.

use std::fmt;
use std::path::{Path, PathBuf};

/// Secret bytes that redact themselves.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// The secret bytes. Call sites are the only places a secret is in the open.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Wrap bytes as a secret.
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**REDACTED**")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**REDACTED**")
    }
}

/// Why a secret could not be read. Messages name the file or variable, never the
/// content.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The file could not be read.
    #[error("cannot read secret file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The variable is not set.
    #[error("environment variable {0} is not set")]
    Env(String),
    /// The secret is empty.
    #[error("secret from {0} is empty")]
    Empty(String),
    /// `$CREDENTIALS_DIRECTORY` was used but systemd did not set it.
    #[error(
        "{0} uses $CREDENTIALS_DIRECTORY, which is not set (it is set by systemd's LoadCredential=)"
    )]
    NoCredentialsDirectory(PathBuf),
}

/// Expand a leading `$CREDENTIALS_DIRECTORY` in a secret path.
pub fn expand_credentials_dir(path: &Path) -> Result<PathBuf, SecretError> {
    let text = path.to_string_lossy();
    for prefix in ["${CREDENTIALS_DIRECTORY}", "$CREDENTIALS_DIRECTORY"] {
        if let Some(rest) = text.strip_prefix(prefix) {
            let dir = std::env::var_os("CREDENTIALS_DIRECTORY")
                .ok_or_else(|| SecretError::NoCredentialsDirectory(path.to_path_buf()))?;
            return Ok(PathBuf::from(dir).join(rest.trim_start_matches('/')));
        }
    }
    Ok(path.to_path_buf())
}

/// Read a secret file; one trailing newline is dropped (editors add it).
pub fn read_file(path: &Path) -> Result<Secret, SecretError> {
    let path = expand_credentials_dir(path)?;
    let mut bytes = std::fs::read(&path).map_err(|source| SecretError::File {
        path: path.clone(),
        source,
    })?;
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    if bytes.is_empty() {
        return Err(SecretError::Empty(path.display().to_string()));
    }
    Ok(Secret(bytes))
}

/// Read a secret from an environment variable.
pub fn read_env(name: &str) -> Result<Secret, SecretError> {
    let value = std::env::var_os(name).ok_or_else(|| SecretError::Env(name.to_owned()))?;
    let bytes = value.into_encoded_bytes();
    if bytes.is_empty() {
        return Err(SecretError::Empty(format!("${name}")));
    }
    Ok(Secret(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_and_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key");
        std::fs::write(&path, "hunter2\n").expect("write");
        let secret = read_file(&path).expect("read");
        assert_eq!(secret.expose(), b"hunter2");
        assert_eq!(format!("{secret:?} {secret}"), "**REDACTED** **REDACTED**");
        let missing = read_file(&dir.path().join("nope")).expect_err("missing");
        assert!(missing.to_string().contains("nope"));
        std::fs::write(&path, "\n").expect("write");
        assert!(matches!(read_file(&path), Err(SecretError::Empty(_))));
    }
}
