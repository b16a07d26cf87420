//! MIME structure of a stored message for IMAP FETCH (RFC 3501 §6.4.5 sections, §7.4.2
//! ENVELOPE / BODY / BODYSTRUCTURE), computed from the raw CRLF bytes.
//!
//! Owns: splitting a message into parts with byte ranges (header, body) following RFC 2045
//! (Content-Type, Content-Transfer-Encoding), RFC 2046 §5.1 (multipart boundaries: the CRLF
//! before a delimiter line belongs to the delimiter) and §5.2.1 (message/rfc822), the section
//! numbering of RFC 3501 §6.4.5, and writing ENVELOPE and BODYSTRUCTURE the way Dovecot 2.3
//! does (raw header bytes, encoded words untouched, address groups as RFC 3501 §7.4.2 says).
//!
//! Why not mail-parser's tree: it decodes header values and its part offsets differ from the
//! RFC 2046 ranges IMAP needs (and Dovecot serves); a direct scanner over the raw bytes keeps
//! every range exact. mail-parser is used for charset decoding in SEARCH.
//!
//! Malformed MIME never fails: a missing Content-Type is text/plain; a multipart without a
//! boundary parameter is a leaf; a missing end boundary ends the part at the end of its parent;
//! a header without its blank line is all header. Nesting is capped at [`MAX_DEPTH`].

use std::ops::Range;

/// Deepest MIME nesting parsed; deeper parts are leaves (Dovecot caps nesting too).
pub const MAX_DEPTH: usize = 50;

/// A parsed message: the raw bytes and the part tree.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    pub raw: &'a [u8],
    pub root: Part,
}

/// One MIME part (the root is the whole message).
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// The part's header including the blank line that ends it (BODY[n.MIME], BODY[HEADER]).
    pub header: Range<usize>,
    /// The part's body (BODY[n], BODY[TEXT]); excludes the CRLF before the next boundary.
    pub body: Range<usize>,
    /// Content-Type as written (type and subtype unquoted, case kept) plus its parameters.
    pub ctype: ContentType,
    /// Whether the Content-Type was given at all (Dovecot adds a default charset otherwise).
    pub ctype_given: bool,
    pub kind: Kind,
}

/// What a part contains.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Leaf,
    Multipart(Vec<Part>),
    /// message/rfc822: the encapsulated message's root part.
    Message(Box<Part>),
}

/// A parsed `Content-Type`-like header: `value; name=value; ...`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContentType {
    pub mtype: Vec<u8>,
    pub subtype: Vec<u8>,
    pub params: Vec<(Vec<u8>, Vec<u8>)>,
}

impl ContentType {
    pub(crate) fn is(&self, t: &str, s: &str) -> bool {
        self.mtype.eq_ignore_ascii_case(t.as_bytes())
            && (s.is_empty() || self.subtype.eq_ignore_ascii_case(s.as_bytes()))
    }
    pub fn param(&self, name: &str) -> Option<&[u8]> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_slice())
    }
}

/// One header field: raw name and raw value (after the colon, folding kept, CRLF excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
    /// The whole field in the message, final line ending included.
    pub range: (usize, usize),
}

/// Iterates the fields of the header in `raw[range]`. A line without a colon is a field with
/// an empty value whose name is the whole line (kept for HEADER.FIELDS.NOT, never matched).
pub fn fields(raw: &[u8], range: Range<usize>) -> Vec<Field<'_>> {
    let mut out = Vec::new();
    let mut pos = range.start;
    let end = range.end;
    while pos < end {
        let line_end = line_end(raw, pos, end);
        let content = trim_eol(&raw[pos..line_end]);
        if content.is_empty() {
            break;
        }
        // Continuation lines.
        let mut field_end = line_end;
        while field_end < end && matches!(raw[field_end], b' ' | b'\t') {
            field_end = self::line_end(raw, field_end, end);
        }
        let whole = &raw[pos..field_end];
        let (name, value) = match whole.iter().position(|&b| b == b':') {
            Some(c) => (trim_ws_end(&whole[..c]), trim_eol(&whole[c + 1..])),
            None => (trim_eol(whole), &whole[..0]),
        };
        out.push(Field {
            name,
            value,
            range: (pos, field_end),
        });
        pos = field_end;
    }
    out
}

/// Position just past the LF ending the line at `pos` (or `end`).
fn line_end(raw: &[u8], pos: usize, end: usize) -> usize {
    match raw[pos..end].iter().position(|&b| b == b'\n') {
        Some(i) => pos + i + 1,
        None => end,
    }
}

fn trim_eol(s: &[u8]) -> &[u8] {
    let s = s.strip_suffix(b"\n").unwrap_or(s);
    s.strip_suffix(b"\r").unwrap_or(s)
}

fn trim_ws_end(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn trim_ws(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b'\r' | b'\n', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r' | b'\n'] = s {
        s = rest;
    }
    s
}

/// A header value unfolded as Dovecot does for ENVELOPE and BODYSTRUCTURE strings: surrounding
/// whitespace trimmed, each line break with the whitespace after it replaced by one space.
pub fn unfold(value: &[u8]) -> Vec<u8> {
    let v = trim_ws(value);
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if matches!(v[i], b'\r' | b'\n') {
            while i < v.len() && matches!(v[i], b'\r' | b'\n' | b' ' | b'\t') {
                i += 1;
            }
            out.push(b' ');
        } else {
            out.push(v[i]);
            i += 1;
        }
    }
    out
}

/// First field named `name` (case-insensitive) in the header at `range`.
pub fn header_value<'a>(raw: &'a [u8], range: Range<usize>, name: &str) -> Option<&'a [u8]> {
    fields(raw, range)
        .into_iter()
        .find(|f| f.name.eq_ignore_ascii_case(name.as_bytes()))
        .map(|f| f.value)
}

/// End of the header starting at `start` (past its blank line), or `end` when there is none.
fn header_end(raw: &[u8], start: usize, end: usize) -> usize {
    let mut pos = start;
    while pos < end {
        let le = line_end(raw, pos, end);
        if trim_eol(&raw[pos..le]).is_empty() {
            return le;
        }
        pos = le;
    }
    end
}

// ---------------------------------------------------------------------------------------------
// RFC 2045 structured values: tokens, quoted strings, comments.

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

/// Parses `type/subtype; a=b; c="d"` (comments ignored). Missing pieces are empty.
pub fn parse_content_type(value: &[u8]) -> ContentType {
    let mut lx = Lexer::new(value);
    let mut toks = Vec::new();
    while let Some(t) = lx.next(TSPECIALS) {
        if !matches!(t, Tok::Comment(_)) {
            toks.push(t);
        }
    }
    let mut ct = ContentType::default();
    let mut it = toks.into_iter().peekable();
    if let Some(Tok::Atom(a)) = it.peek().cloned() {
        ct.mtype = a;
        it.next();
        if it.peek() == Some(&Tok::Special(b'/')) {
            it.next();
            if let Some(Tok::Atom(s)) = it.peek().cloned() {
                ct.subtype = s;
                it.next();
            }
        }
    }
    ct.params = parse_params(it);
    ct
}

/// `; name=value` pairs, with RFC 2231 §3 continuations (`name*0`, `name*1`, ...) joined
/// into `name` as Dovecot does; extended (`name*`, `name*0*`) values stay as written.
fn parse_params(it: impl Iterator<Item = Tok>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let raw = parse_params_raw(it);
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut segments: Vec<(Vec<u8>, u32, Vec<u8>)> = Vec::new();
    let mut order: Vec<Vec<u8>> = Vec::new();
    for (name, value) in raw {
        let split = name
            .iter()
            .rposition(|&b| b == b'*')
            .filter(|&star| star > 0 && star + 1 < name.len())
            .and_then(|star| {
                let digits = &name[star + 1..];
                digits
                    .iter()
                    .all(u8::is_ascii_digit)
                    .then(|| std::str::from_utf8(digits).ok()?.parse::<u32>().ok())
                    .flatten()
                    .map(|n| (name[..star].to_vec(), n))
            });
        match split {
            Some((base, n)) => {
                let lower = base.to_ascii_lowercase();
                if !order.contains(&lower) {
                    order.push(lower.clone());
                    out.push((base.clone(), Vec::new()));
                }
                segments.push((lower, n, value));
            }
            None => out.push((name, value)),
        }
    }
    segments.sort_by_key(|s| s.1);
    for (name, value) in out.iter_mut() {
        let lower = name.to_ascii_lowercase();
        if order.contains(&lower) && value.is_empty() {
            for (b, _, v) in &segments {
                if *b == lower {
                    value.extend_from_slice(v);
                }
            }
        }
    }
    out
}

/// `; name=value` pairs from a token stream (anything unexpected is skipped up to `;`).
fn parse_params_raw(mut it: impl Iterator<Item = Tok>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut params: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    // Skip to the first ';'.
    loop {
        match it.next() {
            None => return params,
            Some(Tok::Special(b';')) => break,
            _ => {}
        }
    }
    loop {
        let name = match it.next() {
            None => break,
            Some(Tok::Atom(a)) => a,
            Some(_) => continue,
        };
        match it.next() {
            Some(Tok::Special(b'=')) => {}
            Some(Tok::Special(b';')) => continue,
            None => break,
            Some(_) => {
                // Skip this broken parameter.
                for t in it.by_ref() {
                    if t == Tok::Special(b';') {
                        break;
                    }
                }
                continue;
            }
        }
        let mut value = Vec::new();
        let mut end = false;
        loop {
            match it.next() {
                None => {
                    end = true;
                    break;
                }
                Some(Tok::Special(b';')) => break,
                Some(Tok::Atom(a)) | Some(Tok::Quoted(a)) => value.extend_from_slice(&a),
                Some(Tok::Special(c)) => value.push(c),
                Some(Tok::Literal(l)) => value.extend_from_slice(&l),
                Some(Tok::Comment(_)) => {}
            }
        }
        params.push((name, value));
        if end {
            break;
        }
    }
    params
}

// ---------------------------------------------------------------------------------------------
// Structure.

/// A message whose MIME structure was not parsed: only whole-message sections (`BODY[]`,
/// `RFC822`) may be asked of it.
pub fn unparsed(raw: &[u8]) -> Message<'_> {
    Message {
        raw,
        root: Part {
            header: 0..0,
            body: 0..raw.len(),
            ctype: ContentType::default(),
            ctype_given: false,
            kind: Kind::Leaf,
        },
    }
}

/// Parses a message. Never fails.
pub fn parse(raw: &[u8]) -> Message<'_> {
    let root = parse_part(raw, 0..raw.len(), &[], false, 0, false, false);
    Message { raw, root }
}

/// Parses the part in `raw[range]`. `strip` says the part is followed by a delimiter line,
/// whose preceding CRLF is not part of the body (RFC 2046 §5.1.1) — but, as in Dovecot's
/// sequential parser, only when that CRLF is still body text: a header line or a nested
/// multipart's closing delimiter line that ends right there keeps its own line end.
fn parse_part(
    raw: &[u8],
    range: Range<usize>,
    boundaries: &[&[u8]],
    digest_child: bool,
    depth: usize,
    strip: bool,
    header_strip: bool,
) -> Part {
    // Dovecot gives the CRLF before a delimiter to the delimiter even when it ends a header
    // line of a multipart's part; the header of an encapsulated message keeps it.
    let stripped_end = if strip {
        end_before_delim(raw, range.start, range.end)
    } else {
        range.end
    };
    let hlimit = if header_strip {
        stripped_end
    } else {
        range.end
    };
    let hend = header_end(raw, range.start, hlimit);
    let stripped_end = stripped_end.max(hend);
    let header = range.start..hend;
    let ct_value = header_value(raw, header.clone(), "Content-Type");
    let (ctype, ctype_given) = match ct_value {
        Some(v) => {
            let ct = parse_content_type(v);
            if ct.mtype.is_empty() || ct.subtype.is_empty() {
                // Unusable Content-Type: the default (RFC 2045 §5.2), parameters dropped.
                (default_ctype(digest_child), false)
            } else {
                (ct, true)
            }
        }
        None => (default_ctype(digest_child), false),
    };
    let (kind, body_end) = if depth >= MAX_DEPTH {
        (Kind::Leaf, stripped_end)
    } else if ctype.is("multipart", "") {
        match ctype.param("boundary").filter(|b| !b.is_empty()) {
            Some(b) => {
                let b = b.to_vec();
                let digest = ctype.is("multipart", "digest");
                let mut all: Vec<&[u8]> = boundaries.to_vec();
                all.push(&b);
                let (children, close_end) =
                    parse_children(raw, hend..range.end, &all, digest, depth);
                // No epilogue after the closing delimiter: its line end stays in the body.
                let end = if close_end == Some(range.end) {
                    range.end
                } else {
                    stripped_end
                };
                (Kind::Multipart(children), end)
            }
            // No boundary: a multipart without parts (written as Dovecot does, see write_part).
            None => (Kind::Multipart(Vec::new()), stripped_end),
        }
    } else if ctype.is("message", "rfc822") {
        let inner = parse_part(
            raw,
            hend..range.end,
            boundaries,
            false,
            depth + 1,
            strip,
            false,
        );
        let end = inner.body.end;
        (Kind::Message(Box::new(inner)), end)
    } else {
        (Kind::Leaf, stripped_end)
    };
    Part {
        header,
        body: hend..body_end,
        ctype,
        ctype_given,
        kind,
    }
}

fn default_ctype(digest_child: bool) -> ContentType {
    if digest_child {
        ContentType {
            mtype: b"message".to_vec(),
            subtype: b"rfc822".to_vec(),
            params: Vec::new(),
        }
    } else {
        ContentType {
            mtype: b"text".to_vec(),
            subtype: b"plain".to_vec(),
            params: vec![(b"charset".to_vec(), b"us-ascii".to_vec())],
        }
    }
}

/// What a line is relative to the active boundaries (last = innermost).
#[derive(Debug, PartialEq)]
enum Delim {
    /// `--boundary` of the innermost multipart.
    Next,
    /// `--boundary--` of the innermost multipart.
    Close,
    /// A delimiter of an enclosing multipart: the innermost one ends here.
    Outer,
}

fn classify(line: &[u8], boundaries: &[&[u8]]) -> Option<Delim> {
    let rest = line.strip_prefix(b"--")?;
    let rest = trim_eol(rest);
    for (i, b) in boundaries.iter().enumerate().rev() {
        if let Some(after) = rest.strip_prefix(*b) {
            let innermost = i + 1 == boundaries.len();
            let (close, tail) = match after.strip_prefix(b"--") {
                Some(t) => (true, t),
                None => (false, after),
            };
            if !trim_ws(tail).is_empty() {
                continue;
            }
            return Some(match (innermost, close) {
                (true, false) => Delim::Next,
                (true, true) => Delim::Close,
                _ => Delim::Outer,
            });
        }
    }
    None
}

/// Finds the next delimiter line at or after `pos`: (line start, line end, kind).
fn find_delim(
    raw: &[u8],
    mut pos: usize,
    end: usize,
    boundaries: &[&[u8]],
) -> Option<(usize, usize, Delim)> {
    while pos < end {
        let le = line_end(raw, pos, end);
        if raw[pos] == b'-' {
            if let Some(d) = classify(&raw[pos..le], boundaries) {
                return Some((pos, le, d));
            }
        }
        pos = le;
    }
    None
}

/// Where a part that is followed by a delimiter line at `line_start` ends: before the CRLF
/// that belongs to the delimiter (RFC 2046 §5.1.1), never before `part_start`.
fn end_before_delim(raw: &[u8], part_start: usize, line_start: usize) -> usize {
    let mut e = line_start;
    if e > part_start && raw[e - 1] == b'\n' {
        e -= 1;
        if e > part_start && raw[e - 1] == b'\r' {
            e -= 1;
        }
    }
    e
}

/// The parts of a multipart body; also where its closing delimiter line ended, if seen.
fn parse_children(
    raw: &[u8],
    body: Range<usize>,
    boundaries: &[&[u8]],
    digest: bool,
    depth: usize,
) -> (Vec<Part>, Option<usize>) {
    let mut children = Vec::new();
    // Preamble: up to the first delimiter of ours.
    let mut pos = match find_delim(raw, body.start, body.end, boundaries) {
        Some((_, le, Delim::Next)) => le,
        Some((_, le, Delim::Close)) => return (children, Some(le)),
        _ => return (children, None),
    };
    loop {
        let start = pos;
        let found = find_delim(raw, pos, body.end, boundaries);
        let (end, strip) = match &found {
            Some((ls, _, _)) => (*ls, true),
            None => (body.end, false),
        };
        children.push(parse_part(
            raw,
            start..end,
            boundaries,
            digest,
            depth + 1,
            strip,
            true,
        ));
        match found {
            Some((_, le, Delim::Next)) => pos = le,
            Some((_, le, Delim::Close)) => return (children, Some(le)),
            _ => return (children, None),
        }
    }
}

impl Part {
    /// Line count of the body: the number of LFs, as Dovecot counts (a last line without
    /// LF, e.g. before a boundary's CRLF, is not counted).
    pub fn body_lines(&self, raw: &[u8]) -> usize {
        raw[self.body.clone()]
            .iter()
            .filter(|&&c| c == b'\n')
            .count()
    }
}

// ---------------------------------------------------------------------------------------------
// RFC 5322 addresses.

/// One ENVELOPE address: (name adl mailbox host); group start is (NIL NIL name NIL), group end
/// (NIL NIL NIL NIL) (RFC 3501 §7.4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub name: Option<Vec<u8>>,
    pub adl: Option<Vec<u8>>,
    pub mailbox: Option<Vec<u8>>,
    pub host: Option<Vec<u8>>,
}

const ADDR_SPECIALS: &[u8] = b"<>@,;:.[]\\";

/// Parses an RFC 5322 address list leniently (Dovecot-style placeholders `MISSING_MAILBOX` /
/// `MISSING_DOMAIN` for missing pieces). Encoded words are kept as they are.
pub fn parse_addresses(value: &[u8]) -> Vec<Address> {
    let mut lx = Lexer::new(value);
    let mut toks = Vec::new();
    while let Some(t) = lx.next(ADDR_SPECIALS) {
        toks.push(t);
    }
    let mut out = Vec::new();
    let mut i = 0;
    let mut in_group = false;
    while i < toks.len() {
        // Phrase (display name or local part) up to a special that decides.
        let mut words: Vec<Vec<u8>> = Vec::new();
        let mut comment: Option<Vec<u8>> = None;
        let mut local = Vec::new();
        let mut decided = None;
        while i < toks.len() {
            match &toks[i] {
                Tok::Atom(a) | Tok::Quoted(a) => {
                    words.push(a.clone());
                    local.extend_from_slice(a);
                }
                Tok::Special(b'.') => {
                    words.push(b".".to_vec());
                    local.push(b'.');
                }
                Tok::Comment(c) => comment = Some(c.clone()),
                Tok::Special(c) => {
                    decided = Some(*c);
                    break;
                }
                Tok::Literal(l) => words.push(l.clone()),
            }
            i += 1;
        }
        let name = join_phrase(&words);
        match decided {
            Some(b':') if !in_group => {
                i += 1;
                in_group = true;
                out.push(Address {
                    name: None,
                    adl: None,
                    mailbox: Some(name.unwrap_or_default()),
                    host: None,
                });
            }
            Some(b'<') => {
                i += 1;
                let (adl, mailbox, host, ni) = parse_angle(&toks, i);
                i = ni;
                // Trailing comments after '>' are ignored.
                out.push(Address {
                    name,
                    adl,
                    mailbox: Some(mailbox.unwrap_or_else(|| b"MISSING_MAILBOX".to_vec())),
                    host: Some(host.unwrap_or_else(|| b"MISSING_DOMAIN".to_vec())),
                });
                skip_to_separator(&toks, &mut i);
            }
            Some(b'@') => {
                i += 1;
                let (host, ni) = parse_domain(&toks, i);
                i = ni;
                let mut c = None;
                while i < toks.len() {
                    match &toks[i] {
                        Tok::Comment(x) => c = Some(x.clone()),
                        Tok::Special(b',' | b';') => break,
                        _ => {}
                    }
                    i += 1;
                }
                out.push(Address {
                    name: c.or(comment).filter(|c| !c.is_empty()),
                    adl: None,
                    mailbox: Some(if local.is_empty() {
                        b"MISSING_MAILBOX".to_vec()
                    } else {
                        local
                    }),
                    host: Some(host.unwrap_or_else(|| b"MISSING_DOMAIN".to_vec())),
                });
            }
            _ => {
                if !local.is_empty() {
                    out.push(Address {
                        name: comment.filter(|c| !c.is_empty()),
                        adl: None,
                        mailbox: Some(local),
                        host: Some(b"MISSING_DOMAIN".to_vec()),
                    });
                }
            }
        }
        // Separators.
        while i < toks.len() {
            match toks[i] {
                Tok::Special(b',') => {
                    i += 1;
                    // An empty element (`a, , b`): Dovecot lists a placeholder address.
                    if toks.get(i) == Some(&Tok::Special(b',')) {
                        out.push(Address {
                            name: None,
                            adl: None,
                            mailbox: Some(b"MISSING_MAILBOX".to_vec()),
                            host: Some(b"MISSING_DOMAIN".to_vec()),
                        });
                    }
                }
                Tok::Special(b';') => {
                    i += 1;
                    if in_group {
                        in_group = false;
                        out.push(Address {
                            name: None,
                            adl: None,
                            mailbox: None,
                            host: None,
                        });
                    }
                }
                Tok::Special(b':') if in_group => i += 1,
                Tok::Special(b'>') | Tok::Special(b'\\') => i += 1,
                _ => break,
            }
        }
    }
    if in_group {
        out.push(Address {
            name: None,
            adl: None,
            mailbox: None,
            host: None,
        });
    }
    out
}

fn skip_to_separator(toks: &[Tok], i: &mut usize) {
    while *i < toks.len() && !matches!(toks[*i], Tok::Special(b',' | b';')) {
        *i += 1;
    }
}

fn join_phrase(words: &[Vec<u8>]) -> Option<Vec<u8>> {
    if words.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for (k, w) in words.iter().enumerate() {
        if k > 0 && w != b"." && words[k - 1] != b"." {
            out.push(b' ');
        }
        out.extend_from_slice(w);
    }
    Some(out)
}

type Angle = (Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>, usize);

/// Inside `<...>`: optional route `@a,@b:`, then local@domain, up to `>`.
fn parse_angle(toks: &[Tok], mut i: usize) -> Angle {
    let mut adl = None;
    if toks.get(i) == Some(&Tok::Special(b'@')) {
        let mut route = Vec::new();
        while i < toks.len() && toks[i] != Tok::Special(b':') && toks[i] != Tok::Special(b'>') {
            match &toks[i] {
                Tok::Atom(a) => route.extend_from_slice(a),
                Tok::Special(c) => route.push(*c),
                Tok::Literal(l) => route.extend_from_slice(l),
                _ => {}
            }
            i += 1;
        }
        if toks.get(i) == Some(&Tok::Special(b':')) {
            i += 1;
        }
        adl = Some(route);
    }
    let mut local = Vec::new();
    while i < toks.len() {
        match &toks[i] {
            Tok::Atom(a) => local.extend_from_slice(a),
            Tok::Quoted(q) => {
                local.push(b'"');
                local.extend_from_slice(q);
                local.push(b'"');
            }
            Tok::Special(b'.') => local.push(b'.'),
            Tok::Special(_) => break,
            _ => {}
        }
        i += 1;
    }
    let mut host = None;
    if toks.get(i) == Some(&Tok::Special(b'@')) {
        let (h, ni) = parse_domain(toks, i + 1);
        host = h;
        i = ni;
    }
    while i < toks.len() && toks[i] != Tok::Special(b'>') {
        i += 1;
    }
    if i < toks.len() {
        i += 1;
    }
    let mailbox = if local.is_empty() { None } else { Some(local) };
    (adl, mailbox, host, i)
}

fn parse_domain(toks: &[Tok], mut i: usize) -> (Option<Vec<u8>>, usize) {
    let mut d = Vec::new();
    while i < toks.len() {
        match &toks[i] {
            Tok::Atom(a) => d.extend_from_slice(a),
            Tok::Literal(l) => d.extend_from_slice(l),
            Tok::Special(b'.') => d.push(b'.'),
            _ => break,
        }
        i += 1;
    }
    ((!d.is_empty()).then_some(d), i)
}

/// `value; params` where value is a single token (Content-Disposition).
pub(crate) fn parse_content_type_like(v: &[u8]) -> ContentType {
    let mut lx = Lexer::new(v);
    let mut toks = Vec::new();
    while let Some(t) = lx.next(TSPECIALS) {
        if !matches!(t, Tok::Comment(_)) {
            toks.push(t);
        }
    }
    let mut ct = ContentType::default();
    let mut it = toks.into_iter().peekable();
    if let Some(Tok::Atom(a)) = it.peek().cloned() {
        ct.mtype = a;
        it.next();
    }
    ct.params = parse_params(it);
    ct
}

/// Sample messages for the unit tests of the parser and of the IMAP writers on top of it.
#[cfg(test)]
pub(crate) mod samples {
    pub(crate) const PLAIN: &[u8] = b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: hi\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@x>\r\n\r\nhello\r\nworld\r\n";

    pub(crate) const MULTI: &[u8] = b"From: a@b\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\npreamble\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\none\r\n--XX\r\nContent-Type: multipart/alternative; boundary=YY\r\n\r\n--YY\r\n\r\ninner a\r\n--YY\r\nContent-Type: text/html\r\n\r\n<b>b</b>\r\n--YY--\r\n\r\n--XX\r\nContent-Type: message/rfc822\r\n\r\nSubject: nested\r\nFrom: n@m\r\n\r\nnested body\r\n--XX--\r\nepilogue\r\n";

    /// Multiparts nested deeper than [`MAX_DEPTH`](super::MAX_DEPTH).
    pub(crate) fn deep() -> Vec<u8> {
        let mut m = Vec::new();
        for i in 0..(super::MAX_DEPTH + 10) {
            m.extend_from_slice(
                format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n")
                    .as_bytes(),
            );
        }
        m.extend_from_slice(b"\r\nleaf\r\n");
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use samples::{MULTI, PLAIN};

    /// Every prefix of every sample (truncated mail, half boundaries, half headers) parses;
    /// ranges stay inside the message and headers precede bodies.
    #[test]
    fn truncations_never_panic_and_ranges_stay_valid() {
        fn check(raw: &[u8], p: &Part) {
            assert!(p.header.start <= p.header.end && p.header.end <= p.body.start);
            assert!(p.body.start <= p.body.end && p.body.end <= raw.len());
            match &p.kind {
                Kind::Multipart(c) => c.iter().for_each(|c| check(raw, c)),
                Kind::Message(inner) => check(raw, inner),
                Kind::Leaf => {}
            }
        }
        let deep = samples::deep();
        for sample in [PLAIN, MULTI, deep.as_slice()] {
            for n in 0..=sample.len() {
                let raw = &sample[..n];
                let m = parse(raw);
                check(raw, &m.root);
            }
        }
    }

    #[test]
    fn addresses_and_groups() {
        let a = parse_addresses(b"\"Doe, John\" <j@d.com>, undisclosed:;, Team: x@y, \"Q\" <q@z>; , =?utf-8?q?J=C3=B6rg?= <jo@rg>");
        let names: Vec<_> = a
            .iter()
            .map(|a| {
                (
                    a.name.clone().map(|v| String::from_utf8(v).unwrap()),
                    a.mailbox.clone().map(|v| String::from_utf8(v).unwrap()),
                    a.host.clone().map(|v| String::from_utf8(v).unwrap()),
                )
            })
            .collect();
        let s = |x: &str| Some(x.to_string());
        assert_eq!(
            names,
            vec![
                (s("Doe, John"), s("j"), s("d.com")),
                (None, s("undisclosed"), None),
                (None, None, None),
                (None, s("Team"), None),
                (None, s("x"), s("y")),
                (s("Q"), s("q"), s("z")),
                (None, None, None),
                (s("=?utf-8?q?J=C3=B6rg?="), s("jo"), s("rg")),
            ]
        );
        let a = parse_addresses(b"a@b (Comment Name)");
        assert_eq!(a[0].name.as_deref(), Some(&b"Comment Name"[..]));
        let a = parse_addresses(b"<@r1,@r2:u@h>");
        assert_eq!(a[0].adl.as_deref(), Some(&b"@r1,@r2"[..]));
    }
}
