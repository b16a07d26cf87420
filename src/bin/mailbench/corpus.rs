//! Deterministic Maildir++ corpus generator (`mailbench corpus`).
//!
//! Owns the shape of the benchmark mail: per user an INBOX (`DIR/<user>/cur`), `.Sent` and
//! `.Archive` folders (Maildir++ layout, <https://cr.yp.to/proto/maildir.html> and the
//! Courier `maildir++` convention), plus `DIR/users`, a Dovecot passwd-file with `{PLAIN}`
//! passwords (`name:{PLAIN}pw::::::`) that both servers read.
//!
//! Messages follow RFC 5322 (headers), RFC 2045/2046 (MIME: multipart/alternative,
//! multipart/mixed, base64 attachments, message/rfc822) and RFC 2047 (encoded-word headers),
//! with LF line endings as MTAs store them, and a few deliberately malformed ones (missing
//! closing boundary, header line without a colon, raw 8-bit header, multipart without
//! boundary, broken base64). Sizes are log-normal-ish between 2 KB and 200 KB.
//!
//! Determinism: everything comes from [`SplitMix64`] sub-streams keyed by (seed, user,
//! folder), using integer arithmetic only, so one seed gives byte-identical files (names,
//! contents and mtimes) on every machine.
use crate::rng::SplitMix64;
use base64::Engine as _;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

/// What to generate.
#[derive(Clone, Debug)]
pub struct CorpusSpec {
    pub seed: u64,
    /// Users are `<prefix>1..=<prefix>users`.
    pub users: u32,
    /// Messages in each user's INBOX; `.Sent` gets a tenth, `.Archive` a fifth (at least 1).
    pub messages: u32,
    pub prefix: String,
    pub password: String,
}

/// Totals, for the progress line and tests.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CorpusSummary {
    pub files: u64,
    pub bytes: u64,
}

pub const MIN_SIZE: usize = 2 * 1024;
pub const MAX_SIZE: usize = 200 * 1024;
const HOST: &str = "bench.example";
const BASE_TIME: u64 = 1_700_000_000;

/// The folders every user gets: (Maildir++ directory, share of INBOX count in percent).
const FOLDERS: [(&str, u32); 3] = [("", 100), (".Sent", 10), (".Archive", 20)];

pub fn generate(spec: &CorpusSpec, out: &Path) -> io::Result<CorpusSummary> {
    fs::create_dir_all(out)?;
    let mut sum = CorpusSummary::default();
    let mut users = String::new();
    for u in 1..=spec.users {
        let user = format!("{}{}", spec.prefix, u);
        // Empty uid:gid:gecos:home:shell:extra fields: without them Dovecot's passwd-file
        // userdb rejects the line ("missing userdb info"); mail_uid and home come from the
        // server config instead.
        writeln!(users, "{}:{{PLAIN}}{}::::::", user, spec.password).expect("string write");
        let root = out.join(&user);
        for (fi, (dir, pct)) in FOLDERS.iter().enumerate() {
            let fdir = root.join(dir);
            for sub in ["cur", "new", "tmp"] {
                fs::create_dir_all(fdir.join(sub))?;
            }
            let count = if *pct == 100 {
                spec.messages
            } else {
                (spec.messages * pct / 100).max(1)
            };
            let mut rng = SplitMix64::derive(spec.seed, u64::from(u), fi as u64);
            for i in 0..count {
                let msg = message(&mut rng, &user, u, i);
                let name = format!("{}.M{}P{}.{}:2,{}", msg.time, i, u, HOST, msg.flags);
                let path = fdir.join("cur").join(name);
                fs::write(&path, &msg.bytes)?;
                let f = fs::File::options().write(true).open(&path)?;
                f.set_modified(UNIX_EPOCH + Duration::from_secs(msg.time))?;
                sum.files += 1;
                sum.bytes += msg.bytes.len() as u64;
            }
        }
    }
    let users_path = out.join("users");
    fs::write(&users_path, users)?;
    fs::File::options()
        .write(true)
        .open(&users_path)?
        .set_modified(UNIX_EPOCH + Duration::from_secs(BASE_TIME))?;
    Ok(sum)
}

/// Messages for `imap-append`, generated in memory from the same generator (CRLF, as IMAP
/// APPEND requires, RFC 3501 section 6.3.11).
pub fn append_messages(seed: u64, count: u32) -> Vec<Vec<u8>> {
    let mut rng = SplitMix64::derive(seed, 0, 99);
    (0..count)
        .map(|i| {
            let m = message(&mut rng, "bench1", 1, i);
            lf_to_crlf(&m.bytes)
        })
        .collect()
}

/// `count` messages of exactly `size` bytes (CRLF; at least the headers) for lmtp-deliver:
/// a few headers, a unique Message-ID, then 76-character lines of random lower-case text.
pub fn lmtp_messages(seed: u64, count: u32, size: usize) -> Vec<Vec<u8>> {
    let mut rng = SplitMix64::derive(seed, 0, 98);
    (0..count)
        .map(|i| {
            let mut m = format!(
                "From: <mailbench@bench.test>\r\nTo: <bench@bench.test>\r\n\
                 Subject: lmtp-deliver {i}\r\nMessage-ID: <lmtp-{seed}-{i}@bench.test>\r\n\
                 Date: Thu, 03 Dec 2026 12:00:00 +0000\r\n\r\n"
            )
            .into_bytes();
            while m.len() + 2 < size {
                let n = (size - m.len() - 2).min(76);
                m.extend((0..n).map(|_| b'a' + rng.below(26) as u8));
                m.extend_from_slice(b"\r\n");
            }
            m
        })
        .collect()
}

pub fn lf_to_crlf(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() + b.len() / 40);
    let mut prev = 0u8;
    for &c in b {
        if c == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(c);
        prev = c;
    }
    out
}

/// One generated message.
pub struct Message {
    pub bytes: Vec<u8>,
    /// Maildir info flags after `:2,`, in ASCII order as the Maildir spec requires.
    pub flags: &'static str,
    /// Unix time used for `Date:`, the file name and the mtime (Dovecot's INTERNALDATE).
    pub time: u64,
}

const WORDS: &[&str] = &[
    "the",
    "mail",
    "server",
    "queue",
    "report",
    "meeting",
    "budget",
    "release",
    "notes",
    "attached",
    "please",
    "review",
    "before",
    "friday",
    "thanks",
    "update",
    "project",
    "draft",
    "schedule",
    "invoice",
    "customer",
    "support",
    "ticket",
    "network",
    "storage",
    "backup",
    "quarterly",
    "results",
    "agenda",
    "minutes",
    "question",
    "answer",
    "protocol",
    "message",
    "folder",
    "archive",
    "delivery",
    "status",
    "weekly",
    "summary",
    "and",
    "of",
    "to",
    "in",
    "for",
    "with",
    "on",
    "is",
    "we",
    "will",
    "be",
    "this",
    "that",
    "a",
    "an",
];

/// UTF-8 phrases that need RFC 2047 encoding in headers.
const UTF8_PHRASES: &[&str] = &[
    "Grüße aus München",
    "Réunion déjà prévue",
    "Привет, как дела?",
    "会議の議事録",
    "Ελληνικά νέα",
    "¡Año nuevo, vida nueva!",
    "Čeština je krásná",
    "Status ✅ done 🎉",
];

const ASCII_NAMES: &[&str] = &[
    "Alice Example",
    "Bob Builder",
    "Carol Jones",
    "Dave Smith",
    "Eve Adams",
    "Frank Lee",
];
const UTF8_NAMES: &[&str] = &[
    "Jürgen Müller",
    "François Dupré",
    "Søren Kierkegård",
    "山田 太郎",
];

fn target_size(rng: &mut SplitMix64) -> usize {
    // Irwin-Hall approximation of a standard normal, in thousandths: sum of 12 uniforms - 6.
    let z: i64 = (0..12).map(|_| rng.below(1000) as i64).sum::<i64>() - 6000;
    // log2(size / 2 KiB) ~ N(2.4, 1.3), clamped to [0, log2(100)]: median about 10.5 KB.
    let x = (2400 + z * 1300 / 1000).clamp(0, 6644) as u64;
    let (ip, frac) = (x / 1000, x % 1000);
    // 2^frac approximated by 1 + frac (piecewise linear in the exponent): integer only.
    let size = (MIN_SIZE as u64) << ip;
    let size = size + size * frac / 1000;
    (size as usize).clamp(MIN_SIZE, MAX_SIZE)
}

fn rfc2822_date(t: u64) -> String {
    chrono::DateTime::from_timestamp(t as i64, 0)
        .expect("timestamp in range")
        .format("%a, %d %b %Y %H:%M:%S +0000")
        .to_string()
}

fn encoded_word(rng: &mut SplitMix64, s: &str) -> String {
    if rng.chance(50) {
        format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    } else {
        let mut q = String::from("=?UTF-8?Q?");
        for &b in s.as_bytes() {
            match b {
                b' ' => q.push('_'),
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => q.push(b as char),
                _ => write!(q, "={b:02X}").expect("string write"),
            }
        }
        q.push_str("?=");
        q
    }
}

fn text_lines(rng: &mut SplitMix64, bytes: usize, out: &mut String) {
    let start = out.len();
    let mut line = 0usize;
    while out.len() - start < bytes {
        let w = rng.pick(WORDS);
        if line + w.len() + 1 > 72 {
            out.push('\n');
            line = 0;
            if rng.chance(8) {
                out.push('\n');
            }
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(w);
        line += w.len();
    }
    out.push('\n');
}

fn base64_block(rng: &mut SplitMix64, raw_len: usize, out: &mut String) {
    let mut raw = vec![0u8; raw_len];
    rng.fill(&mut raw);
    let enc = base64::engine::general_purpose::STANDARD.encode(&raw);
    for chunk in enc.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ascii"));
        out.push('\n');
    }
}

fn address(rng: &mut SplitMix64) -> String {
    let local = format!(
        "{}{}",
        rng.pick(&["alice", "bob", "carol", "dave", "news", "ops"]),
        rng.below(50)
    );
    let domain = rng.pick(&["example.net", "example.com", "example.org"]);
    let addr = format!("{local}@{domain}");
    match rng.below(3) {
        0 => format!("<{addr}>"),
        1 => format!("{} <{addr}>", rng.pick(ASCII_NAMES)),
        _ => {
            let n = *rng.pick(UTF8_NAMES);
            format!("{} <{addr}>", encoded_word(rng, n))
        }
    }
}

fn boundary(rng: &mut SplitMix64, level: u32) -> String {
    format!("=_bench_{}_{:016x}", level, rng.next_u64())
}

/// Builds one message. `i` is its index in the folder; the RNG stream carries the rest.
pub fn message(rng: &mut SplitMix64, user: &str, user_no: u32, i: u32) -> Message {
    let time = BASE_TIME + u64::from(i) * 2713 + rng.below(2000) + u64::from(user_no) * 7;
    let size = target_size(rng);
    let flags = match rng.below(100) {
        0..=64 => "S",
        65..=79 => "",
        80..=86 => "FS",
        87..=93 => "RS",
        94..=96 => "F",
        _ => "DS",
    };
    let kind = rng.below(100);
    let date = rfc2822_date(time);
    let mut h = String::with_capacity(size + 1024);
    let from = address(rng);
    let mx = rng.range(1, 9);
    write!(
        h,
        "Return-Path: <bounce{mx}@example.net>\nReceived: from mx{mx}.example.net (mx{mx}.example.net [192.0.2.{mx}])\n\tby {HOST} (Postfix) with ESMTP id {:010X}\n\tfor <{user}@{HOST}>; {date}\nDate: {date}\nFrom: {from}\nTo: {user} <{user}@{HOST}>\n",
        rng.next_u64() & 0xFF_FFFF_FFFF
    )
    .expect("string write");
    if rng.chance(20) {
        writeln!(h, "Cc: {}, {}", address(rng), address(rng)).expect("string write");
    }
    let malformed = kind >= 97;
    let subject = if rng.chance(30) {
        let p = *rng.pick(UTF8_PHRASES);
        if malformed && kind == 98 {
            // Raw 8-bit in a header: not allowed by RFC 5322, seen in the wild.
            p.to_string()
        } else {
            format!("{} {}", encoded_word(rng, p), rng.pick(WORDS))
        }
    } else {
        format!(
            "{} {} {} #{}",
            rng.pick(WORDS),
            rng.pick(WORDS),
            rng.pick(WORDS),
            i
        )
    };
    writeln!(h, "Subject: {subject}").expect("string write");
    let msgid = format!("{:016x}.{}.{}@example.net", rng.next_u64(), user_no, i);
    writeln!(h, "Message-ID: <{msgid}>").expect("string write");
    if rng.chance(25) && i > 0 {
        let parent = format!(
            "<{:016x}.{}.{}@example.net>",
            rng.next_u64(),
            user_no,
            i - 1
        );
        writeln!(h, "In-Reply-To: {parent}\nReferences: {parent}").expect("string write");
    }
    if malformed && kind == 98 {
        h.push_str("X-Broken-Header-Without-Colon\n");
    }
    h.push_str("MIME-Version: 1.0\n");
    // Body budget: the target less the headers, with a floor so no message ends up under
    // MIN_SIZE because its headers were long.
    let budget = size.saturating_sub(h.len() + 200).max(1500);
    match kind {
        0..=39 => {
            h.push_str(
                "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n",
            );
            text_lines(rng, budget, &mut h);
        }
        40..=64 => {
            let b = boundary(rng, 1);
            write!(h, "Content-Type: multipart/alternative; boundary=\"{b}\"\n\nThis is a multi-part message in MIME format.\n\n--{b}\nContent-Type: text/plain; charset=us-ascii\n\n").expect("string write");
            text_lines(rng, budget * 2 / 5, &mut h);
            write!(
                h,
                "\n--{b}\nContent-Type: text/html; charset=us-ascii\n\n<html><body><p>\n"
            )
            .expect("string write");
            text_lines(rng, budget * 3 / 5, &mut h);
            write!(h, "</p></body></html>\n\n--{b}--\n").expect("string write");
        }
        65..=86 => {
            let b = boundary(rng, 1);
            write!(h, "Content-Type: multipart/mixed; boundary=\"{b}\"\n\n--{b}\nContent-Type: text/plain; charset=utf-8\n\n").expect("string write");
            text_lines(rng, budget / 10 + 64, &mut h);
            let parts = rng.range(1, 3) as usize;
            for p in 0..parts {
                let (ct, ext) = *rng.pick(&[
                    ("application/pdf", "pdf"),
                    ("image/png", "png"),
                    ("application/octet-stream", "bin"),
                    ("application/zip", "zip"),
                ]);
                let fname = if rng.chance(30) {
                    let phrase = *rng.pick(UTF8_PHRASES);
                    format!("{}.{ext}", encoded_word(rng, phrase))
                } else {
                    format!("attachment-{p}.{ext}")
                };
                write!(h, "\n--{b}\nContent-Type: {ct}; name=\"{fname}\"\nContent-Disposition: attachment; filename=\"{fname}\"\nContent-Transfer-Encoding: base64\n\n").expect("string write");
                // base64 grows 4/3 plus newlines: raw = budget*3/4 shared by the parts.
                base64_block(rng, (budget * 3 / 4 * 9 / 10) / parts, &mut h);
            }
            write!(h, "\n--{b}--\n").expect("string write");
        }
        87..=94 => {
            let b = boundary(rng, 1);
            write!(h, "Content-Type: multipart/mixed; boundary=\"{b}\"\n\n--{b}\nContent-Type: text/plain; charset=us-ascii\n\nForwarded message below.\n\n--{b}\nContent-Type: message/rfc822\nContent-Disposition: attachment\n\n").expect("string write");
            let inner_date = rfc2822_date(time - 86_400);
            let inner_from = address(rng);
            let phrase = *rng.pick(UTF8_PHRASES);
            let inner_subject = encoded_word(rng, phrase);
            write!(h, "Date: {inner_date}\nFrom: {inner_from}\nTo: <{user}@{HOST}>\nSubject: {inner_subject}\nMessage-ID: <{:016x}.inner@example.net>\nMIME-Version: 1.0\n", rng.next_u64()).expect("string write");
            let b2 = boundary(rng, 2);
            write!(h, "Content-Type: multipart/mixed; boundary=\"{b2}\"\n\n--{b2}\nContent-Type: text/plain; charset=us-ascii\n\n").expect("string write");
            text_lines(rng, budget / 3, &mut h);
            write!(h, "\n--{b2}\nContent-Type: application/octet-stream; name=\"inner.bin\"\nContent-Transfer-Encoding: base64\n\n").expect("string write");
            base64_block(rng, budget / 3, &mut h);
            write!(h, "\n--{b2}--\n\n--{b}--\n").expect("string write");
        }
        95 | 96 => {
            // Malformed: multipart without its closing delimiter (RFC 2046 section 5.1.1).
            let b = boundary(rng, 1);
            write!(h, "Content-Type: multipart/mixed; boundary=\"{b}\"\n\n--{b}\nContent-Type: text/plain\n\n").expect("string write");
            text_lines(rng, budget / 2, &mut h);
            write!(h, "\n--{b}\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n").expect("string write");
            base64_block(rng, budget / 3, &mut h);
        }
        97 => {
            // Malformed: multipart without a boundary parameter, and broken base64.
            h.push_str("Content-Type: multipart/mixed\nContent-Transfer-Encoding: base64\n\n");
            text_lines(rng, budget, &mut h);
            h.push_str("====!!not base64!!====\n");
        }
        _ => {
            // Malformed headers above (raw 8-bit subject, line without colon); text body.
            h.push_str("Content-Type: text/plain\n\n");
            text_lines(rng, budget, &mut h);
        }
    }
    Message {
        bytes: h.into_bytes(),
        flags,
        time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(dir: &Path) -> Vec<(String, Vec<u8>, u64)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                    let mtime = e
                        .metadata()
                        .unwrap()
                        .modified()
                        .unwrap()
                        .duration_since(UNIX_EPOCH)
                        .unwrap()
                        .as_secs();
                    out.push((rel, fs::read(&p).unwrap(), mtime));
                }
            }
        }
        out.sort();
        out
    }

    fn spec(seed: u64) -> CorpusSpec {
        CorpusSpec {
            seed,
            users: 2,
            messages: 30,
            prefix: "bench".into(),
            password: "pw".into(),
        }
    }

    #[test]
    fn same_seed_same_bytes_other_seed_differs() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let c = tempfile::tempdir().unwrap();
        generate(&spec(7), a.path()).unwrap();
        generate(&spec(7), b.path()).unwrap();
        generate(&spec(8), c.path()).unwrap();
        let ta = tree(a.path());
        assert!(!ta.is_empty());
        assert_eq!(ta, tree(b.path()));
        assert_ne!(ta, tree(c.path()));
    }

    #[test]
    fn layout_users_file_and_sizes() {
        let d = tempfile::tempdir().unwrap();
        let s = generate(&spec(1), d.path()).unwrap();
        // INBOX 30 + Sent 3 + Archive 6, for two users.
        assert_eq!(s.files, 2 * (30 + 3 + 6));
        let users = fs::read_to_string(d.path().join("users")).unwrap();
        assert_eq!(users, "bench1:{PLAIN}pw::::::\nbench2:{PLAIN}pw::::::\n");
        for f in [
            "bench1/cur",
            "bench1/new",
            "bench1/tmp",
            "bench2/.Sent/cur",
            "bench2/.Archive/tmp",
        ] {
            assert!(d.path().join(f).is_dir(), "{f}");
        }
        for (name, bytes, _) in tree(d.path()) {
            if name == "users" {
                continue;
            }
            assert!(name.contains(":2,"), "{name}");
            assert!(!bytes.contains(&b'\r'), "LF only: {name}");
            // Malformed and multipart overhead may push a little past the target range.
            assert!(
                bytes.len() >= MIN_SIZE / 2 && bytes.len() <= MAX_SIZE + 8192,
                "{name}: {}",
                bytes.len()
            );
            let head_end = bytes
                .windows(2)
                .position(|w| w == b"\n\n")
                .expect("header/body separator");
            assert!(bytes[..head_end].starts_with(b"Return-Path: "));
        }
    }

    #[test]
    fn mix_contains_each_kind() {
        let mut rng = SplitMix64::new(3);
        let all: Vec<String> = (0..400)
            .map(|i| String::from_utf8_lossy(&message(&mut rng, "u", 1, i).bytes).into_owned())
            .collect();
        let has = |s: &str| all.iter().any(|m| m.contains(s));
        assert!(has("multipart/alternative"));
        assert!(has("Content-Transfer-Encoding: base64"));
        assert!(has("message/rfc822"));
        assert!(has("=?UTF-8?B?"));
        assert!(has("=?UTF-8?Q?"));
        assert!(has("X-Broken-Header-Without-Colon"));
        let sizes: Vec<usize> = (0..400).map(|i| all[i].len()).collect();
        assert!(sizes.iter().any(|s| *s < 8 * 1024));
        assert!(sizes.iter().any(|s| *s > 64 * 1024));
    }

    #[test]
    fn crlf_conversion_keeps_existing_crlf() {
        assert_eq!(lf_to_crlf(b"a\nb\r\nc"), b"a\r\nb\r\nc".to_vec());
    }
}
