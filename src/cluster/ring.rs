//! Rendezvous (highest-random-weight) hashing: a user's node order.
//!
//! Each node scores `MD5("mailserver-ring" NUL node_id NUL user)` (the first 8 bytes, big
//! endian); the order is by score, highest first, ties by node id. MD5 is fixed forever, so
//! nodes running different builds agree. Removing a node moves only the users it owned;
//! adding one takes about `1/n` of the users from the others.

use md5::{Digest, Md5};

use crate::config::cluster::ClusterNode;

/// The weight of `node_id` for `user`.
pub fn score(node_id: &str, user: &str) -> u64 {
    let mut h = Md5::new();
    h.update(b"mailserver-ring\0");
    h.update(node_id.as_bytes());
    h.update(b"\0");
    h.update(user.as_bytes());
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().expect("MD5 is 16 bytes"))
}

/// Every node in `user`'s order: the owner is the first live one.
pub fn order<'a>(nodes: &'a [ClusterNode], user: &str) -> Vec<&'a ClusterNode> {
    let mut v: Vec<(u64, &ClusterNode)> = nodes.iter().map(|n| (score(&n.id, user), n)).collect();
    v.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
    v.into_iter().map(|(_, n)| n).collect()
}

/// The first node of `user`'s order for which `live` holds; `None` when no node is live.
#[allow(dead_code)] // for the login proxy (being built on another branch)
pub fn owner<'a>(
    nodes: &'a [ClusterNode],
    user: &str,
    live: impl Fn(&ClusterNode) -> bool,
) -> Option<&'a ClusterNode> {
    order(nodes, user).into_iter().find(|n| live(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<ClusterNode> {
        (0..n)
            .map(|i| ClusterNode {
                id: format!("node{}", i + 1),
                imap: format!("127.0.0.{}:10143", 11 + i).parse().unwrap(),
                pop3: format!("127.0.0.{}:10110", 11 + i).parse().unwrap(),
            })
            .collect()
    }

    #[test]
    fn score_is_fixed_md5() {
        // MD5("mailserver-ring\0node1\0alice"), first 8 bytes: a change here would move
        // users between nodes running different builds.
        let mut h = Md5::new();
        h.update(b"mailserver-ring\0node1\0alice");
        let d = h.finalize();
        assert_eq!(
            score("node1", "alice"),
            u64::from_be_bytes(d[..8].try_into().unwrap())
        );
        assert_ne!(score("node1", "alice"), score("node2", "alice"));
        assert_ne!(score("node1", "alice"), score("node1", "bob"));
    }

    #[test]
    fn order_does_not_depend_on_file_order() {
        let a = nodes(4);
        let mut b = a.clone();
        b.reverse();
        for i in 0..200 {
            let u = format!("user{i}");
            let oa: Vec<&str> = order(&a, &u).iter().map(|n| n.id.as_str()).collect();
            let ob: Vec<&str> = order(&b, &u).iter().map(|n| n.id.as_str()).collect();
            assert_eq!(oa, ob, "{u}");
        }
    }

    #[test]
    fn removing_a_node_moves_only_its_users() {
        let all = nodes(3);
        let mut moved = 0;
        let mut owned_by_3 = 0;
        for i in 0..3000 {
            let u = format!("user{i}");
            let before = owner(&all, &u, |_| true).unwrap().id.clone();
            let after = owner(&all, &u, |n| n.id != "node3").unwrap().id.clone();
            if before == "node3" {
                owned_by_3 += 1;
                assert_ne!(after, "node3");
            } else {
                assert_eq!(before, after, "{u} moved though its owner stayed");
            }
            moved += usize::from(before != after);
        }
        assert_eq!(moved, owned_by_3);
        // About a third each (rendezvous hashing is uniform): well inside 25%..42%.
        assert!((750..1260).contains(&owned_by_3), "node3 owned {owned_by_3} of 3000");
    }

    #[test]
    fn no_live_node_no_owner() {
        let all = nodes(2);
        assert!(owner(&all, "alice", |_| false).is_none());
    }
}
