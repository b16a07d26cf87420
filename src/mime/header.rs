//! Header fields (RFC 5322 §2.2): splitting a header into fields with their byte ranges,
//! finding a field's value, unfolding it, and where a header ends.

use std::ops::Range;

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
pub(super) fn line_end(raw: &[u8], pos: usize, end: usize) -> usize {
    match raw[pos..end].iter().position(|&b| b == b'\n') {
        Some(i) => pos + i + 1,
        None => end,
    }
}

pub(super) fn trim_eol(s: &[u8]) -> &[u8] {
    let s = s.strip_suffix(b"\n").unwrap_or(s);
    s.strip_suffix(b"\r").unwrap_or(s)
}

fn trim_ws_end(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

pub(super) fn trim_ws(mut s: &[u8]) -> &[u8] {
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
pub(super) fn header_end(raw: &[u8], start: usize, end: usize) -> usize {
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
