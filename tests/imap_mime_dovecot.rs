//! Differential test: our ENVELOPE / BODYSTRUCTURE / BODY / section output against Dovecot's,
//! on the same messages.
//!
//! A private Dovecot (see `/work/shared/DOVECOT.md`) serves a Maildir holding [`messages`];
//! a tiny raw-socket client fetches each message's items and `BODY.PEEK[]`, and our
//! `imap::mime` functions, run on exactly the bytes Dovecot served, must produce the same
//! bytes item by item. Skipped (with a printed reason) when Dovecot is not installed or the
//! test does not run as root (Dovecot needs root to switch to the `mail` uid).
//!
//! Deliberate differences are listed in [`KNOWN_DIFFERENCES`] and asserted to still differ
//! (so the list cannot go stale silently).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItemName};
use mailserver::imap::decode::parse_command;
use mailserver::imap::encode::fetch::FetchWriter;
use mailserver::imap::section::Section;
use mailserver::mime;
use mailserver::session::Output;

/// (name, message with LF line endings; written with CRLF).
fn messages() -> Vec<(&'static str, String)> {
    let v: Vec<(&str, &str)> = vec![
        ("plain", "From: Alice Example <alice@example.org>\nTo: Bob <bob@example.net>\nSubject: Hello\nDate: Fri, 27 Nov 2026 10:00:00 +0000\nMessage-ID: <plain@example.org>\n\nHello Bob,\nhow are you?\n"),
        ("no-content-type", "From: a@example.org\nSubject: no type\n\nbody line\n"),
        ("charset-upper", "From: a@example.org\nContent-Type: TEXT/Plain; Charset=\"ISO-8859-1\"; format=flowed\nContent-Transfer-Encoding: Quoted-Printable\n\nCaf=E9\n"),
        ("alternative", "From: a@example.org\nTo: b@example.org\nSubject: alt\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"alt-1\"\n\nThis is a multi-part message.\n--alt-1\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nplain version\n--alt-1\nContent-Type: text/html; charset=utf-8\n\n<p>html version</p>\n--alt-1--\n"),
        ("mixed-attachment", "From: a@example.org\nSubject: attachment\nContent-Type: multipart/mixed; boundary=mix\n\n--mix\nContent-Type: text/plain\n\nsee attached\n--mix\nContent-Type: application/pdf; name=\"report.pdf\"\nContent-Disposition: attachment; filename=\"report.pdf\"\nContent-Transfer-Encoding: base64\nContent-ID: <att1@example.org>\nContent-Description: The report\n\nJVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K\nZW5kc3RyZWFtCmVuZG9iagp0cmFpbGVyCjw8Pj4KJSVFT0YK\n--mix--\n"),
        ("nested", "From: a@example.org\nSubject: nested\nContent-Type: multipart/mixed; boundary=\"outer\"\n\n--outer\nContent-Type: multipart/alternative; boundary=\"inner\"\n\n--inner\nContent-Type: text/plain\n\ntext\n--inner\nContent-Type: text/html\n\n<i>text</i>\n--inner--\n\n--outer\nContent-Type: image/png\nContent-Transfer-Encoding: base64\nContent-Disposition: inline\n\niVBORw0KGgo=\n--outer--\nepilogue\n"),
        ("rfc822", "From: a@example.org\nSubject: Fwd: original\nContent-Type: multipart/mixed; boundary=fw\n\n--fw\nContent-Type: text/plain\n\nforwarded below\n--fw\nContent-Type: message/rfc822\n\nFrom: Orig Sender <orig@example.com>\nTo: x@example.com\nSubject: original\nDate: Mon, 2 Nov 2026 08:00:00 -0500\nMessage-ID: <orig@example.com>\nContent-Type: multipart/alternative; boundary=in\n\n--in\nContent-Type: text/plain\n\norig text\n--in\nContent-Type: text/html\n\n<b>orig</b>\n--in--\n\n--fw--\n"),
        ("rfc822-top", "From: a@example.org\nSubject: top rfc822\nContent-Type: message/rfc822\n\nFrom: inner@example.org\nSubject: inner\n\ninner body\n"),
        ("encoded-words", "From: =?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <joerg@example.de>\nTo: =?ISO-8859-1?B?SvZyZw==?= <j@example.de>\nSubject: =?UTF-8?B?R3LDvMOfZQ==?= and more\nContent-Type: text/plain; charset=utf-8\n\nGruesse\n"),
        ("groups", "From: a@example.org\nTo: undisclosed-recipients:;\nCc: Team: one@example.org, \"Two, Person\" <two@example.org>;, three@example.org\nBcc: hidden@example.org\nReply-To: Replies <r@example.org>\nSender: s@example.org\nSubject: groups\n\nx\n"),
        ("missing-end-boundary", "From: a@example.org\nSubject: no end\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n--b1\nContent-Type: text/plain\n\nfirst\n--b1\nContent-Type: text/plain\n\nsecond, never closed\n"),
        ("bad-header-line", "From: a@example.org\nThis line has no colon\nSubject: after bad line\n\nbody\n"),
        ("folded-headers", "From: \"Long Name\"\n <long@example.org>\nSubject: a subject\n\tthat is folded\n  twice\nTo: x@example.org,\n y@example.org\n\nbody\n"),
        ("comments", "From: a@example.org (Alice in comment)\nTo: <b@example.org> (trailing)\nSubject: comments\nContent-Type: text/plain (plain text); charset=us-ascii (ascii)\n\nbody\n"),
        ("language-location", "From: a@example.org\nSubject: ext\nContent-Type: text/plain; charset=utf-8\nContent-Language: en, de\nContent-Location: http://example.org/x\nContent-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n\nbody\n"),
        ("digest", "From: a@example.org\nSubject: digest\nContent-Type: multipart/digest; boundary=dg\n\n--dg\n\nFrom: d1@example.org\nSubject: one\n\nfirst digest\n--dg\nContent-Type: text/plain\n\nnot a message\n--dg--\n"),
        ("no-body", "From: a@example.org\nSubject: headers only\n"),
        ("empty-subject", "From: \nTo: b@example.org\nSubject:\nIn-Reply-To: <prev@example.org>\n\nbody\n"),
        ("quotes-in-subject", "From: a@example.org\nSubject: He said \"hi\" \\ and \"bye\" \\\\ \"\"\n\nx\n"),
        ("eight-bit-header", "From: Jörg <joerg@example.de>\nSubject: Grüße\nContent-Type: text/plain; charset=utf-8\n\nÄÖÜ\n"),
        ("no-final-newline", "From: a@example.org\nSubject: nonl\n\nline one\nline two"),
        ("boundary-whitespace", "From: a@example.org\nContent-Type: multipart/mixed;\n boundary=\"ws\"\n\n--ws  \nContent-Type: text/plain\n\npart\n--ws--  \n"),
        ("rfc2231-params", "From: a@example.org\nContent-Type: multipart/mixed; boundary=r\n\n--r\nContent-Type: application/octet-stream;\n name*0=\"long file \";\n name*1=\"name.bin\"\nContent-Disposition: attachment;\n filename*=utf-8''%C3%A4rger.txt\n\nAAAA\n--r--\n"),
        ("case-types", "From: a@example.org\nContent-Type: Multipart/Mixed; Boundary=\"CaseB\"\n\n--CaseB\nContent-Type: Text/HTML; CHARSET=UTF-8\nContent-Transfer-Encoding: BASE64\n\nPGI+eDwvYj4=\n--CaseB--\n"),
        ("boundary-prefix", "From: a@example.org\nContent-Type: multipart/mixed; boundary=\"abc\"\n\n--abc\nContent-Type: multipart/alternative; boundary=\"abcdef\"\n\n--abcdef\n\ninner one\n--abcdef--\n--abc\n\nouter two\n--abc--\n"),
        ("rfc822-in-rfc822", "From: a@example.org\nSubject: double\nContent-Type: message/rfc822\n\nFrom: mid@example.org\nSubject: middle\nContent-Type: message/rfc822\n\nFrom: deep@example.org\nSubject: deepest\n\ndeep body\n"),
        ("rfc822-base64", "From: a@example.org\nContent-Type: multipart/mixed; boundary=q\n\n--q\nContent-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\nRnJvbTogeEB5Cgpib2R5Cg==\n--q--\n"),
        ("empty-parts", "From: a@example.org\nContent-Type: multipart/mixed; boundary=e\n\n--e\n--e\n\n--e\nContent-Type: text/plain\n\n--e--\n"),
        ("odd-addresses", "From: <>\nTo: a@example.org, , \"Quoted Local\"@example.org, user-no-domain, Name <route@x> (comment)\nCc: <@relay1,@relay2:routed@example.org>\nBcc: Group One: m1@example.org, Nested Name <m2@example.org>;, Empty Group:;\nReply-To:\nSender: \"Escaped \\\"Quote\\\"\" <esc@example.org>\nIn-Reply-To: <a@x>\n <b@y>\nMessage-ID: <id@example.org> (comment)\nSubject: odd\n\nx\n"),
        ("duplicate-headers", "From: first@example.org\nFrom: second@example.org\nSubject: one\nSubject: two\nContent-Type: text/plain; charset=utf-8\nContent-Type: text/html\n\nbody\n"),
        ("long-header", "From: a@example.org\nSubject: LONG_SUBJECT\n\nbody\n"),
        ("whitespace-values", "From:    spaced@example.org   \nSubject:   \t spaced subject \t \nDate:   Fri, 27 Nov 2026 10:00:00 +0000   \nContent-Type:   text/plain  ;  charset = \"utf-8\"  \n\nbody\n"),
        ("folded-mime-fields", "From: a@example.org\nContent-Type: multipart/mixed; boundary=f\n\n--f\nContent-Type: text/plain;\n\tcharset=\"utf-8\"\nContent-Description:   folded\n  description\t here  \nContent-ID:\n <cid@example.org>\nContent-Disposition: inline;\n filename=\"a b.txt\"\nContent-Language: EN-us\n\nx\n--f--\n"),
        ("header-only-part", "From: a@example.org\nContent-Type: multipart/mixed; boundary=h\n\n--h\nContent-Type: text/plain\n--h\nContent-Type: text/plain\n\n--h--\n"),
        ("nested-unclosed", "From: a@example.org\nContent-Type: multipart/mixed; boundary=outer\n\n--outer\nContent-Type: multipart/alternative; boundary=inner\n\n--inner\nContent-Type: text/plain\n\ninner text, never closed\n--outer\nContent-Type: text/plain\n\nafter\n--outer--\n"),
        ("stray-brackets", "From: a@example.org\nReply-To: a]b@example.org\nTo: x, y]w\nCc: y ], z\nBcc: g: a]b;\nSubject: brackets\n\nbody\n"),
        ("digest-unclosed-header-only", "From: a@example.org\nContent-Type: multipart/mixed; boundary=outer\n\n--outer\nContent-Type: multipart/digest; boundary=dg\n\n--dg\n\nSubject: header only\n--outer\nContent-Type: text/plain\n\nafter\n--outer--\n"),
        ("multipart-no-boundary", "From: a@example.org\nContent-Type: multipart/mixed\n\nno boundary here\n"),
    ];
    v.into_iter()
        .map(|(n, m)| {
            let m = m.replace("LONG_SUBJECT", &"word ".repeat(2000));
            (n, m.replace('\n', "\r\n"))
        })
        .collect()
}

/// Items where we knowingly differ from Dovecot: (message name, item name, reason).
const KNOWN_DIFFERENCES: &[(&str, &str, &str)] = &[];

const FETCH_ITEMS: &str = "BODY.PEEK[] ENVELOPE BODYSTRUCTURE BODY BODY.PEEK[1.MIME] BODY.PEEK[1] BODY.PEEK[TEXT] BODY.PEEK[HEADER] BODY.PEEK[HEADER.FIELDS (From Subject)] BODY.PEEK[HEADER.FIELDS.NOT (From Subject)] RFC822.SIZE BODY.PEEK[2] BODY.PEEK[2.MIME] BODY.PEEK[2.HEADER] BODY.PEEK[2.TEXT] BODY.PEEK[2.1] BODY.PEEK[2.1.MIME] BODY.PEEK[2.2] BODY.PEEK[1.1] BODY.PEEK[2.HEADER.FIELDS (subject)] BODY.PEEK[]<5.10> BODY.PEEK[1]<0.3> BODY.PEEK[TEXT]<100000.5> BODY.PEEK[3.MIME] BODY.PEEK[3] BODY.PEEK[1.2.MIME] BODY.PEEK[2.1.1]";

#[path = "common/dovecot.rs"]
mod dovecot;

use dovecot::Dovecot;

/// A private Dovecot serving `tester` (password `secret`) from `dir/mail`, indexes in
/// `dir/index`; returns once it listens.
fn start_dovecot(dir: &Path) -> Dovecot {
    let d = dir.display();
    Dovecot::start(
        dir,
        dovecot::Options {
            protocol: "imap",
            name: "mimediff",
            mail_location: format!("maildir:{d}/mail/%u:INDEX={d}/index/%u"),
            users: "tester:{PLAIN}secret::::::\n".into(),
            namespace: String::new(),
            extra: String::new(),
            mail_dirs: vec![dir.join("mail"), dir.join("home"), dir.join("index")],
        },
    )
}

/// Reads one response line, including any literals it announces.
fn read_response(r: &mut BufReader<TcpStream>) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..10_000 {
        let mut line = Vec::new();
        let n = r.read_until(b'\n', &mut line).expect("read from dovecot");
        assert!(n > 0, "dovecot closed the connection");
        out.extend_from_slice(&line);
        let t = line.strip_suffix(b"\r\n").unwrap_or(&line);
        if let Some(open) = t.iter().rposition(|&b| b == b'{') {
            if t.ends_with(b"}") {
                if let Ok(len) = std::str::from_utf8(&t[open + 1..t.len() - 1])
                    .unwrap_or("x")
                    .parse::<usize>()
                {
                    let mut lit = vec![0; len];
                    r.read_exact(&mut lit).unwrap();
                    out.extend_from_slice(&lit);
                    continue;
                }
            }
        }
        return out;
    }
    panic!("response too long");
}

/// Splits `* n FETCH (item value item value ...)` into (item name, raw value) pairs.
fn split_fetch(resp: &[u8]) -> Vec<(String, Vec<u8>)> {
    let open = resp.iter().position(|&b| b == b'(').unwrap();
    let body = &resp[open + 1..resp.len() - 3]; // strip ")\r\n"
    let mut items = Vec::new();
    let mut i = 0;
    while i < body.len() {
        // Name: up to a space not inside [...].
        let start = i;
        let mut depth = 0;
        while i < body.len() && !(body[i] == b' ' && depth == 0) {
            match body[i] {
                b'[' => depth += 1,
                b']' => depth -= 1,
                _ => {}
            }
            i += 1;
        }
        let name = String::from_utf8_lossy(&body[start..i]).into_owned();
        i += 1;
        let vstart = i;
        i = skip_value(body, i);
        items.push((name, body[vstart..i].to_vec()));
        if i < body.len() && body[i] == b' ' {
            i += 1;
        }
    }
    items
}

/// Index just past the value starting at `i` (atom, quoted, literal or parenthesised list).
fn skip_value(b: &[u8], mut i: usize) -> usize {
    match b[i] {
        b'"' => {
            i += 1;
            while b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i + 1
        }
        b'{' => {
            let close = i + b[i..].iter().position(|&c| c == b'}').unwrap();
            let len: usize = std::str::from_utf8(&b[i + 1..close])
                .unwrap()
                .parse()
                .unwrap();
            close + 3 + len
        }
        b'(' => {
            i += 1;
            while b[i] != b')' {
                if b[i] == b' ' {
                    i += 1;
                    continue;
                }
                i = skip_value(b, i);
            }
            i + 1
        }
        _ => {
            while i < b.len() && !matches!(b[i], b' ' | b')' | b'(') {
                i += 1;
            }
            i
        }
    }
}

/// Our response for one message: the FETCH command is decoded with our framing/imap-codec
/// path and every item written by `FetchWriter`, as the session will.
fn ours(seq: u32, raw: &[u8], fetch_command: &[u8]) -> Vec<(String, Vec<u8>)> {
    let cmd = parse_command(fetch_command).expect("our decoder accepts the FETCH command");
    let CommandBody::Fetch {
        macro_or_item_names: MacroOrMessageDataItemNames::MessageDataItemNames(items),
        ..
    } = cmd.body
    else {
        panic!("not a FETCH with items");
    };
    let raw: std::sync::Arc<[u8]> = raw.into();
    let msg = mime::parse(&raw);
    let mut out = Output::default();
    let mut w = FetchWriter::new(&mut out, &raw, seq);
    for item in &items {
        match item {
            MessageDataItemName::Envelope => w.envelope(&msg),
            MessageDataItemName::BodyStructure => w.structure(&msg, true),
            MessageDataItemName::Body => w.structure(&msg, false),
            MessageDataItemName::Rfc822Size => {
                w.item("RFC822.SIZE", raw.len().to_string().as_bytes())
            }
            MessageDataItemName::BodyExt {
                section, partial, ..
            } => {
                let sec = Section::from_imap(section.as_ref());
                w.section(&msg, &sec, partial.map(|(o, n)| (o, n.get())));
            }
            other => panic!("item not covered by this test: {other:?}"),
        }
    }
    w.finish();
    let resp = out.encode();
    split_fetch(&resp)
}

/// SEARCH criteria run on both sides (non-ASCII strings as LITERAL+ literals).
const SEARCHES: &[&str] = &[
    "ALL",
    "FROM alice",
    "FROM example.org",
    "FROM \"Orig Sender\"",
    "TO bob",
    "CC two",
    "CC team",
    "BCC hidden",
    "SUBJECT hello",
    "SUBJECT nested",
    "SUBJECT {7+}\r\ngrüße",
    "FROM {5+}\r\njörg",
    "FROM {7+}\r\nmüller",
    "HEADER Content-Type multipart",
    "HEADER X-None \"\"",
    "HEADER Content-Language \"\"",
    "BODY \"plain version\"",
    "BODY html",
    "BODY \"orig text\"",
    "BODY JVBER",
    "BODY {5+}\r\ncafé",
    "TEXT version",
    "TEXT \"content-type\"",
    "TEXT alice",
    "LARGER 300",
    "SMALLER 200",
    "SENTON 27-Nov-2026",
    "SENTBEFORE 1-Jan-2026",
    "SENTSINCE 1-Nov-2026",
    "SINCE 3-Oct-2026",
    "ON 2-Oct-2026",
    "BEFORE 2-Oct-2026",
    "NOT SUBJECT alt",
    "OR SUBJECT alt SUBJECT nested",
    "2:4",
    "5:*",
    "UID 3:*",
    "SEEN",
    "UNSEEN",
    "FLAGGED NOT ANSWERED",
    "DRAFT",
    "DELETED",
    "UNDELETED SEEN",
    "NEW",
    "OLD",
    "RECENT",
    "KEYWORD foo",
    "UNKEYWORD foo",
    "(SEEN UNFLAGGED) OR 1 2",
];

/// Runs [`SEARCHES`] with our evaluator on metadata and bytes fetched from Dovecot.
fn compare_search(meta_resp: &[Vec<u8>], dovecot: &[Vec<u32>]) {
    use mailserver::imap::search::{self, Bounds, Candidate, LazyMessage};
    use mailserver::store::{Flags, MessageMeta};
    use std::sync::Arc;
    let mut msgs: Vec<(MessageMeta, Arc<[u8]>)> = Vec::new();
    for line in meta_resp.iter().filter(|l| l.starts_with(b"* ")) {
        let items = split_fetch(line);
        let get = |n: &str| items.iter().find(|(k, _)| k == n).unwrap().1.clone();
        let uid: u32 = String::from_utf8(get("UID")).unwrap().parse().unwrap();
        let flags_s = String::from_utf8(get("FLAGS")).unwrap();
        let mut flags = Flags::NONE;
        for (name, f) in [
            ("\\Seen", Flags::SEEN),
            ("\\Answered", Flags::ANSWERED),
            ("\\Flagged", Flags::FLAGGED),
            ("\\Deleted", Flags::DELETED),
            ("\\Draft", Flags::DRAFT),
        ] {
            if flags_s.contains(name) {
                flags = flags.union(f);
            }
        }
        let date = String::from_utf8(get("INTERNALDATE")).unwrap();
        let date =
            chrono::DateTime::parse_from_str(date.trim_matches('"').trim(), "%d-%b-%Y %H:%M:%S %z")
                .unwrap();
        let body = get("BODY[]");
        let close = body.iter().position(|&b| b == b'}').unwrap();
        let raw: Arc<[u8]> = Arc::from(&body[close + 3..]);
        msgs.push((
            MessageMeta {
                uid,
                flags,
                keywords: Vec::new(),
                size: String::from_utf8(get("RFC822.SIZE"))
                    .unwrap()
                    .parse()
                    .unwrap(),
                internal_date: date.into(),
                recent: flags_s.contains("\\Recent"),
                modseq: 0,
            },
            raw,
        ));
    }
    let bounds = Bounds {
        messages: msgs.len() as u32,
        max_uid: msgs.iter().map(|m| m.0.uid).max().unwrap_or(0),
    };
    let mut mismatches = Vec::new();
    for (k, criteria) in SEARCHES.iter().enumerate() {
        let line = format!("s{k} SEARCH {criteria}\r\n");
        let cmd = parse_command(line.as_bytes()).expect("our decoder accepts the SEARCH");
        let CommandBody::Search {
            criteria: keys,
            charset,
            ..
        } = cmd.body
        else {
            panic!("not a SEARCH")
        };
        search::check_charset(charset.as_ref()).unwrap();
        let mut hits = Vec::new();
        for (i, (meta, raw)) in msgs.iter().enumerate() {
            let mut c = Candidate {
                seq: i as u32 + 1,
                meta,
                message: LazyMessage::new(|| Some(raw.clone())),
                cancelled: &|| false,
            };
            if search::matches_all(keys.as_ref(), &mut c, bounds) {
                hits.push(i as u32 + 1);
            }
        }
        if hits != dovecot[k] {
            mismatches.push(format!(
                "SEARCH {criteria}\n  dovecot: {:?}\n  ours:    {:?}",
                dovecot[k], hits
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} SEARCH mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn mime_output_matches_dovecot() {
    if dovecot::skip(false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let st = Command::new("chmod").arg("755").arg(dir).status().unwrap();
    assert!(st.success());
    let maildir = dir.join("mail/tester");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    std::fs::create_dir_all(dir.join("home/tester")).unwrap();
    std::fs::create_dir_all(dir.join("index")).unwrap();
    let msgs = messages();
    for (i, (_, m)) in msgs.iter().enumerate() {
        // One file per message; names sort in order so Dovecot assigns UIDs in that order.
        let flags = ["", "S", "FS", "RS", "D", "ST", "S"][i % 7];
        let name = format!("17000000{:02}.M{i}P1.test:2,{flags}", i);
        let path = maildir.join("cur").join(name);
        std::fs::write(&path, m).unwrap();
        // INTERNALDATE is the file's mtime: spread over days for BEFORE/ON/SINCE.
        let when = format!("2026-10-{:02} 12:00:00", 1 + i % 5);
        let st = Command::new("touch")
            .arg("-d")
            .arg(&when)
            .arg(&path)
            .status()
            .unwrap();
        assert!(st.success());
    }
    let dovecot = start_dovecot(dir);
    let stream = TcpStream::connect(("127.0.0.1", dovecot.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let greeting = read_response(&mut r);
    assert!(greeting.starts_with(b"* OK"), "{greeting:?}");
    let mut cmd = |tag: &str, text: &str| -> Vec<Vec<u8>> {
        w.write_all(format!("{tag} {text}\r\n").as_bytes()).unwrap();
        let mut lines = Vec::new();
        for _ in 0..1000 {
            let l = read_response(&mut r);
            let done = l.starts_with(format!("{tag} ").as_bytes());
            lines.push(l);
            if done {
                return lines;
            }
        }
        panic!("no tagged reply to {tag}");
    };
    let login = cmd("a1", "LOGIN tester secret");
    assert!(login.last().unwrap().starts_with(b"a1 OK"), "{login:?}");
    let sel = cmd("a2", "EXAMINE INBOX");
    assert!(
        sel.last().unwrap().starts_with(b"a2 OK"),
        "{}\n{}",
        String::from_utf8_lossy(sel.last().unwrap()),
        std::fs::read_to_string(dir.join("dovecot.log")).unwrap_or_default()
    );
    let fetch_text = format!("FETCH 1:* ({FETCH_ITEMS})");
    let fetched = cmd("a3", &fetch_text);
    assert!(fetched.last().unwrap().starts_with(b"a3 OK"));
    let meta_resp = cmd(
        "a5",
        "FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])",
    );
    assert!(meta_resp.last().unwrap().starts_with(b"a5 OK"));
    let mut dovecot_search = Vec::new();
    for (k, criteria) in SEARCHES.iter().enumerate() {
        let tag = format!("s{k}");
        let lines = cmd(&tag, &format!("SEARCH {criteria}"));
        assert!(
            lines
                .last()
                .unwrap()
                .starts_with(format!("{tag} OK").as_bytes()),
            "dovecot refused SEARCH {criteria}: {:?}",
            String::from_utf8_lossy(lines.last().unwrap())
        );
        let hits: Vec<u32> = lines
            .iter()
            .find(|l| l.starts_with(b"* SEARCH"))
            .map(|l| {
                String::from_utf8_lossy(&l[8..])
                    .split_whitespace()
                    .map(|n| n.parse().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        dovecot_search.push(hits);
    }
    let _ = cmd("a4", "LOGOUT");
    compare_search(&meta_resp, &dovecot_search);

    let responses: Vec<&Vec<u8>> = fetched.iter().filter(|l| l.starts_with(b"* ")).collect();
    assert_eq!(responses.len(), msgs.len());
    let mut mismatches = Vec::new();
    let mut known_seen = Vec::new();
    for (k, resp) in responses.iter().enumerate() {
        let theirs = split_fetch(resp);
        let raw = &theirs
            .iter()
            .find(|(n, _)| n == "BODY[]")
            .expect("BODY[] in response")
            .1;
        let raw = {
            let close = raw.iter().position(|&b| b == b'}').unwrap();
            raw[close + 3..].to_vec()
        };
        let case = msgs
            .iter()
            .find(|(_, m)| m.as_bytes() == raw.as_slice())
            .map(|(n, _)| *n)
            .unwrap_or("?");
        let mine = ours(
            k as u32 + 1,
            &raw,
            format!("a3 {fetch_text}\r\n").as_bytes(),
        );
        assert_eq!(theirs.len(), mine.len(), "item count for {case}");
        for (name, tv) in theirs.iter() {
            let mv = mine
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| b"<missing>".to_vec());
            if *tv != mv {
                if let Some(known) = KNOWN_DIFFERENCES
                    .iter()
                    .find(|(c, i, _)| *c == case && i == name)
                {
                    known_seen.push(known);
                    continue;
                }
                mismatches.push(format!(
                    "[{case}] {name}\n  dovecot: {}\n  ours:    {}",
                    String::from_utf8_lossy(tv),
                    String::from_utf8_lossy(&mv)
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert_eq!(
        known_seen.len(),
        KNOWN_DIFFERENCES.len(),
        "a known difference no longer differs: update KNOWN_DIFFERENCES"
    );
}
