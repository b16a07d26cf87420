//! POP3 (RFC 1939), with CAPA/RESP-CODES/PIPELINING (RFC 2449), STLS (RFC 2595), AUTH
//! (RFC 5034, PLAIN per RFC 4616) and RFC 3206 response codes.
//!
//! This module owns the protocol only: [`command`] parses a line (pure), [`reply`] encodes
//! replies (pure), [`session`] is the state machine. The socket, framing, TLS, timeouts and
//! the protocol-log tee belong to `crate::conn`.

pub mod command;
pub mod reply;
pub mod session;

pub use session::{MaildropLocks, Pop3Session};
