//! Per-user protocol logging (`IMAP Protocol Log Users`, `POP3 Protocol Log Users`, issue
//! #18; README.md, "Per-user protocol logging") proved over the real daemon: real sockets on
//! `127.0.0.1`, real files read with the strict reader of `tests/common/logreader.rs`, hot
//! reload by rewriting the config; a session keeps the list of its start (SPEC §4).
//!
//! With the service's level at 0 and a list naming alice: alice's session is in the file
//! complete at level 5 (its pre-login lines included, the password `***`), bob's session,
//! open at the same time, is not there at all, and a session that never logs in (or logs in
//! as someone not listed) leaves nothing; emptying the list by hot reload releases the file
//! at the next session start (KB Q182504's level-0 rule). Every wait is bounded; nothing
//! asserts on timing.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Daemon, Options, PASS, USER};

#[path = "common/logreader.rs"]
mod logreader;

/// Socket and wait bound: long enough for a loaded 2-core machine, short enough to fail.
const WAIT: Duration = Duration::from_secs(30);
const BOB_PASS: &str = "builder-pass";
/// A message with a line a test can look for in a level-5 transcript.
const BODY: &str =
    "From: a@example.org\r\nSubject: per-user\r\n\r\nthe body line of the per-user test\r\n";

/// `[ParametersSystem]` lines: `service` (`POP3`/`IMAP`) at level 0 into `dir`, listing `users`.
fn registry(service: &str, dir: &Path, users: &[&str]) -> String {
    let list: Vec<String> = users.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        "\"{service} Protocol Logging Level\" = 0\n\"{service} Protocol Log Path\" = \"{}\"\n\
         \"{service} Protocol Log Users\" = [{}]\n",
        dir.display(),
        list.join(", ")
    )
}

fn options(service: &str, root: &Path, users: &[&str]) -> Options {
    Options {
        registry: registry(service, &root.join("logs"), users),
        users: format!("bob:{{PLAIN}}{BOB_PASS}\n"),
        ..Options::default()
    }
}

fn start(service: &str, users: &[&str]) -> Daemon {
    let d = Daemon::start_in(|root| options(service, root, users));
    common::deliver(&d.data_dir(), USER, 1, BODY);
    common::deliver(&d.data_dir(), "bob", 1, BODY);
    d
}

fn logs(d: &Daemon) -> PathBuf {
    d.dir.path().join("logs")
}

/// Hot reload to the list `users` (the service stays at level 0); waits for the daemon to
/// log the change.
fn reload(d: &Daemon, service: &str, users: &[&str]) {
    let needle = format!("\"{service} Protocol Log Users\": ");
    let before = d.log_count(&needle);
    d.rewrite_config(&options(service, d.dir.path(), users));
    d.wait_log_more(&needle, before, WAIT);
}

/// A line client (IMAP or POP3): lines without CRLF, every read bounded by the timeout.
struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Client {
    fn connect(addr: SocketAddr) -> (Client, String) {
        let s = TcpStream::connect_timeout(&addr, WAIT).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.set_write_timeout(Some(WAIT)).unwrap();
        let mut c = Client {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        };
        let g = c.line();
        (c, g)
    }

    /// The local port: the `remote-endpoint` of this client's records.
    fn port(&self) -> u16 {
        self.w.local_addr().unwrap().port()
    }

    fn line(&mut self) -> String {
        let mut buf = Vec::new();
        let n = self.r.read_until(b'\n', &mut buf).unwrap();
        assert!(n > 0, "connection closed");
        String::from_utf8_lossy(&buf).trim_end().to_string()
    }

    fn send(&mut self, line: &str) {
        self.w.write_all(format!("{line}\r\n").as_bytes()).unwrap();
    }

    /// IMAP: sends `tag rest`, reads to the tagged reply; returns every line read.
    fn imap(&mut self, tag: &str, rest: &str) -> Vec<String> {
        self.send(&format!("{tag} {rest}"));
        let mut lines = Vec::new();
        for _ in 0..10_000 {
            let l = self.line();
            let done = l.starts_with(&format!("{tag} "));
            lines.push(l);
            if done {
                return lines;
            }
        }
        panic!("no tagged reply to {tag}");
    }

    /// POP3: sends a command, returns its first reply line.
    fn pop(&mut self, cmd: &str) -> String {
        self.send(cmd);
        self.line()
    }

    /// POP3: the lines of a multi-line reply up to (without) the `.`.
    fn pop_multi(&mut self, cmd: &str) -> Vec<String> {
        let first = self.pop(cmd);
        assert!(first.starts_with("+OK"), "{cmd} -> {first}");
        let mut lines = vec![first];
        for _ in 0..10_000 {
            let l = self.line();
            if l == "." {
                return lines;
            }
            lines.push(l);
        }
        panic!("no end of {cmd}");
    }

    /// Reads to EOF (the server closed: the session's records are on disk by then).
    fn until_closed(mut self) {
        let mut rest = Vec::new();
        let _ = self.r.read_to_end(&mut rest);
    }
}

/// The records of the session whose remote port is `port`, from every file of `dir`.
fn session_of(dir: &Path, service: &str, port: u16) -> Vec<logreader::Rec> {
    logreader::all_records_of(dir, service)
        .into_iter()
        .filter(|r| r.remote.ends_with(&format!(":{port}")))
        .collect()
}

/// The one log file of `dir`, waited for (bounded): the daemon creates it at a session start.
fn only_file(dir: &Path) -> PathBuf {
    let files = logreader::log_files(dir);
    assert_eq!(files.len(), 1, "{files:?}");
    dir.join(&files[0])
}

#[test]
fn imap_listed_user_is_logged_whole_at_level_5_and_no_one_else() {
    // Listed as "ALICE": the match ignores case (the users file says "alice").
    let d = start("IMAP", &["ALICE"]);
    let addr = d.imap.unwrap();
    let dir = logs(&d);

    // bob logs in first and stays while alice's whole session runs.
    let (mut bob, _) = Client::connect(addr);
    bob.imap("b1", "CAPABILITY");
    let l = bob.imap("b2", &format!("LOGIN bob {BOB_PASS}"));
    assert!(l.last().unwrap().starts_with("b2 OK"), "{l:?}");
    bob.imap("b3", "SELECT INBOX");

    // The file opens at a session start although the level is 0.
    assert_eq!(
        logreader::log_files(&dir).len(),
        1,
        "no file for a non-empty list"
    );
    let file = only_file(&dir);
    assert!(logreader::flock_held(&file));

    let (mut alice, greeting) = Client::connect(addr);
    alice.imap("a1", "CAPABILITY");
    let l = alice.imap("a2", &format!("LOGIN {USER} {PASS}"));
    assert!(l.last().unwrap().starts_with("a2 OK"), "{l:?}");
    alice.imap("a3", "SELECT INBOX");
    let fetched = alice.imap("a4", "FETCH 1 BODY[]");
    assert!(fetched
        .iter()
        .any(|l| l == "the body line of the per-user test"));
    alice.imap("a5", "LOGOUT");
    let alice_port = alice.port();
    alice.until_closed();

    // A session that never logs in, and one that fails alice's password: nothing.
    let (mut anon, _) = Client::connect(addr);
    anon.imap("n1", "CAPABILITY");
    let l = anon.imap("n2", &format!("LOGIN {USER} wrong-password"));
    assert!(l.last().unwrap().starts_with("n2 NO"), "{l:?}");
    anon.imap("n3", "LOGOUT");
    let anon_port = anon.port();
    anon.until_closed();

    bob.imap("b4", "FETCH 1 BODY[]");
    bob.imap("b5", "LOGOUT");
    let bob_port = bob.port();
    bob.until_closed();

    let all = logreader::all_records_of(&dir, "IMAP4");
    let sessions = logreader::by_session(&all);
    assert_eq!(sessions.len(), 1, "only alice's session: {all:#?}");
    let recs = session_of(&dir, "IMAP4", alice_port);
    logreader::assert_whole_session(&recs);
    let texts: Vec<String> = recs
        .iter()
        .map(|r| format!("{} {}", r.event, r.text()))
        .collect();
    // Pre-login, in order, with the held records' sequence numbers gapless (checked above).
    let expect_in_order = [
        "+ ".to_string(),
        format!("> {greeting}"),
        "< a1 CAPABILITY".into(),
        "< a2 LOGIN alice ***".into(),
        "* authentication succeeded: user=alice mechanism=LOGIN".into(),
        "< a3 SELECT INBOX".into(),
        "< a4 FETCH 1 BODY[]".into(),
        // level 5: the message content line by line
        "> the body line of the per-user test".into(),
        "< a5 LOGOUT".into(),
    ];
    let mut at = 0;
    for want in &expect_in_order {
        match texts[at..]
            .iter()
            .position(|t| t.starts_with(want.as_str()))
        {
            Some(p) => at += p + 1,
            None => panic!("{want:?} missing or out of order in {texts:#?}"),
        }
    }
    // Level 5 has the untagged lines (level 4) and completions (level 3) too.
    assert!(
        texts.iter().any(|t| t.starts_with("> * CAPABILITY ")),
        "{texts:#?}"
    );
    assert!(texts.iter().any(|t| t.starts_with("> a3 OK")), "{texts:#?}");
    assert!(!logreader::log_text(&dir).contains(PASS));
    assert!(!logreader::log_text(&dir).contains("wrong-password"));
    assert!(session_of(&dir, "IMAP4", bob_port).is_empty());
    assert!(session_of(&dir, "IMAP4", anon_port).is_empty());

    // Emptying the list by hot reload: the next session start releases the file (level 0).
    assert!(logreader::flock_held(&file));
    reload(&d, "IMAP", &[]);
    assert!(
        logreader::flock_held(&file),
        "released before a session start"
    );
    let (mut next, _) = Client::connect(addr);
    let l = next.imap("c1", &format!("LOGIN {USER} {PASS}"));
    assert!(l.last().unwrap().starts_with("c1 OK"), "{l:?}");
    next.imap("c2", "LOGOUT");
    next.until_closed();
    common::wait::wait_until(
        "the IMAP4 log file to be released",
        WAIT,
        || !logreader::flock_held(&file) && !logreader::fd_open(d.pid(), &file),
        || logreader::log_text(&dir),
    );
    assert_eq!(logreader::log_files(&dir).len(), 1);
    assert_eq!(
        logreader::by_session(&logreader::all_records_of(&dir, "IMAP4")).len(),
        1
    );
}

#[test]
fn pop3_listed_user_is_logged_whole_at_level_5_and_no_one_else() {
    let d = start("POP3", &["alice"]);
    let addr = d.pop3.unwrap();
    let dir = logs(&d);

    let (mut bob, _) = Client::connect(addr);
    assert!(bob.pop("USER bob").starts_with("+OK"));
    assert!(bob.pop(&format!("PASS {BOB_PASS}")).starts_with("+OK"));

    let (mut alice, greeting) = Client::connect(addr);
    alice.pop_multi("CAPA");
    assert!(alice.pop(&format!("USER {USER}")).starts_with("+OK"));
    assert!(alice.pop(&format!("PASS {PASS}")).starts_with("+OK"));
    assert!(alice.pop("STAT").starts_with("+OK 1 "));
    let msg = alice.pop_multi("RETR 1");
    assert!(msg
        .iter()
        .any(|l| l == "the body line of the per-user test"));
    assert!(alice.pop("QUIT").starts_with("+OK"));
    let alice_port = alice.port();
    alice.until_closed();

    // Never logged in: a failed PASS, then QUIT.
    let (mut anon, _) = Client::connect(addr);
    assert!(anon.pop(&format!("USER {USER}")).starts_with("+OK"));
    assert!(anon.pop("PASS wrong-password").starts_with("-ERR"));
    assert!(anon.pop("QUIT").starts_with("+OK"));
    let anon_port = anon.port();
    anon.until_closed();

    bob.pop_multi("RETR 1");
    assert!(bob.pop("QUIT").starts_with("+OK"));
    let bob_port = bob.port();
    bob.until_closed();

    let file = only_file(&dir);
    let all = logreader::all_records_of(&dir, "POP3");
    assert_eq!(logreader::by_session(&all).len(), 1, "{all:#?}");
    let recs = session_of(&dir, "POP3", alice_port);
    logreader::assert_whole_session(&recs);
    let texts: Vec<String> = recs
        .iter()
        .map(|r| format!("{} {}", r.event, r.text()))
        .collect();
    let expect_in_order = [
        "+ ".to_string(),
        format!("> {greeting}"),
        "< CAPA".into(),
        "> +OK".into(),
        "> USER".into(),
        "< USER alice".into(),
        "< PASS ***".into(),
        "* authentication succeeded: user=alice".into(),
        "< STAT".into(),
        "< RETR 1".into(),
        "> the body line of the per-user test".into(),
        "< QUIT".into(),
    ];
    let mut at = 0;
    for want in &expect_in_order {
        match texts[at..]
            .iter()
            .position(|t| t.starts_with(want.as_str()))
        {
            Some(p) => at += p + 1,
            None => panic!("{want:?} missing or out of order in {texts:#?}"),
        }
    }
    assert!(!logreader::log_text(&dir).contains(PASS));
    assert!(session_of(&dir, "POP3", bob_port).is_empty());
    assert!(session_of(&dir, "POP3", anon_port).is_empty());

    reload(&d, "POP3", &[]);
    assert!(
        logreader::flock_held(&file),
        "released before a session start"
    );
    let (mut next, _) = Client::connect(addr);
    assert!(next.pop("QUIT").starts_with("+OK"));
    next.until_closed();
    common::wait::wait_until(
        "the POP3 log file to be released",
        WAIT,
        || !logreader::flock_held(&file) && !logreader::fd_open(d.pid(), &file),
        || logreader::log_text(&dir),
    );
}

/// A listed user's session while the level is above 0 is written at level 5; the other
/// sessions at the level: bob's at 1 has only `+`, `*` and `-`.
#[test]
fn level_above_0_logs_others_at_the_level() {
    let d = Daemon::start_in(|root| Options {
        registry: format!(
            "\"IMAP Protocol Logging Level\" = 1\n\"IMAP Protocol Log Path\" = \"{}\"\n\
             \"IMAP Protocol Log Users\" = [\"alice\"]\n",
            root.join("logs").display()
        ),
        users: format!("bob:{{PLAIN}}{BOB_PASS}\n"),
        ..Options::default()
    });
    let addr = d.imap.unwrap();
    let dir = logs(&d);
    let mut ports = Vec::new();
    for (user, pass) in [(USER, PASS), ("bob", BOB_PASS)] {
        let (mut c, _) = Client::connect(addr);
        c.imap("a1", "CAPABILITY");
        c.imap("a2", &format!("LOGIN {user} {pass}"));
        c.imap("a3", "LOGOUT");
        ports.push(c.port());
        c.until_closed();
    }
    let alice = session_of(&dir, "IMAP4", ports[0]);
    let bob = session_of(&dir, "IMAP4", ports[1]);
    logreader::assert_whole_session(&alice);
    logreader::assert_whole_session(&bob);
    assert!(logreader::datas(&alice, '<').contains(&"a1 CAPABILITY".to_string()));
    assert_eq!(
        logreader::kinds(&bob),
        ['*', '+', '-'].into_iter().collect(),
        "{bob:#?}"
    );
    assert_eq!(
        logreader::datas(&bob, '*'),
        ["authentication succeeded: user=bob mechanism=LOGIN"]
    );
}

/// SPEC §4: a session keeps the snapshot taken at its start. alice connects while she is
/// listed; the list is emptied by hot reload before she logs in; her session is still
/// written whole at level 5 (no session has started since, so the file is still open).
#[test]
fn a_session_keeps_the_list_of_its_start() {
    let d = start("IMAP", &["alice"]);
    let addr = d.imap.unwrap();
    let dir = logs(&d);
    let (mut alice, _) = Client::connect(addr);
    alice.imap("a1", "NOOP");
    reload(&d, "IMAP", &[]);
    let l = alice.imap("a2", &format!("LOGIN {USER} {PASS}"));
    assert!(l.last().unwrap().starts_with("a2 OK"), "{l:?}");
    alice.imap("a3", "LOGOUT");
    let port = alice.port();
    alice.until_closed();
    let recs = session_of(&dir, "IMAP4", port);
    logreader::assert_whole_session(&recs);
    let client = logreader::datas(&recs, '<');
    assert_eq!(client, ["a1 NOOP", "a2 LOGIN alice ***", "a3 LOGOUT"]);
}
