//! The sans-IO edges of an IMAP command (RFC 3501 §2.2, §4.3, §9): the literal announcement
//! at the end of a line (`{n}` / RFC 7888 `{n+}`), the tag, the size limits, and decoding a
//! complete command with imap-codec's `CommandCodec`. Splitting input into lines and
//! literals is the driver's framer ([`crate::conn::Framer`]); the session assembles a command
//! from those ([`super::session`]) and decodes it here.

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
    fn tags() {
        assert_eq!(tag_of(b"a1 NOOP"), Some(&b"a1"[..]));
        assert_eq!(tag_of(b"* NOOP"), None);
        assert_eq!(tag_of(b"+ NOOP"), None);
        assert_eq!(tag_of(b"NOOP\r\n"), None);
        assert_eq!(tag_of(b"a]b x"), Some(&b"a]b"[..]));
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
