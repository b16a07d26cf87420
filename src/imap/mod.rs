//! IMAP4rev1 (RFC 3501): the sans-IO core — command framing and decoding, MIME structure
//! for FETCH, SEARCH evaluation, response encoding — and the session with its command
//! handlers (`session.rs`, `cmd/`).

pub mod cmd;
pub mod encode;
pub mod framing;
pub mod mime;
pub mod search;
pub mod section;
pub mod session;
