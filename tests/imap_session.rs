//! IMAP4rev1 sessions over real sockets on 127.0.0.1:0 (the real driver, session, Maildir
//! store and passwd-file users; see `imap_session_common`), written as C:/S: transcripts of
//! RFC 3501 and the extensions the server announces (ARCHITECTURE.md, "IMAP").

mod imap_session_common;

use base64::Engine;
use imap_session_common::*;
use mailserver::imap::session::ImapSession;
use mailserver::session::{Output, Session, SessionEnv, Step};
use tokio::io::AsyncWriteExt;

fn has(lines: &[String], want: &str) -> bool {
    lines.iter().any(|l| l == want)
}

#[tokio::test]
async fn capabilities_login_and_logout() {
    let s = Server::start(Options::default()).await;
    let mut c = s.connect().await;
    let caps = c.ok("CAPABILITY").await;
    assert_eq!(
        caps,
        ["* CAPABILITY IMAP4rev1 IMAP4rev2 SASL-IR LITERAL+ ID ENABLE IDLE STARTTLS AUTH=PLAIN"]
    );
    // Wrong password and unknown user: same words.
    let (_, t) = c.cmd(&format!("LOGIN {USER} nope")).await;
    assert_eq!(t, "NO [AUTHENTICATIONFAILED] Authentication failed.");
    let (_, t) = c.cmd("LOGIN nobody nope").await;
    assert_eq!(t, "NO [AUTHENTICATIONFAILED] Authentication failed.");
    // Commands of later states are refused before login.
    let (_, t) = c.cmd("SELECT INBOX").await;
    assert!(t.starts_with("BAD"), "{t}");
    let (_, t) = c.cmd(&format!("LOGIN {USER} {PASS}")).await;
    assert_eq!(
        t,
        "OK [CAPABILITY IMAP4rev1 IMAP4rev2 SASL-IR LITERAL+ ID ENABLE IDLE UIDPLUS MOVE NAMESPACE SPECIAL-USE UNSELECT CHILDREN BINARY COMPRESS=DEFLATE ESEARCH SEARCHRES WITHIN LIST-EXTENDED LIST-STATUS STATUS=SIZE CONDSTORE QRESYNC SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES THREAD=REFS UTF8=ACCEPT QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE UNAUTHENTICATE APPENDLIMIT=1048576] Logged in"
    );
    let (_, t) = c.cmd(&format!("LOGIN {USER} {PASS}")).await;
    assert!(t.starts_with("BAD"), "{t}");
    assert_eq!(
        c.ok("NAMESPACE").await,
        ["* NAMESPACE ((\"\" \"/\")) NIL NIL"]
    );
    let id = c.ok("ID (\"name\" \"test\")").await;
    assert!(id[0].starts_with("* ID (\"name\" \"mailserver\""), "{id:?}");
    // RFC 6855: turned on once; an unknown capability is ignored (RFC 5161 §3.1).
    assert_eq!(
        c.ok("ENABLE UTF8=ACCEPT X-NONE").await,
        ["* ENABLED UTF8=ACCEPT"]
    );
    assert_eq!(c.ok("ENABLE UTF8=ACCEPT").await, ["* ENABLED"]);
    let (u, t) = c.cmd("LOGOUT").await;
    assert_eq!(u, ["* BYE Logging out"]);
    assert_eq!(t, "OK Logout completed.");
    assert!(c.eof().await);
}

/// RFC 8437: UNAUTHENTICATE leaves the selected mailbox without expunging it, forgets what
/// ENABLE turned on, and the connection can log in again.
#[tokio::test]
async fn unauthenticate_returns_to_not_authenticated_and_allows_a_new_login() {
    let s = Server::start(Options::default()).await;
    let mut c = s.connect().await;
    // Before login it is refused, and the pre-login capabilities do not name it.
    let (_, t) = c.cmd("UNAUTHENTICATE").await;
    assert!(t.starts_with("BAD"), "{t}");
    let caps = c.ok("CAPABILITY").await;
    assert!(!caps[0].contains("UNAUTHENTICATE"), "{caps:?}");
    c.ok(&format!("LOGIN {USER} {PASS}")).await;
    let caps = c.ok("CAPABILITY").await;
    assert!(
        caps[0].ends_with(" UNAUTHENTICATE APPENDLIMIT=1048576"),
        "{caps:?}"
    );
    let t = c
        .append("INBOX", "\\Deleted", "Subject: kept\r\n\r\nbody\r\n")
        .await;
    assert!(t.starts_with("OK"), "{t}");
    assert_eq!(c.ok("ENABLE IMAP4rev2").await, ["* ENABLED IMAP4rev2"]);
    c.ok("SELECT INBOX").await;
    // Arguments make it another (unknown) command.
    let (_, t) = c.cmd("UNAUTHENTICATE now").await;
    assert!(t.starts_with("BAD"), "{t}");
    let (u, t) = c.cmd("unauthenticate").await;
    assert!(u.is_empty(), "{u:?}");
    assert!(
        t.starts_with("OK [CAPABILITY IMAP4rev1 IMAP4rev2 SASL-IR LITERAL+ ID ENABLE IDLE STARTTLS AUTH=PLAIN]"),
        "{t}"
    );
    // Not authenticated again: mailbox commands are refused, LOGIN works.
    let (_, t) = c.cmd("SELECT INBOX").await;
    assert!(t.starts_with("BAD"), "{t}");
    let (_, t) = c.cmd("UNAUTHENTICATE").await;
    assert!(t.starts_with("BAD"), "{t}");
    c.ok(&format!("LOGIN {USER} {PASS}")).await;
    // ENABLE was reset: IMAP4rev2 can be enabled again, and a rev1 SELECT says RECENT.
    let sel = c.ok("SELECT INBOX").await;
    assert!(has(&sel, "* 1 EXISTS"), "no implicit expunge: {sel:?}");
    assert!(
        sel.iter().any(|l| l.ends_with(" RECENT")),
        "rev1 again: {sel:?}"
    );
    assert_eq!(c.ok("ENABLE IMAP4rev2").await, ["* ENABLED IMAP4rev2"]);
    c.ok("LOGOUT").await;
}

#[tokio::test]
async fn authenticate_plain_with_continuation_and_initial_response() {
    let s = Server::start(Options::default()).await;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut c = s.connect().await;
    c.send("a1 AUTHENTICATE PLAIN").await;
    assert_eq!(c.line().await, "+ ");
    c.send(&b64(&format!("\0{USER}\0{PASS}"))).await;
    let (_, t) = c.until_tagged("a1").await;
    assert!(t.starts_with("OK [CAPABILITY IMAP4rev1"), "{t}");

    let mut c = s.connect().await;
    let (_, t) = c
        .cmd(&format!(
            "AUTHENTICATE PLAIN {}",
            b64(&format!("\0{USER}\0bad"))
        ))
        .await;
    assert_eq!(t, "NO [AUTHENTICATIONFAILED] Authentication failed.");
    let (_, t) = c
        .cmd(&format!(
            "AUTHENTICATE PLAIN {}",
            b64(&format!("{USER}\0{USER}\0{PASS}"))
        ))
        .await;
    assert!(t.starts_with("OK"), "{t}");

    // Cancelled exchange.
    let mut c = s.connect().await;
    c.send("a2 AUTHENTICATE PLAIN").await;
    assert_eq!(c.line().await, "+ ");
    c.send("*").await;
    let (_, t) = c.until_tagged("a2").await;
    assert!(t.starts_with("BAD"), "{t}");
    let (_, t) = c.cmd("AUTHENTICATE CRAM-MD5").await;
    assert!(t.starts_with("NO") || t.starts_with("BAD"), "{t}");
}

#[tokio::test]
async fn list_shows_special_use_and_children() {
    let s = Server::start(Options::default()).await;
    let mut c = s.login().await;
    let l = c.ok("LIST \"\" \"*\"").await;
    for want in [
        "* LIST (\\HasNoChildren) \"/\" INBOX",
        "* LIST (\\HasNoChildren \\Drafts) \"/\" Drafts",
        "* LIST (\\HasNoChildren \\Sent) \"/\" Sent",
        "* LIST (\\HasNoChildren \\Trash) \"/\" Trash",
        "* LIST (\\HasNoChildren \\Junk) \"/\" Junk",
        "* LIST (\\HasNoChildren \\Archive) \"/\" Archive",
    ] {
        assert!(has(&l, want), "{want} not in {l:?}");
    }
    assert_eq!(
        c.ok("LIST \"\" \"\"").await,
        ["* LIST (\\Noselect) \"/\" \"\""]
    );
    c.ok("CREATE Projects/2026").await;
    c.ok("CREATE \"Entw&APw-rfe\"").await;
    let (_, t) = c.cmd("CREATE Projects/2026").await;
    assert!(t.starts_with("NO [ALREADYEXISTS]"), "{t}");
    let l = c.ok("LIST \"\" \"Projects*\"").await;
    // Only the child was created: the parent is a \\Noselect hierarchy level.
    assert!(
        has(&l, "* LIST (\\Noselect \\HasChildren) \"/\" Projects"),
        "{l:?}"
    );
    assert!(
        has(&l, "* LIST (\\HasNoChildren) \"/\" Projects/2026"),
        "{l:?}"
    );
    let l = c.ok("LIST \"\" \"%\"").await;
    assert!(!l.iter().any(|x| x.ends_with("Projects/2026")), "{l:?}");
    assert!(
        has(&l, "* LIST (\\HasNoChildren) \"/\" Entw&APw-rfe"),
        "{l:?}"
    );
    // §6.3.8: reference and pattern are joined as they are (Dovecot's answers).
    let l = c.ok("LIST Projects/ %").await;
    assert_eq!(l, ["* LIST (\\HasNoChildren) \"/\" Projects/2026"]);
    let l = c.ok("LIST Projects %").await;
    assert_eq!(l, ["* LIST (\\Noselect \\HasChildren) \"/\" Projects"]);
    let l = c.ok("LIST \"\" inbox").await;
    assert_eq!(l, ["* LIST (\\HasNoChildren) \"/\" INBOX"]);

    c.ok("SUBSCRIBE Projects/2026").await;
    let l = c.ok("LSUB \"\" \"Projects/*\"").await;
    assert_eq!(l, ["* LSUB () \"/\" Projects/2026"]);
    c.ok("UNSUBSCRIBE Projects/2026").await;
    assert!(c.ok("LSUB \"\" \"Projects/*\"").await.is_empty());

    c.ok("RENAME Projects/2026 Projects/2027").await;
    let l = c.ok("LIST \"\" \"Projects/*\"").await;
    assert_eq!(l, ["* LIST (\\HasNoChildren) \"/\" Projects/2027"]);
    c.ok("DELETE Projects/2027").await;
    let (_, t) = c.cmd("DELETE Projects/2027").await;
    assert!(t.starts_with("NO [NONEXISTENT]"), "{t}");
    let (_, t) = c.cmd("DELETE INBOX").await;
    assert!(t.starts_with("NO"), "{t}");
    let (_, t) = c.cmd("SELECT Nope").await;
    assert!(t.starts_with("NO [NONEXISTENT]"), "{t}");
}

#[tokio::test]
async fn append_select_fetch_store_search() {
    let s = Server::start(Options::default()).await;
    let mut c = s.login().await;
    let m1 = message("first", "Hello world");
    let m2 = message("second", "Another body");
    let t = c.append("INBOX", "\\Flagged", &m1).await;
    assert!(t.starts_with("OK [APPENDUID "), "{t}");
    let validity: u32 = t.split(' ').nth(2).unwrap().parse().unwrap();
    assert_eq!(t, format!("OK [APPENDUID {validity} 1] Append completed."));
    // LITERAL+: no continuation.
    c.send_raw(
        format!(
            "p1 APPEND INBOX (\\Seen $Label1) {{{}+}}\r\n{m2}\r\n",
            m2.len()
        )
        .as_bytes(),
    )
    .await;
    let (_, t) = c.until_tagged("p1").await;
    assert_eq!(t, format!("OK [APPENDUID {validity} 2] Append completed."));
    let t = c.append("Nope", "", &m1).await;
    assert_eq!(t, "NO [TRYCREATE] Mailbox doesn't exist.");

    let (u, t) = c.cmd("SELECT INBOX").await;
    assert_eq!(t, "OK [READ-WRITE] Select completed.");
    assert!(has(&u, "* 2 EXISTS"), "{u:?}");
    assert!(has(&u, "* 2 RECENT"), "{u:?}");
    assert!(has(&u, "* OK [UNSEEN 1] First unseen."), "{u:?}");
    assert!(
        has(&u, &format!("* OK [UIDVALIDITY {validity}] UIDs valid")),
        "{u:?}"
    );
    assert!(has(&u, "* OK [UIDNEXT 3] Predicted next UID"), "{u:?}");
    assert!(
        u.iter()
            .any(|l| l.starts_with("* FLAGS (") && l.contains("$Label1")),
        "{u:?}"
    );

    let u = c.ok("FETCH 1:* (UID FLAGS RFC822.SIZE)").await;
    assert_eq!(
        u,
        [
            format!(
                "* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent) RFC822.SIZE {})",
                m1.len()
            ),
            format!(
                "* 2 FETCH (UID 2 FLAGS (\\Seen \\Recent $Label1) RFC822.SIZE {})",
                m2.len()
            ),
        ]
    );
    let u = c
        .ok("UID FETCH 2 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        .await;
    assert_eq!(
        u,
        ["* 2 FETCH (UID 2 BODY[HEADER.FIELDS (SUBJECT)] {19}\r\nSubject: second\r\n\r\n)"]
    );
    let u = c.ok("FETCH 1 (ENVELOPE)").await;
    assert!(
        u[0].starts_with("* 1 FETCH (ENVELOPE (\"Fri, 27 Nov 2026 10:00:00 +0000\" \"first\""),
        "{u:?}"
    );
    let u = c.ok("FETCH 1 BODYSTRUCTURE").await;
    assert!(
        u[0].starts_with("* 1 FETCH (BODYSTRUCTURE (\"text\" \"plain\""),
        "{u:?}"
    );
    // BODY[] without PEEK sets \Seen and reports it (first, as Dovecot does).
    let u = c.ok("FETCH 1 BODY[]").await;
    assert_eq!(
        u,
        [format!(
            "* 1 FETCH (FLAGS (\\Flagged \\Seen \\Recent) BODY[] {{{}}}\r\n{m1})",
            m1.len()
        )]
    );
    let u = c.ok("FETCH 1 BODY[TEXT]<0.5>").await;
    assert_eq!(u, ["* 1 FETCH (BODY[TEXT]<0> {5}\r\nHello)"]);
    let u = c.ok("FETCH 1 (INTERNALDATE)").await;
    assert!(u[0].starts_with("* 1 FETCH (INTERNALDATE \""), "{u:?}");
    let (_, t) = c.cmd("FETCH 3 FLAGS").await;
    assert!(t.starts_with("BAD"), "{t}");
    assert!(c.ok("UID FETCH 99 FLAGS").await.is_empty());

    let u = c.ok("STORE 1 +FLAGS (\\Answered)").await;
    assert_eq!(
        u,
        ["* 1 FETCH (FLAGS (\\Answered \\Flagged \\Seen \\Recent))"]
    );
    let u = c.ok("UID STORE 2 -FLAGS ($Label1)").await;
    assert_eq!(u, ["* 2 FETCH (UID 2 FLAGS (\\Seen \\Recent))"]);
    assert!(c.ok("STORE 1:2 +FLAGS.SILENT (\\Deleted)").await.is_empty());
    c.ok("STORE 2 FLAGS ()").await;
    // A keyword new to the mailbox is announced in FLAGS/PERMANENTFLAGS first (§7.2.6).
    let u = c.ok("STORE 2 +FLAGS (NewKw)").await;
    assert_eq!(
        u,
        [
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 NewKw)",
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 NewKw \\*)] Flags permitted.",
            "* 2 FETCH (FLAGS (\\Recent NewKw))",
        ]
    );
    assert_eq!(
        c.ok("STORE 2 FLAGS ()").await,
        ["* 2 FETCH (FLAGS (\\Recent))"]
    );
    // Nothing changed: no FETCH (as Dovecot).
    assert!(c.ok("STORE 2 -FLAGS (\\Seen)").await.is_empty());

    assert_eq!(c.ok("SEARCH ALL").await, ["* SEARCH 1 2"]);
    assert_eq!(c.ok("SEARCH DELETED").await, ["* SEARCH 1"]);
    assert_eq!(c.ok("UID SEARCH SUBJECT second").await, ["* SEARCH 2"]);
    assert_eq!(c.ok("SEARCH BODY \"hello WORLD\"").await, ["* SEARCH 1"]);
    assert_eq!(c.ok("SEARCH UNSEEN").await, ["* SEARCH 2"]);
    let (_, t) = c.cmd("SEARCH CHARSET KOI8-R ALL").await;
    assert!(t.starts_with("NO [BADCHARSET"), "{t}");

    // EXPUNGE removes message 1 (\Deleted) and says so.
    assert_eq!(c.ok("EXPUNGE").await, ["* 1 EXPUNGE"]);
    assert_eq!(c.ok("UID SEARCH ALL").await, ["* SEARCH 2"]);
    // STATUS of the selected mailbox counts this session's \Recent too (as Dovecot).
    assert_eq!(
        c.ok("STATUS INBOX (RECENT)").await,
        ["* STATUS INBOX (RECENT 1)"]
    );
    c.ok("CLOSE").await;
    let (_, t) = c.cmd("FETCH 1 FLAGS").await;
    assert!(t.starts_with("BAD"), "{t}");
    let u = c
        .ok("STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN RECENT)")
        .await;
    assert_eq!(
        u,
        [format!(
            "* STATUS INBOX (MESSAGES 1 RECENT 0 UIDNEXT 3 UIDVALIDITY {validity} UNSEEN 1)"
        )]
    );
}

#[tokio::test]
async fn copy_move_uid_expunge_and_examine() {
    let s = Server::start(Options::default()).await;
    let mut c = s.login().await;
    for i in 0..4 {
        c.append("INBOX", "", &message(&format!("m{i}"), "x")).await;
    }
    c.ok("SELECT INBOX").await;
    let (_, t) = c.cmd("COPY 1:2 Archive").await;
    let v: u32 = t.split(' ').nth(2).unwrap().parse().unwrap();
    assert_eq!(t, format!("OK [COPYUID {v} 1:2 1:2] Copy completed."));
    let (_, t) = c.cmd("COPY 1 Nope").await;
    assert_eq!(t, "NO [TRYCREATE] Mailbox doesn't exist.");
    let (u, t) = c.cmd("UID MOVE 3 Trash").await;
    assert_eq!(t, "OK Move completed.");
    assert!(
        u[0].starts_with("* OK [COPYUID ") && u[0].ends_with(" 3 1] Moved UIDs."),
        "{u:?}"
    );
    assert_eq!(u[1..], ["* 3 EXPUNGE"]);
    // UID EXPUNGE only removes the named \Deleted messages.
    c.ok("STORE 1:3 +FLAGS.SILENT (\\Deleted)").await;
    assert_eq!(c.ok("UID EXPUNGE 4").await, ["* 3 EXPUNGE"]);
    assert_eq!(c.ok("UID SEARCH DELETED").await, ["* SEARCH 1 2"]);
    c.ok("UNSELECT").await; // no expunge
    let (u, t) = c.cmd("EXAMINE INBOX").await;
    assert_eq!(t, "OK [READ-ONLY] Examine completed.");
    assert!(has(&u, "* 2 EXISTS"), "{u:?}");
    // As Dovecot: a STORE on a read-only mailbox changes nothing but does not fail.
    let (u, t) = c.cmd("STORE 1 +FLAGS (\\Seen)").await;
    assert_eq!(t, "OK Store ignored with read-only mailbox.");
    assert!(u.is_empty(), "{u:?}");
    // FETCH BODY[] in a read-only mailbox does not set \Seen.
    let u = c.ok("FETCH 1 (BODY[] FLAGS)").await;
    assert!(u[0].ends_with("FLAGS (\\Deleted))"), "{u:?}");
    c.ok("CLOSE").await; // read-only: no expunge
    let u = c.ok("STATUS INBOX (MESSAGES)").await;
    assert_eq!(u, ["* STATUS INBOX (MESSAGES 2)"]);
    let u = c.ok("STATUS Archive (MESSAGES)").await;
    assert_eq!(u, ["* STATUS Archive (MESSAGES 2)"]);
}

#[tokio::test]
async fn other_sessions_changes_are_announced_at_the_allowed_points() {
    let s = Server::start(Options::default()).await;
    let mut a = s.login().await;
    let mut b = s.login().await;
    for i in 0..3 {
        a.append("INBOX", "", &message(&format!("m{i}"), "x")).await;
    }
    a.ok("SELECT INBOX").await;
    b.ok("SELECT INBOX").await;

    // A new message is announced by NOOP.
    a.append("INBOX", "", &message("m3", "x")).await;
    let u = b.ok("NOOP").await;
    assert!(has(&u, "* 4 EXISTS"), "{u:?}");
    // Flag changes too.
    a.ok("STORE 2 +FLAGS.SILENT (\\Flagged)").await;
    let u = b.ok("NOOP").await;
    assert!(
        u.iter()
            .any(|l| l.starts_with("* 2 FETCH (FLAGS (\\Flagged")),
        "{u:?}"
    );

    // An expunge is not announced during FETCH/STORE/SEARCH, only later.
    a.ok("STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    a.ok("EXPUNGE").await;
    let u = b.ok("FETCH 2 (FLAGS)").await;
    assert!(!u.iter().any(|l| l.contains("EXPUNGE")), "{u:?}");
    assert!(
        u.iter()
            .any(|l| l.starts_with("* 2 FETCH (FLAGS (\\Flagged")),
        "{u:?}"
    );
    let u = b.ok("SEARCH ALL").await;
    assert_eq!(u.last().unwrap(), "* SEARCH 1 2 3 4");
    // The expunged message is still message 1 for B; fetching its body says so (Dovecot's
    // answer: NIL for what is gone, OK with the code).
    let (u, t) = b.cmd("FETCH 1 BODY.PEEK[]").await;
    assert_eq!(u, ["* 1 FETCH (BODY[] NIL)"]);
    assert_eq!(t, "OK [EXPUNGEISSUED] Some messages were already expunged.");
    let u = b.ok("NOOP").await;
    assert_eq!(u, ["* 1 EXPUNGE"]);
    assert_eq!(b.ok("SEARCH ALL").await, ["* SEARCH 1 2 3"]);
}

#[tokio::test]
async fn idle_reports_changes_until_done() {
    let s = Server::start(Options::default()).await;
    let mut a = s.login().await;
    let mut b = s.login().await;
    a.append("INBOX", "", &message("m0", "x")).await;
    b.ok("SELECT INBOX").await;
    b.send("i1 IDLE").await;
    assert_eq!(b.line().await, "+ idling");
    a.append("INBOX", "", &message("m1", "x")).await;
    assert_eq!(b.line().await, "* 2 EXISTS");
    // Both messages arrived after no other session had seen them: \Recent here.
    assert_eq!(b.line().await, "* 2 RECENT");
    a.ok("SELECT INBOX").await;
    a.ok("STORE 1 +FLAGS.SILENT (\\Seen)").await;
    assert_eq!(b.line().await, "* 1 FETCH (FLAGS (\\Seen \\Recent))");
    b.send("DONE").await;
    let (_, t) = b.until_tagged("i1").await;
    assert_eq!(t, "OK Idle completed.");
    b.ok("NOOP").await;
}

#[tokio::test]
async fn bad_commands_continue_until_ten_in_a_row() {
    let s = Server::start(Options::default()).await;
    let mut c = s.connect().await;
    let (_, t) = c.cmd("FROB").await;
    assert!(t.starts_with("BAD"), "{t}");
    c.send("").await;
    assert!(c.line().await.starts_with("* BAD"));
    // An over-long line is refused; the session goes on.
    let long = format!("t99 NOOP {}", "x".repeat(70_000));
    c.send(&long).await;
    assert!(c.line().await.contains("BAD"));
    c.ok("NOOP").await;
    for i in 0..9 {
        let (_, t) = c.cmd(&format!("BOGUS{i}")).await;
        assert!(t.starts_with("BAD"), "{t}");
    }
    let (u, t) = c.cmd("STILLBOGUS").await;
    assert!(t.starts_with("BAD") && u.is_empty(), "{t}");
    assert_eq!(c.line().await, "* BYE Too many invalid commands.");
    assert!(c.eof().await);
}

#[tokio::test]
async fn oversize_literals_are_refused_and_skipped() {
    let s = Server::start(Options {
        max_message_bytes: 1000,
        ..Options::default()
    })
    .await;
    let mut c = s.login().await;
    // Synchronizing: refused before the data is sent.
    c.send("a1 APPEND INBOX {5000}").await;
    let (_, t) = c.until_tagged("a1").await;
    assert!(
        t.starts_with("BAD [TOOBIG]") || t.starts_with("NO [TOOBIG]"),
        "{t}"
    );
    // Non-synchronizing: the data arrives anyway and must not be read as commands.
    let junk = "a9 DELETE Sent\r\n".repeat(200);
    c.send_raw(format!("a2 APPEND INBOX {{{}+}}\r\n{junk}\r\n", junk.len()).as_bytes())
        .await;
    let (_, t) = c.until_tagged("a2").await;
    assert!(t.contains("[TOOBIG]"), "{t}");
    let l = c.ok("LIST \"\" Sent").await;
    assert_eq!(l.len(), 1, "Sent still exists: {l:?}");
    c.ok("NOOP").await;
}

#[tokio::test]
async fn protocol_log_redacts_passwords_and_sasl() {
    let s = Server::start(Options {
        log_level: 5,
        ..Options::default()
    })
    .await;
    let mut c = s.connect().await;
    c.ok(&format!("LOGIN {USER} {PASS}")).await;
    c.ok("LOGOUT").await;
    // A password sent as a literal is not logged either.
    let mut c = s.connect().await;
    c.send(&format!("L1 LOGIN {USER} {{{}}}", PASS.len())).await;
    assert!(c.line().await.starts_with('+'));
    c.send(PASS).await;
    let (_, t) = c.until_tagged("L1").await;
    assert!(t.starts_with("OK"), "{t}");
    c.ok("LOGOUT").await;
    let mut c = s.connect().await;
    let ir = base64::engine::general_purpose::STANDARD.encode(format!("\0{USER}\0{PASS}"));
    c.ok(&format!("AUTHENTICATE PLAIN {ir}")).await;
    c.send("a3 AUTHENTICATE PLAIN").await; // already logged in: BAD, no continuation
    c.until_tagged("a3").await;
    c.ok("LOGOUT").await;
    let mut c = s.connect().await;
    c.send("a4 AUTHENTICATE PLAIN").await;
    c.line().await;
    c.send(&ir).await;
    c.until_tagged("a4").await;
    c.ok("LOGOUT").await;
    // Let the sessions end (the `-` record flushes them).
    let log = s.protocol_log_of_ended(4).await;
    assert!(log.starts_with("#Service: IMAP4"), "{log}");
    assert!(log.contains("t1 LOGIN alice ***"), "{log}");
    assert!(log.contains("L1 LOGIN alice ***"), "{log}");
    assert!(log.contains("t1 AUTHENTICATE PLAIN ***"), "{log}");
    assert!(log.contains(",<,***"), "{log}");
    assert!(!log.contains(PASS), "{log}");
    assert!(!log.contains(&ir), "{log}");
    assert!(
        log.contains("authentication succeeded: user=alice mechanism=LOGIN"),
        "{log}"
    );
}

#[tokio::test]
async fn shutdown_ends_idle_with_bye() {
    let s = Server::start(Options::default()).await;
    let mut c = s.login().await;
    c.ok("SELECT INBOX").await;
    c.send("i1 IDLE").await;
    assert_eq!(c.line().await, "+ idling");
    s.shutdown.cancel();
    assert_eq!(c.line().await, "* BYE Server shutting down.");
    assert!(c.eof().await);
}

#[tokio::test]
async fn idle_sees_a_change_made_right_after_it_started() {
    // The change lands between the IDLE start sync and the driver's first wait; the
    // session's receiver was marked at that sync, so the change still wakes it.
    let s = Server::start(Options::default()).await;
    let mut a = s.login().await;
    let mut b = s.login().await;
    b.ok("SELECT INBOX").await;
    for i in 0..5 {
        b.send(&format!("i{i} IDLE")).await;
        a.append("INBOX", "", &message(&format!("race{i}"), "x"))
            .await;
        assert_eq!(b.line().await, "+ idling");
        assert_eq!(b.line().await, format!("* {} EXISTS", i + 1));
        b.line().await; // RECENT
        b.send("DONE").await;
        let (_, t) = b.until_tagged(&format!("i{i}")).await;
        assert_eq!(t, "OK Idle completed.");
    }
}

/// A session as the driver would build it for a peer at `remote`, with or without TLS.
fn session_for(s: &Server, remote: &str, tls: bool) -> ImapSession {
    ImapSession::new(SessionEnv {
        snapshot: s.handles.live.load_full(),
        store: s.handles.store.clone(),
        auth: s.handles.auth.clone(),
        penalty: s.handles.penalty.clone(),
        remote: remote.parse().unwrap(),
        tls,
        proxy_tls: false,
        cancel: Default::default(),
        cluster: None,
        internal: false,
        session_id: 0,
    })
}

fn lines(out: &Output) -> String {
    String::from_utf8(out.encode()).unwrap()
}

#[tokio::test]
async fn plaintext_login_is_disabled_for_remote_peers_without_tls() {
    let s = Server::start(Options::default()).await;
    let mut remote = session_for(&s, "192.0.2.7:40000", false);
    let mut out = Output::default();
    remote.greeting(&mut out);
    assert!(
        lines(&out).contains("STARTTLS LOGINDISABLED]"),
        "{}",
        lines(&out)
    );
    assert!(!lines(&out).contains("AUTH=PLAIN"), "{}", lines(&out));
    let mut out = Output::default();
    let step = remote
        .on_line(format!("a LOGIN {USER} {PASS}").as_bytes(), &mut out)
        .await;
    assert_eq!(step, Step::ReadLine);
    assert_eq!(
        lines(&out),
        "a NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.\r\n"
    );
    let mut out = Output::default();
    remote.on_line(b"b AUTHENTICATE PLAIN", &mut out).await;
    assert!(
        lines(&out).starts_with("b NO [PRIVACYREQUIRED]"),
        "{}",
        lines(&out)
    );
    // After STARTTLS the same peer may log in.
    remote.on_tls();
    let mut out = Output::default();
    remote.on_line(b"c CAPABILITY", &mut out).await;
    assert!(
        lines(&out).contains("IDLE AUTH=PLAIN\r\n"),
        "{}",
        lines(&out)
    );
    let mut out = Output::default();
    remote
        .on_line(format!("d LOGIN {USER} {PASS}").as_bytes(), &mut out)
        .await;
    assert!(
        lines(&out).starts_with("d OK [CAPABILITY"),
        "{}",
        lines(&out)
    );

    // Implicit TLS from the start: no STARTTLS, AUTH=PLAIN offered.
    let mut tls = session_for(&s, "192.0.2.7:40001", true);
    let mut out = Output::default();
    tls.greeting(&mut out);
    assert_eq!(
        lines(&out),
        "* OK [CAPABILITY IMAP4rev1 IMAP4rev2 SASL-IR LITERAL+ ID ENABLE IDLE AUTH=PLAIN] imap.test ready.\r\n"
    );
}

#[tokio::test]
async fn literals_before_login_are_small() {
    let s = Server::start(Options::default()).await;
    let mut c = s.connect().await;
    c.send("a1 LOGIN {100000}").await;
    let (_, t) = c.until_tagged("a1").await;
    assert!(t.starts_with("BAD [TOOBIG]"), "{t}");
    c.send(&format!("a2 LOGIN {{{}}}", USER.len())).await;
    assert!(c.line().await.starts_with('+'));
    c.send(&format!("{USER} {PASS}")).await;
    let (_, t) = c.until_tagged("a2").await;
    assert!(t.starts_with("OK"), "{t}");
}

#[tokio::test]
async fn commands_with_literals_at_every_chunk_size() {
    // The same pipelined input, written in pieces of every size: same replies each time.
    let s = Server::start(Options::default()).await;
    let msg = "Subject: c\r\n\r\nx\r\n";
    let input = format!(
        "c1 LOGIN {{5+}}\r\n{USER} {{{}+}}\r\n{PASS}\r\nc2 APPEND INBOX {{{}+}}\r\n{msg}\r\nc3 NOOP\r\n",
        PASS.len(),
        msg.len()
    );
    let mut baseline: Option<Vec<String>> = None;
    for chunk in 1..=input.len() {
        let mut c = s.connect().await;
        for piece in input.as_bytes().chunks(chunk) {
            c.send_raw(piece).await;
            c.w.flush().await.unwrap();
        }
        let mut got = Vec::new();
        for tag in ["c1", "c2", "c3"] {
            let (u, t) = c.until_tagged(tag).await;
            got.push(format!("{tag} {t}"));
            got.extend(
                u.into_iter()
                    .filter(|l| !l.contains("EXISTS") && !l.contains("RECENT")),
            );
        }
        // APPENDUIDs differ between runs; compare the shape.
        let got: Vec<String> = got
            .into_iter()
            .map(|l| l.split(" [APPENDUID").next().unwrap().to_string())
            .collect();
        assert_eq!(got[0], "c1 OK [CAPABILITY IMAP4rev1 IMAP4rev2 SASL-IR LITERAL+ ID ENABLE IDLE UIDPLUS MOVE NAMESPACE SPECIAL-USE UNSELECT CHILDREN BINARY COMPRESS=DEFLATE ESEARCH SEARCHRES WITHIN LIST-EXTENDED LIST-STATUS STATUS=SIZE CONDSTORE QRESYNC SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES THREAD=REFS UTF8=ACCEPT QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE UNAUTHENTICATE APPENDLIMIT=1048576] Logged in");
        match &baseline {
            None => baseline = Some(got),
            Some(b) => assert_eq!(&got, b, "chunk size {chunk}"),
        }
    }
    let b = baseline.unwrap();
    assert_eq!(b[1], "c2 OK");
    assert_eq!(b[2], "c3 OK NOOP completed.");
}

#[tokio::test]
async fn large_fetch_is_answered_in_batches_in_order() {
    let s = Server::start(Options::default()).await;
    let mut c = s.login().await;
    // 40 messages of ~20 KiB: several batches of at most 256 KiB.
    let body =
        "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstu\r\n".repeat(300);
    for i in 0..40 {
        let t = c
            .append("INBOX", "", &message(&format!("big{i}"), &body))
            .await;
        assert!(t.starts_with("OK"), "{t}");
    }
    c.ok("SELECT INBOX").await;
    let u = c.ok("FETCH 1:* (UID BODY[])").await;
    assert_eq!(u.len(), 40);
    for (i, l) in u.iter().enumerate() {
        let want = message(&format!("big{i}"), &body);
        assert!(
            l.starts_with(&format!(
                "* {} FETCH (UID {} FLAGS (\\Seen \\Recent) BODY[] {{{}}}\r\n",
                i + 1,
                i + 1,
                want.len()
            )),
            "{}",
            &l[..80]
        );
        assert!(l.contains(&want), "message {i} intact");
        assert!(l.ends_with(&format!("{want})")), "{}", &l[l.len() - 40..]);
    }
    // Pipelined commands after a large FETCH are answered in order.
    c.send("x1 FETCH 1:* (FLAGS)\r\nx2 NOOP").await;
    let (u, t) = c.until_tagged("x1").await;
    assert_eq!((u.len(), t.as_str()), (40, "OK Fetch completed."));
    let (_, t) = c.until_tagged("x2").await;
    assert_eq!(t, "OK NOOP completed.");
}

/// The session's lines reach the protocol log with the right kinds (KB Q182504): level 3 has
/// tagged completions and `+` but no untagged data; level 4 adds untagged lines with message
/// content summarised as `<literal N octets>`.
#[tokio::test]
async fn protocol_log_levels_see_the_right_lines() {
    for level in [3u32, 4] {
        let s = Server::start(Options {
            log_level: level,
            ..Options::default()
        })
        .await;
        let mut c = s.login().await;
        let msg = message("logged", "secret body text");
        c.append("INBOX", "", &msg).await;
        c.ok("SELECT INBOX").await;
        c.ok("FETCH 1 BODY.PEEK[]").await;
        c.ok("LOGOUT").await;
        let log = s.protocol_log_of_ended(1).await;
        assert!(
            log.contains(",>,t4 OK Fetch completed."),
            "level {level}: {log}"
        );
        assert!(log.contains(",>,+ OK"), "level {level}: {log}");
        assert!(!log.contains("secret body text"), "level {level}: {log}");
        let untagged = log.contains(",>,* 1 EXISTS");
        let literal = log.contains(&format!(",>,<literal {} octets>", msg.len()));
        let literal_in = log.contains(&format!(",<,<literal {} octets>", msg.len()));
        if level == 3 {
            assert!(!untagged && !literal && !literal_in, "level 3: {log}");
        } else {
            assert!(untagged && literal && literal_in, "level 4: {log}");
            assert!(log.contains(",>,* 1 FETCH (BODY[] {"), "level 4: {log}");
        }
    }
}

#[tokio::test]
async fn hostile_input_gets_answers_and_the_session_survives() {
    let s = Server::start(Options::default()).await;
    let mut c = s.login().await;
    c.append("INBOX", "", &message("one", "x")).await;
    c.ok("SELECT INBOX").await;
    let nasty = [
        "FETCH 99999999999999999999 FLAGS",
        "FETCH 0 FLAGS",
        "FETCH 1:4294967295 FLAGS",
        "UID FETCH 4294967295:* (FLAGS)",
        "FETCH 1 (BODY[1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20]<0.4294967295>)",
        "FETCH 1 BODY[HEADER.FIELDS ()]",
        "FETCH 1 (((FLAGS)))",
        "STORE 1 +FLAGS (\\Recent \\NotAFlag)",
        "STORE 1 FLAGS.SILENT (\\Answered",
        "SEARCH OR OR OR OR OR OR OR OR ALL ALL ALL ALL ALL ALL ALL ALL ALL",
        "SEARCH NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT SEEN",
        "SEARCH HEADER \"\" \"\"",
        "SEARCH SENTBEFORE 31-Feb-2026",
        "SEARCH UID 1:*,*:1,5",
        "SELECT \"&Jjo-!\"",
        "SELECT \"&-&-&\"",
        "CREATE \"\"",
        "CREATE \"a/\"",
        "CREATE \"../../etc\"",
        "CREATE \".hidden\"",
        "RENAME INBOX INBOX",
        "LIST \"\" \"*%*%*%*%*%*%*%*%*%*%*%*%*%*%*%*%*%*%*%*%*%*%\"",
        "LIST \"../\" \"*\"",
        "STATUS INBOX ()",
        "STATUS \"\" (MESSAGES)",
        "COPY 1 \"\"",
        "APPEND INBOX (\\Seen) \"01-Jan-1900 00:00:00 +0000\" {0+}\r\n",
        "APPEND INBOX {3+}\r\n\0\0\0",
        "ID (\"a\" \"b\" \"c\")",
        "ENABLE",
        "\u{1b}[31m red",
        "a\u{0}b NOOP",
        "NOOP extra args",
    ];
    for (i, cmd) in nasty.iter().enumerate() {
        let (u, t) = c.cmd(cmd).await;
        eprintln!("C: {cmd:?}\nS: {u:?}\nS: {t}");
        assert!(
            t.starts_with("OK") || t.starts_with("NO") || t.starts_with("BAD"),
            "{cmd:?} -> {t}"
        );
        if i % 5 == 4 {
            c.ok("NOOP").await; // keep under the consecutive-BAD limit
        }
    }
    // The failed SELECTs above left no mailbox selected (RFC 3501 §6.3.1).
    c.ok("SELECT INBOX").await;
    let u = c.ok("UID FETCH 1:* (UID)").await;
    assert_eq!(u, ["* 1 FETCH (UID 1)"], "the empty APPEND was refused");
    // Nothing escaped the user's tree.
    assert!(!s.dir.path().join("etc").exists());
}

#[tokio::test]
async fn unreadable_users_file_is_a_temporary_failure() {
    let s = Server::start(Options::default()).await;
    std::fs::remove_file(s.dir.path().join("users")).unwrap();
    let mut c = s.connect().await;
    let (_, t) = c.cmd(&format!("LOGIN {USER} {PASS}")).await;
    assert_eq!(t, "NO [UNAVAILABLE] Temporary authentication failure.");
    let ir = base64::engine::general_purpose::STANDARD.encode(format!("\0{USER}\0{PASS}"));
    let (_, t) = c.cmd(&format!("AUTHENTICATE PLAIN {ir}")).await;
    assert_eq!(t, "NO [UNAVAILABLE] Temporary authentication failure.");
    c.ok("NOOP").await;
}

#[tokio::test]
async fn over_long_line_announcing_a_literal_has_its_data_skipped() {
    let s = Server::start(Options::default()).await;
    let mut c = s.login().await;
    // 70 000 octets (over the 64 KiB line limit) ending with {n+}: the data that follows is
    // literal, and must not run as commands.
    let junk = "a9 DELETE Sent\r\n".repeat(100);
    let line = format!(
        "a1 APPEND INBOX {} {{{}+}}\r\n",
        "x".repeat(70_000),
        junk.len()
    );
    c.send_raw(line.as_bytes()).await;
    c.send_raw(junk.as_bytes()).await;
    c.send_raw(b" rest of the refused command\r\n").await;
    c.send("a2 NOOP").await;
    let first = c.line().await;
    assert!(first.contains("BAD"), "{first}");
    let (u, t) = c.until_tagged("a2").await;
    assert!(u.is_empty(), "nothing of the literal ran: {u:?}");
    assert_eq!(t, "OK NOOP completed.");
    let l = c.ok("LIST \"\" Sent").await;
    assert_eq!(l.len(), 1, "Sent still exists: {l:?}");
}

/// ENVELOPE, BODYSTRUCTURE and BODY are cached by UID in the folder's `mailserver.cache`
/// (a message never changes under its UIDVALIDITY and UID, so later FETCHes need not read
/// it). Proved by changing the file behind the server's back: the cached items keep the
/// original while BODY[HEADER.FIELDS] reads the file; a new UIDVALIDITY drops the cache.
#[tokio::test]
async fn envelope_and_structure_are_cached_by_uid() {
    let s = Server::start(Options::default()).await;
    let items = "(ENVELOPE BODYSTRUCTURE BODY)";
    let mut c = s.login().await;
    c.append("INBOX", "", &message("original", "first body"))
        .await;
    c.append("INBOX", "", &message("second", "other body"))
        .await;
    c.ok("SELECT INBOX").await;
    let first = c.ok(&format!("FETCH 1:2 {items}")).await;
    assert!(first[0].contains("\"original\""), "{first:?}");
    assert!(first[1].contains("\"second\""), "{first:?}");
    c.ok("LOGOUT").await;
    let cache = s.maildir().join("mailserver.cache");
    let len = std::fs::metadata(&cache).expect("the cache file").len();
    assert!(len > 12, "{len}");

    // Same size, different subject: only an uncached item can tell.
    let cur = s.maildir().join("cur");
    // The first message's file (by content: Maildir names need not sort in delivery order,
    // e.g. `M99999` vs `M100000` within one second).
    let files: Vec<_> = std::fs::read_dir(&cur)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .contains("Subject: original")
        })
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    std::fs::write(&files[0], text.replace("original", "modified")).unwrap();

    let mut c = s.login().await;
    c.ok("SELECT INBOX").await;
    assert_eq!(c.ok(&format!("FETCH 1:2 {items}")).await, first);
    let h = c.ok("FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]").await;
    assert!(h[0].contains("Subject: modified\r\n"), "{h:?}");
    // An expunged UID's entry goes; a new message gets its own.
    c.ok("STORE 2 +FLAGS.SILENT (\\Deleted)").await;
    c.ok("EXPUNGE").await;
    c.append("INBOX", "", &message("third", "new body")).await;
    let u = c.ok("FETCH 2 ENVELOPE").await;
    assert!(u[0].contains("\"third\""), "{u:?}");
    c.ok("LOGOUT").await;

    // A new UIDVALIDITY (uidlist lost): the cache no longer applies.
    // (`dovecot-uidvalidity` makes the new value differ from the old one.)
    std::fs::remove_file(s.maildir().join("dovecot-uidlist")).unwrap();
    let mut c = s.login().await;
    c.ok("SELECT INBOX").await;
    let u = c.ok("FETCH 1:* ENVELOPE").await;
    assert!(
        u.iter().any(|l| l.contains("\"modified\""))
            && !u.iter().any(|l| l.contains("\"original\"")),
        "{u:?}"
    );
    c.ok("LOGOUT").await;
}

#[tokio::test]
async fn response_to_a_refused_authenticate_is_redacted() {
    let s = Server::start(Options::default()).await;
    let mut remote = session_for(&s, "192.0.2.7:40000", false);
    let ir = base64::engine::general_purpose::STANDARD.encode(format!("\0{USER}\0{PASS}"));
    let redact = |s: &ImapSession, l: &str| {
        s.redact(l.as_bytes())
            .map(|v| String::from_utf8(v).unwrap())
    };
    assert_eq!(redact(&remote, "b AUTHENTICATE PLAIN"), None);
    let mut out = Output::default();
    remote.on_line(b"b AUTHENTICATE PLAIN", &mut out).await;
    assert!(
        lines(&out).starts_with("b NO [PRIVACYREQUIRED]"),
        "{}",
        lines(&out)
    );
    // Privacy required, no `+`: the client sends its response anyway; it is the password.
    assert_eq!(redact(&remote, &ir), Some("***".into()));
    let mut out = Output::default();
    remote.on_line(ir.as_bytes(), &mut out).await;
    assert_eq!(redact(&remote, "c NOOP"), None, "only the one line");
    // With an initial response nothing follows.
    let mut out = Output::default();
    remote
        .on_line(format!("d AUTHENTICATE PLAIN {ir}").as_bytes(), &mut out)
        .await;
    assert_eq!(redact(&remote, "e NOOP"), None);
}

/// A HEADER.FIELDS name sent as a literal holding CRLF comes back as a literal in the item
/// name (an IMAP astring, RFC 3501 §9), so it cannot end the response line and inject an
/// untagged `* 1 EXPUNGE`; ordinary names stay bare atoms, uppercased.
#[tokio::test]
async fn header_field_name_with_crlf_is_sent_back_as_a_literal() {
    let s = Server::start(Options::default()).await;
    let mut c = s.login().await;
    c.append("INBOX", "", &message("first", "Hello")).await;
    c.ok("SELECT INBOX").await;
    let name = "X\r\n* 1 EXPUNGE\r\n";
    c.send(&format!(
        "f1 FETCH 1 BODY.PEEK[HEADER.FIELDS (subject {{{}+}}\r\n{name})]",
        name.len()
    ))
    .await;
    let (u, t) = c.until_tagged("f1").await;
    assert!(t.starts_with("OK"), "{t}");
    assert_eq!(
        u,
        [format!(
            "* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT {{16}}\r\n{name})] {{18}}\r\nSubject: first\r\n\r\n)"
        )]
    );
    let u = c
        .ok("FETCH 1 BODY.PEEK[HEADER.FIELDS (Subject \"A B\" NIL \"\" \"a]b\" From)]")
        .await;
    assert_eq!(
        u,
        ["* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT \"A B\" \"NIL\" \"\" \"A]B\" FROM)] {51}\r\nFrom: Carol <carol@example.org>\r\nSubject: first\r\n\r\n)"]
    );
}

/// Maildir keeps 26 keyword letters per folder: 26 keywords are stored and fetched back;
/// the 27th is refused with RFC 5530 `[LIMIT]` (never accepted and dropped) and changes
/// nothing, and PERMANENTFLAGS stops promising `\*` (RFC 3501 §7.1).
#[tokio::test]
async fn a_27th_keyword_is_refused_with_limit() {
    let s = Server::start(Options::default()).await;
    let mut c = s.login().await;
    c.append("INBOX", "", &message("first", "Hello")).await;
    let sel = c.ok("SELECT INBOX").await;
    assert!(has(&sel, "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted."), "{sel:?}");
    let kws: Vec<String> = (1..=26).map(|i| format!("kw{i:02}")).collect();
    let all = kws.join(" ");
    let u = c.ok(&format!("STORE 1 +FLAGS ({all})")).await;
    assert!(has(&u, &format!("* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft {all})] Flags permitted.")), "{u:?}");
    let fetched = format!("* 1 FETCH (FLAGS (\\Recent {all}))");
    assert_eq!(c.ok("FETCH 1 FLAGS").await, std::slice::from_ref(&fetched));
    for cmd in ["STORE 1 +FLAGS (kw27)", "STORE 1 FLAGS (kw27 \\Seen)"] {
        let (u, t) = c.cmd(cmd).await;
        assert_eq!(t, "NO [LIMIT] Too many keywords in this mailbox.", "{cmd}");
        assert!(u.is_empty(), "{cmd}: {u:?}");
    }
    assert_eq!(c.ok("FETCH 1 FLAGS").await, [fetched]);
    let kwfile = std::fs::read_to_string(s.maildir().join("dovecot-keywords")).unwrap();
    assert!(!kwfile.contains("kw27"), "{kwfile}");
    let sel = c.ok("SELECT INBOX").await;
    assert!(has(&sel, &format!("* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft {all})] Flags permitted.")), "{sel:?}");
}
