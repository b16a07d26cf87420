//! Listeners, accept loop, connection caps, the live config snapshot and graceful drain.
//!
//! INTERFACE CONTRACT (used by `conn.rs` and the protocol sessions):
//! * [`Shared`] is built once per daemon; [`Shared::live`] is the only place the live config
//!   is read, with one `load_full()` per accepted connection, giving a [`Snapshot`].
//! * A session uses only its [`Snapshot`] until it ends.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use crate::auth::Users;
use crate::config::Config;
use crate::protolog::ProtoLog;
use crate::store::Store;

/// What a session gets when its connection is accepted, and keeps until it ends.
pub struct Snapshot {
    pub config: Config,
    /// TLS for STARTTLS/STLS and the implicit-TLS listeners, built with this config.
    pub tls: tokio_rustls::TlsAcceptor,
}

/// State shared by every session of the daemon.
pub struct Shared {
    /// The live snapshot; sessions call `load_full()` once, at accept.
    pub live: ArcSwap<Snapshot>,
    pub store: Arc<dyn Store>,
    pub users: Users,
    pub protolog: Arc<ProtoLog>,
    /// POP3 maildrops currently locked by a session (`-ERR [IN-USE]`).
    pub pop3_locks: Mutex<HashSet<String>>,
    /// Fired once at shutdown; every session watches it.
    pub shutdown: CancellationToken,
}

/// `mailserver run`: loads the config at `config_path`, binds every listener, serves until
/// SIGTERM/SIGINT, then drains. Errors are startup failures (bad config, bind failure).
pub async fn run_daemon(config_path: std::path::PathBuf) -> anyhow::Result<()> {
    let _ = config_path;
    todo!("server work")
}
