//! Twenty concurrent sessions on one mailbox doing appends, flag changes and expunges
//! (RFC 3501 §5.2, §7.4.1): every session's picture, built only from the untagged
//! EXISTS/EXPUNGE responses it was sent, must end equal to the mailbox, and all sessions must
//! agree on UIDs and flags.

mod imap_session_common;

use imap_session_common::*;

const SESSIONS: usize = 20;
const ROUNDS: usize = 6;

/// What a client knows from the untagged responses it saw: the message count.
#[derive(Default)]
struct Model {
    exists: usize,
    /// Every untagged line seen, for the failure message.
    seen: Vec<String>,
}

impl Model {
    fn apply(&mut self, lines: &[String]) {
        self.seen.extend(lines.iter().cloned());
        self.seen.push("--".into());
        for l in lines {
            let w: Vec<&str> = l.split(' ').collect();
            if w.len() >= 3 && w[0] == "*" {
                if let Ok(n) = w[1].parse::<usize>() {
                    match w[2] {
                        "EXISTS" => {
                            assert!(n >= self.exists, "EXISTS may not shrink: {l}");
                            self.exists = n;
                        }
                        "EXPUNGE" => {
                            assert!(n >= 1 && n <= self.exists, "EXPUNGE {n} of {}", self.exists);
                            self.exists -= 1;
                        }
                        "FETCH" => {
                            assert!(n >= 1 && n <= self.exists, "FETCH {n} of {}", self.exists)
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

/// `(uid, flags without \Recent)` of every message, in sequence order.
fn parse_fetch(lines: &[String]) -> Vec<(u32, String)> {
    let mut v = Vec::new();
    for l in lines {
        let Some(rest) = l.split(" FETCH (UID ").nth(1) else {
            continue;
        };
        let uid: u32 = rest.split(' ').next().unwrap().parse().unwrap();
        let flags = rest
            .split("FLAGS (")
            .nth(1)
            .unwrap()
            .split(')')
            .next()
            .unwrap()
            .split(' ')
            .filter(|f| !f.is_empty() && *f != "\\Recent")
            .collect::<Vec<_>>()
            .join(" ");
        v.push((uid, flags));
    }
    v
}

async fn worker(s: &Server, id: usize) -> (Vec<(u32, String)>, usize) {
    let mut c = s.login().await;
    let mut m = Model::default();
    let u = c.ok("SELECT INBOX").await;
    m.apply(&u);
    let mut expunged_mine = 0;
    for r in 0..ROUNDS {
        let (u, t) = c
            .append_full("INBOX", "", &message(&format!("s{id}r{r}"), "x"))
            .await;
        m.apply(&u);
        assert!(t.starts_with("OK [APPENDUID "), "{t}");
        let uid: u32 = t
            .split(' ')
            .nth(3)
            .unwrap()
            .trim_end_matches(']')
            .parse()
            .unwrap();
        let (u, _) = c.cmd("NOOP").await;
        m.apply(&u);
        // Flag changes on our message and on whatever is message 1 now.
        let (u, t) = c
            .cmd(&format!("UID STORE {uid} +FLAGS (\\Flagged $s{id})"))
            .await;
        assert!(t.starts_with("OK"), "{t}");
        m.apply(&u);
        let (u, _) = c.cmd("STORE 1 +FLAGS.SILENT (\\Seen)").await;
        m.apply(&u);
        fetch_all(&mut c, &mut m).await;
        let (u, _) = c.cmd("SEARCH ALL").await;
        m.apply(&u);
        if r % 2 == 1 {
            let (u, t) = c
                .cmd(&format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"))
                .await;
            assert!(t.starts_with("OK"), "{t}");
            m.apply(&u);
            let (u, t) = c.cmd(&format!("UID EXPUNGE {uid}")).await;
            assert!(t.starts_with("OK"), "{t}");
            m.apply(&u);
            expunged_mine += 1;
        }
    }
    // Let everyone finish, then look once more.
    (until_idle(&mut c, &mut m).await, expunged_mine)
}

/// `FETCH 1:* (UID FLAGS)`: one line per message this session knows of, then maybe
/// announcements of what changed meanwhile (after the FETCH data, §7.4.1).
async fn fetch_all(c: &mut Client, m: &mut Model) -> Vec<(u32, String)> {
    let (u, _) = c.cmd("FETCH 1:* (UID FLAGS)").await;
    let split = u
        .iter()
        .rposition(|l| l.contains(" FETCH (UID "))
        .map_or(0, |i| i + 1);
    m.apply(&u[..split]);
    let v = parse_fetch(&u[..split]);
    assert_eq!(
        v.len(),
        m.exists,
        "FETCH 1:* matches the announced count; seen:\n{}",
        m.seen.join("\n")
    );
    m.apply(&u[split..]);
    v
}

/// NOOP, then `FETCH 1:*`: the picture this session ends with.
async fn until_idle(c: &mut Client, m: &mut Model) -> Vec<(u32, String)> {
    let (u, _) = c.cmd("NOOP").await;
    m.apply(&u);
    fetch_all(c, m).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_sessions_end_consistent() {
    let s = std::sync::Arc::new(Server::start(Options::default()).await);
    let mut tasks = Vec::new();
    for id in 0..SESSIONS {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = s.login().await;
            let mut m = Model::default();
            m.apply(&c.ok("SELECT INBOX").await);
            let r = worker(&s, id).await;
            // A second, long-lived session that only watches.
            let _ = until_idle(&mut c, &mut m).await;
            (r, c, m)
        }));
    }
    let mut watchers = Vec::new();
    let mut expunged = 0;
    for t in tasks {
        let ((_, e), c, m) = tokio::time::timeout(std::time::Duration::from_secs(300), t)
            .await
            .expect("sessions finish in time")
            .unwrap();
        expunged += e;
        watchers.push((c, m));
    }
    // All work is done: every session now converges on the same picture.
    let mut fresh = s.login().await;
    fresh.ok("SELECT INBOX").await;
    let truth = parse_fetch(&fresh.ok("FETCH 1:* (UID FLAGS)").await);
    assert_eq!(truth.len(), SESSIONS * ROUNDS - expunged);
    let mut uids: Vec<u32> = truth.iter().map(|t| t.0).collect();
    uids.dedup();
    assert_eq!(uids.len(), truth.len(), "UIDs are unique and ascending");
    assert!(truth.windows(2).all(|w| w[0].0 < w[1].0));
    for (c, m) in watchers.iter_mut() {
        let seen = until_idle(c, m).await;
        assert_eq!(seen, truth);
    }
    // Every surviving message kept its owner's keyword and \Flagged.
    for (_, flags) in &truth {
        assert!(flags.contains("\\Flagged"), "{flags}");
        assert!(flags.contains("$s"), "{flags}");
    }
}
