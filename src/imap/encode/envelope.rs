//! ENVELOPE (RFC 3501 §7.4.2) of a parsed message, written as Dovecot 2.3 writes it
//! (`imap-envelope.c`): raw header values, encoded words untouched, a repeated string field
//! counted by its last occurrence, repeated address fields added up, address groups as RFC
//! 3501 §7.4.2 says.

use super::quote::{push_nstring, push_nstring_nolf, push_string_for_humans};
use crate::mime::{fields, parse_addresses, Address, Message, Part};

/// Writes the ENVELOPE of the message (RFC 3501 §7.4.2).
pub fn write_envelope(msg: &Message<'_>, out: &mut Vec<u8>) {
    write_part_envelope(msg.raw, &msg.root, out);
}

/// The ENVELOPE of the message whose header is `msg.header` (the root, or the message a
/// message/rfc822 part encapsulates).
pub(super) fn write_part_envelope(raw: &[u8], msg: &Part, out: &mut Vec<u8>) {
    let fs = fields(raw, msg.header.clone());
    // Dovecot: a repeated string field counts by its last occurrence...
    let last = |name: &str| -> Option<&[u8]> {
        fs.iter()
            .rev()
            .find(|f| f.name.eq_ignore_ascii_case(name.as_bytes()))
            .map(|f| f.value)
    };
    // ...and repeated address fields add up.
    let addrs = |name: &str| -> Vec<Address> {
        fs.iter()
            .filter(|f| f.name.eq_ignore_ascii_case(name.as_bytes()))
            .flat_map(|f| parse_addresses(f.value))
            .collect()
    };
    out.push(b'(');
    push_nstring_nolf(out, last("Date"));
    out.push(b' ');
    match last("Subject") {
        Some(v) => push_string_for_humans(out, trim_leading_ws(v)),
        None => out.extend_from_slice(b"NIL"),
    }
    let from = addrs("From");
    for name in ["From", "Sender", "Reply-To"] {
        out.push(b' ');
        let own = addrs(name);
        // RFC 3501 §7.4.2: sender and reply-to default to from.
        write_addresses(out, if own.is_empty() { &from } else { &own });
    }
    for name in ["To", "Cc", "Bcc"] {
        out.push(b' ');
        write_addresses(out, &addrs(name));
    }
    out.push(b' ');
    push_nstring_nolf(out, last("In-Reply-To"));
    out.push(b' ');
    push_nstring_nolf(out, last("Message-ID"));
    out.push(b')');
}

fn trim_leading_ws(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b'\r' | b'\n', rest @ ..] = s {
        s = rest;
    }
    s
}

fn write_addresses(out: &mut Vec<u8>, list: &[Address]) {
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for a in list {
        out.push(b'(');
        match &a.name {
            Some(n) => push_string_for_humans(out, n),
            None => out.extend_from_slice(b"NIL"),
        }
        out.push(b' ');
        push_nstring(out, a.adl.as_deref());
        out.push(b' ');
        push_nstring(out, a.mailbox.as_deref());
        out.push(b' ');
        push_nstring(out, a.host.as_deref());
        out.push(b')');
    }
    out.push(b')');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mime::parse;
    use crate::mime::samples::PLAIN;

    fn env(raw: &[u8]) -> String {
        let m = parse(raw);
        let mut out = Vec::new();
        write_envelope(&m, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn plain_envelope() {
        assert_eq!(
            env(PLAIN),
            r#"("Fri, 27 Nov 2026 10:00:00 +0000" "hi" (("Alice" NIL "alice" "example.org")) (("Alice" NIL "alice" "example.org")) (("Alice" NIL "alice" "example.org")) ((NIL NIL "bob" "example.net")) NIL NIL NIL "<1@x>")"#
        );
    }
}
