//! Client bytes → the connection framer (two chunkings) → POP3 command parsing
//! (`pop3::command`), redaction and the SASL follow-up check; and the same bytes as message
//! content → byte-stuffing and `TOP` (`pop3::reply`).
//!
//! Invariants: both chunkings frame alike; a parsed PASS/APOP/AUTH secret is hidden by
//! [`redact`] (everything from the secret on is replaced); stuffed content read back as a
//! client does (lines up to the lone `.`) gives the message, with a final CRLF added;
//! `TOP` gives a prefix that keeps the whole header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailserver::conn::{Frame, Framer};
use mailserver::pop3::command::{auth_awaits_response, parse, redact, Command};
use mailserver::pop3::reply::{dot_stuff, needs_stuffing, top};
use mailserver_fuzz::{chunks, fnv};

fn frame(pieces: &[&[u8]], limit: usize) -> Vec<Frame> {
    let mut f = Framer::new(limit);
    let mut out = Vec::new();
    for p in pieces {
        f.push(p);
        while let Some(fr) = f.next_line() {
            out.push(fr);
        }
    }
    out
}

fn check_line(line: &[u8]) {
    let red = redact(line);
    let _ = auth_awaits_response(line);
    if let Some(r) = &red {
        assert!(r.ends_with(b" ***"));
        let keep = r.len() - 4;
        assert_eq!(&r[..keep], &line[..keep]);
    }
    // Where the secret starts: arguments are separated by single spaces (RFC 1939 §3).
    let secret_at = match parse(line) {
        Ok(Command::Pass(_)) => Some(5),
        Ok(Command::Apop { user, .. }) => Some(5 + user.len() + 1),
        Ok(Command::Auth {
            mechanism: Some(m),
            initial: Some(i),
        }) => (i.expose().bytes().any(|b| !b.is_ascii_whitespace())).then(|| 5 + m.len() + 1),
        _ => None,
    };
    if let Some(at) = secret_at {
        let r = red.unwrap_or_else(|| {
            panic!(
                "secret line not redacted: {:?}",
                String::from_utf8_lossy(line)
            )
        });
        assert!(
            r.len() - 4 <= at,
            "redaction {:?} keeps part of the secret of {:?}",
            String::from_utf8_lossy(&r),
            String::from_utf8_lossy(line)
        );
    }
}

/// Reads a stuffed multi-line body as a POP3 client does: lines (LF-terminated) until a
/// line that is exactly `.` CRLF, each leading `.` removed. `None` if it never ends.
fn unstuff(wire: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < wire.len() {
        let end = wire[at..].iter().position(|&b| b == b'\n')? + at + 1;
        let line = &wire[at..end];
        at = end;
        if line == b".\r\n" {
            return Some((out, at));
        }
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    None
}

fuzz_target!(|data: &[u8]| {
    let h = fnv(data);
    let limit = [16, 255, 4096][(h % 3) as usize];
    let whole = frame(&[data], limit);
    let cut = frame(&chunks(data, h >> 2, 1 + (h >> 40) as usize % 32), limit);
    assert_eq!(
        whole, cut,
        "frames differ between chunkings (limit {limit})"
    );
    for f in &whole {
        if let Frame::Line(l) = f {
            check_line(l);
        }
    }

    // The bytes as a message: stuffed, terminated, read back.
    let stuffed = dot_stuff(data);
    assert_eq!(needs_stuffing(data), stuffed != data);
    if !data.is_empty() {
        let mut wire = stuffed.clone();
        wire.extend_from_slice(b".\r\n");
        let (back, used) = unstuff(&wire).expect("the terminator is not found");
        assert_eq!(
            used,
            wire.len(),
            "a line of the message ended the response early"
        );
        let mut want = data.to_vec();
        if !want.ends_with(b"\r\n") {
            if want.ends_with(b"\r") {
                want.push(b'\n');
            } else {
                want.extend_from_slice(b"\r\n");
            }
        }
        assert_eq!(back, want);
    }
    let n = (h >> 8) as u32 % 8;
    let t = top(data, n);
    assert!(data.starts_with(t));
    if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
        if !data.starts_with(b"\r\n") {
            assert!(t.len() >= i + 4, "TOP cut the header");
        }
    }
});
