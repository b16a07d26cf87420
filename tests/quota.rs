//! Quota (RFC 9208, Maildir++ `maildirsize`) against the real daemon over real sockets:
//! limits from the users file's `quota_rule` extra fields and from `[quota]`, LMTP `552
//! 5.2.2` / `452 4.2.2` per recipient with the others delivered, `deliver`'s exit codes,
//! IMAP APPEND/COPY `NO [OVERQUOTA]`, MOVE and expunge, GETQUOTA/GETQUOTAROOT/SETQUOTA, POP3
//! DELE over quota; and Debian's Dovecot with `quota = maildir:User quota` on the same tree
//! (its `GETQUOTAROOT` and `doveadm quota get` against ours, each reading the other's
//! `maildirsize`).

mod common;

#[path = "common/dovecot.rs"]
mod dovecot;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::imap::Client;
use common::{python, Daemon, Options};

const WAIT: Duration = Duration::from_secs(20);

/// A daemon with LMTP on TCP; `users` lines besides alice, `quota` the `[quota]` lines.
fn daemon(users: &str, quota: &str) -> Daemon {
    Daemon::start_with(Options {
        users: users.into(),
        extra: format!("[lmtp]\nlisten = [\"127.0.0.1:0\"]\n\n[quota]\n{quota}\n"),
        ..Options::default()
    })
}

/// `smtplib.LMTP` sends `body` to `rcpts`; prints `addr code` for every recipient, in order
/// (250 for the delivered ones).
const SEND: &str = r#"
import smtplib, sys
host, port = sys.argv[1].rsplit(":", 1)
rcpts, body = sys.argv[2].split(","), sys.argv[3]
s = smtplib.LMTP(host, int(port), timeout=20)
s.ehlo("mx.test")
s.mail("sender@example.net")
for r in rcpts:
    code, _ = s.rcpt(r)
    assert code == 250, (r, code)
s.putcmd("data")
code, _ = s.getreply()
assert code == 354, code
s.send(smtplib.quotedata(body).encode() + b"\r\n.\r\n")
for r in rcpts:
    code, text = s.getreply()
    print(r, code, text.decode())
s.quit()
"#;

/// One LMTP transaction; returns each recipient's reply as `addr code text`.
fn send(d: &Daemon, rcpts: &[&str], body: &str) -> Vec<String> {
    let out = python(
        SEND,
        &[&d.lmtp.unwrap().to_string(), &rcpts.join(","), body],
    );
    out.lines().map(str::to_string).collect()
}

fn codes(replies: &[String]) -> Vec<&str> {
    replies
        .iter()
        .map(|r| r.split(' ').nth(1).unwrap_or(""))
        .collect()
}

/// A message of about `n` octets.
fn message(subject: &str, n: usize) -> String {
    let mut m = format!("Subject: {subject}\r\n\r\n");
    while m.len() < n {
        m.push_str("0123456789012345678901234567890123456789012345678901234567890123456789\r\n");
    }
    m
}

fn maildirsize(d: &Daemon, user: &str) -> String {
    std::fs::read_to_string(d.data_dir().join("mail").join(user).join("maildirsize"))
        .unwrap_or_default()
}

/// The (bytes, count) `maildirsize` sums to.
fn summed(text: &str) -> (i64, i64) {
    text.lines().skip(1).fold((0, 0), |(b, c), l| {
        let mut f = l.split_whitespace().map(|x| x.parse::<i64>().unwrap());
        (b + f.next().unwrap(), c + f.next().unwrap())
    })
}

fn login(addr: std::net::SocketAddr, user: &str, pass: &str) -> Client {
    let mut c = Client::connect(addr, WAIT);
    let l = c.tagged(&format!("a LOGIN {user} {pass}"), "a").1;
    assert!(l.starts_with("a OK"), "{l}");
    c
}

/// APPENDs `msg` to `mailbox`; returns the tagged completion.
fn append(c: &mut Client, tag: &str, mailbox: &str, msg: &str) -> String {
    c.send(format!("{tag} APPEND {mailbox} {{{}+}}\r\n", msg.len()).as_bytes());
    c.send(msg.as_bytes());
    c.send(b"\r\n");
    c.until_tagged(tag).1
}

#[test]
fn lmtp_refuses_only_the_recipient_over_quota() {
    // alice: the config's default (3 messages); bob: his own storage rule (the default's
    // message limit stays); dave: unlimited by his rules.
    let d = daemon(
        "bob:{PLAIN}b:::::: userdb_quota_rule=*:storage=3K\n\
         dave:{PLAIN}d:::::: quota_rule=*:messages=0 quota_rule2=*:storage=0\n",
        "messages = 3\ngrace = \"0\"",
    );
    let rcpts = ["alice@example.org", "bob@example.org", "dave@example.org"];
    let r = send(&d, &rcpts, &message("one", 1400));
    assert_eq!(codes(&r), ["250", "250", "250"], "{r:?}");
    assert!(
        maildirsize(&d, "bob").starts_with("3072S,3C\n"),
        "{}",
        maildirsize(&d, "bob")
    );
    // Dovecot's limits line: no `0S` part when only the count is limited.
    assert!(
        maildirsize(&d, "alice").starts_with("3C\n"),
        "{}",
        maildirsize(&d, "alice")
    );
    // No limits: no maildirsize is made for dave.
    assert_eq!(maildirsize(&d, "dave"), "");
    // bob's second copy would pass 3 KiB: refused for him alone.
    let r = send(&d, &rcpts, &message("two", 1400));
    assert_eq!(codes(&r), ["250", "552", "250"], "{r:?}");
    assert_eq!(
        r[1],
        "bob@example.org 552 5.2.2 <bob@example.org> Quota exceeded (mailbox for user is full)"
    );
    let r = send(&d, &rcpts, &message("three", 100));
    assert_eq!(codes(&r), ["250", "250", "250"], "{r:?}");
    // alice has 3 of 3 messages now.
    let r = send(&d, &rcpts, &message("four", 100));
    assert_eq!(codes(&r), ["552", "250", "250"], "{r:?}");
    let (_, count) = summed(&maildirsize(&d, "alice"));
    assert_eq!(count, 3);
    let (bytes, count) = summed(&maildirsize(&d, "bob"));
    assert_eq!(count, 3);
    assert!(bytes > 1400 && bytes <= 3072, "{bytes}");
    // bob's count limit (the default's) holds too.
    let r = send(&d, &rcpts, &message("five", 10));
    assert_eq!(codes(&r), ["552", "552", "250"], "{r:?}");
}

#[test]
fn lmtp_and_deliver_tempfail_with_full_tempfail() {
    let d = daemon("", "messages = 1\nfull_tempfail = true");
    let r = send(&d, &["alice"], &message("one", 100));
    assert_eq!(codes(&r), ["250"]);
    let r = send(&d, &["alice"], &message("two", 100));
    assert_eq!(
        r,
        ["alice 452 4.2.2 <alice> Quota exceeded (mailbox for user is full)"]
    );
    let (code, err) = lda(&d.config_path, "alice", b"Subject: piped\n\nx\n");
    assert_eq!(code, 75, "{err}");
    assert!(err.contains("Quota exceeded"), "{err}");
}

/// Runs `cmd` with `input` on its stdin: its exit code and stderr.
fn piped(mut cmd: Command, input: &[u8]) -> (i32, String) {
    let mut child = cmd
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

/// Dovecot's `dovecot-lda -e` of `input` to `user`: its exit code (0 delivered, 77 over
/// quota) and stderr.
fn dovecot_lda(dv: &dovecot::Dovecot, user: &str, input: &[u8]) -> (i32, String) {
    let mut cmd = Command::new("timeout");
    cmd.arg("20")
        .arg("/usr/lib/dovecot/dovecot-lda")
        .arg("-c")
        .arg(dv.conf())
        .args(["-e", "-d", user]);
    piped(cmd, input)
}

/// Dovecot's `quota_grace` (default 10%) for deliveries, side by side with Dovecot's LDA on
/// a tree of its own: the same sequence of deliveries is taken or refused the same way by
/// both (a user under the limit may overshoot it by the grace once; at or over it, nothing),
/// and our IMAP APPEND gets no grace.
#[test]
fn deliveries_get_dovecots_quota_grace_and_append_does_not() {
    // 40,000 octets, so the grace is 4,000. Both servers store LF line ends (about 71/72
    // of these CRLF sizes) and add trace headers of their own (h octets per message); every
    // step below gives the same answer for any h up to 500 octets.
    let sizes_alice = [24_000, 19_000, 100];
    let sizes_bob = [24_000, 21_500, 14_000, 4_500, 50];
    let expected_alice = [true, true, false];
    let expected_bob = [true, false, true, true, false];
    let d = daemon(
        "bob:{PLAIN}b\ncarol:{PLAIN}c:::::: userdb_quota_grace=0\n",
        "storage = \"40000B\"",
    );
    let ours = |user: &str, sizes: &[usize]| -> Vec<bool> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let r = send(&d, &[user], &message(&format!("{user} {i}"), *n));
                match codes(&r)[..] {
                    ["250"] => true,
                    ["552"] => false,
                    _ => panic!("{r:?}"),
                }
            })
            .collect()
    };
    assert_eq!(ours("alice", &sizes_alice), expected_alice);
    assert_eq!(ours("bob", &sizes_bob), expected_bob);
    // No grace for carol (her own quota_grace), and none for an APPEND.
    assert_eq!(
        ours("carol", &[24_000, 19_000, 15_000]),
        [true, false, true]
    );
    let mut c = login(d.imap.unwrap(), "bob", "b");
    let (bytes, _) = summed(&maildirsize(&d, "bob"));
    assert!(
        bytes > 40_000,
        "bob is over the limit by his grace: {bytes}"
    );
    let done = append(&mut c, "p", "INBOX", &message("append", 100));
    assert!(done.starts_with("p NO [OVERQUOTA]"), "{done}");
    let (code, err) = lda(&d.config_path, "alice", b"Subject: piped\n\nx\n");
    assert_eq!(code, 77, "alice is over: {err}");

    if dovecot::skip(true) {
        return;
    }
    let dvdir = tempfile::tempdir().unwrap();
    let mail = dvdir.path().join("mail");
    let dv = dovecot::Dovecot::start(
        dvdir.path(),
        dovecot::Options {
            protocol: "imap",
            name: "mailserver-quota-grace",
            mail_location: format!("maildir:{}/%u", mail.display()),
            users: "alice:{PLAIN}a\nbob:{PLAIN}b\n".into(),
            namespace: String::new(),
            extra: "mail_plugins = $mail_plugins quota\n\
                    plugin {\n  quota = maildir:User quota\n  quota_rule = *:bytes=40000\n}\n"
                .into(),
            mail_dirs: vec![mail.clone()],
        },
    );
    let theirs = |user: &str, sizes: &[usize]| -> Vec<bool> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let m = message(&format!("{user} {i}"), *n).replace("\r\n", "\n");
                match dovecot_lda(&dv, user, m.as_bytes()) {
                    (0, _) => true,
                    (77, _) => false,
                    (code, err) => panic!("dovecot-lda {code}: {err}\n{}", dv.log()),
                }
            })
            .collect()
    };
    assert_eq!(
        theirs("alice", &sizes_alice),
        expected_alice,
        "{}",
        dv.log()
    );
    assert_eq!(theirs("bob", &sizes_bob), expected_bob, "{}", dv.log());
}

/// A mailbox's own rule (`quota_rule2=Trash:bytes=+N`, Dovecot's Trash example) raises the
/// limit for saves into it only: the same deliveries, to INBOX and to Trash, are taken or
/// refused the same way by our LMTP and by Dovecot's LDA (`-m Trash`) with those rules.
#[test]
fn a_trash_rule_raises_the_limit_for_trash_only_as_dovecot() {
    // 40,000 octets, Trash +20,000, no grace. Stored sizes are about 71/72 of these CRLF
    // sizes plus each server's trace headers; every step has more than 500 octets to spare.
    let steps: [(&str, usize, bool); 6] = [
        ("INBOX", 30_000, true),
        ("INBOX", 15_000, false),
        ("Trash", 15_000, true),
        ("INBOX", 100, false),
        ("Trash", 10_000, true),
        ("Trash", 7_000, false),
    ];
    let d = daemon(
        "erin:{PLAIN}e:::::: userdb_quota_rule=*:bytes=40000 userdb_quota_rule2=Trash:bytes=+20000\n",
        "grace = \"0\"",
    );
    let ours: Vec<bool> = steps
        .iter()
        .enumerate()
        .map(|(i, (folder, n, _))| {
            let rcpt = if *folder == "INBOX" {
                "erin".to_string()
            } else {
                format!("erin+{folder}")
            };
            let r = send(&d, &[&rcpt], &message(&format!("erin {i}"), *n));
            match codes(&r)[..] {
                ["250"] => true,
                ["552"] => false,
                _ => panic!("{r:?}"),
            }
        })
        .collect();
    let expected: Vec<bool> = steps.iter().map(|s| s.2).collect();
    assert_eq!(ours, expected);
    // APPEND and COPY follow the same rule: into Trash up to 60,000, elsewhere nothing more.
    let mut c = login(d.imap.unwrap(), "erin", "e");
    let done = append(&mut c, "a", "INBOX", &message("append", 100));
    assert!(done.starts_with("a NO [OVERQUOTA]"), "{done}");
    let done = append(&mut c, "b", "Trash", &message("append", 2_000));
    assert!(done.starts_with("b OK"), "{done}");

    if dovecot::skip(true) {
        return;
    }
    let dvdir = tempfile::tempdir().unwrap();
    let mail = dvdir.path().join("mail");
    let dv = dovecot::Dovecot::start(
        dvdir.path(),
        dovecot::Options {
            protocol: "imap",
            name: "mailserver-quota-trash",
            mail_location: format!("maildir:{}/%u", mail.display()),
            users: "erin:{PLAIN}e\n".into(),
            namespace: dovecot::special_use_namespace(),
            extra: "mail_plugins = $mail_plugins quota\n\
                    plugin {\n  quota = maildir:User quota\n  quota_rule = *:bytes=40000\n  \
                    quota_rule2 = Trash:bytes=+20000\n  quota_grace = 0\n}\n"
                .into(),
            mail_dirs: vec![mail.clone()],
        },
    );
    let theirs: Vec<bool> = steps
        .iter()
        .enumerate()
        .map(|(i, (folder, n, _))| {
            let m = message(&format!("erin {i}"), *n).replace("\r\n", "\n");
            let mut cmd = Command::new("timeout");
            cmd.arg("20")
                .arg("/usr/lib/dovecot/dovecot-lda")
                .arg("-c")
                .arg(dv.conf())
                .args(["-e", "-d", "erin", "-m", folder]);
            match piped(cmd, m.as_bytes()) {
                (0, _) => true,
                (77, _) => false,
                (code, err) => panic!("dovecot-lda {code}: {err}\n{}", dv.log()),
            }
        })
        .collect();
    assert_eq!(theirs, expected, "{}", dv.log());
    // Dovecot put the Trash deliveries into Trash (not INBOX).
    let trash = std::fs::read_dir(mail.join("erin/.Trash/new")).map_or(0, |r| r.count())
        + std::fs::read_dir(mail.join("erin/.Trash/cur")).map_or(0, |r| r.count());
    assert_eq!(trash, 2, "{}", dv.log());
}

fn lda(config: &Path, user: &str, input: &[u8]) -> (i32, String) {
    let mut cmd = Command::new(common::bin());
    cmd.arg("--config")
        .arg(config)
        .args(["deliver", "-d", user]);
    piped(cmd, input)
}

#[test]
fn deliver_bounces_over_quota_with_ex_noperm() {
    let d = daemon("", "storage = \"1K\"");
    assert_eq!(
        lda(&d.config_path, "alice", message("a", 600).as_bytes()).0,
        0
    );
    let (code, err) = lda(&d.config_path, "alice", message("b", 600).as_bytes());
    assert_eq!(code, 77, "{err}");
    assert!(err.contains("Quota exceeded"), "{err}");
    // A smaller one still fits.
    assert_eq!(lda(&d.config_path, "alice", b"Subject: c\n\nx\n").0, 0);
}

#[test]
fn imap_quota_commands_append_copy_move_expunge() {
    let d = daemon("", "storage = \"100K\"\nmessages = 3");
    let mut c = login(d.imap.unwrap(), "alice", "wonderland");
    let caps = c.ok("c CAPABILITY", "c");
    assert!(
        caps[0].contains(" QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE "),
        "{caps:?}"
    );
    let u = c.ok("q GETQUOTAROOT INBOX", "q");
    assert_eq!(
        u,
        [
            "* QUOTAROOT INBOX \"User quota\"",
            "* QUOTA \"User quota\" (STORAGE 0 100 MESSAGE 0 3)"
        ]
    );
    for i in 0..3 {
        let done = append(&mut c, "p", "INBOX", &message(&format!("m{i}"), 2000));
        assert!(done.starts_with("p OK"), "{done}");
    }
    let u = c.ok("q GETQUOTA \"User quota\"", "q");
    assert_eq!(u, ["* QUOTA \"User quota\" (STORAGE 6 100 MESSAGE 3 3)"]);
    assert_eq!(c.ok("q GETQUOTA \"\"", "q"), u);
    let (_, done) = c.tagged("q GETQUOTA nosuchroot", "q");
    assert!(done.starts_with("q NO"), "{done}");
    let (_, done) = c.tagged("q GETQUOTAROOT nosuchbox", "q");
    assert!(done.starts_with("q NO [NONEXISTENT]"), "{done}");
    let (_, done) = c.tagged("s SETQUOTA \"User quota\" (STORAGE 1000)", "s");
    assert!(done.starts_with("s NO [NOPERM]"), "{done}");

    let done = append(&mut c, "p", "INBOX", "Subject: x\r\n\r\nx\r\n");
    assert!(done.starts_with("p NO [OVERQUOTA]"), "{done}");
    c.ok("x SELECT INBOX", "x");
    let (_, done) = c.tagged("x COPY 1 Archive", "x");
    assert!(done.starts_with("x NO [OVERQUOTA]"), "{done}");
    // MOVE does not grow the usage: allowed over quota, as Dovecot.
    c.ok("x MOVE 1 Archive", "x");
    let u = c.ok("q GETQUOTAROOT Archive", "q");
    assert_eq!(u[0], "* QUOTAROOT Archive \"User quota\"");
    assert_eq!(u[1], "* QUOTA \"User quota\" (STORAGE 6 100 MESSAGE 3 3)");
    // Expunge lowers it; then an APPEND fits again.
    c.ok("x STORE 1 +FLAGS (\\Deleted)", "x");
    c.ok("x EXPUNGE", "x");
    let u = c.ok("q GETQUOTA \"\"", "q");
    assert_eq!(u, ["* QUOTA \"User quota\" (STORAGE 4 100 MESSAGE 2 3)"]);
    let done = append(&mut c, "p", "Sent", "Subject: x\r\n\r\nx\r\n");
    assert!(done.starts_with("p OK"), "{done}");
    // The deltas sum to what a recalculation finds.
    let text = maildirsize(&d, "alice");
    let (bytes, count) = summed(&text);
    std::fs::remove_file(d.data_dir().join("mail/alice/maildirsize")).unwrap();
    let u = c.ok("q GETQUOTA \"\"", "q");
    assert_eq!(
        u,
        [format!(
            "* QUOTA \"User quota\" (STORAGE {} 100 MESSAGE {count} 3)",
            (bytes + 1023) / 1024
        )]
    );
    assert_eq!(summed(&maildirsize(&d, "alice")), (bytes, count), "{text}");
}

#[test]
fn users_without_limits_have_no_quota_root() {
    let d = daemon("", "");
    let mut c = login(d.imap.unwrap(), "alice", "wonderland");
    assert_eq!(c.ok("q GETQUOTAROOT INBOX", "q"), ["* QUOTAROOT INBOX"]);
    let (_, done) = c.tagged("q GETQUOTA \"\"", "q");
    assert!(done.starts_with("q NO"), "{done}");
    let done = append(&mut c, "p", "INBOX", &message("big", 5000));
    assert!(done.starts_with("p OK"), "{done}");
}

#[test]
fn pop3_dele_works_over_quota() {
    let d = daemon("", "messages = 2");
    for s in ["a", "b"] {
        assert_eq!(codes(&send(&d, &["alice"], &message(s, 100))), ["250"]);
    }
    assert_eq!(codes(&send(&d, &["alice"], &message("c", 100))), ["552"]);
    let out = python(
        r#"
import poplib, sys
host, port = sys.argv[1].rsplit(":", 1)
p = poplib.POP3(host, int(port), timeout=20)
p.user("alice"); p.pass_("wonderland")
print(p.stat()[0])
print(p.dele(1).decode())
print(p.quit().decode())
"#,
        &[&d.pop3.unwrap().to_string()],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "2");
    assert!(
        lines[1].starts_with("+OK") && lines[2].starts_with("+OK"),
        "{out}"
    );
    assert_eq!(summed(&maildirsize(&d, "alice")).1, 1);
    assert_eq!(codes(&send(&d, &["alice"], &message("d", 100))), ["250"]);
}

/// imaplib against `port` as alice: prints GETQUOTAROOT INBOX's untagged lines, then does
/// what `argv[2]` says (`append N`: N messages of 3000 octets).
const DOVECOT_SCRIPT: &str = r#"
import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]), timeout=20)
m.login("alice", "wonderland")
act = sys.argv[2].split()
if act[0] == "append":
    for i in range(int(act[1])):
        body = "Subject: dovecot %d\r\n\r\n" % i + "x" * 3000 + "\r\n"
        typ, data = m.append("INBOX", None, None, body.encode())
        print("APPEND", typ, data[0].decode())
if act[0] == "copymove":
    m.select("INBOX")
    typ, data = m.copy("1", "Archive")
    print("COPY", typ, data[0].decode().split("]")[0] + "]")
    typ, data = m._simple_command("MOVE", "1", "Archive")
    print("MOVE", typ)
typ, data = m.getquotaroot("INBOX")
for group in data:
    for d in group:
        print(d.decode())
m.logout()
"#;

/// Ours, through our IMAP: GETQUOTAROOT INBOX's untagged lines as imaplib shows them.
fn ours_quota(d: &Daemon) -> Vec<String> {
    let mut c = login(d.imap.unwrap(), "alice", "wonderland");
    c.ok("q GETQUOTAROOT INBOX", "q")
        .into_iter()
        .map(|l| {
            l.trim_start_matches("* QUOTAROOT ")
                .trim_start_matches("* QUOTA ")
                .to_string()
        })
        .collect()
}

fn dovecot_quota(port: u16, action: &str) -> Vec<String> {
    let out = python(DOVECOT_SCRIPT, &[&port.to_string(), action]);
    out.lines()
        .filter(|l| !l.starts_with("APPEND") && !l.starts_with("COPY") && !l.starts_with("MOVE"))
        .map(str::to_string)
        .collect()
}

/// `doveadm quota get -u alice` as (resource, value, limit) rows.
fn doveadm_quota(dv: &dovecot::Dovecot) -> Vec<(String, String, String)> {
    let out = Command::new("timeout")
        .arg("20")
        .arg(dovecot::DOVEADM)
        .arg("-c")
        .arg(dv.conf())
        .args(["quota", "get", "-u", "alice"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // "User quota STORAGE 12 1024 1"
            (f[2].to_string(), f[3].to_string(), f[4].to_string())
        })
        .collect()
}

/// Lets Dovecot's `mail` user reach the tree: `chown -R mail:mail`, parents traversable.
fn chown_mail(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for a in p.ancestors().take(3) {
        std::fs::set_permissions(a, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let st = Command::new("chown")
        .args(["-R", "mail:mail"])
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn dovecot_and_we_agree_on_one_maildirsize() {
    if dovecot::skip(true) {
        return;
    }
    // A limit that is not a whole KiB: both round STORAGE the same way.
    let d = daemon("", "storage = \"1048577B\"\nmessages = 10");
    let mail = d.data_dir().join("mail");
    // Ours first: three deliveries and an APPEND, one expunged.
    for (i, n) in [1500, 2500, 40000].iter().enumerate() {
        let r = send(&d, &["alice"], &message(&format!("lmtp {i}"), *n));
        assert_eq!(codes(&r), ["250"], "{r:?}");
    }
    {
        let mut c = login(d.imap.unwrap(), "alice", "wonderland");
        let done = append(&mut c, "p", "Sent", &message("sent", 7000));
        assert!(done.starts_with("p OK"), "{done}");
        c.ok("x SELECT INBOX", "x");
        c.ok("x STORE 2 +FLAGS (\\Deleted)", "x");
        c.ok("x EXPUNGE", "x");
    }
    let ours_before = maildirsize(&d, "alice");
    assert!(
        ours_before.lines().count() > 2,
        "deltas appended: {ours_before}"
    );

    let dvdir = tempfile::tempdir().unwrap();
    chown_mail(&mail);
    let dv = dovecot::Dovecot::start(
        dvdir.path(),
        dovecot::Options {
            protocol: "imap",
            name: "mailserver-quota-test",
            mail_location: format!("maildir:{}/%u", mail.display()),
            users: "alice:{PLAIN}wonderland\n".into(),
            namespace: dovecot::special_use_namespace(),
            extra: "mail_plugins = $mail_plugins quota\n\
                    protocol imap {\n  mail_plugins = $mail_plugins imap_quota\n}\n\
                    plugin {\n  quota = maildir:User quota\n  quota_rule = *:bytes=1048577\n  \
                    quota_rule2 = *:messages=10\n  quota_grace = 0\n}\n"
                .into(),
            mail_dirs: vec![mail.clone()],
        },
    );
    // Dovecot reads our maildirsize (not recalculated: same limits, our deltas kept).
    let theirs = dovecot_quota(dv.port, "none");
    assert_eq!(theirs, ours_quota(&d), "{}", dv.log());
    assert_eq!(maildirsize(&d, "alice"), ours_before, "Dovecot rewrote it");
    let (bytes, count) = summed(&ours_before);
    assert_eq!(
        doveadm_quota(&dv),
        [
            (
                "STORAGE".into(),
                ((bytes + 1023) / 1024).to_string(),
                "1025".into()
            ),
            ("MESSAGE".into(), count.to_string(), "10".into())
        ]
    );

    // Dovecot appends; we read its deltas.
    let theirs = dovecot_quota(dv.port, "append 2");
    let after = maildirsize(&d, "alice");
    assert!(after.starts_with(&ours_before), "Dovecot appended: {after}");
    assert_eq!(summed(&after).1, count + 2);
    assert_eq!(ours_quota(&d), theirs);

    // Over the message limit in both.
    let theirs = dovecot_quota(dv.port, "append 5");
    assert_eq!(summed(&maildirsize(&d, "alice")).1, 10);
    assert_eq!(ours_quota(&d), theirs);
    let r = send(&d, &["alice"], &message("full", 100));
    assert_eq!(codes(&r), ["552"], "{r:?}");
    // Over quota, Dovecot refuses COPY and allows MOVE, as we do (`imap_quota_commands...`).
    let out = python(DOVECOT_SCRIPT, &[&dv.port.to_string(), "copymove"]);
    assert!(out.contains("COPY NO [OVERQUOTA]\nMOVE OK\n"), "{out}");
    chown_mail(&mail);
    assert_eq!(dovecot_quota(dv.port, "none"), ours_quota(&d));

    // Recalculated from the tree, each writes the same file.
    let file = mail.join("alice/maildirsize");
    std::fs::remove_file(&file).unwrap();
    let theirs = dovecot_quota(dv.port, "none");
    let dovecot_text = maildirsize(&d, "alice");
    std::fs::remove_file(&file).unwrap();
    assert_eq!(ours_quota(&d), theirs);
    assert_eq!(maildirsize(&d, "alice"), dovecot_text);
    assert!(dovecot_text.starts_with("1048577S,10C\n"), "{dovecot_text}");
    assert_eq!(dovecot_text.lines().count(), 2, "{dovecot_text}");
}
