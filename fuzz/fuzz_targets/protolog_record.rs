//! Bytes → `mailserver protolog`'s record reader (`protolog_read::record`): the input as a
//! log file fed in pieces (chunk sizes from the input's hash), each complete line parsed,
//! and the input as one record's data written by the daemon's formatter and read back.
//!
//! Invariants: nothing panics; a line the reader takes as a record is one a reference RFC
//! 4180 reader (`csv-core`) reads as the same seven fields (with `""` undone); the
//! unfinished tail is exactly the bytes after the last `\n`; a record the daemon writes
//! reads back as its sequence number, event and data bytes.
#![no_main]

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use mailserver::protolog::record::{self as writer, Event, SessionFields};
use mailserver::protolog_read::record::{self, Line, LineSplitter};
use mailserver_fuzz::{chunks, fnv};

thread_local! {
    static CSV: RefCell<csv_core::Reader> = RefCell::new(csv_core::Reader::new());
}

/// The fields of `line` as csv-core reads them, or `None` if it reads anything but one
/// record.
fn reference(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    CSV.with(|r| {
        let mut r = r.borrow_mut();
        r.reset();
        let mut out = vec![0u8; line.len() + 16];
        let mut ends = [0usize; 16];
        let (mut input, mut nout, mut nends) = (line, 0, 0);
        for _ in 0..4 {
            let (res, nin, o, e) = r.read_record(input, &mut out[nout..], &mut ends[nends..]);
            input = &input[nin..];
            nout += o;
            nends += e;
            match res {
                csv_core::ReadRecordResult::InputEmpty => continue,
                csv_core::ReadRecordResult::Record if input.is_empty() => {
                    let mut start = 0;
                    return Some(
                        ends[..nends]
                            .iter()
                            .map(|&end| {
                                let f = out[start..end].to_vec();
                                start = end;
                                f
                            })
                            .collect(),
                    );
                }
                _ => return None,
            }
        }
        None
    })
}

fn check_line(line: &[u8]) {
    if let Line::Record(f) = record::classify(line) {
        // csv-core treats CR as a line end and is lenient about stray quotes; compare only
        // where both are defined.
        if line.contains(&b'\r') {
            return;
        }
        let ours: Vec<Vec<u8>> = (0..7)
            .map(|i| {
                record::unquote(&line[f.ranges[i].clone()], f.quoted & (1 << i) != 0).into_owned()
            })
            .collect();
        let theirs = reference(line).expect("csv-core reads a line we take as a record");
        assert_eq!(
            ours,
            theirs,
            "fields of {:?}",
            String::from_utf8_lossy(line)
        );
        assert!(record::is_timestamp(&ours[0]));
        let _ = record::unescape(&ours[6]);
    }
}

fuzz_target!(|data: &[u8]| {
    let h = fnv(data);
    // The input as a file, in pieces.
    let mut sp = LineSplitter::default();
    let mut lines = 0usize;
    for piece in chunks(data, h, 64) {
        sp.feed(piece, |line| {
            lines += 1;
            check_line(line);
        });
    }
    let tail = data.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    assert_eq!(sp.pending(), &data[tail..]);
    assert_eq!(lines, data.iter().filter(|&&b| b == b'\n').count());

    // The input as the data of a record the daemon writes.
    let now = SystemTime::UNIX_EPOCH + Duration::from_millis(h % 8_000_000_000_000);
    let local: SocketAddr = "127.0.0.1:143".parse().unwrap();
    let remote: SocketAddr = "[::1]:50000".parse().unwrap();
    let session = SessionFields::new(h, local, remote);
    let seq = (h >> 16) % 1_000_000;
    let mut line = Vec::new();
    writer::push_record(&mut line, now, &session, seq, Event::FromClient, data);
    assert_eq!(line.pop(), Some(b'\n'));
    let f = record::parse(&line).expect("the daemon's record parses");
    assert_eq!(f.seq, seq);
    assert_eq!(&line[f.ranges[record::EVENT].clone()], b"<");
    let raw = record::unquote(
        &line[f.ranges[record::DATA].clone()],
        f.quoted & (1 << record::DATA) != 0,
    );
    assert_eq!(&*record::unescape(&raw), data);
});
