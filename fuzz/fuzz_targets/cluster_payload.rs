//! NATS message payloads → `cluster::events::decode` for each kind (heartbeat, leaving,
//! changed): what another node, or anything else that can publish on the cluster's
//! subjects, may send.
//!
//! Invariants: never panics; a payload over `MAX_PAYLOAD` octets is refused; whatever
//! decodes carries a valid node id and survives encode → decode unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailserver::cluster::events::{
    decode, encode, Changed, FromNode, Heartbeat, Leaving, MAX_PAYLOAD,
};

fn check<T>(data: &[u8])
where
    T: serde::de::DeserializeOwned + serde::Serialize + FromNode + PartialEq + std::fmt::Debug,
{
    let Some(p) = decode::<T>(data) else { return };
    assert!(data.len() <= MAX_PAYLOAD);
    let n = p.node();
    assert!(!n.is_empty() && n.len() <= 64);
    assert!(n
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)));
    let again = encode(&p);
    if again.len() <= MAX_PAYLOAD {
        assert_eq!(decode::<T>(&again), Some(p));
    }
}

fuzz_target!(|data: &[u8]| {
    check::<Heartbeat>(data);
    check::<Leaving>(data);
    check::<Changed>(data);
});
