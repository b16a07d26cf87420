//! ESEARCH (RFC 4731), SEARCHRES (RFC 5182), WITHIN (RFC 5032), LIST-EXTENDED (RFC 5258),
//! LIST-STATUS (RFC 5819) and STATUS=SIZE (RFC 8438) (issue #15), each a script run side by
//! side against the real `mailserver` binary and a private Dovecot 2.3 (the reference,
//! `common/dovecot.rs`): the answers must agree command by command after normalising what
//! legitimately differs (free text, UIDVALIDITY values, LIST order), and each test also
//! asserts the answers the RFC's examples give on our server, so it fails on the old
//! behaviour whatever Dovecot says.

// The daemon launcher (`common`) and the async IMAP client (`imap_session_common`) both
// include the one test-config builder.
#![allow(clippy::duplicate_mod)]

mod common;
mod imap_session_common;

#[path = "common/dovecot.rs"]
mod dovecot;

use std::net::SocketAddr;

use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

use common::Daemon;
use dovecot::Dovecot;
use imap_session_common::{Client, PASS, USER};

/// The servers a script runs against.
struct Pair {
    ours: Daemon,
    ours_mail: PathBuf,
    /// Dovecot first: it is stopped (by its config in the directory) before the directory
    /// goes.
    theirs: Option<(Dovecot, tempfile::TempDir)>,
}

impl Pair {
    fn start() -> Pair {
        let ours = Daemon::start();
        let ours_mail = ours.data_dir().join("mail").join(USER);
        let theirs = (!dovecot::skip(false)).then(|| {
            let dir = tempfile::tempdir().unwrap();
            let d = start_dovecot(dir.path());
            (d, dir)
        });
        Pair {
            ours,
            ours_mail,
            theirs,
        }
    }

    /// Runs `script` on both; asserts they agree; returns our normalised answers.
    async fn run(&self, script: &[&str]) -> Vec<Vec<String>> {
        let ours = run(self.ours.imap.unwrap(), &self.ours_mail, script).await;
        if let Some((d, dir)) = &self.theirs {
            let addr: SocketAddr = format!("127.0.0.1:{}", d.port).parse().unwrap();
            let theirs = run(addr, &dir.path().join("mail").join(USER), script).await;
            if std::env::var_os("SHOW_DOVECOT").is_some() {
                for (c, (a, b)) in script.iter().zip(ours.iter().zip(theirs.iter())) {
                    eprintln!("C: {c}\n  ours:    {a:?}\n  dovecot: {b:?}");
                }
            }
            let diffs: Vec<String> = script
                .iter()
                .zip(ours.iter().zip(theirs.iter()))
                .filter(|(_, (a, b))| a != b)
                .map(|(c, (a, b))| format!("{c:?}\n  ours:    {a:?}\n  dovecot: {b:?}"))
                .collect();
            assert!(
                diffs.is_empty(),
                "{} of {} answers differ from Dovecot's:\n{}\n{}",
                diffs.len(),
                script.len(),
                diffs.join("\n"),
                d.log()
            );
        }
        ours
    }
}

/// A private Dovecot serving `alice` with the special-use folders this server creates, and
/// INBOX subscribed as this server subscribes it.
fn start_dovecot(dir: &Path) -> Dovecot {
    let inbox = "  mailbox INBOX {\n    auto = subscribe\n  }\n";
    dovecot::start_imap(
        dir,
        "mailserver-esearch-test",
        format!("{USER}:{{PLAIN}}{PASS}\n"),
        inbox,
        "",
    )
}

/// A message with CRLF line endings; `n` makes each one different (and its sender Smith
/// when `n` is 5 or 7).
fn msg(n: usize) -> String {
    let from = if n == 5 || n == 7 {
        "Smith <smith@example.org>".to_string()
    } else {
        format!("sender{n}@example.org")
    };
    format!(
        "From: {from}\r\nTo: alice@example.org\r\nSubject: message {n}\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n\r\nbody {n}\r\n"
    )
}

/// `APPEND <mailbox> (<flags>) "<date>" {n+}` of message `n`: a fixed INTERNALDATE
/// `days_ago` days back, so WITHIN keys have something to tell apart.
fn append(mailbox: &str, flags: &str, n: usize, days_ago: i64) -> String {
    let m = msg(n);
    let t = chrono::Utc::now() - chrono::Duration::days(days_ago);
    let date = t.format("%d-%b-%Y %H:%M:%S +0000");
    format!(
        "APPEND {mailbox} ({flags}) \"{date}\" {{{}+}}\r\n{m}",
        m.len()
    )
}

/// A step that is not a command: an LF-only file put into `new/` of INBOX by another
/// program (its `S=` size is not its RFC822.SIZE).
const DELIVER: &str = "#deliver";

/// Puts an LF-only message into `new/` of INBOX as an MTA does (tmp, then rename), readable
/// by Dovecot's `mail` user too.
fn deliver(mail: &Path, n: usize) {
    let body = msg(n).replace("\r\n", "\n");
    let name = format!("{}.M{n}P{}.esearch", 1_700_000_000 + n, std::process::id());
    let tmp = mail.join("tmp").join(&name);
    std::fs::create_dir_all(mail.join("tmp")).unwrap();
    std::fs::write(&tmp, body).unwrap();
    let _ = std::process::Command::new("chown")
        .args(["mail:mail"])
        .arg(&tmp)
        .status();
    std::fs::rename(&tmp, mail.join("new").join(&name)).unwrap();
}

async fn run(addr: SocketAddr, mail: &Path, script: &[&str]) -> Vec<Vec<String>> {
    let mut c = Client::connect_to(addr).await;
    c.ok(&format!("LOGIN {USER} {PASS}")).await;
    let mut out = Vec::new();
    for (i, cmd) in script.iter().enumerate() {
        if *cmd == DELIVER {
            deliver(mail, i);
            out.push(Vec::new());
            continue;
        }
        let (u, t) = c.cmd(cmd).await;
        out.push(normalise(&u, &t, cmd, &c.last_tag()));
    }
    c.cmd("LOGOUT").await;
    out
}

/// One command's answer, normalised (see the module docs).
fn normalise(untagged: &[String], tagged: &str, cmd: &str, tag: &str) -> Vec<String> {
    let selecting = cmd.starts_with("SELECT") || cmd.starts_with("EXAMINE");
    let has_exists = untagged.iter().any(|l| l.ends_with(" EXISTS"));
    let mut lines = Vec::new();
    let mut expunged: Vec<u32> = Vec::new();
    for l in untagged {
        if l.starts_with("* CAPABILITY") || l.starts_with("* OK [HIGHESTMODSEQ") {
            continue;
        }
        if l.ends_with(" RECENT") && !selecting && !has_exists {
            continue; // Dovecot re-announces RECENT after expunges; optional (RFC 3501 §7.3.2).
        }
        if let Some(n) = l
            .strip_prefix("* ")
            .and_then(|r| r.strip_suffix(" EXPUNGE"))
            .and_then(|n| n.parse().ok())
        {
            expunged.push(n);
            continue;
        }
        let mut l = l.replace(&format!("(TAG \"{tag}\")"), "(TAG \"T\")");
        for key in ["UIDVALIDITY ", "APPENDUID ", "COPYUID "] {
            if let Some(i) = l.find(key) {
                let start = i + key.len();
                let end = l[start..]
                    .find(|c: char| !c.is_ascii_digit())
                    .map_or(l.len(), |e| start + e);
                l.replace_range(start..end, "V");
            }
        }
        if l.starts_with("* OK [") || l.starts_with("* NO [") {
            if let Some(i) = l.find("] ") {
                l.truncate(i + 1);
            }
        }
        lines.push(l);
    }
    let upper = cmd.to_ascii_uppercase();
    if upper.starts_with("LIST") || upper.starts_with("LSUB") {
        lines.sort();
    }
    if !expunged.is_empty() {
        // Which messages of the view before were expunged, whatever order they came in.
        lines.push(format!(
            "EXPUNGED {:?}",
            imap_session_common::original_positions(&expunged)
        ));
    }
    let word = tagged.split(' ').next().unwrap_or("").to_string();
    let code = tagged
        .strip_prefix(&format!("{word} ["))
        .and_then(|r| r.split([']', ' ']).next())
        .unwrap_or("")
        .to_string();
    lines.push(format!("=> {word} {code}"));
    lines
}

/// The answer to the `i`th occurrence of `cmd` in the script.
fn at<'a>(answers: &'a [Vec<String>], script: &[&str], cmd: &str, i: usize) -> &'a [String] {
    let k = script
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == cmd)
        .nth(i)
        .unwrap_or_else(|| panic!("{cmd:?} #{i} not in the script"))
        .0;
    &answers[k]
}

/// Twelve messages in INBOX, `\Flagged` 2, 5, 10, 11 (5 from Smith), `\Seen` the even
/// ones, message `n` appended `n` days back.
fn twelve() -> Vec<String> {
    (1..=12)
        .map(|n| {
            let mut flags = Vec::new();
            if [2, 5, 10, 11].contains(&n) {
                flags.push("\\Flagged");
            }
            if n % 2 == 0 {
                flags.push("\\Seen");
            }
            append("INBOX", &flags.join(" "), n, n as i64)
        })
        .collect()
}

fn script<'a>(setup: &'a [String], cmds: &[&'a str]) -> Vec<&'a str> {
    setup
        .iter()
        .map(|s| s.as_str())
        .chain(cmds.iter().copied())
        .collect()
}

/// RFC 4731 §4's examples, and every return option alone and together, SEARCH and UID
/// SEARCH, over a result that is empty, one message and several.
#[tokio::test]
async fn esearch_walks_rfc4731_examples() {
    let pair = Pair::start();
    let setup = twelve();
    let cmds = [
        "SELECT INBOX",
        "SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"",
        "SEARCH RETURN () FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"",
        "SEARCH RETURN (MIN MAX) FLAGGED SINCE 1-Feb-2100",
        "UID SEARCH RETURN (MIN MAX) 1:5000",
        "UID SEARCH RETURN (ALL) 1:500",
        "SEARCH RETURN (COUNT) DELETED",
        "SEARCH RETURN (MAX COUNT ALL MIN) SEEN",
        "SEARCH RETURN (ALL) 3",
        "UID SEARCH RETURN (COUNT ALL) UNSEEN",
        "SEARCH RETURN (MIN) CHARSET UTF-8 SUBJECT \"message 1\"",
        "search return (min) from smith",
        "SEARCH RETURN (FOO) ALL",
        "SEARCH RETURN (MIN",
        "SEARCH FLAGGED",
        "NOOP",
    ];
    let s = script(&setup, &cmds);
    let ours = pair.run(&s).await;
    let a = |c: &str| at(&ours, &s, c, 0).to_vec();
    assert_eq!(
        a(cmds[1]),
        ["* ESEARCH (TAG \"T\") MIN 2 COUNT 3", "=> OK "]
    );
    assert_eq!(a(cmds[2]), ["* ESEARCH (TAG \"T\") ALL 2,10:11", "=> OK "]);
    assert_eq!(a(cmds[3]), ["* ESEARCH (TAG \"T\")", "=> OK "]);
    assert_eq!(
        a(cmds[4]),
        ["* ESEARCH (TAG \"T\") UID MIN 1 MAX 12", "=> OK "]
    );
    assert_eq!(a(cmds[5]), ["* ESEARCH (TAG \"T\") UID ALL 1:12", "=> OK "]);
    assert_eq!(a(cmds[6]), ["* ESEARCH (TAG \"T\") COUNT 0", "=> OK "]);
    assert_eq!(
        a(cmds[7]),
        [
            "* ESEARCH (TAG \"T\") MIN 2 MAX 12 ALL 2,4,6,8,10,12 COUNT 6",
            "=> OK "
        ]
    );
    assert_eq!(a(cmds[12]), ["=> BAD "]);
    assert_eq!(a(cmds[13]), ["=> BAD "]);
    assert_eq!(a(cmds[14]), ["* SEARCH 2 5 10 11", "=> OK "]);
}

/// RFC 5182 §2-§4: `RETURN (SAVE)` and `$` in FETCH, STORE, SEARCH, COPY, MOVE and UID
/// EXPUNGE; SAVE with MIN/MAX; a failed SAVE empties `$`; expunged messages leave it;
/// SELECT empties it.
#[tokio::test]
async fn searchres_walks_rfc5182_examples() {
    let pair = Pair::start();
    let setup = twelve();
    let cmds = [
        "SELECT INBOX",
        // Before any SAVE `$` is empty.
        "FETCH $ (FLAGS)",
        "SEARCH $",
        // §3 example 1.
        "SEARCH RETURN (SAVE) FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"",
        "FETCH $ (UID FLAGS RFC822.SIZE)",
        "UID FETCH $ (FLAGS)",
        "SEARCH $ SEEN",
        "UID SEARCH UID $",
        "SEARCH OR $ 1",
        "SEARCH NOT $",
        "SEARCH SUBJECT $",
        // §3 example 2: SAVE with MIN and MAX keeps just those.
        "SEARCH RETURN (SAVE MIN MAX) UNSEEN",
        "FETCH $ (FLAGS)",
        "SEARCH RETURN (SAVE MIN) UNSEEN",
        "UID FETCH $ (FLAGS)",
        "SEARCH RETURN (SAVE ALL MIN) UNSEEN",
        "FETCH $ (FLAGS)",
        "UID SEARCH RETURN (COUNT SAVE) UNSEEN NOT 1",
        "STORE $ +FLAGS.SILENT (\\Answered)",
        "SEARCH ANSWERED",
        "COPY $ Trash",
        "UID COPY $ Junk",
        "STATUS Trash (MESSAGES)",
        // A failed SEARCH ... RETURN (SAVE) empties `$` (§2.1).
        "SEARCH RETURN (SAVE) CHARSET X-NO-SUCH-CHARSET ALL",
        "FETCH $ (FLAGS)",
        "STORE $ +FLAGS (\\Deleted)",
        "COPY $ Trash",
        "MOVE $ Trash",
        "UID EXPUNGE $",
        // Expunged messages leave `$`.
        "SEARCH RETURN (SAVE) 1:3",
        "STORE 2 +FLAGS.SILENT (\\Deleted)",
        "EXPUNGE",
        "FETCH $ (FLAGS)",
        "MOVE $ Archive",
        "SEARCH RETURN (SAVE) 1",
        "STORE $ +FLAGS.SILENT (\\Deleted)",
        "UID EXPUNGE $",
        "SEARCH RETURN (SAVE) 1",
        "UID SEARCH RETURN (SAVE MAX) ALL",
        "UID STORE $ FLAGS (\\Seen \\Draft)",
        "UID SEARCH RETURN (ALL) $ DRAFT",
        "UID MOVE $ Archive",
        "SEARCH RETURN (SAVE) ALL",
        "UID SEARCH RETURN (MIN SAVE) $",
        "FETCH $ (UID)",
        "UNSELECT",
        "FETCH $ (FLAGS)",
        "EXAMINE INBOX",
        "SEARCH $",
        "FETCH $ (FLAGS)",
    ];
    let s = script(&setup, &cmds);
    let ours = pair.run(&s).await;
    let a = |c: &str, i: usize| at(&ours, &s, c, i).to_vec();
    assert_eq!(a("FETCH $ (FLAGS)", 0), ["=> OK "]);
    assert_eq!(a("SEARCH $", 0), ["* SEARCH", "=> OK "]);
    assert_eq!(a(cmds[3], 0), ["=> OK "]);
    assert_eq!(
        a(cmds[4], 0),
        [
            "* 2 FETCH (UID 2 FLAGS (\\Flagged \\Seen \\Recent) RFC822.SIZE 119)",
            "* 10 FETCH (UID 10 FLAGS (\\Flagged \\Seen \\Recent) RFC822.SIZE 122)",
            "* 11 FETCH (UID 11 FLAGS (\\Flagged \\Recent) RFC822.SIZE 122)",
            "=> OK "
        ]
    );
    assert_eq!(a(cmds[6], 0), ["* SEARCH 2 10", "=> OK "]);
    assert_eq!(a(cmds[8], 0), ["* SEARCH 1 2 10 11", "=> OK "]);
    assert_eq!(a(cmds[10], 0), ["* SEARCH", "=> OK "]);
    assert_eq!(
        a("FETCH $ (FLAGS)", 1).len(),
        3,
        "{:?}",
        a("FETCH $ (FLAGS)", 1)
    );
    assert_eq!(a("FETCH $ (FLAGS)", 3), ["=> OK "]);
    assert_eq!(
        a("STATUS Trash (MESSAGES)", 0),
        ["* STATUS Trash (MESSAGES 5)", "=> OK "]
    );
    assert_eq!(a("SEARCH $", 1), ["* SEARCH", "=> OK "]);
}

/// RFC 5032: OLDER and YOUNGER count seconds back from now, alone, negated, with
/// ESEARCH.
#[tokio::test]
async fn within_older_and_younger() {
    let pair = Pair::start();
    let setup = twelve();
    let cmds = [
        "EXAMINE INBOX",
        "SEARCH YOUNGER 200000",
        "SEARCH OLDER 200000",
        "SEARCH NOT OLDER 400000",
        "SEARCH OR YOUNGER 100000 OLDER 1000000",
        "SEARCH RETURN (COUNT) YOUNGER 10",
        "UID SEARCH RETURN (ALL) OLDER 1",
        "SEARCH YOUNGER 0",
        "SEARCH OLDER x",
    ];
    let s = script(&setup, &cmds);
    let ours = pair.run(&s).await;
    let a = |c: &str| at(&ours, &s, c, 0).to_vec();
    assert_eq!(a(cmds[1]), ["* SEARCH 1 2", "=> OK "]);
    assert_eq!(a(cmds[2]), ["* SEARCH 3 4 5 6 7 8 9 10 11 12", "=> OK "]);
    assert_eq!(a(cmds[3]), ["* SEARCH 1 2 3 4", "=> OK "]);
    assert_eq!(a(cmds[4]), ["* SEARCH 1 12", "=> OK "]);
    assert_eq!(a(cmds[5]), ["* ESEARCH (TAG \"T\") COUNT 0", "=> OK "]);
    assert_eq!(a(cmds[6]), ["* ESEARCH (TAG \"T\") UID ALL 1:12", "=> OK "]);
    assert_eq!(a(cmds[7]), ["=> BAD "]);
}

/// RFC 8438: STATUS SIZE is the sum of the messages' RFC822.SIZE, also for a message
/// another program put into `new/` with LF line endings.
#[tokio::test]
async fn status_size() {
    let pair = Pair::start();
    let setup: Vec<String> = (1..=3).map(|n| append("INBOX", "", n, 1)).collect();
    let cmds = [
        "STATUS INBOX (SIZE)",
        "STATUS INBOX (UIDNEXT SIZE MESSAGES)",
        "STATUS Trash (SIZE)",
        DELIVER,
        "STATUS INBOX (MESSAGES SIZE)",
        "SELECT INBOX",
        "FETCH 1:* (RFC822.SIZE)",
        "COPY 4 Trash",
        "STATUS Trash (SIZE MESSAGES)",
    ];
    let s = script(&setup, &cmds);
    let ours = pair.run(&s).await;
    let a = |c: &str| at(&ours, &s, c, 0).to_vec();
    assert_eq!(a(cmds[0]), ["* STATUS INBOX (SIZE 357)", "=> OK "]);
    assert_eq!(a(cmds[2]), ["* STATUS Trash (SIZE 0)", "=> OK "]);
    assert_eq!(
        a(cmds[4]),
        ["* STATUS INBOX (MESSAGES 4 SIZE 476)", "=> OK "]
    );
    assert_eq!(
        a(cmds[8]),
        ["* STATUS Trash (MESSAGES 1 SIZE 119)", "=> OK "]
    );
}

/// The mailboxes of RFC 5258 §5's examples (and `Meat/Beef`, whose parent is only a
/// hierarchy level), with their subscriptions (`Fruit/Peach` does not exist).
const FRUIT: &[&str] = &[
    "CREATE Fruit",
    "CREATE Fruit/Apple",
    "CREATE Fruit/Banana",
    "CREATE Tofu",
    "CREATE Vegetable",
    "CREATE Vegetable/Broccoli",
    "CREATE Vegetable/Corn",
    "CREATE Meat/Beef",
    "SUBSCRIBE Fruit/Banana",
    "CREATE Fruit/Peach",
    "SUBSCRIBE Fruit/Peach",
    "DELETE Fruit/Peach",
    "SUBSCRIBE Vegetable",
    "SUBSCRIBE Vegetable/Broccoli",
    "SUBSCRIBE Meat/Beef",
];

/// RFC 5258 §5's examples: selection and return options, several patterns, `\NonExistent`,
/// CHILDINFO; and the refusals.
#[tokio::test]
async fn list_extended_walks_rfc5258_examples() {
    let pair = Pair::start();
    let cmds = [
        "LIST \"\" %",
        "LIST (SUBSCRIBED) \"\" *",
        "LIST () \"\" %",
        "LIST \"\" % RETURN (CHILDREN)",
        "LIST (REMOTE) \"\" % RETURN (CHILDREN)",
        "LIST (SUBSCRIBED) \"\" * RETURN (CHILDREN)",
        "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" %",
        "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" % RETURN (CHILDREN)",
        "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" *",
        "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" Fruit/%",
        "LIST \"\" (INBOX Drafts \"Fruit/%\")",
        "LIST \"\" (Fruit Fruit/*) RETURN (SUBSCRIBED)",
        "LIST Fruit/ (% Ap*)",
        "LIST \"\" % RETURN (SUBSCRIBED CHILDREN)",
        "LIST (SPECIAL-USE) \"\" *",
        "LIST \"\" * RETURN (SPECIAL-USE)",
        "LIST (SPECIAL-USE) \"\" * RETURN (CHILDREN)",
        "LIST (SPECIAL-USE RECURSIVEMATCH) \"\" %",
        "CREATE Vegetable/Trash2",
        "LIST (SPECIAL-USE RECURSIVEMATCH) \"\" Vegetable",
        "list (subscribed) \"\" \"Vegetable*\" return (children)",
        "LIST () \"\" \"\"",
        "LIST (RECURSIVEMATCH) \"\" %",
        "LIST (FOO) \"\" %",
        "LIST \"\" % RETURN (FOO)",
        "LIST \"\" ()",
        "LIST \"\" % RETURN",
        "LIST \"\" % RETURN ()",
        "list (subscribed) \"\" \"*\" return (status (messages) subscribed)",
        "LIST (SUBSCRIBED REMOTE) {5+}\r\nFruit (/% {2+}\r\n/*)",
        "LIST \"\" (INBOX {5+}\r\nDraft*)",
        "NOOP",
    ];
    let s: Vec<&str> = FRUIT.iter().chain(cmds.iter()).copied().collect();
    let ours = pair.run(&s).await;
    let a = |c: &str| at(&ours, &s, c, 0).to_vec();
    assert_eq!(
        a("LIST (SUBSCRIBED RECURSIVEMATCH) \"\" %"),
        [
            "* LIST () \"/\" Fruit (CHILDINFO (\"SUBSCRIBED\"))",
            "* LIST (\\NonExistent) \"/\" Meat (CHILDINFO (\"SUBSCRIBED\"))",
            "* LIST (\\Subscribed) \"/\" Archive",
            "* LIST (\\Subscribed) \"/\" Drafts",
            "* LIST (\\Subscribed) \"/\" INBOX",
            "* LIST (\\Subscribed) \"/\" Junk",
            "* LIST (\\Subscribed) \"/\" Sent",
            "* LIST (\\Subscribed) \"/\" Trash",
            "* LIST (\\Subscribed) \"/\" Vegetable (CHILDINFO (\"SUBSCRIBED\"))",
            "=> OK "
        ]
    );
    assert!(a("LIST (SUBSCRIBED) \"\" *")
        .contains(&"* LIST (\\Subscribed \\NonExistent) \"/\" Fruit/Peach".to_string()));
    assert_eq!(a("LIST (RECURSIVEMATCH) \"\" %"), ["=> BAD "]);
}

/// RFC 5819 §2: `RETURN (STATUS (..))` answers each selectable mailbox's STATUS right
/// after its LIST line; none for `\Noselect` or `\NonExistent` ones.
#[tokio::test]
async fn list_status_walks_rfc5819_example() {
    let pair = Pair::start();
    let mut s: Vec<String> = FRUIT.iter().map(|c| c.to_string()).collect();
    s.extend((1..=3).map(|n| append("INBOX", if n == 2 { "\\Seen" } else { "" }, n, 1)));
    s.push(append("Fruit/Apple", "", 4, 1));
    let cmds = [
        "LIST \"\" % RETURN (STATUS (MESSAGES UNSEEN))",
        "LIST \"\" * RETURN (STATUS (MESSAGES UIDNEXT SIZE UNSEEN RECENT UIDVALIDITY))",
        "LIST (SUBSCRIBED) \"\" * RETURN (STATUS (MESSAGES))",
        "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" % RETURN (STATUS (MESSAGES) CHILDREN)",
        "LIST \"\" (INBOX Fruit/Apple) RETURN (STATUS (SIZE))",
        "LIST \"\" % RETURN (STATUS (FOO))",
        "LIST \"\" % RETURN (STATUS ())",
    ];
    s.extend(cmds.iter().map(|c| c.to_string()));
    let s: Vec<&str> = s.iter().map(|c| c.as_str()).collect();
    let ours = pair.run(&s).await;
    // The pairs, in our order (the comparison with Dovecot sorts LIST answers).
    let ours_raw = {
        let mut c = Client::connect_to(pair.ours.imap.unwrap()).await;
        c.ok(&format!("LOGIN {USER} {PASS}")).await;
        c.ok(cmds[0]).await
    };
    for (i, l) in ours_raw.iter().enumerate() {
        if let Some(name) = l
            .strip_prefix("* STATUS ")
            .and_then(|r| r.split(' ').next())
        {
            assert!(
                ours_raw[i - 1].ends_with(&format!(" {name}")),
                "{ours_raw:?}"
            );
        }
    }
    let a = |c: &str| at(&ours, &s, c, 0).to_vec();
    assert_eq!(
        a(cmds[4]),
        [
            "* LIST () \"/\" Fruit/Apple",
            "* LIST () \"/\" INBOX",
            "* STATUS Fruit/Apple (SIZE 119)",
            "* STATUS INBOX (SIZE 357)",
            "=> OK "
        ]
    );
    assert!(a(cmds[0]).contains(&"* STATUS INBOX (MESSAGES 3 UNSEEN 2)".to_string()));
    assert!(!a(cmds[0]).iter().any(|l| l.starts_with("* STATUS Meat")));
}

/// The extension forms arrive in pieces of every size (the driver frames lines and
/// literals; the session assembles them): each answer is the one the whole command gets.
#[tokio::test]
async fn extension_commands_in_pieces_of_every_size() {
    let d = Daemon::start();
    let mut c = Client::connect_to(d.imap.unwrap()).await;
    c.ok(&format!("LOGIN {USER} {PASS}")).await;
    for n in 1..=3 {
        let m = msg(n);
        let (_, t) = c
            .cmd(&format!("APPEND INBOX (\\Seen) {{{}+}}\r\n{m}", m.len()))
            .await;
        assert!(t.starts_with("OK"), "{t}");
    }
    c.ok("SELECT INBOX").await;
    let cmds: [(&str, &[&str]); 3] = [
        (
            "UID SEARCH RETURN (MIN COUNT SAVE) CHARSET UTF-8 SUBJECT {7+}\r\nmessage OR $ 1:*\r\n",
            &["* ESEARCH (TAG \"p\") UID MIN 1 COUNT 3"],
        ),
        (
            "FETCH $ (UID)\r\n",
            &[
                "* 1 FETCH (UID 1)",
                "* 2 FETCH (UID 2)",
                "* 3 FETCH (UID 3)",
            ],
        ),
        (
            "LIST (SUBSCRIBED) \"\" (INBOX {6+}\r\nDraft*) RETURN (STATUS (MESSAGES))\r\n",
            &[
                "* LIST (\\Subscribed) \"/\" INBOX",
                "* STATUS INBOX (MESSAGES 3)",
                "* LIST (\\Subscribed) \"/\" Drafts",
                "* STATUS Drafts (MESSAGES 0)",
            ],
        ),
    ];
    for (cmd, want) in cmds {
        let bytes = format!("p {cmd}").into_bytes();
        for size in 1..=bytes.len() {
            for piece in bytes.chunks(size) {
                c.send_raw(piece).await;
                c.w.flush().await.unwrap();
            }
            let (u, t) = c.until_tagged("p").await;
            assert!(t.starts_with("OK"), "{cmd:?} in pieces of {size}: {t}");
            assert_eq!(u, want, "{cmd:?} in pieces of {size}");
        }
    }
}
