//! IMAP4rev1 (RFC 3501): the sans-IO core — command framing and decoding, FETCH sections and
//! response encoding on top of the MIME parser ([`crate::mime`]), SEARCH evaluation — and the
//! session with its command handlers (`session.rs`, `cmd/`).

pub mod cmd;
pub mod encode;
pub mod framing;
pub mod search;
pub mod section;
pub mod session;
