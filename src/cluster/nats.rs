//! The cluster's NATS traffic (README.md, "Cluster"; ARCHITECTURE.md, "Cluster"): heartbeats
//! and membership, moves, and change events.
//!
//! One task per daemon ([`spawn`]) owns the NATS connection (`async-nats`, reconnecting
//! forever with a capped backoff in the background: startup and sessions never wait for
//! NATS). It publishes this node's heartbeat every `heartbeat_ms`, hears everyone's on
//! `<prefix>.*`, feeds [`Membership`] and, whenever the view changes, replaces the
//! [`Cluster`]'s live set, logs it, and closes this node's sessions of the users it no longer
//! owns (`Registry::kick_moved`: IMAP `* BYE [UNAVAILABLE]`, POP3 closed without applying
//! DELE), dropping their parked folder state. At shutdown it publishes `<prefix>.leaving`.
//!
//! Change events: the store tells [`Cluster::mailbox_changed`] of every write of this process
//! ([`hook_store`]); a second task publishes the coalesced outbox on `<prefix>.changed`. An
//! event from another node wakes this node's sessions on that mailbox at once
//! (`Store::changed_elsewhere`, the same counter the inotify watcher bumps). A publish is
//! only tried while connected and under a timeout: a change that cannot be published is
//! dropped, and the other nodes' IDLE sees it at their `imap.idle_check_interval_secs` poll.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_nats::connection::State;
use async_nats::{Client, ConnectOptions, Event, Message};
use futures_util::StreamExt as _;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::events::{self, Changed, Heartbeat, Leaving};
use super::membership::Membership;
use super::Cluster;
use crate::sessions::Registry;
use crate::store::maildir::{ChangeHook, MaildirStore, UserRule};
use crate::store::Store;

/// Change events of one (user, mailbox) are published at most this often.
const COALESCE: Duration = Duration::from_millis(50);
/// The longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How long the `leaving` message may take at shutdown.
const LEAVING_TIMEOUT: Duration = Duration::from_secs(1);
/// A peer clock this far from ours is logged (once per process).
const SKEW_WARN: Duration = Duration::from_secs(30);

/// Connects the store to the cluster: its writes queue change events, and a dropped folder
/// handle of a user another node owns parks nothing.
pub fn hook_store(store: &MaildirStore, cluster: &Arc<Cluster>) {
    let c = cluster.clone();
    store.on_change(ChangeHook(Arc::new(move |user, mailbox| {
        c.mailbox_changed(user, mailbox)
    })));
    let c = cluster.clone();
    store.park_rule(UserRule(Arc::new(move |user| c.owns(user))));
}

/// Starts the NATS task (none without `nats_url`: every node stays live). It ends soon after
/// `shutdown`, once `leaving` is published.
pub fn spawn(
    cluster: Arc<Cluster>,
    store: Arc<dyn Store>,
    sessions: Arc<Registry>,
    shutdown: CancellationToken,
) -> Option<JoinHandle<()>> {
    let m = crate::metrics::get();
    m.cluster_live_nodes(cluster.live_ids().len());
    m.cluster_nats_connected(false);
    let url = cluster.settings().nats_url.clone()?;
    Some(tokio::spawn(run(cluster, url, store, sessions, shutdown)))
}

/// The subjects, from `subject_prefix`.
struct Subjects {
    all: String,
    heartbeat: String,
    leaving: String,
    changed: String,
}

impl Subjects {
    fn new(prefix: &str) -> Subjects {
        Subjects {
            all: format!("{prefix}.*"),
            heartbeat: format!("{prefix}.heartbeat"),
            leaving: format!("{prefix}.leaving"),
            changed: format!("{prefix}.changed"),
        }
    }
}

/// Everything the task reads and writes besides the connection.
struct Node {
    cluster: Arc<Cluster>,
    store: Arc<dyn Store>,
    sessions: Arc<Registry>,
    membership: Membership,
    incarnation: u64,
    subjects: Arc<Subjects>,
    /// Unknown node ids and skewed clocks already logged.
    warned: HashSet<String>,
}

async fn run(
    cluster: Arc<Cluster>,
    url: String,
    store: Arc<dyn Store>,
    sessions: Arc<Registry>,
    shutdown: CancellationToken,
) {
    let s = cluster.settings().clone();
    let subjects = Arc::new(Subjects::new(&s.subject_prefix));
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let options = ConnectOptions::new()
        .name(format!("mailserver {}", s.node_id))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis(50u64 << attempts.min(6)).min(MAX_BACKOFF)
        })
        .connection_timeout(s.connect_timeout.max(Duration::from_secs(1)))
        .ping_interval(s.dead_after.max(Duration::from_secs(1)))
        .event_callback(move |event| {
            let tx = events_tx.clone();
            async move {
                let _ = tx.send(event);
            }
        });
    let options = with_tls(options, &s);
    let shown = crate::config::cluster::redacted_url(&url);
    let servers: Vec<&str> = url.split(',').map(str::trim).collect();
    // With retry_on_initial_connect this returns at once; only a malformed URL fails here.
    let client = match options.connect(servers).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("cluster: NATS at {shown}: {e}; every node stays live (the static view)");
            return;
        }
    };
    let mut sub = match client.subscribe(subjects.all.clone()).await {
        Ok(sub) => sub,
        Err(e) => {
            tracing::error!("cluster: NATS subscribe {}: {e}", subjects.all);
            return;
        }
    };
    let publisher = tokio::spawn(publish_changes(
        cluster.clone(),
        client.clone(),
        subjects.clone(),
        shutdown.clone(),
    ));
    let nodes = s.nodes.iter().map(|n| n.id.clone()).collect();
    let mut node = Node {
        membership: Membership::new(&s.node_id, nodes, s.dead_after, Instant::now()),
        cluster,
        store,
        sessions,
        incarnation: rand::random(),
        subjects,
        warned: HashSet::new(),
    };
    tracing::info!(
        "cluster: node {} connecting to NATS at {shown} (heartbeat {:?}, dead after {:?})",
        s.node_id,
        s.heartbeat,
        s.dead_after
    );
    let mut tick = tokio::time::interval((s.heartbeat / 4).max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_beat: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(event) = events.recv() => node.on_event(event, &shown),
            msg = sub.next() => match msg {
                Some(msg) => node.on_message(&msg),
                None => {
                    tracing::error!("cluster: the NATS subscription ended; back to the static view");
                    let all = s.nodes.iter().map(|n| n.id.clone()).collect();
                    node.apply_view(all, true);
                    break;
                }
            },
            _ = tick.tick() => {
                let now = Instant::now();
                if node.membership.connected()
                    && last_beat.is_none_or(|t| now.duration_since(t) >= s.heartbeat)
                {
                    last_beat = Some(now);
                    let beat = Heartbeat {
                        node: s.node_id.clone(),
                        incarnation: node.incarnation,
                        time_ms: unix_ms(),
                    };
                    send(&client, &node.subjects.heartbeat, events::encode(&beat), s.heartbeat).await;
                }
            }
        }
        node.apply(Instant::now());
    }
    publisher.abort();
    if node.membership.connected() {
        let bye = Leaving {
            node: s.node_id.clone(),
            incarnation: node.incarnation,
        };
        let said = async {
            send(&client, &node.subjects.leaving, events::encode(&bye), LEAVING_TIMEOUT).await
                && client.flush().await.is_ok()
        };
        match tokio::time::timeout(LEAVING_TIMEOUT, said).await {
            Ok(true) => tracing::info!("cluster: told the other nodes this one is leaving"),
            _ => tracing::warn!("cluster: could not publish {} before stopping", node.subjects.leaving),
        }
    }
}

impl Node {
    fn on_event(&mut self, event: Event, url: &str) {
        let now = Instant::now();
        match event {
            Event::Connected => {
                tracing::info!("cluster: NATS connected ({url})");
                self.membership.up(now);
                crate::metrics::get().cluster_nats_connected(true);
            }
            Event::Disconnected => {
                tracing::warn!(
                    "cluster: NATS connection lost ({url}); the current view is kept for {:?}, \
                     then this node serves only what it owns when every node is live",
                    self.cluster.settings().dead_after
                );
                self.membership.down(now);
                crate::metrics::get().cluster_nats_connected(false);
            }
            other => tracing::warn!("cluster: NATS: {other}"),
        }
    }

    fn on_message(&mut self, msg: &Message) {
        let now = Instant::now();
        let subject = msg.subject.as_str();
        let me = self.cluster.node_id().to_string();
        if subject == self.subjects.heartbeat {
            let Some(h) = events::decode::<Heartbeat>(&msg.payload) else {
                return self.bad(subject);
            };
            if h.node == me {
                if h.incarnation != self.incarnation && self.warned.insert(format!("dup {}", h.incarnation)) {
                    tracing::error!(
                        "cluster: another process publishes heartbeats as node {me:?}: each node needs its own node_id"
                    );
                }
                return;
            }
            if !self.membership.heartbeat(&h.node, h.incarnation, now) {
                if self.warned.insert(format!("unknown {}", h.node)) {
                    tracing::warn!(
                        "cluster: heartbeat from node {:?}, which is not in [[cluster.nodes]]: ignored",
                        h.node
                    );
                }
                return;
            }
            let skew = Duration::from_millis(unix_ms().abs_diff(h.time_ms));
            if skew > SKEW_WARN && self.warned.insert(format!("skew {} {}", h.node, h.incarnation)) {
                tracing::warn!("cluster: node {:?}'s clock is {skew:?} off this node's", h.node);
            }
        } else if subject == self.subjects.leaving {
            let Some(l) = events::decode::<Leaving>(&msg.payload) else {
                return self.bad(subject);
            };
            if l.node != me {
                tracing::info!("cluster: node {} is leaving", l.node);
                self.membership.leaving(&l.node, l.incarnation);
            }
        } else if subject == self.subjects.changed {
            let Some(c) = events::decode::<Changed>(&msg.payload) else {
                return self.bad(subject);
            };
            if c.node != me {
                crate::metrics::get().cluster_event("received");
                self.store.changed_elsewhere(&c.user, &c.mailbox);
            }
        }
    }

    fn bad(&mut self, subject: &str) {
        crate::metrics::get().cluster_event("invalid");
        if self.warned.insert(format!("bad {subject}")) {
            tracing::warn!("cluster: an unreadable message on {subject}: ignored (logged once)");
        }
    }

    /// Makes the membership view the cluster's; on a change, closes the sessions of users
    /// this node no longer owns.
    fn apply(&mut self, now: Instant) {
        let view = self.membership.view(now);
        let cut_off = !self.membership.connected();
        self.apply_view(view, cut_off);
    }

    /// [`Node::apply`] of `view`; `cut_off`: the NATS connection is down.
    fn apply_view(&mut self, view: Vec<String>, cut_off: bool) {
        let before = self.cluster.live_ids().join(", ");
        let ids: Vec<&str> = view.iter().map(String::as_str).collect();
        if !self.cluster.set_live(&ids) {
            return;
        }
        let m = crate::metrics::get();
        m.cluster_membership_change();
        m.cluster_live_nodes(view.len());
        let cut_off = cut_off && view.len() == self.cluster.settings().nodes.len();
        tracing::info!(
            "cluster: live nodes now [{}] (were [{before}]){}",
            view.join(", "),
            if cut_off { "; cut off from NATS: the static view" } else { "" }
        );
        let cluster = &self.cluster;
        let moved = self.sessions.kick_moved(|user| !cluster.owns(user));
        self.store.forget_users(&|user| !cluster.owns(user));
        if !moved.is_empty() {
            const SHOWN: usize = 10;
            let more = moved.len().saturating_sub(SHOWN);
            tracing::info!(
                "cluster: {} user(s) now served by another node; their sessions here are closed: {}{}",
                moved.len(),
                moved[..moved.len().min(SHOWN)].join(", "),
                if more > 0 { format!(" and {more} more") } else { String::new() }
            );
        }
    }
}

/// Publishes the outbox: a batch, then at least [`COALESCE`] before the next.
async fn publish_changes(
    cluster: Arc<Cluster>,
    client: Client,
    subjects: Arc<Subjects>,
    shutdown: CancellationToken,
) {
    let timeout = cluster.settings().heartbeat;
    let m = crate::metrics::get();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = cluster.outbox().ready() => {}
        }
        let batch = cluster.outbox().take();
        for _ in 0..cluster.outbox().take_dropped() {
            m.cluster_event("dropped");
        }
        for (user, mailbox) in batch {
            let c = Changed {
                node: cluster.node_id().to_string(),
                user,
                mailbox,
            };
            if send(&client, &subjects.changed, events::encode(&c), timeout).await {
                m.cluster_event("published");
            } else {
                m.cluster_event("dropped");
            }
        }
        tokio::time::sleep(COALESCE).await;
    }
}

/// `mailserver deliver` (its own short-lived process): tells the other nodes that `user`'s
/// `mailbox` changed, over a connection of its own, all within `connect_timeout` (at most
/// 1 s). Best effort: a failure is logged at debug level, the delivery stands, and the
/// owner's IDLE sees it at its poll.
pub fn publish_once(settings: &crate::config::cluster::ClusterSettings, user: &str, mailbox: &str) {
    let Some(url) = settings.nats_url.clone() else {
        return;
    };
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let subject = Subjects::new(&settings.subject_prefix).changed;
    let payload = events::encode(&Changed {
        node: settings.node_id.clone(),
        user: user.to_string(),
        mailbox: mailbox.to_string(),
    });
    let within = settings.connect_timeout.min(Duration::from_secs(1));
    let name = format!("mailserver deliver {}", settings.node_id);
    let sent = rt.block_on(async move {
        let go = async {
            let servers: Vec<&str> = url.split(',').map(str::trim).collect();
            let options = ConnectOptions::new().name(name).connection_timeout(within);
            let client = with_tls(options, settings)
                .connect(servers)
                .await
                .ok()?;
            client.publish(subject, payload.into()).await.ok()?;
            client.flush().await.ok()
        };
        matches!(tokio::time::timeout(within, go).await, Ok(Some(())))
    });
    if !sent {
        tracing::debug!("cluster: the change event for {user}'s {mailbox} was not published");
    }
}

/// TLS and credentials to NATS as `[cluster]` asks: TLS required with any of the files
/// (and by a `tls://` URL, which async-nats honours itself), the CA to check the server
/// with, a client certificate for mutual TLS; the URL's `user:password@` or `token@`.
fn with_tls(
    options: ConnectOptions,
    settings: &crate::config::cluster::ClusterSettings,
) -> ConnectOptions {
    let tls = &settings.nats_tls;
    let mut options = options.require_tls(tls.required());
    let credentials = settings
        .nats_url
        .as_deref()
        .and_then(crate::config::cluster::url_credentials);
    options = match credentials {
        Some((user, Some(pass))) => options.user_and_password(user, pass),
        Some((token, None)) => options.token(token),
        None => options,
    };
    if let Some(ca) = &tls.ca_file {
        options = options.add_root_certificates(ca.clone());
    }
    if let Some((cert, key)) = &tls.client {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    options
}

/// Publishes when connected, within `within`; false when it was not sent.
async fn send(client: &Client, subject: &str, payload: Vec<u8>, within: Duration) -> bool {
    if client.connection_state() != State::Connected {
        return false;
    }
    let publish = client.publish(subject.to_string(), payload.into());
    matches!(tokio::time::timeout(within, publish).await, Ok(Ok(())))
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
