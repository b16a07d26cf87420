//! The one builder of test configurations: [`TestConfig`] writes the TOML text of a config
//! file (ARCHITECTURE.md, "Configuration and reload") and loads it through the crate's own
//! parser (`mailserver::config::load`), so a test gets the defaults, path resolution and
//! validation the daemon gets, and a new config field needs no change here until a test
//! wants to set it.
//!
//! A field left `None` (or empty) is not written: the parser's default applies. Relative paths
//! resolve against the directory of the file the config is written to.
//!
//! Used by the daemon launcher (`tests/common/mod.rs`), the in-process POP3 and IMAP harnesses
//! and the TLS tests, each through `#[path]` or `mod`, each using a different subset of it:
//! `dead_code` is allowed for the whole file rather than item by item.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use mailserver::config::Config;

/// The `[ParametersSystem]` values of one service's protocol log (KB Q182504).
#[derive(Debug, Clone, Default)]
pub struct LogValues {
    /// `... Protocol Logging Level`.
    pub level: Option<u32>,
    /// `... Protocol Log Path` (default: `data_dir`).
    pub path: Option<PathBuf>,
}

/// The settings of one config file. Start from [`TestConfig::new`] and set what the test
/// needs with struct update syntax.
#[derive(Debug, Clone)]
pub struct TestConfig {
    /// `server.hostname`.
    pub hostname: String,
    /// `server.data_dir`.
    pub data_dir: PathBuf,
    /// `imap.listen`, `imap.tls_listen`, `pop3.listen`, `pop3.tls_listen` (`IP:PORT`).
    pub imap_listen: Vec<String>,
    pub imap_tls_listen: Vec<String>,
    /// `imap.imap4rev2` (absent: the default, true).
    pub imap4rev2: Option<bool>,
    pub pop3_listen: Vec<String>,
    pub pop3_tls_listen: Vec<String>,
    /// `proxy_listen` and `proxy_tls_listen` of `[imap]` and `[pop3]` (PROXY protocol);
    /// written only when not empty.
    pub imap_proxy_listen: Vec<String>,
    pub imap_proxy_tls_listen: Vec<String>,
    pub pop3_proxy_listen: Vec<String>,
    pub pop3_proxy_tls_listen: Vec<String>,
    /// `[tls]` `cert` and `key`; `None` is the generated self-signed pair.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `auth.users_file`.
    pub users_file: Option<String>,
    /// `auth.allow_plaintext`.
    pub allow_plaintext: Option<bool>,
    /// `[limits]`.
    pub max_connections: Option<u64>,
    pub max_connections_per_ip: Option<u64>,
    pub imap_idle_timeout_secs: Option<u64>,
    pub pop3_idle_timeout_secs: Option<u64>,
    pub max_message_bytes: Option<u64>,
    pub shutdown_grace_secs: Option<u64>,
    /// More `[limits]` lines, verbatim.
    pub extra_limits: String,
    /// The protocol-log values of each service.
    pub pop3_log: LogValues,
    pub imap_log: LogValues,
    /// More `[ParametersSystem]` lines, verbatim.
    pub extra_registry: String,
    /// More TOML at the end of the file, verbatim (new tables such as `[lmtp]`).
    pub extra_toml: String,
    /// More `[server]` lines, verbatim.
    pub extra_server: String,
    /// More `[imap]` lines, verbatim.
    pub extra_imap: String,
}

/// `IP:PORT` for "any free port on loopback" (each bind gets its own).
pub const ANY_LOOPBACK_PORT: &str = "127.0.0.1:0";

/// A TOML basic string holding `s`.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => write!(out, "\\u{:04X}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn quote_path(p: &Path) -> String {
    quote(&p.display().to_string())
}

fn list(items: &[String]) -> String {
    let q: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", q.join(", "))
}

impl TestConfig {
    /// Only `data_dir` (and the hostname every test daemon has had, `test.example`); no
    /// listeners; everything else the parser's default.
    pub fn new(data_dir: impl Into<PathBuf>) -> TestConfig {
        TestConfig {
            hostname: "test.example".into(),
            data_dir: data_dir.into(),
            imap_listen: Vec::new(),
            imap_tls_listen: Vec::new(),
            imap4rev2: None,
            pop3_listen: Vec::new(),
            pop3_tls_listen: Vec::new(),
            imap_proxy_listen: Vec::new(),
            imap_proxy_tls_listen: Vec::new(),
            pop3_proxy_listen: Vec::new(),
            pop3_proxy_tls_listen: Vec::new(),
            tls: None,
            users_file: None,
            allow_plaintext: None,
            max_connections: None,
            max_connections_per_ip: None,
            imap_idle_timeout_secs: None,
            pop3_idle_timeout_secs: None,
            max_message_bytes: None,
            shutdown_grace_secs: None,
            extra_limits: String::new(),
            pop3_log: LogValues::default(),
            imap_log: LogValues::default(),
            extra_registry: String::new(),
            extra_toml: String::new(),
            extra_server: String::new(),
            extra_imap: String::new(),
        }
    }

    /// The TOML text of the file.
    pub fn text(&self) -> String {
        let mut t = String::new();
        let mut line = |s: String| {
            t.push_str(&s);
            t.push('\n');
        };
        line("[server]".into());
        line(format!("hostname = {}", quote(&self.hostname)));
        line(format!("data_dir = {}", quote_path(&self.data_dir)));
        if !self.extra_server.is_empty() {
            line(self.extra_server.clone());
        }
        for (section, plain, tls, proxy, proxy_tls) in [
            (
                "imap",
                &self.imap_listen,
                &self.imap_tls_listen,
                &self.imap_proxy_listen,
                &self.imap_proxy_tls_listen,
            ),
            (
                "pop3",
                &self.pop3_listen,
                &self.pop3_tls_listen,
                &self.pop3_proxy_listen,
                &self.pop3_proxy_tls_listen,
            ),
        ] {
            line(String::new());
            line(format!("[{section}]"));
            line(format!("listen = {}", list(plain)));
            line(format!("tls_listen = {}", list(tls)));
            if !proxy.is_empty() {
                line(format!("proxy_listen = {}", list(proxy)));
            }
            if !proxy_tls.is_empty() {
                line(format!("proxy_tls_listen = {}", list(proxy_tls)));
            }
            if let (Some(on), "imap") = (self.imap4rev2, section) {
                line(format!("imap4rev2 = {on}"));
            }
            if section == "imap" && !self.extra_imap.is_empty() {
                line(self.extra_imap.clone());
            }
        }
        if let Some((cert, key)) = &self.tls {
            line(String::new());
            line("[tls]".into());
            line(format!("cert = {}", quote_path(cert)));
            line(format!("key = {}", quote_path(key)));
        }
        line(String::new());
        line("[auth]".into());
        if let Some(u) = &self.users_file {
            line(format!("users_file = {}", quote(u)));
        }
        if let Some(p) = self.allow_plaintext {
            line(format!("allow_plaintext = {p}"));
        }
        line(String::new());
        line("[limits]".into());
        for (key, value) in [
            ("max_connections", self.max_connections),
            ("max_connections_per_ip", self.max_connections_per_ip),
            ("imap_idle_timeout_secs", self.imap_idle_timeout_secs),
            ("pop3_idle_timeout_secs", self.pop3_idle_timeout_secs),
            ("max_message_bytes", self.max_message_bytes),
            ("shutdown_grace_secs", self.shutdown_grace_secs),
        ] {
            if let Some(v) = value {
                line(format!("{key} = {v}"));
            }
        }
        if !self.extra_limits.is_empty() {
            line(self.extra_limits.clone());
        }
        line(String::new());
        line("[ParametersSystem]".into());
        for (service, log) in [("POP3", &self.pop3_log), ("IMAP", &self.imap_log)] {
            if let Some(level) = log.level {
                line(format!("\"{service} Protocol Logging Level\" = {level}"));
            }
            if let Some(path) = &log.path {
                line(format!(
                    "\"{service} Protocol Log Path\" = {}",
                    quote_path(path)
                ));
            }
        }
        if !self.extra_registry.is_empty() {
            line(self.extra_registry.clone());
        }
        if !self.extra_toml.is_empty() {
            line(self.extra_toml.clone());
        }
        t
    }

    /// Writes the file to `path` (creating its directory).
    pub fn write(&self, path: &Path) {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, self.text()).unwrap();
    }

    /// Writes the file to `path` and loads it as the daemon does; panics with the parser's
    /// message if it is refused.
    pub fn load(&self, path: &Path) -> Config {
        self.write(path);
        mailserver::config::load(path)
            .unwrap_or_else(|e| panic!("test config refused: {e}\n{}", self.text()))
    }
}
