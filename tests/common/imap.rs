//! A blocking IMAP line client for the tests that drive the real daemon from threads (the
//! hostile-input tests): login, commands with their untagged lines, raw sends. Every read
//! is bounded by the socket timeout.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::{PASS, USER};

pub struct Client {
    pub r: BufReader<TcpStream>,
    pub w: TcpStream,
}

impl Client {
    /// Connects (reads and checks the greeting); every read and write waits at most `wait`.
    pub fn connect(addr: SocketAddr, wait: Duration) -> Client {
        let s = TcpStream::connect_timeout(&addr, wait).unwrap();
        s.set_read_timeout(Some(wait)).unwrap();
        s.set_write_timeout(Some(wait)).unwrap();
        let mut c = Client {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        };
        let g = c.line();
        assert!(g.starts_with("* OK"), "{g}");
        c
    }

    /// Connects and logs in as the test user.
    pub fn login(addr: SocketAddr, wait: Duration) -> Client {
        let mut c = Client::connect(addr, wait);
        let l = c.tagged(&format!("a LOGIN {USER} {PASS}"), "a").1;
        assert!(l.starts_with("a OK"), "{l}");
        c
    }

    /// One line without its CRLF (literal data in it is not interpreted).
    pub fn line(&mut self) -> String {
        let mut buf = Vec::new();
        let n = self.r.read_until(b'\n', &mut buf).unwrap();
        assert!(n > 0, "connection closed");
        String::from_utf8_lossy(&buf).trim_end().to_string()
    }

    pub fn send(&mut self, data: &[u8]) {
        self.w.write_all(data).unwrap();
    }

    /// Sends one command line; returns its untagged lines and its tagged completion.
    pub fn tagged(&mut self, line: &str, tag: &str) -> (Vec<String>, String) {
        self.send(format!("{line}\r\n").as_bytes());
        self.until_tagged(tag)
    }

    /// [`Client::tagged`], asserting `OK`; returns the untagged lines.
    pub fn ok(&mut self, line: &str, tag: &str) -> Vec<String> {
        let (u, done) = self.tagged(line, tag);
        assert!(done.starts_with(&format!("{tag} OK")), "{line} -> {done}");
        u
    }

    /// Reads up to the tagged completion of `tag`: the untagged lines and the tagged one.
    pub fn until_tagged(&mut self, tag: &str) -> (Vec<String>, String) {
        let mut untagged = Vec::new();
        for _ in 0..100_000 {
            let l = self.line();
            if l.starts_with(&format!("{tag} ")) {
                return (untagged, l);
            }
            untagged.push(l);
        }
        panic!("no tagged reply for {tag}");
    }
}
