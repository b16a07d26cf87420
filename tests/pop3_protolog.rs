//! The protocol-log tee of the driver at level 5 (KB Q182504): client lines with secrets
//! redacted (`PASS ***`, `AUTH PLAIN ***`, `***` for a continuation), server status and
//! listing lines, message content, `*` records for TLS and authentication.
//! Real protolog sink, Maildir store and passwd-file users.

#[path = "common/logreader.rs"]
mod logreader;
mod pop3_common;

use base64::Engine;
use logreader::log_text;
use pop3_common::*;

#[tokio::test]
async fn level5_transcript_is_logged_without_secrets() {
    let s = Server::start(Options {
        log_level: 5,
        ..Options::default()
    })
    .await;
    s.deliver("bob", "Subject: logged\n\nbody line\n");
    let mut c = s.connect().await;
    c.login("bob", "secret").await;
    c.send("RETR 1").await;
    c.expect("+OK").await;
    c.body().await;
    c.send("LIST").await;
    c.expect("+OK").await;
    c.body().await;
    c.cmd("QUIT", "+OK").await;
    c.expect_eof().await;

    let mut c = s.connect_tls().await;
    c.expect("+OK").await;
    c.cmd("AUTH PLAIN", "+ ").await;
    let resp = base64::engine::general_purpose::STANDARD.encode(b"\0bob\0secret");
    c.cmd(&resp, "+OK Logged in.").await;
    c.cmd("QUIT", "+OK").await;
    c.expect_eof().await;

    let locks = s.pop3_locks.clone();
    eventually(|| locks.is_empty()).await;
    // Records are flushed by the time a session ends (ARCHITECTURE.md, "Protocol log");
    // allow the end to land.
    let dir = s.dir.path().to_path_buf();
    eventually(|| log_text(&dir).matches(",-,").count() >= 2).await;
    let log = log_text(&dir);
    assert!(log.starts_with("#Service: POP3"), "{log}");
    for want in [
        ",<,USER bob",
        ",<,PASS ***",
        // Quoted (RFC 4180): a field starting with `+` could be read as a spreadsheet formula.
        ",>,\"+OK Logged in.\"",
        ",<,RETR 1",
        "Subject: logged",
        "body line",
        ",<,LIST",
        "authentication succeeded: user=bob mechanism=USER",
        "authentication succeeded: user=bob mechanism=PLAIN",
        "TLS established",
        ",<,AUTH PLAIN",
        ",<,***",
    ] {
        assert!(log.contains(want), "missing {want:?} in\n{log}");
    }
    assert!(!log.contains("secret"), "{log}");
    assert!(!log.contains(&resp), "{log}");
}
