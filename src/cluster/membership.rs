//! Who is live, from NATS heartbeats (README.md, "Cluster", "Membership"): sans-IO, the
//! caller feeds what it hears and the time, and asks for the view.
//!
//! The rules:
//! * A node is live while its last heartbeat is less than `dead_after` old; this node always
//!   is. A `leaving` drops its process (node and incarnation) at once; a heartbeat of that
//!   incarnation still in flight is ignored, a restarted process (new incarnation) is heard.
//! * **Held view.** Right after the NATS connection comes up, nothing has been heard yet: for
//!   `dead_after` the view held before stays (at start, every node live: the static order),
//!   plus whatever is heard meanwhile, so a starting node does not take everyone's users.
//! * While the connection is down, the view held when it went down stays for `dead_after`
//!   (a short blip changes nothing); after that the node is cut off and goes back to the
//!   static view, serving only what it owns when every node is live (as issue #20 asks:
//!   nodes that cannot hear each other never both claim a user through a dead view).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The membership state of one node.
pub struct Membership {
    me: String,
    /// Every node id, in file order.
    nodes: Vec<String>,
    dead_after: Duration,
    /// Last heartbeat per node: (incarnation, when).
    heard: HashMap<String, (u64, Instant)>,
    /// The incarnation each node last said `leaving` for.
    left: HashMap<String, u64>,
    conn: Conn,
    /// The view kept while the connection is down or has just come up (file order).
    held: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
enum Conn {
    Down { since: Instant },
    Up { since: Instant },
}

impl Membership {
    /// At start: not connected, every node live.
    pub fn new(me: &str, nodes: Vec<String>, dead_after: Duration, now: Instant) -> Membership {
        Membership {
            me: me.to_string(),
            held: nodes.clone(),
            nodes,
            dead_after,
            heard: HashMap::new(),
            left: HashMap::new(),
            conn: Conn::Down { since: now },
        }
    }

    /// Whether the NATS connection is up.
    pub fn connected(&self) -> bool {
        matches!(self.conn, Conn::Up { .. })
    }

    /// The connection came up.
    pub fn up(&mut self, now: Instant) {
        if !self.connected() {
            self.held = self.view(now);
            self.conn = Conn::Up { since: now };
        }
    }

    /// The connection went down.
    pub fn down(&mut self, now: Instant) {
        if self.connected() {
            self.held = self.view(now);
            self.conn = Conn::Down { since: now };
        }
    }

    /// A heartbeat of `node`'s process `incarnation`. Returns false for an unknown node (or
    /// this node's own, echoed back).
    pub fn heartbeat(&mut self, node: &str, incarnation: u64, now: Instant) -> bool {
        if node == self.me || !self.nodes.iter().any(|n| n == node) {
            return false;
        }
        if self.left.get(node) != Some(&incarnation) {
            self.heard.insert(node.to_string(), (incarnation, now));
        }
        true
    }

    /// `node`'s process `incarnation` is shutting down.
    pub fn leaving(&mut self, node: &str, incarnation: u64) {
        if node == self.me || !self.nodes.iter().any(|n| n == node) {
            return;
        }
        self.left.insert(node.to_string(), incarnation);
        if self.heard.get(node).is_some_and(|h| h.0 == incarnation) {
            self.heard.remove(node);
        }
        self.held.retain(|n| n != node);
    }

    /// The live node ids now, in file order (this node always among them).
    pub fn view(&self, now: Instant) -> Vec<String> {
        let heard_since = |n: &str, t: Instant| {
            self.heard
                .get(n)
                .is_some_and(|h| h.1 >= t && now.saturating_duration_since(h.1) < self.dead_after)
        };
        let pick = |f: &dyn Fn(&str) -> bool| -> Vec<String> {
            self.nodes
                .iter()
                .filter(|n| **n == self.me || f(n))
                .cloned()
                .collect()
        };
        match self.conn {
            Conn::Down { since } if now.saturating_duration_since(since) >= self.dead_after => {
                // Cut off: the static view.
                self.nodes.clone()
            }
            Conn::Down { .. } => self.held.clone(),
            Conn::Up { since } if now.saturating_duration_since(since) < self.dead_after => {
                pick(&|n| self.held.iter().any(|h| h == n) || heard_since(n, since))
            }
            Conn::Up { since } => pick(&|n| heard_since(n, since)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEAD: Duration = Duration::from_millis(3000);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn abc(t0: Instant) -> Membership {
        Membership::new("a", vec!["a".into(), "b".into(), "c".into()], DEAD, t0)
    }

    #[test]
    fn a_starting_node_keeps_the_static_view_until_dead_after_has_passed() {
        let t0 = Instant::now();
        let mut m = abc(t0);
        assert_eq!(m.view(t0), ["a", "b", "c"]);
        m.up(t0 + ms(100));
        m.heartbeat("b", 1, t0 + ms(500));
        assert_eq!(m.view(t0 + ms(3000)), ["a", "b", "c"]);
        // dead_after after the connection: c was never heard.
        assert_eq!(m.view(t0 + ms(3100)), ["a", "b"]);
        // b silent for dead_after: dead; heard again: live.
        assert_eq!(m.view(t0 + ms(3499)), ["a", "b"]);
        assert_eq!(m.view(t0 + ms(3500)), ["a"]);
        m.heartbeat("b", 1, t0 + ms(4000));
        m.heartbeat("c", 9, t0 + ms(4000));
        assert_eq!(m.view(t0 + ms(4000)), ["a", "b", "c"]);
    }

    #[test]
    fn unknown_nodes_and_the_echo_are_not_members() {
        let t0 = Instant::now();
        let mut m = abc(t0);
        m.up(t0);
        assert!(!m.heartbeat("a", 1, t0));
        assert!(!m.heartbeat("z", 1, t0));
        assert!(m.heartbeat("b", 1, t0 + ms(2000)));
        assert_eq!(m.view(t0 + ms(3000)), ["a", "b"]);
    }

    #[test]
    fn leaving_drops_a_node_at_once_until_it_restarts() {
        let t0 = Instant::now();
        let mut m = abc(t0);
        m.up(t0);
        // Even in the held view after the connection came up.
        m.leaving("c", 5);
        assert_eq!(m.view(t0 + ms(10)), ["a", "b"]);
        m.heartbeat("b", 1, t0 + ms(3000));
        assert_eq!(m.view(t0 + ms(3000)), ["a", "b"]);
        m.leaving("b", 1);
        assert_eq!(m.view(t0 + ms(3001)), ["a"]);
        // A heartbeat of the process that left, still in flight: ignored.
        m.heartbeat("b", 1, t0 + ms(3002));
        assert_eq!(m.view(t0 + ms(3003)), ["a"]);
        // Restarted: a new incarnation.
        m.heartbeat("b", 2, t0 + ms(4000));
        assert_eq!(m.view(t0 + ms(4000)), ["a", "b"]);
    }

    #[test]
    fn a_blip_changes_nothing_and_a_cut_off_node_goes_back_to_the_static_view() {
        let t0 = Instant::now();
        let mut m = abc(t0);
        m.up(t0);
        m.heartbeat("b", 1, t0 + ms(3000));
        assert_eq!(m.view(t0 + ms(3000)), ["a", "b"]);
        // Down: the view at that moment is held for dead_after, even past b's expiry.
        m.down(t0 + ms(3500));
        assert_eq!(m.view(t0 + ms(6499)), ["a", "b"]);
        // Back before dead_after: held, plus what is heard, for another dead_after.
        m.up(t0 + ms(6000));
        assert_eq!(m.view(t0 + ms(8999)), ["a", "b"]);
        assert!(m.connected());
        m.heartbeat("b", 1, t0 + ms(7000));
        assert_eq!(m.view(t0 + ms(9000)), ["a", "b"]);
        assert_eq!(m.view(t0 + ms(10000)), ["a"]);
        // Cut off for dead_after: every node live (the static order).
        m.down(t0 + ms(10000));
        assert_eq!(m.view(t0 + ms(12999)), ["a"]);
        assert_eq!(m.view(t0 + ms(13000)), ["a", "b", "c"]);
        // Reconnected: the static view is held until the heartbeats have had their time.
        m.up(t0 + ms(20000));
        assert_eq!(m.view(t0 + ms(22999)), ["a", "b", "c"]);
        m.heartbeat("c", 3, t0 + ms(21000));
        assert_eq!(m.view(t0 + ms(23000)), ["a", "c"]);
    }
}
