//! Dovecot as the reference for expected behaviour (ARCHITECTURE.md, "IMAP"): one IMAP script
//! runs against a private Dovecot 2.3 and against this server, each on a fresh Maildir, and
//! the answers must agree command by command — the completion (OK/NO/BAD), its response code,
//! and the untagged data — after normalising what legitimately differs (free text, timings,
//! UIDVALIDITY values, capability lists, LIST order, `RECENT` re-announcements).
//!
//! Skipped, with the reason printed, when `/usr/sbin/dovecot` or root are missing.

mod imap_session_common;

use std::path::Path;

use imap_session_common::*;

#[path = "common/dovecot.rs"]
mod dovecot;

use dovecot::Dovecot;

/// A private Dovecot serving `alice` from a fresh Maildir, with the special-use folders
/// this server creates for every user.
fn start_dovecot(dir: &Path) -> Dovecot {
    dovecot::start_imap(
        dir,
        "mailserver-imapsession-test",
        format!("{USER}:{{PLAIN}}{PASS}\n"),
        "",
        "",
    )
}

/// The script: commands whose answers both servers must agree on.
fn script() -> Vec<String> {
    let m1 = message("first", "Hello world");
    let m2 = message("second", "Another body");
    let mut s: Vec<String> = [
        "SELECT INBOX",
        "LIST \"\" \"*\"",
        "LIST \"\" \"%\"",
        "LIST \"\" \"\"",
        "STATUS INBOX (MESSAGES UIDNEXT UNSEEN)",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    s.push(format!(
        "APPEND INBOX (\\Seen $Forwarded) {{{}+}}\r\n{m1}",
        m1.len()
    ));
    s.push(format!(
        "APPEND INBOX (\\Flagged) {{{}+}}\r\n{m2}",
        m2.len()
    ));
    s.extend(
        [
            "NOOP",
            "FETCH 1:* (UID FLAGS RFC822.SIZE)",
            "FETCH 2 (BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])",
            "FETCH 2 (BODY.PEEK[HEADER.FIELDS (subject \"x y\" NIL \"\" \"a]b\" \"x\\\"y\")])",
            "FETCH 1 (ENVELOPE BODYSTRUCTURE)",
            "FETCH 2 BODY[TEXT]",
            "FETCH 2 FLAGS",
            "STORE 1 +FLAGS (NewKw \\Answered)",
            "UID STORE 2 -FLAGS.SILENT (\\Seen)",
            "STORE 1:2 FLAGS.SILENT (\\Seen)",
            "SEARCH ALL",
            "SEARCH UNSEEN",
            "SEARCH SUBJECT second",
            "UID SEARCH BODY hello",
            "SEARCH KEYWORD NewKw",
            "FETCH 3 FLAGS",
            "COPY 1 Nope",
            "CREATE Work/Projects",
            "CREATE Work/Projects",
            "LIST \"\" Work*",
            "COPY 1:2 Work/Projects",
            "STATUS Work/Projects (MESSAGES UIDNEXT UNSEEN)",
            "STATUS INBOX (RECENT MESSAGES)",
            "UID FETCH 1:* (FLAGS)",
            "SEARCH OR SEEN FLAGGED",
            "SEARCH NOT DELETED 1:*",
            "STORE 1 -FLAGS (NewKw)",
            "FETCH 1 (BODY.PEEK[1] BODY.PEEK[1.MIME])",
            "FETCH 1 (RFC822.HEADER)",
            "COPY 99 Trash",
            "UID COPY 99 Trash",
            "UID FETCH 99 FLAGS",
            "UID MOVE 1 Trash",
            "STORE 1 +FLAGS.SILENT (\\Deleted)",
            "EXPUNGE",
            "SEARCH ALL",
            "RENAME Work/Projects Work/Done",
            "LIST \"\" \"Work/*\"",
            "DELETE Work/Done",
            "DELETE Work/Done",
            "EXAMINE Trash",
            "FETCH 1 (FLAGS)",
            "CLOSE",
            "CHECK",
            "SELECT INBOX",
            "STORE 1 +FLAGS.SILENT (\\Deleted)",
            "UID EXPUNGE 1:*",
            "UNSELECT",
            "SELECT Nope",
            "FETCH 1 FLAGS",
            "SUBSCRIBE Work",
            "UNSUBSCRIBE Work",
            "NAMESPACE",
            "BOGUS",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    s
}

/// One command's answer, normalised.
fn normalise(untagged: &[String], tagged: &str, cmd: &str) -> Vec<String> {
    let mut lines: Vec<String> = untagged
        .iter()
        .filter(|l| !l.starts_with("* CAPABILITY"))
        // RFC 7162 §3.1.2.1: our mod-sequences are kept for every mailbox, so every SELECT
        // says HIGHESTMODSEQ; Dovecot says it once CONDSTORE was used on the mailbox.
        .filter(|l| !l.starts_with("* OK [HIGHESTMODSEQ "))
        // Dovecot re-announces RECENT after expunges; RFC 3501 leaves that optional.
        .filter(|l| !l.ends_with(" RECENT") || cmd.starts_with("SELECT"))
        .map(|l| {
            let mut l = l.clone();
            for key in ["UIDVALIDITY ", "COPYUID ", "APPENDUID "] {
                if let Some(i) = l.find(key) {
                    let start = i + key.len();
                    let end = l[start..]
                        .find(|c: char| !c.is_ascii_digit())
                        .map_or(l.len(), |e| start + e);
                    l.replace_range(start..end, "V");
                }
            }
            // Response text after a response code is free text.
            if l.starts_with("* OK [") || l.starts_with("* NO [") {
                if let Some(i) = l.find("] ") {
                    l.truncate(i + 1);
                }
            }
            l
        })
        .collect();
    if cmd.starts_with("LIST") || cmd.starts_with("LSUB") {
        lines.sort();
    }
    // The completion: status word and response code, not the text.
    let word = tagged.split(' ').next().unwrap_or("").to_string();
    let code = tagged
        .strip_prefix(&format!("{word} ["))
        .and_then(|r| r.split(']').next())
        .map(|c| {
            let c = c.split(' ').next().unwrap_or("");
            // Dovecot adds [CLIENTBUG] hints in places; the code itself is what matters.
            if c == "CLIENTBUG" {
                String::new()
            } else {
                c.to_string()
            }
        })
        .unwrap_or_default();
    lines.push(format!("=> {word} {code}"));
    lines
}

async fn run(addr: std::net::SocketAddr) -> Vec<(String, Vec<String>)> {
    let mut c = Client::connect_to(addr).await;
    c.ok(&format!("LOGIN {USER} {PASS}")).await;
    let mut out = Vec::new();
    for cmd in script() {
        let (u, t) = c.cmd(&cmd).await;
        out.push((cmd.clone(), normalise(&u, &t, &cmd)));
    }
    c.cmd("LOGOUT").await;
    out
}

#[tokio::test]
async fn answers_match_dovecot() {
    if dovecot::skip(false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dovecot = start_dovecot(tmp.path());
    let theirs = run(format!("127.0.0.1:{}", dovecot.port).parse().unwrap()).await;
    let s = Server::start(Options::default()).await;
    let ours = run(s.addr).await;
    let mut diffs = Vec::new();
    for ((cmd, a), (_, b)) in ours.iter().zip(theirs.iter()) {
        // Deliberate: RFC 5530's [NONEXISTENT] where Dovecot gives no code.
        let nonexistent = a.last().is_some_and(|x| x == "=> NO NONEXISTENT")
            && b.last().is_some_and(|x| x == "=> NO ")
            && a.len() == b.len();
        // Known: Dovecot's FLAGS also lists keywords no message carries any more (from its
        // keyword file, which the store API does not expose); ours lists those in use.
        let strip_kw = |v: &[String]| -> Vec<String> {
            v.iter()
                .map(|l| {
                    if !(l.starts_with("* FLAGS (") || l.starts_with("* OK [PERMANENTFLAGS (")) {
                        return l.clone();
                    }
                    l.replace(['(', ')'], "")
                        .split(' ')
                        .filter(|w| {
                            matches!(*w, "FLAGS" | "OK")
                                || !w.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '$')
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect()
        };
        let old_keywords = cmd.starts_with("SELECT") && strip_kw(a) == strip_kw(b);
        let deliberate = nonexistent || old_keywords;
        if a != b && !deliberate {
            diffs.push(format!("C: {cmd}\n  ours:    {a:?}\n  dovecot: {b:?}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} of {} commands differ:\n{}",
        diffs.len(),
        ours.len(),
        diffs.join("\n")
    );
}
