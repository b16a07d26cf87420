//! Protocol-log throughput: 8 threads × 100 000 client records each, at level 5 (every record
//! written) and at level 0 (every record filtered in the session). Measures, asserts nothing.
//!
//! For comparison, `baseline` is the alternative design the sink did not take: each session
//! thread formats its line and writes it under a mutex into one shared `BufWriter<File>`
//! (cheap in a benchmark, but a session then waits for the disk whenever the buffer fills).
//!
//! `content` is the level-5 POP3 RETR shape: sessions feeding ~16 KB CRLF messages (about
//! 250 lines of mail text) through `SessionLog::content`; it reports the session-side cost
//! per message (wall time of the feeding threads) and the writer thread's CPU per message.
//!
//! Run: `cargo bench --profile dev --bench protolog [-- THREADS RECORDS]` (release numbers:
//! `cargo bench --bench protolog`; `-- content THREADS MESSAGES` runs only `content`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use mailserver::config::ProtocolLogSettings;
use mailserver::protolog::record::{self, Event, SessionFields};
use mailserver::protolog::{Direction, LineKind, ProtoLog};
use mailserver::service::Service;

fn config(level: u32, dir: &Path) -> ProtocolLogSettings {
    ProtocolLogSettings {
        level,
        path: dir.to_path_buf(),
        size_limit_kib: 0,
        users: Vec::new(),
    }
}

fn run(level: u32, threads: usize, records: usize) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(level, tmp.path());
    let log = ProtoLog::new();
    let local: SocketAddr = "127.0.0.1:110".parse().unwrap();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (log, cfg) = (&log, &cfg);
            scope.spawn(move || {
                let remote = SocketAddr::from(([192, 0, 2, 1], 40_000 + t as u16));
                let mut s = log.session_start(Service::Pop3, cfg, local, remote);
                for i in 0..records {
                    let line = format!("RETR {i} some-typical-argument, with a comma");
                    s.client(LineKind::Command, line.as_bytes());
                }
                s.end(0, 0);
            });
        }
    });
    let sessions_done = started.elapsed();
    log.flush_all();
    let all_flushed = started.elapsed();
    let (mut bytes, mut lines, mut dropped) = (0u64, 0u64, 0u64);
    for e in std::fs::read_dir(tmp.path()).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        bytes += text.len() as u64;
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            lines += 1;
            if let Some(n) = l.strip_suffix(" records dropped (queue full)") {
                dropped += n.rsplit(',').next().unwrap().parse::<u64>().unwrap();
            }
        }
    }
    let total = (threads * records) as f64;
    println!(
        "level {level}: {threads} threads x {records} records: sessions done in {:.3}s \
         ({:.0} records/s), all flushed at {:.3}s; file {bytes} bytes, {lines} records, \
         {dropped} dropped",
        sessions_done.as_secs_f64(),
        total / sessions_done.as_secs_f64(),
        all_flushed.as_secs_f64(),
    );
}

fn baseline(threads: usize, records: usize) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = std::fs::File::create(tmp.path().join("L0000001.log")).unwrap();
    let out = Mutex::new(std::io::BufWriter::with_capacity(64 * 1024, file));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let out = &out;
            scope.spawn(move || {
                let remote = SocketAddr::from(([192, 0, 2, 1], 40_000 + t as u16));
                let local = "127.0.0.1:110".parse().unwrap();
                let fields = SessionFields::new(t as u64, local, remote);
                let mut buf = Vec::with_capacity(256);
                for i in 0..records {
                    let line = format!("RETR {i} some-typical-argument, with a comma");
                    buf.clear();
                    // The same formatting as the sink, in the session thread.
                    record::push_record(
                        &mut buf,
                        SystemTime::now(),
                        &fields,
                        i as u64,
                        Event::FromClient,
                        line.as_bytes(),
                    );
                    out.lock().unwrap().write_all(&buf).unwrap();
                }
            });
        }
    });
    out.lock().unwrap().flush().unwrap();
    let done = started.elapsed();
    let bytes = std::fs::metadata(tmp.path().join("L0000001.log"))
        .unwrap()
        .len();
    println!(
        "baseline (mutex around BufWriter): {threads} threads x {records} records in {:.3}s \
         ({:.0} records/s), file {bytes} bytes",
        done.as_secs_f64(),
        (threads * records) as f64 / done.as_secs_f64()
    );
}

/// A deterministic ~16 KB message with CRLF line ends: headers, then lines of words, one line
/// in 64 with a comma, quotes and UTF-8 (about the share of such lines in `mailbench corpus`
/// text, ~1.5%).
fn message(n: usize) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "review", "budget", "server", "a", "the", "meeting", "invoice", "weekly", "notes", "draft",
        "protocol", "queue", "answer", "storage", "report", "attached",
    ];
    let mut m = format!(
        "Return-Path: <bounce{n}@example.net>\r\nReceived: from mx.example.net\r\n\tby bench.example \
         (Postfix) with ESMTP id 43D9{n:06}\r\nDate: Tue, 14 Nov 2023 22:13:31 +0000\r\nFrom: \
         <alice@example.org>\r\nTo: bench1 <bench1@bench.example>\r\nSubject: summary #{n}\r\n\
         Message-ID: <{n}@example.net>\r\nMIME-Version: 1.0\r\n\r\n"
    );
    let mut x = n as u64 * 2_654_435_761 + 1;
    for i in 0.. {
        if m.len() >= 16 * 1024 {
            break;
        }
        let mut line = String::new();
        if i % 64 == 0 {
            line.push_str("S\u{f8}ren, \"quoted\" ");
        }
        while line.len() < 64 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            line.push_str(WORDS[(x >> 60) as usize]);
            line.push(' ');
        }
        m.push_str(line.trim_end());
        m.push_str("\r\n");
    }
    m.into_bytes()
}

/// CPU seconds of this process's threads named `comm`.
fn thread_cpu(comm: &str) -> f64 {
    let mut ticks = 0u64;
    for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if &stat[open + 1..close] != comm {
            continue;
        }
        let f: Vec<&str> = stat[close + 2..].split(' ').collect();
        ticks += f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
    }
    ticks as f64 / 100.0
}

fn content(threads: usize, messages: usize) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(5, tmp.path());
    let log = ProtoLog::new();
    let local: SocketAddr = "127.0.0.1:110".parse().unwrap();
    let bodies: Vec<Vec<u8>> = (0..16).map(message).collect();
    let cpu_before = thread_cpu("protolog-POP3");
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (log, cfg, bodies) = (&log, &cfg, &bodies);
            scope.spawn(move || {
                let remote = SocketAddr::from(([192, 0, 2, 1], 40_000 + t as u16));
                let mut s = log.session_start(Service::Pop3, cfg, local, remote);
                for i in 0..messages {
                    if i % 40 == 0 && i > 0 {
                        s.end(0, 0);
                        s = log.session_start(Service::Pop3, cfg, local, remote);
                    }
                    s.client(LineKind::Command, format!("RETR {}", i % 40 + 1).as_bytes());
                    s.server(LineKind::Status, b"+OK message follows");
                    s.content(Direction::ServerToClient, &bodies[i % bodies.len()]);
                    s.server(LineKind::Reply, b".");
                }
                s.end(0, 0);
            });
        }
    });
    let sessions_done = started.elapsed();
    log.flush_all();
    let writer_cpu = thread_cpu("protolog-POP3") - cpu_before;
    let bytes: u64 = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let total = (threads * messages) as f64;
    println!(
        "content: {threads} threads x {messages} messages of ~16 KB: {:.2} us/message in the \
         session (wall), writer {:.2} us/message (CPU); file {:.1} KB/message",
        sessions_done.as_secs_f64() * 1e6 * threads as f64 / total,
        writer_cpu * 1e6 / total,
        bytes as f64 / total / 1e3,
    );
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("content") {
        let args: Vec<usize> = std::env::args()
            .skip(2)
            .filter_map(|a| a.parse().ok())
            .collect();
        let threads = args.first().copied().unwrap_or(1);
        let messages = args.get(1).copied().unwrap_or(50_000);
        for _ in 0..3 {
            content(threads, messages);
        }
        return;
    }
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let threads = args.first().copied().unwrap_or(8);
    let records = args.get(1).copied().unwrap_or(100_000);
    for level in [0, 5, 0, 5] {
        run(level, threads, records);
    }
    baseline(threads, records);
    baseline(threads, records);
    content(1, 50_000);
}
