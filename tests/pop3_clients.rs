//! Real POP3 clients against the real driver and session: Python `poplib` (plain, STLS,
//! POP3S, APOP), `curl pop3://` / `pop3s://` (SASL PLAIN), Debian `fetchmail` (download and
//! delete). Store and users are the `pop3_common` test doubles; after the store/auth merge
//! only `Server::start` needs re-pointing (or these scripts run against the real binary).
//! A client that is not installed makes its test fail, not pass silently.

mod pop3_common;

use std::process::{Command, Output};

use pop3_common::*;

const MSG1: &str = "From: a@example.org\nSubject: one\n\nline 1\n.dot line\n..two dots\nend\n";
const MSG2: &str = "From: b@example.org\nSubject: two\n\nhello\n";

/// Runs a command on the blocking pool, bounded by `timeout(1)`.
async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .arg("60")
            .args(&args)
            .output()
            .expect("cannot run")
    })
    .await
    .unwrap()
}

fn check(o: &Output) -> String {
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "status {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    stdout
}

const POPLIB: &str = r#"
import poplib, ssl, sys
host, port, sport = '127.0.0.1', int(sys.argv[1]), int(sys.argv[2])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE

p = poplib.POP3(host, port, timeout=10)
assert p.getwelcome().startswith(b'+OK mail.test ready. <'), p.getwelcome()
caps = p.capa()
for c in ('TOP', 'UIDL', 'USER', 'SASL', 'STLS', 'PIPELINING', 'RESP-CODES', 'IMPLEMENTATION'):
    assert c in caps, (c, caps)
p.user('bob'); p.pass_('secret')
n, size = p.stat()
print('stat', n, size)
resp, lst, _ = p.list()
print('list', [l.decode() for l in lst])
resp, uidl, _ = p.uidl()
print('uidl', [l.decode() for l in uidl])
resp, lines, octets = p.retr(1)
print('retr', octets, [l.decode() for l in lines])
resp, lines, _ = p.top(2, 0)
print('top', [l.decode() for l in lines])
p.dele(2)
print('quit', p.quit().decode())

p = poplib.POP3(host, port, timeout=10)
p.stls(ctx)
assert 'STLS' not in p.capa()
p.user('alice'); p.pass_('wonder land')
print('stls-stat', p.stat())
p.quit()

p = poplib.POP3_SSL(host, sport, context=ctx, timeout=10)
p.apop('bob', 'secret')
print('pop3s-stat', p.stat())
try:
    p.retr(7)
except poplib.error_proto as e:
    print('err', e)
p.quit()
print('done')
"#;

#[tokio::test]
async fn python_poplib_plain_stls_pop3s_apop() {
    let s = Server::start(Options::default()).await;
    s.store.deliver("bob", MSG1);
    s.store.deliver("bob", MSG2);
    s.store.deliver("alice", MSG2);
    let out = check(
        &run(vec![
            "python3".into(),
            "-c".into(),
            POPLIB.into(),
            s.addr.port().to_string(),
            s.tls_addr.port().to_string(),
        ])
        .await,
    );
    let size1 = MSG1.replace('\n', "\r\n").len();
    let size2 = MSG2.replace('\n', "\r\n").len();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("stat 2 {}", size1 + size2));
    assert_eq!(lines[1], format!("list ['1 {size1}', '2 {size2}']"));
    assert_eq!(
        lines[2],
        "uidl ['1 000000016553F100', '2 000000026553F100']"
    );
    // poplib un-stuffs: the body comes back exactly as stored.
    assert_eq!(
        lines[3],
        format!(
            "retr {} ['From: a@example.org', 'Subject: one', '', 'line 1', '.dot line', '..two dots', 'end']",
            // poplib counts the octets after un-stuffing: the message size.
            size1
        )
    );
    assert_eq!(lines[4], "top ['From: b@example.org', 'Subject: two', '']");
    assert_eq!(lines[5], "quit +OK Logging out, 1 messages deleted.");
    assert_eq!(lines[6], format!("stls-stat (1, {size2})"));
    assert_eq!(lines[7], format!("pop3s-stat (1, {size1})"));
    assert_eq!(lines[8], "err b\"-ERR There's no message 7.\"");
    assert_eq!(lines[9], "done");
    let inbox = s.store.inbox("bob");
    assert_eq!(inbox.uids(), [1]);
    assert!(inbox
        .flags(1)
        .unwrap()
        .contains(mailserver::store::Flags::SEEN));
}

#[tokio::test]
async fn curl_pop3_list_retr_and_pop3s() {
    let s = Server::start(Options::default()).await;
    s.store.deliver("bob", MSG1);
    s.store.deliver("bob", MSG2);
    let url = |scheme: &str, port: u16, path: &str| format!("{scheme}://127.0.0.1:{port}/{path}");
    let curl = |u: String, extra: &[&str]| {
        let mut v: Vec<String> = vec![
            "curl".into(),
            "-sS".into(),
            "--max-time".into(),
            "20".into(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v.extend(["-u".into(), "bob:secret".into(), u]);
        v
    };
    let list = check(&run(curl(url("pop3", s.addr.port(), ""), &[])).await);
    let size1 = MSG1.replace('\n', "\r\n").len();
    let size2 = MSG2.replace('\n', "\r\n").len();
    assert_eq!(list, format!("1 {size1}\r\n2 {size2}\r\n"));
    let retr = check(&run(curl(url("pop3", s.addr.port(), "1"), &[])).await);
    assert_eq!(retr, MSG1.replace('\n', "\r\n"));
    // STLS required, then implicit TLS.
    let retr = check(&run(curl(url("pop3", s.addr.port(), "2"), &["--ssl-reqd", "-k"])).await);
    assert_eq!(retr, MSG2.replace('\n', "\r\n"));
    let retr = check(&run(curl(url("pop3s", s.tls_addr.port(), "2"), &["-k"])).await);
    assert_eq!(retr, MSG2.replace('\n', "\r\n"));
    // Wrong password: curl fails with its login-denied code (67).
    let mut bad = curl(url("pop3", s.addr.port(), ""), &[]);
    let n = bad.len();
    bad[n - 2] = "bob:wrong".into();
    let o = run(bad).await;
    assert_eq!(o.status.code(), Some(67), "{o:?}");
}

#[tokio::test]
async fn fetchmail_downloads_and_deletes() {
    let s = Server::start(Options::default()).await;
    s.store.deliver("bob", MSG1);
    s.store.deliver("bob", MSG2);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mbox");
    let rc = dir.path().join("fetchmailrc");
    std::fs::write(
        &rc,
        format!(
            "set no bouncemail\n\
             poll 127.0.0.1 with proto POP3 port {} and options no dns\n\
             \x20 user \"bob\" there with password \"secret\" is root here\n\
             \x20 options sslproto '' mda \"/bin/sh -c 'cat >> {}'\"\n",
            s.addr.port(),
            out.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = run(vec![
        "env".into(),
        format!("HOME={}", dir.path().display()),
        format!("FETCHMAILHOME={}", dir.path().display()),
        "fetchmail".into(),
        "--nosyslog".into(),
        "-d0".into(),
        "-f".into(),
        rc.display().to_string(),
    ])
    .await;
    assert!(
        o.status.success(),
        "fetchmail {:?}\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let mbox = std::fs::read_to_string(&out).unwrap();
    assert!(mbox.contains("Subject: one") && mbox.contains("Subject: two"));
    assert!(
        mbox.contains("\n.dot line") && mbox.contains("\n..two dots"),
        "{mbox}"
    );
    // Downloaded and deleted at QUIT.
    assert!(s.store.inbox("bob").uids().is_empty());
}
