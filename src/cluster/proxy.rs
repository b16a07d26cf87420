//! The login proxy's front side (README.md, "Cluster"): after a password is verified on a
//! node that does not own the user, connect to the owner's internal listener, introduce the
//! client there (PROXY v2 header, master login) and hand the connection to the driver's
//! relay (`crate::conn`).
//!
//! [`route`] walks the user's live candidates in rendezvous order: reaching this node means
//! "serve locally"; a node that refuses, times out, sends no greeting or refuses the master
//! login is skipped (logged, counted). The exchange is a few fixed lines, read by a bounded
//! line reader ([`LineReader`]) that keeps whatever the owner sends after its login reply
//! for the relay.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use proxy_header::{ProxiedAddress, ProxyHeader, SslInfo, Tlv};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::internal::{front_value, FRONT_TLV, MASTER_USER};
use super::Cluster;
use crate::config::cluster::ClusterNode;
use crate::service::Service;

/// The longest line accepted from the owner during the exchange.
pub const MAX_LINE: usize = 8192;
/// Bound of the exchange after the connect (greeting and master login); the connect itself
/// is bounded by `[cluster] connect_timeout_ms`.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// A logged-in connection to the owner, ready to relay.
#[derive(Debug)]
pub struct Backend {
    pub stream: TcpStream,
    /// The user logged in there (canonical name).
    pub user: String,
    /// The owner's node id and internal listener.
    pub node: String,
    pub addr: SocketAddr,
    /// IMAP: the owner's capability list from its login reply (`None`: it sent none).
    pub capability: Option<String>,
    /// Octets the owner sent after its login reply (normally none): relayed first.
    pub rest: Vec<u8>,
}

/// Where a verified login is served.
#[derive(Debug)]
pub enum Route {
    /// Here: this node comes first among the reachable candidates.
    Local,
    /// At another node, through this connection.
    Proxied(Box<Backend>),
    /// No candidate could be reached (and this node is not among them).
    Unavailable,
}

/// Who the client is, as the owner must see it.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub service: Service,
    /// The client's address (its real one: on a PROXY listener the header's source).
    pub remote: SocketAddr,
    /// The client talks TLS to this node (implicit, STARTTLS, or at a load balancer).
    pub tls: bool,
    /// The front session's protocol-log id.
    pub session_id: u64,
}

/// Where `user` (already authenticated here, canonical name) is served: see the module doc.
pub async fn route(cluster: &Cluster, user: &str, client: Client) -> Route {
    let metrics = crate::metrics::get();
    for node in cluster.candidates(user) {
        if node.id == cluster.node_id() {
            return Route::Local;
        }
        let target = match client.service {
            Service::Imap4 => &node.imap,
            Service::Pop3 => &node.pop3,
            Service::Lmtp => return Route::Local,
        };
        let timeout = cluster.settings().connect_timeout;
        let attempt = async {
            // A name is resolved at every connection (a pod keeps its name, not its address).
            let addr = tokio::time::timeout(timeout, resolve(target))
                .await
                .map_err(|_| "name lookup timed out".to_string())?
                .map_err(|e| format!("name lookup: {e}"))?;
            let stream = tokio::time::timeout(timeout, connect_from(cluster, client.service, addr))
                .await
                .map_err(|_| "connect timed out".to_string())?
                .map_err(|e| format!("connect: {e}"))?;
            tokio::time::timeout(EXCHANGE_TIMEOUT, introduce(cluster, node, stream, addr, user, client))
                .await
                .map_err(|_| "no answer in time".to_string())?
        };
        match attempt.await {
            Ok(b) => {
                metrics.proxied_login(client.service, &node.id);
                return Route::Proxied(Box::new(b));
            }
            Err(e) => {
                metrics.proxy_failure(client.service, &node.id);
                tracing::warn!(
                    "cluster: cannot proxy {} login of <{user}> to {} ({target}): {e}; trying the next node",
                    client.service.header_name(),
                    node.id
                );
            }
        }
    }
    Route::Unavailable
}

/// The first address of `target` (an IP literal needs no lookup).
async fn resolve(target: &crate::config::cluster::NodeAddr) -> std::io::Result<SocketAddr> {
    if let Some(ip) = target.ip() {
        return Ok(SocketAddr::new(ip, target.port));
    }
    tokio::net::lookup_host(target.target())
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{} has no address", target.host)))
}

/// Connects to `addr` from this node's own internal-listener address (the owner accepts
/// only the nodes' addresses; the kernel's choice of source could be another one).
async fn connect_from(cluster: &Cluster, service: Service, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let me = cluster.settings().this_node();
    let own = match service {
        Service::Pop3 => me.pop3.ip(),
        _ => me.imap.ip(),
    };
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // A wildcard or other-family listen address leaves the choice to the kernel.
    if let Some(own) = own.filter(|o| !o.is_unspecified() && o.is_ipv4() == addr.is_ipv4()) {
        socket.bind(SocketAddr::new(own, 0))?;
    }
    socket.connect(addr).await
}

/// The PROXY v2 header introducing `client` to the owner listening at `dest`.
pub fn header(cluster_node: &str, client: Client, dest: SocketAddr) -> Vec<u8> {
    let mut tlvs = vec![Tlv::Custom(FRONT_TLV, front_value(cluster_node, client.session_id).into())];
    if client.tls {
        tlvs.push(Tlv::Ssl(SslInfo::new(true, false, false, 0)));
    }
    // A v4 client to a v6 listener (or the reverse) cannot share one address family.
    let dest = match (client.remote, dest) {
        (SocketAddr::V4(_), SocketAddr::V6(_)) => SocketAddr::from(([0, 0, 0, 0], 0)),
        (SocketAddr::V6(_), SocketAddr::V4(_)) => SocketAddr::from(([0u16; 8], 0)),
        _ => dest,
    };
    let addr = ProxiedAddress::stream(client.remote, dest);
    let mut out = Vec::new();
    ProxyHeader::with_tlvs(Some(addr), tlvs)
        .encode_v2(&mut out)
        .expect("a v2 header with two TLVs fits");
    out
}

/// The SASL PLAIN initial response of the master login for `user`.
pub fn master_response(user: &str, secret: &str) -> String {
    let msg = format!("{user}\0{MASTER_USER}\0{secret}");
    base64::engine::general_purpose::STANDARD.encode(msg)
}

/// Header, greeting, master login; the backend ready to relay.
async fn introduce(
    cluster: &Cluster,
    node: &ClusterNode,
    mut stream: TcpStream,
    addr: SocketAddr,
    user: &str,
    client: Client,
) -> Result<Backend, String> {
    let _ = stream.set_nodelay(true);
    let io = |e: std::io::Error| e.to_string();
    stream
        .write_all(&header(cluster.node_id(), client, addr))
        .await
        .map_err(io)?;
    let mut lines = LineReader::default();
    let greeting = lines.line(&mut stream).await?;
    let ok_greeting = match client.service {
        Service::Imap4 => greeting.starts_with(b"* OK"),
        _ => greeting.starts_with(b"+OK"),
    };
    if !ok_greeting {
        return Err(format!("unexpected greeting {:?}", printable(&greeting)));
    }
    let ir = master_response(user, cluster.settings().secret.expose());
    let capability = match client.service {
        Service::Imap4 => {
            let cmd = format!("C1 AUTHENTICATE PLAIN {ir}\r\n");
            stream.write_all(cmd.as_bytes()).await.map_err(io)?;
            // Untagged lines may come first; bounded by the line limit and the timeout.
            loop {
                let l = lines.line(&mut stream).await?;
                if l.starts_with(b"C1 OK") {
                    break capability_of(&l);
                }
                if l.starts_with(b"C1 ") {
                    return Err(format!("master login refused: {:?}", printable(&l)));
                }
            }
        }
        _ => {
            let cmd = format!("AUTH PLAIN {ir}\r\n");
            stream.write_all(cmd.as_bytes()).await.map_err(io)?;
            let l = lines.line(&mut stream).await?;
            if !l.starts_with(b"+OK") {
                return Err(format!("master login refused: {:?}", printable(&l)));
            }
            None
        }
    };
    Ok(Backend {
        stream,
        user: user.to_string(),
        node: node.id.clone(),
        addr,
        capability,
        rest: lines.buf,
    })
}

/// `[CAPABILITY ...]` of a tagged OK line.
fn capability_of(line: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(line).ok()?;
    let start = text.find("[CAPABILITY ")? + "[CAPABILITY ".len();
    let len = text[start..].find(']')?;
    Some(text[start..start + len].to_string())
}

fn printable(line: &[u8]) -> String {
    String::from_utf8_lossy(line).chars().filter(|c| !c.is_control()).take(200).collect()
}

/// CRLF lines from a stream, each at most [`MAX_LINE`] octets; what follows the last line
/// taken stays in `buf`.
#[derive(Debug, Default)]
pub struct LineReader {
    pub buf: Vec<u8>,
}

impl LineReader {
    /// The next complete line in `buf` (without CRLF), if any; an over-long line is an error.
    pub fn take(&mut self) -> Result<Option<Vec<u8>>, String> {
        if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
            let line = self.buf[..i].to_vec();
            self.buf.drain(..i + 2);
            return Ok(Some(line));
        }
        if self.buf.len() > MAX_LINE {
            return Err("line too long".into());
        }
        Ok(None)
    }

    /// Reads until a whole line is there.
    pub async fn line<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<Vec<u8>, String> {
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(l) = self.take()? {
                return Ok(l);
            }
            let n = r.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed".into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_reader_at_every_chunk_size() {
        let input = b"* OK ready\r\n* CAPABILITY IMAP4rev1\r\nC1 OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\nextra";
        for chunk in 1..=input.len() {
            let mut r = LineReader::default();
            let mut lines = Vec::new();
            for piece in input.chunks(chunk) {
                r.buf.extend_from_slice(piece);
                while let Some(l) = r.take().unwrap() {
                    lines.push(l);
                }
            }
            assert_eq!(lines.len(), 3, "chunk {chunk}");
            assert_eq!(lines[2], b"C1 OK [CAPABILITY IMAP4rev1 IDLE] Logged in");
            assert_eq!(r.buf, b"extra", "chunk {chunk}");
        }
        let mut r = LineReader { buf: vec![b'a'; MAX_LINE + 1] };
        assert!(r.take().is_err());
        assert_eq!(
            capability_of(b"C1 OK [CAPABILITY IMAP4rev1 IDLE] Logged in").as_deref(),
            Some("IMAP4rev1 IDLE")
        );
        assert_eq!(capability_of(b"C1 OK Logged in"), None);
    }

    #[test]
    fn header_carries_the_client_tls_and_front_session() {
        let client = Client {
            service: Service::Imap4,
            remote: "192.0.2.7:40000".parse().unwrap(),
            tls: true,
            session_id: 0xabc,
        };
        let h = header("node1", client, "127.0.0.12:10143".parse().unwrap());
        let (parsed, used) = ProxyHeader::parse(&h, Default::default()).unwrap();
        assert_eq!(used, h.len());
        let a = parsed.proxied_address().unwrap();
        assert_eq!(a.source, client.remote);
        assert!(parsed.ssl().unwrap().client_ssl());
        let front = parsed.tlvs().find_map(|t| match t {
            Ok(Tlv::Custom(FRONT_TLV, v)) => Some(v.into_owned()),
            _ => None,
        });
        assert_eq!(front.unwrap(), b"node1 0000000000000abc");
        let plain = header("node1", Client { tls: false, ..client }, "127.0.0.12:1".parse().unwrap());
        let (parsed, _) = ProxyHeader::parse(&plain, Default::default()).unwrap();
        assert!(parsed.ssl().is_none());
    }
}
