//! `mailserver`: POP3 and IMAP4 on Maildir++, with protocol logging as Microsoft Exchange 5.5
//! documented it in KB Q182504. The design is in `ARCHITECTURE.md`; this is the module map.
#![forbid(unsafe_code)]

/// Users (Dovecot passwd-file), password schemes, failure delay, `Secret<T>`.
pub mod auth;
/// CLI-independent configuration: raw TOML -> validated [`config::Config`], the
/// `[ParametersSystem]` registry schema, hot reload and the `reg` CLI.
pub mod config;
/// The one connection driver both protocols share: framing, TLS upgrade, timeouts, log tee.
pub mod conn;
/// IMAP4rev1 (RFC 3501) with the extensions real clients expect.
pub mod imap;
/// MIME structure of a message (parts, byte ranges, header fields, addresses); no IMAP.
pub mod mime;
/// POP3 (RFC 1939, 2449, 2595, 5034).
pub mod pop3;
/// The KB Q182504 protocol log: file naming, flock, header, levels, CSV records.
pub mod protolog;
/// Listeners, accept loop, connection caps, the live config snapshot, graceful drain.
pub mod server;
/// Mail storage behind a narrow trait; Maildir++ with Dovecot-compatible metadata.
pub mod store;
/// systemd `sd_notify` integration (READY, RELOADING, STOPPING, WATCHDOG).
pub mod systemd;
/// TLS server configuration: certificate files or a generated self-signed pair.
pub mod tls;

pub use server::run_daemon;
