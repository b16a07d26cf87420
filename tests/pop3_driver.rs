//! The shared driver (`conn::serve_session`) with a small line/literal/IDLE session of this
//! file, to pin what IMAP will need from it over a real socket: literals split anywhere,
//! `Step::Idle` woken by a watch counter, STARTTLS with plaintext discarded, and
//! `server::serve` handing IMAP connections to the IMAP session. The POP3 behaviour itself is
//! in the other `pop3_*` tests.

mod pop3_common;

use mailserver::conn::{self, Connection};
use mailserver::server::{self, Bound};
use mailserver::service::Service;
use mailserver::session::{Output, Session, Step};
use pop3_common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A tiny protocol: `LIT n` then n octets; `IDLE` ... `DONE`; `TLS`; `QUIT`.
struct Toy {
    watch: watch::Receiver<u64>,
    tls: bool,
}

impl Session for Toy {
    fn line_limit(&self) -> usize {
        100
    }
    fn logged_in(&self) -> bool {
        true
    }
    fn greeting(&mut self, out: &mut Output) {
        out.status("* OK toy".as_bytes().to_vec());
    }
    fn redact(&self, _line: &[u8]) -> Option<Vec<u8>> {
        None
    }
    fn who(&self) -> (Option<&str>, &str) {
        (None, "toy")
    }
    async fn on_line(&mut self, line: &[u8], out: &mut Output) -> Step {
        let line = String::from_utf8_lossy(line).to_string();
        if let Some(n) = line.strip_prefix("LIT ") {
            return Step::ReadLiteral(n.parse().unwrap());
        }
        match line.as_str() {
            "IDLE" => {
                // As an IMAP session syncs at IDLE start: what happened before is known.
                self.watch.mark_unchanged();
                out.status(b"+ idling".to_vec());
                Step::Idle
            }
            "DONE" => {
                out.status(b"OK done".to_vec());
                Step::ReadLine
            }
            "TLS" => {
                out.status(b"OK begin".to_vec());
                Step::StartTls
            }
            "WHO" => {
                out.status(format!("OK tls={}", self.tls).into_bytes());
                Step::ReadLine
            }
            "QUIT" => {
                out.status(b"OK bye".to_vec());
                Step::Close
            }
            other => {
                out.status(format!("BAD {other}").into_bytes());
                Step::ReadLine
            }
        }
    }
    async fn on_literal(&mut self, data: Vec<u8>, out: &mut Output) -> Step {
        out.status(
            format!(
                "OK got {}",
                String::from_utf8_lossy(&data).replace("\r\n", "|")
            )
            .into_bytes(),
        );
        Step::ReadLine
    }
    fn on_too_long(&mut self, out: &mut Output) -> Step {
        out.status(b"BAD too long".to_vec());
        Step::ReadLine
    }
    fn on_tls(&mut self) {
        self.tls = true;
    }
    fn on_timeout(&mut self, out: &mut Output) {
        out.status(b"* BYE idle".to_vec());
    }
    fn on_shutdown(&mut self, out: &mut Output) {
        out.status(b"* BYE shutdown".to_vec());
    }
    fn idle_watch(&self) -> Option<watch::Receiver<u64>> {
        Some(self.watch.clone())
    }
    async fn on_wakeup(&mut self, out: &mut Output) -> Step {
        let n = *self.watch.borrow_and_update();
        out.reply(format!("* {n} EXISTS").into_bytes());
        Step::Idle
    }
}

/// Serves the toy session on 127.0.0.1:0 through the real driver, with the handles of a test
/// server. (The toy is not a protocol the server knows, so this is the one place a test
/// accepts connections itself.)
async fn toy_server(s: &Server, tx: &watch::Sender<u64>) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let handles = s.handles.clone();
    let shutdown = s.shutdown.clone();
    let rx = tx.subscribe();
    tokio::spawn(async move {
        loop {
            let Ok((stream, remote)) = l.accept().await else {
                return;
            };
            let conn = Connection {
                local: stream.local_addr().unwrap(),
                remote,
                via: None,
                front: None,
                stream: stream.into(),
                service: Service::Imap4,
                implicit_tls: false,
                snapshot: handles.live.load_full(),
                protolog: handles.protolog.clone(),
                shutdown: shutdown.clone(),
                cancel: shutdown.child_token(),
                sessions: handles.sessions.clone(),
            };
            let toy = Toy {
                watch: rx.clone(),
                tls: false,
            };
            tokio::spawn(conn::serve_session(conn, toy));
        }
    });
    addr
}

async fn connect(addr: std::net::SocketAddr) -> Client {
    Client::new(Box::new(TcpStream::connect(addr).await.unwrap()))
}

#[tokio::test]
async fn literals_split_anywhere_and_never_read_as_commands() {
    let s = Server::start(Options::default()).await;
    let (tx, _) = watch::channel(0u64);
    let addr = toy_server(&s, &tx).await;
    let script = b"LIT 12\r\nQUIT\r\nAB\r\nCDLIT 3\r\nxyzWHO\r\n";
    for chunk in [1, 2, 3, 5, 8, script.len()] {
        let mut c = connect(addr).await;
        c.expect("* OK toy").await;
        for part in script.chunks(chunk) {
            c.raw(part).await;
        }
        assert_eq!(c.line().await.unwrap(), "OK got QUIT|AB|CD");
        assert_eq!(c.line().await.unwrap(), "OK got xyz");
        assert_eq!(c.line().await.unwrap(), "OK tls=false");
    }
}

#[tokio::test]
async fn idle_is_woken_by_the_watch_and_ended_by_a_line() {
    let s = Server::start(Options::default()).await;
    let (tx, _) = watch::channel(0u64);
    let addr = toy_server(&s, &tx).await;
    let mut c = connect(addr).await;
    c.expect("* OK toy").await;
    // A change before IDLE is not announced during IDLE.
    tx.send(1).unwrap();
    c.cmd("IDLE", "+ idling").await;
    tx.send(2).unwrap();
    c.expect("* 2 EXISTS").await;
    tx.send(3).unwrap();
    c.expect("* 3 EXISTS").await;
    c.cmd("DONE", "OK done").await;
    // Outside IDLE, changes wake nothing: the next line is the reply to WHO.
    tx.send(4).unwrap();
    c.cmd("WHO", "OK tls=false").await;
    c.cmd("QUIT", "OK bye").await;
    c.expect_eof().await;
}

#[tokio::test]
async fn starttls_discards_plaintext_sent_after_the_command() {
    let s = Server::start(Options::default()).await;
    let (tx, _) = watch::channel(0u64);
    let addr = toy_server(&s, &tx).await;
    let mut raw = TcpStream::connect(addr).await.unwrap();
    assert_eq!(raw_line(&mut raw).await, "* OK toy");
    raw.write_all(b"TLS\r\nQUIT\r\n").await.unwrap();
    assert_eq!(raw_line(&mut raw).await, "OK begin");
    let mut c = start_tls(&s, raw).await;
    // QUIT was plaintext before the handshake: it must not have been executed.
    c.cmd("WHO", "OK tls=true").await;
}

#[tokio::test]
async fn imap_is_served_through_the_same_driver() {
    let s = Server::start(Options::default()).await;
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let listeners = vec![Bound {
        service: Service::Imap4,
        implicit_tls: false,
        proxy: false,
        internal: false,
        listener: l,
    }];
    tokio::spawn(server::serve(
        listeners,
        s.handles.clone(),
        s.shutdown.clone(),
    ));
    let mut c = connect(addr).await;
    c.expect("* OK [CAPABILITY IMAP4rev1").await;
}
