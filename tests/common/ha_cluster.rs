//! A two-node cluster on loopback for the cluster tests and `benches/cluster.sh` (README.md,
//! "Cluster"): a private `nats-server` on 127.0.0.1, two `mailserver` nodes on 127.0.0.11
//! and 127.0.0.12 on one shared `data_dir`, each through its own `bindfs` FUSE mount, so a
//! node's inotify never sees the other's writes (with `CLUSTER_TEST_FUSE=0`: the directory
//! itself with `store_watch = false`), each
//! with its own protocol-log directory, and HAProxy on 127.0.0.1 in front, its config made
//! from `deploy/haproxy/haproxy-cluster.cfg` with the addresses moved to loopback ports.
//!
//! Nodes are killed with SIGKILL and started again on the same config; NATS is stopped and
//! started on the same port. Every wait is bounded; `Drop` kills what it started (nodes,
//! HAProxy, NATS) and unmounts the FUSE mounts (`fusermount -u`, bounded by `timeout`).
//!
//! `#[path]`-included next to `mod common;` (it uses `crate::common`); each crate uses a
//! subset, so `dead_code` is allowed.
#![allow(dead_code)]

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::test_config::{LogValues, TestConfig};
use crate::common::wait::wait_for;
use crate::common::{haproxy_stat, Daemon};

/// Socket and wait bound: generous for a loaded 2-core machine, short enough to fail.
pub const WAIT: Duration = Duration::from_secs(30);
/// The cluster's shared secret (internal listeners' master login).
pub const SECRET: &str = "cluster-test-secret-0123456789";
/// The nodes' addresses: node `i` (0-based) is `node{i+1}` on `NODE_IPS[i]`.
pub const NODE_IPS: [&str; 2] = ["127.0.0.11", "127.0.0.12"];
/// Every test user's password.
pub const PASSWORD: &str = "secret";

/// The test user number `i` (1-based): `user01` ...
pub fn user(i: usize) -> String {
    format!("user{i:02}")
}

/// Which components are missing (empty: all there).
pub fn missing() -> Vec<&'static str> {
    let mut m = Vec::new();
    for tool in ["haproxy", "nats-server", "bindfs", "fusermount"] {
        if !crate::common::have(tool) {
            m.push(tool);
        }
    }
    if !Path::new("/dev/fuse").exists() {
        m.push("/dev/fuse");
    }
    m
}

/// `true` when the cluster can run here; otherwise says SKIPPED loudly (a failure under
/// `CI=true`) and returns `false`.
pub fn available() -> bool {
    let m = missing();
    if m.is_empty() {
        return true;
    }
    crate::common::skipped(&format!("cluster test: missing {}", m.join(", ")));
    false
}

/// A free TCP port on `ip` now (bound and released).
pub fn free_port_on(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `cmd` with `timeout` (seconds) in front; returns whether it succeeded.
fn bounded(secs: u32, cmd: &str, args: &[&std::ffi::OsStr]) -> bool {
    Command::new("timeout")
        .arg(secs.to_string())
        .arg(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Kills and reaps a child (SIGKILL); nothing if it already exited.
fn kill_child(c: &mut Child) {
    if let Ok(None) = c.try_wait() {
        let _ = c.kill();
    }
    let _ = c.wait();
}

// ---------------------------------------------------------------------------------------
// NATS
// ---------------------------------------------------------------------------------------

/// A private `nats-server` on 127.0.0.1:`port`.
pub struct Nats {
    pub port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl Nats {
    fn start(dir: &Path) -> Nats {
        let mut n = Nats {
            port: free_port_on("127.0.0.1"),
            child: None,
            log: dir.join("nats.log"),
        };
        n.run();
        n
    }

    fn run(&mut self) {
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-l"])
            .arg(&self.log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        self.child = Some(child);
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        wait_for("nats-server to accept connections", WAIT, || {
            TcpStream::connect_timeout(&addr, Duration::from_secs(1))
                .map(|_| ())
                .map_err(|e| {
                    format!(
                        "{e}; log: {}",
                        std::fs::read_to_string(&self.log).unwrap_or_default()
                    )
                })
        });
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGKILL: the nodes see their connection drop).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_child(&mut c);
        }
    }

    /// Starts it again on the same port.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "NATS is running");
        self.run();
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------------------
// bindfs mounts
// ---------------------------------------------------------------------------------------

/// A `bindfs` FUSE mount of the shared store, one per node, without attribute caching
/// (`attr_timeout=0`, as NFS's `actimeo=0`). Like NFS's silly rename, FUSE defers the
/// unlink of an open file to its close, which the store's dot-lock has to survive
/// (`a_dotlock_taken_on_a_fuse_mount_is_removed_when_released`). The default; with
/// `CLUSTER_TEST_FUSE=0` both nodes use the directory itself.
pub struct Mount {
    pub point: PathBuf,
}

impl Mount {
    pub fn new(src: &Path, point: &Path) -> Mount {
        std::fs::create_dir_all(point).unwrap();
        assert!(
            bounded(
                20,
                "bindfs",
                &[
                    "-o".as_ref(),
                    "attr_timeout=0,entry_timeout=0".as_ref(),
                    src.as_os_str(),
                    point.as_os_str()
                ]
            ),
            "bindfs {} {} failed",
            src.display(),
            point.display()
        );
        Mount {
            point: point.to_path_buf(),
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let p = self.point.as_os_str();
        if !bounded(10, "fusermount", &["-u".as_ref(), p]) {
            // Busy (a process still has a file open): detach it lazily.
            bounded(10, "fusermount", &["-uz".as_ref(), p]);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Nodes
// ---------------------------------------------------------------------------------------

/// One node: its fixed addresses, its own config, logs and mount, and the daemon when it
/// runs.
pub struct Node {
    pub id: String,
    pub ip: &'static str,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    /// Public PROXY listeners (HAProxy's servers): imap, imaps, pop3, pop3s.
    pub imap_proxy: u16,
    pub imaps_proxy: u16,
    pub pop3_proxy: u16,
    pub pop3s_proxy: u16,
    /// Internal listeners (`[[cluster.nodes]]`).
    pub imap_internal: u16,
    pub pop3_internal: u16,
    pub daemon: Option<Daemon>,
    /// How many times the daemon was started.
    pub starts: usize,
}

impl Node {
    pub fn imap_log_dir(&self) -> PathBuf {
        self.dir.join("logs/imap")
    }
    pub fn pop3_log_dir(&self) -> PathBuf {
        self.dir.join("logs/pop3")
    }
    pub fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("node is running")
    }
    pub fn is_running(&self) -> bool {
        self.daemon.is_some()
    }
    pub fn pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(|d| d.pid())
    }
    /// The daemon's direct (no PROXY header) IMAP and POP3 listeners.
    pub fn direct_imap(&self) -> SocketAddr {
        self.daemon().imap.expect("direct IMAP listener")
    }
    pub fn direct_pop3(&self) -> SocketAddr {
        self.daemon().pop3.expect("direct POP3 listener")
    }
    /// Every daemon log of this node so far (earlier runs included).
    pub fn log_text(&self) -> String {
        let mut t =
            std::fs::read_to_string(self.dir.join("daemon-earlier.log")).unwrap_or_default();
        if let Some(d) = &self.daemon {
            t.push_str(&d.log_text());
        }
        t
    }

    fn spawn(&mut self, env: &[(String, String)]) {
        let scratch = tempfile::tempdir().unwrap();
        let d = Daemon::spawn(scratch, self.config_path.clone(), env);
        self.daemon = Some(d);
        self.starts += 1;
    }

    /// SIGKILL, reaped; the daemon's log is kept for [`Node::log_text`].
    pub fn kill9(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            kill_child(&mut d.child);
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join("daemon-earlier.log"))
                .unwrap();
            f.write_all(d.log_text().as_bytes()).unwrap();
        }
    }
}

/// Settings of a cluster.
#[derive(Clone)]
pub struct Settings {
    /// Test users `user01` .. (besides none else).
    pub users: usize,
    /// `imap.idle_check_interval_secs` of every node.
    pub idle_check_interval_secs: u64,
    /// `server.store_watch` of every node.
    pub store_watch: bool,
    /// Protocol-log level of both services.
    pub log_level: u32,
    /// `[cluster]` heartbeat and dead-after.
    pub heartbeat_ms: u64,
    pub dead_after_ms: u64,
    /// More `[limits]` lines.
    pub extra_limits: String,
    /// An LMTP listener on each node (`Daemon::lmtp`).
    pub lmtp: bool,
    /// Each node sees the store through its own `bindfs` mount; `false`: both use the
    /// directory itself, with `store_watch = false` (the other way to keep one
    /// node's inotify from seeing the other's writes).
    pub fuse: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            users: 40,
            idle_check_interval_secs: 30,
            store_watch: true,
            log_level: 3,
            heartbeat_ms: 200,
            dead_after_ms: 1000,
            extra_limits: String::new(),
            lmtp: false,
            // `CLUSTER_TEST_FUSE=0`: both nodes on the directory itself (no FUSE here).
            fuse: std::env::var_os("CLUSTER_TEST_FUSE").is_none_or(|v| v != "0"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The cluster
// ---------------------------------------------------------------------------------------

/// NATS, two nodes on bindfs mounts of `shared`, HAProxy; torn down on drop.
pub struct Cluster {
    pub root: tempfile::TempDir,
    /// The real shared store (the nodes' `data_dir`s are FUSE views of it).
    pub shared: PathBuf,
    pub nats: Nats,
    pub nodes: Vec<Node>,
    pub haproxy: Option<Haproxy>,
    pub settings: Settings,
    // Dropped after the nodes (fields drop in order; see Drop).
    mounts: Vec<Mount>,
}

/// HAProxy in the foreground (`-db`) from the generated config.
pub struct Haproxy {
    child: Child,
    pub stats: PathBuf,
    pub config: String,
    /// Frontends on 127.0.0.1: imap, imaps, pop3, pop3s.
    pub imap: u16,
    pub imaps: u16,
    pub pop3: u16,
    pub pop3s: u16,
    pub log: PathBuf,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        kill_child(&mut self.child);
    }
}

impl Cluster {
    /// Starts everything and waits (bounded) until HAProxy sees both nodes UP and each node
    /// sees the other live (`cluster: node ... live` in its log, when NATS membership is
    /// there: see [`Cluster::wait_both_live`]).
    pub fn start(settings: Settings) -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let shared = root.path().join("shared");
        std::fs::create_dir_all(shared.join("mail")).unwrap();
        // The store is "mounted": the nodes require the marker.
        std::fs::write(shared.join(mailserver::config::DATA_MARKER), "").unwrap();
        let nats = Nats::start(root.path());
        let mut users = String::new();
        for i in 1..=settings.users {
            users.push_str(&format!("{}:{{PLAIN}}{PASSWORD}\n", user(i)));
        }
        let mut nodes = Vec::new();
        let mut mounts = Vec::new();
        for (i, ip) in NODE_IPS.iter().enumerate() {
            let dir = root.path().join(format!("node{}", i + 1));
            std::fs::create_dir_all(dir.join("logs")).unwrap();
            std::fs::write(dir.join("users"), &users).unwrap();
            if settings.fuse {
                mounts.push(Mount::new(&shared, &dir.join("data")));
            } else {
                std::os::unix::fs::symlink(&shared, dir.join("data")).unwrap();
            }
            nodes.push(Node {
                id: format!("node{}", i + 1),
                ip,
                config_path: dir.join("mailserver.toml"),
                dir,
                imap_proxy: free_port_on(ip),
                imaps_proxy: free_port_on(ip),
                pop3_proxy: free_port_on(ip),
                pop3s_proxy: free_port_on(ip),
                imap_internal: free_port_on(ip),
                pop3_internal: free_port_on(ip),
                daemon: None,
                starts: 0,
            });
        }
        let mut c = Cluster {
            root,
            shared,
            nats,
            nodes,
            haproxy: None,
            settings,
            mounts,
        };
        for i in 0..c.nodes.len() {
            let text = c.node_config(i).text();
            std::fs::write(&c.nodes[i].config_path, text).unwrap();
        }
        for i in 0..c.nodes.len() {
            c.nodes[i].spawn(&[]);
        }
        c.start_haproxy();
        c.wait_haproxy_up(&["node1", "node2"]);
        c
    }

    /// The config of node `i`.
    pub fn node_config(&self, i: usize) -> TestConfig {
        let n = &self.nodes[i];
        let s = &self.settings;
        let ip = n.ip;
        let mut cluster = format!(
            "[proxy]\ntrusted_networks = [\"127.0.0.1/32\"]\n\n\
             [metrics]\nlisten = \"{ip}:0\"\n\n\
             [cluster]\nnode_id = \"{}\"\nsecret = \"{SECRET}\"\nnats_url = \"{}\"\n\
             heartbeat_ms = {}\ndead_after_ms = {}\n",
            n.id,
            self.nats.url(),
            s.heartbeat_ms,
            s.dead_after_ms
        );
        for m in &self.nodes {
            cluster.push_str(&format!(
                "\n[[cluster.nodes]]\nid = \"{}\"\nimap = \"{}:{}\"\npop3 = \"{}:{}\"\n",
                m.id, m.ip, m.imap_internal, m.ip, m.pop3_internal
            ));
        }
        if s.lmtp {
            cluster = format!("[lmtp]\nlisten = [\"{ip}:0\"]\n\n{cluster}");
        }
        let at = |p: u16| vec![format!("{ip}:{p}")];
        TestConfig {
            imap_listen: at(0),
            pop3_listen: at(0),
            imap_proxy_listen: at(n.imap_proxy),
            imap_proxy_tls_listen: at(n.imaps_proxy),
            pop3_proxy_listen: at(n.pop3_proxy),
            pop3_proxy_tls_listen: at(n.pop3s_proxy),
            users_file: Some("users".into()),
            shutdown_grace_secs: Some(2),
            max_connections: Some(4000),
            max_connections_per_ip: Some(4000),
            extra_limits: s.extra_limits.clone(),
            imap_log: LogValues {
                level: Some(s.log_level),
                path: Some(n.imap_log_dir()),
            },
            pop3_log: LogValues {
                level: Some(s.log_level),
                path: Some(n.pop3_log_dir()),
            },
            extra_server: format!(
                "store_watch = {}\nrequire_data_marker = true",
                s.store_watch && s.fuse
            ),
            extra_imap: format!("idle_check_interval_secs = {}", s.idle_check_interval_secs),
            extra_toml: cluster,
            ..TestConfig::new(n.dir.join("data"))
        }
    }

    pub fn node(&self, id: &str) -> &Node {
        self.nodes.iter().find(|n| n.id == id).expect("a node")
    }

    pub fn node_mut(&mut self, id: &str) -> &mut Node {
        self.nodes.iter_mut().find(|n| n.id == id).expect("a node")
    }

    /// The `[[cluster.nodes]]` list as the crate sees it (for the ring).
    pub fn cluster_nodes(&self) -> Vec<mailserver::config::cluster::ClusterNode> {
        self.nodes
            .iter()
            .map(|n| mailserver::config::cluster::ClusterNode {
                id: n.id.clone(),
                imap: format!("{}:{}", n.ip, n.imap_internal).parse().unwrap(),
                pop3: format!("{}:{}", n.ip, n.pop3_internal).parse().unwrap(),
            })
            .collect()
    }

    /// The owner of `user` when the nodes `live` are live (rendezvous order).
    pub fn owner(&self, user: &str, live: &[&str]) -> String {
        let nodes = self.cluster_nodes();
        mailserver::cluster::ring::owner(&nodes, user, |n| live.contains(&n.id.as_str()))
            .expect("a live node")
            .id
            .clone()
    }

    /// SIGKILL of node `id`.
    pub fn kill9(&mut self, id: &str) {
        self.node_mut(id).kill9();
    }

    /// Starts node `id` again on the same config (waits until it is ready).
    pub fn restart(&mut self, id: &str) {
        let n = self.node_mut(id);
        assert!(!n.is_running(), "{id} is running");
        n.spawn(&[]);
    }

    /// Waits (bounded) until HAProxy's IMAP and POP3 backends have exactly the servers `up`
    /// UP (the others DOWN or MAINT).
    pub fn wait_haproxy_up(&self, up: &[&str]) {
        let h = self.haproxy.as_ref().expect("haproxy");
        wait_for(&format!("HAProxy to see exactly {up:?} UP"), WAIT, || {
            let rows = haproxy_stat(&h.stats)?;
            let ok = ["imap", "pop3", "imaps", "pop3s"].iter().all(|px| {
                self.nodes.iter().all(|n| {
                    let st = rows
                        .iter()
                        .find(|r| r.0 == *px && r.1 == n.id)
                        .map(|r| r.2.as_str())
                        .unwrap_or("");
                    if up.contains(&n.id.as_str()) {
                        st == "UP"
                    } else {
                        st.starts_with("DOWN") || st == "MAINT"
                    }
                })
            });
            if ok {
                Ok(())
            } else {
                Err(format!("{rows:?}"))
            }
        })
    }

    fn start_haproxy(&mut self) {
        let hdir = self.root.path().join("haproxy");
        std::fs::create_dir_all(&hdir).unwrap();
        let fronts = [
            free_port_on("127.0.0.1"),
            free_port_on("127.0.0.1"),
            free_port_on("127.0.0.1"),
            free_port_on("127.0.0.1"),
        ];
        let stats = hdir.join("stats.sock");
        let cfg = haproxy_cluster_config(&self.nodes, fronts, &stats);
        let cfg_path = hdir.join("haproxy.cfg");
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
        let log = hdir.join("haproxy.log");
        let child = Command::new("haproxy")
            .arg("-f")
            .arg(&cfg_path)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::from(
                std::fs::File::create(hdir.join("stderr")).unwrap(),
            ))
            .spawn()
            .unwrap();
        self.haproxy = Some(Haproxy {
            child,
            stats,
            config: cfg,
            imap: fronts[0],
            imaps: fronts[1],
            pop3: fronts[2],
            pop3s: fronts[3],
            log,
        });
    }

    pub fn haproxy(&self) -> &Haproxy {
        self.haproxy.as_ref().unwrap()
    }

    /// HAProxy's log (stdout and stderr), for failure messages.
    pub fn haproxy_log(&self) -> String {
        let h = self.haproxy();
        let mut t = std::fs::read_to_string(&h.log).unwrap_or_default();
        t.push_str(&std::fs::read_to_string(h.log.with_file_name("stderr")).unwrap_or_default());
        format!("---- haproxy ----\n{t}")
    }

    /// Both nodes' daemon logs, for failure messages.
    pub fn logs(&self) -> String {
        let mut t = String::new();
        for n in &self.nodes {
            t.push_str(&format!("---- {} ----\n{}\n", n.id, n.log_text()));
        }
        t
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.haproxy = None;
        for n in &mut self.nodes {
            n.kill9();
        }
        self.nats.stop();
        // The daemons are gone: nothing holds the mounts.
        self.mounts.clear();
    }
}

/// `text` with `from` replaced by `to`, which must occur exactly `n` times (so a change to
/// the shipped file that the harness no longer follows fails here).
fn swap(text: &str, from: &str, to: &str, n: usize) -> String {
    assert_eq!(
        text.matches(from).count(),
        n,
        "{from:?} in deploy/haproxy/haproxy-cluster.cfg"
    );
    text.replace(from, to)
}

/// `deploy/haproxy/haproxy-cluster.cfg` for the loopback cluster: a `global` without daemon,
/// chroot or user (stats on a socket), frontends on `fronts` (imap, imaps, pop3, pop3s) on
/// 127.0.0.1, the servers at the nodes' PROXY listeners.
pub fn haproxy_cluster_config(nodes: &[Node], fronts: [u16; 4], stats: &Path) -> String {
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/haproxy/haproxy-cluster.cfg"),
    )
    .unwrap();
    let global_at = shipped.find("\nglobal\n").expect("a global section") + 1;
    let defaults_at = shipped.find("\ndefaults\n").expect("a defaults section") + 1;
    let global = format!(
        "global\n    log stdout format raw local0 info\n    stats socket {} mode 600 level admin\n\n",
        stats.display()
    );
    let mut cfg = format!(
        "{}{global}{}",
        &shipped[..global_at],
        &shipped[defaults_at..]
    );
    for (bind, port) in ["bind :143\n", "bind :993\n", "bind :110\n", "bind :995\n"]
        .iter()
        .zip(fronts)
    {
        cfg = swap(&cfg, bind, &format!("bind 127.0.0.1:{port}\n"), 1);
    }
    for (shipped_ip, n) in ["10.0.0.11", "10.0.0.12"].iter().zip(nodes) {
        for (port, ours) in [
            ("10143", n.imap_proxy),
            ("10993", n.imaps_proxy),
            ("10110", n.pop3_proxy),
            ("10995", n.pop3s_proxy),
        ] {
            cfg = swap(
                &cfg,
                &format!("{shipped_ip}:{port}\n"),
                &format!("{}:{ours}\n", n.ip),
                1,
            );
        }
    }
    // The TLS backends' checks go to the plain PROXY listener of the same node: with
    // ports that differ per node, one `check port` per server.
    cfg = swap(&cfg, "check port 10143 ", "", 1);
    cfg = swap(&cfg, "check port 10110 ", "", 1);
    for n in nodes {
        cfg = swap(
            &cfg,
            &format!("{}:{}\n", n.ip, n.imaps_proxy),
            &format!("{}:{} check port {}\n", n.ip, n.imaps_proxy, n.imap_proxy),
            1,
        );
        cfg = swap(
            &cfg,
            &format!("{}:{}\n", n.ip, n.pop3s_proxy),
            &format!("{}:{} check port {}\n", n.ip, n.pop3s_proxy, n.pop3_proxy),
            1,
        );
    }
    cfg
}

/// Runs a Python 3 client script with a hard bound (`timeout`); returns (success, stdout,
/// stderr).
pub fn python_bounded(secs: u32, script: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("timeout")
        .arg(secs.to_string())
        .arg("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts a Python 3 client script in the background (stdout/stderr to files in `dir`).
pub fn python_spawn(dir: &Path, name: &str, script: &str, args: &[&str]) -> Child {
    std::fs::write(dir.join(format!("{name}.py")), script).unwrap();
    Command::new("python3")
        .arg(dir.join(format!("{name}.py")))
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join(format!("{name}.out"))).unwrap())
        .stderr(std::fs::File::create(dir.join(format!("{name}.err"))).unwrap())
        .spawn()
        .expect("python3")
}

/// Waits (bounded) for a child to exit; kills it and panics on timeout.
pub fn wait_child(c: &mut Child, within: Duration, what: &str) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = c.try_wait().unwrap() {
            return st;
        }
        if start.elapsed() > within {
            kill_child(c);
            panic!("{what} did not finish in {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
