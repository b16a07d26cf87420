//! KB Q182504 (ARCHITECTURE.md, "Protocol log") proved end to end for POP3: the real
//! `mailserver` binary, real sockets on `127.0.0.1`, real files, hot reload by editing the
//! config file (ARCHITECTURE.md, "Configuration and reload").
//!
//! Each test names the sentence it proves. The log files are read with the strict reader in
//! `tests/common/logreader.rs` (RFC 4180 §2 fields, `\xNN` escapes), independent of the
//! crate's own `protolog::record`, so a formatting bug cannot hide behind its own decoder.
//! Every wait is bounded (socket timeouts, `wait_*` deadlines); nothing asserts on timing.
//!
//! Covered: nothing exists before the first session; `L0000001.log` and its four header lines;
//! the `flock` seen from another process (`flock -n FILE true`) and the fd seen in
//! `/proc/<pid>/fd`; level 0 by hot reload keeps the lock until the next session start, then
//! releases it (old sessions stop writing) and the file can be deleted; re-enabling opens the
//! next number; path changes; names after the highest, shared by POP3, IMAP4 and two daemons;
//! the start snapshot decides a session's level; the records of each level 1..=5 (and `-` byte
//! counts equal to the client's); secrets at every level; 100 concurrent sessions; open
//! failures reported once, with recovery; the size-limit roll.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use base64::Engine;
use common::{Daemon, Options, PASS, USER};
use md5::{Digest, Md5};

/// Socket and wait bound: long enough for a loaded 2-core machine, short enough to fail.
const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// Daemon, config and reload helpers
// ---------------------------------------------------------------------------------------

/// `[ParametersSystem]` lines for POP3 at `level` into `dir`, plus `extra` lines.
fn registry(level: u32, dir: &Path, extra: &str) -> String {
    format!(
        "\"POP3 Protocol Logging Level\" = {level}\n\"POP3 Protocol Log Path\" = \"{}\"\n{extra}\n",
        dir.display()
    )
}

/// The options of a test daemon logging POP3 at `level` into `<tempdir>/logs`.
struct Setup {
    level: u32,
    /// Extra `[ParametersSystem]` lines (size limit).
    extra: String,
    /// Extra users lines.
    users: String,
    /// Extra `[limits]` lines.
    limits: String,
    /// Log path relative to the daemon's tempdir.
    log_rel: String,
    /// Or an absolute log path (a directory another daemon logs into).
    log_abs: Option<PathBuf>,
}

impl Setup {
    fn new(level: u32) -> Setup {
        Setup {
            level,
            extra: String::new(),
            users: String::new(),
            limits: String::new(),
            log_rel: "logs".into(),
            log_abs: None,
        }
    }

    fn options(&self, root: &Path) -> Options {
        Options {
            registry: registry(
                self.level,
                &self.log_abs.clone().unwrap_or(root.join(&self.log_rel)),
                &self.extra,
            ),
            limits: self.limits.clone(),
            users: self.users.clone(),
            env: Vec::new(),
            wrap: None,
            extra: String::new(),
        }
    }
}

/// Starts the daemon with `setup` (the config names paths inside its own tempdir).
fn start(setup: &Setup) -> Daemon {
    Daemon::start_in(|root| setup.options(root))
}

fn log_dir(d: &Daemon) -> PathBuf {
    d.dir.path().join("logs")
}

fn pop3(d: &Daemon) -> SocketAddr {
    d.pop3.expect("POP3 listener")
}

/// Hot reload: rewrites the config with `setup` and waits for the daemon to log the
/// POP3 level change (or `needle`, when the level does not change).
fn reload(d: &Daemon, old_level: u32, setup: &Setup, needle: Option<&str>) {
    let level_line = format!(
        "\"POP3 Protocol Logging Level\": {old_level} (REG_DWORD 0x{old_level:x}) -> {new} (REG_DWORD 0x{new:x}) (applies at the next session start)",
        new = setup.level
    );
    let needle = needle.unwrap_or(&level_line);
    let before = d.log_count(needle);
    d.rewrite_config(&setup.options(d.dir.path()));
    d.wait_log_more(needle, before, WAIT);
}

/// Waits (bounded) until `path` exists with at least `lines` lines.
fn wait_lines(path: &Path, lines: usize) {
    common::wait::wait_for(
        &format!("{} to have {lines} lines", path.display()),
        WAIT,
        || {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text.lines().count() >= lines {
                Ok(())
            } else {
                Err(text)
            }
        },
    )
}

// ---------------------------------------------------------------------------------------
// A raw POP3 client (RFC 1939 transcripts)
// ---------------------------------------------------------------------------------------

struct Pop3 {
    r: BufReader<TcpStream>,
    w: TcpStream,
    greeting: String,
    /// Octets written, for the `bytes-in=` of the `-` record.
    sent: usize,
    /// Octets read, for `bytes-out=`.
    received: usize,
}

impl Pop3 {
    fn connect(addr: SocketAddr) -> Pop3 {
        let s = TcpStream::connect_timeout(&addr, WAIT).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.set_write_timeout(Some(WAIT)).unwrap();
        let mut c = Pop3 {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
            greeting: String::new(),
            sent: 0,
            received: 0,
        };
        c.greeting = c.line();
        assert!(c.greeting.starts_with("+OK"), "greeting {:?}", c.greeting);
        c
    }

    /// One line without CRLF; panics on EOF or timeout.
    fn line(&mut self) -> String {
        let mut buf = Vec::new();
        let n = self.r.read_until(b'\n', &mut buf).unwrap();
        assert!(n > 0, "connection closed");
        self.received += n;
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        String::from_utf8(buf).unwrap()
    }

    fn send(&mut self, line: &str) {
        self.w.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        self.sent += line.len() + 2;
    }

    fn cmd(&mut self, line: &str) -> String {
        self.send(line);
        self.line()
    }

    /// A command that must succeed.
    fn ok(&mut self, line: &str) -> String {
        let r = self.cmd(line);
        assert!(r.starts_with("+OK"), "C: {line}\nS: {r}");
        r
    }

    /// The rest of a multi-line reply: its lines (dot-unstuffed) and the octets on the wire
    /// before the terminating `.` CRLF.
    fn multi(&mut self) -> (Vec<String>, usize) {
        let mut lines = Vec::new();
        let mut octets = 0;
        for _ in 0..100_000 {
            let mut buf = Vec::new();
            let n = self.r.read_until(b'\n', &mut buf).unwrap();
            assert!(n > 0, "connection closed in a multi-line reply");
            self.received += n;
            if buf == b".\r\n" {
                return (lines, octets);
            }
            octets += buf.len();
            let text = String::from_utf8(buf).unwrap();
            let text = text.trim_end_matches(['\r', '\n']);
            lines.push(text.strip_prefix('.').unwrap_or(text).to_string());
        }
        panic!("multi-line reply without end");
    }

    fn login(&mut self, user: &str, pass: &str) {
        self.ok(&format!("USER {user}"));
        self.ok(&format!("PASS {pass}"));
    }

    /// QUIT, then wait for the server to close (so its `-` record is flushed: records are
    /// flushed by the time their session ends, ARCHITECTURE.md "Protocol log").
    fn quit(self) {
        self.quit_counted();
    }

    /// [`Pop3::quit`], returning `(sent, received)` octets of the whole session.
    fn quit_counted(mut self) -> (usize, usize) {
        self.ok("QUIT");
        let mut rest = Vec::new();
        let _ = self.r.read_to_end(&mut rest);
        assert!(rest.is_empty(), "data after the QUIT reply: {rest:?}");
        (self.sent, self.received)
    }

    /// The APOP timestamp of the greeting (RFC 1939 §7).
    fn apop_stamp(&self) -> String {
        let start = self.greeting.find('<').expect("APOP timestamp");
        let end = self.greeting.rfind('>').unwrap();
        self.greeting[start..=end].to_string()
    }
}

#[path = "common/logreader.rs"]
mod logreader;
use logreader::*;

/// Reads a whole log file (`#Service: POP3`).
fn read_log(path: &Path) -> LogFile {
    read_log_of(path, "POP3")
}

/// Every record of every log file in `dir`, in file then line order (`#Service: POP3`).
fn all_records(dir: &Path) -> Vec<Rec> {
    all_records_of(dir, "POP3")
}

// ---------------------------------------------------------------------------------------
// KB: "log files will be created the next time a session is activated. They will start
// with the name L0000001.log. The first line in the file will declare the service"
// ---------------------------------------------------------------------------------------

#[test]
fn no_file_before_the_first_session_then_l0000001_with_the_spec_header() {
    let d = start(&Setup::new(5));
    let dir = log_dir(&d);
    // Ready at level 5, yet nothing is created: not the directory, not a file anywhere.
    assert!(!dir.exists(), "log directory created before any session");
    assert!(!d.log_text().contains("protocol log opened"));
    let c = Pop3::connect(pop3(&d));
    assert_eq!(log_files(&dir), vec!["L0000001.log"]);
    c.quit();
    let path = dir.join("L0000001.log");
    let f = read_log(&path);
    assert_eq!(f.header[0], "#Service: POP3");
    let recs = f.records;
    assert_whole_session(&recs);
    let local = pop3(&d).to_string();
    assert!(recs.iter().all(|r| r.local == local), "{recs:#?}");
    assert!(recs.iter().all(|r| r.remote.starts_with("127.0.0.1:")));
    assert_eq!(log_files(&dir), vec!["L0000001.log"]);
}

// ---------------------------------------------------------------------------------------
// KB: "these log files are continuously locked open. To delete them, set the logging level
// to 0. The next time a session is started, the file handle will be released."
// ---------------------------------------------------------------------------------------

#[test]
fn locked_until_the_session_after_level_0_then_released_and_the_next_file_is_new() {
    let mut setup = Setup::new(5);
    let d = start(&setup);
    let dir = log_dir(&d);
    let first = dir.join("L0000001.log");

    Pop3::connect(pop3(&d)).quit();
    assert!(flock_held(&first), "file not locked while level 5");
    assert!(fd_open(d.pid(), &first), "daemon does not hold the file");
    let opened = "protocol log opened";
    d.wait_log_more(opened, 0, WAIT);
    assert_eq!(d.log_count(opened), 1);
    let info = d.log_text();
    let line = info.lines().find(|l| l.contains(opened)).unwrap();
    assert!(line.contains(" INFO "), "{line}");
    assert!(line.contains(&first.display().to_string()), "{line}");
    assert!(line.contains("reason=\"level > 0\""), "{line}");

    // Level 0 by editing the config: still locked until a session starts.
    setup.level = 0;
    reload(&d, 5, &setup, None);
    assert!(flock_held(&first), "released before the next session start");
    assert!(fd_open(d.pid(), &first));
    assert!(!d.log_text().contains("protocol log released"));

    // The next session start releases the handle (before the greeting is written).
    let c = Pop3::connect(pop3(&d));
    assert!(
        !flock_held(&first),
        "still locked after the next session start"
    );
    assert!(!fd_open(d.pid(), &first), "fd still open after release");
    d.wait_log_more("protocol log released", 0, WAIT);
    let text = d.log_text();
    let line = text
        .lines()
        .find(|l| l.contains("protocol log released"))
        .expect("release logged");
    assert!(line.contains(" INFO "), "{line}");
    assert!(line.contains(&first.display().to_string()), "{line}");
    assert!(line.contains("reason=\"level 0\""), "{line}");
    c.quit();
    // The level-0 session wrote nothing; the file is as the first session left it.
    let before = std::fs::read(&first).unwrap();
    let recs = read_log(&first).records;
    assert_eq!(by_session(&recs).len(), 1);
    assert_whole_session(&recs);

    // Re-enabling opens the next number; the old file is never appended to.
    setup.level = 5;
    reload(&d, 0, &setup, None);
    assert_eq!(
        log_files(&dir),
        vec!["L0000001.log"],
        "opened before a session"
    );
    Pop3::connect(pop3(&d)).quit();
    assert_eq!(log_files(&dir), vec!["L0000001.log", "L0000002.log"]);
    assert_eq!(
        std::fs::read(&first).unwrap(),
        before,
        "L0000001.log changed"
    );
    let second = dir.join("L0000002.log");
    assert!(flock_held(&second));
    assert!(!flock_held(&first));
    assert_whole_session(&read_log(&second).records);

    // And the released file can be deleted (the KB's reason for level 0).
    std::fs::remove_file(&first).unwrap();
    assert!(!first.exists());
    Pop3::connect(pop3(&d)).quit();
    assert_eq!(log_files(&dir), vec!["L0000002.log"]);
    assert_eq!(by_session(&read_log(&second).records).len(), 2);
}

// ---------------------------------------------------------------------------------------
// A session logs at the level in its own start snapshot (ARCHITECTURE.md, "Sessions")
// ---------------------------------------------------------------------------------------

#[test]
fn a_session_keeps_the_level_of_its_start_across_a_reload() {
    let mut setup = Setup::new(1);
    setup.users = "bob:{PLAIN}builder\n".into();
    let d = start(&setup);
    let dir = log_dir(&d);

    // Session A starts at level 1 and stays open across the change to 5.
    let mut a = Pop3::connect(pop3(&d));
    a.login(USER, PASS);
    setup.level = 5;
    reload(&d, 1, &setup, None);
    a.ok("STAT");
    a.ok("LIST");
    a.multi();

    // Session B starts after the change and logs its commands.
    let mut b = Pop3::connect(pop3(&d));
    b.login("bob", "builder");
    b.ok("NOOP");
    b.quit();
    a.ok("NOOP");

    // Back down to 2 while C (level 5) is open: C keeps writing server lines, D does not.
    let mut c = Pop3::connect(pop3(&d));
    setup.level = 2;
    reload(&d, 5, &setup, None);
    let mut dd = Pop3::connect(pop3(&d));
    c.ok("CAPA");
    c.multi();
    dd.ok("CAPA");
    dd.multi();
    dd.quit();
    c.quit();
    a.quit();

    // One file throughout: levels 1, 5, 2 all > 0 with the same path.
    assert_eq!(log_files(&dir), vec!["L0000001.log"]);
    let recs = all_records(&dir);
    let sessions = by_session(&recs);
    assert_eq!(sessions.len(), 4, "{recs:#?}");
    // Session ids in start order (the first record of each).
    let mut order: Vec<(&Rec, &Vec<Rec>)> = sessions.values().map(|v| (&v[0], v)).collect();
    order.sort_by_key(|(first, _)| recs.iter().position(|r| r.id == first.id).unwrap());
    for (_, s) in &order {
        assert_whole_session(s);
    }
    let (sa, sb, sc, sd) = (order[0].1, order[1].1, order[2].1, order[3].1);
    assert_eq!(kinds(sa), BTreeSet::from(['+', '*', '-']), "A: {sa:#?}");
    assert!(datas(sb, '<').contains(&"NOOP".to_string()), "B: {sb:#?}");
    assert!(
        datas(sb, '>').iter().any(|l| l.starts_with("+OK")),
        "B: {sb:#?}"
    );
    assert_eq!(datas(sc, '<'), vec!["CAPA", "QUIT"], "C: {sc:#?}");
    // C logs the greeting, CAPA's status and listing (level 4) and QUIT's status.
    assert!(
        datas(sc, '>').contains(&"USER".to_string()),
        "C lost its level 5: {sc:#?}"
    );
    assert_eq!(datas(sd, '<'), vec!["CAPA", "QUIT"], "D: {sd:#?}");
    assert!(
        datas(sd, '>').is_empty(),
        "D wrote level 3 lines at 2: {sd:#?}"
    );
}

// ---------------------------------------------------------------------------------------
// KB Q182504 logging levels: one fixed RFC 1939 script per level
// ---------------------------------------------------------------------------------------

const MESSAGE: &str = "Subject: level test\r\nFrom: a@example.org\r\n\r\nfirst body line\r\nsecond, \"quoted\" line\r\n";

/// Runs USER/PASS, STAT, LIST, RETR 1, QUIT at `level`; returns the session's records, the
/// LIST line of message 1 and the RETR octets on the wire.
fn level_script(level: u32) -> (Vec<Rec>, String, usize) {
    let d = start(&Setup::new(level));
    common::deliver(&d.data_dir(), USER, 1, MESSAGE);
    let mut c = Pop3::connect(pop3(&d));
    c.login(USER, PASS);
    c.ok("STAT");
    c.ok("LIST");
    let (list, _) = c.multi();
    assert_eq!(list.len(), 1);
    c.ok("RETR 1");
    let (lines, octets) = c.multi();
    assert_eq!(lines[0], "Subject: level test");
    let (sent, received) = c.quit_counted();
    let recs = all_records(&log_dir(&d));
    assert_eq!(by_session(&recs).len(), 1);
    assert_whole_session(&recs);
    let auth = datas(&recs, '*');
    assert_eq!(auth.len(), 1, "{recs:#?}");
    assert!(auth[0].contains("user=alice"), "{auth:?}");
    assert!(auth[0].contains("mechanism=USER"), "{auth:?}");
    assert!(auth[0].contains("succe"), "{auth:?}");
    // `-` with duration and the octets each way, counted by the client.
    let end = recs.last().unwrap().text();
    assert!(end.starts_with("duration="), "{end}");
    assert!(
        end.ends_with(&format!("s bytes-in={sent} bytes-out={received}")),
        "{end}"
    );
    assert!(datas(&recs, '+') == vec![String::new()]);
    (recs, list[0].clone(), octets)
}

const COMMANDS: [&str; 6] = ["USER alice", "PASS ***", "STAT", "LIST", "RETR 1", "QUIT"];

/// `>` records that are not completion lines.
fn non_status(recs: &[Rec]) -> Vec<String> {
    datas(recs, '>')
        .into_iter()
        .filter(|l| !l.starts_with("+OK") && !l.starts_with("-ERR"))
        .collect()
}

#[test]
fn level_1_connect_disconnect_and_auth_only() {
    let (recs, _, _) = level_script(1);
    assert_eq!(kinds(&recs), BTreeSet::from(['+', '*', '-']), "{recs:#?}");
    assert_eq!(recs.len(), 3);
}

#[test]
fn level_2_adds_client_commands_with_the_password_masked() {
    let (recs, _, _) = level_script(2);
    assert_eq!(kinds(&recs), BTreeSet::from(['+', '*', '-', '<']));
    assert_eq!(datas(&recs, '<'), COMMANDS);
}

#[test]
fn level_3_adds_completion_lines() {
    let (recs, _, _) = level_script(3);
    assert_eq!(kinds(&recs), BTreeSet::from(['+', '*', '-', '<', '>']));
    assert_eq!(datas(&recs, '<'), COMMANDS);
    let out = datas(&recs, '>');
    // Greeting + one completion per command, nothing else.
    assert_eq!(out.len(), 7, "{out:#?}");
    assert!(out.iter().all(|l| l.starts_with("+OK")), "{out:#?}");
    assert!(out[0].contains(" ready"), "{out:#?}");
}

#[test]
fn level_4_adds_listings_and_summarises_message_content() {
    let (recs, list, octets) = level_script(4);
    assert_eq!(kinds(&recs), BTreeSet::from(['+', '*', '-', '<', '>']));
    assert_eq!(datas(&recs, '<'), COMMANDS);
    assert_eq!(
        non_status(&recs),
        vec![
            list,
            ".".to_string(),
            format!("<literal {octets} octets>"),
            ".".to_string()
        ]
    );
    assert_eq!(datas(&recs, '>').len(), 11);
    assert!(!recs.iter().any(|r| r.text().contains("first body line")));
}

#[test]
fn level_5_adds_the_message_lines_themselves() {
    let (recs, list, _) = level_script(5);
    assert_eq!(kinds(&recs), BTreeSet::from(['+', '*', '-', '<', '>']));
    assert_eq!(datas(&recs, '<'), COMMANDS);
    let mut expected = vec![list, ".".to_string()];
    expected.extend(MESSAGE.split("\r\n").map(String::from));
    expected.pop(); // after the last CRLF
    expected.push(".".to_string());
    assert_eq!(non_status(&recs), expected);
    assert!(!recs.iter().any(|r| r.text().starts_with("<literal")));
}

// ---------------------------------------------------------------------------------------
// Secrets are never written, at any level (ARCHITECTURE.md, "Protocol log")
// ---------------------------------------------------------------------------------------

/// Base64 text that any encoding of a byte string containing `secret` contains, for each of
/// the three alignments, plus the plain text.
fn secret_forms(secret: &str) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut forms = vec![secret.to_string()];
    for k in 0..3usize {
        let mut bytes = vec![b'x'; k];
        bytes.extend_from_slice(secret.as_bytes());
        let enc = b64.encode(&bytes);
        let first = k.div_ceil(3);
        let last = (k + secret.len()) / 3;
        forms.push(enc[first * 4..last * 4].to_string());
    }
    forms
}

#[test]
fn passwords_never_appear_in_any_file_at_any_level() {
    let secret = "Xyzzy-Pl0gh-Secret-77";
    let mut setup = Setup::new(1);
    setup.users = format!("carol:{{PLAIN}}{secret}\n");
    let d = start(&setup);
    let addr = pop3(&d);
    let b64 = base64::engine::general_purpose::STANDARD;
    let plain = b64.encode(format!("\0carol\0{secret}"));
    let mut forms = secret_forms(secret);
    forms.push(plain.clone());
    let mut apop_digests = Vec::new();

    for level in 1..=5 {
        if level > 1 {
            setup.level = level;
            reload(&d, level - 1, &setup, None);
        }
        // USER/PASS, and a failed PASS with a near miss.
        let mut c = Pop3::connect(addr);
        c.ok("USER carol");
        let r = c.cmd(&format!("PASS {secret}x"));
        assert!(r.starts_with("-ERR"), "{r}");
        c.login("carol", secret);
        c.quit();
        // APOP (RFC 1939 §7).
        let mut c = Pop3::connect(addr);
        let digest: String = Md5::digest(format!("{}{secret}", c.apop_stamp()))
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        c.ok(&format!("APOP carol {digest}"));
        apop_digests.push(digest);
        c.quit();
        // AUTH PLAIN with an initial response (RFC 5034 §4).
        let mut c = Pop3::connect(addr);
        c.ok(&format!("AUTH PLAIN {plain}"));
        c.quit();
        // AUTH PLAIN with the response on a continuation line.
        let mut c = Pop3::connect(addr);
        let r = c.cmd("AUTH PLAIN");
        assert!(r.starts_with('+') && !r.starts_with("+OK"), "{r}");
        c.ok(&plain);
        c.quit();
    }
    forms.extend(apop_digests);

    let dir = log_dir(&d);
    let files = log_files(&dir);
    assert!(!files.is_empty());
    let mut saw_masked = 0;
    for name in &files {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        for f in &forms {
            assert!(!text.contains(f.as_str()), "{name} contains {f:?}:\n{text}");
        }
        saw_masked += text.matches("***").count();
    }
    // The masks are there from level 2 on (so the client lines were logged, then masked).
    let recs = all_records(&dir);
    let client = datas(&recs, '<');
    assert!(client.iter().any(|l| l == "PASS ***"), "{client:#?}");
    assert!(client
        .iter()
        .any(|l| l == "APOP carol ***" || l == "APOP ***"));
    assert!(client.iter().any(|l| l == "AUTH PLAIN ***"), "{client:#?}");
    assert!(client.iter().any(|l| l == "***"), "{client:#?}");
    assert!(saw_masked >= 4 * 5);
    // The daemon's own log neither.
    let daemon_log = d.log_text();
    for f in &forms {
        assert!(
            !daemon_log.contains(f.as_str()),
            "daemon log contains {f:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Integrity: concurrent sessions never interleave within a line (ARCHITECTURE.md,
// "Protocol log")
// ---------------------------------------------------------------------------------------

/// Starts a level-5 daemon with `extra` registry lines and runs `n` POP3 sessions at once
/// (threads with raw sockets), each as its own user retrieving its own 20-line message.
fn concurrent_sessions(n: usize, extra: &str) -> Daemon {
    let mut setup = Setup::new(5);
    setup.extra = extra.into();
    setup.limits = "max_connections_per_ip = 1000\nmax_connections = 1000".into();
    setup.users = (0..n).map(|i| format!("u{i}:{{PLAIN}}pw{i}\n")).collect();
    let d = start(&setup);
    for i in 0..n {
        let body = format!(
            "Subject: message {i}\r\n\r\n{}",
            (0..20)
                .map(|k| format!("line {k} of message {i}, with \"quotes\", commas and \\\r\n"))
                .collect::<String>()
        );
        common::deliver(&d.data_dir(), &format!("u{i}"), i, &body);
    }
    let addr = pop3(&d);
    let barrier = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                // Everyone connects, then all talk at once; the barrier is reached whatever
                // happened before it, so a failure cannot hang the others.
                let conn = std::panic::catch_unwind(|| Pop3::connect(addr));
                barrier.wait();
                let mut c = conn.expect("connect");
                c.login(&format!("u{i}"), &format!("pw{i}"));
                c.ok("STAT");
                c.ok("LIST");
                c.multi();
                c.ok("RETR 1");
                let (lines, _) = c.multi();
                assert_eq!(lines[0], format!("Subject: message {i}"));
                c.quit();
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    d
}

/// `n` whole sessions, one per user, each with exactly its own message lines.
fn assert_concurrent_records(recs: &[Rec], n: usize) {
    let sessions = by_session(recs);
    assert_eq!(sessions.len(), n);
    let mut users = BTreeSet::new();
    for s in sessions.values() {
        assert_whole_session(s);
        let user = s
            .iter()
            .find(|r| r.event == '<' && r.text().starts_with("USER "))
            .map(|r| r.text()[5..].to_string())
            .unwrap();
        // The session's own message and no one else's.
        let k = &user[1..];
        let body: Vec<&Rec> = s.iter().filter(|r| r.text().starts_with("line ")).collect();
        assert_eq!(body.len(), 20);
        assert!(body.iter().all(|r| r
            .text()
            .ends_with(&format!("of message {k}, with \"quotes\", commas and \\"))));
        users.insert(user);
    }
    assert_eq!(users.len(), n);
}

#[test]
fn a_hundred_concurrent_sessions_write_whole_well_formed_lines() {
    const N: usize = 100;
    let d = concurrent_sessions(N, "");
    let dir = log_dir(&d);
    assert_eq!(log_files(&dir), vec!["L0000001.log"]);
    // read_log parses every line strictly: 7 fields, timestamp, 16-hex id, endpoints, event.
    assert_concurrent_records(&all_records(&dir), N);
}

#[test]
fn concurrent_sessions_across_size_limit_rolls_lose_and_reorder_nothing() {
    const N: usize = 30;
    let d = concurrent_sessions(N, "\"POP3 Protocol Log File Size Limit\" = 2");
    let dir = log_dir(&d);
    let files = log_files(&dir);
    assert!(files.len() > 10, "{files:?}");
    for (k, name) in files.iter().enumerate() {
        assert_eq!(name, &format!("L{:07}.log", k + 1));
        let len = std::fs::metadata(dir.join(name)).unwrap().len();
        let f = read_log(&dir.join(name));
        assert!(len <= 2048 || f.records.len() == 1, "{name}: {len} bytes");
    }
    // In file order, every session's numbers run 0, 1, 2, … across the files.
    assert_concurrent_records(&all_records(&dir), N);
}

// ---------------------------------------------------------------------------------------
// A failing protocol log never stops mail (ARCHITECTURE.md, "Protocol log")
// ---------------------------------------------------------------------------------------

/// USER/PASS, STAT, QUIT: the session works whatever the log does.
fn session_works(d: &Daemon) {
    let mut c = Pop3::connect(pop3(d));
    c.login(USER, PASS);
    c.ok("STAT");
    c.quit();
}

const OPEN_ERROR: &str = "protocol log: cannot open a log file";

/// Lines of the daemon log at ERROR level (the tracing fmt layer writes ` ERROR `).
fn error_lines(d: &Daemon) -> usize {
    d.log_text()
        .lines()
        .filter(|l| l.contains(" ERROR "))
        .count()
}

#[test]
fn log_path_under_a_regular_file_fails_once_and_recovers_when_fixed() {
    let mut setup = Setup::new(5);
    setup.log_rel = "blocker/logs".into();
    let d = start(&setup);
    let blocker = d.dir.path().join("blocker");
    std::fs::write(&blocker, b"not a directory").unwrap();
    for _ in 0..3 {
        session_works(&d);
    }
    // The daemon's stderr is read by a thread of the harness: wait for the line to arrive.
    d.wait_log(OPEN_ERROR, Duration::from_secs(10));
    assert_eq!(d.log_count(OPEN_ERROR), 1, "{}", d.log_text());
    assert_eq!(error_lines(&d), 1, "{}", d.log_text());
    let err = d.log_text();
    let line = err.lines().find(|l| l.contains(OPEN_ERROR)).unwrap();
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains(&blocker.display().to_string()), "{line}");

    // Fix the path: the next session start opens L0000001.log and logs the recovery.
    std::fs::remove_file(&blocker).unwrap();
    session_works(&d);
    let dir = blocker.join("logs");
    assert_eq!(log_files(&dir), vec!["L0000001.log"]);
    d.wait_log("protocol log recovered", Duration::from_secs(10));
    assert_eq!(d.log_count(OPEN_ERROR), 1);
    assert_eq!(error_lines(&d), 1, "{}", d.log_text());
    let recs = all_records(&dir);
    assert_eq!(by_session(&recs).len(), 1);
    assert_whole_session(&recs);
}

#[test]
fn log_directory_replaced_by_a_file_after_start_fails_once_and_recovers() {
    let d = start(&Setup::new(5));
    let dir = log_dir(&d);
    session_works(&d);
    assert_eq!(log_files(&dir), vec!["L0000001.log"]);

    // The directory goes away and a regular file takes its name.
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(&dir, b"in the way").unwrap();
    for _ in 0..3 {
        session_works(&d);
    }
    // The daemon's stderr is read by a thread of the harness: wait for the line to arrive.
    d.wait_log(OPEN_ERROR, Duration::from_secs(10));
    assert_eq!(d.log_count(OPEN_ERROR), 1, "{}", d.log_text());
    assert_eq!(error_lines(&d), 1, "{}", d.log_text());

    // Fixed: a new file at the next session start.
    std::fs::remove_file(&dir).unwrap();
    session_works(&d);
    d.wait_log("protocol log recovered", Duration::from_secs(10));
    assert_eq!(d.log_count(OPEN_ERROR), 1);
    assert_eq!(error_lines(&d), 1, "{}", d.log_text());
    assert_eq!(log_files(&dir), vec!["L0000001.log"]);
    let recs = all_records(&dir);
    assert_eq!(by_session(&recs).len(), 1);
    assert_whole_session(&recs);
}

// ---------------------------------------------------------------------------------------
// Extension value "POP3 Protocol Log File Size Limit" (KiB): roll at a record boundary
// ---------------------------------------------------------------------------------------

#[test]
fn size_limit_rolls_to_the_next_number_without_losing_a_record() {
    let mut setup = Setup::new(5);
    setup.extra = "\"POP3 Protocol Log File Size Limit\" = 1".into();
    let d = start(&setup);
    let body: String = (0..40)
        .map(|k| format!("body line {k} padding padding padding padding\r\n"))
        .collect();
    common::deliver(
        &d.data_dir(),
        USER,
        1,
        &format!("Subject: big\r\n\r\n{body}"),
    );
    let mut c = Pop3::connect(pop3(&d));
    c.login(USER, PASS);
    c.ok("RETR 1");
    c.multi();
    c.quit();

    let dir = log_dir(&d);
    let files = log_files(&dir);
    assert!(files.len() >= 3, "{files:?}");
    for (k, name) in files.iter().enumerate() {
        assert_eq!(name, &format!("L{:07}.log", k + 1));
        let path = dir.join(name);
        let len = std::fs::metadata(&path).unwrap().len();
        let f = read_log(&path); // whole lines, header first in every file
        assert!(!f.records.is_empty(), "{name} holds no record");
        assert!(
            len <= 1024 || f.records.len() == 1,
            "{name} is {len} bytes with {} records",
            f.records.len()
        );
    }
    // Only the newest file stays locked.
    let last = dir.join(files.last().unwrap());
    wait_lines(&last, 5);
    assert!(flock_held(&last));
    assert!(!flock_held(&dir.join(&files[0])));
    // Sequence numbers continue across the files: nothing lost, nothing repeated.
    let recs = all_records(&dir);
    assert_eq!(by_session(&recs).len(), 1);
    assert_whole_session(&recs);
    let content = datas(&recs, '>');
    for k in 0..40 {
        let line = format!("body line {k} padding padding padding padding");
        assert_eq!(content.iter().filter(|l| **l == line).count(), 1, "{line}");
    }
    let rolled = d.log_count("reason=\"size limit\"");
    assert!(rolled >= 2 * (files.len() - 1), "{}", d.log_text());
}

// ---------------------------------------------------------------------------------------
// When files open and close: the other transitions (ARCHITECTURE.md, "Protocol log")
// ---------------------------------------------------------------------------------------

#[test]
fn sessions_running_before_a_release_stop_writing() {
    let mut setup = Setup::new(5);
    let d = start(&setup);
    let dir = log_dir(&d);
    let file = dir.join("L0000001.log");
    let mut a = Pop3::connect(pop3(&d));
    a.login(USER, PASS);
    a.ok("STAT");
    // Records reach the file while the session is still open (flushed within a second;
    // waited for here without asserting how long it took).
    wait_lines(&file, 4 + 8);
    setup.level = 0;
    reload(&d, 5, &setup, None);
    // Still logging until the next session start releases the file.
    a.ok("NOOP");
    wait_lines(&file, 4 + 10);
    let b = Pop3::connect(pop3(&d));
    let before = std::fs::read(&file).unwrap();
    a.ok("STAT");
    a.ok("LIST");
    a.multi();
    a.quit();
    b.quit();
    assert_eq!(
        std::fs::read(&file).unwrap(),
        before,
        "written after release"
    );
    assert_eq!(log_files(&dir), vec!["L0000001.log"]);
    let recs = read_log(&file).records;
    // A's records up to the release, whole and in order, without its `-`.
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.seq, i as u64);
    }
    assert_eq!(
        datas(&recs, '<'),
        vec!["USER alice", "PASS ***", "STAT", "NOOP"]
    );
    assert!(!kinds(&recs).contains(&'-'));
}

#[test]
fn a_path_change_releases_the_old_file_and_opens_one_in_the_new_path() {
    let mut setup = Setup::new(2);
    let d = start(&setup);
    let old = log_dir(&d).join("L0000001.log");
    Pop3::connect(pop3(&d)).quit();
    assert!(flock_held(&old));
    setup.log_rel = "logs2/pop3".into();
    let new_dir = d.dir.path().join("logs2/pop3");
    reload(&d, 2, &setup, Some("\"POP3 Protocol Log Path\": "));
    assert!(flock_held(&old), "released before a session start");
    assert!(!new_dir.exists(), "created before a session start");
    Pop3::connect(pop3(&d)).quit();
    assert!(!flock_held(&old));
    assert!(!fd_open(d.pid(), &old));
    assert_eq!(log_files(&new_dir), vec!["L0000001.log"]);
    let new = new_dir.join("L0000001.log");
    assert!(flock_held(&new));
    assert_whole_session(&read_log(&new).records);
    assert_eq!(by_session(&read_log(&old).records).len(), 1);
    d.wait_log_more("reason=\"path changed\"", 1, WAIT);
    let text = d.log_text();
    assert!(text
        .lines()
        .any(|l| l.contains("protocol log released") && l.contains("reason=\"path changed\"")));
    assert!(text.lines().any(|l| l.contains("protocol log opened")
        && l.contains(&new.display().to_string())
        && l.contains("reason=\"path changed\"")));
}

// ---------------------------------------------------------------------------------------
// File names: after the highest number, O_EXCL, never an existing file (KB Q182504)
// ---------------------------------------------------------------------------------------

#[test]
fn names_continue_after_the_highest_and_services_and_daemons_never_share_a_file() {
    let setup = Setup::new(5);
    let d1 = start(&setup);
    let dir = log_dir(&d1);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("L0000041.log"), b"someone else's\n").unwrap();
    std::fs::write(dir.join("L41.log"), b"not a log name\n").unwrap();
    std::fs::write(dir.join("L0000099.txt"), b"not a log name\n").unwrap();
    Pop3::connect(pop3(&d1)).quit();
    assert_eq!(
        log_files(&dir),
        vec!["L0000041.log", "L0000042.log", "L41.log"]
    );
    assert_eq!(
        std::fs::read(dir.join("L0000041.log")).unwrap(),
        b"someone else's\n"
    );

    // A second daemon logging POP3 and IMAP4 into the same directory.
    let mut setup2 = Setup::new(5);
    setup2.extra = format!(
        "\"IMAP Protocol Logging Level\" = 1\n\"IMAP Protocol Log Path\" = \"{}\"",
        dir.display()
    );
    setup2.log_abs = Some(dir.clone());
    let mut d2 = start(&setup2);
    Pop3::connect(pop3(&d2)).quit();
    let imap = TcpStream::connect_timeout(&d2.imap.expect("IMAP listener"), WAIT).unwrap();
    imap.set_read_timeout(Some(WAIT)).unwrap();
    let mut greeting = String::new();
    let _ = BufReader::new(imap).read_line(&mut greeting);
    Pop3::connect(pop3(&d1)).quit();
    assert_eq!(
        log_files(&dir),
        vec![
            "L0000041.log",
            "L0000042.log",
            "L0000043.log",
            "L0000044.log",
            "L41.log"
        ]
    );
    assert_eq!(
        by_session(&read_log(&dir.join("L0000042.log")).records).len(),
        2
    );
    assert_eq!(
        by_session(&read_log(&dir.join("L0000043.log")).records).len(),
        1
    );
    // Session ids are unique across the two daemons (and so across restarts).
    let ours: Vec<Rec> = ["L0000042.log", "L0000043.log"]
        .iter()
        .flat_map(|n| read_log(&dir.join(n)).records)
        .collect();
    assert_eq!(by_session(&ours).len(), 3);
    // IMAP4 got its own file, declared as such, locked like the others.
    let imap_file = dir.join("L0000044.log");
    wait_lines(&imap_file, 4 + 2);
    let f = read_log_of(&imap_file, "IMAP4");
    assert_eq!(f.records[0].event, '+');
    assert_eq!(f.records[0].local, d2.imap.unwrap().to_string());
    for name in ["L0000042.log", "L0000043.log", "L0000044.log"] {
        assert!(flock_held(&dir.join(name)), "{name}");
    }
    d2.stop();
    // Shutdown releases the handles of d2 only.
    assert!(!flock_held(&dir.join("L0000043.log")));
    assert!(!flock_held(&imap_file));
    assert!(flock_held(&dir.join("L0000042.log")));
}

// ---------------------------------------------------------------------------------------
// Level 1 (KB Q182504): `*` records for TLS established and authentication success or
// failure (user, mechanism) — with a real client (Python's poplib) over POP3S and STLS
// ---------------------------------------------------------------------------------------

const POPLIB_TLS: &str = r#"
import poplib, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
host, plain, tls, user, pw = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
p = poplib.POP3_SSL(host, tls, context=ctx, timeout=30)
p.user(user); p.pass_(pw); p.stat(); p.quit()
p = poplib.POP3(host, plain, timeout=30)
p.stls(context=ctx)
p.user(user)
try:
    p.pass_(pw + "-wrong")
    sys.exit("wrong password accepted")
except poplib.error_proto:
    pass
p.quit()
print("done")
"#;

#[test]
fn level_1_records_tls_and_authentication_results_of_a_real_client() {
    if !common::have("python3") {
        common::skipped("python3 is not installed");
        return;
    }
    let d = start(&Setup::new(1));
    let out = common::python(
        POPLIB_TLS,
        &[
            "127.0.0.1",
            &pop3(&d).port().to_string(),
            &d.pop3s.expect("POP3S listener").port().to_string(),
            USER,
            PASS,
        ],
    );
    assert_eq!(out.trim(), "done");
    let dir = log_dir(&d);
    // The client is gone when python returns, but the daemon may still be finishing the
    // failed session (its failure delay): wait, bounded, for both `-` records.
    let recs = common::wait::wait_for("both sessions' end records", WAIT, || {
        let recs = all_records(&dir);
        let ended = by_session(&recs)
            .values()
            .filter(|s| kinds(s).contains(&'-'))
            .count();
        if ended == 2 {
            Ok(recs)
        } else {
            Err(format!("{ended} of 2 sessions ended"))
        }
    });
    let sessions = by_session(&recs);
    assert_eq!(sessions.len(), 2, "{recs:#?}");
    for s in sessions.values() {
        assert_whole_session(s);
        assert_eq!(kinds(s), BTreeSet::from(['+', '*', '-']), "{s:#?}");
        let info = datas(s, '*');
        assert_eq!(info.len(), 2, "{info:#?}");
        assert!(info[0].starts_with("TLS established"), "{info:#?}");
        assert!(info[1].contains("user=alice") && info[1].contains("mechanism=USER"));
    }
    let infos: Vec<String> = sessions
        .values()
        .map(|s| datas(s, '*')[1].clone())
        .collect();
    assert!(infos.iter().any(|i| i.contains("succe")), "{infos:#?}");
    assert!(infos.iter().any(|i| i.contains("fail")), "{infos:#?}");
    let text = log_text(&dir);
    assert!(!text.contains(PASS), "{text}");
}

#[test]
fn a_log_file_deleted_while_open_is_replaced_at_the_next_session_start() {
    let d = start(&Setup::new(2));
    let dir = log_dir(&d);
    let file = dir.join("L0000001.log");
    Pop3::connect(pop3(&d)).quit();
    std::fs::remove_file(&file).unwrap();
    // Writes to a deleted file would vanish; the next session start notices and reopens.
    Pop3::connect(pop3(&d)).quit();
    assert_eq!(log_files(&dir), vec!["L0000001.log"]);
    let recs = read_log(&file).records;
    assert_eq!(by_session(&recs).len(), 1);
    assert_whole_session(&recs);
    assert!(flock_held(&file));
    d.wait_log_more("protocol log opened", 1, WAIT);
    let text = d.log_text();
    assert!(text.lines().any(|l| l.contains("protocol log released")
        && l.contains("reason=\"file or directory removed\"")));
    assert_eq!(d.log_count("protocol log opened"), 2);
}
