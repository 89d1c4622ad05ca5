//! Connecting and logging in: TCP, TLS (implicit or STARTTLS) with an explicit
//! root store, the greeting, and authentication. Every wait has a timeout; errors
//! are sorted into kinds that say whether trying again can help, and their
//! messages never carry server data beyond the server's own status text.

use std::collections::HashSet;
use std::fmt::Debug;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use async_imap::{Client, Session};
use chrono::{DateTime, Utc};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf};
use tokio::net::TcpStream;

use super::config::{Account, ImapConfig, Login, Security, TokenSource};

/// Any byte stream an IMAP session can run over.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send + Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Debug> Io for T {}

/// A logged-in session.
pub(crate) type ImapSession = Session<Box<dyn Io>>;

/// Bytes the server sent over a scan's connections, counted after TLS (what
/// IMAP carried): reported as the scan's `bytes_received` work, so that what
/// a scan fetched can be set beside a plain full fetch of the same mail.
#[derive(Debug, Clone, Default)]
pub(crate) struct Received(Arc<AtomicU64>);

impl Received {
    /// The bytes counted so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A stream that adds what it reads to a [`Received`]; writes pass through.
#[derive(Debug)]
struct Counted<S> {
    inner: S,
    received: Received,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buffer.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(context, buffer);
        if let Poll::Ready(Ok(())) = poll {
            let read = buffer.filled().len().saturating_sub(before);
            self.received.0.fetch_add(read as u64, Ordering::Relaxed);
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(context, bytes)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(context)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(context)
    }
}

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ImapError {
    /// TCP connection refused, unreachable, DNS failure.
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        #[source]
        source: std::io::Error,
    },
    /// TLS handshake failed (untrusted or mismatched certificate, protocol).
    #[error("TLS with {address} failed: {message}")]
    Tls { address: String, message: String },
    /// The server refused the login.
    #[error("login refused: {0}")]
    Auth(String),
    /// An OAuth token could not be had.
    #[error("no OAuth token: {0}")]
    Token(String),
    /// The server did not answer in time.
    #[error("no answer within {0} s")]
    Timeout(u64),
    /// The connection broke.
    #[error("connection lost: {0}")]
    Lost(String),
    /// The server refused for now: busy, throttling, try again later.
    #[error("server busy: {0}")]
    Throttled(String),
    /// The server answered something unexpected, or refused a command.
    #[error("{0}")]
    Protocol(String),
    /// The scan was asked to stop.
    #[error("cancelled")]
    Cancelled,
    /// The record consumer went away.
    #[error("record consumer stopped")]
    Sink,
}

impl ImapError {
    /// Whether a new connection might succeed.
    pub(crate) fn retryable(&self) -> bool {
        matches!(
            self,
            ImapError::Connect { .. }
                | ImapError::Timeout(_)
                | ImapError::Lost(_)
                | ImapError::Throttled(_)
        )
    }

    /// Bounded kind, for counts.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            ImapError::Connect { .. } => "connect",
            ImapError::Tls { .. } => "tls",
            ImapError::Auth(_) => "auth",
            ImapError::Token(_) => "token",
            ImapError::Timeout(_) => "timeout",
            ImapError::Lost(_) => "connection_lost",
            ImapError::Throttled(_) => "throttled",
            ImapError::Protocol(_) => "protocol",
            ImapError::Cancelled => "cancelled",
            ImapError::Sink => "sink_closed",
        }
    }
}

/// The server's own words from async-imap's NO/BAD text, which arrives as
/// `code: None, info: Some("[AUTHENTICATIONFAILED] Authentication failed.")`.
fn server_text(text: &str) -> String {
    text.split_once("info: Some(\"")
        .and_then(|(_, rest)| rest.rsplit_once("\")"))
        .map(|(info, _)| info.replace("\\\"", "\""))
        .unwrap_or_else(|| text.to_owned())
}

/// Turn a library error into ours. Parse errors may quote server data (message
/// content): only their kind is kept.
pub(crate) fn from_imap(error: async_imap::error::Error) -> ImapError {
    use async_imap::error::Error;
    match error {
        Error::Io(io) => ImapError::Lost(io.to_string()),
        Error::ConnectionLost => ImapError::Lost("closed by the server".into()),
        Error::No(text) if busy(&text) => ImapError::Throttled(server_text(&text)),
        Error::No(text) | Error::Bad(text) => {
            ImapError::Protocol(format!("server said: {}", server_text(&text)))
        }
        Error::Parse(_) => ImapError::Protocol("unparseable server response".into()),
        Error::Validate(_) => ImapError::Protocol("invalid character in a command argument".into()),
        other => ImapError::Protocol(other.to_string()),
    }
}

/// Whether a `NO` answer means "not now": the RFC 5530 codes for a busy or
/// limited server, and the words Exchange Online and others throttle with.
pub(crate) fn busy(text: &str) -> bool {
    let upper = text.to_ascii_uppercase();
    [
        "[UNAVAILABLE]",
        "[LIMIT]",
        "[INUSE]",
        "[SERVERBUG]",
        "THROTTL",
        "SERVER UNAVAILABLE",
        "TRY AGAIN",
        "TOO MANY",
    ]
    .iter()
    .any(|sign| upper.contains(sign))
}

/// IMAP's date for SEARCH: `21-Nov-2026`.
pub(super) fn search_date(time: DateTime<Utc>) -> String {
    time.format("%d-%b-%Y").to_string()
}

/// Sorted UIDs as a compact set (`1:5,7,9:12`), in pieces of at most `batch`.
pub(super) fn uid_sets(mut uids: Vec<u32>, batch: usize) -> Vec<String> {
    uids.sort_unstable();
    uids.dedup();
    uids.chunks(batch.max(1))
        .map(|chunk| {
            let mut parts = Vec::new();
            let mut start = chunk[0];
            let mut end = chunk[0];
            for &uid in &chunk[1..] {
                if uid == end + 1 {
                    end = uid;
                } else {
                    parts.push(range_text(start, end));
                    start = uid;
                    end = uid;
                }
            }
            parts.push(range_text(start, end));
            parts.join(",")
        })
        .collect()
}

pub(super) fn range_text(start: u32, end: u32) -> String {
    if start == end {
        start.to_string()
    } else {
        format!("{start}:{end}")
    }
}

pub(super) fn to_uids(set: HashSet<u32>) -> Vec<u32> {
    let mut uids: Vec<u32> = set.into_iter().collect();
    uids.sort_unstable();
    uids
}

#[cfg(test)]
mod busy_tests {
    #[test]
    fn busy_servers_are_told_apart_from_refusals() {
        for busy in [
            "[UNAVAILABLE] Server Unavailable. 15",
            "Server Unavailable. 21",
            "[LIMIT] Too many simultaneous connections",
            "[INUSE] Mailbox in use",
            "Request is throttled. Suggested Backoff Time: 30000 milliseconds",
            "[THROTTLED] Account exceeded command or bandwidth limits",
            "Too many commands, try again later",
        ] {
            assert!(super::busy(busy), "{busy}");
        }
        for refusal in [
            "[AUTHENTICATIONFAILED] Authentication failed.",
            "[NONEXISTENT] Unknown Mailbox: Skickat",
            "Error in IMAP command UID FETCH: Invalid messageset",
        ] {
            assert!(!super::busy(refusal), "{refusal}");
        }
    }
}

/// Run `future` with the configured timeout.
pub(crate) async fn timed<T>(
    seconds: u64,
    future: impl std::future::Future<Output = Result<T, ImapError>>,
) -> Result<T, ImapError> {
    tokio::time::timeout(Duration::from_secs(seconds), future)
        .await
        .map_err(|_| ImapError::Timeout(seconds))?
}

async fn tls_upgrade(
    config: &ImapConfig,
    tls: &Arc<rustls::ClientConfig>,
    tcp: TcpStream,
    address: &str,
) -> Result<Box<dyn Io>, ImapError> {
    let server_name = ServerName::try_from(config.host.clone()).map_err(|_| ImapError::Tls {
        address: address.to_owned(),
        message: format!("{:?} is not a valid host name", config.host),
    })?;
    let connector = tokio_rustls::TlsConnector::from(tls.clone());
    let stream = connector
        .connect(server_name, tcp)
        .await
        .map_err(|error| ImapError::Tls {
            address: address.to_owned(),
            message: error.to_string(),
        })?;
    Ok(Box::new(stream))
}

/// Open a connection and read the greeting; for STARTTLS, upgrade first.
/// What the server sends from then on is counted in `received`.
pub(crate) async fn connect(
    config: &ImapConfig,
    tls: &Arc<rustls::ClientConfig>,
    received: &Received,
) -> Result<Client<Box<dyn Io>>, ImapError> {
    let address = format!("{}:{}", config.host, config.port());
    let seconds = config.timeout_seconds;
    let tcp = timed(seconds, async {
        TcpStream::connect((config.host.as_str(), config.port()))
            .await
            .map_err(|source| ImapError::Connect {
                address: address.clone(),
                source,
            })
    })
    .await?;
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Io> = match config.security {
        Security::Plain => Box::new(tcp),
        Security::Tls => timed(seconds, tls_upgrade(config, tls, tcp, &address)).await?,
        Security::Starttls => {
            let tcp = timed(seconds, starttls(tcp)).await?;
            timed(seconds, tls_upgrade(config, tls, tcp, &address)).await?
        }
    };
    let stream: Box<dyn Io> = Box::new(Counted {
        inner: stream,
        received: received.clone(),
    });
    let mut client = Client::new(stream);
    if config.security != Security::Starttls {
        let greeting = timed(seconds, async {
            client
                .read_response()
                .await
                .map_err(|error| ImapError::Lost(error.to_string()))
        })
        .await?;
        if greeting.is_none() {
            return Err(ImapError::Lost("closed before its greeting".into()));
        }
    }
    Ok(client)
}

/// Read the greeting and ask for STARTTLS on the plain connection.
async fn starttls(tcp: TcpStream) -> Result<TcpStream, ImapError> {
    let lost = |error: std::io::Error| ImapError::Lost(error.to_string());
    let mut reader = BufReader::new(tcp);
    let mut line = String::new();
    reader.read_line(&mut line).await.map_err(lost)?;
    if !line.starts_with("* OK") {
        return Err(ImapError::Protocol("unexpected greeting".into()));
    }
    reader
        .get_mut()
        .write_all(b"T0 STARTTLS\r\n")
        .await
        .map_err(lost)?;
    loop {
        line.clear();
        if reader.read_line(&mut line).await.map_err(lost)? == 0 {
            return Err(ImapError::Lost("closed during STARTTLS".into()));
        }
        if let Some(status) = line.strip_prefix("T0 ") {
            if status.starts_with("OK") {
                break;
            }
            return Err(ImapError::Protocol(format!(
                "server refused STARTTLS: {}",
                status.trim()
            )));
        }
    }
    // Nothing may follow the OK before the handshake; a buffered byte would be a
    // plaintext injection attempt.
    if !reader.buffer().is_empty() {
        return Err(ImapError::Protocol("data after STARTTLS OK".into()));
    }
    Ok(reader.into_inner())
}

struct XOAuth2 {
    response: String,
}

impl async_imap::Authenticator for XOAuth2 {
    type Response = String;
    fn process(&mut self, _challenge: &[u8]) -> String {
        // A second challenge carries the error JSON; an empty answer ends it.
        std::mem::take(&mut self.response)
    }
}

async fn token(source: &TokenSource, user: &str, seconds: u64) -> Result<String, ImapError> {
    let bytes = match source {
        TokenSource::File(path) => tillsyn_core::secret::read_file(path)
            .map_err(|error| ImapError::Token(error.to_string()))?
            .expose()
            .to_vec(),
        TokenSource::Command(command) => {
            let args: Vec<String> = command
                .iter()
                .map(|arg| arg.replace("{user}", user))
                .collect();
            let output = timed(seconds, async {
                tokio::process::Command::new(&args[0])
                    .args(&args[1..])
                    .stdin(std::process::Stdio::null())
                    .output()
                    .await
                    .map_err(|error| ImapError::Token(format!("cannot run {}: {error}", args[0])))
            })
            .await?;
            if !output.status.success() {
                return Err(ImapError::Token(format!(
                    "{} exited with {}",
                    args[0], output.status
                )));
            }
            output.stdout
        }
    };
    let token = String::from_utf8(bytes)
        .map_err(|_| ImapError::Token("token is not text".into()))?
        .trim()
        .to_owned();
    if token.is_empty() {
        return Err(ImapError::Token("token is empty".into()));
    }
    Ok(token)
}

/// Connect and log in as `account`, counting what the server sends in
/// `received`.
pub(crate) async fn login(
    config: &ImapConfig,
    tls: &Arc<rustls::ClientConfig>,
    account: &Account,
    received: &Received,
) -> Result<ImapSession, ImapError> {
    let client = connect(config, tls, received).await?;
    let seconds = config.timeout_seconds;
    let refused = |error: async_imap::error::Error| match error {
        async_imap::error::Error::No(text) | async_imap::error::Error::Bad(text) => {
            ImapError::Auth(server_text(&text))
        }
        other => from_imap(other),
    };
    match &account.login {
        Login::Password { user, password } => {
            let password = std::str::from_utf8(password.expose())
                .map_err(|_| ImapError::Auth("password is not UTF-8".into()))?;
            timed(seconds, async {
                client
                    .login(user, password)
                    .await
                    .map_err(|(error, _)| refused(error))
            })
            .await
        }
        Login::Xoauth2 {
            user,
            token: source,
        } => {
            let token = token(source, user, seconds).await?;
            let authenticator = XOAuth2 {
                response: format!("user={user}\x01auth=Bearer {token}\x01\x01"),
            };
            timed(seconds, async {
                client
                    .authenticate("XOAUTH2", authenticator)
                    .await
                    .map_err(|(error, _)| refused(error))
            })
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::server_text;

    #[test]
    fn keeps_only_the_servers_words() {
        assert_eq!(
            server_text(
                r#"code: None, info: Some("[AUTHENTICATIONFAILED] Authentication failed.")"#
            ),
            "[AUTHENTICATIONFAILED] Authentication failed."
        );
        assert_eq!(server_text("plain text"), "plain text");
    }
}

#[cfg(test)]
mod uid_tests {
    use super::*;

    #[test]
    fn uid_sets_compress_and_split() {
        assert_eq!(uid_sets(vec![5, 1, 2, 3, 9, 10, 7], 100), ["1:3,5,7,9:10"]);
        assert_eq!(uid_sets(vec![1, 2, 3, 4, 5], 2), ["1:2", "3:4", "5"]);
        assert!(uid_sets(Vec::new(), 10).is_empty());
    }

    #[test]
    fn search_dates_are_imap_dates() {
        let time = DateTime::from_timestamp(1_795_300_000, 0).expect("time");
        assert_eq!(search_date(time), "21-Nov-2026");
    }
}
