//! Protocol logging exactly as KB Q182504 documents it (SPEC §5).
//!
//! INTERFACE CONTRACT (implemented by the protolog work; used by `conn.rs`):
//! * [`ProtoLog`] is created once per daemon and holds one sink per [`Service`].
//! * [`ProtoLog::session_start`] is the **only** place files open/close. It is called once
//!   per accepted connection with that session's config snapshot.
//! * The returned [`SessionLog`] filters by the level of *that* snapshot.

use std::net::SocketAddr;

/// The two services that log (the `#Service:` header line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Pop3,
    Imap4,
}

impl Service {
    /// The name written in `#Service:`.
    pub fn header_name(self) -> &'static str {
        match self {
            Service::Pop3 => "POP3",
            Service::Imap4 => "IMAP4",
        }
    }
}

/// What a line is, as decided by the session that parsed or produced it (STYLE principle 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// A client command line (level 2+).
    Command,
    /// A client line holding a secret; the bytes passed are already redacted by the session
    /// (e.g. `PASS ***`, `***` for an AUTH continuation). Logged at level 2+.
    Secret,
    /// A server completion line: POP3 `+OK`/`-ERR`, IMAP tagged OK/NO/BAD, continuation `+`
    /// (level 3+).
    Status,
    /// Any other server line: IMAP untagged, POP3 multi-line listing lines (level 4+).
    Reply,
}

/// Direction of message content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

/// One per daemon: the POP3 and IMAP4 sinks, each holding at most one open file.
pub struct ProtoLog {
    // implementation: protolog work
}

impl ProtoLog {
    pub fn new() -> std::sync::Arc<ProtoLog> {
        std::sync::Arc::new(ProtoLog {})
    }

    /// Called at each session start with that session's snapshot: performs the open/close
    /// transitions of SPEC §5 for `service`, then returns the session's logger (which writes
    /// the `+` connect record). Never fails: errors go to the daemon log.
    pub fn session_start(
        &self,
        service: Service,
        config: &crate::config::Config,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> SessionLog {
        let _ = (service, config, local, remote);
        SessionLog {}
    }
}

/// A session's view of its service's log, at the level of its own snapshot.
pub struct SessionLog {
    // implementation: protolog work
}

impl SessionLog {
    /// The level from the session's snapshot (0 = writes nothing).
    pub fn level(&self) -> u32 {
        0
    }
    /// A client line (without CRLF); `Secret` lines arrive already redacted.
    pub fn client(&mut self, kind: LineKind, line: &[u8]) {
        let _ = (kind, line);
    }
    /// A server line (without CRLF).
    pub fn server(&mut self, kind: LineKind, line: &[u8]) {
        let _ = (kind, line);
    }
    /// Message content (POP3 RETR/TOP body, IMAP literals): level 4 writes one record
    /// `<literal N octets>`, level 5 one record per line.
    pub fn content(&mut self, dir: Direction, data: &[u8]) {
        let _ = (dir, data);
    }
    /// A `*` information record (level 1+): TLS established, auth success/failure.
    pub fn info(&mut self, text: &str) {
        let _ = text;
    }
    /// The `-` disconnect record with duration and byte counts; flushes.
    pub fn end(self, bytes_in: u64, bytes_out: u64) {
        let _ = (bytes_in, bytes_out);
    }
}
