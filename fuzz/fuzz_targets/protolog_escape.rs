//! Bytes → the protocol log's record formatting (`protolog::record`: a client line, a
//! server line, level-5 content records through `RecordPrefix`) → read back with an
//! independent RFC 4180 reader (`csv-core`, the `csv` crate's core) and `\xNN` decoding.
//!
//! Invariants: each record is one line of printable ASCII ending in `\n` with seven fields;
//! its data field reads back as the original bytes; the field as a spreadsheet sees it does
//! not start with `=`, `+`, `-` or `@` (but for the server's own `+OK`/`-ERR`/`+ ` lines).
#![no_main]

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use mailserver::protolog::record::{self, Event, RecordPrefix, SessionFields};
use mailserver_fuzz::fnv;

thread_local! {
    /// One CSV reader for the process (building its DFA costs more than a record).
    static CSV: RefCell<csv_core::Reader> = RefCell::new(csv_core::Reader::new());
}

/// The seven fields of one record line, as a CSV reader gives them.
fn read(line: &[u8]) -> Vec<String> {
    assert_eq!(line.last(), Some(&b'\n'), "record does not end with LF");
    let body = &line[..line.len() - 1];
    assert!(
        body.iter().all(|&b| (0x20..=0x7e).contains(&b)),
        "raw control or 8-bit octet in {:?}",
        String::from_utf8_lossy(line)
    );
    CSV.with(|r| {
        let mut r = r.borrow_mut();
        r.reset();
        let mut out = vec![0u8; body.len() + 16];
        let mut ends = [0usize; 16];
        let (mut input, mut nout, mut nends) = (body, 0, 0);
        loop {
            // Called again with no input: the end of the data ends the record.
            let (res, nin, o, e) = r.read_record(input, &mut out[nout..], &mut ends[nends..]);
            input = &input[nin..];
            nout += o;
            nends += e;
            match res {
                csv_core::ReadRecordResult::InputEmpty => continue,
                csv_core::ReadRecordResult::Record => break,
                other => panic!(
                    "CSV reader: {other:?} for {:?}",
                    String::from_utf8_lossy(line)
                ),
            }
        }
        assert!(
            input.is_empty(),
            "more than one record in {:?}",
            String::from_utf8_lossy(line)
        );
        assert_eq!(nends, 7, "fields of {:?}", String::from_utf8_lossy(line));
        let mut start = 0;
        ends[..nends]
            .iter()
            .map(|&end| {
                let f = String::from_utf8(out[start..end].to_vec()).expect("ASCII");
                start = end;
                f
            })
            .collect()
    })
}

/// `\xNN` decoding; every backslash starts an escape.
fn unescape(f: &str) -> Vec<u8> {
    let b = f.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            assert_eq!(b.get(i + 1), Some(&b'x'), "bad escape in {f:?}");
            let hex = std::str::from_utf8(&b[i + 2..i + 4]).expect("hex digits");
            assert!(hex
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c)));
            out.push(u8::from_str_radix(hex, 16).expect("hex"));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn check(line: &[u8], data: &[u8], seq: u64, event: u8, server: bool) {
    let f = read(line);
    assert_eq!(f[2], seq.to_string());
    assert_eq!(f[5].as_bytes(), [event]);
    assert_eq!(unescape(&f[6]), data, "data does not read back");
    let formula = matches!(f[6].as_bytes().first(), Some(b'=' | b'+' | b'-' | b'@'));
    let ours = server
        && (data.starts_with(b"+OK")
            || data.starts_with(b"-ERR")
            || data.starts_with(b"+ ")
            || data == b"+");
    assert!(!formula || ours, "field starts like a formula: {:?}", f[6]);
}

fuzz_target!(|data: &[u8]| {
    let h = fnv(data);
    let now = SystemTime::UNIX_EPOCH + Duration::from_millis(h % 8_000_000_000_000);
    let local: SocketAddr = "127.0.0.1:143".parse().unwrap();
    let remote: SocketAddr = "[::1]:50000".parse().unwrap();
    let session = SessionFields::new(h, local, remote);
    let seq = (h >> 16) % 1_000_000;

    let mut line = Vec::new();
    record::push_record(&mut line, now, &session, seq, Event::FromClient, data);
    check(&line, data, seq, b'<', false);

    line.clear();
    record::push_server_record(&mut line, now, &session, seq, data);
    check(&line, data, seq, b'>', true);

    // Level-5 content: the data cut at its LFs, records numbered on from a run of nines.
    let mut prefix = RecordPrefix::default();
    let start = 10u64.pow((h % 6) as u32) - 1;
    prefix.reset(now, &session, start, Event::ToClient);
    for (i, piece) in data.split_inclusive(|&b| b == b'\n').take(64).enumerate() {
        line.clear();
        prefix.push_record(&mut line, piece);
        check(&line, piece, start + i as u64, b'>', false);
    }
});
