//! IMAP4rev1 (RFC 3501). Layered one way, bottom up:
//!
//! * `decode` (command edges and imap-codec decoding), `section` (FETCH body sections),
//!   `binary` (RFC 3516 BINARY content),
//!   `encode/` (quoting, ENVELOPE, BODYSTRUCTURE and the FETCH writer, on top of
//!   [`crate::mime`]), `flags`, `search` (SEARCH evaluation), `sortkey` and `thread` (what
//!   SORT compares, THREAD trees) — know nothing of sessions;
//! * `state` — the session struct, its states, the tagged completion and announcements;
//! * `cmd/` — the handlers, one file per command family, over `state` and the store;
//! * `commands` — the command table (name, states, announcements, handler);
//! * `session` — assembling commands from the driver's lines and literals, the `Session`
//!   impl the connection driver runs.

pub mod binary;
pub mod cmd;
pub mod commands;
pub mod decode;
pub mod encode;
pub mod flags;
pub mod search;
pub mod section;
pub mod session;
pub mod sortkey;
pub mod state;
pub mod thread;
