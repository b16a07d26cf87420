//! The cluster of nodes sharing one `data_dir` (README.md, "Cluster"; ARCHITECTURE.md,
//! "Cluster"): who owns a user (rendezvous hashing over the live nodes), membership from NATS
//! heartbeats, the login proxy to the owner and the internal listeners.
//!
//! Owns: the ownership rule. Each user is served by one node at a time, the first live node
//! in the user's rendezvous order ([`ring::order`]); every node computes the same order from
//! the same `[cluster] nodes`, so no coordination is needed beyond knowing who is live.

// The login proxy (src/cluster/proxy.rs) is the first user of the ring.
#[allow(dead_code)]
pub mod ring;
