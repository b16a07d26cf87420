//! POP3 on the real binary with its real Maildir store (ARCHITECTURE.md, "Mail store" and
//! "POP3"; RFC 1939): what an admin relies on, checked over sockets and on disk.
//!
//! * UIDL (Dovecot's `%08Xu%08Xv`) is stable across sessions and across a daemon restart on
//!   the same data dir.
//! * `DELE` applies only at `QUIT`: a dropped connection leaves every message, and no `\Seen`.
//! * `RETR` sets `\Seen` at `QUIT`: the file in `cur/` gets `S` in its `:2,` info.
//! * A second concurrent session of the same user gets `-ERR [IN-USE]` at once.
//! * 50 pipelined commands in one write get 50 replies, in order.
//! * 10,000 messages generated as Maildir files: LIST and UIDL count, sizes (CRLF) and UIDs.
//! * Mail delivered into `new/` between sessions is seen at the next login (and not during a
//!   session: the maildrop is a snapshot taken at login).
//! * Exact octet counts and dot-stuffing for lines beginning with `.`.
//! * SIGTERM closes POP3 sessions without applying their deletions (ARCHITECTURE.md, "Server").
//!
//! The client is the C:/S: transcript client of `pop3_common`; the daemon is `tests/common`.
// Both support modules include the one config builder (`tests/common/test_config.rs`), so
// this crate holds two copies of it; neither hands its types to the other.
#![allow(clippy::duplicate_mod)]

mod common;
mod pop3_common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Daemon;
use pop3_common::{info_flags, maildir_files, Client};
use tokio::net::TcpStream;

fn crlf(s: &str) -> String {
    s.replace('\n', "\r\n")
}

/// The size a POP3 client is told: the message with CRLF line ends.
fn crlf_len(data: &[u8]) -> usize {
    let mut n = data.len();
    let mut prev = 0u8;
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            n += 1;
        }
        prev = b;
    }
    n
}

async fn connect(addr: std::net::SocketAddr) -> Client {
    Client::new(Box::new(TcpStream::connect(addr).await.unwrap()))
}

async fn login(d: &Daemon, user: &str, pass: &str) -> Client {
    let mut c = connect(d.pop3.unwrap()).await;
    c.login(user, pass).await;
    c
}

/// Logs in, retrying (bounded) while the server has not yet noticed an earlier session of
/// the user went away (its lock is released when the server sees the connection close).
async fn login_when_unlocked(d: &Daemon, user: &str, pass: &str) -> Client {
    for _ in 0..200 {
        let mut c = connect(d.pop3.unwrap()).await;
        c.expect("+OK").await;
        c.cmd(&format!("USER {user}"), "+OK").await;
        c.send(&format!("PASS {pass}")).await;
        let l = c.line().await.expect("EOF after PASS");
        if l == "+OK Logged in." {
            return c;
        }
        assert!(l.starts_with("-ERR [IN-USE]"), "{l}");
        c.cmd("QUIT", "+OK").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("maildrop of {user} never unlocked");
}

async fn uidl_list(c: &mut Client) -> Vec<String> {
    c.send("UIDL").await;
    c.expect("+OK").await;
    c.body().await
}

async fn list(c: &mut Client) -> Vec<String> {
    c.send("LIST").await;
    c.expect("+OK").await;
    c.body().await
}

fn inbox(d: &Daemon, user: &str) -> PathBuf {
    d.data_dir().join("mail").join(user)
}

fn deliver(d: &Daemon, n: usize, body: &str) -> PathBuf {
    common::deliver(&d.data_dir(), common::USER, n, body)
}

/// Stops `d` (SIGTERM, bounded) and starts the binary again on the same config and data dir.
fn restart(mut d: Daemon) -> Daemon {
    assert!(d.stop().success(), "{}", d.log_text());
    let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
    let config = d.config_path.clone();
    drop(d);
    Daemon::spawn(dir, config, &[])
}

#[tokio::test]
async fn uidl_is_stable_across_sessions_and_restarts() {
    let d = Daemon::start();
    for n in 1..=3 {
        deliver(&d, n, &format!("Subject: m{n}\n\nbody {n}\n"));
    }
    let (u, p) = (common::USER, common::PASS);
    let mut c = login(&d, u, p).await;
    let first = uidl_list(&mut c).await;
    assert_eq!(first.len(), 3);
    c.cmd("QUIT", "+OK").await;
    // The format: sequence number, 8 hex digits of UID, 8 of UIDVALIDITY.
    let validity = &first[0][10..];
    for (i, l) in first.iter().enumerate() {
        assert_eq!(
            *l,
            format!("{} {:08x}{validity}", i + 1, i + 1),
            "{first:?}"
        );
    }

    let mut c = login(&d, u, p).await;
    assert_eq!(uidl_list(&mut c).await, first, "second session");
    c.cmd("QUIT", "+OK").await;

    // New mail gets the next UID; the old ones keep theirs.
    deliver(&d, 4, "Subject: m4\n\nbody 4\n");
    let mut c = login(&d, u, p).await;
    let with_new = uidl_list(&mut c).await;
    assert_eq!(with_new[..3], first[..]);
    assert_eq!(with_new[3], format!("4 00000004{validity}"));
    c.cmd("DELE 1", "+OK").await;
    c.cmd("QUIT", "+OK Logging out, 1 messages deleted.").await;

    // After a deletion sequence numbers shift but each message keeps its UIDL.
    let mut c = login(&d, u, p).await;
    let after_dele = uidl_list(&mut c).await;
    let ids = |v: &[String]| -> Vec<String> {
        v.iter()
            .map(|l| l.split(' ').nth(1).unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&after_dele), ids(&with_new[1..]));
    let sizes = list(&mut c).await;
    // RETR renames the file at QUIT (`:2,S`): the UID stays.
    c.cmd("RETR 1", "+OK").await;
    c.body().await;
    c.cmd("QUIT", "+OK").await;
    let mut c = login(&d, u, p).await;
    assert_eq!(uidl_list(&mut c).await, after_dele, "after a flag rename");
    c.cmd("QUIT", "+OK").await;

    let d = restart(d);
    let mut c = login(&d, u, p).await;
    assert_eq!(uidl_list(&mut c).await, after_dele, "after a restart");
    assert_eq!(list(&mut c).await, sizes, "after a restart");
    c.cmd("QUIT", "+OK").await;
}

#[tokio::test]
async fn dropped_connection_applies_no_deletion_and_no_seen() {
    let d = Daemon::start();
    deliver(&d, 1, "Subject: a\n\nA\n");
    deliver(&d, 2, "Subject: b\n\nB\n");
    let mut c = login(&d, common::USER, common::PASS).await;
    c.cmd("RETR 1", "+OK").await;
    c.body().await;
    c.cmd("DELE 1", "+OK").await;
    c.cmd("DELE 2", "+OK").await;
    c.cmd("STAT", "+OK 0 0").await;
    drop(c); // no QUIT

    let mut c = login_when_unlocked(&d, common::USER, common::PASS).await;
    c.cmd("STAT", "+OK 2 ").await;
    c.cmd("QUIT", "+OK Logging out, 0 messages deleted.").await;
    let files = maildir_files(&inbox(&d, common::USER));
    assert_eq!(files.len(), 2, "{files:?}");
    for f in &files {
        assert!(!info_flags(f).unwrap_or("").contains('S'), "{files:?}");
    }
}

#[tokio::test]
async fn retr_sets_seen_at_quit_in_the_file_name() {
    let d = Daemon::start();
    deliver(&d, 1, "Subject: a\n\nA\n");
    deliver(&d, 2, "Subject: b\n\nB\n");
    let root = inbox(&d, common::USER);
    let mut c = login(&d, common::USER, common::PASS).await;
    c.cmd("RETR 2", "+OK").await;
    c.body().await;
    c.send("TOP 1 0").await;
    c.expect("+OK").await;
    c.body().await;
    // Not yet: \Seen is committed at QUIT.
    let before = maildir_files(&root);
    assert!(
        before
            .iter()
            .all(|f| !info_flags(f).unwrap_or("").contains('S')),
        "{before:?}"
    );
    c.cmd("QUIT", "+OK Logging out, 0 messages deleted.").await;
    let after = maildir_files(&root);
    assert_eq!(after.len(), 2, "{after:?}");
    // Message 2 (the `.M2` file) is in cur/ with S; message 1 (only TOP) is not.
    let m2 = after.iter().find(|f| f.contains(".M2P")).unwrap();
    let m1 = after.iter().find(|f| f.contains(".M1P")).unwrap();
    assert!(
        m2.starts_with("cur/") && info_flags(m2).unwrap().contains('S'),
        "{after:?}"
    );
    assert!(!info_flags(m1).unwrap_or("").contains('S'), "{after:?}");
}

#[tokio::test]
async fn second_session_of_the_same_user_gets_in_use_at_once() {
    let d = Daemon::start_with(common::Options {
        users: "bob:{PLAIN}secret\n".into(),
        ..common::Options::default()
    });
    deliver(&d, 1, "Subject: a\n\nA\n");
    let mut a = login(&d, common::USER, common::PASS).await;
    let mut b = connect(d.pop3.unwrap()).await;
    b.expect("+OK").await;
    b.cmd(&format!("USER {}", common::USER), "+OK").await;
    b.cmd(
        &format!("PASS {}", common::PASS),
        "-ERR [IN-USE] Mailbox is locked by another POP3 session.",
    )
    .await;
    // The same connection may log in as someone else.
    b.cmd("USER bob", "+OK").await;
    b.cmd("PASS secret", "+OK Logged in.").await;
    b.cmd("QUIT", "+OK").await;
    // A's session is unaffected; once it has quit, the user can log in again.
    a.cmd("STAT", "+OK 1 ").await;
    a.cmd("QUIT", "+OK").await;
    let mut c = login(&d, common::USER, common::PASS).await;
    c.cmd("QUIT", "+OK").await;
}

#[tokio::test]
async fn fifty_pipelined_commands_get_fifty_replies_in_order() {
    let d = Daemon::start();
    let msgs = [
        "Subject: one\n\nfirst\n",
        "Subject: two\n\n.second\n",
        "Subject: three\n\nthird\n",
    ];
    for (i, m) in msgs.iter().enumerate() {
        deliver(&d, i + 1, m);
    }
    let sizes: Vec<usize> = msgs.iter().map(|m| crlf(m).len()).collect();
    let total: usize = sizes.iter().sum();

    // Command i and the first line of its reply (multi-line replies are read separately).
    let mut script: Vec<(String, String, bool)> = vec![
        (format!("USER {}", common::USER), "+OK".into(), false),
        (
            format!("PASS {}", common::PASS),
            "+OK Logged in.".into(),
            false,
        ),
    ];
    for i in 0..47 {
        let k = i % 3 + 1;
        script.push(match i % 6 {
            0 => ("STAT".into(), format!("+OK 3 {total}"), false),
            1 => (
                format!("LIST {k}"),
                format!("+OK {k} {}", sizes[k - 1]),
                false,
            ),
            2 => ("NOOP".into(), "+OK".into(), false),
            3 => (
                format!("RETR {k}"),
                format!("+OK {} octets", sizes[k - 1]),
                true,
            ),
            4 => ("UIDL".into(), "+OK".into(), true),
            _ => (
                format!("LIST {}", 4 + i),
                format!("-ERR There's no message {}.", 4 + i),
                false,
            ),
        });
    }
    script.push((
        "QUIT".into(),
        "+OK Logging out, 0 messages deleted.".into(),
        false,
    ));
    assert_eq!(script.len(), 50);

    let mut c = connect(d.pop3.unwrap()).await;
    c.expect("+OK").await;
    let burst: String = script
        .iter()
        .map(|(cmd, _, _)| format!("{cmd}\r\n"))
        .collect();
    c.raw(burst.as_bytes()).await;
    for (i, (cmd, want, multi)) in script.iter().enumerate() {
        let got = c
            .line()
            .await
            .unwrap_or_else(|| panic!("EOF at reply {i} ({cmd})"));
        assert_eq!(&got, want, "reply {i} to {cmd}");
        if *multi {
            let body = c.body().await;
            if cmd == "UIDL" {
                assert_eq!(body.len(), 3);
            } else {
                let k: usize = cmd[5..].parse().unwrap();
                assert_eq!(
                    body.join("\n") + "\n",
                    msgs[k - 1].trim_end_matches('\n').to_string() + "\n"
                );
            }
        }
    }
    c.expect_eof().await;
}

/// Writes `n` messages straight into `cur/` (as a migrated or long-lived Maildir has them),
/// names in increasing time order, some seen; returns each file's CRLF size, in order.
fn generate_cur(root: &Path, n: usize) -> Vec<usize> {
    for d in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let mut sizes = Vec::with_capacity(n);
    for i in 1..=n {
        let mut body = format!("From: gen@example.org\nSubject: message {i}\n\n");
        for l in 0..(i % 7) {
            body.push_str(&format!("line {l} of {i}\n"));
        }
        if i % 5 == 0 {
            body.push_str(".leading dot\n");
        }
        let info = if i % 3 == 0 { "S" } else { "" };
        let name = format!("{}.M{i}P7.gen:2,{info}", 1_600_000_000 + i);
        std::fs::write(root.join("cur").join(name), &body).unwrap();
        sizes.push(crlf_len(body.as_bytes()));
    }
    sizes
}

#[tokio::test]
async fn ten_thousand_messages_listed_by_list_and_uidl() {
    const N: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let opts = common::Options::default();
    std::fs::write(
        dir.path().join("users"),
        format!("{}:{{PLAIN}}{}\n", common::USER, common::PASS),
    )
    .unwrap();
    let config = dir.path().join("mailserver.toml");
    std::fs::write(&config, common::config_text(dir.path(), &opts)).unwrap();
    let root = dir.path().join("data").join("mail").join(common::USER);
    let sizes = generate_cur(&root, N);
    let d = Daemon::spawn(dir, config, &[]);

    let mut c = login(&d, common::USER, common::PASS).await;
    let total: usize = sizes.iter().sum();
    c.cmd("STAT", &format!("+OK {N} {total}")).await;
    c.send("LIST").await;
    c.expect(&format!("+OK {N} messages")).await;
    let lines = c.body().await;
    assert_eq!(lines.len(), N);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(*l, format!("{} {}", i + 1, sizes[i]));
    }
    let uidls = uidl_list(&mut c).await;
    assert_eq!(uidls.len(), N);
    let validity = uidls[0][uidls[0].len() - 8..].to_string();
    for (i, l) in uidls.iter().enumerate() {
        // Files numbered in name-time order: UID i+1 for the i-th generated file.
        assert_eq!(*l, format!("{} {:08x}{validity}", i + 1, i + 1));
    }
    c.cmd(&format!("LIST {N}"), &format!("+OK {N} {}", sizes[N - 1]))
        .await;
    c.send(&format!("RETR {}", N - 5)).await;
    c.expect(&format!("+OK {} octets", sizes[N - 6])).await;
    let body = c.body().await;
    assert_eq!(body[1], format!("Subject: message {}", N - 5));
    c.cmd("QUIT", "+OK").await;
    let seen = maildir_files(&root)
        .iter()
        .filter(|f| info_flags(f).unwrap_or("").contains('S'))
        .count();
    assert_eq!(seen, N / 3 + 1, "pre-set S flags plus the RETR");
}

#[tokio::test]
async fn delivery_into_new_is_seen_at_the_next_login_not_during_a_session() {
    let d = Daemon::start();
    let (u, p) = (common::USER, common::PASS);
    let mut c = login(&d, u, p).await;
    c.cmd("STAT", "+OK 0 0").await;
    c.cmd("QUIT", "+OK").await;

    let m1 = "Subject: first\n\nhello\n";
    let path = deliver(&d, 1, m1);
    assert!(path.parent().unwrap().ends_with("new"));
    let mut c = login(&d, u, p).await;
    c.cmd("STAT", &format!("+OK 1 {}", crlf(m1).len())).await;
    // Delivered during the session: not in this session's snapshot.
    let m2 = "Subject: second\n\nworld\n";
    deliver(&d, 2, m2);
    c.cmd("STAT", &format!("+OK 1 {}", crlf(m1).len())).await;
    c.cmd("LIST 2", "-ERR There's no message 2.").await;
    // Deleting everything this session knows leaves the newcomer alone.
    c.cmd("DELE 1", "+OK").await;
    c.cmd("QUIT", "+OK Logging out, 1 messages deleted.").await;

    let m3 = "Subject: third\n\n!\n";
    deliver(&d, 3, m3);
    let mut c = login(&d, u, p).await;
    c.cmd(
        "STAT",
        &format!("+OK 2 {}", crlf(m2).len() + crlf(m3).len()),
    )
    .await;
    c.send("RETR 1").await;
    c.expect("+OK").await;
    assert_eq!(c.body().await, ["Subject: second", "", "world"]);
    let uidls = uidl_list(&mut c).await;
    assert!(
        uidls[0].starts_with("1 00000002") && uidls[1].starts_with("2 00000003"),
        "{uidls:?}"
    );
    c.cmd("QUIT", "+OK").await;
    // Both picked up from new/ and moved to cur/ (as Dovecot does).
    let files = maildir_files(&inbox(&d, u));
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files.iter().all(|f| f.starts_with("cur/")), "{files:?}");
}

#[tokio::test]
async fn exact_octets_and_dot_stuffing() {
    let d = Daemon::start();
    // Lines that are only ".", "..", start with dots, a CRLF line, no final newline.
    let text = "Subject: dots\n\n.\n..\n...three\n.x\nmid.dle\r\n.crlf line\r\nend .\nlast";
    let path = deliver(&d, 1, text);
    let on_disk = std::fs::read(&path).unwrap();
    let size = crlf_len(&on_disk);
    let mut c = login(&d, common::USER, common::PASS).await;
    c.cmd("LIST 1", &format!("+OK 1 {size}")).await;
    c.cmd("STAT", &format!("+OK 1 {size}")).await;
    c.send("RETR 1").await;
    c.expect(&format!("+OK {size} octets")).await;
    let raw = c.raw_body().await;
    let want = "Subject: dots\r\n\r\n..\r\n...\r\n....three\r\n..x\r\nmid.dle\r\n..crlf line\r\nend .\r\nlast\r\n.\r\n";
    assert_eq!(String::from_utf8(raw.clone()).unwrap(), want);
    // Un-stuffing gives back exactly `size` octets (+ the CRLF the terminator needed).
    let unstuffed: usize = want
        .trim_end_matches(".\r\n")
        .split_inclusive("\r\n")
        .map(|l| l.strip_prefix('.').unwrap_or(l).len())
        .sum();
    assert_eq!(
        unstuffed,
        size + 2,
        "message without final newline gets CRLF"
    );
    c.send("TOP 1 2").await;
    c.expect("+OK").await;
    assert_eq!(
        c.raw_body().await,
        b"Subject: dots\r\n\r\n..\r\n...\r\n.\r\n".to_vec()
    );
    c.cmd("QUIT", "+OK").await;
}

#[tokio::test]
async fn sigterm_closes_sessions_without_applying_deletions() {
    let mut d = Daemon::start();
    deliver(&d, 1, "Subject: a\n\nA\n");
    deliver(&d, 2, "Subject: b\n\nB\n");
    let mut c = login(&d, common::USER, common::PASS).await;
    c.cmd("RETR 1", "+OK").await;
    c.body().await;
    c.cmd("DELE 1", "+OK").await;
    c.cmd("DELE 2", "+OK").await;
    d.signal("TERM");
    c.expect("-ERR Server shutting down.").await;
    c.expect_eof().await;
    let st = d.wait_exit(Duration::from_secs(20));
    assert!(st.success(), "{st:?}\n{}", d.log_text());
    let files = maildir_files(&inbox(&d, common::USER));
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        files
            .iter()
            .all(|f| !info_flags(f).unwrap_or("").contains('S')),
        "{files:?}"
    );
}

#[tokio::test]
async fn message_removed_behind_the_session_is_reported_not_fatal() {
    let d = Daemon::start();
    deliver(&d, 1, "Subject: a\n\nA\n");
    deliver(&d, 2, "Subject: b\n\nB\n");
    let mut c = login(&d, common::USER, common::PASS).await;
    // Another program (an IMAP client elsewhere, a cleanup job) deletes message 1's file.
    let root = inbox(&d, common::USER);
    let gone = maildir_files(&root)
        .into_iter()
        .find(|f| f.contains(".M1P"))
        .unwrap();
    std::fs::remove_file(root.join(&gone)).unwrap();
    c.cmd("RETR 1", "-ERR Message is no longer available.")
        .await;
    c.send("RETR 2").await;
    c.expect("+OK").await;
    assert_eq!(c.body().await, ["Subject: b", "", "B"]);
    c.cmd("DELE 1", "+OK").await;
    c.cmd("QUIT", "+OK Logging out, 1 messages deleted.").await;
    let mut c = login(&d, common::USER, common::PASS).await;
    c.cmd("STAT", "+OK 1 ").await;
    c.cmd("QUIT", "+OK").await;
}
