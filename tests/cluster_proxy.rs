//! The cluster's login proxy and internal listeners (README.md, "Cluster"), end to end: two
//! real daemons (node1 on 127.0.0.11, node2 on 127.0.0.12) on one shared `data_dir`, no NATS
//! (both live, static rendezvous order), Python's imaplib/poplib and raw sockets as clients.
//!
//! Covered: IMAP LOGIN / AUTHENTICATE PLAIN / IMAPS / STARTTLS at the non-owner relayed to
//! the owner (SELECT, APPEND, FETCH), pipelined commands after LOGIN, COMPRESS=DEFLATE
//! through the relay, POP3 RETR and DELE+QUIT through it and a dropped proxied POP3 session
//! applying no DELE, both protocol logs joined by the front's session id and the client's
//! own address, `who` at the front, the owner down (the front serves locally), the internal
//! listener's refusals (a non-node source, no PROXY header, a wrong secret) and the master
//! login refused on public listeners exactly as a wrong password, and session ids that never
//! collide between the nodes. Every wait is bounded; nothing asserts on timing.

mod common;
#[path = "common/logreader.rs"]
mod logreader;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::cluster::{users_owned_by, Cluster, SECRET, USER_PASS};
use logreader::{all_records_of, Rec};

const WAIT: Duration = Duration::from_secs(30);

/// A cluster with two users owned by each node: `(cluster, [node1's users], [node2's users])`.
fn start(level: u32) -> (Cluster, Vec<String>, Vec<String>) {
    let (u1, u2) = (users_owned_by(0, 2), users_owned_by(1, 2));
    let users: Vec<(String, String)> = u1
        .iter()
        .chain(&u2)
        .map(|u| (u.clone(), USER_PASS.to_string()))
        .collect();
    (Cluster::start(&users, level), u1, u2)
}

/// The records of `service` in node `i`'s protocol log (waits, bounded, until `pred` holds:
/// the writer flushes within a second).
fn records_until(
    c: &Cluster,
    i: usize,
    service: &str,
    what: &str,
    pred: impl Fn(&[Rec]) -> bool,
) -> Vec<Rec> {
    common::wait::wait_for(what, WAIT, || {
        let recs = all_records_of(&c.logs[i], service);
        if pred(&recs) {
            Ok(recs)
        } else {
            Err(format!("{} records", recs.len()))
        }
    })
}

fn has(recs: &[Rec], text: &str) -> bool {
    recs.iter().any(|r| r.text().contains(text))
}

/// The session id of the first record whose data contains `text`.
fn id_of(recs: &[Rec], text: &str) -> String {
    recs.iter()
        .find(|r| r.text().contains(text))
        .unwrap()
        .id
        .clone()
}

/// Checks that node 0 (front) proxied a session to node 1 and node 1 logged the client's
/// `client` address with the front's session id; returns the front's session id.
fn check_joined_logs(c: &Cluster, service: &str, client: &str) -> String {
    let front = records_until(c, 0, service, "the front's proxy record and its end", |r| {
        has(r, "proxied to node2") && r.iter().any(|x| x.event == '-')
    });
    let fid = id_of(&front, "proxied to node2");
    assert!(
        front.iter().any(|r| r.id == fid && r.event == '-'),
        "the front logs its session's end"
    );
    let needle = format!("proxied from node1 session {fid}");
    let owner = records_until(c, 1, service, "the owner's record naming the front", |r| {
        has(r, &needle)
    });
    let oid = id_of(&owner, &needle);
    let start = owner
        .iter()
        .find(|r| r.id == oid && r.event == '+')
        .unwrap();
    assert_eq!(
        start.remote, client,
        "the owner logs the client's own address"
    );
    assert_ne!(oid, fid, "each node has its own session id");
    fid
}

// ---------------------------------------------------------------------------------------
// IMAP
// ---------------------------------------------------------------------------------------

/// imaplib at node1 as a user node2 owns: LOGIN (or AUTHENTICATE PLAIN), SELECT, APPEND,
/// FETCH; prints the client's own address first.
const IMAP_SCRIPT: &str = r#"
import imaplib, ssl, sys
host, port, mode, user, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
if mode == "imaps":
    M = imaplib.IMAP4_SSL(host, port, ssl_context=ctx, timeout=30)
else:
    M = imaplib.IMAP4(host, port, timeout=30)
    if mode == "starttls":
        M.starttls(ssl_context=ctx)
print("%s:%d" % M.sock.getsockname()[:2])
if mode == "plain":
    typ, data = M.authenticate("PLAIN", lambda _: ("\0%s\0%s" % (user, pw)).encode())
else:
    typ, data = M.login(user, pw)
print(typ, "IMAP4REV1" in M.capabilities or "IMAP4rev1" in M.capabilities)
typ, data = M.append("INBOX", None, None, b"Subject: via the proxy\r\n\r\nhello\r\n")
print(typ)
typ, data = M.select("INBOX")
print(typ, data[0].decode())
typ, data = M.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
print(typ, b"via the proxy" in b"".join(x[1] for x in data if isinstance(x, tuple)))
print(M.logout()[0])
"#;

fn imap_through_front(c: &Cluster, mode: &str, user: &str) -> Vec<String> {
    let d = c.node(0);
    let addr = if mode == "imaps" {
        d.imaps.unwrap()
    } else {
        d.imap.unwrap()
    };
    let out = common::python(
        IMAP_SCRIPT,
        &[
            &addr.ip().to_string(),
            &addr.port().to_string(),
            mode,
            user,
            USER_PASS,
        ],
    );
    out.lines().map(str::to_string).collect()
}

#[test]
fn imap_logins_at_the_non_owner_are_relayed_to_the_owner_and_both_logs_join() {
    let (c, _, u2) = start(4);
    let out = imap_through_front(&c, "login", &u2[0]);
    assert_eq!(
        out[1..],
        ["OK True", "OK", "OK 1", "OK True", "BYE"],
        "{out:?}"
    );
    let fid = check_joined_logs(&c, "IMAP4", &out[0]);
    // The message is in the shared store, in the user's INBOX.
    let new = c.data_dir().join("mail").join(&u2[0]).join("new");
    let cur = c.data_dir().join("mail").join(&u2[0]).join("cur");
    let n = [new, cur]
        .iter()
        .map(|d| std::fs::read_dir(d).map(|r| r.count()).unwrap_or(0))
        .sum::<usize>();
    assert_eq!(n, 1);
    // Level 4: the front logs nothing of the relayed commands (the owner does).
    let front = all_records_of(&c.logs[0], "IMAP4");
    assert!(!front
        .iter()
        .any(|r| r.id == fid && r.text().contains("APPEND INBOX")));
    let owner = all_records_of(&c.logs[1], "IMAP4");
    assert!(has(&owner, "APPEND INBOX"));
    assert!(
        !c.node(0).log_text().contains("cannot proxy"),
        "{}",
        c.node(0).log_text()
    );
}

#[test]
fn imap_authenticate_plain_imaps_and_starttls_at_the_front_are_relayed() {
    let (c, _, u2) = start(1);
    for (i, mode) in ["plain", "imaps", "starttls"].iter().enumerate() {
        let out = imap_through_front(&c, mode, &u2[i % 2]);
        assert_eq!(out[1], "OK True", "{mode}: {out:?}");
        assert_eq!(
            out[2..4],
            ["OK".to_string(), format!("OK {}", i / 2 + 1)],
            "{mode}: {out:?}"
        );
        assert_eq!(out[5], "BYE", "{mode}: {out:?}");
    }
    // TLS at the front is told to the owner (the SSL TLV): its PROXY record says so.
    let owner = records_until(&c, 1, "IMAP4", "three proxied sessions at the owner", |r| {
        r.iter()
            .filter(|x| x.text().contains("proxied from node1"))
            .count()
            == 3
    });
    let tls = owner
        .iter()
        .filter(|r| r.text().contains("client TLS at the proxy"))
        .count();
    assert_eq!(tls, 2, "imaps and starttls, not plain");
}

/// A raw line client.
struct Raw {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Raw {
    fn open(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect_timeout(&addr, WAIT).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        Raw {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        }
    }

    /// Connects from `from` (port 0) to `addr`.
    fn open_from(from: &str, addr: SocketAddr) -> Raw {
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let src: SocketAddr = format!("{from}:0").parse().unwrap();
        sock.bind(&src.into()).unwrap();
        sock.connect_timeout(&addr.into(), WAIT).unwrap();
        let s: TcpStream = sock.into();
        s.set_read_timeout(Some(WAIT)).unwrap();
        Raw {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        }
    }

    fn send(&mut self, text: &str) {
        self.w.write_all(text.as_bytes()).unwrap();
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

    /// Lines until one starts with `prefix` (included) or the stream ends.
    fn until(&mut self, prefix: &str) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..1000 {
            let l = self.line();
            let done = l.is_empty() || l.starts_with(prefix);
            out.push(l);
            if done {
                return out;
            }
        }
        panic!("no {prefix}: {out:?}");
    }

    /// The server closed the connection without sending anything more.
    fn closed_silently(mut self) -> bool {
        let mut rest = Vec::new();
        match self.r.read_to_end(&mut rest) {
            Ok(_) => rest.is_empty(),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => rest.is_empty(),
            Err(e) => panic!("read: {e}"),
        }
    }
}

fn who(config: &Path) -> String {
    let out = Command::new(common::bin())
        .arg("--config")
        .arg(config)
        .arg("who")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn commands_pipelined_after_login_reach_the_owner_and_who_shows_the_proxy() {
    let (c, _, u2) = start(1);
    let mut r = Raw::open(c.node(0).imap.unwrap());
    assert!(r.line().starts_with("* OK"));
    r.send(&format!(
        "a LOGIN {} {USER_PASS}\r\nb SELECT INBOX\r\nc NOOP\r\n",
        u2[0]
    ));
    let a = r.until("a ");
    assert!(a.last().unwrap().starts_with("a OK [CAPABILITY "), "{a:?}");
    let b = r.until("b ");
    assert!(b.last().unwrap().starts_with("b OK [READ-WRITE]"), "{b:?}");
    let c_ = r.until("c ");
    assert!(c_.last().unwrap().starts_with("c OK"), "{c_:?}");
    // The front's session table shows it proxied to the owner.
    let shown = who(&c.configs[0]);
    assert!(
        shown.contains(&u2[0]) && shown.contains("proxied to node2"),
        "{shown}"
    );
    r.send("d LOGOUT\r\n");
    let d = r.until("d ");
    assert!(d.last().unwrap().starts_with("d OK"), "{d:?}");
    assert!(r.closed_silently());
}

#[test]
fn compress_deflate_is_negotiated_with_the_owner_through_the_relay() {
    let (c, _, u2) = start(1);
    let addr = c.node(0).imap.unwrap();
    let out = common::python(
        r#"
import socket, sys, zlib
port, user, pw = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.create_connection(("127.0.0.11", port), timeout=30)
f = s.makefile("rb")
print(f.readline().decode().strip()[:4])
s.sendall(("a LOGIN %s %s\r\nb COMPRESS DEFLATE\r\n" % (user, pw)).encode())
def until(tag):
    while True:
        l = f.readline().decode().strip()
        if l.startswith(tag) or not l:
            return l
print(until("a ")[:4])
print(until("b "))
# From here on both directions are raw DEFLATE (RFC 4978).
z = zlib.compressobj(9, zlib.DEFLATED, -15)
d = zlib.decompressobj(-15)
def send(line):
    s.sendall(z.compress(line.encode()) + z.flush(zlib.Z_SYNC_FLUSH))
buf = b""
def until_z(tag):
    global buf
    for _ in range(1000):
        while b"\r\n" in buf:
            l, buf = buf.split(b"\r\n", 1)
            if l.startswith(tag.encode()):
                return l.decode()
        data = s.recv(65536)
        if not data:
            return ""
        buf += d.decompress(data)
send("c SELECT INBOX\r\n")
print(until_z("c ")[:4])
send("d LOGOUT\r\n")
print(until_z("d ")[:4])
"#,
        &[&addr.port().to_string(), &u2[0], USER_PASS],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..3],
        ["* OK", "a OK", "b OK Begin compression."],
        "{out}"
    );
    assert_eq!(lines[3..], ["c OK", "d OK"], "{out}");
    // The owner compressed (the front only relays).
    let owner = records_until(&c, 1, "IMAP4", "the owner's compression record", |r| {
        has(r, "Compression started")
    });
    assert!(has(&owner, "proxied from node1"));
    let front = all_records_of(&c.logs[0], "IMAP4");
    assert!(!has(&front, "Compression started"));
}

// ---------------------------------------------------------------------------------------
// POP3
// ---------------------------------------------------------------------------------------

fn deliver(c: &Cluster, user: &str, n: usize) {
    for i in 0..n {
        common::deliver(
            &c.data_dir(),
            user,
            1000 + i,
            &format!("Subject: m{i}\r\n\r\nbody {i}\r\n"),
        );
    }
}

fn count_messages(c: &Cluster, user: &str) -> usize {
    ["new", "cur"]
        .iter()
        .map(|d| {
            std::fs::read_dir(c.data_dir().join("mail").join(user).join(d))
                .map(|r| r.count())
                .unwrap_or(0)
        })
        .sum()
}

const POP3_SCRIPT: &str = r#"
import poplib, sys
port, user, pw, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
P = poplib.POP3("127.0.0.11", port, timeout=30)
print("%s:%d" % P.sock.getsockname()[:2])
P.user(user)
print(P.pass_(pw).decode()[:3])
print(P.stat()[0])
resp, lines, octets = P.retr(1)
print(b"body 0" in b"\n".join(lines))
print(P.dele(1).decode()[:3])
if mode == "quit":
    print(P.quit().decode()[:3])
else:
    P.sock.close()
    print("dropped")
"#;

#[test]
fn pop3_through_the_front_retr_and_dele_apply_and_a_dropped_session_applies_nothing() {
    let (c, _, u2) = start(4);
    deliver(&c, &u2[0], 2);
    let port = c.node(0).pop3.unwrap().port().to_string();
    let out = common::python(POP3_SCRIPT, &[&port, &u2[0], USER_PASS, "quit"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[1..], ["+OK", "2", "True", "+OK", "+OK"], "{out}");
    assert_eq!(count_messages(&c, &u2[0]), 1, "DELE applied at QUIT");
    check_joined_logs(&c, "POP3", lines[0]);

    // A dropped proxied session: the owner sees the relay close and applies nothing.
    deliver(&c, &u2[1], 2);
    let out = common::python(POP3_SCRIPT, &[&port, &u2[1], USER_PASS, "drop"]);
    assert!(out.ends_with("+OK\ndropped\n"), "{out}");
    // Wait until the owner's session for this user has ended (its `-` record).
    records_until(
        &c,
        1,
        "POP3",
        "the dropped session's end at the owner",
        |recs| {
            let ids: BTreeSet<&str> = recs
                .iter()
                .filter(|r| r.text().contains(&format!("user={}", u2[1])))
                .map(|r| r.id.as_str())
                .collect();
            !ids.is_empty()
                && recs
                    .iter()
                    .any(|r| ids.contains(r.id.as_str()) && r.event == '-')
        },
    );
    assert_eq!(count_messages(&c, &u2[1]), 2, "no DELE applied");
}

// ---------------------------------------------------------------------------------------
// Failover
// ---------------------------------------------------------------------------------------

#[test]
fn with_the_owner_down_the_front_serves_locally() {
    let (mut c, _, u2) = start(1);
    c.stop(1);
    let out = imap_through_front(&c, "login", &u2[0]);
    assert_eq!(
        out[1..],
        ["OK True", "OK", "OK 1", "OK True", "BYE"],
        "{out:?}"
    );
    c.node(0).wait_log("cannot proxy", WAIT);
    let m = c.node(0).metrics_text();
    assert!(
        m.contains("mailserver_proxy_failures_total{service=\"imap\",to=\"node2\"} 1"),
        "{m}"
    );
    let front = records_until(&c, 0, "IMAP4", "the local session's end", |r| {
        r.iter().any(|x| x.event == '-')
    });
    assert!(has(&front, &format!("user={}", u2[0])));
    assert!(!has(&front, "proxied to"));
    // POP3 too.
    deliver(&c, &u2[1], 1);
    let port = c.node(0).pop3.unwrap().port().to_string();
    let out = common::python(POP3_SCRIPT, &[&port, &u2[1], USER_PASS, "quit"]);
    assert!(out.ends_with("+OK\n1\nTrue\n+OK\n+OK\n"), "{out}");
    assert_eq!(count_messages(&c, &u2[1]), 0);
}

// ---------------------------------------------------------------------------------------
// The internal listener and the master login
// ---------------------------------------------------------------------------------------

fn master_ir(user: &str, secret: &str) -> String {
    mailserver::cluster::proxy::master_response(user, secret)
}

/// A PROXY v2 header as a front sends it (client `src`, TLV naming `node1` session 0x42).
fn header(src: &str, dest: SocketAddr) -> Vec<u8> {
    let client = mailserver::cluster::proxy::Client {
        service: mailserver::service::Service::Imap4,
        remote: src.parse().unwrap(),
        tls: false,
        session_id: 0x42,
    };
    mailserver::cluster::proxy::header("node1", client, dest)
}

#[test]
fn the_internal_listener_refuses_strangers_headerless_connections_and_wrong_secrets() {
    let (c, u1, _) = start(1);
    let (imap_in, pop3_in) = c.internal[1];
    // From an address that is no node's: closed at once, nothing said.
    let r = Raw::open_from("127.0.0.1", imap_in);
    assert!(r.closed_silently());
    // From a node's address but without a PROXY header: closed.
    let mut r = Raw::open_from("127.0.0.11", imap_in);
    r.send("a LOGIN x y\r\n");
    assert!(r.closed_silently());
    c.node(1).wait_log("not a node's address", WAIT);
    // With the header: a wrong secret fails like a password; the right one logs in, even
    // as a user node2 does not own (an internal session never proxies again), and from a
    // client address that is not loopback without TLS (the front applied its own rule;
    // `auth.allow_plaintext` is off here).
    let mut r = Raw::open_from("127.0.0.11", imap_in);
    r.w.write_all(&header("192.0.2.9:4242", imap_in)).unwrap();
    assert!(r.line().starts_with("* OK"));
    r.send(&format!(
        "a AUTHENTICATE PLAIN {}\r\n",
        master_ir(&u1[0], "wrong-secret-0123456789")
    ));
    assert_eq!(
        r.until("a ").last().unwrap(),
        "a NO [AUTHENTICATIONFAILED] Authentication failed."
    );
    r.send(&format!(
        "b AUTHENTICATE PLAIN {}\r\n",
        master_ir(&u1[0], SECRET)
    ));
    let b = r.until("b ");
    assert!(b.last().unwrap().starts_with("b OK [CAPABILITY "), "{b:?}");
    r.send("c SELECT INBOX\r\n");
    assert!(r.until("c ").last().unwrap().starts_with("c OK"));
    r.send("d LOGOUT\r\n");
    r.until("d ");
    let owner = records_until(&c, 1, "IMAP4", "the internal session", |r| {
        has(r, "proxied from node1 session 0000000000000042")
    });
    assert!(owner.iter().any(|r| r.remote == "192.0.2.9:4242"));
    assert!(!has(&owner, "proxied to"), "never proxied again");
    // POP3 internal listener: master login.
    let mut r = Raw::open_from("127.0.0.11", pop3_in);
    r.w.write_all(&header("192.0.2.9:4243", pop3_in)).unwrap();
    assert!(r.line().starts_with("+OK"));
    r.send(&format!("AUTH PLAIN {}\r\n", master_ir(&u1[0], SECRET)));
    assert!(r.line().starts_with("+OK"));
    r.send("QUIT\r\n");
    assert!(r.line().starts_with("+OK"));
}

#[test]
fn the_master_login_on_a_public_listener_fails_exactly_like_a_wrong_password() {
    let (c, _, u2) = start(1);
    for node in 0..2 {
        let d = c.node(node);
        let mut r = Raw::open(d.imap.unwrap());
        assert!(r.line().starts_with("* OK"));
        r.send(&format!(
            "a AUTHENTICATE PLAIN {}\r\n",
            master_ir(&u2[0], SECRET)
        ));
        let master = r.until("a ").last().unwrap().clone();
        let plain = base64_plain(&u2[0], "not-the-password");
        r.send(&format!("b AUTHENTICATE PLAIN {plain}\r\n"));
        let bad = r.until("b ").last().unwrap().clone();
        assert_eq!(
            master.strip_prefix("a "),
            bad.strip_prefix("b "),
            "node{}",
            node + 1
        );
        assert_eq!(bad, "b NO [AUTHENTICATIONFAILED] Authentication failed.");
        let mut p = Raw::open(d.pop3.unwrap());
        assert!(p.line().starts_with("+OK"));
        p.send(&format!("AUTH PLAIN {}\r\n", master_ir(&u2[0], SECRET)));
        let master = p.line();
        p.send(&format!(
            "AUTH PLAIN {}\r\n",
            base64_plain(&u2[0], "not-the-password")
        ));
        assert_eq!(master, p.line());
        assert_eq!(master, "-ERR [AUTH] Authentication failed.");
    }
}

fn base64_plain(user: &str, pw: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pw}"))
}

// ---------------------------------------------------------------------------------------
// Session ids
// ---------------------------------------------------------------------------------------

#[test]
fn session_ids_of_the_two_nodes_never_collide() {
    let (c, u1, u2) = start(1);
    // Direct and proxied sessions at both nodes, in the same seconds.
    for node in 0..2 {
        for u in u1.iter().chain(&u2) {
            let mut r = Raw::open(c.node(node).pop3.unwrap());
            assert!(r.line().starts_with("+OK"));
            r.send(&format!("USER {u}\r\nPASS {USER_PASS}\r\nQUIT\r\n"));
            assert!(r.until("+OK Logged").last().unwrap().starts_with("+OK"));
            r.line();
        }
    }
    let ids = |i: usize| -> BTreeSet<String> {
        records_until(&c, i, "POP3", "eight sessions' ends", |r| {
            r.iter().filter(|x| x.event == '-').count() >= 4 + 2
        })
        .into_iter()
        .map(|r| r.id)
        .collect()
    };
    let (a, b) = (ids(0), ids(1));
    assert!(a.is_disjoint(&b), "{a:?} {b:?}");
    // Each id's counter half starts with its node's tag (index + 1).
    assert!(a.iter().all(|id| &id[8..10] == "01"), "{a:?}");
    assert!(b.iter().all(|id| &id[8..10] == "02"), "{b:?}");
}
