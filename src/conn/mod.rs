//! The one connection driver both protocols share (ARCHITECTURE.md, "Connection driver"):
//! frame before parsing, sessions never touch the socket, the protocol log is a tee here.
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
//! * Shutdown: when [`Connection::shutdown`] fires, the session writes its goodbye
//!   ([`Session::on_shutdown`]) and the connection closes; the session is dropped without
//!   any QUIT-time work (POP3 deletions are not applied).
//! * The tee: the client line goes to [`SessionLog::client`] with the kind (and redaction)
//!   the session decided ([`Session::redact`]); each output piece goes to
//!   [`SessionLog::server`] / [`SessionLog::content`] / [`SessionLog::info`]. Over-long
//!   lines are not logged at all (their bytes may hold a password that cannot be redacted).
//! * Idle timeout: no input for `Config::idle_timeout(service)` (RFC 1939 §3: at least 10
//!   minutes; RFC 3501 §5.4: at least 30) ends the session after [`Session::on_timeout`].
//!   Writes are bounded by the same timeout, TLS handshakes by at most 60 s. Before login
//!   ([`Session::logged_in`]) the limits are `limits.login_idle_timeout_secs` without input
//!   and `limits.login_timeout_secs` from the accept however much the client sends.
//! * COMPRESS=DEFLATE (RFC 4978, IMAP): after the tagged OK is flushed, [`Step::Compress`]
//!   puts a DEFLATE layer ([`deflate`]) between the socket and everything above it: input
//!   already buffered is inflated first, inflated input is framed a bounded chunk at a time
//!   (so the line and literal limits apply to the inflated octets), every write ends with a
//!   sync flush (IDLE and `+` continuations reach the client at once), and the protocol log
//!   keeps recording the uncompressed lines. The `-` record's byte counts are wire octets.
//! * Cluster login proxy ([`Step::Relay`], README.md "Cluster"): after the session's login
//!   reply is flushed, the connection is relayed octet for octet to the owner node the
//!   session logged in to ([`Session::take_relay`]), first what the client pipelined after
//!   its login; `relay.rs` ends it at either side's close, the idle timeout, shutdown or a
//!   kick. The log gets `proxied to <node> <addr>`, `relay ended: ...` and the `-` record
//!   with the client-side octets; nothing relayed is logged here (the owner logs it).
//! * LMTP: a connection may be a Unix stream socket ([`Socket::Unix`]; never TLS, and a
//!   vanished peer is noticed at the next read, not by peeking); DATA lines the session marks
//!   as content ([`Session::line_is_content`]) are logged as content, not as commands: level
//!   5 the lines, level 4 one `<literal N octets>` when the content ends.
//! * For IMAP: [`Step::ReadLiteral`] reads exact octet counts (never parsed as commands);
//!   [`Step::Idle`] also wakes the session when [`Session::idle_watch`] changes (RFC 2177),
//!   and every [`Session::idle_check`] interval (a change the watcher cannot see).
//!   The server picks the session by service and hands it to [`serve_session`]
//!   (`crate::server`); the contract the sessions implement is [`crate::session`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_util::sync::CancellationToken;

pub use framer::{Frame, Framer};

use crate::protolog::{Direction, LineKind, ProtoLog, SessionLog};
use crate::service::Service;
use crate::sessions::{KickReason, Registration, Registry};
use crate::session::{LiteralPiece, Output, Piece, Session, Snapshot, Step};

mod deflate;
mod framer;
pub mod proxy;
mod relay;

/// One accepted connection as the driver needs it: the socket, what it serves, and the
/// handles the driver itself uses (the session gets its own, through its [`SessionEnv`]).
///
/// [`SessionEnv`]: crate::session::SessionEnv
pub struct Connection {
    pub stream: Socket,
    pub service: Service,
    /// Implicit TLS (IMAPS/POP3S): the handshake comes before the greeting.
    pub implicit_tls: bool,
    /// The endpoints (for a Unix socket, `0.0.0.0:0`: the protocol log and the session see
    /// an unspecified address).
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// On a PROXY listener whose header gave the endpoints: the proxy's own address and
    /// whether the client reached it over TLS (noted in the protocol log as a `*` record).
    pub via: Option<(SocketAddr, bool)>,
    /// On a cluster internal listener: the front node and its session id (the PROXY
    /// header's `FRONT_TLV`), noted as a `*` record so the two logs can be joined.
    pub front: Option<(String, String)>,
    /// The session's config snapshot: idle timeout, TLS, protocol-log settings.
    pub snapshot: Arc<Snapshot>,
    /// The daemon's protocol log; the session's records go through the tee here.
    pub protolog: Arc<ProtoLog>,
    /// Fired once at daemon shutdown: the session says goodbye and the connection closes.
    pub shutdown: CancellationToken,
    /// The session's [`SessionEnv::cancel`]: the driver fires it when the peer goes away
    /// while a command runs (a child of `shutdown`, so shutdown fires it too).
    ///
    /// [`SessionEnv::cancel`]: crate::session::SessionEnv::cancel
    pub cancel: CancellationToken,
    /// The daemon's live session table: the session is listed there while it runs, and its
    /// row's kill token (`mailserver kick`) ends it as shutdown does.
    pub sessions: Arc<Registry>,
}

/// An accepted socket: TCP, or a Unix stream socket (LMTP's `unix:` listeners).
pub enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl From<TcpStream> for Socket {
    fn from(s: TcpStream) -> Socket {
        Socket::Tcp(s)
    }
}

impl From<UnixStream> for Socket {
    fn from(s: UnixStream) -> Socket {
        Socket::Unix(s)
    }
}

/// Runs one connection with `session`: protocol-log start, implicit TLS, the
/// read/handle/write loop, the `-` record. Every protocol goes through here.
pub async fn serve_session<S: Session>(conn: Connection, session: S) {
    let Connection {
        stream,
        service,
        implicit_tls,
        local,
        remote,
        via,
        front,
        snapshot,
        protolog,
        shutdown,
        cancel,
        sessions,
    } = conn;
    let mut session = session;
    let stream = match stream {
        Socket::Tcp(t) => {
            let _ = t.set_nodelay(true);
            Stream::Plain(t)
        }
        Socket::Unix(u) => Stream::Unix(u),
    };
    // The login phase is timed from the accept, implicit TLS handshake included.
    let timeouts = Timeouts {
        session_idle: snapshot.config.idle_timeout(service),
        login_idle: snapshot.config.limits.login_idle_timeout,
        login_deadline: tokio::time::Instant::now() + snapshot.config.limits.login_timeout,
    };
    let mut log = protolog.session_start(
        service,
        snapshot.config.protocol_log(service),
        local,
        remote,
    );
    if let Some((proxy, tls)) = via {
        let tls = if tls { ", client TLS at the proxy" } else { "" };
        log.info(&format!("PROXY header from {proxy}{tls}"));
    }
    if let Some((node, id)) = front {
        log.info(&format!("proxied from {node} session {id}"));
    }
    session.set_session_id(log.id());
    let registration = sessions.register(log.id(), service, remote);
    let mut io = Io {
        stream,
        zip: None,
        idle: timeouts.login_idle,
        bytes_in: 0,
        bytes_out: 0,
        service,
    };
    let metrics = crate::metrics::get();
    let _open = metrics.connection(service);
    if implicit_tls {
        let upgraded = io.upgrade(&snapshot).await;
        metrics.tls_handshake(service, upgraded.is_ok());
        match upgraded {
            Ok(text) => log.info(&text),
            Err(e) => {
                tracing::debug!(%remote, "implicit TLS handshake failed: {e}");
                log.info(&format!("TLS handshake failed: {e}"));
                metrics.bytes(service, io.bytes_in, io.bytes_out);
                end_log(log, io.bytes_in, io.bytes_out).await;
                return;
            }
        }
    }
    let stop = Stop {
        shutdown: &shutdown,
        cancel: &cancel,
        registration: &registration,
    };
    drive(session, &mut io, &mut log, &snapshot, &timeouts, stop).await;
    metrics.bytes(service, io.bytes_in, io.bytes_out);
    drop(registration);
    // The `-` record is written and flushed before the FIN: a client that sees the
    // connection close can read its whole session in the log (ARCHITECTURE.md, "Protocol
    // log"). The graceful close moves no counted bytes, so the counts are final here.
    end_log(log, io.bytes_in, io.bytes_out).await;
    let _ = io.shutdown().await;
}

/// Writes the `-` record and waits until the session's records are on disk (a session's
/// records are flushed by the time it ends: ARCHITECTURE.md, "Protocol log") on the blocking
/// pool, so a slow disk never stalls the runtime's worker threads.
async fn end_log(log: SessionLog, bytes_in: u64, bytes_out: u64) {
    if log.level() == 0 {
        log.end(bytes_in, bytes_out);
        return;
    }
    let _ = tokio::task::spawn_blocking(move || log.end(bytes_in, bytes_out)).await;
}

/// Per-user logging: once the session says who logged in, the log writes or drops what it
/// held (ARCHITECTURE.md, "Protocol log"). The command's own output (its `*` success record,
/// its completion) is teed after this, so it follows the held records.
fn note_user<S: Session>(session: &S, log: &mut SessionLog) {
    if log.holding() {
        if let Some(user) = session.log_user() {
            log.logged_in_as(user);
        }
    }
}

/// Above this many buffered output octets the driver writes before handling more input.
const FLUSH_THRESHOLD: usize = 256 * 1024;
/// Content at least this large is written from its own buffer instead of being copied.
const DIRECT_WRITE: usize = 64 * 1024;
/// The longest a TLS handshake may take (bounded also by the idle timeout).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// The timeouts of one connection (ARCHITECTURE.md, "Limits"): the service's idle timeout
/// once logged in; before that a short idle limit and a deadline for the whole login phase
/// that input does not extend (slowloris).
struct Timeouts {
    session_idle: Duration,
    login_idle: Duration,
    login_deadline: tokio::time::Instant,
}

impl Timeouts {
    /// How long the next wait for input may take; also bounds writes and handshakes.
    fn wait(&self, logged_in: bool) -> Duration {
        if logged_in {
            return self.session_idle;
        }
        let left = self
            .login_deadline
            .saturating_duration_since(tokio::time::Instant::now());
        self.login_idle.min(left)
    }
}

/// What ends a session from outside: shutdown, the peer going away during a command
/// (`cancel`), a kick (the registration's token).
struct Stop<'a> {
    shutdown: &'a CancellationToken,
    cancel: &'a CancellationToken,
    registration: &'a Registration,
}

/// The read/handle/write loop, the same for every protocol.
async fn drive<S: Session>(
    mut session: S,
    io: &mut Io,
    log: &mut SessionLog,
    snapshot: &Snapshot,
    timeouts: &Timeouts,
    stop: Stop<'_>,
) {
    let Stop {
        shutdown,
        cancel,
        registration,
    } = stop;
    let mut framer = Framer::new(session.line_limit());
    let mut out = Output::default();
    let metrics = crate::metrics::get();
    let mut state = metrics.session_state(io.service, session.state_name());
    session.greeting(&mut out);
    let mut step = session.first_step();
    // The watch of the current IDLE, taken when `Step::Idle` begins.
    let mut idle_watch: Option<tokio::sync::watch::Receiver<u64>> = None;
    // The re-check interval of the current IDLE ([`Session::idle_check`]).
    let mut idle_check: Option<std::time::Duration> = None;
    // Octets of content lines ([`Session::line_is_content`]) since the last summary.
    let mut content_in = 0u64;
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
                            let dir = Direction::ClientToServer;
                            if session.line_is_content() {
                                // LMTP DATA: message content, logged as content.
                                content_in += line.len() as u64 + 2;
                                log.content_piece(dir, &line, None);
                                log.content_piece(dir, b"\r\n", None);
                            } else {
                                match session.redact(&line) {
                                    Some(r) => log.client(LineKind::Secret, &r),
                                    None => log.client(LineKind::Command, &line),
                                }
                            }
                            let timer = match session.line_is_content() {
                                true => None,
                                false => metrics.command(io.service, &line),
                            };
                            let cmd = session.on_line(&line, &mut out);
                            step = watched(cmd, &io.stream, cancel).await;
                            note_user(&session, log);
                            if let Some(t) = timer {
                                t.done();
                            }
                            if content_in > 0 && !session.line_is_content() {
                                log.content_summary(dir, content_in);
                                content_in = 0;
                            }
                        }
                        Some(Frame::TooLong) => step = session.on_too_long(&mut out),
                        None => break,
                    }
                }
                Step::ReadLiteral(n) => match framer.take_literal(n) {
                    Some(data) => {
                        let dir = Direction::ClientToServer;
                        if session.literal_is_secret() {
                            log.client(LineKind::Secret, b"***");
                        } else {
                            match session.literal_piece() {
                                LiteralPiece::Whole => log.content(dir, &data),
                                LiteralPiece::First { total } => {
                                    log.content_piece(dir, &data, Some(total))
                                }
                                LiteralPiece::Rest => log.content_piece(dir, &data, None),
                            }
                        }
                        let cmd = session.on_literal(data, &mut out);
                        step = watched(cmd, &io.stream, cancel).await;
                        note_user(&session, log);
                    }
                    None => break,
                },
                Step::StartTls => {
                    if io.write(&mut out, log).await.is_err() {
                        return;
                    }
                    // RFC 2595 §4 / RFC 3207 §4.2: nothing sent before the handshake counts.
                    framer.clear();
                    let upgraded = io.upgrade(snapshot).await;
                    metrics.tls_handshake(io.service, upgraded.is_ok());
                    match upgraded {
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
                Step::Compress => {
                    if io.write(&mut out, log).await.is_err() {
                        return;
                    }
                    // RFC 4978 §3: compression starts right after the tagged OK; anything
                    // the client sent after the command is already compressed.
                    let rest = framer.take_rest();
                    io.zip = Some(Box::new(deflate::Deflate::new(&rest)));
                    log.info("Compression started: DEFLATE");
                    step = Step::ReadLine;
                }
                Step::Close => {
                    let _ = io.write(&mut out, log).await;
                    return;
                }
                Step::Relay => {
                    let Some(mut backend) = session.take_relay() else {
                        let _ = io.write(&mut out, log).await;
                        return;
                    };
                    // Teed with the login reply, after the session's success record.
                    out.info(format!("proxied to {} {}", backend.node, backend.addr));
                    let state_text = format!("{}{}", crate::sessions::RELAY_STATE, backend.node);
                    registration.update(Some(&backend.user), &state_text);
                    state.set("proxied");
                    if io.write(&mut out, log).await.is_err() {
                        return;
                    }
                    // Whatever the client pipelined after its login goes to the owner.
                    let pending = framer.take_rest();
                    let stops = [shutdown, registration.kill()];
                    let idle = timeouts.session_idle;
                    let rest = std::mem::take(&mut backend.rest);
                    let mut counts = (0, 0);
                    let client = &mut io.stream;
                    let end = relay::relay(client, &mut counts, &mut backend.stream, &pending, &rest, idle, stops).await;
                    io.bytes_in += counts.0;
                    io.bytes_out += counts.1;
                    log.info(&format!("relay ended: {}", relay::relay_end_text(&end)));
                    let _ = tokio::time::timeout(Duration::from_secs(5), backend.stream.shutdown()).await;
                    return;
                }
                Step::Continue => {
                    step = watched(session.on_continue(&mut out), &io.stream, cancel).await;
                    note_user(&session, log);
                }
            }
            if out.wire_len() >= FLUSH_THRESHOLD && io.write(&mut out, log).await.is_err() {
                return;
            }
        }
        // Before the replies go out: a client that has read them sees the new state.
        state.set(session.state_name());
        // Before the replies go out: a client that has its reply sees itself in `who`.
        let (user, state) = session.who();
        registration.update(user, state);
        if io.write(&mut out, log).await.is_err() {
            return;
        }
        // Asked before every wait: a login just done switches to the service's timeout.
        io.idle = timeouts.wait(session.logged_in());
        // Wait for more input, the idle timeout, shutdown, or (IDLE) a mailbox change.
        if step == Step::Idle {
            if idle_watch.is_none() {
                idle_watch = session.idle_watch();
                idle_check = session.idle_check();
            }
        } else {
            idle_watch = None;
            idle_check = None;
        }
        let wakeup = async {
            // Another host's write fires no watcher event: the timer wakes the session to
            // look (it re-syncs only what the stamps say changed).
            let timer = async {
                match idle_check {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending::<()>().await,
                }
            };
            let watched = async {
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
                _ = watched => {}
                _ = timer => {}
            }
        };
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                session.on_shutdown(&mut out);
                let _ = io.write(&mut out, log).await;
                return;
            }
            _ = registration.kill().cancelled() => {
                let reason = registration.kick_reason();
                log.info(match reason {
                    KickReason::Admin => "kicked by the administrator",
                    KickReason::Moved => "user moved to another node",
                });
                session.on_kick(reason, &mut out);
                let _ = io.write(&mut out, log).await;
                return;
            }
            _ = wakeup => {
                step = session.on_wakeup(&mut out).await;
            }
            r = tokio::time::timeout(io.idle, io.read_input(framer.read_buf())) => match r {
                Err(_) => {
                    session.on_timeout(&mut out);
                    let _ = io.write(&mut out, log).await;
                    return;
                }
                Ok(Ok(0)) => return,
                Ok(Ok(_)) => framer.filled(),
                Ok(Err(e)) => {
                    tracing::debug!("read error: {e}");
                    return;
                }
            }
        }
    }
}

/// Awaits a session's command; if meanwhile the peer goes away, fires `cancel` so long work
/// stops early, and still awaits the command (which then ends soon): a command is never
/// dropped half done, its reply just goes nowhere.
async fn watched(cmd: impl Future<Output = Step>, stream: &Stream, cancel: &CancellationToken) -> Step {
    let mut cmd = std::pin::pin!(cmd);
    tokio::select! {
        biased;
        step = &mut cmd => return step,
        () = stream.peer_gone() => {
            tracing::debug!("peer gone during a command; cancelling it");
            cancel.cancel();
        }
    }
    cmd.await
}

/// The socket, its counters and its timeout.
struct Io {
    stream: Stream,
    /// The COMPRESS=DEFLATE layer, once the session asked for it ([`Step::Compress`]).
    zip: Option<Box<deflate::Deflate>>,
    idle: Duration,
    bytes_in: u64,
    bytes_out: u64,
    /// For the metrics' `service` label.
    service: Service,
}

impl Io {
    /// Reads input into `buf`: plain octets from the socket, or (COMPRESS) at most one
    /// inflated chunk; returns how many octets were added, 0 at end of input. Cancel-safe
    /// (the driver's `select!` may drop it): state changes only after an await completes.
    /// Wire octets are counted in `bytes_in`.
    async fn read_input(&mut self, buf: &mut bytes::BytesMut) -> io::Result<usize> {
        let Some(z) = self.zip.as_mut() else {
            let n = self.stream.read_buf(buf).await?;
            self.bytes_in += n as u64;
            return Ok(n);
        };
        // Bounded: every round either returns or waits for the socket, which ends at EOF.
        loop {
            if z.pending() {
                let n = z.inflate(buf)?;
                if n > 0 {
                    return Ok(n);
                }
            }
            let n = self.stream.read_buf(z.read_buf()).await?;
            if n == 0 {
                return Ok(0);
            }
            self.bytes_in += n as u64;
            let made = z.inflate(buf)?;
            if made > 0 {
                return Ok(made);
            }
        }
    }

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
        let pieces = out.take();
        let stream = &mut self.stream;
        if let Some(z) = self.zip.as_mut() {
            let written = tokio::time::timeout(self.idle, write_deflated(stream, z, &pieces)).await;
            return self.count(written);
        }
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
        self.count(written)
    }

    /// Adds a timed write's octets to `bytes_out`; a timeout is an error.
    fn count(&mut self, written: Result<io::Result<u64>, tokio::time::error::Elapsed>) -> io::Result<()> {
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

/// Writes `pieces` through the DEFLATE layer and ends with a sync flush, so the client can
/// inflate all of it at once (RFC 4978 §4). Compressed output is written whenever it
/// passes [`DIRECT_WRITE`] octets, and content is compressed in slices of that size, so a
/// large FETCH never needs its compressed form whole in memory. Returns the wire octets.
async fn write_deflated(
    stream: &mut Stream,
    z: &mut deflate::Deflate,
    pieces: &[Piece],
) -> io::Result<u64> {
    let mut wire = Vec::with_capacity(4096);
    let mut total = 0u64;
    for p in pieces {
        let data: &[u8] = match p {
            Piece::Line(_, l) => {
                z.deflate(l, &mut wire)?;
                b"\r\n"
            }
            Piece::Content(c) => c,
            Piece::ContentRange(c, r) => &c[r.clone()],
            Piece::Info(_) => continue,
        };
        for slice in data.chunks(DIRECT_WRITE) {
            z.deflate(slice, &mut wire)?;
            if wire.len() >= DIRECT_WRITE {
                stream.write_all(&wire).await?;
                total += wire.len() as u64;
                wire.clear();
            }
        }
    }
    z.flush(&mut wire)?;
    stream.write_all(&wire).await?;
    total += wire.len() as u64;
    stream.flush().await?;
    Ok(total)
}

/// Plain TCP, or TLS over it (after implicit TLS or STLS), or a Unix socket (LMTP).
enum Stream {
    Plain(TcpStream),
    /// Never upgraded to TLS.
    Unix(UnixStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// Only during an upgrade (or after a failed one).
    Gone,
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "stream gone")
}

impl Stream {
    /// Resolves when the peer has closed the connection (FIN, or an error such as a reset),
    /// judged without consuming input by peeking at the TCP socket; never resolves while
    /// input is pending (a pipelined command, or TLS records such as a `close_notify`
    /// that a FIN may follow unseen) or when there is no socket.
    async fn peer_gone(&self) {
        let tcp = match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
            // No peek on tokio's Unix sockets: a vanished peer is seen at the next read.
            Stream::Unix(_) | Stream::Gone => return std::future::pending().await,
        };
        match tcp.peek(&mut [0u8; 1]).await {
            Ok(0) | Err(_) => {}
            Ok(_) => std::future::pending().await,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
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
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Gone => Poll::Ready(Err(gone())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Gone => Poll::Ready(Err(gone())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Gone => Poll::Ready(Ok(())),
        }
    }
}

