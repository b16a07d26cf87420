//! The daemon's OpenMetrics series (README.md, "Metrics"; ARCHITECTURE.md, "Metrics"):
//! one registry per process, counted by the driver, the accept loop, logins, the store, the
//! protocol-log writer and the config watcher; served by [`http`] when `[metrics] listen` is
//! set.
//!
//! * One registry per process ([`get`]), not a handle threaded through every layer: the
//!   fsync timer sits under the store's free functions (`fsutil`) and the protocol-log writer
//!   runs on its own threads, and a second registry in one process would only split the
//!   counts. (The daemon is one per process; the integration tests run it as a child
//!   process, so their counts are exact.)
//! * Counting is always on, served or not: every update is an atomic add on a handle made
//!   once. The per-command children are made up front for the known command set of each
//!   service ([`Metrics::command`]), so the per-command path takes no `Family` lock, only
//!   the histogram's own (uncontended, per command name and service).
//! * Label values are bounded: services, states, mechanisms and command names are fixed
//!   sets (anything else is `other`); never a user name or an address.
//! * The exposition is `prometheus-client`'s OpenMetrics text encoder, nothing hand-written.

use std::sync::atomic::AtomicU64;
use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::service::Service;

pub mod http;

/// A label set: fixed keys, bounded values.
type Labels = Vec<(&'static str, &'static str)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// The `service` label value.
pub fn service_label(s: Service) -> &'static str {
    match s {
        Service::Pop3 => "pop3",
        Service::Imap4 => "imap",
        Service::Lmtp => "lmtp",
    }
}

/// Command names per service, as counted (anything else is `other`). IMAP's `UID x` is
/// `uid_x`.
const IMAP_COMMANDS: &[&str] = &[
    "CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "AUTHENTICATE", "LOGIN", "SELECT", "EXAMINE",
    "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "LIST", "LSUB", "XLIST",
    "STATUS", "APPEND", "CHECK", "CLOSE", "EXPUNGE", "SEARCH", "SORT", "THREAD", "FETCH",
    "STORE", "COPY", "MOVE", "UNSELECT", "IDLE", "ID", "ENABLE", "COMPRESS", "NAMESPACE",
    "GETQUOTA", "GETQUOTAROOT", "SETQUOTA", "ESEARCH",
];
const IMAP_UID_COMMANDS: &[&str] = &["FETCH", "STORE", "COPY", "MOVE", "SEARCH", "SORT", "THREAD", "EXPUNGE"];
const POP3_COMMANDS: &[&str] = &[
    "USER", "PASS", "APOP", "AUTH", "STLS", "CAPA", "STAT", "LIST", "RETR", "DELE", "NOOP",
    "RSET", "TOP", "UIDL", "QUIT", "UTF8",
];
const LMTP_COMMANDS: &[&str] = &[
    "LHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "QUIT", "VRFY", "HELO", "EHLO",
];

/// Session states per service, as the `state` label of `mailserver_sessions`.
pub const IMAP_STATES: &[&str] =
    &["not_authenticated", "authenticated", "selected", "logout", "proxied"];
pub const POP3_STATES: &[&str] = &["authorization", "transaction", "update", "proxied"];
pub const LMTP_STATES: &[&str] = &["active"];

/// Login mechanisms as labelled (`LOGIN` is IMAP's command, `USER` POP3's USER/PASS).
const MECHANISMS: &[&str] = &["plain", "login", "user", "apop"];

/// The counters of one command name of one service, made once.
struct CommandChild {
    name: &'static str,
    count: Counter,
    latency: Histogram,
}

/// Every series of the daemon.
pub struct Metrics {
    registry: Registry,
    connections_open: Family<Labels, Gauge>,
    connections_accepted: Family<Labels, Counter>,
    connections_refused: Family<Labels, Counter>,
    sessions: Family<Labels, Gauge>,
    logins: Family<Labels, Counter>,
    penalty_delays: Family<Labels, Counter>,
    penalty_seconds: Family<Labels, Counter<f64, AtomicU64>>,
    bytes_in: Family<Labels, Counter>,
    bytes_out: Family<Labels, Counter>,
    tls_handshakes: Family<Labels, Counter>,
    store_ops: Family<Labels, Counter>,
    fsync: Histogram,
    protolog_records: Family<Labels, Counter>,
    protolog_bytes: Family<Labels, Counter>,
    protolog_dropped: Family<Labels, Counter>,
    protolog_files: Family<Labels, Gauge>,
    reloads: Family<Labels, Counter>,
    config_hash: Family<Vec<(&'static str, String)>, Gauge>,
    proxied_logins: Family<Vec<(&'static str, String)>, Counter>,
    proxy_failures: Family<Vec<(&'static str, String)>, Counter>,
    /// Per service ([`Service::index`]): the known command names, then `other` last.
    commands: [Vec<CommandChild>; 3],
    /// Per service ([`Service::index`]): the children counted per connection or record.
    per_service: [ServiceChildren; 3],
    /// The children of `store_ops`, one per [`STORE_OPS`] entry.
    store_children: Vec<(&'static str, Counter)>,
    /// `[cluster]` (README.md, "Cluster").
    cluster: ClusterSeries,
}

/// The cluster's series: 0 on a single node.
#[derive(Default)]
struct ClusterSeries {
    live_nodes: Gauge,
    nats_connected: Gauge,
    membership_changes: Counter,
    events: Family<Labels, Counter>,
}

/// The change-event outcomes counted (`result` label).
const CLUSTER_EVENTS: &[&str] = &["published", "dropped", "received", "invalid"];

/// The store operations counted (`op` label).
const STORE_OPS: &[&str] = &["save", "copy", "move", "expunge", "remove", "store"];

/// The `service`-labelled children that are touched per connection or per protocol-log
/// record, made once so those paths take no `Family` lock and build no label set.
#[derive(Default)]
struct ServiceChildren {
    open: Gauge,
    accepted: Counter,
    bytes_in: Counter,
    bytes_out: Counter,
    protolog_records: Counter,
    protolog_bytes: Counter,
    protolog_dropped: Counter,
    protolog_files: Gauge,
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

fn lbl(pairs: &[(&'static str, &'static str)]) -> Labels {
    pairs.to_vec()
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("mailserver");
        // A gauge at 1 rather than an OpenMetrics `info` metric: the classic Prometheus text
        // format (promtool, older scrapers) has no `info` type; the series is the same.
        let build: Family<Labels, Gauge> = Family::default();
        build
            .get_or_create_owned(&lbl(&[("version", env!("CARGO_PKG_VERSION"))]))
            .set(1);
        registry.register("build_info", "The running build (value 1)", build);
        macro_rules! reg {
            ($name:expr, $help:expr, $m:expr) => {{
                let m = $m;
                registry.register($name, $help, m.clone());
                m
            }};
            ($name:expr, $help:expr, $unit:expr, $m:expr) => {{
                let m = $m;
                registry.register_with_unit($name, $help, $unit, m.clone());
                m
            }};
        }
        let latency_family: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0001, 4.0, 10)));
        let m = Metrics {
            connections_open: reg!("connections_open", "Connections being served", Family::default()),
            connections_accepted: reg!(
                "connections_accepted",
                "Connections accepted (refused ones included)",
                Family::default()
            ),
            connections_refused: reg!(
                "connections_refused",
                "Connections refused by a limit (reason: total, per_ip) or at a PROXY listener (untrusted_proxy, proxy_header)",
                Family::default()
            ),
            sessions: reg!("sessions", "Sessions by protocol state", Family::default()),
            logins: reg!(
                "logins",
                "Password checks by mechanism and result (ok, failed, tempfail)",
                Family::default()
            ),
            penalty_delays: reg!(
                "penalty_delays",
                "Failed-login delays applied (kind: address, session)",
                Family::default()
            ),
            penalty_seconds: reg!(
                "penalty_delay",
                "Seconds of failed-login delay applied",
                Unit::Seconds,
                Family::default()
            ),
            bytes_in: reg!("received", "Octets read from clients (wire octets)", Unit::Bytes, Family::default()),
            bytes_out: reg!("sent", "Octets written to clients (wire octets)", Unit::Bytes, Family::default()),
            tls_handshakes: reg!(
                "tls_handshakes",
                "TLS handshakes (implicit and STARTTLS/STLS) by result",
                Family::default()
            ),
            store_ops: reg!(
                "store_operations",
                "Mail store writes by operation",
                Family::default()
            ),
            fsync: reg!(
                "store_fsync",
                "Latency of the store's fsync/fdatasync calls",
                Unit::Seconds,
                Histogram::new(exponential_buckets(0.00005, 4.0, 10))
            ),
            protolog_records: reg!(
                "protolog_records",
                "Protocol-log records queued for writing",
                Family::default()
            ),
            protolog_bytes: reg!(
                "protolog_written",
                "Protocol-log octets written to files",
                Unit::Bytes,
                Family::default()
            ),
            protolog_dropped: reg!(
                "protolog_dropped_records",
                "Protocol-log records dropped (queue full)",
                Family::default()
            ),
            protolog_files: reg!(
                "protolog_files_open",
                "Protocol-log files open",
                Family::default()
            ),
            reloads: reg!(
                "config_reloads",
                "Configuration reloads by result (ok, rejected)",
                Family::default()
            ),
            config_hash: reg!(
                "config_info",
                "The running configuration file's MD5 (value 1; one series, replaced on reload)",
                Family::default()
            ),
            proxied_logins: reg!(
                "proxied_logins",
                "Logins relayed to the owner node (cluster login proxy), by service and node",
                Family::default()
            ),
            proxy_failures: reg!(
                "proxy_failures",
                "Failed attempts to reach a node's internal listener (then the next node is tried)",
                Family::default()
            ),
            commands: Default::default(),
            per_service: Default::default(),
            store_children: Vec::new(),
            cluster: ClusterSeries {
                live_nodes: reg!(
                    "cluster_live_nodes",
                    "Cluster nodes live in this node's view (itself included; 0 without [cluster])",
                    Gauge::default()
                ),
                nats_connected: reg!(
                    "cluster_nats_connected",
                    "Whether this node's NATS connection is up (1) or not (0)",
                    Gauge::default()
                ),
                membership_changes: reg!(
                    "cluster_membership_changes",
                    "Changes of this node's live set",
                    Counter::default()
                ),
                events: reg!(
                    "cluster_change_events",
                    "Mailbox change events by result (published, dropped: not sent, received: from another node, invalid)",
                    Family::default()
                ),
            },
            registry: Registry::default(),
        };
        let commands_family: Family<Labels, Counter> = Family::default();
        registry.register(
            "commands",
            "Commands by name (other: unknown names)",
            commands_family.clone(),
        );
        registry.register_with_unit(
            "command_duration",
            "Time from a command line to the session's answer",
            Unit::Seconds,
            latency_family.clone(),
        );
        let mut m = m;
        for service in Service::ALL {
            let svc = service_label(service);
            let mut names: Vec<&'static str> = Vec::new();
            let lower = |n: &str| -> &'static str { Box::leak(n.to_ascii_lowercase().into_boxed_str()) };
            let list = match service {
                Service::Imap4 => IMAP_COMMANDS,
                Service::Pop3 => POP3_COMMANDS,
                Service::Lmtp => LMTP_COMMANDS,
            };
            names.extend(list.iter().map(|n| lower(n)));
            if service == Service::Imap4 {
                names.extend(
                    IMAP_UID_COMMANDS
                        .iter()
                        .map(|n| lower(&format!("uid_{n}"))),
                );
            }
            names.push("other");
            m.commands[service.index()] = names
                .into_iter()
                .map(|name| {
                    let l = lbl(&[("service", svc), ("command", name)]);
                    CommandChild {
                        name,
                        count: commands_family.get_or_create_owned(&l),
                        latency: latency_family.get_or_create_owned(&l),
                    }
                })
                .collect();
            // Made now: these read 0 from the first scrape rather than being absent.
            let l = lbl(&[("service", svc)]);
            m.per_service[service.index()] = ServiceChildren {
                open: m.connections_open.get_or_create_owned(&l),
                accepted: m.connections_accepted.get_or_create_owned(&l),
                bytes_in: m.bytes_in.get_or_create_owned(&l),
                bytes_out: m.bytes_out.get_or_create_owned(&l),
                protolog_records: m.protolog_records.get_or_create_owned(&l),
                protolog_bytes: m.protolog_bytes.get_or_create_owned(&l),
                protolog_dropped: m.protolog_dropped.get_or_create_owned(&l),
                protolog_files: m.protolog_files.get_or_create_owned(&l),
            };
            for r in ["total", "per_ip"] {
                m.connections_refused.get_or_create_owned(&lbl(&[("service", svc), ("reason", r)]));
            }
            for state in states(service) {
                m.sessions.get_or_create_owned(&lbl(&[("service", svc), ("state", state)]));
            }
        }
        m.store_children = STORE_OPS
            .iter()
            .map(|op| (*op, m.store_ops.get_or_create_owned(&lbl(&[("op", op)]))))
            .collect();
        for r in ["ok", "rejected"] {
            m.reloads.get_or_create_owned(&lbl(&[("result", r)]));
        }
        for r in CLUSTER_EVENTS {
            m.cluster.events.get_or_create_owned(&lbl(&[("result", r)]));
        }
        m.registry = registry;
        m
    }

    /// The OpenMetrics text exposition of every series.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// A connection was accepted; the returned guard counts it open until dropped.
    pub fn connection(&'static self, service: Service) -> OpenConnection {
        let c = &self.per_service[service.index()];
        c.accepted.inc();
        c.open.inc();
        OpenConnection {
            open: c.open.clone(),
        }
    }

    /// A connection was accepted and refused: by a limit (`total`, `per_ip`) or at a PROXY
    /// listener (`untrusted_proxy`, `proxy_header`).
    pub fn refused(&self, service: Service, reason: &'static str) {
        let svc = service_label(service);
        self.per_service[service.index()].accepted.inc();
        self.connections_refused
            .get_or_create(&lbl(&[("service", svc), ("reason", reason)]))
            .inc();
    }

    /// The session-state gauge of one session, moved as its state changes.
    pub fn session_state(&self, service: Service, state: &'static str) -> SessionState {
        let g = self.state_gauge(service, state);
        g.inc();
        SessionState { service, state, gauge: g }
    }

    fn state_gauge(&self, service: Service, state: &'static str) -> Gauge {
        self.sessions
            .get_or_create_owned(&lbl(&[("service", service_label(service)), ("state", state)]))
    }

    /// The handles of the command that `line` starts (by the service's syntax), or `None`
    /// for a line that is not a command (IMAP literal remainders, IDLE's `DONE`).
    pub fn command(&self, service: Service, line: &[u8]) -> Option<CommandTimer<'_>> {
        let (uid, name) = command_name(service, line)?;
        let children = &self.commands[service.index()];
        let child = children
            .iter()
            .find(|c| {
                let n = c.name.as_bytes();
                match uid {
                    true => n.strip_prefix(b"uid_").is_some_and(|n| n.eq_ignore_ascii_case(name)),
                    false => n.eq_ignore_ascii_case(name),
                }
            })
            .or_else(|| children.last())?;
        Some(CommandTimer {
            child,
            start: std::time::Instant::now(),
        })
    }

    /// Octets a connection moved, added when it ends.
    pub fn bytes(&self, service: Service, bytes_in: u64, bytes_out: u64) {
        let c = &self.per_service[service.index()];
        c.bytes_in.inc_by(bytes_in);
        c.bytes_out.inc_by(bytes_out);
    }

    /// A TLS handshake ended.
    pub fn tls_handshake(&self, service: Service, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.tls_handshakes
            .get_or_create(&lbl(&[("service", service_label(service)), ("result", result)]))
            .inc();
    }

    /// A password check ended: `result` is `ok`, `failed` or `tempfail`; `mechanism` as the
    /// session names it (`PLAIN`, `LOGIN`, `USER`, `APOP`; others count as `other`).
    pub fn login(&self, service: Service, mechanism: &str, result: &'static str) {
        let mech = MECHANISMS
            .iter()
            .find(|m| m.eq_ignore_ascii_case(mechanism))
            .copied()
            .unwrap_or("other");
        self.logins
            .get_or_create(&lbl(&[
                ("service", service_label(service)),
                ("mechanism", mech),
                ("result", result),
            ]))
            .inc();
    }

    /// A failed-login delay of `wait` was applied (`kind`: `address` or `session`).
    pub fn penalty(&self, kind: &'static str, wait: Duration) {
        let l = lbl(&[("kind", kind)]);
        self.penalty_delays.get_or_create(&l).inc();
        self.penalty_seconds.get_or_create(&l).inc_by(wait.as_secs_f64());
    }

    /// A store write succeeded (`op`: save, copy, move, expunge, remove, store).
    pub fn store_op(&self, op: &'static str) {
        match self.store_children.iter().find(|(o, _)| *o == op) {
            Some((_, c)) => c.inc(),
            None => self.store_ops.get_or_create(&lbl(&[("op", op)])).inc(),
        };
    }

    /// Times an fsync/fdatasync.
    pub fn fsync<T>(&self, f: impl FnOnce() -> T) -> T {
        let start = std::time::Instant::now();
        let r = f();
        self.fsync.observe(start.elapsed().as_secs_f64());
        r
    }

    /// `records` protocol-log records were queued.
    pub fn protolog_queued(&self, service: Service, records: u64) {
        self.per_service[service.index()].protolog_records.inc_by(records);
    }

    /// `bytes` were written to a protocol-log file.
    pub fn protolog_written(&self, service: Service, bytes: u64) {
        self.per_service[service.index()].protolog_bytes.inc_by(bytes);
    }

    /// `records` protocol-log records were dropped.
    pub fn protolog_dropped(&self, service: Service, records: u64) {
        self.per_service[service.index()].protolog_dropped.inc_by(records);
    }

    /// A protocol-log file was opened (`+1`) or closed (`-1`).
    pub fn protolog_file(&self, service: Service, delta: i64) {
        self.per_service[service.index()].protolog_files.inc_by(delta);
    }

    /// A reload ended: applied or rejected.
    pub fn reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "rejected" };
        self.reloads.get_or_create(&lbl(&[("result", result)])).inc();
    }

    /// How many nodes are live in this node's view.
    pub fn cluster_live_nodes(&self, n: usize) {
        self.cluster.live_nodes.set(n as i64);
    }

    /// The NATS connection went up or down.
    pub fn cluster_nats_connected(&self, up: bool) {
        self.cluster.nats_connected.set(i64::from(up));
    }

    /// The live set changed.
    pub fn cluster_membership_change(&self) {
        self.cluster.membership_changes.inc();
    }

    /// A change event's outcome (one of [`CLUSTER_EVENTS`]).
    pub fn cluster_event(&self, result: &'static str) {
        self.cluster.events.get_or_create(&lbl(&[("result", result)])).inc();
    }

    /// The running configuration is the file whose MD5 is `hash` (hex): one series.
    /// A login relayed to node `to` (cluster login proxy). `to` is a configured node id.
    pub fn proxied_login(&self, service: Service, to: &str) {
        let l = vec![("service", service_label(service).to_string()), ("to", to.to_string())];
        self.proxied_logins.get_or_create(&l).inc();
    }

    /// A failed attempt to reach node `to`'s internal listener.
    pub fn proxy_failure(&self, service: Service, to: &str) {
        let l = vec![("service", service_label(service).to_string()), ("to", to.to_string())];
        self.proxy_failures.get_or_create(&l).inc();
    }

    pub fn config_hash(&self, hash: String) {
        self.config_hash.clear();
        self.config_hash.get_or_create(&vec![("hash", hash)]).set(1);
    }
}

/// The states a service's sessions report.
pub fn states(service: Service) -> &'static [&'static str] {
    match service {
        Service::Imap4 => IMAP_STATES,
        Service::Pop3 => POP3_STATES,
        Service::Lmtp => LMTP_STATES,
    }
}

/// The MD5 of a config file's bytes, hex (as `md5sum` prints it).
pub fn file_hash(bytes: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Counts a connection open until dropped.
pub struct OpenConnection {
    open: Gauge,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// One session's place in `mailserver_sessions`: moved by [`SessionState::set`], removed
/// when dropped.
pub struct SessionState {
    service: Service,
    state: &'static str,
    gauge: Gauge,
}

impl SessionState {
    /// The session is now in `state` (cheap when unchanged).
    pub fn set(&mut self, state: &'static str) {
        if std::ptr::eq(state, self.state) || state == self.state {
            return;
        }
        self.gauge.dec();
        self.gauge = get().state_gauge(self.service, state);
        self.gauge.inc();
        self.state = state;
    }
}

impl Drop for SessionState {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// A command being handled: [`CommandTimer::done`] counts it with its latency.
pub struct CommandTimer<'a> {
    child: &'a CommandChild,
    start: std::time::Instant,
}

impl CommandTimer<'_> {
    pub fn done(self) {
        self.child.count.inc();
        self.child.latency.observe(self.start.elapsed().as_secs_f64());
    }
}

/// The command name a line starts (as sent, any case), and whether it follows IMAP's `UID`:
/// POP3 and LMTP the first word; IMAP the word after the tag (`UID x` as `(true, x)`), and
/// nothing for a line without a valid tag and a name (literal remainders, `DONE`, SASL
/// responses).
fn command_name<'a>(service: Service, line: &'a [u8]) -> Option<(bool, &'a [u8])> {
    let mut words = line.split(|b| *b == b' ');
    let word = |w: &'a [u8]| (!w.is_empty()).then_some(w);
    match service {
        Service::Pop3 | Service::Lmtp => Some((false, word(words.next()?)?)),
        Service::Imap4 => {
            let tag = words.next()?;
            let tag_ok = !tag.is_empty()
                && tag
                    .iter()
                    .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\]+".contains(b));
            if !tag_ok {
                return None;
            }
            let name = word(words.next()?)?;
            if name.eq_ignore_ascii_case(b"UID") {
                return Some((true, word(words.next()?)?));
            }
            Some((false, name))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_names() {
        let n = |s: Service, l: &'static str| {
            command_name(s, l.as_bytes()).map(|(uid, v)| {
                let v = String::from_utf8(v.to_vec()).unwrap();
                if uid { format!("uid_{v}") } else { v }
            })
        };
        assert_eq!(n(Service::Imap4, "a1 FETCH 1 BODY[]").as_deref(), Some("FETCH"));
        assert_eq!(n(Service::Imap4, "a1 uid fetch 1:* FLAGS").as_deref(), Some("uid_fetch"));
        assert_eq!(n(Service::Imap4, "a1 UID").as_deref(), None);
        assert_eq!(n(Service::Imap4, "DONE"), None);
        assert_eq!(n(Service::Imap4, " secret"), None);
        assert_eq!(n(Service::Imap4, "\"x\" {3}"), None);
        assert_eq!(n(Service::Pop3, "RETR 1").as_deref(), Some("RETR"));
        assert_eq!(n(Service::Lmtp, "").as_deref(), None);
    }

    #[test]
    fn unknown_commands_are_other_and_known_are_themselves() {
        let m = get();
        let t = m.command(Service::Imap4, b"a XYZZY").unwrap();
        assert_eq!(t.child.name, "other");
        let t = m.command(Service::Imap4, b"a uid Fetch 1 FLAGS").unwrap();
        assert_eq!(t.child.name, "uid_fetch");
        let t = m.command(Service::Pop3, b"stat").unwrap();
        assert_eq!(t.child.name, "stat");
        let t = m.command(Service::Imap4, b"a uid xyzzy").unwrap();
        assert_eq!(t.child.name, "other");
        let t = m.command(Service::Imap4, b"a fetchfetchfetchfetchfetchfetchfetch 1").unwrap();
        assert_eq!(t.child.name, "other");
    }

    #[test]
    fn exposition_is_openmetrics_with_build_info() {
        let text = get().encode();
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(text.contains("mailserver_build_info{version=\""), "{text}");
        assert!(text.contains("mailserver_commands_total{service=\"imap\",command=\"fetch\"} 0"));
    }
}
