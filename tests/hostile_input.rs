//! Hostile input against the real `mailserver` binary over loopback (the "hostile input"
//! issue): an empty password never logs in (IMAP LOGIN, IMAP AUTHENTICATE PLAIN, POP3
//! USER/PASS), whatever the users file says, and is warned about at load time; secrets in
//! malformed LOGIN lines and in the SASL response a client sends after a refused
//! AUTHENTICATE / AUTH never reach the protocol log (KB Q182504, level 5), checked on the raw
//! bytes of the files and on the records read with `tests/common/logreader.rs`.
//!
//! The non-loopback cases (privacy required without TLS, APOP) cannot be made over
//! 127.0.0.1 sockets: they are session-level tests in `tests/pop3_policy.rs` and
//! `tests/imap_session.rs`. Every wait is bounded (socket timeouts, `wait_log`).

mod common;

#[path = "common/logreader.rs"]
mod logreader;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{Daemon, Options, PASS, USER};
use logreader::*;

const WAIT: Duration = Duration::from_secs(30);

/// A line client: IMAP or POP3, the test reads what it expects.
struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Client {
    /// Connects from a loopback address no other connection of this binary used, so the
    /// daemon's per-address login penalty never slows these tests down.
    fn connect(addr: SocketAddr) -> Client {
        use socket2::{Domain, Socket, Type};
        static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let from = std::net::IpAddr::from([127, 0, 2 + (n >> 8) as u8, n as u8]);
        let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        sock.bind(&SocketAddr::new(from, 0).into()).unwrap();
        sock.connect_timeout(&addr.into(), WAIT).unwrap();
        let s: TcpStream = sock.into();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.set_write_timeout(Some(WAIT)).unwrap();
        let mut c = Client {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        };
        let g = c.line();
        assert!(
            g.starts_with("* OK") || g.starts_with("+OK"),
            "greeting {g:?}"
        );
        c
    }

    fn line(&mut self) -> String {
        let mut buf = Vec::new();
        let n = self.r.read_until(b'\n', &mut buf).unwrap();
        assert!(n > 0, "connection closed");
        String::from_utf8_lossy(&buf).trim_end().to_string()
    }

    fn send(&mut self, line: &[u8]) {
        let mut l = line.to_vec();
        l.extend_from_slice(b"\r\n");
        self.w.write_all(&l).unwrap();
    }

    /// IMAP: sends `lines` (any bytes) at once, then `tag NOOP`, and reads up to NOOP's
    /// completion; returns every line read before it. Resynchronises after malformed lines.
    fn imap(&mut self, lines: &[&[u8]], tag: &str) -> Vec<String> {
        for line in lines {
            self.send(line);
        }
        self.send(format!("{tag} NOOP").as_bytes());
        let mut lines = Vec::new();
        loop {
            let l = self.line();
            if l.starts_with(&format!("{tag} ")) {
                assert!(l.starts_with(&format!("{tag} OK")), "{l}");
                return lines;
            }
            lines.push(l);
        }
    }

    /// IMAP: one command and its tagged completion line.
    fn tagged(&mut self, line: &str, tag: &str) -> String {
        self.send(line.as_bytes());
        loop {
            let l = self.line();
            if l == tag || l.starts_with(&format!("{tag} ")) {
                return l;
            }
        }
    }

    /// Closes after the server's goodbye and reads to EOF: the server writes the session's
    /// records before it closes the socket.
    fn finish(mut self, last: &str) {
        self.send(last.as_bytes());
        let mut rest = Vec::new();
        let _ = self.r.read_to_end(&mut rest);
    }
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[test]
fn empty_passwords_never_log_in() {
    let hashed_empty = mailserver::hash_password("SHA512-CRYPT", "").unwrap();
    let d = Daemon::start_with(Options {
        users: format!("dave:{{PLAIN}}\nerin:{hashed_empty}\n"),
        ..Options::default()
    });
    let imap = d.imap.unwrap();
    let pop3 = d.pop3.unwrap();
    let failed = "NO [AUTHENTICATIONFAILED] Authentication failed.";

    let mut c = Client::connect(imap);
    // The wording of any failure, for comparison.
    assert_eq!(
        c.tagged(&format!("w LOGIN {USER} wrong"), "w"),
        format!("w {failed}")
    );
    c.finish("z LOGOUT");
    // A connection per user: a session is closed at its third failed login.
    for (i, user) in ["dave", "erin"].iter().enumerate() {
        let mut c = Client::connect(imap);
        let t = Instant::now();
        let r = c.tagged(&format!("l{i} LOGIN {user} \"\""), &format!("l{i}"));
        assert_eq!(r, format!("l{i} {failed}"), "{user}");
        assert!(
            t.elapsed() >= Duration::from_millis(500),
            "no failure delay"
        );
        let ir = b64(format!("\0{user}\0").as_bytes());
        let r = c.tagged(&format!("p{i} AUTHENTICATE PLAIN {ir}"), &format!("p{i}"));
        assert_eq!(r, format!("p{i} {failed}"), "{user}");
        // Without SASL-IR: the response on its own line.
        let r = c.tagged(&format!("q{i} AUTHENTICATE PLAIN"), "+");
        assert_eq!(r, "+");
        let r = c.tagged(&ir, &format!("q{i}"));
        assert_eq!(r, format!("q{i} {failed}"), "{user}");
    }

    for user in ["dave", "erin"] {
        let mut p = Client::connect(pop3);
        p.send(format!("USER {user}").as_bytes());
        assert_eq!(p.line(), "+OK");
        let t = Instant::now();
        p.send(b"PASS ");
        assert_eq!(p.line(), "-ERR [AUTH] Authentication failed.", "{user}");
        assert!(
            t.elapsed() >= Duration::from_millis(500),
            "no failure delay"
        );
        p.send(format!("AUTH PLAIN {}", b64(format!("\0{user}\0").as_bytes())).as_bytes());
        assert_eq!(p.line(), "-ERR [AUTH] Authentication failed.", "{user}");
        p.finish("QUIT");
    }

    // The load-time warning names the file and line of the empty entry (alice is line 1).
    let users = d.dir.path().join("users");
    d.wait_log(
        &format!("{}:2: user dave has an empty password", users.display()),
        WAIT,
    );
    // A real password still works.
    let mut c = Client::connect(imap);
    assert!(c
        .tagged(&format!("a LOGIN {USER} {PASS}"), "a")
        .starts_with("a OK"));
    c.finish("z LOGOUT");
}

#[test]
fn secrets_of_malformed_lines_never_reach_the_protocol_log() {
    const SECRET: &str = "Zq9xHunter";
    let d = Daemon::start_in(|root| Options {
        registry: format!(
            "\"POP3 Protocol Logging Level\" = 5\n\"POP3 Protocol Log Path\" = \"{}\"\n\
             \"IMAP Protocol Logging Level\" = 5\n\"IMAP Protocol Log Path\" = \"{}\"\n",
            root.join("pop").display(),
            root.join("imap").display(),
        ),
        ..Options::default()
    });
    let sasl = b64(format!("\0{USER}\0{SECRET}").as_bytes());
    let sasl_real = b64(format!("\0{USER}\0{PASS}").as_bytes());

    // IMAP: each attack line, then a NOOP to resynchronise.
    let mut c = Client::connect(d.imap.unwrap());
    let attacks: Vec<(Vec<u8>, &str)> = vec![
        (
            format!("a5  LOGIN {USER} {SECRET}").into(),
            "a5  LOGIN alice ***",
        ),
        (
            format!("a7 LOGIN\t{USER}\t{SECRET}").into(),
            "a7 LOGIN\talice ***",
        ),
        (
            format!(" a8 LOGIN {USER} {SECRET}").into(),
            " a8 LOGIN alice ***",
        ),
        (format!("b5 LOGIN \"{USER} {SECRET}").into(), "b5 LOGIN ***"),
        (
            format!("b6 UID LOGIN {USER} {SECRET}").into(),
            "b6 UID LOGIN alice ***",
        ),
        (
            format!("b7 login {USER} {SECRET} extra").into(),
            "b7 login alice ***",
        ),
    ];
    for (i, (line, _)) in attacks.iter().enumerate() {
        c.imap(&[line], &format!("n{i}"));
    }
    // Refused (unsupported mechanism): the client sends its response anyway, at once.
    c.imap(&[b"c1 AUTHENTICATE FOO", sasl.as_bytes()], "n10");
    // Refused for the state (already logged in): the response line again.
    assert!(c
        .tagged(&format!("d1 LOGIN {USER} {PASS}"), "d1")
        .starts_with("d1 OK"));
    c.imap(&[b"d2 AUTHENTICATE PLAIN", sasl_real.as_bytes()], "n20");
    c.finish("z LOGOUT");

    // POP3: the same for PASS, and AUTH refused (mechanism, then state).
    let mut p = Client::connect(d.pop3.unwrap());
    for line in [
        format!(" PASS {SECRET}"),
        format!("PASS\t{SECRET}"),
        "AUTH FOO".to_string(),
        sasl.clone(),
    ] {
        p.send(line.as_bytes());
        assert!(p.line().starts_with("-ERR"), "{line}");
    }
    p.send(format!("USER {USER}").as_bytes());
    assert_eq!(p.line(), "+OK");
    p.send(format!("PASS {PASS}").as_bytes());
    assert_eq!(p.line(), "+OK Logged in.");
    for line in ["AUTH PLAIN", &sasl_real] {
        p.send(line.as_bytes());
        assert!(p.line().starts_with("-ERR"), "{line}");
    }
    p.finish("QUIT");

    for (dir, service) in [("imap", "IMAP4"), ("pop", "POP3")] {
        let dir = d.dir.path().join(dir);
        let raw = log_text(&dir);
        for secret in [SECRET, PASS, &sasl, &sasl_real, &b64(SECRET.as_bytes())] {
            assert!(
                !raw.contains(secret),
                "{service} log holds {secret:?}:\n{raw}"
            );
        }
        let recs = all_records_of(&dir, service);
        for s in by_session(&recs).values() {
            assert_whole_session(s);
        }
        let client = datas(&recs, '<');
        let want: Vec<&str> = if service == "IMAP4" {
            let mut w: Vec<&str> = attacks.iter().map(|(_, logged)| *logged).collect();
            w.extend([
                "c1 AUTHENTICATE FOO",
                "***",
                "d1 LOGIN alice ***",
                "d2 AUTHENTICATE PLAIN",
                "***",
            ]);
            w
        } else {
            vec![
                " PASS ***",
                "PASS ***",
                "AUTH FOO",
                "***",
                "USER alice",
                "PASS ***",
                "AUTH PLAIN",
                "***",
            ]
        };
        let got: Vec<&str> = client
            .iter()
            .map(String::as_str)
            .filter(|l| !l.contains("NOOP") && !l.contains("LOGOUT") && *l != "QUIT")
            .collect();
        assert_eq!(got, want, "{service}");
    }
}
