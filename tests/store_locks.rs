//! Locks that heal and refused APPENDs that leave nothing (issue #13 item 5), against the real
//! binary over loopback (ARCHITECTURE.md, "Mail store"):
//!
//! - a full disk (a private tmpfs of a few hundred KiB under `data_dir/mail`) refuses APPEND
//!   with `NO [OVERQUOTA]` at each step — the message file, the dot-lock, the uidlist — and
//!   leaves no message, no temp file and no lock; after space is freed the refused message
//!   never appears, a retry yields exactly one, and the next SELECT that needs the lock
//!   answers at once. COPY and MOVE refused the same way leave no copies;
//! - stale locks — a dead process's, an empty one older than 5 s — are taken over at once,
//!   while live ones (a live process's, another host's, a fresh empty one) are waited for;
//! - a daemon killed with SIGKILL while appending never leaves an empty lock, and the next
//!   daemon proceeds at once.
//!
//! The tmpfs tests re-run themselves inside a private mount namespace (`unshare -m`), so the
//! mount vanishes with them whatever happens; where that is not allowed they print
//! `SKIPPED: <why>`. Every wait is bounded; the bounds are timeouts, not speed assertions.

mod common;

use common::{Daemon, Options, PASS, USER};
use std::fs::{self, File};
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// The bound of a command that must not wait for a lock (the lock timeout is 122 s).
const PROMPT: Duration = Duration::from_secs(10);
/// Set in the re-run inside the private mount namespace.
const INSIDE: &str = "STORE_LOCKS_PRIVATE_NS";
/// Size of the private tmpfs: the user's tree and a few messages fit.
const TMPFS_KIB: u64 = 512;

/// A blocking IMAP client whose every read is bounded.
struct Imap {
    r: BufReader<TcpStream>,
    w: TcpStream,
    n: u32,
    /// Bytes of a line not complete when a read timed out.
    partial: Vec<u8>,
}

impl Imap {
    fn login(addr: SocketAddr) -> Imap {
        let s = TcpStream::connect(addr).unwrap();
        let mut c = Imap {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
            n: 0,
            partial: Vec::new(),
        };
        let g = c.line(Instant::now() + PROMPT).expect("greeting");
        assert!(g.starts_with("* OK"), "{g}");
        let (_, done) = c.run(&format!("LOGIN {USER} {PASS}"));
        assert!(done.contains(" OK"), "{done}");
        c
    }

    /// One line, or `None` when `deadline` passes first or the connection is gone.
    fn line(&mut self, deadline: Instant) -> Option<String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.r.get_ref().set_read_timeout(Some(left)).unwrap();
            match self.r.read_until(b'\n', &mut self.partial) {
                Ok(0) => return None, // closed
                Ok(_) if self.partial.ends_with(b"\n") => {
                    let l = String::from_utf8_lossy(&self.partial)
                        .trim_end()
                        .to_string();
                    self.partial.clear();
                    return Some(l);
                }
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return None, // reset
            }
        }
    }

    /// Sends a command; returns its tag. A failed write shows as no answer.
    fn send(&mut self, cmd: &str) -> String {
        self.n += 1;
        let tag = format!("t{}", self.n);
        let _ = self.w.write_all(format!("{tag} {cmd}\r\n").as_bytes());
        tag
    }

    /// The untagged lines and the completion of `tag`, or `None` if it is not complete by
    /// `deadline`.
    fn wait(&mut self, tag: &str, deadline: Instant) -> Option<(Vec<String>, String)> {
        let mut untagged = Vec::new();
        loop {
            let l = self.line(deadline)?;
            if l.starts_with(&format!("{tag} ")) {
                return Some((untagged, l));
            }
            untagged.push(l);
        }
    }

    /// Runs a command that must complete within [`PROMPT`].
    fn run(&mut self, cmd: &str) -> (Vec<String>, String) {
        let tag = self.send(cmd);
        self.wait(&tag, Instant::now() + PROMPT)
            .unwrap_or_else(|| panic!("{cmd:?} not answered within {PROMPT:?}"))
    }

    /// APPENDs `msg` with a non-synchronizing literal; returns the completion.
    fn append(&mut self, mailbox: &str, msg: &str) -> String {
        self.run(&format!("APPEND {mailbox} {{{}+}}\r\n{msg}", msg.len()))
            .1
    }

    /// SELECTs `mailbox` (within [`PROMPT`]); returns its EXISTS count.
    fn select(&mut self, mailbox: &str) -> u32 {
        let (lines, done) = self.run(&format!("SELECT {mailbox}"));
        assert!(done.contains(" OK"), "{done}");
        exists(&lines)
    }

    /// The subjects of every message of the selected mailbox, in order.
    fn subjects(&mut self) -> Vec<String> {
        let (lines, done) = self.run("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])");
        assert!(done.contains(" OK"), "{done}");
        lines
            .iter()
            .filter_map(|l| l.strip_prefix("Subject: "))
            .map(str::to_string)
            .collect()
    }
}

fn exists(lines: &[String]) -> u32 {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("* ")?.strip_suffix(" EXISTS")?.parse().ok())
        .next_back()
        .expect("an EXISTS line")
}

fn message(subject: &str) -> String {
    format!("Subject: {subject}\r\nFrom: a@example.org\r\n\r\nbody of {subject}\r\n")
}

/// This host's name as the locks carry it (`/` and `:` escaped, as Dovecot does).
fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .replace('/', "\\057")
        .replace(':', "\\072")
}

/// File names in `dir` (empty if it does not exist).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Our temp files (`<name>.tmp.<pid>.<hex>`) and Dovecot-style `.temp.` files in `dir`.
fn temps(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.contains(".tmp.") || n.starts_with(".temp."))
        .collect()
}

fn set_age(path: &Path, age: Duration) {
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() - age)
        .unwrap();
}

// ---------------------------------------------------------------------------------------
// The private tmpfs.

/// Whether to run the body of test `name` here: inside the private mount namespace, yes.
/// Outside, the test re-runs itself in one (`unshare -m`), relays its output and checks that
/// it passed, and the caller returns; if a private namespace or a tmpfs mount is not allowed,
/// it prints `SKIPPED: <why>`.
fn inside_private_mounts(name: &str) -> bool {
    if std::env::var_os(INSIDE).is_some() {
        return true;
    }
    let probe = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg("d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs \"$d\" && umount \"$d\" && rmdir \"$d\"")
        .stdin(Stdio::null())
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            eprintln!(
                "SKIPPED: {name}: cannot mount a tmpfs in a private mount namespace \
                 (unshare -m): {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return false;
        }
        Err(e) => {
            eprintln!("SKIPPED: {name}: cannot run unshare(1): {e}");
            return false;
        }
    }
    let out = Command::new("timeout")
        .args(["300", "unshare", "-m", "--propagation", "private"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("--- {name} in a private mount namespace ---\n{stdout}{stderr}");
    assert!(out.status.success(), "{name} failed inside unshare -m");
    assert!(
        stdout.contains("1 passed"),
        "{name} did not run inside unshare -m"
    );
    false
}

/// Starts a daemon whose `data_dir/mail` is a fresh tmpfs of [`TMPFS_KIB`].
fn daemon_on_small_disk() -> Daemon {
    Daemon::start_in(|dir| {
        let mail = dir.join("data").join("mail");
        fs::create_dir_all(&mail).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={TMPFS_KIB}k,mode=0755"))
            .arg("tmpfs")
            .arg(&mail)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs on {}", mail.display());
        Options::default()
    })
}

/// Fills the file system of `dir` up to its last `free_pages` pages; returns the filler.
fn fill(dir: &Path, free_pages: u64) -> PathBuf {
    let path = dir.join("filler");
    let mut f = File::create(&path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    // Bounded: the file system holds at most TMPFS_KIB.
    for _ in 0..=(TMPFS_KIB / 64 + 2) {
        match f.write(&chunk) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling: {e}"),
        }
    }
    assert_eq!(
        f.write(&chunk).unwrap_err().raw_os_error(),
        Some(libc::ENOSPC),
        "the file system is full"
    );
    let len = f.metadata().unwrap().len();
    f.set_len(len - free_pages * 4096).unwrap();
    path
}

// ---------------------------------------------------------------------------------------
// Full disk.

#[test]
fn refused_append_on_a_full_disk_leaves_nothing_and_locks_heal() {
    if !inside_private_mounts("refused_append_on_a_full_disk_leaves_nothing_and_locks_heal") {
        return;
    }
    let d = daemon_on_small_disk();
    let mail = d.data_dir().join("mail");
    let inbox = mail.join(USER);
    let mut c = Imap::login(d.imap.unwrap());
    assert_eq!(c.select("INBOX"), 0);
    assert!(c.append("INBOX", &message("before")).contains(" OK"));
    let cur_before = names(&inbox.join("cur"));
    assert_eq!(cur_before.len(), 1);

    // Free pages → the step that runs out of space, as the daemon log names it: the message
    // file in tmp/, the dot-lock's temp file, the uidlist's temp file.
    let steps = [
        (0, format!("{}/tmp/", inbox.display())),
        (1, "dovecot-uidlist.lock.tmp.".to_string()),
        (2, "dovecot-uidlist.tmp.".to_string()),
    ];
    for (free, step) in steps {
        let filler = fill(&mail, free);
        let logged = d.log_count(&step);
        let done = c.append("INBOX", &message(&format!("refused {free}")));
        assert!(
            done.contains("NO [OVERQUOTA]"),
            "{free} free pages: {done}\n{}",
            d.log_text()
        );
        d.wait_log_more(&step, logged, PROMPT);
        assert_eq!(
            names(&inbox.join("cur")),
            cur_before,
            "{free}: nothing in cur/"
        );
        assert_eq!(
            names(&inbox.join("tmp")),
            Vec::<String>::new(),
            "{free}: tmp/"
        );
        assert_eq!(
            names(&inbox.join("new")),
            Vec::<String>::new(),
            "{free}: new/"
        );
        assert!(
            !inbox.join("dovecot-uidlist.lock").exists(),
            "{free}: no lock is left"
        );
        assert_eq!(temps(&inbox), Vec::<String>::new(), "{free}: temp files");
        fs::remove_file(filler).unwrap();
        // Space is back: the refused message does not come back.
        let (lines, done) = c.run("NOOP");
        assert!(done.contains(" OK"), "{done}");
        assert!(
            !lines.iter().any(|l| l.ends_with(" EXISTS")),
            "{free}: {lines:?}"
        );
    }

    // A delivery the next SELECT must number under the lock: answered at once.
    common::deliver(&d.data_dir(), USER, 1, &message("delivered"));
    let mut c2 = Imap::login(d.imap.unwrap());
    assert_eq!(c2.select("INBOX"), 2);
    // The client retries its APPEND: exactly one copy.
    assert!(c2.append("INBOX", &message("retried")).contains(" OK"));
    assert_eq!(c2.select("INBOX"), 3);
    assert_eq!(c2.subjects(), ["before", "delivered", "retried"]);
    assert!(!inbox.join("dovecot-uidlist.lock").exists());
}

#[test]
fn refused_copy_and_move_on_a_full_disk_leave_no_copies() {
    if !inside_private_mounts("refused_copy_and_move_on_a_full_disk_leave_no_copies") {
        return;
    }
    let d = daemon_on_small_disk();
    let mail = d.data_dir().join("mail");
    let trash = mail.join(USER).join(".Trash");
    let mut c = Imap::login(d.imap.unwrap());
    c.select("INBOX");
    for s in ["one", "two", "three"] {
        assert!(c.append("INBOX", &message(s)).contains(" OK"));
    }
    assert_eq!(c.select("INBOX"), 3);
    // Hard links need no data pages: the copies are made, then numbering them fails.
    let filler = fill(&mail, 0);
    for cmd in ["COPY 1:3 Trash", "MOVE 1:3 Trash"] {
        let (_, done) = c.run(cmd);
        assert!(done.contains("NO [OVERQUOTA]"), "{cmd}: {done}");
        assert_eq!(names(&trash.join("cur")), Vec::<String>::new(), "{cmd}");
        assert_eq!(names(&trash.join("tmp")), Vec::<String>::new(), "{cmd}");
        assert!(!trash.join("dovecot-uidlist.lock").exists(), "{cmd}");
    }
    fs::remove_file(filler).unwrap();
    assert_eq!(c.select("Trash"), 0);
    assert_eq!(c.select("INBOX"), 3, "MOVE moved nothing");
    // Retried: exactly one copy each.
    let (_, done) = c.run("COPY 1:3 Trash");
    assert!(done.contains("OK [COPYUID"), "{done}");
    assert_eq!(c.select("Trash"), 3);
    assert_eq!(c.subjects(), ["one", "two", "three"]);
}

// ---------------------------------------------------------------------------------------
// Stale and live locks.

/// A daemon with one message in INBOX and one more delivered into `new/`, so that the next
/// SELECT has to number it under the uidlist lock; returns the daemon and the lock's path.
fn daemon_needing_the_lock() -> (Daemon, PathBuf) {
    let d = Daemon::start();
    let mut c = Imap::login(d.imap.unwrap());
    c.select("INBOX");
    assert!(c.append("INBOX", &message("first")).contains(" OK"));
    c.run("LOGOUT");
    common::deliver(&d.data_dir(), USER, 1, &message("delivered"));
    let lock = d
        .data_dir()
        .join("mail")
        .join(USER)
        .join("dovecot-uidlist.lock");
    (d, lock)
}

#[test]
fn stale_locks_are_taken_over_at_once() {
    // A process that has exited: its pid is dead.
    let mut gone = Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();
    let cases: [(&str, String, Duration); 3] = [
        ("empty, 10 s old", String::new(), Duration::from_secs(10)),
        (
            "unparsable, 10 s old",
            "garbage".into(),
            Duration::from_secs(10),
        ),
        (
            "a dead process of this host",
            format!("{dead_pid}:{}", hostname()),
            Duration::ZERO,
        ),
    ];
    for (what, content, age) in cases {
        let (d, lock) = daemon_needing_the_lock();
        fs::write(&lock, &content).unwrap();
        set_age(&lock, age);
        let mut c = Imap::login(d.imap.unwrap());
        assert_eq!(c.select("INBOX"), 2, "{what}");
        assert!(!lock.exists(), "{what}");
        // APPEND takes the lock too.
        fs::write(&lock, &content).unwrap();
        set_age(&lock, age);
        assert!(
            c.append("INBOX", &message("after")).contains(" OK"),
            "{what}"
        );
        assert!(!lock.exists(), "{what}");
        assert!(
            d.log_text().contains("took over a stale dotlock"),
            "{what}: {}",
            d.log_text()
        );
    }
}

#[test]
fn live_locks_are_waited_for() {
    let mut holder = Command::new("sleep").arg("60").spawn().unwrap();
    let cases = [
        // Dovecot's or ours: the same `<pid>:<host>`; it heals when the process dies.
        (
            "a live process of this host",
            format!("{}:{}", holder.id(), hostname()),
        ),
        // Another host's: Dovecot's 2-minute rule; here its holder removes it.
        ("another host's", "4242:elsewhere.example".to_string()),
        // Empty and fresh: maybe a writer between create and write; heals after 5 s.
        ("empty and fresh", String::new()),
    ];
    for (what, content) in cases {
        let (d, lock) = daemon_needing_the_lock();
        fs::write(&lock, &content).unwrap();
        let mut c = Imap::login(d.imap.unwrap());
        let tag = c.send("SELECT INBOX");
        let early = c.wait(&tag, Instant::now() + Duration::from_secs(2));
        assert!(early.is_none(), "{what}: SELECT did not wait: {early:?}");
        assert!(lock.exists(), "{what}: the live lock was removed");
        match what {
            "a live process of this host" => {
                holder.kill().unwrap();
                holder.wait().unwrap();
            }
            "another host's" => fs::remove_file(&lock).unwrap(),
            _ => {} // ages past 5 s by itself
        }
        let (lines, done) = c
            .wait(&tag, Instant::now() + PROMPT)
            .unwrap_or_else(|| panic!("{what}: SELECT not answered after the lock healed"));
        assert!(done.contains(" OK"), "{what}: {done}");
        assert_eq!(exists(&lines), 2, "{what}");
        assert!(!lock.exists(), "{what}");
    }
}

// ---------------------------------------------------------------------------------------
// SIGKILL.

#[test]
fn killed_daemon_never_leaves_an_empty_lock() {
    let mut d = Daemon::start();
    let inbox = d.data_dir().join("mail").join(USER);
    let mut acked = 0u32;
    let mut locks_seen = 0;
    for round in 0..6u32 {
        let addr = d.imap.unwrap();
        let pid = d.pid();
        // Append in the background until the connection dies; say when appends run.
        let (running, appending) = std::sync::mpsc::channel();
        let appender = std::thread::spawn(move || {
            let mut c = Imap::login(addr);
            let mut ok = 0u32;
            for i in 0..10_000u32 {
                let msg = message(&format!("r{round} m{i}"));
                let tag = c.send(&format!("APPEND INBOX {{{}+}}\r\n{msg}", msg.len()));
                match c.wait(&tag, Instant::now() + PROMPT) {
                    Some((_, l)) if l.contains(" OK") => ok += 1,
                    _ => break, // the daemon is gone
                }
                if i == 0 {
                    let _ = running.send(());
                }
            }
            ok
        });
        appending
            .recv_timeout(Duration::from_secs(30))
            .expect("the appender got going");
        std::thread::sleep(Duration::from_millis(20 + 37 * u64::from(round)));
        d.child.kill().unwrap(); // SIGKILL at an arbitrary point of an APPEND
        d.child.wait().unwrap();
        acked += appender.join().unwrap();
        let lock = inbox.join("dovecot-uidlist.lock");
        if let Ok(content) = fs::read_to_string(&lock) {
            locks_seen += 1;
            assert_eq!(
                content,
                format!("{pid}:{}", hostname()),
                "round {round}: a lock left by SIGKILL is whole"
            );
        }
        // The next daemon on the same data: answers at once, loses nothing acknowledged.
        let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
        let config = d.config_path.clone();
        d = Daemon::spawn(dir, config, &[]);
        let mut c = Imap::login(d.imap.unwrap());
        let n = c.select("INBOX");
        assert!(
            n == acked || n == acked + 1,
            "round {round}: {n} messages, {acked} acknowledged"
        );
        acked = n;
        // APPEND needs the lock: a dead daemon's is taken over at once.
        assert!(c.append("INBOX", &message("probe")).contains(" OK"));
        acked += 1;
        assert!(!lock.exists(), "round {round}");
    }
    eprintln!("{locks_seen} of 6 kills left a (whole) lock behind");
}
