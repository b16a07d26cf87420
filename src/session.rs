//! The contract between the connection driver ([`crate::conn`]) and the protocol sessions
//! ([`crate::pop3`], [`crate::imap`], [`crate::lmtp`]): a session is sans-IO. It gets complete lines and the
//! literal data it asked for, appends typed [`Piece`]s to an [`Output`], and answers with the
//! next [`Step`]; the driver owns the socket, TLS, timeouts and the protocol-log tee
//! (ARCHITECTURE.md, "Connection driver" and "Sessions").
//!
//! Also here: what a session is given when it starts ([`SessionEnv`]: its config
//! [`Snapshot`], the store, the [`Authenticator`], its endpoints), never the server's state.

use std::future::Future;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::auth::{failure_delay, AuthResult, Penalty, Secret, Users, MAX_AUTH_FAILURES};
use crate::config::Config;
use crate::protolog::LineKind;
use crate::service::Service;
pub use crate::sessions::KickReason;
use crate::store::Store;

/// What a session gets when its connection is accepted, and keeps until it ends: the config
/// snapshot of that moment (ARCHITECTURE.md, "Configuration and reload") and the TLS built
/// with it. Reloads build a new one; running sessions never see it.
pub struct Snapshot {
    pub config: Config,
    /// TLS for STARTTLS/STLS and the implicit-TLS listeners, built with this config.
    pub tls: tokio_rustls::TlsAcceptor,
}

impl Snapshot {
    /// Builds what a session needs from a validated config: the config itself and its TLS.
    pub fn build(config: Config) -> anyhow::Result<Snapshot> {
        let tls = crate::tls::server_config(&config)?;
        Ok(Snapshot {
            config,
            tls: tokio_rustls::TlsAcceptor::from(tls),
        })
    }
}

/// Everything a session may know about its connection and daemon (never the socket), as
/// narrow handles: a session holds what it uses and nothing of the server's own state
/// (mini-redis's `Handler` holds only `db`, `connection`, `shutdown`).
#[derive(Clone)]
pub struct SessionEnv {
    /// The config snapshot taken when the connection was accepted.
    pub snapshot: Arc<Snapshot>,
    /// The mail store users log in to.
    pub store: Arc<dyn Store>,
    /// Who verifies passwords (the daemon: its passwd-file [`Users`]).
    pub auth: Arc<dyn Authenticator>,
    /// The daemon's failed logins per client address, shared by POP3 and IMAP.
    pub penalty: Arc<Penalty>,
    /// The client's address (loopback peers may log in without TLS; logged by IMAP ID): on
    /// a PROXY listener the header's source, not the load balancer's.
    pub remote: SocketAddr,
    /// True from the start on implicit-TLS listeners; sessions track STLS themselves.
    pub tls: bool,
    /// The client reached the load balancer over TLS (a PROXY v2 header's SSL TLV): counts
    /// as TLS for plaintext logins, but the session itself still offers STARTTLS/STLS.
    pub proxy_tls: bool,
    /// Fired when the connection is going away (the peer closed it, or the daemon shuts
    /// down) while a command runs: long work on the blocking pool (SEARCH) stops early.
    pub cancel: CancellationToken,
    /// `[cluster]`: who owns a user (the login proxy); `None` on a single node.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// The connection came in on this node's cluster internal listener: the master login
    /// is accepted, and the session always serves locally (never proxies again).
    pub internal: bool,
    /// The session's protocol-log id (set by the driver through
    /// [`Session::set_session_id`]; the login proxy sends it to the owner).
    pub session_id: u64,
}

impl SessionEnv {
    /// Plaintext passwords are accepted on TLS, from loopback peers, or when the config says
    /// so (`auth.allow_plaintext`); and on a cluster internal listener, whose front node
    /// already applied its own rule to the client (README.md, "Cluster").
    pub fn plaintext_allowed(&self, tls: bool) -> bool {
        tls || self.proxy_tls
            || self.internal
            || self.remote.ip().to_canonical().is_loopback()
            || self.snapshot.config.auth.allow_plaintext
    }
}

/// The password checks a session needs. Implemented by the daemon's [`Users`]; tests may
/// implement it with a fixed table.
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
    /// Whether the users file has `user` (LMTP recipients); `Err` when it cannot be read.
    /// May read a file: call it off the async runtime.
    fn user_exists(&self, users_file: &Path, user: &str) -> Result<bool, String>;
}

impl Authenticator for Users {
    fn authenticate<'a>(
        &'a self,
        users_file: &'a Path,
        user: &'a str,
        password: &'a Secret<String>,
    ) -> Pin<Box<dyn Future<Output = AuthResult> + Send + 'a>> {
        Box::pin(Users::authenticate(self, users_file, user, password))
    }
    fn plain_password(&self, users_file: &Path, user: &str) -> Option<Secret<String>> {
        Users::plain_password(self, users_file, user)
    }
    fn user_exists(&self, users_file: &Path, user: &str) -> Result<bool, String> {
        Users::user_exists(self, users_file, user)
    }
}

/// Why a login was refused (the protocol picks its reply text for each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefused {
    /// Wrong user or password: answered after the failure delay.
    Failed,
    /// As `Failed`, and it was the session's [`MAX_AUTH_FAILURES`]-th: say so and close.
    TooMany,
    /// The users database could not be read: try again later.
    TempFail,
}

/// Waits the client address's brute-force penalty ([`Penalty::reserve`]); every login
/// calls it before the password (or APOP digest) is checked.
pub async fn penalty_wait(env: &SessionEnv) {
    let wait = env.penalty.reserve(env.remote.ip());
    if !wait.is_zero() {
        crate::metrics::get().penalty("address", wait);
        tokio::time::sleep(wait).await;
    }
}

/// A password check as every login makes it: after the address's penalty
/// ([`penalty_wait`]), by the session's [`Authenticator`].
pub async fn authenticate(env: &SessionEnv, user: &str, password: &Secret<String>) -> AuthResult {
    penalty_wait(env).await;
    let file = &env.snapshot.config.auth.users_file;
    env.auth.authenticate(file, user, password).await
}

/// A SASL PLAIN login whose authcid is the cluster's master user
/// ([`crate::cluster::internal::MASTER_USER`]): succeeds as `authz` only on an internal
/// listener with the cluster secret, for a user of the users file. Anywhere else it is a
/// failed login exactly as a wrong password (the same penalty wait first).
pub async fn master_login(env: &SessionEnv, authz: &str, password: &Secret<String>) -> AuthResult {
    penalty_wait(env).await;
    let ok = match (&env.cluster, env.internal) {
        (Some(c), true) => {
            crate::cluster::internal::secret_matches(c.settings(), password.expose())
        }
        _ => false,
    };
    if !ok || authz.is_empty() {
        return AuthResult::Failed;
    }
    let (auth, file, user) = (env.auth.clone(), env.snapshot.config.auth.users_file.clone(), authz.to_string());
    match tokio::task::spawn_blocking(move || auth.user_exists(&file, &user)).await {
        Ok(Ok(true)) => AuthResult::Ok {
            user: authz.to_string(),
        },
        Ok(Ok(false)) => AuthResult::Failed,
        Ok(Err(e)) => AuthResult::TempFail(e),
        Err(e) => AuthResult::TempFail(e.to_string()),
    }
}

/// The end of a password check that every login shares, POP3 and IMAP alike: a failure is
/// counted in `failures` and in the address's [`Penalty`], recorded as a `*` protocol-log
/// record and a daemon-log line (`authentication failed: rip=<address> ...`, what the
/// fail2ban filter in `contrib/fail2ban` reads), and answered only after [`failure_delay`]
/// (the same whether or not the user exists); the [`MAX_AUTH_FAILURES`]-th gives
/// [`LoginRefused::TooMany`]. A temporary failure is recorded and reported in the daemon
/// log. A success forgets the address's failures. `shown` is the user name as the protocol
/// prints it. Success (the canonical user name) is recorded by the caller once the login is
/// complete.
pub async fn login_result(
    env: &SessionEnv,
    result: AuthResult,
    failures: &mut u32,
    shown: &str,
    mechanism: &str,
    service: Service,
    out: &mut Output,
) -> Result<String, LoginRefused> {
    let ip = env.remote.ip();
    let metrics = crate::metrics::get();
    match result {
        AuthResult::Ok { user } => {
            metrics.login(service, mechanism, "ok");
            env.penalty.succeeded(ip);
            Ok(user)
        }
        AuthResult::Failed => {
            metrics.login(service, mechanism, "failed");
            *failures += 1;
            let recent = env.penalty.failed(ip);
            out.info(format!(
                "authentication failed: user={shown} mechanism={mechanism}"
            ));
            // The address first: `shown` is the client's text and must not be able to
            // put another address where a log filter looks for it.
            tracing::warn!(
                "authentication failed: rip={} mechanism={mechanism} session_failures={} \
                 address_failures={recent} user=<{shown}>",
                ip.to_canonical(),
                *failures
            );
            let delay = failure_delay(*failures);
            metrics.penalty("session", delay);
            tokio::time::sleep(delay).await;
            if *failures >= MAX_AUTH_FAILURES {
                Err(LoginRefused::TooMany)
            } else {
                Err(LoginRefused::Failed)
            }
        }
        AuthResult::TempFail(why) => {
            metrics.login(service, mechanism, "tempfail");
            tracing::warn!(user = %shown, mechanism, "authentication temporarily failed: {why}");
            out.info(format!(
                "authentication failed (temporary): user={shown} mechanism={mechanism}"
            ));
            Err(LoginRefused::TempFail)
        }
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
    /// IMAP COMPRESS=DEFLATE (RFC 4978): flush the output (the tagged OK goes out plain),
    /// then compress everything written and inflate everything read from here on,
    /// input already buffered included; then read the next line.
    Compress,
    /// IMAP IDLE (RFC 2177): read a line (`DONE`) as with `ReadLine`, and meanwhile call
    /// [`Session::on_wakeup`] whenever [`Session::idle_watch`] changes.
    Idle,
    /// Flush the output and close the connection.
    Close,
    /// The login was proxied (`crate::cluster::proxy`): flush the output, then relay the
    /// connection to [`Session::take_relay`]'s backend until either side closes.
    Relay,
    /// The command is not finished: call [`Session::on_continue`] again, writing the output
    /// first once it is over the flush threshold (so a large IMAP FETCH is sent in pieces
    /// instead of being built whole in memory).
    Continue,
}

/// What the literal data handed to [`Session::on_literal`] is of the literal the client
/// announced, so the protocol log records a literal read in pieces (a streamed IMAP APPEND)
/// as it records one read whole: level 4 one `<literal N octets>` summary with the first
/// piece, level 5 the content (whose records do not depend on the pieces).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiteralPiece {
    /// The whole literal (or a piece logged as if it were one).
    Whole,
    /// The first piece of a literal of `total` octets.
    First { total: u64 },
    /// A later piece.
    Rest,
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
    /// The bytes the pieces put on the wire (tests; the driver writes the pieces itself).
    #[cfg(any(test, feature = "test-support"))]
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
    /// Octets the pieces will take on the wire (the driver's flush threshold).
    pub fn wire_len(&self) -> usize {
        self.wire_len
    }
    /// Takes the pieces out, leaving the output empty (the driver, when it writes).
    pub fn take(&mut self) -> Vec<Piece> {
        self.wire_len = 0;
        std::mem::take(&mut self.pieces)
    }
}

/// A protocol session as the driver sees it (POP3, IMAP4 and LMTP).
pub trait Session: Send {
    /// Maximum length of the next line including CRLF; asked before every line, so it may
    /// depend on the state (e.g. a SASL response may be longer than a command).
    fn line_limit(&self) -> usize;
    /// Whether the client has logged in. Asked by the driver before every wait for input:
    /// until then the connection is under the login limits (`limits.login_idle_timeout_secs`
    /// and the `limits.login_timeout_secs` deadline from the accept) instead of the
    /// service's idle timeout. Required, so no protocol is exempt by accident.
    fn logged_in(&self) -> bool;
    /// The user the session authenticated as, as the users file spells the name, once it
    /// has: the protocol log's per-user logging (`... Protocol Log Users`) decides then
    /// whether the session's held records are written. Asked after every command while
    /// the log holds records ([`crate::protolog::SessionLog::holding`]).
    fn log_user(&self) -> Option<&str> {
        None
    }

    /// The protocol state as `mailserver_sessions` labels it (one of
    /// `crate::metrics::states(service)`), asked after every command.
    fn state_name(&self) -> &'static str {
        if self.logged_in() {
            "authenticated"
        } else {
            "not_authenticated"
        }
    }
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
    /// Whether the next line is message content (LMTP DATA, dot-stuffed): the protocol log
    /// records it as content (level 5 the lines, level 4 one `<literal N octets>` summary
    /// once the session says content has ended), never as a command line. Asked before and
    /// after `on_line`.
    fn line_is_content(&self) -> bool {
        false
    }
    /// Whether the literal about to be read (asked for with [`Step::ReadLiteral`]) holds a
    /// secret (an IMAP `LOGIN` password sent as a literal): the log then gets one
    /// [`LineKind::Secret`] record `***` instead of the content. Asked before `on_literal`.
    fn literal_is_secret(&self) -> bool {
        false
    }
    /// Where the literal data about to be read (asked for with [`Step::ReadLiteral`]) sits
    /// in the literal the client announced, for the protocol log: a literal read in pieces
    /// is logged as one. Asked before `on_literal`.
    fn literal_piece(&self) -> LiteralPiece {
        LiteralPiece::Whole
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
    /// No input for the idle timeout, or (before login) the login idle limit or deadline
    /// passed; the connection closes after this output.
    fn on_timeout(&mut self, out: &mut Output);
    /// The daemon is shutting down; the connection closes after this output.
    fn on_shutdown(&mut self, out: &mut Output);
    /// The session was kicked: by an administrator (`mailserver kick`), or because another
    /// node of the cluster owns its user now ([`KickReason::Moved`]); the connection closes
    /// after this output, with no QUIT-time work, as at shutdown.
    fn on_kick(&mut self, reason: KickReason, out: &mut Output) {
        let _ = reason;
        self.on_shutdown(out)
    }
    /// The user (once logged in) and the state as `mailserver who` shows them
    /// (`crate::sessions`); asked before every wait for input.
    fn who(&self) -> (Option<&str>, &str);
    /// While the step is [`Step::Idle`]: a counter the driver watches besides the socket
    /// (IMAP IDLE: `Mailbox::changes`), asked once when IDLE begins. A change relative to
    /// the version the receiver has seen wakes the session (so a session that synced at
    /// IDLE start marks it seen first). `None` means only input wakes the session.
    fn idle_watch(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
    /// While the step is [`Step::Idle`]: also wake the session this often, watched counter
    /// or not (IMAP: `imap.idle_check_interval_secs`, for changes inotify cannot see, such
    /// as another host's on a shared file system). Asked once when IDLE begins; `None`: no
    /// timer.
    fn idle_check(&self) -> Option<std::time::Duration> {
        None
    }
    /// After [`Step::Continue`]: produce the next part of the unfinished command.
    /// After [`Step::Relay`]: the owner's connection the session logged in to.
    fn take_relay(&mut self) -> Option<Box<crate::cluster::proxy::Backend>> {
        None
    }

    /// The session's protocol-log id, given once before the greeting.
    fn set_session_id(&mut self, _id: u64) {}

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

#[cfg(test)]
mod tests {
    use super::*;

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
