//! Pure formatting of KB Q182504 log lines (ARCHITECTURE.md, "Protocol log"); no I/O here.
//!
//! A record is one CSV line (RFC 4180 §2 quoting) with the fields of the `#Fields:` header:
//! `date-time,session-id,sequence-number,local-endpoint,remote-endpoint,event,data`.
//!
//! Escaping of `data` (decided here, documented in ARCHITECTURE.md, "Protocol log"): every byte outside printable
//! ASCII 0x20–0x7E is written as `\xNN` (upper-case hex), and so is the backslash itself
//! (`\x5C`), so that decoding is unambiguous: a `\` in the file always starts an escape.
//! As a consequence a record never contains a raw CR or LF, and `\n` is the record boundary —
//! the sink relies on that to cut batches at record boundaries.
//!
//! After escaping, RFC 4180 quoting applies: the field is wrapped in `"` when it contains `,`
//! or `"` or starts or ends with a space, and every `"` inside is doubled.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// The `#Fields:` header line value.
pub const FIELDS: &str =
    "date-time,session-id,sequence-number,local-endpoint,remote-endpoint,event,data";

/// The `event` field of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `+` the session connected.
    Connect,
    /// `-` the session ended.
    Disconnect,
    /// `<` client to server.
    FromClient,
    /// `>` server to client.
    ToClient,
    /// `*` information (TLS, authentication result, dropped records).
    Info,
}

impl Event {
    /// The one-character code written in the file.
    pub fn code(self) -> u8 {
        match self {
            Event::Connect => b'+',
            Event::Disconnect => b'-',
            Event::FromClient => b'<',
            Event::ToClient => b'>',
            Event::Info => b'*',
        }
    }
}

/// The four header lines that start every file, each ending in CRLF-free `\n`.
pub fn header(service_name: &str, now: SystemTime) -> String {
    let mut date = Vec::with_capacity(24);
    push_timestamp(&mut date, now);
    format!(
        "#Service: {service_name}\n#Software: mailserver {}\n#Date: {}\n#Fields: {FIELDS}\n",
        env!("CARGO_PKG_VERSION"),
        String::from_utf8_lossy(&date),
    )
}

/// Appends `YYYY-MM-DDTHH:MM:SS.fffZ` (UTC, milliseconds) for `t` to `out`.
/// Times before 1970 are written as the epoch (they cannot come from a sane clock).
pub fn push_timestamp(out: &mut Vec<u8>, t: SystemTime) {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let millis = since.subsec_millis();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    push_num(out, y as u64, 4);
    out.push(b'-');
    push_num(out, u64::from(m), 2);
    out.push(b'-');
    push_num(out, u64::from(d), 2);
    out.push(b'T');
    push_num(out, hh, 2);
    out.push(b':');
    push_num(out, mm, 2);
    out.push(b':');
    push_num(out, ss, 2);
    out.push(b'.');
    push_num(out, u64::from(millis), 3);
    out.push(b'Z');
}

/// Gregorian date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Appends `n` in decimal, zero-padded to at least `width` digits.
fn push_num(out: &mut Vec<u8>, n: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for _ in (digits.len() - i)..width {
        out.push(b'0');
    }
    out.extend_from_slice(&digits[i..]);
}

/// The `session-id` field: 16 lower-case hex digits.
pub fn session_id_text(id: u64) -> String {
    format!("{id:016x}")
}

/// An endpoint field: `ip:port`, or `[v6]:port` (the `SocketAddr` display form).
pub fn endpoint_text(addr: SocketAddr) -> String {
    addr.to_string()
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// A byte written as itself that does not force quoting.
const PLAIN: u8 = 0;
/// `,`: written as itself, forces RFC 4180 quoting.
const COMMA: u8 = 1;
/// `"`: doubled, forces quoting.
const QUOTE: u8 = 2;
/// Outside printable ASCII, or the backslash: written as `\xNN`.
const ESCAPE: u8 = 3;

/// What [`push_data_field`] does with each byte value (one lookup per byte instead of
/// range tests).
static CLASS: [u8; 256] = {
    let mut t = [ESCAPE; 256];
    let mut b = 0x20;
    while b <= 0x7E {
        t[b] = PLAIN;
        b += 1;
    }
    t[b'\\' as usize] = ESCAPE;
    t[b',' as usize] = COMMA;
    t[b'"' as usize] = QUOTE;
    t
};

/// Appends `data` as the `data` field: `\xNN` escaping, then RFC 4180 quoting if needed.
///
/// Most lines of mail are printable ASCII: those are checked sixteen bytes at a time and
/// copied in one piece. Any other line takes one pass in which runs of bytes written as
/// themselves are still copied in bulk. Both paths take [`always_quoted`] for the bytes at
/// the edges; a field that [`starts_like_formula`] takes the second with its first byte
/// escaped.
pub fn push_data_field(out: &mut Vec<u8>, data: &[u8]) {
    push_field(out, data, starts_like_formula(data));
}

/// [`push_data_field`] for a line the server wrote itself: a POP3 `+OK`/`-ERR` status or an
/// IMAP `+` continuation keeps its first byte readable (only client data can make a field
/// start like a formula, and these starts cannot: an IMAP tag never begins with `+`, and
/// `-ERR` is followed by server text).
pub fn push_server_line_field(out: &mut Vec<u8>, data: &[u8]) {
    let ours = data.starts_with(b"+OK")
        || data.starts_with(b"-ERR")
        || data.starts_with(b"+ ")
        || data == b"+";
    push_field(out, data, !ours && starts_like_formula(data));
}

/// The data field, with its first byte escaped when `neutralize` says so.
fn push_field(out: &mut Vec<u8>, data: &[u8], neutralize: bool) {
    let edge = always_quoted(data);
    if neutralize {
        return push_data_field_slow(out, data, edge, true);
    }
    match scan(data) {
        Scan::Plain { comma } => {
            let quote = comma || edge;
            out.reserve(data.len() + 2);
            if quote {
                out.push(b'"');
            }
            out.extend_from_slice(data);
            if quote {
                out.push(b'"');
            }
        }
        Scan::Special => push_data_field_slow(out, data, edge, false),
    }
}

/// Whether `data` is quoted whatever it holds: a space at either end (kept by every CSV
/// reader only inside quotes).
fn always_quoted(data: &[u8]) -> bool {
    data.first() == Some(&b' ') || data.last() == Some(&b' ')
}

/// Whether a spreadsheet would take the field for a formula: its first byte is `=`, `+`,
/// `-` or `@` (a client line such as `=HYPERLINK(...)` would otherwise run when an admin
/// opens the log in Excel; RFC 4180 quoting does not stop that, the spreadsheet evaluates
/// the unquoted text). Such a first byte is written as `\xNN`, which every reader of this
/// format decodes back to the same byte and a spreadsheet shows as text.
fn starts_like_formula(data: &[u8]) -> bool {
    matches!(data.first(), Some(b'=' | b'+' | b'-' | b'@'))
}

/// What [`scan`] found in a data field.
enum Scan {
    /// Every byte is written as itself; `comma` says whether quoting is needed for a `,`.
    Plain { comma: bool },
    /// Some byte is escaped or doubled.
    Special,
}

/// Classifies `data` sixteen bytes at a time: each block is reduced with comparisons only
/// (no table, no early exit inside a block), which the compiler turns into a few vector
/// instructions. The last partial block is checked as the block ending at the last byte
/// (overlapping the one before; or-ing a byte twice changes nothing), a field shorter than a
/// block as a copy padded with plain bytes.
fn scan(data: &[u8]) -> Scan {
    let n = data.len();
    if n < 16 {
        let mut pad = [b'a'; 16];
        pad[..n].copy_from_slice(data);
        let (special, comma) = classify_block(&pad);
        return if special {
            Scan::Special
        } else {
            Scan::Plain { comma }
        };
    }
    let mut comma = false;
    let mut blocks = data.chunks_exact(16);
    for block in &mut blocks {
        let (special, c) = classify_block(block.try_into().unwrap_or(&[0; 16]));
        if special {
            return Scan::Special;
        }
        comma |= c;
    }
    if !blocks.remainder().is_empty() {
        let last = data[n - 16..].try_into().unwrap_or(&[0; 16]);
        let (special, c) = classify_block(last);
        if special {
            return Scan::Special;
        }
        comma |= c;
    }
    Scan::Plain { comma }
}

/// `(some byte is escaped or doubled, some byte is a comma)` for one block; the same classes
/// as [`CLASS`], written as comparisons so the loop vectorizes.
#[inline(always)]
fn classify_block(block: &[u8; 16]) -> (bool, bool) {
    let mut special = 0u8;
    let mut comma = 0u8;
    for &b in block {
        special |=
            u8::from(b < 0x20) | u8::from(b > 0x7E) | u8::from(b == b'\\') | u8::from(b == b'"');
        comma |= u8::from(b == b',');
    }
    (special != 0, comma != 0)
}

/// [`push_data_field`] for a field with bytes to escape or double: one pass, a place for the
/// opening quote reserved and removed again (a short `memmove` of this field only) when the
/// field turns out not to need quotes.
fn push_data_field_slow(out: &mut Vec<u8>, data: &[u8], always: bool, escape_first: bool) {
    let start = out.len();
    out.reserve(data.len() + 6);
    out.push(b'"');
    let mut quote = always;
    let mut run = 0;
    for (i, &b) in data.iter().enumerate() {
        let class = if i == 0 && escape_first {
            ESCAPE
        } else {
            CLASS[usize::from(b)]
        };
        match class {
            PLAIN => {}
            COMMA => quote = true,
            QUOTE => {
                quote = true;
                out.extend_from_slice(&data[run..i]);
                run = i + 1;
                out.extend_from_slice(b"\"\"");
            }
            _ => {
                out.extend_from_slice(&data[run..i]);
                run = i + 1;
                out.extend_from_slice(&[
                    b'\\',
                    b'x',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 15)],
                ]);
            }
        }
    }
    out.extend_from_slice(&data[run..]);
    if quote {
        out.push(b'"');
    } else {
        out.remove(start);
    }
}

/// The parts of a record that do not change within a session, pre-formatted once.
#[derive(Debug, Clone)]
pub struct SessionFields {
    /// `session-id` text.
    pub id: String,
    /// `local-endpoint` text.
    pub local: String,
    /// `remote-endpoint` text.
    pub remote: String,
}

impl SessionFields {
    pub fn new(id: u64, local: SocketAddr, remote: SocketAddr) -> SessionFields {
        SessionFields {
            id: session_id_text(id),
            local: endpoint_text(local),
            remote: endpoint_text(remote),
        }
    }
}

/// Appends one whole record line, ending in `\n`, to `out`.
pub fn push_record(
    out: &mut Vec<u8>,
    now: SystemTime,
    session: &SessionFields,
    seq: u64,
    event: Event,
    data: &[u8],
) {
    push_timestamp(out, now);
    push_after_stamp(out, session, seq, event);
    push_data_field(out, data);
    out.push(b'\n');
}

/// [`push_record`] for a line the server wrote itself (its data field through
/// [`push_server_line_field`]).
pub fn push_server_record(
    out: &mut Vec<u8>,
    now: SystemTime,
    session: &SessionFields,
    seq: u64,
    data: &[u8],
) {
    push_timestamp(out, now);
    push_after_stamp(out, session, seq, Event::ToClient);
    push_server_line_field(out, data);
    out.push(b'\n');
}

/// Everything of a record before its `data` field, for consecutive records of one session
/// with the same `date-time` and `event` (level-5 content): formatted once, after which only
/// the `sequence-number` digits are counted up in place, so each record costs a copy of the
/// prefix, the data field and a `\n`.
#[derive(Debug, Clone, Default)]
pub struct RecordPrefix {
    /// `date-time,session-id,sequence-number,local-endpoint,remote-endpoint,event,`
    buf: Vec<u8>,
    /// Where the `sequence-number` digits are in `buf`.
    seq_start: usize,
    seq_end: usize,
}

impl RecordPrefix {
    /// Formats the prefix of record `seq` of `session` at `now` for `event`.
    pub fn reset(&mut self, now: SystemTime, session: &SessionFields, seq: u64, event: Event) {
        self.buf.clear();
        push_timestamp(&mut self.buf, now);
        self.buf.push(b',');
        self.buf.extend_from_slice(session.id.as_bytes());
        self.buf.push(b',');
        self.seq_start = self.buf.len();
        push_num(&mut self.buf, seq, 1);
        self.seq_end = self.buf.len();
        push_after_seq(&mut self.buf, session, event);
    }

    /// Appends one whole record (this prefix, `data` as the data field, `\n`) to `out` and
    /// moves on to the next sequence number.
    pub fn push_record(&mut self, out: &mut Vec<u8>, data: &[u8]) {
        out.extend_from_slice(&self.buf);
        push_data_field(out, data);
        out.push(b'\n');
        self.advance();
    }

    /// The sequence number plus one, in decimal, in place (one more digit after all nines).
    fn advance(&mut self) {
        for d in self.buf[self.seq_start..self.seq_end].iter_mut().rev() {
            if *d == b'9' {
                *d = b'0';
            } else {
                *d += 1;
                return;
            }
        }
        self.buf.insert(self.seq_start, b'1');
        self.seq_end += 1;
    }
}

/// Everything of a record after its `date-time` field and before its `data` field.
fn push_after_stamp(out: &mut Vec<u8>, session: &SessionFields, seq: u64, event: Event) {
    out.push(b',');
    out.extend_from_slice(session.id.as_bytes());
    out.push(b',');
    push_num(out, seq, 1);
    push_after_seq(out, session, event);
}

/// `,local-endpoint,remote-endpoint,event,`
fn push_after_seq(out: &mut Vec<u8>, session: &SessionFields, event: Event) {
    out.push(b',');
    out.extend_from_slice(session.local.as_bytes());
    out.push(b',');
    out.extend_from_slice(session.remote.as_bytes());
    out.push(b',');
    out.push(event.code());
    out.push(b',');
}

/// Decodes a `data` field written by [`push_data_field`] (quotes removed, `""` undone,
/// `\xNN` decoded). For tests and log readers; `None` if the field is malformed.
/// (The crate's own round-trip tests; log readers outside the crate, such as the
/// integration tests' `tests/common/logreader.rs`, decode independently.)
#[cfg(test)]
pub fn decode_data_field(field: &str) -> Option<Vec<u8>> {
    let inner: String = if let Some(q) = field.strip_prefix('"') {
        let q = q.strip_suffix('"')?;
        let mut s = String::with_capacity(q.len());
        let mut it = q.chars().peekable();
        while let Some(c) = it.next() {
            if c == '"' && it.next() != Some('"') {
                return None;
            }
            s.push(c);
        }
        s
    } else {
        if field.contains('"') {
            return None;
        }
        field.to_string()
    };
    let b = inner.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if b.get(i + 1) != Some(&b'x') || i + 4 > b.len() {
                return None;
            }
            let hex = std::str::from_utf8(&b[i + 2..i + 4]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Splits one record line (without `\n`) into its seven fields, honouring RFC 4180 quotes
/// (only the last field can be quoted). `None` if the line is not a well-formed record.
#[cfg(test)]
pub fn split_record(line: &str) -> Option<[&str; 7]> {
    let mut fields = [""; 7];
    let mut rest = line;
    for f in fields.iter_mut().take(6) {
        let (head, tail) = rest.split_once(',')?;
        *f = head;
        rest = tail;
    }
    fields[6] = rest;
    Some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn data(bytes: &[u8]) -> String {
        let mut v = Vec::new();
        push_data_field(&mut v, bytes);
        String::from_utf8(v).unwrap()
    }

    fn server(bytes: &[u8]) -> String {
        let mut v = Vec::new();
        push_server_line_field(&mut v, bytes);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn plain_text_is_written_as_is() {
        assert_eq!(data(b"USER alice"), "USER alice");
        assert_eq!(data(b""), "");
        assert_eq!(
            server(b"+OK <1896.697170952@dbc.mindspring.com>"),
            "+OK <1896.697170952@dbc.mindspring.com>"
        );
    }

    #[test]
    fn non_printable_and_backslash_are_escaped() {
        assert_eq!(data(b"a\r\nb"), "a\\x0D\\x0Ab");
        assert_eq!(data(b"\x00\x7f\x80\xff"), "\\x00\\x7F\\x80\\xFF");
        assert_eq!(data(b"C:\\dir"), "C:\\x5Cdir");
        assert_eq!(data("é".as_bytes()), "\\xC3\\xA9");
        assert_eq!(data(b"\t"), "\\x09");
    }

    #[test]
    fn every_single_byte_is_written_as_the_spec_says() {
        for b in 0..=255u8 {
            let expected = match b {
                b',' => "\",\"".to_string(),
                b'"' => "\"\"\"\"".to_string(),
                b' ' => "\" \"".to_string(),
                b'\\' | b'=' | b'+' | b'-' | b'@' => format!("\\x{b:02X}"),
                0x21..=0x7E => (b as char).to_string(),
                _ => format!("\\x{b:02X}"),
            };
            assert_eq!(data(&[b]), expected, "byte {b:#04x}");
            if !b" =+-@".contains(&b) {
                // Inside a field: the same bytes (and for `,`/`"` the same quotes) around it.
                let inner = data(&[b'a', b, b'z']);
                assert_eq!(inner.len(), expected.len() + 2, "byte {b:#04x}: {inner}");
            }
        }
    }

    /// The block-at-a-time check against the byte-by-byte path: every byte value at every
    /// position of fields shorter than a block (padded), of whole blocks and of blocks with
    /// an overlapping last block, next to neighbours at the edges of the classes.
    #[test]
    fn block_scan_agrees_with_the_byte_by_byte_path() {
        for fill in [b'a', b' ', b'~', b',', b'!', 0x00, 0x1F, 0x7F, 0x80, 0xFF] {
            for len in [1usize, 7, 15, 16, 17, 31, 32, 35] {
                for pos in 0..len {
                    for b in 0..=255u8 {
                        let mut v = vec![fill; len];
                        v[pos] = b;
                        let mut slow = Vec::new();
                        push_data_field_slow(&mut slow, &v, always_quoted(&v), starts_like_formula(&v));
                        assert_eq!(data(&v).into_bytes(), slow, "{v:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn rfc4180_quoting() {
        assert_eq!(data(b"a,b"), "\"a,b\"");
        assert_eq!(data(b"say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(data(b" lead"), "\" lead\"");
        assert_eq!(data(b"trail "), "\"trail \"");
        assert_eq!(data(b" "), "\" \"");
        assert_eq!(data(b"in side"), "in side");
        assert_eq!(data(b"\""), "\"\"\"\"");
    }

    /// A field a spreadsheet would read as a formula is quoted, on the fast path and on the
    /// escaping one; the same bytes later in the field are not a formula and stay bare.
    #[test]
    fn formula_starts_are_escaped() {
        assert_eq!(data(b"=HYPERLINK(A1)"), "\\x3DHYPERLINK(A1)");
        assert_eq!(data(b"-1+1"), "\\x2D1+1");
        assert_eq!(data(b"@SUM(A1)"), "\\x40SUM(A1)");
        assert_eq!(data(b"+x"), "\\x2Bx");
        assert_eq!(data(b"=a,\"b\""), "\"\\x3Da,\"\"b\"\"\"");
        assert_eq!(data(b"a1 =1+2 -x @y"), "a1 =1+2 -x @y");
        // Content and client lines that look like the server's own starts are escaped too.
        assert_eq!(data(b"+OK x"), "\\x2BOK x");
        // The server's own status lines keep their first byte.
        assert_eq!(server(b"+OK <1@x>"), "+OK <1@x>");
        assert_eq!(server(b"-ERR no\r"), "-ERR no\\x0D");
        assert_eq!(server(b"+ idling"), "+ idling");
        assert_eq!(server(b"+"), "+");
        // A tagged IMAP reply starts with the client's tag.
        assert_eq!(server(b"=1 OK done"), "\\x3D1 OK done");
        assert_eq!(server(b"-x BAD no"), "\\x2Dx BAD no");
        for d in [&b"=1+2"[..], b"+OK \x01", b"@x", b"-", b"=,"] {
            assert_eq!(decode_data_field(&data(d)).unwrap(), d);
            assert_eq!(decode_data_field(&server(d)).unwrap(), d);
        }
    }

    #[test]
    fn escaping_round_trips_every_byte() {
        let all: Vec<u8> = (0..=255u8).collect();
        for window in [1usize, 2, 3, 7, 64, 256] {
            for chunk in all.chunks(window) {
                for variant in [chunk.to_vec(), [b" ", chunk, b","].concat()] {
                    let enc = data(&variant);
                    assert!(!enc.contains('\n') && !enc.contains('\r'));
                    assert!(enc.bytes().all(|b| (0x20..=0x7E).contains(&b)));
                    assert_eq!(
                        decode_data_field(&enc).as_deref(),
                        Some(&variant[..]),
                        "{enc}"
                    );
                }
            }
        }
    }

    #[test]
    fn timestamps_match_known_dates() {
        let ts = |secs: u64, ms: u64| {
            let mut v = Vec::new();
            push_timestamp(&mut v, UNIX_EPOCH + Duration::from_millis(secs * 1000 + ms));
            String::from_utf8(v).unwrap()
        };
        assert_eq!(ts(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(ts(951_782_400, 7), "2000-02-29T00:00:00.007Z");
        assert_eq!(ts(1_795_798_209, 123), "2026-11-27T16:50:09.123Z");
        assert_eq!(ts(4_107_542_399, 999), "2100-02-28T23:59:59.999Z");
        assert_eq!(ts(253_402_300_799, 0), "9999-12-31T23:59:59.000Z");
    }

    #[test]
    fn timestamps_agree_with_chrono() {
        let mut t = 0u64;
        for _ in 0..2000 {
            t = t
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let secs = (t >> 20) % 8_000_000_000;
            let ms = t % 1000;
            let when = UNIX_EPOCH + Duration::from_millis(secs * 1000 + ms);
            let mut v = Vec::new();
            push_timestamp(&mut v, when);
            let c: chrono::DateTime<chrono::Utc> = when.into();
            let expected = c.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
            assert_eq!(String::from_utf8(v).unwrap(), expected);
        }
    }

    #[test]
    fn record_line_layout() {
        let s = SessionFields::new(
            0x0123_4567_89ab_cdef,
            "127.0.0.1:110".parse().unwrap(),
            "[2001:db8::1]:50000".parse().unwrap(),
        );
        let mut v = Vec::new();
        push_record(&mut v, UNIX_EPOCH, &s, 42, Event::FromClient, b"LIST 1,2");
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "1970-01-01T00:00:00.000Z,0123456789abcdef,42,127.0.0.1:110,[2001:db8::1]:50000,<,\"LIST 1,2\"\n"
        );
        let line = "t,id,0,l,r,>,\"a,b\"";
        let f = split_record(line).unwrap();
        assert_eq!(f[5], ">");
        assert_eq!(decode_data_field(f[6]).unwrap(), b"a,b");
    }

    /// The prefix counted up in place writes the same records as formatting each whole,
    /// across the points where the sequence number gains a digit.
    #[test]
    fn record_prefix_counts_up_like_whole_records() {
        let s = SessionFields::new(
            0xfeed,
            "[2001:db8::2]:995".parse().unwrap(),
            "192.0.2.7:50000".parse().unwrap(),
        );
        let now = UNIX_EPOCH + Duration::from_millis(1_795_798_209_123);
        for (start, count) in [(0u64, 1200u64), (99_990, 20), (999_999_998, 3)] {
            for event in [Event::ToClient, Event::FromClient] {
                let mut prefix = RecordPrefix::default();
                prefix.reset(now, &s, start, event);
                let (mut fast, mut whole) = (Vec::new(), Vec::new());
                for seq in start..start + count {
                    let data = format!("line {seq}, \"q\" \u{e9}");
                    prefix.push_record(&mut fast, data.as_bytes());
                    push_record(&mut whole, now, &s, seq, event, data.as_bytes());
                }
                assert_eq!(
                    String::from_utf8(fast).unwrap(),
                    String::from_utf8(whole).unwrap()
                );
            }
        }
    }

    #[test]
    fn header_lines() {
        let h = header("IMAP4", UNIX_EPOCH);
        let lines: Vec<&str> = h.lines().collect();
        assert_eq!(lines[0], "#Service: IMAP4");
        assert_eq!(
            lines[1],
            concat!("#Software: mailserver ", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(lines[2], "#Date: 1970-01-01T00:00:00.000Z");
        assert_eq!(lines[3], format!("#Fields: {FIELDS}"));
        assert_eq!(lines.len(), 4);
    }
}
