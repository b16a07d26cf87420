//! The workloads: N client tasks looping sessions until a deadline, counting operations,
//! bytes, latencies and errors, plus server CPU per operation from `/proc` when the server's
//! PID is known.
//!
//! | workload | a session | one operation (latency, bytes) |
//! |---|---|---|
//! | pop3-retrieve | USER/PASS, STAT, LIST, RETR 1..n, QUIT (RFC 1939 sections 5-6) | one RETR, its payload |
//! | imap-fetch | LOGIN, SELECT INBOX, FETCH 1:* (FLAGS RFC822.SIZE ENVELOPE), K x FETCH n BODY[], LOGOUT (RFC 3501 section 6.4.5) | one FETCH n BODY[], its literal |
//! | imap-append | LOGIN, K x APPEND mailbox (\Seen) {size} (RFC 3501 section 6.3.11), LOGOUT | one APPEND, the message size |
//! | login-storm | connect, USER/PASS or LOGIN, QUIT or LOGOUT | the whole session |
//! | lmtp-deliver | LHLO, K x (MAIL, RCPT TO:<user@domain>, DATA pipelined; the message) (RFC 2033), QUIT | one delivery to its final `250`, the message size |
//!
//! `idle-hold` is different: K connections LOGIN, SELECT, IDLE (RFC 2177) and are held; the
//! server's memory (RSS and PSS of its process tree) is read before and during the hold and
//! reported per connection.
//!
//! Every run is bounded: sessions stop issuing commands at the deadline, every network step
//! has `--timeout`, and each client task has a hard cap of duration + 2 x timeout + 5 s.
use crate::client::{Imap, Lmtp, Pop3, Target};
use crate::procstat;
use crate::report::{percentile_ms, Report, Samples};
use crate::rng::SplitMix64;
use anyhow::{bail, Context, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Who logs in: one account for every client, or `prefix1..prefixN` round-robin.
#[derive(Clone, Debug)]
pub enum Creds {
    One {
        user: String,
        pass: String,
    },
    Prefix {
        prefix: String,
        count: u32,
        pass: String,
    },
}

impl Creds {
    pub fn for_client(&self, i: u32) -> (String, String) {
        match self {
            Creds::One { user, pass } => (user.clone(), pass.clone()),
            Creds::Prefix {
                prefix,
                count,
                pass,
            } => (format!("{prefix}{}", i % count.max(&1) + 1), pass.clone()),
        }
    }
    pub fn describe(&self) -> String {
        match self {
            Creds::One { user, .. } => user.clone(),
            Creds::Prefix { prefix, count, .. } => format!("{prefix}1..{prefix}{count}"),
        }
    }
}

/// Settings shared by every workload.
#[derive(Clone)]
pub struct Common {
    pub target: Target,
    pub creds: Creds,
    pub clients: u32,
    pub duration: Duration,
    pub server_pid: Option<u32>,
    pub seed: u64,
    /// Free text copied into the report (compare.sh puts the server and round there).
    pub label: String,
    pub progress: bool,
}

pub enum Kind {
    Pop3Retrieve,
    ImapFetch {
        per_session: u32,
    },
    ImapAppend {
        mailbox: String,
        per_session: u32,
        messages: Arc<Vec<Vec<u8>>>,
    },
    LoginStorm {
        imap: bool,
    },
    LmtpDeliver {
        /// Recipients are `user@domain`.
        domain: String,
        per_session: u32,
        /// Dot-stuffed, CRLF.
        messages: Arc<Vec<Vec<u8>>>,
    },
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Pop3Retrieve => "pop3-retrieve",
            Kind::ImapFetch { .. } => "imap-fetch",
            Kind::ImapAppend { .. } => "imap-append",
            Kind::LoginStorm { imap: false } => "login-storm-pop3",
            Kind::LoginStorm { imap: true } => "login-storm-imap",
            Kind::LmtpDeliver { .. } => "lmtp-deliver",
        }
    }
}

/// Live totals for the progress line.
#[derive(Default)]
struct Counters {
    ops: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    sessions: AtomicU64,
}

/// One client task's state and results.
struct Ctx {
    user: String,
    pass: String,
    target: Target,
    deadline: Instant,
    /// Latency of the workload's operation.
    op: Samples,
    /// Latency of the secondary step (imap-fetch's FETCH 1:*), when there is one.
    aux: Samples,
    counters: Arc<Counters>,
    rng: SplitMix64,
    /// The first few error messages, for the report.
    errors: Vec<String>,
}

impl Ctx {
    fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }
    fn op_done(&mut self, started: Instant, bytes: u64) {
        self.op.record(started.elapsed());
        self.counters.ops.fetch_add(1, Relaxed);
        self.counters.bytes.fetch_add(bytes, Relaxed);
    }
}

async fn session(ctx: &mut Ctx, kind: &Kind) -> Result<()> {
    match kind {
        Kind::Pop3Retrieve => {
            let mut p = Pop3::connect(&ctx.target).await?;
            p.login(&ctx.user, &ctx.pass).await?;
            let (n, _) = p.stat().await?;
            if n == 0 {
                bail!("maildrop of {} is empty", ctx.user);
            }
            p.multi("LIST").await?;
            for i in 1..=n {
                if ctx.expired() {
                    break;
                }
                let t = Instant::now();
                let bytes = p.multi(&format!("RETR {i}")).await?;
                ctx.op_done(t, bytes);
            }
            p.quit().await
        }
        Kind::ImapFetch { per_session } => {
            let mut c = Imap::connect(&ctx.target).await?;
            c.login(&ctx.user, &ctx.pass).await?;
            let n = c.select("INBOX").await?;
            if n == 0 {
                bail!("INBOX of {} is empty", ctx.user);
            }
            let t = Instant::now();
            c.command("FETCH 1:* (FLAGS RFC822.SIZE ENVELOPE)").await?;
            ctx.aux.record(t.elapsed());
            for _ in 0..*per_session {
                if ctx.expired() {
                    break;
                }
                let m = ctx.rng.range(1, u64::from(n));
                let t = Instant::now();
                let r = c.command(&format!("FETCH {m} BODY[]")).await?;
                if r.literal_bytes == 0 {
                    bail!("FETCH {m} BODY[] returned no literal");
                }
                ctx.op_done(t, r.literal_bytes);
            }
            c.logout().await
        }
        Kind::ImapAppend {
            mailbox,
            per_session,
            messages,
        } => {
            let mut c = Imap::connect(&ctx.target).await?;
            c.login(&ctx.user, &ctx.pass).await?;
            for _ in 0..*per_session {
                if ctx.expired() {
                    break;
                }
                let msg = &messages[ctx.rng.below(messages.len() as u64) as usize];
                let t = Instant::now();
                c.append(mailbox, msg).await?;
                ctx.op_done(t, msg.len() as u64);
            }
            c.logout().await
        }
        Kind::LoginStorm { imap } => {
            let t = Instant::now();
            if *imap {
                let mut c = Imap::connect(&ctx.target).await?;
                c.login(&ctx.user, &ctx.pass).await?;
                c.logout().await?;
            } else {
                let mut p = Pop3::connect(&ctx.target).await?;
                p.login(&ctx.user, &ctx.pass).await?;
                p.quit().await?;
            }
            ctx.op_done(t, 0);
            Ok(())
        }
        Kind::LmtpDeliver {
            domain,
            per_session,
            messages,
        } => {
            let mut c = Lmtp::connect(&ctx.target).await?;
            let rcpt = format!("{}@{domain}", ctx.user);
            for _ in 0..*per_session {
                if ctx.expired() {
                    break;
                }
                let msg = &messages[ctx.rng.below(messages.len() as u64) as usize];
                let t = Instant::now();
                c.deliver("mailbench@bench.test", &rcpt, msg).await?;
                ctx.op_done(t, msg.len() as u64);
            }
            c.quit().await
        }
    }
}

async fn client_loop(mut ctx: Ctx, kind: Arc<Kind>) -> Ctx {
    while !ctx.expired() {
        match session(&mut ctx, &kind).await {
            Ok(()) => {
                ctx.counters.sessions.fetch_add(1, Relaxed);
            }
            Err(e) => {
                ctx.counters.errors.fetch_add(1, Relaxed);
                if ctx.errors.len() < 3 {
                    ctx.errors.push(format!("{e:#}"));
                }
                // Do not spin on a server that refuses us.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    ctx
}

fn spawn_progress(
    label: String,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    start: Instant,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = 0u64;
        // Bounded: the run's hard cap ends it through `stop` long before this count.
        for _ in 0..86_400 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if stop.load(Relaxed) {
                break;
            }
            let ops = counters.ops.load(Relaxed);
            eprintln!(
                "[{label}] {:>4.0}s ops={ops} (+{}/s) errors={}",
                start.elapsed().as_secs_f64(),
                ops - last,
                counters.errors.load(Relaxed)
            );
            last = ops;
        }
    })
}

fn own_cpu_secs() -> f64 {
    procstat::tree_cpu_secs(std::process::id()).unwrap_or(0.0)
}

/// Runs a looping workload and reports it.
pub async fn run(c: &Common, kind: Kind) -> Result<Report> {
    let kind = Arc::new(kind);
    let name = kind.name();
    let cpu0 = match c.server_pid {
        Some(p) => Some(procstat::tree_cpu_secs(p)?),
        None => None,
    };
    let my0 = own_cpu_secs();
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let deadline = start + c.duration;
    let progress = c.progress.then(|| {
        spawn_progress(
            format!("{name} {}", c.label),
            counters.clone(),
            stop.clone(),
            start,
        )
    });
    let hard_cap = c.duration + 2 * c.target.op_timeout + Duration::from_secs(5);
    let mut tasks = Vec::new();
    for i in 0..c.clients {
        let (user, pass) = c.creds.for_client(i);
        let ctx = Ctx {
            user,
            pass,
            target: c.target.clone(),
            deadline,
            op: Samples::new(c.seed ^ u64::from(i)),
            aux: Samples::new(!c.seed ^ u64::from(i)),
            counters: counters.clone(),
            rng: SplitMix64::derive(c.seed, u64::from(i), 1),
            errors: Vec::new(),
        };
        let k = kind.clone();
        tasks.push(tokio::spawn(tokio::time::timeout(
            hard_cap,
            client_loop(ctx, k),
        )));
    }
    let mut lat = Vec::new();
    let mut aux = Vec::new();
    let mut errors = Vec::new();
    let mut lost = 0u64;
    for t in tasks {
        match t.await {
            Ok(Ok(ctx)) => {
                lat.extend_from_slice(&ctx.op.us);
                aux.extend_from_slice(&ctx.aux.us);
                for e in ctx.errors {
                    if errors.len() < 5 && !errors.contains(&e) {
                        errors.push(e);
                    }
                }
            }
            Ok(Err(_)) => lost += 1,
            Err(e) => {
                lost += 1;
                errors.push(format!("client task failed: {e}"));
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Relaxed);
    if let Some(p) = progress {
        p.abort();
    }
    let cpu1 = match c.server_pid {
        Some(p) => Some(procstat::tree_cpu_secs(p)?),
        None => None,
    };
    let my_cpu = own_cpu_secs() - my0;
    lat.sort_unstable();
    aux.sort_unstable();
    let ops = counters.ops.load(Relaxed);
    let bytes = counters.bytes.load(Relaxed);
    let mut r = Report::default();
    r.str("workload", name)
        .str("label", c.label.clone())
        .str("target", format!("{}:{}", c.target.host, c.target.port))
        .str("tls", if c.target.tls.is_some() { "yes" } else { "no" })
        .str("compress", if c.target.compress { "yes" } else { "no" })
        .int("clients", i64::from(c.clients))
        .str("users", c.creds.describe())
        .num("duration_s", elapsed)
        .int("ops", ops as i64)
        .num("ops_per_sec", ops as f64 / elapsed)
        .int("bytes", bytes as i64)
        .num("mb_per_sec", bytes as f64 / 1e6 / elapsed)
        .num("p50_ms", percentile_ms(&lat, 50.0))
        .num("p90_ms", percentile_ms(&lat, 90.0))
        .num("p99_ms", percentile_ms(&lat, 99.0))
        .num("max_ms", percentile_ms(&lat, 100.0))
        .int("latency_samples", lat.len() as i64)
        .int("sessions", counters.sessions.load(Relaxed) as i64)
        .int("errors", (counters.errors.load(Relaxed) + lost) as i64)
        .int("wire_bytes_in", c.target.wire.read.load(Relaxed) as i64)
        .int("wire_bytes_out", c.target.wire.written.load(Relaxed) as i64);
    if !aux.is_empty() {
        r.num("fetch_all_p50_ms", percentile_ms(&aux, 50.0))
            .num("fetch_all_p99_ms", percentile_ms(&aux, 99.0));
    }
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        let cpu = b - a;
        r.num("server_cpu_s", cpu);
        r.num(
            "server_cpu_ms_per_op",
            if ops > 0 {
                cpu * 1000.0 / ops as f64
            } else {
                f64::NAN
            },
        );
    }
    r.num("client_cpu_s", my_cpu);
    r.list("error_samples", errors);
    Ok(r)
}

/// `idle-hold`: K connections LOGIN, SELECT, IDLE; server memory per held connection.
pub async fn idle_hold(c: &Common, hold: Duration, mailbox: &str) -> Result<Report> {
    let pid = c
        .server_pid
        .context("idle-hold needs --server-pid to read the server's memory")?;
    let base = procstat::tree_memory(pid)?;
    let start = Instant::now();
    // Bound concurrent handshakes so connection setup does not itself look like a storm.
    let sem = Arc::new(tokio::sync::Semaphore::new(16));
    let mut tasks = Vec::new();
    for i in 0..c.clients {
        let (user, pass) = c.creds.for_client(i);
        let mut target = c.target.clone();
        target.buf_size = 4096;
        let sem = sem.clone();
        let mailbox = mailbox.to_string();
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await?;
            let fut = async {
                let mut im = Imap::connect(&target).await?;
                im.login(&user, &pass).await?;
                im.select(&mailbox).await?;
                let tag = im.idle_start().await?;
                anyhow::Ok((im, tag))
            };
            tokio::time::timeout(target.op_timeout * 4, fut)
                .await
                .context("setup timed out")?
        }));
    }
    let mut held = Vec::new();
    let mut errors = Vec::new();
    let mut failed = 0u64;
    for t in tasks {
        match t.await.map_err(anyhow::Error::from).and_then(|r| r) {
            Ok(x) => held.push(x),
            Err(e) => {
                failed += 1;
                if errors.len() < 5 {
                    errors.push(format!("{e:#}"));
                }
            }
        }
    }
    let setup = start.elapsed().as_secs_f64();
    if c.progress {
        eprintln!(
            "[idle-hold {}] {} idling, {failed} failed, setup {setup:.1}s; holding {}s",
            c.label,
            held.len(),
            hold.as_secs()
        );
    }
    tokio::time::sleep(hold).await;
    let loaded = procstat::tree_memory(pid)?;
    let n = held.len() as u64;
    // Finish cleanly and count the connections that survived the hold.
    let mut done = Vec::new();
    for (mut im, tag) in held {
        let to = c.target.op_timeout;
        done.push(tokio::spawn(async move {
            tokio::time::timeout(to, async {
                im.idle_done(&tag).await?;
                im.logout().await
            })
            .await
            .context("DONE/LOGOUT timed out")?
        }));
    }
    let mut dropped = 0u64;
    for d in done {
        if !matches!(d.await, Ok(Ok(()))) {
            dropped += 1;
        }
    }
    let per = |after: u64, before: u64| {
        if n == 0 {
            f64::NAN
        } else {
            (after as f64 - before as f64) / n as f64
        }
    };
    let mut r = Report::default();
    r.str("workload", "idle-hold")
        .str("label", c.label.clone())
        .str("target", format!("{}:{}", c.target.host, c.target.port))
        .str("tls", if c.target.tls.is_some() { "yes" } else { "no" })
        .int("clients", i64::from(c.clients))
        .str("users", c.creds.describe())
        .int("connections", n as i64)
        .int("errors", (failed + dropped) as i64)
        .int("dropped_during_hold", dropped as i64)
        .num("setup_s", setup)
        .num("hold_s", hold.as_secs_f64())
        .int("baseline_rss_kb", base.rss_kb as i64)
        .int("baseline_pss_kb", base.pss_kb as i64)
        .int("baseline_processes", i64::from(base.processes))
        .int("loaded_rss_kb", loaded.rss_kb as i64)
        .int("loaded_pss_kb", loaded.pss_kb as i64)
        .int("loaded_processes", i64::from(loaded.processes))
        .num("rss_kb_per_conn", per(loaded.rss_kb, base.rss_kb))
        .num("pss_kb_per_conn", per(loaded.pss_kb, base.pss_kb))
        .list("error_samples", errors);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_users_round_robin() {
        let c = Creds::Prefix {
            prefix: "bench".into(),
            count: 3,
            pass: "pw".into(),
        };
        let users: Vec<String> = (0..5).map(|i| c.for_client(i).0).collect();
        assert_eq!(users, ["bench1", "bench2", "bench3", "bench1", "bench2"]);
        assert_eq!(c.describe(), "bench1..bench3");
        let one = Creds::One {
            user: "u".into(),
            pass: "p".into(),
        };
        assert_eq!(one.for_client(7), ("u".to_string(), "p".to_string()));
    }

    /// A server that accepts and closes at once: every session errors, the run still ends
    /// at its deadline, and errors are counted and sampled.
    #[tokio::test]
    async fn errors_are_counted_and_run_is_bounded() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let srv = tokio::spawn(async move {
            for _ in 0..10_000 {
                match l.accept().await {
                    Ok((s, _)) => drop(s),
                    Err(_) => break,
                }
            }
        });
        let c = Common {
            target: Target::new("127.0.0.1", port, false, Duration::from_secs(2)),
            creds: Creds::One {
                user: "u".into(),
                pass: "p".into(),
            },
            clients: 2,
            duration: Duration::from_millis(300),
            server_pid: Some(std::process::id()),
            seed: 1,
            label: "t".into(),
            progress: false,
        };
        let r = run(&c, Kind::LoginStorm { imap: true }).await.unwrap();
        srv.abort();
        assert_eq!(r.get_num("ops"), Some(0.0));
        assert!(r.get_num("errors").unwrap() >= 2.0);
        assert!(
            r.to_json().contains("connection closed by server"),
            "{}",
            r.to_json()
        );
        assert!(r.get_num("server_cpu_s").is_some());
    }
}
