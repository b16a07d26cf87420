//! Admin-socket bytes → the request reader (`admin::proto::Reader`) at two chunkings.
//!
//! Invariants: both chunkings give the same frames; no frame comes from more than
//! `MAX_REQUEST` octets of a line; every parsed request serialises and parses back to
//! itself; a reply line never holds a raw LF (one JSON object per line).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailserver::admin::proto::{ErrorCode, Frame, Reader, Request, Response};
use mailserver_fuzz::{chunks, fnv};

fn frames(pieces: &[&[u8]]) -> Vec<Frame> {
    let mut r = Reader::default();
    let mut out = Vec::new();
    for p in pieces {
        r.push(p);
        while let Some(f) = r.next_frame() {
            out.push(f);
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let h = fnv(data);
    let whole = frames(&[data]);
    let cut = frames(&chunks(data, h >> 2, 1 + (h >> 40) as usize % 64));
    assert_eq!(whole, cut, "frames differ between chunkings");
    for f in &whole {
        let resp = match f {
            Frame::Request(req) => {
                let line = serde_json::to_vec(req).unwrap();
                let back: Request = serde_json::from_slice(&line).unwrap();
                assert_eq!(&back, req);
                Response::ok(serde_json::to_value(req).unwrap())
            }
            Frame::Bad(why) => Response::err(ErrorCode::Usage, why.clone()),
            Frame::TooLong => Response::err(ErrorCode::Usage, "too long"),
        };
        assert!(!resp.to_line().contains(&b'\n'));
    }
});
