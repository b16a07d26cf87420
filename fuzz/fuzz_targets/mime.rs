//! Message bytes → the MIME parser (`mime::parse`) → ENVELOPE, BODY and BODYSTRUCTURE and
//! body sections through the FETCH writer (`imap::encode`, `imap::section`), and the header
//! and body decoding SEARCH uses (`imap::search`).
//!
//! Invariants: every part's header and body ranges lie within the message, header before
//! body, children inside their parent's body and in order; the FETCH response holding the
//! encoders' output is valid IMAP (quoting, literals, parentheses) that imap-codec decodes.
#![no_main]

use std::sync::Arc;
use std::time::SystemTime;

use imap_codec::imap_types::command::CommandBody;
use libfuzzer_sys::fuzz_target;
use mailserver::imap::decode::parse_command;
use mailserver::imap::encode::fetch::FetchWriter;
use mailserver::imap::search::{self, Bounds, Candidate, LazyMessage};
use mailserver::imap::section::{Section, SectionSpec};
use mailserver::mime::{self, Kind, Part};
use mailserver::session::Output;
use mailserver::store::{Flags, MessageMeta};
use mailserver_fuzz::{check_imap_syntax, decode_responses};

/// Checks `p`'s ranges within `outer` and collects the part paths (at most 64).
fn check_part(
    p: &Part,
    outer: std::ops::Range<usize>,
    path: &mut Vec<u32>,
    paths: &mut Vec<Vec<u32>>,
) {
    assert!(
        outer.start <= p.header.start,
        "header starts before its container"
    );
    assert!(p.header.start <= p.header.end, "header range reversed");
    assert!(
        p.header.end <= p.body.start,
        "body starts inside the header"
    );
    assert!(p.body.start <= p.body.end, "body range reversed");
    assert!(
        p.body.end <= outer.end,
        "body {:?} ends after its container {outer:?}: {p:?}",
        p.body
    );
    if paths.len() < 64 && !path.is_empty() {
        paths.push(path.clone());
    }
    match &p.kind {
        Kind::Leaf => {}
        Kind::Multipart(children) => {
            let mut at = p.body.start;
            for (i, c) in children.iter().enumerate() {
                assert!(c.header.start >= at, "children overlap or are out of order");
                path.push(i as u32 + 1);
                check_part(c, p.body.clone(), path, paths);
                path.pop();
                at = c.body.end;
            }
        }
        Kind::Message(inner) => {
            path.push(1);
            check_part(inner, p.body.clone(), path, paths);
            path.pop();
        }
    }
}

/// Nesting depth of the part tree (a leaf is 1).
fn depth(p: &Part) -> usize {
    1 + match &p.kind {
        Kind::Leaf => 0,
        Kind::Multipart(c) => c.iter().map(depth).max().unwrap_or(0),
        Kind::Message(inner) => depth(inner),
    }
}

/// imap-codec decodes BODY/BODYSTRUCTURE nested at most 8 deep (`body(8)`): deeper
/// structures are valid IMAP it refuses, so only the syntax check applies to them.
const CODEC_DEPTH: usize = 6;

fn leaves<'p>(p: &'p Part, out: &mut Vec<&'p Part>) {
    match &p.kind {
        Kind::Leaf => out.push(p),
        Kind::Multipart(c) => c.iter().for_each(|c| leaves(c, out)),
        Kind::Message(inner) => leaves(inner, out),
    }
}

const SEARCHES: &[&[u8]] = &[
    b"s SEARCH CHARSET UTF-8 TEXT {5}\r\ncaf\xc3\xa9\r\n",
    b"s SEARCH BODY vu SUBJECT hi FROM alice TO bob CC x BCC y\r\n",
    b"s SEARCH OR HEADER Content-Type plain NOT HEADER X-Junk \"\" SENTBEFORE 1-Jan-2030 SENTSINCE 1-Feb-1990 SENTON 27-Nov-2026\r\n",
    b"s SEARCH LARGER 10 SMALLER 100000 KEYWORD $Forwarded\r\n",
];

fuzz_target!(|data: &[u8]| {
    let raw: Arc<[u8]> = Arc::from(data);
    let msg = mime::parse(&raw);
    let mut paths = Vec::new();
    check_part(&msg.root, 0..raw.len(), &mut Vec::new(), &mut paths);
    let _ = msg.root.body_lines(&raw);

    // FETCH (ENVELOPE BODY BODYSTRUCTURE BODY[...]) as the server writes it.
    let mut out = Output::default();
    let mut w = FetchWriter::new(&mut out, &raw, 1);
    w.envelope(&msg);
    w.structure(&msg, false);
    w.structure(&msg, true);
    let fields = SectionSpec::HeaderFields(vec![b"Subject".to_vec(), b"Content-Type".to_vec()]);
    w.section(&msg, &Section::full(), Some((1, 20)));
    w.section(
        &msg,
        &Section {
            path: vec![],
            spec: fields.clone(),
        },
        None,
    );
    for p in paths.iter().take(8) {
        for spec in [
            SectionSpec::Full,
            SectionSpec::Mime,
            SectionSpec::Header,
            fields.clone(),
        ] {
            w.section(
                &msg,
                &Section {
                    path: p.clone(),
                    spec,
                },
                None,
            );
        }
    }
    w.finish();
    let wire = out.encode();
    if let Err(e) = check_imap_syntax(&wire) {
        panic!("FETCH output: {e}");
    }
    // NUL is sent as it is in literals (message bytes and header values), which RFC 3501's
    // CHAR8 excludes and imap-codec refuses: such output gets the syntax check only.
    if depth(&msg.root) <= CODEC_DEPTH && !wire.contains(&0) {
        if let Err(e) = decode_responses(&wire) {
            panic!("FETCH output: {e}");
        }
    }

    // What SEARCH decodes.
    for f in mime::fields(&raw, msg.root.header.clone()).iter().take(64) {
        let v = mime::unfold(f.value);
        let _ = search::decode_header(&v);
        let _ = mime::parse_addresses(&v);
        let _ = mime::parse_content_type(&v);
        let _ = search::parse_date_day(&v);
    }
    let mut parts = Vec::new();
    leaves(&msg.root, &mut parts);
    for p in parts.iter().take(16) {
        let _ = search::decode_body(&raw, p);
    }
    let meta = MessageMeta {
        uid: 1,
        flags: Flags::NONE,
        keywords: vec![],
        size: raw.len() as u64,
        internal_date: SystemTime::UNIX_EPOCH,
        recent: false,
        modseq: 1,
    };
    let never = || false;
    for s in SEARCHES {
        let cmd = parse_command(s).expect("the fixed searches parse");
        let CommandBody::Search { criteria, .. } = cmd.body else {
            unreachable!()
        };
        let raw = raw.clone();
        let mut c = Candidate {
            seq: 1,
            meta: &meta,
            message: LazyMessage::new(move || Some(raw.clone())),
            cancelled: &never,
        };
        search::matches_all(
            criteria.as_ref(),
            &mut c,
            Bounds {
                messages: 1,
                max_uid: 1,
            },
        );
    }
});
