//! The IMAP extensions clients use when offered, over real sockets, each checked against a
//! private Dovecot 2.3 where Dovecot has it (so the expected answers are Dovecot's):
//! COMPRESS=DEFLATE (RFC 4978; Dovecot's `imap_zlib` plugin), FETCH BINARY / BINARY.SIZE
//! (RFC 3516), XLIST (answered as LIST, as Dovecot does), APPENDLIMIT (RFC 7889: Dovecot
//! 2.3 answers `STATUS (APPENDLIMIT)` with BAD, so that one is checked against the RFC),
//! and real clients with compression on: Python `imaplib` over a deflate wrapper, isync's
//! `mbsync`.

mod imap_session_common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use imap_session_common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "common/dovecot.rs"]
mod dovecot;

use dovecot::Dovecot;

/// A private Dovecot serving `alice` from a fresh Maildir, with COMPRESS (`imap_zlib`) and
/// the special-use folders this server creates for every user.
fn start_dovecot(dir: &Path) -> Dovecot {
    let zlib = "protocol imap {\n  mail_plugins = $mail_plugins imap_zlib\n}\n";
    dovecot::start_imap(
        dir,
        "mailserver-imapext-test",
        format!("{USER}:{{PLAIN}}{PASS}\n"),
        "",
        zlib,
    )
}

/// An IMAP client that can switch on COMPRESS=DEFLATE: raw deflate, a sync flush after
/// every write (as Thunderbird and isync do). Every read is bounded by [`WAIT`].
struct ZClient {
    s: TcpStream,
    z: Option<(Compress, Decompress)>,
    /// Inflated (or plain) input not consumed yet.
    plain: Vec<u8>,
    n: u32,
    wire_in: u64,
    wire_out: u64,
    plain_in: u64,
}

impl ZClient {
    async fn connect(addr: SocketAddr) -> ZClient {
        let s = TcpStream::connect(addr).await.unwrap();
        let mut c = ZClient {
            s,
            z: None,
            plain: Vec::new(),
            n: 0,
            wire_in: 0,
            wire_out: 0,
            plain_in: 0,
        };
        let g = c.line().await;
        assert!(g.starts_with("* OK"), "{g}");
        c
    }

    fn deflate(&mut self, data: &[u8]) -> Vec<u8> {
        let Some((c, _)) = self.z.as_mut() else {
            return data.to_vec();
        };
        let mut out = Vec::new();
        let mut rest = data;
        for _ in 0..1_000_000 {
            out.reserve(4096 + rest.len());
            let before = c.total_in();
            c.compress_vec(rest, &mut out, FlushCompress::Sync).unwrap();
            rest = &rest[(c.total_in() - before) as usize..];
            if rest.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        out
    }

    async fn send_raw(&mut self, data: &[u8]) {
        let wire = self.deflate(data);
        self.wire_out += wire.len() as u64;
        self.s.write_all(&wire).await.unwrap();
    }

    async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
    }

    /// Switches compression on; input already read after the OK is compressed data.
    fn start_compression(&mut self, c: Compress) {
        self.z = Some((c, Decompress::new(false)));
        let early = std::mem::take(&mut self.plain);
        self.wire_in -= early.len() as u64;
        self.received(&early);
    }

    /// Reads more input (inflating it); false at EOF.
    async fn fill(&mut self) -> bool {
        let mut buf = vec![0u8; 64 * 1024];
        let n = tokio::time::timeout(WAIT, self.s.read(&mut buf))
            .await
            .expect("server answered in time")
            .unwrap_or(0);
        if n == 0 {
            return false;
        }
        self.received(&buf[..n]);
        true
    }

    fn received(&mut self, data: &[u8]) {
        self.wire_in += data.len() as u64;
        match self.z.as_mut() {
            None => self.plain.extend_from_slice(data),
            Some((_, d)) => {
                let mut input = data;
                for _ in 0..1_000_000 {
                    let mut out = Vec::with_capacity(256 * 1024);
                    let before = d.total_in();
                    d.decompress_vec(input, &mut out, FlushDecompress::Sync)
                        .unwrap();
                    input = &input[(d.total_in() - before) as usize..];
                    let full = out.len() == out.capacity();
                    self.plain.extend_from_slice(&out);
                    if input.is_empty() && !full {
                        break;
                    }
                }
            }
        }
    }

    async fn take(&mut self, n: usize) -> Vec<u8> {
        while self.plain.len() < n {
            assert!(self.fill().await, "EOF in a literal");
        }
        self.plain_in += n as u64;
        self.plain.drain(..n).collect()
    }

    /// One response line with its literals (`{n}` or `~{n}`) appended, as the harness's
    /// `Client::line` (bytes outside ASCII kept as Latin-1 so NULs survive).
    async fn line(&mut self) -> String {
        let mut out = String::new();
        loop {
            let end = loop {
                if let Some(i) = self.plain.iter().position(|&b| b == b'\n') {
                    break i;
                }
                assert!(self.fill().await, "unexpected EOF after {out:?}");
            };
            let l = self.take(end + 1).await;
            let text: String = l.iter().map(|&b| b as char).collect();
            let trimmed = text.trim_end_matches(['\r', '\n']);
            out.push_str(trimmed);
            match literal_len(trimmed) {
                Some(len) => {
                    let data = self.take(len).await;
                    out.push_str("\r\n");
                    out.extend(data.iter().map(|&b| b as char));
                }
                None => return out,
            }
        }
    }

    fn tag(&mut self) -> String {
        self.n += 1;
        format!("z{}", self.n)
    }

    async fn until_tagged(&mut self, tag: &str) -> (Vec<String>, String) {
        let mut untagged = Vec::new();
        for _ in 0..100_000 {
            let l = self.line().await;
            if let Some(rest) = l.strip_prefix(&format!("{tag} ")) {
                return (untagged, rest.to_string());
            }
            untagged.push(l);
        }
        panic!("no tagged reply for {tag}");
    }

    async fn cmd(&mut self, cmd: &str) -> (Vec<String>, String) {
        let tag = self.tag();
        self.send(&format!("{tag} {cmd}")).await;
        self.until_tagged(&tag).await
    }

    /// `COMPRESS DEFLATE`; on OK both directions are compressed from here on.
    async fn compress(&mut self) -> String {
        let (u, t) = self.cmd("COMPRESS DEFLATE").await;
        assert!(u.is_empty(), "{u:?}");
        if t.starts_with("OK") {
            self.start_compression(Compress::new(Compression::new(6), false));
        }
        t
    }

    /// APPEND with a synchronizing literal: the `+` must come through (compressed) first.
    /// A message holding a NUL goes as RFC 3516 literal8 (`~{n}`).
    async fn append(&mut self, mailbox: &str, msg: &[u8]) -> (Vec<String>, String) {
        let tag = self.tag();
        let tilde = if msg.contains(&0) { "~" } else { "" };
        self.send(&format!("{tag} APPEND {mailbox} {tilde}{{{}}}", msg.len()))
            .await;
        let cont = self.line().await;
        assert!(cont.starts_with('+'), "{cont}");
        let mut data = msg.to_vec();
        data.extend_from_slice(b"\r\n");
        self.send_raw(&data).await;
        self.until_tagged(&tag).await
    }
}

/// One command's answer, normalised as in `imap_session_dovecot.rs`: free text dropped,
/// UIDVALIDITY values and capability lists ignored, `* ID` reduced to its shape.
fn normalise(untagged: &[String], tagged: &str) -> Vec<String> {
    let mut lines: Vec<String> = untagged
        .iter()
        // Every SELECT of ours says HIGHESTMODSEQ (mod-sequences are kept for every
        // mailbox); Dovecot says it once CONDSTORE was used on the mailbox.
        .filter(|l| !l.starts_with("* CAPABILITY") && !l.starts_with("* OK [HIGHESTMODSEQ "))
        .map(|l| {
            if l.starts_with("* ID (\"name\" ") {
                return "* ID (...)".into();
            }
            let mut l = l.clone();
            for key in ["UIDVALIDITY ", "APPENDUID "] {
                if let Some(i) = l.find(key) {
                    let start = i + key.len();
                    let end = l[start..]
                        .find(|c: char| !c.is_ascii_digit())
                        .map_or(l.len(), |e| start + e);
                    l.replace_range(start..end, "V");
                }
            }
            if l.starts_with("* OK [") || l.starts_with("* NO [") {
                if let Some(i) = l.find("] ") {
                    l.truncate(i + 1);
                }
            }
            l
        })
        .collect();
    // LIST order is free.
    if lines.iter().any(|l| l.starts_with("* LIST")) {
        lines.sort();
    }
    let word = tagged.split(' ').next().unwrap_or("").to_string();
    let code = tagged
        .strip_prefix(&format!("{word} ["))
        .and_then(|r| r.split(']').next())
        .map(|c| c.split(' ').next().unwrap_or("").to_string())
        // Dovecot adds [CLIENTBUG] hints in places; the code itself is what matters.
        .filter(|c| c != "CLIENTBUG")
        .unwrap_or_default();
    lines.push(format!("=> {word} {code}"));
    lines
}

fn b64(data: &[u8]) -> String {
    use base64::Engine;
    let s = base64::engine::general_purpose::STANDARD.encode(data);
    s.as_bytes()
        .chunks(76)
        .map(|c| format!("{}\r\n", String::from_utf8_lossy(c)))
        .collect()
}

/// Messages whose BINARY content differs from their BODY content.
fn binary_messages() -> Vec<Vec<u8>> {
    vec![
        format!(
            "Subject: one\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
            b64(b"bin\0ary\x01\xff data")
        )
        .into_bytes(),
        format!(
            "Subject: two\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 soft=\r\nbreak\r\n--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n{}--b\r\nContent-Type: text/plain\r\n\r\nplain seven bit\r\n--b--\r\n",
            b64(b"hello text\r\n")
        )
        .into_bytes(),
        b"Subject: three\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\naGVsbG8=\r\n".to_vec(),
        b"Subject: four\r\nContent-Transfer-Encoding: Quoted-Printable\r\n\r\nabc=3D=\r\ndef\r\n"
            .to_vec(),
        b"Subject: m\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\nContent-Transfer-Encoding: base64\r\n\r\naGk=\r\n".to_vec(),
        b"Subject: e\r\nContent-Transfer-Encoding: 8bit\r\n\r\nnul\0here\r\n".to_vec(),
        b"Subject: bad\r\nContent-Transfer-Encoding: base64\r\n\r\n@@@@ not b64!\r\n".to_vec(),
    ]
}

/// The commands after LOGIN (and COMPRESS); `{APPEND n}` appends `binary_messages()[n]`
/// with a synchronizing literal, `{IDLE}` idles while another connection appends,
/// `{COMPRESS}` is `COMPRESS DEFLATE`.
fn script() -> Vec<String> {
    let mut s: Vec<String> = vec!["SELECT INBOX".into()];
    for i in 0..binary_messages().len() {
        s.push(format!("{{APPEND {i}}}"));
    }
    s.extend(
        [
            "NOOP",
            "FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])",
            "FETCH 1 (BINARY.PEEK[] BINARY.SIZE[])",
            "FETCH 1 BINARY.PEEK[1]<2.5>",
            "FETCH 2 (BINARY.PEEK[1] BINARY.SIZE[1])",
            "FETCH 2 (BINARY.PEEK[2] BINARY.SIZE[2])",
            "FETCH 2 (BINARY.PEEK[3] BINARY.SIZE[3])",
            "FETCH 2 (BINARY.PEEK[9] BINARY.SIZE[9])",
            "FETCH 2 BINARY.PEEK[1]<2.5>",
            "FETCH 2 BINARY.SIZE[]",
            "FETCH 2 BINARY.PEEK[2.1]",
            "UID FETCH 2 (BINARY.PEEK[3])",
            "FETCH 3 BINARY.PEEK[1]",
            "FETCH 3 BINARY.SIZE[1]",
            "FETCH 3 BINARY.PEEK[]",
            "FETCH 4 (BINARY.PEEK[1] BINARY.SIZE[1])",
            "FETCH 4 BINARY.PEEK[]",
            "FETCH 4 BINARY.PEEK[1]<100.5>",
            "FETCH 5 (BINARY.PEEK[1] BINARY.SIZE[1])",
            "FETCH 5 BINARY.PEEK[]",
            "FETCH 5 (BINARY.PEEK[1.1] BINARY.PEEK[1.2])",
            "FETCH 6 (BINARY.PEEK[1] BINARY.SIZE[1])",
            "FETCH 6 BINARY.PEEK[]",
            "FETCH 7 BINARY.PEEK[1]",
            "FETCH 4 BINARY[1]",
            "FETCH 4 FLAGS",
            "FETCH 1:2 (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])",
            "{IDLE}",
            "XLIST \"\" \"*\"",
            "xlist \"\" INBOX",
            "XLIST",
            "UID XLIST \"\" INBOX",
            "STATUS INBOX (MESSAGES UNSEEN)",
            "ID (\"name\" \"test\")",
            "{COMPRESS}",
            "NOOP",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    s
}

async fn run(addr: SocketAddr, compress: bool) -> (Vec<(String, Vec<String>)>, ZClient) {
    let mut c = ZClient::connect(addr).await;
    let (_, t) = c.cmd(&format!("LOGIN {USER} {PASS}")).await;
    assert!(t.starts_with("OK"), "{t}");
    if compress {
        let t = c.compress().await;
        assert!(t.starts_with("OK"), "{t}");
    }
    let msgs = binary_messages();
    let mut out = Vec::new();
    for cmd in script() {
        let (u, t) = if let Some(i) = cmd.strip_prefix("{APPEND ") {
            let i: usize = i.trim_end_matches('}').parse().unwrap();
            c.append("INBOX", &msgs[i]).await
        } else if cmd == "{COMPRESS}" {
            // Turns compression on in the plain run, is refused in the compressed one.
            (Vec::new(), c.compress().await)
        } else if cmd == "{IDLE}" {
            // IDLE through the compressed stream: `+ idling`, a message appended by another
            // connection is announced, DONE ends it.
            let tag = c.tag();
            c.send(&format!("{tag} IDLE")).await;
            let cont = c.line().await;
            assert!(cont.starts_with("+ idling"), "{cont}");
            let mut other = ZClient::connect(addr).await;
            other.cmd(&format!("LOGIN {USER} {PASS}")).await;
            let (_, t) = other.append("INBOX", b"Subject: idle\r\n\r\nx\r\n").await;
            assert!(t.starts_with("OK"), "{t}");
            let mut seen = Vec::new();
            for _ in 0..10 {
                let l = c.line().await;
                let done = l.ends_with(" EXISTS");
                seen.push(l);
                if done {
                    break;
                }
            }
            c.send("DONE").await;
            let (mut u, t) = c.until_tagged(&tag).await;
            seen.append(&mut u);
            seen.retain(|l| l.ends_with(" EXISTS"));
            (seen, t)
        } else {
            c.cmd(&cmd).await
        };
        out.push((cmd.clone(), normalise(&u, &t)));
    }
    c.cmd("LOGOUT").await;
    (out, c)
}

/// The same script against Dovecot and this server: plain, and with COMPRESS on both.
#[tokio::test]
async fn binary_xlist_and_compress_match_dovecot() {
    if dovecot::skip(false) {
        return;
    }
    for compress in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let dovecot = start_dovecot(tmp.path());
        let (theirs, _) = run(
            format!("127.0.0.1:{}", dovecot.port).parse().unwrap(),
            compress,
        )
        .await;
        let s = Server::start(Options::default()).await;
        let (ours, client) = run(s.addr, compress).await;
        let mut diffs = Vec::new();
        for ((cmd, a), (_, b)) in ours.iter().zip(theirs.iter()) {
            if a != b {
                diffs.push(format!("C: {cmd}\n  ours:    {a:?}\n  dovecot: {b:?}"));
            }
        }
        assert!(
            diffs.is_empty(),
            "compress={compress}: {} of {} commands differ:\n{}",
            diffs.len(),
            ours.len(),
            diffs.join("\n")
        );
        if compress {
            // The answers came compressed: fewer octets on the wire than they inflate to.
            assert!(
                client.wire_in < client.plain_in,
                "{} wire octets for {} plain",
                client.wire_in,
                client.plain_in
            );
        }
    }
}

/// COMPRESS before login is refused (Dovecot: BAD); only DEFLATE exists.
#[tokio::test]
async fn compress_needs_login_and_deflate() {
    let s = Server::start(Options::default()).await;
    let mut c = ZClient::connect(s.addr).await;
    let (_, t) = c.cmd("COMPRESS DEFLATE").await;
    assert!(t.starts_with("BAD"), "{t}");
    let (_, t) = c.cmd(&format!("LOGIN {USER} {PASS}")).await;
    assert!(t.starts_with("OK"), "{t}");
    let (_, t) = c.cmd("COMPRESS GZIP").await;
    assert!(t.starts_with("BAD"), "{t}");
    let (u, _) = c.cmd("CAPABILITY").await;
    assert!(u[0].contains(" COMPRESS=DEFLATE"), "{u:?}");
    // BINARY is advertised: FETCH BINARY and APPEND ~{n} (pinned by the Dovecot script).
    assert!(u[0].contains(" BINARY "), "{u:?}");
}

/// A big FETCH streams through the compressor (output written in pieces, each write
/// flushed), the protocol log keeps the uncompressed lines, and input pipelined right
/// behind the COMPRESS command (already compressed) is inflated, not read as plain text.
#[tokio::test]
async fn compressed_fetch_protocol_log_and_pipelining() {
    let s = Server::start(Options {
        log_level: 3,
        max_message_bytes: 8 << 20,
        ..Options::default()
    })
    .await;
    let mut c = ZClient::connect(s.addr).await;
    c.cmd(&format!("LOGIN {USER} {PASS}")).await;
    // COMPRESS and, in the same write, a compressed NOOP.
    let mut z = Compress::new(Compression::new(6), false);
    let mut noop = Vec::with_capacity(1024);
    z.compress_vec(b"p1 NOOP\r\n", &mut noop, FlushCompress::Sync)
        .unwrap();
    let mut both = b"p0 COMPRESS DEFLATE\r\n".to_vec();
    both.extend_from_slice(&noop);
    c.send_raw(&both).await;
    let (_, t) = c.until_tagged("p0").await;
    assert!(t.starts_with("OK"), "{t}");
    c.start_compression(z);
    let (_, t) = c.until_tagged("p1").await;
    assert!(t.starts_with("OK"), "{t}");

    let body: String = (0..40_000)
        .map(|i| format!("line {i} of a long and repetitive message\r\n"))
        .collect();
    let msg = format!("Subject: big\r\n\r\n{body}");
    assert!(msg.len() > 1 << 20);
    let (_, t) = c.append("INBOX", msg.as_bytes()).await;
    assert!(t.starts_with("OK"), "{t}");
    c.cmd("SELECT INBOX").await;
    let before = (c.wire_in, c.plain_in);
    let (u, t) = c.cmd("FETCH 1 BODY.PEEK[]").await;
    assert!(t.starts_with("OK"), "{t}");
    assert!(
        u[0].ends_with(&format!("{msg})")),
        "the message came back whole"
    );
    let (wire, plain) = (c.wire_in - before.0, c.plain_in - before.1);
    assert!(wire * 5 < plain, "{wire} wire octets for {plain}");
    c.cmd("LOGOUT").await;
    drop(c);

    let log = s.protocol_log();
    assert!(log.contains("Compression started: DEFLATE"), "{log}");
    for line in [
        "p1 NOOP",
        "z3 SELECT INBOX",
        "z4 FETCH 1 BODY.PEEK[]",
        "z4 OK Fetch completed.",
    ] {
        assert!(log.contains(line), "{line} not in the log:\n{log}");
    }
}

/// A deflate "bomb" (a few KiB inflating to 16 MiB without a line end) is framed as it is
/// inflated: one `BAD` for the over-long line, and the session goes on.
#[tokio::test]
async fn inflated_input_keeps_the_line_limit() {
    let s = Server::start(Options::default()).await;
    let mut c = ZClient::connect(s.addr).await;
    c.cmd(&format!("LOGIN {USER} {PASS}")).await;
    assert!(c.compress().await.starts_with("OK"));
    let bomb = vec![b'x'; 16 << 20];
    c.send_raw(&bomb).await;
    assert!(c.wire_out < 100_000, "{}", c.wire_out);
    c.send_raw(b"\r\n").await;
    let l = c.line().await;
    assert!(l.contains("BAD") && l.contains("too long"), "{l}");
    let (_, t) = c.cmd("NOOP").await;
    assert!(t.starts_with("OK"), "{t}");
}

/// RFC 7889: `APPENDLIMIT=<max_message_bytes>` after login, and `STATUS (APPENDLIMIT)` per
/// mailbox (Dovecot 2.3 answers that STATUS item with BAD; the RFC is the reference here).
#[tokio::test]
async fn appendlimit_in_capability_and_status() {
    let s = Server::start(Options {
        max_message_bytes: 123_456,
        ..Options::default()
    })
    .await;
    let mut c = s.connect().await;
    let (u, _) = c.cmd("CAPABILITY").await;
    assert!(!u[0].contains("APPENDLIMIT"), "{u:?}");
    c.ok(&format!("LOGIN {USER} {PASS}")).await;
    let (u, _) = c.cmd("CAPABILITY").await;
    assert!(u[0].contains(" APPENDLIMIT=123456"), "{u:?}");
    assert!(!u[0].contains("LITERAL-"), "{u:?}");
    let u = c.ok("STATUS INBOX (APPENDLIMIT)").await;
    assert_eq!(u, ["* STATUS INBOX (APPENDLIMIT 123456)"]);
    let u = c.ok("STATUS Sent (MESSAGES appendlimit UIDNEXT)").await;
    assert_eq!(
        u,
        ["* STATUS Sent (MESSAGES 0 UIDNEXT 1 APPENDLIMIT 123456)"]
    );
    let (_, t) = c.cmd("STATUS INBOX (APPENDLIMIT BOGUS)").await;
    assert!(t.starts_with("BAD"), "{t}");
    let (_, t) = c.cmd("STATUS Nope (APPENDLIMIT)").await;
    assert!(t.starts_with("NO"), "{t}");
}

/// Python's `imaplib` with its socket wrapped in raw deflate after `COMPRESS DEFLATE`,
/// against Dovecot and this server: the same answers.
const PY_DEFLATE: &str = r#"
import imaplib, sys, zlib
imaplib.Commands["COMPRESS"] = ("AUTH", "SELECTED")
host, port, user, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]

class Deflated:
    """The socket and file imaplib uses, through raw deflate (RFC 4978)."""
    def __init__(self, sock):
        self.sock = sock
        self.c = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.d = zlib.decompressobj(-15)
        self.buf = b""
        self.wire_in = 0
    def sendall(self, data):
        self.sock.sendall(self.c.compress(data) + self.c.flush(zlib.Z_SYNC_FLUSH))
    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            return False
        self.wire_in += len(data)
        self.buf += self.d.decompress(data)
        return True
    def readline(self, limit=-1):
        for _ in range(100000):
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
                return line
            if not self._fill():
                line, self.buf = self.buf, b""
                return line
        raise RuntimeError("no line")
    def read(self, n):
        for _ in range(100000):
            if len(self.buf) >= n or not self._fill():
                break
        out, self.buf = self.buf[:n], self.buf[n:]
        return out
    def shutdown(self, how):
        self.sock.shutdown(how)
    def close(self):
        pass

M = imaplib.IMAP4(host, port)
M.sock.settimeout(20)
M.login(user, pw)
typ, data = M._simple_command("COMPRESS", "DEFLATE")
print("compress", typ)
z = Deflated(M.sock)
M.sock, M.file = z, z
M.send = z.sendall
body = b"".join(b"line %d of the message\r\n" % i for i in range(3000))
typ, data = M.append("INBOX", r"(\Flagged)", None, b"Subject: zipped\r\n\r\n" + body)
print("append", typ)
typ, data = M.select("INBOX")
print("select", typ, data[0].decode())
typ, data = M.fetch("1", "(FLAGS BODY.PEEK[])")
print("fetch", typ, data[0][0].decode().split(" BODY")[0], data[0][1] == b"Subject: zipped\r\n\r\n" + body)
typ, data = M.search(None, "SUBJECT", "zipped")
print("search", typ, data[0].decode())
print("compressed", z.wire_in < len(body) / 4)
print("logout", M.logout()[0])
"#;

fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .args(["60", "python3", "-c", script])
        .args(args)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn python_imaplib_over_deflate_matches_dovecot() {
    if dovecot::skip(true) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dovecot = start_dovecot(tmp.path());
    let dport = dovecot.port.to_string();
    let theirs =
        tokio::task::spawn_blocking(move || python(PY_DEFLATE, &["127.0.0.1", &dport, USER, PASS]))
            .await
            .unwrap();
    let s = Server::start(Options::default()).await;
    let port = s.addr.port().to_string();
    let ours =
        tokio::task::spawn_blocking(move || python(PY_DEFLATE, &["127.0.0.1", &port, USER, PASS]))
            .await
            .unwrap();
    assert!(
        ours.contains("fetch OK 1 (FLAGS (\\Flagged \\Recent) True"),
        "{ours}"
    );
    assert!(ours.contains("compressed True"), "{ours}");
    assert_eq!(ours, theirs);
}

/// isync's `mbsync` turns COMPRESS=DEFLATE on when offered: a sync through it works, and
/// the protocol log shows the compression started.
#[tokio::test]
async fn mbsync_syncs_with_compression() {
    if Command::new("mbsync").arg("--version").output().is_err() {
        eprintln!("\n**** SKIPPED: mbsync is not installed ****\n");
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and mbsync is missing"
        );
        return;
    }
    let s = Server::start(Options {
        log_level: 1,
        ..Options::default()
    })
    .await;
    let mut c = s.login().await;
    for i in 0..3 {
        let t = c
            .append("INBOX", "", &message(&format!("m{i}"), "through deflate"))
            .await;
        assert!(t.starts_with("OK"), "{t}");
    }
    c.cmd("LOGOUT").await;
    let local = s.dir.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    let rc = s.dir.path().join("mbsyncrc");
    std::fs::write(
        &rc,
        format!(
            "IMAPAccount test\nHost 127.0.0.1\nPort {port}\nUser {USER}\nPass {PASS}\nSSLType None\nAuthMechs LOGIN\n\n\
             IMAPStore remote\nAccount test\n\n\
             MaildirStore local\nPath {p}/\nInbox {p}/INBOX\nSubFolders Verbatim\n\n\
             Channel sync\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Both\nSyncState *\nSync Pull\n",
            port = s.addr.port(),
            p = local.display()
        ),
    )
    .unwrap();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .args(["60", "mbsync", "-c"])
            .arg(&rc)
            .arg("-a")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "mbsync: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let got = std::fs::read_dir(local.join("INBOX/new"))
        .map(|r| r.count())
        .unwrap_or(0)
        + std::fs::read_dir(local.join("INBOX/cur"))
            .map(|r| r.count())
            .unwrap_or(0);
    assert_eq!(got, 3);
    let log = s.protocol_log();
    assert!(log.contains("Compression started: DEFLATE"), "{log}");
}
