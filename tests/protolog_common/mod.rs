//! Helpers of the `tests/protolog_*.rs` suites that drive `ProtoLog` in-process: the
//! protocol-log settings a session starts with, the endpoints it logs, and a capture of the
//! daemon log. The log files themselves are read with `tests/common/logreader.rs` (the one
//! strict reader, also used by the daemon tests), which these suites include beside this.
//!
//! `mod`-included by several test crates, each using a different subset: `dead_code` is
//! allowed for the whole file rather than item by item.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use mailserver::config::ProtocolLogSettings;

/// The protocol-log settings of a session snapshot: `level` in `path`, no size limit (the
/// same for both services: `ProtoLog::session_start` takes the settings of the service it
/// starts). A struct literal, not a parsed config: `path` must not be created before the
/// first session starts, and these are all of `ProtoLog`'s inputs.
pub fn config(level: u32, path: &Path) -> ProtocolLogSettings {
    ProtocolLogSettings {
        level,
        path: path.to_path_buf(),
        size_limit_kib: 0,
        users: Vec::new(),
    }
}

pub fn local() -> SocketAddr {
    "127.0.0.1:110".parse().unwrap()
}

pub fn remote(port: u16) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 7], port))
}

/// A `tracing` writer capturing the daemon log of a test.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
    pub fn count(&self, needle: &str) -> usize {
        self.text().lines().filter(|l| l.contains(needle)).count()
    }
    /// A subscriber writing here (no ANSI colours), for `tracing::subscriber::with_default`.
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync {
        let me = self.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || me.clone())
            .finish()
    }
}
