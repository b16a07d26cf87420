//! 20 clients on two shared mailboxes of one user against the real binary (issue #14):
//! each loops sessions of LOGIN, SELECT, FETCH / UID FETCH, STORE / UID STORE with +FLAGS
//! and -FLAGS, EXPUNGE, APPEND, NOOP and LOGOUT, picking sequence numbers from its own
//! view, for `MAILSERVER_STRESS_SECS` seconds (12 by default; the run is 60).
//!
//! Each client keeps its picture of the selected mailbox (sequence number → UID) from the
//! EXISTS, EXPUNGE and FETCH responses it gets, and checks on every response:
//! - every command completes `OK` (no `NO`, no `BAD`: expunges by other sessions are not
//!   failures, RFC 2180 §4 as Dovecot answers them);
//! - `EXISTS` is never below the count the client knows (expunges are announced first);
//! - no `EXPUNGE` during FETCH, STORE or SEARCH (RFC 3501 §7.4.1), and each names a message
//!   that exists in the client's picture;
//! - a FETCH's UID agrees with the picture, UIDs increase with sequence numbers, and a UID
//!   once announced expunged to a client is never shown to it again.

// The daemon launcher (`common`) and the async IMAP client (`imap_session_common`) both
// include the one test-config builder.
#![allow(clippy::duplicate_mod)]

mod common;
mod imap_session_common;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Daemon;
use imap_session_common::{Client, PASS, USER};

const CLIENTS: usize = 20;
const MAILBOXES: [&str; 2] = ["INBOX", "Shared"];
/// Appends stop while a mailbox is this big, so expunges keep it bounded.
const MAX_MESSAGES: usize = 150;
/// Failures kept for the report.
const MAX_FAILURES: usize = 20;

/// A small deterministic generator (xorshift64*), one per client.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// What all clients found.
#[derive(Default)]
struct Tally {
    commands: BTreeMap<&'static str, u64>,
    /// Untagged EXPUNGEs of messages another session removed, as seen by clients.
    expunges_seen: u64,
    /// Completions with `[EXPUNGEISSUED]` (work on a message another session expunged).
    expunge_issued: u64,
    failures: Vec<String>,
    failure_count: u64,
}

/// One client's picture of its selected mailbox.
struct Picture {
    mailbox: &'static str,
    /// UID per sequence number (`None` until a FETCH told it).
    uids: Vec<Option<u32>>,
    /// UIDs this client saw expunged, per mailbox (never to come back to it).
    gone: Arc<Mutex<BTreeMap<&'static str, HashSet<u32>>>>,
}

impl Picture {
    /// Applies one command's untagged responses; the problems found, if any.
    fn apply(&mut self, cmd: &str, untagged: &[String], tally: &mut Tally) -> Vec<String> {
        let mut bad = Vec::new();
        let no_expunge = ["FETCH", "STORE", "SEARCH"]
            .iter()
            .any(|c| cmd.starts_with(c));
        for l in untagged {
            let Some(rest) = l.strip_prefix("* ") else {
                continue;
            };
            let mut words = rest.splitn(3, ' ');
            let (Some(n), Some(kind)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<usize>() else { continue };
            match kind {
                "EXISTS" => {
                    if n < self.uids.len() {
                        bad.push(format!(
                            "{cmd}: EXISTS {n} below the {} known",
                            self.uids.len()
                        ));
                    }
                    self.uids.resize(n.max(self.uids.len()), None);
                }
                "EXPUNGE" => {
                    tally.expunges_seen += 1;
                    if no_expunge {
                        bad.push(format!("{cmd}: EXPUNGE during the command ({l})"));
                    }
                    if n == 0 || n > self.uids.len() {
                        bad.push(format!("{cmd}: {l} with {} messages", self.uids.len()));
                        continue;
                    }
                    if let Some(uid) = self.uids.remove(n - 1) {
                        let mut gone = self.gone.lock().unwrap();
                        gone.entry(self.mailbox).or_default().insert(uid);
                    }
                }
                "FETCH" => {
                    let Some(uid) = fetched_uid(l) else { continue };
                    if n == 0 || n > self.uids.len() {
                        bad.push(format!("{cmd}: {l} with {} messages", self.uids.len()));
                        continue;
                    }
                    let gone = self.gone.lock().unwrap();
                    if gone.get(self.mailbox).is_some_and(|g| g.contains(&uid)) {
                        bad.push(format!("{cmd}: UID {uid} seen again after its EXPUNGE"));
                    }
                    drop(gone);
                    if let Some(known) = self.uids[n - 1] {
                        if known != uid {
                            bad.push(format!("{cmd}: message {n} is UID {uid}, was {known}"));
                        }
                    }
                    let below = self.uids[..n - 1].iter().rev().flatten().next();
                    let above = self.uids[n..].iter().flatten().next();
                    if below.is_some_and(|b| *b >= uid) || above.is_some_and(|a| *a <= uid) {
                        bad.push(format!("{cmd}: UID {uid} out of order at {n}"));
                    }
                    self.uids[n - 1] = Some(uid);
                }
                _ => {}
            }
        }
        bad
    }
}

/// The `UID n` of a FETCH response line (before any literal).
fn fetched_uid(line: &str) -> Option<u32> {
    let head = line.split('{').next()?;
    let at = head.find("UID ")?;
    head[at + 4..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn message(n: u64) -> String {
    format!(
        "From: Stress <stress@example.org>\r\nTo: {USER}@example.org\r\nSubject: stress {n}\r\nMessage-ID: <{n}@stress>\r\n\r\nbody {n}\r\n"
    )
}

/// One client: sessions until the deadline.
async fn client(
    addr: std::net::SocketAddr,
    seed: u64,
    deadline: Instant,
    tally: Arc<Mutex<Tally>>,
) {
    // What this client saw expunged; another session may still show such a message
    // until it is told, so this is per client.
    let gone = Arc::new(Mutex::new(BTreeMap::new()));
    let mut rng = Rng(seed | 1);
    let mut local = Tally::default();
    let mut sessions = 0u64;
    while Instant::now() < deadline && sessions < 100_000 {
        sessions += 1;
        let mut c = Client::connect_to(addr).await;
        let mut pic = Picture {
            mailbox: MAILBOXES[rng.below(MAILBOXES.len())],
            uids: Vec::new(),
            gone: gone.clone(),
        };
        let commands = 5 + rng.below(30);
        let mut done = 0;
        while done < commands + 2 && Instant::now() < deadline {
            let cmd = match done {
                0 => format!("LOGIN {USER} {PASS}"),
                1 => format!("SELECT {}", pic.mailbox),
                _ => next_command(&mut rng, &pic),
            };
            done += 1;
            let (untagged, tagged) = c.cmd(&cmd).await;
            let name: &'static str = command_name(&cmd);
            *local.commands.entry(name).or_default() += 1;
            if cmd.starts_with("SELECT") {
                pic.uids.clear();
            }
            let mut bad = pic.apply(&cmd, &untagged, &mut local);
            if !tagged.starts_with("OK") {
                bad.push(format!("{cmd:.60}: {tagged}"));
            }
            if tagged.contains("[EXPUNGEISSUED]") {
                local.expunge_issued += 1;
            }
            for b in bad {
                local.failure_count += 1;
                if local.failures.len() < MAX_FAILURES {
                    local.failures.push(b);
                }
            }
        }
        let (_, t) = c.cmd("LOGOUT").await;
        *local.commands.entry("LOGOUT").or_default() += 1;
        if !t.starts_with("OK") {
            local.failure_count += 1;
            local.failures.push(format!("LOGOUT: {t}"));
        }
    }
    let mut t = tally.lock().unwrap();
    for (k, v) in local.commands {
        *t.commands.entry(k).or_default() += v;
    }
    t.expunges_seen += local.expunges_seen;
    t.expunge_issued += local.expunge_issued;
    t.failure_count += local.failure_count;
    let room = MAX_FAILURES.saturating_sub(t.failures.len());
    t.failures.extend(local.failures.into_iter().take(room));
}

fn command_name(cmd: &str) -> &'static str {
    const NAMES: [&str; 12] = [
        "LOGIN",
        "SELECT",
        "UID FETCH",
        "FETCH",
        "UID STORE",
        "STORE",
        "EXPUNGE",
        "APPEND",
        "NOOP",
        "SEARCH",
        "LOGOUT",
        "UID SEARCH",
    ];
    NAMES
        .iter()
        .find(|n| cmd.starts_with(*n))
        .copied()
        .unwrap_or("OTHER")
}

/// A random command over the client's picture (sequence numbers it knows exist).
fn next_command(rng: &mut Rng, pic: &Picture) -> String {
    let n = pic.uids.len();
    let seq = |rng: &mut Rng| 1 + rng.below(n);
    let flag =
        |rng: &mut Rng| ["\\Seen", "\\Flagged", "\\Answered", "\\Deleted", "$Stress"][rng.below(5)];
    match rng.below(20) {
        _ if n == 0 => {
            let m = message(rng.next() % 1_000_000);
            format!("APPEND {} {{{}+}}\r\n{m}", pic.mailbox, m.len())
        }
        0..=3 => {
            let a = seq(rng);
            let b = (a + rng.below(10)).min(n);
            format!("FETCH {a}:{b} (UID FLAGS)")
        }
        4 => format!(
            "FETCH {} (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])",
            seq(rng)
        ),
        5 => format!("FETCH {} (UID RFC822.SIZE BODY.PEEK[])", seq(rng)),
        6 | 7 => "UID FETCH 1:* (FLAGS)".to_string(),
        8..=10 => {
            let a = seq(rng);
            let b = (a + rng.below(5)).min(n);
            let sign = if rng.below(3) == 0 { '-' } else { '+' };
            let silent = if rng.below(2) == 0 { ".SILENT" } else { "" };
            format!("STORE {a}:{b} {sign}FLAGS{silent} ({})", flag(rng))
        }
        11 => {
            let known: Vec<u32> = pic.uids.iter().flatten().copied().collect();
            match known.get(rng.below(known.len().max(1))) {
                Some(u) => format!("UID STORE {u} +FLAGS ({})", flag(rng)),
                None => "NOOP".to_string(),
            }
        }
        12 => format!("STORE {} +FLAGS.SILENT (\\Deleted)", seq(rng)),
        13 | 14 => "EXPUNGE".to_string(),
        15 | 16 if n < MAX_MESSAGES => {
            let m = message(rng.next() % 1_000_000);
            let to = MAILBOXES[rng.below(MAILBOXES.len())];
            format!("APPEND {to} {{{}+}}\r\n{m}", m.len())
        }
        17 => "SEARCH FLAGGED".to_string(),
        _ => "NOOP".to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_clients_on_shared_mailboxes_stay_consistent() {
    let secs: u64 = std::env::var("MAILSERVER_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12)
        .clamp(1, 600);
    let d = Daemon::start();
    let addr = d.imap.unwrap();
    let mut c = Client::connect_to(addr).await;
    c.ok(&format!("LOGIN {USER} {PASS}")).await;
    c.ok("CREATE Shared").await;
    for mb in MAILBOXES {
        for i in 0..30 {
            let m = message(i);
            c.ok(&format!("APPEND {mb} {{{}+}}\r\n{m}", m.len())).await;
        }
    }
    c.cmd("LOGOUT").await;

    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| {
            tokio::spawn(client(
                addr,
                0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i as u64 + 1),
                deadline,
                tally.clone(),
            ))
        })
        .collect();
    for t in tasks {
        // Each command is bounded by the client's 20 s wait; a task ends after its
        // session at the deadline.
        tokio::time::timeout(Duration::from_secs(secs + 120), t)
            .await
            .expect("client finished in time")
            .expect("client did not panic");
    }
    let t = tally.lock().unwrap();
    let total: u64 = t.commands.values().sum();
    eprintln!(
        "stress: {CLIENTS} clients, {:.1} s, {total} commands {:?}; {} EXPUNGEs announced, \
         {} [EXPUNGEISSUED] completions, {} failures",
        started.elapsed().as_secs_f64(),
        t.commands,
        t.expunges_seen,
        t.expunge_issued,
        t.failure_count
    );
    assert!(
        t.failure_count == 0,
        "{} failures, the first ones:\n{}\ndaemon log:\n{}",
        t.failure_count,
        t.failures.join("\n"),
        d.log_text()
    );
    // The run did what it is for: every kind of command, and concurrent expunges.
    for name in [
        "LOGIN",
        "SELECT",
        "FETCH",
        "UID FETCH",
        "STORE",
        "UID STORE",
        "EXPUNGE",
        "APPEND",
        "LOGOUT",
    ] {
        assert!(
            t.commands.get(name).copied().unwrap_or(0) > 0,
            "no {name} ran"
        );
    }
    assert!(t.expunges_seen > 0, "no expunge was announced");
}
