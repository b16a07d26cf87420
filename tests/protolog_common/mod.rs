//! Helpers shared by the `tests/protolog_*.rs` suites: config snapshots built by struct
//! literal (the config parser is another module's work), a strict parser of log files, and
//! checks of the `flock` and of this process's open file descriptors.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use mailserver::config::ProtocolLogSettings;
use mailserver::protolog::{decode_data_field, split_record, FIELDS};

pub fn settings(level: u32, path: &Path) -> ProtocolLogSettings {
    ProtocolLogSettings {
        level,
        path: path.to_path_buf(),
        size_limit_kib: 0,
    }
}

/// The protocol-log settings of a session snapshot: `level` in `path` (the same for both
/// services: `ProtoLog::session_start` takes the settings of the service it starts).
pub fn config(level: u32, path: &Path) -> ProtocolLogSettings {
    settings(level, path)
}

pub fn local() -> SocketAddr {
    "127.0.0.1:110".parse().unwrap()
}

pub fn remote(port: u16) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 7], port))
}

/// One parsed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub time: String,
    pub id: String,
    pub seq: u64,
    pub local: String,
    pub remote: String,
    pub event: char,
    pub data: Vec<u8>,
}

impl Rec {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

/// A parsed log file: the header's service name and the records. Panics on anything that is
/// not a whole, well-formed line.
pub struct LogFile {
    pub service: String,
    pub records: Vec<Rec>,
}

fn check_time(t: &str) {
    let b = t.as_bytes();
    assert_eq!(b.len(), 24, "time {t}");
    for (i, &c) in b.iter().enumerate() {
        let want = match i {
            4 | 7 => Some(b'-'),
            10 => Some(b'T'),
            13 | 16 => Some(b':'),
            19 => Some(b'.'),
            23 => Some(b'Z'),
            _ => None,
        };
        match want {
            Some(w) => assert_eq!(c, w, "time {t}"),
            None => assert!(c.is_ascii_digit(), "time {t}"),
        }
    }
}

pub fn parse_log(path: &Path) -> LogFile {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_bytes(&bytes)
}

pub fn parse_bytes(bytes: &[u8]) -> LogFile {
    assert!(
        bytes.is_empty() || bytes.ends_with(b"\n"),
        "file ends inside a line"
    );
    let text = std::str::from_utf8(bytes).expect("log files are ASCII");
    let mut lines = text.lines();
    let service = lines
        .next()
        .and_then(|l| l.strip_prefix("#Service: "))
        .expect("first line declares the service")
        .to_string();
    let software = lines.next().unwrap();
    assert_eq!(
        software,
        format!("#Software: mailserver {}", env!("CARGO_PKG_VERSION"))
    );
    let date = lines.next().unwrap();
    check_time(date.strip_prefix("#Date: ").expect("#Date"));
    assert_eq!(lines.next().unwrap(), format!("#Fields: {FIELDS}"));
    let records = lines.map(parse_record).collect();
    LogFile { service, records }
}

pub fn parse_record(line: &str) -> Rec {
    assert!(
        line.bytes().all(|b| (0x20..=0x7E).contains(&b)),
        "non-printable byte in {line:?}"
    );
    let f = split_record(line).unwrap_or_else(|| panic!("not 7 fields: {line:?}"));
    check_time(f[0]);
    assert_eq!(f[1].len(), 16, "{line}");
    assert!(f[1].bytes().all(|b| b.is_ascii_hexdigit()), "{line}");
    let seq = f[2].parse().unwrap_or_else(|_| panic!("seq in {line:?}"));
    assert_eq!(f[5].len(), 1, "{line}");
    let event = f[5].chars().next().unwrap();
    assert!("+-<>*".contains(event), "{line}");
    let data = decode_data_field(f[6]).unwrap_or_else(|| panic!("data in {line:?}"));
    Rec {
        time: f[0].to_string(),
        id: f[1].to_string(),
        seq,
        local: f[3].to_string(),
        remote: f[4].to_string(),
        event,
        data,
    }
}

/// The `L???????.log` names in `dir`, sorted.
pub fn log_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with('L') && n.ends_with(".log"))
            .collect(),
        Err(_) => vec![],
    };
    v.sort();
    v
}

/// Whether another process can take the `flock` right now (`flock -n FILE true`).
pub fn flock_free(path: &Path) -> bool {
    std::process::Command::new("flock")
        .arg("-n")
        .arg(path)
        .arg("true")
        .status()
        .expect("flock(1) from util-linux")
        .success()
}

/// Whether this process has a file descriptor open on `path`.
pub fn fd_open_on(path: &Path) -> bool {
    let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .any(|l| l == target || l == path)
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
