//! KB Q182504 (ARCHITECTURE.md, "Protocol log") proved end to end for IMAP4: the real
//! `mailserver` binary, real sockets on `127.0.0.1`, real files, hot reload by editing the
//! config file (ARCHITECTURE.md, "Configuration and reload").
//!
//! The POP3 side is `tests/protolog_daemon.rs`; this file proves the same sentences for the
//! IMAP4 stream (its own level and path: one log stream per service), through a raw RFC 3501
//! client written here (so every octet and literal is under the test's control) and Python's
//! `imaplib` for a real client's LOGIN, AUTHENTICATE and TLS. The log files are read with the
//! same strict, independent reader as the POP3 tests, `tests/common/logreader.rs` (RFC 4180
//! §2 fields, `\xNN` escapes).
//!
//! Covered: POP3 then IMAP4 into one directory (`L0000001.log` POP3, `L0000002.log` IMAP4);
//! the IMAP4 file's `flock` and `/proc/<pid>/fd` entry while the IMAP level > 0, kept after a
//! hot reload to 0 until the next IMAP4 session start, then released and deletable, while
//! POP3's file follows POP3's values only; the records of each level 1..=5 for one fixed
//! script (LOGIN, SELECT, FETCH FLAGS, FETCH BODY[], APPEND with a literal, LOGOUT); the
//! password never written in any form (LOGIN quoted, atom, literal; AUTHENTICATE PLAIN with
//! SASL-IR and with a continuation line, RFC 4959 / RFC 3501 §6.2.2; LITERAL+, RFC 7888);
//! the start snapshot decides a session's level; IDLE (RFC 2177) `+ idling`, a pushed
//! EXISTS and `DONE`; the `-` record's byte counts equal the client's; level 1 `*` records
//! for TLS (IMAPS and STARTTLS, RFC 3501 §6.2.1) and LOGIN success/failure from imaplib.
//! Every wait is bounded (socket timeouts, `wait_*` deadlines); nothing asserts on timing.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use common::{Daemon, Options, PASS, USER};

/// Socket and wait bound: long enough for a loaded 2-core machine, short enough to fail.
const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// Daemon, config and reload helpers
// ---------------------------------------------------------------------------------------

/// The logging values of both services (`[ParametersSystem]`, KB Q182504).
#[derive(Clone)]
struct Setup {
    pop_level: u32,
    imap_level: u32,
    /// Log directories relative to the daemon's tempdir.
    pop_rel: String,
    imap_rel: String,
    /// Extra users lines.
    users: String,
}

impl Setup {
    /// IMAP4 at `level` into `logs`, POP3 at 0 into the same directory.
    fn imap(level: u32) -> Setup {
        Setup {
            pop_level: 0,
            imap_level: level,
            pop_rel: "logs".into(),
            imap_rel: "logs".into(),
            users: String::new(),
        }
    }

    fn options(&self, root: &Path) -> Options {
        Options {
            registry: format!(
                "\"POP3 Protocol Logging Level\" = {}\n\"POP3 Protocol Log Path\" = \"{}\"\n\
                 \"IMAP Protocol Logging Level\" = {}\n\"IMAP Protocol Log Path\" = \"{}\"\n",
                self.pop_level,
                root.join(&self.pop_rel).display(),
                self.imap_level,
                root.join(&self.imap_rel).display(),
            ),
            limits: String::new(),
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

fn imap_addr(d: &Daemon) -> SocketAddr {
    d.imap.expect("IMAP listener")
}

fn pop3_addr(d: &Daemon) -> SocketAddr {
    d.pop3.expect("POP3 listener")
}

/// Hot reload of the IMAP level from `old` to `setup.imap_level`: rewrites the
/// config and waits for the daemon to log the change.
fn reload_imap(d: &Daemon, old: u32, setup: &Setup) {
    let new = setup.imap_level;
    let needle = format!(
        "\"IMAP Protocol Logging Level\": {old} (REG_DWORD 0x{old:x}) -> {new} (REG_DWORD 0x{new:x})"
    );
    let before = d.log_count(&needle);
    d.rewrite_config(&setup.options(d.dir.path()));
    d.wait_log_more(&needle, before, WAIT);
}

// ---------------------------------------------------------------------------------------
// Raw clients: IMAP4rev1 (RFC 3501) and a minimal POP3 (RFC 1939)
// ---------------------------------------------------------------------------------------

struct Imap {
    r: BufReader<TcpStream>,
    w: TcpStream,
    /// Octets written, for the `bytes-in=` of the `-` record.
    sent: usize,
    /// Octets read, for `bytes-out=`.
    received: usize,
}

/// One server response line with the literals it carried (RFC 3501 §4.3), CRLFs removed
/// from the line text, literal octets kept whole.
#[derive(Debug)]
struct Resp {
    line: String,
    /// The physical lines of `line` (each but the last ends with a literal announcement).
    parts: Vec<String>,
    literals: Vec<Vec<u8>>,
}

impl Imap {
    fn connect(addr: SocketAddr) -> Imap {
        let s = TcpStream::connect_timeout(&addr, WAIT).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.set_write_timeout(Some(WAIT)).unwrap();
        let mut c = Imap {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
            sent: 0,
            received: 0,
        };
        let g = c.resp();
        assert!(g.line.starts_with("* OK"), "greeting {g:?}");
        c
    }

    /// One raw line without CRLF; panics on EOF or timeout.
    fn raw_line(&mut self) -> String {
        let mut buf = Vec::new();
        let n = self.r.read_until(b'\n', &mut buf).unwrap();
        assert!(n > 0, "connection closed");
        self.received += n;
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        String::from_utf8(buf).unwrap()
    }

    /// One response, following `{n}` literals to the end of the logical line.
    fn resp(&mut self) -> Resp {
        let mut line = String::new();
        let mut parts = Vec::new();
        let mut literals = Vec::new();
        for _ in 0..1000 {
            let part = self.raw_line();
            line.push_str(&part);
            parts.push(part.clone());
            match literal_len(&part) {
                Some(n) => {
                    let mut data = vec![0; n];
                    self.r.read_exact(&mut data).unwrap();
                    self.received += n;
                    literals.push(data);
                }
                None => {
                    return Resp {
                        line,
                        parts,
                        literals,
                    }
                }
            }
        }
        panic!("response with too many literals");
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).unwrap();
        self.sent += bytes.len();
    }

    fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    /// Reads responses until the one tagged `tag`; returns all of them, the tagged one last.
    fn until_tagged(&mut self, tag: &str) -> Vec<Resp> {
        let mut out = Vec::new();
        for _ in 0..10_000 {
            let r = self.resp();
            let done = r.line.starts_with(&format!("{tag} "));
            out.push(r);
            if done {
                return out;
            }
        }
        panic!("no tagged reply for {tag}");
    }

    /// `tag rest`, which must complete with OK.
    fn ok(&mut self, tag: &str, rest: &str) -> Vec<Resp> {
        self.send(&format!("{tag} {rest}"));
        let out = self.until_tagged(tag);
        let last = &out.last().unwrap().line;
        assert!(
            last.starts_with(&format!("{tag} OK")),
            "C: {tag} {rest}\nS: {out:#?}"
        );
        out
    }

    /// A synchronizing literal: sends `prefix {n}`, waits for the `+` continuation, then the
    /// octets and `suffix` CRLF. Returns the continuation line.
    fn literal(&mut self, prefix: &str, data: &[u8], suffix: &str) -> String {
        self.send(&format!("{prefix} {{{}}}", data.len()));
        let cont = self.raw_line();
        assert!(cont.starts_with('+'), "no continuation: {cont}");
        self.send_raw(data);
        self.send(suffix);
        cont
    }

    /// LOGOUT, then wait for the server to close (its `-` record is then on disk, KB Q182504).
    fn logout(mut self, tag: &str) {
        let out = self.ok(tag, "LOGOUT");
        assert!(out[0].line.starts_with("* BYE"), "{out:#?}");
        let mut rest = Vec::new();
        let _ = self.r.read_to_end(&mut rest);
        assert!(rest.is_empty(), "data after LOGOUT: {rest:?}");
    }
}

/// `Some(n)` when `line` ends with a literal announcement `{n}`.
fn literal_len(line: &str) -> Option<usize> {
    let open = line.rfind('{')?;
    line.strip_suffix('}')?[open + 1..].parse().ok()
}

/// POP3 USER/PASS/QUIT (a session of the other service).
fn pop3_session(addr: SocketAddr) {
    let s = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    let mut expect_ok = |r: &mut BufReader<TcpStream>| {
        line.clear();
        r.read_line(&mut line).unwrap();
        assert!(line.starts_with("+OK"), "{line}");
    };
    expect_ok(&mut r);
    for c in [
        format!("USER {USER}"),
        format!("PASS {PASS}"),
        "QUIT".into(),
    ] {
        w.write_all(format!("{c}\r\n").as_bytes()).unwrap();
        expect_ok(&mut r);
    }
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
}

#[path = "common/logreader.rs"]
mod logreader;
use logreader::*;

/// Reads a whole (IMAP4) log file (`#Service: IMAP4`).
fn read_log(path: &Path) -> LogFile {
    read_log_of(path, "IMAP4")
}

/// Every record of every (IMAP4) log file in `dir`, in file then line order (`#Service: IMAP4`).
fn all_records(dir: &Path) -> Vec<Rec> {
    all_records_of(dir, "IMAP4")
}

// KB: "The first line in the file will declare the service"; file names: POP3 and IMAP4
// sharing one directory never share a file (ARCHITECTURE.md, "Protocol log")
// ---------------------------------------------------------------------------------------

#[test]
fn pop3_then_imap4_into_one_directory_get_l0000001_and_l0000002() {
    let mut setup = Setup::imap(5);
    setup.pop_level = 5;
    let d = start(&setup);
    let dir = log_dir(&d);
    assert!(!dir.exists(), "log directory created before any session");
    pop3_session(pop3_addr(&d));
    assert_eq!(log_files(&dir), vec!["L0000001.log"]);
    let c = Imap::connect(imap_addr(&d));
    assert_eq!(log_files(&dir), vec!["L0000001.log", "L0000002.log"]);
    c.logout("a1");

    let pop = read_log_of(&dir.join("L0000001.log"), "POP3");
    assert_eq!(pop.header[0], "#Service: POP3");
    assert_eq!(by_session(&pop.records).len(), 1);
    let f = read_log(&dir.join("L0000002.log"));
    assert_eq!(f.header[0], "#Service: IMAP4");
    let text = std::fs::read_to_string(dir.join("L0000002.log")).unwrap();
    assert_eq!(text.lines().next(), Some("#Service: IMAP4"));
    assert_eq!(by_session(&f.records).len(), 1);
    assert_whole_session(&f.records);
    let local = imap_addr(&d).to_string();
    assert!(
        f.records.iter().all(|r| r.local == local),
        "{:#?}",
        f.records
    );
    assert!(f.records.iter().all(|r| r.remote.starts_with("127.0.0.1:")));
    assert_eq!(datas(&f.records, '<'), vec!["a1 LOGOUT"]);
    // Each service keeps its own file for the next sessions.
    pop3_session(pop3_addr(&d));
    Imap::connect(imap_addr(&d)).logout("b1");
    assert_eq!(log_files(&dir), vec!["L0000001.log", "L0000002.log"]);
    assert_eq!(
        by_session(&read_log_of(&dir.join("L0000001.log"), "POP3").records).len(),
        2
    );
    assert_eq!(
        by_session(&all_records(&dir_only(&dir, "L0000002.log"))).len(),
        2
    );
}

/// A tempdir holding a copy of one log file, so [`all_records`] reads just that one.
fn dir_only(dir: &Path, name: &str) -> PathBuf {
    let copy = dir.join("..").join(format!("only-{name}"));
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(dir.join(name), copy.join(name)).unwrap();
    copy
}

// ---------------------------------------------------------------------------------------
// KB: "these log files are continuously locked open. To delete them, set the logging level
// to 0. The next time a session is started, the file handle will be released."
// ---------------------------------------------------------------------------------------

#[test]
fn imap_file_locked_while_level_above_0_released_at_the_next_imap_session_after_0() {
    let mut setup = Setup::imap(5);
    setup.pop_level = 5;
    let d = start(&setup);
    let dir = log_dir(&d);
    pop3_session(pop3_addr(&d));
    Imap::connect(imap_addr(&d)).logout("a1");
    let pop_file = dir.join("L0000001.log");
    let imap_file = dir.join("L0000002.log");
    assert!(flock_held(&imap_file), "IMAP4 file not locked at 5");
    assert!(fd_open(d.pid(), &imap_file));
    assert!(flock_held(&pop_file));

    // IMAP level 0 by editing the config: still locked until an IMAP4 session starts.
    setup.imap_level = 0;
    reload_imap(&d, 5, &setup);
    assert!(flock_held(&imap_file), "released before a session");
    assert!(fd_open(d.pid(), &imap_file));
    // A POP3 session is no IMAP4 session start: the IMAP4 file stays held, and POP3's own
    // file (level 5 still) keeps being written.
    pop3_session(pop3_addr(&d));
    assert!(flock_held(&imap_file), "a POP3 session released IMAP4");
    assert!(fd_open(d.pid(), &imap_file));
    assert!(flock_held(&pop_file));
    let before = std::fs::read(&imap_file).unwrap();

    // The next IMAP4 session start releases the handle (before its greeting).
    let c = Imap::connect(imap_addr(&d));
    assert!(!flock_held(&imap_file), "still locked");
    assert!(!fd_open(d.pid(), &imap_file), "fd still open");
    c.logout("b1");
    assert_eq!(std::fs::read(&imap_file).unwrap(), before, "level 0 wrote");
    assert_eq!(by_session(&read_log(&imap_file).records).len(), 1);
    // Deletable, while POP3's file is untouched by IMAP's values.
    std::fs::remove_file(&imap_file).unwrap();
    assert!(flock_held(&pop_file), "POP3 file released by IMAP4's 0");
    assert!(fd_open(d.pid(), &pop_file));
    pop3_session(pop3_addr(&d));
    Imap::connect(imap_addr(&d)).logout("c1");
    assert_eq!(log_files(&dir), vec!["L0000001.log"]);
    assert_eq!(by_session(&read_log_of(&pop_file, "POP3").records).len(), 3);

    // Back to 1: the next IMAP4 session opens the next number after the highest.
    setup.imap_level = 1;
    reload_imap(&d, 0, &setup);
    assert_eq!(
        log_files(&dir),
        vec!["L0000001.log"],
        "opened before a session"
    );
    Imap::connect(imap_addr(&d)).logout("d1");
    assert_eq!(log_files(&dir), vec!["L0000001.log", "L0000002.log"]);
    let again = read_log(&imap_file);
    assert_eq!(kinds(&again.records), BTreeSet::from(['+', '-']));
    assert!(flock_held(&imap_file));
}

// ---------------------------------------------------------------------------------------
// KB Q182504 logging levels: one fixed RFC 3501 script per level
// ---------------------------------------------------------------------------------------

const MESSAGE: &str = "Subject: level test\r\nFrom: a@example.org\r\n\r\nfirst body line\r\nsecond, \"quoted\" line\r\n";
const APPENDED: &str = "Subject: appended\r\n\r\nappended body line\r\n";

/// What the client saw of the script, to compare with the log.
struct Script {
    recs: Vec<Rec>,
    /// Every untagged server line (split at literals, their data excluded), in order.
    untagged: Vec<String>,
    /// The continuation line of APPEND.
    cont: String,
    /// Octets of the FETCH BODY[] literal.
    body_octets: usize,
}

/// LOGIN, SELECT INBOX, FETCH 1 (FLAGS), FETCH 1 BODY[], APPEND with a literal, LOGOUT at
/// `level`; returns the one session's records and what the client saw.
fn level_script(level: u32) -> Script {
    let d = start(&Setup::imap(level));
    common::deliver(&d.data_dir(), USER, 1, MESSAGE);
    let mut untagged = Vec::new();
    let mut c = Imap::connect(imap_addr(&d));
    let mut keep = |out: Vec<Resp>| {
        for r in &out[..out.len() - 1] {
            untagged.extend(r.parts.iter().cloned());
        }
        out
    };
    keep(c.ok("a1", &format!("LOGIN {USER} {PASS}")));
    keep(c.ok("a2", "SELECT INBOX"));
    keep(c.ok("a3", "FETCH 1 (FLAGS)"));
    let out = keep(c.ok("a4", "FETCH 1 BODY[]"));
    assert_eq!(
        out[0].literals,
        vec![MESSAGE.as_bytes().to_vec()],
        "{out:#?}"
    );
    let cont = c.literal("a5 APPEND INBOX", APPENDED.as_bytes(), "");
    let out = c.until_tagged("a5");
    assert!(out.last().unwrap().line.starts_with("a5 OK"), "{out:#?}");
    keep(out);
    c.send("a6 LOGOUT");
    let out = c.until_tagged("a6");
    assert!(out.last().unwrap().line.starts_with("a6 OK"), "{out:#?}");
    keep(out);
    let mut rest = Vec::new();
    let _ = c.r.read_to_end(&mut rest);
    assert!(rest.is_empty(), "data after LOGOUT: {rest:?}");
    let (sent, received) = (c.sent, c.received);
    let recs = all_records(&log_dir(&d));
    assert_eq!(by_session(&recs).len(), 1, "{recs:#?}");
    assert_whole_session(&recs);
    // Level 1 '*': authentication success with user and mechanism.
    let auth: Vec<String> = datas(&recs, '*');
    assert_eq!(auth.len(), 1, "{recs:#?}");
    assert!(auth[0].contains("user=alice"), "{auth:?}");
    assert!(auth[0].contains("mechanism=LOGIN"), "{auth:?}");
    assert!(auth[0].contains("succe"), "{auth:?}");
    assert_eq!(datas(&recs, '+'), vec![String::new()]);
    // `-` with duration and the octets each way, counted by the client.
    let end = recs.last().unwrap().text();
    assert!(end.starts_with("duration="), "{end}");
    assert!(
        end.ends_with(&format!("s bytes-in={sent} bytes-out={received}")),
        "{end}"
    );
    Script {
        recs,
        untagged,
        cont,
        body_octets: MESSAGE.len(),
    }
}

/// The client lines of the script as the protocol log has them (the password masked).
fn commands() -> Vec<String> {
    vec![
        format!("a1 LOGIN {USER} ***"),
        "a2 SELECT INBOX".into(),
        "a3 FETCH 1 (FLAGS)".into(),
        "a4 FETCH 1 BODY[]".into(),
        format!("a5 APPEND INBOX {{{}}}", APPENDED.len()),
        // The rest of APPEND's command line after its literal (RFC 3501 §7.5: the literal
        // is followed by the rest of the line, here nothing but CRLF).
        String::new(),
        "a6 LOGOUT".into(),
    ]
}

/// `<` records other than literal summaries and content (levels 4 and 5 add those).
fn client_lines(recs: &[Rec]) -> Vec<String> {
    datas(recs, '<')
}

/// `>` records that are tagged completions or continuations (level 3, KB Q182504).
fn is_completion(l: &str) -> bool {
    l.starts_with('+') || (l.starts_with('a') && !l.starts_with("a5 APPEND"))
}

#[test]
fn level_1_connect_disconnect_and_auth_only() {
    let s = level_script(1);
    assert_eq!(
        kinds(&s.recs),
        BTreeSet::from(['+', '*', '-']),
        "{:#?}",
        s.recs
    );
    assert_eq!(s.recs.len(), 3);
}

#[test]
fn level_2_adds_client_commands_with_the_password_masked() {
    let s = level_script(2);
    assert_eq!(kinds(&s.recs), BTreeSet::from(['+', '*', '-', '<']));
    assert_eq!(client_lines(&s.recs), commands(), "{:#?}", s.recs);
}

#[test]
fn level_3_adds_tagged_completions_and_continuations() {
    let s = level_script(3);
    assert_eq!(kinds(&s.recs), BTreeSet::from(['+', '*', '-', '<', '>']));
    assert_eq!(client_lines(&s.recs), commands(), "{:#?}", s.recs);
    let out = datas(&s.recs, '>');
    let want: Vec<String> = std::iter::once(s.cont.clone())
        .chain((1..=6).map(|i| format!("a{i} OK")))
        .collect();
    assert_eq!(out.len(), want.len(), "{out:#?}");
    assert!(out.iter().all(|l| is_completion(l)), "{out:#?}");
    for (i, tag) in (1..=6).map(|i| format!("a{i} OK")).enumerate() {
        assert!(
            out.iter().filter(|l| l.starts_with(&tag)).count() == 1,
            "{i}: {tag} once in {out:#?}"
        );
    }
    assert_eq!(
        out.iter()
            .filter(|l| l.starts_with('+'))
            .collect::<Vec<_>>(),
        vec![&s.cont]
    );
    // The continuation comes between the APPEND line and its completion.
    let pos = |ev: char, p: &str| {
        s.recs
            .iter()
            .position(|r| r.event == ev && r.text().starts_with(p))
            .unwrap()
    };
    assert!(pos('<', "a5 APPEND") < pos('>', "+"));
    assert!(pos('>', "+") < pos('>', "a5 OK"));
}

#[test]
fn level_4_adds_untagged_lines_and_summarises_literals_in_both_directions() {
    let s = level_script(4);
    assert_eq!(kinds(&s.recs), BTreeSet::from(['+', '*', '-', '<', '>']));
    let body = format!("<literal {} octets>", s.body_octets);
    let appended = format!("<literal {} octets>", APPENDED.len());
    // Client side: the commands, and APPEND's literal as one summary record after its line.
    let mut want = commands();
    want.insert(5, appended.clone());
    assert_eq!(client_lines(&s.recs), want, "{:#?}", s.recs);
    // Server side: every untagged line the client saw is there, in order; the body literal
    // is one summary record; no content line anywhere.
    let out = datas(&s.recs, '>');
    assert_eq!(out.iter().filter(|l| **l == body).count(), 1, "{out:#?}");
    let mut it = out.iter();
    for u in &s.untagged {
        assert!(
            it.any(|l| l == u),
            "untagged {u:?} missing or out of order in {out:#?}"
        );
    }
    assert!(out[0].starts_with("* OK"), "greeting: {out:#?}");
    // Exactly: greeting, untagged lines, the summary, one continuation, six completions.
    assert_eq!(out.len(), 1 + s.untagged.len() + 1 + 1 + 6, "{out:#?}");
    let at = out.iter().position(|l| *l == body).unwrap();
    assert!(
        out[at - 1].ends_with(&format!("{{{}}}", s.body_octets)),
        "{out:#?}"
    );
    assert_eq!(out[at + 1], ")", "{out:#?}");
    assert!(out.iter().any(|l| l.ends_with(" EXISTS")), "{out:#?}");
    assert!(out.iter().any(|l| l.contains("FLAGS")), "{out:#?}");
    for line in ["first body line", "appended body line", "level test"] {
        assert!(
            !s.recs.iter().any(|r| r.text().contains(line)),
            "content {line:?} at level 4: {:#?}",
            s.recs
        );
    }
}

#[test]
fn level_5_adds_the_literal_content_lines() {
    let s = level_script(5);
    assert!(
        !s.recs.iter().any(|r| r.text().starts_with("<literal")),
        "{:#?}",
        s.recs
    );
    let lines = |m: &str| -> Vec<String> {
        let mut v: Vec<String> = m.split("\r\n").map(String::from).collect();
        v.pop();
        v
    };
    // Each literal's lines appear as consecutive records of its direction.
    let client = client_lines(&s.recs);
    let want = lines(APPENDED);
    let at = client
        .iter()
        .position(|l| l.starts_with("a5 APPEND"))
        .unwrap();
    assert_eq!(
        &client[at + 1..at + 1 + want.len()],
        &want[..],
        "{client:#?}"
    );
    let out = datas(&s.recs, '>');
    let want = lines(MESSAGE);
    let at = out
        .iter()
        .position(|l| l == &want[0])
        .unwrap_or_else(|| panic!("{out:#?}"));
    assert_eq!(&out[at..at + want.len()], &want[..], "{out:#?}");
    // And the level 4 lines are still all there.
    for c in commands() {
        assert!(client.contains(&c), "{c} in {client:#?}");
    }
    for i in 1..=6 {
        assert!(out.iter().any(|l| l.starts_with(&format!("a{i} OK"))));
    }
}

// ---------------------------------------------------------------------------------------
// Secrets are never written, at any level (ARCHITECTURE.md, "Protocol log"): IMAP LOGIN
// password, every
// AUTHENTICATE initial response and continuation line
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

/// Python's imaplib: LOGIN (it quotes the password), a failed and a good AUTHENTICATE PLAIN
/// (imaplib sends the response on a continuation line), then LOGOUT.
const IMAPLIB: &str = r#"
import imaplib, sys
host, port, user, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
m = imaplib.IMAP4(host, port, timeout=30)
m.login(user, pw)
m.select("INBOX")
m.logout()
m = imaplib.IMAP4(host, port, timeout=30)
try:
    m.authenticate("PLAIN", lambda _: ("\0" + user + "\0" + pw + "x").encode())
    sys.exit("wrong password accepted")
except imaplib.IMAP4.error:
    pass
m.authenticate("PLAIN", lambda _: ("\0" + user + "\0" + pw).encode())
m.logout()
print("done")
"#;

#[test]
fn passwords_never_appear_in_any_file_at_any_level() {
    let secret = "Xyzzy-Pl0gh-Secret-77";
    let mut setup = Setup::imap(1);
    setup.users = format!("carol:{{PLAIN}}{secret}\n");
    let d = start(&setup);
    let addr = imap_addr(&d);
    let b64 = base64::engine::general_purpose::STANDARD;
    let plain = b64.encode(format!("\0carol\0{secret}"));
    let wrong = b64.encode(format!("\0carol\0{secret}x"));
    let mut forms = secret_forms(secret);
    forms.push(plain.clone());
    forms.push(wrong.clone());

    for level in 1..=5 {
        if level > 1 {
            setup.imap_level = level;
            reload_imap(&d, level - 1, &setup);
        }
        // LOGIN with the password as an atom, then a near miss, then quoted.
        let mut c = Imap::connect(addr);
        c.send(&format!("a1 LOGIN carol {secret}x"));
        let r = c.until_tagged("a1");
        assert!(r.last().unwrap().line.starts_with("a1 NO"), "{r:#?}");
        c.ok("a2", &format!("LOGIN carol {secret}"));
        c.logout("a3");
        let mut c = Imap::connect(addr);
        c.ok("b1", &format!("LOGIN \"carol\" \"{secret}\""));
        c.logout("b2");
        // LOGIN with the password as a synchronizing literal (RFC 3501 §4.3), and with both
        // arguments as literals.
        let mut c = Imap::connect(addr);
        c.literal("c1 LOGIN carol", secret.as_bytes(), "");
        let r = c.until_tagged("c1");
        assert!(r.last().unwrap().line.starts_with("c1 OK"), "{r:#?}");
        c.logout("c2");
        let mut c = Imap::connect(addr);
        c.send("d1 LOGIN {5}");
        assert!(c.raw_line().starts_with('+'));
        c.send_raw(b"carol");
        c.literal("", secret.as_bytes(), "");
        let r = c.until_tagged("d1");
        assert!(r.last().unwrap().line.starts_with("d1 OK"), "{r:#?}");
        c.logout("d2");
        // AUTHENTICATE PLAIN with an initial response (SASL-IR, RFC 4959 §3), a wrong one
        // first.
        let mut c = Imap::connect(addr);
        c.send(&format!("e1 AUTHENTICATE PLAIN {wrong}"));
        let r = c.until_tagged("e1");
        assert!(r.last().unwrap().line.starts_with("e1 NO"), "{r:#?}");
        c.ok("e2", &format!("AUTHENTICATE PLAIN {plain}"));
        c.logout("e3");
        // AUTHENTICATE PLAIN with the response on a continuation line (RFC 3501 §6.2.2).
        let mut c = Imap::connect(addr);
        c.send("f1 AUTHENTICATE PLAIN");
        let cont = c.raw_line();
        assert!(cont.starts_with('+'), "{cont}");
        c.send(&plain);
        let r = c.until_tagged("f1");
        assert!(r.last().unwrap().line.starts_with("f1 OK"), "{r:#?}");
        c.logout("f2");
        // LITERAL+ (RFC 7888 §3): the password sent without waiting for a continuation,
        // after a quoted user name; and lower case with doubled spaces.
        let mut c = Imap::connect(addr);
        c.send_raw(format!("g1 LOGIN \"carol\" {{{}+}}\r\n{secret}\r\n", secret.len()).as_bytes());
        let r = c.until_tagged("g1");
        assert!(r.last().unwrap().line.starts_with("g1 OK"), "{r:#?}");
        c.logout("g2");
        let mut c = Imap::connect(addr);
        c.send(&format!("h1 login  carol  {secret}"));
        let r = c.until_tagged("h1");
        assert!(
            r.last().unwrap().line.starts_with("h1 OK")
                || r.last().unwrap().line.starts_with("h1 BAD"),
            "{r:#?}"
        );
        c.send(&format!("h2 authenticate plain {plain}"));
        let r = c.until_tagged("h2");
        assert!(!r.last().unwrap().line.starts_with("h2 BAD"), "{r:#?}");
        c.send("h3 LOGOUT");
        let _ = c.until_tagged("h3");
        // A real client.
        let out = common::python(
            IMAPLIB,
            &["127.0.0.1", &addr.port().to_string(), "carol", secret],
        );
        assert_eq!(out.trim(), "done");
    }

    let dir = log_dir(&d);
    let files = log_files(&dir);
    assert_eq!(files, vec!["L0000001.log"]);
    for name in &files {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        for f in &forms {
            assert!(!text.contains(f.as_str()), "{name} contains {f:?}:\n{text}");
        }
    }
    let recs = all_records(&dir);
    // Every session authenticated and was logged (10 per level, 5 levels).
    let sessions = by_session(&recs);
    assert_eq!(sessions.len(), 10 * 5);
    for s in sessions.values() {
        assert_whole_session(s);
    }
    let infos = datas(&recs, '*');
    assert!(
        infos
            .iter()
            .any(|l| l.contains("user=carol") && l.contains("mechanism=PLAIN")),
        "{infos:#?}"
    );
    // The masks are there from level 2 on: the client lines were logged, then masked.
    let client = datas(&recs, '<');
    for masked in [
        "a1 LOGIN carol ***".to_string(),
        "a2 LOGIN carol ***".into(),
        "b1 LOGIN \"carol\" ***".into(),
        "e1 AUTHENTICATE PLAIN ***".into(),
        "e2 AUTHENTICATE PLAIN ***".into(),
        "c1 LOGIN carol ***".into(),
        "d1 LOGIN {5}".into(),
        "f1 AUTHENTICATE PLAIN".into(),
        "g1 LOGIN \"carol\" ***".into(),
        "h2 authenticate plain ***".into(),
    ] {
        assert_eq!(
            client.iter().filter(|l| **l == masked).count(),
            4,
            "{masked:?} in {client:#?}"
        );
    }
    // With doubled spaces the user name may be masked too; never the password shown.
    assert!(
        client
            .iter()
            .filter(|l| l.starts_with("h1 login "))
            .all(|l| l.ends_with(" ***")),
        "{client:#?}"
    );
    // Whole-line masks, per level: c1's literal and the rest of its line (2), d1's two
    // literals and the lines after them (4), f1's continuation (1), imaplib's two
    // AUTHENTICATE continuations (2), g1's LITERAL+ literal and the rest of its line (2).
    // Nothing after LOGIN's first argument is ever shown.
    assert_eq!(
        client.iter().filter(|l| *l == "***").count(),
        11 * 4,
        "{client:#?}"
    );
    assert!(
        !recs.iter().any(|r| r.text().starts_with("<literal")),
        "a LOGIN literal summarised with its length: {recs:#?}"
    );
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
// A session logs at the level in its own start snapshot (ARCHITECTURE.md, "Sessions")
// ---------------------------------------------------------------------------------------

#[test]
fn a_session_started_at_level_1_logs_no_commands_after_the_change_to_5() {
    let mut setup = Setup::imap(1);
    let d = start(&setup);
    let dir = log_dir(&d);
    // A starts at level 1 and stays open across the change to 5.
    let mut a = Imap::connect(imap_addr(&d));
    a.ok("a1", &format!("LOGIN {USER} {PASS}"));
    setup.imap_level = 5;
    reload_imap(&d, 1, &setup);
    a.ok("a2", "SELECT INBOX");
    a.ok("a3", "NOOP");
    // B starts after the change and logs everything.
    let mut b = Imap::connect(imap_addr(&d));
    b.ok("b1", &format!("LOGIN {USER} {PASS}"));
    b.ok("b2", "SELECT INBOX");
    a.ok("a4", "NOOP");
    b.logout("b3");
    a.logout("a5");

    assert_eq!(log_files(&dir), vec!["L0000001.log"]);
    let recs = all_records(&dir);
    let sessions = by_session(&recs);
    assert_eq!(sessions.len(), 2, "{recs:#?}");
    let first = &recs[0].id;
    let sa = &sessions[first];
    let sb = sessions.values().find(|s| &s[0].id != first).unwrap();
    assert_whole_session(sa);
    assert_whole_session(sb);
    assert_eq!(kinds(sa), BTreeSet::from(['+', '*', '-']), "A: {sa:#?}");
    assert_eq!(sa.len(), 3, "A: {sa:#?}");
    assert_eq!(
        datas(sb, '<'),
        vec![
            format!("b1 LOGIN {USER} ***"),
            "b2 SELECT INBOX".into(),
            "b3 LOGOUT".into()
        ],
        "B: {sb:#?}"
    );
    let out = datas(sb, '>');
    assert!(out[0].starts_with("* OK"), "B: {out:#?}");
    assert!(out.iter().any(|l| l.ends_with(" EXISTS")), "B: {out:#?}");
    assert!(out.iter().any(|l| l.starts_with("b3 OK")), "B: {out:#?}");
}

// ---------------------------------------------------------------------------------------
// RFC 2177 IDLE at level 4: the continuation, the pushed EXISTS and DONE are records
// ---------------------------------------------------------------------------------------

#[test]
fn idle_continuation_pushed_exists_and_done_are_logged_at_level_4() {
    let d = start(&Setup::imap(4));
    common::deliver(&d.data_dir(), USER, 1, MESSAGE);
    let mut c = Imap::connect(imap_addr(&d));
    c.ok("a1", &format!("LOGIN {USER} {PASS}"));
    c.ok("a2", "SELECT INBOX");
    c.send("a3 IDLE");
    let cont = c.raw_line();
    assert_eq!(cont, "+ idling");
    // A delivery into new/ the way an MTA does it; the server pushes EXISTS (bounded by the
    // socket's read timeout).
    common::deliver(&d.data_dir(), USER, 2, MESSAGE);
    let mut pushed = Vec::new();
    for _ in 0..10 {
        let l = c.raw_line();
        let done = l == "* 2 EXISTS";
        pushed.push(l);
        if done {
            break;
        }
    }
    assert_eq!(
        pushed.last().map(String::as_str),
        Some("* 2 EXISTS"),
        "{pushed:?}"
    );
    c.send("DONE");
    let out = c.until_tagged("a3");
    assert!(out.last().unwrap().line.starts_with("a3 OK"), "{out:#?}");
    c.logout("a4");

    let recs = all_records(&log_dir(&d));
    assert_whole_session(&recs);
    let pos = |ev: char, data: &str| {
        recs.iter()
            .position(|r| r.event == ev && r.text() == data)
            .unwrap_or_else(|| panic!("no {ev} {data:?} in {recs:#?}"))
    };
    let idle = pos('<', "a3 IDLE");
    let plus = pos('>', &cont);
    let exists = pos('>', "* 2 EXISTS");
    let done = pos('<', "DONE");
    let ok = recs
        .iter()
        .position(|r| r.event == '>' && r.text().starts_with("a3 OK"))
        .unwrap();
    assert!(
        idle < plus && plus < exists && exists < done && done < ok,
        "{recs:#?}"
    );
    // Every pushed line the client saw is a record between the continuation and DONE.
    for p in &pushed {
        let at = pos('>', p);
        assert!(plus < at && at < done, "{p}: {recs:#?}");
    }
}

// ---------------------------------------------------------------------------------------
// Level 1 (KB Q182504): `*` records for TLS established and authentication success or
// failure (user, mechanism) — Python's imaplib over IMAPS and STARTTLS (RFC 3501 §6.2.1)
// ---------------------------------------------------------------------------------------

const IMAPLIB_TLS: &str = r#"
import imaplib, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
host, plain, tls, user, pw = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
m = imaplib.IMAP4_SSL(host, tls, ssl_context=ctx, timeout=30)
m.login(user, pw); m.select("INBOX"); m.logout()
m = imaplib.IMAP4(host, plain, timeout=30)
m.starttls(ssl_context=ctx)
try:
    m.login(user, pw + "-wrong")
    sys.exit("wrong password accepted")
except imaplib.IMAP4.error:
    pass
m.logout()
print("done")
"#;

#[test]
fn level_1_records_tls_and_authentication_results_of_a_real_client() {
    let d = start(&Setup::imap(1));
    let out = common::python(
        IMAPLIB_TLS,
        &[
            "127.0.0.1",
            &imap_addr(&d).port().to_string(),
            &d.imaps.expect("IMAPS listener").port().to_string(),
            USER,
            PASS,
        ],
    );
    assert_eq!(out.trim(), "done");
    let dir = log_dir(&d);
    let recs = all_records(&dir);
    let sessions = by_session(&recs);
    assert_eq!(sessions.len(), 2, "{recs:#?}");
    let mut results = Vec::new();
    for s in sessions.values() {
        assert_whole_session(s);
        assert_eq!(kinds(s), BTreeSet::from(['+', '*', '-']), "{s:#?}");
        let info = datas(s, '*');
        assert_eq!(info.len(), 2, "{info:#?}");
        assert!(info[0].starts_with("TLS established"), "{info:#?}");
        assert!(
            info[1].contains("user=alice") && info[1].contains("mechanism=LOGIN"),
            "{info:#?}"
        );
        results.push(info[1].clone());
    }
    assert!(results.iter().any(|i| i.contains("succe")), "{results:#?}");
    assert!(results.iter().any(|i| i.contains("fail")), "{results:#?}");
    let text = std::fs::read_to_string(dir.join("L0000001.log")).unwrap();
    assert!(!text.contains(PASS), "{text}");
}

// Formula injection: the first byte of a data field a spreadsheet would run as a formula is
// written as `\xNN` (every reader of the format decodes the same bytes)
// ---------------------------------------------------------------------------------------

#[test]
fn client_lines_starting_like_a_formula_are_escaped_at_level_2() {
    let d = start(&Setup::imap(2));
    let mut c = Imap::connect(imap_addr(&d));
    let formulas = [
        "=HYPERLINK(A1)",
        "-1+1",
        "@SUM(A1)",
        "+x",
        "=cmd|' /C calc'!A0",
    ];
    // Not at the start of the field: no spreadsheet reads it as a formula; stays bare.
    let bare = "a1 =HYPERLINK(A1)";
    for l in formulas.iter().chain([&bare]) {
        c.send(l);
        let r = c.resp();
        assert!(r.line.contains("BAD"), "C: {l}\nS: {r:?}");
    }
    c.logout("a9");
    let text = log_text(&log_dir(&d));
    // The first byte as `\xNN` (a spreadsheet shows the field as text; RFC 4180 quotes
    // would not stop it evaluating the formula); the reader decodes the same bytes.
    for f in formulas {
        let escaped = format!("\\x{:02X}{}", f.as_bytes()[0], &f[1..]);
        assert!(
            text.contains(&format!(",<,{escaped}\n")),
            "{f} not escaped:\n{text}"
        );
    }
    assert!(text.contains(&format!(",<,{bare}\n")), "{text}");
    let mut want: Vec<String> = formulas.iter().map(|s| s.to_string()).collect();
    want.push(bare.into());
    want.push("a9 LOGOUT".into());
    assert_eq!(client_lines(&all_records(&log_dir(&d))), want);
}
