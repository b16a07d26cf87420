//! The MIME part tree of a message with exact byte ranges (RFC 2045, RFC 2046 §5.1
//! multipart boundaries, §5.2.1 message/rfc822), as Dovecot's `message-parser.c` finds them.

use std::ops::Range;

use crate::mime::content_type::{parse_content_type, ContentType};
use crate::mime::header::{header_end, header_value, line_end, trim_eol, trim_ws};

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
                    parse_children(raw, hend..range.end, &all, digest, depth, strip);
                // No epilogue after the closing delimiter: its line end stays in the body.
                // A last part that kept the CRLF before the next delimiter (the header of an
                // encapsulated message keeps its line end) keeps it in this body too.
                let end = if close_end == Some(range.end) {
                    range.end
                } else {
                    stripped_end.max(children.last().map_or(stripped_end, |c| c.body.end))
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
/// `strip` says the multipart itself is followed by a delimiter line: a last part that runs
/// to the end of the body (no closing delimiter of ours) ends before that line's CRLF too,
/// as the multipart does (Dovecot: the CRLF before any delimiter belongs to the delimiter).
fn parse_children(
    raw: &[u8],
    body: Range<usize>,
    boundaries: &[&[u8]],
    digest: bool,
    depth: usize,
    strip: bool,
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
        let (end, child_strip) = match &found {
            Some((ls, _, _)) => (*ls, true),
            None => (body.end, strip),
        };
        children.push(parse_part(
            raw,
            start..end,
            boundaries,
            digest,
            depth + 1,
            child_strip,
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

#[cfg(test)]
mod tests {
    use crate::mime::parser::*;
    use crate::mime::samples::{self, MULTI, PLAIN};

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

    /// A nested multipart without its closing delimiter, followed by the outer multipart's
    /// delimiter (found by the `mime` fuzz target): its last part ends before that
    /// delimiter's CRLF, as the nested multipart does, so it stays inside its parent (as
    /// Dovecot gives it: `tests/imap_mime_dovecot.rs`, "nested-unclosed").
    #[test]
    fn unclosed_nested_multipart_keeps_its_last_part_inside() {
        let raw: &[u8] = b"Content-Type: multipart/mixed; boundary=outer\r\n\r\n--outer\r\n\
Content-Type: multipart/alternative; boundary=inner\r\n\r\n--inner\r\n\r\n\
inner text\r\n--outer\r\n\r\nafter\r\n--outer--\r\n";
        let m = parse(raw);
        let Kind::Multipart(outer) = &m.root.kind else {
            panic!("not a multipart: {:?}", m.root)
        };
        let Kind::Multipart(inner) = &outer[0].kind else {
            panic!("not a multipart: {:?}", outer[0])
        };
        assert_eq!(&raw[inner[0].body.clone()], b"inner text");
        assert!(inner[0].body.end <= outer[0].body.end);
        assert_eq!(&raw[outer[1].body.clone()], b"after");
    }

    /// An unclosed digest whose last part is a header-only message, followed by the outer
    /// delimiter (found by the `mime` fuzz target): the message's header keeps its CRLF and
    /// so does the digest holding it, as Dovecot gives it (`tests/imap_mime_dovecot.rs`,
    /// "digest-unclosed-header-only").
    #[test]
    fn unclosed_digest_holds_its_header_only_message() {
        let raw: &[u8] = b"Content-Type: multipart/mixed; boundary=outer\r\n\r\n--outer\r\n\
Content-Type: multipart/digest; boundary=dg\r\n\r\n--dg\r\n\r\nSubject: x\r\n--outer--\r\n";
        let m = parse(raw);
        let Kind::Multipart(outer) = &m.root.kind else {
            panic!("not a multipart: {:?}", m.root)
        };
        let digest = &outer[0];
        let Kind::Multipart(parts) = &digest.kind else {
            panic!("not a multipart: {digest:?}")
        };
        assert_eq!(&raw[digest.body.clone()], b"--dg\r\n\r\nSubject: x\r\n");
        assert!(parts[0].body.end <= digest.body.end);
    }
}
