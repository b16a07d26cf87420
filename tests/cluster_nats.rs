//! Cluster membership, moves and change events over a real `nats-server` (README.md,
//! "Cluster"): two daemons, node `a` on 127.0.0.11 and node `b` on 127.0.0.12, on one
//! `data_dir` with the inotify watcher off on both (`server.store_watch = false`), so only a
//! NATS change event or the IDLE poll can tell one node of the other's writes.
//!
//! * membership: each sees the other live; SIGKILL drops it after `dead_after`, a restart
//!   brings it back, SIGTERM's `leaving` drops it at once;
//! * moves: a user whose static owner is `b` is served on `a` while `b` is dead; when `b`
//!   comes back, `a` closes the IMAP session with `* BYE [UNAVAILABLE]` and the POP3 one
//!   without applying its DELE, and leaves its own users' sessions alone;
//! * change events: an LMTP delivery on `b`, then a `mailserver deliver` configured as `b`,
//!   wake an IDLE on `a` within 5 s while the poll interval is 60 s; with `nats-server` stopped, the 2 s poll still sees one;
//! * cut off: with `nats-server` stopped, a node goes back to the static view.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::imap::Client;
use common::test_config::TestConfig;
use common::{wait, Daemon, Options, PASS};
use mailserver::config::cluster::ClusterNode;

const WAIT: Duration = Duration::from_secs(20);
const HEARTBEAT_MS: u64 = 200;
const DEAD_AFTER_MS: u64 = 1000;

/// A private `nats-server` on 127.0.0.1, killed on drop.
struct Nats {
    child: Child,
    port: u16,
}

impl Nats {
    fn start() -> Nats {
        Nats::start_on(common::free_port())
    }

    fn start_on(port: u16) -> Nats {
        Nats::spawn(port, &["-a", "127.0.0.1", "-p", &port.to_string()])
    }

    /// `nats-server` with `args`, once it listens on `port`.
    fn spawn(port: u16, args: &[&str]) -> Nats {
        let child = Command::new("nats-server")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (Debian's nats-server package) is installed");
        let n = Nats { child, port };
        wait::wait_for("nats-server to listen", WAIT, || {
            TcpStream::connect(("127.0.0.1", port))
                .map(drop)
                .map_err(|e| e.to_string())
        });
        n
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The two nodes' `[[cluster.nodes]]`: ids `a` and `b`, internal listeners on free ports
/// of 127.0.0.11 and 127.0.0.12.
fn nodes() -> Vec<ClusterNode> {
    ["a", "b"]
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let ip = format!("127.0.0.1{}", i + 1);
            let addr = |p: u16| {
                format!("{ip}:{p}")
                    .parse::<mailserver::config::cluster::NodeAddr>()
                    .unwrap()
            };
            ClusterNode {
                id: id.to_string(),
                imap: addr(common::free_port()),
                pop3: addr(common::free_port()),
            }
        })
        .collect()
}

/// The static owner of `user` (every node live).
fn static_owner(nodes: &[ClusterNode], user: &str) -> String {
    mailserver::cluster::ring::order(nodes, user)[0].id.clone()
}

/// A user whose static owner is `id`.
fn user_of(nodes: &[ClusterNode], id: &str) -> String {
    (0..1000)
        .map(|i| format!("user{i}"))
        .find(|u| static_owner(nodes, u) == id)
        .unwrap()
}

/// One cluster of two nodes: the shared `data_dir`, each node's config file (kept across
/// restarts), and the users.
struct Setup {
    _dir: tempfile::TempDir,
    data_dir: PathBuf,
    configs: Vec<PathBuf>,
    nodes: Vec<ClusterNode>,
}

impl Setup {
    /// `interval`: `imap.idle_check_interval_secs`; `users` get the test password.
    fn new(nats_url: &str, interval: u64, users: &[&str]) -> Setup {
        Setup::new_with(nats_url, interval, users, "")
    }

    /// As [`Setup::new`], with `more` lines in `[cluster]` (`{ID}` is the node's id).
    fn new_with(nats_url: &str, interval: u64, users: &[&str], more: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let nodes = nodes();
        let mut cluster = format!(
            "[cluster]\nnode_id = \"{{ID}}\"\nsecret = \"0123456789abcdef0123\"\n\
             nats_url = \"{nats_url}\"\nheartbeat_ms = {HEARTBEAT_MS}\ndead_after_ms = {DEAD_AFTER_MS}\n{more}"
        );
        for n in &nodes {
            cluster.push_str(&format!(
                "[[cluster.nodes]]\nid = \"{}\"\nimap = \"{}\"\npop3 = \"{}\"\n",
                n.id, n.imap, n.pop3
            ));
        }
        let mut configs = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            let ndir = dir.path().join(&n.id);
            std::fs::create_dir_all(&ndir).unwrap();
            let mut passwd = String::new();
            for u in users {
                passwd.push_str(&format!("{u}:{{PLAIN}}{PASS}\n"));
            }
            std::fs::write(ndir.join("users"), passwd).unwrap();
            let ip = format!("127.0.0.1{}", i + 1);
            let here = vec![format!("{ip}:0")];
            let config = TestConfig {
                data_dir: data_dir.clone(),
                imap_listen: here.clone(),
                imap_tls_listen: Vec::new(),
                pop3_listen: here.clone(),
                pop3_tls_listen: Vec::new(),
                allow_plaintext: Some(true),
                extra_server: "store_watch = false".into(),
                extra_imap: format!("idle_check_interval_secs = {interval}"),
                ..common::daemon_config(
                    &ndir,
                    &Options {
                        extra: format!(
                            "[lmtp]\nlisten = [\"{ip}:0\"]\n[metrics]\nlisten = \"{ip}:0\"\n{}",
                            cluster.replace("{ID}", &n.id)
                        ),
                        ..Options::default()
                    },
                )
            };
            let path = ndir.join("mailserver.toml");
            config.write(&path);
            configs.push(path);
        }
        Setup {
            _dir: dir,
            data_dir,
            configs,
            nodes,
        }
    }

    /// Starts node `i` (0: `a`, 1: `b`) and waits until its NATS connection is up.
    fn start(&self, i: usize) -> Daemon {
        let d = Daemon::spawn(tempfile::tempdir().unwrap(), self.configs[i].clone(), &[]);
        d.wait_log("cluster: NATS connected", WAIT);
        d
    }

    /// Starts node `i` without waiting for NATS.
    fn start_cut_off(&self, i: usize) -> Daemon {
        Daemon::spawn(tempfile::tempdir().unwrap(), self.configs[i].clone(), &[])
    }

    /// Files in the user's INBOX (`new/` and `cur/`).
    fn messages(&self, user: &str) -> usize {
        let root = self.data_dir.join("mail").join(user);
        ["new", "cur"]
            .iter()
            .map(|d| std::fs::read_dir(root.join(d)).map_or(0, |r| r.count()))
            .sum()
    }
}

/// The value of an unlabelled series on the daemon's metrics listener.
fn metric(d: &Daemon, name: &str) -> f64 {
    let body = d.metrics_text();
    common::metric_sample(&body, name).unwrap_or_else(|| panic!("{name} not in:\n{body}"))
}

/// Waits until the series reads `want`.
fn wait_metric(d: &Daemon, name: &str, want: f64) {
    wait::wait_for(&format!("{name} = {want}"), WAIT, || {
        let v = metric(d, name);
        if v == want {
            Ok(())
        } else {
            Err(format!("{name} = {v}"))
        }
    })
}

/// An IMAP client logged in as `user`.
fn imap_login(addr: SocketAddr, user: &str, wait: Duration) -> Client {
    let mut c = Client::connect(addr, wait);
    c.ok(&format!("a LOGIN {user} {PASS}"), "a");
    c
}

/// One LMTP delivery to `user` at `addr`, checked `250` at each step.
fn lmtp_deliver(addr: SocketAddr, user: &str, body: &str) {
    let s = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut reply = || {
        let mut last = String::new();
        for _ in 0..50 {
            last.clear();
            r.read_line(&mut last).unwrap();
            if last.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
        last.trim_end().to_string()
    };
    assert!(reply().starts_with("220"));
    for (cmd, code) in [
        ("LHLO test\r\n".to_string(), "250"),
        ("MAIL FROM:<x@example.org>\r\n".into(), "250"),
        (format!("RCPT TO:<{user}>\r\n"), "250"),
        ("DATA\r\n".into(), "354"),
        (format!("Subject: cluster\r\n\r\n{body}\r\n.\r\n"), "250"),
        ("QUIT\r\n".into(), "221"),
    ] {
        w.write_all(cmd.as_bytes()).unwrap();
        let l = reply();
        assert!(l.starts_with(code), "{cmd:?} -> {l}");
    }
}

/// Reads lines until one satisfies `want` (each read bounded by the socket timeout, at most
/// 50 lines); returns them.
fn until_line(c: &mut Client, want: impl Fn(&str) -> bool) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..50 {
        let l = c.line();
        let done = want(&l);
        seen.push(l);
        if done {
            return seen;
        }
    }
    panic!("no wanted line in {seen:?}");
}

/// Whether the peer closed the connection (EOF within the socket timeout).
fn closed(r: &mut BufReader<TcpStream>) -> bool {
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).is_ok() && rest.is_empty()
}

#[test]
fn nodes_see_each_other_and_drop_a_killed_or_leaving_node() {
    let nats = Nats::start();
    let s = Setup::new(&nats.url(), 60, &["x"]);
    let a = s.start(0);
    let mut b = s.start(1);
    wait_metric(&a, "mailserver_cluster_nats_connected", 1.0);
    // Past the startup hold, both still live: each hears the other.
    std::thread::sleep(Duration::from_millis(2 * DEAD_AFTER_MS));
    assert_eq!(metric(&a, "mailserver_cluster_live_nodes"), 2.0);
    assert_eq!(metric(&b, "mailserver_cluster_live_nodes"), 2.0);
    // (a may have dropped b once if b took longer than dead_after to start: counted.)
    let dropped = "cluster: live nodes now [a] (were [a, b])";
    let before = a.log_count(dropped);

    b.signal("KILL");
    b.wait_exit(WAIT);
    a.wait_log_more(dropped, before, WAIT);
    assert_eq!(metric(&a, "mailserver_cluster_live_nodes"), 1.0);
    assert!(metric(&a, "mailserver_cluster_membership_changes_total") >= 1.0);

    let back = "cluster: live nodes now [a, b] (were [a])";
    let before = a.log_count(back);
    let mut b = s.start(1);
    a.wait_log_more(back, before, WAIT);
    // b kept the static view while it started: no change there.
    std::thread::sleep(Duration::from_millis(2 * DEAD_AFTER_MS));
    assert_eq!(
        b.log_count("cluster: live nodes now"),
        0,
        "{}",
        b.log_text()
    );

    // A graceful stop says `leaving`: dropped without waiting for dead_after.
    let before = a.log_count(dropped);
    b.stop();
    a.wait_log("cluster: node b is leaving", WAIT);
    a.wait_log_more(dropped, before, WAIT);
    assert!(
        b.log_text()
            .contains("told the other nodes this one is leaving"),
        "{}",
        b.log_text()
    );
}

#[test]
fn sessions_of_users_that_move_back_are_closed_and_pop3_applies_no_dele() {
    let nats = Nats::start();
    let probe = nodes();
    // Ownership depends only on the ids, not the addresses.
    let (ua, ub) = (user_of(&probe, "a"), user_of(&probe, "b"));
    let s = Setup::new(&nats.url(), 60, &[&ua, &ub]);
    assert_eq!(static_owner(&s.nodes, &ub), "b");
    let a = s.start(0);
    // b never started: after the startup hold, a owns every user.
    a.wait_log("cluster: live nodes now [a] (were [a, b])", WAIT);
    common::deliver(&s.data_dir, &ub, 1, "Subject: one\r\n\r\nbody\r\n");
    let mut moved = imap_login(a.imap.unwrap(), &ub, WAIT);
    moved.ok("s SELECT INBOX", "s");
    let mut stays = imap_login(a.imap.unwrap(), &ua, WAIT);
    stays.ok("s SELECT INBOX", "s");
    // POP3: log in, mark the message deleted, never QUIT.
    let p = TcpStream::connect_timeout(&a.pop3.unwrap(), WAIT).unwrap();
    p.set_read_timeout(Some(WAIT)).unwrap();
    let mut pw = p.try_clone().unwrap();
    let mut pr = BufReader::new(p);
    let mut pop = |cmd: &str| -> String {
        if !cmd.is_empty() {
            pw.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        }
        let mut l = String::new();
        pr.read_line(&mut l).unwrap();
        l.trim_end().to_string()
    };
    assert!(pop("").starts_with("+OK"));
    assert!(pop(&format!("USER {ub}")).starts_with("+OK"));
    assert!(pop(&format!("PASS {PASS}")).starts_with("+OK"));
    assert!(pop("DELE 1").starts_with("+OK"));

    // b comes back: ub is b's again.
    let _b = s.start(1);
    a.wait_log("cluster: live nodes now [a, b] (were [a])", WAIT);
    let bye = until_line(&mut moved, |l| l.starts_with("* BYE"));
    assert_eq!(
        bye.last().unwrap(),
        "* BYE [UNAVAILABLE] This account moved to another node; reconnect."
    );
    assert!(closed(&mut moved.r));
    let mut l = String::new();
    pr.read_line(&mut l).unwrap();
    assert_eq!(
        l.trim_end(),
        "-ERR [SYS/TEMP] This account moved to another node; reconnect."
    );
    assert!(closed(&mut pr));
    // The DELE was not applied; the user a still owns kept its session.
    assert_eq!(s.messages(&ub), 1);
    stays.ok("n NOOP", "n");
    a.wait_log("1 user(s) now served by another node", WAIT);
}

#[test]
fn a_delivery_on_one_node_wakes_idle_on_the_other_through_nats() {
    let nats = Nats::start();
    let probe = nodes();
    let ua = user_of(&probe, "a");
    // Poll every 60 s: only a change event can wake the IDLE within the 5 s read bound.
    let s = Setup::new(&nats.url(), 60, &[&ua]);
    let a = s.start(0);
    let b = s.start(1);
    let mut idler = imap_login(a.imap.unwrap(), &ua, Duration::from_secs(5));
    let u = idler.ok("s SELECT INBOX", "s");
    assert!(u.iter().any(|l| l == "* 0 EXISTS"), "{u:?}");
    idler.send(b"i IDLE\r\n");
    assert!(idler.line().starts_with('+'));
    lmtp_deliver(b.lmtp.unwrap(), &ua, "over NATS");
    until_line(&mut idler, |l| l == "* 1 EXISTS");
    // `mailserver deliver` as node b: its own process publishes the event.
    let mut lda = Command::new(common::bin())
        .arg("--config")
        .arg(&s.configs[1])
        .args(["deliver", "-d", &ua])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    lda.stdin
        .take()
        .unwrap()
        .write_all(b"Subject: lda\r\n\r\nbody\r\n")
        .unwrap();
    assert!(lda.wait().unwrap().success());
    until_line(&mut idler, |l| l == "* 2 EXISTS");
    idler.send(b"DONE\r\n");
    idler.until_tagged("i");
    assert!(
        metric(
            &b,
            "mailserver_cluster_change_events_total{result=\"published\"}"
        ) >= 1.0
    );
    assert!(
        metric(
            &a,
            "mailserver_cluster_change_events_total{result=\"received\"}"
        ) >= 1.0
    );
}

#[test]
fn without_nats_the_idle_poll_still_sees_the_other_node_and_nodes_go_static() {
    let nats = Nats::start();
    let probe = nodes();
    let ua = user_of(&probe, "a");
    let s = Setup::new(&nats.url(), 2, &[&ua]);
    let a = s.start(0);
    let mut b = s.start(1);
    // b dies first, so a's view is [a] and the static view is a change to see.
    std::thread::sleep(Duration::from_millis(DEAD_AFTER_MS + 200));
    let dropped = "cluster: live nodes now [a] (were [a, b])";
    let before = a.log_count(dropped);
    b.signal("KILL");
    b.wait_exit(WAIT);
    a.wait_log_more(dropped, before, WAIT);
    let port = nats.port;
    drop(nats);
    a.wait_log("cluster: NATS connection lost", WAIT);
    wait_metric(&a, "mailserver_cluster_nats_connected", 0.0);
    // Cut off for dead_after: the static view (every node live).
    a.wait_log(
        "cluster: live nodes now [a, b] (were [a]); cut off from NATS",
        WAIT,
    );
    assert_eq!(metric(&a, "mailserver_cluster_live_nodes"), 2.0);

    // b again, NATS still down: a's IDLE learns of b's delivery through its 2 s poll.
    let b = s.start_cut_off(1);
    let mut idler = imap_login(a.imap.unwrap(), &ua, WAIT);
    idler.ok("s SELECT INBOX", "s");
    idler.send(b"i IDLE\r\n");
    assert!(idler.line().starts_with('+'));
    lmtp_deliver(b.lmtp.unwrap(), &ua, "polled");
    until_line(&mut idler, |l| l == "* 1 EXISTS");
    idler.send(b"DONE\r\n");
    idler.until_tagged("i");

    // NATS back on the same port: both reconnect.
    let _nats = Nats::start_on(port);
    a.wait_log_more("cluster: NATS connected", 1, WAIT);
    b.wait_log("cluster: NATS connected", WAIT);
    wait_metric(&a, "mailserver_cluster_nats_connected", 1.0);
}

#[test]
fn a_node_without_nats_starts_and_serves() {
    // Nothing listens there: startup and logins never wait for NATS.
    let url = format!("nats://127.0.0.1:{}", common::free_port());
    let s = Setup::new(&url, 60, &["x"]);
    let a = s.start_cut_off(0);
    let mut c = imap_login(a.imap.unwrap(), "x", WAIT);
    c.ok("s SELECT INBOX", "s");
    assert_eq!(metric(&a, "mailserver_cluster_nats_connected"), 0.0);
    assert_eq!(metric(&a, "mailserver_cluster_live_nodes"), 2.0);
}

/// A CA, a server certificate for 127.0.0.1 and one client certificate per node, as PEM
/// files in `dir`: `ca.pem`, `server.pem`/`server.key`, `<id>.pem`/`<id>.key`; and a
/// second, unrelated CA, `other-ca.pem`.
fn tls_files(dir: &std::path::Path, ids: &[&str]) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, SanType};
    let ca_params = || {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p
    };
    let ca = CertifiedIssuer::self_signed(ca_params(), KeyPair::generate().unwrap()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    let other = CertifiedIssuer::self_signed(ca_params(), KeyPair::generate().unwrap()).unwrap();
    std::fs::write(dir.join("other-ca.pem"), other.pem()).unwrap();
    let leaf = |name: &str, ip: bool| {
        let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
        if ip {
            p.subject_alt_names
                .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        }
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &ca).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    };
    leaf("server", true);
    for id in ids {
        leaf(id, false);
    }
}

/// NATS over mutual TLS with a user and password (the URL's): both nodes connect and see
/// each other; the password never reaches the daemon log; a node that checks the server
/// with another CA does not connect (and serves on its static view).
#[test]
fn nodes_meet_over_nats_with_tls_client_certificates_and_a_password() {
    let dir = tempfile::tempdir().unwrap();
    tls_files(dir.path(), &["a", "b"]);
    let port = common::free_port();
    let conf = dir.path().join("nats.conf");
    let d = dir.path().display();
    std::fs::write(
        &conf,
        format!(
            "listen: 127.0.0.1:{port}\n\
             tls {{\n  cert_file: \"{d}/server.pem\"\n  key_file: \"{d}/server.key\"\n  \
             ca_file: \"{d}/ca.pem\"\n  verify: true\n  timeout: 2\n}}\n\
             authorization {{\n  user: mailnode\n  password: \"n4ts-s3cret\"\n}}\n"
        ),
    )
    .unwrap();
    let _nats = Nats::spawn(port, &["-c", &conf.to_string_lossy()]);
    let url = format!("tls://mailnode:n4ts-s3cret@127.0.0.1:{port}");
    let files = |ca: &str| {
        format!(
            "nats_ca_file = \"{d}/{ca}\"\nnats_cert_file = \"{d}/{{ID}}.pem\"\n\
             nats_key_file = \"{d}/{{ID}}.key\"\n"
        )
    };
    let s = Setup::new_with(&url, 60, &["x"], &files("ca.pem"));
    let a = s.start(0);
    let b = s.start(1);
    for n in [&a, &b] {
        wait_metric(n, "mailserver_cluster_live_nodes", 2.0);
        assert_eq!(metric(n, "mailserver_cluster_nats_connected"), 1.0);
        let log = n.log_text();
        assert!(!log.contains("n4ts-s3cret"), "{log}");
        assert!(log.contains("tls://mailnode:***@127.0.0.1"), "{log}");
    }
    drop(b);
    wait_metric(&a, "mailserver_cluster_live_nodes", 1.0);

    // The wrong CA: the server's certificate is refused, the node never connects.
    let wrong = Setup::new_with(&url, 60, &["x"], &files("other-ca.pem"));
    let c = wrong.start_cut_off(1);
    std::thread::sleep(Duration::from_millis(3 * DEAD_AFTER_MS));
    assert_eq!(metric(&c, "mailserver_cluster_nats_connected"), 0.0);
    assert!(
        !c.log_text().contains("cluster: NATS connected"),
        "{}",
        c.log_text()
    );
}
