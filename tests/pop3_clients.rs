//! Real POP3 clients against the real `mailserver` binary (`tests/common`: config in a
//! tempdir, listeners on 127.0.0.1:0 learned from the log, mail dropped into `new/` as an MTA
//! does): Python `poplib` (plain, STLS, POP3S, APOP), `curl pop3://` / `pop3s://`, and Debian
//! `fetchmail` in keep mode (with UIDL bookkeeping) and in delete mode over POP3S.
//! A client that is not installed makes its test fail, not pass silently. Every external
//! program runs under `timeout 60`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::Daemon;

const MSG1: &str = "From: a@example.org\nSubject: one\n\nline 1\n.dot line\n..two dots\nend\n";
const MSG2: &str = "From: b@example.org\nSubject: two\n\nhello\n";
const MSG3: &str = "From: c@example.org\nSubject: three\n\n.\n..\nbye\n";

fn crlf(s: &str) -> String {
    s.replace('\n', "\r\n")
}

/// A daemon with `bob`/`secret` besides the default `alice`/`wonderland`.
fn daemon() -> Daemon {
    Daemon::start_with(common::Options {
        users: "bob:{PLAIN}secret\n".into(),
        ..common::Options::default()
    })
}

/// Runs `args` under `timeout 60`.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new("timeout");
    c.arg("60").args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("cannot run")
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

/// UIDVALIDITY of a user's INBOX from Dovecot's `dovecot-uidlist` header (`3 V<n> N<n> ...`).
fn uid_validity(d: &Daemon, user: &str) -> u32 {
    let p = d.data_dir().join("mail").join(user).join("dovecot-uidlist");
    let text = std::fs::read_to_string(&p).unwrap();
    let v = text
        .lines()
        .next()
        .unwrap()
        .split(' ')
        .find_map(|f| f.strip_prefix('V'))
        .unwrap();
    v.parse().unwrap()
}

/// Message files of a user's INBOX (`new/` and `cur/`).
fn files(d: &Daemon, user: &str) -> Vec<String> {
    let root = d.data_dir().join("mail").join(user);
    let mut v = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(rd) = std::fs::read_dir(root.join(sub)) {
            for e in rd {
                v.push(format!(
                    "{sub}/{}",
                    e.unwrap().file_name().to_string_lossy()
                ));
            }
        }
    }
    v.sort();
    v
}

const POPLIB: &str = r#"
import poplib, ssl, sys
host, port, sport = '127.0.0.1', int(sys.argv[1]), int(sys.argv[2])
ctx = ssl._create_unverified_context()

p = poplib.POP3(host, port, timeout=10)
assert p.getwelcome().startswith(b'+OK test.example ready. <'), p.getwelcome()
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
p.user('alice'); p.pass_('wonderland')
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

#[test]
fn python_poplib_plain_stls_pop3s_apop() {
    let d = daemon();
    common::deliver(&d.data_dir(), "bob", 1, MSG1);
    common::deliver(&d.data_dir(), "bob", 2, MSG2);
    common::deliver(&d.data_dir(), "alice", 3, MSG2);
    let out = check(&run(
        &[
            "python3",
            "-c",
            POPLIB,
            &d.pop3.unwrap().port().to_string(),
            &d.pop3s.unwrap().port().to_string(),
        ],
        &[],
    ));
    let size1 = crlf(MSG1).len();
    let size2 = crlf(MSG2).len();
    let v = uid_validity(&d, "bob");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("stat 2 {}", size1 + size2));
    assert_eq!(lines[1], format!("list ['1 {size1}', '2 {size2}']"));
    assert_eq!(
        lines[2],
        format!("uidl ['1 00000001{v:08x}', '2 00000002{v:08x}']")
    );
    // poplib un-stuffs and counts the octets after un-stuffing: the message size.
    assert_eq!(
        lines[3],
        format!(
            "retr {size1} ['From: a@example.org', 'Subject: one', '', 'line 1', '.dot line', '..two dots', 'end']"
        )
    );
    assert_eq!(lines[4], "top ['From: b@example.org', 'Subject: two', '']");
    assert_eq!(lines[5], "quit +OK Logging out, 1 messages deleted.");
    assert_eq!(lines[6], format!("stls-stat (1, {size2})"));
    assert_eq!(lines[7], format!("pop3s-stat (1, {size1})"));
    assert_eq!(lines[8], "err b\"-ERR There's no message 7.\"");
    assert_eq!(lines[9], "done");
    // On disk: one file left for bob, in cur/ with `S` (RETR 1, then QUIT).
    let f = files(&d, "bob");
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(f[0].starts_with("cur/") && f[0].ends_with(":2,S"), "{f:?}");
}

#[test]
fn curl_pop3_list_retr_and_pop3s() {
    let d = daemon();
    common::deliver(&d.data_dir(), "bob", 1, MSG1);
    common::deliver(&d.data_dir(), "bob", 2, MSG2);
    let (port, sport) = (d.pop3.unwrap().port(), d.pop3s.unwrap().port());
    let curl = |url: String, extra: &[&str], user: &str| {
        let mut v = vec!["curl", "-sS", "--max-time", "20"];
        v.extend_from_slice(extra);
        v.extend_from_slice(&["-u", user, &url]);
        run(&v, &[])
    };
    let size1 = crlf(MSG1).len();
    let size2 = crlf(MSG2).len();
    let list = check(&curl(
        format!("pop3://127.0.0.1:{port}/"),
        &[],
        "bob:secret",
    ));
    assert_eq!(list, format!("1 {size1}\r\n2 {size2}\r\n"));
    let retr = check(&curl(
        format!("pop3://127.0.0.1:{port}/1"),
        &[],
        "bob:secret",
    ));
    assert_eq!(retr, crlf(MSG1));
    // STLS required (self-signed certificate accepted with -k), then implicit TLS.
    let retr = check(&curl(
        format!("pop3://127.0.0.1:{port}/2"),
        &["--ssl-reqd", "-k"],
        "bob:secret",
    ));
    assert_eq!(retr, crlf(MSG2));
    let retr = check(&curl(
        format!("pop3s://127.0.0.1:{sport}/2"),
        &["-k"],
        "bob:secret",
    ));
    assert_eq!(retr, crlf(MSG2));
    let list = check(&curl(
        format!("pop3s://127.0.0.1:{sport}/"),
        &["-k"],
        "bob:secret",
    ));
    assert_eq!(list, format!("1 {size1}\r\n2 {size2}\r\n"));
    // Wrong password: curl fails with its login-denied code (67).
    let o = curl(format!("pop3://127.0.0.1:{port}/"), &[], "bob:wrong");
    assert_eq!(o.status.code(), Some(67), "{o:?}");
}

/// A fetchmail run directory: HOME, rcfile (mode 0600), id file, the mbox the MDA appends to.
struct Fetch {
    dir: tempfile::TempDir,
}

impl Fetch {
    fn new() -> Fetch {
        Fetch {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn mbox(&self) -> PathBuf {
        self.dir.path().join("mbox")
    }
    fn mbox_text(&self) -> String {
        std::fs::read_to_string(self.mbox()).unwrap_or_default()
    }
    /// Writes the rcfile for `poll` (one server entry) and runs fetchmail with `extra` flags.
    fn run(&self, poll: &str, extra: &[&str]) -> Output {
        use std::os::unix::fs::PermissionsExt;
        let rc = self.dir.path().join("fetchmailrc");
        std::fs::write(&rc, format!("set no bouncemail\n{poll}\n")).unwrap();
        std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).unwrap();
        let home = self.dir.path().display().to_string();
        let rc = rc.display().to_string();
        let ids = self.dir.path().join("fetchids").display().to_string();
        // As root fetchmail keeps its pid file in /var/run whatever FETCHMAILHOME says, so two
        // runs at once (parallel tests, another checkout's tests) would refuse each other.
        let pid = self.dir.path().join("fetchmail.pid").display().to_string();
        let mut args = vec![
            "fetchmail",
            "--nosyslog",
            "-d0",
            "--fetchmailrc",
            &rc,
            "--idfile",
            &ids,
            "--pidfile",
            &pid,
        ];
        args.extend_from_slice(extra);
        run(&args, &[("HOME", &home), ("FETCHMAILHOME", &home)])
    }
}

fn mda(mbox: &Path) -> String {
    format!("mda \"/bin/sh -c 'cat >> {}'\"", mbox.display())
}

fn fetch_ok(o: &Output) {
    assert_eq!(
        o.status.code(),
        Some(0),
        "fetchmail should have fetched mail: {:?}\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// fetchmail's exit code 1: "no new mail".
fn fetch_nothing(o: &Output) {
    assert_eq!(
        o.status.code(),
        Some(1),
        "fetchmail should have found no new mail: {:?}\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn fetchmail_keep_mode_with_uidl_fetches_each_message_once() {
    let d = daemon();
    common::deliver(&d.data_dir(), "bob", 1, MSG1);
    common::deliver(&d.data_dir(), "bob", 2, MSG2);
    let f = Fetch::new();
    // Plain POP3 (sslproto '' stops fetchmail's opportunistic STLS with certificate checks).
    let poll = format!(
        "poll 127.0.0.1 with proto POP3 port {} and options no dns uidl\n\
         \x20 user \"bob\" there with password \"secret\" is root here\n\
         \x20 options keep sslproto '' {}",
        d.pop3.unwrap().port(),
        mda(&f.mbox())
    );
    fetch_ok(&f.run(&poll, &["--keep", "--uidl"]));
    let mbox = f.mbox_text();
    assert_eq!(mbox.matches("Subject: ").count(), 2, "{mbox}");
    assert!(mbox.contains("Subject: one") && mbox.contains("Subject: two"));
    // fetchmail un-stuffs: the lines are back as stored.
    assert!(
        mbox.contains("\n.dot line\n") && mbox.contains("\n..two dots\n"),
        "{mbox}"
    );
    // Kept on the server.
    assert_eq!(files(&d, "bob").len(), 2);

    // Second run: nothing new by UIDL.
    fetch_nothing(&f.run(&poll, &["--keep", "--uidl"]));
    assert_eq!(f.mbox_text().matches("Subject: ").count(), 2);

    // A new delivery: only that one is fetched.
    common::deliver(&d.data_dir(), "bob", 3, MSG3);
    fetch_ok(&f.run(&poll, &["--keep", "--uidl"]));
    let mbox = f.mbox_text();
    assert_eq!(mbox.matches("Subject: ").count(), 3, "{mbox}");
    assert_eq!(mbox.matches("Subject: three").count(), 1, "{mbox}");
    assert!(mbox.contains("\n.\n..\nbye\n"), "{mbox}");
    assert_eq!(files(&d, "bob").len(), 3);
    // The id file holds our UIDLs (Dovecot's format).
    let v = uid_validity(&d, "bob");
    let ids = std::fs::read_to_string(f.dir.path().join("fetchids")).unwrap();
    for uid in 1..=3 {
        assert!(ids.contains(&format!("{uid:08x}{v:08x}")), "{ids}");
    }
}

#[test]
fn fetchmail_delete_mode_over_pop3s_empties_the_maildrop() {
    let d = daemon();
    common::deliver(&d.data_dir(), "bob", 1, MSG1);
    common::deliver(&d.data_dir(), "bob", 2, MSG2);
    common::deliver(&d.data_dir(), "bob", 3, MSG3);
    let f = Fetch::new();
    let poll = format!(
        "poll 127.0.0.1 with proto POP3 port {} and options no dns\n\
         \x20 user \"bob\" there with password \"secret\" is root here\n\
         \x20 options ssl no sslcertck no keep flush {}",
        d.pop3s.unwrap().port(),
        mda(&f.mbox())
    );
    fetch_ok(&f.run(&poll, &["--nosslcertck"]));
    let mbox = f.mbox_text();
    assert_eq!(mbox.matches("Subject: ").count(), 3, "{mbox}");
    // Deleted at QUIT: nothing left in the Maildir, and a new run finds nothing.
    assert!(files(&d, "bob").is_empty(), "{:?}", files(&d, "bob"));
    fetch_nothing(&f.run(&poll, &["--nosslcertck"]));
    assert_eq!(f.mbox_text().matches("Subject: ").count(), 3);
}

#[test]
fn fetchmail_over_stls_is_logged_as_tls() {
    let d = Daemon::start_with(common::Options {
        users: "bob:{PLAIN}secret\n".into(),
        registry: "\"POP3 Protocol Logging Level\" = 1\n".into(),
        ..common::Options::default()
    });
    common::deliver(&d.data_dir(), "bob", 1, MSG1);
    let f = Fetch::new();
    // Plain port, TLS required through STLS (self-signed certificate not checked).
    let poll = format!(
        "poll 127.0.0.1 with proto POP3 port {} and options no dns\n\
         \x20 user \"bob\" there with password \"secret\" is root here\n\
         \x20 options keep sslproto 'tls1.2+' no sslcertck {}",
        d.pop3.unwrap().port(),
        mda(&f.mbox())
    );
    fetch_ok(&f.run(&poll, &[]));
    assert_eq!(f.mbox_text().matches("Subject: one").count(), 1);
    // The level-1 protocol log (path defaults to data_dir) shows the upgrade and the login.
    let log_path = d.data_dir().join("L0000001.log");
    let log = common::wait::wait_for("the session's `-` record", common::wait::WAIT, || {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log.contains(",-,") {
            Ok(log)
        } else {
            Err(log)
        }
    });
    assert!(log.starts_with("#Service: POP3"), "{log}");
    let tls = log.find("TLS established").expect("no TLS record");
    let auth = log
        .find("authentication succeeded: user=bob")
        .expect("no auth record");
    assert!(tls < auth, "TLS must come before the login:\n{log}");
    assert!(!log.contains("secret"), "{log}");
}
