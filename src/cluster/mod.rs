//! The cluster of nodes sharing one `data_dir` (README.md, "Cluster"; ARCHITECTURE.md,
//! "Cluster"): who owns a user (rendezvous hashing over the live nodes), membership from NATS
//! heartbeats, the login proxy to the owner and the internal listeners.
//!
//! Owns: the ownership rule. Each user is served by one node at a time, the first live node
//! in the user's rendezvous order ([`ring::order`]); every node computes the same order from
//! the same `[cluster] nodes`, so no coordination is needed beyond knowing who is live.

pub mod events;
pub mod internal;
pub mod membership;
pub mod nats;
pub mod proxy;
pub mod ring;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::cluster::{ClusterNode, ClusterSettings};

/// The daemon's view of the cluster: the `[cluster]` settings it started with (the table is
/// restart-only) and which nodes are live now. Shared by every session (`SessionEnv`) and
/// the membership task, which is the only writer of the live set.
pub struct Cluster {
    settings: ClusterSettings,
    /// `live[i]`: whether `settings.nodes[i]` is live. This node is always live in its own
    /// view. Starts with every node live: the static order, which is also what a node cut
    /// off from NATS serves by.
    live: ArcSwap<Vec<bool>>,
    /// Bumped at every change of the live set; sessions compare it to re-check ownership.
    epoch: AtomicU64,
    /// Wakes whoever waits for a membership change (the sessions' ownership re-check).
    changed: tokio::sync::watch::Sender<u64>,
    /// This node's mailbox changes waiting to be published on NATS (`nats.rs` takes them).
    outbox: events::Outbox,
}

impl Cluster {
    /// A cluster view with every node live.
    pub fn new(settings: ClusterSettings) -> Arc<Cluster> {
        let n = settings.nodes.len();
        Arc::new(Cluster {
            settings,
            live: ArcSwap::from_pointee(vec![true; n]),
            epoch: AtomicU64::new(0),
            changed: tokio::sync::watch::channel(0).0,
            outbox: events::Outbox::default(),
        })
    }

    /// A write here changed `user`'s `mailbox`: queue a change event for the other nodes
    /// (nothing without `nats_url`). Cheap and never blocks: the store calls it on its write
    /// path.
    pub fn mailbox_changed(&self, user: &str, mailbox: &str) {
        if self.settings.nats_url.is_some() {
            self.outbox.push(user, mailbox);
        }
    }

    /// The change events waiting to be published.
    pub fn outbox(&self) -> &events::Outbox {
        &self.outbox
    }

    pub fn settings(&self) -> &ClusterSettings {
        &self.settings
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.settings.node_id
    }

    /// Whether `node` is live in this node's view (this node always is).
    pub fn is_live(&self, node: &ClusterNode) -> bool {
        node.id == self.settings.node_id
            || self
                .settings
                .nodes
                .iter()
                .position(|n| n.id == node.id)
                .is_some_and(|i| self.live.load()[i])
    }

    /// The live nodes in `user`'s rendezvous order: the owner first, then where to go when
    /// it cannot be reached.
    pub fn candidates(&self, user: &str) -> Vec<&ClusterNode> {
        ring::order(&self.settings.nodes, user)
            .into_iter()
            .filter(|n| self.is_live(n))
            .collect()
    }

    /// Whether this node owns `user` now.
    pub fn owns(&self, user: &str) -> bool {
        self.candidates(user)
            .first()
            .is_none_or(|n| n.id == self.settings.node_id)
    }

    /// Replaces the live set (`live` by node id; ids not listed are dead). Returns whether it
    /// changed; a change bumps the epoch and wakes [`Cluster::subscribe`]rs.
    pub fn set_live(&self, live: &[&str]) -> bool {
        let new: Vec<bool> = self
            .settings
            .nodes
            .iter()
            .map(|n| n.id == self.settings.node_id || live.contains(&n.id.as_str()))
            .collect();
        if **self.live.load() == new {
            return false;
        }
        self.live.store(Arc::new(new));
        let epoch = self.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        self.changed.send_replace(epoch);
        true
    }

    /// The ids of the live nodes, in file order.
    pub fn live_ids(&self) -> Vec<&str> {
        let live = self.live.load();
        self.settings
            .nodes
            .iter()
            .zip(live.iter())
            .filter(|(_, l)| **l)
            .map(|(n, _)| n.id.as_str())
            .collect()
    }

    /// The membership epoch (see [`Cluster::set_live`]).
    // For the login proxy (being built on another branch); moves go through the session
    // table instead (`nats.rs`).
    #[allow(dead_code)]
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// A receiver that sees every membership change.
    #[allow(dead_code)] // as `epoch`
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(me: &str) -> ClusterSettings {
        let cfg = format!(
            "[cluster]\nnode_id = \"{me}\"\nsecret = \"0123456789abcdef\"\n\
             [[cluster.nodes]]\nid = \"a\"\nimap = \"127.0.0.11:1\"\npop3 = \"127.0.0.11:2\"\n\
             [[cluster.nodes]]\nid = \"b\"\nimap = \"127.0.0.12:1\"\npop3 = \"127.0.0.12:2\"\n"
        );
        crate::config::parse(std::path::Path::new("/x/m.toml"), cfg.as_bytes())
            .unwrap()
            .cluster
            .unwrap()
    }

    #[test]
    fn ownership_follows_the_live_set() {
        let a = Cluster::new(settings("a"));
        let b = Cluster::new(settings("b"));
        let rx = a.subscribe();
        // With both live, exactly one of them owns each user.
        for i in 0..100 {
            let u = format!("u{i}");
            assert!(a.owns(&u) != b.owns(&u), "{u}");
        }
        // b dead in a's view: a owns everyone; a change is announced once.
        assert!(a.set_live(&[]));
        assert!(!a.set_live(&["a"]));
        assert_eq!(a.epoch(), 1);
        assert!(rx.has_changed().unwrap());
        assert_eq!(a.live_ids(), ["a"]);
        for i in 0..100 {
            assert!(a.owns(&format!("u{i}")));
        }
        assert!(a.set_live(&["b"]));
        assert_eq!(a.live_ids(), ["a", "b"]);
    }
}
