//! The internal listeners' wire contract (README.md, "Cluster"): what a front node sends to
//! the owner after the TCP connect, and what the owner accepts there.
//!
//! * A PROXY v2 header (`crate::conn::proxy` reads it) whose source is the client, with the
//!   SSL TLV when the client used TLS at the front, and the custom TLV [`FRONT_TLV`] whose
//!   value is `<front node id> SP <front session id>` (ASCII), so the owner's protocol log
//!   names the front's session.
//! * The master login: SASL PLAIN with authzid = the user, authcid = [`MASTER_USER`] and
//!   the cluster secret as the password. Only the internal listeners accept it.

use subtle::ConstantTimeEq;

use crate::config::cluster::ClusterSettings;

/// The SASL authcid of the master login. `#` cannot start a users-file line (it is a
/// comment there), so no user can hold this name.
pub const MASTER_USER: &str = "#cluster";

/// The PROXY v2 TLV type carrying `<front node id> SP <front session id>`: the first of the
/// range 0xE0–0xEF that proxy-protocol.txt §2.2.7 leaves to applications.
pub const FRONT_TLV: u8 = 0xE0;

/// The longest [`FRONT_TLV`] value accepted (a node id is at most 64 octets, a session id 16).
pub const FRONT_TLV_MAX: usize = 128;

/// Whether `password` is the cluster secret (constant time).
pub fn secret_matches(settings: &ClusterSettings, password: &str) -> bool {
    let secret = settings.secret.expose().as_bytes();
    bool::from(secret.ct_eq(password.as_bytes()))
}

/// The [`FRONT_TLV`] value for the front `node` and its session `id`.
pub fn front_value(node: &str, id: u64) -> Vec<u8> {
    format!("{node} {id:016x}").into_bytes()
}

/// The front node and session of a [`FRONT_TLV`] value, printable (`None` if it is not one).
pub fn parse_front(value: &[u8]) -> Option<(String, String)> {
    if value.len() > FRONT_TLV_MAX || !value.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        return None;
    }
    let text = std::str::from_utf8(value).ok()?;
    let (node, id) = text.split_once(' ')?;
    if node.is_empty() || id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((node.to_string(), id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_value_round_trips_and_garbage_is_refused() {
        let v = front_value("node1", 0x1234_5678_9abc_def0);
        assert_eq!(v, b"node1 123456789abcdef0");
        assert_eq!(
            parse_front(&v),
            Some(("node1".to_string(), "123456789abcdef0".to_string()))
        );
        for bad in [
            &b""[..],
            b"node1",
            b"node1 123",
            b" 123456789abcdef0",
            b"node1 123456789abcdefg",
            b"no\nde 123456789abcdef0",
        ] {
            assert_eq!(parse_front(bad), None, "{bad:?}");
        }
        assert_eq!(parse_front(&[b'a'; 200]), None);
    }
}
