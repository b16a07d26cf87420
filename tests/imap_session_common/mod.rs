//! Shared harness of the `imap_session*` tests: the real server (`server::serve`, the
//! daemon's accept loop and driver), the real IMAP session, the real Maildir store in a tempdir and
//! the real passwd-file users, over sockets on 127.0.0.1:0. Every read is bounded in time.
//!
//! `mod`-included by several test crates, each using a different subset: `dead_code` is
//! allowed for the whole file rather than item by item.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use std::time::Duration;

use mailserver::server::{self, Bound, Handles};
use mailserver::service::Service;
use mailserver::session::Snapshot;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

#[path = "../common/logreader.rs"]
mod logreader;
#[path = "../common/test_config.rs"]
mod test_config;
#[path = "../common/wait.rs"]
pub mod wait;
use logreader::log_text;
use test_config::{LogValues, TestConfig};

pub const USER: &str = "alice";
pub const PASS: &str = "wonderland";
/// Upper bound of any single wait for server output.
pub const WAIT: Duration = Duration::from_secs(20);

pub struct Options {
    /// IMAP protocol logging level (0-5).
    pub log_level: u32,
    pub max_message_bytes: u64,
    pub allow_plaintext: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            log_level: 0,
            max_message_bytes: 1 << 20,
            allow_plaintext: false,
        }
    }
}

pub struct Server {
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    /// What the server hands to sessions (the daemon's own kind: Maildir, passwd-file).
    pub handles: Handles,
    /// Fires the server's shutdown.
    pub shutdown: CancellationToken,
}

impl Server {
    pub async fn start(opts: Options) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("users"),
            format!("{USER}:{{PLAIN}}{PASS}\nbob:{{PLAIN}}builder\n"),
        )
        .unwrap();
        // Users in `d/users`, no listeners (bound below), IMAP protocol log in `d/logs`.
        let config = TestConfig {
            hostname: "imap.test".into(),
            users_file: Some("users".into()),
            allow_plaintext: Some(opts.allow_plaintext),
            max_message_bytes: Some(opts.max_message_bytes),
            imap_log: LogValues {
                level: Some(opts.log_level),
                path: Some(d.join("logs")),
            },
            ..TestConfig::new(d)
        }
        .load(&d.join("mailserver.toml"));
        // The daemon's handles: the Maildir store under data_dir/mail, passwd-file users.
        let handles = Handles::new(Snapshot::build(config).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let listeners = vec![Bound {
            service: Service::Imap4,
            implicit_tls: false,
            proxy: false,
            internal: false,
            listener,
        }];
        let shutdown = CancellationToken::new();
        tokio::spawn(server::serve(listeners, handles.clone(), shutdown.clone()));
        Server {
            dir,
            addr,
            handles,
            shutdown,
        }
    }

    pub async fn connect(&self) -> Client {
        let s = TcpStream::connect(self.addr).await.unwrap();
        let (r, w) = s.into_split();
        let mut c = Client {
            r: BufReader::new(r),
            w,
            n: 0,
        };
        let g = c.line().await;
        assert!(g.starts_with("* OK [CAPABILITY IMAP4rev1"), "{g}");
        c
    }

    /// A logged-in client.
    pub async fn login(&self) -> Client {
        let mut c = self.connect().await;
        c.ok(&format!("LOGIN {USER} {PASS}")).await;
        c
    }

    /// The user's Maildir root.
    pub fn maildir(&self) -> PathBuf {
        self.dir.path().join("mail").join(USER)
    }

    /// Text of every protocol log file as it is now.
    pub fn protocol_log(&self) -> String {
        self.handles.protolog.flush_all();
        log_text(&self.dir.path().join("logs"))
    }

    /// Text of every protocol log file once `sessions` sessions have their `-` record: a
    /// session's end (and its last records) come after the client saw its LOGOUT reply.
    pub async fn protocol_log_of_ended(&self, sessions: usize) -> String {
        wait::wait_for_async(
            &format!("{sessions} `-` records in the protocol log"),
            wait::WAIT,
            || {
                let log = self.protocol_log();
                if log.matches(",-,").count() >= sessions {
                    Ok(log)
                } else {
                    Err(log)
                }
            },
        )
        .await
    }
}

pub struct Client {
    pub r: BufReader<OwnedReadHalf>,
    pub w: OwnedWriteHalf,
    n: u32,
}

impl Client {
    /// Connects to any IMAP server (e.g. a reference Dovecot) and reads its greeting.
    pub async fn connect_to(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).await.unwrap();
        let (r, w) = s.into_split();
        let mut c = Client {
            r: BufReader::new(r),
            w,
            n: 0,
        };
        let g = c.line().await;
        assert!(g.starts_with("* OK"), "{g}");
        c
    }

    pub async fn send_raw(&mut self, data: &[u8]) {
        self.w.write_all(data).await.unwrap();
    }

    pub async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
    }

    /// One response line; a literal it announces is read and appended (after its CRLF),
    /// and so is the rest of the line after the literal.
    pub async fn line(&mut self) -> String {
        let mut out = String::new();
        loop {
            let mut buf = Vec::new();
            let n = tokio::time::timeout(WAIT, self.r.read_until(b'\n', &mut buf))
                .await
                .expect("server answered in time")
                .unwrap();
            assert!(n > 0, "unexpected EOF after {out:?}");
            let text = String::from_utf8_lossy(&buf).into_owned();
            let trimmed = text.trim_end_matches(['\r', '\n']);
            out.push_str(trimmed);
            match literal_len(trimmed) {
                Some(len) => {
                    let mut data = vec![0u8; len];
                    tokio::time::timeout(WAIT, self.r.read_exact(&mut data))
                        .await
                        .expect("literal in time")
                        .unwrap();
                    out.push_str("\r\n");
                    out.push_str(&String::from_utf8_lossy(&data));
                }
                None => return out,
            }
        }
    }

    /// Whether the server closed the connection (bounded wait).
    pub async fn eof(&mut self) -> bool {
        let mut buf = Vec::new();
        matches!(
            tokio::time::timeout(WAIT, self.r.read_until(b'\n', &mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    /// The tag of the last command sent with [`Client::cmd`].
    pub fn last_tag(&self) -> String {
        format!("t{}", self.n)
    }

    fn tag(&mut self) -> String {
        self.n += 1;
        format!("t{}", self.n)
    }

    /// Sends `cmd` with a fresh tag; returns the untagged lines and the tagged one.
    pub async fn cmd(&mut self, cmd: &str) -> (Vec<String>, String) {
        let tag = self.tag();
        self.send(&format!("{tag} {cmd}")).await;
        self.until_tagged(&tag).await
    }

    pub async fn until_tagged(&mut self, tag: &str) -> (Vec<String>, String) {
        let mut untagged = Vec::new();
        for _ in 0..100_000 {
            let l = self.line().await;
            if l.starts_with(&format!("{tag} ")) {
                return (untagged, l[tag.len() + 1..].to_string());
            }
            untagged.push(l);
        }
        panic!("no tagged reply for {tag}");
    }

    /// Sends `cmd`, asserts `OK`, returns the untagged lines.
    pub async fn ok(&mut self, cmd: &str) -> Vec<String> {
        let (u, t) = self.cmd(cmd).await;
        assert!(t.starts_with("OK"), "{cmd} -> {t} (untagged {u:?})");
        u
    }

    /// APPEND with a synchronizing literal (waits for `+`); returns the tagged text.
    pub async fn append(&mut self, mailbox: &str, flags: &str, msg: &str) -> String {
        self.append_full(mailbox, flags, msg).await.1
    }

    /// APPEND, returning the untagged lines too (EXISTS when appending to the selected
    /// mailbox).
    pub async fn append_full(
        &mut self,
        mailbox: &str,
        flags: &str,
        msg: &str,
    ) -> (Vec<String>, String) {
        let tag = self.tag();
        self.send(&format!(
            "{tag} APPEND {mailbox} ({flags}) {{{}}}",
            msg.len()
        ))
        .await;
        let cont = self.line().await;
        assert!(cont.starts_with('+'), "{cont}");
        self.send_raw(msg.as_bytes()).await;
        self.send_raw(b"\r\n").await;
        self.until_tagged(&tag).await
    }
}

/// `{n}` at the end of a response line.
pub fn literal_len(line: &str) -> Option<usize> {
    let l = line.strip_suffix('}')?;
    let open = l.rfind('{')?;
    l[open + 1..].parse().ok()
}

/// A small RFC 5322 message with CRLF line endings.
pub fn message(subject: &str, body: &str) -> String {
    format!(
        "From: Carol <carol@example.org>\r\nTo: alice@imap.test\r\nSubject: {subject}\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{subject}@example.org>\r\n\r\n{body}\r\n"
    )
}

/// The sequence numbers (in the view before) that a run of `* n EXPUNGE` removed.
pub fn original_positions(expunges: &[u32]) -> Vec<u32> {
    let top = expunges.iter().max().copied().unwrap_or(0) + expunges.len() as u32;
    let mut alive: Vec<u32> = (1..=top).collect();
    let mut gone: Vec<u32> = expunges
        .iter()
        .filter_map(|&n| {
            let i = n.checked_sub(1)? as usize;
            (i < alive.len()).then(|| alive.remove(i))
        })
        .collect();
    gone.sort_unstable();
    gone
}
