//! The tokens of RFC 822 structured header values (RFC 2045 §5.1 tokens and tspecials,
//! RFC 5322 §3.2 atoms, quoted strings, comments, domain literals), shared by the
//! Content-Type and address parsers and by the IMAP writers that read a header's first token.

/// A lexer over RFC 822 structured header values.
pub(crate) struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// An atom (RFC 2045 token chars or RFC 5322 atext, depending on `specials`).
    Atom(Vec<u8>),
    Quoted(Vec<u8>),
    Comment(Vec<u8>),
    Special(u8),
    /// Domain literal `[...]` kept with its brackets.
    Literal(Vec<u8>),
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(s: &'a [u8]) -> Lexer<'a> {
        Lexer { s, i: 0 }
    }

    /// Skips whitespace; returns whether any was skipped.
    fn ws(&mut self) -> bool {
        let start = self.i;
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\r' | b'\n') {
            self.i += 1;
        }
        self.i > start
    }

    pub(crate) fn next(&mut self, specials: &[u8]) -> Option<Tok> {
        self.ws();
        let c = *self.s.get(self.i)?;
        match c {
            b'"' => {
                self.i += 1;
                let mut v = Vec::new();
                while self.i < self.s.len() {
                    let b = self.s[self.i];
                    self.i += 1;
                    match b {
                        b'"' => return Some(Tok::Quoted(v)),
                        b'\\' if self.i < self.s.len() => {
                            v.push(self.s[self.i]);
                            self.i += 1;
                        }
                        b'\r' | b'\n' => {}
                        _ => v.push(b),
                    }
                }
                Some(Tok::Quoted(v))
            }
            b'(' => {
                self.i += 1;
                let mut depth = 1;
                let mut v = Vec::new();
                while self.i < self.s.len() {
                    let b = self.s[self.i];
                    self.i += 1;
                    match b {
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        b'\\' if self.i < self.s.len() => {
                            v.push(self.s[self.i]);
                            self.i += 1;
                            continue;
                        }
                        _ => {}
                    }
                    v.push(b);
                }
                Some(Tok::Comment(v))
            }
            b'[' if specials.contains(&b'[') => {
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i] != b']' {
                    self.i += 1;
                }
                self.i = (self.i + 1).min(self.s.len());
                Some(Tok::Literal(self.s[start..self.i].to_vec()))
            }
            _ if specials.contains(&c) => {
                self.i += 1;
                Some(Tok::Special(c))
            }
            _ => {
                let start = self.i;
                while self.i < self.s.len() {
                    let b = self.s[self.i];
                    if matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'"' | b'(')
                        || specials.contains(&b)
                    {
                        break;
                    }
                    self.i += 1;
                }
                Some(Tok::Atom(self.s[start..self.i].to_vec()))
            }
        }
    }
}

/// RFC 2045 §5.1 tspecials (minus the quote and parentheses the lexer handles itself).
pub(crate) const TSPECIALS: &[u8] = b"<>@,;:\\/[]?=";
