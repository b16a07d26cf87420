//! MIME structure of a stored message, computed from its raw CRLF bytes. Knows nothing of
//! IMAP: the IMAP writers (ENVELOPE, BODYSTRUCTURE, sections) sit on top of it, as Dovecot's
//! `lib-imap` sits on `lib-mail`.
//!
//! Owns: splitting a message into parts with byte ranges (header, body) following RFC 2045
//! (Content-Type, Content-Transfer-Encoding), RFC 2046 §5.1 (multipart boundaries: the CRLF
//! before a delimiter line belongs to the delimiter) and §5.2.1 (message/rfc822) in
//! `parser.rs`; header fields and unfolding (`header.rs`); the tokens of structured values
//! (`lexer.rs`); Content-Type parameters with RFC 2231 continuations (`content_type.rs`);
//! RFC 5322 address lists (`address.rs`).
//!
//! Why not mail-parser's tree: it decodes header values and its part offsets differ from the
//! RFC 2046 ranges IMAP needs (and Dovecot serves); a direct scanner over the raw bytes keeps
//! every range exact. mail-parser is used for charset decoding in SEARCH.
//!
//! Malformed MIME never fails: a missing Content-Type is text/plain; a multipart without a
//! boundary parameter is a leaf; a missing end boundary ends the part at the end of its parent;
//! a header without its blank line is all header. Nesting is capped at [`MAX_DEPTH`].

mod address;
mod content_type;
mod header;
mod lexer;
mod parser;
#[cfg(test)]
pub(crate) mod samples;

pub use address::{parse_addresses, Address};
pub use content_type::parse_content_type;
pub use header::{fields, header_value, unfold};
pub(crate) use lexer::{Lexer, Tok, TSPECIALS};
pub use parser::{parse, unparsed, Kind, Message, Part};
