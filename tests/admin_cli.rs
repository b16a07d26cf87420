//! The admin socket and CLI over the real daemon (README.md, "Command line"): `who` lists
//! exactly the sessions a script opened with the protocol log's ids; `kick` ends them (POP3
//! without applying DELE); `mailbox status` and `quota get` equal IMAP STATUS and
//! GETQUOTAROOT with and without the daemon; `force-resync` keeps UIDs; the socket is 0600 and
//! refuses other uids.

mod common;
#[path = "common/dovecot.rs"]
mod dovecot;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::imap::Client;
use common::{bin, deliver, Daemon, Options};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn cli(config: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

/// Runs an admin command with `--json`; asserts exit 0; the parsed answer.
fn json(config: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = cli(config, &all);
    assert!(
        out.status.success(),
        "{args:?}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn options(dir: &Path) -> Options {
    let log = dir.join("log");
    Options {
        users: "bob:{PLAIN}builder\n".into(),
        registry: format!(
            "\"POP3 Protocol Logging Level\" = 1\n\"POP3 Protocol Log Path\" = \"{0}\"\n\
             \"IMAP Protocol Logging Level\" = 1\n\"IMAP Protocol Log Path\" = \"{0}\"\n",
            log.display()
        ),
        extra: "[quota]\nstorage = \"10M\"\nmessages = 100\n".into(),
        ..Options::default()
    }
}

fn imap_login(addr: SocketAddr, user: &str, pass: &str) -> Client {
    let mut c = Client::connect(addr, WAIT);
    c.ok(&format!("a LOGIN {user} {pass}"), "a");
    c
}

/// A blocking POP3 client: sends a line, reads one reply line.
struct Pop3 {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Pop3 {
    fn login(addr: SocketAddr, user: &str, pass: &str) -> Pop3 {
        let s = TcpStream::connect_timeout(&addr, WAIT).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut p = Pop3 {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        };
        assert!(p.line().starts_with("+OK"));
        assert!(p.cmd(&format!("USER {user}")).starts_with("+OK"));
        assert!(p.cmd(&format!("PASS {pass}")).starts_with("+OK"));
        p
    }
    fn line(&mut self) -> String {
        let mut l = String::new();
        self.r.read_line(&mut l).unwrap();
        l.trim_end().to_string()
    }
    fn cmd(&mut self, line: &str) -> String {
        self.w.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        self.line()
    }
}

/// Every session id of a `+` record in the protocol logs under `dir` (waits, bounded, until
/// `want` of them are there: the writer flushes within a second).
fn logged_ids(dir: &Path, want: usize) -> Vec<String> {
    common::wait::wait_for("the + records in the protocol logs", WAIT, || {
        let mut ids = Vec::new();
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            for l in text.lines().filter(|l| !l.starts_with('#')) {
                let f: Vec<&str> = l.split(',').collect();
                if f.len() >= 6 && f[5] == "+" {
                    ids.push(f[1].to_string());
                }
            }
        }
        if ids.len() >= want {
            Ok(ids)
        } else {
            Err(format!("{ids:?}"))
        }
    })
}

fn sessions(config: &Path) -> Vec<Value> {
    json(config, &["who"])["sessions"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn who_lists_exactly_the_open_sessions_with_the_protocol_log_ids() {
    let d = Daemon::start_in(options);
    let cfg = d.config_path.clone();
    assert!(sessions(&cfg).is_empty());
    let mut alice = imap_login(d.imap.unwrap(), "alice", "wonderland");
    alice.ok("s SELECT INBOX", "s");
    let bob = Pop3::login(d.pop3.unwrap(), "bob", "builder");
    let anon = Client::connect(d.imap.unwrap(), WAIT);
    let rows = sessions(&cfg);
    assert_eq!(rows.len(), 3, "{rows:?}");
    let find = |service: &str, user: Option<&str>| {
        rows.iter()
            .find(|r| r["service"] == service && r["user"].as_str() == user)
            .unwrap_or_else(|| panic!("{service} {user:?} not in {rows:?}"))
            .clone()
    };
    let a = find("imap", Some("alice"));
    assert_eq!(a["state"], "selected INBOX");
    let b = find("pop3", Some("bob"));
    assert_eq!(b["state"], "transaction");
    let n = find("imap", None);
    assert_eq!(n["state"], "not authenticated");
    let local = anon.w.local_addr().unwrap().to_string();
    assert_eq!(n["remote"], local.as_str());
    // The ids are the protocol log's `+` records' ids.
    let mut logged = logged_ids(&d.dir.path().join("log"), 3);
    logged.sort();
    let mut shown: Vec<String> = rows
        .iter()
        .map(|r| r["id"].as_str().unwrap().into())
        .collect();
    shown.sort();
    assert_eq!(shown, logged);
    // The text form names them too.
    let text = String::from_utf8(cli(&cfg, &["who"]).stdout).unwrap();
    assert!(text.contains(a["id"].as_str().unwrap()) && text.contains("selected INBOX"));
    drop((alice, bob, anon));
    common::wait::wait_for("the sessions to leave the table", WAIT, || {
        let rows = sessions(&cfg);
        if rows.is_empty() {
            Ok(())
        } else {
            Err(format!("{rows:?}"))
        }
    });
}

#[test]
fn kick_ends_a_users_sessions_without_applying_dele_and_leaves_others() {
    let d = Daemon::start_in(options);
    let cfg = d.config_path.clone();
    for i in 0..3 {
        deliver(
            &d.data_dir(),
            "alice",
            i,
            &format!("Subject: m{i}\n\nbody {i}\n"),
        );
    }
    let mut a_imap = imap_login(d.imap.unwrap(), "alice", "wonderland");
    a_imap.ok("s SELECT INBOX", "s");
    let mut a_pop = Pop3::login(d.pop3.unwrap(), "alice", "wonderland");
    assert!(a_pop.cmd("DELE 1").starts_with("+OK"));
    assert!(a_pop.cmd("DELE 2").starts_with("+OK"));
    let mut bob = imap_login(d.imap.unwrap(), "bob", "builder");
    let mut bob2 = imap_login(d.imap.unwrap(), "bob", "builder");

    let kicked = json(&cfg, &["kick", "alice"]);
    assert_eq!(kicked["kicked"], 2);
    assert_eq!(a_imap.line(), "* BYE Disconnected by the administrator.");
    assert!(a_pop.line().starts_with("-ERR"));
    let mut rest = String::new();
    assert_eq!(a_pop.r.read_line(&mut rest).unwrap(), 0, "closed: {rest}");
    // The DELE'd messages are all still there.
    let st = json(&cfg, &["mailbox", "status", "alice", "INBOX"]);
    assert_eq!(st["folders"][0]["messages"], 3);
    // bob is untouched.
    bob.ok("n NOOP", "n");
    let rows = sessions(&cfg);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r["user"] == "bob"));

    // --session ends exactly one: bob's first connection, found by its address.
    let here = bob.w.local_addr().unwrap().to_string();
    let row = rows.iter().find(|r| r["remote"] == here.as_str()).unwrap();
    let id = row["id"].as_str().unwrap().to_string();
    assert_eq!(json(&cfg, &["kick", "--session", &id])["kicked"], 1);
    assert_eq!(bob.line(), "* BYE Disconnected by the administrator.");
    bob2.ok("n NOOP", "n");
    common::wait::wait_for("one bob session left", WAIT, || {
        let left = sessions(&cfg);
        if left.len() == 1 {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    });
    assert_eq!(json(&cfg, &["kick", "--session", &id])["kicked"], 0);
    assert_eq!(cli(&cfg, &["kick", "nobody-here"]).status.code(), Some(67));
}

/// `* STATUS INBOX (MESSAGES 3 ...)` → the pairs.
fn status_pairs(line: &str) -> Vec<(String, u64)> {
    let inner = &line[line.rfind('(').unwrap() + 1..line.rfind(')').unwrap()];
    let words: Vec<&str> = inner.split_whitespace().collect();
    words
        .chunks(2)
        .map(|p| (p[0].to_ascii_lowercase(), p[1].parse().unwrap()))
        .collect()
}

fn cli_status(cfg: &Path, folder: &str) -> Vec<(String, u64)> {
    let v = json(cfg, &["mailbox", "status", "alice", folder]);
    let f = &v["folders"][0];
    [
        "messages",
        "recent",
        "uidnext",
        "uidvalidity",
        "unseen",
        "highestmodseq",
        "size",
    ]
    .iter()
    .map(|k| (k.to_string(), f[*k].as_u64().unwrap()))
    .collect()
}

#[test]
fn mailbox_status_and_quota_equal_imap_with_and_without_the_daemon() {
    let mut d = Daemon::start_in(options);
    let cfg = d.config_path.clone();
    for i in 0..4 {
        deliver(
            &d.data_dir(),
            "alice",
            i,
            &format!("Subject: m{i}\n\nbody {i}\n"),
        );
    }
    let mut c = imap_login(d.imap.unwrap(), "alice", "wonderland");
    c.ok("a1 APPEND Sent (\\Seen) {14}\r\nSubject: s\r\n\r\n", "a1");
    // Not selected: STATUS counts the recent messages nobody claimed (so does the CLI).
    let folders = ["INBOX", "Sent", "Drafts"];
    let mut imap = Vec::new();
    for f in folders {
        let u = c.ok(
            &format!(
                "s STATUS {f} (MESSAGES UNSEEN RECENT SIZE UIDVALIDITY UIDNEXT HIGHESTMODSEQ)"
            ),
            "s",
        );
        let line = u.iter().find(|l| l.starts_with("* STATUS")).unwrap();
        imap.push(status_pairs(line));
    }
    let mut imap_quota = c.ok("q GETQUOTAROOT INBOX", "q");
    imap_quota.retain(|l| l.starts_with("* QUOTA "));
    drop(c);
    let norm = |mut v: Vec<(String, u64)>| {
        v.sort();
        v
    };
    for (f, want) in folders.iter().zip(&imap) {
        assert_eq!(
            norm(cli_status(&cfg, f)),
            norm(want.clone()),
            "{f} with the daemon"
        );
    }
    let quota = |cfg: &Path| {
        let v = json(cfg, &["quota", "get", "alice"]);
        let res: Vec<String> = v["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{} {} {}",
                    r["name"].as_str().unwrap(),
                    r["usage"],
                    r["limit"]
                )
            })
            .collect();
        format!(
            "* QUOTA \"{}\" ({})",
            v["root"].as_str().unwrap(),
            res.join(" ")
        )
    };
    assert_eq!(vec![quota(&cfg)], imap_quota);
    assert!(imap_quota[0].contains("MESSAGE 5 100"), "{imap_quota:?}");

    // Every folder when none is named; the text form too.
    let all = json(&cfg, &["mailbox", "status", "alice"]);
    assert_eq!(all["folders"].as_array().unwrap().len(), 6);
    let list = json(&cfg, &["mailbox", "list", "alice"]);
    let names: Vec<&str> = list["folders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"INBOX") && names.contains(&"Sent"),
        "{names:?}"
    );

    // Without the daemon: the same numbers, read from the tree.
    d.stop();
    assert!(
        !d.data_dir().join("admin.sock").exists(),
        "socket removed at exit"
    );
    for (f, want) in folders.iter().zip(&imap) {
        assert_eq!(
            norm(cli_status(&cfg, f)),
            norm(want.clone()),
            "{f} without the daemon"
        );
    }
    assert_eq!(vec![quota(&cfg)], imap_quota);

    // Exit codes: unknown user 67, usage 64, no daemon for who/kick 69.
    let code = |args: &[&str]| cli(&cfg, args).status.code();
    assert_eq!(code(&["mailbox", "status", "mallory"]), Some(67));
    assert_eq!(code(&["quota", "get", "mallory"]), Some(67));
    assert_eq!(code(&["kick"]), Some(64));
    assert_eq!(code(&["who"]), Some(69));
    assert_eq!(code(&["kick", "alice"]), Some(69));
    assert_eq!(
        code(&["mailbox", "status", "alice", "NoSuchFolder"]),
        Some(1)
    );
}

/// UID and Subject of every message of alice's INBOX, over IMAP.
fn uids(addr: SocketAddr) -> Vec<(u32, String)> {
    let mut c = imap_login(addr, "alice", "wonderland");
    c.ok("s EXAMINE INBOX", "s");
    let lines = c.ok("f FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])", "f");
    let mut out = Vec::new();
    let mut uid = None;
    for l in lines {
        if let Some(rest) = l.split("UID ").nth(1) {
            uid = rest.split([' ', ')']).next().and_then(|u| u.parse().ok());
        }
        if let Some(s) = l.strip_prefix("Subject: ") {
            out.push((uid.take().unwrap(), s.to_string()));
        }
    }
    out
}

/// The UIDs `dovecot-uidlist` (Dovecot's view) gives, by file name base.
fn uidlist(dir: &Path) -> Vec<u32> {
    let text = std::fs::read_to_string(dir.join("dovecot-uidlist")).unwrap();
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

#[test]
fn force_resync_rebuilds_the_cache_and_keeps_uids() {
    let mut d = Daemon::start_in(options);
    let cfg = d.config_path.clone();
    let inbox = d.data_dir().join("mail/alice");
    for i in 0..3 {
        deliver(
            &d.data_dir(),
            "alice",
            i,
            &format!("Subject: m{i}\n\nbody {i}\n"),
        );
    }
    let before = uids(d.imap.unwrap());
    assert_eq!(before.len(), 3);
    let validity = cli_status(&cfg, "INBOX");
    // Corrupt the cache, add a message behind our back (straight into cur/).
    std::fs::write(inbox.join("mailserver.cache"), b"garbage").unwrap();
    std::fs::write(
        inbox.join("cur/1700000099.M1P1.other:2,S"),
        "Subject: late\n\nx\n",
    )
    .unwrap();
    let r = json(&cfg, &["force-resync", "alice", "INBOX"]);
    assert_eq!(r["folders"][0], "INBOX");
    assert!(
        !inbox.join("mailserver.cache").exists() || {
            let b = std::fs::read(inbox.join("mailserver.cache")).unwrap();
            b.starts_with(b"MSCACHE")
        }
    );
    let after = uids(d.imap.unwrap());
    assert_eq!(&after[..3], &before[..], "old UIDs stable");
    assert_eq!(after[3].1, "late");
    assert!(after[3].0 > before[2].0);
    let st = cli_status(&cfg, "INBOX");
    let get = |v: &[(String, u64)], k: &str| v.iter().find(|(n, _)| n == k).unwrap().1;
    assert_eq!(get(&st, "uidvalidity"), get(&validity, "uidvalidity"));
    assert_eq!(get(&st, "messages"), 4);
    // Dovecot's view is dovecot-uidlist: the same UIDs.
    let listed = uidlist(&inbox);
    let ours: Vec<u32> = after.iter().map(|(u, _)| *u).collect();
    assert_eq!(listed, ours);

    // Without the daemon: the cache deleted, every folder resynced.
    d.stop();
    std::fs::remove_file(inbox.join("mailserver.cache")).ok();
    let out = cli(&cfg, &["force-resync", "alice"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("INBOX: resynced"));
    assert_eq!(uidlist(&inbox), ours);

    // Dovecot serving the same tree sees the same UIDs, UIDVALIDITY and UIDNEXT.
    if dovecot::skip(false) {
        return;
    }
    let ours_status = cli_status(&cfg, "INBOX");
    let dir = d.dir.path().join("dovecot");
    std::fs::create_dir_all(&dir).unwrap();
    // Dovecot runs as `mail`: the path to the tree must be traversable.
    for p in [d.dir.path().to_path_buf(), d.data_dir()] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let dc = dovecot::Dovecot::start(
        &dir,
        dovecot::Options {
            protocol: "imap",
            name: "admin-resync",
            mail_location: format!("maildir:{}/mail/%u", d.data_dir().display()),
            users: "alice:{PLAIN}wonderland\n".into(),
            namespace: dovecot::special_use_namespace(),
            extra: String::new(),
            mail_dirs: vec![d.data_dir().join("mail")],
        },
    );
    let addr: SocketAddr = ([127, 0, 0, 1], dc.port).into();
    assert_eq!(uids(addr), after, "Dovecot's UIDs");
    let mut c = imap_login(addr, "alice", "wonderland");
    let u = c.ok("s STATUS INBOX (UIDVALIDITY UIDNEXT MESSAGES)", "s");
    let theirs = status_pairs(u.iter().find(|l| l.starts_with("* STATUS")).unwrap());
    for (k, v) in theirs {
        assert_eq!(get(&ours_status, &k), v, "{k}: ours vs Dovecot's");
    }
}

#[test]
fn the_socket_is_0600_and_refuses_other_uids() {
    let d = Daemon::start_in(options);
    let sock = d.data_dir().join("admin.sock");
    let meta = std::fs::symlink_metadata(&sock).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    if std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        != 0
    {
        common::skipped("not root: cannot connect to the admin socket as another uid");
        return;
    }
    if !common::have("setpriv") {
        common::skipped("setpriv (util-linux) is not installed");
        return;
    }
    // As nobody, the file mode refuses the connection.
    let out = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(bin())
        .arg("--config")
        .arg(&d.config_path)
        .arg("who")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ermission denied"),
        "{out:?}"
    );
    // With the mode opened up, the peer-credential check still refuses nobody.
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let dir_mode = |p: &Path| std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755));
    dir_mode(&d.data_dir()).unwrap();
    dir_mode(d.dir.path()).unwrap();
    let script = format!(
        // The refusal comes at once, before any request is read.
        "import socket; s=socket.socket(socket.AF_UNIX); s.connect({:?}); \
         print(s.makefile().readline())",
        sock.display().to_string()
    );
    let out = Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
        ])
        .arg(&script)
        .output()
        .unwrap();
    let reply = String::from_utf8_lossy(&out.stdout);
    assert!(reply.contains("\"forbidden\""), "{out:?}");
    d.wait_log("admin socket: refused a connection from uid", WAIT);
    // Root (the daemon's uid here) is answered.
    let v = json(&d.config_path, &["who"]);
    assert!(v["sessions"].is_array());
}
