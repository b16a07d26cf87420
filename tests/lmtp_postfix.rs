//! Real Postfix in front of our LMTP: a private Postfix instance (its own `config_directory`,
//! `queue_directory`, `data_directory` and `maillog_file` in a temp dir, smtpd on a free
//! 127.0.0.1 port, `inet_interfaces = loopback-only`) relays mail for `example.com` with
//! `virtual_transport = lmtp:unix:...` or `lmtp:inet:127.0.0.1:PORT` to the daemon. Mail sent
//! by Python's `smtplib` to Postfix's SMTP port ends up in the users' Maildirs and is fetched
//! back over IMAP and POP3; Postfix's log has the per-recipient results (`status=sent`, and
//! `status=bounced` with `5.1.1` for the unknown user, `5.2.2` for the one over quota). A
//! `kill -9` of the daemon during a burst loses nothing and duplicates only what was in flight.
//!
//! Postfix's `master` must start as root (it drops to `mail_owner = postfix` itself): without
//! root or without `/usr/sbin/postfix` the tests print `SKIPPED` (and fail under `CI=true`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{python, wait, Daemon, Options};

const POSTFIX: &str = "/usr/sbin/postfix";

/// Why Postfix cannot run here, if it cannot; under `CI=true` that is a failure.
fn skip() -> bool {
    use std::os::unix::fs::MetadataExt;
    let why = if !Path::new(POSTFIX).exists() {
        Some(format!("{POSTFIX} is not installed (Debian postfix)"))
    } else if std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        != 0
    {
        Some("Postfix's master must be started as root".to_string())
    } else if !common::have("python3") {
        Some("python3 is not installed".to_string())
    } else {
        None
    };
    let Some(why) = why else { return false };
    common::skipped(&why);
    true
}

/// A private Postfix instance; stopped on drop.
struct Postfix {
    dir: tempfile::TempDir,
    smtp_port: u16,
}

impl Postfix {
    fn conf(&self) -> PathBuf {
        self.dir.path().join("conf")
    }

    fn maillog(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// Creates the instance (postfix can traverse the directory) with `transport` for
    /// `example.com` and `extra` lines appended to its main.cf, and starts it.
    fn start(dir: tempfile::TempDir, transport: &str, extra: &str) -> Postfix {
        use std::os::unix::fs::PermissionsExt;
        let d = dir.path();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["conf", "queue", "data"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let uid: u32 = String::from_utf8(
            Command::new("id")
                .args(["-u", "postfix"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
        .trim()
        .parse()
        .expect("a postfix user");
        std::os::unix::fs::chown(d.join("data"), Some(uid), None).unwrap();
        let smtp_port = common::free_port();
        let main_cf = format!(
            "compatibility_level = 3.6\n\
             queue_directory = {d}/queue\n\
             data_directory = {d}/data\n\
             maillog_file = {d}/maillog\n\
             maillog_file_prefixes = {d}\n\
             mail_owner = postfix\n\
             setgid_group = postdrop\n\
             inet_interfaces = loopback-only\n\
             inet_protocols = ipv4\n\
             myhostname = mx.test\n\
             mydomain = test\n\
             mydestination =\n\
             mynetworks = 127.0.0.0/8\n\
             virtual_mailbox_domains = example.com\n\
             virtual_transport = {transport}\n\
             alias_maps =\n\
             alias_database =\n\
             smtputf8_enable = no\n\
             biff = no\n\
             {extra}",
            d = d.display()
        );
        std::fs::write(d.join("conf/main.cf"), main_cf).unwrap();
        // Only what mail through smtpd -> qmgr -> lmtp needs; nothing chrooted (the LMTP
        // socket is outside any chroot).
        let master_cf = format!(
            "127.0.0.1:{smtp_port} inet n - n - - smtpd\n\
             pickup unix n - n 60 1 pickup\n\
             cleanup unix n - n - 0 cleanup\n\
             qmgr unix n - n 300 1 qmgr\n\
             rewrite unix - - n - - trivial-rewrite\n\
             bounce unix - - n - 0 bounce\n\
             defer unix - - n - 0 bounce\n\
             trace unix - - n - 0 bounce\n\
             verify unix - - n - 1 verify\n\
             flush unix n - n 1000? 0 flush\n\
             proxymap unix - - n - - proxymap\n\
             smtp unix - - n - - smtp\n\
             relay unix - - n - - smtp\n\
             showq unix n - n - - showq\n\
             error unix - - n - - error\n\
             retry unix - - n - - error\n\
             discard unix - - n - - discard\n\
             lmtp unix - - n - - lmtp\n\
             anvil unix - - n - 1 anvil\n\
             scache unix - - n - 1 scache\n\
             postlog unix-dgram n - n - 1 postlogd\n"
        );
        std::fs::write(d.join("conf/master.cf"), master_cf).unwrap();
        let pf = Postfix { dir, smtp_port };
        let out = Command::new(POSTFIX)
            .arg("-c")
            .arg(pf.conf())
            .arg("start")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "postfix start failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            pf.maillog()
        );
        pf
    }

    /// Waits (bounded) until Postfix logged a final status for `rcpt`; returns that line.
    fn status_of(&self, rcpt: &str) -> String {
        let needle = format!("to=<{rcpt}>");
        let mut found = String::new();
        wait::wait_for(
            &format!("Postfix's status for {rcpt}"),
            Duration::from_secs(60),
            || {
                let log = self.maillog();
                match log
                    .lines()
                    .find(|l| l.contains(&needle) && l.contains(" status="))
                {
                    Some(l) => {
                        found = l.to_string();
                        Ok(())
                    }
                    None => Err(log),
                }
            },
        );
        found
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let stop = |how: &str| {
            Command::new("timeout")
                .args(["30", POSTFIX, "-c"])
                .arg(self.conf())
                .arg(how)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !stop("stop") {
            stop("abort");
        }
    }
}

/// Sends one message through Postfix's SMTP port with the null sender (bounces go nowhere).
const SMTP_SEND: &str = r#"
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=30)
print(s.sendmail("", sys.argv[2].split(","), sys.argv[3].encode()))
s.quit()
"#;

/// `lmtp` is the daemon's `[lmtp] listen` entry; `transport` Postfix's for it.
fn through_postfix(unix: bool) {
    if skip() {
        return;
    }
    let pdir = tempfile::tempdir().unwrap();
    let sock = pdir.path().join("lmtp.sock");
    let port = common::free_port();
    let listen = if unix {
        format!("unix:{}", sock.display())
    } else {
        format!("127.0.0.1:{port}")
    };
    // carol may hold one message and has one already: over quota.
    let d = Daemon::start_with(Options {
        users: "bob:{PLAIN}builder\ncarol:{PLAIN}c:::::: userdb_quota_rule=*:messages=1\n".into(),
        extra: format!("[lmtp]\nlisten = [\"{listen}\"]\n"),
        ..Options::default()
    });
    let transport = if unix {
        format!("lmtp:unix:{}", sock.display())
    } else {
        format!("lmtp:inet:127.0.0.1:{port}")
    };
    let pf = Postfix::start(pdir, &transport, "");
    let subject = if unix {
        "via postfix unix"
    } else {
        "via postfix inet"
    };
    let body = format!("Subject: {subject}\r\nMessage-ID: <pf@test>\r\n\r\nhello from Postfix\r\n");
    common::deliver(&d.data_dir(), "carol", 1, "Subject: earlier\n\nx\n");
    let rcpts = "alice@example.com,bob+Nope@example.com,nobody@example.com,carol@example.com";
    let out = python(SMTP_SEND, &[&pf.smtp_port.to_string(), rcpts, &body]);
    assert_eq!(out.trim(), "{}", "Postfix's smtpd accepted every recipient");
    for rcpt in ["alice@example.com", "bob+Nope@example.com"] {
        let l = pf.status_of(rcpt);
        assert!(l.contains("status=sent (250 2.0.0 <"), "{l}");
    }
    let l = pf.status_of("nobody@example.com");
    assert!(l.contains("dsn=5.1.1, status=bounced"), "{l}");
    assert!(
        l.contains("550 5.1.1 <nobody@example.com> User doesn't exist"),
        "{l}"
    );
    let l = pf.status_of("carol@example.com");
    assert!(l.contains("dsn=5.2.2, status=bounced"), "{l}");
    assert!(
        l.contains("552 5.2.2 <carol@example.com> Quota exceeded (mailbox for user is full)"),
        "{l}"
    );
    // Fetched back over IMAP, with the trace headers Postfix's copy got from us.
    let mut c = common::imap::Client::login(d.imap.unwrap(), Duration::from_secs(20));
    let u = c.ok("s SELECT INBOX", "s");
    assert!(u.iter().any(|l| l == "* 1 EXISTS"), "{u:?}");
    let all = c.ok("f FETCH 1 BODY.PEEK[]", "f").join("\n");
    assert!(all.contains(&format!("Subject: {subject}")), "{all}");
    assert!(all.contains("Delivered-To: <alice@example.com>"), "{all}");
    assert!(all.contains("Return-Path: <>"), "{all}");
    assert!(all.contains("Received: from mx.test ("), "{all}");
    assert!(all.contains("hello from Postfix"), "{all}");
    // And over POP3 for bob (his detail named no existing folder: INBOX).
    let pop = python(
        "import poplib, sys\n\
         p = poplib.POP3('127.0.0.1', int(sys.argv[1]), timeout=20)\n\
         p.user('bob'); p.pass_('builder')\n\
         print(p.stat()[0]); print(b'\\n'.join(p.retr(1)[1]).decode())\n\
         p.quit()\n",
        &[&d.pop3.unwrap().port().to_string()],
    );
    assert!(pop.starts_with("1\n"), "{pop}");
    assert!(
        pop.contains("Delivered-To: <bob+Nope@example.com>"),
        "{pop}"
    );
    assert!(pop.contains("hello from Postfix"), "{pop}");
    assert!(!d.data_dir().join("mail/nobody").exists());
}

#[test]
fn postfix_delivers_over_the_unix_socket() {
    through_postfix(true);
}

#[test]
fn postfix_delivers_over_tcp() {
    through_postfix(false);
}

/// How many messages the kill -9 test sends through Postfix in one burst.
const BURST: usize = 200;

/// Sends `BURST` messages, each with a unique Message-ID `<burst-N@test>` and a last line
/// `end of burst-N`, in one SMTP session to alice.
const SMTP_BURST: &str = r#"
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=30)
filler = "".join("line %03d of filler text to give the message some body\r\n" % i for i in range(40))
for n in range(int(sys.argv[2])):
    msg = "Subject: burst %d\r\nMessage-ID: <burst-%d@test>\r\n\r\n%send of burst-%d\r\n" % (n, n, filler, n)
    assert s.sendmail("", ["alice@example.com"], msg.encode()) == {}
s.quit()
"#;

/// Postfix's queue ids of the burst, by message number (its cleanup logs `QID: message-id=`).
fn queue_ids(log: &str) -> std::collections::HashMap<String, usize> {
    let mut out = std::collections::HashMap::new();
    for l in log.lines() {
        let Some(i) = l.find(": message-id=<burst-") else {
            continue;
        };
        let qid = l[..i].rsplit(' ').next().unwrap().to_string();
        let n = l[i + ": message-id=<burst-".len()..]
            .split('@')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        out.insert(qid, n);
    }
    out
}

/// The queue ids Postfix logged with `status=WHAT` (`sent`, `deferred`) for alice.
fn with_status(log: &str, what: &str) -> std::collections::HashSet<String> {
    let needle = format!(" status={what} ");
    log.lines()
        .filter(|l| l.contains(": to=<alice@example.com>") && l.contains(&needle))
        .filter_map(|l| {
            let i = l.find(": to=<")?;
            Some(l[..i].rsplit(' ').next()?.to_string())
        })
        .collect()
}

/// Per message number, how many copies are in alice's `new/` and `cur/` (a file in `tmp/`
/// is not delivered); each copy must be complete.
fn delivered_copies(d: &Daemon) -> Vec<usize> {
    let mut out = vec![0; BURST];
    let root = d.data_dir().join("mail/alice");
    for sub in ["new", "cur"] {
        let Ok(rd) = std::fs::read_dir(root.join(sub)) else {
            continue;
        };
        for e in rd {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
            let Some(i) = text.find("Message-ID: <burst-") else {
                continue;
            };
            let n: usize = text[i + "Message-ID: <burst-".len()..]
                .split('@')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert!(
                text.ends_with(&format!("end of burst-{n}\r\n"))
                    || text.ends_with(&format!("end of burst-{n}\n")),
                "a truncated message in {sub}/: {text}"
            );
            out[n] += 1;
        }
    }
    out
}

/// The queue ids `postqueue -p` lists (`*` active, `!` held stripped).
fn queued(pf: &Postfix) -> std::collections::HashSet<String> {
    let out = Command::new("postqueue")
        .arg("-c")
        .arg(pf.conf())
        .arg("-p")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_hexdigit()))
        .filter_map(|l| l.split_whitespace().next())
        .map(|q| q.trim_end_matches(['*', '!']).to_string())
        .collect()
}

/// `kill -9` of the daemon while Postfix delivers a burst over LMTP: every message Postfix
/// logged `status=sent` is in the Maildir exactly once, the rest are in Postfix's queue.
/// After a restart and a queue flush every message is there, and a second copy only of a
/// message that was in flight at the kill (stored, its `250` never reached Postfix).
/// Then an IDLE session on the INBOX is woken by one more Postfix-relayed delivery.
#[test]
fn kill_9_during_a_postfix_burst_loses_nothing() {
    if skip() {
        return;
    }
    let pdir = tempfile::tempdir().unwrap();
    let sock = pdir.path().join("lmtp.sock");
    let mut d = Daemon::start_with(Options {
        extra: format!("[lmtp]\nlisten = [\"unix:{}\"]\n", sock.display()),
        ..Options::default()
    });
    // Retries soon after the restart; the flush below starts them at once anyway.
    let pf = Postfix::start(
        pdir,
        &format!("lmtp:unix:{}", sock.display()),
        "queue_run_delay = 1s\nminimal_backoff_time = 1s\nmaximal_backoff_time = 2s\n",
    );
    let mut sender = Command::new("python3")
        .arg("-c")
        .arg(SMTP_BURST)
        .arg(pf.smtp_port.to_string())
        .arg(BURST.to_string())
        .spawn()
        .unwrap();
    // Kill while Postfix is delivering: after the first few are sent.
    wait::wait_for("Postfix to deliver some", Duration::from_secs(60), || {
        let log = pf.maillog();
        if with_status(&log, "sent").len() >= 10 {
            Ok(())
        } else {
            Err(log)
        }
    });
    d.signal("KILL");
    d.wait_exit(Duration::from_secs(20));
    let st = wait::wait_for("the sender to finish", Duration::from_secs(60), || {
        sender.try_wait().unwrap().ok_or_else(String::new)
    });
    assert!(st.success(), "smtplib burst failed");
    // Settle: every message has a final word from Postfix (sent, or deferred: connection
    // lost or refused).
    let (ids, sent) = wait::wait_for(
        "a status for every message",
        Duration::from_secs(60),
        || {
            let log = pf.maillog();
            let ids = queue_ids(&log);
            let sent = with_status(&log, "sent");
            let deferred = with_status(&log, "deferred");
            if ids.len() == BURST && ids.keys().all(|q| sent.contains(q) || deferred.contains(q)) {
                Ok((ids, sent))
            } else {
                Err(log)
            }
        },
    );
    let before = delivered_copies(&d);
    let in_queue = queued(&pf);
    for (qid, &n) in &ids {
        if sent.contains(qid) {
            assert_eq!(before[n], 1, "burst-{n} ({qid}) was sent: exactly once");
            assert!(!in_queue.contains(qid), "{qid} sent and queued");
        } else {
            assert!(
                before[n] <= 1,
                "burst-{n} ({qid}) stored {} times",
                before[n]
            );
            assert!(
                in_queue.contains(qid),
                "{qid} (burst-{n}) lost: {in_queue:?}"
            );
        }
    }
    let in_flight = ids
        .iter()
        .filter(|(q, &n)| !sent.contains(*q) && before[n] == 1)
        .count();
    eprintln!(
        "kill -9 burst: {} sent before the kill, {} queued, {in_flight} of those stored",
        sent.len(),
        in_queue.len()
    );

    // Restart on the same tree and socket; flush Postfix's queue.
    let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
    let d = Daemon::spawn(dir, d.config_path.clone(), &[]);
    let st = Command::new("postqueue")
        .arg("-c")
        .arg(pf.conf())
        .arg("-f")
        .status()
        .unwrap();
    assert!(st.success());
    wait::wait_for("Postfix's queue to empty", Duration::from_secs(90), || {
        let q = queued(&pf);
        if q.is_empty() {
            Ok(())
        } else {
            Err(format!("{q:?}\n{}", pf.maillog()))
        }
    });
    let after = delivered_copies(&d);
    let mut dups = 0;
    for (qid, &n) in &ids {
        if sent.contains(qid) {
            assert_eq!(after[n], 1, "burst-{n} ({qid}) sent before the kill");
        } else {
            // Delivered now, once more than the copy the kill left, if any.
            assert_eq!(after[n], before[n] + 1, "burst-{n} ({qid})");
            dups += before[n];
        }
    }
    assert_eq!(dups, in_flight);
    eprintln!("kill -9 burst: {dups} duplicate(s), all of messages in flight at the kill");

    // IDLE on the INBOX is woken by a delivery Postfix relays.
    let total: usize = after.iter().sum();
    let mut c = common::imap::Client::login(d.imap.unwrap(), Duration::from_secs(20));
    let u = c.ok("s SELECT INBOX", "s");
    assert!(u.iter().any(|l| l == &format!("* {total} EXISTS")), "{u:?}");
    c.send(b"i IDLE\r\n");
    assert!(c.line().starts_with("+ "));
    let out = python(
        SMTP_SEND,
        &[
            &pf.smtp_port.to_string(),
            "alice@example.com",
            "Subject: wake\r\nMessage-ID: <wake@test>\r\n\r\nup\r\n",
        ],
    );
    assert_eq!(out.trim(), "{}");
    // The socket timeout (20 s) bounds each read; the count bounds the loop.
    let want = format!("* {} EXISTS", total + 1);
    let mut seen = Vec::new();
    for _ in 0..10 {
        let l = c.line();
        let done = l == want;
        seen.push(l);
        if done {
            break;
        }
    }
    assert_eq!(seen.last(), Some(&want), "{seen:?}\n{}", pf.maillog());
    c.send(b"DONE\r\n");
    let (_, done) = c.until_tagged("i");
    assert!(done.starts_with("i OK"), "{done}");
}
