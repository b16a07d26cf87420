//! Message headers → the SORT/THREAD keys (`imap::sortkey`: base subject of RFC 5256 §2.1,
//! `Date:`, addresses, Message-ID/References/In-Reply-To) → their cache encoding and back →
//! THREAD ORDEREDSUBJECT, REFERENCES and REFS (`imap::thread`) → the `* THREAD` text.
//!
//! The input is up to 64 messages separated by NUL octets (the fuzzer finds reference
//! loops, duplicate Message-IDs and self-references by itself; the seeds hold some).
//!
//! Invariants: the cache encoding decodes to the same keys; every algorithm places every
//! message exactly once, with no childless dummy (§2.2 step 4.A) and no dummy for
//! ORDEREDSUBJECT; the response's parentheses balance and it names the same messages.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailserver::imap::sortkey::{self, SortKeys, Wanted};
use mailserver::imap::thread::{self, Algorithm, Node, ThreadMsg};

const ALL: Wanted = Wanted::ALL;

/// Collects the message ids of `n`'s subtree; checks that no dummy is a leaf.
fn walk(n: &Node, ids: &mut Vec<u32>, dummies: &mut usize) {
    match n.msg {
        Some(m) => ids.push(m),
        None => {
            *dummies += 1;
            assert!(!n.children.is_empty(), "a dummy without children: {n:?}");
        }
    }
    for c in &n.children {
        walk(c, ids, dummies);
    }
}

fuzz_target!(|data: &[u8]| {
    let msgs: Vec<&[u8]> = data.split(|&b| b == 0).take(64).collect();
    let mut input = Vec::with_capacity(msgs.len());
    for (i, raw) in msgs.iter().enumerate() {
        let k = SortKeys::from_message(raw);
        let enc = k.encode();
        assert_eq!(
            SortKeys::decode_only(&enc, ALL).as_ref(),
            Some(&k),
            "cache round trip"
        );
        // A damaged value is refused or decoded, never a panic.
        let _ = SortKeys::decode_only(&enc[..enc.len() / 2], ALL);
        input.push(ThreadMsg {
            id: i as u32 + 1,
            // INTERNALDATE stands in for a missing Date:, as the server does.
            date: k.date.unwrap_or(i as i64 * 60),
            subject: k.subject,
            reply: k.reply,
            message_id: k.message_id,
            references: k.references,
        });
    }
    // The pieces the keys are made of, on the raw text too.
    let text = String::from_utf8_lossy(data);
    let (base, _) = sortkey::base_subject(&text);
    let _ = sortkey::casemap(&base);
    let _ = sortkey::parse_date(data);
    let _ = sortkey::msg_ids(data);

    let want: Vec<u32> = (1..=input.len() as u32).collect();
    for alg in [
        Algorithm::OrderedSubject,
        Algorithm::References,
        Algorithm::Refs,
    ] {
        let roots = thread::thread(&input, alg);
        let (mut ids, mut dummies) = (Vec::new(), 0);
        for r in &roots {
            walk(r, &mut ids, &mut dummies);
        }
        if alg == Algorithm::OrderedSubject {
            assert_eq!(dummies, 0, "ORDEREDSUBJECT makes no dummies");
        }
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, want, "{alg:?} places every message once");
        let text = thread::response(&roots);
        assert!(text.starts_with("* THREAD"), "{text}");
        let body = &text["* THREAD".len()..];
        let mut depth = 0i32;
        for c in body.bytes() {
            match c {
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    assert!(depth >= 0, "unbalanced: {text}");
                }
                b'0'..=b'9' | b' ' => {}
                _ => panic!("unexpected {c:#x} in {text}"),
            }
        }
        assert_eq!(depth, 0, "unbalanced: {text}");
        let mut named: Vec<u32> = body
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().expect("a number"))
            .collect();
        named.sort_unstable();
        assert_eq!(
            named, want,
            "{alg:?}: the response names every message once"
        );
    }
});
