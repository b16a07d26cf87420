//! Client bytes → the connection framer (in chunks whose sizes come from the input) → IMAP
//! command assembly (lines and literals, as `ImapSession` does) → decoding
//! (`imap::decode`), redaction (`redact_command`), SEARCH keys (`imap::search`) and FETCH
//! sections (`imap::section`, the FETCH writer).
//!
//! Invariants: two chunkings of the same bytes give the same frames; a LOGIN line's redaction
//! hides the whole password token, an AUTHENTICATE initial response is hidden; a parse error
//! for a command with a tag names that tag; FETCH output for any decoded section is valid
//! IMAP that imap-codec decodes again.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItemName};
use libfuzzer_sys::fuzz_target;
use mailserver::conn::{Frame, Framer};
use mailserver::imap::decode::{literal_at_end, parse_command, tag_of};
use mailserver::imap::encode::fetch::FetchWriter;
use mailserver::imap::search::{self, Bounds, Candidate, LazyMessage};
use mailserver::imap::section::Section;
use mailserver::imap::session::redact_command;
use mailserver::mime;
use mailserver::session::Output;
use mailserver::store::{Flags, MessageMeta};
use mailserver_fuzz::{check_imap_syntax, chunks, decode_responses, fnv, ENCODED, MULTI, PLAIN};

/// Literals above this are not read (the session refuses big ones before login anyway).
const MAX_LITERAL: u64 = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Line(Vec<u8>),
    TooLong,
    /// The end of a discarded over-long line.
    Tail(Vec<u8>),
    Literal(Vec<u8>),
}

/// Frames `pieces` as the driver does: lines, literals a line (or a discarded line's tail)
/// announced, over-long lines.
fn frame(pieces: &[&[u8]], limit: usize) -> Vec<Ev> {
    let mut f = Framer::new(limit);
    let mut out = Vec::new();
    let mut literal: Option<usize> = None;
    let small = |l: &[u8], tail: bool| match literal_at_end(l) {
        Some((n, sync)) if n <= MAX_LITERAL && (!tail || !sync) => Some(n as usize),
        _ => None,
    };
    for p in pieces {
        f.push(p);
        loop {
            if let Some(n) = literal {
                match f.take_literal(n) {
                    Some(d) => {
                        out.push(Ev::Literal(d));
                        literal = None;
                        continue;
                    }
                    None => break,
                }
            }
            if let Some(t) = f.take_discarded_tail() {
                literal = small(&t, true);
                out.push(Ev::Tail(t));
                continue;
            }
            match f.next_line() {
                Some(Frame::Line(l)) => {
                    literal = small(&l, false);
                    out.push(Ev::Line(l));
                }
                Some(Frame::TooLong) => out.push(Ev::TooLong),
                None => break,
            }
        }
    }
    out
}

/// Whole commands (lines with CRLF, literals) and whether each is a single line.
fn assemble(evs: &[Ev]) -> Vec<(Vec<u8>, bool)> {
    let mut cmds = Vec::new();
    let mut pending = Vec::new();
    let mut lines = 0;
    let mut it = evs.iter().peekable();
    while let Some(e) = it.next() {
        match e {
            Ev::Line(l) => {
                pending.extend_from_slice(l);
                pending.extend_from_slice(b"\r\n");
                lines += 1;
                if literal_at_end(l).is_some() {
                    if let Some(Ev::Literal(d)) = it.peek() {
                        pending.extend_from_slice(d);
                        it.next();
                        continue;
                    }
                }
                cmds.push((std::mem::take(&mut pending), lines == 1));
                lines = 0;
            }
            Ev::TooLong | Ev::Tail(_) | Ev::Literal(_) => {
                pending.clear();
                lines = 0;
            }
        }
    }
    cmds
}

fn check_login_redaction(line: &[u8], user: &[u8], password: &[u8]) {
    let red = redact_command(line).unwrap_or_else(|| {
        panic!(
            "LOGIN line not redacted: {:?}",
            String::from_utf8_lossy(line)
        )
    });
    assert!(red.ends_with(b" ***"), "{red:?}");
    let keep = red.len() - 4;
    assert_eq!(
        &red[..keep],
        &line[..keep],
        "redaction changed the kept part"
    );
    // What was hidden must hold the whole password token: as the last argument of a LOGIN
    // (after some user name) or as both arguments.
    let hidden = &line[keep..];
    let as_password = [b"t LOGIN u".as_slice(), hidden, b"\r\n"].concat();
    let as_both = [b"t LOGIN".as_slice(), hidden, b"\r\n"].concat();
    let ok = match parse_command(&as_password).map(|c| c.body) {
        Ok(CommandBody::Login { password: p, .. }) => p.declassify().as_ref() == password,
        _ => false,
    } || match parse_command(&as_both).map(|c| c.body) {
        Ok(CommandBody::Login {
            username,
            password: p,
        }) => username.as_ref() == user && p.declassify().as_ref() == password,
        _ => false,
    };
    assert!(
        ok,
        "redaction {:?} of {:?} leaves part of the password",
        String::from_utf8_lossy(&red),
        String::from_utf8_lossy(line)
    );
}

fn check_command(cmd: &[u8], single_line: bool) {
    let first_line = &cmd[..cmd
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(cmd.len())];
    let _ = redact_command(first_line);
    let parsed = match parse_command(cmd) {
        Ok(c) => c,
        Err(e) => {
            if let Some(t) = &e.tag {
                let got = tag_of(cmd).map(|t| String::from_utf8_lossy(t).into_owned());
                assert_eq!(got.as_deref(), Some(t.as_str()));
            }
            return;
        }
    };
    assert_eq!(
        tag_of(cmd).map(|t| t.to_vec()),
        Some(parsed.tag.inner().as_bytes().to_vec())
    );
    match &parsed.body {
        CommandBody::Login { username, password } => {
            if single_line {
                check_login_redaction(
                    first_line,
                    username.as_ref(),
                    password.declassify().as_ref(),
                );
            } else if redact_command(first_line).is_none() {
                // Only `tag LOGIN {n}` (the user name a literal) holds no secret.
                let words = first_line
                    .split(|b| b.is_ascii_whitespace())
                    .filter(|w| !w.is_empty());
                assert!(
                    words.count() == 3 && literal_at_end(first_line).is_some(),
                    "multi-line LOGIN first line not redacted: {:?}",
                    String::from_utf8_lossy(first_line)
                );
            }
        }
        CommandBody::Authenticate {
            initial_response: Some(ir),
            ..
        } if single_line && !ir.declassify().is_empty() => {
            let red = redact_command(first_line).unwrap_or_else(|| {
                panic!(
                    "SASL-IR not redacted: {:?}",
                    String::from_utf8_lossy(first_line)
                )
            });
            let keep = red.len() - 4;
            let last_word = first_line
                .iter()
                .rposition(|b| b.is_ascii_whitespace())
                .map_or(0, |i| i + 1);
            assert!(keep <= last_word, "SASL-IR partly kept: {red:?}");
        }
        CommandBody::Search {
            charset, criteria, ..
        } => {
            let _ = search::check_charset(charset.as_ref());
            if search::check_limits(criteria.as_ref()).is_ok() {
                run_search(criteria.as_ref());
            }
        }
        CommandBody::Fetch {
            macro_or_item_names,
            ..
        } => {
            if let MacroOrMessageDataItemNames::MessageDataItemNames(items) = macro_or_item_names {
                run_fetch(items);
            }
        }
        _ => {}
    }
}

fn run_search(keys: &[imap_codec::imap_types::search::SearchKey<'_>]) {
    let never = || false;
    for (i, raw) in [PLAIN, MULTI, ENCODED].into_iter().enumerate() {
        let meta = MessageMeta {
            uid: 3 * i as u32 + 1,
            flags: Flags(i as u8 * 5),
            keywords: vec!["$Forwarded".into()],
            size: raw.len() as u64,
            internal_date: SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000),
            recent: i == 1,
            modseq: 10 + i as u64,
        };
        let mut c = Candidate {
            seq: i as u32 + 1,
            meta: &meta,
            message: LazyMessage::new(move || Some(Arc::from(raw))),
            cancelled: &never,
        };
        search::matches_all(
            keys,
            &mut c,
            Bounds {
                messages: 3,
                max_uid: 7,
            },
        );
    }
}

fn run_fetch(items: &[MessageDataItemName<'_>]) {
    let raw: Arc<[u8]> = Arc::from(MULTI);
    let msg = mime::parse(&raw);
    let mut out = Output::default();
    let mut w = FetchWriter::new(&mut out, &raw, 1);
    let mut any = false;
    for item in items {
        if let MessageDataItemName::BodyExt {
            section, partial, ..
        } = item
        {
            let sec = Section::from_imap(section.as_ref());
            w.section(&msg, &sec, partial.map(|(o, c)| (o, c.get())));
            any = true;
        }
    }
    w.finish();
    if any {
        let wire = out.encode();
        if let Err(e) = check_imap_syntax(&wire) {
            panic!("FETCH output: {e}");
        }
        if let Err(e) = decode_responses(&wire) {
            panic!("FETCH output: {e}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let h = fnv(data);
    let limit = [24, 100, 1024, 64 * 1024][(h & 3) as usize];
    let whole = frame(&[data], limit);
    let cut = frame(&chunks(data, h >> 2, 1 + (h >> 40) as usize % 64), limit);
    assert_eq!(
        whole, cut,
        "frames differ between chunkings (limit {limit})"
    );
    for (cmd, single) in assemble(&whole) {
        check_command(&cmd, single);
    }
});
