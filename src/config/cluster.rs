//! `[cluster]`: the nodes that share one `data_dir`, this node's name among them, the shared
//! secret of their internal listeners and the NATS server that carries heartbeats and change
//! events (README.md, "Cluster"). Without the table nothing changes: the daemon is one node
//! that owns every user.
//!
//! ```toml
//! [cluster]
//! node_id = "node1"                  # default: this machine's host name (a StatefulSet pod's name)
//! secret_file = "cluster.secret"     # or secret = "...", at least 16 bytes
//! nats_url = "nats://127.0.0.1:4222" # optional: without it every node is taken as live
//! # nats_url = "tls://user:password@nats.example:4222"   # TLS; user and password or token
//! # nats_ca_file = "/etc/mailserver/nats-ca.pem"        # the CA NATS' certificate is checked with
//! # nats_cert_file / nats_key_file                        # a client certificate (mutual TLS)
//! heartbeat_ms = 1000
//! dead_after_ms = 3000
//!
//! [[cluster.nodes]]
//! id = "node1"
//! imap = "10.0.0.11:10143"           # internal IMAP listener (PROXY v2 + master login)
//! pop3 = "10.0.0.11:10110"           # internal POP3 listener
//! ```
//!
//! A node's `imap`/`pop3` is `IP:PORT` or `NAME:PORT` (a DNS name, resolved at every
//! connection: a Kubernetes pod keeps its name, not its address). A node binds its own entry's
//! address when it is an IP, else `0.0.0.0:PORT`. The internal listeners accept connections
//! from the nodes' literal IPs and from `trusted_networks` (CIDRs: the pod network when nodes
//! are given by name).
//!
//! The whole table applies at restart only (a reload that changes it is logged as such).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::auth::Secret;

/// Default interval between two heartbeats of a node on NATS.
pub const DEFAULT_HEARTBEAT_MS: u64 = 1000;
/// Default silence after which a node is taken as dead.
pub const DEFAULT_DEAD_AFTER_MS: u64 = 3000;
/// Default timeout of a connection to another node's internal listener.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 1000;
/// Default prefix of every NATS subject the cluster uses (several clusters can share a NATS).
pub const DEFAULT_SUBJECT_PREFIX: &str = "mailserver";
/// The shortest secret accepted (bytes).
pub const MIN_SECRET_BYTES: usize = 16;

/// `nats_ca_file`, `nats_cert_file` and `nats_key_file` (the last two together).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatsTls {
    pub ca_file: Option<PathBuf>,
    pub client: Option<(PathBuf, PathBuf)>,
}

impl NatsTls {
    /// Whether the connection must be TLS (a `tls://` URL also makes it so).
    pub fn required(&self) -> bool {
        self.ca_file.is_some() || self.client.is_some()
    }
}

/// The credentials in the first of the comma-separated NATS URLs: `Some((user, Some(pass)))`
/// for `user:password@`, `Some((token, None))` for `token@` (async-nats reads neither from
/// the URL itself).
pub fn url_credentials(url: &str) -> Option<(String, Option<String>)> {
    let first = url.split(',').next()?.trim();
    let (_, rest) = first.split_once("://")?;
    let (userinfo, _) = rest.rsplit_once('@')?;
    Some(match userinfo.split_once(':') {
        Some((user, pass)) => (user.to_string(), Some(pass.to_string())),
        None => (userinfo.to_string(), None),
    })
}

/// `url` with the password or token of its `user:password@` / `token@` part replaced by
/// `***`, for logs and `check-config`.
pub fn redacted_url(url: &str) -> String {
    url.split(',')
        .map(|one| {
            let one = one.trim();
            let Some((scheme, rest)) = one.split_once("://") else {
                return one.to_string();
            };
            match rest.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
                    None => format!("{scheme}://***@{host}"),
                },
                None => one.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The validated `[cluster]` table.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// This node's `id`; one of `nodes`.
    pub node_id: String,
    /// Every node, in file order (ownership does not depend on the order: rendezvous hashing).
    pub nodes: Vec<ClusterNode>,
    /// The master-login secret the internal listeners accept from other nodes.
    pub secret: Secret<String>,
    /// Where the secret came from (`check-config` shows this, never the secret).
    pub secret_file: Option<PathBuf>,
    /// `nats://host:port`; `None`: no membership traffic, every node is taken as live.
    pub nats_url: Option<String>,
    /// TLS to NATS (README.md, "Cluster"): the CA that signs the server's certificate and a
    /// client certificate and key; with any of them TLS is required.
    pub nats_tls: NatsTls,
    /// Prefix of the NATS subjects (`<prefix>.heartbeat`, `<prefix>.changed`, ...).
    pub subject_prefix: String,
    pub heartbeat: Duration,
    pub dead_after: Duration,
    /// Timeout of a connection to another node's internal listener before trying the next.
    pub connect_timeout: Duration,
    /// Besides the nodes' literal IPs, who may connect to the internal listeners.
    pub trusted_networks: Vec<super::cidr::Cidr>,
}

impl PartialEq for ClusterSettings {
    fn eq(&self, o: &Self) -> bool {
        self.node_id == o.node_id
            && self.nodes == o.nodes
            && self.secret.expose() == o.secret.expose()
            && self.secret_file == o.secret_file
            && self.nats_url == o.nats_url
            && self.nats_tls == o.nats_tls
            && self.subject_prefix == o.subject_prefix
            && self.heartbeat == o.heartbeat
            && self.dead_after == o.dead_after
            && self.connect_timeout == o.connect_timeout
            && self.trusted_networks == o.trusted_networks
    }
}

impl ClusterSettings {
    /// This node's entry.
    pub fn this_node(&self) -> &ClusterNode {
        self.nodes
            .iter()
            .find(|n| n.id == self.node_id)
            .expect("validated: node_id is one of the nodes")
    }

    /// Whether an internal listener accepts a connection from `ip`: a node's literal IP or
    /// one of `trusted_networks`.
    pub fn is_node_ip(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nodes
            .iter()
            .any(|n| n.imap.ip() == Some(ip) || n.pop3.ip() == Some(ip))
            || self.trusted_networks.iter().any(|c| c.contains(ip))
    }
}

/// One `[[cluster.nodes]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    pub id: String,
    /// Internal IMAP listener: takes a PROXY v2 header and a master login with the cluster
    /// secret from the other nodes; never proxies again.
    pub imap: NodeAddr,
    /// Internal POP3 listener, same rules.
    pub pop3: NodeAddr,
}

/// A node's internal listener address: `IP:PORT` or `NAME:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddr {
    /// An IP literal (without brackets) or a DNS name.
    pub host: String,
    pub port: u16,
}

impl NodeAddr {
    /// Parses `IP:PORT`, `[V6]:PORT` or `NAME:PORT`.
    pub fn parse(s: &str) -> Result<NodeAddr, String> {
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(NodeAddr {
                host: a.ip().to_string(),
                port: a.port(),
            });
        }
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?} is not HOST:PORT"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{s:?}: {port:?} is not a port number"))?;
        let name_ok = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !name_ok {
            return Err(format!("{s:?}: {host:?} is neither an IP address nor a DNS name"));
        }
        Ok(NodeAddr {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// The IP when the host is a literal.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// What this node binds for its own entry: the IP, or every IPv4 address for a name.
    pub fn bind_addr(&self) -> SocketAddr {
        SocketAddr::new(
            self.ip().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            self.port,
        )
    }

    /// What `TcpStream::connect` takes (a name is resolved at every connection).
    pub fn target(&self) -> (&str, u16) {
        (&self.host, self.port)
    }
}

impl std::str::FromStr for NodeAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<NodeAddr, String> {
        NodeAddr::parse(s)
    }
}

impl std::fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ip() {
            Some(IpAddr::V6(v6)) => write!(f, "[{v6}]:{}", self.port),
            _ => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    node_id: Option<Spanned<String>>,
    #[serde(default)]
    nodes: Vec<RawNode>,
    secret: Option<Spanned<String>>,
    secret_file: Option<Spanned<String>>,
    nats_url: Option<Spanned<String>>,
    nats_ca_file: Option<Spanned<String>>,
    nats_cert_file: Option<Spanned<String>>,
    nats_key_file: Option<Spanned<String>>,
    subject_prefix: Option<Spanned<String>>,
    heartbeat_ms: Option<Spanned<u64>>,
    dead_after_ms: Option<Spanned<u64>>,
    connect_timeout_ms: Option<Spanned<u64>>,
    #[serde(default)]
    trusted_networks: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNode {
    id: Spanned<String>,
    imap: Spanned<String>,
    pop3: Spanned<String>,
}

impl RawCluster {
    /// This node's internal listen addresses (the ones it binds), for the "listed twice"
    /// check against the other listeners.
    pub(super) fn listen_addrs_of_self(&self) -> impl Iterator<Item = &Spanned<String>> {
        let me = node_id_or_hostname(self.node_id.as_ref().map(|s| s.get_ref().as_str()));
        self.nodes
            .iter()
            .filter(move |n| *n.id.get_ref() == me)
            .flat_map(|n| [&n.imap, &n.pop3])
    }
}

/// `node_id` as written, or this machine's host name (`/proc/sys/kernel/hostname`, which
/// is what gethostname(2) returns; a StatefulSet pod's name).
fn node_id_or_hostname(id: Option<&str>) -> String {
    match id {
        Some(id) => id.to_string(),
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default(),
    }
}

/// What [`check`] needs of the config checker (implemented by `Checker` in `mod.rs`; a
/// trait so this file does not import its parent).
pub(super) trait Checks {
    fn error<T>(&mut self, at: &Spanned<T>, msg: impl std::fmt::Display);
    fn path(&mut self, key: &str, v: &Spanned<String>) -> PathBuf;
    fn error_count(&self) -> usize;
    /// An error about the table as a whole (no value to point at).
    fn error_at_start(&mut self, msg: &str);
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
}

/// Validates `[cluster]`; errors go to the checker, `None` when any was found.
pub(super) fn check(c: &mut impl Checks, raw: &RawCluster) -> Option<ClusterSettings> {
    let before = c.error_count();
    // Errors about this node point at `node_id`, or at the first node when it is absent.
    let anchor: &Spanned<String> = match (&raw.node_id, raw.nodes.first()) {
        (Some(n), _) => n,
        (None, Some(first)) => &first.id,
        (None, None) => {
            c.error_at_start("cluster: no node_id and no [[cluster.nodes]] entry");
            return None;
        }
    };
    let node_id = node_id_or_hostname(raw.node_id.as_ref().map(|s| s.get_ref().as_str()));
    if !valid_id(&node_id) {
        let what = if raw.node_id.is_some() {
            "cluster.node_id"
        } else {
            "cluster.node_id (absent, so the host name)"
        };
        c.error(
            anchor,
            format!(
                "{what} {node_id:?} is not a node name (1 to 64 letters, digits, '-', '.', '_')"
            ),
        );
    }
    let mut nodes: Vec<ClusterNode> = Vec::new();
    for n in &raw.nodes {
        let id = n.id.get_ref().clone();
        if !valid_id(&id) {
            c.error(
                &n.id,
                format!("cluster.nodes.id {id:?} is not a node name (1 to 64 letters, digits, '-', '.', '_')"),
            );
        } else if nodes.iter().any(|o| o.id == id) {
            c.error(&n.id, format!("cluster.nodes: node {id:?} is listed twice"));
        }
        let mut addr = |key: &str, v: &Spanned<String>| -> NodeAddr {
            let a = match NodeAddr::parse(v.get_ref()) {
                Ok(a) => a,
                Err(e) => {
                    c.error(v, format!("{key}: {e}"));
                    return NodeAddr {
                        host: String::new(),
                        port: 0,
                    };
                }
            };
            if a.port == 0 {
                c.error(
                    v,
                    format!("{key}: the other nodes connect to it, so port 0 is not allowed"),
                );
            }
            if let Some(ip) = a.ip().filter(|ip| ip.is_unspecified()) {
                c.error(
                    v,
                    format!(
                        "{key}: the other nodes connect to it, so it must be a real address, \
                         not {ip}"
                    ),
                );
            }
            a
        };
        let imap = addr("cluster.nodes.imap", &n.imap);
        let pop3 = addr("cluster.nodes.pop3", &n.pop3);
        for (a, at) in [(&imap, &n.imap), (&pop3, &n.pop3)] {
            let taken = nodes.iter().any(|o| o.imap == *a || o.pop3 == *a)
                || (imap == pop3 && std::ptr::eq(at, &n.pop3));
            if taken && a.port != 0 {
                c.error(at, format!("cluster.nodes: address {a} is listed twice"));
            }
        }
        nodes.push(ClusterNode { id, imap, pop3 });
    }
    if raw.nodes.is_empty() {
        c.error(
            anchor,
            "cluster: no [[cluster.nodes]] entry (list every node, this one included)",
        );
    } else if !nodes.iter().any(|n| n.id == node_id) {
        let what = if raw.node_id.is_some() {
            "cluster.node_id"
        } else {
            "cluster.node_id (absent, so the host name)"
        };
        c.error(
            anchor,
            format!("{what} {node_id:?} is not one of the [[cluster.nodes]] ids"),
        );
    }
    let mut trusted_networks = Vec::new();
    for s in &raw.trusted_networks {
        match super::cidr::Cidr::parse(s.get_ref()) {
            Ok(n) => trusted_networks.push(n),
            Err(e) => c.error(s, format!("cluster.trusted_networks: {e}")),
        }
    }

    let (secret, secret_file) = match (&raw.secret, &raw.secret_file) {
        (Some(s), None) => (Some((s.get_ref().clone(), s)), None),
        (None, Some(f)) => {
            let path = c.path("cluster.secret_file", f);
            match std::fs::read(&path) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(text) => {
                        let text = text.trim_end_matches(['\n', '\r']).to_string();
                        (Some((text, f)), Some(path))
                    }
                    Err(_) => {
                        c.error(
                            f,
                            format!("cluster.secret_file {}: not UTF-8 text", path.display()),
                        );
                        (None, Some(path))
                    }
                },
                Err(e) => {
                    c.error(
                        f,
                        format!("cluster.secret_file {}: {e}", path.display()),
                    );
                    (None, Some(path))
                }
            }
        }
        (Some(s), Some(_)) => {
            c.error(s, "cluster: set secret or secret_file, not both");
            (None, None)
        }
        (None, None) => {
            c.error(
                anchor,
                "cluster: a secret (or secret_file) shared by every node is required",
            );
            (None, None)
        }
    };
    let secret = match secret {
        Some((s, at)) if s.len() < MIN_SECRET_BYTES => {
            c.error(
                at,
                format!("cluster: the secret must be at least {MIN_SECRET_BYTES} bytes"),
            );
            None
        }
        Some((s, at)) if s.chars().any(|ch| ch.is_control() || ch == ' ') => {
            c.error(
                at,
                "cluster: the secret must not hold spaces or control characters",
            );
            None
        }
        Some((s, _)) => Some(s),
        None => None,
    };

    let nats_url = raw.nats_url.as_ref().map(|u| {
        let s = u.get_ref();
        let ok = s.split(',').all(|one| {
            let rest = one
                .trim()
                .strip_prefix("nats://")
                .or_else(|| one.trim().strip_prefix("tls://"));
            rest.is_some_and(|r| !r.is_empty() && !r.contains(char::is_whitespace))
        });
        if !ok {
            c.error(
                u,
                format!("cluster.nats_url {s:?} is not a NATS URL (nats://HOST:PORT, comma-separated)"),
            );
        }
        s.clone()
    });
    let mut tls_file = |key: &str, v: &Option<Spanned<String>>| -> Option<PathBuf> {
        let f = v.as_ref()?;
        let path = c.path(&format!("cluster.{key}"), f);
        if let Err(e) = std::fs::metadata(&path) {
            c.error(f, format!("cluster.{key} {}: {e}", path.display()));
        }
        Some(path)
    };
    let ca_file = tls_file("nats_ca_file", &raw.nats_ca_file);
    let cert_file = tls_file("nats_cert_file", &raw.nats_cert_file);
    let key_file = tls_file("nats_key_file", &raw.nats_key_file);
    let client = match (&cert_file, &key_file) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        (None, None) => None,
        _ => {
            let at = raw.nats_cert_file.as_ref().or(raw.nats_key_file.as_ref());
            if let Some(at) = at {
                c.error(
                    at,
                    "cluster.nats_cert_file and cluster.nats_key_file go together",
                );
            }
            None
        }
    };
    let nats_tls = NatsTls { ca_file, client };
    if nats_tls.required() && nats_url.is_none() {
        if let Some(at) = raw
            .nats_ca_file
            .as_ref()
            .or(raw.nats_cert_file.as_ref())
            .or(raw.nats_key_file.as_ref())
        {
            c.error(at, "cluster: NATS TLS files without cluster.nats_url");
        }
    }
    let subject_prefix = match &raw.subject_prefix {
        Some(p) if !valid_id(p.get_ref()) || p.get_ref().contains('.') => {
            c.error(
                p,
                "cluster.subject_prefix must be 1 to 64 letters, digits, '-' or '_'",
            );
            String::new()
        }
        Some(p) => p.get_ref().clone(),
        None => DEFAULT_SUBJECT_PREFIX.to_string(),
    };
    let mut ms = |key: &str, v: &Option<Spanned<u64>>, default: u64| -> Duration {
        match v {
            Some(n) if *n.get_ref() < 10 || *n.get_ref() > 3_600_000 => {
                c.error(
                    n,
                    format!("cluster.{key} must be between 10 and 3600000 (an hour)"),
                );
                Duration::from_millis(default)
            }
            Some(n) => Duration::from_millis(*n.get_ref()),
            None => Duration::from_millis(default),
        }
    };
    let heartbeat = ms("heartbeat_ms", &raw.heartbeat_ms, DEFAULT_HEARTBEAT_MS);
    let dead_after = ms("dead_after_ms", &raw.dead_after_ms, DEFAULT_DEAD_AFTER_MS);
    let connect_timeout = ms(
        "connect_timeout_ms",
        &raw.connect_timeout_ms,
        DEFAULT_CONNECT_TIMEOUT_MS,
    );
    if dead_after <= heartbeat {
        let at = raw.dead_after_ms.as_ref().or(raw.heartbeat_ms.as_ref());
        match at {
            Some(at) => c.error(
                at,
                "cluster.dead_after_ms must be longer than cluster.heartbeat_ms",
            ),
            None => unreachable!("the defaults are ordered"),
        }
    }
    if c.error_count() > before {
        return None;
    }
    Some(ClusterSettings {
        node_id,
        nodes,
        secret: Secret::new(secret?),
        secret_file,
        nats_url,
        nats_tls,
        subject_prefix,
        heartbeat,
        dead_after,
        connect_timeout,
        trusted_networks,
    })
}
