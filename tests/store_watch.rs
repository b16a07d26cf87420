//! The inotify watcher behind `Mailbox::changes()`: one per mailbox however many sessions
//! watch it, created on the first `changes()` call and dropped with the mailbox.
//! (Its own test binary: it counts this process's inotify descriptors.)

use mailserver::store::maildir::MaildirStore;
use mailserver::store::{Flags, Store};
use std::fs;
use std::sync::Arc;
#[path = "common/wait.rs"]
mod wait;

fn inotify_fds() -> usize {
    fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t.to_string_lossy().contains("inotify"))
        .count()
}

#[test]
fn one_lazy_watcher_per_mailbox() {
    let tmp = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(MaildirStore::new(tmp.path().join("mail")));
    let before = inotify_fds();
    let s1 = store.user("u").unwrap().open("INBOX").unwrap();
    let s2 = store.user("u").unwrap().open("INBOX").unwrap();
    s1.append(b"x\n", Flags::NONE, &[], None).unwrap();
    assert_eq!(
        inotify_fds(),
        before,
        "no watcher before the first changes()"
    );
    let mut r1 = s1.changes();
    let r2 = s2.changes();
    let _r3 = s1.changes();
    assert_eq!(
        inotify_fds(),
        before + 1,
        "one watcher shared by every session"
    );
    // It reports a delivery by someone else.
    r1.borrow_and_update();
    fs::write(tmp.path().join("mail/u/new/1.M1P1.mx"), "y\n").unwrap();
    wait::wait_until(
        "the change to be reported",
        wait::WAIT,
        || r1.has_changed().unwrap(),
        || "no change".into(),
    );
    drop((s1, s2, r1, r2, _r3));
    wait::wait_until(
        "the watcher to be dropped with the mailbox",
        wait::WAIT,
        || inotify_fds() == before,
        || format!("{} inotify fds, {before} before", inotify_fds()),
    );
}
