//! Large APPENDs streamed into the store (ARCHITECTURE.md, "The path of one large APPEND";
//! the "hostile input" issue, APPEND memory amplification), over real sockets against the
//! real session and Maildir store: a message literal over 64 KiB is written to the
//! mailbox's `tmp/` as it arrives and saved byte for byte as a whole-message APPEND saves
//! it (CRLF → LF, `,S=` and `,W=` in the name); every failure — a missing mailbox, a bad
//! rest of the line, a NUL in a `{n}` literal, a client gone mid-literal — leaves nothing
//! behind. Every wait is bounded.

mod imap_session_common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use imap_session_common::*;
use tokio::io::AsyncWriteExt;

/// Over the streaming threshold (64 KiB).
const BIG: usize = 200_000;

/// The stored form of a message as Dovecot stores it: each CRLF becomes LF; everything
/// else (bare LF, bare CR) stays.
fn disk_form(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for (i, &b) in data.iter().enumerate() {
        if b == b'\r' && data.get(i + 1) == Some(&b'\n') {
            continue;
        }
        out.push(b);
    }
    out
}

/// The CRLF size of a stored message: one more octet per LF not preceded by CR.
fn vsize(disk: &[u8]) -> usize {
    disk.len()
        + disk
            .iter()
            .enumerate()
            .filter(|&(i, &b)| b == b'\n' && (i == 0 || disk[i - 1] != b'\r'))
            .count()
}

/// A message of about `size` octets with every kind of line ending: CRLF, bare LF, bare
/// CR, `\r\r\n`, a CRLF across every 64 KiB boundary of the literal, and a CR at the end.
fn tricky_message(size: usize) -> Vec<u8> {
    let mut m = b"From: a@example.org\r\nSubject: big\r\n\r\n".to_vec();
    let line = b"0123456789 abcdefghij\r\nbare lf\nbare cr\rdouble\r\r\n";
    while m.len() < size {
        m.extend_from_slice(line);
    }
    m.truncate(size);
    for k in 1..=size / 65536 {
        let at = k * 65536 - 1;
        if at + 1 < size {
            m[at] = b'\r';
            m[at + 1] = b'\n';
        }
    }
    let last = m.len() - 1;
    m[last] = b'\r';
    m
}

/// Every message file in the folder's `cur/` and `new/`.
fn messages(folder: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for sub in ["cur", "new"] {
        for e in std::fs::read_dir(folder.join(sub)).unwrap() {
            v.push(e.unwrap().path());
        }
    }
    v.sort();
    v
}

/// Every file in any `tmp/` of the user's tree.
fn tmp_files(root: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    for e in std::fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() && p.file_name().unwrap().to_string_lossy().starts_with('.') {
            folders.push(p);
        }
    }
    for f in folders {
        if let Ok(rd) = std::fs::read_dir(f.join("tmp")) {
            v.extend(rd.map(|e| e.unwrap().path()));
        }
    }
    v
}

/// Waits (bounded) until the user's `tmp/` directories are empty.
async fn wait_tmp_empty(root: &Path) {
    let deadline = Instant::now() + WAIT;
    while !tmp_files(root).is_empty() {
        assert!(
            Instant::now() < deadline,
            "left in tmp/: {:?}",
            tmp_files(root)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Checks the one message file of `folder` against `msg`: content, `,S=` and `,W=`.
fn assert_stored(folder: &Path, msg: &[u8]) {
    let files = messages(folder);
    assert_eq!(files.len(), 1, "{files:?}");
    let disk = disk_form(msg);
    assert!(std::fs::read(&files[0]).unwrap() == disk, "content differs");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    let sizes = format!(",S={},W={}:2,", disk.len(), vsize(&disk));
    assert!(name.contains(&sizes), "{name} lacks {sizes}");
}

/// `tag APPEND <args> {n}` with a synchronizing literal: waits for `+`, sends `msg` and the
/// end of the line; returns the untagged lines and the tagged text.
async fn append_sync(c: &mut Client, tag: &str, args: &str, msg: &[u8]) -> (Vec<String>, String) {
    c.send(&format!("{tag} APPEND {args} {{{}}}", msg.len()))
        .await;
    let cont = c.line().await;
    assert_eq!(cont, "+ OK");
    c.send_raw(msg).await;
    c.send_raw(b"\r\n").await;
    c.until_tagged(tag).await
}

#[tokio::test]
async fn large_append_is_stored_as_a_whole_message_append_stores_it() {
    let s = Server::start(Options::default()).await;
    let mut c = s.login().await;
    let msg = tricky_message(BIG);
    let (_, t) = append_sync(&mut c, "a1", "INBOX", &msg).await;
    assert!(
        t.starts_with("OK [APPENDUID ") && t.ends_with(" 1] Append completed."),
        "{t}"
    );
    assert_stored(&s.maildir(), &msg);
    assert!(tmp_files(&s.maildir()).is_empty());
    // Read back: RFC822.SIZE is the CRLF size, BODY[] the message with CRLF line ends.
    c.ok("SELECT INBOX").await;
    let disk = disk_form(&msg);
    let u = c.ok("FETCH 1 (RFC822.SIZE)").await;
    assert_eq!(u, [format!("* 1 FETCH (RFC822.SIZE {})", vsize(&disk))]);
    // The same message through the whole-message path (under the threshold, in pieces)
    // reads back the same.
    let (_, t) = append_sync(&mut c, "a2", "Drafts", &msg[..60_000]).await;
    assert!(t.starts_with("OK"), "{t}");
    assert_stored(&s.maildir().join(".Drafts"), &msg[..60_000]);
}

#[tokio::test]
async fn literal_plus_append_keeps_flags_keywords_date_and_announces_exists() {
    let s = Server::start(Options::default()).await;
    let mut c = s.login().await;
    c.ok("SELECT INBOX").await;
    let msg = tricky_message(BIG);
    let mut cmd = format!(
        "a1 APPEND INBOX (\\Seen \\Flagged $Work) \"05-Mar-2024 10:11:12 +0100\" {{{}+}}\r\n",
        msg.len()
    )
    .into_bytes();
    cmd.extend_from_slice(&msg);
    cmd.extend_from_slice(b"\r\n");
    c.send_raw(&cmd).await;
    let (u, t) = c.until_tagged("a1").await;
    assert!(t.starts_with("OK [APPENDUID "), "{t}");
    assert!(u.contains(&"* 1 EXISTS".to_string()), "{u:?}");
    let u = c.ok("FETCH 1 (FLAGS INTERNALDATE)").await;
    assert_eq!(
        u.last().unwrap(),
        // (INTERNALDATE is kept as an instant: the file's mtime, shown in UTC.)
        "* 1 FETCH (FLAGS (\\Flagged \\Seen \\Recent $Work) INTERNALDATE \"05-Mar-2024 09:11:12 +0000\")"
    );
    assert_stored(&s.maildir(), &msg);
}

#[tokio::test]
async fn mailbox_given_as_a_literal_and_a_literal8_message() {
    let s = Server::start(Options::default()).await;
    let mut c = s.login().await;
    let msg = tricky_message(BIG);
    c.send("a1 APPEND {6}").await;
    assert_eq!(c.line().await, "+ OK");
    c.send(&format!("Drafts {{{}}}", msg.len())).await;
    assert_eq!(c.line().await, "+ OK");
    c.send_raw(&msg).await;
    c.send_raw(b"\r\n").await;
    let (_, t) = c.until_tagged("a1").await;
    assert!(t.starts_with("OK [APPENDUID "), "{t}");
    assert_stored(&s.maildir().join(".Drafts"), &msg);
    // RFC 3516 literal8 (`~{n}`): a NUL octet is allowed in it, as when decoded whole.
    let mut bin = tricky_message(BIG);
    bin[100] = 0;
    let mut cmd = format!("a2 APPEND Sent ~{{{}+}}\r\n", bin.len()).into_bytes();
    cmd.extend_from_slice(&bin);
    cmd.extend_from_slice(b"\r\n");
    c.send_raw(&cmd).await;
    let (_, t) = c.until_tagged("a2").await;
    assert!(t.starts_with("OK [APPENDUID "), "{t}");
    assert_stored(&s.maildir().join(".Sent"), &bin);
}

#[tokio::test]
async fn missing_mailbox_is_refused_before_the_literal() {
    let s = Server::start(Options::default()).await;
    let mut c = s.login().await;
    // Synchronizing: `NO [TRYCREATE]` instead of `+`, so the client never sends the data.
    c.send(&format!("a1 APPEND Nowhere {{{BIG}}}")).await;
    assert_eq!(c.line().await, "a1 NO [TRYCREATE] Mailbox doesn't exist.");
    c.ok("NOOP").await;
    // Non-synchronizing: the same answer; the data that follows is skipped, not run.
    let junk = "a9 DELETE Sent\r\n".repeat(BIG / 16);
    c.send_raw(
        format!(
            "a2 APPEND Nowhere {{{}+}}\r\n{junk}\r\na3 NOOP\r\n",
            junk.len()
        )
        .as_bytes(),
    )
    .await;
    let (u, t) = c.until_tagged("a2").await;
    assert_eq!(
        (u.len(), t.as_str()),
        (0, "NO [TRYCREATE] Mailbox doesn't exist.")
    );
    let (u, t) = c.until_tagged("a3").await;
    assert_eq!((u.len(), t.as_str()), (0, "OK NOOP completed."));
    assert_eq!(c.ok("LIST \"\" Sent").await.len(), 1, "Sent still exists");
    // An invalid mailbox name (not modified UTF-7): Dovecot's NO, before the literal.
    c.send(&format!("a4 APPEND \"&Jjo\" {{{BIG}}}")).await;
    assert_eq!(c.line().await, "a4 NO Mailbox name is not valid mUTF-7.");
    assert!(messages(&s.maildir()).is_empty());
    assert!(tmp_files(&s.maildir()).is_empty());
}

#[tokio::test]
async fn refused_after_the_literal_leaves_nothing_behind() {
    let s = Server::start(Options::default()).await;
    let mut c = s.login().await;
    let msg = tricky_message(BIG);
    // What the whole-message path answers to the same command with a short message.
    let small = |tail: &str, data: &[u8]| {
        let mut v = format!("s APPEND INBOX {{{}+}}\r\n", data.len()).into_bytes();
        v.extend_from_slice(data);
        v.extend_from_slice(tail.as_bytes());
        v.extend_from_slice(b"\r\n");
        v
    };
    let big = |tag: &str, tail: &str, data: &[u8]| {
        let mut v = format!("{tag} APPEND INBOX {{{}+}}\r\n", data.len()).into_bytes();
        v.extend_from_slice(data);
        v.extend_from_slice(tail.as_bytes());
        v.extend_from_slice(b"\r\n");
        v
    };
    let mut with_nul = msg.clone();
    with_nul[70_000] = 0;
    for (i, (tail, data, small_data)) in [
        (" junk", &msg, &b"abc"[..]),
        (")", &msg, b"abc"),
        ("", &with_nul, b"a\0c"),
    ]
    .into_iter()
    .enumerate()
    {
        c.send_raw(&small(tail, small_data)).await;
        let (_, want) = c.until_tagged("s").await;
        assert!(want.starts_with("BAD "), "{want}");
        let tag = format!("b{i}");
        c.send_raw(&big(&tag, tail, data)).await;
        let (_, got) = c.until_tagged(&tag).await;
        assert_eq!(got, want, "tail {tail:?}");
    }
    // Another literal after the message (MULTIAPPEND, not offered): refused, its data skipped.
    let mut v = big("m1", " {16+}", &msg);
    v.truncate(v.len() - 2);
    v.extend_from_slice(b"\r\nm9 DELETE Sent\r\n\r\nm2 NOOP\r\n");
    c.send_raw(&v).await;
    let (_, t) = c.until_tagged("m1").await;
    assert!(t.starts_with("BAD "), "{t}");
    let (u, t) = c.until_tagged("m2").await;
    assert_eq!((u.len(), t.as_str()), (0, "OK NOOP completed."));
    assert_eq!(c.ok("LIST \"\" Sent").await.len(), 1, "Sent still exists");
    assert!(messages(&s.maildir()).is_empty());
    wait_tmp_empty(&s.maildir()).await;
}

#[tokio::test]
async fn a_client_gone_mid_literal_leaves_no_temporary_file() {
    let s = Server::start(Options {
        max_message_bytes: 50 << 20,
        ..Options::default()
    })
    .await;
    let mut c = s.login().await;
    let total = 20 << 20;
    c.send(&format!("a1 APPEND INBOX {{{total}}}")).await;
    assert_eq!(c.line().await, "+ OK");
    // Half the message: it is on disk in tmp/ before the literal ends (streamed, not held).
    let piece = vec![b'x'; 1 << 20];
    for _ in 0..10 {
        c.send_raw(&piece).await;
    }
    c.w.flush().await.unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let on_disk: u64 = tmp_files(&s.maildir())
            .iter()
            .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .sum();
        if on_disk >= 8 << 20 {
            break;
        }
        assert!(Instant::now() < deadline, "only {on_disk} octets in tmp/");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(c);
    wait_tmp_empty(&s.maildir()).await;
    assert!(messages(&s.maildir()).is_empty());
    // The mailbox works as before.
    let mut c = s.login().await;
    let (_, t) = append_sync(&mut c, "a2", "INBOX", &tricky_message(BIG)).await;
    assert!(t.starts_with("OK [APPENDUID "), "{t}");
}

#[tokio::test]
async fn streamed_append_split_at_every_position() {
    // The command line, the start of the data, and the end of the data with the end of the
    // line, each split in two writes at every position: same answer, same stored message.
    let s = Server::start(Options::default()).await;
    let mut c = s.login().await;
    c.ok("SELECT INBOX").await;
    let msg = tricky_message(70_000);
    let head = format!(
        "c APPEND \"INBOX\" (\\Seen $K) \"01-Jan-2024 00:00:00 +0000\" {{{}+}}\r\n",
        msg.len()
    );
    let mut input = head.clone().into_bytes();
    input.extend_from_slice(&msg);
    input.extend_from_slice(b"\r\n");
    let cuts: Vec<usize> = (1..head.len() + 8)
        .chain(input.len() - 8..input.len())
        .chain([head.len() + 65535, head.len() + 65536, head.len() + 65537])
        .collect();
    for (n, cut) in cuts.iter().enumerate() {
        c.send_raw(&input[..*cut]).await;
        c.w.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
        c.send_raw(&input[*cut..]).await;
        let (u, t) = c.until_tagged("c").await;
        assert!(
            t.starts_with("OK [APPENDUID ")
                && t.ends_with(&format!(" {}] Append completed.", n + 1)),
            "cut {cut}: {t}"
        );
        assert!(
            u.contains(&format!("* {} EXISTS", n + 1)),
            "cut {cut}: {u:?}"
        );
    }
    let disk = disk_form(&msg);
    for f in messages(&s.maildir()) {
        assert!(std::fs::read(&f).unwrap() == disk, "{f:?}");
    }
    assert_eq!(messages(&s.maildir()).len(), cuts.len());
    let u = c.ok(&format!("FETCH {} (FLAGS)", cuts.len())).await;
    assert!(u.last().unwrap().contains("(\\Seen \\Recent $K)"), "{u:?}");
}

#[tokio::test]
async fn protocol_log_of_a_streamed_literal_is_that_of_a_whole_one() {
    // Level 4 logs one `<literal N octets>` for the whole message; level 5 its lines, the
    // same records whatever the pieces it was read in.
    for level in [4, 5] {
        let s = Server::start(Options {
            log_level: level,
            ..Options::default()
        })
        .await;
        let mut c = s.login().await;
        let msg = tricky_message(BIG);
        let (_, t) = append_sync(&mut c, "a1", "INBOX", &msg).await;
        assert!(t.starts_with("OK"), "{t}");
        c.ok("LOGOUT").await;
        drop(c);
        let log = s.protocol_log();
        let client: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(",<,"))
            .map(|l| l.split(",<,").nth(1).unwrap())
            .collect();
        let at = client
            .iter()
            .position(|l| l.starts_with("a1 APPEND"))
            .unwrap();
        if level == 4 {
            assert_eq!(
                client[at..at + 3],
                [
                    &format!("a1 APPEND INBOX {{{BIG}}}")[..],
                    &format!("<literal {BIG} octets>"),
                    ""
                ]
            );
        } else {
            // The message's records: one per line, split at LF (CR kept, escaped).
            let lines = msg.split(|&b| b == b'\n').count();
            let records = client.len() - at - 1 - 2; // the APPEND line; "" and LOGOUT after
            assert_eq!(records, lines, "{:?}", &client[at..at + 5]);
        }
    }
}
