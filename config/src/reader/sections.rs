//! `[report]` with its mail server, `[store]`, `[privacy]`, and the checks
//! that span entries (duplicate names, rules naming unknown sources).

use std::collections::BTreeSet;

use tillsyn_core::schedule::Schedule;

use super::{Reader, Spanned};
use crate::report::{
    DEFAULT_REPORT_SCHEDULE, MailConfig, ReportConfig, ReportFile, SmtpConfig, SmtpSecurity,
};
use crate::*;

impl<'t> Reader<'t> {
    pub(super) fn report(&mut self, value: Spanned<'_>) -> Option<ReportConfig> {
        let span = value.span();
        let file: ReportFile = self.deserialize(value, "[report]")?;
        if file.name_owners.is_some() {
            self.issue(
                Some(self.locate(&span, "name_owners")),
                "[report]: `name_owners` has moved to `[privacy] name_people`, which decides for every output (CLI, report, mail, logs); remove it here",
            );
            return None;
        }
        let schedule = match file.schedule {
            Some(schedule) => schedule,
            None => Schedule::parse(DEFAULT_REPORT_SCHEDULE).ok()?,
        };
        let templates_dir = file.templates_dir.as_deref().map(|path| self.resolve(path));
        let mail = match (file.sender, file.recipients.is_empty(), file.smtp) {
            (None, true, None) => None,
            (Some(sender), false, Some(smtp)) => {
                let mut valid = true;
                for address in std::iter::once(&sender).chain(&file.recipients) {
                    if let Err(error) = address.parse::<lettre::message::Mailbox>() {
                        let at = self.locate(&span, address);
                        self.issue(
                            Some(at),
                            format!("[report]: {address:?} is not a mail address: {error}"),
                        );
                        valid = false;
                    }
                }
                let smtp = self.smtp(smtp, &span);
                if !valid {
                    return None;
                }
                Some(MailConfig {
                    sender,
                    recipients: file.recipients,
                    smtp: smtp?,
                    retry_seconds: file.retry_seconds.max(1),
                })
            }
            _ => {
                self.issue(
                    Some(span.start),
                    "[report]: to mail the report, set `sender`, `recipients` and [report.smtp] together (or none of them to only write files)",
                );
                return None;
            }
        };
        Some(ReportConfig {
            schedule,
            language: file.language,
            organisation: file.organisation,
            templates_dir,
            mail,
            attach_findings: file.attach_findings,
            departments: file.departments,
        })
    }

    /// `[store]`: a PostgreSQL URL that parses and holds no password; the
    /// password from a file or the environment (read whatever the command,
    /// since every command opens the store).
    pub(super) fn store(
        &mut self,
        file: StoreFile,
        span: &std::ops::Range<usize>,
    ) -> Option<StoreConfig> {
        match file.url.parse::<tokio_postgres::Config>() {
            Ok(parsed) if parsed.get_password().is_some() => {
                self.issue(
                    Some(self.locate(span, "url")),
                    "[store]: the url holds a password; put it in `password_file` or `password_env`",
                );
                return None;
            }
            Ok(_) => {}
            Err(error) => {
                self.issue(
                    Some(self.locate(span, "url")),
                    format!("[store]: url: {error} (expected postgres://user@host:port/database)"),
                );
                return None;
            }
        }
        let password = self.file_or_env(
            "[store]",
            ("password_file", "password_env"),
            (file.password_file.as_deref(), file.password_env.as_deref()),
            span,
        )?;
        Some(StoreConfig {
            url: file.url,
            password,
            ca_file: file.ca_file.map(|path| self.resolve(&path)),
        })
    }

    pub(super) fn smtp(
        &mut self,
        file: crate::report::SmtpFile,
        span: &std::ops::Range<usize>,
    ) -> Option<SmtpConfig> {
        if file.security == SmtpSecurity::Plain && !file.allow_plaintext {
            self.issue(
                Some(self.locate(span, "security")),
                "[report.smtp]: security = \"plain\" sends the report and any password unencrypted; set allow_plaintext = true only for a relay on loopback",
            );
            return None;
        }
        // Read only by the commands that send mail.
        let password = if self.secrets.mail {
            self.file_or_env(
                "[report.smtp]",
                ("password_file", "password_env"),
                (file.password_file.as_deref(), file.password_env.as_deref()),
                span,
            )?
        } else if file.password_file.is_some() && file.password_env.is_some() {
            self.issue(
                Some(self.locate(span, "password_env")),
                "[report.smtp]: set `password_file` or `password_env`, not both",
            );
            return None;
        } else {
            None
        };
        let named_password = file.password_file.is_some() || file.password_env.is_some();
        if named_password != file.username.is_some() {
            self.issue(
                Some(self.locate(span, "username")),
                "[report.smtp]: `username` and a password go together",
            );
            return None;
        }
        let port = file.port.unwrap_or(match file.security {
            SmtpSecurity::Tls => 465,
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Plain => 25,
        });
        Some(SmtpConfig {
            host: file.host,
            port,
            security: file.security,
            username: file.username,
            password,
            ca_file: file.ca_file.as_deref().map(|path| self.resolve(path)),
            timeout_seconds: file.timeout_seconds.max(1),
        })
    }

    pub(super) fn privacy(
        &mut self,
        file: PrivacyFile,
        span: &std::ops::Range<usize>,
    ) -> Option<PrivacyConfig> {
        let key = self.file_or_env(
            "[privacy]",
            ("key_file", "key_env"),
            (file.key_file.as_deref(), file.key_env.as_deref()),
            span,
        )?;
        if let Some(key) = &key
            && key.expose().len() < 16
        {
            self.issue(
                Some(span.start),
                "[privacy]: the pseudonym key must be at least 16 bytes",
            );
            return None;
        }
        Some(PrivacyConfig {
            name_people: file.name_people,
            key,
        })
    }

    pub(super) fn cross_checks(&mut self) {
        let source_names = std::mem::take(&mut self.source_names);
        let rule_refs = std::mem::take(&mut self.rule_refs);
        let mut names = BTreeSet::new();
        for (name, span) in &source_names {
            if name.is_empty() || name.chars().any(char::is_control) {
                let at = self.locate(span, "name");
                self.issue(
                    Some(at),
                    format!("source name {name:?} must not be empty or hold control characters"),
                );
            }
            if !names.insert(name.as_str()) {
                let at = self.locate(span, &format!("\"{name}\""));
                self.issue(Some(at), format!("source name {name:?} is used twice"));
            }
        }
        let mut ids = BTreeSet::new();
        for (id, span, sources) in &rule_refs {
            if !ids.insert(id.as_str()) {
                let at = self.locate(span, &format!("\"{id}\""));
                self.issue(Some(at), format!("rule id {id:?} is used twice"));
            }
            for source in sources {
                if !names.contains(source.as_str()) {
                    let at = self.locate(span, &format!("\"{source}\""));
                    self.issue(
                        Some(at),
                        format!("rule {id:?}: unknown source {source:?} in `when.sources`"),
                    );
                }
            }
        }
    }
}
