//! The PROXY protocol header (HAProxy's `proxy-protocol.txt`, versions 1 and 2) that a load
//! balancer sends first on a listener marked for it (README.md, "Behind HAProxy").
//!
//! Only listeners configured as PROXY listeners (`proxy_listen`, `proxy_tls_listen`) read a
//! header, and only from `[proxy] trusted_networks` (the accept loop checks that first,
//! `crate::server`); a listener without the mark never parses one. The header comes before
//! TLS and before the per-address limiter, so what follows sees the client's address.
//!
//! * [`HeaderReader`] is the framing, sans-IO: it says how many more octets it may take
//!   without reading past the header ([`Want::More`]), so the protocol stream after it (a
//!   TLS `ClientHello`, or nothing: IMAP and POP3 servers speak first) stays in the socket.
//!   v1 is at most 107 octets; v2 is 16 octets plus its declared length, refused above
//!   [`MAX_HEADER`] (HAProxy's headers with SSL TLVs are a few hundred octets).
//! * The header itself is decoded by the `proxy-header` crate (sans-IO: `parse` returns the
//!   header and the octets it used, or "too short"; typed SSL TLV).
//! * [`read_header`] drives it on a socket under a deadline ([`HEADER_TIMEOUT`]).
//!
//! `LOCAL` (v2, HAProxy's health checks) and v1 `UNKNOWN` carry no addresses: the socket's
//! stay. `PP2_TYPE_SSL` with `PP2_CLIENT_SSL` says the client reached the proxy over TLS
//! ([`Proxied::client_tls`]), which counts as TLS for the plaintext-login rule (as Dovecot's
//! `haproxy_trusted_networks` with the SSL TLV).

use std::net::SocketAddr;
use std::time::Duration;

use proxy_header::{ParseConfig, Protocol, ProxyHeader};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The v2 signature (12 octets).
const V2_SIG: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
/// The start of every v1 header.
const V1_SIG: &[u8] = b"PROXY ";
/// The shortest header of either version (`PROXY UNKNOWN\r\n`; v2 is at least 16): this many
/// octets can always be read without reading past the header.
const MIN_HEADER: usize = 15;
/// v1's limit (proxy-protocol.txt §2.1: 107 octets including CRLF).
pub const V1_MAX: usize = 107;
/// The largest v2 header accepted (16-octet fixed part, addresses and TLVs).
pub const MAX_HEADER: usize = 4096;
/// A header that has not arrived this long after the accept closes the connection.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// What a header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proxied {
    /// The client's address and the address it connected to (source, destination); `None`
    /// for v2 `LOCAL` and v1 `UNKNOWN` (and v2 `AF_UNIX`): the socket's addresses stay.
    pub addrs: Option<(SocketAddr, SocketAddr)>,
    /// v2 `PP2_TYPE_SSL` with `PP2_CLIENT_SSL`: the client's connection to the proxy is TLS.
    pub client_tls: bool,
}

/// Why a connection's header was refused (the connection is closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("no PROXY header (the connection does not start with a v1 or v2 signature)")]
    NotProxy,
    #[error("PROXY header too long (v1 over {V1_MAX} octets, v2 over {MAX_HEADER})")]
    TooBig,
    #[error("invalid PROXY header: {0}")]
    Invalid(String),
    #[error("connection closed before the end of the PROXY header")]
    Closed,
    #[error("no complete PROXY header within {} s", HEADER_TIMEOUT.as_secs())]
    Timeout,
    #[error("reading the PROXY header: {0}")]
    Io(String),
}

/// The reader's next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Read at most this many octets (at least 1) and [`HeaderReader::feed`] them.
    More(usize),
    /// The header is complete; every octet fed was part of it.
    Done(Proxied),
}

/// Sans-IO framing of one header: feed it what [`HeaderReader::want`] allows, never more.
#[derive(Debug, Default)]
pub struct HeaderReader {
    buf: Vec<u8>,
}

impl HeaderReader {
    /// Appends octets read from the connection (at most what the last `want` allowed).
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// How many more octets may be read, the decoded header, or why it is refused. Garbage
    /// is refused at its first octet that neither signature allows.
    pub fn want(&self) -> Result<Want, HeaderError> {
        let b = &self.buf[..];
        let v2 = b[..b.len().min(V2_SIG.len())] == V2_SIG[..b.len().min(V2_SIG.len())];
        let v1 = b[..b.len().min(V1_SIG.len())] == V1_SIG[..b.len().min(V1_SIG.len())];
        if !v1 && !v2 {
            return Err(HeaderError::NotProxy);
        }
        if b.len() < MIN_HEADER {
            return Ok(Want::More(MIN_HEADER - b.len()));
        }
        if v2 {
            if b.len() < 16 {
                return Ok(Want::More(16 - b.len()));
            }
            let total = 16 + u16::from_be_bytes([b[14], b[15]]) as usize;
            if total > MAX_HEADER {
                return Err(HeaderError::TooBig);
            }
            if b.len() < total {
                return Ok(Want::More(total - b.len()));
            }
        }
        match ProxyHeader::parse(b, ParseConfig::default()) {
            Ok((header, used)) if used == b.len() => Ok(Want::Done(proxied(&header)?)),
            Ok(_) => Err(HeaderError::Invalid("octets after the header".into())),
            // v2 is complete here: "too short" means addresses longer than its length.
            Err(proxy_header::Error::BufferTooShort) if v2 => Err(HeaderError::Invalid(
                "addresses longer than the header".into(),
            )),
            Err(proxy_header::Error::BufferTooShort) => {
                if b.len() >= V1_MAX {
                    return Err(HeaderError::TooBig);
                }
                // The line ends with CRLF: after a CR one octet may be its LF; otherwise at
                // least CR LF are still to come.
                let more = if b.ends_with(b"\r") { 1 } else { 2 };
                Ok(Want::More(more.min(V1_MAX - b.len())))
            }
            // At 107 octets without its CRLF proxy-header calls a v1 line invalid: it is too
            // long, unless a shorter prefix already shows it invalid (the verdict must not
            // depend on how the octets arrived: in smaller reads that prefix was judged).
            Err(e) if !v2 && b.len() >= V1_MAX => {
                match ProxyHeader::parse(&b[..V1_MAX - 1], ParseConfig::default()) {
                    Err(proxy_header::Error::BufferTooShort) => Err(HeaderError::TooBig),
                    _ => Err(HeaderError::Invalid(e.to_string())),
                }
            }
            Err(e) => Err(HeaderError::Invalid(e.to_string())),
        }
    }
}

fn proxied(header: &ProxyHeader<'_>) -> Result<Proxied, HeaderError> {
    let addrs = match header.proxied_address() {
        None => None,
        Some(a) if a.protocol == Protocol::Stream => Some((a.source, a.destination)),
        Some(_) => return Err(HeaderError::Invalid("not a TCP connection".into())),
    };
    Ok(Proxied {
        addrs,
        client_tls: header.ssl().is_some_and(|s| s.client_ssl()),
    })
}

/// Reads one header from `stream`, exactly its octets, within [`HEADER_TIMEOUT`] (`timeout`
/// in tests).
pub async fn read_header<R: AsyncRead + Unpin>(
    stream: &mut R,
    timeout: Duration,
) -> Result<Proxied, HeaderError> {
    read_raw(stream, timeout).await.map(|(p, _)| p)
}

/// A cluster internal listener's header (README.md, "Cluster"): v2 only, with the client's
/// addresses; returns it and the value of the TLV of type `tlv` if present.
pub async fn read_internal_header<R: AsyncRead + Unpin>(
    stream: &mut R,
    timeout: Duration,
    tlv: u8,
) -> Result<(Proxied, Option<Vec<u8>>), HeaderError> {
    let (p, raw) = read_raw(stream, timeout).await?;
    if !raw.starts_with(V2_SIG) {
        return Err(HeaderError::Invalid("not a v2 header".into()));
    }
    if p.addrs.is_none() {
        return Err(HeaderError::Invalid("no client address".into()));
    }
    Ok((p, custom_tlv(&raw, tlv)))
}

/// The value of the first TLV of type `kind` in a complete v2 header.
pub fn custom_tlv(raw: &[u8], kind: u8) -> Option<Vec<u8>> {
    let (header, _) = ProxyHeader::parse(raw, ParseConfig::default()).ok()?;
    header.tlvs().find_map(|t| match t {
        Ok(proxy_header::Tlv::Custom(k, v)) if k == kind => Some(v.into_owned()),
        _ => None,
    })
}

/// [`read_header`], also returning the header's octets.
async fn read_raw<R: AsyncRead + Unpin>(
    stream: &mut R,
    timeout: Duration,
) -> Result<(Proxied, Vec<u8>), HeaderError> {
    let mut reader = HeaderReader::default();
    let mut chunk = vec![0u8; MAX_HEADER];
    let read = async {
        loop {
            match reader.want()? {
                Want::Done(p) => return Ok(p),
                Want::More(n) => {
                    let got = stream
                        .read(&mut chunk[..n.min(MAX_HEADER)])
                        .await
                        .map_err(|e| HeaderError::Io(e.to_string()))?;
                    if got == 0 {
                        return Err(HeaderError::Closed);
                    }
                    reader.feed(&chunk[..got]);
                }
            }
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(r) => r.map(|p| (p, reader.buf)),
        Err(_) => Err(HeaderError::Timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proxy_header::{ProxiedAddress, SslInfo, Tlv};

    /// What follows the header on the wire: must never be taken by the reader.
    const AFTER: &[u8] = b"a1 CAPABILITY\r\n";

    fn v2(addrs: Option<(&str, &str)>, ssl: bool) -> Vec<u8> {
        let addr = addrs.map(|(s, d)| ProxiedAddress::stream(s.parse().unwrap(), d.parse().unwrap()));
        let tlvs = if ssl {
            vec![
                Tlv::Ssl(SslInfo::new(true, false, false, 0)),
                Tlv::Authority("imap.example".into()),
            ]
        } else {
            vec![Tlv::Authority("imap.example".into())]
        };
        let mut out = Vec::new();
        ProxyHeader::with_tlvs(addr, tlvs).encode_v2(&mut out).unwrap();
        out
    }

    /// Feeds `input` to a reader at most `chunk` octets per read (and never more than it
    /// asks for); returns the result and the octets left unread.
    fn run(input: &[u8], chunk: usize) -> (Result<Proxied, HeaderError>, &[u8]) {
        let mut r = HeaderReader::default();
        let mut rest = input;
        for _ in 0..10_000 {
            match r.want() {
                Ok(Want::Done(p)) => return (Ok(p), rest),
                Err(e) => return (Err(e), rest),
                Ok(Want::More(n)) => {
                    assert!(n >= 1);
                    if rest.is_empty() {
                        return (Err(HeaderError::Closed), rest);
                    }
                    let take = n.min(chunk).min(rest.len());
                    r.feed(&rest[..take]);
                    rest = &rest[take..];
                }
            }
        }
        panic!("reader did not finish");
    }

    /// The same result at every chunk size, and nothing after the header consumed.
    fn every_chunk(header: &[u8]) -> Result<Proxied, HeaderError> {
        let input = [header, AFTER].concat();
        let (first, _) = run(&input, input.len());
        for chunk in 1..=input.len() {
            let (got, rest) = run(&input, chunk);
            assert_eq!(got, first, "chunk {chunk}");
            if got.is_ok() {
                assert_eq!(rest, AFTER, "chunk {chunk}: over-read");
            }
        }
        first
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_tcp4_tcp6_and_unknown() {
        let p = every_chunk(b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 143\r\n").unwrap();
        assert_eq!(p.addrs, Some((sa("192.0.2.7:51234"), sa("10.0.0.1:143"))));
        assert!(!p.client_tls);
        let p = every_chunk(b"PROXY TCP6 2001:db8::7 2001:db8::1 51234 993\r\n").unwrap();
        assert_eq!(p.addrs, Some((sa("[2001:db8::7]:51234"), sa("[2001:db8::1]:993"))));
        assert_eq!(every_chunk(b"PROXY UNKNOWN\r\n").unwrap().addrs, None);
        let p = every_chunk(b"PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\n").unwrap();
        assert_eq!(p.addrs, None);
    }

    #[test]
    fn v1_longest_header_is_read_exactly() {
        // proxy-protocol.txt §2.1: the worst case is UNKNOWN with two full IPv6 addresses.
        let h = b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        assert_eq!(h.len(), V1_MAX);
        assert_eq!(every_chunk(h).unwrap().addrs, None);
        let h = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        assert!(every_chunk(h).unwrap().addrs.is_some());
    }

    #[test]
    fn v2_proxy_v4_v6_with_and_without_ssl() {
        let p = every_chunk(&v2(Some(("192.0.2.7:40000", "127.0.0.1:143")), false)).unwrap();
        assert_eq!(p.addrs, Some((sa("192.0.2.7:40000"), sa("127.0.0.1:143"))));
        assert!(!p.client_tls);
        let p = every_chunk(&v2(Some(("[2001:db8::7]:40000", "[::1]:993")), true)).unwrap();
        assert_eq!(p.addrs, Some((sa("[2001:db8::7]:40000"), sa("[::1]:993"))));
        assert!(p.client_tls);
    }

    #[test]
    fn a_custom_tlv_is_found_and_v1_is_no_internal_header() {
        let addr = ProxiedAddress::stream(sa("192.0.2.7:1"), sa("127.0.0.1:2"));
        let mut h = Vec::new();
        ProxyHeader::with_tlvs(Some(addr), vec![Tlv::Custom(0xE0, b"node1 x".to_vec().into())])
            .encode_v2(&mut h)
            .unwrap();
        assert!(every_chunk(&h).is_ok());
        assert_eq!(custom_tlv(&h, 0xE0).unwrap(), b"node1 x");
        assert_eq!(custom_tlv(&h, 0xE1), None);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut s = &h[..];
            let (p, v) = read_internal_header(&mut s, HEADER_TIMEOUT, 0xE0).await.unwrap();
            assert!(p.addrs.is_some());
            assert_eq!(v.unwrap(), b"node1 x");
            let mut s = &b"PROXY TCP4 192.0.2.7 10.0.0.1 1 2\r\n"[..];
            assert!(read_internal_header(&mut s, HEADER_TIMEOUT, 0xE0).await.is_err());
        });
    }

    #[test]
    fn v2_local_keeps_the_socket_addresses() {
        let p = every_chunk(&v2(None, false)).unwrap();
        assert_eq!(p, Proxied { addrs: None, client_tls: false });
    }

    #[test]
    fn garbage_is_refused_at_its_first_octet() {
        for line in [&b"a1 LOGIN alice secret\r\n"[..], b"USER alice\r\n", b"\x16\x03\x01\x02"] {
            let (got, rest) = run(line, 1);
            assert_eq!(got, Err(HeaderError::NotProxy));
            assert_eq!(rest.len(), line.len() - 1, "refused at its first octet");
            // Read as the socket gives it: never more than the 15 octets of the shortest
            // header before the verdict.
            let (got, rest) = run(line, line.len());
            assert_eq!(got, Err(HeaderError::NotProxy));
            assert_eq!(rest.len(), line.len() - line.len().min(MIN_HEADER));
        }
        // "PROXY" then something that is not a v1 header.
        assert!(matches!(
            every_chunk(b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"),
            Err(HeaderError::Invalid(_))
        ));
        assert!(matches!(
            every_chunk(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n"),
            Err(HeaderError::Invalid(_))
        ));
    }

    #[test]
    fn oversized_headers_are_refused_without_reading_them() {
        // v1 without CRLF: refused at 107 octets.
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 300]].concat();
        let (got, rest) = run(&long, 7);
        assert_eq!(got, Err(HeaderError::TooBig));
        assert_eq!(long.len() - rest.len(), V1_MAX);
        // v2 declaring 5000 octets: refused after the 16-octet fixed part.
        let mut big = v2(Some(("192.0.2.7:1", "127.0.0.1:2")), false);
        big[14..16].copy_from_slice(&5000u16.to_be_bytes());
        big.resize(16 + 5000, 0);
        let (got, rest) = run(&big, 1000);
        assert_eq!(got, Err(HeaderError::TooBig));
        assert_eq!(big.len() - rest.len(), 16);
    }

    #[test]
    fn a_v1_line_invalid_before_its_107th_octet_is_invalid_at_every_chunking() {
        // Found by the fuzz target: an address full of backslashes, its end at octet 106,
        // CRLF at 110. Read two octets at a time the reader saw 105 then 107 octets and
        // called it too long; one at a time it saw the bad address at 106 (invalid).
        let h = [
            b"PROXY TCP4 192".as_slice(),
            &[b'\\'; 84],
            b".0.2.34 143\r\n",
        ]
        .concat();
        assert!(matches!(every_chunk(&h), Err(HeaderError::Invalid(_))));
    }

    #[test]
    fn v2_length_too_short_for_its_addresses_is_invalid() {
        let mut h = v2(Some(("192.0.2.7:1", "127.0.0.1:2")), false);
        h.truncate(16 + 4);
        h[14..16].copy_from_slice(&4u16.to_be_bytes());
        assert!(matches!(every_chunk(&h), Err(HeaderError::Invalid(_))));
        // Unknown version/command.
        let mut h = v2(None, false);
        h[12] = 0x31;
        assert!(matches!(every_chunk(&h), Err(HeaderError::Invalid(_))));
    }

    #[test]
    fn a_truncated_header_asks_for_more() {
        let h = v2(Some(("192.0.2.7:1", "127.0.0.1:2")), true);
        for cut in 0..h.len() {
            let (got, rest) = run(&h[..cut], 3);
            assert_eq!(got, Err(HeaderError::Closed), "cut {cut}");
            assert!(rest.is_empty());
        }
    }

    #[tokio::test]
    async fn read_header_on_a_stream_times_out_and_leaves_the_rest() {
        let (mut client, mut server) = tokio::io::duplex(64);
        use tokio::io::AsyncWriteExt;
        client
            .write_all(&[b"PROXY TCP4 192.0.2.7 10.0.0.1 1 2\r\n".as_slice(), AFTER].concat())
            .await
            .unwrap();
        let p = read_header(&mut server, HEADER_TIMEOUT).await.unwrap();
        assert_eq!(p.addrs.unwrap().0, sa("192.0.2.7:1"));
        let mut rest = vec![0u8; AFTER.len()];
        server.read_exact(&mut rest).await.unwrap();
        assert_eq!(rest, AFTER);
        client.write_all(b"PROXY TCP4").await.unwrap();
        let slow = read_header(&mut server, Duration::from_millis(50)).await;
        assert_eq!(slow, Err(HeaderError::Timeout));
    }
}
