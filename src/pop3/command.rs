//! POP3 command parsing: one complete line (without CRLF) in, one [`Command`] out. Pure.
//!
//! RFC 1939 §3: a command is a case-insensitive keyword of three or four characters,
//! possibly followed by arguments separated by single spaces. `PASS` takes the rest of the
//! line as its argument (RFC 1939 §7 permits spaces in passwords). Extensions: `CAPA`
//! (RFC 2449 §5), `STLS` (RFC 2595 §4), `AUTH` (RFC 5034 §4). Secrets are wrapped in
//! [`Secret`] as soon as they are parsed, and [`redact`] gives the line as the protocol log
//! may show it (`Secret`).

use crate::auth::Secret;

/// A parsed POP3 command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    User(String),
    Pass(Secret<String>),
    /// `APOP name digest` (RFC 1939 §7).
    Apop {
        user: String,
        digest: Secret<String>,
    },
    /// `AUTH` alone lists mechanisms; `AUTH mech [initial-response]` (RFC 5034 §4).
    Auth {
        mechanism: Option<String>,
        initial: Option<Secret<String>>,
    },
    Stls,
    Capa,
    Stat,
    List(Option<u32>),
    Retr(u32),
    Dele(u32),
    Noop,
    Rset,
    Top(u32, u32),
    Uidl(Option<u32>),
    Quit,
}

impl Command {
    /// The commands that work on the maildrop, valid only in the TRANSACTION state (RFC 1939
    /// §5); with CAPA and QUIT they are all that state accepts.
    pub fn is_transaction(&self) -> bool {
        matches!(
            self,
            Command::Stat
                | Command::List(_)
                | Command::Retr(_)
                | Command::Dele(_)
                | Command::Noop
                | Command::Rset
                | Command::Top(_, _)
                | Command::Uidl(_)
        )
    }
}

/// Why a line is not a command; each maps to one fixed `-ERR` text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not a keyword we know (including empty lines and binary junk).
    Unknown,
    /// A known keyword with missing, extra or malformed arguments.
    BadArguments(&'static str),
    /// A message-number argument that is not a number.
    BadNumber(String),
}

impl ParseError {
    /// The reply text after `-ERR `.
    pub fn reply_text(&self) -> String {
        match self {
            ParseError::Unknown => "Unknown command.".to_string(),
            ParseError::BadArguments(usage) => format!("Invalid arguments. Usage: {usage}"),
            ParseError::BadNumber(n) => format!("Invalid message number: {n}"),
        }
    }
}

/// The longest argument RFC 1939 §3 allows (40 characters); `PASS` and `AUTH` responses are
/// bounded by the line limit instead.
const MAX_ARG: usize = 40;

/// Splits off the keyword: up to the first space.
fn keyword(line: &[u8]) -> (&[u8], Option<&[u8]>) {
    match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], Some(&line[i + 1..])),
        None => (line, None),
    }
}

/// Parses one command line (without its line ending).
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let (kw, rest) = keyword(line);
    if kw.is_empty() || kw.len() > 4 || !kw.iter().all(u8::is_ascii_alphabetic) {
        return Err(ParseError::Unknown);
    }
    let kw = kw.to_ascii_uppercase();
    let text = match rest {
        Some(r) => Some(std::str::from_utf8(r).map_err(|_| ParseError::Unknown)?),
        None => None,
    };
    let args: Vec<&str> = match text {
        Some(t) => t.split(' ').collect(),
        None => Vec::new(),
    };
    let none = |c: Command, usage: &'static str| {
        if args.is_empty() {
            Ok(c)
        } else {
            Err(ParseError::BadArguments(usage))
        }
    };
    match &kw[..] {
        b"USER" => match args[..] {
            [u] if valid_arg(u) => Ok(Command::User(u.to_string())),
            _ => Err(ParseError::BadArguments("USER name")),
        },
        // `PASS ` (an empty password) is a login attempt like any other: it fails as a wrong
        // password does, after the same delay, instead of telling the client it was empty.
        b"PASS" => match text {
            Some(p) => Ok(Command::Pass(Secret::new(p.to_string()))),
            None => Err(ParseError::BadArguments("PASS password")),
        },
        b"APOP" => match args[..] {
            [u, d] if valid_arg(u) && d.len() == 32 && d.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Ok(Command::Apop {
                    user: u.to_string(),
                    digest: Secret::new(d.to_ascii_lowercase()),
                })
            }
            _ => Err(ParseError::BadArguments("APOP name digest")),
        },
        b"AUTH" => match args[..] {
            [] => Ok(Command::Auth {
                mechanism: None,
                initial: None,
            }),
            [m] if valid_arg(m) => Ok(Command::Auth {
                mechanism: Some(m.to_ascii_uppercase()),
                initial: None,
            }),
            [m, i] if valid_arg(m) && !i.is_empty() => Ok(Command::Auth {
                mechanism: Some(m.to_ascii_uppercase()),
                initial: Some(Secret::new(i.to_string())),
            }),
            _ => Err(ParseError::BadArguments(
                "AUTH [mechanism [initial-response]]",
            )),
        },
        b"STLS" => none(Command::Stls, "STLS"),
        b"CAPA" => none(Command::Capa, "CAPA"),
        b"STAT" => none(Command::Stat, "STAT"),
        b"NOOP" => none(Command::Noop, "NOOP"),
        b"RSET" => none(Command::Rset, "RSET"),
        b"QUIT" => none(Command::Quit, "QUIT"),
        b"LIST" => match args[..] {
            [] => Ok(Command::List(None)),
            [n] => Ok(Command::List(Some(number(n)?))),
            _ => Err(ParseError::BadArguments("LIST [msg]")),
        },
        b"UIDL" => match args[..] {
            [] => Ok(Command::Uidl(None)),
            [n] => Ok(Command::Uidl(Some(number(n)?))),
            _ => Err(ParseError::BadArguments("UIDL [msg]")),
        },
        b"RETR" => match args[..] {
            [n] => Ok(Command::Retr(number(n)?)),
            _ => Err(ParseError::BadArguments("RETR msg")),
        },
        b"DELE" => match args[..] {
            [n] => Ok(Command::Dele(number(n)?)),
            _ => Err(ParseError::BadArguments("DELE msg")),
        },
        b"TOP" => match args[..] {
            [n, m] => {
                let n = number(n)?;
                match lines(m) {
                    Some(m) => Ok(Command::Top(n, m)),
                    None => Err(ParseError::BadArguments("TOP msg lines")),
                }
            }
            _ => Err(ParseError::BadArguments("TOP msg lines")),
        },
        _ => Err(ParseError::Unknown),
    }
}

/// A non-empty argument of printable ASCII within the RFC 1939 length.
fn valid_arg(a: &str) -> bool {
    !a.is_empty() && a.len() <= MAX_ARG && a.bytes().all(|b| b.is_ascii_graphic())
}

/// A message number: decimal digits only (no sign, no spaces); range is checked by the session.
fn number(s: &str) -> Result<u32, ParseError> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::BadNumber(printable(s)));
    }
    s.parse().map_err(|_| ParseError::BadNumber(printable(s)))
}

/// A TOP line count (non-negative); absurdly large counts saturate.
fn lines(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse().unwrap_or(u32::MAX))
}

/// An argument echoed in a reply: printable ASCII only, bounded.
fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(MAX_ARG)
        .collect()
}

/// The words of a line as byte ranges: runs of non-whitespace, any ASCII whitespace (space,
/// tab, ...) separating them. Redaction reads lines with this, not with [`parse`], so a line
/// the parser refuses (`PASS\tpw`, ` PASS pw`) is redacted as a good one is.
fn words(line: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < line.len() {
        if line[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < line.len() && !line[i].is_ascii_whitespace() {
            i += 1;
        }
        out.push(start..i);
    }
    out
}

/// The line as the protocol log may show it, if it holds a secret: `PASS ***`,
/// `APOP name ***`, `AUTH mech ***` (the keyword keeps the client's spelling, the line is
/// kept up to the last word shown). `None` means the line can be logged as it is.
pub fn redact(line: &[u8]) -> Option<Vec<u8>> {
    let w = words(line);
    let kw = &line[w.first()?.clone()];
    let keep = if kw.eq_ignore_ascii_case(b"PASS") {
        // `PASS` alone holds nothing; `PASS ` may be an (empty) password attempt.
        if w.len() == 1 && w[0].end == line.len() {
            return None;
        }
        w[0].end
    } else if kw.eq_ignore_ascii_case(b"APOP") || kw.eq_ignore_ascii_case(b"AUTH") {
        if w.len() < 3 {
            return None;
        }
        w[1].end
    } else {
        return None;
    };
    let mut out = line[..keep].to_vec();
    out.extend_from_slice(b" ***");
    Some(out)
}

/// Whether `line` is `AUTH mechanism` without an initial response: a client sends its SASL
/// response on the next line, whether or not the server asked for it with `+ `.
pub fn auth_awaits_response(line: &[u8]) -> bool {
    let w = words(line);
    w.len() == 2 && line[w[0].clone()].eq_ignore_ascii_case(b"AUTH")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command, ParseError> {
        parse(s.as_bytes())
    }

    #[test]
    fn every_command_parses() {
        assert_eq!(p("USER bob"), Ok(Command::User("bob".into())));
        assert_eq!(p("PASS "), Ok(Command::Pass(Secret::new(String::new()))));
        assert_eq!(
            p("PASS secret with spaces"),
            Ok(Command::Pass(Secret::new("secret with spaces".into())))
        );
        assert_eq!(
            p("APOP mrose c4c9334bac560ecc979e58001b3e22fb"),
            Ok(Command::Apop {
                user: "mrose".into(),
                digest: Secret::new("c4c9334bac560ecc979e58001b3e22fb".into())
            })
        );
        assert_eq!(
            p("AUTH"),
            Ok(Command::Auth {
                mechanism: None,
                initial: None
            })
        );
        assert_eq!(
            p("AUTH plain"),
            Ok(Command::Auth {
                mechanism: Some("PLAIN".into()),
                initial: None
            })
        );
        assert_eq!(
            p("AUTH PLAIN AGJvYgBzZWNyZXQ="),
            Ok(Command::Auth {
                mechanism: Some("PLAIN".into()),
                initial: Some(Secret::new("AGJvYgBzZWNyZXQ=".into()))
            })
        );
        assert_eq!(p("STLS"), Ok(Command::Stls));
        assert_eq!(p("CAPA"), Ok(Command::Capa));
        assert_eq!(p("STAT"), Ok(Command::Stat));
        assert_eq!(p("LIST"), Ok(Command::List(None)));
        assert_eq!(p("LIST 2"), Ok(Command::List(Some(2))));
        assert_eq!(p("RETR 1"), Ok(Command::Retr(1)));
        assert_eq!(p("DELE 10"), Ok(Command::Dele(10)));
        assert_eq!(p("NOOP"), Ok(Command::Noop));
        assert_eq!(p("RSET"), Ok(Command::Rset));
        assert_eq!(p("TOP 1 0"), Ok(Command::Top(1, 0)));
        assert_eq!(p("TOP 3 10"), Ok(Command::Top(3, 10)));
        assert_eq!(p("UIDL"), Ok(Command::Uidl(None)));
        assert_eq!(p("UIDL 4"), Ok(Command::Uidl(Some(4))));
        assert_eq!(p("QUIT"), Ok(Command::Quit));
    }

    #[test]
    fn keywords_are_case_insensitive() {
        assert_eq!(p("quit"), Ok(Command::Quit));
        assert_eq!(p("QuIt"), Ok(Command::Quit));
        assert_eq!(p("user Bob"), Ok(Command::User("Bob".into())));
        assert_eq!(p("rEtR 7"), Ok(Command::Retr(7)));
        assert_eq!(p("top 1 2"), Ok(Command::Top(1, 2)));
    }

    #[test]
    fn unknown_and_junk() {
        for junk in ["", " ", "XYZZY", "HELO there", "QUITX", "QU1T", "LIST\t1"] {
            assert_eq!(p(junk), Err(ParseError::Unknown), "{junk:?}");
        }
        assert_eq!(parse(b"\x00\xff\xfe"), Err(ParseError::Unknown));
        assert_eq!(parse(b"USER \xff\xfe"), Err(ParseError::Unknown));
    }

    #[test]
    fn bad_arguments() {
        for bad in [
            "USER",
            "USER ",
            "USER a b",
            "PASS",
            "APOP bob",
            "APOP bob nothex",
            "APOP bob c4c9334bac560ecc979e58001b3e22fbXX",
            "STAT 1",
            "NOOP x",
            "QUIT now",
            "CAPA x",
            "STLS x",
            "RSET 1",
            "LIST 1 2",
            "RETR",
            "DELE",
            "TOP 1",
            "TOP 1 x",
            "TOP 1 -1",
            "UIDL 1 2",
            "AUTH PLAIN a b",
        ] {
            assert!(
                matches!(p(bad), Err(ParseError::BadArguments(_))),
                "{bad:?} -> {:?}",
                p(bad)
            );
        }
        assert!(p(&format!("USER {}", "u".repeat(41))).is_err());
    }

    #[test]
    fn bad_numbers() {
        for bad in [
            "RETR x",
            "RETR -1",
            "RETR +1",
            "RETR 1.0",
            "LIST 99999999999",
            "DELE  1",
        ] {
            assert!(
                matches!(
                    p(bad),
                    Err(ParseError::BadNumber(_)) | Err(ParseError::BadArguments(_))
                ),
                "{bad:?} -> {:?}",
                p(bad)
            );
        }
        assert_eq!(p("RETR x"), Err(ParseError::BadNumber("x".into())));
        // Zero parses; the session answers "no such message".
        assert_eq!(p("RETR 0"), Ok(Command::Retr(0)));
        assert_eq!(p("LIST 4294967295"), Ok(Command::List(Some(u32::MAX))));
        assert_eq!(
            p("LIST 4294967296"),
            Err(ParseError::BadNumber("4294967296".into()))
        );
    }

    #[test]
    fn secrets_do_not_print() {
        let c = p("PASS hunter2").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        let c = p("AUTH PLAIN AGJvYgBzZWNyZXQ=").unwrap();
        assert!(!format!("{c:?}").contains("AGJvYgBzZWNyZXQ="));
    }

    #[test]
    fn redaction() {
        let r = |s: &str| redact(s.as_bytes()).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(r("PASS hunter2"), Some("PASS ***".into()));
        assert_eq!(r("pass a b c"), Some("pass ***".into()));
        assert_eq!(
            r("APOP mrose c4c9334bac560ecc979e58001b3e22fb"),
            Some("APOP mrose ***".into())
        );
        assert_eq!(
            r("AUTH PLAIN AGJvYgBzZWNyZXQ="),
            Some("AUTH PLAIN ***".into())
        );
        assert_eq!(r("auth plain ="), Some("auth plain ***".into()));
        assert_eq!(r("AUTH PLAIN"), None);
        assert_eq!(r("AUTH"), None);
        assert_eq!(r("USER bob"), None);
        assert_eq!(r("RETR 1"), None);
        assert_eq!(r("PASS"), None);
        assert_eq!(r("PASS "), Some("PASS ***".into()));
    }

    #[test]
    fn malformed_secret_lines_are_redacted() {
        let r = |s: &str| redact(s.as_bytes()).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(r(" PASS Pw"), Some(" PASS ***".into()));
        assert_eq!(r("PASS\tPw"), Some("PASS ***".into()));
        assert_eq!(r("pass  Pw x"), Some("pass ***".into()));
        assert_eq!(r("PASS\t"), Some("PASS ***".into()));
        assert_eq!(r("APOP\tbob\tdigest"), Some("APOP\tbob ***".into()));
        assert_eq!(r("  auth  plain  QUJD"), Some("  auth  plain ***".into()));
        assert_eq!(r("APOP bob"), None);
    }

    #[test]
    fn auth_without_initial_response() {
        assert!(auth_awaits_response(b"AUTH PLAIN"));
        assert!(auth_awaits_response(b" auth\tFOO "));
        assert!(!auth_awaits_response(b"AUTH"));
        assert!(!auth_awaits_response(b"AUTH PLAIN QUJD"));
        assert!(!auth_awaits_response(b"USER PLAIN"));
    }
}
