//! MIME floods against the real server (the "hostile input" issue): a message anyone can
//! send, with tens of thousands of RFC 2231 parameters in its `Content-Type` or of RFC 2047
//! encoded words in its `Subject`, is APPENDed; `FETCH BODYSTRUCTURE` and `SEARCH SUBJECT`
//! on it answer correctly and in linear time (each well within a generous bound for a debug
//! build; they took seconds to minutes when the parsers were quadratic).

mod imap_session_common;

use std::time::{Duration, Instant};

use imap_session_common::*;

/// Generous for a debug build on a loaded machine; the linear parsers take milliseconds.
const BOUND: Duration = Duration::from_secs(5);

/// A message with `content_type` and `subject` as given (each a few hundred KB).
fn flood_message(subject: &str, content_type: &str) -> String {
    format!(
        "From: Mallory <m@example.org>\r\nTo: alice@imap.test\r\nSubject: {subject}\r\nContent-Type: {content_type}\r\n\r\nbody\r\n"
    )
}

/// Runs `cmd`, asserts OK within `BOUND`, returns the untagged lines.
async fn timed(c: &mut Client, cmd: &str) -> Vec<String> {
    let t = Instant::now();
    let u = c.ok(cmd).await;
    assert!(t.elapsed() < BOUND, "{cmd} took {:?}", t.elapsed());
    u
}

#[tokio::test]
async fn parameter_and_encoded_word_floods_answer_quickly() {
    let server = Server::start(Options::default()).await;
    let mut c = server.login().await;

    // 1: 30,000 continuation parameters (~350 KB) and 20,000 closed encoded words (~280 KB).
    let params: String = (0..30_000).map(|i| format!("; p{i}*0=x")).collect();
    let words = "=?utf-8?q?a?= ".repeat(20_000);
    let m1 = flood_message(words.trim_end(), &format!("text/plain{params}"));
    // 2: 30,000 encoded words that never close (~360 KB).
    let m2 = flood_message("=?utf-8?q?a ".repeat(30_000).trim_end(), "text/plain");
    for m in [&m1, &m2] {
        assert!(m.len() > 300_000);
        let t = c.append("INBOX", "", m).await;
        assert!(t.starts_with("OK"), "{t}");
    }
    c.ok("SELECT INBOX").await;

    let u = timed(&mut c, "FETCH 1 BODYSTRUCTURE").await;
    let bs = u.concat();
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

    let u = timed(&mut c, "SEARCH SUBJECT x").await;
    assert_eq!(u, ["* SEARCH"]);
    // Message 1's words decode to "aaa…"; message 2's stay as written.
    let u = timed(&mut c, "SEARCH SUBJECT aaaa").await;
    assert_eq!(u, ["* SEARCH 1"]);
    let u = timed(&mut c, "SEARCH SUBJECT \"?q?a =?utf\"").await;
    assert_eq!(u, ["* SEARCH 2"]);
    c.ok("LOGOUT").await;
}
