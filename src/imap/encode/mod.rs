//! IMAP response encoding (RFC 3501 §4.3 strings, §7.4.2 FETCH items), written to match
//! Dovecot's choices byte for byte where clients could notice (Dovecot's `lib-imap`).
//!
//! Layered one way: [`quote`] is the leaf (strings, `NIL`); [`envelope`] and
//! [`bodystructure`] write values computed from a parsed message; [`fetch`] assembles the
//! `* n FETCH (...)` response.

pub mod bodystructure;
pub mod envelope;
pub mod fetch;
pub mod quote;
