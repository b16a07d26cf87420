//! IMAP4rev2 (RFC 9051) and UTF8=ACCEPT (RFC 6855) over real sockets against the real
//! binary. An IMAP4rev2 session walks the RFC 9051 examples whose responses differ from
//! IMAP4rev1 (SELECT without RECENT and with `* LIST`, ESEARCH for every SEARCH, LIST
//! `\NonExistent`, STATUS DELETED and SIZE, APPENDUID/COPYUID, `$`) while an IMAP4rev1
//! session on the same mailbox at the same time still gets RECENT, `\Recent` and `* SEARCH`.
//! UTF8=ACCEPT: a UTF-8 folder name created by one session is listed in modified UTF-7 to a
//! session that did not enable it and by a private Dovecot 2.3 on the same tree; APPEND
//! `UTF8 (~{n})` (small, and streamed); ENVELOPE of raw UTF-8 headers. Dovecot 2.3 has
//! neither IMAP4rev2 nor UTF8=ACCEPT (checked below), so it is the reference only for what
//! a rev1, non-UTF-8 client sees.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::imap::Client;
use common::{Daemon, PASS, USER};

#[path = "common/dovecot.rs"]
mod dovecot;

const WAIT: Duration = Duration::from_secs(60);

/// Tags commands for the blocking client.
struct Session {
    c: Client,
    n: u32,
}

impl Session {
    fn login(addr: SocketAddr) -> Session {
        Session {
            c: Client::login(addr, WAIT),
            n: 0,
        }
    }

    fn next_tag(&mut self) -> String {
        self.n += 1;
        format!("c{}", self.n)
    }

    /// Untagged lines and the tagged completion without its tag.
    fn cmd(&mut self, cmd: &str) -> (Vec<String>, String) {
        let tag = self.next_tag();
        let (u, t) = self.c.tagged(&format!("{tag} {cmd}"), &tag);
        (u, t[tag.len() + 1..].to_string())
    }

    fn ok(&mut self, cmd: &str) -> Vec<String> {
        let (u, t) = self.cmd(cmd);
        assert!(t.starts_with("OK"), "{cmd} -> {t} ({u:?})");
        u
    }

    /// The tag the next [`Session::cmd`] will use.
    fn peek_tag(&self) -> String {
        format!("c{}", self.n + 1)
    }
}

/// A small RFC 5322 message with CRLF line endings.
fn message(subject: &str) -> String {
    format!(
        "From: Carol <carol@example.org>\r\nTo: alice@imap.test\r\nSubject: {subject}\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{subject}@example.org>\r\n\r\nbody\r\n"
    )
}

fn append(s: &mut Session, mailbox: &str, flags: &str, msg: &str) -> String {
    let (u, t) = s.cmd(&format!(
        "APPEND {mailbox} ({flags}) {{{}+}}\r\n{msg}",
        msg.len()
    ));
    assert!(t.starts_with("OK"), "APPEND -> {t} ({u:?})");
    t
}

fn has(lines: &[String], want: &str) -> bool {
    lines.iter().any(|l| l == want)
}

fn caps_of(lines: &[String]) -> String {
    lines
        .iter()
        .find(|l| l.starts_with("* CAPABILITY "))
        .cloned()
        .unwrap_or_default()
}

#[test]
fn rev2_session_walks_rfc9051_while_a_rev1_session_is_unaffected() {
    let d = Daemon::start();
    let addr = d.imap.unwrap();

    // §7.2.2: both versions advertised, before and after login.
    let mut pre = Client::connect(addr, WAIT);
    let caps = caps_of(&pre.ok("p CAPABILITY", "p"));
    assert!(
        caps.starts_with("* CAPABILITY IMAP4rev1 IMAP4rev2 "),
        "{caps}"
    );
    let mut rev1 = Session::login(addr);
    let mut rev2 = Session::login(addr);
    let caps = caps_of(&rev2.ok("CAPABILITY"));
    assert!(
        caps.starts_with("* CAPABILITY IMAP4rev1 IMAP4rev2 "),
        "{caps}"
    );
    assert!(caps.contains(" UTF8=ACCEPT"), "{caps}");

    // §6.3.1: ENABLE says what it turned on, once.
    assert_eq!(rev2.ok("ENABLE IMAP4rev2"), ["* ENABLED IMAP4rev2"]);
    assert_eq!(rev2.ok("ENABLE IMAP4rev2"), ["* ENABLED"]);

    rev1.ok("SELECT INBOX");
    // §6.3.12 APPEND: APPENDUID (UIDPLUS is part of rev2).
    let t = append(&mut rev2, "INBOX", "\\Seen", &message("m1"));
    assert!(t.starts_with("OK [APPENDUID "), "{t}");
    append(&mut rev2, "INBOX", "\\Seen", &message("m2"));

    // The rev1 session synced them first: they are recent for it (RFC 3501 §2.3.2).
    let u = rev1.ok("NOOP");
    assert!(has(&u, "* 2 EXISTS") && has(&u, "* 2 RECENT"), "{u:?}");
    let u = rev1.ok("FETCH 1:* (FLAGS)");
    assert!(u.iter().all(|l| l.contains("\\Recent")), "{u:?}");

    // §6.3.2 SELECT: no RECENT, no [UNSEEN], a LIST response with the name.
    let u = rev2.ok("SELECT INBOX");
    assert!(has(&u, "* 2 EXISTS"), "{u:?}");
    assert!(has(&u, "* LIST () \"/\" INBOX"), "{u:?}");
    assert!(
        !u.iter()
            .any(|l| l.contains("RECENT") || l.contains("[UNSEEN")),
        "{u:?}"
    );
    assert!(
        u.iter().any(|l| l.starts_with("* OK [UIDVALIDITY ")),
        "{u:?}"
    );
    assert!(has(&u, "* OK [UIDNEXT 3] Predicted next UID"), "{u:?}");
    assert!(
        u.iter().any(|l| l.starts_with("* OK [PERMANENTFLAGS ")),
        "{u:?}"
    );
    // No `\Recent` in FLAGS of a rev2 session.
    let u = rev2.ok("FETCH 1:* (FLAGS)");
    assert!(u.iter().all(|l| !l.contains("\\Recent")), "{u:?}");

    // A message arrives (from a third session): each hears of it in its own version's words.
    let mut other = Session::login(addr);
    append(&mut other, "INBOX", "", &message("m3"));
    let u = rev1.ok("NOOP");
    assert!(has(&u, "* 3 EXISTS") && has(&u, "* 3 RECENT"), "{u:?}");
    let u = rev2.ok("NOOP");
    assert!(has(&u, "* 3 EXISTS"), "{u:?}");
    assert!(!u.iter().any(|l| l.contains("RECENT")), "{u:?}");

    // §6.4.4: SEARCH is answered with ESEARCH (`ALL` when no RETURN), empty when nothing
    // matched; the rev1 session still gets `* SEARCH`.
    let tag = rev2.peek_tag();
    assert_eq!(
        rev2.ok("SEARCH ALL"),
        [format!("* ESEARCH (TAG \"{tag}\") ALL 1:3")]
    );
    let tag = rev2.peek_tag();
    assert_eq!(
        rev2.ok("UID SEARCH SEEN"),
        [format!("* ESEARCH (TAG \"{tag}\") UID ALL 1:2")]
    );
    let tag = rev2.peek_tag();
    assert_eq!(
        rev2.ok("SEARCH DELETED"),
        [format!("* ESEARCH (TAG \"{tag}\")")]
    );
    let tag = rev2.peek_tag();
    assert_eq!(
        rev2.ok("SEARCH RETURN (COUNT) UNSEEN"),
        [format!("* ESEARCH (TAG \"{tag}\") COUNT 1")]
    );
    assert_eq!(rev1.ok("SEARCH ALL"), ["* SEARCH 1 2 3"]);
    // RECENT is no search key in rev2; the rev1 session still finds its recent messages.
    assert_eq!(rev1.ok("SEARCH RECENT"), ["* SEARCH 1 2 3"]);
    let tag = rev2.peek_tag();
    assert_eq!(
        rev2.ok("SEARCH RECENT"),
        [format!("* ESEARCH (TAG \"{tag}\")")]
    );

    // SEARCHRES `$` (§6.4.4.1).
    assert!(rev2.ok("SEARCH RETURN (SAVE) UNSEEN").is_empty());
    let u = rev2.ok("FETCH $ (UID)");
    assert_eq!(u, ["* 3 FETCH (UID 3)"]);

    // §6.3.11 STATUS DELETED and SIZE; no RECENT count for rev2.
    rev2.ok("STORE 1 +FLAGS.SILENT (\\Deleted)");
    let size: usize = ["m1", "m2", "m3"].iter().map(|s| message(s).len()).sum();
    let u = rev2.ok("STATUS INBOX (MESSAGES DELETED SIZE RECENT)");
    assert_eq!(
        u,
        [format!(
            "* STATUS INBOX (MESSAGES 3 RECENT 0 SIZE {size} DELETED 1)"
        )]
    );
    // (The rev1 session is told of the flag change after the STATUS: its `\Recent` stays.)
    let u = rev1.ok("STATUS INBOX (MESSAGES DELETED RECENT)");
    assert_eq!(
        u,
        [
            "* STATUS INBOX (MESSAGES 3 RECENT 3 DELETED 1)",
            "* 1 FETCH (FLAGS (\\Deleted \\Seen \\Recent))"
        ]
    );

    // §6.4.7 COPY: COPYUID.
    rev2.ok("CREATE Archive2");
    let (u, t) = rev2.cmd("UID COPY 1:2 Archive2");
    assert!(
        t.starts_with("OK [COPYUID ") && t.contains(" 1:2 1:2]"),
        "{t} {u:?}"
    );

    // §6.3.9 LIST: a level that exists only through its child is `\NonExistent` in rev2
    // (`\Noselect` for rev1, as Dovecot 2.3 answers a plain LIST).
    rev2.ok("CREATE top/child");
    let u = rev2.ok("LIST \"\" top");
    assert_eq!(u, ["* LIST (\\NonExistent \\HasChildren) \"/\" top"]);
    let u = rev1.ok("LIST \"\" top");
    assert_eq!(u, ["* LIST (\\Noselect \\HasChildren) \"/\" top"]);
    // §6.3.4 / §7.1: that level cannot be deleted: rev2 hears why (HASCHILDREN), rev1 gets
    // what it got before (NONEXISTENT); the child is untouched either way.
    let (_, tagged) = rev2.cmd("DELETE top");
    assert!(tagged.starts_with("NO [HASCHILDREN] "), "{tagged}");
    let (_, tagged) = rev1.cmd("DELETE top");
    assert!(tagged.starts_with("NO [NONEXISTENT] "), "{tagged}");
    assert_eq!(
        rev2.ok("LIST \"\" top/child"),
        ["* LIST (\\HasNoChildren) \"/\" top/child"]
    );

    // §5.1: UTF-8 mailbox names for rev2, modified UTF-7 for rev1.
    rev2.ok("CREATE \"Entwürfe\"");
    assert_eq!(
        rev2.ok("LIST \"\" \"Entw*\""),
        ["* LIST (\\HasNoChildren) \"/\" \"Entwürfe\""]
    );
    assert_eq!(
        rev1.ok("LIST \"\" \"Entw*\""),
        ["* LIST (\\HasNoChildren) \"/\" Entw&APw-rfe"]
    );
    let u = rev2.ok("SELECT \"Entwürfe\"");
    assert!(has(&u, "* LIST () \"/\" \"Entwürfe\""), "{u:?}");
    rev1.ok("EXAMINE Entw&APw-rfe");
    rev1.ok("SELECT INBOX");

    // EXPUNGE still works as in rev1 (§7.5.1).
    rev2.ok("SELECT INBOX");
    let u = rev2.ok("EXPUNGE");
    assert_eq!(u, ["* 1 EXPUNGE"]);
    let u = rev1.ok("NOOP");
    assert!(has(&u, "* 1 EXPUNGE"), "{u:?}");

    // §6.3.6 / §6.3.9.7: a rev2 session hears the new name with OLDNAME; rev1 nothing.
    assert_eq!(
        rev2.ok("RENAME \"Entwürfe\" \"Entwürfe alt\""),
        ["* LIST () \"/\" \"Entwürfe alt\" (\"OLDNAME\" (\"Entwürfe\"))"]
    );
    assert_eq!(
        rev2.ok("RENAME top/child top/kid"),
        ["* LIST () \"/\" top/kid (\"OLDNAME\" (top/child))"]
    );
    rev1.ok("CREATE r1");
    assert!(rev1.ok("RENAME r1 r2").is_empty());
    assert_eq!(
        rev1.ok("LIST \"\" \"Entw*\""),
        ["* LIST (\\HasNoChildren) \"/\" \"Entw&APw-rfe alt\""]
    );

    // A rev2 session has no `\Recent`, so it takes it from nobody: a message the rev2
    // session syncs first is still recent for the rev1 session, and so is one only a rev2
    // SELECT has seen.
    append(&mut other, "INBOX", "", &message("m4"));
    let u = rev2.ok("NOOP");
    assert!(has(&u, "* 3 EXISTS"), "{u:?}");
    // (m2 and m3 stopped being recent for it when it selected INBOX again above.)
    let u = rev1.ok("NOOP");
    assert!(has(&u, "* 3 EXISTS") && has(&u, "* 1 RECENT"), "{u:?}");
    rev1.ok("CREATE r3");
    append(&mut other, "r3", "", &message("m5"));
    let u = rev2.ok("SELECT r3");
    assert!(has(&u, "* 1 EXISTS"), "{u:?}");
    let u = rev1.ok("SELECT r3");
    assert!(has(&u, "* 1 RECENT"), "{u:?}");
}

#[test]
fn imap4rev2_false_neither_advertises_nor_enables_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users"),
        format!("{USER}:{{PLAIN}}{PASS}\n"),
    )
    .unwrap();
    let mut config = common::daemon_config(dir.path(), &common::Options::default());
    config.imap4rev2 = Some(false);
    let config_path = dir.path().join("mailserver.toml");
    std::fs::write(&config_path, config.text()).unwrap();
    let d = Daemon::spawn(dir, config_path, &[]);
    let addr = d.imap.unwrap();

    let mut pre = Client::connect(addr, WAIT);
    let caps = caps_of(&pre.ok("p CAPABILITY", "p"));
    assert!(
        caps.starts_with("* CAPABILITY IMAP4rev1 ") && !caps.contains("IMAP4rev2"),
        "{caps}"
    );
    let mut s = Session::login(addr);
    let caps = caps_of(&s.ok("CAPABILITY"));
    assert!(!caps.contains("IMAP4rev2"), "{caps}");
    // Not enable-able: ENABLED names nothing, and the session stays rev1.
    assert_eq!(s.ok("ENABLE IMAP4rev2"), ["* ENABLED"]);
    append(&mut s, "INBOX", "", &message("m1"));
    let u = s.ok("SELECT INBOX");
    assert!(has(&u, "* 1 RECENT"), "{u:?}");
    assert_eq!(s.ok("SEARCH ALL"), ["* SEARCH 1"]);
    // UTF8=ACCEPT does not depend on it.
    assert_eq!(s.ok("ENABLE UTF8=ACCEPT"), ["* ENABLED UTF8=ACCEPT"]);
}

/// A message whose header holds raw UTF-8 (RFC 6532), `body_len` octets of body.
fn utf8_message(body_len: usize) -> String {
    let mut m = String::from(
        "From: Jürgen Müller <juergen@example.org>\r\nTo: alice@imap.test\r\nSubject: Grüße aus Köln\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\nMessage-ID: <utf8@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
    );
    while m.len() < body_len {
        m.push_str("Straße, Größe, Übermaß.\r\n");
    }
    m
}

/// `APPEND <mailbox> UTF8 (~{n}<msg>)` with a synchronizing literal8: waits for `+`.
fn append_utf8(s: &mut Session, mailbox: &str, msg: &str) -> String {
    let tag = s.next_tag();
    s.c.send(format!("{tag} APPEND {mailbox} UTF8 (~{{{}}}\r\n", msg.len()).as_bytes());
    let cont = s.c.line();
    assert!(cont.starts_with('+'), "{cont}");
    s.c.send(msg.as_bytes());
    s.c.send(b")\r\n");
    let (u, t) = s.c.until_tagged(&tag);
    assert!(t.starts_with(&format!("{tag} OK")), "{t} ({u:?})");
    t
}

/// Every line of the untagged responses, literal data included, as one text.
fn joined(lines: &[String]) -> String {
    lines.join("\n")
}

#[test]
fn utf8_accept_names_append_and_envelope_side_by_side_with_dovecot() {
    let d = Daemon::start();
    let addr = d.imap.unwrap();
    let mut utf8 = Session::login(addr);
    let mut plain = Session::login(addr);

    assert_eq!(utf8.ok("ENABLE UTF8=ACCEPT"), ["* ENABLED UTF8=ACCEPT"]);
    assert_eq!(utf8.ok("ENABLE UTF8=ACCEPT"), ["* ENABLED"]);
    // RFC 6855 §3: UTF-8 names in quoted strings, both ways.
    utf8.ok("CREATE \"Grüße/Тест\"");
    assert_eq!(
        utf8.ok("LIST \"\" \"Gr*\""),
        [
            "* LIST (\\Noselect \\HasChildren) \"/\" \"Grüße\"",
            "* LIST (\\HasNoChildren) \"/\" \"Grüße/Тест\""
        ]
    );
    // A session that did not enable it sees modified UTF-7, and must use it.
    let mutf7 = "Gr&APwA3w-e/&BCIENQRBBEI-";
    let u = plain.ok("LIST \"\" \"Gr*\"");
    assert_eq!(
        u,
        [
            "* LIST (\\Noselect \\HasChildren) \"/\" Gr&APwA3w-e".to_string(),
            format!("* LIST (\\HasNoChildren) \"/\" {mutf7}")
        ]
    );
    let (_, t) = plain.cmd("SELECT \"Grüße/Тест\"");
    assert!(t.starts_with("NO "), "{t}");
    let u = plain.ok(&format!("STATUS {mutf7} (MESSAGES)"));
    assert_eq!(u, [format!("* STATUS {mutf7} (MESSAGES 0)")]);
    let u = utf8.ok("STATUS \"Grüße/Тест\" (MESSAGES)");
    assert_eq!(u, ["* STATUS \"Grüße/Тест\" (MESSAGES 0)"]);

    // RFC 6855 §4: APPEND UTF8 (~{n}), a small message and one streamed to the store.
    let small = utf8_message(0);
    let big = utf8_message(200 * 1024);
    let t = append_utf8(&mut utf8, "\"Grüße/Тест\"", &small);
    assert!(t.contains("[APPENDUID "), "{t}");
    append_utf8(&mut utf8, "\"Grüße/Тест\"", &big);
    let u = utf8.ok("SELECT \"Grüße/Тест\"");
    assert!(has(&u, "* 2 EXISTS"), "{u:?}");
    let u = utf8.ok("FETCH 1:2 (RFC822.SIZE)");
    assert_eq!(
        u,
        [
            format!("* 1 FETCH (RFC822.SIZE {})", small.len()),
            format!("* 2 FETCH (RFC822.SIZE {})", big.len())
        ]
    );
    // ENVELOPE: the raw UTF-8 header, unencoded, in quoted strings (§3) for this session.
    let u = utf8.ok("FETCH 1 (ENVELOPE)");
    let env = joined(&u);
    assert!(env.contains("\"Grüße aus Köln\""), "{env}");
    assert!(
        env.contains("((\"Jürgen Müller\" NIL \"juergen\" \"example.org\"))"),
        "{env}"
    );
    // RFC 6855 §3: SEARCH strings are UTF-8 without CHARSET once enabled.
    assert_eq!(utf8.ok("SEARCH SUBJECT \"Köln\""), ["* SEARCH 1 2"]);
    assert_eq!(utf8.ok("SEARCH BODY \"Übermaß\""), ["* SEARCH 2"]);
    // ... and a CHARSET label is refused (RFC 6855 §3, erratum 4029); the other session
    // may still give one.
    let (_, t) = utf8.cmd("SEARCH CHARSET UTF-8 BODY \"Übermaß\"");
    assert!(t.starts_with("BAD "), "{t}");
    // The other session gets the same bytes, as literals (as Dovecot sends them).
    plain.ok(&format!("EXAMINE {mutf7}"));
    assert_eq!(
        plain.ok("SEARCH CHARSET UTF-8 BODY \"Übermaß\""),
        ["* SEARCH 2"]
    );
    let u = plain.ok("FETCH 1 (ENVELOPE)");
    let env_plain = joined(&u);
    assert!(env_plain.contains("Grüße aus Köln"), "{env_plain}");
    assert!(!env_plain.contains("\"Grüße aus Köln\""), "{env_plain}");
    drop(utf8);
    drop(plain);

    // Dovecot 2.3 on the same tree: the folder is its modified UTF-7 name, the message
    // the same.
    if dovecot::skip(false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mail_root = d.data_dir().join("mail");
    // Dovecot runs as `mail`: let it reach the tree (the helper chowns the tree itself).
    use std::os::unix::fs::PermissionsExt;
    for p in [d.dir.path().to_path_buf(), d.data_dir()] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let dv = dovecot::Dovecot::start(
        &tmp.path().join("dovecot"),
        dovecot::Options {
            protocol: "imap",
            name: "mailserver-utf8-test",
            mail_location: format!("maildir:{}/%u", mail_root.display()),
            users: format!("{USER}:{{PLAIN}}{PASS}\n"),
            namespace: String::new(),
            extra: String::new(),
            mail_dirs: vec![mail_root.clone()],
        },
    );
    dovecot_sees_the_tree(&dv, mutf7, &small, &env_plain);
}

fn dovecot_sees_the_tree(dv: &dovecot::Dovecot, mutf7: &str, small: &str, ours: &str) {
    let addr: SocketAddr = format!("127.0.0.1:{}", dv.port).parse().unwrap();
    let mut s = Session::login(addr);
    let caps = caps_of(&s.ok("CAPABILITY"));
    // What this comparison rests on: Dovecot 2.3 has neither.
    assert!(
        !caps.contains("UTF8=ACCEPT") && !caps.contains("IMAP4rev2"),
        "{caps}"
    );
    let u = s.ok("LIST \"\" \"Gr*\"");
    assert_eq!(
        u,
        [
            "* LIST (\\Noselect \\HasChildren) \"/\" Gr&APwA3w-e".to_string(),
            format!("* LIST (\\HasNoChildren) \"/\" {mutf7}")
        ],
        "Dovecot's listing of the tree"
    );
    let u = s.ok(&format!("EXAMINE {mutf7}"));
    assert!(has(&u, "* 2 EXISTS"), "{u:?}");
    let u = s.ok("FETCH 1 (RFC822.SIZE ENVELOPE)");
    let env = joined(&u);
    assert!(
        env.contains(&format!("RFC822.SIZE {}", small.len())),
        "{env}"
    );
    // The same ENVELOPE a non-UTF-8 session of ours gets.
    let strip = |t: &str| t[t.find("ENVELOPE").unwrap()..].to_string();
    assert_eq!(strip(&env), strip(ours));
}
