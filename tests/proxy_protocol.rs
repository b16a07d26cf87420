//! PROXY protocol v1/v2 (README.md, "Behind HAProxy") against the real `mailserver` binary
//! over loopback: raw sockets send the headers a load balancer sends, and the protocol log's
//! `remote-endpoint` / `local-endpoint`, the per-address limit, the plaintext-login rule and
//! the failed-login penalty are checked to see the header's client, not the socket's peer.
//! Then a real HAProxy (Debian's `haproxy`, run from `deploy/haproxy/haproxy.cfg` with its
//! addresses moved to loopback ports) in front, with Python's imaplib and poplib behind it.
//!
//! Header addresses from the documentation ranges (192.0.2.0/24, 198.51.100.0/24,
//! 2001:db8::/32) are only written into headers; every socket is on 127.0.0.1. Every wait is
//! bounded (socket timeouts, `wait_for` deadlines); the only time checks are lower bounds
//! of the penalty the daemon promises.

mod common;
#[path = "common/logreader.rs"]
mod logreader;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::test_config::{LogValues, TestConfig, ANY_LOOPBACK_PORT};
use common::{haproxy_stat, Daemon, Options, PASS, USER};
use logreader::{all_records_of, Rec};
use mailserver::auth::penalty_delay;

/// Socket and wait bound: long enough for a loaded 2-core machine, short enough to fail.
const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// The daemon and its config
// ---------------------------------------------------------------------------------------

/// A daemon with PROXY listeners for IMAP and POP3 (plain and TLS) besides the usual ones,
/// both protocol logs at level 5 in `dir/logs/`, and `[proxy]` from `trusted`.
struct Proxied {
    d: Daemon,
    config: TestConfig,
}

fn config_for(dir: &Path, trusted: &str, limits: &str) -> TestConfig {
    let opts = Options {
        limits: limits.into(),
        extra: format!(
            "[metrics]\nlisten = \"127.0.0.1:0\"\n\n[proxy]\ntrusted_networks = [{trusted}]\n"
        ),
        ..Options::default()
    };
    let any = || vec![ANY_LOOPBACK_PORT.to_string()];
    TestConfig {
        imap_proxy_listen: any(),
        imap_proxy_tls_listen: any(),
        pop3_proxy_listen: any(),
        pop3_proxy_tls_listen: any(),
        imap_log: LogValues {
            level: Some(5),
            path: Some(dir.join("logs/imap")),
        },
        pop3_log: LogValues {
            level: Some(5),
            path: Some(dir.join("logs/pop3")),
        },
        ..common::daemon_config(dir, &opts)
    }
}

fn start(trusted: &str, limits: &str) -> Proxied {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users"),
        format!("{USER}:{{PLAIN}}{PASS}\n"),
    )
    .unwrap();
    let config = config_for(dir.path(), trusted, limits);
    let path = dir.path().join("mailserver.toml");
    config.write(&path);
    let d = Daemon::spawn(dir, path, &[]);
    assert!(
        d.imap_proxy.is_some() && d.pop3_proxy.is_some(),
        "{}",
        d.log_text()
    );
    assert!(d.imaps_proxy.is_some() && d.pop3s_proxy.is_some());
    Proxied { d, config }
}

fn loopback() -> Proxied {
    start("\"127.0.0.0/8\", \"::1/128\"", "")
}

impl Proxied {
    fn imap(&self) -> SocketAddr {
        self.d.imap_proxy.unwrap()
    }
    fn pop3(&self) -> SocketAddr {
        self.d.pop3_proxy.unwrap()
    }
    fn log_dir(&self, service: &str) -> PathBuf {
        self.d.dir.path().join("logs").join(service)
    }
    fn imap_records(&self) -> Vec<Rec> {
        all_records_of(&self.log_dir("imap"), "IMAP4")
    }
    fn pop3_records(&self) -> Vec<Rec> {
        all_records_of(&self.log_dir("pop3"), "POP3")
    }
}

/// The `+` (session start) records.
fn starts(recs: &[Rec]) -> Vec<&Rec> {
    recs.iter().filter(|r| r.event == '+').collect()
}

/// The one `+` record whose remote endpoint is `remote`; panics with the records if there
/// is not exactly one.
fn start_of<'a>(recs: &'a [Rec], remote: &str) -> &'a Rec {
    let found: Vec<&Rec> = starts(recs)
        .into_iter()
        .filter(|r| r.remote == remote)
        .collect();
    assert_eq!(found.len(), 1, "one session from {remote}: {recs:#?}");
    found[0]
}

// ---------------------------------------------------------------------------------------
// Headers, written by hand from proxy-protocol.txt (independent of the crate's parser)
// ---------------------------------------------------------------------------------------

const V2_SIG: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
/// PP2_TYPE_SSL with PP2_CLIENT_SSL set and verify 0 (proxy-protocol.txt §2.2.5).
const SSL_TLV: (u8, &[u8]) = (0x20, &[0x01, 0, 0, 0, 0]);
/// PP2_TYPE_AUTHORITY, as HAProxy sends the SNI.
const AUTHORITY_TLV: (u8, &[u8]) = (0x02, b"imap.example");

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn v1(src: &str, dst: &str) -> Vec<u8> {
    let (s, d) = (sa(src), sa(dst));
    let fam = if s.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {fam} {} {} {} {}\r\n",
        s.ip(),
        d.ip(),
        s.port(),
        d.port()
    )
    .into_bytes()
}

fn v2(src: &str, dst: &str, tlvs: &[(u8, &[u8])]) -> Vec<u8> {
    let (s, d) = (sa(src), sa(dst));
    let mut body = Vec::new();
    let fam = match (s, d) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            body.extend(s.ip().octets());
            body.extend(d.ip().octets());
            0x11
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => {
            body.extend(s.ip().octets());
            body.extend(d.ip().octets());
            0x21
        }
        _ => panic!("mixed families"),
    };
    body.extend(s.port().to_be_bytes());
    body.extend(d.port().to_be_bytes());
    for (t, v) in tlvs {
        body.push(*t);
        body.extend((v.len() as u16).to_be_bytes());
        body.extend(*v);
    }
    let mut out = V2_SIG.to_vec();
    out.extend([0x21, fam]);
    out.extend((body.len() as u16).to_be_bytes());
    out.extend(body);
    out
}

/// A v2 LOCAL header (HAProxy's health checks), with a TLV it may carry.
fn v2_local() -> Vec<u8> {
    let mut out = V2_SIG.to_vec();
    out.extend([0x20, 0x00, 0x00, 0x05, 0x04, 0x00, 0x02, 0xab, 0xcd]);
    out
}

// ---------------------------------------------------------------------------------------
// A raw client
// ---------------------------------------------------------------------------------------

struct Raw {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Raw {
    fn open(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect_timeout(&addr, WAIT).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.set_nodelay(true).unwrap();
        Raw {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        }
    }

    /// Connects and sends `header`.
    fn with(addr: SocketAddr, header: &[u8]) -> Raw {
        let mut c = Raw::open(addr);
        c.w.write_all(header).unwrap();
        c
    }

    /// The client socket's own address (what a LOCAL header leaves in the log).
    fn local(&self) -> SocketAddr {
        self.w.local_addr().unwrap()
    }

    fn send(&mut self, line: &str) {
        self.w.write_all(format!("{line}\r\n").as_bytes()).unwrap();
    }

    /// The next line; "" at end of stream (or a reset).
    fn line(&mut self) -> String {
        let mut buf = String::new();
        match self.r.read_line(&mut buf) {
            Ok(_) => buf.trim_end().to_string(),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => String::new(),
            Err(e) => panic!("read: {e}"),
        }
    }

    /// Reads until `tag` completes; returns every line.
    fn until(&mut self, tag: &str) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..1000 {
            let l = self.line();
            let done = l.is_empty() || l.starts_with(&format!("{tag} "));
            out.push(l);
            if done {
                return out;
            }
        }
        panic!("no completion for {tag}: {out:?}");
    }

    /// The server closed the connection without sending anything.
    fn closed_silently(mut self) -> bool {
        let mut rest = Vec::new();
        match self.r.read_to_end(&mut rest) {
            Ok(_) => rest.is_empty(),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => rest.is_empty(),
            Err(e) => panic!("read: {e}"),
        }
    }

    /// IMAP: greeting, LOGOUT, end of stream (the session's records are then on disk).
    fn imap_logout(mut self) {
        let g = self.line();
        assert!(g.starts_with("* OK"), "{g:?}");
        self.send("z LOGOUT");
        let lines = self.until("z");
        assert!(lines.last().unwrap().starts_with("z OK"), "{lines:?}");
        assert!(self.closed_silently());
    }

    /// POP3: greeting, QUIT, end of stream.
    fn pop3_quit(mut self) {
        let g = self.line();
        assert!(g.starts_with("+OK"), "{g:?}");
        self.send("QUIT");
        assert!(self.line().starts_with("+OK"));
        assert!(self.closed_silently());
    }
}

// ---------------------------------------------------------------------------------------
// The header's addresses are the session's
// ---------------------------------------------------------------------------------------

#[test]
fn v1_and_v2_headers_with_ipv4_and_ipv6_are_the_logged_endpoints() {
    let p = loopback();
    let cases = [
        v1("192.0.2.7:40001", "203.0.113.1:143"),
        v1("[2001:db8::7]:40002", "[2001:db8::1]:143"),
        v2("198.51.100.9:40003", "203.0.113.1:143", &[AUTHORITY_TLV]),
        v2("[2001:db8::9]:40004", "[2001:db8::1]:143", &[]),
    ];
    for h in &cases {
        Raw::with(p.imap(), h).imap_logout();
    }
    let recs = p.imap_records();
    for (remote, local) in [
        ("192.0.2.7:40001", "203.0.113.1:143"),
        ("[2001:db8::7]:40002", "[2001:db8::1]:143"),
        ("198.51.100.9:40003", "203.0.113.1:143"),
        ("[2001:db8::9]:40004", "[2001:db8::1]:143"),
    ] {
        let plus = start_of(&recs, remote);
        assert_eq!(plus.local, local, "{plus:?}");
        // Every record of that session carries the header's endpoints.
        let session: Vec<&Rec> = recs.iter().filter(|r| r.id == plus.id).collect();
        assert!(session.len() > 2, "{session:?}");
        assert!(session
            .iter()
            .all(|r| r.remote == remote && r.local == local));
        assert!(session.iter().any(|r| r.event == '-'));
        // The proxy's own address is noted once, as an information record.
        let via: Vec<&&Rec> = session.iter().filter(|r| r.event == '*').collect();
        assert!(
            via[0].text().starts_with("PROXY header from 127.0.0.1:"),
            "{via:?}"
        );
        assert!(!via[0].text().contains("TLS"), "{via:?}");
    }
    assert!(
        recs.iter().all(|r| !r.remote.starts_with("127.0.0.1:")),
        "{recs:#?}"
    );
    // POP3 too, v1 and v2.
    Raw::with(p.pop3(), &v1("192.0.2.8:40005", "203.0.113.1:110")).pop3_quit();
    Raw::with(
        p.pop3(),
        &v2("[2001:db8::8]:40006", "[2001:db8::1]:110", &[]),
    )
    .pop3_quit();
    let recs = p.pop3_records();
    assert_eq!(start_of(&recs, "192.0.2.8:40005").local, "203.0.113.1:110");
    assert_eq!(
        start_of(&recs, "[2001:db8::8]:40006").local,
        "[2001:db8::1]:110"
    );
}

#[test]
fn local_and_unknown_keep_the_socket_addresses() {
    let p = loopback();
    let c = Raw::with(p.imap(), &v2_local());
    let me = c.local();
    c.imap_logout();
    let c = Raw::with(p.pop3(), b"PROXY UNKNOWN\r\n");
    let me_pop3 = c.local();
    c.pop3_quit();
    let plus = start_of(&p.imap_records(), &me.to_string()).clone();
    assert_eq!(plus.local, p.imap().to_string());
    let plus = start_of(&p.pop3_records(), &me_pop3.to_string()).clone();
    assert_eq!(plus.local, p.pop3().to_string());
}

#[test]
fn a_header_split_into_one_octet_writes_is_read_whole() {
    let p = loopback();
    let h = v2(
        "192.0.2.77:40077",
        "203.0.113.1:143",
        &[AUTHORITY_TLV, SSL_TLV],
    );
    let mut c = Raw::open(p.imap());
    for b in &h {
        c.w.write_all(std::slice::from_ref(b)).unwrap();
        // Separate segments (nodelay is on); the pause only spreads them out.
        std::thread::sleep(Duration::from_millis(2));
    }
    // The first protocol octets right behind the header are not eaten by the reader.
    let g = c.line();
    assert!(g.starts_with("* OK"), "{g:?}");
    c.send("a CAPABILITY");
    let caps = c.until("a");
    assert!(caps.last().unwrap().starts_with("a OK"), "{caps:?}");
    c.imap_logout_after_greeting();
    let recs = p.imap_records();
    let plus = start_of(&recs, "192.0.2.77:40077");
    let note = recs
        .iter()
        .find(|r| r.id == plus.id && r.event == '*')
        .unwrap();
    assert!(
        note.text().ends_with(", client TLS at the proxy"),
        "{note:?}"
    );
}

impl Raw {
    fn imap_logout_after_greeting(mut self) {
        self.send("z LOGOUT");
        let lines = self.until("z");
        assert!(lines.last().unwrap().starts_with("z OK"), "{lines:?}");
        assert!(self.closed_silently());
    }
}

// ---------------------------------------------------------------------------------------
// Bad headers, and headers where none is expected
// ---------------------------------------------------------------------------------------

#[test]
fn garbage_oversized_and_slow_headers_close_the_connection_and_the_daemon_goes_on() {
    let p = loopback();
    // A client that talks IMAP at once, with a password in it.
    let c = Raw::with(p.imap(), b"a LOGIN alice wonderland\r\n");
    assert!(c.closed_silently());
    // v2 declaring 60,000 octets of TLVs.
    let mut big = v2("192.0.2.7:1", "203.0.113.1:143", &[]);
    big[14..16].copy_from_slice(&60_000u16.to_be_bytes());
    let c = Raw::with(p.imap(), &big);
    assert!(c.closed_silently());
    // v1 that never ends its line.
    let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 200]].concat();
    assert!(Raw::with(p.pop3(), &long).closed_silently());
    // Half a header, then nothing: closed at the header deadline (5 s), not the login one.
    let t = Instant::now();
    let c = Raw::with(p.imap(), b"PROXY TCP4 192.0");
    assert!(c.closed_silently());
    assert!(t.elapsed() >= Duration::from_secs(4), "{:?}", t.elapsed());
    // Each is one daemon-log line, and the password never reaches the log.
    p.d.wait_log("no complete PROXY header within 5 s", WAIT);
    let text = p.d.log_text();
    assert_eq!(text.matches("no PROXY header").count(), 1, "{text}");
    assert_eq!(text.matches("PROXY header too long").count(), 2, "{text}");
    assert!(!text.contains("wonderland"), "{text}");
    let m = p.d.metrics_text();
    let key = |svc: &str| {
        format!("mailserver_connections_refused_total{{service=\"{svc}\",reason=\"proxy_header\"}}")
    };
    assert_eq!(common::metric_sample(&m, &key("imap")), Some(3.0), "{m}");
    assert_eq!(common::metric_sample(&m, &key("pop3")), Some(1.0), "{m}");
    // Nothing was logged as a session, and the daemon still serves.
    assert!(starts(&p.imap_records()).is_empty());
    Raw::with(p.imap(), &v1("192.0.2.9:40009", "203.0.113.1:143")).imap_logout();
    start_of(&p.imap_records(), "192.0.2.9:40009");
}

#[test]
fn a_header_on_a_listener_without_the_mark_is_a_protocol_line() {
    let p = loopback();
    let mut c = Raw::open(p.d.imap.unwrap());
    assert!(c.line().starts_with("* OK"));
    c.w.write_all(&v1("192.0.2.7:40001", "203.0.113.1:143"))
        .unwrap();
    let reply = c.line();
    assert!(reply.starts_with("PROXY BAD"), "{reply:?}");
    let me = c.local();
    c.imap_logout_after_greeting();
    let recs = p.imap_records();
    let plus = start_of(&recs, &me.to_string());
    assert!(recs
        .iter()
        .filter(|r| r.id == plus.id)
        .any(|r| r.text().starts_with("PROXY TCP4")));
    let mut c = Raw::open(p.d.pop3.unwrap());
    assert!(c.line().starts_with("+OK"));
    c.w.write_all(&v1("192.0.2.7:40001", "203.0.113.1:110"))
        .unwrap();
    let reply = c.line();
    assert!(reply.starts_with("-ERR"), "{reply:?}");
    c.send("QUIT");
    assert!(c.line().starts_with("+OK"));
}

// ---------------------------------------------------------------------------------------
// trusted_networks: refused, never guessed; hot-reloaded; listeners restart-only
// ---------------------------------------------------------------------------------------

#[test]
fn untrusted_sources_are_refused_and_trusted_networks_reload() {
    let mut p = start("\"10.0.0.0/8\", \"::1/128\"", "");
    let c = Raw::with(p.imap(), &v1("192.0.2.7:40001", "203.0.113.1:143"));
    assert!(c.closed_silently(), "no greeting for an untrusted source");
    let c = Raw::with(p.pop3(), &v2_local());
    assert!(c.closed_silently());
    let needle = "not in proxy.trusted_networks";
    p.d.wait_log_more(needle, 1, WAIT);
    assert_eq!(
        p.d.log_count(needle),
        2,
        "one line per connection\n{}",
        p.d.log_text()
    );
    assert!(starts(&p.imap_records()).is_empty());
    let m = p.d.metrics_text();
    for svc in ["imap", "pop3"] {
        let key = format!(
            "mailserver_connections_refused_total{{service=\"{svc}\",reason=\"untrusted_proxy\"}}"
        );
        assert_eq!(common::metric_sample(&m, &key), Some(1.0), "{key}\n{m}");
    }
    // The plain listeners are not affected.
    Raw::open(p.d.imap.unwrap()).imap_logout();

    // Reload: loopback trusted now (applies to the next connection); a changed PROXY
    // listener list needs a restart, so the running one stays.
    let old_imap = p.imap();
    p.config.extra_toml = p
        .config
        .extra_toml
        .replace("[\"10.0.0.0/8\", \"::1/128\"]", "[\"127.0.0.1/32\"]");
    p.config.imap_proxy_listen = vec![ANY_LOOPBACK_PORT.into(), ANY_LOOPBACK_PORT.into()];
    p.config.write(&p.d.config_path);
    p.d.wait_log(
        "proxy.trusted_networks: [\"10.0.0.0/8\", \"::1/128\"] -> [\"127.0.0.1/32\"]",
        WAIT,
    );
    p.d.wait_log("imap.proxy_listen", WAIT);
    let text = p.d.log_text();
    assert!(
        text.contains("needs a restart; the running value stays"),
        "{text}"
    );
    Raw::with(old_imap, &v1("192.0.2.7:40001", "203.0.113.1:143")).imap_logout();
    start_of(&p.imap_records(), "192.0.2.7:40001");
    assert!(p.d.stop().success());
}

// ---------------------------------------------------------------------------------------
// What sees the header's client: per-address limit, loopback rule, penalty
// ---------------------------------------------------------------------------------------

#[test]
fn the_per_address_limit_counts_the_header_address() {
    let p = start("\"127.0.0.0/8\"", "max_connections_per_ip = 1");
    let mut a = Raw::with(p.imap(), &v1("192.0.2.1:1", "203.0.113.1:143"));
    let mut b = Raw::with(p.imap(), &v2("192.0.2.2:2", "203.0.113.1:143", &[]));
    assert!(a.line().starts_with("* OK"));
    assert!(
        b.line().starts_with("* OK"),
        "another client behind the same proxy"
    );
    // A second connection of the first client is over its limit.
    let mut a2 = Raw::with(p.imap(), &v1("192.0.2.1:3", "203.0.113.1:143"));
    let l = a2.line();
    assert!(
        l.starts_with("* BYE [UNAVAILABLE] Too many connections"),
        "{l:?}"
    );
    p.d.wait_log(
        "192.0.2.1:3: connection refused, too many connections (per_ip)",
        WAIT,
    );
    a.imap_logout_after_greeting();
    b.imap_logout_after_greeting();
}

#[test]
fn connections_waiting_for_their_header_count_against_max_connections() {
    let p = start("\"127.0.0.0/8\"", "max_connections = 3");
    // Three silent connections from the trusted proxy: each holds a place while it waits.
    let silent: Vec<Raw> = (0..3).map(|_| Raw::open(p.imap())).collect();
    let mut over = Raw::open(p.imap());
    let l = over.line();
    assert!(
        l.starts_with("* BYE [UNAVAILABLE] Too many connections"),
        "{l:?}"
    );
    p.d.wait_log(
        "refused before its PROXY header, too many connections (total)",
        WAIT,
    );
    let m = p.d.metrics_text();
    let key = "mailserver_connections_refused_total{service=\"imap\",reason=\"total\"}";
    assert_eq!(common::metric_sample(&m, key), Some(1.0), "{m}");
    // One gives up: its place is free again, and a client with a header gets in.
    drop(silent.into_iter().next());
    p.d.wait_log(
        "closed: connection closed before the end of the PROXY header",
        WAIT,
    );
    let mut ok = Raw::with(p.imap(), &v1("192.0.2.5:5", "203.0.113.1:143"));
    let l = ok.line();
    assert!(l.starts_with("* OK"), "{l:?}");
    ok.imap_logout_after_greeting();
}

#[test]
fn plaintext_login_needs_loopback_header_or_the_ssl_tlv() {
    let p = loopback();
    // A client from 192.0.2.7 behind a proxy on loopback is not a loopback client.
    let mut c = Raw::with(p.imap(), &v2("192.0.2.7:40001", "203.0.113.1:143", &[]));
    assert!(c.line().starts_with("* OK"));
    c.send("a CAPABILITY");
    let caps = c.until("a").join("\n");
    assert!(caps.contains("LOGINDISABLED"), "{caps}");
    c.send(&format!("b LOGIN {USER} {PASS}"));
    let r = c.until("b");
    assert!(
        r.last().unwrap().starts_with("b NO [PRIVACYREQUIRED]"),
        "{r:?}"
    );
    c.imap_logout_after_greeting();
    // The same client that reached the proxy over TLS (SSL TLV).
    let h = v2(
        "192.0.2.7:40002",
        "203.0.113.1:143",
        &[AUTHORITY_TLV, SSL_TLV],
    );
    let mut c = Raw::with(p.imap(), &h);
    assert!(c.line().starts_with("* OK"));
    c.send("a CAPABILITY");
    let caps = c.until("a").join("\n");
    assert!(
        !caps.contains("LOGINDISABLED") && caps.contains("AUTH=PLAIN"),
        "{caps}"
    );
    c.send(&format!("b LOGIN {USER} {PASS}"));
    let r = c.until("b");
    assert!(r.last().unwrap().starts_with("b OK"), "{r:?}");
    c.imap_logout_after_greeting();
    // POP3 alike.
    let mut c = Raw::with(p.pop3(), &v1("192.0.2.7:40003", "203.0.113.1:110"));
    assert!(c.line().starts_with("+OK"));
    c.send(&format!("USER {USER}"));
    assert!(c.line().starts_with("-ERR"));
    c.send("QUIT");
    assert!(c.line().starts_with("+OK"));
    let mut c = Raw::with(
        p.pop3(),
        &v2("192.0.2.7:40004", "203.0.113.1:110", &[SSL_TLV]),
    );
    assert!(c.line().starts_with("+OK"));
    c.send(&format!("USER {USER}"));
    assert!(c.line().starts_with("+OK"));
    c.send(&format!("PASS {PASS}"));
    let l = c.line();
    assert!(l.starts_with("+OK"), "{l:?}");
    c.send("QUIT");
    assert!(c.line().starts_with("+OK"));
    // A loopback client behind the proxy may log in without TLS.
    let mut c = Raw::with(p.imap(), &v1("127.0.0.9:40005", "127.0.0.1:143"));
    assert!(c.line().starts_with("* OK"));
    c.send(&format!("b LOGIN {USER} {PASS}"));
    let r = c.until("b");
    assert!(r.last().unwrap().starts_with("b OK"), "{r:?}");
    c.imap_logout_after_greeting();
}

#[test]
fn the_failed_login_penalty_is_keyed_by_the_header_address() {
    let p = start("\"127.0.0.0/8\"", "");
    let hdr = |port: u16| v2(&format!("127.0.0.50:{port}"), "127.0.0.1:143", &[]);
    let login = |c: &mut Raw, pass: &str| {
        assert!(c.line().starts_with("* OK"));
        c.send(&format!("l LOGIN {USER} {pass}"));
        let r = c.until("l");
        (r.last().unwrap().clone(), Instant::now())
    };
    let mut c1 = Raw::with(p.imap(), &hdr(1));
    let (r1, t1) = login(&mut c1, "wrong1");
    assert!(r1.starts_with("l NO [AUTHENTICATIONFAILED]"), "{r1}");
    // Another connection through the proxy, same client address: waits the penalty.
    let mut c2 = Raw::with(p.imap(), &hdr(2));
    let (r2, t2) = login(&mut c2, "wrong2");
    assert!(r2.starts_with("l NO"), "{r2}");
    let slack = Duration::from_millis(50);
    assert!(t2 - t1 + slack >= penalty_delay(1), "{:?}", t2 - t1);
    // The daemon log's failure lines (what fail2ban reads) name the client, not the proxy.
    let needle = "authentication failed: rip=127.0.0.50 ";
    p.d.wait_log_more(needle, 1, WAIT);
    assert_eq!(p.d.log_count("authentication failed: rip=127.0.0.1 "), 0);
    c1.imap_logout_after_greeting();
    c2.imap_logout_after_greeting();
}

// ---------------------------------------------------------------------------------------
// Implicit TLS after the header
// ---------------------------------------------------------------------------------------

#[test]
fn the_header_comes_before_the_tls_handshake_on_proxy_tls_listeners() {
    let p = loopback();
    let h = v2("192.0.2.33:40033", "203.0.113.1:993", &[]);
    let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
    let out = common::python(
        r#"
import socket, ssl, sys
port, hdr, user, pw = int(sys.argv[1]), bytes.fromhex(sys.argv[2]), sys.argv[3], sys.argv[4]
s = socket.create_connection(("127.0.0.1", port), timeout=30)
s.sendall(hdr)
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
t = ctx.wrap_socket(s)
f = t.makefile("rb")
print(f.readline().decode().strip())
t.sendall(("a LOGIN %s %s\r\n" % (user, pw)).encode())
while True:
    l = f.readline().decode().strip()
    if l.startswith("a ") or not l:
        print(l)
        break
t.sendall(b"z LOGOUT\r\n")
while True:
    l = f.readline().decode().strip()
    if l.startswith("z ") or not l:
        break
"#,
        &[
            &p.d.imaps_proxy.unwrap().port().to_string(),
            &hex,
            USER,
            PASS,
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("* OK"), "{out}");
    // TLS to us, so a non-loopback client may log in with a password.
    assert!(lines[1].starts_with("a OK"), "{out}");
    common::wait::wait_for("the session's records", WAIT, || {
        let recs = p.imap_records();
        match starts(&recs).iter().any(|r| r.remote == "192.0.2.33:40033") {
            true => Ok(()),
            false => Err(format!("{recs:#?}")),
        }
    });
}

// ---------------------------------------------------------------------------------------
// A real HAProxy in front
// ---------------------------------------------------------------------------------------

/// HAProxy run in the foreground (`-db`) from a private config; killed when dropped.
struct Haproxy {
    child: Child,
    stats: PathBuf,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `text` with `from` replaced by `to`, which must occur exactly `n` times (so a change to
/// the shipped file that this test no longer follows fails here, not somewhere later).
fn swap(text: &str, from: &str, to: &str, n: usize) -> String {
    assert_eq!(
        text.matches(from).count(),
        n,
        "{from:?} in deploy/haproxy/haproxy.cfg"
    );
    text.replace(from, to)
}

/// `deploy/haproxy/haproxy.cfg` for this test: a `global` without daemon, chroot or user
/// (stats on a socket in `dir`), frontends on free loopback ports, one server per backend
/// (the daemon's PROXY listeners). Returns the config and the frontends (imap, imaps, pop3,
/// pop3s).
fn haproxy_config(p: &Proxied, dir: &Path) -> (String, [u16; 4]) {
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/haproxy/haproxy.cfg"),
    )
    .unwrap();
    let global_at = shipped.find("\nglobal\n").expect("a global section") + 1;
    let defaults_at = shipped.find("\ndefaults\n").expect("a defaults section") + 1;
    let stats = dir.join("stats.sock");
    let global = format!(
        "global\n    log stdout format raw local0 info\n    stats socket {} mode 600 level admin\n\n",
        stats.display()
    );
    let mut cfg = format!(
        "{}{global}{}",
        &shipped[..global_at],
        &shipped[defaults_at..]
    );
    let fronts = [
        common::free_port(),
        common::free_port(),
        common::free_port(),
        common::free_port(),
    ];
    for (bind, port) in ["bind :143\n", "bind :993\n", "bind :110\n", "bind :995\n"]
        .iter()
        .zip(fronts)
    {
        cfg = swap(&cfg, bind, &format!("bind 127.0.0.1:{port}\n"), 1);
    }
    let d = &p.d;
    for (node_port, ours) in [
        ("10143", d.imap_proxy.unwrap()),
        ("10993", d.imaps_proxy.unwrap()),
        ("10110", d.pop3_proxy.unwrap()),
        ("10995", d.pop3s_proxy.unwrap()),
    ] {
        cfg = swap(
            &cfg,
            &format!("10.0.0.11:{node_port}\n"),
            &format!("{ours}\n"),
            1,
        );
        cfg = swap(
            &cfg,
            &format!("    server mail2 10.0.0.12:{node_port}\n"),
            "",
            1,
        );
    }
    cfg = swap(
        &cfg,
        "check port 10143 ",
        &format!("check port {} ", d.imap_proxy.unwrap().port()),
        1,
    );
    cfg = swap(
        &cfg,
        "check port 10110 ",
        &format!("check port {} ", d.pop3_proxy.unwrap().port()),
        1,
    );
    (cfg, fronts)
}

#[test]
fn through_a_real_haproxy_clients_log_in_and_the_log_shows_their_ports() {
    if !common::have("haproxy") {
        common::skipped("haproxy is not installed");
        return;
    }
    let p = loopback();
    common::deliver(
        &p.d.data_dir(),
        USER,
        1,
        "Subject: via haproxy\n\nhello through HAProxy\n",
    );
    let hdir = tempfile::tempdir().unwrap();
    let (cfg, [imap, imaps, pop3, pop3s]) = haproxy_config(&p, hdir.path());
    let cfg_path = hdir.path().join("haproxy.cfg");
    std::fs::write(&cfg_path, &cfg).unwrap();
    let check = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&cfg_path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}\n{cfg}",
        String::from_utf8_lossy(&check.stderr)
    );
    let log = hdir.path().join("haproxy.log");
    let child = Command::new("haproxy")
        .arg("-f")
        .arg(&cfg_path)
        .arg("-db")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::from(
            std::fs::File::create(hdir.path().join("stderr")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let h = Haproxy {
        child,
        stats: hdir.path().join("stats.sock"),
    };

    // Health checks (check-send-proxy: a LOCAL header) pass: every backend's server is UP
    // with a layer-7 check (the expected greeting came back).
    let rows = common::wait::wait_for("HAProxy's servers UP after a passed check", WAIT, || {
        let rows = haproxy_stat(&h.stats)?;
        let servers: Vec<_> = rows.iter().filter(|r| r.1 == "mail1").collect();
        let up = servers.len() == 4 && servers.iter().all(|r| r.2 == "UP" && r.3 == "L7OK");
        if up {
            Ok(rows)
        } else {
            Err(format!("{rows:?}"))
        }
    });
    let backends: Vec<&str> = rows
        .iter()
        .filter(|r| r.1 == "BACKEND")
        .map(|r| r.0.as_str())
        .collect();
    assert_eq!(backends.len(), 4, "{rows:?}");
    assert!(
        rows.iter()
            .filter(|r| r.1 == "BACKEND")
            .all(|r| r.2 == "UP"),
        "{rows:?}"
    );

    // Python clients through HAProxy: each prints its own socket's local port.
    let out = common::python(
        r#"
import imaplib, poplib, ssl, sys
imap, imaps, pop3, pop3s, user, pw = sys.argv[1:7]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
for port, tls in ((imap, False), (imaps, True)):
    c = imaplib.IMAP4_SSL("127.0.0.1", int(port), ssl_context=ctx, timeout=30) if tls \
        else imaplib.IMAP4("127.0.0.1", int(port), timeout=30)
    me = c.sock.getsockname()[1]
    c.login(user, pw)
    typ, data = c.select("INBOX")
    assert typ == "OK" and data[0] == b"1", data
    typ, data = c.fetch("1", "(BODY.PEEK[])")
    assert typ == "OK" and b"hello through HAProxy" in data[0][1], data
    c.logout()
    print("imaps" if tls else "imap", me)
for port, tls in ((pop3, False), (pop3s, True)):
    c = poplib.POP3_SSL("127.0.0.1", int(port), context=ctx, timeout=30) if tls \
        else poplib.POP3("127.0.0.1", int(port), timeout=30)
    me = c.sock.getsockname()[1]
    c.user(user)
    c.pass_(pw)
    resp, lines, octets = c.retr(1)
    assert b"hello through HAProxy" in b"\n".join(lines), lines
    c.quit()
    print("pop3s" if tls else "pop3", me)
"#,
        &[
            &imap.to_string(),
            &imaps.to_string(),
            &pop3.to_string(),
            &pop3s.to_string(),
            USER,
            PASS,
        ],
    );
    let port_of = |what: &str| -> u16 {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{what} ")))
            .unwrap_or_else(|| panic!("{what} in {out}"))
            .parse()
            .unwrap()
    };
    // The `+` record of each client's session shows 127.0.0.1 with the client's own
    // ephemeral port: it came from the header (HAProxy's socket to us has another port),
    // and the local endpoint is HAProxy's frontend, the address the client connected to.
    for (what, front, service) in [
        ("imap", imap, "imap"),
        ("imaps", imaps, "imap"),
        ("pop3", pop3, "pop3"),
        ("pop3s", pop3s, "pop3"),
    ] {
        let remote = format!("127.0.0.1:{}", port_of(what));
        common::wait::wait_for(&format!("the {what} session from {remote}"), WAIT, || {
            let recs = match service {
                "imap" => p.imap_records(),
                _ => p.pop3_records(),
            };
            let found: Vec<&Rec> = starts(&recs)
                .into_iter()
                .filter(|r| r.remote == remote)
                .collect();
            match found.as_slice() {
                [one] if one.local == format!("127.0.0.1:{front}") => Ok(()),
                _ => Err(format!("{found:?}\nall: {:?}", starts(&recs))),
            }
        });
    }
    // The health checks' sessions (LOCAL) keep HAProxy's socket addresses: their local
    // endpoint is our listener, not a frontend.
    let recs = p.imap_records();
    let ours = p.imap().to_string();
    assert!(starts(&recs).iter().any(|r| r.local == ours), "{recs:#?}");
    drop(h);
}
