//! Client bytes → the connection framer (two chunkings) → LMTP command parsing
//! (`lmtp::command`), DATA-line unstuffing, recipient resolution and trace headers
//! (`lmtp::deliver`).
//!
//! Invariants: both chunkings frame alike; `parse` never panics, and a parsed path holds no
//! control character; a line dot-stuffed as a client sends it unstuffs back to itself and
//! never reads as the end of the data; `resolve` of a parsed RCPT path names a user that the
//! lookup was asked about, with a detail only when a delimiter is set; the trace headers of
//! any parsed paths are exactly their three header lines (no header injection).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailserver::conn::{Frame, Framer};
use mailserver::lmtp::command::{data_line, parse, Command};
use mailserver::lmtp::deliver::{resolve, trace_headers};
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

fn check_path(p: &str) {
    assert!(!p.chars().any(char::is_control), "control in path {p:?}");
}

fn check_line(line: &[u8], delimiter: &str) {
    // As a client sends a content line: a leading dot doubled.
    let mut stuffed = Vec::with_capacity(line.len() + 1);
    if line.starts_with(b".") {
        stuffed.push(b'.');
    }
    stuffed.extend_from_slice(line);
    assert_eq!(data_line(&stuffed), Some(line));
    let (from, to) = match parse(line) {
        Ok(Command::Mail { from, .. }) => (from, "u@x".to_string()),
        Ok(Command::Rcpt(to)) => (String::new(), to),
        _ => return,
    };
    check_path(&from);
    check_path(&to);
    let mut asked = Vec::new();
    let r = resolve(&to, delimiter, |n| {
        asked.push(n.to_string());
        Ok::<_, ()>(n.len() % 2 == 0)
    })
    .unwrap();
    if let Some(r) = r {
        assert!(asked.contains(&r.user));
        assert!(r.detail.is_none() || !delimiter.is_empty());
    }
    let h = trace_headers(Some(&from), &format!("<{to}>"), "by h with LMTP id 1");
    assert_eq!(
        h.iter().filter(|&&b| b == b'\n').count(),
        3,
        "header injection"
    );
    assert_eq!(
        h.iter().filter(|&&b| b == b'\r').count(),
        3,
        "header injection"
    );
}

fuzz_target!(|data: &[u8]| {
    let h = fnv(data);
    let limit = [16, 512, 4096][(h % 3) as usize];
    let whole = frame(&[data], limit);
    let cut = frame(&chunks(data, h >> 2, 1 + (h >> 40) as usize % 32), limit);
    assert_eq!(
        whole, cut,
        "frames differ between chunkings (limit {limit})"
    );
    let delimiter = ["+", "", "-", "+-"][((h >> 4) % 4) as usize];
    for f in &whole {
        if let Frame::Line(l) = f {
            check_line(l, delimiter);
        }
    }
});
