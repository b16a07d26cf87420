//! Integrity of the KB Q182504 log (ARCHITECTURE.md, "Protocol log"): records of concurrent
//! sessions never interleave within a line, every record is in the file when its session ends,
//! and the writer flushes on its own.

#[path = "common/logreader.rs"]
mod logreader;
mod protolog_common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use logreader::*;
use mailserver::protolog::{Direction, LineKind, ProtoLog};
use mailserver::service::Service;
use protolog_common::*;

const THREADS: u16 = 100;
const LINES: usize = 50;

fn payload(t: u16, i: usize) -> Vec<u8> {
    format!("t{t} r{i} ,\"q\" \\ \u{e9}\t ").into_bytes()
}

#[test]
fn a_hundred_concurrent_sessions_write_only_whole_well_formed_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let log = ProtoLog::new();
    let cfg = config(5, tmp.path());
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (log, cfg) = (&log, &cfg);
            scope.spawn(move || {
                let mut s = log.session_start(Service::Pop3, cfg, local(), remote(t));
                for i in 0..LINES {
                    if i % 2 == 0 {
                        s.client(LineKind::Command, &payload(t, i));
                    } else {
                        s.content(Direction::ServerToClient, &payload(t, i));
                    }
                }
                s.end(t.into(), 0);
            });
        }
    });
    // No flush_all: every session's end already waited for its records.
    let recs = parse_log(&tmp.path().join("L0000001.log")).records;
    assert_eq!(recs.len(), usize::from(THREADS) * (LINES + 2));
    let mut by_session: HashMap<&str, Vec<&Rec>> = HashMap::new();
    for r in &recs {
        by_session.entry(r.id.as_str()).or_default().push(r);
    }
    assert_eq!(by_session.len(), usize::from(THREADS));
    for rs in by_session.values() {
        let port: u16 = rs[0].remote.rsplit(':').next().unwrap().parse().unwrap();
        assert_eq!(rs.len(), LINES + 2);
        for (i, r) in rs.iter().enumerate() {
            assert_eq!(r.seq, i as u64);
            assert_eq!(r.remote, rs[0].remote);
        }
        assert_eq!(rs[0].event, '+');
        assert_eq!(rs[LINES + 1].event, '-');
        for i in 0..LINES {
            assert_eq!(rs[i + 1].data, payload(port, i));
            assert_eq!(rs[i + 1].event, if i % 2 == 0 { '<' } else { '>' });
        }
    }
}

#[test]
fn both_services_under_concurrent_load_keep_separate_files() {
    let tmp = tempfile::tempdir().unwrap();
    let log = ProtoLog::new();
    let cfg = config(2, tmp.path());
    std::thread::scope(|scope| {
        for t in 0..20u16 {
            let (log, cfg) = (&log, &cfg);
            scope.spawn(move || {
                let svc = if t % 2 == 0 {
                    Service::Pop3
                } else {
                    Service::Imap4
                };
                let mut s = log.session_start(svc, cfg, local(), remote(t));
                for i in 0..20 {
                    s.client(LineKind::Command, &payload(t, i));
                }
                s.end(0, 0);
            });
        }
    });
    let files = log_files(tmp.path());
    assert_eq!(files.len(), 2);
    for f in files {
        let parsed = parse_log(&tmp.path().join(&f));
        assert_eq!(parsed.records.len(), 10 * 22);
        let want_even = parsed.service == "POP3";
        for r in &parsed.records {
            let port: u16 = r.remote.rsplit(':').next().unwrap().parse().unwrap();
            assert_eq!(port.is_multiple_of(2), want_even, "{f}: {r:?}");
        }
    }
}

#[test]
fn records_reach_the_file_without_a_session_end() {
    let tmp = tempfile::tempdir().unwrap();
    let log = ProtoLog::new();
    let mut s = log.session_start(Service::Imap4, &config(2, tmp.path()), local(), remote(1));
    s.client(LineKind::Command, b"a1 IDLE");
    // Bounded poll (not a timing assertion): the writer flushes on its own.
    let path = tmp.path().join("L0000001.log");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let recs = parse_log(&path).records;
        if recs.iter().any(|r| r.data == b"a1 IDLE") {
            break;
        }
        assert!(Instant::now() < deadline, "record never flushed");
        std::thread::sleep(Duration::from_millis(10));
    }
    s.end(0, 0);
}
