//! Hostile input before login against the real daemon (ARCHITECTURE.md, "Limits"): what an
//! unauthenticated connection may cost in memory (a whole IMAP command is at most 8 KiB
//! before login) and in time (the login idle limit and the login deadline, both protocols).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
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
    assert!(l.starts_with("a BAD"), "the oversize command is refused: {l}");
    // The session goes on: a normal LOGIN works.
    send(&mut s, format!("b LOGIN {USER} {PASS}\r\n").as_bytes());
    let l = loop {
        let l = read_line(&mut s);
        if !l.starts_with('*') {
            break l;
        }
    };
    assert!(l.starts_with("b OK"), "{l}");
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
