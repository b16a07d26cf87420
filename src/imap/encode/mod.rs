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

/// A UID set in the compact form of RFC 4315 §4 `uid-set` (`4,7:9`).
pub(crate) fn uid_set(uids: &[u32]) -> String {
    let mut s = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end.wrapping_add(1) {
            end = uids[i + 1];
            i += 1;
        }
        if !s.is_empty() {
            s.push(',');
        }
        if start == end {
            s.push_str(&start.to_string());
        } else {
            s.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    s
}
