//! Hostile input before login against the real daemon (ARCHITECTURE.md, "Limits"): what an
//! unauthenticated connection may cost in memory (a whole IMAP command is at most 8 KiB
//! before login) and in time (the login idle limit and the login deadline, both protocols).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::procstat::Meter;
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

/// `a LOGIN {8000+}\r\n`, then 8000 octets and ` {8000+}\r\n` `rounds` times: a command
/// that never ends, each literal under the pre-login cap.
fn endless_login(rounds: usize) -> impl Iterator<Item = Vec<u8>> {
    let chunk = [b"x".repeat(8000), b" {8000+}\r\n".to_vec()].concat();
    std::iter::once(b"a LOGIN {8000+}\r\n".to_vec()).chain(std::iter::repeat_n(chunk, rounds))
}

/// The end of [`endless_login`]: the last literal's data and the end of the line; the
/// command is refused (`BAD`).
fn end_login(s: &mut BufReader<TcpStream>) {
    send(s, &b"x".repeat(8000));
    send(s, b"\r\n");
    let l = read_line(s);
    assert!(
        l.starts_with("a BAD"),
        "the oversize command is refused: {l}"
    );
}

/// `a LOGIN {8000+}` followed by 8000 octets and ` {8000+}` again and again, never ending
/// the command: the whole unfinished command used to be buffered (only each literal was
/// capped), about 8 KB more per round (39 MB per connection in the issue). Now the command
/// is refused with `BAD` once it passes 8 KiB, the rest of it is skipped unbuffered, and
/// the session goes on.
///
/// Measured in a debug build: RSS +0.3 MB at peak, 0.05 s of CPU for the 32 MB. Bounds:
/// 4 MB of RSS growth (before the fix: +32 MB and more), 20 s of CPU.
#[test]
fn unfinished_login_with_endless_literals_is_bounded_in_memory() {
    const ROUNDS: usize = 4_000; // ~32 MB sent: the old code buffered all of it
    const RSS_BOUND_KIB: u64 = 4 * 1024;
    const CPU_BOUND: Duration = Duration::from_secs(20);
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
    let meter = Meter::start(d.pid());

    for (round, chunk) in endless_login(ROUNDS).enumerate() {
        send(&mut s, &chunk);
        if round % 100 == 99 {
            // The other connection keeps answering meanwhile.
            send(&mut other, format!("o{round} NOOP\r\n").as_bytes());
            let l = read_line(&mut other);
            assert!(l.starts_with(&format!("o{round} OK")), "{l}");
        }
    }
    end_login(&mut s);
    // The session goes on: a normal LOGIN works.
    imap_login(&mut s, "b");
    eprintln!("{ROUNDS} rounds of 8 KB: daemon {}", meter.report());
    let growth = meter.rss_growth_kib();
    assert!(
        growth < RSS_BOUND_KIB,
        "RSS grew by {growth} KiB during the attack (bound {RSS_BOUND_KIB} KiB)"
    );
    assert!(meter.cpu() < CPU_BOUND, "{:?} of CPU", meter.cpu());
}

/// The same attack over many connections at once: the daemon's memory does not grow with
/// what they send (each would have cost its whole unfinished command), and a logged-in
/// session keeps answering.
///
/// Measured in a debug build: 20 connections x 4 MB, RSS +0.4 MB at peak, 0.07 s of CPU.
/// Bounds: 16 MB of RSS growth (before the fix: 80 MB and more), 30 s of CPU.
#[test]
fn endless_logins_on_many_connections_are_bounded_in_memory() {
    const CONNECTIONS: usize = 20;
    const ROUNDS: usize = 500; // ~4 MB per connection
    const RSS_BOUND_KIB: u64 = 16 * 1024;
    const CPU_BOUND: Duration = Duration::from_secs(30);
    let d = Daemon::start();
    let addr = d.imap.unwrap();
    let mut other = connect(addr);
    assert!(read_line(&mut other).starts_with("* OK"));
    imap_login(&mut other, "o");
    let conns: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let mut s = connect(addr);
            assert!(read_line(&mut s).starts_with("* OK"));
            s
        })
        .collect();
    let meter = Meter::start(d.pid());
    let t = Instant::now();
    let attackers: Vec<_> = conns
        .into_iter()
        .map(|mut s| {
            std::thread::spawn(move || {
                for chunk in endless_login(ROUNDS) {
                    send(&mut s, &chunk);
                }
                end_login(&mut s);
            })
        })
        .collect();
    let mut answered = 0;
    while attackers.iter().any(|a| !a.is_finished()) {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "attack still running"
        );
        send(&mut other, format!("n{answered} NOOP\r\n").as_bytes());
        let l = read_line(&mut other);
        assert!(l.starts_with(&format!("n{answered} OK")), "{l}");
        answered += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    for a in attackers {
        a.join().unwrap();
    }
    eprintln!(
        "{CONNECTIONS} connections x {ROUNDS} rounds of 8 KB in {:?}: daemon {}; the \
         logged-in session answered {answered} NOOPs meanwhile",
        t.elapsed(),
        meter.report()
    );
    let growth = meter.rss_growth_kib();
    assert!(
        growth < RSS_BOUND_KIB,
        "RSS grew by {growth} KiB during the attack (bound {RSS_BOUND_KIB} KiB)"
    );
    assert!(meter.cpu() < CPU_BOUND, "{:?} of CPU", meter.cpu());
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
