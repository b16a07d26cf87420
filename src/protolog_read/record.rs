//! The byte-level record parser: one line of a protocol log (SPEC §5) into its seven fields,
//! and the `data` field back into the bytes the session saw.
//!
//! Written here rather than taken from the `csv` crate: the format is narrow (seven fields,
//! printable ASCII, RFC 4180 quoting), the reader must keep one reusable line buffer per file
//! and hand out borrowed field ranges (no allocation per record), and the fields need
//! checks of their own (the timestamp shape the merge orders by, the event code). It is
//! fuzzed (`fuzz/fuzz_targets/protolog_record.rs`) against `csv-core` as the reference.

use std::borrow::Cow;
use std::ops::Range;

/// Why a line is not a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordError {
    /// Not seven fields, or a quote where RFC 4180 allows none.
    Fields,
    /// `date-time` is not `YYYY-MM-DDTHH:MM:SS.fffZ`.
    Time,
    /// `sequence-number` is not decimal digits.
    Sequence,
    /// `event` is not one of `+ - < > *`.
    Event,
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecordError::Fields => "not seven CSV fields",
            RecordError::Time => "bad date-time",
            RecordError::Sequence => "bad sequence-number",
            RecordError::Event => "bad event",
        })
    }
}

/// Where the fields of one line are: the content of each (inside its quotes, with `""`
/// still doubled), and which were quoted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    pub ranges: [Range<usize>; 7],
    /// Bit `i` set: field `i` was quoted (its `""` pairs are undone by [`unquote`]).
    pub quoted: u8,
    /// The sequence number.
    pub seq: u64,
}

/// Index of each field in [`Fields::ranges`], as in `#Fields:`.
pub const DATE_TIME: usize = 0;
pub const SESSION_ID: usize = 1;
pub const LOCAL: usize = 3;
pub const REMOTE: usize = 4;
pub const EVENT: usize = 5;
pub const DATA: usize = 6;

/// Splits `line` (without its `\n`; a trailing `\r` is taken as part of the data) into the
/// seven fields of a record and checks `date-time`, `sequence-number` and `event`.
pub fn parse(line: &[u8]) -> Result<Fields, RecordError> {
    let mut f = Fields::default();
    let mut pos = 0;
    for i in 0..7 {
        let (range, quoted, next) = field(line, pos)?;
        f.ranges[i] = range;
        if quoted {
            f.quoted |= 1 << i;
        }
        match next {
            Some(n) if i < 6 => pos = n,
            None if i == 6 => {}
            _ => return Err(RecordError::Fields),
        }
    }
    if !is_timestamp(&line[f.ranges[DATE_TIME].clone()]) {
        return Err(RecordError::Time);
    }
    let seq = &line[f.ranges[2].clone()];
    if seq.is_empty() || seq.len() > 19 || !seq.iter().all(u8::is_ascii_digit) {
        return Err(RecordError::Sequence);
    }
    f.seq = seq
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    match &line[f.ranges[EVENT].clone()] {
        [b'+' | b'-' | b'<' | b'>' | b'*'] => {}
        _ => return Err(RecordError::Event),
    }
    Ok(f)
}

/// One field starting at `pos`: its content range, whether it was quoted, and where the next
/// field starts (`None` at the end of the line).
fn field(line: &[u8], pos: usize) -> Result<(Range<usize>, bool, Option<usize>), RecordError> {
    if line.get(pos) == Some(&b'"') {
        let start = pos + 1;
        let mut i = start;
        loop {
            match memchr::memchr(b'"', &line[i..]) {
                None => return Err(RecordError::Fields),
                Some(q) => {
                    let q = i + q;
                    if line.get(q + 1) == Some(&b'"') {
                        i = q + 2;
                        continue;
                    }
                    return match line.get(q + 1) {
                        None => Ok((start..q, true, None)),
                        Some(b',') => Ok((start..q, true, Some(q + 2))),
                        Some(_) => Err(RecordError::Fields),
                    };
                }
            }
        }
    }
    let rest = &line[pos..];
    let end = memchr::memchr(b',', rest).map_or(line.len(), |c| pos + c);
    if memchr::memchr(b'"', &line[pos..end]).is_some() {
        return Err(RecordError::Fields);
    }
    Ok((pos..end, false, (end < line.len()).then_some(end + 1)))
}

/// `YYYY-MM-DDTHH:MM:SS.fffZ`: the shape whose byte order is time order.
pub fn is_timestamp(t: &[u8]) -> bool {
    const SHAPE: &[u8; 24] = b"dddd-dd-ddTdd:dd:dd.dddZ";
    t.len() == 24
        && t.iter().zip(SHAPE).all(|(&b, &s)| match s {
            b'd' => b.is_ascii_digit(),
            s => b == s,
        })
}

/// A field's content with RFC 4180's `""` undone when it was quoted.
pub fn unquote(content: &[u8], quoted: bool) -> Cow<'_, [u8]> {
    if !quoted || memchr::memchr(b'"', content).is_none() {
        return Cow::Borrowed(content);
    }
    let mut out = Vec::with_capacity(content.len());
    let mut i = 0;
    while i < content.len() {
        out.push(content[i]);
        i += if content[i] == b'"' { 2 } else { 1 };
    }
    Cow::Owned(out)
}

/// The bytes of a `data` field (already unquoted): `\xNN` decoded. A backslash that does
/// not start a well-formed escape is kept as it is (the writer never produces one; a
/// reader shows what is there rather than failing).
pub fn unescape(field: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr(b'\\', field).is_none() {
        return Cow::Borrowed(field);
    }
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\' && field.get(i + 1) == Some(&b'x') {
            if let (Some(h), Some(l)) = (
                field.get(i + 2).and_then(|&b| hex(b)),
                field.get(i + 3).and_then(|&b| hex(b)),
            ) {
                out.push(h << 4 | l);
                i += 4;
                continue;
            }
        }
        out.push(field[i]);
        i += 1;
    }
    Cow::Owned(out)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// What one line of a log file is.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A `#Name: value` header line.
    Header(&'a [u8], &'a [u8]),
    /// A record.
    Record(Fields),
    /// An empty line (ignored).
    Empty,
    /// Neither.
    Bad(RecordError),
}

/// Classifies one line (without its `\n`).
pub fn classify(line: &[u8]) -> Line<'_> {
    if line.is_empty() {
        return Line::Empty;
    }
    if line[0] == b'#' {
        let body = &line[1..];
        return match memchr::memchr(b':', body) {
            Some(c) => {
                let value = &body[c + 1..];
                let value = value.strip_prefix(b" ").unwrap_or(value);
                Line::Header(&body[..c], value)
            }
            None => Line::Header(body, b""),
        };
    }
    match parse(line) {
        Ok(f) => Line::Record(f),
        Err(e) => Line::Bad(e),
    }
}

/// Splits a byte stream into lines however it arrives: bytes are fed in pieces, complete
/// lines come out, and an unfinished last line stays until its `\n` comes (a file being
/// written). Used by the tests of every chunking; the file reader gets the same from
/// `BufRead::read_until`.
#[cfg(any(test, feature = "test-support"))]
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

#[cfg(any(test, feature = "test-support"))]
impl LineSplitter {
    /// Feeds `chunk`, calling `line` with every line it completes (without the `\n`).
    pub fn feed(&mut self, mut chunk: &[u8], mut line: impl FnMut(&[u8])) {
        while let Some(lf) = memchr::memchr(b'\n', chunk) {
            if self.partial.is_empty() {
                line(&chunk[..lf]);
            } else {
                self.partial.extend_from_slice(&chunk[..lf]);
                line(&self.partial);
                self.partial.clear();
            }
            chunk = &chunk[lf + 1..];
        }
        self.partial.extend_from_slice(chunk);
    }

    /// The bytes of an unfinished last line.
    pub fn pending(&self) -> &[u8] {
        &self.partial
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "2026-11-27T16:50:09.123Z";

    fn data_of(line: &str) -> Vec<u8> {
        let f = parse(line.as_bytes()).unwrap();
        let raw = &line.as_bytes()[f.ranges[DATA].clone()];
        unescape(&unquote(raw, f.quoted & (1 << DATA) != 0)).into_owned()
    }

    #[test]
    fn plain_and_quoted_records() {
        let l = format!("{T},0123456789abcdef,42,127.0.0.1:110,[::1]:5000,<,\"LIST 1,2\"");
        let f = parse(l.as_bytes()).unwrap();
        assert_eq!(f.seq, 42);
        assert_eq!(&l.as_bytes()[f.ranges[REMOTE].clone()], b"[::1]:5000");
        assert_eq!(data_of(&l), b"LIST 1,2");
        assert_eq!(data_of(&format!("{T},a,0,l,r,>,")), b"");
        assert_eq!(data_of(&format!("{T},a,0,l,r,>,\"\"")), b"");
        assert_eq!(
            data_of(&format!("{T},a,0,l,r,>,\"say \"\"hi\"\", \\x5C\"")),
            b"say \"hi\", \\"
        );
        assert_eq!(data_of(&format!("{T},a,0,l,r,>,\\x3D1\\x0D\\xC3\\xA9")), "=1\ré".as_bytes());
        // Quoted fields other than data are RFC 4180 too.
        assert_eq!(data_of(&format!("\"{T}\",\"a\",\"7\",,,\"*\",x")), b"x");
    }

    #[test]
    fn malformed_lines_are_errors_not_panics() {
        for (line, err) in [
            (format!("{T},a,0,l,r,>"), RecordError::Fields),
            (format!("{T},a,0,l,r,>,x,y"), RecordError::Fields),
            (format!("{T},a,0,l,r,>,\"x"), RecordError::Fields),
            (format!("{T},a,0,l,r,>,\"x\"y"), RecordError::Fields),
            (format!("{T},a,0,l,r,>,x\"y"), RecordError::Fields),
            ("2026-11-27 16:50:09.123Z,a,0,l,r,>,x".to_string(), RecordError::Time),
            (format!("{T},a,-1,l,r,>,x"), RecordError::Sequence),
            (format!("{T},a,99999999999999999999,l,r,>,x"), RecordError::Sequence),
            (format!("{T},a,0,l,r,!,x"), RecordError::Event),
            (format!("{T},a,0,l,r,<>,x"), RecordError::Event),
        ] {
            assert_eq!(parse(line.as_bytes()), Err(err), "{line}");
        }
        assert_eq!(unescape(b"\\x4"), &b"\\x4"[..]);
        assert_eq!(unescape(b"a\\zz\\x41"), &b"a\\zzA"[..]);
    }

    #[test]
    fn headers_and_empty_lines() {
        assert_eq!(
            classify(b"#Service: IMAP4"),
            Line::Header(b"Service", b"IMAP4")
        );
        assert_eq!(classify(b""), Line::Empty);
        assert!(matches!(classify(b"junk"), Line::Bad(_)));
    }

    /// Every record the writer makes (`protolog::record`) reads back as the bytes written,
    /// fed through the splitter at every chunk size, with a partial last line held back.
    #[test]
    fn writer_records_read_back_at_every_chunk_size() {
        use crate::protolog::record::{push_record, push_server_record, Event, SessionFields};
        use std::time::{Duration, UNIX_EPOCH};
        let s = SessionFields::new(
            0xfeed,
            "127.0.0.1:143".parse().unwrap(),
            "[2001:db8::1]:50000".parse().unwrap(),
        );
        let now = UNIX_EPOCH + Duration::from_millis(1_795_798_209_123);
        let mut datas: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"USER alice".to_vec(),
            b"a,b \"c\" ".to_vec(),
            b" lead".to_vec(),
            b"=1+2".to_vec(),
            "caf\u{e9} \\ \r\n".as_bytes().to_vec(),
        ];
        datas.push((0..=255u8).collect());
        let mut file = Vec::new();
        let mut seq = 0;
        for d in &datas {
            push_record(&mut file, now, &s, seq, Event::FromClient, d);
            push_server_record(&mut file, now, &s, seq + 1, d);
            seq += 2;
        }
        let whole = file.len();
        file.extend_from_slice(b"2026-11-27T16:50:09.123Z,00000000");
        for chunk in 1..=file.len() {
            let mut sp = LineSplitter::default();
            let mut got = Vec::new();
            for piece in file.chunks(chunk) {
                sp.feed(piece, |line| {
                    let f = parse(line).unwrap();
                    let raw = &line[f.ranges[DATA].clone()];
                    got.push((
                        f.seq,
                        line[f.ranges[EVENT].start],
                        unescape(&unquote(raw, f.quoted & (1 << DATA) != 0)).into_owned(),
                    ));
                });
            }
            assert_eq!(sp.pending(), &file[whole..], "chunk {chunk}");
            assert_eq!(got.len(), datas.len() * 2, "chunk {chunk}");
            for (i, (seq, ev, data)) in got.iter().enumerate() {
                assert_eq!(*seq, i as u64);
                assert_eq!(*ev, if i % 2 == 0 { b'<' } else { b'>' });
                assert_eq!(data, &datas[i / 2], "chunk {chunk} record {i}");
            }
        }
    }
}
