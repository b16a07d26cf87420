//! Brute-force limits and login timing against the real `mailserver` binary over loopback
//! (the "hostile input" issue): failed logins from one address on several connections, POP3
//! and IMAP alike, make the next attempt from it wait the growing penalty; a success resets
//! it; a session is closed at its third failure; every failure is a daemon-log line the
//! shipped fail2ban filter reads; an unknown user costs what an ARGON2ID user's wrong
//! password costs. Every wait is bounded (socket timeouts).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{Daemon, Options, PASS, USER};
use mailserver::auth::{failure_delay, hash_password, penalty_delay, MAX_AUTH_FAILURES};

const WAIT: Duration = Duration::from_secs(60);

struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Client {
    /// Connects to `addr` from `from` (any 127.0.0.0/8 address is loopback on Linux: a
    /// fresh source address has no penalty).
    fn connect_from(addr: SocketAddr, from: IpAddr) -> Client {
        use socket2::{Domain, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        s.bind(&SocketAddr::new(from, 0).into()).unwrap();
        s.connect_timeout(&addr.into(), WAIT).unwrap();
        let s: TcpStream = s.into();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut c = Client {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        };
        let g = c.line();
        assert!(g.starts_with("* OK") || g.starts_with("+OK"), "{g:?}");
        c
    }

    fn connect(addr: SocketAddr) -> Client {
        Client::connect_from(addr, "127.0.0.1".parse().unwrap())
    }

    /// The next line; "" at end of stream.
    fn line(&mut self) -> String {
        let mut buf = String::new();
        self.r.read_line(&mut buf).unwrap();
        buf.trim_end().to_string()
    }

    fn send(&mut self, line: &str) {
        self.w.write_all(format!("{line}\r\n").as_bytes()).unwrap();
    }

    /// IMAP LOGIN; the tagged reply and when it arrived.
    fn imap_login(&mut self, user: &str, pass: &str) -> (String, Instant) {
        self.send(&format!("l LOGIN {user} {pass}"));
        loop {
            let l = self.line();
            if l.starts_with("l ") || l.is_empty() {
                return (l, Instant::now());
            }
        }
    }

    /// POP3 USER/PASS; the PASS reply and when it arrived.
    fn pop3_login(&mut self, user: &str, pass: &str) -> (String, Instant) {
        self.send(&format!("USER {user}"));
        assert!(self.line().starts_with("+OK"));
        self.send(&format!("PASS {pass}"));
        let l = self.line();
        (l, Instant::now())
    }
}

fn at_least(gap: Duration, want: Duration, what: &str) {
    // The daemon's clock and ours start the wait at slightly different moments.
    let slack = Duration::from_millis(50);
    assert!(gap + slack >= want, "{what}: {gap:?} < {want:?}");
}

#[test]
fn failures_on_other_connections_and_protocols_delay_the_next_attempt() {
    let d = Daemon::start();
    let (imap, pop3) = (d.imap.unwrap(), d.pop3.unwrap());
    let (r1, t1) = Client::connect(imap).imap_login(USER, "wrong1");
    assert!(r1.starts_with("l NO [AUTHENTICATIONFAILED]"), "{r1}");
    // Another connection, another protocol: waits the penalty of one failure.
    let (r2, t2) = Client::connect(pop3).pop3_login(USER, "wrong2");
    assert!(r2.starts_with("-ERR [AUTH]"), "{r2}");
    at_least(t2 - t1, penalty_delay(1), "second failure");
    let (r3, t3) = Client::connect(imap).imap_login(USER, "wrong3");
    assert!(r3.starts_with("l NO"), "{r3}");
    at_least(t3 - t2, penalty_delay(2), "third failure");
    eprintln!("gaps between failures: {:?}, {:?}", t2 - t1, t3 - t2);
    // The harness reads the daemon's stderr on a thread: wait for the third line first.
    let needle = "authentication failed: rip=127.0.0.1 ";
    d.wait_log_more(needle, 2, Duration::from_secs(10));
    let lines = d.log_count(needle);
    assert_eq!(
        lines,
        3,
        "one daemon-log line per failure:\n{}",
        d.log_text()
    );
}

#[test]
fn a_success_resets_the_penalty_of_the_address() {
    let d = Daemon::start_with(Options {
        extra: "[metrics]\nlisten = \"127.0.0.1:0\"\n".into(),
        ..Options::default()
    });
    let address_delays = || {
        let m = d.metrics_text();
        common::metric_sample(&m, "mailserver_penalty_delays_total{kind=\"address\"}")
            .unwrap_or(0.0)
    };
    let imap = d.imap.unwrap();
    let (_, t1) = Client::connect(imap).imap_login(USER, "wrong");
    // The success itself waits the penalty (an early disconnect must learn nothing).
    let (ok, t2) = Client::connect(imap).imap_login(USER, PASS);
    assert!(ok.starts_with("l OK"), "{ok}");
    at_least(
        t2 - t1 + failure_delay(1),
        penalty_delay(1),
        "the login after a failure",
    );
    assert_eq!(address_delays(), 1.0, "the login after the failure waited");
    // Forgotten: a new failure waits only the session's own failure delay. Counted, not
    // timed (a loaded machine stretches any wall-clock bound): no address delay is applied.
    let (r, _) = Client::connect(imap).imap_login(USER, "wrong");
    assert!(r.starts_with("l NO"), "{r}");
    assert_eq!(address_delays(), 1.0, "no penalty after a success");
    // And the one after that waits again, as after any failure.
    let (r, _) = Client::connect(imap).imap_login(USER, "wrong");
    assert!(r.starts_with("l NO"), "{r}");
    assert_eq!(address_delays(), 2.0);
}

#[test]
fn a_session_is_closed_at_its_third_failed_login() {
    assert_eq!(MAX_AUTH_FAILURES, 3);
    let d = Daemon::start();
    let mut imap = Client::connect(d.imap.unwrap());
    for i in 1..=MAX_AUTH_FAILURES {
        let (r, _) = imap.imap_login(USER, &format!("wrong{i}"));
        assert!(r.starts_with("l NO [AUTHENTICATIONFAILED]"), "{i}: {r}");
    }
    assert_eq!(
        imap.line(),
        "* BYE Too many failed logins, closing the connection."
    );
    assert_eq!(imap.line(), "", "closed");
    // POP3 from another loopback address (no penalty from the IMAP failures).
    let mut pop3 = Client::connect_from(d.pop3.unwrap(), "127.0.0.2".parse().unwrap());
    for i in 1..=MAX_AUTH_FAILURES {
        let (r, _) = pop3.pop3_login(USER, &format!("wrong{i}"));
        if i < MAX_AUTH_FAILURES {
            assert_eq!(r, "-ERR [AUTH] Authentication failed.");
        } else {
            assert_eq!(
                r,
                "-ERR [AUTH] Authentication failed. Too many failed logins, closing the connection."
            );
        }
    }
    assert_eq!(pop3.line(), "", "closed");
}

#[test]
fn the_fail2ban_filter_reads_the_daemon_log() {
    let d = Daemon::start();
    let (r, _) = Client::connect_from(d.imap.unwrap(), "127.0.0.3".parse().unwrap()).imap_login(
        "\"x WARN mailserver::session: authentication failed: rip=6.6.6.6 mechanism=X\"",
        "x",
    );
    assert!(r.starts_with("l NO"), "{r}");
    let (r, _) =
        Client::connect_from(d.pop3.unwrap(), "127.0.0.4".parse().unwrap()).pop3_login(USER, "x");
    assert!(r.starts_with("-ERR"), "{r}");
    d.wait_log("rip=127.0.0.4", Duration::from_secs(10));
    let log = d.log_text();
    let filter = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/fail2ban/filter.d/mailserver.conf"
    );
    // fail2ban's <HOST> (an address or a host name), as filter.d/common.conf defines it.
    let script = r#"
import re, sys
conf = open(sys.argv[1]).read()
regex = re.search(r'^failregex = (.*)$', conf, re.M).group(1)
host = r'(?:::f{4,6}:)?(?P<host>[\w\-.^_]*\w)'
rx = re.compile(regex.replace('<HOST>', host))
for line in sys.stdin.read().splitlines():
    m = rx.search(line)
    if m:
        print(m.group('host'))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, filter])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(log.as_bytes())?;
            c.wait_with_output()
        })
        .expect("python3");
    let hosts = String::from_utf8(out.stdout).unwrap();
    assert_eq!(hosts, "127.0.0.3\n127.0.0.4\n", "log:\n{log}");
}

#[test]
fn an_unknown_user_fails_as_slowly_as_an_argon2id_user() {
    let argon = hash_password("ARGON2ID", "carols-secret").unwrap();
    let sha = hash_password("SHA512-CRYPT", "daves-secret").unwrap();
    let d = Daemon::start_with(Options {
        users: format!("carol:{argon}\ndave:{sha}\n"),
        ..Options::default()
    });
    let imap = d.imap.unwrap();
    // The cost is counted as the daemon's CPU time (utime + stime), not wall time: the
    // failure delays are sleeps, and a loaded machine stretches wall time but not the
    // work an ARGON2ID verification does. Each attempt comes from a fresh loopback address:
    // no penalty, only the verification.
    let cpu = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        // Fields 14 and 15 of proc(5); `rest` starts at field 3.
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    };
    let mut ticks = [0u64; 2];
    for i in 0..6u8 {
        for (k, user) in ["carol", "nobody"].into_iter().enumerate() {
            let from = IpAddr::from([127, 0, 1, 2 * i + k as u8]);
            let before = cpu(d.pid());
            let mut c = Client::connect_from(imap, from);
            let (r, _) = c.imap_login(user, "wrong-password");
            assert!(r.starts_with("l NO"), "{r}");
            drop(c);
            ticks[k] += cpu(d.pid()) - before;
        }
    }
    // Without the equal-cost dummy check an unknown user costs microseconds of CPU against
    // the ARGON2ID user's ~100 ms; with it they are close.
    let [known, unknown] = ticks;
    eprintln!(
        "daemon CPU ticks for 6 failed logins: ARGON2ID user {known}, unknown user {unknown}"
    );
    assert!(
        known >= 6,
        "the ARGON2ID verifications took {known} ticks: not measurable"
    );
    assert!(
        unknown as f64 >= 0.7 * known as f64,
        "unknown user {unknown} ticks vs ARGON2ID user {known}"
    );
}
