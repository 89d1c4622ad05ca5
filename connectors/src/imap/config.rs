//! `type = "imap"` settings and the accounts they reach.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use tillsyn_core::secret::{self, Secret, SecretError};

/// `type = "imap"`: mailboxes on an IMAP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapConfig {
    /// Server host name (checked against its certificate) or IP address. Required.
    pub host: String,
    /// Port. Default: 993 with `security = "tls"`, else 143.
    #[serde(default)]
    pub port: Option<u16>,
    /// `tls` (implicit TLS), `starttls`, or `plain` (no encryption: refused unless
    /// `allow_plaintext = true`, meant for loopback tests). Default: `tls`.
    #[serde(default)]
    pub security: Security,
    /// Allow `security = "plain"`. Default: false.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// PEM file with extra CA certificates (an internal CA), trusted besides the
    /// system's. Certificates are always verified. Default: none.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// How tillsyn logs in (`[sources.auth]`, by `method`). Required.
    pub auth: AuthConfig,
    /// Folders to read: names (`INBOX` in any case), special uses (`\\Sent`,
    /// `\\Archive`, …, found with LIST), or `*` for every folder.
    /// Default: `["INBOX", "\\Sent"]`.
    #[serde(default = "default_folders")]
    pub folders: Vec<String>,
    /// Accounts read at once (one connection each). Default: 4.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Longest wait for any one server response, in seconds. Default: 60.
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    /// Tries per account after a connection problem (not after a refused login or
    /// an untrusted certificate), with doubling pauses from 1 s. Default: 3.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// UIDs per FETCH command when reading headers: larger means fewer round
    /// trips, smaller means less to read again after a broken connection.
    /// Default: 5000.
    #[serde(default = "default_fetch_batch")]
    pub fetch_batch: u32,
    /// Marks by which a mailbox custodian says a message is kept on purpose, an
    /// exception of their own: its findings under age rules are excepted,
    /// with the reason "marked by custodian", for as long as the mark stays. Off
    /// by default: the organisation decides whether custodians may do this.
    #[serde(default)]
    pub custodian_marks: CustodianMarks,
}

/// `custodian_marks`: what a custodian may do to keep a message on purpose.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustodianMarks {
    /// A message flagged (`\Flagged`, "starred" or "flagged for follow-up"
    /// in mail clients). Flags change without the message changing, so with
    /// this on every folder is read in full at every scan (dates and flags;
    /// headers only where a rule needs them). Default: false.
    #[serde(default)]
    pub flagged: bool,
    /// A message in one of these folders, by name as records show it
    /// (`Behålls`, `INBOX/Behålls`). Default: none.
    #[serde(default)]
    pub folders: Vec<String>,
}

impl CustodianMarks {
    /// Whether any mark is allowed.
    pub fn any(&self) -> bool {
        self.flagged || !self.folders.is_empty()
    }
}

fn default_folders() -> Vec<String> {
    vec!["INBOX".into(), "\\Sent".into()]
}
fn default_max_connections() -> usize {
    4
}
fn default_timeout_seconds() -> u64 {
    60
}
fn default_attempts() -> u32 {
    3
}
fn default_fetch_batch() -> u32 {
    5000
}

/// Transport security.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// TLS from the first byte (port 993).
    #[default]
    Tls,
    /// Plain connection upgraded with STARTTLS (port 143).
    Starttls,
    /// No encryption.
    Plain,
}

/// `[sources.auth]`: how tillsyn logs in.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase", deny_unknown_fields)]
pub enum AuthConfig {
    /// Each account with its own password, from `accounts_file`: a TOML file
    /// (itself a secret, mode 0600) of `[[accounts]]` with `user` and `password`
    /// or `password_file`.
    Password {
        /// The accounts file.
        accounts_file: PathBuf,
    },
    /// One administrative login that opens every mailbox: Dovecot's master user
    /// (`user*master`) or any server with the same convention.
    Master {
        /// The master user's name.
        master_user: String,
        /// File holding the master password.
        password_file: PathBuf,
        /// Mailboxes to read. Default: none (use `users_file`).
        #[serde(default)]
        users: Vec<String>,
        /// File with one mailbox name per line (`#` comments). Default: none.
        #[serde(default)]
        users_file: Option<PathBuf>,
        /// What joins user and master name. Default: `*`.
        #[serde(default = "default_separator")]
        separator: String,
    },
    /// OAuth 2 bearer tokens (Microsoft 365, Gmail): SASL XOAUTH2.
    Xoauth2 {
        /// Mailboxes to read. Default: none (use `users_file`).
        #[serde(default)]
        users: Vec<String>,
        /// File with one mailbox name per line. Default: none.
        #[serde(default)]
        users_file: Option<PathBuf>,
        /// File holding a token valid for every mailbox (an app token). Default:
        /// none (use `token_command`).
        #[serde(default)]
        token_file: Option<PathBuf>,
        /// Command printing a fresh token; `{user}` in an argument is replaced by
        /// the mailbox. Run for each account at each scan. Default: none.
        #[serde(default)]
        token_command: Option<Vec<String>>,
    },
}

fn default_separator() -> String {
    "*".into()
}

impl ImapConfig {
    /// Make relative paths relative to `base` (the config file's folder).
    pub fn resolve_paths(&mut self, resolve: impl Fn(&Path) -> PathBuf) {
        if let Some(ca) = &mut self.ca_file {
            *ca = resolve(ca);
        }
        match &mut self.auth {
            AuthConfig::Password { accounts_file } => *accounts_file = resolve(accounts_file),
            AuthConfig::Master {
                password_file,
                users_file,
                ..
            } => {
                *password_file = resolve(password_file);
                if let Some(file) = users_file {
                    *file = resolve(file);
                }
            }
            AuthConfig::Xoauth2 {
                users_file,
                token_file,
                ..
            } => {
                if let Some(file) = users_file {
                    *file = resolve(file);
                }
                if let Some(file) = token_file {
                    *file = resolve(file);
                }
            }
        }
    }

    /// The port to use.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            Security::Tls => 993,
            Security::Starttls | Security::Plain => 143,
        })
    }
}

/// One mailbox and how to log in to it.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    /// The mailbox (user) name: in record ids and messages.
    pub name: String,
    /// How to log in.
    pub login: Login,
}

/// Credentials for one account. Secrets redact themselves.
#[derive(Debug, Clone)]
pub(crate) enum Login {
    /// LOGIN user password.
    Password { user: String, password: Secret },
    /// AUTHENTICATE XOAUTH2 with a token from a file or a command.
    Xoauth2 { user: String, token: TokenSource },
}

/// Where an OAuth token comes from.
#[derive(Debug, Clone)]
pub(crate) enum TokenSource {
    File(PathBuf),
    Command(Vec<String>),
}

/// Why the accounts could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// A secret or a list could not be read.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The accounts file is not valid.
    #[error("accounts file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong (never a password).
        message: String,
    },
    /// Nothing to read.
    #[error("no accounts: give `users`, `users_file` or accounts in the accounts file")]
    Empty,
    /// Insecure transport without consent.
    #[error(
        "security = \"plain\" sends passwords unencrypted; set allow_plaintext = true to allow it (loopback tests only)"
    )]
    Plaintext,
    /// XOAUTH2 without a token source.
    #[error("xoauth2 needs `token_file` or `token_command`")]
    NoToken,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountsFile {
    accounts: Vec<AccountEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountEntry {
    user: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    password_file: Option<PathBuf>,
}

fn user_list(users: &[String], users_file: &Option<PathBuf>) -> Result<Vec<String>, AccountsError> {
    let mut list = users.to_vec();
    if let Some(file) = users_file {
        let file = secret::expand_credentials_dir(file)?;
        let text = std::fs::read_to_string(&file).map_err(|source| SecretError::File {
            path: file.clone(),
            source,
        })?;
        list.extend(
            text.lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .map(str::to_owned),
        );
    }
    Ok(list)
}

/// Read the accounts the config names, with their credentials.
pub(crate) fn accounts(config: &ImapConfig) -> Result<Vec<Account>, AccountsError> {
    if config.security == Security::Plain && !config.allow_plaintext {
        return Err(AccountsError::Plaintext);
    }
    let accounts: Vec<Account> = match &config.auth {
        AuthConfig::Password { accounts_file } => {
            // Through LoadCredential= the file lives in $CREDENTIALS_DIRECTORY.
            let accounts_file = &secret::expand_credentials_dir(accounts_file)?;
            let text =
                std::fs::read_to_string(accounts_file).map_err(|source| SecretError::File {
                    path: accounts_file.clone(),
                    source,
                })?;
            let invalid = |message: String| AccountsError::Invalid {
                path: accounts_file.clone(),
                message,
            };
            // toml's messages quote the offending text; a password could be in it.
            let file: AccountsFile = toml::from_str(&text).map_err(|error| {
                invalid(format!(
                    "not a list of [[accounts]] with user and password or password_file{}",
                    error
                        .span()
                        .map(|span| format!(" (near byte {})", span.start))
                        .unwrap_or_default()
                ))
            })?;
            let base = accounts_file.parent().unwrap_or(Path::new("."));
            file.accounts
                .into_iter()
                .map(|entry| {
                    let password = match (entry.password, entry.password_file) {
                        (Some(password), None) => Secret::new(password.into_bytes()),
                        (None, Some(file)) => secret::read_file(&base.join(file))?,
                        _ => {
                            return Err(invalid(format!(
                                "account {:?}: give exactly one of password and password_file",
                                entry.user
                            )));
                        }
                    };
                    Ok(Account {
                        name: entry.user.clone(),
                        login: Login::Password {
                            user: entry.user,
                            password,
                        },
                    })
                })
                .collect::<Result<_, AccountsError>>()?
        }
        AuthConfig::Master {
            master_user,
            password_file,
            users,
            users_file,
            separator,
        } => {
            let password = secret::read_file(password_file)?;
            user_list(users, users_file)?
                .into_iter()
                .map(|user| Account {
                    login: Login::Password {
                        user: format!("{user}{separator}{master_user}"),
                        password: password.clone(),
                    },
                    name: user,
                })
                .collect()
        }
        AuthConfig::Xoauth2 {
            users,
            users_file,
            token_file,
            token_command,
        } => {
            let token = match (token_file, token_command) {
                (Some(file), None) => {
                    secret::read_file(file)?;
                    TokenSource::File(file.clone())
                }
                (None, Some(command)) if !command.is_empty() => {
                    TokenSource::Command(command.clone())
                }
                _ => return Err(AccountsError::NoToken),
            };
            user_list(users, users_file)?
                .into_iter()
                .map(|user| Account {
                    login: Login::Xoauth2 {
                        user: user.clone(),
                        token: token.clone(),
                    },
                    name: user,
                })
                .collect()
        }
    };
    if accounts.is_empty() {
        return Err(AccountsError::Empty);
    }
    Ok(accounts)
}
