//! IMAP command framing (STYLE principles 1 and 2): splits client input into complete
//! commands — a line, or lines joined by literals — under hard size limits, before any parsing.
//!
//! Owns: the command grammar's outer shape (RFC 3501 §2.2 and §4.3 `literal`, §7.5
//! continuation request), synchronizing vs non-synchronizing literals (RFC 7888 LITERAL+ and
//! LITERAL-), and refusing oversize input so that the connection resynchronises at a message
//! boundary: a refused literal's data is never read as a command. For a synchronizing literal
//! the refusal happens before the client sends the data (RFC 3501 §7.5: no `+` is sent); for a
//! non-synchronizing one the client sends the data anyway, so its `n` bytes and the rest of the
//! command are skipped.
//!
//! Sans-IO: [`Framer::next`] is given the driver's unconsumed input and says what to do; it
//! never reads or writes a socket. The decoded [`Command`] comes from imap-codec's
//! `CommandCodec` in [`parse_command`].
//!
//! AUTHENTICATE continuation lines (RFC 3501 §6.2.2) and IDLE's `DONE` (RFC 2177) are plain
//! lines with no literals: [`Mode::Line`] frames those.

use imap_codec::decode::{CommandDecodeError, Decoder};
use imap_codec::imap_types::command::Command;
use imap_codec::CommandCodec;

/// Default per-line limit (each line of a command, literals excluded): 64 KiB.
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;

/// RFC 7888 §2: LITERAL- accepts non-synchronizing literals of at most this many bytes.
pub const LITERAL_MINUS_MAX: u64 = 4096;

/// Hard limits a [`Framer`] enforces.
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

/// Which non-synchronizing literal extension the server advertised (RFC 7888).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonSync {
    /// `LITERAL+`: any `{n+}` up to [`Limits::max_literal`].
    Plus,
    /// `LITERAL-`: `{n+}` only up to 4096 bytes.
    Minus,
}

/// What the next frame is expected to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A tagged command, possibly with literals.
    Command,
    /// One plain line (AUTHENTICATE continuation data, IDLE `DONE`): no literal processing.
    Line,
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

/// What the driver should do next with its input buffer `buf` (always starting at the first
/// byte not yet consumed).
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Read more input; consume nothing.
    Incomplete,
    /// A synchronizing literal `{literal_len}` was accepted: send `+ Ready\r\n`, then read more;
    /// consume nothing.
    NeedContinuation { literal_len: u32 },
    /// A whole command (or, in [`Mode::Line`], a whole line), CRLF and literals included.
    /// Consume `.len()` bytes after handling it.
    Complete(&'a [u8]),
    /// Input was refused: answer `<tag> BAD <error.reply_text()>` (`*` without a tag), then
    /// consume `discard` bytes. Further input may still be skipped via [`Frame::Discard`].
    Refused {
        error: FrameError,
        tag: Option<&'a [u8]>,
        discard: usize,
    },
    /// Silently consume this many bytes (the rest of a refused command).
    Discard(usize),
}

/// Scanning state, relative to the start of the driver's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Scanning the lines of a command; `pos` bytes of it are known good; `literal` is the
    /// number of literal bytes still to be taken before line scanning resumes at `pos`.
    Scan { pos: usize, literal: u64 },
    /// Skipping `bytes` more bytes of a refused non-synchronizing literal.
    SkipBytes { bytes: u64 },
    /// Skipping up to the end of the current line of a refused command.
    SkipLine,
}

/// Splits input into commands. One per connection; keeps only positions, never data, except
/// a short tail of a line being skipped (to see a literal announcement at its end).
#[derive(Debug, Clone)]
pub struct Framer {
    limits: Limits,
    nonsync: NonSync,
    mode: Mode,
    state: State,
    /// The last bytes of a line being skipped, to spot a trailing `{n+}` (whose data follows).
    skip_tail: Vec<u8>,
}

/// Longest tail kept while skipping: enough for `{` + 20 digits + `+}` + CRLF.
const TAIL_KEEP: usize = 32;

impl Framer {
    pub fn new(limits: Limits, nonsync: NonSync) -> Framer {
        Framer {
            limits,
            nonsync,
            mode: Mode::Command,
            state: State::Scan { pos: 0, literal: 0 },
            skip_tail: Vec::new(),
        }
    }

    /// Switches between commands and plain lines; takes effect at the next frame.
    pub fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Looks at the unconsumed input and says what to do (see [`Frame`]). Call again after
    /// more input arrives or after consuming what a previous answer said to consume.
    pub fn next<'a>(&mut self, buf: &'a [u8]) -> Frame<'a> {
        match self.state {
            State::SkipBytes { bytes } => {
                if buf.is_empty() {
                    return Frame::Incomplete;
                }
                let n = (buf.len() as u64).min(bytes);
                let left = bytes - n;
                self.state = if left == 0 {
                    self.skip_tail.clear();
                    State::SkipLine
                } else {
                    State::SkipBytes { bytes: left }
                };
                Frame::Discard(n as usize)
            }
            State::SkipLine => self.skip_line(buf),
            State::Scan { pos, literal } => self.scan(buf, pos, literal),
        }
    }

    fn skip_line(&mut self, buf: &[u8]) -> Frame<'static> {
        if buf.is_empty() {
            return Frame::Incomplete;
        }
        let (n, ended) = match memchr(b'\n', buf) {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        self.skip_tail.extend_from_slice(&buf[..n]);
        if self.skip_tail.len() > TAIL_KEEP {
            let cut = self.skip_tail.len() - TAIL_KEEP;
            self.skip_tail.drain(..cut);
        }
        if ended {
            self.state = match literal_at_end(&self.skip_tail) {
                // The client sends a non-synchronizing literal's data without waiting: skip it,
                // then the rest of the command.
                Some((len, false)) => State::SkipBytes { bytes: len },
                // A synchronizing literal never comes: we send no `+`. The command is over.
                _ => State::Scan { pos: 0, literal: 0 },
            };
            self.skip_tail.clear();
        }
        Frame::Discard(n)
    }

    fn scan<'a>(&mut self, buf: &'a [u8], mut pos: usize, mut literal: u64) -> Frame<'a> {
        loop {
            if literal > 0 {
                let have = (buf.len() - pos) as u64;
                if have < literal {
                    self.state = State::Scan { pos, literal };
                    return Frame::Incomplete;
                }
                pos += literal as usize;
            }
            let line_start = pos;
            let rest = &buf[pos..];
            let Some(nl) = memchr(b'\n', rest) else {
                if rest.len() >= self.limits.max_line {
                    return self.refuse(buf, FrameError::TooLong, buf.len(), State::SkipLine);
                }
                self.state = State::Scan { pos, literal: 0 };
                return Frame::Incomplete;
            };
            let line = &rest[..=nl];
            if line.len() > self.limits.max_line {
                let end = line_start + line.len();
                return self.refuse_line(buf, FrameError::TooLong, end, line);
            }
            pos = line_start + line.len();
            if pos as u64 > self.limits.max_command {
                return self.refuse_line(buf, FrameError::TooLong, pos, line);
            }
            let announced = if self.mode == Mode::Command {
                literal_at_end(line)
            } else {
                None
            };
            match announced {
                None => {
                    self.state = State::Scan { pos: 0, literal: 0 };
                    return Frame::Complete(&buf[..pos]);
                }
                Some((len, sync)) => {
                    let nonsync_ok = match self.nonsync {
                        NonSync::Plus => true,
                        NonSync::Minus => len <= LITERAL_MINUS_MAX,
                    };
                    let too_big = len > self.limits.max_literal
                        || (pos as u64).saturating_add(len) > self.limits.max_command
                        || (!sync && !nonsync_ok);
                    if too_big {
                        let next = if sync {
                            State::Scan { pos: 0, literal: 0 }
                        } else {
                            State::SkipBytes { bytes: len }
                        };
                        return self.refuse(buf, FrameError::LiteralTooBig, pos, next);
                    }
                    if sync && buf.len() == pos {
                        // The client waits for `+` before sending the data, even for a
                        // zero-length literal (RFC 3501 §7.5).
                        self.state = State::Scan { pos, literal: len };
                        return Frame::NeedContinuation {
                            literal_len: len.min(u64::from(u32::MAX)) as u32,
                        };
                    }
                    literal = len;
                }
            }
        }
    }

    /// Refuses because of the line `line` ending at `end`; if that line also announced a
    /// non-synchronizing literal, its data is skipped too.
    fn refuse_line<'a>(
        &mut self,
        buf: &'a [u8],
        error: FrameError,
        end: usize,
        line: &[u8],
    ) -> Frame<'a> {
        let next = match literal_at_end(line) {
            Some((len, false)) if self.mode == Mode::Command => State::SkipBytes { bytes: len },
            _ => State::Scan { pos: 0, literal: 0 },
        };
        self.refuse(buf, error, end, next)
    }

    fn refuse<'a>(
        &mut self,
        buf: &'a [u8],
        error: FrameError,
        discard: usize,
        next: State,
    ) -> Frame<'a> {
        self.state = match next {
            State::SkipBytes { bytes: 0 } => State::SkipLine,
            other => other,
        };
        self.skip_tail.clear();
        if self.state == State::SkipLine {
            // The discarded part may end with the start of a `{n+}` announcement.
            let from = discard.saturating_sub(TAIL_KEEP);
            self.skip_tail.extend_from_slice(&buf[from..discard]);
        }
        let tag = if self.mode == Mode::Command {
            tag_of(buf)
        } else {
            None
        };
        Frame::Refused {
            error,
            tag,
            discard,
        }
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// If `line` (ending in LF) ends with `{n}` or `{n+}` before its CRLF, the literal length and
/// whether it is synchronizing. Lengths beyond `u64` saturate (and are refused as too big).
fn literal_at_end(line: &[u8]) -> Option<(u64, bool)> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let (line, sync) = match line.strip_suffix(b"+") {
        Some(l) => (l, false),
        None => (line, true),
    };
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = &line[open + 1..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let len = digits.iter().fold(0u64, |acc, &d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    });
    Some((len, sync))
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

/// Decodes one complete command frame (from [`Frame::Complete`] in [`Mode::Command`]).
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

    /// What a driver would do, recorded as events, for one chunking of `input`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Ev {
        Cont(u32),
        Cmd(Vec<u8>),
        Bad(Option<Vec<u8>>, FrameError),
    }

    /// Feeds `input` in chunks of `chunk` bytes, acting like the connection driver; the
    /// client "sends" after `+` only what is there (it is scripted up front). Bounded loops.
    fn drive(input: &[u8], chunk: usize, limits: Limits, ns: NonSync) -> Vec<Ev> {
        let mut f = Framer::new(limits, ns);
        let mut buf: Vec<u8> = Vec::new();
        let mut fed = 0;
        let mut evs = Vec::new();
        for _ in 0..100_000 {
            match f.next(&buf) {
                Frame::Incomplete => {
                    if fed == input.len() {
                        break;
                    }
                    let n = chunk.min(input.len() - fed);
                    buf.extend_from_slice(&input[fed..fed + n]);
                    fed += n;
                }
                Frame::NeedContinuation { literal_len } => {
                    evs.push(Ev::Cont(literal_len));
                    if fed == input.len() {
                        break;
                    }
                    let n = chunk.min(input.len() - fed);
                    buf.extend_from_slice(&input[fed..fed + n]);
                    fed += n;
                }
                Frame::Complete(c) => {
                    let len = c.len();
                    evs.push(Ev::Cmd(c.to_vec()));
                    buf.drain(..len);
                }
                Frame::Refused {
                    error,
                    tag,
                    discard,
                } => {
                    evs.push(Ev::Bad(tag.map(|t| t.to_vec()), error));
                    buf.drain(..discard);
                }
                Frame::Discard(n) => {
                    assert!(n > 0 && n <= buf.len());
                    buf.drain(..n);
                }
            }
        }
        evs
    }

    /// Runs `drive` at every chunk size and asserts all agree (continuations may repeat only
    /// in the sense that a literal already fully buffered needs none).
    fn all_chunks(input: &[u8], limits: Limits, ns: NonSync) -> Vec<Ev> {
        let whole: Vec<Ev> = drive(input, input.len().max(1), limits, ns)
            .into_iter()
            .filter(|e| !matches!(e, Ev::Cont(_)))
            .collect();
        for chunk in 1..=input.len().max(1) {
            let got: Vec<Ev> = drive(input, chunk, limits, ns)
                .into_iter()
                .filter(|e| !matches!(e, Ev::Cont(_)))
                .collect();
            assert_eq!(got, whole, "chunk size {chunk}");
        }
        whole
    }

    fn lim() -> Limits {
        Limits {
            max_line: 64,
            max_literal: 10,
            max_command: 200,
        }
    }

    fn cmd(s: &str) -> Ev {
        Ev::Cmd(s.as_bytes().to_vec())
    }

    #[test]
    fn simple_lines_at_every_chunk_size() {
        let input = b"a1 NOOP\r\na2 CAPABILITY\r\na3 LOGOUT\r\n";
        let evs = all_chunks(input, lim(), NonSync::Plus);
        assert_eq!(
            evs,
            vec![
                cmd("a1 NOOP\r\n"),
                cmd("a2 CAPABILITY\r\n"),
                cmd("a3 LOGOUT\r\n")
            ]
        );
    }

    #[test]
    fn sync_literal_asks_for_continuation_then_completes() {
        let input = b"a LOGIN {4}\r\nuser {4}\r\npass\r\nb NOOP\r\n";
        // Byte-at-a-time: a `+` for each literal, since its data is not yet there.
        let evs = drive(input, 1, lim(), NonSync::Plus);
        assert_eq!(
            evs,
            vec![
                Ev::Cont(4),
                Ev::Cont(4),
                cmd("a LOGIN {4}\r\nuser {4}\r\npass\r\n"),
                cmd("b NOOP\r\n")
            ]
        );
        let evs = all_chunks(input, lim(), NonSync::Plus);
        assert_eq!(evs.len(), 2);
    }

    #[test]
    fn literal_data_containing_crlf_and_braces_is_not_a_line() {
        let input = b"a APPEND x {10}\r\nb NOOP\r\n\r\n\r\nc NOOP\r\n";
        let evs = all_chunks(input, lim(), NonSync::Plus);
        assert_eq!(
            evs,
            vec![
                cmd("a APPEND x {10}\r\nb NOOP\r\n\r\n\r\n"),
                cmd("c NOOP\r\n")
            ]
        );
    }

    #[test]
    fn zero_length_literal() {
        let input = b"a LOGIN {0}\r\n {0+}\r\n\r\nb NOOP\r\n";
        let evs = all_chunks(input, lim(), NonSync::Plus);
        assert_eq!(
            evs,
            vec![cmd("a LOGIN {0}\r\n {0+}\r\n\r\n"), cmd("b NOOP\r\n")]
        );
    }

    #[test]
    fn nonsync_literal_needs_no_continuation() {
        let input = b"a LOGIN {4+}\r\nuser {4+}\r\npass\r\n";
        let evs = drive(input, 1, lim(), NonSync::Plus);
        assert_eq!(evs, vec![cmd("a LOGIN {4+}\r\nuser {4+}\r\npass\r\n")]);
        all_chunks(input, lim(), NonSync::Plus);
    }

    #[test]
    fn sync_literal_too_big_is_refused_before_data() {
        // The client waits for `+`, gets BAD instead, and goes on with its next command.
        let input = b"a APPEND x {11}\r\nb NOOP\r\n";
        let evs = all_chunks(input, lim(), NonSync::Plus);
        assert_eq!(
            evs,
            vec![
                Ev::Bad(Some(b"a".to_vec()), FrameError::LiteralTooBig),
                cmd("b NOOP\r\n")
            ]
        );
        assert!(!drive(input, 1, lim(), NonSync::Plus).contains(&Ev::Cont(11)));
    }

    #[test]
    fn nonsync_literal_too_big_skips_its_data_and_the_rest_of_the_command() {
        // The 11 data bytes look like a command; they must not be read as one.
        let input = b"a APPEND x {12+}\r\nz DELETE y\r\n more {2+}\r\nzz\r\nb NOOP\r\n";
        let evs = all_chunks(input, lim(), NonSync::Plus);
        assert_eq!(
            evs,
            vec![
                Ev::Bad(Some(b"a".to_vec()), FrameError::LiteralTooBig),
                cmd("b NOOP\r\n")
            ]
        );
    }

    #[test]
    fn literal_minus_limits_nonsync_to_4096() {
        let limits = Limits {
            max_line: 64,
            max_literal: 10_000,
            max_command: 20_000,
        };
        let mut input = b"a APPEND x {4097+}\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 4097));
        input.extend_from_slice(b"\r\nb NOOP\r\n");
        let evs = drive(&input, 1000, limits, NonSync::Minus);
        assert_eq!(
            evs,
            vec![
                Ev::Bad(Some(b"a".to_vec()), FrameError::LiteralTooBig),
                cmd("b NOOP\r\n")
            ]
        );
        // Same input is fine with LITERAL+.
        let evs = drive(&input, 1000, limits, NonSync::Plus);
        assert_eq!(evs.len(), 2);
        assert!(matches!(&evs[0], Ev::Cmd(c) if c.len() == input.len() - 8));
    }

    #[test]
    fn long_line_is_refused_and_skipped_to_its_end() {
        let mut input = b"a1 SEARCH TEXT ".to_vec();
        input.extend(std::iter::repeat_n(b'q', 100));
        input.extend_from_slice(b"\r\na2 NOOP\r\n");
        let evs = all_chunks(&input, lim(), NonSync::Plus);
        assert_eq!(
            evs,
            vec![
                Ev::Bad(Some(b"a1".to_vec()), FrameError::TooLong),
                cmd("a2 NOOP\r\n")
            ]
        );
    }

    #[test]
    fn long_line_ending_in_nonsync_literal_skips_the_literal_too() {
        let mut input = b"a1 APPEND ".to_vec();
        input.extend(std::iter::repeat_n(b'q', 100));
        input.extend_from_slice(b" {5+}\r\nx1 Y\r\r\nb NOOP\r\n");
        let evs = all_chunks(&input, lim(), NonSync::Plus);
        assert_eq!(
            evs,
            vec![
                Ev::Bad(Some(b"a1".to_vec()), FrameError::TooLong),
                cmd("b NOOP\r\n")
            ]
        );
    }

    #[test]
    fn command_total_limit() {
        let limits = Limits {
            max_line: 64,
            max_literal: 10,
            max_command: 40,
        };
        let input =
            b"a X {10+}\r\n0123456789 {10+}\r\n0123456789 {10+}\r\n0123456789\r\nb NOOP\r\n";
        let evs = all_chunks(input, limits, NonSync::Plus);
        assert_eq!(
            evs,
            vec![
                Ev::Bad(Some(b"a".to_vec()), FrameError::TooLong),
                cmd("b NOOP\r\n")
            ]
        );
    }

    #[test]
    fn line_mode_ignores_literal_syntax() {
        let mut f = Framer::new(lim(), NonSync::Plus);
        f.set_mode(Mode::Line);
        assert_eq!(f.next(b"DONE {5}\r\n"), Frame::Complete(b"DONE {5}\r\n"));
        assert_eq!(f.next(b"DON"), Frame::Incomplete);
        f.set_mode(Mode::Command);
        assert_eq!(
            f.next(b"a {5}\r\n"),
            Frame::NeedContinuation { literal_len: 5 }
        );
    }

    /// Pseudo-random input (bytes biased towards `{`, `}`, `+`, digits, CR, LF) never panics,
    /// every Discard/Complete/Refused makes progress, and the loop is bounded.
    #[test]
    fn random_input_always_progresses() {
        let alphabet = b"a1 {}+0123456789\r\n\r\nX";
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _round in 0..300 {
            let len = (seed % 200) as usize;
            let mut input = Vec::with_capacity(len);
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                input.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            for chunk in [1, 3, 7, 64] {
                let evs = drive(&input, chunk, lim(), NonSync::Plus);
                let cmd_bytes: usize = evs
                    .iter()
                    .map(|e| match e {
                        Ev::Cmd(c) => c.len(),
                        _ => 0,
                    })
                    .sum();
                assert!(cmd_bytes <= input.len());
            }
            drive(&input, 5, lim(), NonSync::Minus);
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
