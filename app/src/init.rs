//! `tillsyn init`'s starting config: from a few answers (the organisation's
//! mail domains, where its mail, directory and shares are, who reads the
//! report) to a config that checks out. Secrets are never written into it:
//! each is a `*_file` under the service's credentials
//! (`$CREDENTIALS_DIRECTORY/tillsyn_<name>`, which systemd's
//! `LoadCredential=tillsyn:/etc/tillsyn/credentials` fills from
//! `/etc/tillsyn/credentials/<name>`), and the answer lists the files to
//! create.

use std::fmt::Write as _;
use std::path::PathBuf;

/// How tillsyn logs in to the IMAP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImapLogin {
    /// One master user reads every mailbox (Dovecot: `anna*tillsyn`).
    Master {
        /// The master user.
        user: String,
        /// The mailboxes; empty: listed later in a file.
        users: Vec<String>,
    },
    /// A password per account, in an accounts file.
    Passwords,
    /// OAuth 2 bearer tokens (Microsoft 365, Gmail).
    OAuth2 {
        /// The mailboxes; empty: listed later in a file.
        users: Vec<String>,
    },
}

/// The IMAP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapAnswer {
    /// Host name (checked against its certificate).
    pub host: String,
    /// Port; `None`: by `security`.
    pub port: Option<u16>,
    /// `"tls"` or `"starttls"`.
    pub security: String,
    /// How to log in.
    pub login: ImapLogin,
}

/// The directory (LDAP or Active Directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapAnswer {
    /// `ldaps://host` or `ldap://host` (then with StartTLS).
    pub url: String,
    /// Where to search.
    pub base: String,
    /// The read-only service account to bind as.
    pub bind_dn: String,
}

/// Everything `tillsyn init` was told.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answers {
    /// The organisation's own mail domains.
    pub domains: Vec<String>,
    /// The mail server, if any.
    pub imap: Option<ImapAnswer>,
    /// The directory, if any.
    pub ldap: Option<LdapAnswer>,
    /// File shares (mounted paths).
    pub shares: Vec<PathBuf>,
    /// Rules drafted from the privacy policy (`[[rules]]` tables), if one
    /// was given.
    pub drafted_rules: Option<String>,
    /// Who reads the monthly report.
    pub report_to: Vec<String>,
    /// The mail server the report goes through.
    pub smtp_host: Option<String>,
    /// An internal CA (PEM) the servers' certificates are signed by.
    pub ca_file: Option<PathBuf>,
    /// `[daemon] state_dir`.
    pub state_dir: PathBuf,
    /// `[daemon] timezone`.
    pub timezone: String,
}

/// A secret the admin must put in the credentials folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFile {
    /// Its file name in the credentials folder.
    pub name: String,
    /// What goes in it.
    pub holds: String,
}

/// A file that is not secret but must be made (a list of mailboxes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFile {
    /// Its path.
    pub path: PathBuf,
    /// What goes in it.
    pub holds: String,
}

/// The starting config and what it needs besides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartingConfig {
    /// The config's text.
    pub text: String,
    /// Secrets to create in the credentials folder.
    pub secrets: Vec<SecretFile>,
    /// Other files to create.
    pub lists: Vec<ListFile>,
    /// Sources written.
    pub sources: usize,
}

/// Why the answers do not make a config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InitError {
    /// Nothing to watch.
    #[error("no source: give at least an IMAP server, a directory or a share")]
    NoSource,
    /// A report without a mail server.
    #[error("report recipients need the mail server to send through (--smtp-host)")]
    NoSmtp,
    /// A report without a sender domain.
    #[error("report recipients need the organisation's mail domain (--domain) for the sender")]
    NoDomain,
}

/// `text` as a TOML string.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// `items` as a TOML array of strings.
fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|item| quoted(item)).collect();
    format!("[{}]", quoted.join(", "))
}

/// The path a secret has under the service.
fn credential(name: &str) -> String {
    format!("$CREDENTIALS_DIRECTORY/tillsyn_{name}")
}

/// The starting config for `answers`. `config_dir` is where the config
/// goes (lists of mailboxes are made beside it).
pub fn render(
    answers: &Answers,
    config_dir: &std::path::Path,
) -> Result<StartingConfig, InitError> {
    if answers.imap.is_none() && answers.ldap.is_none() && answers.shares.is_empty() {
        return Err(InitError::NoSource);
    }
    let mut config = StartingConfig {
        text: String::new(),
        secrets: Vec::new(),
        lists: Vec::new(),
        sources: 0,
    };
    let out = &mut config.text;
    out.push_str(
        "# tillsyn: a starting config made by `tillsyn init`. Every key, with its\n\
         # default: /usr/share/doc/tillsyn/config.example.toml (config.example.toml\n\
         # in the source). Secrets are never written here: each *_file below is a\n\
         # file in /etc/tillsyn/credentials/ (mode 0600), which the service sees as\n\
         # $CREDENTIALS_DIRECTORY/tillsyn_<name>.\n\n",
    );
    let _ = writeln!(
        out,
        "[daemon]\nstate_dir = {}\ntimezone = {}\nlisten = \"127.0.0.1:9436\"\n",
        quoted(&answers.state_dir.display().to_string()),
        quoted(&answers.timezone)
    );
    let ca = answers
        .ca_file
        .as_ref()
        .map(|ca| format!("ca_file = {}\n", quoted(&ca.display().to_string())))
        .unwrap_or_default();

    if let Some(imap) = &answers.imap {
        config.sources += 1;
        out.push_str("# The mailboxes on the mail server, read-only (EXAMINE, BODY.PEEK).\n");
        let _ = writeln!(
            out,
            "[[sources]]\nname = \"mail\"\ntype = \"imap\"\nhost = {}\nsecurity = {}",
            quoted(&imap.host),
            quoted(&imap.security)
        );
        if let Some(port) = imap.port {
            let _ = writeln!(out, "port = {port}");
        }
        out.push_str(&ca);
        let users = |users: &[String], config: &mut StartingConfig| -> String {
            if users.is_empty() {
                let path = config_dir.join("imap-users");
                config.lists.push(ListFile {
                    path: path.clone(),
                    holds: "the mailboxes to read, one user name per line".to_owned(),
                });
                format!("users_file = {}", quoted(&path.display().to_string()))
            } else {
                format!("users = {}", list(users))
            }
        };
        let auth = match &imap.login {
            ImapLogin::Master { user, users: names } => {
                config.secrets.push(SecretFile {
                    name: "imap-password".to_owned(),
                    holds: format!("the password of the IMAP master user {user}"),
                });
                let users = users(names, &mut config);
                format!(
                    "{{ method = \"master\", master_user = {}, password_file = {}, {users} }}",
                    quoted(user),
                    quoted(&credential("imap-password"))
                )
            }
            ImapLogin::Passwords => {
                config.secrets.push(SecretFile {
                    name: "imap-accounts.toml".to_owned(),
                    holds: "[[accounts]] tables, each with user and password".to_owned(),
                });
                format!(
                    "{{ method = \"password\", accounts_file = {} }}",
                    quoted(&credential("imap-accounts.toml"))
                )
            }
            ImapLogin::OAuth2 { users: names } => {
                config.secrets.push(SecretFile {
                    name: "imap-token".to_owned(),
                    holds: "an OAuth 2 access token valid for every mailbox".to_owned(),
                });
                let users = users(names, &mut config);
                format!(
                    "{{ method = \"xoauth2\", token_file = {}, {users} }}",
                    quoted(&credential("imap-token"))
                )
            }
        };
        let out = &mut config.text;
        let _ = writeln!(out, "auth = {auth}\n");
    }

    if let Some(ldap) = &answers.ldap {
        config.sources += 1;
        config.secrets.push(SecretFile {
            name: "ldap-password".to_owned(),
            holds: format!("the password of {}", ldap.bind_dn),
        });
        let out = &mut config.text;
        out.push_str("# The directory, read with paged searches by a read-only account.\n");
        let _ = writeln!(
            out,
            "[[sources]]\nname = \"directory\"\ntype = \"ldap\"\nurl = {}\nstarttls = {}\n{ca}bind_dn = {}\npassword_file = {}\nbase_dn = {}\n",
            quoted(&ldap.url),
            ldap.url.starts_with("ldap://"),
            quoted(&ldap.bind_dn),
            quoted(&credential("ldap-password")),
            quoted(&ldap.base)
        );
    }

    for (index, share) in answers.shares.iter().enumerate() {
        config.sources += 1;
        let name = match index {
            0 => "share".to_owned(),
            n => format!("share-{}", n + 1),
        };
        let out = &mut config.text;
        let _ = writeln!(
            out,
            "# A file share, read where it is mounted (metadata; content when a rule asks).\n\
             [[sources]]\nname = {}\ntype = \"fileshare\"\nroot = {}\n",
            quoted(&name),
            quoted(&share.display().to_string())
        );
    }

    let out = &mut config.text;
    match &answers.drafted_rules {
        Some(rules) => {
            out.push_str(
                "# The promises of the privacy policy, drafted by `tillsyn draft-rules`.\n\
                 # Review each one: its TODO says what to fill in.\n",
            );
            out.push_str(rules);
            out.push('\n');
        }
        None if answers.imap.is_some() => {
            out.push_str(
                "# An example promise; draft yours from the privacy policy with\n\
                 # `tillsyn draft-rules POLICY.txt`.\n\
                 [[rules]]\nid = \"stale-inbox\"\nkind = \"max_age\"\n\
                 policy = \"The inbox is emptied in the monthly routine.\"\n\
                 max_age = \"31d\"\ntimestamp = \"received\"\n\
                 when = { sources = [\"mail\"], folders = [\"INBOX\"] }\n\n",
            );
        }
        None => out.push_str(
            "# No rules yet: draft them from the privacy policy with\n\
             # `tillsyn draft-rules POLICY.txt` and add them here.\n\n",
        ),
    }

    if !answers.report_to.is_empty() {
        let smtp = answers.smtp_host.as_ref().ok_or(InitError::NoSmtp)?;
        let domain = answers.domains.first().ok_or(InitError::NoDomain)?;
        let _ = writeln!(
            out,
            "# The monthly report, to management.\n[report]\nsender = {}\nrecipients = {}\n\n[report.smtp]\nhost = {}\nsecurity = \"starttls\"\n{ca}",
            quoted(&format!("tillsyn@{domain}")),
            list(&answers.report_to),
            quoted(smtp)
        );
    }
    if !answers.domains.is_empty() {
        let _ = writeln!(
            out,
            "# Personal digests to each custodian (opt-in): uncomment to send them.\n\
             # [digest]\n# domains = {}\n",
            list(&answers.domains)
        );
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers() -> Answers {
        Answers {
            domains: vec!["firma.se".into()],
            imap: Some(ImapAnswer {
                host: "imap.firma.se".into(),
                port: None,
                security: "tls".into(),
                login: ImapLogin::Master {
                    user: "tillsyn".into(),
                    users: vec!["anna".into(), "bo \"b\"".into()],
                },
            }),
            ldap: Some(LdapAnswer {
                url: "ldap://ldap.firma.se".into(),
                base: "ou=people,dc=firma,dc=se".into(),
                bind_dn: "cn=tillsyn,dc=firma,dc=se".into(),
            }),
            shares: vec!["/srv/hr".into(), "/srv/ekonomi".into()],
            drafted_rules: None,
            report_to: vec!["ledning@firma.se".into()],
            smtp_host: Some("smtp.firma.se".into()),
            ca_file: None,
            state_dir: "/var/lib/tillsyn".into(),
            timezone: "Europe/Stockholm".into(),
        }
    }

    #[test]
    fn every_answer_becomes_toml_and_every_secret_a_file() {
        let config = render(&answers(), std::path::Path::new("/etc/tillsyn")).expect("config");
        let parsed: toml::Table = config.text.parse().expect("TOML");
        assert_eq!(config.sources, 4);
        let sources = parsed["sources"].as_array().expect("sources");
        let names: Vec<&str> = sources
            .iter()
            .map(|source| source["name"].as_str().expect("name"))
            .collect();
        assert_eq!(names, ["mail", "directory", "share", "share-2"]);
        // Names with quotes survive quoting.
        assert_eq!(
            sources[0]["auth"]["users"].as_array().expect("users")[1].as_str(),
            Some("bo \"b\"")
        );
        assert_eq!(sources[1]["starttls"].as_bool(), Some(true));
        let secrets: Vec<&str> = config.secrets.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(secrets, ["imap-password", "ldap-password"]);
        assert_eq!(
            parsed["report"]["sender"].as_str(),
            Some("tillsyn@firma.se")
        );
    }

    #[test]
    fn answers_that_cannot_make_a_config_say_why() {
        let none = Answers {
            imap: None,
            ldap: None,
            shares: Vec::new(),
            ..answers()
        };
        assert_eq!(
            render(&none, std::path::Path::new("/etc/tillsyn")),
            Err(InitError::NoSource)
        );
        let no_smtp = Answers {
            smtp_host: None,
            ..answers()
        };
        assert_eq!(
            render(&no_smtp, std::path::Path::new("/etc/tillsyn")),
            Err(InitError::NoSmtp)
        );
    }
}
