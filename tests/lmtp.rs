//! LMTP (RFC 2033) and `mailserver deliver` against the real daemon over real sockets:
//! Python's `smtplib.LMTP` on TCP and on the Unix socket, raw transcripts for BDAT, a client
//! that vanishes mid-DATA, the timeout, IMAP IDLE woken by a delivery, the LMTP protocol log,
//! the `reg` values and the LDA's exit codes.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{python, wait, Daemon, Options};

const WAIT: Duration = Duration::from_secs(20);

/// A daemon with LMTP on TCP and on `dir/lmtp.sock`; users alice, bob (bare names) and
/// carol@example.org (a full address).
fn daemon(registry: &str, limits: &str) -> Daemon {
    Daemon::start_in(|dir| Options {
        users: "bob:{PLAIN}builder\ncarol@example.org:{PLAIN}c\n".into(),
        registry: registry.into(),
        limits: limits.into(),
        extra: format!(
            "[lmtp]\nlisten = [\"127.0.0.1:0\", \"unix:{}\"]\n",
            dir.join("lmtp.sock").display()
        ),
        ..Options::default()
    })
}

fn sock(d: &Daemon) -> PathBuf {
    d.dir.path().join("lmtp.sock")
}

/// Message files (cur/ and new/) of `user`'s `folder` (`""` = INBOX).
fn messages(d: &Daemon, user: &str, folder: &str) -> Vec<String> {
    let mut root = d.data_dir().join("mail").join(user);
    if !folder.is_empty() {
        root = root.join(format!(".{folder}"));
    }
    let mut out = Vec::new();
    for sub in ["cur", "new"] {
        if let Ok(rd) = std::fs::read_dir(root.join(sub)) {
            for e in rd {
                out.push(std::fs::read_to_string(e.unwrap().path()).unwrap());
            }
        }
    }
    out
}

/// `smtplib.LMTP` sends one message to `rcpts` at `target` (`host:port` or a socket path);
/// prints the refused recipients as `REFUSED addr code` and the LHLO reply.
const SEND: &str = r#"
import smtplib, sys
target, sender, rcpts, body = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4]
if target.startswith("/"):
    s = smtplib.LMTP(target, timeout=20)
else:
    host, port = target.rsplit(":", 1)
    s = smtplib.LMTP(host, int(port), timeout=20)
code, lhlo = s.ehlo("mx.test")
print("LHLO", code, lhlo.decode().replace("\n", " "))
try:
    refused = s.sendmail(sender, rcpts, body.encode())
except smtplib.SMTPRecipientsRefused as e:
    refused = e.recipients
for r, (code, text) in sorted(refused.items()):
    print("REFUSED", r, code, text.decode())
s.quit()
"#;

fn send(target: &str, rcpts: &str, body: &str) -> String {
    python(SEND, &[target, "sender@example.net", rcpts, body])
}

#[test]
fn smtplib_delivers_to_several_users_and_refuses_an_unknown_one() {
    let d = daemon("", "");
    let addr = d.lmtp.expect("LMTP TCP listener").to_string();
    let body = "Subject: hello\r\nMessage-ID: <1@x>\r\n\r\n.a line with a dot\r\nbody\r\n";
    let out = send(
        &addr,
        "alice@example.com,Bob@Example.com,nobody@example.com,carol@example.org",
        body,
    );
    assert!(
        out.contains("PIPELINING") && out.contains("CHUNKING"),
        "{out}"
    );
    assert!(
        out.contains("ENHANCEDSTATUSCODES") && out.contains("8BITMIME"),
        "{out}"
    );
    assert!(out.contains("SIZE 52428800"), "{out}");
    assert!(
        out.contains(
            "REFUSED nobody@example.com 550 5.1.1 <nobody@example.com> User doesn't exist"
        ),
        "{out}"
    );
    assert_eq!(out.matches("REFUSED").count(), 1, "{out}");
    for (user, rcpt) in [
        ("alice", "alice@example.com"),
        ("bob", "Bob@Example.com"),
        ("carol@example.org", "carol@example.org"),
    ] {
        let m = messages(&d, user, "");
        assert_eq!(m.len(), 1, "{user}: {m:?}");
        let text = &m[0];
        assert!(
            text.starts_with("Return-Path: <sender@example.net>\nDelivered-To: <"),
            "{text}"
        );
        assert!(
            text.contains(&format!("Delivered-To: <{rcpt}>\n")),
            "{text}"
        );
        assert!(
            text.contains("Received: from mx.test ([127.0.0.1])\n\tby test.example with LMTP id "),
            "{text}"
        );
        assert!(text.contains(&format!("\tfor <{rcpt}>; ")), "{text}");
        // Dot-unstuffed, stored with LF as Dovecot stores mail.
        assert!(
            text.ends_with("Subject: hello\nMessage-ID: <1@x>\n\n.a line with a dot\nbody\n"),
            "{text}"
        );
    }
    assert!(!d.data_dir().join("mail/nobody").exists());
}

#[test]
fn the_unix_socket_delivers_and_imap_fetches_it() {
    let mut d = daemon("", "");
    let out = send(
        &sock(&d).display().to_string(),
        "alice",
        "Subject: via unix\r\n\r\nhi\r\n",
    );
    assert!(!out.contains("REFUSED"), "{out}");
    // Delivered as an MDA delivers (Dovecot's lmtp too): into new/, numbered by the next
    // sync, \Recent in the first session that sees it.
    let new = d.data_dir().join("mail").join("alice").join("new");
    let names: Vec<String> = std::fs::read_dir(&new)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(
        names[0].contains(",S=") && !names[0].contains(":2,"),
        "{names:?}"
    );
    let mut c = common::imap::Client::login(d.imap.unwrap(), WAIT);
    let u = c.ok("f SELECT INBOX", "f");
    assert!(u.iter().any(|l| l == "* 1 EXISTS"), "{u:?}");
    assert!(u.iter().any(|l| l == "* 1 RECENT"), "{u:?}");
    let u = c.ok(
        "g FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT DELIVERED-TO)]",
        "g",
    );
    let all = u.join("\n");
    assert!(all.contains("Subject: via unix"), "{all}");
    assert!(all.contains("Delivered-To: <alice>"), "{all}");
    let text = &messages(&d, "alice", "")[0];
    assert!(text.contains("Received: from mx.test (local)"), "{text}");
    // The socket file goes with the daemon (as Dovecot's master removes its listeners).
    drop(c);
    assert!(sock(&d).exists());
    assert!(d.stop().success());
    assert!(!sock(&d).exists(), "the LMTP socket is left after exit");
}

#[test]
fn a_detail_delivers_to_an_existing_folder_else_inbox() {
    let d = daemon("", "");
    let mut c = common::imap::Client::login(d.imap.unwrap(), WAIT);
    c.ok("c CREATE Lists", "c");
    let addr = d.lmtp.unwrap().to_string();
    let out = send(
        &addr,
        "alice+Lists@x.example,alice+NoSuch@x.example",
        "Subject: d\r\n\r\nx\r\n",
    );
    assert!(!out.contains("REFUSED"), "{out}");
    assert_eq!(messages(&d, "alice", "Lists").len(), 1);
    let inbox = messages(&d, "alice", "");
    assert_eq!(inbox.len(), 1);
    assert!(
        inbox[0].contains("Delivered-To: <alice+NoSuch@x.example>"),
        "{}",
        inbox[0]
    );
    let u = c.ok("s STATUS Lists (MESSAGES)", "s");
    assert!(u.iter().any(|l| l.contains("MESSAGES 1")), "{u:?}");
}

/// A raw LMTP client: reads replies, sends lines.
struct Raw {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect_timeout(&addr, WAIT).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut r = Raw {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        };
        assert!(r.line().starts_with("220 "));
        r
    }
    fn line(&mut self) -> String {
        let mut l = String::new();
        self.r.read_line(&mut l).unwrap();
        l.trim_end().to_string()
    }
    /// Reads one (possibly multi-line) reply; returns its last line.
    fn reply(&mut self) -> String {
        for _ in 0..100 {
            let l = self.line();
            if l.as_bytes().get(3) != Some(&b'-') {
                return l;
            }
        }
        panic!("endless reply");
    }
    fn send(&mut self, data: &[u8]) {
        self.w.write_all(data).unwrap();
    }
    fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }
}

#[test]
fn bdat_chunks_deliver_one_reply_per_recipient() {
    let d = daemon("", "");
    let mut c = Raw::connect(d.lmtp.unwrap());
    assert!(c.cmd("LHLO mx.test").starts_with("250 SIZE"));
    // DATA and BDAT need a recipient first.
    assert_eq!(c.cmd("DATA"), "503 5.5.1 MAIL needed first");
    assert_eq!(c.cmd("MAIL FROM:<s@x> BODY=8BITMIME"), "250 2.1.0 OK");
    assert_eq!(c.cmd("MAIL FROM:<s@x>"), "503 5.5.1 Nested MAIL command");
    assert_eq!(c.cmd("RCPT TO:<alice@x>"), "250 2.1.5 OK");
    assert_eq!(c.cmd("RCPT TO:<bob@x>"), "250 2.1.5 OK");
    let part1 = b"Subject: chunked\r\n\r\n.no unstuffing in BDAT\r\n";
    let part2 = "last part \u{e9}\r\n".as_bytes();
    c.send(format!("BDAT {}\r\n", part1.len()).as_bytes());
    c.send(part1);
    assert_eq!(
        c.reply(),
        format!("250 2.0.0 {} octets received", part1.len())
    );
    assert_eq!(c.cmd("DATA"), "503 5.5.1 DATA after BDAT is not allowed");
    // Pipelined: the last chunk and a NOOP in one write.
    let mut w = format!("BDAT {} LAST\r\n", part2.len()).into_bytes();
    w.extend_from_slice(part2);
    w.extend_from_slice(b"NOOP\r\n");
    c.send(&w);
    assert!(c.reply().starts_with("250 2.0.0 <alice@x> "));
    assert!(c.reply().starts_with("250 2.0.0 <bob@x> "));
    assert_eq!(c.reply(), "250 2.0.0 OK");
    // A BDAT without a transaction: the chunk is read and refused.
    c.send(b"BDAT 5 LAST\r\nhello");
    assert_eq!(c.reply(), "503 5.5.1 No valid recipients");
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
    for user in ["alice", "bob"] {
        let m = messages(&d, user, "");
        assert_eq!(m.len(), 1);
        assert!(
            m[0].ends_with("Subject: chunked\n\n.no unstuffing in BDAT\nlast part \u{e9}\n"),
            "{}",
            m[0]
        );
    }
}

#[test]
fn size_limits_and_command_errors() {
    let d = daemon("", "max_message_bytes = 1000");
    let mut c = Raw::connect(d.lmtp.unwrap());
    assert_eq!(c.cmd("MAIL FROM:<s@x>"), "503 5.5.1 LHLO needed first");
    assert_eq!(c.cmd("EHLO x"), "500 5.5.1 This is LMTP: use LHLO");
    assert!(c.cmd("LHLO mx").ends_with("SIZE 1000"));
    assert_eq!(
        c.cmd("MAIL FROM:<s@x> SIZE=1001"),
        "552 5.3.4 Message too big for system"
    );
    assert_eq!(
        c.cmd("MAIL FROM:<s@x> RET=HDRS"),
        "555 5.5.4 Unsupported parameter"
    );
    assert_eq!(c.cmd("RCPT TO:<alice@x>"), "503 5.5.1 MAIL needed first");
    assert_eq!(c.cmd("MAIL FROM:<s@x>"), "250 2.1.0 OK");
    assert_eq!(c.cmd("DATA"), "503 5.5.1 No valid recipients");
    assert_eq!(c.cmd("RCPT TO:<alice@x>"), "250 2.1.5 OK");
    assert_eq!(c.cmd("DATA"), "354 OK");
    for _ in 0..30 {
        c.send(b"0123456789012345678901234567890123456789\r\n");
    }
    assert_eq!(c.cmd("."), "552 5.3.4 <alice@x> Message too big for system");
    assert_eq!(c.cmd("RSET"), "250 2.0.0 OK");
    assert_eq!(c.cmd("FOO"), "500 5.5.1 Unknown command");
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
    assert!(messages(&d, "alice", "").is_empty());
    assert_eq!(tmp_files(&d.data_dir(), "alice"), 0);
}

fn tmp_files(data: &Path, user: &str) -> usize {
    std::fs::read_dir(data.join("mail").join(user).join("tmp"))
        .map(|rd| rd.count())
        .unwrap_or(0)
}

#[test]
fn a_client_that_vanishes_mid_data_delivers_nothing() {
    let d = daemon("\"LMTP Protocol Logging Level\" = 1", "");
    {
        let mut c = Raw::connect(d.lmtp.unwrap());
        c.cmd("LHLO mx");
        c.cmd("MAIL FROM:<s@x>");
        c.cmd("RCPT TO:<alice@x>");
        c.cmd("RCPT TO:<bob@x>");
        assert_eq!(c.cmd("DATA"), "354 OK");
        // The copies are being written in tmp/ now.
        assert_eq!(tmp_files(&d.data_dir(), "alice"), 1);
        c.send(b"Subject: half\r\n\r\n");
        for _ in 0..2000 {
            c.send(b"some of the body, never finished\r\n");
        }
    }
    // The session ends (the `-` record), and its copies are gone.
    let log = d.data_dir().join("L0000001.log");
    wait::wait_for("the LMTP session to end", WAIT, || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().filter(|l| l.contains(",-,")).count() >= 1 {
            Ok(())
        } else {
            Err(text)
        }
    });
    for user in ["alice", "bob"] {
        assert_eq!(tmp_files(&d.data_dir(), user), 0, "{user}");
        assert!(messages(&d, user, "").is_empty(), "{user}");
    }
    // The next delivery works.
    let out = send(
        &d.lmtp.unwrap().to_string(),
        "alice",
        "Subject: whole\r\n\r\nx\r\n",
    );
    assert!(!out.contains("REFUSED"), "{out}");
    assert_eq!(messages(&d, "alice", "").len(), 1);
}

#[test]
fn a_hung_session_times_out() {
    let d = daemon("", "lmtp_idle_timeout_secs = 1");
    assert!(d
        .log_text()
        .contains("lmtp_idle_timeout_secs = 1 is below the 300 s minimum"));
    let mut c = Raw::connect(d.lmtp.unwrap());
    c.cmd("LHLO mx");
    c.cmd("MAIL FROM:<s@x>");
    c.cmd("RCPT TO:<alice@x>");
    c.cmd("DATA");
    c.send(b"Subject: stuck\r\n");
    assert_eq!(
        c.line(),
        "421 4.4.2 test.example Timeout, closing connection"
    );
    assert_eq!(c.line(), "", "closed after the 421");
    assert!(messages(&d, "alice", "").is_empty());
    assert_eq!(tmp_files(&d.data_dir(), "alice"), 0);
}

#[test]
fn an_idle_imap_session_sees_an_lmtp_delivery_at_once() {
    let d = daemon("", "");
    let mut c = common::imap::Client::login(d.imap.unwrap(), WAIT);
    let u = c.ok("s SELECT INBOX", "s");
    assert!(u.iter().any(|l| l == "* 0 EXISTS"), "{u:?}");
    c.send(b"i IDLE\r\n");
    assert!(c.line().starts_with("+ "));
    let out = send(
        &d.lmtp.unwrap().to_string(),
        "alice@x",
        "Subject: wake\r\n\r\nup\r\n",
    );
    assert!(!out.contains("REFUSED"), "{out}");
    // The socket timeout (20 s) bounds the wait; IDLE has no poll interval to wait for.
    let mut seen = Vec::new();
    for _ in 0..10 {
        let l = c.line();
        let done = l == "* 1 EXISTS";
        seen.push(l);
        if done {
            break;
        }
    }
    assert_eq!(
        seen.last().map(String::as_str),
        Some("* 1 EXISTS"),
        "{seen:?}"
    );
    c.send(b"DONE\r\n");
    let (_, done) = c.until_tagged("i");
    assert!(done.starts_with("i OK"), "{done}");
}

/// The LMTP protocol log's records: (event, data) of `<` and `>` lines.
fn records(path: &Path) -> (String, Vec<(String, String)>) {
    let text = std::fs::read_to_string(path).unwrap();
    let recs = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.splitn(7, ',').collect();
            (f[5].to_string(), f[6].to_string())
        })
        .collect();
    (text, recs)
}

#[test]
fn the_protocol_log_summarises_content_at_level_4_and_keeps_it_at_5() {
    for level in [4, 5] {
        let d = daemon(&format!("\"LMTP Protocol Logging Level\" = {level}"), "");
        let body = "Subject: logged\r\n\r\n.dot\r\nsecret-ish body\r\n";
        send(&d.lmtp.unwrap().to_string(), "alice", body);
        let log = d.data_dir().join("L0000001.log");
        wait::wait_for("the LMTP session's records", WAIT, || {
            let t = std::fs::read_to_string(&log).unwrap_or_default();
            if t.contains(",-,") {
                Ok(())
            } else {
                Err(t)
            }
        });
        let (text, recs) = records(&log);
        assert!(text.starts_with("#Service: LMTP\n"), "{text}");
        assert!(recs.iter().any(|(e, d)| e == "<" && d == "data"), "{text}");
        assert!(
            recs.iter().any(|(e, d)| e == ">" && d == "354 OK"),
            "{text}"
        );
        // smtplib writes the data with a trailing ".\r\n": 4 lines plus the terminator.
        let wire = "Subject: logged\r\n\r\n..dot\r\nsecret-ish body\r\n.\r\n".len();
        let summary = format!("<literal {wire} octets>");
        let has_body = recs.iter().any(|(_, d)| d == "secret-ish body");
        let has_summary = recs.iter().any(|(e, d)| e == "<" && *d == summary);
        if level == 4 {
            assert!(has_summary && !has_body, "level 4:\n{text}");
        } else {
            assert!(has_body && !has_summary, "level 5:\n{text}");
            assert!(recs.iter().any(|(e, d)| e == "<" && d == "..dot"), "{text}");
        }
        assert!(
            recs.iter()
                .any(|(e, d)| e == ">" && d.starts_with("250 2.0.0 <alice> ")),
            "{text}"
        );
    }
}

#[test]
fn reg_knows_the_lmtp_values() {
    let d = daemon("", "");
    let reg = |args: &[&str]| {
        let out = Command::new(common::bin())
            .arg("--config")
            .arg(&d.config_path)
            .arg("reg")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    reg(&[
        "add",
        "LMTP Protocol Logging Level",
        "/t",
        "REG_DWORD",
        "/d",
        "3",
        "/f",
    ]);
    let q = reg(&["query", "LMTP Protocol Logging Level"]);
    assert!(
        q.contains("LMTP Protocol Logging Level") && q.contains("0x3"),
        "{q}"
    );
    reg(&[
        "add",
        "lmtp protocol log path",
        "/t",
        "REG_SZ",
        "/d",
        "lmtplogs",
        "/f",
    ]);
    let text = std::fs::read_to_string(&d.config_path).unwrap();
    assert!(
        text.contains("\"LMTP Protocol Logging Level\" = 3"),
        "{text}"
    );
    // Registry names are case-insensitive; the name is written as typed.
    assert!(
        text.contains("\"lmtp protocol log path\" = \"lmtplogs\""),
        "{text}"
    );
    // Applied at the next session start: the file appears in the new path.
    let dir = d.dir.path().join("lmtplogs");
    d.wait_log("Protocol Log Path", WAIT);
    send(
        &d.lmtp.unwrap().to_string(),
        "alice",
        "Subject: r\r\n\r\nx\r\n",
    );
    wait::wait_for("the LMTP log in the new path", WAIT, || {
        let f = dir.join("L0000001.log");
        let t = std::fs::read_to_string(&f).unwrap_or_default();
        if t.contains(",-,") {
            Ok(())
        } else {
            Err(t)
        }
    });
}

fn lda(d: &Daemon, args: &[&str], input: &[u8]) -> (i32, String) {
    let mut child = Command::new(common::bin())
        .arg("--config")
        .arg(&d.config_path)
        .arg("deliver")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn deliver_has_dovecot_lda_exit_codes_and_the_same_headers() {
    let d = daemon("", "max_message_bytes = 2000");
    let mut c = common::imap::Client::login(d.imap.unwrap(), WAIT);
    c.ok("c CREATE Archive/2026", "c");
    let msg = b"From someone@example.net Thu Dec  3 10:00:00 2026\nSubject: piped\n\nbody\n";
    assert_eq!(lda(&d, &["-d", "alice"], msg).0, 0);
    let m = messages(&d, "alice", "");
    assert_eq!(m.len(), 1);
    assert!(m[0].starts_with("Return-Path: <someone@example.net>\nDelivered-To: <alice>\nReceived: by test.example with local (mailserver deliver) id "), "{}", m[0]);
    assert!(m[0].ends_with("\nSubject: piped\n\nbody\n"), "{}", m[0]);
    // -m to an existing folder; a missing one is INBOX; -f and -a set the headers.
    assert_eq!(
        lda(
            &d,
            &[
                "-d",
                "alice",
                "-m",
                "Archive/2026",
                "-f",
                "f@x",
                "-a",
                "al@x"
            ],
            b"Subject: a\n\nx\n"
        )
        .0,
        0
    );
    let a = messages(&d, "alice", "Archive.2026");
    assert_eq!(a.len(), 1);
    assert!(
        a[0].starts_with("Return-Path: <f@x>\nDelivered-To: <al@x>\n"),
        "{}",
        a[0]
    );
    assert_eq!(
        lda(&d, &["-d", "alice", "-m", "NoSuch"], b"Subject: b\n\nx\n").0,
        0
    );
    assert_eq!(messages(&d, "alice", "").len(), 2);
    // Addresses resolve as LMTP recipients do.
    assert_eq!(
        lda(&d, &["-d", "carol@example.org"], b"Subject: c\n\nx\n").0,
        0
    );
    let (code, err) = lda(&d, &["-d", "nobody"], b"Subject: n\n\nx\n");
    assert_eq!(code, 67, "{err}");
    let (code, err) = lda(&d, &[], b"x");
    assert_eq!(code, 64, "{err}");
    let (code, err) = lda(&d, &["-d", "alice"], &vec![b'x'; 3000]);
    assert_eq!(code, 65, "{err}");
    assert_eq!(tmp_files(&d.data_dir(), "alice"), 0);
    // An unreadable users file is temporary: the MTA keeps the message.
    std::fs::rename(d.dir.path().join("users"), d.dir.path().join("users.away")).unwrap();
    let (code, err) = lda(&d, &["-d", "alice"], b"Subject: t\n\nx\n");
    assert_eq!(code, 75, "{err}");
    let st = Command::new(common::bin())
        .args([
            "--config",
            "/nonexistent/mailserver.toml",
            "deliver",
            "-d",
            "alice",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(75));
}

#[test]
fn a_store_error_is_451_for_that_recipient_only() {
    let d = daemon("", "");
    // bob's Maildir cannot be made: a file is where his directory goes.
    std::fs::create_dir_all(d.data_dir().join("mail")).unwrap();
    std::fs::write(d.data_dir().join("mail/bob"), b"not a directory").unwrap();
    let mut c = Raw::connect(d.lmtp.unwrap());
    c.cmd("LHLO mx");
    c.cmd("MAIL FROM:<s@x>");
    assert_eq!(c.cmd("RCPT TO:<bob@x>"), "250 2.1.5 OK");
    assert_eq!(c.cmd("RCPT TO:<alice@x>"), "250 2.1.5 OK");
    assert_eq!(c.cmd("DATA"), "354 OK");
    c.send(b"Subject: partly\r\n\r\nx\r\n.\r\n");
    assert_eq!(c.reply(), "451 4.3.0 <bob@x> Temporary internal failure");
    assert!(c.reply().starts_with("250 2.0.0 <alice@x> "));
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
    assert_eq!(messages(&d, "alice", "").len(), 1);
}
