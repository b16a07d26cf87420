//! What the nodes say to each other on NATS (README.md, "Cluster", "Change events"): the
//! payloads of `<prefix>.heartbeat`, `<prefix>.leaving` and `<prefix>.changed`, and the
//! outbox that coalesces this node's change events before they are published.
//!
//! Payloads are small JSON objects (serde_json, already in the tree): the user and mailbox
//! names of a change event may hold any character, and JSON says how to quote them. Unknown
//! fields are ignored, so a newer node can add some; a payload over [`MAX_PAYLOAD`] octets,
//! one that does not parse, or one whose node id is not a node name is dropped whole
//! ([`decode`]). A NATS message arrives whole, so there is no framing here.

use std::collections::HashSet;
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The largest payload accepted (a user name is at most 255 octets; a mailbox name a few
/// hundred; JSON escaping at most doubles them).
pub const MAX_PAYLOAD: usize = 4096;

/// `<prefix>.heartbeat`, every `heartbeat_ms`: this node is up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub node: String,
    /// Random per start: a heartbeat in flight from before a restart is told from the new
    /// process's, and a `leaving` names the process that left.
    pub incarnation: u64,
    /// The sender's clock (Unix milliseconds): large skews are logged.
    pub time_ms: u64,
}

/// `<prefix>.leaving`: the node is shutting down gracefully; the others drop it at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leaving {
    pub node: String,
    pub incarnation: u64,
}

/// `<prefix>.changed`: a write on `node` changed `user`'s `mailbox` (IMAP name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changed {
    pub node: String,
    pub user: String,
    pub mailbox: String,
}

/// The node id every payload carries.
pub trait FromNode {
    fn node(&self) -> &str;
}

impl FromNode for Heartbeat {
    fn node(&self) -> &str {
        &self.node
    }
}

impl FromNode for Leaving {
    fn node(&self) -> &str {
        &self.node
    }
}

impl FromNode for Changed {
    fn node(&self) -> &str {
        &self.node
    }
}

/// A payload as published.
pub fn encode(p: &impl Serialize) -> Vec<u8> {
    // Plain structs of strings and integers: serialising cannot fail.
    serde_json::to_vec(p).unwrap_or_default()
}

/// A received payload; `None` when it is too long, not the expected JSON, or from a node
/// id that cannot be one (`[cluster.nodes] id` rules).
pub fn decode<T: DeserializeOwned + FromNode>(bytes: &[u8]) -> Option<T> {
    if bytes.len() > MAX_PAYLOAD {
        return None;
    }
    let p: T = serde_json::from_slice(bytes).ok()?;
    let n = p.node();
    let ok = !n.is_empty()
        && n.len() <= 64
        && n.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
    ok.then_some(p)
}

/// How many distinct (user, mailbox) pairs wait at most; past it changes are dropped (the
/// other nodes' IDLE still sees them at its `idle_check_interval_secs` poll).
const MAX_PENDING: usize = 4096;

/// This node's changes waiting to be published, each (user, mailbox) once however often it
/// changed meanwhile. The store's write path pushes (cheap, never blocks on NATS); the
/// publisher takes a batch, publishes it, and waits ~50 ms before the next, so a burst of
/// writes to one mailbox costs one message per 50 ms.
#[derive(Default)]
pub struct Outbox {
    pending: Mutex<HashSet<(String, String)>>,
    ready: tokio::sync::Notify,
    /// Pairs dropped because the outbox was full (the publisher counts them).
    dropped: std::sync::atomic::AtomicU64,
}

impl Outbox {
    /// `user`'s `mailbox` changed here.
    pub fn push(&self, user: &str, mailbox: &str) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if p.len() >= MAX_PENDING {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        if p.insert((user.to_string(), mailbox.to_string())) {
            drop(p);
            self.ready.notify_one();
        }
    }

    /// Waits until something is pending.
    pub async fn ready(&self) {
        self.ready.notified().await
    }

    /// Everything pending, emptying the outbox.
    pub fn take(&self) -> Vec<(String, String)> {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.drain().collect()
    }

    /// Pairs dropped since the last call.
    pub fn take_dropped(&self) -> u64 {
        self.dropped.swap(0, std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_carry_any_name() {
        let c = Changed {
            node: "node-1".into(),
            user: "a \"b\"\\c é".into(),
            mailbox: "Lists/Rust \u{1F980}\t\n".into(),
        };
        let bytes = encode(&c);
        assert_eq!(decode::<Changed>(&bytes), Some(c));
        let h = Heartbeat {
            node: "n".into(),
            incarnation: u64::MAX,
            time_ms: 1_700_000_000_000,
        };
        assert_eq!(decode::<Heartbeat>(&encode(&h)), Some(h));
        let l = Leaving {
            node: "n".into(),
            incarnation: 7,
        };
        assert_eq!(decode::<Leaving>(&encode(&l)), Some(l));
    }

    #[test]
    fn bad_payloads_are_dropped_whole() {
        let whole = br#"{"node":"a","user":"u","mailbox":"INBOX","later":1}"#;
        // Unknown fields are fine (a newer node); every proper prefix is not JSON.
        assert!(decode::<Changed>(whole).is_some());
        for n in 0..whole.len() {
            assert_eq!(decode::<Changed>(&whole[..n]), None, "prefix of {n} octets");
        }
        for bad in [
            &br#"{"node":"","user":"u","mailbox":"INBOX"}"#[..],
            br#"{"node":"a b","user":"u","mailbox":"INBOX"}"#,
            br#"{"node":"a/..","user":"u","mailbox":"INBOX"}"#,
            br#"{"node":"a","user":"u"}"#,
            br#"{"node":"a","incarnation":-1,"time_ms":0}"#,
            br#"["a b","u","INBOX"]"#,
            b"\xff\xfe",
        ] {
            assert!(decode::<Changed>(bad).is_none() && decode::<Heartbeat>(bad).is_none());
        }
        let long = format!(
            r#"{{"node":"a","user":"u","mailbox":"{}"}}"#,
            "x".repeat(MAX_PAYLOAD)
        );
        assert_eq!(decode::<Changed>(long.as_bytes()), None);
    }

    #[test]
    fn the_outbox_coalesces_and_is_bounded() {
        let o = Outbox::default();
        for _ in 0..3 {
            o.push("u", "INBOX");
        }
        o.push("u", "Sent");
        let mut got = o.take();
        got.sort();
        assert_eq!(
            got,
            [("u".into(), "INBOX".into()), ("u".into(), "Sent".into())]
        );
        assert!(o.take().is_empty());
        for i in 0..MAX_PENDING + 10 {
            o.push("u", &i.to_string());
        }
        assert_eq!(o.take().len(), MAX_PENDING);
        assert_eq!(o.take_dropped(), 10);
        assert_eq!(o.take_dropped(), 0);
    }
}
