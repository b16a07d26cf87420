//! LMTP (RFC 2033) with 8BITMIME (RFC 6152), ENHANCEDSTATUSCODES (RFC 2034), PIPELINING
//! (RFC 2920), CHUNKING (RFC 3030) and SIZE (RFC 1870), and the LDA (`mailserver deliver`).
//!
//! This module owns the protocol only: [`command`] parses a line (pure), [`session`] is the
//! state machine, [`deliver`] maps recipients to users and folders and saves one copy (shared
//! with the LDA, [`lda`]). The socket, framing, timeouts and the protocol-log tee belong to
//! `crate::conn`. A copy over the user's quota is refused by the store (`OverQuota`) when it
//! is saved: `552 5.2.2`, or `452 4.2.2` / exit 75 with `quota.full_tempfail` (`deliver`:
//! exit 77); a full disk (`ENOSPC`/`EDQUOT`) is `451 4.3.0`.

pub mod command;
pub mod deliver;
pub mod lda;
pub mod session;

pub use session::LmtpSession;
