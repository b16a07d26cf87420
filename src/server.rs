//! Listeners, accept loop, connection caps, choosing the protocol, the live config snapshot
//! and graceful drain (ARCHITECTURE.md, "Server").
//!
//! * [`Handles`] is built once per daemon: what the accept loop hands out, each session
//!   taking only the handles it uses. [`Handles::live`] is the only place the live config is
//!   read, with one `load_full()` per accepted connection, giving a [`Snapshot`] the session
//!   uses until it ends.
//! * [`serve`] takes bound listeners and a shutdown token (as mini-redis's `server::run`):
//!   the daemon passes its real listeners and signal handler, tests bind `127.0.0.1:0` and
//!   fire the token themselves.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{Penalty, Users};
use crate::config::Config;
use crate::config::LmtpListen;
use crate::conn::{Connection, Socket};
use crate::imap::session::ImapSession;
use crate::lmtp::LmtpSession;
use crate::pop3::{MaildropLocks, Pop3Session};
use crate::protolog::ProtoLog;
use crate::service::Service;
use crate::sessions::Registry;
use crate::session::{Authenticator, SessionEnv, Snapshot};
use crate::store::Store;

/// What the accept loop hands to sessions. Each field is a narrow handle a session (or the
/// driver) takes as it needs it; nothing holds the whole.
#[derive(Clone)]
pub struct Handles {
    /// The live snapshot; the accept loop calls `load_full()` once per connection. Reloads
    /// store a new one ([`apply_reload`]).
    pub live: Arc<ArcSwap<Snapshot>>,
    /// The mail store, for the sessions' logins.
    pub store: Arc<dyn Store>,
    /// Password checks (the daemon: its passwd-file [`Users`]).
    pub auth: Arc<dyn Authenticator>,
    /// Failed logins per client address (the brute-force penalty), for every session.
    pub penalty: Arc<Penalty>,
    /// The protocol log, for the driver's tee.
    pub protolog: Arc<ProtoLog>,
    /// POP3 maildrops currently locked by a session (`-ERR [IN-USE]`), for POP3 sessions.
    pub pop3_locks: Arc<MaildropLocks>,
    /// Every accept loop is running and shutdown has not begun (`/readyz`).
    pub serving: Arc<std::sync::atomic::AtomicBool>,
    /// The live session table: the driver lists every session there; the admin socket
    /// reads it (`who`) and kicks through it.
    pub sessions: Arc<Registry>,
    /// `[cluster]`: ownership and membership; `None` on a single node. Built from the
    /// startup config (the table is restart-only).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl Handles {
    /// The daemon's handles for `snapshot`: the Maildir store under `data_dir/mail`, the
    /// passwd-file users, a new protocol log.
    pub fn new(snapshot: Snapshot) -> Handles {
        let store =
            crate::store::maildir::MaildirStore::new(snapshot.config.server.data_dir.join("mail"));
        // Restart to change, as data_dir: watchers already made would stay.
        store.set_watch(snapshot.config.server.store_watch);
        let snapshot_cluster = snapshot.config.cluster.clone();
        let live = Arc::new(ArcSwap::from_pointee(snapshot));
        let current = live.clone();
        store.require_marker(crate::store::maildir::MarkerRule(Arc::new(move || {
            let s = current.load();
            let server = &s.config.server;
            server
                .require_data_marker
                .then(|| crate::config::marker::path(&server.data_dir))
        })));
        let cluster = snapshot_cluster.map(crate::cluster::Cluster::new);
        let protolog = ProtoLog::new();
        if let Some(c) = &cluster {
            let s = c.settings();
            if let Some(i) = s.nodes.iter().position(|n| n.id == s.node_id) {
                protolog.set_node(i);
            }
            crate::cluster::nats::hook_store(&store, c);
        }
        let users = Arc::new(Users::new());
        let current = live.clone();
        store.set_quota_limits(Arc::new(crate::auth::UserQuotas::new(
            users.clone(),
            Box::new(move || {
                let s = current.load();
                (s.config.auth.users_file.clone(), s.config.quota.default, s.config.quota.grace)
            }),
        )));
        Handles {
            live,
            store: Arc::new(store),
            auth: users,
            penalty: Arc::default(),
            protolog,
            pop3_locks: Arc::default(),
            serving: Arc::default(),
            sessions: Arc::default(),
            cluster,
        }
    }
}

/// `mailserver run`: loads the config at `config_path`, binds every listener, serves until
/// SIGTERM/SIGINT, then drains. Errors are startup failures (bad config, bind failure).
pub async fn run_daemon(config_path: PathBuf) -> anyhow::Result<()> {
    let config = crate::config::load(&config_path)?;
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    // Before anything is written under data_dir (the self-signed certificate, the store):
    // a shared mount that is not mounted must not get a new store written into it.
    crate::config::marker::ensure(&config.server).map_err(|e| anyhow::anyhow!(e))?;
    let snapshot = Snapshot::build(config)?;
    let listeners = bind_all(&snapshot.config).await?;
    let unix = bind_unix(&snapshot.config)?;
    let unix_files: Vec<SocketFile> = unix.iter().filter_map(|u| SocketFile::of(&u.path)).collect();
    // Mail is served without it: a second daemon on the same data_dir (README.md, "Mail
    // store") finds the first one's socket answering and leaves it alone.
    let admin = crate::admin::socket::bind(&snapshot.config.admin_socket)
        .inspect_err(|e| tracing::warn!("{e:#}; the admin commands are not available"))
        .ok();
    crate::welcome::seed(&snapshot.config);
    log_connect_lines(&listeners);
    let metrics = match snapshot.config.metrics.listen {
        Some(addr) => Some(
            listen(addr).map_err(|e| anyhow::anyhow!("cannot listen on {addr} (metrics): {e}"))?,
        ),
        None => None,
    };
    crate::metrics::get().config_hash(snapshot.config.digest.clone());
    let handles = Handles::new(snapshot);
    let shutdown = CancellationToken::new();
    if let Some(listener) = metrics {
        tracing::info!("metrics served at http://{}/metrics", listener.local_addr()?);
        let ready = readiness(&handles);
        tokio::spawn(crate::metrics::http::serve(listener, ready, shutdown.clone()));
    }
    let admin_ctx = crate::admin::handler(crate::admin::Context {
        store: handles.store.clone(),
        auth: handles.auth.clone(),
        users_file: {
            let live = handles.live.clone();
            Box::new(move || live.load().config.auth.users_file.clone())
        },
        sessions: Some(handles.sessions.clone()),
    });
    let admin_task = admin.map(|a| tokio::spawn(crate::admin::socket::serve(a, admin_ctx, shutdown.clone())));

    let live = handles.live.clone();
    let _watcher = crate::config::watch::spawn(
        config_path,
        Arc::new(move |config| apply_reload(&live, config)),
        shutdown.clone(),
    )?;
    // Membership and change events (README.md, "Cluster"): in the background, never
    // waited for; at shutdown it says `leaving` first.
    let cluster_task = handles.cluster.clone().and_then(|c| {
        crate::cluster::nats::spawn(c, handles.store.clone(), handles.sessions.clone(), shutdown.clone())
    });
    spawn_signal_handler(shutdown.clone())?;
    crate::systemd::spawn_watchdog(shutdown.clone());
    // Every listener is bound; `serve_all` starts accepting on each at once.
    handles.serving.store(true, std::sync::atomic::Ordering::Release);
    crate::systemd::ready();
    tracing::info!("mailserver {} ready", env!("CARGO_PKG_VERSION"));
    serve_all(listeners, unix, handles, shutdown).await;
    for f in unix_files {
        f.remove();
    }
    if let Some(task) = cluster_task {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), task).await;
    }
    // The admin socket's file is removed when its task ends (it saw the shutdown).
    if let Some(task) = admin_task {
        let _ = task.await;
    }
    tracing::info!("mailserver stopped");
    Ok(())
}

/// The reload path (called by `config::watch` with a validated config): TLS is rebuilt with
/// it, each changed value is logged, and the new snapshot is stored for the next sessions.
/// Listen addresses and `data_dir` need a restart: they keep their running values.
pub fn apply_reload(live: &ArcSwap<Snapshot>, mut config: Config) {
    let old = live.load_full();
    let changes = crate::config::diff(&old.config, &config);
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    if changes.iter().any(|c| c.needs_restart) {
        config.metrics = old.config.metrics.clone();
        config.imap = old.config.imap.clone();
        config.pop3 = old.config.pop3.clone();
        config.lmtp.listen = old.config.lmtp.listen.clone();
        config.server.data_dir = old.config.server.data_dir.clone();
        config.admin_socket = old.config.admin_socket.clone();
        config.server.store_watch = old.config.server.store_watch;
        // Log paths that default to data_dir follow the running data_dir, not the new one.
        use crate::config::registry::{resolved_path, IMAP_PATH, LMTP_PATH, POP3_PATH};
        let base = crate::config::base_dir(&config.path);
        let dd = &config.server.data_dir;
        config.pop3_log.path = resolved_path(&config.registry, POP3_PATH, &base, dd);
        config.imap_log.path = resolved_path(&config.registry, IMAP_PATH, &base, dd);
        config.lmtp_log.path = resolved_path(&config.registry, LMTP_PATH, &base, dd);
    }
    let snapshot = match Snapshot::build(config) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("reload rejected, the running configuration stays: {e:#}");
            crate::metrics::get().reload(false);
            return;
        }
    };
    crate::metrics::get().reload(true);
    crate::metrics::get().config_hash(snapshot.config.digest.clone());
    let server = &snapshot.config.server;
    if server.require_data_marker && !matches!(crate::config::marker::present(&server.data_dir), Ok(true)) {
        // The store refuses every login until the marker is back (MaildirStore::require_marker).
        tracing::error!("{}", crate::config::marker::missing_text(&server.data_dir));
    }
    // Swapped in before the changes are logged: a client that connects once it has read
    // "applies at the next session start" gets the new snapshot.
    live.store(Arc::new(snapshot));
    for c in &changes {
        if c.needs_restart {
            tracing::warn!(
                "{}: {} -> {} needs a restart; the running value stays",
                c.key,
                c.old,
                c.new
            );
        } else {
            tracing::info!(
                "{}: {} -> {} (applies at the next session start)",
                c.key,
                c.old,
                c.new
            );
        }
    }
    if changes.is_empty() {
        tracing::info!("configuration reloaded, no value changed");
    }
}

/// `/readyz` (README.md, "Metrics"): every listener's accept loop is running (they are
/// bound before the daemon starts; [`Handles::serving`]), the store's `data_dir` and its
/// `mail/` (once it exists) are directories this process can list, and the running configuration is valid
/// (always: an invalid file is rejected at reload and the running one stays; rejections are
/// counted in `mailserver_config_reloads_total{result="rejected"}`).
pub fn readiness(handles: &Handles) -> crate::metrics::http::Readiness {
    let (live, serving) = (handles.live.clone(), handles.serving.clone());
    Arc::new(move || {
        use std::sync::atomic::Ordering;
        if !serving.load(Ordering::Acquire) {
            return Err("listeners not serving".into());
        }
        let data_dir = live.load().config.server.data_dir.clone();
        for dir in [data_dir.clone(), data_dir.join("mail")] {
            match std::fs::metadata(&dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(format!("{} is not a directory", dir.display())),
                // `mail/` appears with the first user's first login.
                Err(e) if dir != data_dir && e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(format!("{}: {e}", dir.display())),
            }
            if let Err(e) = std::fs::read_dir(&dir) {
                return Err(format!("{}: {e}", dir.display()));
            }
        }
        Ok(())
    })
}

/// SIGTERM/SIGINT fire the shutdown token (and tell systemd we are stopping).
fn spawn_signal_handler(shutdown: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
            _ = shutdown.cancelled() => {}
        }
        crate::systemd::stopping();
        shutdown.cancel();
    });
    Ok(())
}

/// A bound listening socket and what it serves.
pub struct Bound {
    pub service: Service,
    /// Implicit TLS (IMAPS/POP3S) rather than plain with STARTTLS/STLS.
    pub implicit_tls: bool,
    /// A PROXY protocol header comes first (`proxy_listen`, `proxy_tls_listen`), accepted
    /// from `proxy.trusted_networks` only; without the mark a header is never parsed.
    pub proxy: bool,
    /// `[cluster]`: this node's internal listener (README.md, "Cluster"): from the nodes'
    /// addresses only, a PROXY v2 header first, the master login accepted, never proxied.
    pub internal: bool,
    pub listener: TcpListener,
}

/// A socket file this daemon made, removed at exit unless something else took its path
/// since (another daemon's bind replaced it: same path, another inode).
struct SocketFile {
    path: PathBuf,
    dev_ino: (u64, u64),
}

impl SocketFile {
    fn of(path: &Path) -> Option<SocketFile> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::symlink_metadata(path).ok()?;
        Some(SocketFile {
            path: path.to_path_buf(),
            dev_ino: (m.dev(), m.ino()),
        })
    }

    fn remove(self) {
        let still_ours = SocketFile::of(&self.path).is_some_and(|now| now.dev_ino == self.dev_ino);
        if still_ours {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!("cannot remove {}: {e}", self.path.display());
            }
        }
    }
}

/// A bound Unix stream socket (LMTP's `unix:` listeners).
pub struct UnixBound {
    pub service: Service,
    pub path: PathBuf,
    pub listener: UnixListener,
}

/// Binds every `unix:` path of `[lmtp] listen`: a socket file left by an earlier run is
/// replaced (anything else at the path is refused); the socket is mode 0666, as Dovecot's
/// `lmtp` listener, so the MTA's user can connect.
pub fn bind_unix(config: &Config) -> anyhow::Result<Vec<UnixBound>> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let mut out = Vec::new();
    for l in &config.lmtp.listen {
        let LmtpListen::Unix(path) = l else { continue };
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                anyhow::bail!("cannot listen on unix:{}: not a socket", path.display());
            }
            std::fs::remove_file(path)
                .map_err(|e| anyhow::anyhow!("cannot replace {}: {e}", path.display()))?;
        }
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let listener = UnixListener::bind(path)
            .map_err(|e| anyhow::anyhow!("cannot listen on unix:{}: {e}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
            .map_err(|e| anyhow::anyhow!("chmod {}: {e}", path.display()))?;
        tracing::info!("LMTP listening on unix:{}", path.display());
        out.push(UnixBound {
            service: Service::Lmtp,
            path: path.clone(),
            listener,
        });
    }
    Ok(out)
}

/// Binds every `listen`, `tls_listen`, `proxy_listen` and `proxy_tls_listen` address of
/// `[imap]` and `[pop3]`, and the TCP addresses of `[lmtp] listen`.
pub async fn bind_all(config: &Config) -> anyhow::Result<Vec<Bound>> {
    let mut out = Vec::new();
    let lmtp: Vec<SocketAddr> = config
        .lmtp
        .listen
        .iter()
        .filter_map(|l| match l {
            LmtpListen::Tcp(a) => Some(*a),
            LmtpListen::Unix(_) => None,
        })
        .collect();
    let sets = [
        (Service::Imap4, false, false, &config.imap.listen),
        (Service::Imap4, true, false, &config.imap.tls_listen),
        (Service::Imap4, false, true, &config.imap.proxy_listen),
        (Service::Imap4, true, true, &config.imap.proxy_tls_listen),
        (Service::Pop3, false, false, &config.pop3.listen),
        (Service::Pop3, true, false, &config.pop3.tls_listen),
        (Service::Pop3, false, true, &config.pop3.proxy_listen),
        (Service::Pop3, true, true, &config.pop3.proxy_tls_listen),
        (Service::Lmtp, false, false, &lmtp),
    ];
    for (service, implicit_tls, proxy, addrs) in sets {
        for addr in addrs {
            let listener =
                listen(*addr).map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
            tracing::info!(
                "{} listening on {}{}",
                service.header_name(),
                listener.local_addr()?,
                match (implicit_tls, proxy) {
                    (false, false) => "",
                    (true, false) => " (TLS)",
                    (false, true) => " (PROXY)",
                    (true, true) => " (PROXY, TLS)",
                }
            );
            out.push(Bound {
                service,
                implicit_tls,
                proxy,
                internal: false,
                listener,
            });
        }
    }
    if let Some(cluster) = &config.cluster {
        let me = cluster.this_node();
        for (service, node_addr) in [(Service::Imap4, &me.imap), (Service::Pop3, &me.pop3)] {
            // Its own entry's IP, or 0.0.0.0 when the entry is a name (README.md, "Cluster").
            let addr = node_addr.bind_addr();
            let listener = listen(addr)
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (cluster internal): {e}"))?;
            tracing::info!(
                "{} listening on {} (cluster internal)",
                service.header_name(),
                listener.local_addr()?
            );
            out.push(Bound {
                service,
                implicit_tls: false,
                proxy: true,
                internal: true,
                listener,
            });
        }
    }
    Ok(out)
}

/// One `connect: imap://127.0.0.1:1143` line per TCP listener, for the operator who just
/// started the daemon (the URL forms `curl` takes).
fn log_connect_lines(listeners: &[Bound]) {
    for b in listeners.iter().filter(|b| !b.internal) {
        let Ok(addr) = b.listener.local_addr() else {
            continue;
        };
        let scheme = match (b.service, b.implicit_tls) {
            (Service::Imap4, false) => "imap",
            (Service::Imap4, true) => "imaps",
            (Service::Pop3, false) => "pop3",
            (Service::Pop3, true) => "pop3s",
            (Service::Lmtp, _) => "lmtp",
        };
        tracing::info!("connect: {scheme}://{addr}");
    }
}

/// Binds one listening socket. An IPv6 address is IPv6-only, so `0.0.0.0:N` and `[::]:N` can
/// both be listed (as with Dovecot's `listen = *, ::`).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Serves `listeners` until `shutdown` fires, then waits for sessions to end, at most the
/// grace period of the live config. The daemon and the tests both come through here (tests
/// bind `127.0.0.1:0` and fire `shutdown` themselves).
#[cfg_attr(not(feature = "test-support"), allow(dead_code))]
pub async fn serve(listeners: Vec<Bound>, handles: Handles, shutdown: CancellationToken) {
    serve_all(listeners, Vec::new(), handles, shutdown).await
}

/// [`serve`] with Unix stream listeners besides the TCP ones (LMTP's `unix:` sockets).
pub async fn serve_all(
    listeners: Vec<Bound>,
    unix: Vec<UnixBound>,
    handles: Handles,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let limiter = Arc::new(Limiter::default());
    for bound in unix {
        tracker.spawn(accept_unix(
            bound,
            handles.clone(),
            shutdown.clone(),
            limiter.clone(),
            tracker.clone(),
        ));
    }
    for bound in listeners {
        tracker.spawn(accept_loop(
            bound,
            handles.clone(),
            shutdown.clone(),
            limiter.clone(),
            tracker.clone(),
        ));
    }
    handles.serving.store(true, std::sync::atomic::Ordering::Release);
    shutdown.cancelled().await;
    handles.serving.store(false, std::sync::atomic::Ordering::Release);
    tracker.close();
    let grace = handles.live.load().config.limits.shutdown_grace;
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            "{} session(s) still running after the {:?} grace period; exiting anyway",
            tracker.len(),
            grace
        );
    }
    handles.protolog.shutdown();
}

async fn accept_loop(
    bound: Bound,
    handles: Handles,
    shutdown: CancellationToken,
    limiter: Arc<Limiter>,
    tracker: TaskTracker,
) {
    let bound = Arc::new(bound);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = bound.listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let local = match stream.local_addr() {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!("connection gone before the session started: {e}");
                continue;
            }
        };
        // The one read of the live config a session gets (ARCHITECTURE.md, "Configuration
        // and reload").
        let snapshot = handles.live.load_full();
        let socket = Endpoints {
            local,
            remote: peer,
            proxy_tls: false,
            via: None,
            internal: false,
            front: None,
        };
        if bound.internal {
            internal_accept(&bound, &handles, &shutdown, &limiter, &tracker, snapshot, stream, socket);
            continue;
        }
        if !bound.proxy {
            admit(&bound, &handles, &shutdown, &limiter, &tracker, snapshot, stream, socket);
            continue;
        }
        // A PROXY listener: only trusted senders, and the header (read on the connection's
        // own task, under its deadline) says who the client is before the limiter counts it.
        if !snapshot.config.proxy.trusts(peer.ip()) {
            crate::metrics::get().refused(bound.service, "untrusted_proxy");
            tracing::warn!(
                "{peer}: connection to PROXY listener {local} refused: not in proxy.trusted_networks"
            );
            drop(stream);
            continue;
        }
        let Some((waiting, stream)) = wait_permit(&bound, &limiter, &tracker, &snapshot, stream, local, peer) else {
            continue;
        };
        let (bound, handles, shutdown) = (bound.clone(), handles.clone(), shutdown.clone());
        let (limiter, tracker2) = (limiter.clone(), tracker.clone());
        tracker.spawn(async move {
            let mut stream = stream;
            let header = tokio::select! {
                h = crate::conn::proxy::read_header(&mut stream, crate::conn::proxy::HEADER_TIMEOUT) => h,
                _ = shutdown.cancelled() => return,
            };
            drop(waiting);
            let endpoints = match header {
                Ok(p) => {
                    let (remote, local) = p.addrs.unwrap_or((peer, local));
                    Endpoints {
                        local,
                        remote,
                        proxy_tls: p.client_tls,
                        via: p.addrs.map(|_| peer),
                        internal: false,
                        front: None,
                    }
                }
                Err(e) => {
                    crate::metrics::get().refused(bound.service, "proxy_header");
                    tracing::warn!("{peer}: connection to PROXY listener {local} closed: {e}");
                    return;
                }
            };
            admit(&bound, &handles, &shutdown, &limiter, &tracker2, snapshot, stream, endpoints);
        });
    }
}

/// A connection to this node's cluster internal listener (README.md, "Cluster"): only from
/// a node's address, and only with a PROXY v2 header (read on the connection's own task),
/// whose source is the client every later rule sees.
#[allow(clippy::too_many_arguments)]
fn internal_accept(
    bound: &Arc<Bound>,
    handles: &Handles,
    shutdown: &CancellationToken,
    limiter: &Arc<Limiter>,
    tracker: &TaskTracker,
    snapshot: Arc<Snapshot>,
    stream: TcpStream,
    socket: Endpoints,
) {
    let peer = socket.remote;
    let local = socket.local;
    let from_node = handles
        .cluster
        .as_ref()
        .is_some_and(|c| c.settings().is_node_ip(peer.ip().to_canonical()));
    if !from_node {
        crate::metrics::get().refused(bound.service, "not_a_node");
        tracing::warn!("{peer}: connection to cluster internal listener {local} refused: not a node's address");
        drop(stream);
        return;
    }
    let Some((waiting, stream)) = wait_permit(bound, limiter, tracker, &snapshot, stream, local, peer) else {
        return;
    };
    let (bound, handles, shutdown) = (bound.clone(), handles.clone(), shutdown.clone());
    let (limiter, tracker2) = (limiter.clone(), tracker.clone());
    tracker.spawn(async move {
        use crate::cluster::internal::{parse_front, FRONT_TLV};
        let mut stream = stream;
        let header = tokio::select! {
            h = crate::conn::proxy::read_internal_header(&mut stream, crate::conn::proxy::HEADER_TIMEOUT, FRONT_TLV) => h,
            _ = shutdown.cancelled() => return,
        };
        drop(waiting);
        let endpoints = match header {
            Ok((p, front)) => {
                let (remote, local) = p.addrs.unwrap_or((peer, local));
                Endpoints {
                    local,
                    remote,
                    proxy_tls: p.client_tls,
                    via: Some(peer),
                    internal: true,
                    front: front.as_deref().and_then(parse_front),
                }
            }
            Err(e) => {
                crate::metrics::get().refused(bound.service, "proxy_header");
                tracing::warn!("{peer}: connection to cluster internal listener {local} closed: {e}");
                return;
            }
        };
        admit(&bound, &handles, &shutdown, &limiter, &tracker2, snapshot, stream, endpoints);
    });
}

/// A connection still to send its PROXY header counts against `max_connections` while it
/// waits (at most `HEADER_TIMEOUT`), so that a flood of silent connections from a trusted
/// proxy or a node cannot outgrow the limit before any of them is admitted. Not against
/// `max_connections_per_ip`: every connection of a proxy comes from its one address, and
/// the client's own is not known yet. `None` when refused (the client is told so).
fn wait_permit(
    bound: &Bound,
    limiter: &Arc<Limiter>,
    tracker: &TaskTracker,
    snapshot: &Snapshot,
    stream: TcpStream,
    local: SocketAddr,
    peer: SocketAddr,
) -> Option<(Permit, TcpStream)> {
    match limiter.acquire(peer, snapshot.config.limits.max_connections, usize::MAX) {
        Ok(permit) => Some((permit, stream)),
        Err(reason) => {
            crate::metrics::get().refused(bound.service, reason);
            tracing::warn!(
                "{peer}: connection to {local} refused before its PROXY header, too many connections ({reason})"
            );
            tracker.spawn(refuse(stream, bound.service, bound.implicit_tls));
            None
        }
    }
}

/// Where a connection comes from and goes to, as every part after the accept sees it: the
/// socket's addresses, or on a PROXY listener those of the header (README.md, "Behind
/// HAProxy").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub local: SocketAddr,
    /// The client: what the per-address limit, the loopback rule, the failed-login penalty
    /// and the protocol log's `remote-endpoint` see.
    pub remote: SocketAddr,
    /// The PROXY header's SSL TLV: the client's connection to the proxy is TLS.
    pub proxy_tls: bool,
    /// The proxy's own address (the socket's peer) when a PROXY header gave the addresses.
    pub via: Option<SocketAddr>,
    /// A cluster internal listener's connection (master login accepted, never proxied).
    pub internal: bool,
    /// Its front node and front session id (the header's `FRONT_TLV`), when given.
    pub front: Option<(String, String)>,
}

/// Applies `max_connections` / `max_connections_per_ip` to the client's address and starts
/// the session, or refuses the connection.
#[allow(clippy::too_many_arguments)]
fn admit(
    bound: &Bound,
    handles: &Handles,
    shutdown: &CancellationToken,
    limiter: &Arc<Limiter>,
    tracker: &TaskTracker,
    snapshot: Arc<Snapshot>,
    stream: TcpStream,
    endpoints: Endpoints,
) {
    let limits = &snapshot.config.limits;
    let peer = endpoints.remote;
    let permit = match limiter.acquire(peer, limits.max_connections, limits.max_connections_per_ip) {
        Ok(p) => p,
        Err(reason) => {
            crate::metrics::get().refused(bound.service, reason);
            tracing::warn!("{peer}: connection refused, too many connections ({reason})");
            tracker.spawn(refuse(stream, bound.service, bound.implicit_tls));
            return;
        }
    };
    let (handles, shutdown) = (handles.clone(), shutdown.clone());
    let (service, implicit_tls) = (bound.service, bound.implicit_tls);
    tracker.spawn(async move {
        let socket = Socket::Tcp(stream);
        serve_socket(&handles, snapshot, socket, endpoints, service, implicit_tls, shutdown).await;
        drop(permit);
    });
}

/// The accept loop of a Unix stream listener: as [`accept_loop`], with an unspecified
/// client address (`0.0.0.0:0`), counted against `max_connections` only.
async fn accept_unix(
    bound: UnixBound,
    handles: Handles,
    shutdown: CancellationToken,
    limiter: Arc<Limiter>,
    tracker: TaskTracker,
) {
    let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = bound.listener.accept() => r,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("accept on unix:{} failed: {e}", bound.path.display());
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let snapshot = handles.live.load_full();
        let max = snapshot.config.limits.max_connections;
        let Ok(permit) = limiter.acquire(unspecified, max, usize::MAX) else {
            crate::metrics::get().refused(bound.service, "total");
            tracing::warn!("unix:{}: connection refused, too many connections", bound.path.display());
            continue;
        };
        let (handles, shutdown, service) = (handles.clone(), shutdown.clone(), bound.service);
        tracker.spawn(async move {
            let socket = Socket::Unix(stream);
            let addrs = Endpoints {
                local: unspecified,
                remote: unspecified,
                proxy_tls: false,
                via: None,
                internal: false,
                front: None,
            };
            serve_socket(&handles, snapshot, socket, addrs, service, false, shutdown).await;
            drop(permit);
        });
    }
}

/// Chooses the session by service and hands the connection to the driver; each session
/// gets the handles it uses (the POP3 one also the maildrop locks).
async fn serve_socket(
    handles: &Handles,
    snapshot: Arc<Snapshot>,
    stream: Socket,
    endpoints: Endpoints,
    service: Service,
    implicit_tls: bool,
    shutdown: CancellationToken,
) {
    // Fired by the driver when the peer goes away mid-command, and by shutdown.
    let cancel = shutdown.child_token();
    let Endpoints {
        local,
        remote,
        proxy_tls,
        via,
        internal,
        front,
    } = endpoints;
    let env = SessionEnv {
        snapshot: snapshot.clone(),
        store: handles.store.clone(),
        auth: handles.auth.clone(),
        penalty: handles.penalty.clone(),
        remote,
        tls: implicit_tls,
        proxy_tls,
        cancel: cancel.clone(),
        cluster: handles.cluster.clone(),
        internal,
        session_id: 0,
    };
    let conn = Connection {
        stream,
        service,
        implicit_tls,
        local,
        remote,
        via: via.map(|v| (v, proxy_tls)),
        front,
        snapshot,
        protolog: handles.protolog.clone(),
        shutdown,
        cancel,
        sessions: handles.sessions.clone(),
    };
    match service {
        Service::Pop3 => {
            let session = Pop3Session::new(env, handles.pop3_locks.clone());
            crate::conn::serve_session(conn, session).await
        }
        Service::Imap4 => crate::conn::serve_session(conn, ImapSession::new(env)).await,
        Service::Lmtp => crate::conn::serve_session(conn, LmtpSession::new(env)).await,
    }
}

/// Tells an over-limit client why it is refused (plain listeners only), then closes.
async fn refuse(mut stream: TcpStream, service: Service, implicit_tls: bool) {
    if implicit_tls {
        return;
    }
    let line: &[u8] = match service {
        Service::Pop3 => b"-ERR [SYS/TEMP] Too many connections, try again later.\r\n",
        Service::Imap4 => b"* BYE [UNAVAILABLE] Too many connections, try again later.\r\n",
        Service::Lmtp => b"421 4.3.2 Too many connections, try again later.\r\n",
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let _ = stream.write_all(line).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Counts connections, in all and per client address (`max_connections`,
/// `max_connections_per_ip`).
#[derive(Default)]
struct Limiter {
    inner: Mutex<LimiterState>,
}

#[derive(Default)]
struct LimiterState {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

struct Permit {
    limiter: Arc<Limiter>,
    ip: IpAddr,
}

impl Limiter {
    fn acquire(
        self: &Arc<Self>,
        peer: SocketAddr,
        max_total: usize,
        max_per_ip: usize,
    ) -> Result<Permit, &'static str> {
        let mut st = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let ip = peer.ip();
        let here = st.per_ip.get(&ip).copied().unwrap_or(0);
        if st.total >= max_total {
            return Err("total");
        }
        if here >= max_per_ip {
            return Err("per_ip");
        }
        st.total += 1;
        st.per_ip.insert(ip, here + 1);
        Ok(Permit {
            limiter: self.clone(),
            ip,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut st = self.limiter.inner.lock().unwrap_or_else(|p| p.into_inner());
        st.total -= 1;
        if let Some(n) = st.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                st.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ipv6_listeners_are_v6_only_so_v4_and_v6_wildcards_can_coexist() {
        let v6 = match listen("[::1]:0".parse().unwrap()) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("skipped: no IPv6 loopback here ({e})");
                return;
            }
        };
        assert!(socket2::SockRef::from(&v6).only_v6().unwrap());
        let v4 = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        assert!(v4.local_addr().unwrap().is_ipv4());
    }

    #[test]
    fn limiter_counts_total_and_per_ip() {
        let l = Arc::new(Limiter::default());
        let a: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let b: SocketAddr = "127.0.0.2:1000".parse().unwrap();
        let p1 = l.acquire(a, 3, 2).unwrap();
        let _p2 = l.acquire(a, 3, 2).unwrap();
        assert_eq!(l.acquire(a, 3, 2).err(), Some("per_ip"));
        let _p3 = l.acquire(b, 3, 2).unwrap();
        assert_eq!(l.acquire(b, 3, 2).err(), Some("total"));
        drop(p1);
        assert!(l.acquire(a, 3, 2).is_ok(), "released on drop");
    }
}
