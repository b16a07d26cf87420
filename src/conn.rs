//! The one connection driver both protocols share (STYLE principles 2, 6, 11).
//!
//! This module owns everything that touches the socket: buffered reads framed into lines (or
//! literals) under a hard size limit, batched writes, the idle timeout, the implicit-TLS and
//! STLS/STARTTLS upgrades, graceful shutdown, and the protocol-log tee. A protocol session
//! ([`Session`]) never sees the socket: it gets complete lines, appends typed [`Piece`]s to an
//! [`Output`], and answers with the next [`Step`].
//!
//! * Framing ([`Framer`]) is sans-IO: bytes in, [`Frame`]s out, the same at every chunk size.
//!   A line longer than the limit (RFC 2449 §4: POP3 command lines are at most 255 octets
//!   including CRLF) yields one [`Frame::TooLong`] and is discarded up to its LF; the session
//!   answers it and goes on. Its bytes are never logged (they may hold a password).
//! * Pipelining (RFC 2449 §6.6): every complete line already buffered is handled before the
//!   replies are written, so a burst of commands gets its replies in one write.
//! * STLS/STARTTLS (RFC 2595 §4, RFC 3207 §4.2): after the positive reply is flushed, any
//!   plaintext the client sent after the command is discarded before the handshake, so no
//!   command can be injected into the TLS session.
//! * Shutdown: when `Shared::shutdown` fires, the session writes its goodbye
//!   ([`Session::on_shutdown`]) and the connection closes; the session is dropped without
//!   any QUIT-time work (POP3 deletions are not applied).
//! * The tee: the client line goes to [`SessionLog::client`] with the kind (and redaction)
//!   the session decided ([`Session::redact`]); each output piece goes to
//!   [`SessionLog::server`] / [`SessionLog::content`] / [`SessionLog::info`]. Over-long
//!   lines are not logged at all (their bytes may hold a password that cannot be redacted).
//! * Idle timeout: no input for `Config::idle_timeout(service)` (RFC 1939 §3: at least 10
//!   minutes; RFC 3501 §5.4: at least 30) ends the session after [`Session::on_timeout`].
//!   Writes are bounded by the same timeout, TLS handshakes by at most 60 s.
//! * For IMAP: [`Step::ReadLiteral`] reads exact octet counts (never parsed as commands);
//!   [`Step::Idle`] also wakes the session when [`Session::idle_watch`] changes (RFC 2177).
//!   A protocol plugs in through [`serve_session`]; [`serve`] picks the session by service.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::auth::{AuthResult, Secret, Users};
use crate::protolog::{Direction, LineKind, Service, SessionLog};
use crate::server::{Shared, Snapshot};

/// Entry point the server calls for every accepted connection.
pub async fn serve(
    shared: Arc<Shared>,
    snapshot: Arc<Snapshot>,
    stream: TcpStream,
    service: Service,
    implicit_tls: bool,
) {
    let auth: Arc<dyn Authenticator> = Arc::new(SharedUsers(shared.clone()));
    serve_with(shared, snapshot, stream, service, implicit_tls, auth).await
}

/// [`serve`] with the users database given explicitly. The daemon passes `Shared::users`
/// (via [`serve`]); integration tests pass an in-memory test double so the driver and
/// sessions can be exercised before/independently of the passwd-file backend.
pub async fn serve_with(
    shared: Arc<Shared>,
    snapshot: Arc<Snapshot>,
    stream: TcpStream,
    service: Service,
    implicit_tls: bool,
    auth: Arc<dyn Authenticator>,
) {
    match service {
        Service::Pop3 => {
            serve_session(
                shared,
                snapshot,
                stream,
                service,
                implicit_tls,
                auth,
                crate::pop3::Pop3Session::new,
            )
            .await
        }
        Service::Imap4 => {
            serve_session(
                shared,
                snapshot,
                stream,
                service,
                implicit_tls,
                auth,
                crate::imap::session::ImapSession::new,
            )
            .await
        }
    }
}

/// Runs one connection with the session `make` builds: protocol-log start, implicit TLS,
/// the read/handle/write loop, the `-` record. Every protocol goes through here.
pub async fn serve_session<S, F>(
    shared: Arc<Shared>,
    snapshot: Arc<Snapshot>,
    stream: TcpStream,
    service: Service,
    implicit_tls: bool,
    auth: Arc<dyn Authenticator>,
    make: F,
) where
    S: Session,
    F: FnOnce(SessionEnv) -> S,
{
    let (local, remote) = match (stream.local_addr(), stream.peer_addr()) {
        (Ok(l), Ok(r)) => (l, r),
        (Err(e), _) | (_, Err(e)) => {
            tracing::debug!("connection gone before the session started: {e}");
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let mut log = shared
        .protolog
        .session_start(service, &snapshot.config, local, remote);
    let mut io = Io {
        stream: Stream::Plain(stream),
        idle: snapshot.config.idle_timeout(service),
        bytes_in: 0,
        bytes_out: 0,
    };
    if implicit_tls {
        match io.upgrade(&snapshot).await {
            Ok(text) => log.info(&text),
            Err(e) => {
                tracing::debug!(%remote, "implicit TLS handshake failed: {e}");
                log.info(&format!("TLS handshake failed: {e}"));
                end_log(log, io.bytes_in, io.bytes_out).await;
                return;
            }
        }
    }
    let env = SessionEnv {
        shared: shared.clone(),
        snapshot: snapshot.clone(),
        auth,
        local,
        remote,
        tls: implicit_tls,
    };
    drive(make(env), &mut io, &mut log, &snapshot, &shared).await;
    // The `-` record is written and flushed before the FIN: a client that sees the
    // connection close can read its whole session in the log (SPEC §5 "Integrity"). The
    // graceful close moves no counted bytes, so the counts are final here.
    end_log(log, io.bytes_in, io.bytes_out).await;
    let _ = io.shutdown().await;
}

/// Writes the `-` record and waits until the session's records are on disk (SPEC §5
/// "flushed by the time its session ends") on the blocking pool, so a slow disk never stalls
/// the runtime's worker threads.
async fn end_log(log: SessionLog, bytes_in: u64, bytes_out: u64) {
    if log.level() == 0 {
        log.end(bytes_in, bytes_out);
        return;
    }
    let _ = tokio::task::spawn_blocking(move || log.end(bytes_in, bytes_out)).await;
}

/// Everything a session may know about its connection and daemon (never the socket).
#[derive(Clone)]
pub struct SessionEnv {
    pub shared: Arc<Shared>,
    pub snapshot: Arc<Snapshot>,
    /// Who verifies passwords (the daemon: `Shared::users`).
    pub auth: Arc<dyn Authenticator>,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// True from the start on implicit-TLS listeners; sessions track STLS themselves.
    pub tls: bool,
}

impl SessionEnv {
    /// Plaintext passwords are accepted on TLS, from loopback peers, or when the config says
    /// so (`auth.allow_plaintext`; SPEC §3).
    pub fn plaintext_allowed(&self, tls: bool) -> bool {
        tls || self.remote.ip().to_canonical().is_loopback()
            || self.snapshot.config.auth.allow_plaintext
    }
}

/// The password checks a session needs. Implemented for the daemon's [`Users`] (through
/// [`SharedUsers`]); tests may implement it with a fixed table.
pub trait Authenticator: Send + Sync {
    /// Verifies a password; `Failed` is the same whether or not the user exists.
    fn authenticate<'a>(
        &'a self,
        users_file: &'a Path,
        user: &'a str,
        password: &'a Secret<String>,
    ) -> Pin<Box<dyn Future<Output = AuthResult> + Send + 'a>>;
    /// The plaintext password of a `{PLAIN}` user (APOP); may read a file: call it off the
    /// async runtime.
    fn plain_password(&self, users_file: &Path, user: &str) -> Option<Secret<String>>;
}

/// The daemon's users database, reached through its [`Shared`].
pub struct SharedUsers(pub Arc<Shared>);

impl Authenticator for SharedUsers {
    fn authenticate<'a>(
        &'a self,
        users_file: &'a Path,
        user: &'a str,
        password: &'a Secret<String>,
    ) -> Pin<Box<dyn Future<Output = AuthResult> + Send + 'a>> {
        let users: &'a Users = &self.0.users;
        Box::pin(users.authenticate(users_file, user, password))
    }
    fn plain_password(&self, users_file: &Path, user: &str) -> Option<Secret<String>> {
        self.0.users.plain_password(users_file, user)
    }
}

/// What the session wants the driver to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Read the next command line.
    ReadLine,
    /// Read exactly this many octets of literal data (IMAP), then call `on_literal`.
    ReadLiteral(usize),
    /// Flush the output, discard buffered input, do the TLS handshake, call `on_tls`.
    StartTls,
    /// IMAP IDLE (RFC 2177): read a line (`DONE`) as with `ReadLine`, and meanwhile call
    /// [`Session::on_wakeup`] whenever [`Session::idle_watch`] changes.
    Idle,
    /// Flush the output and close the connection.
    Close,
    /// The command is not finished: call [`Session::on_continue`] again, writing the output
    /// first once it is over the flush threshold (so a large IMAP FETCH is sent in pieces
    /// instead of being built whole in memory).
    Continue,
}

/// One typed piece of server output; the driver encodes it and tees it to the protocol log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// A line, written with CRLF appended; logged with `SessionLog::server(kind, ..)`.
    Line(LineKind, Vec<u8>),
    /// Message content written as-is (already dot-stuffed/CRLF); logged with
    /// `SessionLog::content(ServerToClient, ..)`.
    Content(Arc<[u8]>),
    /// `data[range]`, written and logged as [`Piece::Content`] of those bytes (a part of a
    /// message sent from the store's buffer without a copy).
    ContentRange(Arc<[u8]>, Range<usize>),
    /// Nothing is written; a `*` record goes to the protocol log.
    Info(String),
}

/// The output of one or more session calls, in order.
#[derive(Debug, Default)]
pub struct Output {
    pub pieces: Vec<Piece>,
    /// Octets the pieces will take on the wire (for the flush threshold).
    wire_len: usize,
}

impl Output {
    /// A completion line (POP3 `+OK`/`-ERR`, IMAP tagged, continuation `+`).
    pub fn status(&mut self, line: impl Into<Vec<u8>>) {
        self.line(LineKind::Status, line.into());
    }
    /// Any other server line (POP3 listing lines, the `.` terminator, IMAP untagged).
    pub fn reply(&mut self, line: impl Into<Vec<u8>>) {
        self.line(LineKind::Reply, line.into());
    }
    pub fn line(&mut self, kind: LineKind, line: Vec<u8>) {
        self.wire_len += line.len() + 2;
        self.pieces.push(Piece::Line(kind, line));
    }
    pub fn content(&mut self, data: Arc<[u8]>) {
        self.wire_len += data.len();
        self.pieces.push(Piece::Content(data));
    }
    pub fn content_range(&mut self, data: Arc<[u8]>, range: Range<usize>) {
        self.wire_len += range.len();
        self.pieces.push(Piece::ContentRange(data, range));
    }
    pub fn info(&mut self, text: impl Into<String>) {
        self.pieces.push(Piece::Info(text.into()));
    }
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }
    /// The bytes the pieces put on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let mut wire = Vec::with_capacity(self.wire_len);
        for p in &self.pieces {
            match p {
                Piece::Line(_, l) => {
                    wire.extend_from_slice(l);
                    wire.extend_from_slice(b"\r\n");
                }
                Piece::Content(c) => wire.extend_from_slice(c),
                Piece::ContentRange(c, r) => wire.extend_from_slice(&c[r.clone()]),
                Piece::Info(_) => {}
            }
        }
        wire
    }
    fn clear(&mut self) {
        self.pieces.clear();
        self.wire_len = 0;
    }
}

/// A protocol session as the driver sees it (POP3 now, IMAP later).
pub trait Session: Send {
    /// Maximum length of the next line including CRLF; asked before every line, so it may
    /// depend on the state (e.g. a SASL response may be longer than a command).
    fn line_limit(&self) -> usize;
    /// The greeting, written once the connection (and implicit TLS) is up.
    fn greeting(&mut self, out: &mut Output);
    /// What to do after the greeting (a server that refuses service says `Close`).
    fn first_step(&self) -> Step {
        Step::ReadLine
    }
    /// `Some(redacted)` if `line` holds a secret: the log gets these bytes as
    /// [`LineKind::Secret`] instead of the line. Called before `on_line` with the same state.
    fn redact(&self, line: &[u8]) -> Option<Vec<u8>>;
    /// One complete line (without its CRLF or LF).
    fn on_line(&mut self, line: &[u8], out: &mut Output) -> impl Future<Output = Step> + Send;
    /// Whether the literal about to be read (asked for with [`Step::ReadLiteral`]) holds a
    /// secret (an IMAP `LOGIN` password sent as a literal): the log then gets one
    /// [`LineKind::Secret`] record `***` instead of the content. Asked before `on_literal`.
    fn literal_is_secret(&self) -> bool {
        false
    }
    /// The literal asked for with [`Step::ReadLiteral`].
    fn on_literal(&mut self, data: Vec<u8>, out: &mut Output) -> impl Future<Output = Step> + Send;
    /// A line over [`Session::line_limit`] was discarded.
    fn on_too_long(&mut self, out: &mut Output) -> Step;
    /// The over-long line reported by [`Session::on_too_long`] has ended; `tail` is its last
    /// octets. `Some(step)` replaces the current step (IMAP: skip the data of a
    /// non-synchronizing literal it announced); `None` keeps it.
    fn on_line_discarded(&mut self, tail: &[u8]) -> Option<Step> {
        let _ = tail;
        None
    }
    /// The STLS/STARTTLS handshake succeeded.
    fn on_tls(&mut self);
    /// No input for the idle timeout; the connection closes after this output.
    fn on_timeout(&mut self, out: &mut Output);
    /// The daemon is shutting down; the connection closes after this output.
    fn on_shutdown(&mut self, out: &mut Output);
    /// While the step is [`Step::Idle`]: a counter the driver watches besides the socket
    /// (IMAP IDLE: `Mailbox::changes`), asked once when IDLE begins. A change relative to
    /// the version the receiver has seen wakes the session (so a session that synced at
    /// IDLE start marks it seen first). `None` means only input wakes the session.
    fn idle_watch(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
    /// After [`Step::Continue`]: produce the next part of the unfinished command.
    fn on_continue(&mut self, out: &mut Output) -> impl Future<Output = Step> + Send {
        let _ = out;
        async { Step::ReadLine }
    }
    /// The watched counter changed during [`Step::Idle`]: say what is new (untagged
    /// responses) and give the next step (usually `Idle` again).
    fn on_wakeup(&mut self, out: &mut Output) -> impl Future<Output = Step> + Send {
        let _ = out;
        async { Step::Idle }
    }
}

/// Above this many buffered output octets the driver writes before handling more input.
const FLUSH_THRESHOLD: usize = 256 * 1024;
/// Content at least this large is written from its own buffer instead of being copied.
const DIRECT_WRITE: usize = 64 * 1024;
/// The longest a TLS handshake may take (bounded also by the idle timeout).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// The read/handle/write loop (STYLE principle 6).
async fn drive<S: Session>(
    mut session: S,
    io: &mut Io,
    log: &mut SessionLog,
    snapshot: &Snapshot,
    shared: &Shared,
) {
    let mut framer = Framer::new(session.line_limit());
    let mut out = Output::default();
    session.greeting(&mut out);
    let mut step = session.first_step();
    // The watch of the current IDLE, taken when `Step::Idle` begins.
    let mut idle_watch: Option<tokio::sync::watch::Receiver<u64>> = None;
    loop {
        // Handle everything already buffered (pipelining), then write once.
        loop {
            match step {
                Step::ReadLine | Step::Idle => {
                    if let Some(tail) = framer.take_discarded_tail() {
                        if let Some(next) = session.on_line_discarded(&tail) {
                            step = next;
                            continue;
                        }
                    }
                    match framer.set_limit(session.line_limit()).next_line() {
                        Some(Frame::Line(line)) => {
                            match session.redact(&line) {
                                Some(r) => log.client(LineKind::Secret, &r),
                                None => log.client(LineKind::Command, &line),
                            }
                            step = session.on_line(&line, &mut out).await;
                        }
                        Some(Frame::TooLong) => step = session.on_too_long(&mut out),
                        None => break,
                    }
                }
                Step::ReadLiteral(n) => match framer.take_literal(n) {
                    Some(data) => {
                        if session.literal_is_secret() {
                            log.client(LineKind::Secret, b"***");
                        } else {
                            log.content(Direction::ClientToServer, &data);
                        }
                        step = session.on_literal(data, &mut out).await;
                    }
                    None => break,
                },
                Step::StartTls => {
                    if io.write(&mut out, log).await.is_err() {
                        return;
                    }
                    // RFC 2595 §4 / RFC 3207 §4.2: nothing sent before the handshake counts.
                    framer.clear();
                    match io.upgrade(snapshot).await {
                        Ok(text) => {
                            log.info(&text);
                            session.on_tls();
                            step = Step::ReadLine;
                        }
                        Err(e) => {
                            tracing::debug!("STLS handshake failed: {e}");
                            log.info(&format!("TLS handshake failed: {e}"));
                            return;
                        }
                    }
                }
                Step::Close => {
                    let _ = io.write(&mut out, log).await;
                    return;
                }
                Step::Continue => step = session.on_continue(&mut out).await,
            }
            if out.wire_len >= FLUSH_THRESHOLD && io.write(&mut out, log).await.is_err() {
                return;
            }
        }
        if io.write(&mut out, log).await.is_err() {
            return;
        }
        // Wait for more input, the idle timeout, shutdown, or (IDLE) a mailbox change.
        if step == Step::Idle {
            if idle_watch.is_none() {
                idle_watch = session.idle_watch();
            }
        } else {
            idle_watch = None;
        }
        let wakeup = async {
            match idle_watch.as_mut() {
                Some(w) => {
                    if w.changed().await.is_err() {
                        // The sender is gone: nothing will ever change again.
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            biased;
            _ = shared.shutdown.cancelled() => {
                session.on_shutdown(&mut out);
                let _ = io.write(&mut out, log).await;
                return;
            }
            _ = wakeup => {
                step = session.on_wakeup(&mut out).await;
            }
            r = tokio::time::timeout(io.idle, io.stream.read_buf(framer.read_buf())) => match r {
                Err(_) => {
                    session.on_timeout(&mut out);
                    let _ = io.write(&mut out, log).await;
                    return;
                }
                Ok(Ok(0)) => return,
                Ok(Ok(n)) => {
                    io.bytes_in += n as u64;
                    framer.filled();
                }
                Ok(Err(e)) => {
                    tracing::debug!("read error: {e}");
                    return;
                }
            }
        }
    }
}

/// The socket, its counters and its timeout.
struct Io {
    stream: Stream,
    idle: Duration,
    bytes_in: u64,
    bytes_out: u64,
}

impl Io {
    /// Writes `out` (teeing every piece to the log) and flushes once; empties `out`. Lines
    /// and small content are gathered into one buffer; large content (a big RETR) is written
    /// from its own buffer without another copy.
    async fn write(&mut self, out: &mut Output, log: &mut SessionLog) -> io::Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        for p in &out.pieces {
            match p {
                Piece::Line(kind, l) => log.server(*kind, l),
                Piece::Content(c) => log.content(Direction::ServerToClient, c),
                Piece::ContentRange(c, r) => log.content(Direction::ServerToClient, &c[r.clone()]),
                Piece::Info(t) => log.info(t),
            }
        }
        let pieces = std::mem::take(&mut out.pieces);
        out.clear();
        let stream = &mut self.stream;
        let written = tokio::time::timeout(self.idle, async {
            let mut pending = Vec::with_capacity(4096);
            let mut total = 0u64;
            for p in &pieces {
                let c: &[u8] = match p {
                    Piece::Line(_, l) => {
                        pending.extend_from_slice(l);
                        pending.extend_from_slice(b"\r\n");
                        continue;
                    }
                    Piece::Content(c) => c,
                    Piece::ContentRange(c, r) => &c[r.clone()],
                    Piece::Info(_) => continue,
                };
                if c.len() >= DIRECT_WRITE {
                    stream.write_all(&pending).await?;
                    total += pending.len() as u64;
                    pending.clear();
                    stream.write_all(c).await?;
                    total += c.len() as u64;
                } else {
                    pending.extend_from_slice(c);
                }
            }
            stream.write_all(&pending).await?;
            total += pending.len() as u64;
            stream.flush().await?;
            Ok::<u64, io::Error>(total)
        })
        .await;
        match written {
            Ok(Ok(n)) => {
                self.bytes_out += n;
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out")),
        }
    }

    /// Server-side TLS handshake on the plain stream; returns the `*` log text.
    async fn upgrade(&mut self, snapshot: &Snapshot) -> io::Result<String> {
        let tcp = match std::mem::replace(&mut self.stream, Stream::Gone) {
            Stream::Plain(t) => t,
            other => {
                self.stream = other;
                return Err(io::Error::other("TLS is already active"));
            }
        };
        let limit = self.idle.min(HANDSHAKE_TIMEOUT);
        let tls = tokio::time::timeout(limit, snapshot.tls.accept(tcp))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        let (_, conn) = tls.get_ref();
        let text = format!(
            "TLS established: {} {}",
            conn.protocol_version()
                .map(|v| format!("{v:?}"))
                .unwrap_or_default(),
            conn.negotiated_cipher_suite()
                .map(|c| format!("{:?}", c.suite()))
                .unwrap_or_default()
        );
        self.stream = Stream::Tls(Box::new(tls));
        Ok(text)
    }

    /// Graceful close: FIN (and TLS close_notify), then a short bounded drain of what the
    /// client still sends, so closing with unread input does not turn into a TCP reset that
    /// could destroy the last reply in flight (e.g. `+OK` to a pipelined `QUIT`).
    async fn shutdown(&mut self) -> io::Result<()> {
        let r = tokio::time::timeout(Duration::from_secs(5), self.stream.shutdown()).await;
        let stream = &mut self.stream;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let mut buf = [0u8; 4096];
            let mut drained = 0usize;
            while drained < 64 * 1024 {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => drained += n,
                }
            }
        })
        .await;
        r.unwrap_or(Ok(()))
    }
}

/// Plain TCP, or TLS over it (after implicit TLS or STLS).
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// Only during an upgrade (or after a failed one).
    Gone,
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "stream gone")
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Gone => Poll::Ready(Err(gone())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Gone => Poll::Ready(Err(gone())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Gone => Poll::Ready(Ok(())),
        }
    }
}

/// One unit of framed input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete line without its line ending (CRLF, or a bare LF).
    Line(Vec<u8>),
    /// A line over the limit; its bytes were (or will be, up to the LF) discarded.
    TooLong,
}

/// Sans-IO line/literal framing under a hard limit (STYLE principle 2).
#[derive(Debug)]
pub struct Framer {
    buf: BytesMut,
    /// Maximum line length including the line ending.
    limit: usize,
    /// Dropping the rest of an over-long line (already reported) up to its LF.
    discarding: bool,
    /// The last [`TAIL_KEEP`] octets of the line being discarded (an IMAP line may end with
    /// a literal announcement whose data follows).
    tail: Vec<u8>,
    /// The tail of a discarded line that has ended, until taken.
    ended_tail: Option<Vec<u8>>,
}

/// Octets kept of the end of a discarded line (CR included): enough for `{` + 20 digits +
/// `+}` + CR.
const TAIL_KEEP: usize = 32;

impl Framer {
    pub fn new(limit: usize) -> Framer {
        Framer {
            buf: BytesMut::with_capacity(4096),
            limit: limit.max(2),
            discarding: false,
            tail: Vec::new(),
            ended_tail: None,
        }
    }

    /// Changes the line limit for the lines still to be framed.
    pub fn set_limit(&mut self, limit: usize) -> &mut Framer {
        self.limit = limit.max(2);
        self
    }

    /// Appends received bytes (tests and non-socket callers).
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        self.filled();
    }

    /// The buffer to read into (room reserved); call [`Framer::filled`] afterwards.
    fn read_buf(&mut self) -> &mut BytesMut {
        self.buf.reserve(4096);
        &mut self.buf
    }

    /// Applies discarding to freshly received bytes, so an endless line never grows the buffer.
    fn filled(&mut self) {
        if self.discarding {
            self.drop_discarded();
        }
    }

    fn drop_discarded(&mut self) {
        let end = self.buf.iter().position(|&b| b == b'\n');
        let dropped = end.unwrap_or(self.buf.len());
        self.tail
            .extend_from_slice(&self.buf[dropped.saturating_sub(TAIL_KEEP)..dropped]);
        if self.tail.len() > TAIL_KEEP {
            self.tail.drain(..self.tail.len() - TAIL_KEEP);
        }
        match end {
            Some(i) => {
                self.buf.advance(i + 1);
                self.discarding = false;
                let mut tail = std::mem::take(&mut self.tail);
                if tail.last() == Some(&b'\r') {
                    tail.pop();
                }
                self.ended_tail = Some(tail);
            }
            None => self.buf.clear(),
        }
    }

    /// Once per over-long line, after its LF was seen: its last octets (without CR/LF), so
    /// a session can tell whether it announced literal data that follows it. Call before
    /// [`Framer::next_line`]; `None` while the line has not ended or was already reported.
    pub fn take_discarded_tail(&mut self) -> Option<Vec<u8>> {
        if self.discarding {
            self.drop_discarded();
        }
        self.ended_tail.take()
    }

    /// The next complete line, an over-long-line marker, or `None` for "need more input".
    pub fn next_line(&mut self) -> Option<Frame> {
        if self.discarding {
            self.drop_discarded();
            if self.discarding {
                return None;
            }
        }
        let scan = self.buf.len().min(self.limit);
        match self.buf[..scan].iter().position(|&b| b == b'\n') {
            Some(i) => {
                let mut line = self.buf.split_to(i + 1);
                line.truncate(i);
                if line.last() == Some(&b'\r') {
                    line.truncate(i - 1);
                }
                Some(Frame::Line(line.to_vec()))
            }
            None if self.buf.len() >= self.limit => {
                self.discarding = true;
                self.drop_discarded();
                Some(Frame::TooLong)
            }
            None => None,
        }
    }

    /// Exactly `n` literal octets, if buffered.
    pub fn take_literal(&mut self, n: usize) -> Option<Vec<u8>> {
        if self.buf.len() >= n {
            Some(self.buf.split_to(n).to_vec())
        } else {
            // Reserve in steps: the announced size is only a promise.
            self.buf.reserve((n - self.buf.len()).min(64 * 1024));
            None
        }
    }

    /// Drops everything buffered (before a TLS handshake).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.discarding = false;
        self.tail.clear();
        self.ended_tail = None;
    }

    /// Octets buffered and not yet framed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames_at_chunk(input: &[u8], limit: usize, chunk: usize) -> Vec<Frame> {
        let mut f = Framer::new(limit);
        let mut got = Vec::new();
        for c in input.chunks(chunk) {
            f.push(c);
            while let Some(fr) = f.next_line() {
                got.push(fr);
            }
        }
        got
    }

    fn line(s: &str) -> Frame {
        Frame::Line(s.as_bytes().to_vec())
    }

    /// Every chunk size from 1 to the whole input gives the same frames.
    fn check_all_chunks(input: &[u8], limit: usize, want: &[Frame]) {
        for chunk in 1..=input.len() {
            assert_eq!(
                frames_at_chunk(input, limit, chunk),
                want,
                "chunk size {chunk}"
            );
        }
    }

    #[test]
    fn lines_crlf_and_bare_lf_at_every_chunk_size() {
        let input = b"USER bob\r\nPASS x y\nNOOP\r\n\r\nQUIT\r\nincomplete";
        check_all_chunks(
            input,
            255,
            &[
                line("USER bob"),
                line("PASS x y"),
                line("NOOP"),
                line(""),
                line("QUIT"),
            ],
        );
    }

    #[test]
    fn limit_counts_the_crlf() {
        // 253 octets + CRLF = 255: accepted; 254 + CRLF = 256: too long.
        let ok = "a".repeat(253);
        let bad = "b".repeat(254);
        let input = format!("{ok}\r\n{bad}\r\nNOOP\r\n");
        check_all_chunks(
            input.as_bytes(),
            255,
            &[line(&ok), Frame::TooLong, line("NOOP")],
        );
    }

    #[test]
    fn over_long_line_reported_once_and_discarded_to_lf() {
        let long = "X".repeat(1000);
        let input = format!("NOOP\r\n{long}\r\nSTAT\r\n{long}\nQUIT\r\n");
        check_all_chunks(
            input.as_bytes(),
            255,
            &[
                line("NOOP"),
                Frame::TooLong,
                line("STAT"),
                Frame::TooLong,
                line("QUIT"),
            ],
        );
    }

    #[test]
    fn endless_line_does_not_grow_the_buffer() {
        let mut f = Framer::new(255);
        let junk = vec![b'z'; 1000];
        let mut too_long = 0;
        for _ in 0..100 {
            f.push(&junk);
            while let Some(fr) = f.next_line() {
                assert_eq!(fr, Frame::TooLong);
                too_long += 1;
            }
            assert!(f.buffered() < 255);
        }
        assert_eq!(too_long, 1);
        f.push(b"\r\nNOOP\r\n");
        assert_eq!(f.next_line(), Some(line("NOOP")));
    }

    #[test]
    fn binary_junk_is_framed_not_interpreted() {
        let input = b"\x00\xff\x80\r\n\x1b[31m\n";
        check_all_chunks(
            input,
            255,
            &[Frame::Line(b"\x00\xff\x80".to_vec()), line("\x1b[31m")],
        );
    }

    #[test]
    fn literal_then_line() {
        let input = b"A1 APPEND x {5}\r\nhel\nlA2 NOOP\r\n";
        for chunk in 1..=input.len() {
            let mut f = Framer::new(255);
            let mut got = Vec::new();
            let mut want_lit = false;
            for c in input.chunks(chunk) {
                f.push(c);
                loop {
                    if want_lit {
                        match f.take_literal(5) {
                            Some(d) => {
                                got.push(Frame::Line(d));
                                want_lit = false;
                            }
                            None => break,
                        }
                    } else {
                        match f.next_line() {
                            Some(fr) => {
                                want_lit = fr == line("A1 APPEND x {5}");
                                got.push(fr);
                            }
                            None => break,
                        }
                    }
                }
            }
            assert_eq!(
                got,
                vec![line("A1 APPEND x {5}"), line("hel\nl"), line("A2 NOOP")],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn limit_can_change_between_lines() {
        let input = format!("{}\r\n{}\r\nok\r\n", "a".repeat(20), "b".repeat(20));
        for chunk in 1..=input.len() {
            let mut f = Framer::new(10);
            let mut got = Vec::new();
            for c in input.as_bytes().chunks(chunk) {
                f.push(c);
                loop {
                    // Strict for the first line, generous afterwards (as after `AUTH PLAIN`).
                    let limit = if got.is_empty() { 10 } else { 100 };
                    match f.set_limit(limit).next_line() {
                        Some(fr) => got.push(fr),
                        None => break,
                    }
                }
            }
            assert_eq!(
                got,
                vec![Frame::TooLong, line(&"b".repeat(20)), line("ok")],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn discarded_line_tail_is_reported_once_at_every_chunk_size() {
        let long = format!("a1 APPEND x {} {{12+}}", "y".repeat(300));
        let input = format!("{long}\r\nNOOP\r\n");
        for chunk in 1..=input.len() {
            let mut f = Framer::new(100);
            let mut got = Vec::new();
            for c in input.as_bytes().chunks(chunk) {
                f.push(c);
                loop {
                    if let Some(t) = f.take_discarded_tail() {
                        got.push(Frame::Line(t));
                        continue;
                    }
                    match f.next_line() {
                        Some(fr) => got.push(fr),
                        None => break,
                    }
                }
            }
            // The last TAIL_KEEP octets before the LF, less the CR.
            let tail = long[long.len() - (TAIL_KEEP - 1)..].to_string();
            assert_eq!(
                got,
                vec![Frame::TooLong, line(&tail), line("NOOP")],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn clear_drops_buffered_plaintext() {
        let mut f = Framer::new(255);
        f.push(b"STLS\r\nUSER injected\r\n");
        assert_eq!(f.next_line(), Some(line("STLS")));
        f.clear();
        assert_eq!(f.next_line(), None);
    }

    #[test]
    fn output_encodes_lines_with_crlf_and_content_raw() {
        let mut o = Output::default();
        o.status("+OK 5 octets");
        o.content(Arc::from(&b"hi\r\n..x\r\n"[..]));
        o.reply(".");
        o.info("not on the wire");
        assert_eq!(o.encode(), b"+OK 5 octets\r\nhi\r\n..x\r\n.\r\n");
    }
}
