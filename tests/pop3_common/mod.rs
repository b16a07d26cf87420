//! Test support for the POP3 integration tests.
//!
//! TEST DOUBLES, clearly not the real thing: [`MemStore`] is an in-memory `Store` with just
//! what POP3 uses (open INBOX, sync, read, store_flags, remove), and [`TestUsers`] is a fixed
//! user/password table. They exist so the real driver (`conn::serve_with`) and the real POP3
//! session can be exercised over real sockets on 127.0.0.1:0 before the Maildir store and
//! the passwd-file auth are merged; after the merge these tests are to be re-pointed at the
//! real store and binary (only [`Server::start`] needs to change).
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use mailserver::auth::{AuthResult, Secret, Users};
use mailserver::config::{
    AuthSettings, Config, Limits, Listeners, ProtocolLogSettings, ServerSettings,
};
use mailserver::conn::{self, Authenticator};
use mailserver::protolog::{ProtoLog, Service};
use mailserver::server::{Shared, Snapshot};
use mailserver::store::{
    self, Changes, ErrorKind, FlagOp, Flags, Mailbox, MailboxInfo, MailboxStatus, MessageMeta,
    Store, UserStore, View,
};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Every network wait in the tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// In-memory store (test double)

/// Cheap to clone: clones share the same mailboxes.
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
// Users (test double)

/// A fixed table; users listed in `plain` behave like `{PLAIN}` entries (APOP possible).
#[derive(Default)]
pub struct TestUsers {
    pub passwords: HashMap<String, String>,
    pub plain: HashSet<String>,
    /// When set, every login gets `TempFail`.
    pub tempfail: bool,
}

impl Authenticator for TestUsers {
    fn authenticate<'a>(
        &'a self,
        _users_file: &'a Path,
        user: &'a str,
        password: &'a Secret<String>,
    ) -> Pin<Box<dyn std::future::Future<Output = AuthResult> + Send + 'a>> {
        Box::pin(async move {
            if self.tempfail {
                return AuthResult::TempFail("users file unreadable (test)".into());
            }
            match self.passwords.get(user) {
                Some(p) if p == password.expose() => AuthResult::Ok {
                    user: user.to_string(),
                },
                _ => AuthResult::Failed,
            }
        })
    }
    fn plain_password(&self, _users_file: &Path, user: &str) -> Option<Secret<String>> {
        if self.plain.contains(user) {
            self.passwords.get(user).cloned().map(Secret::new)
        } else {
            None
        }
    }
}

pub fn users() -> TestUsers {
    let mut t = TestUsers::default();
    t.passwords.insert("bob".into(), "secret".into());
    t.passwords.insert("alice".into(), "wonder land".into());
    t.passwords.insert("hashed".into(), "pw".into());
    t.plain.insert("bob".into());
    t.plain.insert("alice".into());
    t
}

// ---------------------------------------------------------------------------------------
// Config, TLS, server

pub struct Options {
    pub allow_plaintext: bool,
    pub idle: Duration,
    pub users: TestUsers,
    /// `Some(passwd-file text)`: write it as `auth.users_file` and serve through
    /// `conn::serve` with the daemon's real `Users` instead of the [`TestUsers`] double.
    pub users_file: Option<String>,
    /// `POP3 Protocol Logging Level` (the log directory is the server's temp dir).
    pub log_level: u32,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            allow_plaintext: false,
            idle: Duration::from_secs(600),
            users: users(),
            users_file: None,
            log_level: 0,
        }
    }
}

pub fn config(dir: &Path, opts: &Options) -> Config {
    Config {
        path: dir.join("mailserver.toml"),
        server: ServerSettings {
            hostname: "mail.test".into(),
            data_dir: dir.to_path_buf(),
        },
        imap: Listeners {
            listen: vec![],
            tls_listen: vec![],
        },
        pop3: Listeners {
            listen: vec![],
            tls_listen: vec![],
        },
        tls: None,
        auth: AuthSettings {
            users_file: dir.join("users"),
            allow_plaintext: opts.allow_plaintext,
        },
        limits: Limits {
            max_connections: 100,
            max_connections_per_ip: 100,
            imap_idle_timeout: opts.idle,
            pop3_idle_timeout: opts.idle,
            max_message_bytes: 1 << 20,
            shutdown_grace: Duration::from_secs(5),
        },
        registry: Default::default(),
        pop3_log: ProtocolLogSettings {
            level: opts.log_level,
            path: dir.to_path_buf(),
            size_limit_kib: 0,
        },
        imap_log: ProtocolLogSettings {
            level: 0,
            path: dir.to_path_buf(),
            size_limit_kib: 0,
        },
        warnings: vec![],
    }
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
    pub shared: Arc<Shared>,
    pub store: MemStore,
    pub cert: rustls::pki_types::CertificateDer<'static>,
    pub auth: Arc<dyn Authenticator>,
    pub dir: tempfile::TempDir,
}

impl Server {
    pub async fn start(opts: Options) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let (acceptor, cert) = tls();
        let snapshot = Arc::new(Snapshot {
            config: config(dir.path(), &opts),
            tls: acceptor,
        });
        let store = MemStore::new();
        let shared = Arc::new(Shared {
            live: ArcSwap::from(snapshot),
            store: Arc::new(store.clone()),
            users: Users::new(),
            protolog: ProtoLog::new(),
            pop3_locks: Mutex::new(HashSet::new()),
            shutdown: CancellationToken::new(),
        });
        let real_users = opts.users_file.is_some();
        if let Some(text) = &opts.users_file {
            std::fs::write(dir.path().join("users"), text).unwrap();
        }
        let auth: Arc<dyn Authenticator> = if real_users {
            Arc::new(conn::SharedUsers(shared.clone()))
        } else {
            Arc::new(opts.users)
        };
        let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tls = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (addr, tls_addr) = (plain.local_addr().unwrap(), tls.local_addr().unwrap());
        for (listener, implicit) in [(plain, false), (tls, true)] {
            let shared = shared.clone();
            let auth = auth.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let snapshot = shared.live.load_full();
                    if real_users {
                        tokio::spawn(conn::serve(
                            shared.clone(),
                            snapshot,
                            stream,
                            Service::Pop3,
                            implicit,
                        ));
                        continue;
                    }
                    tokio::spawn(conn::serve_with(
                        shared.clone(),
                        snapshot,
                        stream,
                        Service::Pop3,
                        implicit,
                        auth.clone(),
                    ));
                }
            });
        }
        Server {
            addr,
            tls_addr,
            shared,
            store,
            cert,
            auth,
            dir,
        }
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

    /// What a session would get for a connection from `remote` (session-level tests that
    /// need a peer address 127.0.0.1 sockets cannot give, e.g. non-loopback).
    pub fn env(&self, remote: &str, tls: bool) -> conn::SessionEnv {
        conn::SessionEnv {
            shared: self.shared.clone(),
            snapshot: self.shared.live.load_full(),
            auth: self.auth.clone(),
            local: "192.0.2.1:110".parse().unwrap(),
            remote: remote.parse().unwrap(),
            tls,
        }
    }

    pub fn users_file(&self) -> PathBuf {
        self.dir.path().join("users")
    }
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

    /// Greeting, USER, PASS: logged in.
    pub async fn login(&mut self, user: &str, pass: &str) {
        self.expect("+OK mail.test ready.").await;
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
    for _ in 0..400 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition not reached");
}
