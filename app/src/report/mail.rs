//! The report as mail, and the outbox that sends each month's report once.
//!
//! One MIME message: `multipart/mixed` holding `multipart/related` (the
//! `multipart/alternative` text and HTML bodies, and the chart as an inline PNG
//! the HTML shows by `cid:`) and the CSV as an attachment. Subject and names are
//! UTF-8 (å, ä, ö); `Date` and `Message-ID` are set.
//!
//! The outbox ([`tillsyn_store::outbox`]) holds the finished message, bytes as
//! sent, before the first attempt; [`super::outbox`] delivers it, never a
//! re-render. A month already in the outbox is never rendered again, so a
//! restart, a second daemon tick or `tillsyn report --send` cannot send it
//! twice.
//!
//! Every message tillsyn sends is built here to pass the strictest servers:
//! CRLF line endings throughout, no line over 998 octets, text parts as 7bit
//! or quoted-printable, attachments in base64 ([`check_wire`] refuses
//! anything else before it reaches the outbox).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::address::Envelope;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Attachment, Body, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::render::{CHART_CID, Rendered};
use super::{Month, ReportError, build_with, render::render};
use crate::runner::{RunError, with_store};
use tillsyn_config::Config;
use tillsyn_config::report::{MailConfig, SmtpSecurity};
use tillsyn_store::{NewOutboxEntry, OutboxEntry, OutboxKey, Store};

/// Why a report could not be made into mail or delivered.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// An address did not parse.
    #[error("mail address {address:?}: {reason}")]
    Address {
        /// The address.
        address: String,
        /// Why.
        reason: String,
    },
    /// The message could not be built.
    #[error("building the report mail: {0}")]
    Build(String),
    /// TLS settings could not be made.
    #[error("SMTP TLS settings: {0}")]
    Tls(String),
    /// The server refused it or could not be reached.
    #[error("sending the report to {server}: {reason}")]
    Send {
        /// `host:port`.
        server: String,
        /// Why.
        reason: String,
    },
    /// The config has no `[report]` mail settings.
    #[error(
        "no mail settings: add sender, recipients and [report.smtp] to [report] to send the report"
    )]
    NotConfigured,
    /// Building the report failed.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] RunError),
}

impl MailError {
    /// The message for a log line: none when it may hold an address (a bad
    /// address, or the server's own words about a recipient).
    pub fn loggable(&self) -> Option<String> {
        match self {
            MailError::Address { .. } | MailError::Send { .. } => None,
            other => Some(other.to_string()),
        }
    }

    /// Bounded kind, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            MailError::Address { .. } => "address",
            MailError::Build(_) => "build",
            MailError::Tls(_) => "tls",
            MailError::Send { .. } => "send",
            MailError::NotConfigured => "not_configured",
            MailError::Report(_) => "report",
            MailError::Store(_) => "store",
        }
    }
}

fn mailbox(address: &str) -> Result<Mailbox, MailError> {
    address
        .parse()
        .map_err(|error: lettre::address::AddressError| MailError::Address {
            address: address.to_owned(),
            reason: error.to_string(),
        })
}

/// The whole message for `month`, as bytes.
pub fn message(
    rendered: &Rendered,
    mail: &MailConfig,
    month: Month,
    now: DateTime<Utc>,
) -> Result<Vec<u8>, MailError> {
    let from = mailbox(&mail.sender)?;
    let domain = from.email.domain().to_owned();
    let mut builder = Message::builder()
        .from(from)
        .subject(rendered.subject.clone())
        .date(now.into())
        .message_id(Some(format!(
            "<tillsyn-report-{month}-{}@{domain}>",
            now.timestamp()
        )));
    for recipient in &mail.recipients {
        builder = builder.to(mailbox(recipient)?);
    }
    let png_type = ContentType::parse("image/png").map_err(|e| MailError::Build(e.to_string()))?;
    let csv_type = ContentType::parse("text/csv; charset=utf-8")
        .map_err(|e| MailError::Build(e.to_string()))?;
    let body = MultiPart::mixed()
        .multipart(
            MultiPart::related()
                .multipart(
                    MultiPart::alternative()
                        .singlepart(text_part(ContentType::TEXT_PLAIN, &rendered.text))
                        .singlepart(text_part(ContentType::TEXT_HTML, &rendered.html)),
                )
                .singlepart(
                    Attachment::new_inline(CHART_CID.to_owned())
                        .body(binary_body(rendered.png.clone()), png_type),
                ),
        )
        .singlepart(
            Attachment::new(format!("tillsyn-{month}.csv"))
                .body(binary_body(rendered.csv.clone()), csv_type),
        );
    let message = builder
        .multipart(body)
        .map_err(|error| MailError::Build(error.to_string()))?;
    let bytes = message.formatted();
    check_wire(&bytes)?;
    Ok(bytes)
}

/// The longest line RFC 5322 allows, without its CRLF.
pub const MAX_LINE_OCTETS: usize = 998;

/// A text part: CRLF line endings, as 7bit when every line is ASCII and short
/// enough, else quoted-printable (whose lines are at most 76 octets).
pub fn text_part(content_type: ContentType, text: &str) -> SinglePart {
    // One line ending, LF, which lettre writes as CRLF; a lone CR is one too.
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let plain = text.is_ascii() && text.lines().all(|line| line.len() <= 76);
    let body = if plain {
        Body::new_with_encoding(text, ContentTransferEncoding::SevenBit)
            .unwrap_or_else(|bytes| quoted_printable(String::from_utf8_lossy(&bytes).into_owned()))
    } else {
        quoted_printable(text)
    };
    SinglePart::builder().header(content_type).body(body)
}

fn quoted_printable(text: String) -> Body {
    // Quoted-printable takes any text; lettre gives the text back only for
    // 7bit and 8bit.
    Body::new_with_encoding(text, ContentTransferEncoding::QuotedPrintable).unwrap_or_else(
        |bytes| {
            Body::new_with_encoding(bytes, ContentTransferEncoding::Base64)
                .unwrap_or_else(|_| Body::new(Vec::new()))
        },
    )
}

/// Bytes as an attachment's body: base64, whatever they hold, so that no
/// line ending or line length of theirs reaches the wire.
pub fn binary_body(bytes: Vec<u8>) -> Body {
    Body::new_with_encoding(bytes, ContentTransferEncoding::Base64).unwrap_or_else(Body::new)
}

/// Refuse a message any strict server would: a line ending other than CRLF,
/// or a line over [`MAX_LINE_OCTETS`] (RFC 5321 4.5.3.1.6, RFC 5322 2.1.1).
/// Nothing goes into an outbox that a server would refuse for ever.
pub fn check_wire(bytes: &[u8]) -> Result<(), MailError> {
    let mut line_start = 0;
    for (index, byte) in bytes.iter().enumerate() {
        match byte {
            b'\n' if index == 0 || bytes[index - 1] != b'\r' => {
                return Err(MailError::Build(format!(
                    "a bare LF at byte {index}: every line must end in CRLF"
                )));
            }
            b'\n' => {
                let length = index - 1 - line_start;
                if length > MAX_LINE_OCTETS {
                    return Err(MailError::Build(format!(
                        "a line of {length} octets at byte {line_start}: at most {MAX_LINE_OCTETS}"
                    )));
                }
                line_start = index + 1;
            }
            b'\r' if bytes.get(index + 1) != Some(&b'\n') => {
                return Err(MailError::Build(format!(
                    "a bare CR at byte {index}: every line must end in CRLF"
                )));
            }
            _ => {}
        }
    }
    let length = bytes.len() - line_start;
    if length > MAX_LINE_OCTETS {
        return Err(MailError::Build(format!(
            "a line of {length} octets at byte {line_start}: at most {MAX_LINE_OCTETS}"
        )));
    }
    Ok(())
}

/// Send stored message bytes through the configured server.
pub async fn deliver(mail: &MailConfig, bytes: &[u8]) -> Result<(), MailError> {
    let smtp = &mail.smtp;
    let server = format!("{}:{}", smtp.host, smtp.port);
    let tls = |host: &str| -> Result<TlsParameters, MailError> {
        let mut builder = TlsParameters::builder(host.to_owned());
        if let Some(path) = &smtp.ca_file {
            let pem = std::fs::read(path)
                .map_err(|error| MailError::Tls(format!("{}: {error}", path.display())))?;
            let certificate = Certificate::from_pem(&pem)
                .map_err(|error| MailError::Tls(format!("{}: {error}", path.display())))?;
            builder = builder.add_root_certificate(certificate);
        }
        builder
            .build_rustls()
            .map_err(|error| MailError::Tls(error.to_string()))
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
        .port(smtp.port)
        .timeout(Some(Duration::from_secs(smtp.timeout_seconds)));
    builder = match smtp.security {
        SmtpSecurity::Tls => builder.tls(Tls::Wrapper(tls(&smtp.host)?)),
        SmtpSecurity::Starttls => builder.tls(Tls::Required(tls(&smtp.host)?)),
        SmtpSecurity::Plain => builder.tls(Tls::None),
    };
    if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
        builder = builder.credentials(Credentials::new(
            user.clone(),
            String::from_utf8_lossy(password.expose())
                .trim_end()
                .to_owned(),
        ));
    }
    let transport = builder.build();
    let from = mailbox(&mail.sender)?.email;
    let to = mail
        .recipients
        .iter()
        .map(|recipient| mailbox(recipient).map(|m| m.email))
        .collect::<Result<Vec<_>, _>>()?;
    let envelope =
        Envelope::new(Some(from), to).map_err(|error| MailError::Build(error.to_string()))?;
    transport
        .send_raw(&envelope, bytes)
        .await
        .map(|_| ())
        .map_err(|error| MailError::Send {
            server,
            reason: error.to_string(),
        })
}

/// Make `month`'s report and put it in the outbox, unless the outbox has it
/// already; returns the outbox entry.
pub async fn prepare(
    config: &Arc<Config>,
    store: &Arc<Mutex<Store>>,
    month: Month,
    now: DateTime<Utc>,
) -> Result<OutboxEntry, MailError> {
    let mail = config
        .report
        .as_ref()
        .and_then(|report| report.mail.clone())
        .ok_or(MailError::NotConfigured)?;
    let key = OutboxKey::report(&month.to_string());
    let existing = key.clone();
    if let Some(entry) = with_store(store, move |store| store.outbox_entry(&existing)).await? {
        return Ok(entry);
    }
    let departments = super::departments::or_none(config, store, month, now).await;
    let config = config.clone();
    let shared = store.clone();
    let built = tokio::task::spawn_blocking(move || -> Result<(String, Vec<u8>), MailError> {
        let report = {
            let mut guard = shared
                .lock()
                .map_err(|_| MailError::Store(RunError::Worker("store lock poisoned".into())))?;
            build_with(&config, &mut guard, month, now, &departments)?
        };
        let templates = config.report.as_ref().and_then(|r| r.templates_dir.clone());
        let rendered = render(&report, templates.as_deref()).map_err(ReportError::from)?;
        let bytes = message(&rendered, &mail, month, now)?;
        Ok((rendered.subject, bytes))
    })
    .await
    .map_err(|error| MailError::Store(RunError::Worker(error.to_string())))??;
    let (subject, bytes) = built;
    Ok(with_store(store, move |store| {
        store.outbox_put(NewOutboxEntry {
            key: &key,
            address: None,
            subject: &subject,
            message: &bytes,
        })?;
        store
            .outbox_entry(&key)?
            .ok_or(tillsyn_store::StoreError::Missing("outbox"))
    })
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn formatted(part: SinglePart) -> Vec<u8> {
        part.formatted()
    }

    #[test]
    fn text_parts_are_crlf_and_short_whatever_the_text() {
        let long_line = "x".repeat(5000);
        for text in [
            "plain ASCII\nin two lines\n",
            "Å, ä och ö\r\nmixed\nendings\r",
            long_line.as_str(),
            "a bare\rCR",
        ] {
            let bytes = formatted(text_part(ContentType::TEXT_PLAIN, text));
            assert!(
                check_wire(&bytes).is_ok(),
                "{text:?}: {:?}",
                check_wire(&bytes)
            );
        }
        let plain = String::from_utf8(formatted(text_part(ContentType::TEXT_PLAIN, "short\n")))
            .expect("ascii");
        assert!(plain.contains("Content-Transfer-Encoding: 7bit"), "{plain}");
        let swedish =
            String::from_utf8(formatted(text_part(ContentType::TEXT_PLAIN, "å\n"))).expect("ascii");
        assert!(
            swedish.contains("Content-Transfer-Encoding: quoted-printable"),
            "{swedish}"
        );
    }

    #[test]
    fn attachments_are_base64_and_the_wire_check_refuses_what_servers_refuse() {
        let csv = b"a,b\nc,d\n".repeat(10_000);
        let part = Attachment::new("x.csv".into()).body(
            binary_body(csv),
            ContentType::parse("text/csv").expect("type"),
        );
        let bytes = formatted(part);
        assert!(
            String::from_utf8_lossy(&bytes).contains("Content-Transfer-Encoding: base64"),
            "base64"
        );
        check_wire(&bytes).expect("wire-safe");
        assert!(check_wire(b"one\r\ntwo\nthree\r\n").is_err(), "bare LF");
        assert!(check_wire(b"one\rtwo\r\n").is_err(), "bare CR");
        let long = [vec![b'x'; 999], b"\r\n".to_vec()].concat();
        assert!(check_wire(&long).is_err(), "999 octets");
        let fits = [vec![b'x'; 998], b"\r\n".to_vec()].concat();
        assert!(check_wire(&fits).is_ok(), "998 octets");
    }
}
