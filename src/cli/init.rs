//! `tillsyn init`: a working starting config from a few answers, given as
//! flags or, in a terminal, asked for. It writes the config (never a
//! secret), says which secret files to create, then checks the config and
//! connects to every source as `check-config --connect` does, seeing the
//! credentials folder as the service will, and prints what to run next.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use tillsyn_app::init::{Answers, ImapAnswer, ImapLogin, LdapAnswer, StartingConfig};

use super::{CliError, EXIT_CONFIG, EXIT_OK};

/// How tillsyn logs in to the IMAP server, as `--imap-login` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LoginMethod {
    /// One master user for every mailbox.
    Master,
    /// A password per account.
    Password,
    /// OAuth 2 bearer tokens.
    Oauth2,
}

/// What `tillsyn init` was given on the command line.
#[derive(Debug, Clone, clap::Args)]
pub struct InitArgs {
    /// Where to write the config.
    #[arg(long, short, default_value = "/etc/tillsyn/config.toml")]
    pub config: PathBuf,
    /// Replace the config if it exists.
    #[arg(long)]
    pub force: bool,
    /// Write the config without checking it or connecting.
    #[arg(long)]
    pub no_connect: bool,
    /// The folder the service's secrets are in (the unit's LoadCredential=).
    #[arg(long, default_value = "/etc/tillsyn/credentials")]
    pub credentials: PathBuf,
    /// The organisation's own mail domain (repeat for several).
    #[arg(long = "domain")]
    pub domains: Vec<String>,
    /// IMAP server host.
    #[arg(long)]
    pub imap_host: Option<String>,
    /// IMAP port. Default: 993, or 143 with --imap-starttls.
    #[arg(long)]
    pub imap_port: Option<u16>,
    /// Connect with STARTTLS rather than implicit TLS.
    #[arg(long)]
    pub imap_starttls: bool,
    /// How tillsyn logs in to the IMAP server. Default: master.
    #[arg(long, value_enum)]
    pub imap_login: Option<LoginMethod>,
    /// The master user (with --imap-login master). Default: tillsyn.
    #[arg(long)]
    pub imap_master_user: Option<String>,
    /// A mailbox to read (repeat; with master or oauth2 login). None: list
    /// them in a file.
    #[arg(long = "imap-user")]
    pub imap_users: Vec<String>,
    /// LDAP or Active Directory URL (ldaps://host, or ldap://host for StartTLS).
    #[arg(long)]
    pub ldap_url: Option<String>,
    /// Where to search the directory.
    #[arg(long)]
    pub ldap_base: Option<String>,
    /// The read-only account to bind as.
    #[arg(long)]
    pub ldap_bind_dn: Option<String>,
    /// A file share's path (repeat for several).
    #[arg(long = "share")]
    pub shares: Vec<PathBuf>,
    /// The privacy policy as a text file: its promises are drafted as rules.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// A recipient of the monthly report (repeat for several).
    #[arg(long = "report-to")]
    pub report_to: Vec<String>,
    /// The mail server the report goes through.
    #[arg(long)]
    pub smtp_host: Option<String>,
    /// An internal CA (PEM) the servers' certificates are signed by.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Where the service keeps its store.
    #[arg(long, default_value = "/var/lib/tillsyn")]
    pub state_dir: PathBuf,
    /// IANA time zone for schedules and calendar rules. Default: this machine's.
    #[arg(long)]
    pub timezone: Option<String>,
}

impl InitArgs {
    /// Whether any source was given as a flag.
    fn has_source(&self) -> bool {
        self.imap_host.is_some() || self.ldap_url.is_some() || !self.shares.is_empty()
    }
}

/// Questions in a terminal: each asked once, an empty answer taking the
/// default shown.
struct Prompt<'a> {
    input: &'a mut dyn BufRead,
    out: &'a mut dyn Write,
}

impl Prompt<'_> {
    fn ask(&mut self, question: &str, default: &str) -> Result<String, CliError> {
        match default {
            "" => write!(self.out, "{question}: ")?,
            _ => write!(self.out, "{question} [{default}]: ")?,
        }
        self.out.flush()?;
        let mut line = String::new();
        self.input.read_line(&mut line)?;
        let answer = line.trim();
        Ok(if answer.is_empty() {
            default.to_owned()
        } else {
            answer.to_owned()
        })
    }

    fn ask_list(&mut self, question: &str) -> Result<Vec<String>, CliError> {
        Ok(split_list(&self.ask(question, "")?))
    }
}

/// A comma- or space-separated answer as its items.
fn split_list(text: &str) -> Vec<String> {
    text.split([',', ' '])
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// This machine's time zone (`/etc/timezone`), else UTC.
fn local_timezone() -> String {
    std::fs::read_to_string("/etc/timezone")
        .ok()
        .map(|zone| zone.trim().to_owned())
        .filter(|zone| zone.parse::<chrono_tz::Tz>().is_ok())
        .unwrap_or_else(|| "UTC".to_owned())
}

/// Fill in what the flags left open, asking in a terminal.
fn complete(args: &mut InitArgs, prompt: &mut Prompt<'_>) -> Result<(), CliError> {
    writeln!(
        prompt.out,
        "A few questions for a starting config (empty: skip, or the default in brackets)."
    )?;
    if args.domains.is_empty() {
        args.domains = prompt.ask_list("The organisation's mail domains (comma-separated)")?;
    }
    if args.imap_host.is_none() {
        let host = prompt.ask("IMAP server host (empty: none)", "")?;
        if !host.is_empty() {
            args.imap_host = Some(host);
        }
    }
    if args.imap_host.is_some() && args.imap_login.is_none() {
        let method = prompt.ask("How tillsyn logs in: master, password or oauth2", "master")?;
        args.imap_login = Some(match method.as_str() {
            "password" => LoginMethod::Password,
            "oauth2" => LoginMethod::Oauth2,
            _ => LoginMethod::Master,
        });
    }
    if args.imap_login != Some(LoginMethod::Password)
        && args.imap_host.is_some()
        && args.imap_users.is_empty()
    {
        if args.imap_login == Some(LoginMethod::Master) && args.imap_master_user.is_none() {
            args.imap_master_user = Some(prompt.ask("The IMAP master user", "tillsyn")?);
        }
        args.imap_users =
            prompt.ask_list("Mailboxes to read (comma-separated; empty: list them in a file)")?;
    }
    if args.ldap_url.is_none() {
        let url = prompt.ask("LDAP or AD URL, ldaps://host (empty: none)", "")?;
        if !url.is_empty() {
            args.ldap_url = Some(url);
        }
    }
    if args.ldap_url.is_some() {
        if args.ldap_base.is_none() {
            args.ldap_base = Some(prompt.ask("Search base (ou=people,dc=…)", "")?);
        }
        if args.ldap_bind_dn.is_none() {
            args.ldap_bind_dn = Some(prompt.ask("Bind DN of a read-only account", "")?);
        }
    }
    if args.shares.is_empty() {
        args.shares = prompt
            .ask_list("File share paths (comma-separated; empty: none)")?
            .into_iter()
            .map(PathBuf::from)
            .collect();
    }
    if args.policy.is_none() {
        let policy = prompt.ask("The privacy policy as a text file (empty: none)", "")?;
        if !policy.is_empty() {
            args.policy = Some(PathBuf::from(policy));
        }
    }
    if args.report_to.is_empty() {
        args.report_to =
            prompt.ask_list("Monthly report recipients (comma-separated; empty: none)")?;
    }
    if !args.report_to.is_empty() && args.smtp_host.is_none() {
        args.smtp_host = Some(prompt.ask("Mail server the report goes through", "")?);
    }
    Ok(())
}

/// The answers, drafting the policy's rules when one was given.
fn answers(args: &InitArgs) -> Result<Answers, CliError> {
    let imap = args.imap_host.as_ref().map(|host| ImapAnswer {
        host: host.clone(),
        port: args.imap_port,
        security: if args.imap_starttls {
            "starttls"
        } else {
            "tls"
        }
        .to_owned(),
        login: match args.imap_login.unwrap_or(LoginMethod::Master) {
            LoginMethod::Master => ImapLogin::Master {
                user: args
                    .imap_master_user
                    .clone()
                    .unwrap_or_else(|| "tillsyn".to_owned()),
                users: args.imap_users.clone(),
            },
            LoginMethod::Password => ImapLogin::Passwords,
            LoginMethod::Oauth2 => ImapLogin::OAuth2 {
                users: args.imap_users.clone(),
            },
        },
    });
    let ldap = match (&args.ldap_url, &args.ldap_base, &args.ldap_bind_dn) {
        (Some(url), Some(base), Some(bind_dn)) => Some(LdapAnswer {
            url: url.clone(),
            base: base.clone(),
            bind_dn: bind_dn.clone(),
        }),
        (Some(_), _, _) => {
            return Err(CliError::BadArgument(
                "a directory needs --ldap-base and --ldap-bind-dn as well as --ldap-url".into(),
            ));
        }
        _ => None,
    };
    let drafted_rules = match &args.policy {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|error| {
                CliError::BadArgument(format!("reading the policy {}: {error}", path.display()))
            })?;
            Some(tillsyn_draft::render_rules(&tillsyn_draft::draft(
                &text, None,
            )))
        }
        None => None,
    };
    Ok(Answers {
        domains: args.domains.clone(),
        imap,
        ldap,
        shares: args.shares.clone(),
        drafted_rules,
        report_to: args.report_to.clone(),
        smtp_host: args.smtp_host.clone(),
        ca_file: args.ca_file.clone(),
        state_dir: args.state_dir.clone(),
        timezone: args.timezone.clone().unwrap_or_else(local_timezone),
    })
}

/// `tillsyn init`: asks in a terminal (`interactive`) for what the flags do
/// not say, writes the config, and checks it.
pub fn init(
    mut args: InitArgs,
    interactive: bool,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> Result<u8, CliError> {
    if args.config.exists() && !args.force {
        return Err(CliError::BadArgument(format!(
            "{} exists; give --force to replace it, or another --config",
            args.config.display()
        )));
    }
    if interactive && !args.has_source() {
        complete(&mut args, &mut Prompt { input, out })?;
    }
    let config_dir = args
        .config
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let starting = tillsyn_app::init::render(&answers(&args)?, &config_dir)
        .map_err(|error| CliError::BadArgument(error.to_string()))?;
    std::fs::create_dir_all(&config_dir)?;
    std::fs::write(&args.config, &starting.text)?;
    writeln!(
        out,
        "Wrote {} ({} sources).",
        args.config.display(),
        starting.sources
    )?;
    tell_files(&starting, &args.credentials, out)?;
    if args.no_connect {
        writeln!(out, "Not checked (--no-connect).")?;
        next_steps(&args.config, out)?;
        return Ok(EXIT_OK);
    }
    writeln!(
        out,
        "\nChecking it and connecting to each source (read-only):"
    )?;
    let checked = check_as_the_service(&args.config, &args.credentials, out)?;
    next_steps(&args.config, out)?;
    Ok(if checked { EXIT_OK } else { EXIT_CONFIG })
}

/// The files the admin must make: secrets in the credentials folder, lists
/// beside the config; those already there are said to be.
fn tell_files(
    starting: &StartingConfig,
    credentials: &Path,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    if !starting.secrets.is_empty() {
        writeln!(
            out,
            "\nSecrets go in files of their own (mode 0600), never in the config:"
        )?;
        for secret in &starting.secrets {
            let path = credentials.join(&secret.name);
            let state = if path.exists() { "present" } else { "create" };
            writeln!(out, "  {state:7} {}: {}", path.display(), secret.holds)?;
        }
    }
    if !starting.lists.is_empty() {
        writeln!(out, "\nAnd these lists:")?;
        for list in &starting.lists {
            let state = if list.path.exists() {
                "present"
            } else {
                "create"
            };
            writeln!(out, "  {state:7} {}: {}", list.path.display(), list.holds)?;
        }
    }
    Ok(())
}

/// Run `check-config --connect` on `config` with the credentials folder as
/// the service sees it (`$CREDENTIALS_DIRECTORY/tillsyn_<name>`), its output
/// shown. `true` when everything checked out and connected.
fn check_as_the_service(
    config: &Path,
    credentials: &Path,
    out: &mut dyn Write,
) -> Result<bool, CliError> {
    let view = std::env::temp_dir().join(format!(
        "tillsyn-init-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos())
    ));
    std::fs::create_dir(&view)?;
    let linked = (|| -> std::io::Result<std::process::Output> {
        if let Ok(entries) = std::fs::read_dir(credentials) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let link = view.join(format!("tillsyn_{}", name.to_string_lossy()));
                std::os::unix::fs::symlink(entry.path(), link)?;
            }
        }
        std::process::Command::new(std::env::current_exe()?)
            .args(["check-config", "--connect", "--config"])
            .arg(config)
            .env("CREDENTIALS_DIRECTORY", &view)
            .output()
    })();
    // Only links: removing them leaves the secrets where they are.
    let _ = std::fs::remove_dir_all(&view);
    let output = linked?;
    // Said of the folder the admin knows, not of the check's own view.
    let view_prefix = format!("{}/tillsyn_", view.display());
    let real_prefix = format!("{}/", credentials.display());
    for text in [&output.stdout, &output.stderr] {
        for line in String::from_utf8_lossy(text).lines() {
            writeln!(out, "  {}", line.replace(&view_prefix, &real_prefix))?;
        }
    }
    Ok(output.status.success())
}

fn next_steps(config: &Path, out: &mut dyn Write) -> Result<(), CliError> {
    writeln!(
        out,
        "\nNext:\n  tillsyn check-config --connect --config {config}   (after creating the files above)\n  systemctl enable --now tillsyn\n  curl -s http://127.0.0.1:9436/metrics | grep tillsyn_open_violations",
        config = config.display()
    )?;
    Ok(())
}
