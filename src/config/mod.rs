//! Configuration (ARCHITECTURE.md, "Configuration and reload"): raw serde structs with `deny_unknown_fields` are validated into
//! the typed [`Config`](crate::config::Config); every error names file, line and column.
//!
//! Owns: the TOML schema outside `[ParametersSystem]` (that table is `registry.rs`), defaults,
//! path resolution (relative paths resolve against the config file's directory, never the
//! working directory), the `check-config` rendering and the reload diff. The idle-timeout
//! minimums are RFC 3501 §5.4 (IMAP: "at least 30 minutes") and RFC 1939 §3 (POP3: "at least
//! 10 minutes"); lower values are accepted with a warning, since an admin may want them.
//!
//! INTERFACE CONTRACT (other modules rely on these names):
//! * [`load`](crate::config::load) reads and validates a file; [`parse`](crate::config::parse)
//!   validates given bytes as if read from `path`.
//! * [`Config::protocol_log`](crate::config::Config::protocol_log) gives the typed
//!   `[ParametersSystem]` settings of a service.
//! * `watch::spawn` (hot reload) and `regedit` (the `reg` CLI) live beside this file.

pub mod cidr;
pub mod cluster;
pub mod marker;
mod paths;
pub mod regedit;
pub mod registry;
pub mod watch;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use paths::normalize;
use registry::{Locator, RegData, Source};

use crate::service::Service;

/// The validated configuration. Immutable; a reload builds a new one.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from (as given; symlinks not resolved).
    pub path: PathBuf,
    /// The MD5 of the file's bytes (hex), exported as `mailserver_config_info{hash=..}`.
    pub digest: String,
    pub server: ServerSettings,
    pub imap: Listeners,
    /// `[imap]` protocol switches.
    pub imap_protocol: ImapSettings,
    pub pop3: Listeners,
    /// `[lmtp]`: delivery listeners and sub-addressing.
    pub lmtp: LmtpSettings,
    /// `[metrics]`: the OpenMetrics/health listener; none by default.
    pub metrics: MetricsSettings,
    /// `[quota]` (RFC 9208): the default limits and LMTP's answer when they are reached.
    pub quota: QuotaSettings,
    /// `[tls]`; `None` means a self-signed certificate in `data_dir/tls/`.
    pub tls: Option<TlsFiles>,
    /// `[admin] socket`: the admin socket (`mailserver who`, ...); default
    /// `data_dir/admin.sock`.
    pub admin_socket: PathBuf,
    /// `[demo] seed_welcome`: seed the welcome message into the demo user's new Maildir
    /// (only the embedded default config sets it).
    pub seed_welcome: bool,
    pub auth: AuthSettings,
    /// `[proxy]`: who may send a PROXY protocol header (README.md, "Behind HAProxy").
    pub proxy: ProxySettings,
    /// `[cluster]`: the nodes sharing `data_dir` (README.md, "Cluster"); `None`: one node
    /// that owns every user.
    pub cluster: Option<cluster::ClusterSettings>,
    pub limits: Limits,
    /// Every `[ParametersSystem]` value (known, defaulted and unknown), for `check-config`/`reg`.
    pub registry: registry::Values,
    /// Typed view of the POP3 protocol-log values.
    pub pop3_log: ProtocolLogSettings,
    /// Typed view of the IMAP protocol-log values.
    pub imap_log: ProtocolLogSettings,
    /// Typed view of the LMTP protocol-log values.
    pub lmtp_log: ProtocolLogSettings,
    /// Warnings found while loading (unknown registry values, ...), already formatted with
    /// file:line:column.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    /// Greeting name and self-signed certificate name.
    pub hostname: String,
    /// Absolute; mailboxes live in `data_dir/mail/<user>/`.
    pub data_dir: PathBuf,
    /// `server.require_data_marker`: `data_dir` must hold [`DATA_MARKER`] or the daemon
    /// refuses to serve (a shared mount that is not mounted); false: the marker is created
    /// when missing (README.md, "Shared storage").
    pub require_data_marker: bool,
    /// `server.store_watch`: an inotify watcher per open folder wakes IDLE at once. Off on a
    /// node whose `data_dir` is shared (NFS: inotify sees only this host's writes); IDLE then
    /// relies on `imap.idle_check_interval_secs`. Restart to change.
    pub store_watch: bool,
}

/// The marker file in `data_dir` that says "this is the mail store, mounted"
/// (`server.require_data_marker`).
pub const DATA_MARKER: &str = ".mailserver-data";

#[derive(Debug, Clone, PartialEq)]
pub struct Listeners {
    /// Plain listeners (with STARTTLS/STLS).
    pub listen: Vec<SocketAddr>,
    /// Implicit-TLS listeners.
    pub tls_listen: Vec<SocketAddr>,
    /// Plain listeners that expect a PROXY protocol header first (from
    /// `proxy.trusted_networks` only); the other listeners never parse one.
    pub proxy_listen: Vec<SocketAddr>,
    /// Implicit-TLS listeners that expect a PROXY protocol header before the handshake.
    pub proxy_tls_listen: Vec<SocketAddr>,
}

/// `[proxy]`: the PROXY protocol's trusted senders (Dovecot's `haproxy_trusted_networks`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProxySettings {
    /// A connection to a PROXY listener from outside these blocks is refused. Empty by
    /// default: nothing is trusted until the operator says so. Hot-reloadable.
    pub trusted_networks: Vec<cidr::Cidr>,
}

impl ProxySettings {
    /// Whether a PROXY listener accepts a connection whose socket peer is `ip`.
    pub fn trusts(&self, ip: std::net::IpAddr) -> bool {
        self.trusted_networks.iter().any(|c| c.contains(ip))
    }
}

/// `[imap]` keys beyond the listeners.
#[derive(Debug, Clone, PartialEq)]
pub struct ImapSettings {
    /// RFC 9051 IMAP4rev2 advertised and enable-able (`imap.imap4rev2`, Dovecot's
    /// `imap4rev2_enable`); when false, sessions are IMAP4rev1 only.
    pub imap4rev2: bool,
    /// `imap.idle_check_interval_secs` (Dovecot's `mailbox_idle_check_interval`): an IDLE
    /// session re-syncs its folder this often even without a watcher event, because inotify
    /// does not see another host's writes; `None` (0) = only on events.
    pub idle_check_interval: Option<Duration>,
}

/// Default of `imap.idle_check_interval_secs`, as Dovecot's `mailbox_idle_check_interval`.
pub const DEFAULT_IDLE_CHECK_SECS: u64 = 30;

/// `[quota]`: limits for users whose users-file entry has no `quota_rule` of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuotaSettings {
    /// `storage` and `messages`; 0 = unlimited (the default).
    pub default: crate::store::quota::Limits,
    /// Dovecot's `quota_full_tempfail`: over quota is LMTP `452 4.2.2` and `deliver` exit 75
    /// (try again later) instead of `552 5.2.2` and exit 77 (bounce).
    pub full_tempfail: bool,
    /// Dovecot's `quota_grace` (default `10%`): how far one delivery may take a user under
    /// the storage limit past it; users may have their own (`quota_grace` extra field).
    pub grace: crate::store::quota::Grace,
}

/// `[lmtp]` (RFC 2033): where the MTA delivers, and how recipients map to folders.
#[derive(Debug, Clone, PartialEq)]
pub struct LmtpSettings {
    /// TCP addresses and Unix socket paths (`unix:/run/mailserver/lmtp`); none by default.
    pub listen: Vec<LmtpListen>,
    /// Separates the user from the folder in `user+folder@domain` (Dovecot's
    /// `recipient_delimiter`); empty turns sub-addressing off. Default `+`.
    pub recipient_delimiter: String,
}

/// `[metrics]`: where `/metrics`, `/healthz` and `/readyz` are served (README.md, "Metrics").
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSettings {
    /// `listen = "127.0.0.1:9110"`; `None` (the default) serves nothing. Restart-only.
    pub listen: Option<SocketAddr>,
}

/// One LMTP listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LmtpListen {
    Tcp(SocketAddr),
    /// A Unix stream socket (Postfix's `lmtp:unix:`); created at start (a stale socket file
    /// is replaced), mode 0666 as Dovecot's `lmtp` listener.
    Unix(PathBuf),
}

impl fmt::Display for LmtpListen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LmtpListen::Tcp(a) => write!(f, "{a}"),
            LmtpListen::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuthSettings {
    /// Absolute path of the Dovecot passwd-file.
    pub users_file: PathBuf,
    /// Plaintext auth without TLS from non-loopback peers.
    pub allow_plaintext: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub imap_idle_timeout: Duration,
    pub pop3_idle_timeout: Duration,
    /// LMTP: the longest a session may wait for the client (`lmtp_idle_timeout_secs`;
    /// RFC 5321 §4.5.3.2.7: a server waits at least 5 minutes).
    pub lmtp_idle_timeout: Duration,
    pub max_message_bytes: u64,
    /// Before login: the longest a connection may send nothing (`login_idle_timeout_secs`).
    pub login_idle_timeout: Duration,
    /// Before login: the longest the whole login phase may take from the connection's
    /// accept, however often the client sends (`login_timeout_secs`; slowloris).
    pub login_timeout: Duration,
    /// How long shutdown waits for sessions to end (extension: `shutdown_grace_secs`, 10 s).
    pub shutdown_grace: Duration,
}

/// The typed `[ParametersSystem]` settings of one service.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtocolLogSettings {
    /// 0 through 5.
    pub level: u32,
    /// Absolute directory of the `L???????.log` files.
    pub path: PathBuf,
    /// Extension value `... Protocol Log File Size Limit` in KiB; 0 = no limit.
    pub size_limit_kib: u32,
    /// `... Protocol Log Users` (REG_MULTI_SZ): sessions of these users (the users file's
    /// names, matched without regard to case) log at level 5 whatever `level` says; while
    /// non-empty the file opens at a session start even at level 0.
    pub users: Vec<String>,
}

impl ProtocolLogSettings {
    /// Whether the service's file is wanted open: a level above 0, or users to log.
    pub fn wants_file(&self) -> bool {
        self.level > 0 || !self.users.is_empty()
    }

    /// Whether `user` (a users-file name) is listed in `users`.
    pub fn lists(&self, user: &str) -> bool {
        self.users.iter().any(|u| u.eq_ignore_ascii_case(user))
    }
}

impl Config {
    pub fn protocol_log(&self, service: Service) -> &ProtocolLogSettings {
        match service {
            Service::Pop3 => &self.pop3_log,
            Service::Imap4 => &self.imap_log,
            Service::Lmtp => &self.lmtp_log,
        }
    }

    /// The idle timeout of a service.
    pub fn idle_timeout(&self, service: Service) -> Duration {
        match service {
            Service::Pop3 => self.limits.pop3_idle_timeout,
            Service::Imap4 => self.limits.imap_idle_timeout,
            Service::Lmtp => self.limits.lmtp_idle_timeout,
        }
    }
}

/// A configuration error, already naming file, line and column where it has them.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Reads and validates the file at `path` (following symlinks).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let bytes =
        read_file(path).map_err(|e| ConfigError(format!("{}: cannot read: {e}", path.display())))?;
    parse(path, &bytes)
}

/// The bytes of the config file at `path`, which must be a regular file (a symlink to one is
/// fine: Kubernetes ConfigMaps). It is opened non-blocking and checked before it is read,
/// so a FIFO (or a device) put in its place is refused at once instead of blocking the
/// reader forever (the reload task, `check-config`, `reg`).
pub fn read_file(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_dir() {
            "a directory"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else {
            "not a file"
        };
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("not a regular file ({what})"),
        ));
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The defaults (README.md, "Configuration").
pub const DEFAULT_HOSTNAME: &str = "localhost";
pub const DEFAULT_DATA_DIR: &str = "/var/lib/mailserver";
pub const DEFAULT_USERS_FILE: &str = "users";
pub const DEFAULT_MAX_CONNECTIONS: u64 = 10_000;
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: u64 = 100;
/// RFC 3501 §5.4: the autologout timer is at least 30 minutes.
pub const IMAP_MIN_IDLE_SECS: u64 = 1800;
/// RFC 1939 §3: the autologout timer is at least 10 minutes.
pub const POP3_MIN_IDLE_SECS: u64 = 600;
/// RFC 5321 §4.5.3.2.7: an SMTP (and so LMTP) server waits at least 5 minutes for a command.
pub const LMTP_MIN_IDLE_SECS: u64 = 300;
/// `[lmtp] recipient_delimiter` unless set (Dovecot's usual `+`).
pub const DEFAULT_RECIPIENT_DELIMITER: &str = "+";
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 52_428_800;
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 10;
/// Before login, no input for this long ends the connection (Dovecot's login processes
/// disconnect an idle client after 3 minutes).
pub const DEFAULT_LOGIN_IDLE_TIMEOUT_SECS: u64 = 180;
/// Before login, the whole login phase ends this long after the accept, whatever the client
/// sends: enough for a client that asks its user for the password after a failed attempt.
pub const DEFAULT_LOGIN_TIMEOUT_SECS: u64 = 300;
/// Upper bound of every `*_secs` setting: `Instant + Duration` must not overflow anywhere.
pub const MAX_SECS: u64 = 365 * 24 * 3600;

// ---- raw serde structs: exactly the TOML surface, nothing interpreted yet ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    imap: Option<RawImap>,
    pop3: Option<RawListeners>,
    lmtp: Option<RawLmtp>,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    quota: RawQuota,
    tls: Option<RawTls>,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    demo: RawDemo,
    #[serde(default)]
    auth: RawAuth,
    #[serde(default)]
    proxy: RawProxy,
    cluster: Option<cluster::RawCluster>,
    #[serde(default)]
    limits: RawLimits,
    /// Checked by `registry.rs` from the `toml_edit` document (spans and file order); here
    /// only its shape (a table) is checked.
    #[serde(rename = "ParametersSystem")]
    #[allow(dead_code)]
    parameters_system: Option<toml::Table>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    hostname: Option<Spanned<String>>,
    data_dir: Option<Spanned<String>>,
    require_data_marker: Option<bool>,
    store_watch: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListeners {
    #[serde(default)]
    listen: Vec<Spanned<String>>,
    #[serde(default)]
    tls_listen: Vec<Spanned<String>>,
    #[serde(default)]
    proxy_listen: Vec<Spanned<String>>,
    #[serde(default)]
    proxy_tls_listen: Vec<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxy {
    #[serde(default)]
    trusted_networks: Vec<Spanned<String>>,
}

/// `[imap]`: the listeners and the protocol switches.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImap {
    #[serde(default)]
    listen: Vec<Spanned<String>>,
    #[serde(default)]
    tls_listen: Vec<Spanned<String>>,
    #[serde(default)]
    proxy_listen: Vec<Spanned<String>>,
    #[serde(default)]
    proxy_tls_listen: Vec<Spanned<String>>,
    imap4rev2: Option<bool>,
    idle_check_interval_secs: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLmtp {
    #[serde(default)]
    listen: Vec<Spanned<String>>,
    recipient_delimiter: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuota {
    /// A size with a unit (`"1G"`, `"500M"`); without one, KiB (Dovecot's `storage=`).
    storage: Option<Spanned<String>>,
    messages: Option<Spanned<u64>>,
    full_tempfail: Option<bool>,
    /// `"10%"` or a size (`"10M"`; octets without a unit), Dovecot's `quota_grace`.
    grace: Option<Spanned<String>>,
}

/// `[admin]`: the admin socket's path.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    socket: Option<Spanned<String>>,
}

/// `[demo]`: the embedded default config's first-run help.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDemo {
    seed_welcome: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Spanned<String>,
    key: Spanned<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    users_file: Option<Spanned<String>>,
    allow_plaintext: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_connections: Option<Spanned<u64>>,
    max_connections_per_ip: Option<Spanned<u64>>,
    imap_idle_timeout_secs: Option<Spanned<u64>>,
    pop3_idle_timeout_secs: Option<Spanned<u64>>,
    lmtp_idle_timeout_secs: Option<Spanned<u64>>,
    max_message_bytes: Option<Spanned<u64>>,
    login_idle_timeout_secs: Option<Spanned<u64>>,
    login_timeout_secs: Option<Spanned<u64>>,
    shutdown_grace_secs: Option<Spanned<u64>>,
}

/// Collects errors and warnings while validating, each with `FILE:LINE:COL`.
struct Checker<'a> {
    loc: Locator<'a>,
    /// Directory relative paths resolve against (absolute).
    base: PathBuf,
    errors: Vec<String>,
    warnings: Vec<String>,
}

impl Checker<'_> {
    fn error<T>(&mut self, at: &Spanned<T>, msg: impl fmt::Display) {
        let where_ = self.loc.at(at.span().start);
        self.errors.push(format!("{where_}: {msg}"));
    }

    fn warn<T>(&mut self, at: &Spanned<T>, msg: impl fmt::Display) {
        let where_ = self.loc.at(at.span().start);
        self.warnings.push(format!("{where_}: {msg}"));
    }

    /// A path setting: non-empty, resolved against the config directory.
    fn path(&mut self, key: &str, v: &Spanned<String>) -> PathBuf {
        if v.get_ref().is_empty() {
            self.error(v, format!("{key} must not be empty"));
        }
        normalize(&self.base.join(v.get_ref()))
    }

    fn addrs(&mut self, key: &str, list: &[Spanned<String>]) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for s in list {
            match s.get_ref().parse::<SocketAddr>() {
                Ok(a) => out.push(a),
                Err(_) => self.error(
                    s,
                    format!(
                        "{key}: {:?} is not a socket address (write IP:PORT, e.g. \
                         \"0.0.0.0:143\" or \"[::]:143\")",
                        s.get_ref()
                    ),
                ),
            }
        }
        out
    }

    fn count(&mut self, key: &str, v: &Option<Spanned<u64>>, default: u64) -> u64 {
        match v {
            Some(n) if *n.get_ref() == 0 => {
                self.error(n, format!("limits.{key} must be at least 1"));
                default
            }
            Some(n) => *n.get_ref(),
            None => default,
        }
    }

    /// A `*_secs` value: at least 1 and at most [`MAX_SECS`]; `None` when absent or invalid
    /// (the error is recorded).
    fn secs(&mut self, key: &str, v: &Option<Spanned<u64>>) -> Option<u64> {
        let n = v.as_ref()?;
        match *n.get_ref() {
            0 => self.error(n, format!("limits.{key} must be at least 1")),
            s if s > MAX_SECS => self.error(
                n,
                format!("limits.{key} must be at most {MAX_SECS} (a year)"),
            ),
            s => return Some(s),
        }
        None
    }

    /// A session idle timeout: valid seconds, with a warning below the RFC's minimum `min`
    /// (also the default).
    fn timeout(&mut self, key: &str, v: &Option<Spanned<u64>>, min: u64, rfc: &str) -> Duration {
        let Some(secs) = self.secs(key, v) else {
            return Duration::from_secs(min);
        };
        if let (true, Some(n)) = (secs < min, v) {
            self.warn(
                n,
                format!(
                    "limits.{key} = {secs} is below the {min} s minimum of {rfc}; \
                     accepted, but clients may be cut off early"
                ),
            );
        }
        Duration::from_secs(secs)
    }
}

impl cluster::Checks for Checker<'_> {
    fn error<T>(&mut self, at: &Spanned<T>, msg: impl fmt::Display) {
        Checker::error(self, at, msg)
    }
    fn path(&mut self, key: &str, v: &Spanned<String>) -> PathBuf {
        Checker::path(self, key, v)
    }
    fn error_count(&self) -> usize {
        self.errors.len()
    }
    fn error_at_start(&mut self, msg: &str) {
        let where_ = self.loc.at(0);
        self.errors.push(format!("{where_}: {msg}"));
    }
}

/// The directory relative paths in `path` resolve against, made absolute with the working
/// directory at load time (the file name itself is not followed through symlinks: a
/// Kubernetes ConfigMap mount resolves against the mount directory).
pub fn base_dir(path: &Path) -> PathBuf {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    normalize(&std::path::absolute(&parent).unwrap_or(parent))
}

/// Validates `bytes` as the content of `path` (relative paths resolve against its directory).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Config, ConfigError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let loc = Locator::new(
            path,
            std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        );
        ConfigError(format!(
            "{}: the file is not valid UTF-8",
            loc.at(e.valid_up_to())
        ))
    })?;
    let loc = Locator::new(path, text);
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        ConfigError(format!(
            "{}: {}",
            loc.span(e.span()),
            e.message().trim_end()
        ))
    })?;
    let doc = toml_edit::Document::parse(text.to_string()).map_err(|e| {
        ConfigError(format!(
            "{}: {}",
            loc.span(e.span()),
            e.message().trim_end()
        ))
    })?;

    let mut c = Checker {
        loc,
        base: base_dir(path),
        errors: Vec::new(),
        warnings: Vec::new(),
    };

    let hostname = match &raw.server.hostname {
        Some(h) => {
            let ok = !h.get_ref().is_empty()
                && h.get_ref()
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "-._".contains(ch));
            if !ok {
                c.error(
                    h,
                    format!(
                        "server.hostname {:?} is not a host name (letters, digits, '-', '.')",
                        h.get_ref()
                    ),
                );
            }
            h.get_ref().clone()
        }
        None => DEFAULT_HOSTNAME.to_string(),
    };
    let data_dir = match &raw.server.data_dir {
        Some(d) => c.path("server.data_dir", d),
        None => PathBuf::from(DEFAULT_DATA_DIR),
    };

    let empty = RawListeners::default();
    let empty_imap = RawImap::default();
    let ri = raw.imap.as_ref().unwrap_or(&empty_imap);
    let rp = raw.pop3.as_ref().unwrap_or(&empty);
    let imap = Listeners {
        listen: c.addrs("imap.listen", &ri.listen),
        tls_listen: c.addrs("imap.tls_listen", &ri.tls_listen),
        proxy_listen: c.addrs("imap.proxy_listen", &ri.proxy_listen),
        proxy_tls_listen: c.addrs("imap.proxy_tls_listen", &ri.proxy_tls_listen),
    };
    let idle_check = match &ri.idle_check_interval_secs {
        Some(n) if *n.get_ref() > MAX_SECS => {
            c.error(
                n,
                format!("imap.idle_check_interval_secs must be at most {MAX_SECS} (a year)"),
            );
            DEFAULT_IDLE_CHECK_SECS
        }
        Some(n) => *n.get_ref(),
        None => DEFAULT_IDLE_CHECK_SECS,
    };
    let imap_protocol = ImapSettings {
        imap4rev2: ri.imap4rev2.unwrap_or(true),
        idle_check_interval: (idle_check > 0).then(|| Duration::from_secs(idle_check)),
    };
    let pop3 = Listeners {
        listen: c.addrs("pop3.listen", &rp.listen),
        tls_listen: c.addrs("pop3.tls_listen", &rp.tls_listen),
        proxy_listen: c.addrs("pop3.proxy_listen", &rp.proxy_listen),
        proxy_tls_listen: c.addrs("pop3.proxy_tls_listen", &rp.proxy_tls_listen),
    };
    // One address cannot be bound twice: say so now rather than at bind time. Port 0 (any
    // free port, used by tests) is exempt: each bind gets its own port.
    let empty_lmtp = RawLmtp::default();
    let rl = raw.lmtp.as_ref().unwrap_or(&empty_lmtp);
    let mut lmtp_listen = Vec::new();
    for s in &rl.listen {
        match s.get_ref().strip_prefix("unix:") {
            Some(p) => {
                let path = c.path("lmtp.listen", &Spanned::new(s.span(), p.to_string()));
                if lmtp_listen.contains(&LmtpListen::Unix(path.clone())) {
                    c.error(s, format!("lmtp.listen: {} is listed twice", path.display()));
                }
                lmtp_listen.push(LmtpListen::Unix(path));
            }
            None => lmtp_listen.extend(
                c.addrs("lmtp.listen", std::slice::from_ref(s))
                    .into_iter()
                    .map(LmtpListen::Tcp),
            ),
        }
    }
    let recipient_delimiter = match &rl.recipient_delimiter {
        Some(d) if d.get_ref().chars().any(|ch| ch.is_whitespace() || ch == '@') => {
            c.error(
                d,
                "lmtp.recipient_delimiter must not hold white space or '@'",
            );
            String::new()
        }
        Some(d) => d.get_ref().clone(),
        None => DEFAULT_RECIPIENT_DELIMITER.to_string(),
    };
    let lmtp = LmtpSettings {
        listen: lmtp_listen,
        recipient_delimiter,
    };
    let quota = QuotaSettings {
        default: crate::store::quota::Limits {
            bytes: match &raw.quota.storage {
                Some(v) => match crate::store::quota::parse_size(v.get_ref(), 1024) {
                    Ok(n) => n,
                    Err(e) => {
                        c.error(v, format!("quota.storage: {e}"));
                        0
                    }
                },
                None => 0,
            },
            messages: raw.quota.messages.as_ref().map_or(0, |m| *m.get_ref()),
        },
        full_tempfail: raw.quota.full_tempfail.unwrap_or(false),
        grace: match &raw.quota.grace {
            Some(v) => crate::store::quota::parse_grace(v.get_ref()).unwrap_or_else(|e| {
                c.error(v, format!("quota.grace: {e}"));
                Default::default()
            }),
            None => Default::default(),
        },
    };
    let metrics = MetricsSettings {
        listen: raw
            .metrics
            .listen
            .as_ref()
            .and_then(|l| c.addrs("metrics.listen", std::slice::from_ref(l)).pop()),
    };
    let mut seen: Vec<SocketAddr> = Vec::new();
    let lmtp_tcp: Vec<&Spanned<String>> = rl
        .listen
        .iter()
        .filter(|s| !s.get_ref().starts_with("unix:"))
        .collect();
    for s in ri
        .listen
        .iter()
        .chain(&ri.tls_listen)
        .chain(&ri.proxy_listen)
        .chain(&ri.proxy_tls_listen)
        .chain(&rp.listen)
        .chain(&rp.tls_listen)
        .chain(&rp.proxy_listen)
        .chain(&rp.proxy_tls_listen)
        .chain(lmtp_tcp)
        .chain(raw.metrics.listen.as_ref())
        .chain(raw.cluster.iter().flat_map(|rc| {
            // Only this node's internal listeners are bound here.
            rc.listen_addrs_of_self()
        }))
    {
        if let Ok(a) = s.get_ref().parse::<SocketAddr>() {
            if a.port() != 0 && seen.contains(&a) {
                c.error(s, format!("listen address {a} is listed twice"));
            }
            seen.push(a);
        }
    }

    let tls = raw.tls.as_ref().map(|t| TlsFiles {
        cert: c.path("tls.cert", &t.cert),
        key: c.path("tls.key", &t.key),
    });

    let mut proxy = ProxySettings::default();
    for s in &raw.proxy.trusted_networks {
        match cidr::Cidr::parse(s.get_ref()) {
            Ok(n) => proxy.trusted_networks.push(n),
            Err(e) => c.error(s, format!("proxy.trusted_networks: {e}")),
        }
    }
    let proxy_listeners = [&ri.proxy_listen, &ri.proxy_tls_listen, &rp.proxy_listen, &rp.proxy_tls_listen];
    if let (Some(first), true) = (
        proxy_listeners.iter().flat_map(|l| l.iter()).next(),
        raw.proxy.trusted_networks.is_empty(),
    ) {
        c.warn(
            first,
            "PROXY listeners are configured but proxy.trusted_networks is empty: \
             every connection to them is refused",
        );
    }

    let cluster = raw.cluster.as_ref().and_then(|rc| cluster::check(&mut c, rc));

    let auth = AuthSettings {
        users_file: match &raw.auth.users_file {
            Some(u) => c.path("auth.users_file", u),
            None => c.base.join(DEFAULT_USERS_FILE),
        },
        allow_plaintext: raw.auth.allow_plaintext.unwrap_or(false),
    };

    let l = &raw.limits;
    let limits = Limits {
        max_connections: c.count(
            "max_connections",
            &l.max_connections,
            DEFAULT_MAX_CONNECTIONS,
        ) as usize,
        max_connections_per_ip: c.count(
            "max_connections_per_ip",
            &l.max_connections_per_ip,
            DEFAULT_MAX_CONNECTIONS_PER_IP,
        ) as usize,
        imap_idle_timeout: c.timeout(
            "imap_idle_timeout_secs",
            &l.imap_idle_timeout_secs,
            IMAP_MIN_IDLE_SECS,
            "RFC 3501 section 5.4",
        ),
        pop3_idle_timeout: c.timeout(
            "pop3_idle_timeout_secs",
            &l.pop3_idle_timeout_secs,
            POP3_MIN_IDLE_SECS,
            "RFC 1939 section 3",
        ),
        lmtp_idle_timeout: c.timeout(
            "lmtp_idle_timeout_secs",
            &l.lmtp_idle_timeout_secs,
            LMTP_MIN_IDLE_SECS,
            "RFC 5321 section 4.5.3.2.7",
        ),
        max_message_bytes: c.count(
            "max_message_bytes",
            &l.max_message_bytes,
            DEFAULT_MAX_MESSAGE_BYTES,
        ),
        login_idle_timeout: Duration::from_secs(
            c.secs("login_idle_timeout_secs", &l.login_idle_timeout_secs)
                .unwrap_or(DEFAULT_LOGIN_IDLE_TIMEOUT_SECS),
        ),
        login_timeout: Duration::from_secs(
            c.secs("login_timeout_secs", &l.login_timeout_secs)
                .unwrap_or(DEFAULT_LOGIN_TIMEOUT_SECS),
        ),
        shutdown_grace: match &l.shutdown_grace_secs {
            Some(s) if *s.get_ref() > MAX_SECS => {
                c.error(
                    s,
                    format!("limits.shutdown_grace_secs must be at most {MAX_SECS} (a year)"),
                );
                Duration::ZERO
            }
            Some(s) => Duration::from_secs(*s.get_ref()),
            None => Duration::from_secs(DEFAULT_SHUTDOWN_GRACE_SECS),
        },
    };

    let registry = match doc.get(registry::TABLE).and_then(|i| i.as_table_like()) {
        Some(table) => {
            let (values, warnings, errors) = registry::check_table(table, &c.loc);
            c.warnings.extend(warnings);
            c.errors.extend(errors);
            values
        }
        None => registry::Values::default(),
    };

    if !c.errors.is_empty() {
        return Err(ConfigError(c.errors.join("\n")));
    }

    let log = |level: &str, path: &str, limit: &str, users: Option<&str>| ProtocolLogSettings {
        level: registry.dword(level),
        path: normalize(&registry::resolved_path(
            &registry, path, &c.base, &data_dir,
        )),
        size_limit_kib: registry.dword(limit),
        users: users.map_or_else(Vec::new, |u| registry.multi_sz(u).to_vec()),
    };
    let pop3_log = log(
        registry::POP3_LEVEL,
        registry::POP3_PATH,
        registry::POP3_SIZE_LIMIT,
        Some(registry::POP3_USERS),
    );
    let imap_log = log(
        registry::IMAP_LEVEL,
        registry::IMAP_PATH,
        registry::IMAP_SIZE_LIMIT,
        Some(registry::IMAP_USERS),
    );
    // LMTP has no users value: an LMTP session is an MTA's connection carrying mail for
    // many recipients, not one user's session (README.md, "Per-user protocol logging").
    let lmtp_log = log(
        registry::LMTP_LEVEL,
        registry::LMTP_PATH,
        registry::LMTP_SIZE_LIMIT,
        None,
    );

    Ok(Config {
        path: path.to_path_buf(),
        digest: crate::metrics::file_hash(bytes),
        admin_socket: match &raw.admin.socket {
            Some(p) => c.path("admin.socket", p),
            None => data_dir.join("admin.sock"),
        },
        seed_welcome: raw.demo.seed_welcome.unwrap_or(false),
        server: ServerSettings {
            hostname,
            data_dir,
            require_data_marker: raw.server.require_data_marker.unwrap_or(false),
            store_watch: raw.server.store_watch.unwrap_or(true),
        },
        imap,
        imap_protocol,
        pop3,
        lmtp,
        metrics,
        quota,
        tls,
        auth,
        proxy,
        cluster,
        limits,
        pop3_log,
        imap_log,
        lmtp_log,
        registry,
        warnings: c.warnings,
    })
}

/// A byte count in the largest unit that divides it (`1G`, `512M`, `100B`; `0` unlimited).
fn size_text(bytes: u64) -> String {
    if bytes == 0 {
        return "0".into();
    }
    for (shift, unit) in [(40, 'T'), (30, 'G'), (20, 'M'), (10, 'K')] {
        if bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

/// One setting as `check-config` prints it and `diff` compares it.
struct Setting {
    /// `section.key`, or `ParametersSystem."Name"`.
    key: String,
    /// TOML-ish rendering of the value.
    value: String,
    /// Registry values: `REG_TYPE data` as `reg query` shows it, and where it comes from.
    reg: Option<(String, &'static str)>,
    /// Listen addresses and `data_dir`: a reload cannot apply them.
    needs_restart: bool,
}

fn quote(s: &str) -> String {
    toml_edit::Value::from(s).to_string().trim().to_string()
}

fn quote_path(p: &Path) -> String {
    quote(&p.display().to_string())
}

fn addr_list(v: &[SocketAddr]) -> String {
    let items: Vec<String> = v.iter().map(|a| quote(&a.to_string())).collect();
    format!("[{}]", items.join(", "))
}

fn settings(cfg: &Config) -> Vec<Setting> {
    let mut out = Vec::new();
    let mut push = |key: &str, value: String, restart: bool| {
        out.push(Setting {
            key: key.to_string(),
            value,
            reg: None,
            needs_restart: restart,
        })
    };
    push("server.hostname", quote(&cfg.server.hostname), false);
    push("server.data_dir", quote_path(&cfg.server.data_dir), true);
    push(
        "server.require_data_marker",
        cfg.server.require_data_marker.to_string(),
        false,
    );
    push("server.store_watch", cfg.server.store_watch.to_string(), true);
    push("imap.listen", addr_list(&cfg.imap.listen), true);
    push("imap.tls_listen", addr_list(&cfg.imap.tls_listen), true);
    push("imap.proxy_listen", addr_list(&cfg.imap.proxy_listen), true);
    push("imap.proxy_tls_listen", addr_list(&cfg.imap.proxy_tls_listen), true);
    push(
        "imap.imap4rev2",
        cfg.imap_protocol.imap4rev2.to_string(),
        false,
    );
    push(
        "imap.idle_check_interval_secs",
        cfg.imap_protocol
            .idle_check_interval
            .map_or(0, |d| d.as_secs())
            .to_string(),
        false,
    );
    push("pop3.listen", addr_list(&cfg.pop3.listen), true);
    push("pop3.tls_listen", addr_list(&cfg.pop3.tls_listen), true);
    push("pop3.proxy_listen", addr_list(&cfg.pop3.proxy_listen), true);
    push("pop3.proxy_tls_listen", addr_list(&cfg.pop3.proxy_tls_listen), true);
    let lmtp: Vec<String> = cfg.lmtp.listen.iter().map(|l| quote(&l.to_string())).collect();
    push("lmtp.listen", format!("[{}]", lmtp.join(", ")), true);
    push(
        "lmtp.recipient_delimiter",
        quote(&cfg.lmtp.recipient_delimiter),
        false,
    );
    // Off is absent, so the effective config stays loadable TOML.
    if let Some(a) = cfg.metrics.listen {
        push("metrics.listen", quote(&a.to_string()), true);
    }
    push("quota.storage", quote(&size_text(cfg.quota.default.bytes)), false);
    push("quota.messages", cfg.quota.default.messages.to_string(), false);
    push(
        "quota.full_tempfail",
        cfg.quota.full_tempfail.to_string(),
        false,
    );
    push("quota.grace", quote(&cfg.quota.grace.text()), false);
    push("admin.socket", quote_path(&cfg.admin_socket), true);
    push("demo.seed_welcome", cfg.seed_welcome.to_string(), false);
    match &cfg.tls {
        Some(t) => {
            push("tls.cert", quote_path(&t.cert), false);
            push("tls.key", quote_path(&t.key), false);
        }
        None => {
            let dir = cfg.server.data_dir.join("tls");
            push(
                "tls.cert",
                format!(
                    "{}  # self-signed, generated",
                    quote_path(&dir.join("cert.pem"))
                ),
                false,
            );
            push(
                "tls.key",
                format!(
                    "{}  # self-signed, generated",
                    quote_path(&dir.join("key.pem"))
                ),
                false,
            );
        }
    }
    push("auth.users_file", quote_path(&cfg.auth.users_file), false);
    push(
        "auth.allow_plaintext",
        cfg.auth.allow_plaintext.to_string(),
        false,
    );
    let nets: Vec<String> = cfg
        .proxy
        .trusted_networks
        .iter()
        .map(|n| quote(&n.to_string()))
        .collect();
    push(
        "proxy.trusted_networks",
        format!("[{}]", nets.join(", ")),
        false,
    );
    if let Some(cl) = &cfg.cluster {
        // The whole table applies at restart only (src/config/cluster.rs).
        push("cluster.node_id", quote(&cl.node_id), true);
        let nodes: Vec<String> = cl
            .nodes
            .iter()
            .map(|n| {
                format!(
                    "{{ id = {}, imap = {}, pop3 = {} }}",
                    quote(&n.id),
                    quote(&n.imap.to_string()),
                    quote(&n.pop3.to_string())
                )
            })
            .collect();
        push("cluster.nodes", format!("[{}]", nodes.join(", ")), true);
        let nets: Vec<String> = cl
            .trusted_networks
            .iter()
            .map(|n| quote(&n.to_string()))
            .collect();
        push(
            "cluster.trusted_networks",
            format!("[{}]", nets.join(", ")),
            true,
        );
        match &cl.secret_file {
            Some(f) => push("cluster.secret_file", quote_path(f), true),
            // Never the secret itself; a changed secret still shows as a change.
            None => push(
                "cluster.secret",
                format!("\"(hidden, {} bytes)\"", cl.secret.expose().len()),
                true,
            ),
        }
        if let Some(u) = &cl.nats_url {
            // A password or token in the URL is not shown.
            push(
                "cluster.nats_url",
                quote(&cluster::redacted_url(u)),
                true,
            );
        }
        if let Some(f) = &cl.nats_tls.ca_file {
            push("cluster.nats_ca_file", quote_path(f), true);
        }
        if let Some((cert, key)) = &cl.nats_tls.client {
            push("cluster.nats_cert_file", quote_path(cert), true);
            push("cluster.nats_key_file", quote_path(key), true);
        }
        push("cluster.subject_prefix", quote(&cl.subject_prefix), true);
        push(
            "cluster.heartbeat_ms",
            cl.heartbeat.as_millis().to_string(),
            true,
        );
        push(
            "cluster.dead_after_ms",
            cl.dead_after.as_millis().to_string(),
            true,
        );
        push(
            "cluster.connect_timeout_ms",
            cl.connect_timeout.as_millis().to_string(),
            true,
        );
    }
    let l = &cfg.limits;
    push(
        "limits.max_connections",
        l.max_connections.to_string(),
        false,
    );
    push(
        "limits.max_connections_per_ip",
        l.max_connections_per_ip.to_string(),
        false,
    );
    push(
        "limits.imap_idle_timeout_secs",
        l.imap_idle_timeout.as_secs().to_string(),
        false,
    );
    push(
        "limits.pop3_idle_timeout_secs",
        l.pop3_idle_timeout.as_secs().to_string(),
        false,
    );
    push(
        "limits.lmtp_idle_timeout_secs",
        l.lmtp_idle_timeout.as_secs().to_string(),
        false,
    );
    push(
        "limits.max_message_bytes",
        l.max_message_bytes.to_string(),
        false,
    );
    push(
        "limits.login_idle_timeout_secs",
        l.login_idle_timeout.as_secs().to_string(),
        false,
    );
    push(
        "limits.login_timeout_secs",
        l.login_timeout.as_secs().to_string(),
        false,
    );
    push(
        "limits.shutdown_grace_secs",
        l.shutdown_grace.as_secs().to_string(),
        false,
    );
    for (name, data, source) in cfg.registry.effective(&cfg.server.data_dir) {
        // Known path values are shown resolved (what the server will use).
        let data = match (&data, registry::lookup(&name).map(|d| d.kind)) {
            (RegData::Sz(_), Some(registry::Kind::Path)) if source == Source::File => RegData::Sz(
                registry::resolved_path(
                    &cfg.registry,
                    &name,
                    &base_dir(&cfg.path),
                    &cfg.server.data_dir,
                )
                .display()
                .to_string(),
            ),
            _ => data,
        };
        let value = match &data {
            RegData::Dword(n) => n.to_string(),
            RegData::Sz(s) => quote(s),
            RegData::MultiSz(v) => format!(
                "[{}]",
                v.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", ")
            ),
        };
        let source = match source {
            Source::File => "(file)",
            Source::Default => "(default)",
            Source::Unknown => "(file; unknown value: kept, not used)",
        };
        out.push(Setting {
            key: format!("{}.{}", registry::TABLE, quote(&name)),
            value,
            reg: Some((
                format!("{} {}", data.reg_type(), data.reg_display()),
                source,
            )),
            needs_restart: false,
        });
    }
    out
}

/// `check-config` output: every setting, then every `[ParametersSystem]` value with its
/// `REG_` type, data and whether it comes from the file or is the default.
pub fn render_effective(cfg: &Config) -> String {
    let mut out = format!("# effective configuration of {}\n", cfg.path.display());
    let mut section = String::new();
    for s in settings(cfg) {
        let (sec, key) = s.key.split_once('.').unwrap_or(("", &s.key));
        if sec != section {
            if sec == registry::TABLE {
                out.push_str(&format!("\n[{sec}]  # {}\n", registry::KEY_PATH));
            } else {
                out.push_str(&format!("\n[{sec}]\n"));
            }
            section = sec.to_string();
        }
        match &s.reg {
            None => out.push_str(&format!("{key} = {}\n", s.value)),
            Some((data, source)) => {
                out.push_str(&format!("{key} = {}  # {data} {source}\n", s.value))
            }
        }
    }
    out
}

/// `s` for a terminal: control characters (C0 but line feed and tab, DEL, C1 U+0080–U+009F)
/// written as `\x1B` / `\u{9b}`, so names and values from an attacker's `.reg` or config file
/// cannot move the cursor or retitle the terminal. Anything else is returned unchanged.
pub fn escape_controls(s: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !s.contains(bad) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            c if bad(c) && (c as u32) < 0x80 => out.push_str(&format!("\\x{:02X}", c as u32)),
            c if bad(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.into()
}

/// One changed setting between two configs (for the reload log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigChange {
    /// `section.key` or `ParametersSystem."Name"`.
    pub key: String,
    pub old: String,
    pub new: String,
    /// Listen addresses and `data_dir` apply only after a restart (ARCHITECTURE.md, "Configuration and reload").
    pub needs_restart: bool,
}

/// What changed from `old` to `new`, in `check-config` order.
pub fn diff(old: &Config, new: &Config) -> Vec<ConfigChange> {
    // TOML value first (`4`, `"/var/log"`), then the registry type for registry values.
    let show = |s: &Setting| match &s.reg {
        Some((data, _)) if data.starts_with("REG_DWORD") => format!("{} ({data})", s.value),
        Some((data, _)) if data.starts_with("REG_MULTI_SZ") => format!("{} (REG_MULTI_SZ)", s.value),
        Some(_) => format!("{} (REG_SZ)", s.value),
        None => s.value.clone(),
    };
    let a = settings(old);
    let b = settings(new);
    let mut out = Vec::new();
    for s in &b {
        let before = a.iter().find(|o| o.key == s.key);
        let old_v = before.map_or_else(|| "(absent)".to_string(), show);
        let new_v = show(s);
        // `value` is TOML, so 5 and "5" differ: a type change is a change.
        if before.map(|o| &o.value) != Some(&s.value) {
            out.push(ConfigChange {
                key: s.key.clone(),
                old: old_v,
                new: new_v,
                needs_restart: s.needs_restart,
            });
        }
    }
    for s in a.iter().filter(|o| !b.iter().any(|n| n.key == o.key)) {
        out.push(ConfigChange {
            key: s.key.clone(),
            old: show(s),
            new: "(absent)".to_string(),
            needs_restart: s.needs_restart,
        });
    }
    out
}

#[cfg(test)]
mod tests;
