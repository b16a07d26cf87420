//! The sans-IO edges of an IMAP command (RFC 3501 §2.2, §4.3, §9): the literal announcement
//! at the end of a line (`{n}` / RFC 7888 `{n+}`), the tag, the size limits, and decoding a
//! complete command with imap-codec's `CommandCodec`. Splitting input into lines and
//! literals is the driver's framer ([`crate::conn::Framer`]); the session assembles a command
//! from those ([`super::session`]) and decodes it here.

pub mod ext;

use bounded_static::IntoBoundedStatic;
use imap_codec::decode::{CommandDecodeError, Decoder};
use imap_codec::imap_types::command::Command;
use imap_codec::CommandCodec;

/// Default per-line limit (each line of a command, literals excluded): 64 KiB.
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;

/// Hard limits on what a client may send as one command (the session enforces them while
/// it assembles a command from the driver's lines and literals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest line (literal data excluded), CRLF included. Bounds memory per read.
    pub max_line: usize,
    /// Largest literal accepted: the configured maximum message size, so APPEND can work.
    pub max_literal: u64,
    /// Largest whole command (all lines and literals), so many small literals cannot add up.
    pub max_command: u64,
}

impl Limits {
    /// Limits for a server accepting messages up to `max_message_bytes`.
    pub fn for_message_size(max_message_bytes: u64) -> Limits {
        Limits {
            max_line: DEFAULT_MAX_LINE,
            max_literal: max_message_bytes,
            max_command: max_message_bytes.saturating_add(DEFAULT_MAX_LINE as u64 * 2),
        }
    }
}

/// Why input was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// A line exceeded [`Limits::max_line`], or the command exceeded [`Limits::max_command`].
    TooLong,
    /// A literal exceeded [`Limits::max_literal`] (or 4096 for a LITERAL- `{n+}`).
    LiteralTooBig,
}

impl FrameError {
    /// The text of the tagged (or untagged) `BAD` reply.
    pub fn reply_text(self) -> &'static str {
        match self {
            FrameError::TooLong => "Command line too long",
            FrameError::LiteralTooBig => "[TOOBIG] Literal too big",
        }
    }
}

/// If `line` ends with `{n}` or `{n+}`, the literal length and whether it is synchronizing.
pub fn literal_at_end(line: &[u8]) -> Option<(u64, bool)> {
    let line = line.strip_suffix(b"}")?;
    let (line, sync) = match line.strip_suffix(b"+") {
        Some(l) => (l, false),
        None => (line, true),
    };
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = &line[open + 1..];
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some((
        digits.iter().fold(0u64, |acc, &d| {
            acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
        }),
        sync,
    ))
}

/// The tag at the start of a command (RFC 3501 §9 `tag`: ASTRING-CHARs except `+`), if the
/// input starts with one followed by a space.
pub fn tag_of(buf: &[u8]) -> Option<&[u8]> {
    let end = buf.iter().position(|&b| !is_tag_char(b))?;
    if end == 0 || buf[end] != b' ' {
        return None;
    }
    Some(&buf[..end])
}

fn is_tag_char(b: u8) -> bool {
    (0x21..0x7f).contains(&b)
        && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b'+')
}

/// RFC 8437 UNAUTHENTICATE, which imap-codec does not know: the command's tag when the
/// whole command is `tag SP "UNAUTHENTICATE" CRLF` (any case; no arguments), so the session
/// runs it before imap-codec would refuse it. `None`: any other command.
pub fn unauthenticate_tag(frame: &[u8]) -> Option<&[u8]> {
    let tag = tag_of(frame)?;
    let rest = &frame[tag.len() + 1..];
    let word = rest.strip_suffix(b"\r\n")?;
    word.eq_ignore_ascii_case(b"UNAUTHENTICATE").then_some(tag)
}

/// Commands and items imap-codec does not know, turned into ones it does: `XLIST` is
/// answered as `LIST` (as Dovecot 2.3 does: `* LIST` replies, never advertised; old
/// Outlook sends it), and `APPENDLIMIT` is taken out of a `STATUS` item list (RFC 7889
/// §4) and reported in [`ext::Rewrite`]. `None`: nothing to change.
pub fn rewrite_extensions(frame: &[u8]) -> Option<(Vec<u8>, ext::Rewrite)> {
    let tag = tag_of(frame)?;
    let start = tag.len() + 1;
    let len = frame[start..]
        .iter()
        .position(|b| !b.is_ascii_alphanumeric())
        .unwrap_or(frame.len() - start);
    let word = &frame[start..start + len];
    if word.eq_ignore_ascii_case(b"XLIST") {
        let mut out = frame[..start].to_vec();
        out.extend_from_slice(b"LIST");
        out.extend_from_slice(&frame[start + len..]);
        return Some((out, ext::Rewrite::default()));
    }
    if !word.eq_ignore_ascii_case(b"STATUS") {
        return None;
    }
    // The item list ends the command: `(...)` before the final CRLF.
    let body = frame.strip_suffix(b"\r\n").unwrap_or(frame);
    let body = body.strip_suffix(b")")?;
    let open = body.iter().rposition(|&b| b == b'(')?;
    let items: Vec<&[u8]> = body[open + 1..]
        .split(|b| *b == b' ')
        .filter(|w| !w.is_empty())
        .collect();
    let kept: Vec<&[u8]> = items
        .iter()
        .copied()
        .filter(|w| !w.eq_ignore_ascii_case(b"APPENDLIMIT"))
        .collect();
    if kept.len() == items.len() {
        return None;
    }
    let ext = ext::Rewrite {
        status_appendlimit: true,
        status_appendlimit_only: kept.is_empty(),
    };
    let mut out = body[..=open].to_vec();
    out.extend_from_slice(&if kept.is_empty() {
        b"MESSAGES".to_vec()
    } else {
        kept.join(&b' ')
    });
    out.extend_from_slice(b")\r\n");
    Some((out, ext))
}

/// A complete frame that imap-codec could not decode: answer `<tag> BAD <text>` (or `* BAD`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The command's tag when one could be recognised, so the reply is tagged (RFC 3501 §7.1.3).
    pub tag: Option<String>,
    /// Fixed reply text; never echoes client input.
    pub text: &'static str,
}

/// Decodes one complete command (its lines with CRLF and its literals) with imap-codec.
pub fn parse_command(frame: &[u8]) -> Result<Command<'_>, ParseError> {
    let tag = || tag_of(frame).map(|t| String::from_utf8_lossy(t).into_owned());
    if frame.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ParseError {
            tag: None,
            text: "Empty command line",
        });
    }
    match CommandCodec::default().decode(frame) {
        Ok((&[], cmd)) => Ok(cmd),
        Ok(_) => Err(ParseError {
            tag: tag(),
            text: "Unexpected data after command",
        }),
        Err(CommandDecodeError::Incomplete) | Err(CommandDecodeError::LiteralFound { .. }) => {
            Err(ParseError {
                tag: tag(),
                text: "Incomplete command",
            })
        }
        Err(CommandDecodeError::Failed) => Err(ParseError {
            tag: tag(),
            text: if tag().is_some() {
                "Error in IMAP command: unknown command or invalid arguments"
            } else {
                "Error in IMAP command: missing or invalid tag"
            },
        }),
    }
}

/// Decodes one complete command with the extension forms imap-codec does not know taken
/// out first: `XLIST` and STATUS `APPENDLIMIT` ([`rewrite_extensions`]), then `SEARCH
/// RETURN`, `$` and extended LIST ([`ext`]).
pub fn parse_command_ext(frame: &[u8]) -> Result<(Command<'static>, ext::Extensions), ParseError> {
    let tag = || tag_of(frame).map(|t| String::from_utf8_lossy(t).into_owned());
    let (rewritten, rewrite) = match rewrite_extensions(frame) {
        Some((bytes, rewrite)) => (Some(bytes), rewrite),
        None => (None, ext::Rewrite::default()),
    };
    let frame = rewritten.as_deref().unwrap_or(frame);
    let pre = ext::preparse(frame).map_err(|text| ParseError { tag: tag(), text })?;
    let cmd = match &pre.frame {
        Some(f) => parse_command(f)?.into_static(),
        None => parse_command(frame)?.into_static(),
    };
    let mut extensions = pre.ext;
    extensions.rewrite = rewrite;
    if let Some(list) = &mut extensions.list {
        for raw in &pre.raw_patterns {
            list.more_patterns.push(ext::decode_pattern(raw).ok_or_else(|| ParseError {
                tag: tag(),
                text: "Error in IMAP command: unknown command or invalid arguments",
            })?);
        }
    }
    Ok((cmd, extensions))
}

/// The octets that stand in for a streamed message when its command is decoded: one octet,
/// NUL when the message held one (so imap-codec refuses a `{n}` literal with a NUL, as it
/// would have refused the message itself, and accepts a `~{n}` one).
fn placeholder(nul: bool) -> &'static [u8] {
    if nul {
        b"{1}\r\n\0"
    } else {
        b"{1}\r\nX"
    }
}

/// Whether `frame` — a command so far: its lines with CRLF and literals, the last line
/// ending with a literal announcement — is an APPEND whose message is that literal (RFC 3501
/// §6.3.11 `"APPEND" SP mailbox [SP flag-list] [SP date-time] SP literal`, RFC 3516
/// `literal8`). imap-codec decides, on the frame with a one-octet placeholder for the
/// message, so the mailbox (atom, quoted string or literal), flags and date are accepted
/// exactly as when the whole command is decoded. Returns the frame without the
/// announcement (the head for [`parse_streamed_append`]) and the decoded command.
pub(crate) fn append_head(frame: &[u8]) -> Option<(Vec<u8>, Command<'static>)> {
    let body = frame.strip_suffix(b"\r\n")?;
    let (len, _) = literal_at_end(body)?;
    // imap-codec takes literal lengths as u32.
    u32::try_from(len).ok()?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    let head = frame[..open].to_vec();
    // RFC 6855 §4 `UTF8 (~{n})`: the `)` follows the message.
    let cmd = parse_streamed_append(&head, false, b"")
        .or_else(|_| parse_streamed_append(&head, false, b")"))
        .ok()?;
    Some((head, cmd))
}

/// Decodes an APPEND whose message was streamed ([`append_head`]): the head, a placeholder
/// message ([`placeholder`]) and `tail`, the rest of the command line after the message
/// (without CRLF). Errors are those [`parse_command`] gives for the whole command.
pub(crate) fn parse_streamed_append(
    head: &[u8],
    nul: bool,
    tail: &[u8],
) -> Result<Command<'static>, ParseError> {
    let mut frame = Vec::with_capacity(head.len() + tail.len() + 8);
    frame.extend_from_slice(head);
    frame.extend_from_slice(placeholder(nul));
    frame.extend_from_slice(tail);
    frame.extend_from_slice(b"\r\n");
    // RFC 6855 §4 `UTF8 (~{n})`: the message is the literal8 inside.
    let frame = ext::append_utf8(&frame).unwrap_or(frame);
    let cmd = parse_command(&frame)?;
    match cmd.body {
        imap_codec::imap_types::command::CommandBody::Append { .. } => Ok(cmd.into_static()),
        // Not reachable: the head is an APPEND's; answered as any undecodable command.
        _ => Err(ParseError {
            tag: tag_of(head).map(|t| String::from_utf8_lossy(t).into_owned()),
            text: "Error in IMAP command: unknown command or invalid arguments",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imap_codec::imap_types::command::CommandBody;

    #[test]
    fn literal_announcements() {
        assert_eq!(literal_at_end(b"a APPEND x {5}"), Some((5, true)));
        assert_eq!(literal_at_end(b"a APPEND x {12+}"), Some((12, false)));
        assert_eq!(literal_at_end(b"a APPEND x {}"), None);
        assert_eq!(literal_at_end(b"a APPEND x {a}"), None);
        assert_eq!(literal_at_end(b"a NOOP"), None);
        assert_eq!(
            literal_at_end(b"{99999999999999999999}"),
            Some((u64::MAX, true))
        );
    }

    #[test]
    fn extensions_are_rewritten_for_imap_codec() {
        let r = |s: &[u8]| rewrite_extensions(s).map(|(b, e)| (String::from_utf8(b).unwrap(), e));
        assert_eq!(r(b"a XLIST \"\" *\r\n").unwrap().0, "a LIST \"\" *\r\n");
        assert_eq!(r(b"a xlist \"\" %\r\n").unwrap().0, "a LIST \"\" %\r\n");
        assert_eq!(r(b"a LIST \"\" *\r\n"), None);
        assert_eq!(r(b"a UID XLIST \"\" *\r\n"), None);
        let (b, e) = r(b"a STATUS INBOX (MESSAGES APPENDLIMIT UIDNEXT)\r\n").unwrap();
        assert_eq!(b, "a STATUS INBOX (MESSAGES UIDNEXT)\r\n");
        assert!(e.status_appendlimit && !e.status_appendlimit_only);
        let (b, e) = r(b"a status {5}\r\nIN(X) (appendlimit)\r\n").unwrap();
        assert_eq!(b, "a status {5}\r\nIN(X) (MESSAGES)\r\n");
        assert!(e.status_appendlimit_only);
        assert_eq!(r(b"a STATUS INBOX (MESSAGES)\r\n"), None);
        assert_eq!(r(b"* STATUS INBOX (APPENDLIMIT)\r\n"), None);
        assert!(parse_command(r(b"a XLIST \"\" *\r\n").unwrap().0.as_bytes()).is_ok());
    }

    #[test]
    fn unauthenticate_is_recognised_whole_and_alone() {
        assert_eq!(unauthenticate_tag(b"a1 UNAUTHENTICATE\r\n"), Some(&b"a1"[..]));
        assert_eq!(unauthenticate_tag(b"x unauthenticate\r\n"), Some(&b"x"[..]));
        assert_eq!(unauthenticate_tag(b"a1 UNAUTHENTICATE x\r\n"), None);
        assert_eq!(unauthenticate_tag(b"a1 UNAUTHENTICATE \r\n"), None);
        assert_eq!(unauthenticate_tag(b"a1 UNAUTHENTICATE"), None);
        assert_eq!(unauthenticate_tag(b"* UNAUTHENTICATE\r\n"), None);
        assert_eq!(unauthenticate_tag(b"a1 UNAUTH\r\n"), None);
        assert_eq!(unauthenticate_tag(b"UNAUTHENTICATE\r\n"), None);
        // Every prefix of the command is not it either (the driver hands whole commands).
        let full = b"t UNAUTHENTICATE\r\n";
        for n in 0..full.len() {
            assert_eq!(unauthenticate_tag(&full[..n]), None, "{n}");
        }
    }

    #[test]
    fn tags() {
        assert_eq!(tag_of(b"a1 NOOP"), Some(&b"a1"[..]));
        assert_eq!(tag_of(b"* NOOP"), None);
        assert_eq!(tag_of(b"+ NOOP"), None);
        assert_eq!(tag_of(b"NOOP\r\n"), None);
        assert_eq!(tag_of(b"a]b x"), Some(&b"a]b"[..]));
    }

    #[test]
    fn append_heads_are_recognised_as_the_whole_command_would_decode() {
        use imap_codec::imap_types::mailbox::Mailbox;
        // (command so far, mailbox if it is an APPEND whose last literal is the message).
        let cases: &[(&[u8], Option<&str>)] = &[
            (b"a APPEND INBOX {70000}\r\n", Some("INBOX")),
            (b"a append inbox {70000+}\r\n", Some("INBOX")),
            (b"a APPEND \"Sent Items\" {70000}\r\n", Some("Sent Items")),
            (b"a APPEND {5}\r\nDraft (\\Seen) {70000}\r\n", Some("Draft")),
            (b"a APPEND {5+}\r\nDr{f} {70000}\r\n", Some("Dr{f}")),
            (
                b"a APPEND Drafts (\\Seen $Kw) \"01-Jan-2024 00:00:00 +0000\" {70000+}\r\n",
                Some("Drafts"),
            ),
            (b"a APPEND Drafts () ~{70000}\r\n", Some("Drafts")),
            // The literal is the mailbox name, not the message.
            (b"a APPEND {70000}\r\n", None),
            // Not valid APPEND prefixes: the whole command would not decode either.
            (b"a APPEND Drafts (\\Seen {70000}\r\n", None),
            (b"a APPEND Drafts \"99-Foo-2024\" {70000}\r\n", None),
            (b"a APPEND Drafts  {70000}\r\n", None),
            (b"a APPEND Drafts (\\Seen)(\\Seen) {70000}\r\n", None),
            (b"a SEARCH TEXT {70000}\r\n", None),
            (b"a LOGIN alice {70000}\r\n", None),
            (b"APPEND INBOX {70000}\r\n", None),
            (b"a APPEND INBOX {99999999999}\r\n", None),
            (b"a APPEND INBOX\r\n", None),
        ];
        for (frame, want) in cases {
            let got = append_head(frame).map(|(head, cmd)| {
                let CommandBody::Append { mailbox, .. } = cmd.body else {
                    panic!("not an APPEND");
                };
                // The head is the frame up to the announcement (`~` kept).
                assert!(frame.starts_with(&head));
                assert_eq!(frame[head.len()], b'{');
                match mailbox {
                    Mailbox::Inbox => "INBOX".to_string(),
                    Mailbox::Other(o) => String::from_utf8(o.as_ref().to_vec()).unwrap(),
                }
            });
            assert_eq!(got.as_deref(), *want, "{:?}", String::from_utf8_lossy(frame));
        }
    }

    #[test]
    fn streamed_append_tails_are_accepted_as_the_whole_command_would_be() {
        let (head, _) = append_head(b"t1 APPEND INBOX (\\Seen) {70000}\r\n").unwrap();
        // The whole command with a short message, and the streamed form, agree on every tail.
        for (tail, ok) in [
            (&b""[..], true),
            (b" ", false),
            (b" x", false),
            (b" {5}", false),
            (b")", false),
            (b"\r", false),
        ] {
            let mut whole = b"t1 APPEND INBOX (\\Seen) {1}\r\nM".to_vec();
            whole.extend_from_slice(tail);
            whole.extend_from_slice(b"\r\n");
            let streamed = parse_streamed_append(&head, false, tail);
            assert_eq!(streamed.is_ok(), ok, "{tail:?}");
            match (parse_command(&whole), streamed) {
                (Ok(_), Ok(_)) => {}
                (Err(a), Err(b)) => assert_eq!(a, b, "{tail:?}"),
                (a, b) => panic!("{tail:?}: whole {a:?}, streamed {b:?}"),
            }
        }
        // A NUL in a `{n}` message is refused as imap-codec refuses it in the whole command;
        // a `~{n}` (literal8) message may hold one.
        let e = parse_streamed_append(&head, true, b"").unwrap_err();
        assert_eq!(e, parse_command(b"t1 APPEND INBOX (\\Seen) {1}\r\n\0\r\n").unwrap_err());
        assert_eq!(e.tag.as_deref(), Some("t1"));
        let (head8, _) = append_head(b"t2 APPEND INBOX ~{70000}\r\n").unwrap();
        assert!(parse_streamed_append(&head8, true, b"").is_ok());
    }

    #[test]
    fn append_utf8_data_is_the_literal8_inside() {
        use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
        let msg = "Subject: Grüße\r\n\r\nx\r\n";
        let whole = format!("a APPEND INBOX (\\Seen) UTF8 (~{{{}}}\r\n{msg})\r\n", msg.len());
        // Every split of the frame into what was received so far decodes to the same.
        let (cmd, _) = parse_command_ext(whole.as_bytes()).unwrap();
        let CommandBody::Append { message, flags, .. } = cmd.body else {
            panic!("not an APPEND");
        };
        assert_eq!(flags.len(), 1);
        let LiteralOrLiteral8::Literal8(l) = message else {
            panic!("not a literal8");
        };
        assert_eq!(l.data.as_ref(), msg.as_bytes());
        // Not the form: refused as before.
        for bad in [
            "a APPEND INBOX UTF8 (~{1}\r\nX\r\n",
            "a APPEND INBOX UTF8 ({1}\r\nX)\r\n",
            "a APPEND INBOX UTF8 ( ~{1}\r\nX)\r\n",
            "a APPEND UTF8 (~{1}\r\nX)\r\n",
        ] {
            assert!(parse_command_ext(bad.as_bytes()).is_err(), "{bad:?}");
        }
        // Streamed: the head ends at the announcement, the `)` is the rest of the line.
        let (head, cmd) = append_head(b"t1 APPEND INBOX UTF8 (~{70000}\r\n").unwrap();
        assert!(matches!(cmd.body, CommandBody::Append { .. }));
        assert!(parse_streamed_append(&head, true, b")").is_ok());
        assert!(parse_streamed_append(&head, false, b"").is_err());
        assert!(parse_streamed_append(&head, false, b") x").is_err());
    }

    #[test]
    fn parse_decodes_with_literals_and_reports_tagged_bad() {
        let c = parse_command(b"a LOGIN {4}\r\nuser {4+}\r\npass\r\n").unwrap();
        assert_eq!(c.tag.as_ref(), "a");
        assert!(matches!(c.body, CommandBody::Login { .. }));
        let c = parse_command(b"t1 UID MOVE 1:* Trash\r\n").unwrap();
        assert!(matches!(c.body, CommandBody::Move { uid: true, .. }));
        let c = parse_command(b"t2 IDLE\r\n").unwrap();
        assert!(matches!(c.body, CommandBody::Idle));
        let e = parse_command(b"t3 FROBNICATE\r\n").unwrap_err();
        assert_eq!(e.tag.as_deref(), Some("t3"));
        let e = parse_command(b"***\r\n").unwrap_err();
        assert_eq!(e.tag, None);
        let e = parse_command(b"\r\n").unwrap_err();
        assert_eq!(e.tag, None);
    }
}
