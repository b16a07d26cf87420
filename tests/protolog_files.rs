//! When files open and close, how they are named, their header: the file life cycle of the
//! KB Q182504 log (ARCHITECTURE.md, "Protocol log"), observed on real files in a tempdir.

#[path = "common/logreader.rs"]
mod logreader;
mod protolog_common;

use logreader::*;
use mailserver::protolog::{LineKind, ProtoLog};
use mailserver::service::Service;
use protolog_common::*;

#[test]
fn no_file_before_the_first_session_then_l0000001_declares_pop3() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("logs/pop3");
    let log = ProtoLog::new();
    let cfg = config(5, &dir);
    // The daemon "started" with level 5: nothing exists until a session starts.
    assert!(!dir.exists());
    let s = log.session_start(Service::Pop3, &cfg, local(), remote(1000));
    assert_eq!(log_files(&dir), vec!["L0000001.log"]);
    let first = std::fs::read_to_string(dir.join("L0000001.log")).unwrap();
    assert_eq!(first.lines().next(), Some("#Service: POP3"));
    s.end(0, 0);
    let f = parse_log(&dir.join("L0000001.log"));
    assert_eq!(f.service, "POP3");
    assert_eq!(f.records.len(), 2);
    assert_eq!(f.records[0].event, '+');
    assert_eq!(f.records[0].local, "127.0.0.1:110");
    assert_eq!(f.records[0].remote, "192.0.2.7:1000");
    assert_eq!(f.records[1].event, '-');
}

#[test]
fn imap_into_the_same_directory_takes_the_next_number() {
    let tmp = tempfile::tempdir().unwrap();
    let log = ProtoLog::new();
    let cfg = config(2, tmp.path());
    let mut p = log.session_start(Service::Pop3, &cfg, local(), remote(1));
    let mut i = log.session_start(Service::Imap4, &cfg, local(), remote(2));
    assert_eq!(log_files(tmp.path()), vec!["L0000001.log", "L0000002.log"]);
    p.client(LineKind::Command, b"STAT");
    i.client(LineKind::Command, b"a1 NOOP");
    p.end(5, 6);
    i.end(8, 9);
    let pf = parse_log(&tmp.path().join("L0000001.log"));
    let imf = parse_log(&tmp.path().join("L0000002.log"));
    assert_eq!(pf.service, "POP3");
    assert_eq!(imf.service, "IMAP4");
    assert_eq!(pf.records[1].data, b"STAT");
    assert_eq!(imf.records[1].data, b"a1 NOOP");
    assert_eq!(pf.records.len(), 3);
    assert_eq!(imf.records.len(), 3);
}

#[test]
fn locked_while_enabled_released_at_level_zero_then_next_number() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let l1 = dir.join("L0000001.log");
    let log = ProtoLog::new();
    log.session_start(Service::Pop3, &config(1, dir), local(), remote(1))
        .end(1, 1);
    assert!(
        flock_held(&l1),
        "the file is flock-held while the level is > 0"
    );
    assert!(fd_open(std::process::id(), &l1));

    // A level-0 session start releases the handle.
    let s0 = log.session_start(Service::Pop3, &config(0, dir), local(), remote(2));
    assert_eq!(s0.level(), 0);
    assert!(!flock_held(&l1), "lock released");
    assert!(
        !fd_open(std::process::id(), &l1),
        "fd gone from /proc/self/fd"
    );
    s0.end(0, 0);
    let before = std::fs::read(&l1).unwrap();

    // Re-enabling opens the next number; L0000001.log is not appended to.
    log.session_start(Service::Pop3, &config(3, dir), local(), remote(3))
        .end(1, 1);
    assert_eq!(log_files(dir), vec!["L0000001.log", "L0000002.log"]);
    assert_eq!(std::fs::read(&l1).unwrap(), before);
    assert!(flock_held(&dir.join("L0000002.log")));

    // Level 0 again: both files can be deleted, as the KB promises.
    log.session_start(Service::Pop3, &config(0, dir), local(), remote(4))
        .end(0, 0);
    assert!(!flock_held(&dir.join("L0000002.log")));
    std::fs::remove_file(&l1).unwrap();
    std::fs::remove_file(dir.join("L0000002.log")).unwrap();
    assert!(log_files(dir).is_empty());
}

#[test]
fn existing_files_are_never_appended_truncated_or_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let keep = [
        ("L0000002.log", &b"two"[..]),
        ("L0000005.log", &b"precious\n"[..]),
        ("L00000099.log", &b"eight digits: not a log name"[..]),
        ("L000123.log", &b"six digits"[..]),
    ];
    for (n, c) in keep {
        std::fs::write(dir.join(n), c).unwrap();
    }
    let log = ProtoLog::new();
    log.session_start(Service::Imap4, &config(5, dir), local(), remote(1))
        .end(1, 2);
    assert!(dir.join("L0000006.log").exists());
    for (n, c) in keep {
        assert_eq!(std::fs::read(dir.join(n)).unwrap(), c, "{n} untouched");
    }
    assert_eq!(parse_log(&dir.join("L0000006.log")).service, "IMAP4");
}

#[test]
fn two_daemons_sharing_a_directory_never_share_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let a = ProtoLog::new();
    let b = ProtoLog::new();
    let cfg = config(5, tmp.path());
    let sa = a.session_start(Service::Pop3, &cfg, local(), remote(1));
    let sb = b.session_start(Service::Pop3, &cfg, local(), remote(2));
    sa.end(1, 1);
    sb.end(2, 2);
    let files = log_files(tmp.path());
    assert_eq!(files, vec!["L0000001.log", "L0000002.log"]);
    for f in files {
        let recs = parse_log(&tmp.path().join(f)).records;
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].id, recs[1].id, "one daemon's session per file");
    }
}

#[test]
fn daemons_racing_for_names_each_get_their_own_file() {
    const N: usize = 8;
    let tmp = tempfile::tempdir().unwrap();
    let logs: Vec<_> = (0..N).map(|_| ProtoLog::new()).collect();
    let cfg = config(1, tmp.path());
    let barrier = std::sync::Barrier::new(N);
    std::thread::scope(|scope| {
        for (i, log) in logs.iter().enumerate() {
            let (cfg, barrier) = (&cfg, &barrier);
            scope.spawn(move || {
                barrier.wait();
                let svc = if i % 2 == 0 {
                    Service::Pop3
                } else {
                    Service::Imap4
                };
                log.session_start(svc, cfg, local(), remote(i as u16))
                    .end(0, 0);
            });
        }
    });
    let files = log_files(tmp.path());
    let want: Vec<String> = (1..=N).map(|n| format!("L{n:07}.log")).collect();
    assert_eq!(files, want);
    for f in files {
        let recs = parse_log(&tmp.path().join(f)).records;
        assert_eq!(recs.len(), 2, "exactly one session per file");
    }
}

#[test]
fn a_path_change_moves_the_stream_and_releases_the_old_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let log = ProtoLog::new();
    let mut old = log.session_start(Service::Pop3, &config(2, &a), local(), remote(1));
    old.client(LineKind::Command, b"USER before");
    let new = log.session_start(Service::Pop3, &config(2, &b), local(), remote(2));
    assert!(!flock_held(&a.join("L0000001.log")), "old file released");
    assert!(!fd_open(std::process::id(), &a.join("L0000001.log")));
    assert!(flock_held(&b.join("L0000001.log")));
    // One stream per service: the older session continues in the current file.
    old.client(LineKind::Command, b"USER after");
    old.end(1, 1);
    new.end(1, 1);
    let fa = parse_log(&a.join("L0000001.log")).records;
    let fb = parse_log(&b.join("L0000001.log")).records;
    assert_eq!(
        fa.iter().map(|r| r.text()).collect::<Vec<_>>(),
        vec!["", "USER before"]
    );
    assert!(fb.iter().any(|r| r.data == b"USER after"));
    assert_eq!(fb.iter().filter(|r| r.event == '-').count(), 2);
}

#[test]
fn size_cap_rolls_at_record_boundaries_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut cfg = config(5, dir);
    cfg.size_limit_kib = 1;
    let log = ProtoLog::new();
    let mut s = log.session_start(Service::Pop3, &cfg, local(), remote(1));
    for i in 0..200 {
        s.client(
            LineKind::Command,
            format!("NOOP {i:04} padding,padding").as_bytes(),
        );
    }
    s.end(1, 1);
    let files = log_files(dir);
    assert!(files.len() >= 10, "{files:?}");
    let mut all = Vec::new();
    for f in &files {
        let len = std::fs::metadata(dir.join(f)).unwrap().len();
        assert!(len <= 1024, "{f} is {len} bytes");
        let parsed = parse_log(&dir.join(f));
        assert_eq!(parsed.service, "POP3");
        assert!(!parsed.records.is_empty());
        all.extend(parsed.records);
    }
    assert_eq!(all.len(), 202);
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.seq, i as u64);
    }
    for i in 0..200 {
        assert_eq!(all[i + 1].text(), format!("NOOP {i:04} padding,padding"));
    }
    // Only the last file stays open.
    let (last, rest) = files.split_last().unwrap();
    assert!(flock_held(&dir.join(last)));
    for f in rest {
        assert!(!flock_held(&dir.join(f)), "{f} released");
    }
}

#[test]
fn a_record_longer_than_the_cap_still_gets_written_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(2, tmp.path());
    cfg.size_limit_kib = 1;
    let log = ProtoLog::new();
    let mut s = log.session_start(Service::Pop3, &cfg, local(), remote(1));
    let long = vec![b'x'; 3000];
    s.client(LineKind::Command, &long);
    s.end(1, 1);
    let files = log_files(tmp.path());
    let all: Vec<Rec> = files
        .iter()
        .flat_map(|f| parse_log(&tmp.path().join(f)).records)
        .collect();
    assert_eq!(all.len(), 3);
    assert_eq!(all[1].data, long);
}

#[test]
fn shutdown_flushes_and_releases_and_nothing_opens_afterwards() {
    let tmp = tempfile::tempdir().unwrap();
    let log = ProtoLog::new();
    let mut s = log.session_start(Service::Imap4, &config(2, tmp.path()), local(), remote(1));
    s.client(LineKind::Command, b"a LOGOUT");
    log.shutdown();
    let l1 = tmp.path().join("L0000001.log");
    assert!(!flock_held(&l1));
    assert!(!fd_open(std::process::id(), &l1));
    let recs = parse_log(&l1).records;
    assert_eq!(recs.len(), 2, "queued records were flushed before release");
    s.client(LineKind::Command, b"after shutdown");
    s.end(1, 1);
    let late = log.session_start(Service::Imap4, &config(5, tmp.path()), local(), remote(2));
    assert_eq!(late.level(), 0);
    late.end(0, 0);
    assert_eq!(log_files(tmp.path()), vec!["L0000001.log"]);
    assert_eq!(parse_log(&l1).records.len(), 2);
}

#[test]
fn dropping_the_protolog_releases_its_files() {
    let tmp = tempfile::tempdir().unwrap();
    let l1 = tmp.path().join("L0000001.log");
    {
        let log = ProtoLog::new();
        log.session_start(Service::Pop3, &config(1, tmp.path()), local(), remote(1))
            .end(0, 0);
        assert!(flock_held(&l1));
    }
    assert!(!flock_held(&l1));
    assert!(!fd_open(std::process::id(), &l1));
}

#[test]
fn a_deleted_log_directory_is_recreated_at_the_next_session_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("logs");
    let log = ProtoLog::new();
    log.session_start(Service::Pop3, &config(1, &dir), local(), remote(1))
        .end(0, 0);
    std::fs::remove_dir_all(&dir).unwrap();
    let s = log.session_start(Service::Pop3, &config(1, &dir), local(), remote(2));
    s.end(3, 4);
    assert_eq!(log_files(&dir), vec!["L0000001.log"]);
    let recs = parse_log(&dir.join("L0000001.log")).records;
    assert_eq!(recs.len(), 2);
    assert!(recs[1].text().ends_with("bytes-in=3 bytes-out=4"));
}

#[test]
fn a_session_dropped_without_end_still_writes_its_disconnect() {
    let tmp = tempfile::tempdir().unwrap();
    let log = ProtoLog::new();
    drop(log.session_start(Service::Pop3, &config(1, tmp.path()), local(), remote(1)));
    log.flush_all();
    let recs = parse_log(&tmp.path().join("L0000001.log")).records;
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1].event, '-');
    assert!(recs[1].text().contains("ended without byte counts"));
}

#[test]
fn session_ids_are_sixteen_hex_digits_and_distinct() {
    let tmp = tempfile::tempdir().unwrap();
    let log = ProtoLog::new();
    for port in 0..20 {
        log.session_start(Service::Pop3, &config(1, tmp.path()), local(), remote(port))
            .end(0, 0);
    }
    let v6 = "[2001:db8::5]:995".parse().unwrap();
    log.session_start(Service::Pop3, &config(1, tmp.path()), v6, remote(9))
        .end(0, 0);
    let recs = parse_log(&tmp.path().join("L0000001.log")).records;
    let mut ids: Vec<&str> = recs.iter().map(|r| r.id.as_str()).collect();
    ids.dedup();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!((n, ids.len()), (21, 21));
    assert_eq!(recs.last().unwrap().local, "[2001:db8::5]:995");
}
