//! Dovecot side by side (ARCHITECTURE.md, "Mail store"): a Maildir++ tree written by Dovecot
//! 2.3 is served by this store with the same UIDVALIDITY, UIDs, flags, keywords and sizes, and
//! a tree written by this store is served by Dovecot the same way. Dovecot runs as a private
//! instance on a high loopback port in a tempdir (see DOVECOT.md) and is driven with Python's
//! `imaplib`.
//!
//! Skipped, with the reason printed, when `/usr/sbin/dovecot`, `python3` or root are missing.

use mailserver::store::maildir::{mutf7, MaildirStore};
use mailserver::store::{FlagOp, Flags, Store, UserStore, View};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[path = "common/dovecot.rs"]
mod dovecot;

use dovecot::Dovecot;

/// A private Dovecot IMAP instance serving `mail_root/<user>` for user `u1` (password `pw`).
fn start_dovecot(dir: &Path, mail_root: &Path) -> Dovecot {
    Dovecot::start(
        dir,
        dovecot::Options {
            protocol: "imap",
            name: "mailserver-store-test",
            mail_location: format!("maildir:{}/%u", mail_root.display()),
            users: "u1:{PLAIN}pw\n".into(),
            namespace: String::new(),
            extra: String::new(),
            mail_dirs: vec![mail_root.to_path_buf()],
        },
    )
}

/// Runs an imaplib script (`m` is logged in as u1); returns stdout.
fn python(d: &Dovecot, body: &str) -> String {
    let script = format!(
        "import imaplib, re, sys\nm = imaplib.IMAP4('127.0.0.1', {})\nm.login('u1', 'pw')\n{body}\nm.logout()\n",
        d.port
    );
    let out = Command::new("timeout")
        .args(["60", "python3", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "imaplib script failed: {}\n{}\nlog: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    String::from_utf8(out.stdout).unwrap()
}

/// What Dovecot serves: mailbox (UTF-8) → snapshot, plus subscribed names.
fn dump(d: &Dovecot) -> (BTreeMap<String, Snapshot>, BTreeSet<String>) {
    parse_dump(&python(d, DUMP))
}

/// Lists every mailbox with its UIDVALIDITY, UIDNEXT and (UID, FLAGS, RFC822.SIZE) of each
/// message, and the subscriptions, one record a line.
const DUMP: &str = r#"
typ, data = m.list()
names = []
for line in data:
    mo = re.match(rb'\((.*?)\) "/" (.*)$', line)
    flags, name = mo.group(1), mo.group(2).strip(b'"')
    if b'\\Noselect' not in flags:
        names.append(name.decode())
for name in names:
    typ, st = m.status('"%s"' % name, '(UIDVALIDITY UIDNEXT)')
    v = re.search(rb'UIDVALIDITY (\d+)', st[0]).group(1).decode()
    n = re.search(rb'UIDNEXT (\d+)', st[0]).group(1).decode()
    print('BOX', name, v, n)
    m.select('"%s"' % name, readonly=True)
    typ, data = m.uid('FETCH', '1:*', '(UID FLAGS RFC822.SIZE)')
    for item in data:
        if item is None or isinstance(item, tuple):
            continue
        uid = re.search(rb'UID (\d+)', item).group(1).decode()
        size = re.search(rb'RFC822\.SIZE (\d+)', item).group(1).decode()
        fl = re.search(rb'FLAGS \(([^)]*)\)', item).group(1).decode().split()
        print('MSG', uid, size, ' '.join(f for f in fl if f != '\\Recent'))
typ, data = m.lsub()
for line in data:
    if line:
        mo = re.match(rb'\((.*?)\) "/" (.*)$', line)
        print('SUB', mo.group(2).strip(b'"').decode())
"#;

/// One mailbox as a server presents it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Snapshot {
    uid_validity: u32,
    uid_next: u32,
    /// UID → (RFC822.SIZE, flags and keywords as IMAP atoms, sorted, no \Recent).
    messages: BTreeMap<u32, (u64, BTreeSet<String>)>,
}

fn parse_dump(out: &str) -> (BTreeMap<String, Snapshot>, BTreeSet<String>) {
    let mut boxes = BTreeMap::new();
    let mut subs = BTreeSet::new();
    let mut current: Option<String> = None;
    for line in out.lines() {
        let mut f = line.split(' ');
        match f.next() {
            Some("BOX") => {
                let rest: Vec<&str> = f.collect();
                let n = rest.len();
                let name = mutf7::decode(&rest[..n - 2].join(" ")).unwrap();
                boxes.insert(
                    name.clone(),
                    Snapshot {
                        uid_validity: rest[n - 2].parse().unwrap(),
                        uid_next: rest[n - 1].parse().unwrap(),
                        messages: BTreeMap::new(),
                    },
                );
                current = Some(name);
            }
            Some("MSG") => {
                let uid: u32 = f.next().unwrap().parse().unwrap();
                let size: u64 = f.next().unwrap().parse().unwrap();
                let flags = f.filter(|s| !s.is_empty()).map(String::from).collect();
                let b = boxes.get_mut(current.as_ref().unwrap()).unwrap();
                b.messages.insert(uid, (size, flags));
            }
            Some("SUB") => {
                subs.insert(mutf7::decode(&f.collect::<Vec<_>>().join(" ")).unwrap());
            }
            _ => {}
        }
    }
    (boxes, subs)
}

fn flag_atoms(flags: Flags, keywords: &[String]) -> BTreeSet<String> {
    let mut s: BTreeSet<String> = keywords.iter().cloned().collect();
    for (f, name) in [
        (Flags::SEEN, "\\Seen"),
        (Flags::ANSWERED, "\\Answered"),
        (Flags::FLAGGED, "\\Flagged"),
        (Flags::DELETED, "\\Deleted"),
        (Flags::DRAFT, "\\Draft"),
    ] {
        if flags.contains(f) {
            s.insert(name.to_string());
        }
    }
    s
}

/// What this store presents for every selectable mailbox, plus subscriptions.
fn our_view(user: &dyn UserStore) -> (BTreeMap<String, Snapshot>, BTreeSet<String>) {
    let mut boxes = BTreeMap::new();
    let mut subs = BTreeSet::new();
    for info in user.list().unwrap() {
        if info.subscribed {
            subs.insert(info.name.clone());
        }
        if info.no_select {
            continue;
        }
        let mb = user.open(&info.name).unwrap();
        let mut view = View::default();
        mb.sync(&mut view).unwrap();
        let mut snap = Snapshot {
            uid_validity: view.uid_validity,
            uid_next: view.uid_next,
            messages: BTreeMap::new(),
        };
        for m in &view.messages {
            assert_eq!(mb.read(m.uid).unwrap().len() as u64, m.size);
            snap.messages
                .insert(m.uid, (m.size, flag_atoms(m.flags, &m.keywords)));
        }
        boxes.insert(info.name, snap);
    }
    (boxes, subs)
}

fn assert_same(ours: &BTreeMap<String, Snapshot>, theirs: &BTreeMap<String, Snapshot>) {
    for (name, snap) in theirs {
        let mine = ours
            .get(name)
            .unwrap_or_else(|| panic!("{name:?} missing here; have {:?}", ours.keys()));
        assert_eq!(mine, snap, "mailbox {name:?}");
    }
}

#[test]
fn tree_written_by_dovecot_is_served_identically() {
    if dovecot::skip(true) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mail = tmp.path().join("mail");
    fs::create_dir_all(mail.join("u1/new")).unwrap();
    fs::create_dir_all(mail.join("u1/cur")).unwrap();
    fs::create_dir_all(mail.join("u1/tmp")).unwrap();
    // An MTA delivery Dovecot will number on its first sync (no S=/W= in the name).
    fs::write(
        mail.join("u1/new/1700000000.M1P1.mx"),
        "Subject: mta\n\nfrom the MTA\n",
    )
    .unwrap();
    let theirs = {
        let dv = start_dovecot(&tmp.path().join("dovecot"), &mail);
        python(
            &dv,
            r#"
msg = b"From: a@example.org\r\nSubject: t\r\n\r\nhello\r\n"
m.select('INBOX')
m.append('INBOX', r'(\Seen $Forwarded Junk)', None, msg)
m.append('INBOX', r'(\Flagged \Answered \Draft foo)', None, msg + b"more\r\n")
m.append('INBOX', r'(\Deleted)', None, msg)
m.append('INBOX', None, '"01-Jan-2020 10:00:00 +0000"', msg)
m.select('INBOX')
m.expunge()
m.uid('STORE', '2', '+FLAGS', r'(\Answered bar)')
m.uid('STORE', '3', '-FLAGS', r'($Forwarded)')
m.create('Caf&AOk-/Sub')
m.subscribe('Caf&AOk-/Sub')
m.create('Sent')
m.subscribe('Sent')
m.append('Caf&AOk-/Sub', r'(\Seen zeta)', None, msg)
m.append('Caf&AOk-/Sub', None, None, msg)
"#,
        );
        let (theirs, subs) = dump(&dv);
        assert!(subs.contains("Caf\u{e9}/Sub"), "{subs:?}");
        theirs
    }; // Dovecot stopped here
    eprintln!("Dovecot served: {theirs:#?}");
    assert_eq!(theirs["INBOX"].messages.len(), 4, "{theirs:?}");
    assert!(
        theirs["INBOX"].messages.keys().any(|&u| u == 5),
        "{theirs:?}"
    );

    let store = MaildirStore::new(mail.clone());
    let user = store.user("u1").unwrap();
    let (ours, subs) = our_view(&*user);
    assert_same(&ours, &theirs);
    assert!(subs.contains("Caf\u{e9}/Sub") && subs.contains("Sent"));
    // INTERNALDATE given at APPEND survives (Dovecot sets the file mtime).
    let inbox = user.open("INBOX").unwrap();
    let mut view = View::default();
    inbox.sync(&mut view).unwrap();
    let dated = view.messages.iter().find(|m| m.uid == 5).unwrap();
    assert_eq!(
        dated.internal_date,
        UNIX_EPOCH + Duration::from_secs(1_577_872_800)
    );
    // And we keep numbering after Dovecot's last UID.
    let next = theirs["INBOX"].uid_next;
    assert_eq!(
        inbox
            .append(b"Subject: x\n\ny\n", Flags::NONE, &[], None)
            .unwrap(),
        next
    );
}

#[test]
fn tree_written_here_is_served_identically_by_dovecot() {
    if dovecot::skip(true) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mail = tmp.path().join("mail");
    let ours = {
        let store = MaildirStore::new(mail.clone());
        let user = store.user("u1").unwrap();
        let inbox = user.open("INBOX").unwrap();
        let msg = b"From: a@example.org\r\nSubject: t\r\n\r\nhello\r\n";
        let date = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
        inbox
            .append(
                msg,
                Flags::SEEN,
                &["$Forwarded".into(), "Junk".into()],
                None,
            )
            .unwrap();
        inbox
            .append(
                b"bare\nlf\nonly\n",
                Flags::FLAGGED.union(Flags::DRAFT),
                &[],
                Some(date),
            )
            .unwrap();
        inbox.append(msg, Flags::NONE, &[], None).unwrap();
        inbox
            .append(msg, Flags::NONE, &["later".into()], None)
            .unwrap();
        inbox
            .store_flags(&[3], FlagOp::Add, Flags::DELETED, &[])
            .unwrap();
        inbox.expunge(None).unwrap();
        inbox
            .store_flags(&[1], FlagOp::Remove, Flags::NONE, &["Junk".into()])
            .unwrap();
        inbox
            .store_flags(&[2], FlagOp::Add, Flags::ANSWERED, &["NonJunk".into()])
            .unwrap();
        // An MTA delivery we number (W cached in the uidlist) and move to cur/.
        fs::write(
            mail.join("u1/new/1700000000.M1P1.mx"),
            "Subject: mta\n\nfrom the MTA\n",
        )
        .unwrap();
        let mut view = View::default();
        inbox.sync(&mut view).unwrap();
        assert_eq!(view.messages.len(), 4);

        user.create("Reports/B\u{fc}cher").unwrap();
        user.subscribe("Reports/B\u{fc}cher", true).unwrap();
        let r = user.open("Reports/B\u{fc}cher").unwrap();
        r.append(msg, Flags::SEEN, &["zeta".into()], None).unwrap();
        r.append(msg, Flags::NONE, &[], None).unwrap();
        drop(r);
        user.rename("Reports", "Old Reports").unwrap();
        let t = user.open("Trash").unwrap();
        inbox.copy_to(&[1, 2], &*t).unwrap();
        our_view(&*user)
    };
    let (ours, our_subs) = ours;
    let dv = start_dovecot(&tmp.path().join("dovecot"), &mail);
    let (theirs, subs) = dump(&dv);
    eprintln!("Dovecot served: {theirs:#?}\nsubscriptions: {subs:?}");
    assert_eq!(
        theirs.keys().collect::<Vec<_>>(),
        ours.keys().collect::<Vec<_>>()
    );
    assert_same(&theirs, &ours);
    assert_eq!(subs, our_subs);
    let log = dv.log();
    assert!(
        !log.contains("Error") && !log.contains("Broken") && !log.contains("Panic"),
        "Dovecot complained:\n{log}"
    );
}

#[test]
fn appends_here_and_in_dovecot_at_once_share_the_uidlist_lock() {
    if dovecot::skip(true) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mail = tmp.path().join("mail");
    let store = MaildirStore::new(mail.clone());
    let user = store.user("u1").unwrap();
    let inbox = user.open("INBOX").unwrap();
    let mut view = View::default();
    inbox.sync(&mut view).unwrap(); // creates dovecot-uidlist
                                    // Both servers write here (we as root, Dovecot as `mail`): share the tree as a
                                    // group-writable Maildir would be; new files inherit the directory modes.
    let st = Command::new("chmod")
        .args(["-R", "a+rwX"])
        .arg(&mail)
        .status()
        .unwrap();
    assert!(st.success());
    let dv = start_dovecot(&tmp.path().join("dovecot"), &mail);
    let ours: Vec<u32> = std::thread::scope(|s| {
        let dovecot_side = s.spawn(|| {
            python(
                &dv,
                r#"
for i in range(40):
    typ, data = m.append('INBOX', r'(\Seen)', None, b"Subject: dovecot %d\r\n\r\nx\r\n" % i)
    assert typ == 'OK', data
"#,
            )
        });
        let mut mine = Vec::new();
        for i in 0..40 {
            let body = format!("Subject: ours {i}\r\n\r\ny\r\n");
            mine.push(
                inbox
                    .append(body.as_bytes(), Flags::NONE, &[], None)
                    .unwrap(),
            );
        }
        dovecot_side.join().unwrap();
        mine
    });
    let (theirs, _) = dump(&dv);
    let inbox_theirs = &theirs["INBOX"];
    assert_eq!(inbox_theirs.messages.len(), 80, "{inbox_theirs:?}");
    let mut view = View::default();
    inbox.sync(&mut view).unwrap();
    let uids: Vec<u32> = view.messages.iter().map(|m| m.uid).collect();
    assert_eq!(uids.len(), 80);
    assert_eq!(
        uids,
        inbox_theirs.messages.keys().copied().collect::<Vec<_>>(),
        "both servers number the same files the same way"
    );
    for uid in &ours {
        assert!(
            !inbox_theirs.messages[uid].1.contains("\\Seen"),
            "UID {uid} is ours, not one of Dovecot's"
        );
    }
    let seen = view
        .messages
        .iter()
        .filter(|m| m.flags.contains(Flags::SEEN))
        .count();
    assert_eq!(seen, 40);
    let log = dv.log();
    assert!(
        !log.contains("Error") && !log.contains("Panic"),
        "Dovecot complained:\n{log}"
    );
}
