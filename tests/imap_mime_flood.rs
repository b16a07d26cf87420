//! MIME floods against the real `mailserver` binary over loopback (the "hostile input"
//! issue): a message anyone can send, with tens of thousands of RFC 2231 parameters in its
//! `Content-Type` or of RFC 2047 encoded words in its `Subject`, is APPENDed; `FETCH
//! BODYSTRUCTURE`, `ENVELOPE` and `SEARCH SUBJECT` on it answer correctly and cheaply: the
//! daemon's CPU time per command (from `/proc/PID/stat`, `tests/common/procstat.rs`) stays
//! far under a generous ceiling (they took seconds to minutes when the parsers were
//! quadratic), so does its RSS growth, and another session keeps answering. The figures
//! are printed (`--nocapture`). Every wait is bounded.

mod common;

use std::time::Duration;

use common::imap::Client;
use common::procstat::{cpu_time, Meter};

const WAIT: Duration = Duration::from_secs(120);

/// A message with `content_type` and `subject` as given (each a few hundred KB).
fn flood_message(subject: &str, content_type: &str) -> String {
    format!(
        "From: Mallory <m@example.org>\r\nTo: alice@imap.test\r\nSubject: {subject}\r\nContent-Type: {content_type}\r\n\r\nbody\r\n"
    )
}

/// Measured in a debug build: 0.01–0.08 s of CPU per command, RSS +12–22 MB at peak for the
/// five (messages read, derived data cached). Bounds: 3 s of CPU per command (the
/// quadratic parsers took 13 s per FETCH), 64 MB of RSS growth.
#[test]
fn parameter_and_encoded_word_floods_answer_cheaply() {
    const CPU_BOUND: Duration = Duration::from_secs(3);
    const RSS_BOUND_KIB: u64 = 64 * 1024;
    let d = common::Daemon::start();
    let addr = d.imap.unwrap();
    let mut c = Client::login(addr, WAIT);
    let mut other = Client::login(addr, WAIT);
    other.ok("s SELECT INBOX", "s");

    // 1: 30,000 continuation parameters (~350 KB) and 20,000 closed encoded words (~280 KB).
    let params: String = (0..30_000).map(|i| format!("; p{i}*0=x")).collect();
    let words = "=?utf-8?q?a?= ".repeat(20_000);
    let m1 = flood_message(words.trim_end(), &format!("text/plain{params}"));
    // 2: 30,000 encoded words that never close (~360 KB).
    let m2 = flood_message("=?utf-8?q?a ".repeat(30_000).trim_end(), "text/plain");
    for (i, m) in [&m1, &m2].into_iter().enumerate() {
        assert!(m.len() > 300_000);
        c.send(format!("p{i} APPEND INBOX {{{}}}\r\n", m.len()).as_bytes());
        assert_eq!(c.line(), "+ OK");
        c.send(m.as_bytes());
        c.send(b"\r\n");
        let (_, done) = c.until_tagged(&format!("p{i}"));
        assert!(done.starts_with(&format!("p{i} OK")), "{done}");
    }
    c.ok("s SELECT INBOX", "s");

    let meter = Meter::start(d.pid());
    let mut answers = Vec::new();
    for (i, cmd) in [
        "FETCH 1 BODYSTRUCTURE",
        "FETCH 2 BODYSTRUCTURE",
        "FETCH 1:2 ENVELOPE",
        "SEARCH SUBJECT x",
        "SEARCH SUBJECT aaaa",
        "SEARCH SUBJECT \"?q?a =?utf\"",
    ]
    .into_iter()
    .enumerate()
    {
        let before = cpu_time(d.pid());
        let u = c.ok(&format!("c{i} {cmd}"), &format!("c{i}"));
        let used = cpu_time(d.pid()) - before;
        println!("{cmd}: daemon CPU {:.2} s", used.as_secs_f64());
        assert!(
            used < CPU_BOUND,
            "{cmd}: {used:?} of CPU (bound {CPU_BOUND:?})"
        );
        // Another session is answered between the commands.
        other.ok(&format!("n{i} NOOP"), &format!("n{i}"));
        answers.push(u);
    }
    println!("all: daemon {}", meter.report());
    assert!(
        meter.rss_growth_kib() < RSS_BOUND_KIB,
        "RSS grew by {} KiB",
        meter.rss_growth_kib()
    );

    let bs = answers[0].concat();
    // The first 256 parameters (the per-header cap), joined from their `*0` segments.
    assert!(
        bs.contains(r#"("p0" "x" "p1" "x" "p2" "x""#),
        "{}",
        &bs[..200]
    );
    assert_eq!(bs.matches(r#" "x""#).count(), 256, "parameters");
    // (then the charset Dovecot adds to text without one).
    assert!(
        bs.contains(r#""p255" "x" "charset" "us-ascii")"#),
        "{bs:.200}"
    );
    assert_eq!(answers[3], ["* SEARCH"]);
    // Message 1's words decode to "aaa…"; message 2's stay as written.
    assert_eq!(answers[4], ["* SEARCH 1"]);
    assert_eq!(answers[5], ["* SEARCH 2"]);
    c.ok("l LOGOUT", "l");
}
