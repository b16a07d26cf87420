//! Shared-storage rules (README.md, "Shared storage") over the real daemon: two daemons on
//! one `data_dir` with the inotify watcher off on both (`server.store_watch = false`) stand
//! for two hosts on NFS, where a watcher never sees the other host's writes. An IDLE on one
//! learns of the other's APPEND, LMTP delivery, flag change and expunge through its timer
//! (`imap.idle_check_interval_secs`), and without the timer learns nothing until `DONE`.
//! Then the `data_dir` marker (`server.require_data_marker`): refusal at start, creation,
//! `check-config`, and a login refused once the marker is gone.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::imap::Client;
use common::test_config::TestConfig;
use common::{wait, Daemon, Options, PASS, USER};

const WAIT: Duration = Duration::from_secs(20);

/// The config of one node: the test daemon's, on `data_dir`, with `server` and `imap`
/// lines added and LMTP on a free loopback port.
fn node_config(dir: &Path, data_dir: &Path, server: &str, imap: &str) -> TestConfig {
    TestConfig {
        data_dir: data_dir.to_path_buf(),
        extra_server: server.into(),
        extra_imap: imap.into(),
        ..common::daemon_config(
            dir,
            &Options {
                extra: "[lmtp]\nlisten = [\"127.0.0.1:0\"]\n".into(),
                ..Options::default()
            },
        )
    }
}

/// Starts a node in a tempdir of its own on `data_dir` (None: its own `dir/data`).
fn node(data_dir: Option<&Path>, server: &str, imap: &str) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users"),
        format!("{USER}:{{PLAIN}}{PASS}\n"),
    )
    .unwrap();
    let data = data_dir.map_or_else(|| dir.path().join("data"), Path::to_path_buf);
    let config_path = dir.path().join("mailserver.toml");
    node_config(dir.path(), &data, server, imap).write(&config_path);
    Daemon::spawn(dir, config_path, &[])
}

/// Two nodes on one `data_dir`, the watcher off on both, IDLE re-checking every
/// `interval` seconds (0: never).
fn pair(interval: u64) -> (Daemon, Daemon) {
    let server = "store_watch = false";
    let imap = format!("idle_check_interval_secs = {interval}");
    let a = node(None, server, &imap);
    let b = node(Some(&a.data_dir()), server, &imap);
    (a, b)
}

/// Reads untagged lines until one satisfies `want` (each read bounded by the socket
/// timeout, at most 50 lines); returns every line read.
fn until_line(c: &mut Client, want: impl Fn(&str) -> bool) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..50 {
        let l = c.line();
        let done = want(&l);
        seen.push(l);
        if done {
            return seen;
        }
    }
    panic!("no wanted line in {seen:?}");
}

/// One LMTP delivery to the test user: the transcript's last reply must be `250`.
fn lmtp_deliver(addr: SocketAddr, body: &str) {
    let s = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut reply = || {
        // A multi-line reply ends with the line whose fourth octet is a space.
        let mut last = String::new();
        for _ in 0..50 {
            last.clear();
            r.read_line(&mut last).unwrap();
            if last.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
        last.trim_end().to_string()
    };
    assert!(reply().starts_with("220"));
    for (cmd, code) in [
        ("LHLO test\r\n".to_string(), "250"),
        ("MAIL FROM:<x@example.org>\r\n".into(), "250"),
        (format!("RCPT TO:<{USER}>\r\n"), "250"),
        ("DATA\r\n".into(), "354"),
        (format!("Subject: lmtp\r\n\r\n{body}\r\n.\r\n"), "250"),
        ("QUIT\r\n".into(), "221"),
    ] {
        w.write_all(cmd.as_bytes()).unwrap();
        let l = reply();
        assert!(l.starts_with(code), "{cmd:?} -> {l}");
    }
}

#[test]
fn idle_on_one_node_sees_the_other_nodes_writes_through_its_timer() {
    let (a, b) = pair(1);
    let mut writer = Client::login(a.imap.unwrap(), WAIT);
    writer.ok("s SELECT INBOX", "s");
    let mut idler = Client::login(b.imap.unwrap(), WAIT);
    let u = idler.ok("s SELECT INBOX", "s");
    assert!(u.iter().any(|l| l == "* 0 EXISTS"), "{u:?}");
    idler.send(b"i IDLE\r\n");
    assert!(idler.line().starts_with("+ "));

    // APPEND on node A: node B's IDLE announces it (each read bounded by 20 s, many
    // intervals; no watcher on either node could have told it).
    let msg = "Subject: one\r\n\r\nfrom node A\r\n";
    writer.send(format!("p APPEND INBOX {{{}}}\r\n", msg.len()).as_bytes());
    assert!(writer.line().starts_with("+ "));
    writer.send(format!("{msg}\r\n").as_bytes());
    let (_, done) = writer.until_tagged("p");
    assert!(done.starts_with("p OK"), "{done}");
    until_line(&mut idler, |l| l == "* 1 EXISTS");

    // An LMTP delivery through node A.
    lmtp_deliver(a.lmtp.unwrap(), "delivered to node A");
    until_line(&mut idler, |l| l == "* 2 EXISTS");

    // A flag set on node A is announced as FETCH FLAGS on node B.
    writer.ok("f STORE 1 +FLAGS (\\Flagged)", "f");
    until_line(&mut idler, |l| {
        l.starts_with("* 1 FETCH (") && l.contains("\\Flagged")
    });

    // And an expunge.
    writer.ok("e STORE 2 +FLAGS (\\Deleted)", "e");
    writer.ok("x EXPUNGE", "x");
    until_line(&mut idler, |l| l == "* 2 EXPUNGE");

    idler.send(b"DONE\r\n");
    let (_, done) = idler.until_tagged("i");
    assert!(done.starts_with("i OK"), "{done}");
    assert!(
        !a.log_text().contains("inotify") && !b.log_text().contains("inotify"),
        "no watcher was tried"
    );
}

#[test]
fn without_timer_or_watcher_the_other_nodes_write_waits_for_done() {
    let (a, b) = pair(0);
    let mut writer = Client::login(a.imap.unwrap(), WAIT);
    let mut idler = Client::login(b.imap.unwrap(), WAIT);
    idler.ok("s SELECT INBOX", "s");
    idler.send(b"i IDLE\r\n");
    assert!(idler.line().starts_with("+ "));
    let msg = "Subject: quiet\r\n\r\nunseen by the idler\r\n";
    writer.send(format!("p APPEND INBOX {{{}}}\r\n", msg.len()).as_bytes());
    assert!(writer.line().starts_with("+ "));
    writer.send(format!("{msg}\r\n").as_bytes());
    let (_, done) = writer.until_tagged("p");
    assert!(done.starts_with("p OK"), "{done}");
    // Nothing wakes the IDLE: no watcher, no timer. Three seconds of silence is what the
    // 1 s timer of the test above would have filled.
    idler
        .r
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut buf = String::new();
    match idler.r.read_line(&mut buf) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("the IDLE said something: {other:?} {buf:?}"),
    }
    // The message was there to be seen: DONE's sync announces it.
    idler.r.get_ref().set_read_timeout(Some(WAIT)).unwrap();
    idler.send(b"DONE\r\n");
    let (u, done) = idler.until_tagged("i");
    assert!(done.starts_with("i OK"), "{done}");
    assert!(u.iter().any(|l| l == "* 1 EXISTS"), "{u:?}");
}

/// `mailserver --config <path> <args>`, bounded: (exit code, stdout, stderr).
fn run_bounded(config: &Path, args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(common::bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "info")
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait::wait_for("mailserver to exit", WAIT, || {
        child
            .try_wait()
            .unwrap()
            .ok_or_else(|| "still running".to_string())
    });
    let out = child.wait_with_output().unwrap();
    (
        status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_required_marker_that_is_missing_refuses_to_serve_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users"),
        format!("{USER}:{{PLAIN}}{PASS}\n"),
    )
    .unwrap();
    // The bare mount point: an empty directory.
    let data = dir.path().join("mnt");
    std::fs::create_dir(&data).unwrap();
    let config = dir.path().join("mailserver.toml");
    node_config(dir.path(), &data, "require_data_marker = true", "").write(&config);

    let (code, out, err) = run_bounded(&config, &["check-config"]);
    assert_eq!(code, 1, "check-config fails: {out}\n{err}");
    assert!(out.contains(".mailserver-data: MISSING"), "{out}");
    assert!(err.contains("require_data_marker"), "{err}");

    let (code, _, err) = run_bounded(&config, &["run"]);
    assert_ne!(code, 0, "the daemon refuses: {err}");
    assert!(
        err.contains(".mailserver-data is missing")
            && err.contains("require_data_marker = true")
            && err.contains("refusing to serve"),
        "{err}"
    );
    assert!(!err.contains(" ready"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&data).unwrap().collect();
    assert!(
        left.is_empty(),
        "nothing written into the mount point: {left:?}"
    );

    // A missing data_dir is refused the same way, and not created.
    let gone = dir.path().join("gone");
    node_config(dir.path(), &gone, "require_data_marker = true", "").write(&config);
    let (code, _, err) = run_bounded(&config, &["run"]);
    assert_ne!(code, 0, "{err}");
    assert!(!gone.exists());
}

#[test]
fn the_marker_is_created_when_not_required_and_then_checked_at_login() {
    // Not required (the default): created at start.
    let a = node(None, "", "");
    let marker = a.data_dir().join(".mailserver-data");
    assert!(marker.is_file(), "created at start");
    let (code, out, err) = run_bounded(&a.config_path, &["check-config"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(".mailserver-data: present"), "{out}");
    assert!(out.contains("require_data_marker = false"), "{out}");

    // Required and present: another node on the same store starts and serves.
    let b = node(Some(&a.data_dir()), "require_data_marker = true", "");
    let mut c = Client::login(b.imap.unwrap(), WAIT);
    c.ok("s SELECT INBOX", "s");
    // The mount goes away under a running node: the next login is refused, nothing written.
    std::fs::remove_file(&marker).unwrap();
    let mut c2 = Client::connect(b.imap.unwrap(), WAIT);
    let (_, done) = c2.tagged(&format!("a LOGIN {USER} {PASS}"), "a");
    assert!(done.starts_with("a NO [UNAVAILABLE]"), "{done}");
    b.wait_log("require_data_marker", WAIT);
    // The node without the requirement is not affected.
    Client::login(a.imap.unwrap(), WAIT).ok("s SELECT INBOX", "s");
}

/// The lock calls (`flock`, `fcntl` `F_SETLK*`) in an `strace -y` log: (path, line).
fn lock_calls(trace: &str) -> Vec<(String, String)> {
    trace
        .lines()
        .filter(|l| l.contains("flock(") || (l.contains("fcntl(") && l.contains("SETLK")))
        .filter_map(|l| {
            // `123 flock(7</path/to/file>, LOCK_EX) = 0`
            let start = l.find('<')? + 1;
            let end = start + l[start..].find('>')?;
            Some((l[start..end].to_string(), l.to_string()))
        })
        .collect()
}

#[test]
fn no_flock_or_fcntl_lock_is_taken_under_data_dir() {
    if !common::have("strace") {
        common::skipped("strace is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users"),
        format!("{USER}:{{PLAIN}}{PASS}\n"),
    )
    .unwrap();
    let data = dir.path().join("data");
    let logs = dir.path().join("logs");
    let config_path = dir.path().join("mailserver.toml");
    // The IMAP protocol log, outside data_dir, is flock'ed at the first session: the trace
    // must show that lock, so it is known to see locks at all.
    let mut config = node_config(dir.path(), &data, "", "");
    config.imap_log.level = Some(2);
    config.imap_log.path = Some(logs.clone());
    config.write(&config_path);
    // Another folder's takeover of a stale dot-lock runs too: a lock of a dead process.
    let d = Daemon::spawn(dir, config_path, &[]);

    let trace = d.data_dir().with_file_name("strace.txt");
    let Some(strace) = common::strace_attached(d.pid(), &["-y", "-e", "trace=flock,fcntl"], &trace)
    else {
        return;
    };

    // Every store write path: APPEND, LMTP, SELECT with CONDSTORE (mod-sequences), STORE
    // (flags, mod-sequences), \Recent (`mailserver.recent`), EXPUNGE, a new folder, COPY;
    // and a uidlist dot-lock of a dead process taken over.
    let inbox = d.data_dir().join("mail").join(USER);
    let mut c = Client::login(d.imap.unwrap(), WAIT);
    c.ok("s SELECT INBOX (CONDSTORE)", "s");
    // pid_max is at most 2^22: this pid of this host is gone.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    std::fs::write(
        inbox.join("dovecot-uidlist.lock"),
        format!("99999999:{}", host.trim()),
    )
    .unwrap();
    let msg = "Subject: x\r\n\r\ny\r\n";
    c.send(format!("p APPEND INBOX {{{}}}\r\n", msg.len()).as_bytes());
    assert!(c.line().starts_with("+ "));
    c.send(format!("{msg}\r\n").as_bytes());
    let (_, done) = c.until_tagged("p");
    assert!(done.starts_with("p OK"), "{done}");
    lmtp_deliver(d.lmtp.unwrap(), "z");
    c.ok("n NOOP", "n");
    c.ok("f STORE 1:* +FLAGS (\\Flagged)", "f");
    c.ok("k CREATE Box", "k");
    c.ok("y COPY 1:* Box", "y");
    c.ok("e STORE 1 +FLAGS (\\Deleted)", "e");
    c.ok("x EXPUNGE", "x");
    c.ok("t STATUS Box (MESSAGES RECENT HIGHESTMODSEQ)", "t");
    c.ok("l LOGOUT", "l");

    common::strace_stop(strace);
    let text = std::fs::read_to_string(&trace).unwrap();
    let locks = lock_calls(&text);
    let data_dir = d.data_dir().display().to_string();
    let under: Vec<_> = locks
        .iter()
        .filter(|(p, _)| p.starts_with(&data_dir))
        .collect();
    assert!(under.is_empty(), "locks under data_dir: {under:#?}");
    assert!(
        locks
            .iter()
            .any(|(p, _)| p.starts_with(&logs.display().to_string())),
        "the protocol log's flock was seen: {locks:#?}\n{text}"
    );
    assert!(
        !inbox.join("dovecot-uidlist.lock").exists(),
        "the dead process's uidlist lock was taken over"
    );
}
