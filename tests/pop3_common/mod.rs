//! Test support for the POP3 integration tests that run the driver in-process.
//!
//! [`Server::start`] serves POP3 through the daemon's own entry point (`server::serve`, as the
//! daemon runs it) on 127.0.0.1:0 with the REAL storage and users: `MaildirStore` rooted at
//! `data_dir/mail` and the daemon's `auth::Users` reading a passwd-file ([`users_text`]) in the
//! server's tempdir. Mail is dropped into `new/` as an MTA does ([`Server::deliver`]); what a
//! test checks afterwards is read back through the store or straight from the Maildir files.
//!
//! FAULT INJECTION ONLY: [`Backend::FaultInjection`] swaps in [`MemStore`], an in-memory
//! `Store` with a switch that makes its calls fail with `Temporary`, for the paths where the
//! store breaks (`-ERR [SYS/TEMP]`), which a healthy Maildir cannot produce on demand. Only
//! tests named for store failures use it. Temporary *auth* failure needs no double: a
//! missing users file is one (ARCHITECTURE.md, "Users and authentication").
//!
//! `mod`-included by several test crates, each using a different subset: `dead_code` is
//! allowed for the whole file rather than item by item.
#![allow(dead_code)]

#[path = "../common/wait.rs"]
pub mod wait;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use mailserver::auth::Users;
use mailserver::config::Config;
use mailserver::pop3::MaildropLocks;
use mailserver::protolog::ProtoLog;
use mailserver::server::{self, Bound, Handles};
use mailserver::service::Service;
use mailserver::session::{Authenticator, SessionEnv, Snapshot};
use mailserver::store::maildir::MaildirStore;
use mailserver::store::{
    self, Changes, ErrorKind, FlagOp, Flags, Mailbox, MailboxInfo, MailboxStatus, MessageMeta,
    Store, UserStore, View,
};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

#[path = "../common/test_config.rs"]
mod test_config;
use test_config::{LogValues, TestConfig};

/// Every network wait in the tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// In-memory store: FAULT INJECTION ONLY (see the module doc)

/// A TEST DOUBLE, not the real store: just what POP3 uses (open INBOX, sync, read,
/// store_flags, remove), with switches that make calls fail. Cheap to clone: clones share
/// the same mailboxes.
#[derive(Default, Clone)]
pub struct MemStore {
    boxes: Arc<Mutex<HashMap<String, Arc<MemMailbox>>>>,
    /// When set, opening a user's tree fails with `Temporary` (store-failure paths).
    pub fail: Arc<std::sync::atomic::AtomicBool>,
}

impl MemStore {
    pub fn new() -> MemStore {
        MemStore::default()
    }
    /// The INBOX of `user` (created empty on first use).
    pub fn inbox(&self, user: &str) -> Arc<MemMailbox> {
        self.boxes
            .lock()
            .unwrap()
            .entry(user.to_string())
            .or_insert_with(|| {
                Arc::new(MemMailbox {
                    inner: Mutex::new(Inner {
                        uid_validity: 1_700_000_000,
                        uid_next: 1,
                        msgs: BTreeMap::new(),
                    }),
                    changes: tokio::sync::watch::channel(0).0,
                    fail: Default::default(),
                })
            })
            .clone()
    }
    /// Adds a message (LF or CRLF input; stored with CRLF as the real store gives it).
    /// Tests call [`Server::deliver`], which routes here for fault-injection servers.
    pub fn deliver(&self, user: &str, text: &str) -> u32 {
        let crlf = text.replace("\r\n", "\n").replace('\n', "\r\n");
        let mb = self.inbox(user);
        let mut i = mb.inner.lock().unwrap();
        let uid = i.uid_next;
        i.uid_next += 1;
        i.msgs.insert(uid, (Flags::NONE, crlf.into_bytes()));
        uid
    }
}

pub struct Inner {
    pub uid_validity: u32,
    pub uid_next: u32,
    pub msgs: BTreeMap<u32, (Flags, Vec<u8>)>,
}

pub struct MemMailbox {
    pub inner: Mutex<Inner>,
    changes: tokio::sync::watch::Sender<u64>,
    /// When set, read/store_flags/remove fail with `Temporary` (store-failure paths).
    pub fail: std::sync::atomic::AtomicBool,
}

impl MemMailbox {
    fn check(&self) -> store::Result<()> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(store::Error::new(ErrorKind::Temporary, "injected failure"));
        }
        Ok(())
    }
}

impl MemMailbox {
    pub fn uids(&self) -> Vec<u32> {
        self.inner.lock().unwrap().msgs.keys().copied().collect()
    }
    pub fn flags(&self, uid: u32) -> Option<Flags> {
        self.inner.lock().unwrap().msgs.get(&uid).map(|m| m.0)
    }
}

struct MemUser {
    store: MemStore,
    user: String,
}

fn unsupported<T>() -> store::Result<T> {
    Err(store::Error::new(
        ErrorKind::Internal,
        "not implemented by the test double",
    ))
}

impl Store for MemStore {
    fn user(&self, user: &str) -> store::Result<Arc<dyn UserStore>> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(store::Error::new(ErrorKind::Temporary, "injected failure"));
        }
        Ok(Arc::new(MemUser {
            store: self.clone(),
            user: user.to_string(),
        }))
    }
}

impl UserStore for MemUser {
    fn list(&self) -> store::Result<Vec<MailboxInfo>> {
        unsupported()
    }
    fn create(&self, _: &str) -> store::Result<()> {
        unsupported()
    }
    fn delete(&self, _: &str) -> store::Result<()> {
        unsupported()
    }
    fn rename(&self, _: &str, _: &str) -> store::Result<()> {
        unsupported()
    }
    fn subscribe(&self, _: &str, _: bool) -> store::Result<()> {
        unsupported()
    }
    fn status(&self, _: &str) -> store::Result<MailboxStatus> {
        unsupported()
    }
    fn open(&self, name: &str) -> store::Result<Arc<dyn Mailbox>> {
        if !name.eq_ignore_ascii_case("INBOX") {
            return Err(store::Error::new(ErrorKind::NotFound, name));
        }
        Ok(self.store.inbox(&self.user))
    }
}

impl Mailbox for MemMailbox {
    fn name(&self) -> &str {
        "INBOX"
    }
    fn sync(&self, view: &mut View) -> store::Result<Changes> {
        let i = self.inner.lock().unwrap();
        view.uid_validity = i.uid_validity;
        view.uid_next = i.uid_next;
        view.messages = i
            .msgs
            .iter()
            .map(|(&uid, (flags, data))| MessageMeta {
                uid,
                flags: *flags,
                keywords: Vec::new(),
                size: data.len() as u64,
                internal_date: SystemTime::UNIX_EPOCH,
                recent: false,
                modseq: 0,
            })
            .collect();
        Ok(Changes::default())
    }
    fn read(&self, uid: u32) -> store::Result<Arc<[u8]>> {
        self.check()?;
        let i = self.inner.lock().unwrap();
        i.msgs
            .get(&uid)
            .map(|m| Arc::from(&m.1[..]))
            .ok_or_else(|| store::Error::new(ErrorKind::NotFound, format!("uid {uid}")))
    }
    fn store_flags(
        &self,
        uids: &[u32],
        op: FlagOp,
        flags: Flags,
        _keywords: &[String],
    ) -> store::Result<Vec<MessageMeta>> {
        self.check()?;
        let mut i = self.inner.lock().unwrap();
        for uid in uids {
            if let Some(m) = i.msgs.get_mut(uid) {
                m.0 = match op {
                    FlagOp::Replace => flags,
                    FlagOp::Add => m.0.union(flags),
                    FlagOp::Remove => m.0.minus(flags),
                };
            }
        }
        Ok(Vec::new())
    }
    fn append(
        &self,
        _: &[u8],
        _: Flags,
        _: &[String],
        _: Option<SystemTime>,
    ) -> store::Result<u32> {
        unsupported()
    }
    fn copy_to(&self, _: &[u32], _: &dyn Mailbox) -> store::Result<Vec<(u32, u32)>> {
        unsupported()
    }
    fn move_to(&self, _: &[u32], _: &dyn Mailbox) -> store::Result<Vec<(u32, u32)>> {
        unsupported()
    }
    fn expunge(&self, _: Option<&[u32]>) -> store::Result<Vec<u32>> {
        unsupported()
    }
    fn remove(&self, uids: &[u32]) -> store::Result<()> {
        self.check()?;
        let mut i = self.inner.lock().unwrap();
        for uid in uids {
            i.msgs.remove(uid);
        }
        Ok(())
    }
    fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

// ---------------------------------------------------------------------------------------
// Users: a real passwd-file read by the daemon's `auth::Users`

/// `{SHA512-CRYPT}` of `pw2` (5000 rounds, as `doveadm pw` writes it).
pub const HASHED_PW2: &str = "{SHA512-CRYPT}$6$abcdefgh12345678$bwDMF6gv1WO15PCyaD7RKKz35179yhgQoWXf/P/qTiQCFI419g09LrH1KbBPY9IOv2NJ5YtvE3WX9HxadsNdR.";

/// The passwd-file every test server starts with: `bob`/`secret` and `alice`/`wonder land`
/// stored `{PLAIN}` (APOP possible), `hashed`/`pw2` stored `{SHA512-CRYPT}` (APOP impossible).
pub fn users_text() -> String {
    format!(
        "# test users (Dovecot passwd-file)\n\
         bob:{{PLAIN}}secret\n\
         alice:{{PLAIN}}wonder land\n\
         hashed:{HASHED_PW2}\n"
    )
}

// ---------------------------------------------------------------------------------------
// Config, TLS, server

/// Which store the server gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// The real `MaildirStore` under `data_dir/mail`.
    #[default]
    Maildir,
    /// The in-memory [`MemStore`] with failure switches: store-failure tests only.
    FaultInjection,
}

pub struct Options {
    pub allow_plaintext: bool,
    pub idle: Duration,
    /// The passwd-file text written as `auth.users_file` (default [`users_text`]).
    pub users_file: String,
    /// `POP3 Protocol Logging Level` (the log directory is the server's temp dir).
    pub log_level: u32,
    pub backend: Backend,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            allow_plaintext: false,
            idle: Duration::from_secs(600),
            users_file: users_text(),
            log_level: 0,
            backend: Backend::Maildir,
        }
    }
}

/// The server's config, written as TOML into `dir/mailserver.toml` and loaded by the crate's
/// parser: data and protocol logs in `dir`, users in `dir/users`, no listeners (the harness
/// binds its own), 100 connections in all and per IP, `opts.idle` for both services, 1 MiB
/// messages, a 5 s shutdown grace, POP3 logging at `opts.log_level`.
///
/// The TOML has whole seconds only (`*_idle_timeout_secs`, at least 1): an idle timeout with
/// a fraction of a second (a test waiting for the timeout) is set on the loaded config.
pub fn config(dir: &Path, opts: &Options) -> Config {
    let whole_secs = opts.idle.subsec_nanos() == 0 && opts.idle.as_secs() > 0;
    let idle_secs = whole_secs.then_some(opts.idle.as_secs());
    let mut config = TestConfig {
        hostname: "mail.test".into(),
        users_file: Some("users".into()),
        allow_plaintext: Some(opts.allow_plaintext),
        max_connections: Some(100),
        max_connections_per_ip: Some(100),
        imap_idle_timeout_secs: idle_secs,
        pop3_idle_timeout_secs: idle_secs,
        max_message_bytes: Some(1 << 20),
        shutdown_grace_secs: Some(5),
        pop3_log: LogValues {
            level: Some(opts.log_level),
            path: None,
        },
        ..TestConfig::new(dir)
    }
    .load(&dir.join("mailserver.toml"));
    if !whole_secs {
        config.limits.imap_idle_timeout = opts.idle;
        config.limits.pop3_idle_timeout = opts.idle;
    }
    config
}

/// A self-signed certificate for `localhost`: (acceptor, the certificate to trust).
pub fn tls() -> (
    tokio_rustls::TlsAcceptor,
    rustls::pki_types::CertificateDer<'static>,
) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    (tokio_rustls::TlsAcceptor::from(Arc::new(cfg)), cert)
}

pub fn connector(cert: &rustls::pki_types::CertificateDer<'static>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

pub struct Server {
    /// Plain POP3 (with STLS).
    pub addr: SocketAddr,
    /// Implicit TLS (POP3S).
    pub tls_addr: SocketAddr,
    /// The handles the server hands to sessions (the daemon's own kind).
    pub handles: Handles,
    /// The table of locked maildrops (`handles.pop3_locks`).
    pub pop3_locks: Arc<MaildropLocks>,
    /// Fires the server's shutdown (`server::serve` drains and returns).
    pub shutdown: CancellationToken,
    /// The store the sessions use (`handles.store`).
    pub store: Arc<dyn Store>,
    /// Set only with [`Backend::FaultInjection`].
    mem: Option<MemStore>,
    pub cert: rustls::pki_types::CertificateDer<'static>,
    pub auth: Arc<dyn Authenticator>,
    pub dir: tempfile::TempDir,
    /// Deliveries so far: names the next `new/` file so UIDs follow delivery order.
    delivered: AtomicUsize,
}

impl Server {
    pub async fn start(opts: Options) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let (acceptor, cert) = tls();
        let snapshot = Arc::new(Snapshot {
            config: config(dir.path(), &opts),
            tls: acceptor,
        });
        std::fs::write(dir.path().join("users"), &opts.users_file).unwrap();
        let (store, mem): (Arc<dyn Store>, _) = match opts.backend {
            Backend::Maildir => (Arc::new(MaildirStore::new(dir.path().join("mail"))), None),
            Backend::FaultInjection => {
                let m = MemStore::new();
                (Arc::new(m.clone()), Some(m))
            }
        };
        let auth: Arc<dyn Authenticator> = Arc::new(Users::new());
        let handles = Handles {
            live: Arc::new(ArcSwap::from(snapshot)),
            store: store.clone(),
            auth: auth.clone(),
            penalty: Arc::default(),
            protolog: ProtoLog::new(),
            pop3_locks: Arc::default(),
            serving: Arc::default(),
            sessions: Arc::default(),
            cluster: None,
        };
        let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tls = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (addr, tls_addr) = (plain.local_addr().unwrap(), tls.local_addr().unwrap());
        let listeners = [(plain, false), (tls, true)]
            .into_iter()
            .map(|(listener, implicit_tls)| Bound {
                service: Service::Pop3,
                implicit_tls,
                proxy: false,
                internal: false,
                listener,
            })
            .collect();
        // The daemon's own accept loop: one snapshot per connection, caps, the real users.
        let shutdown = CancellationToken::new();
        tokio::spawn(server::serve(listeners, handles.clone(), shutdown.clone()));
        Server {
            addr,
            tls_addr,
            pop3_locks: handles.pop3_locks.clone(),
            handles,
            shutdown,
            store,
            mem,
            cert,
            auth,
            dir,
            delivered: AtomicUsize::new(0),
        }
    }

    /// The fault-injection store; panics unless started with [`Backend::FaultInjection`].
    pub fn faulty(&self) -> &MemStore {
        self.mem
            .as_ref()
            .expect("only Backend::FaultInjection servers have a MemStore")
    }

    /// `data_dir/mail/<user>`: the user's Maildir++ root (INBOX).
    pub fn maildir(&self, user: &str) -> PathBuf {
        self.dir.path().join("mail").join(user)
    }

    /// Delivers `text` (LF line ends, as an MTA writes Maildir files) into the user's INBOX:
    /// into `new/` via `tmp/` and a rename, as an MTA does; or into the [`MemStore`].
    pub fn deliver(&self, user: &str, text: &str) {
        let n = self.delivered.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(m) = &self.mem {
            m.deliver(user, text);
            return;
        }
        let root = self.maildir(user);
        for d in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        // Increasing seconds in the name: the store numbers new files in name-time order.
        let name = format!("{}.M{n}P{}.mta.test", 1_700_000_000 + n, std::process::id());
        let tmp = root.join("tmp").join(&name);
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, root.join("new").join(&name)).unwrap();
    }

    /// The INBOX as a fresh session would see it now (one `sync` through the store).
    pub fn view(&self, user: &str) -> View {
        let mb = self.store.user(user).unwrap().open("INBOX").unwrap();
        let mut v = View::default();
        mb.sync(&mut v).unwrap();
        v
    }

    pub fn uids(&self, user: &str) -> Vec<u32> {
        self.view(user).messages.iter().map(|m| m.uid).collect()
    }

    pub fn flags(&self, user: &str, uid: u32) -> Option<Flags> {
        self.view(user)
            .messages
            .iter()
            .find(|m| m.uid == uid)
            .map(|m| m.flags)
    }

    /// Dovecot's `%08Xu%08Xv` for `uid` in the INBOX of `user` (lowercase hex, as Dovecot
    /// prints it).
    pub fn uidl(&self, user: &str, uid: u32) -> String {
        format!("{uid:08x}{:08x}", self.view(user).uid_validity)
    }

    /// Message file names in `new/` and `cur/` of the user's INBOX (sorted), straight from disk.
    pub fn files(&self, user: &str) -> Vec<String> {
        maildir_files(&self.maildir(user))
    }

    /// A POP3 session as the server would build it for a connection from `remote`.
    pub fn session(&self, remote: &str, tls: bool) -> mailserver::pop3::Pop3Session {
        mailserver::pop3::Pop3Session::new(self.env(remote, tls), self.pop3_locks.clone())
    }

    /// What a session would get for a connection from `remote` (session-level tests that
    /// need a peer address 127.0.0.1 sockets cannot give, e.g. non-loopback).
    pub fn env(&self, remote: &str, tls: bool) -> SessionEnv {
        SessionEnv {
            snapshot: self.handles.live.load_full(),
            store: self.store.clone(),
            auth: self.auth.clone(),
            penalty: self.handles.penalty.clone(),
            remote: remote.parse().unwrap(),
            tls,
            proxy_tls: false,
            cancel: Default::default(),
            cluster: None,
            internal: false,
            session_id: 0,
        }
    }

    pub fn users_file(&self) -> PathBuf {
        self.dir.path().join("users")
    }

    pub async fn connect(&self) -> Client {
        let s = TcpStream::connect(self.addr).await.unwrap();
        Client::new(Box::new(s))
    }

    pub async fn connect_tls(&self) -> Client {
        let s = TcpStream::connect(self.tls_addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = connector(&self.cert).connect(name, s).await.unwrap();
        Client::new(Box::new(tls))
    }
}

/// `new/NAME` and `cur/NAME` entries of a Maildir, sorted.
pub fn maildir_files(root: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for d in ["new", "cur"] {
        let Ok(rd) = std::fs::read_dir(root.join(d)) else {
            continue;
        };
        for e in rd {
            v.push(format!("{d}/{}", e.unwrap().file_name().to_string_lossy()));
        }
    }
    v.sort();
    v
}

/// The Maildir info flags (`DFRST` letters after `:2,`) of a file name, `None` without info.
pub fn info_flags(name: &str) -> Option<&str> {
    name.split_once(":2,").map(|(_, f)| f)
}

// ---------------------------------------------------------------------------------------
// A transcript client: C: lines out, S: lines in, every wait bounded.

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub struct Client {
    pub r: BufReader<Box<dyn Io>>,
}

impl Client {
    pub fn new(s: Box<dyn Io>) -> Client {
        Client {
            r: BufReader::new(s),
        }
    }

    /// C: a line (CRLF added).
    pub async fn send(&mut self, line: &str) {
        self.raw(format!("{line}\r\n").as_bytes()).await;
    }

    pub async fn raw(&mut self, bytes: &[u8]) {
        let w = self.r.get_mut();
        tokio::time::timeout(WAIT, async {
            w.write_all(bytes).await.unwrap();
            w.flush().await.unwrap();
        })
        .await
        .expect("write timed out");
    }

    /// S: one line without CRLF; `None` at EOF. Panics if the line does not end in CRLF.
    pub async fn line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        let n = tokio::time::timeout(WAIT, self.r.read_until(b'\n', &mut buf))
            .await
            .expect("read timed out")
            .unwrap_or(0);
        if n == 0 {
            return None;
        }
        assert!(buf.ends_with(b"\r\n"), "line without CRLF: {buf:?}");
        buf.truncate(buf.len() - 2);
        Some(String::from_utf8(buf).expect("server sent non-UTF-8"))
    }

    /// S: a line that must start with `prefix`; returns it.
    pub async fn expect(&mut self, prefix: &str) -> String {
        let l = self
            .line()
            .await
            .unwrap_or_else(|| panic!("EOF, wanted {prefix:?}"));
        assert!(l.starts_with(prefix), "wanted {prefix:?}, got {l:?}");
        l
    }

    /// C: `cmd`, then S: a line starting with `prefix`.
    pub async fn cmd(&mut self, cmd: &str, prefix: &str) -> String {
        self.send(cmd).await;
        self.expect(prefix).await
    }

    /// The lines of a multi-line body up to (not including) `.`, un-stuffed.
    pub async fn body(&mut self) -> Vec<String> {
        let mut v = Vec::new();
        for _ in 0..100_000 {
            let l = self.line().await.expect("EOF inside multi-line response");
            if l == "." {
                return v;
            }
            v.push(l.strip_prefix('.').map(str::to_string).unwrap_or(l));
        }
        panic!("multi-line response without terminator");
    }

    /// The raw octets of a multi-line body up to and including `.\r\n`.
    pub async fn raw_body(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        for _ in 0..100_000 {
            let mut buf = Vec::new();
            let n = tokio::time::timeout(WAIT, self.r.read_until(b'\n', &mut buf))
                .await
                .expect("read timed out")
                .unwrap();
            assert!(n > 0, "EOF inside multi-line response");
            all.extend_from_slice(&buf);
            if buf == b".\r\n" {
                return all;
            }
        }
        panic!("multi-line response without terminator");
    }

    /// Waits for EOF (the server closed), skipping nothing: any further line is an error.
    pub async fn expect_eof(&mut self) {
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(WAIT, self.r.read_to_end(&mut rest))
            .await
            .expect("server did not close");
        assert!(rest.is_empty(), "unexpected data before EOF: {rest:?}");
    }

    /// Greeting (`+OK <hostname> ready. <timestamp>`), USER, PASS: logged in.
    pub async fn login(&mut self, user: &str, pass: &str) {
        let g = self.expect("+OK ").await;
        assert!(g.contains(" ready. <"), "{g}");
        self.cmd(&format!("USER {user}"), "+OK").await;
        self.cmd(&format!("PASS {pass}"), "+OK Logged in.").await;
    }
}

impl Server {
    /// A plain connection kept as a bare `TcpStream` (for STLS).
    pub async fn connect_raw(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }
}

/// Reads one CRLF line from a bare stream byte by byte (no read-ahead, so STLS can follow).
pub async fn raw_line(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, async {
        loop {
            let b = s.read_u8().await.unwrap();
            buf.push(b);
            if b == b'\n' {
                break;
            }
        }
    })
    .await
    .expect("read timed out");
    String::from_utf8(buf).unwrap().trim_end().to_string()
}

/// TLS over an existing stream (after `+OK` to STLS).
pub async fn start_tls(server: &Server, s: TcpStream) -> Client {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector(&server.cert).connect(name, s).await.unwrap();
    Client::new(Box::new(tls))
}

/// Bounded wait until `cond` holds (e.g. a lock released after a disconnect).
pub async fn eventually(mut cond: impl FnMut() -> bool) {
    wait::wait_for_async("the condition", wait::WAIT, || {
        if cond() {
            Ok(())
        } else {
            Err("not yet".into())
        }
    })
    .await
}
