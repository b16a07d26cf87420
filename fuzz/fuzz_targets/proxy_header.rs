//! Bytes a load balancer (or anyone in `proxy.trusted_networks`) sends first on a PROXY
//! listener → the header framing (`src/conn/proxy.rs`, `HeaderReader`) fed at two chunkings
//! (whole reads as the reader allows them, and reads of sizes taken from the input's hash),
//! and the `proxy-header` decoding under it.
//!
//! Invariants: no panic; the reader never asks for 0 octets; both chunkings give the same
//! verdict, and a header after the same octets (read exactly: never past its end);
//! a decoded header took at most 107 octets (v1) or `MAX_HEADER` (v2); a refusal comes
//! after at most `MAX_HEADER` octets; a v1 header ends with CRLF and is the only CRLF.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailserver::conn::proxy::{HeaderError, HeaderReader, Proxied, Want, MAX_HEADER, V1_MAX};
use mailserver_fuzz::fnv;

/// Runs the reader over `input`, reading at most `size(i)` octets on the i-th read; returns
/// the verdict (`Closed` when the input ends first) and how many octets it took.
fn run(
    input: &[u8],
    mut size: impl FnMut(usize) -> usize,
) -> (Result<Proxied, HeaderError>, usize) {
    let mut r = HeaderReader::default();
    let mut at = 0;
    for i in 0..=input.len() + 1 {
        match r.want() {
            Ok(Want::Done(p)) => return (Ok(p), at),
            Err(e) => return (Err(e), at),
            Ok(Want::More(n)) => {
                assert!(n >= 1, "asked for 0 octets after {at}");
                assert!(at + n <= MAX_HEADER, "asked past the limit: {at} + {n}");
                if at == input.len() {
                    return (Err(HeaderError::Closed), at);
                }
                let take = n.min(size(i).max(1)).min(input.len() - at);
                r.feed(&input[at..at + take]);
                at += take;
            }
        }
    }
    panic!("the reader took more reads than octets");
}

fuzz_target!(|data: &[u8]| {
    let whole = run(data, |_| usize::MAX);
    let seed = fnv(data);
    let pieces = run(data, |i| ((seed >> (i % 60)) & 0x1f) as usize + 1);
    // A refusal may come sooner in smaller reads (garbage is refused at its first bad
    // octet); a header is taken exactly, whatever the reads.
    assert_eq!(whole.0, pieces.0, "verdict depends on the chunking");
    if whole.0.is_ok() {
        assert_eq!(whole.1, pieces.1, "a header taken differently");
    }
    let (verdict, took) = whole;
    assert!(took <= MAX_HEADER);
    if verdict.is_ok() {
        if data.starts_with(b"PROXY ") {
            assert!(took <= V1_MAX, "v1 header of {took} octets");
            let line = &data[..took];
            assert!(line.ends_with(b"\r\n"));
            assert_eq!(line.windows(2).filter(|w| w == b"\r\n").count(), 1);
        } else {
            assert!(took >= 16);
            let len = u16::from_be_bytes([data[14], data[15]]) as usize;
            assert_eq!(took, 16 + len, "v2 header not read exactly");
        }
    }
});
