//! Two cluster nodes on one shared `data_dir` (README.md, "Cluster"): node1 on 127.0.0.11,
//! node2 on 127.0.0.12 (all of 127/8 is loopback on Linux), every listener on a free port,
//! no `nats_url` (every node live: the static rendezvous order). Each node has its own
//! config directory, protocol-log directories and admin socket; the users file and the mail
//! store are shared.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use super::test_config::{LogValues, TestConfig};
use super::Daemon;

/// The cluster secret of the test nodes.
pub const SECRET: &str = "test-cluster-secret-0123456789";
/// The node ids and their addresses.
pub const NODES: [(&str, &str); 2] = [("node1", "127.0.0.11"), ("node2", "127.0.0.12")];
/// Password of every user [`users_owned_by`] makes.
pub const USER_PASS: &str = "pw-cluster";

/// The running nodes.
pub struct Cluster {
    /// Shared: `data/` (the store), `users`.
    pub root: tempfile::TempDir,
    /// `None` once stopped ([`Cluster::stop`]).
    pub nodes: Vec<Option<Daemon>>,
    /// Each node's internal listeners (IMAP, POP3).
    pub internal: Vec<(SocketAddr, SocketAddr)>,
    /// Each node's protocol-log directory.
    pub logs: Vec<PathBuf>,
    /// Each node's config file.
    pub configs: Vec<PathBuf>,
}

/// A port free on `ip` now.
pub fn free_port_on(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip.parse::<IpAddr>().unwrap(), 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The node (0 or 1) that owns `user` when both are live (`ring::score`, ties by id).
pub fn owner_of(user: &str) -> usize {
    let s: Vec<u64> = NODES
        .iter()
        .map(|(id, _)| mailserver::cluster::ring::score(id, user))
        .collect();
    usize::from(s[1] > s[0])
}

/// `n` user names owned by `node`.
pub fn users_owned_by(node: usize, n: usize) -> Vec<String> {
    (0..10_000)
        .map(|i| format!("cu{i}"))
        .filter(|u| owner_of(u) == node)
        .take(n)
        .collect()
}

impl Cluster {
    /// Starts both nodes with `users` (name, password) and protocol logs at `level`.
    pub fn start(users: &[(String, String)], level: u32) -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let users_text: String = users
            .iter()
            .map(|(u, p)| format!("{u}:{{PLAIN}}{p}\n"))
            .collect();
        std::fs::write(root.path().join("users"), users_text).unwrap();
        let internal: Vec<(SocketAddr, SocketAddr)> = NODES
            .iter()
            .map(|(_, ip)| {
                let a = |p: u16| format!("{ip}:{p}").parse().unwrap();
                (a(free_port_on(ip)), a(free_port_on(ip)))
            })
            .collect();
        let mut table = format!(
            "[cluster]\nnode_id = \"NODE\"\nsecret = \"{SECRET}\"\nconnect_timeout_ms = 2000\n"
        );
        for ((id, _), (imap, pop3)) in NODES.iter().zip(&internal) {
            table.push_str(&format!(
                "[[cluster.nodes]]\nid = \"{id}\"\nimap = \"{imap}\"\npop3 = \"{pop3}\"\n"
            ));
        }
        let mut logs = Vec::new();
        let mut configs = Vec::new();
        let mut nodes = Vec::new();
        for (id, ip) in NODES {
            let dir = tempfile::tempdir().unwrap();
            let log = root.path().join(format!("logs-{id}"));
            let config = node_config(
                root.path(),
                dir.path(),
                ip,
                &log,
                level,
                &table.replace("NODE", id),
                id,
            );
            let path = dir.path().join("mailserver.toml");
            config.write(&path);
            logs.push(log);
            configs.push(path.clone());
            nodes.push(Some(Daemon::spawn(dir, path, &[])));
        }
        Cluster {
            root,
            nodes,
            internal,
            logs,
            configs,
        }
    }

    pub fn node(&self, i: usize) -> &Daemon {
        self.nodes[i].as_ref().expect("node running")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// Stops node `i` (SIGTERM, waits for its exit).
    pub fn stop(&mut self, i: usize) {
        if let Some(mut d) = self.nodes[i].take() {
            d.stop();
        }
    }
}

fn node_config(
    root: &Path,
    dir: &Path,
    ip: &str,
    log: &Path,
    level: u32,
    table: &str,
    id: &str,
) -> TestConfig {
    let any = || vec![format!("{ip}:0")];
    let logs = || LogValues {
        level: Some(level),
        path: Some(log.to_path_buf()),
    };
    let admin = dir.join(format!("admin-{id}.sock"));
    TestConfig {
        imap_listen: any(),
        imap_tls_listen: any(),
        pop3_listen: any(),
        pop3_tls_listen: any(),
        users_file: Some(root.join("users").display().to_string()),
        shutdown_grace_secs: Some(5),
        imap_log: logs(),
        pop3_log: logs(),
        extra_toml: format!(
            "[admin]\nsocket = \"{}\"\n\n[metrics]\nlisten = \"{ip}:0\"\n\n{table}",
            admin.display()
        ),
        ..TestConfig::new(root.join("data"))
    }
}
