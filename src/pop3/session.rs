//! The POP3 session: one state enum carrying each state's data (ARCHITECTURE.md, "POP3"), commands
//! checked against the state in one place (`allowed`), then one `match` dispatch.
//!
//! RFC 1939 §3: AUTHORIZATION → TRANSACTION → UPDATE. The maildrop is a snapshot taken at
//! login (one `Mailbox::sync` into a fresh [`View`]); `DELE` only marks; `QUIT` in
//! TRANSACTION applies the marks (`Mailbox::remove`) and commits `\Seen` for messages sent
//! with `RETR` (not `TOP`). As in Dovecot, `\Seen` is committed only at `QUIT`: a dropped
//! connection, an idle timeout or a server shutdown applies neither deletions nor `\Seen`, so
//! the next session sees the maildrop exactly as before. `RSET` clears both sets (Dovecot
//! does the same).
//!
//! Authentication: `USER`/`PASS`, `APOP` (RFC 1939 §7; only for users whose password is
//! stored `{PLAIN}`), `AUTH PLAIN` (RFC 5034 §4, RFC 4616), `STLS` (RFC 2595 §4). Plaintext
//! mechanisms, APOP with them, are refused without TLS from non-loopback peers unless the
//! config allows them; there the greeting carries no APOP timestamp.
//! Failures look the same whether or not the user exists and are answered after
//! [`crate::auth::failure_delay`]. Response codes per RFC 2449 §8 and RFC 3206 (`[IN-USE]`, `[AUTH]`,
//! `[SYS/TEMP]`).
//!
//! Store calls run on the blocking pool (`spawn_blocking`); store errors are logged in the
//! daemon log and the client gets a fixed `-ERR [SYS/TEMP]` text.
//!
//! Ten consecutive `-ERR` replies (bad commands, wrong state, failed logins, ...) end the
//! session with `-ERR Too many bad commands.`; any `+OK` resets the count.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use base64::Engine;
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

use super::command::{self, Command};
use super::reply;
use crate::auth::{AuthResult, Secret};
use crate::session::{
    authenticate, login_result, master_login, penalty_wait, KickReason, LoginRefused, Output,
    Session, SessionEnv, Step,
};
use crate::store::{self, ErrorKind, FlagOp, Flags, Mailbox, View};

/// RFC 2449 §4: command lines are at most 255 octets including CRLF.
pub const LINE_LIMIT: usize = 255;
/// Limit for an `AUTH` continuation line (a SASL response, not a command; Dovecot's
/// login processes accept long SASL lines too).
pub const SASL_LINE_LIMIT: usize = 8192;
/// Consecutive `-ERR` replies after which the session is closed.
pub const MAX_BAD_COMMANDS: u32 = 10;

const PLAINTEXT_DISALLOWED: &str =
    "[AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.";
const AUTH_FAILED: &str = "[AUTH] Authentication failed.";
/// The reply to the session's last allowed failure ([`crate::auth::MAX_AUTH_FAILURES`]).
const AUTH_FAILED_CLOSING: &str =
    "[AUTH] Authentication failed. Too many failed logins, closing the connection.";
const AUTH_TEMPFAIL: &str = "[SYS/TEMP] Temporary authentication failure.";
const STORE_TEMPFAIL: &str = "[SYS/TEMP] Temporary storage failure.";
const IN_USE: &str = "[IN-USE] Mailbox is locked by another POP3 session.";

/// The RFC 1939 states, each with the data it needs.
enum State {
    /// Before login. `user` is the argument of an accepted `USER`; `sasl` is set while an
    /// `AUTH PLAIN` waits for its continuation line.
    Authorization { user: Option<String>, sasl: bool },
    /// Logged in, with the maildrop snapshot and the marks to apply at `QUIT`.
    Transaction(Box<Maildrop>),
    /// After `QUIT` (or a fatal error): nothing more is read.
    Update,
}

/// What a logged-in session holds.
struct Maildrop {
    /// The canonical user name (as the users file spells it).
    user: String,
    mailbox: Arc<dyn Mailbox>,
    /// The snapshot taken at login; sequence number n is `view.messages[n - 1]`.
    view: View,
    /// `DELE` marks, applied only at `QUIT`.
    deleted: Vec<bool>,
    /// Messages sent with `RETR`: `\Seen` is set on them at `QUIT`.
    retrieved: Vec<bool>,
    /// Held while the session lives; dropping it unlocks the maildrop.
    _lock: MaildropLock,
}

/// The maildrops locked by POP3 sessions right now: one table per daemon, shared by its
/// POP3 sessions (and nothing else), so a second session for a user gets `-ERR [IN-USE]`.
#[derive(Debug, Default)]
pub struct MaildropLocks(Mutex<HashSet<String>>);

impl MaildropLocks {
    /// Whether `user`'s maildrop is locked now (tests observe the table through this).
    #[cfg(any(test, feature = "test-support"))]
    pub fn contains(&self, user: &str) -> bool {
        self.table().contains(user)
    }

    /// Whether no maildrop is locked now.
    #[cfg(any(test, feature = "test-support"))]
    pub fn is_empty(&self) -> bool {
        self.table().is_empty()
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.0.lock().unwrap_or_else(|poison| poison.into_inner())
    }
}

/// The exclusive POP3 lock on a user's maildrop, released on drop however the session ends.
struct MaildropLock {
    locks: Arc<MaildropLocks>,
    user: String,
}

impl MaildropLock {
    /// `None` if another session holds it (no waiting: RFC 1939 §8 allows refusing at once,
    /// as Dovecot does).
    fn acquire(locks: &Arc<MaildropLocks>, user: &str) -> Option<MaildropLock> {
        if !locks.table().insert(user.to_string()) {
            return None;
        }
        Some(MaildropLock {
            locks: locks.clone(),
            user: user.to_string(),
        })
    }
}

impl Drop for MaildropLock {
    fn drop(&mut self) {
        self.locks.table().remove(&self.user);
    }
}

/// A command handler's result: the next step, or the text of an `-ERR` reply.
type Handled = Result<Step, String>;

/// One POP3 session (the driver in `conn.rs` owns the socket).
pub struct Pop3Session {
    env: SessionEnv,
    /// The daemon's table of locked maildrops (taken at login).
    locks: Arc<MaildropLocks>,
    /// TLS is active (implicit, or after `STLS`).
    tls: bool,
    state: State,
    /// The APOP challenge of the greeting, `<pid.nonce@hostname>` (RFC 1939 §7).
    timestamp: String,
    /// Failed logins so far, for [`crate::auth::failure_delay`].
    auth_failures: u32,
    /// Consecutive `-ERR` replies.
    bad_in_a_row: u32,
    /// The next line follows an `AUTH mechanism` that was refused: the client may send its
    /// SASL response anyway, and it must not reach the protocol log.
    redact_next: bool,
    /// The user this session authenticated as (the users file's name), set at the
    /// authentication success even when the maildrop then is in use: the protocol log's
    /// per-user logging (`Session::log_user`).
    authenticated: Option<String>,
    /// The login was proxied to the owner ([`Step::Relay`]): its connection.
    relay: Option<Box<crate::cluster::proxy::Backend>>,
}

impl Pop3Session {
    pub fn new(env: SessionEnv, locks: Arc<MaildropLocks>) -> Pop3Session {
        let timestamp = format!(
            "<{}.{:016x}@{}>",
            std::process::id(),
            rand::random::<u64>(),
            env.snapshot.config.server.hostname
        );
        Pop3Session {
            tls: env.tls,
            env,
            locks,
            state: State::Authorization {
                user: None,
                sasl: false,
            },
            timestamp,
            auth_failures: 0,
            bad_in_a_row: 0,
            redact_next: false,
            authenticated: None,
            relay: None,
        }
    }

    fn plaintext_allowed(&self) -> bool {
        self.env.plaintext_allowed(self.tls)
    }

    fn users_file(&self) -> std::path::PathBuf {
        self.env.snapshot.config.auth.users_file.clone()
    }

    async fn handle(&mut self, line: &[u8], out: &mut Output) -> Handled {
        if let State::Authorization { sasl: true, .. } = self.state {
            self.state = State::Authorization {
                user: None,
                sasl: false,
            };
            return self.sasl_response(line, out).await;
        }
        let cmd = command::parse(line).map_err(|e| e.reply_text())?;
        if !allowed(&self.state, &cmd) {
            return Err(match (&self.state, &cmd) {
                (State::Authorization { .. }, _) => "Unknown command in AUTHORIZATION state.",
                (_, Command::Stls) => "STLS is only valid before authentication.",
                _ => "Unknown command in TRANSACTION state.",
            }
            .to_string());
        }
        match cmd {
            Command::Capa => {
                reply::listing(out, "Capability list follows", self.capabilities());
                Ok(Step::ReadLine)
            }
            Command::Quit => self.quit(out).await,
            Command::User(u) => self.user(u, out),
            Command::Pass(p) => self.pass(p, out).await,
            Command::Apop { user, digest } => self.apop(user, digest, out).await,
            Command::Auth { mechanism, initial } => self.auth(mechanism, initial, out).await,
            Command::Stls => self.stls(out),
            // The maildrop commands (`Command::is_transaction`).
            _ => {
                let State::Transaction(md) = &mut self.state else {
                    unreachable!("allowed() checked the state");
                };
                md.handle(cmd, out).await
            }
        }
    }

    /// RFC 2449 §5 (the list in ARCHITECTURE.md, "POP3"); USER/SASL only where plaintext auth is allowed,
    /// STLS only without TLS, none of the three after login.
    fn capabilities(&self) -> Vec<&'static str> {
        let before_login = matches!(self.state, State::Authorization { .. });
        let mut caps = vec!["TOP", "UIDL"];
        if before_login && self.plaintext_allowed() {
            caps.push("USER");
            caps.push("SASL PLAIN");
        }
        if before_login && !self.tls {
            caps.push("STLS");
        }
        caps.extend([
            "PIPELINING",
            "RESP-CODES",
            "AUTH-RESP-CODE",
            "EXPIRE NEVER",
            "IMPLEMENTATION mailserver",
        ]);
        caps
    }

    fn user(&mut self, name: String, out: &mut Output) -> Handled {
        if !self.plaintext_allowed() {
            return Err(PLAINTEXT_DISALLOWED.into());
        }
        self.state = State::Authorization {
            user: Some(name),
            sasl: false,
        };
        reply::ok(out, "");
        Ok(Step::ReadLine)
    }

    async fn pass(&mut self, password: Secret<String>, out: &mut Output) -> Handled {
        if !self.plaintext_allowed() {
            return Err(PLAINTEXT_DISALLOWED.into());
        }
        let State::Authorization {
            user: Some(user), ..
        } = &self.state
        else {
            return Err("No username given.".into());
        };
        let user = user.clone();
        self.state = State::Authorization {
            user: None,
            sasl: false,
        };
        let result = authenticate(&self.env, &user, &password).await;
        self.login(&user, "USER", result, out).await
    }

    async fn apop(&mut self, user: String, digest: Secret<String>, out: &mut Output) -> Handled {
        // APOP proves knowledge of the stored plaintext password: refused where PASS is.
        if !self.plaintext_allowed() {
            return Err(PLAINTEXT_DISALLOWED.into());
        }
        self.state = State::Authorization {
            user: None,
            sasl: false,
        };
        penalty_wait(&self.env).await;
        let auth = self.env.auth.clone();
        let file = self.users_file();
        let u = user.clone();
        let secret = tokio::task::spawn_blocking(move || auth.plain_password(&file, &u))
            .await
            .unwrap_or(None);
        let result = match secret {
            Some(pw) => {
                let mut md5 = Md5::new();
                md5.update(self.timestamp.as_bytes());
                md5.update(pw.expose().as_bytes());
                let expected: String = md5.finalize().iter().map(|b| format!("{b:02x}")).collect();
                if bool::from(expected.as_bytes().ct_eq(digest.expose().as_bytes())) {
                    AuthResult::Ok { user: user.clone() }
                } else {
                    AuthResult::Failed
                }
            }
            None => AuthResult::Failed,
        };
        self.login(&user, "APOP", result, out).await
    }

    async fn auth(
        &mut self,
        mechanism: Option<String>,
        initial: Option<Secret<String>>,
        out: &mut Output,
    ) -> Handled {
        self.state = State::Authorization {
            user: None,
            sasl: false,
        };
        let Some(mechanism) = mechanism else {
            let mechs: &[&str] = if self.plaintext_allowed() {
                &["PLAIN"]
            } else {
                &[]
            };
            reply::listing(out, "Supported mechanisms follow", mechs);
            return Ok(Step::ReadLine);
        };
        if mechanism != "PLAIN" {
            return Err("Unsupported authentication mechanism.".into());
        }
        if !self.plaintext_allowed() {
            return Err(PLAINTEXT_DISALLOWED.into());
        }
        match initial {
            Some(resp) => self.sasl_plain(resp.expose().as_bytes(), out).await,
            None => {
                // RFC 5034 §4: an empty challenge is "+ ".
                out.status(b"+ ".to_vec());
                self.state = State::Authorization {
                    user: None,
                    sasl: true,
                };
                Ok(Step::ReadLine)
            }
        }
    }

    /// The continuation line of `AUTH PLAIN`.
    async fn sasl_response(&mut self, line: &[u8], out: &mut Output) -> Handled {
        if line == b"*" {
            // RFC 5034 §4: the client cancelled; the server MUST reply -ERR.
            return Err("Authentication aborted by client.".into());
        }
        self.sasl_plain(line, out).await
    }

    /// Decodes and checks a PLAIN response (RFC 4616 §2: `[authzid] NUL authcid NUL passwd`).
    async fn sasl_plain(&mut self, b64: &[u8], out: &mut Output) -> Handled {
        let decoded = if b64 == b"=" {
            Vec::new()
        } else {
            match base64::engine::general_purpose::STANDARD.decode(b64) {
                Ok(d) => d,
                Err(_) => return Err("Invalid base64 data in SASL response.".into()),
            }
        };
        let decoded = Secret::new(decoded);
        let parts: Vec<&[u8]> = decoded.expose().split(|&b| b == 0).collect();
        let (authz, authc, pw) = match parts[..] {
            [z, c, p] => (z, c, p),
            _ => return self.login("", "PLAIN", AuthResult::Failed, out).await,
        };
        let (Ok(authz), Ok(user), Ok(pw)) = (
            std::str::from_utf8(authz),
            std::str::from_utf8(authc),
            std::str::from_utf8(pw),
        ) else {
            return self.login("", "PLAIN", AuthResult::Failed, out).await;
        };
        let user = user.to_string();
        if user == crate::cluster::internal::MASTER_USER {
            // The cluster's master login (README.md, "Cluster"): only on an internal
            // listener; anywhere else a failed login like a wrong password.
            let pw = Secret::new(pw.to_string());
            let result = master_login(&self.env, authz, &pw).await;
            return self.login(authz, "PLAIN", result, out).await;
        }
        if user.is_empty() || (!authz.is_empty() && authz != user) {
            // No proxy authorization: acting as someone else is refused like a bad password.
            return self.login(&user, "PLAIN", AuthResult::Failed, out).await;
        }
        let pw = Secret::new(pw.to_string());
        let result = authenticate(&self.env, &user, &pw).await;
        self.login(&user, "PLAIN", result, out).await
    }

    /// The common end of every login: log, delay failures, lock and open the maildrop.
    async fn login(
        &mut self,
        user: &str,
        mechanism: &str,
        result: AuthResult,
        out: &mut Output,
    ) -> Handled {
        let shown = printable(user);
        let failures = &mut self.auth_failures;
        let user = match login_result(&self.env, result, failures, &shown, mechanism, crate::service::Service::Pop3, out).await {
            Ok(user) => user,
            Err(LoginRefused::Failed) => return Err(AUTH_FAILED.into()),
            Err(LoginRefused::TooMany) => {
                reply::err(out, AUTH_FAILED_CLOSING);
                return Ok(Step::Close);
            }
            Err(LoginRefused::TempFail) => return Err(AUTH_TEMPFAIL.into()),
        };
        out.info(format!(
            "authentication succeeded: user={} mechanism={mechanism}",
            printable(&user)
        ));
        self.authenticated = Some(user.clone());
        if let Some(step) = self.proxy_login(&user, out).await {
            return step;
        }
        let Some(lock) = MaildropLock::acquire(&self.locks, &user) else {
            return Err(IN_USE.into());
        };
        let store = self.env.store.clone();
        let u = user.clone();
        let opened = blocking(move || {
            let mailbox = store.user(&u)?.open("INBOX")?;
            let mut view = View::default();
            mailbox.sync(&mut view)?;
            Ok((mailbox, view))
        })
        .await;
        let (mailbox, view) = match opened {
            Ok(x) => x,
            Err(e) => {
                store_failure(&user, "opening the maildrop", &e);
                return Err(STORE_TEMPFAIL.into());
            }
        };
        let n = view.messages.len();
        self.state = State::Transaction(Box::new(Maildrop {
            user,
            mailbox,
            view,
            deleted: vec![false; n],
            retrieved: vec![false; n],
            _lock: lock,
        }));
        reply::ok(out, "Logged in.");
        Ok(Step::ReadLine)
    }

    /// The cluster's login proxy (README.md, "Cluster"): `None` to serve locally (no
    /// cluster, an internal listener, or this node comes first), else relay to the owner or
    /// refuse for now. The maildrop is neither locked nor opened here.
    async fn proxy_login(&mut self, user: &str, out: &mut Output) -> Option<Handled> {
        use crate::cluster::proxy::{route, Client, Route};
        let cluster = self.env.cluster.clone()?;
        if self.env.internal || cluster.owns(user) {
            return None;
        }
        let client = Client {
            service: crate::service::Service::Pop3,
            remote: self.env.remote,
            tls: self.tls || self.env.proxy_tls,
            session_id: self.env.session_id,
        };
        match route(&cluster, user, client).await {
            Route::Local => None,
            Route::Proxied(backend) => {
                self.relay = Some(backend);
                reply::ok(out, "Logged in.");
                Some(Ok(Step::Relay))
            }
            Route::Unavailable => {
                out.info(format!(
                    "login not proxied: user={}: no node of the cluster could be reached",
                    printable(user)
                ));
                Some(Err(
                    "[SYS/TEMP] The mailbox server is not reachable now, try again later.".into(),
                ))
            }
        }
    }

    fn stls(&mut self, out: &mut Output) -> Handled {
        if self.tls {
            return Err("TLS is already active.".into());
        }
        reply::ok(out, "Begin TLS negotiation now.");
        Ok(Step::StartTls)
    }

    async fn quit(&mut self, out: &mut Output) -> Handled {
        let state = std::mem::replace(&mut self.state, State::Update);
        let State::Transaction(md) = state else {
            reply::ok(out, "Logging out.");
            return Ok(Step::Close);
        };
        // RFC 1939 §6: the UPDATE state.
        let seen: Vec<u32> = md
            .view
            .messages
            .iter()
            .enumerate()
            .filter(|(i, m)| md.retrieved[*i] && !md.deleted[*i] && !m.flags.contains(Flags::SEEN))
            .map(|(_, m)| m.uid)
            .collect();
        let deleted: Vec<u32> = md
            .view
            .messages
            .iter()
            .enumerate()
            .filter(|(i, _)| md.deleted[*i])
            .map(|(_, m)| m.uid)
            .collect();
        let n = deleted.len();
        let mailbox = md.mailbox.clone();
        let applied = blocking(move || {
            if !seen.is_empty() {
                mailbox.store_flags(&seen, FlagOp::Add, Flags::SEEN, &[])?;
            }
            if !deleted.is_empty() {
                mailbox.remove(&deleted)?;
            }
            Ok(())
        })
        .await;
        match applied {
            Ok(()) => reply::ok(out, &format!("Logging out, {n} messages deleted.")),
            Err(e) => {
                store_failure(&md.user, "applying QUIT", &e);
                // RFC 1939 §6: report that not every deletion happened.
                reply::err(out, "[SYS/TEMP] Some deleted messages were not removed.");
            }
        }
        // `md` (and its lock) drops here, after the changes are on disk.
        drop(md);
        Ok(Step::Close)
    }
}

impl Maildrop {
    /// TRANSACTION-state commands over the snapshot.
    async fn handle(&mut self, cmd: Command, out: &mut Output) -> Handled {
        match cmd {
            Command::Stat => {
                let (n, size) = self.totals();
                reply::ok(out, &format!("{n} {size}"));
            }
            Command::List(None) => {
                let (n, size) = self.totals();
                let lines: Vec<String> = self
                    .live()
                    .map(|(seq, m)| format!("{seq} {}", m.size))
                    .collect();
                reply::listing(out, &format!("{n} messages ({size} octets)"), lines);
            }
            Command::List(Some(seq)) => {
                let i = self.index(seq)?;
                reply::ok(out, &format!("{seq} {}", self.view.messages[i].size));
            }
            Command::Uidl(None) => {
                let lines: Vec<String> = self
                    .live()
                    .map(|(seq, m)| format!("{seq} {}", self.uidl(m.uid)))
                    .collect();
                reply::listing(out, "", lines);
            }
            Command::Uidl(Some(seq)) => {
                let i = self.index(seq)?;
                let uid = self.view.messages[i].uid;
                reply::ok(out, &format!("{seq} {}", self.uidl(uid)));
            }
            Command::Retr(seq) => {
                let i = self.index(seq)?;
                let data = self.read(i).await?;
                let size = self.view.messages[i].size;
                reply::message_shared(out, &format!("{size} octets"), data);
                self.retrieved[i] = true;
            }
            Command::Top(seq, lines) => {
                let i = self.index(seq)?;
                let data = self.read(i).await?;
                reply::message(out, "", reply::top(&data, lines));
            }
            Command::Dele(seq) => {
                let i = self.index(seq)?;
                self.deleted[i] = true;
                reply::ok(out, "Marked to be deleted.");
            }
            Command::Noop => reply::ok(out, ""),
            Command::Rset => {
                self.deleted.fill(false);
                self.retrieved.fill(false);
                let (n, size) = self.totals();
                reply::ok(out, &format!("maildrop has {n} messages ({size} octets)"));
            }
            _ => unreachable!("only TRANSACTION commands are routed here"),
        }
        Ok(Step::ReadLine)
    }

    /// Undeleted messages with their sequence numbers.
    fn live(&self) -> impl Iterator<Item = (usize, &store::MessageMeta)> {
        self.view
            .messages
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.deleted[*i])
            .map(|(i, m)| (i + 1, m))
    }

    fn totals(&self) -> (usize, u64) {
        self.live()
            .fold((0, 0), |(n, size), (_, m)| (n + 1, size + m.size))
    }

    /// Index of an existing, undeleted message (RFC 1939 §5: deleted messages are gone).
    fn index(&self, seq: u32) -> Result<usize, String> {
        let i = (seq as usize).wrapping_sub(1);
        if seq == 0 || i >= self.view.messages.len() {
            return Err(format!("There's no message {seq}."));
        }
        if self.deleted[i] {
            return Err("Message is deleted.".into());
        }
        Ok(i)
    }

    /// Dovecot's `%08Xu%08Xv` exactly as Dovecot prints it: its `X` modifier formats with
    /// `%llx`, so the hex digits are lowercase (a client moving from Dovecot compares the
    /// strings as they are; uppercase would make it download everything again).
    fn uidl(&self, uid: u32) -> String {
        format!("{:08x}{:08x}", uid, self.view.uid_validity)
    }

    async fn read(&self, i: usize) -> Result<Arc<[u8]>, String> {
        let uid = self.view.messages[i].uid;
        let mailbox = self.mailbox.clone();
        match blocking(move || mailbox.read(uid)).await {
            Ok(d) => Ok(d),
            Err(e) if e.kind == ErrorKind::NotFound => {
                tracing::info!(user = %self.user, uid, "message vanished from the maildrop: {e}");
                Err("Message is no longer available.".into())
            }
            Err(e) => {
                store_failure(&self.user, "reading a message", &e);
                Err(STORE_TEMPFAIL.into())
            }
        }
    }
}

/// The single state check (RFC 1939 §§4-6, RFC 2449 §5, RFC 2595 §4, RFC 5034 §4).
fn allowed(state: &State, cmd: &Command) -> bool {
    match state {
        State::Authorization { .. } => matches!(
            cmd,
            Command::User(_)
                | Command::Pass(_)
                | Command::Apop { .. }
                | Command::Auth { .. }
                | Command::Stls
                | Command::Capa
                | Command::Quit
        ),
        State::Transaction(_) => {
            cmd.is_transaction() || matches!(cmd, Command::Capa | Command::Quit)
        }
        State::Update => false,
    }
}

/// Runs a store call on the blocking pool.
async fn blocking<T, F>(f: F) -> store::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> store::Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(store::Error::new(
            ErrorKind::Internal,
            format!("store task failed: {e}"),
        ))
    })
}

/// Logs a store error in the daemon log; the client gets a fixed text.
fn store_failure(user: &str, what: &str, e: &store::Error) {
    tracing::error!(user = %printable(user), "POP3 store failure {what}: {e}");
}

/// A user name as it may appear in logs: printable ASCII, bounded.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .take(64)
        .collect()
}

impl Session for Pop3Session {
    fn logged_in(&self) -> bool {
        !matches!(self.state, State::Authorization { .. })
    }

    fn log_user(&self) -> Option<&str> {
        self.authenticated.as_deref()
    }

    fn take_relay(&mut self) -> Option<Box<crate::cluster::proxy::Backend>> {
        self.relay.take()
    }

    fn set_session_id(&mut self, id: u64) {
        self.env.session_id = id;
    }

    fn state_name(&self) -> &'static str {
        match self.state {
            State::Authorization { .. } => "authorization",
            State::Transaction(_) => "transaction",
            State::Update => "update",
        }
    }

    fn line_limit(&self) -> usize {
        match self.state {
            State::Authorization { sasl: true, .. } => SASL_LINE_LIMIT,
            _ => LINE_LIMIT,
        }
    }

    fn greeting(&mut self, out: &mut Output) {
        // RFC 1939 §7: the timestamp offers APOP, offered only where PASS is (as USER in CAPA).
        let hostname = &self.env.snapshot.config.server.hostname;
        let text = if self.plaintext_allowed() {
            format!("{hostname} ready. {}", self.timestamp)
        } else {
            format!("{hostname} ready.")
        };
        reply::ok(out, &text);
    }

    fn redact(&self, line: &[u8]) -> Option<Vec<u8>> {
        if self.redact_next || matches!(self.state, State::Authorization { sasl: true, .. }) {
            return Some(b"***".to_vec());
        }
        command::redact(line)
    }

    async fn on_line(&mut self, line: &[u8], out: &mut Output) -> Step {
        let awaits = !matches!(self.state, State::Authorization { sasl: true, .. })
            && command::auth_awaits_response(line);
        self.redact_next = false;
        let step = match self.handle(line, out).await {
            Ok(step) => {
                self.bad_in_a_row = 0;
                step
            }
            Err(text) => {
                reply::err(out, &text);
                self.bad_in_a_row += 1;
                Step::ReadLine
            }
        };
        // Refused (no `+ ` asked for the response): the next line is still redacted.
        self.redact_next = awaits && !matches!(self.state, State::Authorization { sasl: true, .. });
        self.check_bad(step, out)
    }

    async fn on_literal(&mut self, _data: Vec<u8>, out: &mut Output) -> Step {
        // POP3 never asks for literals.
        reply::err(out, "Unexpected literal.");
        Step::Close
    }

    fn on_too_long(&mut self, out: &mut Output) -> Step {
        if let State::Authorization { sasl: true, .. } = self.state {
            self.state = State::Authorization {
                user: None,
                sasl: false,
            };
        }
        reply::err(out, "Line too long.");
        self.bad_in_a_row += 1;
        self.check_bad(Step::ReadLine, out)
    }

    fn on_tls(&mut self) {
        self.tls = true;
        // RFC 2595 §4: forget anything learnt from the client before TLS.
        self.state = State::Authorization {
            user: None,
            sasl: false,
        };
    }

    fn on_timeout(&mut self, out: &mut Output) {
        reply::err(out, "Disconnected for inactivity.");
    }

    fn on_shutdown(&mut self, out: &mut Output) {
        reply::err(out, "Server shutting down.");
    }

    fn on_kick(&mut self, reason: KickReason, out: &mut Output) {
        match reason {
            KickReason::Admin => reply::err(out, "Disconnected by the administrator."),
            // RFC 3206 §4: a temporary condition; the marks are dropped, as on a lost
            // connection (no DELE applied), and the client's next login finds the new owner.
            KickReason::Moved => {
                reply::err(out, "[SYS/TEMP] This account moved to another node; reconnect.")
            }
        }
    }

    fn who(&self) -> (Option<&str>, &str) {
        match &self.state {
            State::Authorization { .. } => (None, "authorization"),
            State::Transaction(m) => (Some(m.user.as_str()), "transaction"),
            State::Update => (None, "update"),
        }
    }
}

impl Pop3Session {
    fn check_bad(&mut self, step: Step, out: &mut Output) -> Step {
        if self.bad_in_a_row >= MAX_BAD_COMMANDS && step != Step::Close {
            reply::err(out, "Too many bad commands.");
            return Step::Close;
        }
        step
    }
}
