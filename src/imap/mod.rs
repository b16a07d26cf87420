//! IMAP4rev1 (RFC 3501): the sans-IO core — command framing and decoding, MIME structure
//! for FETCH, SEARCH evaluation, response encoding.

pub mod encode;
pub mod framing;
pub mod mime;
pub mod search;
