//! Protocol-log throughput: 8 threads × 100 000 client records each, at level 5 (every record
//! written) and at level 0 (every record filtered in the session). Measures, asserts nothing.
//!
//! For comparison, `baseline` is the alternative design the sink did not take: each session
//! thread formats its line and writes it under a mutex into one shared `BufWriter<File>`
//! (cheap in a benchmark, but a session then waits for the disk whenever the buffer fills).
//!
//! Run: `cargo bench --profile dev --bench protolog [-- THREADS RECORDS]`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use mailserver::config::{
    AuthSettings, Config, Limits, Listeners, ProtocolLogSettings, ServerSettings,
};
use mailserver::protolog::record::{self, Event, SessionFields};
use mailserver::protolog::{LineKind, ProtoLog, Service};

fn config(level: u32, dir: &Path) -> Config {
    let log = ProtocolLogSettings {
        level,
        path: dir.to_path_buf(),
        size_limit_kib: 0,
    };
    Config {
        path: PathBuf::from("/bench/mailserver.toml"),
        server: ServerSettings {
            hostname: "bench".into(),
            data_dir: dir.to_path_buf(),
        },
        imap: Listeners {
            listen: vec![],
            tls_listen: vec![],
        },
        pop3: Listeners {
            listen: vec![],
            tls_listen: vec![],
        },
        tls: None,
        auth: AuthSettings {
            users_file: dir.join("users"),
            allow_plaintext: false,
        },
        limits: Limits {
            max_connections: 10,
            max_connections_per_ip: 10,
            imap_idle_timeout: Duration::from_secs(1800),
            pop3_idle_timeout: Duration::from_secs(600),
            max_message_bytes: 1 << 20,
            shutdown_grace: Duration::from_secs(1),
        },
        registry: Default::default(),
        pop3_log: log.clone(),
        imap_log: log,
        warnings: vec![],
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

fn main() {
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
}
