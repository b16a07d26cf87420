//! Session-level POP3 tests for what loopback sockets cannot show: the plaintext-auth policy
//! for non-loopback peers (`auth.allow_plaintext`, ARCHITECTURE.md "Users and authentication"),
//! the redaction the protocol-log tee receives, the `*` info records, and store failures after
//! login. The session is driven directly through the `conn::Session` trait, exactly as the
//! driver calls it, with the real Maildir store and passwd-file users, except
//! `store_failures_after_login` (fault injection).

mod pop3_common;

use base64::Engine;
use mailserver::pop3::Pop3Session;
use mailserver::protolog::LineKind;
use mailserver::session::{Output, Piece, Session, Step};
use md5::{Digest, Md5};
use pop3_common::*;

/// Feeds one line, returns (step, wire text, info records).
async fn line(s: &mut Pop3Session, l: &str) -> (Step, String, Vec<String>) {
    let mut out = Output::default();
    let step = s.on_line(l.as_bytes(), &mut out).await;
    let infos = out
        .pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Info(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    (step, String::from_utf8(out.encode()).unwrap(), infos)
}

async fn capa(s: &mut Pop3Session) -> String {
    line(s, "CAPA").await.1
}

const PLAINTEXT_ERR: &str =
    "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.\r\n";

#[tokio::test]
async fn non_loopback_without_tls_refuses_plaintext() {
    let srv = Server::start(Options::default()).await;
    srv.deliver("bob", "Subject: x\n\nbody\n");
    let mut s = srv.session("192.0.2.10:40000", false);
    let caps = capa(&mut s).await;
    assert!(caps.contains("STLS\r\n"));
    assert!(
        !caps.contains("USER\r\n") && !caps.contains("SASL"),
        "{caps}"
    );
    assert_eq!(line(&mut s, "USER bob").await.1, PLAINTEXT_ERR);
    assert_eq!(line(&mut s, "PASS secret").await.1, PLAINTEXT_ERR);
    let ir = base64::engine::general_purpose::STANDARD.encode(b"\0bob\0secret");
    assert_eq!(
        line(&mut s, &format!("AUTH PLAIN {ir}")).await.1,
        PLAINTEXT_ERR
    );
    assert_eq!(
        line(&mut s, "AUTH").await.1,
        "+OK Supported mechanisms follow\r\n.\r\n"
    );

    // After STLS the same peer may log in.
    assert_eq!(
        line(&mut s, "STLS").await,
        (
            Step::StartTls,
            "+OK Begin TLS negotiation now.\r\n".to_string(),
            vec![]
        )
    );
    s.on_tls();
    let caps = capa(&mut s).await;
    assert!(caps.contains("USER\r\n") && caps.contains("SASL PLAIN\r\n"));
    assert!(!caps.contains("STLS"));
    assert_eq!(line(&mut s, "USER bob").await.1, "+OK\r\n");
    let (step, text, infos) = line(&mut s, "PASS secret").await;
    assert_eq!(
        (step, text.as_str()),
        (Step::ReadLine, "+OK Logged in.\r\n")
    );
    assert_eq!(infos, ["authentication succeeded: user=bob mechanism=USER"]);
}

#[tokio::test]
async fn non_loopback_allowed_by_config_or_implicit_tls() {
    let srv = Server::start(Options {
        allow_plaintext: true,
        ..Options::default()
    })
    .await;
    let mut s = srv.session("[2001:db8::1]:40000", false);
    assert!(capa(&mut s).await.contains("USER\r\n"));
    assert_eq!(line(&mut s, "USER bob").await.1, "+OK\r\n");

    let srv = Server::start(Options::default()).await;
    let mut s = srv.session("198.51.100.7:995", true);
    assert!(capa(&mut s).await.contains("USER\r\n"));
    assert_eq!(line(&mut s, "USER bob").await.1, "+OK\r\n");
    // IPv4-mapped loopback counts as loopback.
    let mut s = srv.session("[::ffff:127.0.0.1]:4000", false);
    assert_eq!(line(&mut s, "USER bob").await.1, "+OK\r\n");
}

#[tokio::test]
async fn redaction_for_the_protocol_log() {
    let srv = Server::start(Options::default()).await;
    let mut s = srv.session("127.0.0.1:40000", false);
    let r = |s: &Pop3Session, l: &str| {
        s.redact(l.as_bytes())
            .map(|v| String::from_utf8(v).unwrap())
    };
    assert_eq!(r(&s, "USER bob"), None);
    assert_eq!(r(&s, "PASS secret"), Some("PASS ***".into()));
    assert_eq!(
        r(&s, "APOP bob 0123456789abcdef0123456789abcdef"),
        Some("APOP bob ***".into())
    );
    assert_eq!(
        r(&s, "AUTH PLAIN AGJvYgBzZWNyZXQ="),
        Some("AUTH PLAIN ***".into())
    );
    assert_eq!(r(&s, "AUTH PLAIN"), None);
    assert_eq!(line(&mut s, "AUTH PLAIN").await.1, "+ \r\n");
    // The continuation line is a secret whatever it looks like.
    assert_eq!(r(&s, "AGJvYgBzZWNyZXQ="), Some("***".into()));
    assert_eq!(r(&s, "QUIT"), Some("***".into()));
    let (_, text, infos) = line(&mut s, "AGJvYgB3cm9uZw==").await; // \0bob\0wrong
    assert_eq!(text, "-ERR [AUTH] Authentication failed.\r\n");
    assert_eq!(infos, ["authentication failed: user=bob mechanism=PLAIN"]);
    assert_eq!(r(&s, "QUIT"), None);
}

#[tokio::test]
async fn output_kinds_for_the_log_tee() {
    let srv = Server::start(Options::default()).await;
    srv.deliver("bob", "Subject: x\n\n.body\n");
    let mut s = srv.session("127.0.0.1:40000", false);
    line(&mut s, "USER bob").await;
    line(&mut s, "PASS secret").await;
    let mut out = Output::default();
    s.on_line(b"RETR 1", &mut out).await;
    assert!(matches!(&out.pieces[0], Piece::Line(LineKind::Status, l) if l.starts_with(b"+OK")));
    assert!(
        matches!(&out.pieces[1], Piece::Content(c) if &c[..] == b"Subject: x\r\n\r\n..body\r\n")
    );
    assert!(matches!(&out.pieces[2], Piece::Line(LineKind::Reply, l) if l == b"."));
    let mut out = Output::default();
    s.on_line(b"LIST", &mut out).await;
    assert!(matches!(&out.pieces[0], Piece::Line(LineKind::Status, _)));
    assert!(matches!(&out.pieces[1], Piece::Line(LineKind::Reply, l) if l.starts_with(b"1 ")));
}

#[tokio::test]
async fn store_failures_after_login() {
    // FAULT INJECTION: read/store_flags/remove fail on demand.
    let srv = Server::start(Options {
        backend: Backend::FaultInjection,
        ..Options::default()
    })
    .await;
    srv.deliver("bob", "Subject: x\n\nbody\n");
    let mut s = srv.session("127.0.0.1:40000", false);
    line(&mut s, "USER bob").await;
    line(&mut s, "PASS secret").await;
    line(&mut s, "RETR 1").await;
    line(&mut s, "DELE 1").await;
    let inbox = srv.faulty().inbox("bob");
    inbox.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        line(&mut s, "TOP 1 0").await.1,
        "-ERR Message is deleted.\r\n"
    );
    line(&mut s, "RSET").await;
    assert_eq!(
        line(&mut s, "RETR 1").await.1,
        "-ERR [SYS/TEMP] Temporary storage failure.\r\n"
    );
    line(&mut s, "DELE 1").await;
    let (step, text, _) = line(&mut s, "QUIT").await;
    assert_eq!(step, Step::Close);
    assert_eq!(
        text,
        "-ERR [SYS/TEMP] Some deleted messages were not removed.\r\n"
    );
    assert!(srv.pop3_locks.is_empty());
    inbox.fail.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(inbox.uids(), [1]);
}

#[tokio::test]
async fn lock_is_released_when_the_session_is_dropped() {
    let srv = Server::start(Options::default()).await;
    let mut s = srv.session("127.0.0.1:40000", false);
    line(&mut s, "USER bob").await;
    line(&mut s, "PASS secret").await;
    assert!(srv.pop3_locks.contains("bob"));
    let mut t = srv.session("127.0.0.1:40001", false);
    line(&mut t, "USER bob").await;
    assert_eq!(
        line(&mut t, "PASS secret").await.1,
        "-ERR [IN-USE] Mailbox is locked by another POP3 session.\r\n"
    );
    drop(s);
    assert!(srv.pop3_locks.is_empty());
    line(&mut t, "USER bob").await;
    assert_eq!(line(&mut t, "PASS secret").await.1, "+OK Logged in.\r\n");
}

/// The greeting of a fresh session, as the client reads it.
fn greeting(s: &mut Pop3Session) -> String {
    let mut out = Output::default();
    s.greeting(&mut out);
    String::from_utf8(out.encode()).unwrap()
}

/// RFC 1939 §7: the digest of the greeting's timestamp and the shared secret.
fn apop_digest(greeting: &str, secret: &str) -> String {
    let start = greeting.find('<').expect("timestamp in the greeting");
    let end = greeting.rfind('>').expect("timestamp in the greeting") + 1;
    let mut md5 = Md5::new();
    md5.update(&greeting.as_bytes()[start..end]);
    md5.update(secret.as_bytes());
    md5.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn apop_is_refused_and_not_offered_where_pass_is() {
    let srv = Server::start(Options::default()).await;
    srv.deliver("bob", "Subject: x\n\nbody\n");
    // Non-loopback, no TLS, plaintext disallowed: no timestamp, APOP refused as PASS is.
    let mut s = srv.session("192.0.2.10:40000", false);
    let g = greeting(&mut s);
    assert_eq!(g, "+OK mail.test ready.\r\n");
    assert!(!capa(&mut s).await.contains("APOP"));
    // Whatever digest the client makes up (it saw no timestamp), the reply is PASS's.
    let (step, text, infos) = line(&mut s, "APOP bob 0123456789abcdef0123456789abcdef").await;
    assert_eq!((step, text.as_str()), (Step::ReadLine, PLAINTEXT_ERR));
    assert!(infos.is_empty(), "no login was attempted: {infos:?}");
    assert_eq!(line(&mut s, "PASS secret").await.1, PLAINTEXT_ERR);
    assert!(!srv.pop3_locks.contains("bob"));

    // Where PASS is allowed (loopback; allow_plaintext; TLS), APOP is offered and works.
    let mut s = srv.session("127.0.0.1:40000", false);
    let g = greeting(&mut s);
    let digest = apop_digest(&g, "secret");
    assert_eq!(
        line(&mut s, &format!("APOP bob {digest}")).await.1,
        "+OK Logged in.\r\n"
    );
    drop(s);
    let mut s = srv.session("192.0.2.10:995", true);
    let digest = apop_digest(&greeting(&mut s), "secret");
    assert_eq!(
        line(&mut s, &format!("APOP bob {digest}")).await.1,
        "+OK Logged in.\r\n"
    );
    drop(s);
    let srv = Server::start(Options {
        allow_plaintext: true,
        ..Options::default()
    })
    .await;
    let mut s = srv.session("192.0.2.10:40000", false);
    let digest = apop_digest(&greeting(&mut s), "secret");
    assert_eq!(
        line(&mut s, &format!("APOP bob {digest}")).await.1,
        "+OK Logged in.\r\n"
    );
}

#[tokio::test]
async fn response_to_a_refused_auth_is_redacted() {
    let srv = Server::start(Options::default()).await;
    let mut s = srv.session("192.0.2.10:40000", false);
    let r = |s: &Pop3Session, l: &str| {
        s.redact(l.as_bytes())
            .map(|v| String::from_utf8(v).unwrap())
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(b"\0bob\0secret");
    assert_eq!(r(&s, "AUTH PLAIN"), None);
    assert_eq!(line(&mut s, "AUTH PLAIN").await.1, PLAINTEXT_ERR);
    // The client sends its response anyway: it decodes to the password.
    assert_eq!(r(&s, &b64), Some("***".into()));
    line(&mut s, &b64).await;
    assert_eq!(r(&s, "CAPA"), None, "only the one line after the AUTH");
    // An unsupported mechanism is refused too, and so is AUTH in the wrong state.
    line(&mut s, "auth\tFOO").await;
    assert_eq!(r(&s, &b64), Some("***".into()));
    line(&mut s, &b64).await;
    // With an initial response nothing follows: the next line is a command.
    line(&mut s, &format!("AUTH PLAIN {b64}")).await;
    assert_eq!(r(&s, "CAPA"), None);
}
