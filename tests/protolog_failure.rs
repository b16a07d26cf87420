//! A failing protocol log never stops mail (ARCHITECTURE.md, "Protocol log"): an unusable path
//! or a failing disk never stops a session or panics; the error is reported once per episode
//! through the daemon log; the file is released; a new one is tried at the next session start.

#[path = "common/logreader.rs"]
mod logreader;
mod protolog_common;

use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use logreader::*;
use mailserver::protolog::{LineKind, ProtoLog, WriterFactory};
use mailserver::service::Service;
use protolog_common::*;

#[test]
fn a_path_under_a_regular_file_fails_once_per_episode_and_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("plain");
    std::fs::write(&plain, b"not a directory").unwrap();
    let bad = plain.join("logs");
    let cap = Captured::default();
    tracing::subscriber::with_default(cap.subscriber(), || {
        let log = ProtoLog::new();
        for port in 0..3 {
            let mut s = log.session_start(Service::Pop3, &config(5, &bad), local(), remote(port));
            s.client(LineKind::Command, b"USER alice");
            s.info("authentication success user=alice mechanism=USER");
            s.end(10, 20);
        }
        assert_eq!(cap.count(" ERROR "), 1, "{}", cap.text());
        assert_eq!(std::fs::read(&plain).unwrap(), b"not a directory");

        // The admin fixes the path: the next session start opens a file.
        std::fs::remove_file(&plain).unwrap();
        let s = log.session_start(Service::Pop3, &config(5, &bad), local(), remote(9));
        s.end(1, 2);
        assert_eq!(log_files(&bad), vec!["L0000001.log"]);
        assert_eq!(parse_log(&bad.join("L0000001.log")).records.len(), 2);
        assert_eq!(cap.count("protocol log recovered"), 1, "{}", cap.text());

        // A new failure after a recovery is a new episode, reported again.
        let other = bad.join("L0000001.log").join("sub");
        log.session_start(Service::Pop3, &config(5, &other), local(), remote(10))
            .end(0, 0);
        assert_eq!(cap.count(" ERROR "), 2, "{}", cap.text());
        assert!(!flock_held(&bad.join("L0000001.log")), "old file released");
    });
}

/// A writer over the real file with a byte budget: `-1` unlimited, otherwise that many more
/// bytes succeed (possibly part of a write) and then every write fails with ENOSPC.
struct Budgeted {
    file: File,
    budget: Arc<AtomicI64>,
}

impl Write for Budgeted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.budget.load(Ordering::SeqCst);
        if left < 0 {
            return self.file.write(buf);
        }
        if left == 0 {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let n = (left as usize).min(buf.len());
        let n = self.file.write(&buf[..n])?;
        self.budget.fetch_sub(n as i64, Ordering::SeqCst);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn budgeted(budget: &Arc<AtomicI64>) -> WriterFactory {
    let budget = Arc::clone(budget);
    Arc::new(move |f: &File| {
        Ok(Box::new(Budgeted {
            file: f.try_clone()?,
            budget: Arc::clone(&budget),
        }) as Box<dyn Write + Send>)
    })
}

#[test]
fn enospc_releases_the_file_keeps_whole_lines_and_recovers_at_the_next_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let budget = Arc::new(AtomicI64::new(-1));
    let cap = Captured::default();
    tracing::subscriber::with_default(cap.subscriber(), || {
        let log = ProtoLog::with_writer_factory(budgeted(&budget));
        let mut s1 = log.session_start(Service::Imap4, &config(5, dir), local(), remote(1));
        s1.client(LineKind::Command, b"a1 NOOP");
        s1.end(1, 1);
        let l1 = dir.join("L0000001.log");
        let good = std::fs::read(&l1).unwrap();

        // The disk fills up in the middle of the next record.
        budget.store(10, Ordering::SeqCst);
        let mut s2 = log.session_start(Service::Imap4, &config(5, dir), local(), remote(2));
        s2.client(LineKind::Command, b"a2 NOOP lost to ENOSPC");
        s2.end(1, 1); // must return, not hang or panic
        assert_eq!(cap.count(" ERROR "), 1, "{}", cap.text());
        assert!(
            cap.text().contains("No space left on device"),
            "{}",
            cap.text()
        );
        assert!(!flock_held(&l1), "the failing file is released");
        assert!(!fd_open(std::process::id(), &l1));
        assert_eq!(
            std::fs::read(&l1).unwrap(),
            good,
            "torn record truncated away"
        );

        // Still full: the next start tries a new file, fails quietly (same episode).
        let s3 = log.session_start(Service::Imap4, &config(5, dir), local(), remote(3));
        s3.end(1, 1);
        assert_eq!(cap.count(" ERROR "), 1, "{}", cap.text());
        assert_eq!(
            log_files(dir),
            vec!["L0000001.log"],
            "headerless file removed"
        );

        // Space again: the next session start opens the next file and logs normally.
        budget.store(-1, Ordering::SeqCst);
        let mut s4 = log.session_start(Service::Imap4, &config(5, dir), local(), remote(4));
        s4.client(LineKind::Command, b"a4 NOOP");
        s4.end(1, 1);
        let files = log_files(dir);
        let last = files.last().unwrap();
        assert_ne!(last, "L0000001.log");
        let recs = parse_log(&dir.join(last)).records;
        assert_eq!(
            recs.iter().map(|r| r.event).collect::<String>(),
            "+<-",
            "{files:?}"
        );
        assert_eq!(recs[1].data, b"a4 NOOP");
        assert!(flock_held(&dir.join(last)));
        assert_eq!(cap.count("protocol log recovered"), 1, "{}", cap.text());
        assert_eq!(cap.count(" ERROR "), 1, "{}", cap.text());
    });
}

/// A writer that blocks while the gate is closed: a stalled disk.
struct Gated {
    file: File,
    gate: Arc<(Mutex<bool>, Condvar)>,
}

impl Write for Gated {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (m, cv) = &*self.gate;
        let mut open = m.lock().unwrap();
        while !*open {
            open = cv.wait(open).unwrap();
        }
        drop(open);
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[test]
fn a_stalled_disk_never_blocks_sessions_and_dropped_records_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let gate = Arc::new((Mutex::new(true), Condvar::new()));
    let g = Arc::clone(&gate);
    let factory: WriterFactory = Arc::new(move |f: &File| {
        Ok(Box::new(Gated {
            file: f.try_clone()?,
            gate: Arc::clone(&g),
        }) as Box<dyn Write + Send>)
    });
    let log = ProtoLog::with_writer_factory(factory);
    let mut s = log.session_start(Service::Pop3, &config(2, tmp.path()), local(), remote(1));
    *gate.0.lock().unwrap() = false;
    // 10 000 records of ~1 KiB: more than the queue holds while the writer is stuck.
    let payload = vec![b'p'; 1000];
    for _ in 0..10_000 {
        s.client(LineKind::Command, &payload);
    }
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    s.end(1, 1);
    log.flush_all();
    let recs = parse_log(&tmp.path().join("L0000001.log")).records;
    let written = recs.iter().filter(|r| r.event == '<').count();
    let notices: Vec<&Rec> = recs
        .iter()
        .filter(|r| r.event == '*' && r.text().ends_with(" records dropped (queue full)"))
        .collect();
    assert_eq!(notices.len(), 1, "one notice, never silent");
    let dropped: usize = notices[0]
        .text()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(dropped > 0);
    assert_eq!(written + dropped, 10_000);
    // Dropped records keep their sequence numbers: the gap shows where they were.
    let ours: Vec<u64> = recs
        .iter()
        .filter(|r| r.id == recs[0].id)
        .map(|r| r.seq)
        .collect();
    assert!(ours.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(*ours.last().unwrap(), 10_001);
    let last_ours = recs.iter().rfind(|r| r.id == recs[0].id).unwrap();
    assert_eq!(
        last_ours.event, '-',
        "the disconnect record survives a full queue"
    );
}
