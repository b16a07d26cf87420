//! LMTP command lines (RFC 2033, with RFC 5321's syntax for the shared commands): a pure
//! parser from one line (without its CRLF, as the connection driver frames it) to a
//! [`Command`]. No state: which command is allowed when is the session's business.
//!
//! Accepted parameters: `SIZE=n` (RFC 1870) and `BODY=7BIT|8BITMIME` (RFC 6152) on MAIL;
//! none on RCPT (we announce no DSN). Anything else is [`ParseError::Param`]
//! (`555 5.5.4`).

/// One parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `LHLO domain` (RFC 2033 §4.1).
    Lhlo(String),
    /// `MAIL FROM:<path> [SIZE=n] [BODY=...]`; the reverse path without its brackets
    /// (empty for the null sender `<>`).
    Mail { from: String, size: Option<u64> },
    /// `RCPT TO:<path>`; the forward path without its brackets.
    Rcpt(String),
    Data,
    /// `BDAT n [LAST]` (RFC 3030).
    Bdat { size: u64, last: bool },
    Rset,
    Noop,
    Quit,
    /// `HELO`/`EHLO`: LMTP servers answer them with an error (RFC 2033 §4.1).
    HeloEhlo,
    /// A verb we know but do not offer (VRFY, EXPN, STARTTLS, HELP, ...).
    NotImplemented(String),
}

/// Why a line is not a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Not a verb we know (`500 5.5.1`).
    Unknown,
    /// A known verb with bad arguments (`501 5.5.4`).
    Syntax,
    /// A parameter we do not offer, or a bad value of one (`555 5.5.4`).
    Param,
}

/// Parses one command line (RFC 5321 §4.1.1: verbs are case-insensitive).
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let line = std::str::from_utf8(line).map_err(|_| ParseError::Syntax)?;
    let (verb, rest) = match line.find(' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, ""),
    };
    let verb = verb.to_ascii_uppercase();
    let none = |c: Command| {
        if rest.trim().is_empty() {
            Ok(c)
        } else {
            Err(ParseError::Syntax)
        }
    };
    match verb.as_str() {
        "LHLO" => {
            let domain = rest.trim();
            if domain.is_empty() || domain.contains(char::is_whitespace) {
                return Err(ParseError::Syntax);
            }
            Ok(Command::Lhlo(domain.to_string()))
        }
        "MAIL" => {
            let (from, params) = path_arg(rest, "FROM:")?;
            let mut size = None;
            for p in params {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                match k.to_ascii_uppercase().as_str() {
                    "SIZE" if size.is_none() => {
                        if v.is_empty() || v.len() > 20 || !v.bytes().all(|b| b.is_ascii_digit())
                        {
                            return Err(ParseError::Param);
                        }
                        size = Some(v.parse().map_err(|_| ParseError::Param)?);
                    }
                    "BODY" if ["7BIT", "8BITMIME"].iter().any(|b| b.eq_ignore_ascii_case(v)) => {}
                    _ => return Err(ParseError::Param),
                }
            }
            Ok(Command::Mail { from, size })
        }
        "RCPT" => {
            let (to, params) = path_arg(rest, "TO:")?;
            if to.is_empty() {
                return Err(ParseError::Syntax);
            }
            if params.count() > 0 {
                return Err(ParseError::Param);
            }
            Ok(Command::Rcpt(to))
        }
        "DATA" => none(Command::Data),
        "BDAT" => {
            let mut words = rest.split(' ').filter(|w| !w.is_empty());
            let n = words.next().ok_or(ParseError::Syntax)?;
            if n.len() > 20 || !n.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ParseError::Syntax);
            }
            let size = n.parse().map_err(|_| ParseError::Syntax)?;
            let last = match words.next() {
                None => false,
                Some(w) if w.eq_ignore_ascii_case("LAST") => true,
                Some(_) => return Err(ParseError::Syntax),
            };
            if words.next().is_some() {
                return Err(ParseError::Syntax);
            }
            Ok(Command::Bdat { size, last })
        }
        "RSET" => none(Command::Rset),
        // RFC 5321 §4.1.1.9: NOOP may have a string argument, ignored.
        "NOOP" => Ok(Command::Noop),
        "QUIT" => none(Command::Quit),
        "HELO" | "EHLO" => Ok(Command::HeloEhlo),
        "VRFY" | "EXPN" | "HELP" | "STARTTLS" | "TURN" | "ETRN" | "AUTH" => {
            Ok(Command::NotImplemented(verb))
        }
        _ => Err(ParseError::Unknown),
    }
}

/// One line of DATA content (RFC 5321 §4.5.2): `None` for the `.` that ends the data, else
/// the line with its transparency dot removed.
pub fn data_line(line: &[u8]) -> Option<&[u8]> {
    if line == b"." {
        return None;
    }
    Some(line.strip_prefix(b".").unwrap_or(line))
}

/// `FROM:<path> params` / `TO:<path> params`: the path without brackets and the parameters.
/// A space after the colon is tolerated (many clients write it; Postfix and Dovecot accept
/// it). A quoted local part may hold spaces and `>`.
fn path_arg<'a>(
    rest: &'a str,
    keyword: &str,
) -> Result<(String, impl Iterator<Item = &'a str>), ParseError> {
    let head = rest.get(..keyword.len()).ok_or(ParseError::Syntax)?;
    if !head.eq_ignore_ascii_case(keyword) {
        return Err(ParseError::Syntax);
    }
    let arg = rest[keyword.len()..].trim_start_matches(' ');
    let body = arg.strip_prefix('<').ok_or(ParseError::Syntax)?;
    // The closing bracket: the first '>' outside a quoted string.
    let mut quoted = false;
    let mut escaped = false;
    let mut end = None;
    for (i, c) in body.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => {
                end = Some(i);
                break;
            }
            _ => {}
        }
    }
    let end = end.ok_or(ParseError::Syntax)?;
    let path = &body[..end];
    let after = &body[end + 1..];
    if !after.is_empty() && !after.starts_with(' ') {
        return Err(ParseError::Syntax);
    }
    if path.chars().any(|c| c.is_control()) {
        return Err(ParseError::Syntax);
    }
    // RFC 5321 §4.1.2: a source route (`@a,@b:user@c`) is accepted and ignored.
    let path = match path.strip_prefix('@') {
        Some(_) => path.split_once(':').map(|(_, p)| p).ok_or(ParseError::Syntax)?,
        None => path,
    };
    Ok((path.to_string(), after.split(' ').filter(|w| !w.is_empty())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::{Frame, Framer};

    #[test]
    fn commands_parse() {
        assert_eq!(parse(b"LHLO mx.example"), Ok(Command::Lhlo("mx.example".into())));
        assert_eq!(parse(b"lhlo x"), Ok(Command::Lhlo("x".into())));
        assert_eq!(parse(b"LHLO"), Err(ParseError::Syntax));
        assert_eq!(
            parse(b"MAIL FROM:<a@b> SIZE=100 BODY=8BITMIME"),
            Ok(Command::Mail { from: "a@b".into(), size: Some(100) })
        );
        assert_eq!(parse(b"mail from: <>"), Ok(Command::Mail { from: "".into(), size: None }));
        assert_eq!(parse(b"MAIL FROM:<a@b> SIZE=x"), Err(ParseError::Param));
        assert_eq!(parse(b"MAIL FROM:<a@b> RET=FULL"), Err(ParseError::Param));
        assert_eq!(parse(b"MAIL FROM:a@b"), Err(ParseError::Syntax));
        assert_eq!(parse(b"MAIL TO:<a@b>"), Err(ParseError::Syntax));
        assert_eq!(parse(b"RCPT TO:<bob+Lists@x.org>"), Ok(Command::Rcpt("bob+Lists@x.org".into())));
        assert_eq!(parse(b"RCPT TO:<\"a >b\"@x>"), Ok(Command::Rcpt("\"a >b\"@x".into())));
        assert_eq!(parse(b"RCPT TO:<@r1,@r2:u@x>"), Ok(Command::Rcpt("u@x".into())));
        assert_eq!(parse(b"RCPT TO:<>"), Err(ParseError::Syntax));
        assert_eq!(parse(b"RCPT TO:<u@x> NOTIFY=NEVER"), Err(ParseError::Param));
        assert_eq!(parse(b"RCPT TO:<u@x>junk"), Err(ParseError::Syntax));
        assert_eq!(parse(b"DATA"), Ok(Command::Data));
        assert_eq!(parse(b"DATA x"), Err(ParseError::Syntax));
        assert_eq!(parse(b"BDAT 10"), Ok(Command::Bdat { size: 10, last: false }));
        assert_eq!(parse(b"bdat 0 last"), Ok(Command::Bdat { size: 0, last: true }));
        assert_eq!(parse(b"BDAT -1"), Err(ParseError::Syntax));
        assert_eq!(parse(b"BDAT 1 LAST x"), Err(ParseError::Syntax));
        assert_eq!(parse(b"BDAT 99999999999999999999999"), Err(ParseError::Syntax));
        assert_eq!(parse(b"RSET"), Ok(Command::Rset));
        assert_eq!(parse(b"NOOP hello"), Ok(Command::Noop));
        assert_eq!(parse(b"QUIT"), Ok(Command::Quit));
        assert_eq!(parse(b"EHLO x"), Ok(Command::HeloEhlo));
        assert_eq!(parse(b"VRFY u"), Ok(Command::NotImplemented("VRFY".into())));
        assert_eq!(parse(b"FOO"), Err(ParseError::Unknown));
        assert_eq!(parse(b"RCPT TO:<u\x01@x>"), Err(ParseError::Syntax));
        assert_eq!(parse(b"\xff\xfe"), Err(ParseError::Syntax));
    }

    #[test]
    fn data_lines_are_unstuffed_and_the_lone_dot_ends_them() {
        assert_eq!(data_line(b"."), None);
        assert_eq!(data_line(b".."), Some(&b"."[..]));
        assert_eq!(data_line(b"..x"), Some(&b".x"[..]));
        assert_eq!(data_line(b"x."), Some(&b"x."[..]));
        assert_eq!(data_line(b""), Some(&b""[..]));
    }

    /// A pipelined transcript framed at every chunk size parses to the same commands.
    #[test]
    fn pipelined_transcript_at_every_chunk_size() {
        let wire = b"LHLO mx\r\nMAIL FROM:<s@x> SIZE=12\r\nRCPT TO:<a@x>\nRCPT TO:<b+f@x>\r\nBDAT 5 LAST\r\nQUIT\r\n";
        let expected = vec![
            Ok(Command::Lhlo("mx".into())),
            Ok(Command::Mail { from: "s@x".into(), size: Some(12) }),
            Ok(Command::Rcpt("a@x".into())),
            Ok(Command::Rcpt("b+f@x".into())),
            Ok(Command::Bdat { size: 5, last: true }),
            Ok(Command::Quit),
        ];
        for chunk in 1..=wire.len() {
            let mut f = Framer::new(512);
            let mut got = Vec::new();
            for piece in wire.chunks(chunk) {
                f.push(piece);
                while let Some(frame) = f.next_line() {
                    match frame {
                        Frame::Line(l) => got.push(parse(&l)),
                        Frame::TooLong => panic!("too long at chunk {chunk}"),
                    }
                }
            }
            assert_eq!(got, expected, "chunk size {chunk}");
        }
    }
}
