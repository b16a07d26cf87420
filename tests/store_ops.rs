//! Every `Store`/`UserStore`/`Mailbox` operation of the Maildir++ backend, on real files in a
//! tempdir, checking both the API answers and what lands on disk (Dovecot's formats).

use mailserver::store::maildir::MaildirStore;
use mailserver::store::{ErrorKind, FlagOp, Flags, SpecialUse, Store, View};
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MSG: &[u8] = b"From: a@example.org\r\nSubject: hi\r\n\r\nbody line\r\n";

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn first_use_creates_inbox_and_special_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(MaildirStore::new(tmp.path().join("mail")));
    let user = store.user("alice").unwrap();
    let root = tmp.path().join("mail/alice");
    for d in ["cur", "new", "tmp"] {
        assert!(root.join(d).is_dir());
    }
    for f in ["Drafts", "Sent", "Trash", "Junk", "Archive"] {
        let dir = root.join(format!(".{f}"));
        assert!(dir.join("cur").is_dir() && dir.join("maildirfolder").exists());
        let ul = fs::read_to_string(dir.join("dovecot-uidlist")).unwrap();
        assert!(ul.starts_with("3 V") && ul.contains(" N1 G"), "{ul}");
    }
    let subs = fs::read_to_string(root.join("subscriptions")).unwrap();
    assert!(subs.starts_with("V\t2\n\n"));
    // Private modes, as Dovecot creates them.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root), 0o700);
    assert_eq!(mode(&root.join(".Sent/cur")), 0o700);
    assert_eq!(mode(&root.join("subscriptions")), 0o600);
    let inbox = user.open("INBOX").unwrap();
    inbox.append(MSG, Flags::NONE, &[], None).unwrap();
    let name = &files(&root.join("cur"))[0];
    assert_eq!(mode(&root.join("cur").join(name)), 0o600);
    assert_eq!(mode(&root.join("dovecot-uidlist")), 0o600);
    // A group-shared tree keeps being group-shared.
    fs::set_permissions(&root, fs::Permissions::from_mode(0o770)).unwrap();
    fs::set_permissions(root.join("cur"), fs::Permissions::from_mode(0o770)).unwrap();
    user.create("Shared").unwrap();
    assert_eq!(mode(&root.join(".Shared/cur")), 0o770);
    inbox.append(MSG, Flags::NONE, &[], None).unwrap();
    let shared: Vec<u32> = files(&root.join("cur"))
        .iter()
        .map(|n| mode(&root.join("cur").join(n)))
        .collect();
    assert!(shared.contains(&0o660), "{shared:?}");
    user.delete("Shared").unwrap();
    drop(inbox);
    let list = user.list().unwrap();
    let names: Vec<&str> = list.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        ["INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"]
    );
    let sent = list.iter().find(|m| m.name == "Sent").unwrap();
    assert_eq!(sent.special_use, Some(SpecialUse::Sent));
    assert!(sent.subscribed && !sent.no_select && !sent.has_children);
    // Folder UIDVALIDITYs differ even when made in the same second.
    let mut vals: Vec<u32> = names
        .iter()
        .map(|n| user.status(n).unwrap().uid_validity)
        .collect();
    vals.sort();
    vals.dedup();
    assert_eq!(vals.len(), names.len());
    // A second `user()` does not recreate anything or change UIDVALIDITY.
    let before = user.status("Sent").unwrap().uid_validity;
    let user2 = store.user("alice").unwrap();
    assert_eq!(user2.status("Sent").unwrap().uid_validity, before);
    assert!(store.user("../etc").is_err());
    assert!(store.user("").is_err());
}

#[test]
fn append_read_sync_flags_keywords() {
    let tmp = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(MaildirStore::new(tmp.path().join("mail")));
    let user = store.user("bob").unwrap();
    let inbox = user.open("INBOX").unwrap();
    assert_eq!(inbox.name(), "INBOX");
    let date = UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    let u1 = inbox.append(MSG, Flags::SEEN, &[], Some(date)).unwrap();
    let u2 = inbox
        .append(
            b"bare\nlf\n",
            Flags::NONE,
            &["$Forwarded".into(), "Junk".into()],
            None,
        )
        .unwrap();
    assert_eq!((u1, u2), (1, 2));

    let mut view = View::default();
    let ch = inbox.sync(&mut view).unwrap();
    assert_eq!((ch.added, ch.expunged.len()), (2, 0));
    assert_eq!(view.uid_next, 3);
    let m1 = &view.messages[0];
    assert_eq!(m1.flags, Flags::SEEN);
    assert_eq!(m1.size, MSG.len() as u64);
    assert_eq!(m1.internal_date, date);
    assert!(m1.recent);
    let m2 = &view.messages[1];
    assert_eq!(m2.keywords, ["$Forwarded", "Junk"]);
    assert_eq!(m2.size, 10); // "bare\r\nlf\r\n"

    assert_eq!(&*inbox.read(u1).unwrap(), MSG);
    assert_eq!(&*inbox.read(u2).unwrap(), b"bare\r\nlf\r\n");
    assert_eq!(inbox.read(99).unwrap_err().kind, ErrorKind::NotFound);

    // On disk: LF line endings, Dovecot names with S= and W=, keywords as letters.
    let root = tmp.path().join("mail/bob");
    let cur = files(&root.join("cur"));
    assert_eq!(cur.len(), 2);
    assert!(cur
        .iter()
        .any(|n| n.ends_with(&format!(",S={},W={}:2,S", MSG.len() - 4, MSG.len()))));
    assert!(cur.iter().any(|n| n.ends_with(":2,ab")), "{cur:?}");
    assert_eq!(
        fs::read_to_string(root.join("dovecot-keywords")).unwrap(),
        "0 $Forwarded\n1 Junk\n"
    );
    let ul = fs::read_to_string(root.join("dovecot-uidlist")).unwrap();
    let lines: Vec<&str> = ul.lines().collect();
    assert!(
        lines[0].starts_with("3 V") && lines[0].contains(" N3 G"),
        "{ul}"
    );
    assert!(lines[1].starts_with("1 :") && lines[2].starts_with("2 :"));
    assert!(!ul.contains(":2,"));

    // STORE semantics.
    let r = inbox
        .store_flags(&[u1, u2], FlagOp::Add, Flags::FLAGGED, &["Work".into()])
        .unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].flags, Flags::SEEN.union(Flags::FLAGGED));
    assert_eq!(r[0].keywords, ["Work"]);
    let r = inbox
        .store_flags(&[u2], FlagOp::Remove, Flags::NONE, &["junk".into()])
        .unwrap();
    assert_eq!(r[0].keywords, ["$Forwarded", "Work"]);
    let r = inbox
        .store_flags(&[u1], FlagOp::Replace, Flags::ANSWERED, &[])
        .unwrap();
    assert_eq!((r[0].flags, r[0].keywords.len()), (Flags::ANSWERED, 0));
    // Non-atoms never reach dovecot-keywords.
    inbox
        .store_flags(
            &[u1],
            FlagOp::Add,
            Flags::NONE,
            &["bad word".into(), "a\nb".into()],
        )
        .unwrap();
    assert_eq!(
        fs::read_to_string(root.join("dovecot-keywords")).unwrap(),
        "0 $Forwarded\n1 Junk\n2 Work\n"
    );
    assert!(inbox
        .store_flags(&[42], FlagOp::Add, Flags::SEEN, &[])
        .unwrap()
        .is_empty());
    let ch = inbox.sync(&mut view).unwrap();
    assert_eq!(ch.flags_changed, vec![u1, u2]);
    assert_eq!((ch.added, ch.expunged.len()), (0, 0));
    assert_eq!(view.messages[0].flags, Flags::ANSWERED);
    // A sync with nothing new reports nothing.
    assert_eq!(inbox.sync(&mut view).unwrap(), Default::default());
    // Contents survive renames.
    assert_eq!(&*inbox.read(u1).unwrap(), MSG);
    let names = files(&root.join("cur"));
    assert!(names.iter().any(|n| n.ends_with(":2,R")), "{names:?}");
    assert!(names.iter().any(|n| n.ends_with(":2,Fac")), "{names:?}");

    let st = user.status("INBOX").unwrap();
    assert_eq!((st.messages, st.uid_next, st.unseen), (2, 3, 2));
    assert_eq!(st.recent, 0, "both were claimed by the view");
}

#[test]
fn expunge_remove_copy_move() {
    let tmp = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(MaildirStore::new(tmp.path().join("mail")));
    let user = store.user("carol").unwrap();
    let inbox = user.open("INBOX").unwrap();
    let trash = user.open("Trash").unwrap();
    let date = UNIX_EPOCH + Duration::from_secs(1_500_000_000);
    for i in 0..5u32 {
        let kws = if i == 0 {
            vec!["Tag".to_string()]
        } else {
            vec![]
        };
        inbox
            .append(
                format!("Subject: {i}\n\nx\n").as_bytes(),
                Flags::NONE,
                &kws,
                Some(date),
            )
            .unwrap();
    }
    let mut view = View::default();
    inbox.sync(&mut view).unwrap();

    // COPY keeps flags, keywords (by name, re-indexed in the target) and INTERNALDATE.
    inbox
        .store_flags(&[1], FlagOp::Add, Flags::FLAGGED, &[])
        .unwrap();
    let pairs = inbox.copy_to(&[1, 2, 77], &*trash).unwrap();
    assert_eq!(pairs, vec![(1, 1), (2, 2)]);
    let mut tview = View::default();
    trash.sync(&mut tview).unwrap();
    assert_eq!(tview.messages.len(), 2);
    assert_eq!(tview.messages[0].flags, Flags::FLAGGED);
    assert_eq!(tview.messages[0].keywords, ["Tag"]);
    assert_eq!(tview.messages[0].internal_date, date);
    assert_eq!(&*trash.read(1).unwrap(), &*inbox.read(1).unwrap());
    // Hard link: same inode.
    use std::os::unix::fs::MetadataExt;
    let root = tmp.path().join("mail/carol");
    let linked = files(&root.join("cur"))
        .iter()
        .filter(|n| fs::metadata(root.join("cur").join(n)).unwrap().nlink() == 2)
        .count();
    assert_eq!(linked, 2, "both copies share their source's inode");

    // MOVE removes from the source.
    let pairs = inbox.move_to(&[3], &*trash).unwrap();
    assert_eq!(pairs, vec![(3, 3)]);
    let ch = inbox.sync(&mut view).unwrap();
    assert_eq!(ch.expunged, vec![3]);

    // EXPUNGE only \Deleted (and only the given UIDs when given).
    inbox
        .store_flags(&[1, 4, 5], FlagOp::Add, Flags::DELETED, &[])
        .unwrap();
    assert_eq!(inbox.expunge(Some(&[4, 2])).unwrap(), vec![4]);
    assert_eq!(inbox.expunge(None).unwrap(), vec![1, 5]);
    let ch = inbox.sync(&mut view).unwrap();
    // View was [1,2,4,5]: 1 goes (seq 1), then 4 is seq 2, then 5 is seq 2.
    assert_eq!(ch.expunged, vec![1, 2, 2]);
    assert_eq!(
        view.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![2]
    );
    // POP3 removal ignores flags.
    inbox.remove(&[2]).unwrap();
    inbox.sync(&mut view).unwrap();
    assert!(view.messages.is_empty());
    assert!(files(&root.join("cur")).is_empty());
    let ul = fs::read_to_string(root.join("dovecot-uidlist")).unwrap();
    assert_eq!(ul.lines().count(), 1, "{ul}");
    // UIDs are never reused after expunges.
    assert_eq!(inbox.append(MSG, Flags::NONE, &[], None).unwrap(), 6);
}

#[test]
fn mailbox_management_and_subscriptions() {
    let tmp = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(MaildirStore::new(tmp.path().join("mail")));
    let user = store.user("dave").unwrap();
    let root = tmp.path().join("mail/dave");
    user.create("Projects/Caf\u{e9}").unwrap();
    assert!(root.join(".Projects.Caf&AOk-/cur").is_dir());
    assert_eq!(
        user.create("Projects/Caf\u{e9}").unwrap_err().kind,
        ErrorKind::Exists
    );
    assert_eq!(user.create("inbox").unwrap_err().kind, ErrorKind::Exists);
    assert!(user.create("a.b").is_err());
    // A stray `.Name` directory that is not a Maildir lists as \Noselect.
    fs::create_dir(root.join(".Stray")).unwrap();
    let stray = user.list().unwrap();
    assert!(stray.iter().any(|m| m.name == "Stray" && m.no_select));
    fs::remove_dir(root.join(".Stray")).unwrap();

    let list = user.list().unwrap();
    let p = list.iter().find(|m| m.name == "Projects").unwrap();
    assert!(p.no_select && p.has_children);
    let c = list
        .iter()
        .find(|m| m.name == "Projects/Caf\u{e9}")
        .unwrap();
    assert!(!c.no_select && !c.has_children && !c.subscribed);

    user.subscribe("Projects/Caf\u{e9}", true).unwrap();
    let subs = fs::read_to_string(root.join("subscriptions")).unwrap();
    assert!(subs.contains("\nProjects\tCaf&AOk-\n"), "{subs:?}");

    let mb = user.open("Projects/Caf\u{e9}").unwrap();
    let uid = mb.append(MSG, Flags::NONE, &[], None).unwrap();
    let validity = user.status("Projects/Caf\u{e9}").unwrap().uid_validity;
    drop(mb);
    user.rename("Projects", "Work/Old").unwrap();
    assert!(root.join(".Work.Old.Caf&AOk-/cur").is_dir());
    let st = user.status("Work/Old/Caf\u{e9}").unwrap();
    assert_eq!((st.messages, st.uid_validity), (1, validity));
    let list = user.list().unwrap();
    let c = list
        .iter()
        .find(|m| m.name == "Work/Old/Caf\u{e9}")
        .unwrap();
    assert!(c.subscribed, "subscription follows the rename");
    assert!(list.iter().all(|m| !m.name.starts_with("Projects")));
    let mb = user.open("Work/Old/Caf\u{e9}").unwrap();
    assert_eq!(&*mb.read(uid).unwrap(), MSG);

    assert_eq!(
        user.rename("Sent", "Trash").unwrap_err().kind,
        ErrorKind::Exists
    );
    assert_eq!(
        user.rename("Nope", "X").unwrap_err().kind,
        ErrorKind::NotFound
    );
    assert!(user.rename("Work", "Work/Sub").is_err());

    // Renaming INBOX moves its messages; INBOX stays.
    let inbox = user.open("INBOX").unwrap();
    inbox.append(MSG, Flags::SEEN, &[], None).unwrap();
    user.rename("INBOX", "Old Inbox").unwrap();
    assert_eq!(user.status("INBOX").unwrap().messages, 0);
    assert_eq!(user.status("Old Inbox").unwrap().messages, 1);

    user.delete("Work/Old/Caf\u{e9}").unwrap();
    assert_eq!(
        user.open("Work/Old/Caf\u{e9}").err().unwrap().kind,
        ErrorKind::NotFound
    );
    assert_eq!(user.delete("Nope").unwrap_err().kind, ErrorKind::NotFound);
    assert_eq!(
        user.delete("INBOX").unwrap_err().kind,
        ErrorKind::NoPermission
    );
    assert!(user
        .list()
        .unwrap()
        .iter()
        .all(|m| !m.name.starts_with("Work")));
    assert!(files(&root).iter().all(|n| !n.starts_with("..")));
}

#[test]
fn open_returns_one_shared_handle_and_recent_once() {
    let tmp = tempfile::tempdir().unwrap();
    let store = MaildirStore::new(tmp.path().join("mail"));
    use mailserver::store::Store;
    let user = store.user("erin").unwrap();
    let a = user.open("INBOX").unwrap();
    let b = user.open("inbox").unwrap();
    assert!(std::ptr::addr_eq(
        std::sync::Arc::as_ptr(&a),
        std::sync::Arc::as_ptr(&b)
    ));
    a.append(MSG, Flags::NONE, &[], None).unwrap();
    assert_eq!(user.status("INBOX").unwrap().recent, 1);
    let (mut va, mut vb) = (View::default(), View::default());
    a.sync(&mut va).unwrap();
    b.sync(&mut vb).unwrap();
    assert!(va.messages[0].recent);
    assert!(!vb.messages[0].recent, "\\Recent goes to exactly one view");
    // Closing every handle and opening again does not hand out \Recent again.
    drop((a, b));
    let c = user.open("INBOX").unwrap();
    let mut vc = View::default();
    c.sync(&mut vc).unwrap();
    assert!(!vc.messages[0].recent);
}

#[test]
fn sessions_see_each_others_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(MaildirStore::new(tmp.path().join("mail")));
    let s1 = store.user("fay").unwrap().open("INBOX").unwrap();
    let s2 = store.user("fay").unwrap().open("INBOX").unwrap();
    let (mut v1, mut v2) = (View::default(), View::default());
    s1.sync(&mut v1).unwrap();
    s2.sync(&mut v2).unwrap();
    let mut rx = s2.changes();
    let seen = *rx.borrow_and_update();
    let uid = s1.append(MSG, Flags::NONE, &[], None).unwrap();
    assert!(rx.has_changed().unwrap(), "local write bumps changes()");
    assert_ne!(*rx.borrow_and_update(), seen);
    let ch = s2.sync(&mut v2).unwrap();
    assert_eq!(ch.added, 1);
    s1.store_flags(&[uid], FlagOp::Add, Flags::SEEN, &[])
        .unwrap();
    assert_eq!(s2.sync(&mut v2).unwrap().flags_changed, vec![uid]);
    s1.sync(&mut v1).unwrap();
    s1.remove(&[uid]).unwrap();
    assert_eq!(s2.sync(&mut v2).unwrap().expunged, vec![1]);
    assert_eq!(s1.sync(&mut v1).unwrap().expunged, vec![1]);
    let _ = SystemTime::now();
}

#[test]
fn copy_falls_back_to_copying_across_file_systems() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let shm = Path::new("/dev/shm");
    let other_fs = shm.is_dir()
        && fs::metadata(shm).map(|m| m.dev()).ok()
            != fs::metadata(tmp.path()).map(|m| m.dev()).ok();
    if !other_fs {
        eprintln!("SKIPPED: /dev/shm is not a separate file system here");
        return;
    }
    let elsewhere = tempfile::tempdir_in(shm).unwrap();
    let store: Arc<dyn Store> = Arc::new(MaildirStore::new(tmp.path().join("mail")));
    let user = store.user("gus").unwrap();
    // A folder whose directory lives on another file system: hard links fail with EXDEV.
    let root = tmp.path().join("mail/gus");
    let target = elsewhere.path().join("Far");
    fs::create_dir(&target).unwrap();
    for d in ["cur", "new", "tmp"] {
        fs::create_dir(target.join(d)).unwrap();
    }
    std::os::unix::fs::symlink(&target, root.join(".Far")).unwrap();
    let inbox = user.open("INBOX").unwrap();
    let date = UNIX_EPOCH + Duration::from_secs(1_400_000_000);
    let uid = inbox
        .append(MSG, Flags::SEEN, &["K".into()], Some(date))
        .unwrap();
    let far = user.open("Far").unwrap();
    let pairs = inbox.copy_to(&[uid], &*far).unwrap();
    assert_eq!(pairs, vec![(uid, 1)]);
    let mut view = View::default();
    far.sync(&mut view).unwrap();
    let m = &view.messages[0];
    assert_eq!(
        (m.flags, m.keywords.clone(), m.internal_date),
        (Flags::SEEN, vec!["K".to_string()], date)
    );
    assert_eq!(&*far.read(1).unwrap(), MSG);
    let name = &files(&target.join("cur"))[0];
    assert_eq!(
        fs::metadata(target.join("cur").join(name)).unwrap().nlink(),
        1
    );
}

/// After our own flag change (whose `cur/` stamp the store takes without rescanning), a
/// change another process makes in the same clock tick leaves `cur/` with the same stamp.
/// The store must still find it, by the delayed recheck, within about a second (Dovecot's
/// MAILDIR_SYNC_SECS rule). The same tick is forced by putting `cur/`'s mtime back.
#[test]
fn a_same_tick_outside_change_after_our_own_is_found_by_the_delayed_recheck() {
    let tmp = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(MaildirStore::new(tmp.path().join("mail")));
    let user = store.user("alice").unwrap();
    let inbox = user.open("INBOX").unwrap();
    let a = inbox.append(MSG, Flags::NONE, &[], None).unwrap();
    let b = inbox.append(MSG, Flags::NONE, &[], None).unwrap();
    let mut view = View::default();
    inbox.sync(&mut view).unwrap();
    // Let every stamp age past the slack, so the cache is fully trusted.
    std::thread::sleep(Duration::from_millis(1100));
    inbox.sync(&mut view).unwrap();
    inbox
        .store_flags(&[a], FlagOp::Add, Flags::FLAGGED, &[])
        .unwrap();
    let cur = tmp.path().join("mail/alice/cur");
    let mtime = fs::metadata(&cur).unwrap().modified().unwrap();
    // Another process marks `b` seen, in "the same tick".
    let name_b = files(&cur).into_iter().find(|n| !n.ends_with('F')).unwrap();
    let seen = format!("{}S", name_b);
    fs::rename(cur.join(&name_b), cur.join(&seen)).unwrap();
    fs::File::open(&cur).unwrap().set_modified(mtime).unwrap();
    let started = std::time::Instant::now();
    let mut found = false;
    while started.elapsed() < Duration::from_secs(5) {
        inbox.sync(&mut view).unwrap();
        let m = &view.messages[view.seq_of(b).unwrap() as usize - 1];
        if m.flags.contains(Flags::SEEN) {
            found = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(found, "the outside change was never seen");
    // Our own change stayed.
    assert!(view.messages[0].flags.contains(Flags::FLAGGED));
}

/// A dropped handle parks its caches for the next handle of the folder; what changed on
/// disk meanwhile is still found, and a folder deleted and made again starts empty.
#[test]
fn a_reopened_folder_sees_what_changed_while_it_was_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(MaildirStore::new(tmp.path().join("mail")));
    let user = store.user("alice").unwrap();
    let root = tmp.path().join("mail/alice");
    let inbox = user.open("INBOX").unwrap();
    let a = inbox.append(MSG, Flags::NONE, &[], None).unwrap();
    let b = inbox.append(MSG, Flags::NONE, &[], None).unwrap();
    let mut view = View::default();
    inbox.sync(&mut view).unwrap();
    drop(inbox);
    // While closed: another program removes `a` and delivers into new/.
    // `a`'s file by its uidlist line (`UID [fields] :base`), not by name order: the
    // `M<usecs>` part of a name is not zero-padded.
    let uidlist = fs::read_to_string(root.join("dovecot-uidlist")).unwrap();
    let base = uidlist
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{a} ")))
        .and_then(|rest| rest.split(':').nth(1))
        .unwrap_or_else(|| panic!("UID {a} not in {uidlist}"))
        .to_string();
    let name_a = files(&root.join("cur"))
        .into_iter()
        .find(|n| n.starts_with(&base))
        .unwrap();
    fs::remove_file(root.join("cur").join(name_a)).unwrap();
    fs::write(root.join("new/1800000000.M1P1.mx"), "Subject: new\n\nx\n").unwrap();
    let inbox = user.open("INBOX").unwrap();
    let mut view = View::default();
    inbox.sync(&mut view).unwrap();
    let uids: Vec<u32> = view.messages.iter().map(|m| m.uid).collect();
    assert_eq!(uids, [b, b + 1], "a={a}");
    drop(inbox);

    user.create("Projects").unwrap();
    let p = user.open("Projects").unwrap();
    p.append(MSG, Flags::NONE, &[], None).unwrap();
    let mut v = View::default();
    p.sync(&mut v).unwrap();
    assert_eq!(v.messages.len(), 1);
    drop(p);
    user.delete("Projects").unwrap();
    user.create("Projects").unwrap();
    let p = user.open("Projects").unwrap();
    let mut v = View::default();
    p.sync(&mut v).unwrap();
    assert!(v.messages.is_empty(), "{:?}", v.messages);
}

#[test]
fn read_header_reads_exactly_the_header() {
    let tmp = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(MaildirStore::new(tmp.path().join("mail")));
    let user = store.user("alice").unwrap();
    let inbox = user.open("INBOX").unwrap();
    // A header of exactly 8,192 bytes: the first 8 KiB read ends between the last header
    // line's LF and the empty line's.
    let mut straddle = String::new();
    while straddle.len() + 40 < 8192 {
        straddle.push_str("X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n");
    }
    let last = 8192 - straddle.len() - "X-Last: \n".len();
    straddle.push_str(&format!("X-Last: {}\n", "b".repeat(last)));
    assert_eq!(straddle.len(), 8192);
    // A header of ~40 KB: several reads.
    let long: String = (0..1000)
        .map(|i| format!("X-Pad-{i}: {}\n", "v".repeat(28)))
        .collect();
    // (file contents as another program wrote them, the header they must give with CRLF)
    let cases: Vec<(String, String)> = vec![
        (
            "From: a@example.org\nSubject: lf\n\nbody\n\nmore\n".into(),
            "From: a@example.org\r\nSubject: lf\r\n\r\n".into(),
        ),
        (
            "From: a@example.org\r\nSubject: crlf\r\n\r\nbody\r\n".into(),
            "From: a@example.org\r\nSubject: crlf\r\n\r\n".into(),
        ),
        (
            "From: a@example.org\nSubject: no empty line".into(),
            "From: a@example.org\r\nSubject: no empty line".into(),
        ),
        ("\nonly a body\n".into(), "\r\n".into()),
        (
            format!("{long}\nbody\n"),
            format!("{long}\n").replace('\n', "\r\n"),
        ),
        (
            format!("{straddle}\nbody\n"),
            format!("{straddle}\n").replace('\n', "\r\n"),
        ),
    ];
    for (i, (file, _)) in cases.iter().enumerate() {
        let name = format!("17000000{i:02}.M{i}P1.test");
        fs::write(tmp.path().join("mail/alice/new").join(name), file).unwrap();
    }
    let mut view = View::default();
    inbox.sync(&mut view).unwrap();
    assert_eq!(view.messages.len(), cases.len());
    let mut got: Vec<String> = Vec::new();
    for m in &view.messages {
        let full = inbox.read(m.uid).unwrap();
        let head = inbox.read_header(m.uid).unwrap();
        assert!(full.starts_with(&head), "UID {}: not a prefix", m.uid);
        assert_eq!(
            head.len(),
            mailserver::store::header_len(&full),
            "UID {}",
            m.uid
        );
        got.push(String::from_utf8(head.to_vec()).unwrap());
    }
    let mut want: Vec<String> = cases.into_iter().map(|c| c.1).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}
