//! Concurrency and crash recovery of the Maildir++ store: several processes (this test binary
//! re-run in a child mode) and several independent store instances (separate caches, like
//! separate processes) appending at once must never produce duplicate or reused UIDs; a
//! process killed mid-append, junk in `tmp/`, files without uidlist records and stale locks
//! are recovered; MTA deliveries into `new/` are picked up.

use mailserver::store::maildir::MaildirStore;
use mailserver::store::{FlagOp, Flags, Mailbox, Store, View};
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "STORE_TEST_CHILD_ROOT";

fn uidlist_uids(maildir: &Path) -> (Vec<u32>, u32) {
    let Ok(text) = fs::read_to_string(maildir.join("dovecot-uidlist")) else {
        return (Vec::new(), 0); // not created yet
    };
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let n: u32 = header
        .split(' ')
        .find_map(|f| f.strip_prefix('N'))
        .unwrap()
        .parse()
        .unwrap();
    let uids = lines
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect();
    (uids, n)
}

fn cur_files(maildir: &Path) -> usize {
    fs::read_dir(maildir.join("cur")).unwrap().count()
}

/// Child mode: append `STORE_TEST_CHILD_COUNT` messages (or until killed) and exit.
#[test]
fn child_appender() {
    let Ok(root) = std::env::var(CHILD_ENV) else {
        return; // normal test run: nothing to do
    };
    let count: u32 = std::env::var("STORE_TEST_CHILD_COUNT")
        .unwrap()
        .parse()
        .unwrap();
    let store = MaildirStore::new(PathBuf::from(root));
    let inbox = store.user("u").unwrap().open("INBOX").unwrap();
    for i in 0..count {
        let body = format!("Subject: child {} #{i}\r\n\r\nx\r\n", std::process::id());
        inbox
            .append(body.as_bytes(), Flags::NONE, &[], None)
            .unwrap();
    }
}

fn spawn_child(root: &Path, count: u32) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_appender",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD_ENV, root)
        .env("STORE_TEST_CHILD_COUNT", count.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn two_processes_and_this_one_append_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("mail");
    // Create the tree first so the children race only on appends.
    let store = MaildirStore::new(root.clone());
    let inbox = store.user("u").unwrap().open("INBOX").unwrap();
    let mut kids = vec![spawn_child(&root, 40), spawn_child(&root, 40)];
    let mut mine = Vec::new();
    for i in 0..40 {
        let body = format!("Subject: parent #{i}\r\n\r\ny\r\n");
        mine.push(
            inbox
                .append(body.as_bytes(), Flags::NONE, &[], None)
                .unwrap(),
        );
    }
    for k in &mut kids {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = k.try_wait().unwrap() {
                assert!(status.success());
                break;
            }
            assert!(Instant::now() < deadline, "child did not finish");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let maildir = root.join("u");
    let (uids, next) = uidlist_uids(&maildir);
    assert_eq!(uids.len(), 120);
    assert_eq!(uids.iter().copied().collect::<HashSet<_>>().len(), 120);
    assert_eq!(uids, (1..=120).collect::<Vec<_>>());
    assert_eq!(next, 121);
    assert_eq!(cur_files(&maildir), 120);
    assert!(!maildir.join("dovecot-uidlist.lock").exists());
    // Our own UIDs are increasing and the view sees every message exactly once.
    assert!(mine.windows(2).all(|w| w[0] < w[1]));
    let mut view = View::default();
    inbox.sync(&mut view).unwrap();
    assert_eq!(view.messages.len(), 120);
}

#[test]
fn separate_instances_on_threads_never_share_uids() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("mail");
    MaildirStore::new(root.clone()).user("u").unwrap();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let root = root.clone();
            std::thread::spawn(move || {
                // Each thread is its own "process": its own store, registry and cache.
                let store = MaildirStore::new(root);
                let inbox = store.user("u").unwrap().open("INBOX").unwrap();
                let mut view = View::default();
                let mut got = Vec::new();
                for i in 0..25 {
                    let uid = inbox
                        .append(format!("T{t} {i}\n").as_bytes(), Flags::NONE, &[], None)
                        .unwrap();
                    got.push(uid);
                    if i % 5 == 0 {
                        inbox.sync(&mut view).unwrap();
                        inbox
                            .store_flags(&[uid], FlagOp::Add, Flags::SEEN, &[])
                            .unwrap();
                    }
                }
                inbox.sync(&mut view).unwrap();
                (got, view)
            })
        })
        .collect();
    let mut all = HashSet::new();
    for h in handles {
        let (got, view) = h.join().unwrap();
        for u in got {
            assert!(all.insert(u), "UID {u} handed out twice");
        }
        // Every view is in strict UID order, and it saw at least its own messages.
        assert!(view.messages.windows(2).all(|w| w[0].uid < w[1].uid));
        assert!(view.messages.len() >= 25);
    }
    assert_eq!(all.len(), 100);
    let (uids, next) = uidlist_uids(&root.join("u"));
    assert_eq!(uids, (1..=100).collect::<Vec<_>>());
    assert_eq!(next, 101);
    // A fresh instance sees all 100 with the seen flags set by the others.
    let store = MaildirStore::new(root);
    let inbox = store.user("u").unwrap().open("INBOX").unwrap();
    let mut view = View::default();
    inbox.sync(&mut view).unwrap();
    assert_eq!(view.messages.len(), 100);
    assert_eq!(
        view.messages
            .iter()
            .filter(|m| m.flags.contains(Flags::SEEN))
            .count(),
        20
    );
}

#[test]
fn killed_appender_leaves_a_consistent_mailbox() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("mail");
    MaildirStore::new(root.clone()).user("u").unwrap();
    let maildir = root.join("u");
    let mut child = spawn_child(&root, 100_000);
    let deadline = Instant::now() + Duration::from_secs(60);
    while uidlist_uids(&maildir).0.len() < 30 {
        assert!(Instant::now() < deadline, "child made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL at an arbitrary point of an append
    child.wait().unwrap();
    let (before, n_before) = uidlist_uids(&maildir);

    // The lock may be left behind by the dead process: it must not block us.
    let store = MaildirStore::new(root.clone());
    let inbox = store.user("u").unwrap().open("INBOX").unwrap();
    let mut view = View::default();
    inbox.sync(&mut view).unwrap();
    let files = cur_files(&maildir);
    assert_eq!(view.messages.len(), files, "every file in cur/ has a UID");
    let uids: Vec<u32> = view.messages.iter().map(|m| m.uid).collect();
    assert!(uids.windows(2).all(|w| w[0] < w[1]));
    // Recorded UIDs kept their numbers; anything new got numbers above the old N.
    assert_eq!(&uids[..before.len()], &before[..]);
    assert!(uids[before.len()..].iter().all(|&u| u >= n_before));
    for m in &view.messages {
        let data = inbox.read(m.uid).unwrap();
        assert_eq!(data.len() as u64, m.size, "no half message is visible");
    }
    let next = inbox.append(b"after\n", Flags::NONE, &[], None).unwrap();
    assert!(next > *uids.last().unwrap());
    assert!(!maildir.join("dovecot-uidlist.lock").exists());
}

#[test]
fn crash_leftovers_are_recovered() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("mail");
    let maildir = root.join("u");
    {
        let store = MaildirStore::new(root.clone());
        let inbox = store.user("u").unwrap().open("INBOX").unwrap();
        inbox.append(b"one\n", Flags::NONE, &[], None).unwrap();
        inbox.append(b"two\n", Flags::NONE, &[], None).unwrap();
    }
    // 1. A crash before the rename: a file in tmp/ (never visible).
    fs::write(maildir.join("tmp/1700000000.M1P1Q1.host,S=4,W=5"), "half").unwrap();
    // 2. A crash after the rename but before the uidlist update: a file in cur/ without
    //    a record, and a uidlist whose N is ahead of its records (UID 3 was handed out and
    //    its file lost): UID 3 must not come back.
    fs::write(
        maildir.join("cur/1700000001.M2P2Q2.host,S=6,W=7:2,S"),
        "three\n",
    )
    .unwrap();
    let ul = fs::read_to_string(maildir.join("dovecot-uidlist")).unwrap();
    let ul = ul.replacen(" N3 ", " N4 ", 1);
    fs::write(maildir.join("dovecot-uidlist"), ul).unwrap();
    // 3. A stale lock of a dead process.
    fs::write(
        maildir.join("dovecot-uidlist.lock"),
        format!(
            "99999999:{}",
            fs::read_to_string("/proc/sys/kernel/hostname")
                .unwrap()
                .trim()
        ),
    )
    .unwrap();
    // 4. Junk that is not a message.
    fs::write(maildir.join("cur/.nfs000"), "junk").unwrap();

    let store: Arc<dyn Store> = Arc::new(MaildirStore::new(root.clone()));
    let inbox = store.user("u").unwrap().open("INBOX").unwrap();
    let mut view = View::default();
    inbox.sync(&mut view).unwrap();
    let got: Vec<(u32, Flags)> = view.messages.iter().map(|m| (m.uid, m.flags)).collect();
    assert_eq!(
        got,
        vec![(1, Flags::NONE), (2, Flags::NONE), (4, Flags::SEEN)]
    );
    assert_eq!(&*inbox.read(4).unwrap(), b"three\r\n");
    assert_eq!(inbox.append(b"five\n", Flags::NONE, &[], None).unwrap(), 5);
    assert!(!maildir.join("dovecot-uidlist.lock").exists());
    assert_eq!(uidlist_uids(&maildir), (vec![1, 2, 4, 5], 6));
}

#[test]
fn mta_delivery_into_new_is_picked_up_and_announced() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("mail");
    let store: Arc<dyn Store> = Arc::new(MaildirStore::new(root.clone()));
    let inbox: Arc<dyn Mailbox> = store.user("u").unwrap().open("INBOX").unwrap();
    let mut view = View::default();
    inbox.sync(&mut view).unwrap();
    let mut rx = inbox.changes();
    rx.borrow_and_update();

    let maildir = root.join("u");
    // Two deliveries (as an MTA writes them: tmp/ then rename to new/, no S=/W=), the later
    // one written first: UIDs follow the delivery time in the names.
    for (name, body) in [
        ("1700000200.M5P9.mx", "Subject: second\n\nb\n"),
        ("1700000100.M7P9.mx", "Subject: first\n\na\n"),
    ] {
        let t = maildir.join("tmp").join(name);
        fs::write(&t, body).unwrap();
        fs::rename(&t, maildir.join("new").join(name)).unwrap();
    }
    // inotify reports it (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !rx.has_changed().unwrap() {
        assert!(Instant::now() < deadline, "no inotify change seen");
        std::thread::sleep(Duration::from_millis(10));
    }
    let ch = inbox.sync(&mut view).unwrap();
    assert_eq!(ch.added, 2);
    assert!(view.messages.iter().all(|m| m.recent));
    assert_eq!(&*inbox.read(1).unwrap(), b"Subject: first\r\n\r\na\r\n");
    assert_eq!(view.messages[0].size, 21);
    assert_eq!(&*inbox.read(2).unwrap(), b"Subject: second\r\n\r\nb\r\n");
    // Moved to cur/ with an empty info, as Dovecot does.
    assert_eq!(fs::read_dir(maildir.join("new")).unwrap().count(), 0);
    let mut cur: Vec<String> = fs::read_dir(maildir.join("cur"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    cur.sort();
    assert_eq!(cur, ["1700000100.M7P9.mx:2,", "1700000200.M5P9.mx:2,"]);
    // The computed size is cached in the uidlist (W field), not recomputed from the body.
    let ul = fs::read_to_string(maildir.join("dovecot-uidlist")).unwrap();
    assert!(ul.contains("1 W21 :1700000100.M7P9.mx\n"), "{ul}");
}

#[test]
fn views_in_separate_instances_see_each_other_through_sync() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("mail");
    // Two stores = two processes: separate caches and registries, one recent floor on disk.
    let a = MaildirStore::new(root.clone());
    let b = MaildirStore::new(root.clone());
    let ma = a.user("u").unwrap().open("INBOX").unwrap();
    let mb = b.user("u").unwrap().open("INBOX").unwrap();
    let (mut va, mut vb) = (View::default(), View::default());
    ma.sync(&mut va).unwrap();
    mb.sync(&mut vb).unwrap();
    assert_eq!(va.uid_validity, vb.uid_validity);

    let u1 = ma.append(b"one\n", Flags::NONE, &[], None).unwrap();
    let u2 = mb
        .append(b"two\n", Flags::NONE, &["K".into()], None)
        .unwrap();
    assert_eq!((u1, u2), (1, 2));
    assert_eq!(ma.sync(&mut va).unwrap().added, 2);
    assert_eq!(mb.sync(&mut vb).unwrap().added, 2);
    assert_eq!(va.messages[1].keywords, ["K"]);

    mb.store_flags(&[u1], FlagOp::Add, Flags::SEEN, &["K".into()])
        .unwrap();
    let ch = ma.sync(&mut va).unwrap();
    assert_eq!(ch.flags_changed, vec![u1]);
    assert_eq!(va.messages[0].flags, Flags::SEEN);
    assert_eq!(va.messages[0].keywords, ["K"]);

    ma.store_flags(&[u1], FlagOp::Add, Flags::DELETED, &[])
        .unwrap();
    assert_eq!(ma.expunge(None).unwrap(), vec![u1]);
    let ch = mb.sync(&mut vb).unwrap();
    assert_eq!(ch.expunged, vec![1]);
    assert_eq!(vb.messages.iter().map(|m| m.uid).collect::<Vec<_>>(), [u2]);
    // Reading a message the other instance renamed (flag change) still works.
    ma.sync(&mut va).unwrap();
    mb.store_flags(&[u2], FlagOp::Add, Flags::FLAGGED, &[])
        .unwrap();
    assert_eq!(&*ma.read(u2).unwrap(), b"two\r\n");
    // \Recent goes to the first view that synced the messages, whichever process it is
    // in (issue #14: `mailserver.recent` is shared): A synced first.
    assert!(va.messages.iter().all(|m| m.recent));
    assert!(vb.messages.iter().all(|m| !m.recent));
}

#[test]
fn uidvalidity_change_resets_views() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("mail");
    let store: Arc<dyn Store> = Arc::new(MaildirStore::new(root.clone()));
    let inbox = store.user("u").unwrap().open("INBOX").unwrap();
    for i in 0..3 {
        inbox
            .append(format!("m{i}\n").as_bytes(), Flags::NONE, &[], None)
            .unwrap();
    }
    let mut view = View::default();
    inbox.sync(&mut view).unwrap();
    let old_validity = view.uid_validity;
    // Another tool recreates the uidlist with a new UIDVALIDITY (as Dovecot does when it
    // finds the file broken): every session must drop its UIDs and start over.
    let maildir = root.join("u");
    let text = fs::read_to_string(maildir.join("dovecot-uidlist")).unwrap();
    let text = text.replacen(&format!("V{old_validity} "), "V12345 ", 1);
    fs::write(maildir.join("dovecot-uidlist"), text).unwrap();
    let ch = inbox.sync(&mut view).unwrap();
    assert_eq!(ch.expunged, vec![1, 1, 1]);
    assert_eq!(ch.added, 3);
    assert_eq!(view.uid_validity, 12345);
    assert_eq!(view.messages.len(), 3);
}
