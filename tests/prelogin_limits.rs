//! Hostile input before login against the real daemon (ARCHITECTURE.md, "Limits"): what an
//! unauthenticated connection may cost in memory (a whole IMAP command is at most 8 KiB
//! before login) and in time (the login idle limit and the login deadline, both protocols).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Daemon, Options, PASS, USER};

fn connect(addr: SocketAddr) -> BufReader<TcpStream> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    BufReader::new(s)
}

fn read_line(s: &mut BufReader<TcpStream>) -> String {
    let mut l = String::new();
    s.read_line(&mut l).unwrap();
    l
}

fn send(s: &mut BufReader<TcpStream>, data: &[u8]) {
    s.get_mut().write_all(data).unwrap();
}

/// `LOGIN` as the test user; asserts the tagged `OK` (untagged lines before it skipped).
fn imap_login(s: &mut BufReader<TcpStream>, tag: &str) {
    send(s, format!("{tag} LOGIN {USER} {PASS}\r\n").as_bytes());
    let l = loop {
        let l = read_line(s);
        if !l.starts_with('*') {
            break l;
        }
    };
    assert!(l.starts_with(&format!("{tag} OK")), "{l}");
}

/// The daemon's resident set in KiB (`VmRSS` in `/proc/PID/status`).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS in /proc/PID/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// `a LOGIN {8000+}` followed by 8000 octets and ` {8000+}` again and again, never ending
/// the command: the whole unfinished command used to be buffered (only each literal was
/// capped), about 8 KB more per round. Now the command is refused with `BAD` once it passes
/// 8 KiB, the rest of it is skipped unbuffered, and the session goes on.
#[test]
fn unfinished_login_with_endless_literals_is_bounded_in_memory() {
    const ROUNDS: usize = 4_000; // ~32 MB sent: the old code buffered all of it
    const RSS_BOUND_KIB: u64 = 4 * 1024;
    let d = Daemon::start();
    let addr = d.imap.unwrap();
    let mut other = connect(addr);
    assert!(read_line(&mut other).starts_with("* OK"));
    let mut s = connect(addr);
    assert!(read_line(&mut s).starts_with("* OK"));
    // A settled baseline: both connections up, one command answered on each.
    send(&mut other, b"o0 NOOP\r\n");
    assert!(read_line(&mut other).starts_with("o0 OK"));
    send(&mut s, b"s0 NOOP\r\n");
    assert!(read_line(&mut s).starts_with("s0 OK"));
    let base = rss_kib(d.pid());

    send(&mut s, b"a LOGIN {8000+}\r\n");
    let chunk = [b"x".repeat(8000), b" {8000+}\r\n".to_vec()].concat();
    let mut peak = base;
    for round in 0..ROUNDS {
        send(&mut s, &chunk);
        if round % 100 == 99 {
            // The other connection keeps answering meanwhile.
            send(&mut other, format!("o{round} NOOP\r\n").as_bytes());
            let l = read_line(&mut other);
            assert!(l.starts_with(&format!("o{round} OK")), "{l}");
            peak = peak.max(rss_kib(d.pid()));
        }
    }
    // The daemon may still be draining what the socket buffers hold (a few MB at most): keep
    // sampling a while, the command still unfinished.
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        peak = peak.max(rss_kib(d.pid()));
        std::thread::sleep(Duration::from_millis(50));
    }
    // The last literal's data, then the end of the (refused) command's line.
    send(&mut s, &b"x".repeat(8000));
    send(&mut s, b"\r\n");
    let l = read_line(&mut s);
    assert!(
        l.starts_with("a BAD"),
        "the oversize command is refused: {l}"
    );
    // The session goes on: a normal LOGIN works.
    imap_login(&mut s, "b");
    peak = peak.max(rss_kib(d.pid()));
    eprintln!(
        "daemon RSS: baseline {base} KiB, peak {peak} KiB (+{} KiB) over {ROUNDS} rounds",
        peak - base
    );
    assert!(
        peak < base + RSS_BOUND_KIB,
        "RSS grew from {base} KiB to {peak} KiB during the attack"
    );
}

/// The login limits of these tests: 2 s without input, 8 s for the whole login phase.
const LOGIN_IDLE: Duration = Duration::from_secs(2);
const LOGIN_DEADLINE: Duration = Duration::from_secs(8);
/// Generous: a connection still open this long after the deadline was not cut off.
const SLACK: Duration = Duration::from_secs(10);

fn short_login_limits() -> Daemon {
    Daemon::start_with(Options {
        limits: format!(
            "login_idle_timeout_secs = {}\nlogin_timeout_secs = {}",
            LOGIN_IDLE.as_secs(),
            LOGIN_DEADLINE.as_secs()
        ),
        ..Default::default()
    })
}

/// Connects, reads the greeting, then sends one octet every `every` (`None`: nothing) until
/// the server closes. Returns what followed the greeting and when the close came, measured
/// from before the connect; panics if the connection is still open after the deadline and
/// [`SLACK`].
fn until_closed(addr: SocketAddr, every: Option<Duration>) -> (String, Duration) {
    let start = Instant::now();
    let mut s = connect(addr);
    s.get_ref()
        .set_read_timeout(Some(LOGIN_DEADLINE + SLACK))
        .unwrap();
    let greeting = read_line(&mut s);
    assert!(
        greeting.starts_with("* OK") || greeting.starts_with("+OK"),
        "{greeting}"
    );
    let mut writer = s.get_ref().try_clone().unwrap();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let trickle = every.map(|every| {
        std::thread::spawn(move || {
            // One octet at a time, never a complete line: each read resets an idle timer.
            while done_rx.recv_timeout(every).is_err() {
                if writer.write_all(b"x").is_err() {
                    break;
                }
            }
        })
    });
    let mut rest = String::new();
    let r = s.read_to_string(&mut rest);
    let elapsed = start.elapsed();
    let _ = done_tx.send(());
    if let Some(t) = trickle {
        t.join().unwrap();
    }
    assert!(
        r.is_ok(),
        "still open {elapsed:?} after connecting ({r:?}); got {rest:?}"
    );
    (rest, elapsed)
}

/// Slowloris: one octet every 500 ms (well inside the 2 s login idle limit) does not keep a
/// connection that never logs in: it is cut off at the 8 s login deadline, with the
/// protocol's goodbye, IMAP and POP3 alike.
#[test]
fn trickling_client_is_cut_off_at_the_login_deadline() {
    let d = short_login_limits();
    for (addr, goodbye) in [(d.imap.unwrap(), "* BYE"), (d.pop3.unwrap(), "-ERR")] {
        let (rest, elapsed) = until_closed(addr, Some(Duration::from_millis(500)));
        assert!(rest.starts_with(goodbye), "goodbye {goodbye:?}: {rest:?}");
        assert!(
            elapsed >= LOGIN_DEADLINE,
            "closed after {elapsed:?}: bytes kept it open until the deadline"
        );
    }
}

/// A connection that sends nothing before login is closed at the 2 s login idle limit,
/// long before the deadline, with the protocol's goodbye.
#[test]
fn idle_client_is_cut_off_at_the_login_idle_limit() {
    let d = short_login_limits();
    for (addr, goodbye) in [(d.imap.unwrap(), "* BYE"), (d.pop3.unwrap(), "-ERR")] {
        let (rest, elapsed) = until_closed(addr, None);
        assert!(rest.starts_with(goodbye), "goodbye {goodbye:?}: {rest:?}");
        assert!(
            elapsed >= LOGIN_IDLE && elapsed < LOGIN_DEADLINE,
            "closed after {elapsed:?}, not at the login idle limit"
        );
    }
}

/// Once logged in, neither login limit applies: pauses longer than the login idle limit
/// and a session longer than the login deadline are fine (the service's idle timeout
/// rules, 30 and 10 minutes here).
#[test]
fn logged_in_sessions_are_not_under_the_login_limits() {
    let d = short_login_limits();
    let imap = d.imap.unwrap();
    let pop3 = d.pop3.unwrap();
    let start = Instant::now();
    let mut i = connect(imap);
    assert!(read_line(&mut i).starts_with("* OK"));
    imap_login(&mut i, "a");
    let mut p = connect(pop3);
    assert!(read_line(&mut p).starts_with("+OK"));
    send(&mut p, format!("USER {USER}\r\nPASS {PASS}\r\n").as_bytes());
    assert!(read_line(&mut p).starts_with("+OK"));
    let l = read_line(&mut p);
    assert!(l.starts_with("+OK"), "{l}");
    let mut n = 0;
    while start.elapsed() < LOGIN_DEADLINE + LOGIN_IDLE {
        std::thread::sleep(LOGIN_IDLE + Duration::from_millis(500));
        n += 1;
        send(&mut i, format!("n{n} NOOP\r\n").as_bytes());
        let l = read_line(&mut i);
        assert!(
            l.starts_with(&format!("n{n} OK")),
            "IMAP after {:?}: {l:?}",
            start.elapsed()
        );
        send(&mut p, b"NOOP\r\n");
        let l = read_line(&mut p);
        assert!(
            l.starts_with("+OK"),
            "POP3 after {:?}: {l:?}",
            start.elapsed()
        );
    }
}
