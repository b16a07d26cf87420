//! The KB Q182504 logging levels (ARCHITECTURE.md, "Protocol log"): each level writes exactly
//! its records, decided by the snapshot of the session (not the latest config), and secrets
//! arrive redacted and stay that way.

#[path = "common/logreader.rs"]
mod logreader;
mod protolog_common;

use logreader::*;
use mailserver::protolog::{Direction, LineKind, ProtoLog};
use mailserver::service::Service;
use protolog_common::*;

/// A POP3 transcript exercising every kind of record, at `level`; returns the records.
fn transcript(level: u32) -> Vec<(char, String)> {
    let tmp = tempfile::tempdir().unwrap();
    let log = ProtoLog::new();
    let mut s = log.session_start(
        Service::Pop3,
        &config(level, tmp.path()),
        local(),
        remote(1),
    );
    assert_eq!(s.level(), level);
    s.server(LineKind::Status, b"+OK mailserver ready");
    s.client(LineKind::Command, b"USER alice");
    s.server(LineKind::Status, b"+OK");
    s.client(LineKind::Secret, b"PASS ***");
    s.info(AUTH.1);
    s.server(LineKind::Status, b"+OK logged in");
    s.client(LineKind::Command, b"LIST");
    s.server(LineKind::Status, b"+OK 1 messages");
    s.server(LineKind::Reply, b"1 42");
    s.server(LineKind::Reply, b".");
    s.client(LineKind::Command, b"RETR 1");
    s.server(LineKind::Status, b"+OK 42 octets");
    s.content(
        Direction::ServerToClient,
        b"Subject: hi, there\r\n\r\nbody \"quoted\"\r\n",
    );
    s.server(LineKind::Reply, b".");
    s.client(LineKind::Command, b"APPEND-LIKE");
    s.content(Direction::ClientToServer, b"abc\r\ndef");
    s.info(TLS.1);
    s.end(120, 4567);
    let files = log_files(tmp.path());
    if level == 0 {
        assert!(files.is_empty(), "level 0 creates no file");
        return vec![];
    }
    assert_eq!(files, vec!["L0000001.log"]);
    let recs = parse_log(&tmp.path().join("L0000001.log")).records;
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(
            r.seq, i as u64,
            "sequence numbers count from 0 without gaps"
        );
        assert_eq!(r.id, recs[0].id);
    }
    let last = recs.last().unwrap();
    assert_eq!(last.event, '-');
    let t = last.text();
    assert!(
        t.starts_with("duration=") && t.ends_with("s bytes-in=120 bytes-out=4567"),
        "{t}"
    );
    recs.iter()
        .map(|r| (r.event, r.text()))
        .filter(|(e, _)| *e != '-')
        .collect()
}

fn expect(list: &[(char, &str)]) -> Vec<(char, String)> {
    list.iter().map(|(e, s)| (*e, s.to_string())).collect()
}

const AUTH: (char, &str) = ('*', "authentication success user=alice mechanism=USER");
const TLS: (char, &str) = ('*', "TLS established TLSv1.3 TLS13_AES_256_GCM_SHA384");

#[test]
fn level_0_writes_nothing_and_creates_nothing() {
    assert!(transcript(0).is_empty());
}

#[test]
fn level_1_connect_disconnect_and_information() {
    assert_eq!(transcript(1), expect(&[('+', ""), AUTH, TLS]));
}

#[test]
fn level_2_adds_client_lines() {
    assert_eq!(
        transcript(2),
        expect(&[
            ('+', ""),
            ('<', "USER alice"),
            ('<', "PASS ***"),
            AUTH,
            ('<', "LIST"),
            ('<', "RETR 1"),
            ('<', "APPEND-LIKE"),
            TLS,
        ])
    );
}

#[test]
fn level_3_adds_server_completion_lines() {
    assert_eq!(
        transcript(3),
        expect(&[
            ('+', ""),
            ('>', "+OK mailserver ready"),
            ('<', "USER alice"),
            ('>', "+OK"),
            ('<', "PASS ***"),
            AUTH,
            ('>', "+OK logged in"),
            ('<', "LIST"),
            ('>', "+OK 1 messages"),
            ('<', "RETR 1"),
            ('>', "+OK 42 octets"),
            ('<', "APPEND-LIKE"),
            TLS,
        ])
    );
}

const LEVEL4_HEAD: [(char, &str); 10] = [
    ('+', ""),
    ('>', "+OK mailserver ready"),
    ('<', "USER alice"),
    ('>', "+OK"),
    ('<', "PASS ***"),
    AUTH,
    ('>', "+OK logged in"),
    ('<', "LIST"),
    ('>', "+OK 1 messages"),
    ('>', "1 42"),
];

#[test]
fn level_4_adds_other_server_lines_and_summarises_content() {
    let mut want = LEVEL4_HEAD.to_vec();
    want.extend([
        ('>', "."),
        ('<', "RETR 1"),
        ('>', "+OK 42 octets"),
        ('>', "<literal 37 octets>"),
        ('>', "."),
        ('<', "APPEND-LIKE"),
        ('<', "<literal 8 octets>"),
        TLS,
    ]);
    assert_eq!(transcript(4), expect(&want));
}

#[test]
fn level_5_writes_content_line_by_line() {
    let mut want = LEVEL4_HEAD.to_vec();
    want.extend([
        ('>', "."),
        ('<', "RETR 1"),
        ('>', "+OK 42 octets"),
        ('>', "Subject: hi, there"),
        ('>', ""),
        ('>', "body \"quoted\""),
        ('>', "."),
        ('<', "APPEND-LIKE"),
        ('<', "abc"),
        ('<', "def"),
        TLS,
    ]);
    assert_eq!(transcript(5), expect(&want));
}

#[test]
fn level_5_content_keeps_bytes_escaped_and_quoted_in_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let log = ProtoLog::new();
    let mut s = log.session_start(Service::Imap4, &config(5, tmp.path()), local(), remote(1));
    s.content(
        Direction::ClientToServer,
        b"caf\xc3\xa9, \\ \x00\r\nbare\rcr\r\n",
    );
    s.end(0, 0);
    let raw = std::fs::read_to_string(tmp.path().join("L0000001.log")).unwrap();
    assert!(raw.contains(",<,\"caf\\xC3\\xA9, \\x5C \\x00\"\n"), "{raw}");
    assert!(raw.contains(",<,bare\\x0Dcr\n"), "{raw}");
}

#[test]
fn secrets_are_written_only_as_the_session_redacted_them() {
    let tmp = tempfile::tempdir().unwrap();
    let log = ProtoLog::new();
    for level in 0..=5 {
        let mut s = log.session_start(
            Service::Imap4,
            &config(level, tmp.path()),
            local(),
            remote(1),
        );
        // The session redacts (ARCHITECTURE.md, "Sessions"); the log writes the given bytes
        // and nothing else.
        s.client(LineKind::Secret, b"a1 LOGIN alice ***");
        s.client(LineKind::Secret, b"***");
        s.info("authentication failure user=alice mechanism=LOGIN");
        s.end(1, 1);
    }
    let recs = parse_log(&tmp.path().join("L0000001.log")).records;
    let secrets: Vec<String> = recs
        .iter()
        .filter(|r| r.event == '<')
        .map(|r| r.text())
        .collect();
    // Levels 2..=5 write both redacted lines; levels 0 and 1 none.
    assert_eq!(secrets.len(), 8);
    assert!(secrets
        .iter()
        .all(|t| t == "a1 LOGIN alice ***" || t == "***"));
}

#[test]
fn a_session_logs_at_its_own_snapshot_level_not_a_later_one() {
    let tmp = tempfile::tempdir().unwrap();
    let log = ProtoLog::new();
    let mut low = log.session_start(Service::Pop3, &config(1, tmp.path()), local(), remote(1));
    let mut high = log.session_start(Service::Pop3, &config(5, tmp.path()), local(), remote(2));
    for s in [&mut low, &mut high] {
        s.client(LineKind::Command, b"NOOP");
        s.server(LineKind::Status, b"+OK");
        s.server(LineKind::Reply, b"x");
        s.content(Direction::ServerToClient, b"line\r\n");
    }
    // A session started at 5 keeps writing at 5 after the config drops to 2.
    let later = log.session_start(Service::Pop3, &config(2, tmp.path()), local(), remote(3));
    high.server(LineKind::Reply, b"still level 5");
    low.end(1, 1);
    high.end(1, 1);
    later.end(1, 1);
    let recs = parse_log(&tmp.path().join("L0000001.log")).records;
    let low_id = &recs[0].id;
    let low_events: String = recs
        .iter()
        .filter(|r| &r.id == low_id)
        .map(|r| r.event)
        .collect();
    assert_eq!(low_events, "+-");
    let high_id = &recs[1].id;
    let high_events: String = recs
        .iter()
        .filter(|r| &r.id == high_id)
        .map(|r| r.event)
        .collect();
    assert_eq!(high_events, "+<>>>>-");
}

#[test]
fn sessions_from_before_a_release_stop_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let log = ProtoLog::new();
    let mut old = log.session_start(Service::Pop3, &config(5, tmp.path()), local(), remote(1));
    old.client(LineKind::Command, b"before");
    log.session_start(Service::Pop3, &config(0, tmp.path()), local(), remote(2))
        .end(0, 0);
    old.client(LineKind::Command, b"while released");
    // A new file opens; the old session still does not write into it.
    let new = log.session_start(Service::Pop3, &config(5, tmp.path()), local(), remote(3));
    old.client(LineKind::Command, b"after reopen");
    old.end(1, 1);
    new.end(1, 1);
    let f1: Vec<String> = parse_log(&tmp.path().join("L0000001.log"))
        .records
        .iter()
        .map(|r| r.text())
        .collect();
    assert_eq!(f1, vec!["", "before"]);
    let f2 = parse_log(&tmp.path().join("L0000002.log")).records;
    assert_eq!(f2.len(), 2);
    assert!(f2.iter().all(|r| r.id == f2[0].id));
}
