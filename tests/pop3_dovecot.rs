//! POP3 side by side with Dovecot 2.3 (ARCHITECTURE.md, "POP3": UIDL is Dovecot's `%08Xu%08Xv`
//! so clients moving from Dovecot do not download again). One Maildir tree (messages in `new/` and
//! `cur/`, flags, CRLF and LF files, dot lines, no final newline, names whose text order
//! differs from their time order) is copied and served by a private Dovecot POP3 instance
//! (`pop3_uidl_format = %08Xu%08Xv`, see DOVECOT.md) and by the real `mailserver` binary:
//!
//! * Dovecot first, then mailserver on a copy of the tree Dovecot left: identical STAT, LIST
//!   and UIDL (mailserver reads Dovecot's `dovecot-uidlist`).
//! * mailserver first, then Dovecot on a copy of the tree mailserver left: identical.
//! * Each on its own fresh copy: identical LIST sizes and UIDs in UIDL (the UIDVALIDITY part
//!   is each server's own clock and may differ).
//! * The same session (`RETR`, `TOP`, `DELE`, `QUIT`) on each fresh copy leaves the same
//!   messages with the same Maildir flags: `\Seen` for `RETR` only, deletions applied.
//!
//! Both servers are queried with the same Python `poplib` script. Skipped, with the reason
//! printed, when Dovecot, python3 or root are missing.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::Daemon;

#[path = "common/dovecot.rs"]
mod dovecot;

use dovecot::Dovecot;

/// A private Dovecot POP3 instance serving `mail_root/<user>` (`%08Xu%08Xv` UIDLs).
fn start_dovecot(dir: &Path, mail_root: &Path) -> Dovecot {
    Dovecot::start(
        dir,
        dovecot::Options {
            protocol: "pop3",
            name: "mailserver-pop3-test",
            mail_location: format!(
                "maildir:{}/%u:INDEX={}/index/%u",
                mail_root.display(),
                dir.display()
            ),
            users: format!("{}:{{PLAIN}}{}\n", common::USER, common::PASS),
            namespace: String::new(),
            extra: "pop3_uidl_format = %08Xu%08Xv".into(),
            mail_dirs: vec![mail_root.to_path_buf(), dir.join("index")],
        },
    )
}

/// STAT, LIST and UIDL of one POP3 session (no RETR/DELE: the session changes nothing).
/// With a 5th argument, it also runs RETR 1, TOP 3 0, DELE 2 and QUITs (the UPDATE state).
const DUMP: &str = r#"
import poplib, sys
p = poplib.POP3('127.0.0.1', int(sys.argv[1]), timeout=20)
p.user(sys.argv[2]); p.pass_(sys.argv[3])
print('stat', *p.stat())
for l in p.list()[1]: print('list', l.decode())
for l in p.uidl()[1]: print('uidl', l.decode())
if len(sys.argv) > 4:
    print('retr', p.retr(1)[2])
    print('top', len(p.top(3, 0)[1]))
    print('dele', p.dele(2).decode())
print('quit', p.quit().decode().split(' ')[0])
"#;

fn dump(port: u16) -> Vec<String> {
    dump_with(port, &[])
}

fn dump_with(port: u16, extra: &[&str]) -> Vec<String> {
    let out = Command::new("timeout")
        .args(["60", "python3", "-c", DUMP])
        .arg(port.to_string())
        .args([common::USER, common::PASS])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "poplib failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The corpus: (subdirectory, file name, content).
fn corpus() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut v: Vec<(&'static str, String, Vec<u8>)> = Vec::new();
    let mut add = |sub: &'static str, name: String, body: Vec<u8>| v.push((sub, name, body));
    for i in 0..12u32 {
        let mut body = format!("From: s{i}@example.org\nSubject: corpus {i}\n\n").into_bytes();
        for l in 0..(i * 3) {
            body.extend_from_slice(format!("body line {l}\n").as_bytes());
        }
        match i % 4 {
            0 => body.extend_from_slice(b".\n..\n.leading\n"),
            1 => {
                body = String::from_utf8(body)
                    .unwrap()
                    .replace('\n', "\r\n")
                    .into_bytes()
            }
            2 => body.extend_from_slice(b"no final newline"),
            _ => body.extend_from_slice("8bit: gr\u{fc}\u{df}e\n".as_bytes()),
        }
        let secs = 1_700_000_000 + i * 10;
        let (sub, name) = match i % 3 {
            0 => ("new", format!("{secs}.M{i}P42.mx.example")),
            1 => ("cur", format!("{secs}.M{i}P42.mx.example:2,S")),
            _ => ("cur", format!("{secs}.M{i}P42.mx.example:2,FRS")),
        };
        add(sub, name, body);
    }
    // Text order differs from time order (9-digit seconds, microsecond parts).
    add(
        "new",
        "999999999.M5P1.old".into(),
        b"Subject: from 2001\n\nold\n".to_vec(),
    );
    add(
        "new",
        "1700000005.M900P1.a".into(),
        b"Subject: early\n\nx\n".to_vec(),
    );
    add(
        "cur",
        "1700000005.M20P1.b:2,".into(),
        b"Subject: earlier usec\n\ny\n".to_vec(),
    );
    // As Dovecot's LDA names its deliveries: physical size `S=` and CRLF size `W=` in the name.
    let lda = b"Subject: delivered by dovecot-lda\n\nsized\n.\n".to_vec();
    let crlf = lda.len() + lda.iter().filter(|&&b| b == b'\n').count();
    add(
        "cur",
        format!("1700000300.M1P9.mx,S={},W={crlf}:2,S", lda.len()),
        lda.clone(),
    );
    add(
        "new",
        format!("1700000301.M2P9.mx,S={},W={crlf}", lda.len()),
        lda,
    );
    v
}

fn write_tree(root: &Path) {
    for d in ["tmp", "new", "cur"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    for (sub, name, body) in corpus() {
        fs::write(root.join(sub).join(name), body).unwrap();
    }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to.parent().unwrap()).unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

/// A stopped-on-drop daemon whose data dir already holds `tree` as the INBOX of the user.
fn mailserver_on(tree: &Path) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let opts = common::Options::default();
    fs::write(
        dir.path().join("users"),
        format!("{}:{{PLAIN}}{}\n", common::USER, common::PASS),
    )
    .unwrap();
    let config = dir.path().join("mailserver.toml");
    fs::write(&config, common::config_text(dir.path(), &opts)).unwrap();
    copy_tree(
        tree,
        &dir.path().join("data").join("mail").join(common::USER),
    );
    Daemon::spawn(dir, config, &[])
}

/// Serves `tree` (a user Maildir, copied) with Dovecot; returns the dump and where the copy
/// Dovecot left lives (inside `work`).
fn dovecot_on(tree: &Path, work: &Path) -> (Vec<String>, PathBuf) {
    dovecot_with(tree, work, &[])
}

fn dovecot_with(tree: &Path, work: &Path, extra: &[&str]) -> (Vec<String>, PathBuf) {
    let mail_root = work.join("mail");
    let user_dir = mail_root.join(common::USER);
    copy_tree(tree, &user_dir);
    let dv = start_dovecot(&work.join("dovecot"), &mail_root);
    let out = dump_with(dv.port, extra);
    drop(dv);
    (out, user_dir)
}

fn lines_of<'a>(dump: &'a [String], kind: &str) -> Vec<&'a str> {
    dump.iter()
        .filter_map(|l| l.strip_prefix(kind))
        .map(str::trim)
        .collect()
}

#[test]
fn dovecot_first_then_mailserver_gives_identical_uidl_and_list() {
    if dovecot::skip(true) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    write_tree(&tree);
    let (dovecot, left) = dovecot_on(&tree, &work.path().join("d"));
    assert_eq!(
        lines_of(&dovecot, "uidl").len(),
        corpus().len(),
        "{dovecot:?}"
    );
    assert!(left.join("dovecot-uidlist").exists());

    let d = mailserver_on(&left);
    let ours = dump(d.pop3.unwrap().port());
    assert_eq!(ours, dovecot, "mailserver on Dovecot's tree");
}

#[test]
fn mailserver_first_then_dovecot_gives_identical_uidl_and_list() {
    if dovecot::skip(true) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    write_tree(&tree);
    let mut d = mailserver_on(&tree);
    let ours = dump(d.pop3.unwrap().port());
    assert_eq!(lines_of(&ours, "uidl").len(), corpus().len(), "{ours:?}");
    assert!(d.stop().success());
    let left = d.data_dir().join("mail").join(common::USER);

    let (dovecot, _) = dovecot_on(&left, &work.path().join("d"));
    assert_eq!(dovecot, ours, "Dovecot on mailserver's tree");
}

#[test]
fn fresh_copies_number_and_size_alike() {
    if dovecot::skip(true) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    write_tree(&tree);
    let (dovecot, _) = dovecot_on(&tree, &work.path().join("d"));
    let d = mailserver_on(&tree);
    let ours = dump(d.pop3.unwrap().port());
    assert_eq!(lines_of(&ours, "stat"), lines_of(&dovecot, "stat"));
    assert_eq!(lines_of(&ours, "list"), lines_of(&dovecot, "list"));
    // "n UUUUUUUUVVVVVVVV": compare sequence number and UID, not each server's UIDVALIDITY.
    let uids = |v: &[String]| -> Vec<String> {
        lines_of(v, "uidl")
            .iter()
            .map(|l| l[..l.len() - 8].to_string())
            .collect()
    };
    assert_eq!(uids(&ours), uids(&dovecot));
}

/// (base name, Maildir info flags) of every message file, sorted by base name.
fn messages(root: &Path) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for sub in ["new", "cur"] {
        for e in fs::read_dir(root.join(sub)).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().to_string();
            let (base, flags) = match name.split_once(":2,") {
                Some((b, f)) => (b.to_string(), f.to_string()),
                None => (name.clone(), String::new()),
            };
            v.push((base, flags));
        }
    }
    v.sort();
    v
}

#[test]
fn same_session_leaves_the_same_maildir() {
    if dovecot::skip(true) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    write_tree(&tree);
    let (dovecot, dovecot_left) = dovecot_with(&tree, &work.path().join("d"), &["update"]);
    let mut d = mailserver_on(&tree);
    let ours = dump_with(d.pop3.unwrap().port(), &["update"]);
    assert!(d.stop().success());
    // Fresh copies: each server's own UIDVALIDITY (its clock) is left out.
    let strip = |v: &[String]| -> Vec<String> {
        v.iter()
            .map(|l| match l.strip_prefix("uidl ") {
                Some(_) => l[..l.len() - 8].to_string(),
                None => l.clone(),
            })
            .collect()
    };
    assert_eq!(strip(&ours), strip(&dovecot));
    assert!(ours.iter().any(|l| l == "quit +OK"), "{ours:?}");
    let left = d.data_dir().join("mail").join(common::USER);
    assert_eq!(messages(&left), messages(&dovecot_left));
    assert_eq!(messages(&left).len(), corpus().len() - 1);
}

/// Raw POP3 commands, one per line in argv[2:], over one connection: for each, the status
/// word and response code (`+OK`, `-ERR [IN-USE]`...), then the lines of a multi-line
/// answer (CAPA's are left out: each server lists its own). `#reconnect` starts a new
/// connection. Every read is bounded by the socket timeout.
const RAW: &str = r#"
import socket, sys
def connect():
    s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=20)
    f = s.makefile('rb')
    f.readline()
    return s, f
s, f = connect()
multi_ok = ('LIST', 'UIDL', 'RETR', 'TOP', 'CAPA')
for cmd in sys.argv[2:]:
    if cmd == '#reconnect':
        s.close(); s, f = connect(); print('reconnect'); continue
    try:
        s.sendall(cmd.encode() + b'\r\n')
        line = f.readline().decode('latin-1').rstrip('\r\n')
    except OSError:
        line = ''
    if not line:
        print(repr(cmd), 'closed'); s.close(); s, f = connect(); continue
    word = line.split(' ')[0]
    code = line.split(' ')[1] if line.count(' ') and line.split(' ')[1].startswith('[') else ''
    print(repr(cmd), word, code)
    verb = cmd.split(' ')[0].upper()
    has_arg = len(cmd.split()) > 1
    if word == '+OK' and verb in multi_ok and not (verb in ('LIST', 'UIDL') and has_arg):
        for _ in range(100000):
            l = f.readline().decode('latin-1').rstrip('\r\n')
            if l == '.':
                break
            if verb != 'CAPA':
                print('  ', l)
    if verb == 'QUIT':
        s.close(); s, f = connect(); print('reconnect')
"#;

fn raw_session(port: u16, cmds: &[&str]) -> Vec<String> {
    let out = Command::new("timeout")
        .args(["60", "python3", "-c", RAW])
        .arg(port.to_string())
        .args(cmds)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "raw POP3 failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Command by command, the same answers as Dovecot's POP3 on copies of one tree: commands
/// out of state, arguments out of range or missing, deleted messages, RSET, TOP edges, and
/// what QUIT applies.
#[test]
fn commands_and_errors_answer_as_dovecot() {
    if dovecot::skip(true) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    write_tree(&tree);
    let user = format!("USER {}", common::USER);
    let pass = format!("PASS {}", common::PASS);
    // Errors come at most three in a row (then a NOOP), and an unauthenticated connection
    // gets at most two: Dovecot's login process drops a client after a few bad commands,
    // ours after ten in a row (MAX_BAD_COMMANDS), and the script is about the answers.
    let cmds: Vec<&str> = vec![
        "CAPA",
        "STAT",
        "PASS nouser",
        "#reconnect",
        "LIST",
        "RETR 1",
        "#reconnect",
        &user,
        "USER other",
        "CAPA",
        "#reconnect",
        &user,
        &pass,
        "STAT",
        "LIST",
        "LIST 2",
        "UIDL",
        "LIST 99",
        "LIST 0",
        "LIST abc",
        "NOOP",
        "LIST 1 2",
        "UIDL 99",
        "TOP 99 0",
        "NOOP",
        "TOP 1 0",
        "TOP 4 2",
        "TOP 1 99999",
        "RETR 2",
        "TOP 1",
        "TOP 1 -1",
        "RETR 0",
        "NOOP",
        "RETR",
        "DELE 0",
        "NOOP",
        "DELE 2",
        "DELE 2",
        "LIST 2",
        "UIDL 2",
        "NOOP",
        "RETR 2",
        "TOP 2 0",
        "NOOP",
        "STAT",
        "LIST",
        "UIDL",
        "RSET",
        "STAT",
        "LIST 2",
        "noop",
        "XYZZY",
        "USER x",
        "PASS x",
        "NOOP",
        "APOP a b",
        "CAPA",
        "DELE 1",
        "DELE 3",
        "QUIT",
        &user,
        &pass,
        "STAT",
        "LIST",
        "UIDL",
        "QUIT",
    ];
    let mut d = mailserver_on(&tree);
    let ours = raw_session(d.pop3.unwrap().port(), &cmds);
    assert!(d.stop().success());
    let dvwork = work.path().join("d");
    let mail_root = dvwork.join("mail");
    copy_tree(&tree, &mail_root.join(common::USER));
    let dv = start_dovecot(&dvwork.join("dovecot"), &mail_root);
    let theirs = raw_session(dv.port, &cmds);
    drop(dv);
    // UIDL `%08Xu%08Xv`: each server's own UIDVALIDITY (its clock) is left out.
    let strip = |v: Vec<String>| -> Vec<String> {
        v.into_iter()
            .map(|l| {
                let uidl = l.starts_with("   ")
                    && l.rsplit(' ')
                        .next()
                        .is_some_and(|u| u.len() == 16 && u.bytes().all(|b| b.is_ascii_hexdigit()));
                if uidl {
                    l[..l.len() - 8].to_string()
                } else {
                    l
                }
            })
            .collect()
    };
    let (ours, theirs) = (strip(ours), strip(theirs));
    let diffs: Vec<String> = ours
        .iter()
        .zip(&theirs)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("ours:    {a}\ndovecot: {b}"))
        .collect();
    assert!(
        diffs.is_empty() && ours.len() == theirs.len(),
        "{} lines differ ({} vs {} lines):\n{}\n\nours:\n{}\n\ndovecot:\n{}",
        diffs.len(),
        ours.len(),
        theirs.len(),
        diffs.join("\n"),
        ours.join("\n"),
        theirs.join("\n")
    );
    // On ours whatever Dovecot says: the two messages deleted before QUIT are gone from
    // the next session, and nothing else is.
    let last_list = ours.iter().rposition(|l| l == "'LIST' +OK ").unwrap();
    let listed = ours[last_list + 1..]
        .iter()
        .take_while(|l| l.starts_with("   "))
        .count();
    assert_eq!(listed, corpus().len() - 2, "{ours:?}");
}
