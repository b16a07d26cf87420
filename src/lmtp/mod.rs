//! LMTP (RFC 2033) with 8BITMIME (RFC 6152), ENHANCEDSTATUSCODES (RFC 2034), PIPELINING
//! (RFC 2920), CHUNKING (RFC 3030) and SIZE (RFC 1870), and the LDA (`mailserver deliver`).
//!
//! This module owns the protocol only: [`command`] parses a line (pure), [`session`] is the
//! state machine, [`deliver`] maps recipients to users and folders and saves one copy (shared
//! with the LDA, [`lda`]). The socket, framing, timeouts and the protocol-log tee belong to
//! `crate::conn`. Quota is not enforced yet: a copy is refused only by the store itself
//! (`ENOSPC`/`EDQUOT` → `451 4.3.0`).

pub mod command;
pub mod deliver;
pub mod lda;
pub mod session;

pub use session::LmtpSession;
