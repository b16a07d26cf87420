//! `mailserver`: POP3 and IMAP4 on Maildir++, with protocol logging as Microsoft Exchange 5.5
//! documented it in KB Q182504. `ARCHITECTURE.md` describes the parts; this is the module map.
//!
//! The modules are crate-private, so the compiler reports dead code; the `mailserver` binary
//! uses the few items re-exported at the bottom. The integration tests and benches turn on
//! the `test-support` feature (through the package's dev-dependency on itself), which makes
//! the modules public for them.
#![forbid(unsafe_code)]

/// Declares a module `pub` with the `test-support` feature and `pub(crate)` without it.
macro_rules! internal {
    ($($(#[$doc:meta])* mod $name:ident;)*) => {$(
        $(#[$doc])*
        #[cfg(feature = "test-support")]
        pub mod $name;
        $(#[$doc])*
        #[cfg(not(feature = "test-support"))]
        pub(crate) mod $name;
    )*};
}

internal! {
    /// The admin socket and the `doveadm`-style commands (`who`, `kick`, `mailbox`, ...).
    mod admin;
    /// Users (Dovecot passwd-file), password schemes, failure delay, `Secret<T>`.
    mod auth;
    /// The cluster: user ownership (rendezvous hashing), membership, the login proxy.
    mod cluster;
    /// CLI-independent configuration: raw TOML -> validated `Config`, the
    /// `[ParametersSystem]` registry schema, hot reload and the `reg` CLI.
    mod config;
    /// The one connection driver both protocols share: framing, TLS upgrade, timeouts, log tee.
    mod conn;
    /// IMAP4rev1 (RFC 3501) with the extensions real clients expect.
    mod imap;
    /// LMTP (RFC 2033) delivery and the LDA (`mailserver deliver`).
    mod lmtp;
    /// The OpenMetrics series and the `/metrics`, `/healthz`, `/readyz` listener.
    mod metrics;
    /// MIME structure of a message with byte offsets (RFC 2045, 2046, 2231, 5322); knows no
    /// IMAP (Dovecot's lib-mail).
    mod mime;
    /// POP3 (RFC 1939, 2449, 2595, 5034).
    mod pop3;
    /// The KB Q182504 protocol log: file naming, flock, header, levels, CSV records.
    mod protolog;
    /// Reading the protocol logs: `mailserver protolog ls|show|stats` (merge, filters,
    /// transcript, JSON, follow, statistics).
    mod protolog_read;
    /// Listeners, accept loop, connection caps, choosing the protocol, graceful drain.
    mod server;
    /// Leaf types every part shares (`Service`).
    mod service;
    /// The daemon's live session table (`mailserver who`, `kick`).
    mod sessions;
    /// The contract between the driver and the protocol sessions: `Session`, `Output`,
    /// `Step`, and what a session is given (`SessionEnv`, `Snapshot`, `Authenticator`).
    mod session;
    /// Mail storage behind a narrow trait; Maildir++ with Dovecot-compatible metadata.
    mod store;
    /// systemd `sd_notify` integration (READY, RELOADING, STOPPING, WATCHDOG).
    mod systemd;
    /// TLS server configuration: certificate files or a generated self-signed pair.
    mod tls;
    /// The embedded default's first-run welcome message for the demo user.
    mod welcome;
}

// What the `mailserver` binary (src/main.rs) uses.
pub use auth::{hash_password, load_users_file};
pub use config::marker::describe as data_marker_text;
pub use config::registry::RegType;
pub use config::{escape_controls, load as load_config, regedit, render_effective, Config};
pub use lmtp::lda::{deliver, DeliverArgs};
/// The exit code of a `mailserver deliver` usage error (`EX_USAGE`).
pub fn lda_usage_exit() -> u8 {
    lmtp::lda::EX_USAGE
}
pub use admin::{cli as admin_cli, Request as AdminRequest};
pub use server::run_daemon;
/// `mailserver protolog` (src/main.rs parses the arguments).
pub mod protolog_cli {
    pub use crate::protolog_read::config_dirs;
    pub use crate::protolog_read::show::{
        ls_text, parse_events, parse_time, service_name, show, stats, Filter, Format, ShowOptions,
    };
}
