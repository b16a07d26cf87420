//! Minimal load-generator clients for POP3 (RFC 1939) and IMAP4rev1 (RFC 3501).
//!
//! Owns only what the workloads need: a bounded line reader over plain TCP or TLS
//! (tokio-rustls, accepting any server certificate because the test servers use self-signed
//! ones), POP3 single- and multi-line replies (RFC 1939 section 3: dot-terminated), and IMAP
//! tagged responses with `{n}` literals (RFC 3501 sections 4.3 and 7.5), continuation requests
//! for APPEND (section 6.3.11) and IDLE (RFC 2177). It is not a general client: responses are
//! counted and checked for status, not parsed into structures.
use anyhow::{anyhow, bail, Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Longest protocol line accepted before the connection is declared broken.
const MAX_LINE: usize = 1 << 20;
/// Largest IMAP literal accepted (bigger than any corpus message, bounded all the same).
const MAX_LITERAL: u64 = 64 << 20;

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Where and how to connect; cheap to clone into every client task.
#[derive(Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// Present for implicit TLS (IMAPS/POP3S).
    pub tls: Option<tokio_rustls::TlsConnector>,
    /// Bound on every single network step, so a stuck server cannot hang a run.
    pub op_timeout: Duration,
    /// Read buffer per connection: large for throughput, small when holding thousands of
    /// idle connections (idle-hold) so the client's own memory stays modest.
    pub buf_size: usize,
    /// IMAP: `COMPRESS DEFLATE` right after LOGIN (RFC 4978).
    pub compress: bool,
    /// Octets on the wire, every connection of the run together.
    pub wire: Arc<crate::zio::Wire>,
}

impl Target {
    pub fn new(host: &str, port: u16, tls: bool, op_timeout: Duration) -> Target {
        Target {
            host: host.to_string(),
            port,
            tls: tls.then(tls_connector),
            op_timeout,
            buf_size: 64 * 1024,
            compress: false,
            wire: Arc::default(),
        }
    }
}

/// A TLS client config that accepts any certificate but still checks handshake signatures
/// with ring's algorithms, so the TLS work done is the same as a verifying client's.
pub fn tls_connector() -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A buffered connection with byte accounting.
pub struct Conn {
    io: BufReader<Box<dyn Io>>,
    /// The last line read (CRLF included); reused to avoid an allocation per line.
    line: Vec<u8>,
    /// Bytes received, for MB/s.
    pub bytes_in: u64,
    op_timeout: Duration,
    buf_size: usize,
}

impl Conn {
    pub async fn connect(t: &Target) -> Result<Conn> {
        let tcp = timeout(t.op_timeout, TcpStream::connect((t.host.as_str(), t.port)))
            .await
            .context("connect timed out")?
            .with_context(|| format!("connect {}:{}", t.host, t.port))?;
        tcp.set_nodelay(true)?;
        let tcp = crate::zio::Counted {
            inner: tcp,
            wire: t.wire.clone(),
        };
        let io: Box<dyn Io> = match &t.tls {
            None => Box::new(tcp),
            Some(c) => {
                let name = ServerName::try_from(t.host.clone())?;
                Box::new(
                    timeout(t.op_timeout, c.connect(name, tcp))
                        .await
                        .context("TLS handshake timed out")??,
                )
            }
        };
        Ok(Conn {
            io: BufReader::with_capacity(t.buf_size, io),
            line: Vec::with_capacity(1024),
            bytes_in: 0,
            op_timeout: t.op_timeout,
            buf_size: t.buf_size,
        })
    }

    /// Reads one line (up to and including LF) into `self.line`, bounded by [`MAX_LINE`].
    pub async fn read_line(&mut self) -> Result<&[u8]> {
        self.line.clear();
        let fut = async {
            loop {
                let buf = self.io.fill_buf().await?;
                if buf.is_empty() {
                    bail!("connection closed by server");
                }
                let (n, done) = match buf.iter().position(|&b| b == b'\n') {
                    Some(i) => (i + 1, true),
                    None => (buf.len(), false),
                };
                self.line.extend_from_slice(&buf[..n]);
                self.io.consume(n);
                if done {
                    return Ok(());
                }
                if self.line.len() > MAX_LINE {
                    bail!("line longer than {MAX_LINE} bytes");
                }
            }
        };
        timeout(self.op_timeout, fut)
            .await
            .context("read timed out")??;
        self.bytes_in += self.line.len() as u64;
        Ok(&self.line)
    }

    /// Reads and discards exactly `n` bytes (an IMAP literal).
    pub async fn skip_exact(&mut self, mut n: u64) -> Result<()> {
        self.bytes_in += n;
        let fut = async {
            while n > 0 {
                let buf = self.io.fill_buf().await?;
                if buf.is_empty() {
                    bail!("connection closed inside a literal");
                }
                let k = (buf.len() as u64).min(n) as usize;
                self.io.consume(k);
                n -= k as u64;
            }
            Ok(())
        };
        timeout(self.op_timeout, fut)
            .await
            .context("literal read timed out")?
    }

    /// Puts raw DEFLATE between this connection and its stream (after `COMPRESS` OK).
    pub fn start_deflate(&mut self) -> Result<()> {
        if !self.io.buffer().is_empty() {
            bail!("data after the COMPRESS reply");
        }
        let dummy: Box<dyn Io> = Box::new(tokio::io::join(tokio::io::empty(), tokio::io::sink()));
        let cap = self.buf_size;
        let old = std::mem::replace(&mut self.io, BufReader::new(dummy));
        let zio: Box<dyn Io> = Box::new(crate::zio::Zio::new(old.into_inner()));
        self.io = BufReader::with_capacity(cap, zio);
        Ok(())
    }

    pub async fn send(&mut self, data: &[u8]) -> Result<()> {
        let fut = async {
            let w = self.io.get_mut();
            w.write_all(data).await?;
            w.flush().await
        };
        timeout(self.op_timeout, fut)
            .await
            .context("write timed out")??;
        Ok(())
    }
}

fn show(line: &[u8]) -> String {
    let s = String::from_utf8_lossy(line);
    let s = s.trim_end();
    s.chars().take(200).collect()
}

/// POP3 client (RFC 1939).
pub struct Pop3 {
    pub conn: Conn,
}

impl Pop3 {
    /// Connects and checks the `+OK` greeting.
    pub async fn connect(t: &Target) -> Result<Pop3> {
        let mut p = Pop3 {
            conn: Conn::connect(t).await?,
        };
        let g = p.conn.read_line().await?;
        if !g.starts_with(b"+OK") {
            bail!("POP3 greeting: {}", show(g));
        }
        Ok(p)
    }

    /// Sends one command and returns its single-line `+OK` reply.
    pub async fn cmd(&mut self, cmd: &str) -> Result<String> {
        self.conn.send(format!("{cmd}\r\n").as_bytes()).await?;
        let l = self.conn.read_line().await?;
        if !l.starts_with(b"+OK") {
            let verb = cmd.split(' ').next().unwrap_or("");
            bail!("POP3 {verb}: {}", show(l));
        }
        Ok(show(l))
    }

    /// Sends a command with a multi-line reply (RFC 1939 section 3) and returns the payload
    /// size in bytes (terminator excluded, byte-stuffing included).
    pub async fn multi(&mut self, cmd: &str) -> Result<u64> {
        self.cmd(cmd).await?;
        let mut n = 0u64;
        loop {
            let l = self.conn.read_line().await?;
            if l == b".\r\n" || l == b".\n" {
                return Ok(n);
            }
            n += l.len() as u64;
        }
    }

    pub async fn login(&mut self, user: &str, pass: &str) -> Result<()> {
        self.cmd(&format!("USER {user}")).await?;
        self.cmd(&format!("PASS {pass}")).await?;
        Ok(())
    }

    /// `STAT` -> (messages, octets).
    pub async fn stat(&mut self) -> Result<(u32, u64)> {
        let r = self.cmd("STAT").await?;
        let mut it = r.split_whitespace().skip(1);
        let n = it.next().and_then(|s| s.parse().ok());
        let o = it.next().and_then(|s| s.parse().ok());
        match (n, o) {
            (Some(n), Some(o)) => Ok((n, o)),
            _ => bail!("bad STAT reply: {r}"),
        }
    }

    pub async fn quit(&mut self) -> Result<()> {
        self.cmd("QUIT").await.map(|_| ())
    }
}

/// What one IMAP command brought back.
#[derive(Debug, Default)]
pub struct ImapResp {
    /// From an untagged `* N EXISTS` (SELECT, RFC 3501 section 7.3.1).
    pub exists: Option<u32>,
    /// Sum of literal sizes received (message content for FETCH BODY[]).
    pub literal_bytes: u64,
    pub untagged: u32,
}

/// IMAP4rev1 client (RFC 3501).
pub struct Imap {
    pub conn: Conn,
    tag: u32,
    /// `COMPRESS DEFLATE` after LOGIN.
    compress: bool,
}

/// Parses a trailing literal announcement `{n}` (or `{n+}`) at the end of a line.
pub fn trailing_literal(line: &[u8]) -> Option<u64> {
    let l = line.strip_suffix(b"\n")?;
    let l = l.strip_suffix(b"\r").unwrap_or(l);
    let l = l.strip_suffix(b"}")?;
    let open = l.iter().rposition(|&b| b == b'{')?;
    let digits = &l[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Quotes a string for IMAP (RFC 3501 section 4.3, quoted).
pub fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

impl Imap {
    /// Connects and checks the `* OK` greeting.
    pub async fn connect(t: &Target) -> Result<Imap> {
        let mut c = Imap {
            conn: Conn::connect(t).await?,
            tag: 0,
            compress: t.compress,
        };
        let g = c.conn.read_line().await?;
        if !g.starts_with(b"* OK") && !g.starts_with(b"* PREAUTH") {
            bail!("IMAP greeting: {}", show(g));
        }
        Ok(c)
    }

    fn next_tag(&mut self) -> String {
        self.tag += 1;
        format!("b{}", self.tag)
    }

    /// Sends `tag cmd` and reads up to the tagged completion, which must be OK.
    pub async fn command(&mut self, cmd: &str) -> Result<ImapResp> {
        let tag = self.next_tag();
        self.conn
            .send(format!("{tag} {cmd}\r\n").as_bytes())
            .await?;
        self.read_response(&tag, cmd).await
    }

    /// Reads responses until the one tagged `tag`; literals are skipped and counted. A `+`
    /// continuation request here is a protocol error (only APPEND/IDLE expect one).
    async fn read_response(&mut self, tag: &str, cmd: &str) -> Result<ImapResp> {
        let mut r = ImapResp::default();
        let mut continuation = false;
        loop {
            let l = self.conn.read_line().await?;
            let lit = trailing_literal(l);
            if !continuation {
                if l.starts_with(b"* ") {
                    r.untagged += 1;
                    if let Some(n) = parse_exists(l) {
                        r.exists = Some(n);
                    }
                } else if l.starts_with(tag.as_bytes()) && l.get(tag.len()) == Some(&b' ') {
                    let rest = &l[tag.len() + 1..];
                    if rest.starts_with(b"OK") {
                        return Ok(r);
                    }
                    let verb = cmd.split(' ').next().unwrap_or("");
                    return Err(anyhow!("IMAP {verb}: {}", show(l)));
                } else if l.starts_with(b"+") {
                    bail!("unexpected continuation: {}", show(l));
                }
            }
            match lit {
                Some(n) if n > MAX_LITERAL => bail!("literal of {n} bytes is too large"),
                Some(n) => {
                    self.conn.skip_exact(n).await?;
                    r.literal_bytes += n;
                    continuation = true;
                }
                None => continuation = false,
            }
        }
    }

    /// Reads until a `+` continuation request; a tagged reply instead is an error.
    async fn wait_continuation(&mut self, tag: &str, what: &str) -> Result<()> {
        loop {
            let l = self.conn.read_line().await?;
            if l.starts_with(b"+") {
                return Ok(());
            }
            if l.starts_with(tag.as_bytes()) {
                bail!("IMAP {what}: {}", show(l));
            }
            if let Some(n) = trailing_literal(l) {
                bail!("unexpected literal of {n} bytes while waiting for continuation");
            }
        }
    }

    /// LOGIN, then (with `--compress`) COMPRESS DEFLATE.
    pub async fn login(&mut self, user: &str, pass: &str) -> Result<()> {
        self.command(&format!("LOGIN {} {}", quote(user), quote(pass)))
            .await?;
        if self.compress {
            self.command("COMPRESS DEFLATE").await?;
            self.conn.start_deflate()?;
        }
        Ok(())
    }

    /// `SELECT` -> number of messages.
    pub async fn select(&mut self, mailbox: &str) -> Result<u32> {
        let r = self.command(&format!("SELECT {}", quote(mailbox))).await?;
        r.exists.ok_or_else(|| anyhow!("SELECT gave no EXISTS"))
    }

    /// `APPEND` with a synchronizing literal (RFC 3501 section 6.3.11).
    pub async fn append(&mut self, mailbox: &str, msg: &[u8]) -> Result<()> {
        let tag = self.next_tag();
        let head = format!(
            "{tag} APPEND {} (\\Seen) {{{}}}\r\n",
            quote(mailbox),
            msg.len()
        );
        self.conn.send(head.as_bytes()).await?;
        self.wait_continuation(&tag, "APPEND").await?;
        self.conn.send(msg).await?;
        self.conn.send(b"\r\n").await?;
        self.read_response(&tag, "APPEND").await.map(|_| ())
    }

    /// Starts `IDLE` (RFC 2177) and returns the tag to finish it with [`Imap::idle_done`].
    pub async fn idle_start(&mut self) -> Result<String> {
        let tag = self.next_tag();
        self.conn.send(format!("{tag} IDLE\r\n").as_bytes()).await?;
        self.wait_continuation(&tag, "IDLE").await?;
        Ok(tag)
    }

    pub async fn idle_done(&mut self, tag: &str) -> Result<()> {
        self.conn.send(b"DONE\r\n").await?;
        self.read_response(tag, "IDLE").await.map(|_| ())
    }

    pub async fn logout(&mut self) -> Result<()> {
        self.command("LOGOUT").await.map(|_| ())
    }
}

fn parse_exists(l: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(l).ok()?;
    let mut it = s.trim_end().split(' ');
    if it.next()? != "*" {
        return None;
    }
    let n = it.next()?.parse().ok()?;
    (it.next()? == "EXISTS").then_some(n)
}

/// An LMTP client (RFC 2033): LHLO once, then MAIL/RCPT/DATA per message, pipelined (both
/// servers advertise PIPELINING, RFC 2920).
pub struct Lmtp {
    pub conn: Conn,
}

impl Lmtp {
    /// Connects, checks the `220` greeting and sends LHLO.
    pub async fn connect(t: &Target) -> Result<Lmtp> {
        let mut c = Lmtp {
            conn: Conn::connect(t).await?,
        };
        c.reply(b"220", "greeting").await?;
        c.conn.send(b"LHLO mailbench\r\n").await?;
        c.reply(b"250", "LHLO").await?;
        Ok(c)
    }

    /// Reads one (possibly multi-line) reply, whose code must be `code`.
    async fn reply(&mut self, code: &[u8], what: &str) -> Result<()> {
        // LHLO's reply is the longest: a few lines. Bounded regardless.
        for _ in 0..100 {
            let l = self.conn.read_line().await?;
            if l.len() < 4 || !l.starts_with(code) {
                bail!("LMTP {what}: {}", show(l));
            }
            if l[3] != b'-' {
                return Ok(());
            }
        }
        bail!("LMTP {what}: a reply of more than 100 lines")
    }

    /// Delivers `dotted` (CRLF lines, dot-stuffed, without the final `.`) to one recipient.
    pub async fn deliver(&mut self, from: &str, rcpt: &str, dotted: &[u8]) -> Result<()> {
        self.conn
            .send(format!("MAIL FROM:<{from}>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n").as_bytes())
            .await?;
        self.reply(b"250", "MAIL").await?;
        self.reply(b"250", "RCPT").await?;
        self.reply(b"354", "DATA").await?;
        self.conn.send(dotted).await?;
        self.conn.send(b".\r\n").await?;
        self.reply(b"250", "end of DATA").await
    }

    pub async fn quit(&mut self) -> Result<()> {
        self.conn.send(b"QUIT\r\n").await?;
        self.reply(b"221", "QUIT").await
    }
}

/// Dot-stuffs CRLF text for DATA (RFC 5321 section 4.5.2); it must end with CRLF.
pub fn dot_stuff(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 16);
    let mut at_line_start = true;
    for &c in msg {
        if at_line_start && c == b'.' {
            out.push(b'.');
        }
        out.push(c);
        at_line_start = c == b'\n';
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn dot_stuffing_doubles_leading_dots_only() {
        assert_eq!(
            super::dot_stuff(b".a\r\nb.c\r\n..\r\n"),
            b"..a\r\nb.c\r\n...\r\n".to_vec()
        );
    }

    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn literal_announcements() {
        assert_eq!(trailing_literal(b"* 1 FETCH (BODY[] {123}\r\n"), Some(123));
        assert_eq!(trailing_literal(b"a APPEND x {5+}\r\n"), Some(5));
        assert_eq!(trailing_literal(b"* OK {}\r\n"), None);
        assert_eq!(trailing_literal(b"* OK {12}x\r\n"), None);
        assert_eq!(trailing_literal(b"* OK no literal\r\n"), None);
        assert_eq!(parse_exists(b"* 17 EXISTS\r\n"), Some(17));
        assert_eq!(parse_exists(b"* 17 RECENT\r\n"), None);
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    /// A scripted server on 127.0.0.1:0 that writes its replies in chunks of `chunk` bytes,
    /// so the client's line and literal reading is exercised at every split point.
    async fn scripted(script: Vec<(Option<&'static str>, &'static [u8])>, chunk: usize) -> Target {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            // Without this, Nagle plus delayed ACKs make each tiny chunk wait ~40 ms.
            s.set_nodelay(true).unwrap();
            let mut s = BufReader::new(s);
            for (expect, reply) in script {
                if let Some(e) = expect {
                    let mut line = String::new();
                    s.read_line(&mut line).await.unwrap();
                    assert!(line.starts_with(e), "client sent {line:?}, expected {e:?}");
                }
                for c in reply.chunks(chunk) {
                    s.get_mut().write_all(c).await.unwrap();
                    s.get_mut().flush().await.unwrap();
                }
            }
        });
        Target::new("127.0.0.1", port, false, Duration::from_secs(5))
    }

    #[tokio::test]
    async fn imap_fetch_literals_at_every_chunk_size() {
        let reply: &[u8] = b"* 1 FETCH (FLAGS (\\Seen) BODY[] {11}\r\nhello\r\nb1 x)\r\n* 2 FETCH (BODY[HEADER] {3}\r\n{1}UID 5)\r\nb1 OK done\r\n";
        for chunk in 1..=reply.len() {
            let t = scripted(
                vec![
                    (None, b"* OK ready\r\n"),
                    (Some("b1 FETCH"), reply),
                    (
                        Some("b2 SELECT"),
                        b"* 3 EXISTS\r\nb2 NO [NONEXISTENT] no\r\n",
                    ),
                ],
                chunk,
            )
            .await;
            let mut c = Imap::connect(&t).await.unwrap();
            let r = c.command("FETCH 1:2 BODY[]").await.unwrap();
            assert_eq!(r.literal_bytes, 14, "chunk {chunk}");
            assert_eq!(r.untagged, 2);
            // The literal text "b1 x)" must not be taken for the tagged completion.
            let e = c.select("Nope").await.unwrap_err().to_string();
            assert!(e.contains("NONEXISTENT"), "{e}");
        }
    }

    #[tokio::test]
    async fn pop3_multiline_at_every_chunk_size() {
        let retr: &[u8] = b"+OK 12 octets\r\nSubject: x\r\n..dot\r\n.\r\n";
        for chunk in 1..=retr.len() {
            let t = scripted(
                vec![
                    (None, b"+OK hi\r\n"),
                    (Some("STAT"), b"+OK 2 320\r\n"),
                    (Some("RETR 1"), retr),
                    (Some("RETR 9"), b"-ERR no such message\r\n"),
                ],
                chunk,
            )
            .await;
            let mut p = Pop3::connect(&t).await.unwrap();
            assert_eq!(p.stat().await.unwrap(), (2, 320));
            assert_eq!(p.multi("RETR 1").await.unwrap(), 19);
            assert!(p.multi("RETR 9").await.is_err());
        }
    }

    #[tokio::test]
    async fn imap_append_waits_for_continuation() {
        let t = scripted(
            vec![
                (None, b"* OK ready\r\n"),
                (Some("b1 APPEND \"INBOX\" (\\Seen) {4}"), b"+ go\r\n"),
                (Some("abcd"), b"b1 OK [APPENDUID 1 1] done\r\n"),
                (Some("b2 IDLE"), b"+ idling\r\n"),
                (Some("DONE"), b"* 2 EXISTS\r\nb2 OK idle done\r\n"),
            ],
            3,
        )
        .await;
        let mut c = Imap::connect(&t).await.unwrap();
        c.append("INBOX", b"abcd").await.unwrap();
        let tag = c.idle_start().await.unwrap();
        c.idle_done(&tag).await.unwrap();
    }
}
