//! POP3 reply encoding. Pure: text and message bytes in, typed output pieces out.
//!
//! RFC 1939 §3: a multi-line response is the status line, then lines "byte-stuffed" (a line
//! beginning with `.` gets another `.` prepended), then the termination line `.`; every line
//! ends with CRLF. Message octets come from the store with CRLF endings already; a message
//! whose last line lacks its CRLF gets one before the terminator so `.` stands alone.
//! `TOP` (RFC 1939 §7) sends the header, the blank line, and the first `n` body lines.

use std::sync::Arc;

use crate::session::Output;

/// `+OK text` (a completion line).
pub fn ok(out: &mut Output, text: &str) {
    out.status(status_line(true, text));
}

/// `-ERR text` (a completion line).
pub fn err(out: &mut Output, text: &str) {
    out.status(status_line(false, text));
}

/// The bytes of a status line without CRLF; empty text gives a bare `+OK` / `-ERR`.
pub fn status_line(ok: bool, text: &str) -> Vec<u8> {
    let mut l = if ok {
        b"+OK".to_vec()
    } else {
        b"-ERR".to_vec()
    };
    if !text.is_empty() {
        l.push(b' ');
        l.extend_from_slice(text.as_bytes());
    }
    l
}

/// A multi-line listing: `+OK head`, each line stuffed, then `.`.
pub fn listing<I, S>(out: &mut Output, head: &str, lines: I)
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    ok(out, head);
    for l in lines {
        let l = l.as_ref().as_bytes();
        let mut v = Vec::with_capacity(l.len() + 1);
        if l.first() == Some(&b'.') {
            v.push(b'.');
        }
        v.extend_from_slice(l);
        out.reply(v);
    }
    out.reply(b".".to_vec());
}

/// A message (or part of one) as a multi-line body: `+OK head`, the stuffed content, `.`.
pub fn message(out: &mut Output, head: &str, data: &[u8]) {
    ok(out, head);
    if !data.is_empty() {
        out.content(Arc::from(dot_stuff(data)));
    }
    out.reply(b".".to_vec());
}

/// A whole message from the store: sent from the store's own buffer when it needs no
/// stuffing and ends with CRLF (the common case), else stuffed into a copy.
pub fn message_shared(out: &mut Output, head: &str, data: Arc<[u8]>) {
    if needs_stuffing(&data) {
        message(out, head, &data);
        return;
    }
    ok(out, head);
    if !data.is_empty() {
        out.content(data);
    }
    out.reply(b".".to_vec());
}

/// True if [`dot_stuff`] would change `data`.
pub fn needs_stuffing(data: &[u8]) -> bool {
    if data.is_empty() {
        return false;
    }
    !data.ends_with(b"\r\n") || data[0] == b'.' || data.windows(2).any(|w| w == b"\n.")
}

/// Byte-stuffs `data` (RFC 1939 §3) and makes it end with CRLF (unless empty).
pub fn dot_stuff(data: &[u8]) -> Vec<u8> {
    let dots = data
        .split(|&b| b == b'\n')
        .filter(|l| l.first() == Some(&b'.'))
        .count();
    let mut v = Vec::with_capacity(data.len() + dots + 2);
    let mut at_line_start = true;
    for &b in data {
        if at_line_start && b == b'.' {
            v.push(b'.');
        }
        v.push(b);
        at_line_start = b == b'\n';
    }
    if !data.is_empty() && !data.ends_with(b"\r\n") {
        if data.ends_with(b"\r") {
            v.push(b'\n');
        } else {
            v.extend_from_slice(b"\r\n");
        }
    }
    v
}

/// The part of `msg` that `TOP n lines` sends: the header, the empty line that ends it, and
/// the first `lines` lines of the body. A message without a blank line is all header.
pub fn top(msg: &[u8], lines: u32) -> &[u8] {
    let body_start = if msg.starts_with(b"\r\n") {
        2
    } else {
        match msg.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(i) => i + 4,
            None => return msg,
        }
    };
    let mut end = body_start;
    for _ in 0..lines {
        if end >= msg.len() {
            break;
        }
        end = match msg[end..].iter().position(|&b| b == b'\n') {
            Some(i) => end + i + 1,
            None => msg.len(),
        };
    }
    &msg[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Piece;
    use crate::protolog::LineKind;

    #[test]
    fn status_lines() {
        assert_eq!(status_line(true, ""), b"+OK");
        assert_eq!(status_line(true, "2 320"), b"+OK 2 320");
        assert_eq!(
            status_line(false, "No such message."),
            b"-ERR No such message."
        );
    }

    #[test]
    fn dot_stuffing() {
        assert_eq!(dot_stuff(b""), b"");
        assert_eq!(dot_stuff(b"a\r\n"), b"a\r\n");
        assert_eq!(dot_stuff(b".\r\n"), b"..\r\n");
        assert_eq!(
            dot_stuff(b".hidden\r\nx.y\r\n..two\r\n.\r\n"),
            b"..hidden\r\nx.y\r\n...two\r\n..\r\n"
        );
        // Missing final CRLF is added so the terminator stands alone.
        assert_eq!(dot_stuff(b"a\r\nb"), b"a\r\nb\r\n");
        assert_eq!(dot_stuff(b"a\r\n."), b"a\r\n..\r\n");
        assert_eq!(dot_stuff(b"a\r"), b"a\r\n");
    }

    #[test]
    fn multi_line_message_encoding() {
        let mut out = Output::default();
        message(&mut out, "12 octets", b"S: x\r\n\r\n.end\r\n");
        assert_eq!(out.encode(), b"+OK 12 octets\r\nS: x\r\n\r\n..end\r\n.\r\n");
        assert!(matches!(&out.pieces[0], Piece::Line(LineKind::Status, _)));
        assert!(matches!(&out.pieces[1], Piece::Content(_)));
        assert!(matches!(&out.pieces[2], Piece::Line(LineKind::Reply, l) if l == b"."));
    }

    #[test]
    fn listing_encoding() {
        let mut out = Output::default();
        listing(&mut out, "2 messages", ["1 120", "2 200"]);
        assert_eq!(out.encode(), b"+OK 2 messages\r\n1 120\r\n2 200\r\n.\r\n");
        let mut out = Output::default();
        listing(&mut out, "", [".odd"]);
        assert_eq!(out.encode(), b"+OK\r\n..odd\r\n.\r\n");
    }

    #[test]
    fn shared_message_is_not_copied_unless_it_must_be() {
        let plain: Arc<[u8]> = Arc::from(&b"A: b\r\n\r\nbody\r\n"[..]);
        let mut out = Output::default();
        message_shared(&mut out, "x", plain.clone());
        assert!(matches!(&out.pieces[1], Piece::Content(c) if Arc::ptr_eq(c, &plain)));
        for needs in [&b".x\r\n"[..], b"a\r\n.b\r\n", b"a\r\nno end"] {
            assert!(needs_stuffing(needs));
            let mut a = Output::default();
            message_shared(&mut a, "x", Arc::from(needs));
            let mut b = Output::default();
            message(&mut b, "x", needs);
            assert_eq!(a.encode(), b.encode());
        }
        assert!(!needs_stuffing(b""));
        assert!(!needs_stuffing(b"a.b\r\n"));
        let mut out = Output::default();
        message_shared(&mut out, "0 octets", Arc::from(&b""[..]));
        assert_eq!(out.encode(), b"+OK 0 octets\r\n.\r\n");
    }

    #[test]
    fn top_lines() {
        let m = b"From: a\r\nSubject: b\r\n\r\nl1\r\nl2\r\nl3\r\n";
        assert_eq!(top(m, 0), b"From: a\r\nSubject: b\r\n\r\n");
        assert_eq!(top(m, 1), b"From: a\r\nSubject: b\r\n\r\nl1\r\n");
        assert_eq!(top(m, 3), &m[..]);
        assert_eq!(top(m, 100), &m[..]);
        assert_eq!(top(b"From: a\r\n", 5), b"From: a\r\n");
        assert_eq!(top(b"\r\nbody\r\nmore\r\n", 1), b"\r\nbody\r\n");
        assert_eq!(top(b"H: v\r\n\r\nno newline", 1), b"H: v\r\n\r\nno newline");
    }
}
